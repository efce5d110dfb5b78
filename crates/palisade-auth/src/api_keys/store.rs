//! Where API keys are kept: the `api_keys` table, in SQLite or PostgreSQL.

use super::{ApiKey, Scopes};
use palisade_core::principal::TenantId;
use palisade_store::{Database, StoreError};
use sqlx::Row;
use uuid::Uuid;

/// The API-key table on the configured database.
#[derive(Debug, Clone)]
pub struct ApiKeyStore {
    db: Database,
}

const COLUMNS: &str =
    "id, name, tenant, scopes, created_at_ms, expires_at_ms, revoked_at_ms, secret_hash";

// Every query uses the primary/writer, never a replica: a key created or revoked a
// moment ago must take effect at once.
macro_rules! run {
    ($self:ident, $($rest:tt)*) => {
        palisade_store::on_primary!(&$self.db, $($rest)*)
    };
}

impl ApiKeyStore {
    /// The store on `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub(crate) async fn insert(
        &self,
        key: &ApiKey,
        lookup: &str,
        verifier: &[u8],
    ) -> Result<(), StoreError> {
        let pg = "INSERT INTO api_keys (id, lookup, secret_hash, name, tenant, scopes, created_at_ms, expires_at_ms) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let lite = "INSERT INTO api_keys (id, lookup, secret_hash, name, tenant, scopes, created_at_ms, expires_at_ms) \
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
        run!(
            self,
            pg,
            lite,
            |q| q
                .bind(key.id)
                .bind(lookup)
                .bind(verifier)
                .bind(&key.name)
                .bind(key.tenant.as_str())
                .bind(key.scopes.to_stored())
                .bind(key.created_at_ms)
                .bind(key.expires_at_ms),
            execute,
            |_r| Ok(())
        )
    }

    pub(crate) async fn find_by_lookup(
        &self,
        lookup: &str,
    ) -> Result<Option<(ApiKey, Vec<u8>)>, StoreError> {
        let pg = format!("SELECT {COLUMNS} FROM api_keys WHERE lookup = $1");
        let lite = format!("SELECT {COLUMNS} FROM api_keys WHERE lookup = ?");
        run!(
            self,
            &pg,
            &lite,
            |q| q.bind(lookup),
            fetch_optional,
            |row| row
                .map(|r| Ok((decode(&r)?, r.try_get::<Vec<u8>, _>("secret_hash")?)))
                .transpose()
        )
    }

    pub(crate) async fn get(&self, id: Uuid) -> Result<Option<ApiKey>, StoreError> {
        let pg = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1");
        let lite = format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?");
        run!(self, &pg, &lite, |q| q.bind(id), fetch_optional, |row| row
            .map(|r| decode(&r))
            .transpose())
    }

    pub(crate) async fn list(&self, tenant: Option<&TenantId>) -> Result<Vec<ApiKey>, StoreError> {
        let tenant = tenant.map(TenantId::as_str);
        let pg = format!(
            "SELECT {COLUMNS} FROM api_keys WHERE ($1::text IS NULL OR tenant = $1) ORDER BY id DESC"
        );
        let lite = format!(
            "SELECT {COLUMNS} FROM api_keys WHERE (?1 IS NULL OR tenant = ?1) ORDER BY id DESC"
        );
        run!(self, &pg, &lite, |q| q.bind(tenant), fetch_all, |rows| rows
            .iter()
            .map(decode)
            .collect())
    }

    /// Sets `revoked_at_ms` unless already set; false when no such key exists.
    pub(crate) async fn revoke(&self, id: Uuid, now_ms: i64) -> Result<bool, StoreError> {
        let pg = "UPDATE api_keys SET revoked_at_ms = COALESCE(revoked_at_ms, $2) WHERE id = $1";
        let lite = "UPDATE api_keys SET revoked_at_ms = COALESCE(revoked_at_ms, ?2) WHERE id = ?1";
        run!(
            self,
            pg,
            lite,
            |q| q.bind(id).bind(now_ms),
            execute,
            |done| Ok(done.rows_affected() == 1)
        )
    }

    pub(crate) async fn count(&self) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) AS n FROM api_keys";
        run!(
            self,
            sql,
            sql,
            |q| q,
            fetch_one,
            |row| Ok(row.try_get("n")?)
        )
    }
}

fn decode<R: Row>(row: &R) -> Result<ApiKey, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> Uuid: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let tenant: String = row.try_get("tenant")?;
    let scopes: String = row.try_get("scopes")?;
    Ok(ApiKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        tenant: TenantId::parse(&tenant)
            .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?,
        scopes: Scopes::from_stored(&scopes),
        created_at_ms: row.try_get("created_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        revoked_at_ms: row.try_get("revoked_at_ms")?,
    })
}
