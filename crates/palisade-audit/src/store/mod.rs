//! Where the audit log lives: append-only tables in SQLite or PostgreSQL behind one
//! `AuditStore`, whose conformance suite (`tests/audit_store_conformance.rs`) runs
//! against both.
//!
//! An append is one transaction that sequences as it stores: it takes the log's
//! write lock (the single SQLite writer; a PostgreSQL advisory transaction lock, so
//! any number of instances may append and exactly one sequences at a time, with
//! automatic takeover when one dies), assigns the next contiguous indexes, stores the
//! leaves, every newly completed subtree hash, and a signed checkpoint.

mod filtered;
mod hash_runs;
mod pg_copy;
mod postgres;
mod sqlite;
mod verify_reads;

pub use verify_reads::{HashComparison, LeafBlock};

pub(crate) use filtered::FilteredRead;

use crate::checkpoint::{CheckpointError, NoteSigner};
use crate::event::{Outcome, PreparedEvent};
use crate::merkle::{Hash, NodeId, ProofError};
use palisade_store::{Database, StoreError};
use uuid::Uuid;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditStoreError {
    /// The database failed or is unreachable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored hashes do not form a valid tree (tampering or a bug): fail closed.
    #[error("stored tree is inconsistent: {0}")]
    Tree(#[from] ProofError),
    /// A checkpoint could not be signed.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// A stored value has the wrong shape (a hash of the wrong length, a negative index).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for AuditStoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}

impl AuditStoreError {
    /// Whether the database is unreachable (the caller should spool instead).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_unavailable())
    }
}

/// Where each event of an append ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// `(event id, index)` in the order of the input batch. An id that was already in
    /// the log keeps its first index (idempotent append).
    pub entries: Vec<(Uuid, u64)>,
    /// Tree size after the append.
    pub tree_size: u64,
}

/// The latest signed tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size.
    pub tree_size: u64,
    /// Root hash.
    pub root: Hash,
    /// The signed note.
    pub note: String,
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its index in the tree.
    pub index: u64,
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant: String,
    /// The canonical leaf bytes.
    pub leaf: Vec<u8>,
    /// The reader's view of the leaf's `pii` ([`crate::pii`]): filled by
    /// [`crate::log::AuditLog::reveal_pii`], never stored. `None` when unresolved,
    /// which views show as redacted.
    pub pii: Option<serde_json::Value>,
}

/// Query filters; all optional, combined with AND. Tenant is mandatory so that a
/// query can never cross tenants by omission.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Tenant (required).
    pub tenant: String,
    /// Exact actor id.
    pub actor_id: Option<String>,
    /// Action prefix on segment boundaries: `auth` matches `auth` and `auth.login`.
    pub action_prefix: Option<String>,
    /// Resource type.
    pub resource_type: Option<String>,
    /// Resource id (with or without type).
    pub resource_id: Option<String>,
    /// Outcome.
    pub outcome: Option<Outcome>,
    /// Received at or after (Unix ms).
    pub from_ms: Option<i64>,
    /// Received before (Unix ms).
    pub to_ms: Option<i64>,
}

/// Newest first, strictly below `before` when given.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Only indexes below this.
    pub before: Option<u64>,
    /// At most this many.
    pub limit: u32,
}

/// Oldest first, strictly between `after` and `before` when given: the read behind
/// live streams and exports, which must see every event once, in index order.
#[derive(Debug, Clone, Copy)]
pub struct PageAfter {
    /// Only indexes above this (`None`: from the first event).
    pub after: Option<u64>,
    /// Only indexes below this (`None`: up to the newest).
    pub before: Option<u64>,
    /// At most this many.
    pub limit: u32,
}

/// An ascending page and how far it proves the log was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AscendingPage {
    /// Matching events, ascending.
    pub events: Vec<StoredEvent>,
    /// The position to continue from: every index above the page's `after` and up
    /// to this one was either returned or does not match the filter. It runs ahead of
    /// the last returned event when later events did not match, so a reader with a
    /// rare filter does not rescan the same rows forever. `None` only when nothing
    /// was read and no `after` was given.
    pub through: Option<u64>,
}

