//! The keyring's state in the instance's database (tables of
//! `0005_crypto.sql`), on SQLite or PostgreSQL, through `on_primary!`:
//! every read sees the latest write, whichever instance made it.
//!
//! Erasure and the database: destroying a subject sets its wrapped key to
//! NULL. The old row version can survive for a while in PostgreSQL's dead
//! tuples (until VACUUM), in WAL archives and backups, and in SQLite's free
//! pages. Those copies are still wrapped by `palisade-subjects`, so reading
//! them needs the KMS as well; for erasure that holds against a copy of the
//! database *and* of the KMS, rotate `palisade-subjects`, rewrap, and let old
//! backups expire.

use super::{
    IndexKeyRecord, KeyInfo, Reservation, RewrapJob, RewrapPhase, RewrapState, SubjectKeyRecord,
    VersionInfo, VersionState,
};
use crate::error::{CryptoError, Result};
use palisade_store::{Database, StoreError, on_primary};
use sqlx::Row;

/// State in a database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqlStore {
    db: Database,
}

/// Runs a store future and maps its error, keeping "the database is down"
/// (retry later, 503) apart from everything else.
async fn run<T>(query: impl Future<Output = Result<T, StoreError>>) -> Result<T> {
    query.await.map_err(|error| {
        if error.is_unavailable() {
            CryptoError::StoreUnavailable(error.to_string())
        } else {
            CryptoError::Store(error.to_string())
        }
    })
}

fn to_u32(what: &str, value: i64) -> Result<u32> {
    u32::try_from(value).map_err(|_| CryptoError::Corrupt(format!("{what} {value} out of range")))
}

fn to_u64(what: &str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| CryptoError::Corrupt(format!("{what} {value} out of range")))
}

type SubjectRow = (String, i64, String, i64, Option<Vec<u8>>, i64);

fn subject_record(row: SubjectRow) -> Result<SubjectKeyRecord> {
    let (subject, generation, kek_name, kek_version, wrapped, created_at_ms) = row;
    Ok(SubjectKeyRecord {
        subject,
        generation: to_u32("subject key generation", generation)?,
        kek_name,
        kek_version: to_u32("key version", kek_version)?,
        wrapped,
        created_at_ms,
    })
}

impl SqlStore {
    /// The store on `db` (migrated).
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    pub(super) async fn load_keys(&self) -> Result<Vec<KeyInfo>> {
        let sql = "SELECT name, version, state, use_count, created_at_ms FROM crypto_key_versions \
                   ORDER BY name, version";
        let rows: Vec<(String, i64, String, i64, i64)> = run(async {
            on_primary!(&self.db, sql, sql, |q| q, fetch_all, |rows| rows
                .iter()
                .map(|r| {
                    Ok((
                        r.try_get("name")?,
                        r.try_get("version")?,
                        r.try_get("state")?,
                        r.try_get("use_count")?,
                        r.try_get("created_at_ms")?,
                    ))
                })
                .collect())
        })
        .await?;
        let mut keys: Vec<KeyInfo> = Vec::new();
        for (name, version, state, uses, created_at_ms) in rows {
            let version = VersionInfo {
                version: to_u32("key version", version)?,
                state: VersionState::parse(&state).ok_or_else(|| {
                    CryptoError::Corrupt(format!("key {name:?}: state {state:?}"))
                })?,
                usage: to_u64("use count", uses)?,
                created_at_ms,
            };
            match keys.last_mut() {
                Some(key) if key.name == name => key.versions.push(version),
                _ => keys.push(KeyInfo {
                    name,
                    versions: vec![version],
                }),
            }
        }
        Ok(keys)
    }

