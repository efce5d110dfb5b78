//! The audit store on PostgreSQL: bulk inserts through binary `COPY` (one stream per
//! table per batch, see [`super::pg_copy`]) under an advisory transaction lock.

use super::hash_runs::{RUN_SPAN, hash_in_run, runs_of, tile_start};
use super::pg_copy::CopyWriter;
use super::{
    Appended, AscendingPage, AuditStoreError, EVENT_COLUMNS, EventFilter, FilteredRead, Order,
    Page, PageAfter, StoredCheckpoint, StoredEvent, decode_checkpoint, decode_event, dedupe,
    maybe_stored, read_through, to_db, to_index,
};
use crate::checkpoint::{Checkpoint, NoteSigner};
use crate::event::PreparedEvent;
use crate::merkle::{Frontier, HASH_LEN, Hash, NodeId, leaf_hash, root_nodes};
use palisade_store::PostgresDb;
use sqlx::{PgConnection, PgPool, Postgres, Row};
use std::collections::HashMap;
use uuid::Uuid;

/// Advisory lock id of the sequencer ("PALISADE" in ASCII).
const SEQUENCER_LOCK: i64 = 0x5041_4C49_5341_4445;

pub(super) async fn append(
    db: &PostgresDb,
    batch: &[PreparedEvent],
    signer: &NoteSigner,
    origin: &str,
    now_ms: i64,
) -> Result<Appended, AuditStoreError> {
    let (unique, positions) = dedupe(batch);
    let mut tx = db.primary().begin().await?;
    // Whoever holds this lock is the sequencer for the length of the transaction;
    // if its process dies, PostgreSQL releases the lock and the next appender takes over.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SEQUENCER_LOCK)
        .execute(&mut *tx)
        .await?;
    let (size, mut indexes) = size_and_known_in(&mut tx, &unique).await?;
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
        insert_entries(&mut tx, &fresh, size).await?;
        insert_nodes(&mut tx, &nodes).await?;
        tree_size = frontier.size();
        let checkpoint = Checkpoint {
            origin: origin.to_owned(),
            size: tree_size,
            root: frontier.root(),
        };
        sqlx::query("INSERT INTO audit_checkpoints (tree_size, root, note, created_at_ms) VALUES ($1, $2, $3, $4)")
            .bind(to_db(tree_size)?)
            .bind(&checkpoint.root[..])
            .bind(checkpoint.sign(signer)?)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
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

/// The tree size and the indexes of those of `unique` already in the log. Read
/// after the sequencer lock is taken, by later statements, so that their snapshots
/// see every earlier append. A batch of fresh ids (above the greatest stored, see
/// [`maybe_stored`]) takes one round trip; both subqueries read one end of an index
/// (PostgreSQL 15 has no `max(uuid)`).
async fn size_and_known_in(
    conn: &mut PgConnection,
    unique: &[&PreparedEvent],
) -> Result<(u64, HashMap<Uuid, u64>), AuditStoreError> {
    let (size, greatest): (i64, Option<Uuid>) = sqlx::query_as(
        "SELECT (SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries), \
             (SELECT id FROM audit_entries ORDER BY id DESC LIMIT 1)",
    )
    .fetch_one(&mut *conn)
    .await?;
    let candidates = maybe_stored(unique, greatest);
    let mut known = HashMap::with_capacity(candidates.len());
    if !candidates.is_empty() {
        let rows: Vec<(Uuid, i64)> =
            sqlx::query_as("SELECT id, idx FROM audit_entries WHERE id = ANY($1)")
                .bind(&candidates)
                .fetch_all(conn)
                .await?;
        for (id, index) in rows {
            known.insert(id, to_index(index)?);
        }
    }
    Ok((to_index(size)?, known))
}

async fn size_in(conn: &mut PgConnection) -> Result<u64, AuditStoreError> {
    let size: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries")
        .fetch_one(conn)
        .await?;
    to_index(size)
}

/// Sends one binary copy stream to `statement`, a `COPY ... FROM STDIN (FORMAT
/// binary)`. The stream is written in full before the COPY starts, so an error while
/// writing leaves no half-sent COPY behind.
async fn copy_in(
    tx: &mut PgConnection,
    statement: &str,
    stream: Vec<u8>,
) -> Result<(), AuditStoreError> {
    let mut copy = tx.copy_in_raw(statement).await?;
    copy.send(stream).await?;
    copy.finish().await?;
    Ok(())
}

async fn insert_entries(
    tx: &mut PgConnection,
    events: &[&PreparedEvent],
    first: u64,
) -> Result<(), AuditStoreError> {
    let first = to_db(first)?;
    // Fixed fields and lengths take 110 bytes; the short texts about as much again.
    let capacity = events.iter().map(|e| e.leaf.len() + 256).sum();
    let mut w = CopyWriter::new(capacity);
    for (idx, e) in (first..).zip(events) {
        w.tuple(11);
        w.int8(idx);
        w.uuid(e.id);
        w.bytes(Some(e.tenant.as_str().as_bytes()))?;
        w.bytes(Some(e.action.as_bytes()))?;
        w.bytes(Some(e.actor_id.as_bytes()))?;
        w.bytes(e.actor_type.as_deref().map(str::as_bytes))?;
        w.bytes(e.resource_type.as_deref().map(str::as_bytes))?;
        w.bytes(e.resource_id.as_deref().map(str::as_bytes))?;
        w.bytes(Some(e.outcome.as_str().as_bytes()))?;
        w.int8(e.received_at_ms);
        w.bytes(Some(&e.leaf))?;
    }
    copy_in(
        tx,
        "COPY audit_entries (idx, id, tenant, action, actor_id, actor_type, resource_type, resource_id, outcome, received_at_ms, leaf) \
         FROM STDIN (FORMAT binary)",
        w.finish(),
    )
    .await
}

async fn insert_nodes(
    tx: &mut PgConnection,
    nodes: &[(NodeId, Hash)],
) -> Result<(), AuditStoreError> {
    let runs = runs_of(nodes);
    // Per row: field count 2, level 6, first index 12, hashes 4 + 32 a node.
    let mut w = CopyWriter::new(runs.len() * 20 + nodes.len() * HASH_LEN);
    for run in &runs {
        w.tuple(3);
        w.int2(i16::from(run.level));
        w.int8(to_db(run.first)?);
        w.bytes(Some(&run.hashes))?;
    }
    copy_in(
        tx,
        "COPY audit_hash_runs (level, first_idx, hashes) FROM STDIN (FORMAT binary)",
        w.finish(),
    )
    .await
}

pub(super) async fn tree_size(pool: &PgPool) -> Result<u64, AuditStoreError> {
    let mut conn = pool.acquire().await?;
    size_in(&mut conn).await
}

pub(super) async fn latest_checkpoint(
    pool: &PgPool,
) -> Result<Option<StoredCheckpoint>, AuditStoreError> {
    let row = sqlx::query(
        "SELECT tree_size, root, note FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(decode_checkpoint).transpose()
}

pub(super) async fn read_hashes(
    pool: &PgPool,
    ids: &[NodeId],
) -> Result<Vec<Hash>, AuditStoreError> {
    let mut conn = pool.acquire().await?;
    read_hashes_in(&mut conn, ids).await
}

async fn read_hashes_map_in(
    conn: &mut PgConnection,
    ids: &[NodeId],
) -> Result<HashMap<NodeId, Hash>, AuditStoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let levels: Vec<i16> = ids.iter().map(|id| i16::from(id.level)).collect();
    let indexes = ids
        .iter()
        .map(|id| to_db(id.index))
        .collect::<Result<Vec<_>, _>>()?;
    // Per node, the last run of its level starting in its tile at or before it, and
    // the node's 32 bytes of it (out of line and uncompressed, so only that slice is
    // fetched).
    let rows = sqlx::query(&format!(
        "SELECT want.n, r.first_idx, octet_length(r.hashes) AS len, \
         substring(r.hashes FROM ((want.idx - r.first_idx) * {HASH_LEN} + 1)::int FOR {HASH_LEN}) AS hash \
         FROM UNNEST($1::smallint[], $2::bigint[]) WITH ORDINALITY AS want(level, idx, n) \
         CROSS JOIN LATERAL (SELECT first_idx, hashes FROM audit_hash_runs \
             WHERE level = want.level AND first_idx <= want.idx \
             AND first_idx >= want.idx - want.idx % {RUN_SPAN} \
             ORDER BY first_idx DESC LIMIT 1) r"
    ))
    .bind(&levels)
    .bind(&indexes)
    .fetch_all(conn)
    .await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        let n: i64 = row.try_get("n")?;
        let Some(id) = usize::try_from(n - 1).ok().and_then(|n| ids.get(n)) else {
            return Err(AuditStoreError::Corrupt(format!("node {n} not asked for")));
        };
        let first = to_index(row.try_get("first_idx")?)?;
        let len = to_index(i64::from(row.try_get::<i32, _>("len")?))?;
        if let Some(hash) = hash_in_run(id.index, first, len, row.try_get::<&[u8], _>("hash")?)? {
            found.insert(*id, hash);
        }
    }
    Ok(found)
}

