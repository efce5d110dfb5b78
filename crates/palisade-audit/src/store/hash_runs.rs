//! How subtree hashes are stored: runs of consecutive nodes of one level, one row a
//! run (`audit_hash_runs`, migration 0008). A run holds 32 bytes a node from its first
//! index on and never crosses a multiple of [`RUN_SPAN`] nodes, so the run holding
//! node `(level, i)` is the last one of its level starting in `tile_start(i)..=i`.
//!
//! Both backends read runs with the same rule and expand them here; a read asks for
//! the runs starting in `[tile_start(start), end)`. A run written outside the rule (a
//! forged one starting before its tile) is never read, so what it claims to hold
//! shows as missing, and the verifier reports it.

use super::AuditStoreError;
use crate::merkle::{HASH_LEN, Hash, NodeId};

/// Nodes a run may span at most, aligned: the tlog-tiles width.
pub(crate) const RUN_SPAN: u64 = 256;

/// The first index of the aligned span holding `index`.
pub(crate) fn tile_start(index: u64) -> u64 {
    index - index % RUN_SPAN
}

/// Consecutive nodes of one level, their hashes back to back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HashRun {
    pub(crate) level: u8,
    pub(crate) first: u64,
    pub(crate) hashes: Vec<u8>,
}

impl HashRun {
    /// Nodes in the run.
    pub(crate) fn len(&self) -> u64 {
        (self.hashes.len() / HASH_LEN) as u64
    }
}

/// `nodes` (as [`crate::merkle::Frontier::append`] creates them, levels interleaved)
/// as the runs to store: by level then index, consecutive indexes together, cut at
/// every multiple of [`RUN_SPAN`].
pub(crate) fn runs_of(nodes: &[(NodeId, Hash)]) -> Vec<HashRun> {
    let mut sorted: Vec<&(NodeId, Hash)> = nodes.iter().collect();
    sorted.sort_by_key(|(id, _)| (id.level, id.index));
    let mut runs: Vec<HashRun> = Vec::new();
    for (id, hash) in sorted {
        match runs.last_mut() {
            Some(run)
                if run.level == id.level
                    && run.first + run.len() == id.index
                    && id.index % RUN_SPAN != 0 =>
            {
                run.hashes.extend_from_slice(hash);
            }
            _ => runs.push(HashRun {
                level: id.level,
                first: id.index,
                hashes: hash.to_vec(),
            }),
        }
    }
    runs
}

/// `(index, hash)` of every node that the stored runs `(first index, hashes)` of one
/// level hold in `[start, end)`, in the runs' order. Overlapping runs (never written,
/// only forged) yield an index twice, which callers comparing counts see.
pub(crate) fn expand(
    runs: &[(u64, Vec<u8>)],
    start: u64,
    end: u64,
) -> Result<Vec<(u64, Hash)>, AuditStoreError> {
    let mut out = Vec::new();
    for (first, bytes) in runs {
        if bytes.is_empty() || bytes.len() % HASH_LEN != 0 {
            return Err(AuditStoreError::Corrupt(format!(
                "hash run at {first} is {} bytes",
                bytes.len()
            )));
        }
        for (k, chunk) in bytes.chunks_exact(HASH_LEN).enumerate() {
            let index = first.checked_add(k as u64).ok_or_else(|| {
                AuditStoreError::Corrupt(format!("hash run at {first} overflows"))
            })?;
            if (start..end).contains(&index) {
                out.push((index, super::to_hash(chunk)?));
            }
        }
    }
    Ok(out)
}

/// The hash of `index` in a run starting at `first` of `len` bytes, given the slice
/// read for it: `None` when the run does not reach `index`.
pub(crate) fn hash_in_run(
    index: u64,
    first: u64,
    len: u64,
    slice: &[u8],
) -> Result<Option<Hash>, AuditStoreError> {
    let offset = index
        .checked_sub(first)
        .and_then(|d| d.checked_mul(HASH_LEN as u64));
    match offset {
        Some(at) if at + HASH_LEN as u64 <= len => super::to_hash(slice).map(Some),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::Frontier;

    #[test]
    fn runs_group_consecutive_nodes_of_a_level_and_stop_at_tile_edges() {
        let mut frontier = Frontier::default();
        frontier.append(&vec![[1; 32]; 250]).expect("append");
        let nodes = frontier.append(&vec![[2; 32]; 300]).expect("append");
        let runs = runs_of(&nodes);
        let shape: Vec<(u8, u64, u64)> = runs.iter().map(|r| (r.level, r.first, r.len())).collect();
        // Leaves 250..550 cut at 256 and 512; level 1 nodes 125..275 cut at 256; ...
        assert_eq!(
            &shape[..4],
            &[(0, 250, 6), (0, 256, 256), (0, 512, 38), (1, 125, 131)]
        );
        for run in &runs {
            assert_eq!(tile_start(run.first), tile_start(run.first + run.len() - 1));
        }
        // Every node is in exactly one run, at its place.
        for (id, hash) in &nodes {
            let run = runs
                .iter()
                .find(|r| r.level == id.level && (r.first..r.first + r.len()).contains(&id.index))
                .expect("run");
            let at = usize::try_from(id.index - run.first).expect("offset") * HASH_LEN;
            assert_eq!(&run.hashes[at..at + HASH_LEN], &hash[..]);
        }
        assert_eq!(
            runs.iter().map(HashRun::len).sum::<u64>(),
            nodes.len() as u64
        );
    }

    #[test]
    fn expanding_keeps_the_range_and_refuses_broken_runs() {
        let run = |first: u64, n: u8| (first, (0..n).flat_map(|k| [k; 32]).collect::<Vec<u8>>());
        let got = expand(&[run(4, 3), run(7, 2)], 5, 8).expect("expand");
        assert_eq!(got, vec![(5, [1; 32]), (6, [2; 32]), (7, [0; 32])]);
        assert!(expand(&[(0, vec![0; 31])], 0, 1).is_err());
        assert!(expand(&[(0, Vec::new())], 0, 1).is_err());
    }

    #[test]
    fn a_hash_is_in_a_run_only_within_its_length() {
        let slice = [9u8; 32];
        assert_eq!(hash_in_run(5, 4, 64, &slice).expect("ok"), Some([9; 32]));
        assert_eq!(hash_in_run(6, 4, 64, &slice).expect("ok"), None);
        assert_eq!(hash_in_run(3, 4, 64, &slice).expect("ok"), None);
    }
}