    pub(super) async fn insert_key(&self, name: &str, version: u32, now_ms: i64) -> Result<()> {
        let pg = "INSERT INTO crypto_key_versions (name, version, state, use_count, created_at_ms) \
                  SELECT $1, $2, 'active', 0, $3 \
                  WHERE NOT EXISTS (SELECT 1 FROM crypto_key_versions WHERE name = $1) \
                  ON CONFLICT DO NOTHING";
        let lite = "INSERT INTO crypto_key_versions (name, version, state, use_count, created_at_ms) \
                    SELECT ?1, ?2, 'active', 0, ?3 \
                    WHERE NOT EXISTS (SELECT 1 FROM crypto_key_versions WHERE name = ?1) \
                    ON CONFLICT DO NOTHING";
        run(async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q.bind(name).bind(i64::from(version)).bind(now_ms),
                execute,
                |_r| Ok(())
            )
        })
        .await
    }

    pub(super) async fn add_version(&self, name: &str, version: u32, now_ms: i64) -> Result<()> {
        let pg = "INSERT INTO crypto_key_versions (name, version, state, use_count, created_at_ms) \
                  VALUES ($1, $2, 'active', 0, $3) ON CONFLICT DO NOTHING";
        let lite = "INSERT INTO crypto_key_versions (name, version, state, use_count, created_at_ms) \
                    VALUES (?1, ?2, 'active', 0, ?3) ON CONFLICT DO NOTHING";
        run(async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q.bind(name).bind(i64::from(version)).bind(now_ms),
                execute,
                |_r| Ok(())
            )
        })
        .await?;
        // Everything below the newest version retires. Comparing with the
        // newest (not with `version`) keeps two racing rotations consistent:
        // whichever statement runs last, only the newest stays active.
        let pg = "UPDATE crypto_key_versions SET state = 'retired' \
                  WHERE name = $1 AND state = 'active' \
                  AND version < (SELECT MAX(version) FROM crypto_key_versions WHERE name = $1)";
        let lite = "UPDATE crypto_key_versions SET state = 'retired' \
                    WHERE name = ?1 AND state = 'active' \
                    AND version < (SELECT MAX(version) FROM crypto_key_versions WHERE name = ?1)";
        run(async { on_primary!(&self.db, pg, lite, |q| q.bind(name), execute, |_r| Ok(())) }).await
    }

    pub(super) async fn reserve_use(
        &self,
        name: &str,
        version: u32,
        limit: u64,
    ) -> Result<Reservation> {
        // Limits are at most 2^32.
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let pg = "UPDATE crypto_key_versions SET use_count = use_count + 1 \
                  WHERE name = $1 AND version = $2 AND state = 'active' AND use_count < $3";
        let lite = "UPDATE crypto_key_versions SET use_count = use_count + 1 \
                    WHERE name = ?1 AND version = ?2 AND state = 'active' AND use_count < ?3";
        let reserved = run(async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q.bind(name).bind(i64::from(version)).bind(limit),
                execute,
                |r| Ok(r.rows_affected() == 1)
            )
        })
        .await?;
        Ok(if reserved {
            Reservation::Reserved
        } else {
            Reservation::Refused
        })
    }

    pub(super) async fn subject_key(
        &self,
        subject: &str,
        generation: Option<u32>,
    ) -> Result<Option<SubjectKeyRecord>> {
        const COLUMNS: &str =
            "subject, generation, kek_name, kek_version, wrapped_key, created_at_ms";
        let (pg, lite) = match generation {
            Some(_) => (
                format!(
                    "SELECT {COLUMNS} FROM crypto_subject_keys WHERE subject = $1 AND generation = $2"
                ),
                format!(
                    "SELECT {COLUMNS} FROM crypto_subject_keys WHERE subject = ?1 AND generation = ?2"
                ),
            ),
            None => (
                // `generation >= 0` keeps one parameter list for both queries.
                format!(
                    "SELECT {COLUMNS} FROM crypto_subject_keys WHERE subject = $1 \
                     AND generation >= $2 ORDER BY generation DESC LIMIT 1"
                ),
                format!(
                    "SELECT {COLUMNS} FROM crypto_subject_keys WHERE subject = ?1 \
                     AND generation >= ?2 ORDER BY generation DESC LIMIT 1"
                ),
            ),
        };
        let generation = i64::from(generation.unwrap_or(0));
        let row: Option<SubjectRow> = run(async {
            on_primary!(
                &self.db,
                &pg,
                &lite,
                |q| q.bind(subject).bind(generation),
                fetch_optional,
                |row| match row {
                    None => Ok(None),
                    Some(r) => Ok(Some((
                        r.try_get("subject")?,
                        r.try_get("generation")?,
                        r.try_get("kek_name")?,
                        r.try_get("kek_version")?,
                        r.try_get("wrapped_key")?,
                        r.try_get("created_at_ms")?,
                    ))),
                }
            )
        })
        .await?;
        row.map(subject_record).transpose()
    }

    pub(super) async fn insert_subject_key(&self, record: &SubjectKeyRecord) -> Result<bool> {
        let pg = "INSERT INTO crypto_subject_keys \
                  (subject, generation, kek_name, kek_version, wrapped_key, created_at_ms) \
                  VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";
        let lite = "INSERT INTO crypto_subject_keys \
                    (subject, generation, kek_name, kek_version, wrapped_key, created_at_ms) \
                    VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING";
        run(async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q
                    .bind(&record.subject)
                    .bind(i64::from(record.generation))
                    .bind(&record.kek_name)
                    .bind(i64::from(record.kek_version))
                    .bind(record.wrapped.as_deref())
                    .bind(record.created_at_ms),
                execute,
                |r| Ok(r.rows_affected() == 1)
            )
        })
        .await
    }

    pub(super) async fn destroy_subject(&self, subject: &str, now_ms: i64) -> Result<bool> {
        let pg = "UPDATE crypto_subject_keys SET wrapped_key = NULL, destroyed_at_ms = $2 \
                  WHERE subject = $1 AND wrapped_key IS NOT NULL";
        let lite = "UPDATE crypto_subject_keys SET wrapped_key = NULL, destroyed_at_ms = ?2 \
                    WHERE subject = ?1 AND wrapped_key IS NOT NULL";
        run(async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q.bind(subject).bind(now_ms),
                execute,
                |r| Ok(r.rows_affected() > 0)
            )
        })
        .await
    }

    pub(super) async fn index_key(&self, name: &str) -> Result<Option<IndexKeyRecord>> {
        let pg = "SELECT name, kek_name, kek_version, wrapped_key, settings, created_at_ms \
                  FROM crypto_index_keys WHERE name = $1";
        let lite = "SELECT name, kek_name, kek_version, wrapped_key, settings, created_at_ms \
                    FROM crypto_index_keys WHERE name = ?1";
        let row: Option<(String, String, i64, Vec<u8>, String, i64)> = run(async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q.bind(name),
                fetch_optional,
                |row| match row {
                    None => Ok(None),
                    Some(r) => Ok(Some((
                        r.try_get("name")?,
                        r.try_get("kek_name")?,
                        r.try_get("kek_version")?,
                        r.try_get("wrapped_key")?,
                        r.try_get("settings")?,
                        r.try_get("created_at_ms")?,
                    ))),
                }
            )
        })
        .await?;
        row.map(
            |(name, kek_name, kek_version, wrapped, settings, created_at_ms)| {
                Ok(IndexKeyRecord {
                    name,
                    kek_name,
                    kek_version: to_u32("key version", kek_version)?,
                    wrapped,
                    settings,
                    created_at_ms,
                })
            },
        )
        .transpose()
    }

    pub(super) async fn insert_index_key(&self, record: &IndexKeyRecord) -> Result<bool> {
        let pg = "INSERT INTO crypto_index_keys \
                  (name, kek_name, kek_version, wrapped_key, settings, created_at_ms) \
                  VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";
        let lite = "INSERT INTO crypto_index_keys \
                    (name, kek_name, kek_version, wrapped_key, settings, created_at_ms) \
                    VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING";
        run(async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q
                    .bind(&record.name)
                    .bind(&record.kek_name)
                    .bind(i64::from(record.kek_version))
                    .bind(&record.wrapped)
                    .bind(&record.settings)
                    .bind(record.created_at_ms),
                execute,
                |r| Ok(r.rows_affected() == 1)
            )
        })
        .await
    }

    pub(super) async fn count_wrapped_below(&self, kek_name: &str, version: u32) -> Result<u64> {
        let pg = "SELECT (SELECT COUNT(*) FROM crypto_subject_keys WHERE kek_name = $1 \
                  AND kek_version < $2 AND wrapped_key IS NOT NULL) \
                  + (SELECT COUNT(*) FROM crypto_index_keys WHERE kek_name = $1 AND kek_version < $2) AS n";
        let lite = "SELECT (SELECT COUNT(*) FROM crypto_subject_keys WHERE kek_name = ?1 \
                    AND kek_version < ?2 AND wrapped_key IS NOT NULL) \
                    + (SELECT COUNT(*) FROM crypto_index_keys WHERE kek_name = ?1 AND kek_version < ?2) AS n";
        let n: i64 = run(async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q.bind(kek_name).bind(i64::from(version)),
                fetch_one,
                |r| Ok(r.try_get("n")?)
            )
        })
        .await?;
        to_u64("count", n)
    }

    pub(super) async fn subject_keys_below(
        &self,
        kek_name: &str,
        version: u32,
        after: (&str, u32),
        limit: usize,
    ) -> Result<Vec<SubjectKeyRecord>> {
        let pg = "SELECT subject, generation, kek_name, kek_version, wrapped_key, created_at_ms \
                  FROM crypto_subject_keys WHERE kek_name = $1 AND kek_version < $2 \
                  AND wrapped_key IS NOT NULL AND (subject, generation) > ($3, $4) \
                  ORDER BY subject, generation LIMIT $5";
        let lite = "SELECT subject, generation, kek_name, kek_version, wrapped_key, created_at_ms \
                    FROM crypto_subject_keys WHERE kek_name = ?1 AND kek_version < ?2 \
                    AND wrapped_key IS NOT NULL AND (subject, generation) > (?3, ?4) \
                    ORDER BY subject, generation LIMIT ?5";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<SubjectRow> = run(async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q
                    .bind(kek_name)
                    .bind(i64::from(version))
                    .bind(after.0)
                    .bind(i64::from(after.1))
                    .bind(limit),
                fetch_all,
                |rows| rows
                    .iter()
                    .map(|r| {
                        Ok((
                            r.try_get("subject")?,
                            r.try_get("generation")?,
                            r.try_get("kek_name")?,
                            r.try_get("kek_version")?,
                            r.try_get("wrapped_key")?,
                            r.try_get("created_at_ms")?,
                        ))
                    })
                    .collect()
            )
        })
        .await?;
        rows.into_iter().map(subject_record).collect()
    }

    pub(super) async fn replace_subject_wrap(
        &self,
        subject: &str,
        generation: u32,
        old_version: u32,
        new_version: u32,
        wrapped: &[u8],
    ) -> Result<bool> {
        let pg = "UPDATE crypto_subject_keys SET kek_version = $4, wrapped_key = $5 \
                  WHERE subject = $1 AND generation = $2 AND kek_version = $3 \
                  AND wrapped_key IS NOT NULL";
        let lite = "UPDATE crypto_subject_keys SET kek_version = ?4, wrapped_key = ?5 \
                    WHERE subject = ?1 AND generation = ?2 AND kek_version = ?3 \
                    AND wrapped_key IS NOT NULL";
        run(async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q
                    .bind(subject)
                    .bind(i64::from(generation))
                    .bind(i64::from(old_version))
                    .bind(i64::from(new_version))
                    .bind(wrapped),
                execute,
                |r| Ok(r.rows_affected() == 1)
            )
        })
        .await
    }

    pub(super) async fn index_keys_below(
        &self,
        kek_name: &str,
        version: u32,
        after: &str,
        limit: usize,
    ) -> Result<Vec<IndexKeyRecord>> {
        let pg = "SELECT name, kek_name, kek_version, wrapped_key, settings, created_at_ms \
                  FROM crypto_index_keys WHERE kek_name = $1 AND kek_version < $2 AND name > $3 \
                  ORDER BY name LIMIT $4";
        let lite = "SELECT name, kek_name, kek_version, wrapped_key, settings, created_at_ms \
                    FROM crypto_index_keys WHERE kek_name = ?1 AND kek_version < ?2 AND name > ?3 \
                    ORDER BY name LIMIT ?4";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(String, String, i64, Vec<u8>, String, i64)> = run(async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q
                    .bind(kek_name)
                    .bind(i64::from(version))
                    .bind(after)
                    .bind(limit),
                fetch_all,
                |rows| rows
                    .iter()
                    .map(|r| {
                        Ok((
                            r.try_get("name")?,
                            r.try_get("kek_name")?,
                            r.try_get("kek_version")?,
                            r.try_get("wrapped_key")?,
                            r.try_get("settings")?,
                            r.try_get("created_at_ms")?,
                        ))
                    })
                    .collect()
            )
        })
        .await?;
        rows.into_iter()
            .map(
                |(name, kek_name, kek_version, wrapped, settings, created_at_ms)| {
                    Ok(IndexKeyRecord {
                        name,
                        kek_name,
                        kek_version: to_u32("key version", kek_version)?,
                        wrapped,
                        settings,
                        created_at_ms,
                    })
                },
            )
            .collect()
    }

    pub(super) async fn replace_index_wrap(
        &self,
        name: &str,
        old_version: u32,
        new_version: u32,
        wrapped: &[u8],
    ) -> Result<bool> {
        let pg = "UPDATE crypto_index_keys SET kek_version = $3, wrapped_key = $4 \
                  WHERE name = $1 AND kek_version = $2";
        let lite = "UPDATE crypto_index_keys SET kek_version = ?3, wrapped_key = ?4 \
                    WHERE name = ?1 AND kek_version = ?2";
        run(async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q
                    .bind(name)
                    .bind(i64::from(old_version))
                    .bind(i64::from(new_version))
                    .bind(wrapped),
                execute,
                |r| Ok(r.rows_affected() == 1)
            )
        })
        .await
    }

    pub(super) async fn insert_rewrap_job(&self, job: &RewrapJob) -> Result<()> {
        let pg = "INSERT INTO crypto_rewrap_jobs (id, kek_name, target_version, state, phase, \
                  cursor_key, cursor_generation, total, rewrapped, started_at_ms, updated_at_ms, error) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
        let lite = "INSERT INTO crypto_rewrap_jobs (id, kek_name, target_version, state, phase, \
                    cursor_key, cursor_generation, total, rewrapped, started_at_ms, updated_at_ms, error) \
                    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
        run(async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q
                    .bind(&job.id)
                    .bind(&job.kek_name)
                    .bind(i64::from(job.target_version))
                    .bind(job.state.as_str())
                    .bind(job.phase.as_str())
                    .bind(&job.cursor_key)
                    .bind(i64::from(job.cursor_generation))
                    .bind(i64::try_from(job.total).unwrap_or(i64::MAX))
                    .bind(i64::try_from(job.rewrapped).unwrap_or(i64::MAX))
                    .bind(job.started_at_ms)
                    .bind(job.updated_at_ms)
                    .bind(job.error.as_deref()),
                execute,
                |_r| Ok(())
            )
        })
        .await
    }

    pub(super) async fn update_rewrap_job(&self, job: &RewrapJob) -> Result<()> {
        let pg = "UPDATE crypto_rewrap_jobs SET state = $2, phase = $3, cursor_key = $4, \
                  cursor_generation = $5, total = $6, rewrapped = $7, updated_at_ms = $8, error = $9 \
                  WHERE id = $1";
        let lite = "UPDATE crypto_rewrap_jobs SET state = ?2, phase = ?3, cursor_key = ?4, \
                    cursor_generation = ?5, total = ?6, rewrapped = ?7, updated_at_ms = ?8, error = ?9 \
                    WHERE id = ?1";
        run(async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q
                    .bind(&job.id)
                    .bind(job.state.as_str())
                    .bind(job.phase.as_str())
                    .bind(&job.cursor_key)
                    .bind(i64::from(job.cursor_generation))
                    .bind(i64::try_from(job.total).unwrap_or(i64::MAX))
                    .bind(i64::try_from(job.rewrapped).unwrap_or(i64::MAX))
                    .bind(job.updated_at_ms)
                    .bind(job.error.as_deref()),
                execute,
                |_r| Ok(())
            )
        })
        .await
    }

    pub(super) async fn rewrap_job(&self, id: &str) -> Result<Option<RewrapJob>> {
        let pg = "SELECT * FROM crypto_rewrap_jobs WHERE id = $1";
        let lite = "SELECT * FROM crypto_rewrap_jobs WHERE id = ?1";
        let row: Option<JobRow> = run(async {
            on_primary!(&self.db, pg, lite, |q| q.bind(id), fetch_optional, |row| {
                match row {
                    None => Ok(None),
                    Some(r) => Ok(Some(job_row(&r)?)),
                }
            })
        })
        .await?;
        row.map(job_record).transpose()
    }

    pub(super) async fn running_rewrap_jobs(&self) -> Result<Vec<RewrapJob>> {
        let sql = "SELECT * FROM crypto_rewrap_jobs WHERE state = 'running' ORDER BY id";
        let rows: Vec<JobRow> = run(async {
            on_primary!(&self.db, sql, sql, |q| q, fetch_all, |rows| rows
                .iter()
                .map(|r| Ok(job_row(r)?))
                .collect())
        })
        .await?;
        rows.into_iter().map(job_record).collect()
    }
}

