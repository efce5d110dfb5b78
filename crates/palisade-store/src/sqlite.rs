//! The embedded default: one SQLite file in WAL mode with `synchronous=FULL`,
//! a single writer connection (SQLite allows one writer at a time anyway, and a
//! single connection turns lock contention into an orderly queue) and a small
//! pool of readers that never block it. The WAL is folded back into the file by a
//! task of its own (`checkpointer`), off the writer's path.

mod checkpointer;

use crate::{DatabaseConfig, StoreError};
use checkpointer::Checkpointer;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Bytes per database page, for databases created from now on (an existing file
/// keeps its own). A batch of 1000 audit events dirties about a MiB of table and
/// index pages, and the commit writes each page to the WAL as a frame of its own
/// (a checksum and two writes): with 16 KiB pages instead of SQLite's 4 KiB the
/// append benchmark went from 77k to 95k events/s; 32 and 64 KiB were no faster.
const PAGE_SIZE: u32 = 16 * 1024;

/// The writer's own checkpoint threshold, in pages (64 MiB of WAL): a backstop
/// behind the checkpoint task, see `checkpointer`.
const WRITER_CHECKPOINT_PAGES: u32 = 4096;

/// The embedded database.
#[derive(Debug, Clone)]
pub struct SqliteDb {
    writer: SqlitePool,
    reader: SqlitePool,
    path: PathBuf,
    checkpointer: Arc<Checkpointer>,
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
            .page_size(PAGE_SIZE)
            // Reads go through the OS page cache by mmap instead of a pread copy per
            // page: it showed up as kernel copy time in the append benchmark.
            .pragma("mmap_size", "268435456")
            .pragma("temp_store", "memory");
        // The writer keeps the hot index pages of a growing audit log in memory; the
        // cache grows only as pages are used, so an idle instance stays small.
        let writer_options = options
            .clone()
            .pragma("cache_size", "-65536")
            .pragma("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES.to_string());
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(config.acquire_timeout())
            .connect_with(writer_options)
            .await?;
        // Opened after the writer, which has created the file in WAL mode.
        let checkpointer =
            Checkpointer::start(options.clone().pragma("cache_size", "-2048")).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(config.max_connections.clamp(1, 8))
            .acquire_timeout(config.acquire_timeout())
            .connect_with(options.pragma("cache_size", "-16384").read_only(true))
            .await?;
        Ok(Self {
            writer,
            reader,
            path: path.to_owned(),
            checkpointer: Arc::new(checkpointer),
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
        self.checkpointer.stop();
        self.writer.close().await;
        self.reader.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new file gets the large pages, and the checkpoint task folds committed
    /// pages into it with no checkpoint by the writer, whose threshold this write
    /// stays far below.
    #[tokio::test]
    async fn the_checkpoint_task_folds_the_wal_into_a_file_of_large_pages() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("palisade.db");
        let db = SqliteDb::open(&path, &DatabaseConfig::default())
            .await
            .expect("open");
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(db.writer())
            .await
            .expect("page size");
        assert_eq!(page_size, i64::from(PAGE_SIZE));
        let written = 4 << 20;
        assert!(written / i64::from(PAGE_SIZE) < i64::from(WRITER_CHECKPOINT_PAGES) / 8);
        sqlx::query("CREATE TABLE t (b BLOB)")
            .execute(db.writer())
            .await
            .expect("create");
        sqlx::query("INSERT INTO t VALUES (randomblob(?))")
            .bind(written)
            .execute(db.writer())
            .await
            .expect("insert");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let file_len = || std::fs::metadata(&path).map_or(0, |m| m.len());
        while file_len() < written as u64 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file still holds {} bytes",
                file_len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        db.close().await;
    }
}
