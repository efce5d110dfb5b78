//! The keyring's state in this process only: for tests, benchmarks and
//! ephemeral keyrings. Same semantics as the database backend.

use super::{
    IndexKeyRecord, KeyInfo, Reservation, RewrapJob, RewrapState, SubjectKeyRecord, VersionInfo,
    VersionState,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// State in memory. Cheap to clone; clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    keys: BTreeMap<String, Vec<VersionInfo>>,
    subjects: BTreeMap<(String, u32), SubjectKeyRecord>,
    indexes: BTreeMap<String, IndexKeyRecord>,
    rewrap_jobs: BTreeMap<String, RewrapJob>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked holding it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn load_keys(&self) -> Vec<KeyInfo> {
        self.lock()
            .keys
            .iter()
            .map(|(name, versions)| KeyInfo {
                name: name.clone(),
                versions: versions.clone(),
            })
            .collect()
    }

    pub(super) fn insert_key(&self, name: &str, version: u32, now_ms: i64) {
        self.lock().keys.entry(name.to_owned()).or_insert_with(|| {
            vec![VersionInfo {
                version,
                state: VersionState::Active,
                usage: 0,
                created_at_ms: now_ms,
            }]
        });
    }

    pub(super) fn add_version(&self, name: &str, version: u32, now_ms: i64) {
        let mut state = self.lock();
        let versions = state.keys.entry(name.to_owned()).or_default();
        if !versions.iter().any(|v| v.version == version) {
            versions.push(VersionInfo {
                version,
                state: VersionState::Active,
                usage: 0,
                created_at_ms: now_ms,
            });
            versions.sort_by_key(|v| v.version);
        }
        // As in the database: everything below the newest version retires,
        // so racing rotations leave one active version.
        let newest = versions.iter().map(|v| v.version).max().unwrap_or(version);
        for v in versions.iter_mut().filter(|v| v.version < newest) {
            v.state = VersionState::Retired;
        }
    }

    pub(super) fn reserve_use(&self, name: &str, version: u32, limit: u64) -> Reservation {
        let mut state = self.lock();
        let found = state
            .keys
            .get_mut(name)
            .and_then(|vs| vs.iter_mut().find(|v| v.version == version));
        match found {
            Some(v) if v.state == VersionState::Active && v.usage < limit => {
                v.usage += 1;
                Reservation::Reserved
            }
            _ => Reservation::Refused,
        }
    }

    pub(super) fn subject_key(
        &self,
        subject: &str,
        generation: Option<u32>,
    ) -> Option<SubjectKeyRecord> {
        let state = self.lock();
        match generation {
            Some(generation) => state
                .subjects
                .get(&(subject.to_owned(), generation))
                .cloned(),
            None => state
                .subjects
                .range((subject.to_owned(), 0)..=(subject.to_owned(), u32::MAX))
                .next_back()
                .map(|(_, record)| record.clone()),
        }
    }

    pub(super) fn insert_subject_key(&self, record: &SubjectKeyRecord) -> bool {
        let mut state = self.lock();
        let key = (record.subject.clone(), record.generation);
        if state.subjects.contains_key(&key) {
            return false;
        }
        state.subjects.insert(key, record.clone());
        true
    }

    pub(super) fn destroy_subject(&self, subject: &str, _now_ms: i64) -> bool {
        let mut state = self.lock();
        let mut destroyed = false;
        for (_, record) in state
            .subjects
            .range_mut((subject.to_owned(), 0)..=(subject.to_owned(), u32::MAX))
        {
            destroyed |= record.wrapped.take().is_some();
        }
        destroyed
    }

    pub(super) fn index_key(&self, name: &str) -> Option<IndexKeyRecord> {
        self.lock().indexes.get(name).cloned()
    }

    pub(super) fn count_wrapped_below(&self, kek_name: &str, version: u32) -> u64 {
        let state = self.lock();
        let subjects = state
            .subjects
            .values()
            .filter(|r| r.kek_name == kek_name && r.kek_version < version && r.wrapped.is_some())
            .count();
        let indexes = state
            .indexes
            .values()
            .filter(|r| r.kek_name == kek_name && r.kek_version < version)
            .count();
        (subjects + indexes) as u64
    }

    pub(super) fn subject_keys_below(
        &self,
        kek_name: &str,
        version: u32,
        after: (&str, u32),
        limit: usize,
    ) -> Vec<SubjectKeyRecord> {
        let state = self.lock();
        state
            .subjects
            .iter()
            .filter(|((subject, generation), _)| (subject.as_str(), *generation) > after)
            .map(|(_, r)| r)
            .filter(|r| r.kek_name == kek_name && r.kek_version < version && r.wrapped.is_some())
            .take(limit)
            .cloned()
            .collect()
    }

    pub(super) fn replace_subject_wrap(
        &self,
        subject: &str,
        generation: u32,
        old_version: u32,
        new_version: u32,
        wrapped: &[u8],
    ) -> bool {
        let mut state = self.lock();
        match state.subjects.get_mut(&(subject.to_owned(), generation)) {
            Some(r) if r.wrapped.is_some() && r.kek_version == old_version => {
                r.kek_version = new_version;
                r.wrapped = Some(wrapped.to_vec());
                true
            }
            _ => false,
        }
    }

    pub(super) fn index_keys_below(
        &self,
        kek_name: &str,
        version: u32,
        after: &str,
        limit: usize,
    ) -> Vec<IndexKeyRecord> {
        let state = self.lock();
        state
            .indexes
            .values()
            .filter(|r| {
                r.name.as_str() > after && r.kek_name == kek_name && r.kek_version < version
            })
            .take(limit)
            .cloned()
            .collect()
    }

    pub(super) fn replace_index_wrap(
        &self,
        name: &str,
        old_version: u32,
        new_version: u32,
        wrapped: &[u8],
    ) -> bool {
        let mut state = self.lock();
        match state.indexes.get_mut(name) {
            Some(r) if r.kek_version == old_version => {
                r.kek_version = new_version;
                r.wrapped = wrapped.to_vec();
                true
            }
            _ => false,
        }
    }

    pub(super) fn put_rewrap_job(&self, job: &RewrapJob) {
        self.lock().rewrap_jobs.insert(job.id.clone(), job.clone());
    }

    pub(super) fn rewrap_job(&self, id: &str) -> Option<RewrapJob> {
        self.lock().rewrap_jobs.get(id).cloned()
    }

    pub(super) fn running_rewrap_jobs(&self) -> Vec<RewrapJob> {
        self.lock()
            .rewrap_jobs
            .values()
            .filter(|j| j.state == RewrapState::Running)
            .cloned()
            .collect()
    }

    pub(super) fn insert_index_key(&self, record: &IndexKeyRecord) -> bool {
        let mut state = self.lock();
        if state.indexes.contains_key(&record.name) {
            return false;
        }
        state.indexes.insert(record.name.clone(), record.clone());
        true
    }
}
