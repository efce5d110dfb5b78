//! The verifier's bulk reads: every leaf of a range in one flat buffer, and stored
//! hashes compared with expected ones where they are stored.
//!
//! `audit verify` reads the whole log. Read as sqlx rows, one decoded row object per
//! leaf and per stored hash cost several times the hashing, so these reads avoid
//! them: leaves land back to back in one buffer (on PostgreSQL through the binary
//! `COPY` stream, see [`super::pg_copy`]), and the expected hashes of a range go to
//! the database in one parameter, which answers with the number of stored hashes in
//! the range and the lowest index whose stored hash differs. The comparison is as
//! strict as reading the hashes back: every stored hash of the range is compared
//! byte for byte, and a missing one shows in the count.

use super::pg_copy::CopyReader;
use super::{AuditStore, AuditStoreError, to_db, to_index};
use crate::merkle::{HASH_LEN, Hash};
use futures_util::TryStreamExt;
use palisade_store::Database;
use sqlx::postgres::PgPoolCopyExt;
use sqlx::{PgPool, SqlitePool};

/// The leaves of a range, as stored, in index order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeafBlock {
    indexes: Vec<u64>,
    /// Every leaf's bytes, back to back.
    bytes: Vec<u8>,
    /// Where each leaf ends in `bytes`.
    ends: Vec<usize>,
}

impl LeafBlock {
    fn with_capacity(rows: usize) -> Self {
        Self {
            indexes: Vec::with_capacity(rows),
            // Typical canonical events are a few hundred bytes.
            bytes: Vec::with_capacity(rows * 256),
            ends: Vec::with_capacity(rows),
        }
    }

    /// Leaves of the given indexes, back to back in `bytes`, of the given lengths
    /// (one per index).
    fn from_packed(
        indexes: Vec<u64>,
        bytes: Vec<u8>,
        lengths: impl Iterator<Item = Option<usize>>,
    ) -> Result<Self, AuditStoreError> {
        let bad = || AuditStoreError::Corrupt("packed leaves do not add up".into());
        let mut ends = Vec::with_capacity(indexes.len());
        let mut at = 0usize;
        for length in lengths {
            at = at.checked_add(length.ok_or_else(bad)?).ok_or_else(bad)?;
            ends.push(at);
        }
        if at != bytes.len() || ends.len() != indexes.len() {
            return Err(bad());
        }
        Ok(Self {
            indexes,
            bytes,
            ends,
        })
    }

    /// The same rows ascending by index (a read without `ORDER BY` comes back in
    /// storage order, which is almost always ascending already).
    fn into_index_order(self) -> Self {
        if self.indexes.is_sorted() {
            return self;
        }
        let mut rows: Vec<(u64, &[u8])> = self.iter().collect();
        rows.sort_by_key(|row| row.0);
        let mut sorted = Self::with_capacity(rows.len());
        for (index, leaf) in rows {
            sorted.push(index, leaf);
        }
        sorted
    }

    fn push(&mut self, index: u64, leaf: &[u8]) {
        self.indexes.push(index);
        self.bytes.extend_from_slice(leaf);
        self.ends.push(self.bytes.len());
    }

    /// Rows read.
    pub fn len(&self) -> usize {
        self.indexes.len()
    }

    /// Bytes of all leaves together.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no row was read.
    pub fn is_empty(&self) -> bool {
        self.indexes.is_empty()
    }

    /// `(index, leaf bytes)` of each row, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        self.indexes
            .iter()
            .zip(starts.zip(self.ends.iter()))
            .map(|(&index, (start, &end))| (index, &self.bytes[start..end]))
    }
}

/// How the stored hashes of a range compare with the expected ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashComparison {
    /// Stored hashes in the range.
    pub stored: u64,
    /// The lowest index whose stored hash differs from the expected one.
    pub first_mismatch: Option<u64>,
}

impl HashComparison {
    /// Whether exactly `expected` hashes are stored and all of them match.
    pub fn all_match(&self, expected: usize) -> bool {
        self.first_mismatch.is_none() && usize::try_from(self.stored) == Ok(expected)
    }
}

