//! Where rules created over the API are kept: the `ratelimit_rules` table, so
//! they survive restarts and reach every instance sharing the database.

use super::RuleSpec;
use crate::GuardError;
use palisade_store::{Database, StoreError, on_primary};
use sqlx::Row;

/// The rule table on the configured database.
#[derive(Debug, Clone)]
pub struct RuleStore {
    db: Database,
}

impl RuleStore {
    /// The store on `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Every stored rule, by name. A row that no longer parses (written by a
    /// newer version, edited by hand) is skipped with an error in the log
    /// rather than taking every other rule down with it.
    pub async fn list(&self) -> Result<Vec<RuleSpec>, GuardError> {
        let sql = "SELECT name, spec FROM ratelimit_rules ORDER BY name";
        let rows: Result<Vec<(String, String)>, StoreError> = async {
            on_primary!(&self.db, sql, sql, |q| q, fetch_all, |rows| rows
                .iter()
                .map(|r| Ok((r.try_get("name")?, r.try_get("spec")?)))
                .collect())
        }
        .await;
        let rows = rows.map_err(store_error)?;
        Ok(rows
            .into_iter()
            .filter_map(|(name, spec)| match serde_json::from_str(&spec) {
                Ok(spec) => Some(spec),
                Err(error) => {
                    tracing::error!(rule = %name, %error, "skipping a stored rate-limit rule that does not parse");
                    None
                }
            })
            .collect())
    }

    /// Stores `spec`, replacing a rule of the same name.
    pub async fn put(&self, spec: &RuleSpec, now_ms: i64) -> Result<(), GuardError> {
        let json = serde_json::to_string(spec).map_err(|e| GuardError::Store(e.to_string()))?;
        let pg = "INSERT INTO ratelimit_rules (name, spec, updated_at_ms) VALUES ($1, $2, $3) \
                  ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, updated_at_ms = EXCLUDED.updated_at_ms";
        let lite = "INSERT INTO ratelimit_rules (name, spec, updated_at_ms) VALUES (?, ?, ?) \
                    ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at_ms = excluded.updated_at_ms";
        let result: Result<(), StoreError> = async {
            on_primary!(
                &self.db,
                pg,
                lite,
                |q| q.bind(&spec.name).bind(&json).bind(now_ms),
                execute,
                |_r| Ok(())
            )
        }
        .await;
        result.map_err(store_error)
    }

    /// Deletes a rule; false when there was none.
    pub async fn delete(&self, name: &str) -> Result<bool, GuardError> {
        let pg = "DELETE FROM ratelimit_rules WHERE name = $1";
        let lite = "DELETE FROM ratelimit_rules WHERE name = ?";
        let result: Result<bool, StoreError> = async {
            on_primary!(&self.db, pg, lite, |q| q.bind(name), execute, |r| Ok(r
                .rows_affected()
                > 0))
        }
        .await;
        result.map_err(store_error)
    }
}

fn store_error(error: StoreError) -> GuardError {
    if error.is_unavailable() {
        GuardError::StoreUnavailable(error.to_string())
    } else {
        GuardError::Store(error.to_string())
    }
}
