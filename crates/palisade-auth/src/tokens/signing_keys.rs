//! The signing keys at rest: the key ring's records in `auth_signing_keys`,
//! the private material sealed by the keyring ([`SecretSealer`]), so every
//! instance signs and verifies with the same keys and a copy of the database
//! reveals no private key.
//!
//! Versions are unique in the table: when two instances rotate at the same
//! moment, one insert wins and the other instance adopts the winner's key.

use super::TokenError;
use crate::jwt::{Algorithm, KeyMaterial, KeyRecord};
use palisade_crypto::SecretSealer;
use palisade_store::{Database, StoreError, on_primary};
use sqlx::Row;

/// The AAD of a sealed signing key: ties the ciphertext to its `kid`, so one
/// key's sealed material cannot be passed off as another's.
fn purpose(kid: &str) -> Vec<u8> {
    let mut aad = b"palisade jwt signing key v1\0".to_vec();
    aad.extend_from_slice(kid.as_bytes());
    aad
}

/// The signing-key table, sealing and opening the private material.
#[derive(Debug, Clone)]
pub struct SigningKeyStore {
    db: Database,
    sealer: SecretSealer,
}

/// A row before its material is opened.
struct SealedRecord {
    kid: String,
    version: i64,
    alg: String,
    created_at_ms: i64,
    signs_from_ms: i64,
    retire_after_ms: Option<i64>,
    material: Vec<u8>,
}

impl SigningKeyStore {
    /// The store on `db` (migrated), sealing with `sealer`.
    pub fn new(db: Database, sealer: SecretSealer) -> Self {
        Self { db, sealer }
    }

    /// Every stored key, opened. A key that cannot be opened (wrong master key,
    /// tampered row) fails the whole load: signing with a partial ring would
    /// hide the problem.
    pub async fn load(&self) -> Result<Vec<KeyRecord>, TokenError> {
        let sql = "SELECT kid, version, alg, created_at_ms, signs_from_ms, retire_after_ms, material \
                   FROM auth_signing_keys ORDER BY version";
        let rows: Vec<SealedRecord> =
            on_primary!(&self.db, sql, sql, |q| q, fetch_all, |rows| rows
                .iter()
                .map(|r| {
                    Ok::<_, StoreError>(SealedRecord {
                        kid: r.try_get("kid")?,
                        version: r.try_get("version")?,
                        alg: r.try_get("alg")?,
                        created_at_ms: r.try_get("created_at_ms")?,
                        signs_from_ms: r.try_get("signs_from_ms")?,
                        retire_after_ms: r.try_get("retire_after_ms")?,
                        material: r.try_get("material")?,
                    })
                })
                .collect::<Result<Vec<_>, _>>())?;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            let material = self
                .sealer
                .open(&purpose(&row.kid), &row.material)
                .await
                .map_err(|_| TokenError::Corrupt("a signing key cannot be opened"))?;
            records.push(KeyRecord {
                version: u32::try_from(row.version)
                    .map_err(|_| TokenError::Corrupt("signing key version"))?,
                alg: Algorithm::from_name(&row.alg)
                    .ok_or(TokenError::Corrupt("signing key algorithm"))?,
                kid: row.kid,
                created_at_ms: row.created_at_ms,
                signs_from_ms: row.signs_from_ms,
                retire_after_ms: row.retire_after_ms,
                material: KeyMaterial::new(material.to_vec()),
            });
        }
        Ok(records)
    }

    /// Stores a new key. `Ok(false)` when its version is taken: another
    /// instance rotated first.
    pub async fn insert(&self, record: &KeyRecord) -> Result<bool, TokenError> {
        let sealed = self
            .sealer
            .seal(&purpose(&record.kid), record.material.expose())
            .await
            .map_err(|_| TokenError::Corrupt("the signing key cannot be sealed"))?;
        let pg = "INSERT INTO auth_signing_keys (kid, version, alg, created_at_ms, signs_from_ms, retire_after_ms, material) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
        let lite = "INSERT INTO auth_signing_keys (kid, version, alg, created_at_ms, signs_from_ms, retire_after_ms, material) \
                    VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING";
        Ok(on_primary!(
            &self.db,
            pg,
            lite,
            |q| q
                .bind(&record.kid)
                .bind(i64::from(record.version))
                .bind(record.alg.as_str())
                .bind(record.created_at_ms)
                .bind(record.signs_from_ms)
                .bind(record.retire_after_ms)
                .bind(&sealed),
            execute,
            |r| Ok::<_, StoreError>(r.rows_affected() == 1)
        )?)
    }

    /// Records when a key stops signing.
    pub async fn set_retire_after(
        &self,
        kid: &str,
        retire_after_ms: i64,
    ) -> Result<(), TokenError> {
        let pg = "UPDATE auth_signing_keys SET retire_after_ms = $1 WHERE kid = $2";
        let lite = "UPDATE auth_signing_keys SET retire_after_ms = ? WHERE kid = ?";
        on_primary!(
            &self.db,
            pg,
            lite,
            |q| q.bind(retire_after_ms).bind(kid),
            execute,
            |_r| Ok::<_, StoreError>(())
        )?;
        Ok(())
    }

    /// Deletes a key (past its grace period).
    pub async fn delete(&self, kid: &str) -> Result<(), TokenError> {
        let pg = "DELETE FROM auth_signing_keys WHERE kid = $1";
        let lite = "DELETE FROM auth_signing_keys WHERE kid = ?";
        on_primary!(&self.db, pg, lite, |q| q.bind(kid), execute, |_r| Ok::<
            _,
            StoreError,
        >(
            ()
        ))?;
        Ok(())
    }
}