/// The stored runs of each `(level, start, end)`: those starting in
/// `[tile_start(start), end)`, as `(level, first index, hashes)`, by level and index.
pub(super) async fn stored_runs(
    pool: &PgPool,
    ranges: &[(u8, u64, u64)],
) -> Result<Vec<(u8, u64, Vec<u8>)>, AuditStoreError> {
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let levels: Vec<i16> = ranges.iter().map(|r| i16::from(r.0)).collect();
    let starts = ranges
        .iter()
        .map(|r| to_db(tile_start(r.1)))
        .collect::<Result<Vec<_>, _>>()?;
    let ends = ranges
        .iter()
        .map(|r| to_db(r.2))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows: Vec<(i16, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT r.level, r.first_idx, r.hashes \
         FROM UNNEST($1::smallint[], $2::bigint[], $3::bigint[]) AS want(level, start, stop) \
         JOIN audit_hash_runs r ON r.level = want.level \
             AND r.first_idx >= want.start AND r.first_idx < want.stop \
         ORDER BY r.level, r.first_idx",
    )
    .bind(&levels)
    .bind(&starts)
    .bind(&ends)
    .fetch_all(pool)
    .await?;
    // A run in two of the ranges comes once per range; `(level, first_idx)` is the key.
    rows.dedup_by_key(|r| (r.0, r.1));
    rows.into_iter()
        .map(|(level, first, hashes)| {
            let level = u8::try_from(level)
                .map_err(|_| AuditStoreError::Corrupt(format!("level {level}")))?;
            Ok((level, to_index(first)?, hashes))
        })
        .collect()
}

