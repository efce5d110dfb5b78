//! PostgreSQL pools: a primary for writes and an optional replica for read-only queries.

use crate::{DatabaseConfig, StoreError};
use palisade_core::SystemClock;
use palisade_core::resilience::{BreakerError, BreakerSnapshot, CircuitBreaker};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use std::str::FromStr;

/// Connections to PostgreSQL. Pools connect lazily, so Palisade starts (and reports
/// "not ready") while the database is down instead of refusing to start.
#[derive(Debug, Clone)]
pub struct PostgresDb {
    primary: PgPool,
    replica: Option<PgPool>,
    breaker: CircuitBreaker,
}

impl PostgresDb {
    /// Builds the pools from the configuration without connecting yet.
    pub fn connect_lazy(config: &DatabaseConfig) -> Result<Self, StoreError> {
        let url = config
            .url
            .as_ref()
            .ok_or_else(|| StoreError::Config("database.url: missing".into()))?;
        let primary = pool(config, url.expose(), "database.url", "palisade")?;
        let replica = config
            .replica_url
            .as_ref()
            .map(|u| {
                pool(
                    config,
                    u.expose(),
                    "database.replica_url",
                    "palisade-replica",
                )
            })
            .transpose()?;
        let breaker =
            CircuitBreaker::new("postgres", config.breaker.clone(), SystemClock::shared())
                .map_err(|e| StoreError::Config(format!("database.breaker: {e}")))?;
        Ok(Self {
            primary,
            replica,
            breaker,
        })
    }

    /// Runs a database operation through the circuit breaker. Only errors for which
    /// `is_unavailable` is true count against the database; an open breaker answers
    /// at once with [`StoreError::Unavailable`] instead of waiting for a dead server.
    pub async fn guard<T, E, F>(&self, is_unavailable: fn(&E) -> bool, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: From<StoreError>,
    {
        match self.breaker.call_with(is_unavailable, fut).await {
            Ok(value) => Ok(value),
            Err(BreakerError::Inner(e)) => Err(e),
            Err(BreakerError::Open(open)) => Err(StoreError::Unavailable {
                retry_after: open.retry_after,
            }
            .into()),
        }
    }

    /// The breaker's state, for health reports.
    pub fn breaker_snapshot(&self) -> BreakerSnapshot {
        self.breaker.snapshot()
    }

    /// The pool for writes and for reads that must see the latest writes.
    pub fn primary(&self) -> &PgPool {
        &self.primary
    }

    /// The pool for read-only queries that tolerate replication lag.
    pub fn reader(&self) -> &PgPool {
        self.replica.as_ref().unwrap_or(&self.primary)
    }

    /// Whether a separate read replica is configured.
    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    pub(crate) async fn close(&self) {
        self.primary.close().await;
        if let Some(replica) = &self.replica {
            replica.close().await;
        }
    }
}

/// `application_name` tells a DBA in `pg_stat_activity` which pool a session is from.
fn pool(
    config: &DatabaseConfig,
    url: &str,
    key: &str,
    application_name: &str,
) -> Result<PgPool, StoreError> {
    // The URL may hold a password: the error names the key, never the value.
    let mut options = PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::Config(format!("{key}: not a valid postgres:// URL")))?
        .application_name(application_name)
        .options([("statement_timeout", config.statement_timeout_ms.to_string())]);
    if let Some(ca) = &config.ssl_root_cert {
        options = options.ssl_root_cert(ca);
        if url.contains("sslmode=") {
            // Respect the URL's mode; a CA file without a mode means "verify everything".
        } else {
            options = options.ssl_mode(PgSslMode::VerifyFull);
        }
    }
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(config.min_connections)
        .acquire_timeout(config.acquire_timeout())
        .idle_timeout(Some(config.idle_timeout()))
        .test_before_acquire(true)
        .connect_lazy_with(options))
}
