//! Where tenants' policies are kept: the `authz_policies` table, one row per
//! tenant, on whichever database the instance runs on (embedded SQLite or
//! PostgreSQL), so policies survive restarts and reach every instance.
//!
//! Writes are optimistic: a writer names the version it read and loses with
//! `AuthzError::VersionConflict` if another writer got there first, so two
//! administrators editing one tenant at once can never overwrite each other's
//! change unseen. Deleting a tenant leaves a tombstone (`policy` NULL) with a
//! bumped version, so a tenant deleted and created again never reuses a
//! version some instance still holds (its engine would otherwise consider
//! itself up to date, and its decision cache, keyed by version, would answer
//! from the old policy).

use crate::error::{AuthzError, Result};
use crate::model::PolicySet;
use palisade_store::{Database, StoreError, on_primary};
use sqlx::Row;

/// The policy table on the configured database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PolicyStore {
    db: Database,
}

impl PolicyStore {
    /// The database the policies live in (change notifications travel on it).
    pub(crate) fn database(&self) -> &Database {
        &self.db
    }

    /// The store on `db` (migrated: the table comes from `0004_authz.sql`).
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// A tenant's stored policy and its version; `None` when the tenant has
    /// none (never created, or deleted). A row that cannot be used is
    /// `AuthzError::CorruptPolicy`, never a panic and never an empty policy.
    pub async fn get(&self, tenant: &str) -> Result<Option<(PolicySet, u64)>> {
        let pg =
            "SELECT version, policy FROM authz_policies WHERE tenant = $1 AND policy IS NOT NULL";
        let lite =
            "SELECT version, policy FROM authz_policies WHERE tenant = ? AND policy IS NOT NULL";
        let row: Option<(i64, String)> = run(async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q.bind(tenant),
                fetch_optional,
                |row| {
                    match row {
                        None => Ok(None),
                        Some(r) => Ok(Some((r.try_get("version")?, r.try_get("policy")?))),
                    }
                }
            )
        })
        .await?;
        row.map(|(version, policy)| decode(tenant, version, &policy))
            .transpose()
    }

    /// A tenant's stored version, 0 when it has no policy. Reads no policy
    /// text, so it works on a row that no longer parses (how `replace`
    /// repairs one).
    pub async fn version(&self, tenant: &str) -> Result<u64> {
        let pg = "SELECT version FROM authz_policies WHERE tenant = $1 AND policy IS NOT NULL";
        let lite = "SELECT version FROM authz_policies WHERE tenant = ? AND policy IS NOT NULL";
        let version: Option<i64> = run(async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q.bind(tenant),
                fetch_optional,
                |row| {
                    match row {
                        None => Ok(None),
                        Some(r) => Ok(Some(r.try_get("version")?)),
                    }
                }
            )
        })
        .await?;
        version.map_or(Ok(0), |v| to_version(tenant, v))
    }

    /// Every tenant that has a policy, with its version, sorted by tenant.
    /// Reads no policy text: this is what instances poll to find out which
    /// tenants changed.
    pub async fn versions(&self) -> Result<Vec<(String, u64)>> {
        let sql =
            "SELECT tenant, version FROM authz_policies WHERE policy IS NOT NULL ORDER BY tenant";
        let rows: Vec<(String, i64)> = run(async {
            on_primary!(&self.db, sql, sql, |q| q, fetch_all, |rows| rows
                .iter()
                .map(|r| Ok((r.try_get("tenant")?, r.try_get("version")?)))
                .collect())
        })
        .await?;
        rows.into_iter()
            .map(|(tenant, version)| {
                let version = to_version(&tenant, version)?;
                Ok((tenant, version))
            })
            .collect()
    }

    /// Every stored policy with its version, sorted by tenant. Fails with
    /// `AuthzError::CorruptPolicy` naming the first row that cannot be used,
    /// rather than quietly leaving a tenant out.
    pub async fn list(&self) -> Result<Vec<(PolicySet, u64)>> {
        let sql = "SELECT tenant, version, policy FROM authz_policies WHERE policy IS NOT NULL ORDER BY tenant";
        let rows: Vec<(String, i64, String)> = run(async {
            on_primary!(&self.db, sql, sql, |q| q, fetch_all, |rows| rows
                .iter()
                .map(|r| {
                    Ok((
                        r.try_get("tenant")?,
                        r.try_get("version")?,
                        r.try_get("policy")?,
                    ))
                })
                .collect())
        })
        .await?;
        rows.iter()
            .map(|(tenant, version, policy)| decode(tenant, *version, policy))
            .collect()
    }

    /// Stores `set` as its tenant's policy if the stored version is still
    /// `expected` (0: the tenant must have no policy yet), and returns the new
    /// version. When another writer got there first, nothing is written and
    /// the answer is `AuthzError::VersionConflict`.
    ///
    /// The check and the write are one statement, so the database, not this
    /// process, decides which of two racing writers wins.
    pub async fn put_if_version(&self, set: &PolicySet, expected: u64, now_ms: i64) -> Result<u64> {
        let json = serde_json::to_string(set).map_err(|e| AuthzError::Store(e.to_string()))?;
        // No stored version is above i64::MAX, so such an expectation cannot hold.
        let expected = i64::try_from(expected).map_err(|_| AuthzError::VersionConflict)?;
        let new_version: Option<i64> = if expected == 0 {
            // A new tenant, or one brought back from its tombstone (whose
            // version keeps growing); a live row means someone else created it.
            let pg = "INSERT INTO authz_policies (tenant, version, policy, updated_at_ms) \
                      VALUES ($1, 1, $2, $3) \
                      ON CONFLICT (tenant) DO UPDATE SET version = authz_policies.version + 1, \
                      policy = EXCLUDED.policy, updated_at_ms = EXCLUDED.updated_at_ms \
                      WHERE authz_policies.policy IS NULL \
                      RETURNING version";
            let lite = "INSERT INTO authz_policies (tenant, version, policy, updated_at_ms) \
                        VALUES (?, 1, ?, ?) \
                        ON CONFLICT (tenant) DO UPDATE SET version = authz_policies.version + 1, \
                        policy = excluded.policy, updated_at_ms = excluded.updated_at_ms \
                        WHERE authz_policies.policy IS NULL \
                        RETURNING version";
            run(async {
                on_primary!(
                    &self.db,
                    pg,
                    lite,
                    |q| q.bind(&set.tenant).bind(&json).bind(now_ms),
                    fetch_optional,
                    |row| match row {
                        None => Ok(None),
                        Some(r) => Ok(Some(r.try_get("version")?)),
                    }
                )
            })
            .await?
        } else {
            let pg = "UPDATE authz_policies SET version = version + 1, policy = $2, updated_at_ms = $3 \
                      WHERE tenant = $1 AND version = $4 AND policy IS NOT NULL \
                      RETURNING version";
            let lite = "UPDATE authz_policies SET version = version + 1, policy = ?2, updated_at_ms = ?3 \
                        WHERE tenant = ?1 AND version = ?4 AND policy IS NOT NULL \
                        RETURNING version";
            run(async {
                on_primary!(
                    &self.db,
                    pg,
                    lite,
                    |q| q.bind(&set.tenant).bind(&json).bind(now_ms).bind(expected),
                    fetch_optional,
                    |row| match row {
                        None => Ok(None),
                        Some(r) => Ok(Some(r.try_get("version")?)),
                    }
                )
            })
            .await?
        };
        match new_version {
            Some(version) => to_version(&set.tenant, version),
            None => Err(AuthzError::VersionConflict),
        }
    }

    /// Deletes a tenant's policy (its checks then deny everywhere once the
    /// instances refresh). Returns whether it had one.
    pub async fn delete(&self, tenant: &str, now_ms: i64) -> Result<bool> {
        let pg = "UPDATE authz_policies SET version = version + 1, policy = NULL, updated_at_ms = $2 \
                  WHERE tenant = $1 AND policy IS NOT NULL";
        let lite = "UPDATE authz_policies SET version = version + 1, policy = NULL, updated_at_ms = ?2 \
                    WHERE tenant = ?1 AND policy IS NOT NULL";
        run(async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q.bind(tenant).bind(now_ms),
                execute,
                |r| Ok(r.rows_affected() > 0)
            )
        })
        .await
    }
}

