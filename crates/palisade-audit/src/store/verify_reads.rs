//! The verifier's bulk reads: every leaf of a range in one flat buffer, and the
//! stored hashes of a range compared with the expected ones.
//!
//! `audit verify` reads the whole log. Read as sqlx rows, one decoded row object per
//! leaf cost several times the hashing, so leaves land back to back in one buffer (on
//! PostgreSQL through the binary `COPY` stream, see [`super::pg_copy`]). Stored hashes
//! come as their runs (see [`super::hash_runs`]), a few rows per range of every
//! level, in one query per verifier range, and are compared here byte for byte: the
//! comparison counts the stored hashes of the range and finds the lowest index whose
//! stored hash differs, so a missing or extra one shows in the count.

use super::hash_runs::expand;
use super::pg_copy::CopyReader;
use super::{AuditStore, AuditStoreError, to_db, to_index};
use crate::merkle::Hash;
use futures_util::TryStreamExt;
use palisade_store::Database;
use sqlx::postgres::PgPoolCopyExt;
use sqlx::{PgPool, SqlitePool};
use std::collections::BTreeMap;

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
    /// (one per index).
    pub async fn compare_hashes(
        &self,
        level: u8,
        first: u64,
        expected: &[Hash],
    ) -> Result<HashComparison, AuditStoreError> {
        let end = range_end(first, expected)?;
        let stored = self.stored_runs(&[(level, first, end)]).await?;
        let runs: Vec<(u64, Vec<u8>)> = stored.into_iter().map(|r| (r.1, r.2)).collect();
        compare(&runs, first, expected)
    }

    /// Whether every run's stored hashes are exactly the expected ones. A run is
    /// `(level, first index, hashes)`, one hash per index from the first on: as many
    /// stored as expected in each run's range, and each equal. The stored runs of all
    /// of them come in one query (the verifier asks for one range of every level at a
    /// time), then are compared here.
    pub async fn hashes_match(
        &self,
        runs: &[(u8, u64, Vec<Hash>)],
    ) -> Result<bool, AuditStoreError> {
        let ranges = runs
            .iter()
            .map(|(level, first, hashes)| Ok((*level, *first, range_end(*first, hashes)?)))
            .collect::<Result<Vec<_>, AuditStoreError>>()?;
        let mut by_level: BTreeMap<u8, Vec<(u64, Vec<u8>)>> = BTreeMap::new();
        for (level, first, hashes) in self.stored_runs(&ranges).await? {
            by_level.entry(level).or_default().push((first, hashes));
        }
        for (level, first, hashes) in runs {
            let stored = by_level.get(level).map_or(&[][..], Vec::as_slice);
            if !compare(stored, *first, hashes)?.all_match(hashes.len()) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The end of the range of `expected` hashes from `first`.
fn range_end(first: u64, expected: &[Hash]) -> Result<u64, AuditStoreError> {
    u64::try_from(expected.len())
        .ok()
        .and_then(|n| first.checked_add(n))
        .ok_or_else(|| AuditStoreError::Corrupt("hash range beyond u64".into()))
}

/// How the hashes that `runs` (of one level) hold in the range of `expected` compare
/// with it.
fn compare(
    runs: &[(u64, Vec<u8>)],
    first: u64,
    expected: &[Hash],
) -> Result<HashComparison, AuditStoreError> {
    let stored = expand(runs, first, range_end(first, expected)?)?;
    let first_mismatch = stored
        .iter()
        .filter(|(index, hash)| {
            usize::try_from(index - first)
                .ok()
                .and_then(|at| expected.get(at))
                != Some(hash)
        })
        .map(|(index, _)| *index)
        .min();
    Ok(HashComparison {
        stored: stored.len() as u64,
        first_mismatch,
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
