//! The embedded default: one SQLite file in WAL mode with `synchronous=FULL`,
//! a single writer connection (SQLite allows one writer at a time anyway, and a
//! single connection turns lock contention into an orderly queue) and a small
//! pool of readers that never block it.

use crate::{DatabaseConfig, StoreError};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The embedded database.
#[derive(Debug, Clone)]
pub struct SqliteDb {
    writer: SqlitePool,
    reader: SqlitePool,
    path: PathBuf,
}

impl SqliteDb {
    /// Opens (creating if needed) the database file `path`.
    pub async fn open(path: &Path, config: &DatabaseConfig) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::DataDir {
                path: parent.to_owned(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // Reads go through the OS page cache by mmap instead of a pread copy per
            // page, and the WAL is folded back into the database less often: both
            // showed up as kernel copy time in the append benchmark.
            .pragma("mmap_size", "268435456")
            .pragma("wal_autocheckpoint", "10000")
            .pragma("temp_store", "memory");
        // The writer keeps the hot index pages of a growing audit log in memory; the
        // cache grows only as pages are used, so an idle instance stays small.
        let writer_options = options.clone().pragma("cache_size", "-65536");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(config.acquire_timeout())
            .connect_with(writer_options)
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(config.max_connections.clamp(1, 8))
            .acquire_timeout(config.acquire_timeout())
            .connect_with(options.pragma("cache_size", "-16384").read_only(true))
            .await?;
        Ok(Self {
            writer,
            reader,
            path: path.to_owned(),
        })
    }

    /// Opens the database named by a `sqlite:` URL.
    pub async fn open_url(url: &str, config: &DatabaseConfig) -> Result<Self, StoreError> {
        let parsed = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::Config("database.url: not a valid sqlite: URL".into()))?;
        Self::open(parsed.get_filename(), config).await
    }

    /// The single writer connection; every write goes through it.
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// A write transaction that holds the database's write lock from its first
    /// statement (`BEGIN IMMEDIATE`), waiting for it up to the busy timeout.
    /// Another process may write the same file (`palisade keys rotate` while
    /// the server runs): a deferred transaction that read first would fail with
    /// `SQLITE_BUSY_SNAPSHOT` when the other committed in between, an error the
    /// busy timeout does not retry.
    pub async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    /// Read-only connections.
    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}
