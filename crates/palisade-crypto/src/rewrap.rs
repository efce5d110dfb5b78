//! Rewrap jobs: after a key rotation, re-wrap the keys Palisade stores under
//! that key (subject keys under `palisade-subjects`, blind-index keys under
//! `palisade-index`) with the newest version, in the background, without
//! touching any data sealed with them. Old versions can then be retired from
//! the KMS without losing anything.
//!
//! A job goes through the stored keys in primary-key order, a batch at a
//! time, and saves its cursor and counts after every batch, so a job whose
//! process stopped resumes where it was ([`Keyring::resume_rewraps`]). Each
//! replacement is a compare-and-set on the old version: a subject shredded
//! meanwhile stays shredded, and two instances running the same job do the
//! work once. Ciphertexts stored outside Palisade are rewrapped one by one
//! with [`Keyring::rewrap`].

use crate::blind_index::index_context;
use crate::error::{CryptoError, Result};
use crate::keyring::{Keyring, subject_context};
use crate::store::{RewrapJob, RewrapPhase, RewrapState};

/// Stored keys rewrapped between two saves of a job's progress.
const BATCH: usize = 100;

impl Keyring {
    /// Starts a job that rewraps every key stored under keyring key `name`
    /// with its newest version, and returns it (state `running`). Run it
    /// with [`Keyring::run_rewrap`].
    pub async fn start_rewrap(&self, name: &str) -> Result<RewrapJob> {
        let info = self.key_info(name).await?;
        let target = info
            .current()
            .map(|v| v.version)
            .ok_or_else(|| CryptoError::Corrupt(format!("key {name:?} has no active version")))?;
        let store = self.store();
        let total = store.count_wrapped_below(name, target).await?;
        let now = self.clock().now_unix_ms();
        let job = RewrapJob {
            id: palisade_core::new_id(self.clock().as_ref()).to_string(),
            kek_name: name.to_owned(),
            target_version: target,
            state: RewrapState::Running,
            phase: RewrapPhase::Subjects,
            cursor_key: String::new(),
            cursor_generation: 0,
            total,
            rewrapped: 0,
            started_at_ms: now,
            updated_at_ms: now,
            error: None,
        };
        store.insert_rewrap_job(&job).await?;
        tracing::info!(job = %job.id, key = name, target, total, "rewrap job started");
        Ok(job)
    }

    /// A rewrap job by id.
    pub async fn rewrap_job(&self, id: &str) -> Result<Option<RewrapJob>> {
        self.store().rewrap_job(id).await
    }

    /// Runs job `id` until it is done or fails, saving progress after every
    /// batch; running it again after an interruption resumes it. A failure
    /// (the KMS or the database gone) is recorded in the job (`failed`, with
    /// the error) and returned as the job, not as an error; only a failure to
    /// read or save the job itself is an error.
    pub async fn run_rewrap(&self, id: &str) -> Result<RewrapJob> {
        let store = self.store();
        let mut job = store
            .rewrap_job(id)
            .await?
            .ok_or_else(|| CryptoError::Invalid {
                field: "job",
                reason: "no rewrap job with that id".into(),
            })?;
        while job.state == RewrapState::Running {
            let outcome = self.rewrap_batch(&mut job).await;
            job.updated_at_ms = self.clock().now_unix_ms();
            if let Err(error) = outcome {
                tracing::warn!(job = %job.id, %error, "rewrap job failed");
                job.state = RewrapState::Failed;
                job.error = Some(error.to_string());
            }
            store.update_rewrap_job(&job).await?;
        }
        if job.state == RewrapState::Done {
            tracing::info!(job = %job.id, key = %job.kek_name, rewrapped = job.rewrapped, "rewrap job done");
        }
        Ok(job)
    }

    /// Runs every job left `running` (by a process that stopped) to its end.
    pub async fn resume_rewraps(&self) -> Result<Vec<RewrapJob>> {
        let mut finished = Vec::new();
        for job in self.store().running_rewrap_jobs().await? {
            tracing::info!(job = %job.id, key = %job.kek_name, "resuming rewrap job");
            finished.push(self.run_rewrap(&job.id).await?);
        }
        Ok(finished)
    }

