//! The database a Palisade instance runs on: embedded SQLite or PostgreSQL.

use crate::{DatabaseConfig, PostgresDb, SqliteDb, StoreError, migrate};
use std::path::Path;
use std::time::{Duration, Instant};

/// Which backend is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite file.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A handle to the configured database. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Database {
    /// The embedded default.
    Sqlite(SqliteDb),
    /// PostgreSQL, with an optional read replica.
    Postgres(PostgresDb),
}

impl Database {
    /// The SQLite file used when no URL is configured.
    pub const EMBEDDED_FILE: &'static str = "palisade.db";

    /// Opens the configured database: PostgreSQL lazily (start-up does not wait for it),
    /// SQLite at once (it is a local file; failing to open it is a start-up error).
    pub async fn connect(config: &DatabaseConfig, data_dir: &Path) -> Result<Self, StoreError> {
        config.validate()?;
        match config.url.as_ref().map(|u| u.expose()) {
            None => Ok(Self::Sqlite(
                SqliteDb::open(&data_dir.join(Self::EMBEDDED_FILE), config).await?,
            )),
            Some(url) if url.starts_with("sqlite:") => {
                Ok(Self::Sqlite(SqliteDb::open_url(url, config).await?))
            }
            Some(_) => Ok(Self::Postgres(PostgresDb::connect_lazy(config)?)),
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies every embedded migration not yet applied.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(db) => migrate::sqlite().run(db.writer()).await?,
            Self::Postgres(db) => migrate::postgres().run(db.primary()).await?,
        }
        Ok(())
    }

    /// Round-trips a trivial query and returns how long it took.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let started = Instant::now();
        match self {
            Self::Sqlite(db) => {
                sqlx::query("SELECT 1").execute(db.reader()).await?;
            }
            Self::Postgres(db) => {
                db.guard(StoreError::is_unavailable, async {
                    sqlx::query("SELECT 1").execute(db.primary()).await?;
                    Ok::<_, StoreError>(())
                })
                .await?;
            }
        }
        Ok(started.elapsed())
    }

    /// Connections open and idle in the primary pool, for metrics.
    pub fn pool_usage(&self) -> (u32, usize) {
        match self {
            Self::Sqlite(db) => (
                db.writer().size() + db.reader().size(),
                db.reader().num_idle(),
            ),
            Self::Postgres(db) => (db.primary().size(), db.primary().num_idle()),
        }
    }

    /// Closes every pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(db) => db.close().await,
            Self::Postgres(db) => db.close().await,
        }
    }
}

/// The database as a required health component: down means not ready.
#[derive(Debug, Clone)]
pub struct DatabaseHealth(pub Database);

impl palisade_core::health::HealthCheck for DatabaseHealth {
    fn name(&self) -> &str {
        "database"
    }

    fn required(&self) -> bool {
        true
    }

    fn check(&self) -> futures_util::future::BoxFuture<'_, palisade_core::health::ComponentHealth> {
        use palisade_core::health::ComponentHealth;
        Box::pin(async move {
            let backend = match self.0.backend() {
                Backend::Sqlite => "sqlite",
                Backend::Postgres => "postgres",
            };
            match self.0.ping().await {
                Ok(latency) => ComponentHealth::up()
                    .with_latency(latency)
                    .with_detail(backend),
                // The error text can carry host names but never credentials (sqlx does not print them).
                Err(e) => ComponentHealth::down(format!("{backend}: {}", short(&e))),
            }
        })
    }
}

fn short(e: &StoreError) -> String {
    e.to_string().chars().take(200).collect()
}
