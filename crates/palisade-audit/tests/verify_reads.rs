//! The verifier's bulk reads on both backends: `leaf_block` returns exactly the
//! stored leaves of a range, and `compare_hashes` finds every stored hash that
//! differs or is missing.

#[macro_use]
mod common;

use common::{Backend, fill};
use palisade_audit::merkle::{Hash, leaf_hash};
use palisade_store::Database;

const SIZE: u64 = 300;

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
    let delete = "DELETE FROM audit_hashes WHERE level = 0 AND idx = 77";
    match &b.db {
        Database::Postgres(db) => {
            let mut tx = db.primary().begin().await.expect("tx");
            sqlx::query("ALTER TABLE audit_hashes DISABLE TRIGGER USER")
                .execute(&mut *tx)
                .await
                .expect("disable");
            sqlx::query(delete).execute(&mut *tx).await.expect("delete");
            tx.commit().await.expect("commit");
        }
        Database::Sqlite(db) => {
            sqlx::query("DROP TRIGGER audit_hashes_no_delete")
                .execute(db.writer())
                .await
                .expect("drop trigger");
            sqlx::query(delete)
                .execute(db.writer())
                .await
                .expect("delete");
        }
    }
    let found = b
        .store
        .compare_hashes(0, 0, &leaves)
        .await
        .expect("compare");
    assert_eq!((found.stored, found.first_mismatch), (SIZE - 1, None));
    assert!(!found.all_match(leaves.len()));
}

on_both_backends!(
    leaf_blocks_hold_the_stored_leaves,
    compare_hashes_finds_the_first_difference_and_gaps,
);