/// The direction of a filtered read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Descending index, for queries (newest first).
    NewestFirst,
    /// Ascending index, for streams and exports.
    OldestFirst,
}

/// How far an ascending read covered the log. `head` is the tree size seen on the
/// same connection *before* the page was read: indexes are contiguous and commit in
/// order, so every index below it was visible to the page read, and a page shorter
/// than its limit therefore proves that nothing in `(after, head)` is missing.
pub(crate) fn read_through(events: &[StoredEvent], head: u64, page: PageAfter) -> Option<u64> {
    let last = events.last().map(|e| e.index);
    let full = events.len() >= page.limit as usize;
    let covered = if full {
        last
    } else {
        last.max(head.checked_sub(1))
    };
    let covered = match page.before {
        Some(before) => covered.and_then(|c| before.checked_sub(1).map(|b| c.min(b))),
        None => covered,
    };
    covered.max(page.after)
}

/// The audit tables on the configured database.
#[derive(Debug, Clone)]
pub struct AuditStore {
    db: Database,
}

impl AuditStore {
    /// The store on `db` (migrations applied).
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Sequences and stores a batch, signing a checkpoint of the new tree.
    pub async fn append(
        &self,
        batch: &[PreparedEvent],
        signer: &NoteSigner,
        origin: &str,
        now_ms: i64,
    ) -> Result<Appended, AuditStoreError> {
        match &self.db {
            Database::Sqlite(db) => sqlite::append(db, batch, signer, origin, now_ms).await,
            Database::Postgres(db) => {
                db.guard(
                    AuditStoreError::is_unavailable,
                    postgres::append(db, batch, signer, origin, now_ms),
                )
                .await
            }
        }
    }

    /// Current tree size (number of sequenced events).
    pub async fn tree_size(&self) -> Result<u64, AuditStoreError> {
        match &self.db {
            Database::Sqlite(db) => sqlite::tree_size(db.writer()).await,
            Database::Postgres(db) => {
                db.guard(
                    AuditStoreError::is_unavailable,
                    postgres::tree_size(db.primary()),
                )
                .await
            }
        }
    }

    /// The newest checkpoint, if any event was ever appended.
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, AuditStoreError> {
        match &self.db {
            Database::Sqlite(db) => sqlite::latest_checkpoint(db.reader()).await,
            Database::Postgres(db) => {
                db.guard(
                    AuditStoreError::is_unavailable,
                    postgres::latest_checkpoint(db.primary()),
                )
                .await
            }
        }
    }

