//! Stored responses for `Idempotency-Key`: the same key and body replay the first
//! answer; the same key with another body is refused.

use crate::{Database, StoreError};
use sqlx::Row;

/// How long a stored response is kept (and replayed).
pub const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// What `begin` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// No record: this request is the first and must run; its response is then saved.
    Proceed,
    /// The first request with this key is still running.
    InFlight,
    /// A request with this key but a different method, path or body was seen.
    Mismatch,
    /// The first request finished; here is its response.
    Replay(StoredResponse),
}

/// A saved response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` of the body.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// The `idempotency_records` table.
#[derive(Debug, Clone)]
pub struct IdempotencyStore {
    db: Database,
}

impl IdempotencyStore {
    /// The store on `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Claims `(owner, key)` for a request whose fingerprint is `request_hash`.
    pub async fn begin(
        &self,
        owner: &str,
        key: &str,
        request_hash: &[u8],
        now_ms: i64,
    ) -> Result<Begin, StoreError> {
        let expired_before = now_ms - RETENTION_MS;
        let (inserted, existing) = match &self.db {
            Database::Postgres(db) => {
                db.guard(StoreError::is_unavailable, async {
                let mut tx = db.primary().begin().await?;
                sqlx::query("DELETE FROM idempotency_records WHERE owner = $1 AND key = $2 AND created_at_ms < $3")
                    .bind(owner).bind(key).bind(expired_before).execute(&mut *tx).await?;
                let inserted = sqlx::query(
                    "INSERT INTO idempotency_records (owner, key, request_hash, created_at_ms) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (owner, key) DO NOTHING",
                )
                .bind(owner).bind(key).bind(request_hash).bind(now_ms)
                .execute(&mut *tx).await?.rows_affected() == 1;
                let row = sqlx::query("SELECT request_hash, status, content_type, body FROM idempotency_records WHERE owner = $1 AND key = $2")
                    .bind(owner).bind(key).fetch_one(&mut *tx).await?;
                tx.commit().await?;
                Ok::<_, StoreError>((inserted, decode(&row)?))
                }).await?
            }
            Database::Sqlite(db) => {
                let mut tx = db.begin_write().await?;
                sqlx::query("DELETE FROM idempotency_records WHERE owner = ? AND key = ? AND created_at_ms < ?")
                    .bind(owner).bind(key).bind(expired_before).execute(&mut *tx).await?;
                let inserted = sqlx::query(
                    "INSERT INTO idempotency_records (owner, key, request_hash, created_at_ms) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (owner, key) DO NOTHING",
                )
                .bind(owner).bind(key).bind(request_hash).bind(now_ms)
                .execute(&mut *tx).await?.rows_affected() == 1;
                let row = sqlx::query("SELECT request_hash, status, content_type, body FROM idempotency_records WHERE owner = ? AND key = ?")
                    .bind(owner).bind(key).fetch_one(&mut *tx).await?;
                tx.commit().await?;
                (inserted, decode(&row)?)
            }
        };
        if inserted {
            return Ok(Begin::Proceed);
        }
        let (stored_hash, response) = existing;
        Ok(if stored_hash != request_hash {
            Begin::Mismatch
        } else {
            match response {
                Some(response) => Begin::Replay(response),
                None => Begin::InFlight,
            }
        })
    }

    /// Saves the response of the request that claimed the key.
    pub async fn complete(
        &self,
        owner: &str,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        let status = i32::from(response.status);
        match &self.db {
            Database::Postgres(db) => {
                db.guard(StoreError::is_unavailable, async {
                sqlx::query("UPDATE idempotency_records SET status = $3, content_type = $4, body = $5 WHERE owner = $1 AND key = $2")
                    .bind(owner).bind(key).bind(status).bind(&response.content_type).bind(&response.body)
                    .execute(db.primary()).await?;
                Ok::<_, StoreError>(())
                }).await?
            }
            Database::Sqlite(db) => {
                sqlx::query("UPDATE idempotency_records SET status = ?3, content_type = ?4, body = ?5 WHERE owner = ?1 AND key = ?2")
                    .bind(owner).bind(key).bind(status).bind(&response.content_type).bind(&response.body)
                    .execute(db.writer()).await?;
            }
        }
        Ok(())
    }

    /// Releases a claim whose request failed on our side, so a retry can run it again.
    pub async fn abandon(&self, owner: &str, key: &str) -> Result<(), StoreError> {
        match &self.db {
            Database::Postgres(db) => {
                db.guard(StoreError::is_unavailable, async {
                sqlx::query("DELETE FROM idempotency_records WHERE owner = $1 AND key = $2 AND status IS NULL")
                    .bind(owner).bind(key).execute(db.primary()).await?;
                Ok::<_, StoreError>(())
                }).await?
            }
            Database::Sqlite(db) => {
                sqlx::query("DELETE FROM idempotency_records WHERE owner = ? AND key = ? AND status IS NULL")
                    .bind(owner).bind(key).execute(db.writer()).await?;
            }
        }
        Ok(())
    }

    /// Deletes records past their retention; returns how many.
    pub async fn purge_expired(&self, now_ms: i64) -> Result<u64, StoreError> {
        let before = now_ms - RETENTION_MS;
        let done = match &self.db {
            Database::Postgres(db) => {
                db.guard(StoreError::is_unavailable, async {
                    Ok::<_, StoreError>(
                        sqlx::query("DELETE FROM idempotency_records WHERE created_at_ms < $1")
                            .bind(before)
                            .execute(db.primary())
                            .await?
                            .rows_affected(),
                    )
                })
                .await?
            }
            Database::Sqlite(db) => {
                sqlx::query("DELETE FROM idempotency_records WHERE created_at_ms < ?")
                    .bind(before)
                    .execute(db.writer())
                    .await?
                    .rows_affected()
            }
        };
        Ok(done)
    }
}

type Decoded = (Vec<u8>, Option<StoredResponse>);

fn decode<R: Row>(row: &R) -> Result<Decoded, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> Vec<u8>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i32>: sqlx::Decode<'a, R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database>,
    for<'a> Option<Vec<u8>>: sqlx::Decode<'a, R::Database>,
    i32: sqlx::Type<R::Database>,
    String: sqlx::Type<R::Database>,
{
    let hash: Vec<u8> = row.try_get("request_hash")?;
    let status: Option<i32> = row.try_get("status")?;
    let response = match status {
        Some(status) => Some(StoredResponse {
            status: u16::try_from(status).unwrap_or(500),
            content_type: row.try_get("content_type")?,
            body: row
                .try_get::<Option<Vec<u8>>, _>("body")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok((hash, response))
}
