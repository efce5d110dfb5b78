//! The verifier: recomputes the whole tree from the stored leaves and checks every
//! stored hash, the contiguity of indexes, and the signature and root of every
//! checkpoint. The first discrepancy is reported with the index it concerns. Usable
//! without a server (`palisade audit verify` is a thin shell around it).
//!
//! Two passes share one tree walk ([`Walk`]):
//! - the fast pass reads large ranges of leaves into one buffer on a reader task,
//!   hashes them, and has the database compare every stored hash of the range with
//!   the recomputed one on a third task (see [`crate::store::LeafBlock`] and
//!   [`AuditStore::hashes_match`]), so reading, hashing and comparing overlap;
//! - the plain pass reads leaves and hashes back as rows and compares them here, and
//!   names the first discrepancy precisely.
//!
//! The fast pass only has to tell "everything matched" from "something did not".
//! When something did not (or a read failed), the plain pass takes over from the
//! last range the fast pass fully confirmed, and its answer is the verdict. Both
//! passes make the same checks, so the outcome is the one the plain pass alone
//! would give, found at the speed of the fast one.

use crate::checkpoint::{Checkpoint, NoteVerifier};
use crate::merkle::{Frontier, Hash, NodeId, leaf_hash};
use crate::store::{AuditStore, AuditStoreError, LeafBlock};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Leaves per round trip of the plain pass.
const CHUNK: u64 = 10_000;
/// Default most leaves per read of the fast pass: large enough that per-query costs
/// vanish (ranges are smaller when leaves are large, see [`RANGE_BYTES`]).
const FAST_CHUNK: u64 = 1 << 15;
/// Leaves in the fast pass's first range, before the leaf size is known.
const FIRST_RANGE: u64 = 1024;
/// Leaf bytes a range aims at, so that the few ranges in flight stay tens of MB
/// even when events are tens of KB each.
const RANGE_BYTES: u64 = 16 << 20;
/// Ranges whose stored hashes may still be under comparison while the next is hashed.
const COMPARING_AHEAD: usize = 2;
/// Leaf ranges read at once, each on its own connection, so that the database sends
/// one while the client takes in the other.
const READS_AHEAD: usize = 2;

/// What is wrong, located as precisely as the evidence allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Tampering {
    /// A leaf row is missing (deleted) or out of place.
    #[error("index {index}: missing or out of order (found index {found:?})")]
    MissingLeaf {
        /// The index expected next.
        index: u64,
        /// What was found instead.
        found: Option<u64>,
    },
    /// A leaf's bytes do not hash to the stored leaf hash.
    #[error("index {index}: leaf bytes do not match the stored leaf hash")]
    LeafChanged {
        /// The leaf.
        index: u64,
    },
    /// A stored interior hash is not the hash of its children.
    #[error("index {first_leaf}: stored hash at level {level}, position {position} is wrong")]
    HashChanged {
        /// Tree level of the node.
        level: u8,
        /// Node position within its level.
        position: u64,
        /// First leaf the node covers.
        first_leaf: u64,
    },
    /// A checkpoint's signature does not verify with the log's key.
    #[error("checkpoint at tree size {tree_size}: bad signature")]
    BadSignature {
        /// Its tree size.
        tree_size: u64,
    },
    /// A checkpoint's signed root differs from the root recomputed from the leaves.
    #[error(
        "checkpoint at tree size {tree_size}: signed root does not match the leaves (first bad index at or after {first_bad_index_at_or_after})"
    )]
    RootMismatch {
        /// Its tree size.
        tree_size: u64,
        /// Everything below this index matched the previous checkpoint.
        first_bad_index_at_or_after: u64,
    },
    /// A checkpoint saved earlier is not a prefix of the log (a fork or a rewrite).
    #[error("saved checkpoint at tree size {tree_size} is not consistent with the log")]
    Inconsistent {
        /// Its tree size.
        tree_size: u64,
    },
}

impl Tampering {
    /// The leaf index the finding points at.
    pub fn index(&self) -> u64 {
        match self {
            Self::MissingLeaf { index, .. } | Self::LeafChanged { index } => *index,
            Self::HashChanged { first_leaf, .. } => *first_leaf,
            Self::BadSignature { tree_size } | Self::Inconsistent { tree_size } => {
                tree_size.saturating_sub(1)
            }
            Self::RootMismatch {
                first_bad_index_at_or_after,
                ..
            } => *first_bad_index_at_or_after,
        }
    }
}

