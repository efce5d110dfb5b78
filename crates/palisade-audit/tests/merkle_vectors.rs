//! Merkle tree conformance: the transparency-dev/merkle test vectors
//! (`testdata/merkle/`, see `testdata/merkle/SOURCE.md`) plus property tests
//! against a naive, literal transcription of RFC 6962 §2.1.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use palisade_audit::merkle::{
    Frontier, Hash, HashReader, MemoryTree, empty_root, leaf_hash, node_hash, root_nodes,
    verify_consistency, verify_inclusion,
};
use proptest::prelude::*;
use serde::Deserialize;

/// Files upstream ships per folder; a lower count means the copy is broken
/// or the walk found nothing, and the test must not pass silently.
const INCLUSION_FILES: usize = 98;
const CONSISTENCY_FILES: usize = 98;
/// Vectors with `wantErr: false` per folder (from testdata/README.md).
const PASSING_FILES: usize = 6;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/merkle")
}

/// All `.json` files below `dir`, sorted for stable failure output.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> T {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Hash fields are variable-length on purpose (negative cases use other
/// lengths), so decode to `Vec<u8>`, not `Hash`.
fn b64(s: &str) -> Vec<u8> {
    STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("bad base64 {s:?}: {e}"))
}

fn b64_list(list: &Option<Vec<String>>) -> Vec<Vec<u8>> {
    list.iter().flatten().map(|s| b64(s)).collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InclusionVector {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConsistencyVector {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReferenceTree {
    leaf_inputs: Vec<String>,
    leaf_hashes: Vec<String>,
    root_hashes: Vec<String>,
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
}

fn unhex_hash(s: &str) -> Hash {
    Hash::try_from(unhex(s).as_slice()).expect("32-byte hash")
}

/// The 8-leaf tree that folders `0`–`4` are built from.
fn reference_tree() -> (ReferenceTree, MemoryTree) {
    let r: ReferenceTree = read_json(&testdata().join("reference_tree.json"));
    let leaves: Vec<Hash> = r.leaf_inputs.iter().map(|l| leaf_hash(&unhex(l))).collect();
    let tree = MemoryTree::from_leaf_hashes(&leaves);
    (r, tree)
}

/// True for `happy-path.json` in the numbered folders built from the
/// reference tree.
fn is_reference_happy_path(path: &Path) -> bool {
    path.file_name().is_some_and(|f| f == "happy-path.json")
}

fn to_vecs(hashes: &[Hash]) -> Vec<Vec<u8>> {
    hashes.iter().map(|h| h.to_vec()).collect()
}

#[test]
fn reference_tree_roots_and_leaf_hashes() {
    let (r, tree) = reference_tree();
    assert_eq!(r.leaf_inputs.len(), 8);
    assert_eq!(r.root_hashes.len(), 9);
    for (input, want) in r.leaf_inputs.iter().zip(&r.leaf_hashes) {
        assert_eq!(leaf_hash(&unhex(input)), unhex_hash(want), "leaf {input}");
    }
    for (n, want) in r.root_hashes.iter().enumerate() {
        assert_eq!(tree.root(n as u64).unwrap(), unhex_hash(want), "root {n}");
    }
    assert_eq!(unhex_hash(&r.root_hashes[0]), empty_root());
}

#[test]
fn inclusion_vectors() {
    let (_, tree) = reference_tree();
    let files = json_files(&testdata().join("inclusion"));
    let (mut passing, mut generated) = (0, 0);
    for path in &files {
        let v: InclusionVector = read_json(path);
        let proof = b64_list(&v.proof);
        let result = verify_inclusion(
            v.leaf_idx,
            v.tree_size,
            &b64(&v.leaf_hash),
            &proof,
            &b64(&v.root),
        );
        assert_eq!(
            result.is_err(),
            v.want_err,
            "{} ({}): {result:?}",
            path.display(),
            v.desc
        );
        passing += usize::from(!v.want_err);
        if is_reference_happy_path(path) {
            let ours = tree.inclusion_proof(v.leaf_idx, v.tree_size).unwrap();
            assert_eq!(to_vecs(&ours), proof, "{}", path.display());
            assert_eq!(tree.root(v.tree_size).unwrap().to_vec(), b64(&v.root));
            generated += 1;
        }
    }
    assert_eq!(files.len(), INCLUSION_FILES);
    assert_eq!(passing, PASSING_FILES);
    assert_eq!(generated, 5);
}

#[test]
fn consistency_vectors() {
    let (_, tree) = reference_tree();
    let files = json_files(&testdata().join("consistency"));
    let (mut passing, mut generated) = (0, 0);
    for path in &files {
        let v: ConsistencyVector = read_json(path);
        let proof = b64_list(&v.proof);
        let result = verify_consistency(v.size1, v.size2, &proof, &b64(&v.root1), &b64(&v.root2));
        assert_eq!(
            result.is_err(),
            v.want_err,
            "{} ({}): {result:?}",
            path.display(),
            v.desc
        );
        passing += usize::from(!v.want_err);
        if is_reference_happy_path(path) {
            let ours = tree.consistency_proof(v.size1, v.size2).unwrap();
            assert_eq!(to_vecs(&ours), proof, "{}", path.display());
            assert_eq!(tree.root(v.size1).unwrap().to_vec(), b64(&v.root1));
            assert_eq!(tree.root(v.size2).unwrap().to_vec(), b64(&v.root2));
            generated += 1;
        }
    }
    assert_eq!(files.len(), CONSISTENCY_FILES);
    assert_eq!(passing, PASSING_FILES);
    assert_eq!(generated, 5);
}

// ---------------------------------------------------------------------------
// Naive RFC 6962 §2.1 reference, transcribed literally (recursive, O(n)).
// ---------------------------------------------------------------------------

/// Largest power of two strictly less than `n` (n > 1).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]) over leaf hashes.
fn mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => empty_root(),
        1 => d[0],
        n => {
            let k = split(n);
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

/// PATH(m, D[n]).
fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
    let n = d.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split(n);
    let (mut p, other) = if m < k {
        (path(m, &d[..k]), mth(&d[k..]))
    } else {
        (path(m - k, &d[k..]), mth(&d[..k]))
    };
    p.push(other);
    p
}

/// SUBPROOF(m, D[n], b).
fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { Vec::new() } else { vec![mth(d)] };
    }
    let k = split(n);
    let (mut p, other) = if m <= k {
        (subproof(m, &d[..k], b), mth(&d[k..]))
    } else {
        (subproof(m - k, &d[k..], false), mth(&d[..k]))
    };
    p.push(other);
    p
}

/// Deterministic distinct leaf hashes for a test tree.
fn leaves(seed: u64, n: usize) -> Vec<Hash> {
    (0..n as u64)
        .map(|i| leaf_hash(&[seed.to_le_bytes(), i.to_le_bytes()].concat()))
        .collect()
}

/// Checks one (n, m, index) triple against the naive reference.
fn check_against_naive(tree: &MemoryTree, d: &[Hash], m: usize, index: usize) {
    let n = d.len();
    let (n64, m64, i64_) = (n as u64, m as u64, index as u64);
    let root = mth(d);
    assert_eq!(tree.root(n64).unwrap(), root);

    let proof = tree.inclusion_proof(i64_, n64).unwrap();
    assert_eq!(proof, path(index, d), "inclusion {index} of {n}");
    assert_eq!(
        verify_inclusion(i64_, n64, &d[index], &proof, &root),
        Ok(())
    );

    let proof = tree.consistency_proof(m64, n64).unwrap();
    assert_eq!(proof, subproof(m, d, true), "consistency {m} -> {n}");
    let old = mth(&d[..m]);
    assert_eq!(verify_consistency(m64, n64, &proof, &old, &root), Ok(()));
}

#[test]
fn exhaustive_small_trees_match_naive() {
    let d = leaves(0, 40);
    let tree = MemoryTree::from_leaf_hashes(&d);
    for n in 1..=d.len() {
        for x in 0..n {
            // Covers every m in 1..=n and every index in 0..n.
            check_against_naive(&tree, &d[..n], x + 1, x);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn proofs_match_naive_rfc6962(
        (seed, n, m, index) in (any::<u64>(), 1usize..=300)
            .prop_flat_map(|(seed, n)| (Just(seed), Just(n), 1..=n, 0..n))
    ) {
        let d = leaves(seed, n);
        let tree = MemoryTree::from_leaf_hashes(&d);
        check_against_naive(&tree, &d, m, index);
    }

    #[test]
    fn frontier_matches_memory_tree(
        seed in any::<u64>(),
        n in 0usize..=300,
        batches in proptest::collection::vec(0usize..=40, 1..40),
        resume_at in 0usize..=300,
    ) {
        let d = leaves(seed, n);
        let tree = MemoryTree::from_leaf_hashes(&d);
        let resume_at = resume_at.min(n);
        let mut frontier = Frontier::new();
        let mut created = Vec::new();
        let mut done = 0;
        let mut resumed = false;
        let mut sizes = batches.iter().cycle();
        while done < n {
            if !resumed && done >= resume_at {
                resumed = true;
                // Restart from stored right-edge hashes, as the sequencer would.
                let stored = tree.read_hashes(&root_nodes(done as u64)).unwrap();
                frontier = Frontier::from_parts(done as u64, stored).unwrap();
            }
            let take = (*sizes.next().unwrap_or(&1)).max(1).min(n - done);
            created.extend(frontier.append(&d[done..done + take]).unwrap());
            done += take;
            prop_assert_eq!(frontier.size(), done as u64);
            prop_assert_eq!(frontier.root(), mth(&d[..done]));
        }
        // Every created node is the stored node, and none is missing:
        // a tree of n leaves holds floor(n / 2^l) complete nodes at level l.
        for (id, hash) in &created {
            prop_assert_eq!(tree.node(*id), Some(*hash));
        }
        let total: usize = (0..64).map(|l| n >> l).sum();
        prop_assert_eq!(created.len(), total);
        prop_assert_eq!(frontier.root(), tree.root(n as u64).unwrap());
    }
}
