//! Merkle tree benchmarks: raw aws-lc-rs SHA-256 over 100-byte leaves next
//! to RFC 6962 leaf hashing, tree building, root and proof computation.
//!
//! Run with `cargo bench -p palisade-audit --bench merkle`.

use std::hint::black_box;

use aws_lc_rs::digest;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use palisade_audit::merkle::{Frontier, Hash, MemoryTree, leaf_hash, verify_inclusion};

/// Leaves per hashing batch.
const BATCH: usize = 1024;
/// Size of the tree used for root and proof timings; deliberately not a
/// power of two so proofs include incomplete right subtrees.
const TREE_SIZE: u64 = 100_003;

/// Typical audit event size the design targets.
fn leaves(n: usize) -> Vec<[u8; 100]> {
    (0..n)
        .map(|i| {
            let mut leaf = [0u8; 100];
            leaf[..8].copy_from_slice(&(i as u64).to_le_bytes());
            leaf
        })
        .collect()
}

fn leaf_hashes(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect()
}

fn hashing(c: &mut Criterion) {
    let data = leaves(BATCH);
    let mut group = c.benchmark_group("sha256_100_byte_leaves");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("aws_lc_rs_sha256_raw", |b| {
        b.iter(|| {
            for leaf in &data {
                black_box(digest::digest(&digest::SHA256, black_box(leaf)));
            }
        })
    });
    group.bench_function("rfc6962_leaf_hash", |b| {
        b.iter(|| {
            for leaf in &data {
                black_box(leaf_hash(black_box(leaf)));
            }
        })
    });
    group.finish();
}

fn building(c: &mut Criterion) {
    let hashes = leaf_hashes(1 << 16);
    let mut group = c.benchmark_group("build_65536_leaves");
    group.throughput(Throughput::Elements(hashes.len() as u64));
    group.bench_function("memory_tree", |b| {
        b.iter(|| MemoryTree::from_leaf_hashes(black_box(&hashes)))
    });
    group.bench_function("frontier_batches_of_256", |b| {
        b.iter(|| {
            let mut frontier = Frontier::new();
            for chunk in hashes.chunks(256) {
                black_box(frontier.append(chunk).ok());
            }
            frontier.root()
        })
    });
    group.finish();
}

fn proofs(c: &mut Criterion) {
    let hashes = leaf_hashes(TREE_SIZE);
    let tree = MemoryTree::from_leaf_hashes(&hashes);
    let index = TREE_SIZE / 3;
    // Fixed, valid arguments: a failure here is a bug worth a loud stop.
    let root = tree.root(TREE_SIZE).expect("root of built tree");
    let proof = tree
        .inclusion_proof(index, TREE_SIZE)
        .expect("proof in built tree");

    let mut group = c.benchmark_group("tree_100003_leaves");
    group.bench_function("root", |b| b.iter(|| tree.root(black_box(TREE_SIZE))));
    group.bench_function(BenchmarkId::new("inclusion_proof", index), |b| {
        b.iter(|| tree.inclusion_proof(black_box(index), TREE_SIZE))
    });
    group.bench_function("consistency_proof_77777", |b| {
        b.iter(|| tree.consistency_proof(black_box(77_777), TREE_SIZE))
    });
    group.bench_function("verify_inclusion", |b| {
        b.iter(|| {
            verify_inclusion(
                black_box(index),
                TREE_SIZE,
                &hashes[index as usize],
                &proof,
                &root,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, hashing, building, proofs);
criterion_main!(benches);
