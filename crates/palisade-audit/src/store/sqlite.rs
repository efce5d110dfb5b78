//! The audit store on the embedded SQLite file: multi-row inserts, chunked under
//! SQLite's bound-parameter limit, on the single writer connection (which makes the
//! writer the sequencer).

use super::hash_runs::{hash_in_run, runs_of, tile_start};
use super::{
    Appended, AscendingPage, AuditStoreError, EVENT_COLUMNS, EventFilter, FilteredRead, Order,
    Page, PageAfter, StoredCheckpoint, StoredEvent, decode_checkpoint, decode_event, dedupe,
    maybe_stored, read_through, to_db, to_index,
};
use crate::checkpoint::{Checkpoint, NoteSigner};
use crate::event::PreparedEvent;
use crate::merkle::{Frontier, HASH_LEN, Hash, NodeId, leaf_hash, root_nodes};
use palisade_store::SqliteDb;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use std::collections::HashMap;
use uuid::Uuid;

/// Rows per multi-row INSERT: 11 columns × 2,900 stays under SQLite's 32,766
/// parameters, so a batch of the default 1,000 is one statement (each costs a round
/// trip to the connection's thread).
const ENTRY_CHUNK: usize = 2900;
/// Hash runs per INSERT (3 columns each).
const RUN_CHUNK: usize = 5000;
/// Nodes per read of stored hashes: one `UNION ALL` arm each, under SQLite's limit of
/// 500 arms in a compound `SELECT`.
const NODES_PER_READ: usize = 400;
/// Ids per `IN (...)` lookup.
const ID_CHUNK: usize = 5000;

