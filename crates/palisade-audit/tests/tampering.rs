//! Tampering done directly in SQL, with the append-only triggers disabled as a
//! superuser could: the verifier must catch each change and name its index.

#[macro_use]
mod common;

use common::{Backend, fill, signer};
use palisade_audit::verify::{Tampering, Verifier, VerifyError};
use palisade_store::Database;

const SIZE: u64 = 300;

/// Runs SQL with the append-only guards switched off, as an administrator could.
async fn as_superuser(b: &Backend, statements: &[&str]) {
    match &b.db {
        Database::Postgres(db) => {
            let mut tx = db.primary().begin().await.expect("tx");
            for table in ["audit_entries", "audit_hash_runs", "audit_checkpoints"] {
                sqlx::query(&format!("ALTER TABLE {table} DISABLE TRIGGER USER"))
                    .execute(&mut *tx)
                    .await
                    .expect("disable");
            }
            for sql in statements {
                sqlx::query(sql).execute(&mut *tx).await.expect(sql);
            }
            for table in ["audit_entries", "audit_hash_runs", "audit_checkpoints"] {
                sqlx::query(&format!("ALTER TABLE {table} ENABLE TRIGGER USER"))
                    .execute(&mut *tx)
                    .await
                    .expect("enable");
            }
            tx.commit().await.expect("commit");
        }
        Database::Sqlite(db) => {
            let mut tx = db.writer().begin().await.expect("tx");
            let triggers: Vec<String> =
                sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                    .fetch_all(&mut *tx)
                    .await
                    .expect("triggers");
            for name in &triggers {
                sqlx::query(&format!("DROP TRIGGER {name}"))
                    .execute(&mut *tx)
                    .await
                    .expect("drop");
            }
            for sql in statements {
                sqlx::query(sql).execute(&mut *tx).await.expect(sql);
            }
            tx.commit().await.expect("commit");
        }
    }
}

async fn verify(b: &Backend) -> Result<u64, Tampering> {
    let key = signer().verifier();
    match Verifier::new(&b.store, &key).verify(None, |_, _| {}).await {
        Ok(v) => Ok(v.tree_size),
        Err(VerifyError::Tampered(t)) => Err(t),
        Err(e) => panic!("verification could not run: {e}"),
    }
}

/// The same, reading the fast pass in ranges of `chunk` leaves, so that tampering
/// lands inside a range, on its first or last leaf, or in one still being compared.
async fn verify_in_chunks(b: &Backend, chunk: u64) -> Result<u64, Tampering> {
    let key = signer().verifier();
    match Verifier::new(&b.store, &key)
        .with_chunk(chunk)
        .verify(None, |_, _| {})
        .await
    {
        Ok(v) => Ok(v.tree_size),
        Err(VerifyError::Tampered(t)) => Err(t),
        Err(e) => panic!("verification could not run: {e}"),
    }
}

/// Chunk sizes that put boundaries at 64, 128, ... (whole subtrees) and at
/// multiples of 50 (cutting subtrees).
const CHUNKS: [u64; 3] = [64, 50, 1];

async fn prepared(b: Backend) -> Backend {
    fill(&b.store, SIZE, 37).await;
    assert_eq!(verify(&b).await, Ok(SIZE), "an untouched log verifies");
    b
}

fn leaf_update(b: &Backend, idx: u64) -> String {
    // Flip the last byte of the leaf (a '}' becomes something else).
    match b.db {
        Database::Postgres(_) => format!(
            "UPDATE audit_entries SET leaf = overlay(leaf placing '\\x7e'::bytea from length(leaf) for 1) WHERE idx = {idx}"
        ),
        Database::Sqlite(_) => format!(
            "UPDATE audit_entries SET leaf = substr(leaf, 1, length(leaf) - 1) || x'7e' WHERE idx = {idx}"
        ),
    }
}

async fn a_changed_leaf_byte_is_named(b: Backend) {
    let b = prepared(b).await;
    as_superuser(&b, &[&leaf_update(&b, 117)]).await;
    assert_eq!(verify(&b).await, Err(Tampering::LeafChanged { index: 117 }));
}