    /// Rewraps the next batch of the job's phase and moves its cursor.
    async fn rewrap_batch(&self, job: &mut RewrapJob) -> Result<()> {
        let (store, kms) = (self.store(), self.kms());
        match job.phase {
            RewrapPhase::Subjects => {
                let after = (job.cursor_key.as_str(), job.cursor_generation);
                let records = store
                    .subject_keys_below(&job.kek_name, job.target_version, after, BATCH)
                    .await?;
                if records.is_empty() {
                    job.phase = RewrapPhase::Indexes;
                    job.cursor_key.clear();
                    job.cursor_generation = 0;
                    return Ok(());
                }
                for record in records {
                    if let Some(wrapped) = &record.wrapped {
                        let context = subject_context(&record.subject, record.generation);
                        let version = self.reserve_key_use(&job.kek_name).await?;
                        let rewrapped = kms
                            .rewrap(
                                (&record.kek_name, record.kek_version),
                                (&job.kek_name, version),
                                wrapped,
                                &context,
                            )
                            .await?;
                        if store
                            .replace_subject_wrap(
                                &record.subject,
                                record.generation,
                                record.kek_version,
                                version,
                                &rewrapped,
                            )
                            .await?
                        {
                            job.rewrapped += 1;
                        }
                    }
                    job.cursor_key = record.subject;
                    job.cursor_generation = record.generation;
                }
            }
            RewrapPhase::Indexes => {
                let records = store
                    .index_keys_below(&job.kek_name, job.target_version, &job.cursor_key, BATCH)
                    .await?;
                if records.is_empty() {
                    job.phase = RewrapPhase::Finished;
                    job.state = RewrapState::Done;
                    return Ok(());
                }
                for record in records {
                    let context = index_context(&record.name);
                    let version = self.reserve_key_use(&job.kek_name).await?;
                    let rewrapped = kms
                        .rewrap(
                            (&record.kek_name, record.kek_version),
                            (&job.kek_name, version),
                            &record.wrapped,
                            &context,
                        )
                        .await?;
                    if store
                        .replace_index_wrap(&record.name, record.kek_version, version, &rewrapped)
                        .await?
                    {
                        job.rewrapped += 1;
                    }
                    job.cursor_key = record.name;
                }
            }
            RewrapPhase::Finished => job.state = RewrapState::Done,
        }
        metrics::gauge!("palisade_crypto_rewrap_progress", "key" => job.kek_name.clone())
            .set(job.rewrapped as f64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::{INDEX_KEY, KeyringSettings, SUBJECTS_KEY};
    use crate::{KeyringStore, Kms};
    use palisade_core::SystemClock;

    #[tokio::test]
    async fn an_interrupted_job_resumes_from_its_cursor_on_another_instance() {
        let kms = Kms::in_memory();
        let store = KeyringStore::memory();
        let open = || {
            Keyring::new(
                kms.clone(),
                store.clone(),
                SystemClock::shared(),
                KeyringSettings::default(),
            )
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let first = open();
        let mut sealed = Vec::new();
        for i in 0..150 {
            let subject = format!("user-{i:03}");
            let ct = first
                .encrypt_for_subject(&subject, subject.as_bytes(), b"")
                .await;
            sealed.push((subject, ct.unwrap_or_default()));
        }
        assert_eq!(first.shred_subject("user-000").await, Ok(true));
        first
            .rotate(SUBJECTS_KEY)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut job = first
            .start_rewrap(SUBJECTS_KEY)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((job.total, job.target_version), (149, 2));
        // One batch, saved, then the process "stops".
        assert!(first.rewrap_batch(&mut job).await.is_ok());
        assert!(store.update_rewrap_job(&job).await.is_ok());
        assert_eq!(job.rewrapped, 100);
        assert_eq!(store.count_wrapped_below(SUBJECTS_KEY, 2).await, Ok(49));
        drop(first);

        let second = open();
        let resumed = second.resume_rewraps().await.unwrap_or_default();
        assert_eq!(resumed.len(), 1);
        assert_eq!(resumed[0].state, RewrapState::Done);
        assert_eq!(resumed[0].rewrapped, 149);
        assert_eq!(store.count_wrapped_below(SUBJECTS_KEY, 2).await, Ok(0));
        for (subject, ct) in &sealed {
            let opened = second.decrypt(ct, b"").await;
            if subject == "user-000" {
                assert_eq!(
                    opened,
                    Err(CryptoError::Shredded(subject.clone())),
                    "stays shredded"
                );
            } else {
                assert_eq!(opened.as_deref(), Ok(subject.as_bytes()));
            }
        }
        assert_eq!(second.resume_rewraps().await.map(|j| j.len()), Ok(0));
    }

    #[tokio::test]
    async fn index_keys_are_rewrapped_and_keep_their_indexes() {
        let keyring = Keyring::ephemeral();
        let before = keyring
            .blind_index("email", b"t", "a@example.com", None)
            .await;
        let other = keyring.blind_index("phone", b"t", "555", None).await;
        keyring
            .rotate(INDEX_KEY)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let job = keyring
            .start_rewrap(INDEX_KEY)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(job.total, 2);
        let done = keyring
            .run_rewrap(&job.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (done.state, done.rewrapped, done.phase),
            (RewrapState::Done, 2, RewrapPhase::Finished)
        );
        keyring.clear_cache();
        assert_eq!(
            keyring
                .blind_index("email", b"t", "a@example.com", None)
                .await,
            before
        );
        assert_eq!(keyring.blind_index("phone", b"t", "555", None).await, other);
        let record = keyring.store().index_key("email").await.ok().flatten();
        assert_eq!(record.map(|r| r.kek_version), Some(2));
        // Unknown jobs and keys are typed errors.
        assert!(keyring.run_rewrap("no-such-job").await.is_err());
        assert!(keyring.start_rewrap("missing").await.is_err());
    }
}