/// Why verification could not complete (as opposed to finding tampering).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Tampering was found.
    #[error("tampering detected: {0}")]
    Tampered(Tampering),
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] AuditStoreError),
}

/// A successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Leaves checked.
    pub tree_size: u64,
    /// Root of the whole tree.
    pub root: Hash,
}

/// Verifies a store against the log's verifier key.
#[derive(Debug)]
pub struct Verifier<'a> {
    store: &'a AuditStore,
    key: &'a NoteVerifier,
    fast_chunk: u64,
}

/// A root to compare at a tree size: a stored checkpoint's, or the saved one's.
#[derive(Debug, Clone, Copy)]
struct Boundary {
    size: u64,
    root: Hash,
    saved: bool,
}

/// How far the tree walk got: what either pass carries from range to range.
#[derive(Debug, Clone)]
struct Walk {
    /// The tree over every leaf checked so far.
    frontier: Frontier,
    /// Size of the last stored checkpoint whose root matched.
    last_good: u64,
    /// The next boundary to compare (index into the sorted boundaries).
    next_boundary: usize,
}

impl Walk {
    fn new() -> Self {
        Self {
            frontier: Frontier::new(),
            last_good: 0,
            next_boundary: 0,
        }
    }

    /// Leaves checked so far.
    fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Appends the next leaf hashes, comparing every boundary root on the way (in
    /// segments that end at boundary sizes, so each root is compared at exactly its
    /// size); returns the nodes the append completed.
    fn append(
        &mut self,
        boundaries: &[Boundary],
        leaf_hashes: &[Hash],
    ) -> Result<Vec<(NodeId, Hash)>, VerifyError> {
        let start = self.size();
        let end = start + leaf_hashes.len() as u64;
        let mut created = Vec::with_capacity(leaf_hashes.len() * 2);
        let mut pos = start;
        while pos < end {
            let stop = boundaries
                .get(self.next_boundary)
                .map(|b| b.size)
                .filter(|&b| b <= end && b > pos)
                .unwrap_or(end);
            let segment = &leaf_hashes[(pos - start) as usize..(stop - start) as usize];
            created.extend(
                self.frontier
                    .append(segment)
                    .map_err(AuditStoreError::from)?,
            );
            pos = stop;
            while let Some(b) = boundaries.get(self.next_boundary).filter(|b| b.size == pos) {
                self.next_boundary += 1;
                if self.frontier.root() != b.root {
                    return Err(VerifyError::Tampered(if b.saved {
                        Tampering::Inconsistent { tree_size: b.size }
                    } else {
                        Tampering::RootMismatch {
                            tree_size: b.size,
                            first_bad_index_at_or_after: self.last_good,
                        }
                    }));
                }
                if !b.saved {
                    self.last_good = b.size;
                }
            }
        }
        Ok(created)
    }
}

/// Where the fast pass ended.
#[derive(Debug)]
enum FastPass {
    /// Every check passed; the root of the whole tree.
    Verified(Hash),
    /// Something did not match or could not be read after the walk so far, which
    /// every check confirmed.
    Stopped(Walk),
}

impl<'a> Verifier<'a> {
    /// A verifier of `store` whose checkpoints must be signed by `key`.
    pub fn new(store: &'a AuditStore, key: &'a NoteVerifier) -> Self {
        Self {
            store,
            key,
            fast_chunk: FAST_CHUNK,
        }
    }

    /// Most leaves per read of the fast pass (default 32,768; at least 1). Ranges
    /// are also kept near 16 MB of leaves; each range costs a few queries.
    pub fn with_chunk(mut self, leaves: u64) -> Self {
        self.fast_chunk = leaves.max(1);
        self
    }

