//! The store's error type.

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The configuration cannot work (bad URL, missing CA file, ...). Fix the config.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed or the database has migrations this build does not know.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The circuit breaker in front of the database is open: calls fail fast
    /// instead of piling up on a database that is down.
    #[error("database unavailable (circuit breaker open); retry in {retry_after:?}")]
    Unavailable {
        /// When the breaker may admit calls again.
        retry_after: std::time::Duration,
    },
    /// The data directory could not be created or opened.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

impl StoreError {
    /// Whether the failure is the dependency being unavailable (worth a retry, counts
    /// against the circuit breaker) rather than a problem with the request itself.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(e) => is_unavailable(e),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => is_unavailable(e),
            StoreError::Unavailable { .. } => true,
            _ => false,
        }
    }
}

/// Whether a sqlx error means "the database is not there" rather than "the query is wrong".
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_)
    ) || matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| {
        // 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now,
        // 08xxx connection exceptions, 53300 too many connections.
        c.starts_with("08") || c.starts_with("57P") || c == "53300"
    }))
}
