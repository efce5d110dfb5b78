//! The verifier's bulk reads on both backends: `leaf_block` returns exactly the
//! stored leaves of a range, and `compare_hashes` finds every stored hash that
//! differs or is missing.

#[macro_use]
mod common;

use common::{Backend, fill};
use palisade_audit::merkle::{Hash, leaf_hash};
use palisade_store::Database;

const SIZE: u64 = 300;

/// Removes the stored hash of node `(level, position)` as a superuser would: the run
/// holding it is cut in two around it (or loses its first or last hash).
async fn delete_stored_hash(b: &Backend, level: u8, position: u64) {
    let run = format!(
        "level = {level} AND first_idx = (SELECT max(first_idx) FROM audit_hash_runs \
         WHERE level = {level} AND first_idx <= {position})"
    );
    let (after, before) = match b.db {
        Database::Postgres(_) => (
            format!(
                "INSERT INTO audit_hash_runs (level, first_idx, hashes) \
                 SELECT level, {position} + 1, substring(hashes FROM (({position} + 1 - first_idx) * 32 + 1)::int) \
                 FROM audit_hash_runs WHERE {run} AND octet_length(hashes) > ({position} + 1 - first_idx) * 32"
            ),
            format!(
                "UPDATE audit_hash_runs SET hashes = substring(hashes FROM 1 FOR (({position} - first_idx) * 32)::int) \
                 WHERE {run}"
            ),
        ),
        Database::Sqlite(_) => (
            format!(
                "INSERT INTO audit_hash_runs (level, first_idx, hashes) \
                 SELECT level, {position} + 1, substr(hashes, ({position} + 1 - first_idx) * 32 + 1) \
                 FROM audit_hash_runs WHERE {run} AND length(hashes) > ({position} + 1 - first_idx) * 32"
            ),
            format!(
                "UPDATE audit_hash_runs SET hashes = substr(hashes, 1, ({position} - first_idx) * 32) \
                 WHERE {run}"
            ),
        ),
    };
    let empty = "DELETE FROM audit_hash_runs WHERE length(hashes) = 0";
    let empty = match b.db {
        Database::Postgres(_) => empty.replace("length(", "octet_length("),
        Database::Sqlite(_) => empty.to_owned(),
    };
    match &b.db {
        Database::Postgres(db) => {
            let mut tx = db.primary().begin().await.expect("tx");
            sqlx::query("ALTER TABLE audit_hash_runs DISABLE TRIGGER USER")
                .execute(&mut *tx)
                .await
                .expect("disable");
            for sql in [&after, &before, &empty] {
                sqlx::query(sql).execute(&mut *tx).await.expect(sql);
            }
            tx.commit().await.expect("commit");
        }
        Database::Sqlite(db) => {
            for sql in [
                "DROP TRIGGER audit_hash_runs_no_update",
                "DROP TRIGGER audit_hash_runs_no_delete",
                &after,
                &before,
                &empty,
            ] {
                sqlx::query(sql).execute(db.writer()).await.expect(sql);
            }
        }
    }
}

async fn leaf_blocks_hold_the_stored_leaves(b: Backend) {
    fill(&b.store, SIZE, 37).await;
    let events = b.store.events_range(0, SIZE).await.expect("events");
    for (start, end) in [(0, SIZE), (0, 1), (100, 164), (299, 300), (150, 150)] {
        let block = b.store.leaf_block(start, end).await.expect("leaf block");
        let read: Vec<(u64, Vec<u8>)> = block.iter().map(|(i, l)| (i, l.to_vec())).collect();
        let stored: Vec<(u64, Vec<u8>)> = events[start as usize..end as usize]
            .iter()
            .map(|e| (e.index, e.leaf.clone()))
            .collect();
        assert_eq!(read, stored, "{start}..{end}");
    }
    // Beyond the log there is nothing to read.
    assert!(
        b.store
            .leaf_block(SIZE, SIZE + 10)
            .await
            .map(|block| block.is_empty())
            .unwrap_or(true)
    );
}