pub(super) async fn append(
    db: &SqliteDb,
    batch: &[PreparedEvent],
    signer: &NoteSigner,
    origin: &str,
    now_ms: i64,
) -> Result<Appended, AuditStoreError> {
    let (unique, positions) = dedupe(batch);
    // The one writer connection serializes appends: it is the sequencer.
    let mut tx = db.begin_write().await?;
    let (size, greatest) = size_and_greatest_id_in(&mut tx).await?;
    let mut indexes: HashMap<Uuid, u64> = HashMap::new();
    for chunk in maybe_stored(&unique, greatest).chunks(ID_CHUNK) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT id, idx FROM audit_entries WHERE id IN (");
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        q.push(")");
        for row in q.build().fetch_all(&mut *tx).await? {
            indexes.insert(row.try_get("id")?, to_index(row.try_get("idx")?)?);
        }
    }
    let fresh: Vec<&PreparedEvent> = unique
        .iter()
        .copied()
        .filter(|e| !indexes.contains_key(&e.id))
        .collect();
    let mut tree_size = size;
    if !fresh.is_empty() {
        let edge = root_nodes(size);
        let edge_hashes = read_hashes_in(&mut tx, &edge).await?;
        let mut frontier = Frontier::from_parts(size, edge_hashes)?;
        let leaf_hashes: Vec<Hash> = fresh.iter().map(|e| leaf_hash(&e.leaf)).collect();
        let nodes = frontier.append(&leaf_hashes)?;
        for (offset, event) in fresh.iter().enumerate() {
            indexes.insert(event.id, size + offset as u64);
        }
        tree_size = frontier.size();
        let checkpoint = Checkpoint {
            origin: origin.to_owned(),
            size: tree_size,
            root: frontier.root(),
        };
        let note = checkpoint.sign(signer)?;
        // Every insert of the batch goes in one multi-statement query, one round trip
        // to the connection's thread instead of one a statement (about 0.25 ms each
        // in the append benchmark); sqlx binds each statement's `?`s in turn.
        //
        // The entries and hashes say `OR FAIL`: with the default `ABORT`, SQLite
        // copies every page a multi-row statement first touches into a statement
        // journal so that it can undo just that statement (3.7% of the append's
        // CPU). A conflict here means a broken invariant, and the error drops the
        // whole transaction anyway.
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("");
        for (n, chunk) in fresh.chunks(ENTRY_CHUNK).enumerate() {
            let first = to_db(size + (n * ENTRY_CHUNK) as u64)?;
            q.push(
                "INSERT OR FAIL INTO audit_entries (idx, id, tenant, action, actor_id, actor_type, resource_type, resource_id, outcome, received_at_ms, leaf) ",
            );
            q.push_values(chunk.iter().enumerate(), |mut row, (i, e)| {
                row.push_bind(first + i as i64)
                    .push_bind(e.id)
                    .push_bind(e.tenant.as_str())
                    .push_bind(e.action.as_str())
                    .push_bind(e.actor_id.as_str())
                    .push_bind(e.actor_type.as_deref())
                    .push_bind(e.resource_type.as_deref())
                    .push_bind(e.resource_id.as_deref())
                    .push_bind(e.outcome.as_str())
                    .push_bind(e.received_at_ms)
                    .push_bind(e.leaf.as_slice());
            });
            q.push("; ");
        }
        let runs = runs_of(&nodes);
        for chunk in runs.chunks(RUN_CHUNK) {
            q.push("INSERT OR FAIL INTO audit_hash_runs (level, first_idx, hashes) ");
            let mut bad_index = None;
            q.push_values(chunk, |mut row, run| {
                let first = to_db(run.first).unwrap_or_else(|_| {
                    bad_index = Some(run.first);
                    -1
                });
                row.push_bind(i64::from(run.level))
                    .push_bind(first)
                    .push_bind(run.hashes.as_slice());
            });
            if let Some(index) = bad_index {
                return Err(AuditStoreError::Corrupt(format!(
                    "index {index} beyond i64"
                )));
            }
            q.push("; ");
        }
        q.push("INSERT INTO audit_checkpoints (tree_size, root, note, created_at_ms) VALUES (")
            .push_bind(to_db(tree_size)?)
            .push(", ")
            .push_bind(&checkpoint.root[..])
            .push(", ")
            .push_bind(note)
            .push(", ")
            .push_bind(now_ms)
            .push(")");
        q.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    let entries = positions
        .iter()
        .map(|&slot| {
            let id = unique[slot].id;
            (id, indexes.get(&id).copied().unwrap_or(u64::MAX))
        })
        .collect();
    Ok(Appended { entries, tree_size })
}

async fn size_in(conn: &mut SqliteConnection) -> Result<u64, AuditStoreError> {
    let size: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries")
        .fetch_one(conn)
        .await?;
    to_index(size)
}

/// The tree size and the greatest event id stored (each subquery is one index
/// seek; both aggregates in one `SELECT` would scan the table).
async fn size_and_greatest_id_in(
    conn: &mut SqliteConnection,
) -> Result<(u64, Option<Uuid>), AuditStoreError> {
    let (size, greatest): (i64, Option<Uuid>) = sqlx::query_as(
        "SELECT (SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries), \
         (SELECT MAX(id) FROM audit_entries)",
    )
    .fetch_one(conn)
    .await?;
    Ok((to_index(size)?, greatest))
}

pub(super) async fn tree_size(pool: &SqlitePool) -> Result<u64, AuditStoreError> {
    let mut conn = pool.acquire().await?;
    size_in(&mut conn).await
}

pub(super) async fn latest_checkpoint(
    pool: &SqlitePool,
) -> Result<Option<StoredCheckpoint>, AuditStoreError> {
    let row = sqlx::query(
        "SELECT tree_size, root, note FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(decode_checkpoint).transpose()
}

pub(super) async fn read_hashes(
    pool: &SqlitePool,
    ids: &[NodeId],
) -> Result<Vec<Hash>, AuditStoreError> {
    let mut conn = pool.acquire().await?;
    read_hashes_in(&mut conn, ids).await
}

async fn read_hashes_map_in(
    conn: &mut SqliteConnection,
    ids: &[NodeId],
) -> Result<HashMap<NodeId, Hash>, AuditStoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut found = HashMap::with_capacity(ids.len());
    for (c, chunk) in ids.chunks(NODES_PER_READ).enumerate() {
        read_hashes_chunk(conn, chunk, c * NODES_PER_READ, ids, &mut found).await?;
    }
    Ok(found)
}

/// Reads the nodes `chunk`, which start at `offset` in `ids`, into `found`.
async fn read_hashes_chunk(
    conn: &mut SqliteConnection,
    chunk: &[NodeId],
    offset: usize,
    ids: &[NodeId],
    found: &mut HashMap<NodeId, Hash>,
) -> Result<(), AuditStoreError> {
    // Per node, the last run of its level starting in its tile at or before it, and
    // the node's 32 bytes of it (`substr` of a BLOB counts bytes).
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("");
    for (i, id) in chunk.iter().enumerate() {
        let n = offset + i;
        if i > 0 {
            q.push(" UNION ALL ");
        }
        let index = to_db(id.index)?;
        q.push("SELECT * FROM (SELECT ")
            .push_bind(n as i64)
            .push(format_args!(
                " AS n, first_idx, length(hashes) AS len, substr(hashes, ("
            ))
            .push_bind(index)
            .push(format_args!(
                " - first_idx) * {HASH_LEN} + 1, {HASH_LEN}) AS hash FROM audit_hash_runs WHERE level = "
            ))
            .push_bind(i64::from(id.level))
            .push(" AND first_idx >= ")
            .push_bind(to_db(tile_start(id.index))?)
            .push(" AND first_idx <= ")
            .push_bind(index)
            .push(" ORDER BY first_idx DESC LIMIT 1)");
    }
    let rows = q.build().fetch_all(conn).await?;
    for row in rows {
        let n: i64 = row.try_get("n")?;
        let Some(id) = usize::try_from(n).ok().and_then(|n| ids.get(n)) else {
            return Err(AuditStoreError::Corrupt(format!("node {n} not asked for")));
        };
        let first = to_index(row.try_get("first_idx")?)?;
        let len = to_index(row.try_get("len")?)?;
        if let Some(hash) = hash_in_run(id.index, first, len, row.try_get::<&[u8], _>("hash")?)? {
            found.insert(*id, hash);
        }
    }
    Ok(())
}

/// The stored runs of each `(level, start, end)`: those starting in
/// `[tile_start(start), end)`, as `(level, first index, hashes)`, by level and index.
pub(super) async fn stored_runs(
    pool: &SqlitePool,
    ranges: &[(u8, u64, u64)],
) -> Result<Vec<(u8, u64, Vec<u8>)>, AuditStoreError> {
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let mut q: QueryBuilder<Sqlite> =
        QueryBuilder::new("SELECT level, first_idx, hashes FROM audit_hash_runs WHERE ");
    for (n, (level, start, end)) in ranges.iter().enumerate() {
        if n > 0 {
            q.push(" OR ");
        }
        q.push("(level = ")
            .push_bind(i64::from(*level))
            .push(" AND first_idx >= ")
            .push_bind(to_db(tile_start(*start))?)
            .push(" AND first_idx < ")
            .push_bind(to_db(*end)?)
            .push(")");
    }
    q.push(" ORDER BY level, first_idx");
    let rows = q.build().fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            let level: i64 = row.try_get("level")?;
            let level = u8::try_from(level)
                .map_err(|_| AuditStoreError::Corrupt(format!("level {level}")))?;
            Ok((
                level,
                to_index(row.try_get("first_idx")?)?,
                row.try_get("hashes")?,
            ))
        })
        .collect()
}

