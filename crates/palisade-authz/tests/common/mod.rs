//! Shared set-up of the storage-backed tests: a migrated database on each
//! backend, policies to store, and raw SQL for rows the API would never write.

#![allow(dead_code)]

use palisade_authz::{
    Authz, Binding, DecisionCache, Engine, Grant, PolicySet, PolicyStore, RoleDef,
};
use palisade_core::ManualClock;
use palisade_store::{Database, DatabaseConfig, on_primary};
use palisade_testkit::postgres::TestDatabase;
use std::sync::Arc;
use std::time::Duration;

/// A migrated database and what keeps it alive (the temp dir, the schema).
pub struct Backend {
    pub db: Database,
    pub store: PolicyStore,
    pub name: &'static str,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<TestDatabase>,
}

pub async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::connect(&DatabaseConfig::default(), dir.path())
        .await
        .expect("sqlite");
    db.migrate().await.expect("migrate");
    Backend {
        store: PolicyStore::new(db.clone()),
        db,
        name: "sqlite",
        _dir: Some(dir),
        _pg: None,
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
        store: PolicyStore::new(db.clone()),
        db,
        name: "postgres",
        _dir: None,
        _pg: Some(pg),
    }
}

impl Backend {
    /// A fresh `Authz` instance on this database, as another server process
    /// sharing it would have (its own engine and cache).
    pub fn instance(&self) -> Authz {
        Authz::new(
            Engine::new(Arc::new(ManualClock::new())),
            PolicyStore::new(self.db.clone()),
            DecisionCache::new(10_000, Duration::from_secs(600)),
        )
    }

    /// Writes a row directly, bypassing every check of the store.
    pub async fn write_raw_row(&self, tenant: &str, version: i64, policy: &str) {
        let pg = "INSERT INTO authz_policies (tenant, version, policy, updated_at_ms) VALUES ($1, $2, $3, 0)";
        let lite = "INSERT INTO authz_policies (tenant, version, policy, updated_at_ms) VALUES (?, ?, ?, 0)";
        let written: Result<(), palisade_store::StoreError> = async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q.bind(tenant).bind(version).bind(policy),
                execute,
                |_r| Ok(())
            )
        }
        .await;
        written.expect("raw insert");
    }
}

/// `acme`'s policy: `alice` is an editor (doc:read, doc:write), `bob` a viewer.
pub fn editors(tenant: &str) -> PolicySet {
    PolicySet {
        tenant: tenant.into(),
        roles: vec![
            RoleDef {
                name: "viewer".into(),
                inherits: vec![],
                grants: vec![Grant::allow("doc:read")],
            },
            RoleDef {
                name: "editor".into(),
                inherits: vec!["viewer".into()],
                grants: vec![Grant::allow("doc:write")],
            },
        ],
        memberships: vec![],
        bindings: vec![
            Binding::new("b-alice", "alice", "editor"),
            Binding::new("b-bob", "bob", "viewer"),
        ],
    }
}

/// A role with no grants, to add in bulk.
pub fn empty_role(name: &str) -> RoleDef {
    RoleDef {
        name: name.into(),
        inherits: vec![],
        grants: vec![],
    }
}