impl AuditStore {
    /// The leaves with indexes in `[start, end)`, ascending, in one buffer: the
    /// verifier's read of the whole log.
    pub async fn leaf_block(&self, start: u64, end: u64) -> Result<LeafBlock, AuditStoreError> {
        match self.database() {
            Database::Sqlite(db) => sqlite_leaf_block(db.reader(), start, end).await,
            Database::Postgres(db) => {
                db.guard(
                    AuditStoreError::is_unavailable,
                    postgres_leaf_block(db.reader(), start, end),
                )
                .await
            }
        }
    }

    /// Compares the stored hashes of `level` at indexes `first..` with `expected`
    /// (one per index) inside the database, without reading them back.
    pub async fn compare_hashes(
        &self,
        level: u8,
        first: u64,
        expected: &[Hash],
    ) -> Result<HashComparison, AuditStoreError> {
        let end = u64::try_from(expected.len())
            .ok()
            .and_then(|n| first.checked_add(n))
            .ok_or_else(|| AuditStoreError::Corrupt("hash range beyond u64".into()))?;
        let packed = expected.concat();
        match self.database() {
            Database::Sqlite(db) => {
                sqlite_compare_hashes(db.reader(), level, first, end, packed).await
            }
            Database::Postgres(db) => {
                db.guard(
                    AuditStoreError::is_unavailable,
                    postgres_compare_hashes(db.reader(), level, first, end, packed),
                )
                .await
            }
        }
    }
}

