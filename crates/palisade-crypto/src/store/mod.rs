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

/// Where a rewrap job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RewrapState {
    /// Work remains (or the process running it stopped: it resumes).
    Running,
    /// Everything stored under the key uses the target version or newer.
    Done,
    /// Stopped on an error (in `error`); starting a new job retries.
    Failed,
}

impl RewrapState {
    /// The state as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored state.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "running" => Some(Self::Running),
            "done" => Some(Self::Done),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// Which stored keys a rewrap job is going through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RewrapPhase {
    /// Subject keys, by (subject, generation).
    Subjects,
    /// Blind-index keys, by name.
    Indexes,
    /// Nothing left.
    Finished,
}

impl RewrapPhase {
    /// The phase as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subjects => "subjects",
            Self::Indexes => "indexes",
            Self::Finished => "finished",
        }
    }

    /// Parses a stored phase.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "subjects" => Some(Self::Subjects),
            "indexes" => Some(Self::Indexes),
            "finished" => Some(Self::Finished),
            _ => None,
        }
    }
}

/// A rewrap job: re-wraps the keys stored under keyring key `kek_name`
/// (subject keys, blind-index keys) with version `target_version` or newer,
/// resumably: the cursor is the last row done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RewrapJob {
    /// The job's id (a UUIDv7).
    pub id: String,
    /// The keyring key whose stored keys are rewrapped.
    pub kek_name: String,
    /// The version they are brought to (the newest when the job started).
    pub target_version: u32,
    /// Running, done or failed.
    pub state: RewrapState,
    /// Which stored keys it is going through.
    pub phase: RewrapPhase,
    /// Last key done in the phase (subject id or index name).
    #[serde(skip)]
    pub cursor_key: String,
    /// Last subject key generation done.
    #[serde(skip)]
    pub cursor_generation: u32,
    /// Keys to rewrap when the job started.
    pub total: u64,
    /// Keys rewrapped so far.
    pub rewrapped: u64,
    /// When it started, Unix ms.
    pub started_at_ms: i64,
    /// When it last made progress, Unix ms.
    pub updated_at_ms: i64,
    /// Why it failed.
    pub error: Option<String>,
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

    /// Stored keys (live subject keys and index keys) wrapped by `kek_name`
    /// below `version`.
    pub async fn count_wrapped_below(&self, kek_name: &str, version: u32) -> Result<u64> {
        match self {
            Self::Memory(store) => Ok(store.count_wrapped_below(kek_name, version)),
            Self::Sql(store) => store.count_wrapped_below(kek_name, version).await,
        }
    }

    /// Up to `limit` live subject keys wrapped by `kek_name` below `version`,
    /// after `(subject, generation)`, in that order.
    pub async fn subject_keys_below(
        &self,
        kek_name: &str,
        version: u32,
        after: (&str, u32),
        limit: usize,
    ) -> Result<Vec<SubjectKeyRecord>> {
        match self {
            Self::Memory(store) => Ok(store.subject_keys_below(kek_name, version, after, limit)),
            Self::Sql(store) => {
                store
                    .subject_keys_below(kek_name, version, after, limit)
                    .await
            }
        }
    }

    /// Replaces a subject key's wrap if it is still live and wrapped by
    /// `old_version` (a shredding or another rewrap in between wins).
    pub async fn replace_subject_wrap(
        &self,
        subject: &str,
        generation: u32,
        old_version: u32,
        new_version: u32,
        wrapped: &[u8],
    ) -> Result<bool> {
        match self {
            Self::Memory(store) => Ok(store.replace_subject_wrap(
                subject,
                generation,
                old_version,
                new_version,
                wrapped,
            )),
            Self::Sql(store) => {
                store
                    .replace_subject_wrap(subject, generation, old_version, new_version, wrapped)
                    .await
            }
        }
    }

    /// Up to `limit` index keys wrapped by `kek_name` below `version`, after
    /// `after` by name.
    pub async fn index_keys_below(
        &self,
        kek_name: &str,
        version: u32,
        after: &str,
        limit: usize,
    ) -> Result<Vec<IndexKeyRecord>> {
        match self {
            Self::Memory(store) => Ok(store.index_keys_below(kek_name, version, after, limit)),
            Self::Sql(store) => {
                store
                    .index_keys_below(kek_name, version, after, limit)
                    .await
            }
        }
    }

    /// Replaces an index key's wrap if it is still wrapped by `old_version`.
    pub async fn replace_index_wrap(
        &self,
        name: &str,
        old_version: u32,
        new_version: u32,
        wrapped: &[u8],
    ) -> Result<bool> {
        match self {
            Self::Memory(store) => {
                Ok(store.replace_index_wrap(name, old_version, new_version, wrapped))
            }
            Self::Sql(store) => {
                store
                    .replace_index_wrap(name, old_version, new_version, wrapped)
                    .await
            }
        }
    }

    /// Stores a new rewrap job.
    pub async fn insert_rewrap_job(&self, job: &RewrapJob) -> Result<()> {
        match self {
            Self::Memory(store) => {
                store.put_rewrap_job(job);
                Ok(())
            }
            Self::Sql(store) => store.insert_rewrap_job(job).await,
        }
    }

    /// Saves a rewrap job's progress.
    pub async fn update_rewrap_job(&self, job: &RewrapJob) -> Result<()> {
        match self {
            Self::Memory(store) => {
                store.put_rewrap_job(job);
                Ok(())
            }
            Self::Sql(store) => store.update_rewrap_job(job).await,
        }
    }

    /// A rewrap job by id.
    pub async fn rewrap_job(&self, id: &str) -> Result<Option<RewrapJob>> {
        match self {
            Self::Memory(store) => Ok(store.rewrap_job(id)),
            Self::Sql(store) => store.rewrap_job(id).await,
        }
    }

    /// Rewrap jobs still running (to resume after a restart), oldest first.
    pub async fn running_rewrap_jobs(&self) -> Result<Vec<RewrapJob>> {
        match self {
            Self::Memory(store) => Ok(store.running_rewrap_jobs()),
            Self::Sql(store) => store.running_rewrap_jobs().await,
        }
    }
}