/// Runs a store future and maps its error to the crate's, keeping "the
/// database is down" (retry later, 503) apart from everything else.
async fn run<T>(query: impl Future<Output = Result<T, StoreError>>) -> Result<T> {
    query.await.map_err(|error| {
        if error.is_unavailable() {
            AuthzError::StoreUnavailable(error.to_string())
        } else {
            AuthzError::Store(error.to_string())
        }
    })
}

/// Turns a stored row into a policy, rejecting what cannot be trusted: JSON
/// that does not parse, a policy naming another tenant than its row, a
/// negative version.
fn decode(tenant: &str, version: i64, policy: &str) -> Result<(PolicySet, u64)> {
    let version = to_version(tenant, version)?;
    let set: PolicySet = serde_json::from_str(policy).map_err(|e| AuthzError::CorruptPolicy {
        tenant: tenant.to_owned(),
        reason: format!("does not parse: {e}"),
    })?;
    if set.tenant != tenant {
        return Err(AuthzError::CorruptPolicy {
            tenant: tenant.to_owned(),
            reason: format!("names tenant {:?}", crate::error::excerpt(&set.tenant)),
        });
    }
    Ok((set, version))
}

fn to_version(tenant: &str, version: i64) -> Result<u64> {
    u64::try_from(version).map_err(|_| AuthzError::CorruptPolicy {
        tenant: tenant.to_owned(),
        reason: format!("negative version {version}"),
    })
}