impl AuditStore {
    /// Whether every run's stored hashes are exactly the expected ones. A run is
    /// `(level, first index, hashes)`, one hash per index from the first on. As many stored
    /// as expected in each run's range, and each equal. On PostgreSQL the runs of one
    /// verifier range (one per level) are compared by one query (see
    /// [`postgres_runs_match`]); elsewhere, and when a level repeats, run by run.
    pub async fn hashes_match(
        &self,
        runs: &[(u8, u64, Vec<Hash>)],
    ) -> Result<bool, AuditStoreError> {
        let mut levels: Vec<u8> = runs.iter().map(|r| r.0).collect();
        levels.sort_unstable();
        levels.dedup();
        match self.database() {
            Database::Postgres(db) if levels.len() == runs.len() && !runs.is_empty() => {
                db.guard(
                    AuditStoreError::is_unavailable,
                    postgres_runs_match(db.reader(), runs),
                )
                .await
            }
            _ => {
                for (level, first, hashes) in runs {
                    if !self
                        .compare_hashes(*level, *first, hashes)
                        .await?
                        .all_match(hashes.len())
                    {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        }
    }
}

fn comparison(stored: i64, first_mismatch: Option<i64>) -> Result<HashComparison, AuditStoreError> {
    Ok(HashComparison {
        stored: to_index(stored)?,
        first_mismatch: first_mismatch.map(to_index).transpose()?,
    })
}

async fn sqlite_leaf_block(
    pool: &SqlitePool,
    start: u64,
    end: u64,
) -> Result<LeafBlock, AuditStoreError> {
    // One row for the whole range: every row sqlx hands over costs a cross-thread
    // wake-up, which under load costs far more than the row. `group_concat` of a BLOB
    // keeps its bytes (the database encoding is UTF-8) and the CAST takes them back
    // as a BLOB. No `ORDER BY` inside the aggregates (it sorts, tripling the cost):
    // the indexes come along in the same pass, so the order is known, not assumed.
    let (indexes, bytes, lengths): (Option<String>, Option<Vec<u8>>, Option<String>) =
        sqlx::query_as(
            "SELECT group_concat(idx, ','), CAST(group_concat(leaf, '') AS BLOB), \
             group_concat(octet_length(leaf), ',') \
             FROM audit_entries WHERE idx >= ? AND idx < ?",
        )
        .bind(to_db(start)?)
        .bind(to_db(end)?)
        .fetch_one(pool)
        .await?;
    let numbers = |list: Option<String>| -> Result<Vec<u64>, AuditStoreError> {
        list.unwrap_or_default()
            .split(',')
            .filter(|n| !n.is_empty())
            .map(|n| {
                n.parse()
                    .map_err(|_| AuditStoreError::Corrupt(format!("packed number {n:?}")))
            })
            .collect()
    };
    let lengths = numbers(lengths)?
        .into_iter()
        .map(|n| usize::try_from(n).ok());
    Ok(
        LeafBlock::from_packed(numbers(indexes)?, bytes.unwrap_or_default(), lengths)?
            .into_index_order(),
    )
}

async fn sqlite_compare_hashes(
    pool: &SqlitePool,
    level: u8,
    first: u64,
    end: u64,
    packed: Vec<u8>,
) -> Result<HashComparison, AuditStoreError> {
    // `substr` of a BLOB counts bytes; `IS NOT` also flags a NULL or non-BLOB hash.
    let (stored, first_mismatch): (i64, Option<i64>) = sqlx::query_as(&format!(
        "SELECT count(*), min(CASE WHEN hash IS NOT substr(?4, (idx - ?2) * {HASH_LEN} + 1, {HASH_LEN}) THEN idx END) \
         FROM audit_hashes WHERE level = ?1 AND idx >= ?2 AND idx < ?3"
    ))
    .bind(i64::from(level))
    .bind(to_db(first)?)
    .bind(to_db(end)?)
    .bind(packed)
    .fetch_one(pool)
    .await?;
    comparison(stored, first_mismatch)
}

async fn postgres_leaf_block(
    pool: &PgPool,
    start: u64,
    end: u64,
) -> Result<LeafBlock, AuditStoreError> {
    // COPY takes no bind parameters; both bounds are integers formatted here. No
    // ORDER BY: on a table without statistics the planner sorts on disk, so rows
    // come in storage order and are put in index order here.
    let (start_db, end_db) = (to_db(start)?, to_db(end)?);
    let statement = format!(
        "COPY (SELECT idx, leaf FROM audit_entries WHERE idx >= {start_db} AND idx < {end_db}) \
         TO STDOUT (FORMAT binary)"
    );
    let mut stream = pool.copy_out_raw(&statement).await?;
    let mut block = LeafBlock::with_capacity(end.saturating_sub(start).min(1 << 20) as usize);
    let mut reader = CopyReader::new();
    let mut failed = None;
    // The stream is read to its end even after a bad tuple: dropping it half-way
    // would return the connection to the pool in the middle of the COPY.
    while let Some(message) = stream.try_next().await? {
        if failed.is_some() {
            continue;
        }
        let fed = reader.feed(&message, |fields| match fields {
            [Some(index), Some(leaf)] => {
                let index = <[u8; 8]>::try_from(*index)
                    .map_err(|_| AuditStoreError::Corrupt("idx is not 8 bytes".into()))?;
                block.push(to_index(i64::from_be_bytes(index))?, leaf);
                Ok(())
            }
            _ => Err(AuditStoreError::Corrupt(
                "leaf row is not (idx, leaf)".into(),
            )),
        });
        failed = fed.err();
    }
    if let Some(e) = failed {
        return Err(e);
    }
    reader.finish()?;
    Ok(block.into_index_order())
}

async fn postgres_compare_hashes(
    pool: &PgPool,
    level: u8,
    first: u64,
    end: u64,
    packed: Vec<u8>,
) -> Result<HashComparison, AuditStoreError> {
    let (stored, first_mismatch): (i64, Option<i64>) = sqlx::query_as(&format!(
        "SELECT count(*), min(idx) FILTER (WHERE hash IS DISTINCT FROM substring($4 FROM ((idx - $2) * {HASH_LEN} + 1)::int FOR {HASH_LEN})) \
         FROM audit_hashes WHERE level = $1 AND idx >= $2 AND idx < $3"
    ))
    .bind(i16::from(level))
    .bind(to_db(first)?)
    .bind(to_db(end)?)
    .bind(packed)
    .fetch_one(pool)
    .await?;
    comparison(stored, first_mismatch)
}

/// One query for runs on distinct levels. The hashes of all levels over one range of
/// leaves were written by the same appends, so they share heap pages: compared level
/// by level, each query visits those pages again (about 700 pages per 32,768 leaves,
/// 16 times); one bitmap scan over the OR of the ranges visits them once, which
/// halved the server time of the comparisons (30 to 15 ms per range, measured with
/// psql on the 1M bench store). The expected hashes go packed in one parameter, and
/// the packed position of a stored hash is `offset[level] + idx`.
///
/// The count is compared in total: the ranges are disjoint and `(level, idx)` is the
/// primary key, so no run can hold more rows than expected, and a total equal to the
/// expected one means every run has all of its rows.
async fn postgres_runs_match(
    pool: &PgPool,
    runs: &[(u8, u64, Vec<Hash>)],
) -> Result<bool, AuditStoreError> {
    let top = runs.iter().map(|r| usize::from(r.0)).max().unwrap_or(0);
    let mut offsets: Vec<Option<i64>> = vec![None; top + 1];
    let mut packed = Vec::with_capacity(runs.iter().map(|r| r.2.len()).sum::<usize>() * HASH_LEN);
    let mut expected: i64 = 0;
    let mut ranges = Vec::with_capacity(runs.len());
    for (level, first, hashes) in runs {
        let at = i64::try_from(packed.len() / HASH_LEN)
            .map_err(|_| AuditStoreError::Corrupt("hash runs beyond i64".into()))?;
        offsets[usize::from(*level)] = Some(at - to_db(*first)?);
        let count = u64::try_from(hashes.len())
            .map_err(|_| AuditStoreError::Corrupt("hash run beyond u64".into()))?;
        let end = first
            .checked_add(count)
            .ok_or_else(|| AuditStoreError::Corrupt("hash range beyond u64".into()))?;
        ranges.push((i16::from(*level), to_db(*first)?, to_db(end)?));
        expected += to_db(count)?;
        for hash in hashes {
            packed.extend_from_slice(hash);
        }
    }
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "SELECT count(*), bool_or(hash IS DISTINCT FROM substring(",
    );
    q.push_bind(packed);
    q.push(" FROM (((");
    q.push_bind(offsets);
    q.push(format_args!(
        "::int8[])[level + 1] + idx) * {HASH_LEN} + 1)::int FOR {HASH_LEN})) FROM audit_hashes WHERE "
    ));
    for (n, (level, start, end)) in ranges.into_iter().enumerate() {
        if n > 0 {
            q.push(" OR ");
        }
        q.push("(level = ").push_bind(level);
        q.push(" AND idx >= ").push_bind(start);
        q.push(" AND idx < ").push_bind(end).push(")");
    }
    // Parallel workers for a scan of a few hundred pages cost more to start than
    // they save, and the verifier already keeps the cores busy with its own tasks.
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL max_parallel_workers_per_gather = 0")
        .execute(&mut *tx)
        .await?;
    let (stored, mismatch): (i64, Option<bool>) = q.build_query_as().fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(stored == expected && mismatch != Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block(rows: &[(u64, Vec<u8>)]) -> LeafBlock {
        let mut block = LeafBlock::default();
        for (index, leaf) in rows {
            block.push(*index, leaf);
        }
        block
    }

    proptest! {
        /// Rows read in any order come out as if read with ORDER BY idx.
        #[test]
        fn index_order_is_the_sorted_order(
            leaves in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..40),
            seed in any::<u64>(),
        ) {
            let sorted: Vec<(u64, Vec<u8>)> =
                leaves.into_iter().enumerate().map(|(i, l)| (i as u64 * 3, l)).collect();
            let mut shuffled = sorted.clone();
            // A deterministic shuffle from the seed.
            let mut state = seed;
            for i in (1..shuffled.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (state >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(block(&shuffled).into_index_order(), block(&sorted));
        }

        /// Packed bytes with their lengths are the same block as rows pushed one by one.
        #[test]
        fn packed_leaves_are_the_same_rows(
            leaves in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..40),
        ) {
            let rows: Vec<(u64, Vec<u8>)> =
                leaves.iter().cloned().enumerate().map(|(i, l)| (i as u64 + 5, l)).collect();
            let packed = LeafBlock::from_packed(
                rows.iter().map(|r| r.0).collect(),
                leaves.concat(),
                leaves.iter().map(|l| Some(l.len())),
            );
            prop_assert_eq!(packed.ok(), Some(block(&rows)));
        }
    }

    #[test]
    fn packed_leaves_that_do_not_add_up_are_refused() {
        let packed = |indexes: Vec<u64>, bytes: &[u8], lengths: &[Option<usize>]| {
            LeafBlock::from_packed(indexes, bytes.to_vec(), lengths.iter().copied()).is_ok()
        };
        assert!(packed(vec![0, 1], b"abc", &[Some(1), Some(2)]));
        assert!(!packed(vec![0, 1], b"abcd", &[Some(1), Some(2)]));
        assert!(!packed(vec![0, 1], b"ab", &[Some(1), Some(2)]));
        assert!(!packed(vec![0, 1, 2], b"abc", &[Some(1), Some(2)]));
        assert!(!packed(vec![0, 1], b"abc", &[Some(1), None]));
        assert!(!packed(vec![0], b"", &[Some(usize::MAX), Some(1)]));
    }
}
