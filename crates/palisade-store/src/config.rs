//! Database configuration, as read from `[database]` in `palisade.toml`.

use crate::StoreError;
use palisade_core::Secret;
use palisade_core::resilience::BreakerConfig;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Where durable state lives. With no `url`, Palisade uses an embedded SQLite file
/// in its data directory; with a `postgres://` URL, PostgreSQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:pass@host/db?sslmode=verify-full` or `sqlite:///path/file.db`.
    /// Secret because it may hold a password.
    pub url: Option<Secret>,
    /// Optional read replica (PostgreSQL only) for read-only queries.
    pub replica_url: Option<Secret>,
    /// Most connections per pool.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long a query waits for a free connection before failing.
    pub acquire_timeout_ms: u64,
    /// How long an idle connection is kept.
    pub idle_timeout_ms: u64,
    /// PostgreSQL `statement_timeout` for every session: a stuck query cannot hold a connection forever.
    pub statement_timeout_ms: u64,
    /// CA certificate for `sslmode=verify-ca` / `verify-full`.
    pub ssl_root_cert: Option<PathBuf>,
    /// The circuit breaker in front of PostgreSQL.
    pub breaker: BreakerConfig,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            replica_url: None,
            max_connections: 16,
            min_connections: 0,
            acquire_timeout_ms: 5_000,
            idle_timeout_ms: 600_000,
            statement_timeout_ms: 15_000,
            ssl_root_cert: None,
            breaker: BreakerConfig::default(),
        }
    }
}

impl DatabaseConfig {
    /// A PostgreSQL configuration with defaults for everything but the URL.
    pub fn postgres(url: impl Into<String>) -> Self {
        Self {
            url: Some(Secret::new(url)),
            ..Self::default()
        }
    }

    /// Checks values that serde cannot, naming the key that is wrong.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |key: &str, why: &str| Err(StoreError::Config(format!("database.{key}: {why}")));
        if let Some(url) = &self.url {
            let url = url.expose();
            let known = ["postgres://", "postgresql://", "sqlite:"];
            if !known.iter().any(|scheme| url.starts_with(scheme)) {
                return bad(
                    "url",
                    "must start with postgres://, postgresql:// or sqlite:",
                );
            }
        }
        if self.replica_url.is_some() && !self.is_postgres() {
            return bad("replica_url", "a read replica needs a postgres:// url");
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if self.min_connections > self.max_connections {
            return bad("min_connections", "must not exceed max_connections");
        }
        if self.acquire_timeout_ms == 0 {
            return bad("acquire_timeout_ms", "must be at least 1");
        }
        if let Err(e) = self.breaker.validate() {
            return bad("breaker", &e.to_string());
        }
        if let Some(ca) = &self.ssl_root_cert
            && !ca.is_file()
        {
            return bad("ssl_root_cert", "file does not exist");
        }
        Ok(())
    }

    /// Whether this configuration points at PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.url
            .as_ref()
            .is_some_and(|u| u.expose().starts_with("postgres"))
    }

    pub(crate) fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }

    pub(crate) fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key_that_is_wrong() {
        let mut config = DatabaseConfig::postgres("mysql://x");
        let err = config
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("database.url"), "{err}");

        config = DatabaseConfig::postgres("postgres://h/db");
        config.min_connections = 50;
        let err = config
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("database.min_connections"), "{err}");
    }

    #[test]
    fn validation_error_never_contains_the_password() {
        let config = DatabaseConfig::postgres("mysql://user:s3cr3t-pw@h/db");
        let err = config
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.contains("s3cr3t-pw"));
        assert!(!format!("{config:?}").contains("s3cr3t-pw"));
    }
}
