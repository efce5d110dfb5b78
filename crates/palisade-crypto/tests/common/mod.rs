//! Shared set-up: a keyring store on each backend (memory, a fresh SQLite
//! file, a fresh PostgreSQL schema), migrated, with what keeps it alive.

#![allow(dead_code)]

use palisade_crypto::KeyringStore;
use palisade_store::{Database, DatabaseConfig};
use palisade_testkit::postgres::TestDatabase;

/// A store and what keeps its storage alive.
pub struct Backend {
    pub store: KeyringStore,
    pub db: Option<Database>,
    pub name: &'static str,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<TestDatabase>,
}

impl Backend {
    /// Another handle on the same storage, as a second instance would have.
    pub fn store(&self) -> KeyringStore {
        match &self.db {
            Some(db) => KeyringStore::database(db.clone()),
            None => self.store.clone(),
        }
    }
}

pub fn memory() -> Backend {
    Backend {
        store: KeyringStore::memory(),
        db: None,
        name: "memory",
        _dir: None,
        _pg: None,
    }
}

pub async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::connect(&DatabaseConfig::default(), dir.path())
        .await
        .expect("sqlite");
    db.migrate().await.expect("migrate");
    Backend {
        store: KeyringStore::database(db.clone()),
        db: Some(db),
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
        store: KeyringStore::database(db.clone()),
        db: Some(db),
        name: "postgres",
        _dir: None,
        _pg: Some(pg),
    }
}

/// Runs each listed `async fn(Backend)` on every backend, as the tests
/// `memory::<name>`, `sqlite::<name>` and `postgres::<name>`.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::common::memory()).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::common::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::common::postgres().await).await;
                }
            )*
        }
    };
}
