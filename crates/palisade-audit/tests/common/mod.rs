//! Shared set-up of the audit integration tests: a migrated database on each backend.

#![allow(dead_code)]

use palisade_audit::checkpoint::NoteSigner;
use palisade_audit::event::{EventLimits, NewEvent, PreparedEvent};
use palisade_audit::store::AuditStore;
use palisade_core::principal::TenantId;
use palisade_store::{Database, DatabaseConfig};
use palisade_testkit::postgres::TestDatabase;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

/// One test per backend for each named `async fn(Backend)`: `mod sqlite` and
/// `mod postgres`, each calling the case with a fresh migrated database.
/// (The file needs `#[macro_use] mod common;`.)
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $case() { super::$case(super::common::sqlite().await).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $case() { super::$case(super::common::postgres().await).await } )*
        }
    };
}

/// A migrated database and what keeps it alive.
pub struct Backend {
    pub db: Database,
    pub store: AuditStore,
    pub name: &'static str,
    _dir: Option<tempfile::TempDir>,
    pub pg: Option<TestDatabase>,
}

pub async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::connect(&DatabaseConfig::default(), dir.path())
        .await
        .expect("sqlite");
    db.migrate().await.expect("migrate");
    Backend {
        store: AuditStore::new(db.clone()),
        db,
        name: "sqlite",
        _dir: Some(dir),
        pg: None,
    }
}

pub async fn postgres() -> Backend {
    let pg = TestDatabase::create()
        .await
        .expect("PostgreSQL test schema");
    let db = Database::connect(
        &DatabaseConfig::postgres(pg.url()),
        std::path::Path::new("."),
    )
    .await
    .expect("postgres");
    db.migrate().await.expect("migrate");
    Backend {
        store: AuditStore::new(db.clone()),
        db,
        name: "postgres",
        _dir: None,
        pg: Some(pg),
    }
}

pub fn signer() -> NoteSigner {
    NoteSigner::from_seed("test-log", &[7u8; 32]).expect("signer")
}

pub const ORIGIN: &str = "test.local/audit";

/// A valid prepared event for tenant `tenant`, numbered `n`.
pub fn event(tenant: &str, n: u64) -> PreparedEvent {
    let new: NewEvent = serde_json::from_value(json!({
        "action": if n.is_multiple_of(2) { "auth.login" } else { "doc.read" },
        "actor": {"id": format!("user-{}", n % 7)},
        "resource": {"type": "doc", "id": format!("{}", n % 5)},
        "outcome": if n.is_multiple_of(3) { "failure" } else { "success" },
        "metadata": {"n": n},
    }))
    .expect("event");
    new.prepare(
        TenantId::parse(tenant).expect("tenant"),
        Uuid::now_v7(),
        OffsetDateTime::from_unix_timestamp(1_767_225_600 + n as i64).expect("time"),
        &EventLimits::default(),
    )
    .expect("valid event")
}

/// Appends `count` events in batches of `batch`.
pub async fn fill(store: &AuditStore, count: u64, batch: u64) {
    let signer = signer();
    let mut n = 0;
    while n < count {
        let events: Vec<_> = (n..(n + batch).min(count))
            .map(|i| event("default", i))
            .collect();
        store
            .append(&events, &signer, ORIGIN, 1)
            .await
            .expect("append");
        n += batch;
    }
}