async fn a_deleted_row_is_named(b: Backend) {
    let b = prepared(b).await;
    as_superuser(&b, &["DELETE FROM audit_entries WHERE idx = 42"]).await;
    assert_eq!(verify(&b).await.map_err(|t| t.index()), Err(42));
}

async fn swapped_rows_are_named(b: Backend) {
    let b = prepared(b).await;
    as_superuser(
        &b,
        &[
            "UPDATE audit_entries SET idx = -1 WHERE idx = 200",
            "UPDATE audit_entries SET idx = 200 WHERE idx = 201",
            "UPDATE audit_entries SET idx = 201 WHERE idx = -1",
        ],
    )
    .await;
    assert_eq!(verify(&b).await, Err(Tampering::LeafChanged { index: 200 }));
}

/// SQL that overwrites the stored hash of node `(level, position)` in place, inside
/// the run that holds it (the last run of its level starting at or before it).
fn replace_stored_hash(b: &Backend, level: u8, position: u64) -> String {
    let run = format!(
        "level = {level} AND first_idx = (SELECT max(first_idx) FROM audit_hash_runs \
         WHERE level = {level} AND first_idx <= {position})"
    );
    match b.db {
        Database::Postgres(_) => format!(
            "UPDATE audit_hash_runs SET hashes = overlay(hashes PLACING sha256('forged'::bytea) \
             FROM (({position} - first_idx) * 32 + 1)::int FOR 32) WHERE {run}"
        ),
        // `||` makes text of blobs; the cast takes the bytes back as a BLOB.
        Database::Sqlite(_) => format!(
            "UPDATE audit_hash_runs SET hashes = CAST(substr(hashes, 1, ({position} - first_idx) * 32) \
             || zeroblob(32) || substr(hashes, ({position} - first_idx) * 32 + 33) AS BLOB) WHERE {run}"
        ),
    }
}

async fn a_replaced_stored_hash_is_named(b: Backend) {
    let b = prepared(b).await;
    // Level 3, position 5 covers leaves 40..48.
    as_superuser(&b, &[&replace_stored_hash(&b, 3, 5)]).await;
    assert_eq!(
        verify(&b).await,
        Err(Tampering::HashChanged {
            level: 3,
            position: 5,
            first_leaf: 40
        })
    );
}

async fn a_forged_checkpoint_signature_is_named(b: Backend) {
    let b = prepared(b).await;
    let latest = b
        .store
        .latest_checkpoint()
        .await
        .expect("read")
        .expect("checkpoint");
    // Keep the text, replace the signature with another key's.
    let forger =
        palisade_audit::checkpoint::NoteSigner::from_seed("test-log", &[9u8; 32]).expect("forger");
    let body = latest
        .note
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .to_owned()
        + "\n";
    let forged = forger.sign_note(&body).expect("sign").replace('\'', "''");
    as_superuser(
        &b,
        &[&format!(
            "UPDATE audit_checkpoints SET note = '{forged}' WHERE tree_size = {SIZE}"
        )],
    )
    .await;
    assert_eq!(
        verify(&b).await,
        Err(Tampering::BadSignature { tree_size: SIZE })
    );
}

async fn a_rewritten_history_fails_against_a_saved_checkpoint(b: Backend) {
    let b = prepared(b).await;
    let saved = b
        .store
        .latest_checkpoint()
        .await
        .expect("read")
        .expect("checkpoint")
        .note;
    let key = signer().verifier();
    assert!(
        Verifier::new(&b.store, &key)
            .verify(Some(&saved), |_, _| {})
            .await
            .is_ok()
    );
    let forged = palisade_audit::checkpoint::Checkpoint {
        origin: common::ORIGIN.into(),
        size: 10,
        root: [0u8; 32],
    }
    .sign(&signer())
    .expect("sign");
    let result = Verifier::new(&b.store, &key)
        .verify(Some(&forged), |_, _| {})
        .await;
    assert!(
        matches!(
            result,
            Err(VerifyError::Tampered(Tampering::Inconsistent {
                tree_size: 10
            }))
        ),
        "{result:?}"
    );
}