/// A `crypto_rewrap_jobs` row as read.
struct JobRow {
    id: String,
    kek_name: String,
    target_version: i64,
    state: String,
    phase: String,
    cursor_key: String,
    cursor_generation: i64,
    total: i64,
    rewrapped: i64,
    started_at_ms: i64,
    updated_at_ms: i64,
    error: Option<String>,
}

fn job_row<R: Row>(r: &R) -> Result<JobRow, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'v> String: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
    for<'v> Option<String>: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
    for<'v> i64: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
{
    Ok(JobRow {
        id: r.try_get("id")?,
        kek_name: r.try_get("kek_name")?,
        target_version: r.try_get("target_version")?,
        state: r.try_get("state")?,
        phase: r.try_get("phase")?,
        cursor_key: r.try_get("cursor_key")?,
        cursor_generation: r.try_get("cursor_generation")?,
        total: r.try_get("total")?,
        rewrapped: r.try_get("rewrapped")?,
        started_at_ms: r.try_get("started_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        error: r.try_get("error")?,
    })
}

fn job_record(row: JobRow) -> Result<RewrapJob> {
    let corrupt = |what: &str| CryptoError::Corrupt(format!("rewrap job {}: {what}", row.id));
    Ok(RewrapJob {
        kek_name: row.kek_name.clone(),
        target_version: to_u32("key version", row.target_version)?,
        state: RewrapState::parse(&row.state).ok_or_else(|| corrupt("state"))?,
        phase: RewrapPhase::parse(&row.phase).ok_or_else(|| corrupt("phase"))?,
        cursor_key: row.cursor_key.clone(),
        cursor_generation: to_u32("generation", row.cursor_generation)?,
        total: to_u64("total", row.total)?,
        rewrapped: to_u64("rewrapped", row.rewrapped)?,
        started_at_ms: row.started_at_ms,
        updated_at_ms: row.updated_at_ms,
        error: row.error.clone(),
        id: row.id,
    })
}
