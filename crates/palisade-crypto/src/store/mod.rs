//! Where the keyring's state is kept: key names and versions with their
//! states and usage counters, subject keys (wrapped) and blind-index keys
//! (wrapped). Key material is only ever stored wrapped by the KMS.
//!
//! One enum of backends: in memory (tests, ephemeral keyrings) or the
//! instance's database (SQLite or PostgreSQL, tables of `0005_crypto.sql`),
//! so state survives restarts and is shared by instances.

mod memory;
mod sql;

pub use memory::MemoryStore;
pub use sql::SqlStore;

use crate::error::Result;
use serde::Serialize;

/// Whether a key version still encrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// The newest version: new data keys are wrapped with it.
    Active,
    /// Replaced by a newer version: still unwraps, never wraps new keys.
    Retired,
}

impl VersionState {
    /// The state as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Retired => "retired",
        }
    }

    /// Parses a stored state.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Self::Active),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }
}

/// One version of a keyring key, as metadata (never material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    /// The version number, from 1.
    pub version: u32,
    /// Whether it encrypts.
    pub state: VersionState,
    /// Data keys wrapped with it so far (reserved before each wrap, so never
    /// below the true count).
    pub usage: u64,
    /// When it was made, Unix milliseconds.
    pub created_at_ms: i64,
}

/// A keyring key and its versions, as metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// The key's name.
    pub name: String,
    /// Its versions, oldest first.
    pub versions: Vec<VersionInfo>,
}

impl KeyInfo {
    /// The version that encrypts: the newest active one.
    pub fn current(&self) -> Option<&VersionInfo> {
        self.versions
            .iter()
            .rev()
            .find(|v| v.state == VersionState::Active)
    }
}

/// A subject's key, wrapped by a keyring key (`palisade-subjects`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectKeyRecord {
    /// The subject id.
    pub subject: String,
    /// Which key of the subject this is: a subject shredded and then used
    /// again gets a new generation, so its old data stays erased.
    pub generation: u32,
    /// The keyring key that wraps it.
    pub kek_name: String,
    /// The version of that key.
    pub kek_version: u32,
    /// The wrapped key; `None` once destroyed.
    pub wrapped: Option<Vec<u8>>,
    /// When it was made, Unix milliseconds.
    pub created_at_ms: i64,
}

/// A blind index's HMAC key, wrapped by a keyring key (`palisade-index`),
/// with the settings its indexes were computed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexKeyRecord {
    /// The index name.
    pub name: String,
    /// The keyring key that wraps it.
    pub kek_name: String,
    /// The version of that key.
    pub kek_version: u32,
    /// The wrapped HMAC key.
    pub wrapped: Vec<u8>,
    /// The index settings (normalization, length) as JSON.
    pub settings: String,
    /// When it was made, Unix milliseconds.
    pub created_at_ms: i64,
}

/// What a usage reservation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// One use was counted; the version may wrap one key.
    Reserved,
    /// The version is at its limit or no longer active: nothing was counted.
    Refused,
}

/// The keyring's storage. Cheap to clone.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum KeyringStore {
    /// In this process only.
    Memory(MemoryStore),
    /// In the instance's database (SQLite or PostgreSQL).
    Sql(SqlStore),
}

impl KeyringStore {
    /// A store in memory.
    pub fn memory() -> Self {
        Self::Memory(MemoryStore::default())
    }

    /// A store in `db` (migrated: the tables come from `0005_crypto.sql`).
    pub fn database(db: palisade_store::Database) -> Self {
        Self::Sql(SqlStore::new(db))
    }

    /// Every key with its versions, sorted by name.
    pub async fn load_keys(&self) -> Result<Vec<KeyInfo>> {
        match self {
            Self::Memory(store) => Ok(store.load_keys()),
            Self::Sql(store) => store.load_keys().await,
        }
    }

    /// Records key `name` with `version` active, unless the key exists.
    pub async fn insert_key(&self, name: &str, version: u32, now_ms: i64) -> Result<()> {
        match self {
            Self::Memory(store) => {
                store.insert_key(name, version, now_ms);
                Ok(())
            }
            Self::Sql(store) => store.insert_key(name, version, now_ms).await,
        }
    }

    /// Records `version` of `name` as the active one and retires the others.
    /// Recording a version that exists only retires the older ones.
    pub async fn add_version(&self, name: &str, version: u32, now_ms: i64) -> Result<()> {
        match self {
            Self::Memory(store) => {
                store.add_version(name, version, now_ms);
                Ok(())
            }
            Self::Sql(store) => store.add_version(name, version, now_ms).await,
        }
    }

    /// Counts one use of `version` of `name` if it is active and below `limit`.
    pub async fn reserve_use(&self, name: &str, version: u32, limit: u64) -> Result<Reservation> {
        match self {
            Self::Memory(store) => Ok(store.reserve_use(name, version, limit)),
            Self::Sql(store) => store.reserve_use(name, version, limit).await,
        }
    }

    /// A subject's key of `generation`, or its newest when `None`.
    pub async fn subject_key(
        &self,
        subject: &str,
        generation: Option<u32>,
    ) -> Result<Option<SubjectKeyRecord>> {
        match self {
            Self::Memory(store) => Ok(store.subject_key(subject, generation)),
            Self::Sql(store) => store.subject_key(subject, generation).await,
        }
    }

    /// Stores a new subject key; false when that generation exists already
    /// (another instance made it first: use theirs).
    pub async fn insert_subject_key(&self, record: &SubjectKeyRecord) -> Result<bool> {
        match self {
            Self::Memory(store) => Ok(store.insert_subject_key(record)),
            Self::Sql(store) => store.insert_subject_key(record).await,
        }
    }

    /// Destroys every key of `subject`; true if one was still there.
    pub async fn destroy_subject(&self, subject: &str, now_ms: i64) -> Result<bool> {
        match self {
            Self::Memory(store) => Ok(store.destroy_subject(subject, now_ms)),
            Self::Sql(store) => store.destroy_subject(subject, now_ms).await,
        }
    }

    /// The key of blind index `name`.
    pub async fn index_key(&self, name: &str) -> Result<Option<IndexKeyRecord>> {
        match self {
            Self::Memory(store) => Ok(store.index_key(name)),
            Self::Sql(store) => store.index_key(name).await,
        }
    }

    /// Stores the key of a new blind index; false when it exists already.
    pub async fn insert_index_key(&self, record: &IndexKeyRecord) -> Result<bool> {
        match self {
            Self::Memory(store) => Ok(store.insert_index_key(record)),
            Self::Sql(store) => store.insert_index_key(record).await,
        }
    }
}