async fn chunked_reads_verify_an_untouched_log(b: Backend) {
    let b = prepared(b).await;
    for chunk in CHUNKS {
        assert_eq!(verify_in_chunks(&b, chunk).await, Ok(SIZE), "chunk {chunk}");
    }
}

async fn a_changed_leaf_is_named_wherever_it_falls_in_a_range(b: Backend) {
    // 127 is the last leaf of a 64-leaf range, 128 the first of the next, 150 the
    // first of a 50-leaf range: each is named exactly, whatever the range size.
    for index in [127, 128, 150, 161] {
        let b = prepared(common_backend(&b).await).await;
        as_superuser(&b, &[&leaf_update(&b, index)]).await;
        for chunk in CHUNKS {
            assert_eq!(
                verify_in_chunks(&b, chunk).await,
                Err(Tampering::LeafChanged { index }),
                "index {index}, chunk {chunk}"
            );
        }
    }
}

async fn a_replaced_leaf_hash_is_named_in_a_later_range(b: Backend) {
    let b = prepared(b).await;
    // The leaf bytes are intact, the stored level-0 hash of 192 is not.
    as_superuser(&b, &[&replace_stored_hash(&b, 0, 192)]).await;
    for chunk in CHUNKS {
        assert_eq!(
            verify_in_chunks(&b, chunk).await,
            Err(Tampering::LeafChanged { index: 192 }),
            "chunk {chunk}"
        );
    }
}

async fn a_replaced_interior_hash_is_named_across_ranges(b: Backend) {
    // Level 3, position 5 covers leaves 40..48; level 7, position 1 covers 128..256,
    // more than any range holds.
    for (level, position) in [(3u8, 5u64), (7, 1)] {
        let b = prepared(common_backend(&b).await).await;
        as_superuser(&b, &[&replace_stored_hash(&b, level, position)]).await;
        for chunk in CHUNKS {
            assert_eq!(
                verify_in_chunks(&b, chunk).await,
                Err(Tampering::HashChanged {
                    level,
                    position,
                    first_leaf: position << level
                }),
                "node ({level}, {position}), chunk {chunk}"
            );
        }
    }
}

async fn a_deleted_row_at_a_range_boundary_is_named(b: Backend) {
    let b = prepared(b).await;
    as_superuser(&b, &["DELETE FROM audit_entries WHERE idx = 128"]).await;
    for chunk in CHUNKS {
        assert_eq!(
            verify_in_chunks(&b, chunk).await.map_err(|t| t.index()),
            Err(128),
            "chunk {chunk}"
        );
    }
}

async fn swapped_rows_across_a_range_boundary_are_named(b: Backend) {
    let b = prepared(b).await;
    as_superuser(
        &b,
        &[
            "UPDATE audit_entries SET idx = -1 WHERE idx = 127",
            "UPDATE audit_entries SET idx = 127 WHERE idx = 128",
            "UPDATE audit_entries SET idx = 128 WHERE idx = -1",
        ],
    )
    .await;
    for chunk in CHUNKS {
        assert_eq!(
            verify_in_chunks(&b, chunk).await,
            Err(Tampering::LeafChanged { index: 127 }),
            "chunk {chunk}"
        );
    }
}

/// A fresh backend of the same kind as `b`.
async fn common_backend(b: &Backend) -> Backend {
    match b.db {
        Database::Postgres(_) => common::postgres().await,
        Database::Sqlite(_) => common::sqlite().await,
    }
}

on_both_backends!(
    chunked_reads_verify_an_untouched_log,
    a_changed_leaf_is_named_wherever_it_falls_in_a_range,
    a_replaced_leaf_hash_is_named_in_a_later_range,
    a_replaced_interior_hash_is_named_across_ranges,
    a_deleted_row_at_a_range_boundary_is_named,
    swapped_rows_across_a_range_boundary_are_named,
    a_changed_leaf_byte_is_named,
    a_deleted_row_is_named,
    swapped_rows_are_named,
    a_replaced_stored_hash_is_named,
    a_forged_checkpoint_signature_is_named,
    a_rewritten_history_fails_against_a_saved_checkpoint,
);