    /// Checks everything; `progress(done, total)` is called after each range.
    /// `saved` is an earlier checkpoint note to prove consistency with.
    pub async fn verify(
        &self,
        saved: Option<&str>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Verified, VerifyError> {
        let (boundaries, size) = self.boundaries(saved).await?;
        let root = match self.fast(&boundaries, size, &mut progress).await {
            FastPass::Verified(root) => root,
            FastPass::Stopped(walk) => self.plain(&boundaries, size, walk, progress).await?,
        };
        Ok(Verified {
            tree_size: size,
            root,
        })
    }

    /// Checks the checkpoints' signatures and sizes; returns the roots to compare,
    /// in tree order, and the tree size.
    async fn boundaries(&self, saved: Option<&str>) -> Result<(Vec<Boundary>, u64), VerifyError> {
        let tampered = |t| Err(VerifyError::Tampered(t));
        let latest = self.store.latest_checkpoint().await?;
        let size = self.store.tree_size().await?;
        // Checkpoint signatures first: an unsigned root proves nothing.
        let checkpoints = self.store.checkpoints().await?;
        let mut signed = Vec::with_capacity(checkpoints.len());
        for stored in &checkpoints {
            match Checkpoint::open(&stored.note, self.key) {
                Ok(cp) if cp.size == stored.tree_size => signed.push(cp),
                _ => {
                    return tampered(Tampering::BadSignature {
                        tree_size: stored.tree_size,
                    });
                }
            }
        }
        if latest.as_ref().map(|c| c.tree_size).unwrap_or(0) != size {
            // Rows beyond the last checkpoint (or missing below it) are not covered by any signature.
            let at = latest.as_ref().map(|c| c.tree_size).unwrap_or(0).min(size);
            return tampered(Tampering::MissingLeaf {
                index: at,
                found: Some(size),
            });
        }
        let saved = match saved {
            Some(note) => match Checkpoint::open(note, self.key) {
                Ok(cp) => Some(cp),
                Err(_) => return tampered(Tampering::BadSignature { tree_size: 0 }),
            },
            None => None,
        };
        let mut boundaries: Vec<Boundary> = signed
            .iter()
            .map(|cp| Boundary {
                size: cp.size,
                root: cp.root,
                saved: false,
            })
            .collect();
        if let Some(cp) = &saved {
            if cp.size > size || cp.size == 0 {
                return tampered(Tampering::Inconsistent { tree_size: cp.size });
            }
            boundaries.push(Boundary {
                size: cp.size,
                root: cp.root,
                saved: true,
            });
        }
        // Stable, so a stored checkpoint is compared before a saved one of its size.
        boundaries.sort_by_key(|b| b.size);
        Ok((boundaries, size))
    }

    /// The fast pass: reading the next range, hashing this one, and comparing the
    /// stored hashes of the previous ones all run at once.
    async fn fast(
        &self,
        boundaries: &[Boundary],
        size: u64,
        progress: &mut impl FnMut(u64, u64),
    ) -> FastPass {
        let chunk = self.fast_chunk;
        let (blocks_tx, mut blocks) = tokio::sync::mpsc::channel(1);
        let store = self.store.clone();
        // Neither the reads nor the comparisons are aborted when the pass stops
        // early: cancelling a COPY half-way would return its connection to the pool
        // mid-protocol. Each read is a task of its own, which runs to its end; the
        // reader stops starting them at its next send; a comparison is a few short
        // queries.
        tokio::spawn(async move {
            let read = |start: u64, end: u64| {
                let store = store.clone();
                (
                    start,
                    end,
                    tokio::spawn(async move { store.leaf_block(start, end).await }),
                )
            };
            let mut reading = VecDeque::new();
            let mut next = 0u64;
            // Small first, then sized from the leaves seen so far.
            let mut leaves = chunk.min(FIRST_RANGE);
            let mut sized = false;
            loop {
                // Until the first range tells the leaf size, one read at a time.
                let ahead = if sized { READS_AHEAD } else { 1 };
                while reading.len() < ahead && next < size {
                    let end = next.saturating_add(leaves).min(size);
                    reading.push_back(read(next, end));
                    next = end;
                }
                let Some((start, end, task)) = reading.pop_front() else {
                    return;
                };
                let Ok(block) = task.await else {
                    return; // the read panicked: the pass stops, the plain pass reads again
                };
                if let Ok(block) = &block {
                    leaves = range_for(block.len(), block.byte_len(), chunk);
                    sized = true;
                }
                let failed = block.is_err();
                if blocks_tx.send((start, end, block)).await.is_err() || failed {
                    return;
                }
            }
        });
        // `confirmed` trails `walk` by the ranges whose comparisons are pending.
        let mut confirmed = Walk::new();
        let mut walk = Walk::new();
        let mut comparing: VecDeque<(
            Walk,
            tokio::task::JoinHandle<Result<bool, AuditStoreError>>,
        )> = VecDeque::new();
        while walk.size() < size {
            let Some((start, end, Ok(block))) = blocks.recv().await else {
                return FastPass::Stopped(confirmed);
            };
            if start != walk.size() {
                return FastPass::Stopped(confirmed);
            }
            let Some(leaf_hashes) = hash_leaves(&block, start, end) else {
                return FastPass::Stopped(confirmed);
            };
            drop(block);
            let Ok(created) = walk.append(boundaries, &leaf_hashes) else {
                return FastPass::Stopped(confirmed);
            };
            let runs = runs_by_level(&created);
            let store = self.store.clone();
            comparing.push_back((
                walk.clone(),
                tokio::spawn(async move { store.hashes_match(&runs).await }),
            ));
            while comparing.len() > COMPARING_AHEAD
                || (walk.size() == size && !comparing.is_empty())
            {
                let Some((after, task)) = comparing.pop_front() else {
                    break;
                };
                if !matches!(task.await, Ok(Ok(true))) {
                    return FastPass::Stopped(confirmed);
                }
                confirmed = after;
                progress(confirmed.size(), size);
            }
        }
        FastPass::Verified(walk.frontier.root())
    }

    /// The plain pass from `walk` on: reads rows back and names the first
    /// discrepancy. Returns the root of the whole tree.
    async fn plain(
        &self,
        boundaries: &[Boundary],
        size: u64,
        mut walk: Walk,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Hash, VerifyError> {
        let tampered = |t| Err(VerifyError::Tampered(t));
        let mut start = walk.size();
        // Reading dominates, so the next chunk is read while this one is hashed.
        let mut next = (start < size)
            .then(|| read_chunk(self.store.clone(), start, (start + CHUNK).min(size)));
        while let Some(reading) = next.take() {
            let end = (start + CHUNK).min(size);
            let (events, stored_leaves) = reading.await.map_err(|e| {
                AuditStoreError::Corrupt(format!("verifier read task failed: {e}"))
            })??;
            if end < size {
                next = Some(read_chunk(self.store.clone(), end, (end + CHUNK).min(size)));
            }
            let mut leaf_hashes = Vec::with_capacity(events.len());
            for (offset, (index, leaf)) in events.iter().enumerate() {
                let expected = start + offset as u64;
                if *index != expected {
                    return tampered(Tampering::MissingLeaf {
                        index: expected,
                        found: Some(*index),
                    });
                }
                let hash = leaf_hash(leaf);
                if stored_leaves.get(offset) != Some(&hash) {
                    return tampered(Tampering::LeafChanged { index: expected });
                }
                leaf_hashes.push(hash);
            }
            if (events.len() as u64) < end - start {
                return tampered(Tampering::MissingLeaf {
                    index: start + events.len() as u64,
                    found: None,
                });
            }
            let created = walk.append(boundaries, &leaf_hashes)?;
            self.check_interior(&created).await?;
            start = end;
            progress(start, size);
        }
        Ok(walk.frontier.root())
    }

    /// Every interior node a chunk completed must match the stored hash. The nodes of
    /// one level form a contiguous run, so each level is one range read.
    async fn check_interior(&self, created: &[(NodeId, Hash)]) -> Result<(), VerifyError> {
        let mut by_level: BTreeMap<u8, Vec<(u64, Hash)>> = BTreeMap::new();
        for (id, hash) in created.iter().filter(|(id, _)| id.level > 0) {
            by_level
                .entry(id.level)
                .or_default()
                .push((id.index, *hash));
        }
        for (level, nodes) in by_level {
            let (Some(first), Some(last)) = (nodes.first(), nodes.last()) else {
                continue;
            };
            let stored = self
                .store
                .hash_range_indexed(level, first.0, last.0 + 1)
                .await?;
            let stored: HashMap<u64, Hash> = stored.into_iter().collect();
            for (index, hash) in &nodes {
                if stored.get(index) != Some(hash) {
                    return Err(VerifyError::Tampered(Tampering::HashChanged {
                        level,
                        position: *index,
                        first_leaf: index << level,
                    }));
                }
            }
        }
        Ok(())
    }
}

/// Leaves in the next range: [`RANGE_BYTES`] at the average leaf size of the last
/// block (`rows` leaves, `bytes` in all), between 1 and `most`.
fn range_for(rows: usize, bytes: usize, most: u64) -> u64 {
    let average = (bytes as u64 / rows.max(1) as u64).max(1);
    (RANGE_BYTES / average).clamp(1, most)
}

/// The leaf hashes of a block that must hold exactly the indexes `[start, end)`;
/// `None` when it does not.
fn hash_leaves(block: &LeafBlock, start: u64, end: u64) -> Option<Vec<Hash>> {
    if block.len() as u64 != end - start {
        return None;
    }
    let mut hashes = Vec::with_capacity(block.len());
    for ((index, leaf), expected) in block.iter().zip(start..end) {
        if index != expected {
            return None;
        }
        hashes.push(leaf_hash(leaf));
    }
    Some(hashes)
}

/// Created nodes as `(level, first index, hashes)` runs of consecutive indexes, one
/// per level (appending a range completes a contiguous run on every level).
fn runs_by_level(created: &[(NodeId, Hash)]) -> Vec<(u8, u64, Vec<Hash>)> {
    let mut runs: Vec<(u8, u64, Vec<Hash>)> = Vec::new();
    // Per level, the run being extended (index into `runs`).
    let mut open: BTreeMap<u8, usize> = BTreeMap::new();
    for (id, hash) in created {
        match open.get(&id.level).map(|&i| (i, &mut runs[i])) {
            Some((_, (_, first, hashes))) if *first + hashes.len() as u64 == id.index => {
                hashes.push(*hash);
            }
            _ => {
                open.insert(id.level, runs.len());
                runs.push((id.level, id.index, vec![*hash]));
            }
        }
    }
    runs
}

type Chunk = (Vec<(u64, Vec<u8>)>, Vec<Hash>);

/// Reads one chunk's leaves and stored leaf hashes, concurrently, on its own task.
fn read_chunk(
    store: AuditStore,
    start: u64,
    end: u64,
) -> tokio::task::JoinHandle<Result<Chunk, AuditStoreError>> {
    tokio::spawn(async move {
        tokio::try_join!(
            store.leaves_range(start, end),
            store.hash_range(0, start, end)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges_shrink_for_large_leaves() {
        // Typical events (a few hundred bytes): the full range.
        assert_eq!(range_for(1024, 1024 * 300, FAST_CHUNK), FAST_CHUNK);
        // 1 MiB leaves: 16 per range; 100 MiB leaves: one at a time.
        assert_eq!(range_for(4, 4 << 20, FAST_CHUNK), 16);
        assert_eq!(range_for(1, 100 << 20, FAST_CHUNK), 1);
        // Nothing read yet, or empty leaves: bounded by the most asked for.
        assert_eq!(range_for(0, 0, 50), 50);
        assert_eq!(range_for(10, 0, 50), 50);
    }

    proptest! {
        /// Grouping a range's new nodes into runs keeps every node, in place: the
        /// runs are the plain per-node list, regrouped.
        #[test]
        fn runs_hold_every_created_node(before in 0u64..5000, count in 1u64..3000) {
            let leaf = |i: u64| leaf_hash(&i.to_be_bytes());
            let mut frontier = Frontier::new();
            let first: Vec<Hash> = (0..before).map(leaf).collect();
            frontier.append(&first).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let next: Vec<Hash> = (before..before + count).map(leaf).collect();
            let created = frontier.append(&next).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let runs = runs_by_level(&created);
            let mut levels: Vec<u8> = runs.iter().map(|r| r.0).collect();
            levels.sort_unstable();
            levels.dedup();
            prop_assert_eq!(levels.len(), runs.len(), "one run per level");
            let mut from_runs: Vec<(NodeId, Hash)> = runs
                .iter()
                .flat_map(|(level, first, hashes)| {
                    hashes
                        .iter()
                        .enumerate()
                        .map(move |(i, h)| (NodeId::new(*level, first + i as u64), *h))
                })
                .collect();
            let mut plain = created.clone();
            from_runs.sort();
            plain.sort();
            prop_assert_eq!(from_runs, plain);
        }
    }
}