async fn read_hashes_in(
    conn: &mut SqliteConnection,
    ids: &[NodeId],
) -> Result<Vec<Hash>, AuditStoreError> {
    let found = read_hashes_map_in(conn, ids).await?;
    ids.iter()
        .map(|id| {
            found
                .get(id)
                .copied()
                .ok_or_else(|| AuditStoreError::Corrupt(format!("missing stored hash {id}")))
        })
        .collect()
}

pub(super) async fn checkpoints(
    pool: &SqlitePool,
) -> Result<Vec<StoredCheckpoint>, AuditStoreError> {
    let rows =
        sqlx::query("SELECT tree_size, root, note FROM audit_checkpoints ORDER BY tree_size")
            .fetch_all(pool)
            .await?;
    rows.iter().map(decode_checkpoint).collect()
}

pub(super) async fn events_range(
    pool: &SqlitePool,
    start: u64,
    end: u64,
) -> Result<Vec<StoredEvent>, AuditStoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_entries WHERE idx >= ? AND idx < ? ORDER BY idx"
    ))
    .bind(to_db(start)?)
    .bind(to_db(end)?)
    .fetch_all(pool)
    .await?;
    rows.iter().map(decode_event).collect()
}

pub(super) async fn event_by_id(
    pool: &SqlitePool,
    id: Uuid,
) -> Result<Option<StoredEvent>, AuditStoreError> {
    let row = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_entries WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(decode_event).transpose()
}

pub(super) async fn query(
    pool: &SqlitePool,
    filter: &EventFilter,
    page: Page,
) -> Result<Vec<StoredEvent>, AuditStoreError> {
    let mut conn = pool.acquire().await?;
    let head = size_in(&mut conn).await?;
    let read = FilteredRead::new(
        filter,
        None,
        page.before,
        Order::NewestFirst,
        page.limit,
        head,
    );
    read_filtered(&mut conn, read).await
}

pub(super) async fn query_after(
    pool: &SqlitePool,
    filter: &EventFilter,
    page: PageAfter,
) -> Result<AscendingPage, AuditStoreError> {
    // One connection for both reads: the size read first bounds what the page read
    // is guaranteed to see (see `read_through`).
    let mut conn = pool.acquire().await?;
    let head = size_in(&mut conn).await?;
    let read = FilteredRead::new(
        filter,
        page.after,
        page.before,
        Order::OldestFirst,
        page.limit,
        head,
    );
    let events = read_filtered(&mut conn, read).await?;
    let through = read_through(&events, head, page);
    Ok(AscendingPage { events, through })
}

/// Runs the statements of a filtered read in turn on one connection.
pub(super) async fn read_filtered(
    conn: &mut SqliteConnection,
    mut read: FilteredRead<'_>,
) -> Result<Vec<StoredEvent>, AuditStoreError> {
    let mut events = Vec::new();
    while let Some(mut q) = read.next_statement::<Sqlite>(events.len())? {
        for row in q.build().fetch_all(&mut *conn).await? {
            events.push(decode_event(&row)?);
        }
    }
    Ok(events)
}

pub(super) async fn leaves_range(
    pool: &SqlitePool,
    start: u64,
    end: u64,
) -> Result<Vec<(u64, Vec<u8>)>, AuditStoreError> {
    let rows =
        sqlx::query("SELECT idx, leaf FROM audit_entries WHERE idx >= ? AND idx < ? ORDER BY idx")
            .bind(to_db(start)?)
            .bind(to_db(end)?)
            .fetch_all(pool)
            .await?;
    rows.iter()
        .map(|r| Ok((to_index(r.try_get("idx")?)?, r.try_get("leaf")?)))
        .collect()
}