async fn compare_hashes_finds_the_first_difference_and_gaps(b: Backend) {
    fill(&b.store, SIZE, 37).await;
    let leaves: Vec<Hash> = b
        .store
        .events_range(0, SIZE)
        .await
        .expect("events")
        .iter()
        .map(|e| leaf_hash(&e.leaf))
        .collect();
    let found = b
        .store
        .compare_hashes(0, 0, &leaves)
        .await
        .expect("compare");
    assert!(found.all_match(leaves.len()), "{found:?}");
    let found = b
        .store
        .compare_hashes(0, 100, &leaves[100..200])
        .await
        .expect("compare");
    assert!(found.all_match(100), "{found:?}");

    let mut wrong = leaves.clone();
    wrong[150][0] ^= 1;
    wrong[260][31] ^= 1;
    let found = b.store.compare_hashes(0, 0, &wrong).await.expect("compare");
    assert_eq!(found.first_mismatch, Some(150));
    assert!(!found.all_match(wrong.len()));

    // Expecting more hashes than are stored shows in the count.
    let mut longer = leaves.clone();
    longer.push([0; 32]);
    let found = b
        .store
        .compare_hashes(0, 0, &longer)
        .await
        .expect("compare");
    assert_eq!((found.stored, found.first_mismatch), (SIZE, None));
    assert!(!found.all_match(longer.len()));

    // A deleted stored hash shows in the count too.
    delete_stored_hash(&b, 0, 77).await;
    let found = b
        .store
        .compare_hashes(0, 0, &leaves)
        .await
        .expect("compare");
    assert_eq!((found.stored, found.first_mismatch), (SIZE - 1, None));
    assert!(!found.all_match(leaves.len()));
}

/// `hashes_match` over several levels at once (one query on PostgreSQL) says "all
/// match" exactly when every run, compared on its own, does.
async fn hashes_match_checks_every_run(b: Backend) {
    fill(&b.store, SIZE, 37).await;
    // Runs over a middle range of leaves, as the verifier asks: level l covers
    // [96 >> l, 288 >> l).
    let mut runs: Vec<(u8, u64, Vec<Hash>)> = Vec::new();
    for level in 0..6u8 {
        let (first, end) = (96u64 >> level, 288u64 >> level);
        let stored = b.store.hash_range(level, first, end).await.expect("stored");
        assert_eq!(stored.len() as u64, end - first);
        runs.push((level, first, stored));
    }
    let each = |runs: Vec<(u8, u64, Vec<Hash>)>| {
        let store = b.store.clone();
        async move {
            let mut all = true;
            for (level, first, hashes) in &runs {
                let found = store
                    .compare_hashes(*level, *first, hashes)
                    .await
                    .expect("compare");
                all &= found.all_match(hashes.len());
            }
            let together = store.hashes_match(&runs).await.expect("match");
            assert_eq!(together, all, "one query and run by run disagree");
            together
        }
    };
    assert!(each(runs.clone()).await);
    assert!(each(Vec::new()).await);
    for (run, at) in [(0, 0), (0, 191), (3, 5), (5, 2)] {
        let mut wrong = runs.clone();
        wrong[run].2[at][at % 32] ^= 0x80;
        assert!(!each(wrong).await, "run {run}, hash {at}");
    }
    // One expected hash more than stored, at the end of a run or before its start.
    let mut longer = runs.clone();
    longer[2].2.push([0; 32]);
    assert!(!each(longer).await);
    let mut earlier = runs.clone();
    earlier[4].1 -= 1;
    earlier[4].2.insert(0, [0; 32]);
    assert!(!each(earlier).await);
    // Levels that repeat are compared run by run.
    let mut split = runs.clone();
    let tail = split[0].2.split_off(100);
    split.push((0, 96 + 100, tail));
    assert!(each(split).await);

    // A deleted stored hash in one run shows in the count.
    delete_stored_hash(&b, 2, 40).await;
    assert!(!each(runs).await);
}

on_both_backends!(
    leaf_blocks_hold_the_stored_leaves,
    compare_hashes_finds_the_first_difference_and_gaps,
    hashes_match_checks_every_run,
);