    /// Stored subtree hashes, in the order asked; a missing one is an error.
    pub async fn read_hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, AuditStoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        match &self.db {
            Database::Sqlite(db) => sqlite::read_hashes(db.reader(), ids).await,
            Database::Postgres(db) => {
                db.guard(
                    AuditStoreError::is_unavailable,
                    postgres::read_hashes(db.reader(), ids),
                )
                .await
            }
        }
    }

    /// `(index, hash)` of the stored hashes of one level in `[start, end)`; unlike
    /// [`AuditStore::hash_range`] a gap is visible, for the verifier.
    pub async fn hash_range_indexed(
        &self,
        level: u8,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, Hash)>, AuditStoreError> {
        let runs: Vec<(u64, Vec<u8>)> = self
            .stored_runs(&[(level, start, end)])
            .await?
            .into_iter()
            .map(|(_, first, hashes)| (first, hashes))
            .collect();
        hash_runs::expand(&runs, start, end)
    }

    /// The stored hash runs that can hold nodes of each `(level, start, end)`, as
    /// `(level, first index, hashes)`, ascending (see [`hash_runs`]).
    pub(crate) async fn stored_runs(
        &self,
        ranges: &[(u8, u64, u64)],
    ) -> Result<Vec<(u8, u64, Vec<u8>)>, AuditStoreError> {
        match &self.db {
            Database::Sqlite(db) => sqlite::stored_runs(db.reader(), ranges).await,
            Database::Postgres(db) => {
                db.guard(
                    AuditStoreError::is_unavailable,
                    postgres::stored_runs(db.reader(), ranges),
                )
                .await
            }
        }
    }

    /// Every stored checkpoint, oldest first.
    pub async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, AuditStoreError> {
        match &self.db {
            Database::Sqlite(db) => sqlite::checkpoints(db.reader()).await,
            Database::Postgres(db) => {
                db.guard(
                    AuditStoreError::is_unavailable,
                    postgres::checkpoints(db.reader()),
                )
                .await
            }
        }
    }

    /// Hashes of one level in `[start, end)`, for tiles and verification.
    pub async fn hash_range(
        &self,
        level: u8,
        start: u64,
        end: u64,
    ) -> Result<Vec<Hash>, AuditStoreError> {
        Ok(self
            .hash_range_indexed(level, start, end)
            .await?
            .into_iter()
            .map(|(_, hash)| hash)
            .collect())
    }

    /// Events with indexes in `[start, end)`, ascending.
    pub async fn events_range(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<StoredEvent>, AuditStoreError> {
        match &self.db {
            Database::Sqlite(db) => sqlite::events_range(db.reader(), start, end).await,
            Database::Postgres(db) => {
                db.guard(
                    AuditStoreError::is_unavailable,
                    postgres::events_range(db.reader(), start, end),
                )
                .await
            }
        }
    }

    /// `(index, leaf)` of the events in `[start, end)`, ascending: the verifier's
    /// read, without the columns it does not need.
    pub async fn leaves_range(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, AuditStoreError> {
        match &self.db {
            Database::Sqlite(db) => sqlite::leaves_range(db.reader(), start, end).await,
            Database::Postgres(db) => {
                db.guard(
                    AuditStoreError::is_unavailable,
                    postgres::leaves_range(db.reader(), start, end),
                )
                .await
            }
        }
    }

    /// One event by id.
    pub async fn event_by_id(&self, id: Uuid) -> Result<Option<StoredEvent>, AuditStoreError> {
        match &self.db {
            Database::Sqlite(db) => sqlite::event_by_id(db.reader(), id).await,
            Database::Postgres(db) => {
                db.guard(
                    AuditStoreError::is_unavailable,
                    postgres::event_by_id(db.reader(), id),
                )
                .await
            }
        }
    }

    /// Events matching `filter` after a position, oldest first, with how far the
    /// read got (see [`AscendingPage::through`]). Reads the tree size and the page on
    /// one connection so that the coverage claim holds even on a lagging replica.
    pub async fn query_after(
        &self,
        filter: &EventFilter,
        page: PageAfter,
    ) -> Result<AscendingPage, AuditStoreError> {
        match &self.db {
            Database::Sqlite(db) => sqlite::query_after(db.reader(), filter, page).await,
            Database::Postgres(db) => {
                db.guard(
                    AuditStoreError::is_unavailable,
                    postgres::query_after(db.reader(), filter, page),
                )
                .await
            }
        }
    }

    /// Events matching `filter`, newest first.
    pub async fn query(
        &self,
        filter: &EventFilter,
        page: Page,
    ) -> Result<Vec<StoredEvent>, AuditStoreError> {
        match &self.db {
            Database::Sqlite(db) => sqlite::query(db.reader(), filter, page).await,
            Database::Postgres(db) => {
                db.guard(
                    AuditStoreError::is_unavailable,
                    postgres::query(db.reader(), filter, page),
                )
                .await
            }
        }
    }
}

pub(crate) fn to_hash(bytes: &[u8]) -> Result<Hash, AuditStoreError> {
    bytes
        .try_into()
        .map_err(|_| AuditStoreError::Corrupt(format!("hash of {} bytes", bytes.len())))
}

pub(crate) fn to_index(value: i64) -> Result<u64, AuditStoreError> {
    u64::try_from(value).map_err(|_| AuditStoreError::Corrupt(format!("negative index {value}")))
}

pub(crate) fn to_db(value: u64) -> Result<i64, AuditStoreError> {
    i64::try_from(value).map_err(|_| AuditStoreError::Corrupt(format!("index {value} beyond i64")))
}

/// Removes repeated ids within one batch, keeping the first; returns the unique
/// events and, for each input position, which unique event it maps to.
pub(crate) fn dedupe(batch: &[PreparedEvent]) -> (Vec<&PreparedEvent>, Vec<usize>) {
    let mut seen = std::collections::HashMap::with_capacity(batch.len());
    let mut unique = Vec::with_capacity(batch.len());
    let mut positions = Vec::with_capacity(batch.len());
    for event in batch {
        let slot = *seen.entry(event.id).or_insert_with(|| {
            unique.push(event);
            unique.len() - 1
        });
        positions.push(slot);
    }
    (unique, positions)
}

/// The ids of `unique` that may already be in the log: those at or below the
/// greatest id it holds (`None`: the log is empty). An id above it cannot be stored.
/// Ids Palisade assigns are UUIDv7s, which order by their millisecond first, so a
/// fresh batch is above the greatest id and skips the lookup; a client's own ids and
/// a spool replay's older ones are still looked up. `Uuid` orders by its bytes, as
/// SQLite compares blobs and PostgreSQL compares `uuid`s.
pub(crate) fn maybe_stored(unique: &[&PreparedEvent], greatest: Option<Uuid>) -> Vec<Uuid> {
    unique
        .iter()
        .map(|e| e.id)
        .filter(|id| greatest.is_some_and(|greatest| *id <= greatest))
        .collect()
}

/// Columns every event read selects.
pub(crate) const EVENT_COLUMNS: &str = "idx, id, tenant, leaf";

/// An `audit_checkpoints` row (`tree_size, root, note`), on either backend.
pub(crate) fn decode_checkpoint<R: sqlx::Row>(row: &R) -> Result<StoredCheckpoint, AuditStoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a [u8]: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(StoredCheckpoint {
        tree_size: to_index(row.try_get("tree_size")?)?,
        root: to_hash(row.try_get::<&[u8], _>("root")?)?,
        note: row.try_get("note")?,
    })
}

