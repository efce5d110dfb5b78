//! Personal data in audit events (crypto-shredding), on both backends with a real
//! keyring on the same database: `pii` is stored only as ciphertext, revealed to
//! readers who may see it, redacted for the others, erased for everyone once the
//! subject's key is destroyed, while the log, its proofs and its checkpoints still
//! verify. Bad input is a typed error naming the field, with nothing written.

#![cfg(feature = "keyring")]

#[macro_use]
mod common;

use common::{Backend, ORIGIN, signer};
use palisade_audit::checkpoint::Checkpoint;
use palisade_audit::event::{EventLimits, NewEvent};
use palisade_audit::log::{AuditError, AuditLog, AuditSettings};
use palisade_audit::merkle::{leaf_hash, verify_inclusion};
use palisade_audit::pii::{self, KeyringPii, PiiAccess, SubjectPii};
use palisade_audit::store::{EventFilter, Page, StoredEvent};
use palisade_audit::verify::Verifier;
use palisade_core::SystemClock;
use palisade_core::principal::TenantId;
use palisade_crypto::kms::LocalKms;
use palisade_crypto::{Keyring, KeyringSettings, KeyringStore, Kms, MasterKey};
use palisade_store::Database;
use serde_json::{Value, json};
use std::sync::Arc;

const ALICE_EMAIL: &str = "alice.liddell@example.com";
const ALICE_PHONE: &str = "+44 20 7946 0958";
const BOB_EMAIL: &str = "bob.builder@example.org";

struct Setup {
    log: AuditLog,
    keyring: Keyring,
    b: Backend,
    _dir: tempfile::TempDir,
}

/// The log on the backend, and a keyring whose state lives in the same database
/// and whose KEKs are in a local key file.
async fn setup(b: Backend, with_cipher: bool) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let master = MasterKey::generate().expect("master key");
    let kms = Kms::Local(LocalKms::open(&dir.path().join("keys.sealed"), &master).expect("kms"));
    let keyring = Keyring::open(
        kms,
        KeyringStore::database(b.db.clone()),
        SystemClock::shared(),
        KeyringSettings::default(),
    )
    .await
    .expect("keyring");
    let log = AuditLog::start(
        b.store.clone(),
        signer(),
        AuditSettings {
            origin: ORIGIN.into(),
            limits: EventLimits::default(),
        },
        SystemClock::shared(),
        None,
    );
    if with_cipher {
        assert!(log.set_pii_cipher(Arc::new(KeyringPii::new(keyring.clone()))));
        assert!(
            !log.set_pii_cipher(Arc::new(KeyringPii::new(keyring.clone()))),
            "the first cipher stays"
        );
    }
    Setup {
        log,
        keyring,
        b,
        _dir: dir,
    }
}

fn event(action: &str) -> NewEvent {
    serde_json::from_value(json!({
        "action": action,
        "actor": {"id": "support-agent-7"},
        "resource": {"type": "user"},
        "outcome": "success",
    }))
    .expect("event")
}

fn personal(value: Value) -> SubjectPii {
    serde_json::from_value(value).expect("subject and pii")
}

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

