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

use super::{IndexKeyRecord, KeyInfo, Reservation, SubjectKeyRecord, VersionInfo, VersionState};
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
}
