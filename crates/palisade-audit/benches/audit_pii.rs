//! The cost of personal data in audit events: `AuditLog::append_batch_with_pii` of
//! events with a 5-field `pii` object (sealed under the subject's keyring key before
//! the leaf is built) beside the same events without `pii`, in the same run, on
//! embedded SQLite with the keyring's state in the same database and its KEKs in a
//! local key file, as `palisade serve` runs by default.
//!
//! - `single/*`: one event per append (the HTTP path), dominated by the commit.
//! - `batch_100/*`: 100 events per append, where the per-event sealing shows.
//! - `*_new_subject`: every event about a subject never seen before, so each seal
//!   first makes and stores that subject's key (the worst case).
//!
//! Run: `cargo bench -p palisade-audit --bench audit_pii`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use palisade_audit::checkpoint::NoteSigner;
use palisade_audit::event::{EventLimits, NewEvent};
use palisade_audit::log::{AuditLog, AuditSettings};
use palisade_audit::pii::{KeyringPii, PiiCipher, SubjectPii};
use palisade_core::SystemClock;
use palisade_core::principal::TenantId;
use palisade_crypto::kms::LocalKms;
use palisade_crypto::{Keyring, KeyringSettings, KeyringStore, Kms, MasterKey};
use palisade_store::{Database, DatabaseConfig};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::runtime::Runtime;

fn event(i: u64) -> NewEvent {
    serde_json::from_value(json!({
        "action": "user.profile.read",
        "actor": {"id": format!("agent-{}", i % 13), "type": "user", "ip": "203.0.113.7"},
        "resource": {"type": "user", "id": format!("u-{}", i % 100)},
        "outcome": "success",
        "request_id": "req-0123456789",
        "metadata": {"fields": 5, "reason": "support ticket"},
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Five fields of personal data about `subject`.
fn personal(subject: String, i: u64) -> SubjectPii {
    let pii = json!({
        "email": format!("person{i}@example.com"),
        "phone": "+44 20 7946 0958",
        "name": "Alice Pleasance Liddell",
        "birth_date": "1852-05-04",
        "address": "Christ Church, St Aldate's, Oxford OX1 1DP",
    });
    let serde_json::Value::Object(pii) = pii else {
        unreachable!()
    };
    SubjectPii::new(subject, pii)
}

#[derive(Clone, Copy)]
enum Kind {
    Plain,
    Pii,
    PiiNewSubject,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Pii => "pii_5_fields",
            Self::PiiNewSubject => "pii_5_fields_new_subject",
        }
    }
}

fn batch(kind: Kind, n: u64, counter: &AtomicU64) -> Vec<(TenantId, NewEvent, SubjectPii)> {
    (0..n)
        .map(|_| {
            let i = counter.fetch_add(1, Ordering::Relaxed);
            let personal = match kind {
                Kind::Plain => SubjectPii::none(),
                // 100 subjects, their keys made in the warm-up.
                Kind::Pii => personal(format!("user-{}", i % 100), i),
                Kind::PiiNewSubject => personal(format!("new-user-{i}"), i),
            };
            (TenantId::default_tenant(), event(i), personal)
        })
        .collect()
}

fn append_pii(c: &mut Criterion) {
    let rt = Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = rt.block_on(async {
        let db = Database::connect(&DatabaseConfig::default(), dir.path())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        db.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        let master = MasterKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let kms = Kms::Local(
            LocalKms::open(&dir.path().join("keys.sealed"), &master)
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let keyring = Keyring::open(
            kms,
            KeyringStore::database(db.clone()),
            SystemClock::shared(),
            KeyringSettings::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let log = AuditLog::start(
            palisade_audit::store::AuditStore::new(db),
            NoteSigner::generate("bench").unwrap_or_else(|e| panic!("{e}")),
            AuditSettings {
                origin: "bench.local/audit".into(),
                limits: EventLimits::default(),
            },
            SystemClock::shared(),
            None,
        );
        log.set_pii_cipher(Arc::new(KeyringPii::new(keyring.clone())));
        (log, keyring)
    });
    let (log, keyring) = log;
    let counter = AtomicU64::new(0);
    for (group_name, size) in [
        ("audit_pii_append/single", 1u64),
        ("audit_pii_append/batch_100", 100),
    ] {
        let mut group = c.benchmark_group(group_name);
        group.throughput(Throughput::Elements(size));
        group.sample_size(30);
        group.measurement_time(Duration::from_secs(6));
        group.warm_up_time(Duration::from_secs(2));
        for kind in [Kind::Plain, Kind::Pii, Kind::PiiNewSubject] {
            group.bench_function(BenchmarkId::from_parameter(kind.name()), |b| {
                b.iter_batched(
                    || batch(kind, size, &counter),
                    |events| {
                        rt.block_on(log.append_batch_with_pii(events))
                            .unwrap_or_else(|e| panic!("{e}"))
                    },
                    criterion::BatchSize::SmallInput,
                )
            });
        }
        group.finish();
    }

    // The CPU part alone: what the append adds per event before the store, i.e.
    // the canonical encoding of the 5-field object and its sealing under a cached
    // subject DEK (the leaf then holds ~2.2x the bytes, base64 of the envelope).
    let cipher = KeyringPii::new(keyring);
    let mut group = c.benchmark_group("audit_pii_seal");
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(4));
    let subject = personal("user-1".into(), 1);
    let id = uuid::Uuid::now_v7();
    group.bench_function("encode_and_seal_5_fields", |b| {
        b.iter(|| {
            let plaintext = serde_jcs::to_vec(&subject.pii).unwrap_or_else(|e| panic!("{e}"));
            let aad = palisade_audit::pii::pii_aad("default", "user-1", id);
            rt.block_on(cipher.seal("default", "user-1", &plaintext, &aad))
                .unwrap_or_else(|e| panic!("{e}"))
        })
    });
    group.finish();
}

criterion_group!(benches, append_pii);
criterion_main!(benches);