/// An `audit_entries` row selected with [`EVENT_COLUMNS`], on either backend.
pub(crate) fn decode_event<R: sqlx::Row>(row: &R) -> Result<StoredEvent, AuditStoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Uuid: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Vec<u8>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(StoredEvent {
        index: to_index(row.try_get("idx")?)?,
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        leaf: row.try_get("leaf")?,
        pii: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(indexes: &[u64]) -> Vec<StoredEvent> {
        indexes
            .iter()
            .map(|&index| StoredEvent {
                index,
                id: Uuid::nil(),
                tenant: "t".into(),
                leaf: Vec::new(),
                pii: None,
            })
            .collect()
    }

    fn page(after: Option<u64>, before: Option<u64>, limit: u32) -> PageAfter {
        PageAfter {
            after,
            before,
            limit,
        }
    }

    #[test]
    fn a_short_page_covers_everything_below_the_head() {
        // Indexes 4..10 existed; only 5 and 7 matched.
        assert_eq!(
            read_through(&events(&[5, 7]), 10, page(Some(3), None, 10)),
            Some(9)
        );
        // Nothing matched at all: still covered up to the head.
        assert_eq!(read_through(&[], 10, page(Some(3), None, 10)), Some(9));
        // Rows appended between the size read and the page read are covered too.
        assert_eq!(
            read_through(&events(&[12]), 10, page(None, None, 10)),
            Some(12)
        );
    }

    #[test]
    fn a_full_page_covers_only_up_to_its_last_event() {
        assert_eq!(
            read_through(&events(&[5, 7]), 100, page(Some(3), None, 2)),
            Some(7)
        );
    }

    #[test]
    fn coverage_never_goes_below_after_nor_past_before() {
        // A replica behind the caller's position proves nothing new.
        assert_eq!(read_through(&[], 2, page(Some(6), None, 10)), Some(6));
        assert_eq!(read_through(&[], 0, page(None, None, 10)), None);
        assert_eq!(read_through(&[], 100, page(Some(3), Some(8), 10)), Some(7));
        assert_eq!(read_through(&[], 100, page(None, Some(0), 10)), None);
    }
}
