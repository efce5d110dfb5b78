//! The verifier: recomputes the whole tree from the stored leaves and checks every
//! stored hash, the contiguity of indexes, and the signature and root of every
//! checkpoint. The first discrepancy is reported with the index it concerns. Usable
//! without a server (`palisade audit verify` is a thin shell around it).

use crate::checkpoint::{Checkpoint, NoteVerifier};
use crate::merkle::{Frontier, Hash, NodeId, leaf_hash};
use crate::store::{AuditStore, AuditStoreError};
use std::collections::{BTreeMap, HashMap};

/// Leaves read per round trip.
const CHUNK: u64 = 10_000;

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
}

impl<'a> Verifier<'a> {
    /// A verifier of `store` whose checkpoints must be signed by `key`.
    pub fn new(store: &'a AuditStore, key: &'a NoteVerifier) -> Self {
        Self { store, key }
    }

    /// Checks everything; `progress(done, total)` is called after each chunk.
    /// `saved` is an earlier checkpoint note to prove consistency with.
    pub async fn verify(
        &self,
        saved: Option<&str>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Verified, VerifyError> {
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

        // Roots to check, in tree order: every stored checkpoint, and the saved one.
        let mut boundaries: Vec<(u64, Hash, bool)> =
            signed.iter().map(|cp| (cp.size, cp.root, false)).collect();
        if let Some(cp) = &saved {
            if cp.size > size || cp.size == 0 {
                return tampered(Tampering::Inconsistent { tree_size: cp.size });
            }
            boundaries.push((cp.size, cp.root, true));
        }
        boundaries.sort_by_key(|b| b.0);
        let mut boundaries = boundaries.into_iter().peekable();

        let mut frontier = Frontier::new();
        let mut last_good = 0;
        let mut start = 0;
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
            let mut created = Vec::with_capacity(leaf_hashes.len() * 2);
            // Append in segments that end at checkpoint sizes, so each signed root is
            // compared with the frontier's root at exactly that size.
            let mut pos = start;
            while pos < end {
                let stop = boundaries
                    .peek()
                    .map(|b| b.0)
                    .filter(|&b| b <= end && b > pos)
                    .unwrap_or(end);
                let segment = &leaf_hashes[(pos - start) as usize..(stop - start) as usize];
                created.extend(frontier.append(segment).map_err(AuditStoreError::from)?);
                pos = stop;
                while let Some((cp_size, root, is_saved)) = boundaries.next_if(|b| b.0 == pos) {
                    if frontier.root() != root {
                        return tampered(if is_saved {
                            Tampering::Inconsistent { tree_size: cp_size }
                        } else {
                            Tampering::RootMismatch {
                                tree_size: cp_size,
                                first_bad_index_at_or_after: last_good,
                            }
                        });
                    }
                    if !is_saved {
                        last_good = cp_size;
                    }
                }
            }
            self.check_interior(&created).await?;
            start = end;
            progress(start, size);
        }
        Ok(Verified {
            tree_size: size,
            root: frontier.root(),
        })
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