async fn read_hashes_in(
    conn: &mut PgConnection,
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

pub(super) async fn checkpoints(pool: &PgPool) -> Result<Vec<StoredCheckpoint>, AuditStoreError> {
    let rows =
        sqlx::query("SELECT tree_size, root, note FROM audit_checkpoints ORDER BY tree_size")
            .fetch_all(pool)
            .await?;
    rows.iter().map(decode_checkpoint).collect()
}

pub(super) async fn events_range(
    pool: &PgPool,
    start: u64,
    end: u64,
) -> Result<Vec<StoredEvent>, AuditStoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx"
    ))
    .bind(to_db(start)?)
    .bind(to_db(end)?)
    .fetch_all(pool)
    .await?;
    rows.iter().map(decode_event).collect()
}

pub(super) async fn event_by_id(
    pool: &PgPool,
    id: Uuid,
) -> Result<Option<StoredEvent>, AuditStoreError> {
    let row = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_entries WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(decode_event).transpose()
}

pub(super) async fn query(
    pool: &PgPool,
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
    pool: &PgPool,
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
    conn: &mut PgConnection,
    mut read: FilteredRead<'_>,
) -> Result<Vec<StoredEvent>, AuditStoreError> {
    let mut events = Vec::new();
    while let Some(mut q) = read.next_statement::<Postgres>(events.len())? {
        for row in q.build().fetch_all(&mut *conn).await? {
            events.push(decode_event(&row)?);
        }
    }
    Ok(events)
}

pub(super) async fn leaves_range(
    pool: &PgPool,
    start: u64,
    end: u64,
) -> Result<Vec<(u64, Vec<u8>)>, AuditStoreError> {
    let rows = sqlx::query(
        "SELECT idx, leaf FROM audit_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
    )
    .bind(to_db(start)?)
    .bind(to_db(end)?)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((to_index(r.try_get("idx")?)?, r.try_get("leaf")?)))
        .collect()
}