/// Every stored leaf, oldest first, straight from the table.
async fn raw_leaves(db: &Database) -> Vec<Vec<u8>> {
    let sql = "SELECT leaf FROM audit_entries ORDER BY idx";
    match db {
        Database::Sqlite(db) => sqlx::query_scalar(sql).fetch_all(db.reader()).await,
        Database::Postgres(db) => sqlx::query_scalar(sql).fetch_all(db.primary()).await,
    }
    .expect("leaves")
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn read(log: &AuditLog, id: uuid::Uuid, access: PiiAccess) -> StoredEvent {
    let mut events = vec![log.event(id).await.expect("read").expect("stored")];
    log.reveal_pii(&mut events, access).await;
    events.pop().expect("one event")
}

on_both_backends!(
    pii_is_stored_sealed_revealed_redacted_and_erased_while_the_log_verifies,
    bad_pii_is_refused_by_field_and_nothing_is_written,
    without_a_cipher_pii_is_refused_and_never_stored,
);

async fn pii_is_stored_sealed_revealed_redacted_and_erased_while_the_log_verifies(b: Backend) {
    let s = setup(b, true).await;
    let receipt = s
        .log
        .append_batch_with_pii(vec![
            (
                tenant(),
                event("user.profile.read"),
                personal(json!({
                    "subject": "alice",
                    "pii": {"email": ALICE_EMAIL, "phone": ALICE_PHONE, "address": {"city": "Oxford"}},
                })),
            ),
            (
                tenant(),
                event("user.profile.read"),
                personal(json!({"subject": "bob", "pii": {"email": BOB_EMAIL}})),
            ),
            (tenant(), event("user.list"), SubjectPii::none()),
        ])
        .await
        .expect("append");
    assert_eq!(receipt.indexes, Some(vec![0, 1, 2]));
    let [alice, bob, plain] = receipt.ids[..] else {
        panic!("three ids");
    };

    // Stored: ciphertext only, never the plaintext; the subject in clear.
    let leaves = raw_leaves(&s.b.db).await;
    assert_eq!(leaves.len(), 3);
    for leaf in &leaves {
        for secret in [ALICE_EMAIL, ALICE_PHONE, "Oxford", BOB_EMAIL] {
            assert!(!contains(leaf, secret), "{} leaf holds {secret}", s.b.name);
        }
    }
    assert!(
        contains(&leaves[0], r#""pii":"pal1."#),
        "sealed in the leaf"
    );
    assert!(contains(&leaves[0], r#""subject":"alice""#));
    assert!(!contains(&leaves[2], r#""pii""#), "no pii, no field");

    // Read with access: decrypted; without: redacted.
    let revealed = read(&s.log, alice, PiiAccess::Reveal).await;
    assert_eq!(
        revealed.pii,
        Some(json!({"email": ALICE_EMAIL, "phone": ALICE_PHONE, "address": {"city": "Oxford"}}))
    );
    assert_eq!(pii::leaf_view(&revealed)["pii"]["email"], ALICE_EMAIL);
    assert_eq!(revealed.leaf, leaves[0], "the leaf itself is untouched");
    let redacted = read(&s.log, alice, PiiAccess::Redact).await;
    assert_eq!(redacted.pii, Some(pii::redacted()));
    assert_eq!(pii::leaf_view(&redacted)["pii"], pii::redacted());
    let unresolved = s.log.event(alice).await.expect("read").expect("stored");
    assert_eq!(
        pii::leaf_view(&unresolved)["pii"],
        pii::redacted(),
        "fail closed"
    );
    let plain_event = read(&s.log, plain, PiiAccess::Reveal).await;
    assert_eq!(plain_event.pii, None);
    assert!(pii::leaf_view(&plain_event).get("pii").is_none());

    // Queries resolve the same way.
    let filter = EventFilter {
        tenant: "default".into(),
        ..EventFilter::default()
    };
    let mut page = s
        .log
        .query(
            &filter,
            Page {
                before: None,
                limit: 10,
            },
        )
        .await
        .expect("query");
    s.log.reveal_pii(&mut page, PiiAccess::Reveal).await;
    let views: Vec<Value> = page
        .iter()
        .map(|e| pii::leaf_view(e)["pii"].clone())
        .collect();
    assert_eq!(
        views,
        vec![
            Value::Null,
            json!({"email": BOB_EMAIL}),
            json!({"email": ALICE_EMAIL, "phone": ALICE_PHONE, "address": {"city": "Oxford"}}),
        ]
    );

    // Shredding alice (as `DELETE /v1/crypto/subjects/alice` in tenant `default`
    // does) erases her data for every reader and leaves bob's alone.
    assert_eq!(s.keyring.shred_subject("default/alice").await, Ok(true));
    for access in [PiiAccess::Reveal, PiiAccess::Redact] {
        assert_eq!(
            read(&s.log, alice, access).await.pii,
            Some(pii::erased()),
            "{access:?}"
        );
    }
    assert_eq!(
        read(&s.log, bob, PiiAccess::Reveal).await.pii,
        Some(json!({"email": BOB_EMAIL}))
    );
    // A later event about alice gets a new key and is readable.
    let later = s
        .log
        .append_batch_with_pii(vec![(
            tenant(),
            event("user.profile.update"),
            personal(json!({"subject": "alice", "pii": {"email": "new@example.com"}})),
        )])
        .await
        .expect("append after shredding");
    assert_eq!(
        read(&s.log, later.ids[0], PiiAccess::Reveal).await.pii,
        Some(json!({"email": "new@example.com"}))
    );
    assert_eq!(
        read(&s.log, alice, PiiAccess::Reveal).await.pii,
        Some(pii::erased())
    );

    // The log still verifies, and the erased event's inclusion proof checks
    // against the signed checkpoint: the leaf hashed the ciphertext.
    let verifier = signer().verifier();
    let verified = Verifier::new(&s.b.store, &verifier)
        .verify(None, |_, _| {})
        .await
        .expect("the log verifies after shredding");
    assert_eq!(verified.tree_size, 4);
    let note = s.log.checkpoint().await.expect("read").expect("checkpoint");
    let checkpoint = Checkpoint::open(&note.note, &verifier).expect("signed");
    assert_eq!(checkpoint.size, 4);
    let (leaf, proof) = s.log.inclusion_proof(0, 4).await.expect("proof");
    assert_eq!(leaf, leaf_hash(&leaves[0]));
    assert_eq!(
        verify_inclusion(0, 4, &leaf, &proof, &checkpoint.root),
        Ok(())
    );
    let old = s.log.consistency_proof(3, 4).await.expect("consistency");
    assert!(!old.is_empty());
}

async fn bad_pii_is_refused_by_field_and_nothing_is_written(b: Backend) {
    let s = setup(b, true).await;
    let cases = [
        (json!({"pii": {"email": ALICE_EMAIL}}), "pii"),
        (
            json!({"subject": "a\nb", "pii": {"email": ALICE_EMAIL}}),
            "subject",
        ),
        (
            json!({"subject": "", "pii": {"email": ALICE_EMAIL}}),
            "subject",
        ),
        (
            json!({"subject": "s".repeat(181), "pii": {"x": 1}}),
            "subject",
        ),
        (json!({"subject": "alice", "pii": ALICE_EMAIL}), "pii"),
        (json!({"subject": "alice", "pii": [ALICE_EMAIL]}), "pii"),
        (
            json!({"subject": "alice", "pii": {"blob": "x".repeat(9 * 1024)}}),
            "pii",
        ),
    ];
    for (input, field) in cases {
        // The bad event second in the batch: the good first one is not written either.
        let result = s
            .log
            .append_batch_with_pii(vec![
                (
                    tenant(),
                    event("user.read"),
                    personal(json!({"subject": "bob", "pii": {"email": BOB_EMAIL}})),
                ),
                (tenant(), event("user.read"), personal(input.clone())),
            ])
            .await;
        match result {
            Err(AuditError::Invalid { index: 1, field: f }) => {
                assert_eq!(f.field, field, "{input}");
                assert!(!f.message.contains(ALICE_EMAIL), "{f}");
            }
            other => panic!("{input}: {other:?}"),
        }
    }
    // An unknown member is not silently dropped.
    assert!(serde_json::from_value::<SubjectPii>(json!({"pi": {}})).is_err());
    assert_eq!(s.log.tree_size().await.expect("size"), 0);
    assert!(raw_leaves(&s.b.db).await.is_empty());
}

async fn without_a_cipher_pii_is_refused_and_never_stored(b: Backend) {
    let s = setup(b, false).await;
    assert!(!s.log.has_pii_cipher());
    let result = s
        .log
        .append_batch_with_pii(vec![(
            tenant(),
            event("user.read"),
            personal(json!({"subject": "alice", "pii": {"email": ALICE_EMAIL}})),
        )])
        .await;
    assert!(
        matches!(&result, Err(AuditError::Invalid { index: 0, field }) if field.field == "pii"),
        "{result:?}"
    );
    assert!(raw_leaves(&s.b.db).await.is_empty());
    // A subject alone needs no cipher, and events without pii are unaffected.
    s.log
        .append_batch_with_pii(vec![(
            tenant(),
            event("user.read"),
            personal(json!({"subject": "alice"})),
        )])
        .await
        .expect("subject only");
    let leaves = raw_leaves(&s.b.db).await;
    assert!(contains(&leaves[0], r#""subject":"alice""#));
    assert!(!contains(&leaves[0], r#""pii""#));
}
