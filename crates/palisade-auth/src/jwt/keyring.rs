//! Versioned signing keys and their rotation.
//!
//! A key's life: created (and published in the JWKS at once), signing from
//! `signs_from` = creation + `publish_ahead` (so every relying party that caches
//! the JWKS has seen it before the first token it signs arrives), retired when the
//! next key starts signing, and published until every token it signed has expired:
//! `retire_after` + the longest token lifetime + leeway. After that it is gone from
//! the JWKS and tokens naming it are refused as `unknown_kid`.

use super::key::Signer;
use super::key_set::public_jwk;
use super::{Algorithm, JwtError, KeyMaterial, KeySet, VerifyingKey};
use aws_lc_rs::rand;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How keys are generated and rotated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Algorithm of newly generated keys (EdDSA unless there is a reason).
    pub algorithm: Algorithm,
    /// How long a new key is published before it signs. Should exceed the longest
    /// time relying parties cache the JWKS.
    pub publish_ahead: Duration,
    /// The longest lifetime of a token this ring signs; an old key stays published
    /// this long (plus `leeway`) after it stops signing.
    pub max_token_lifetime: Duration,
    /// The verifiers' clock leeway, added to the grace period for the same reason.
    pub leeway: Duration,
    /// Upper bound of the JWKS `Cache-Control: max-age` hint.
    pub jwks_max_age: Duration,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::EdDSA,
            publish_ahead: Duration::from_secs(24 * 3600),
            max_token_lifetime: Duration::from_secs(3600),
            leeway: Duration::from_secs(60),
            jwks_max_age: Duration::from_secs(3600),
        }
    }
}

/// A key as stored: everything needed to rebuild it. The private material is
/// redacted in `Debug`; sealing it at rest is the storage layer's job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Key id, as tokens name it in `kid`.
    pub kid: String,
    /// Position in the ring, from 1; a newer key has a larger version.
    pub version: u32,
    /// The one algorithm this key signs with.
    pub alg: Algorithm,
    /// When the key was created and published (Unix ms).
    pub created_at_ms: i64,
    /// When it starts signing (Unix ms): creation plus the publish-ahead time.
    pub signs_from_ms: i64,
    /// When it stopped (or stops) signing because a newer key took over (Unix ms).
    pub retire_after_ms: Option<i64>,
    /// PKCS#8 DER of the private key, or the HS256 secret.
    pub material: KeyMaterial,
}

/// One version of the signing key, parsed and ready to sign.
pub struct SigningKey {
    record: KeyRecord,
    signer: Signer,
    verifying: Arc<VerifyingKey>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Rebuilds a key from its stored record, checking the material fits the algorithm.
    pub fn from_record(record: KeyRecord) -> Result<Self, JwtError> {
        let signer = Signer::from_material(record.alg, &record.material)?;
        let verifying = Arc::new(signer.verifying_key(&record.kid, &record.material)?);
        Ok(Self {
            record,
            signer,
            verifying,
        })
    }

    /// Key id.
    pub fn kid(&self) -> &str {
        &self.record.kid
    }

    /// Algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.record.alg
    }

    /// The stored form, for persistence.
    pub fn record(&self) -> &KeyRecord {
        &self.record
    }

    /// The public (or, for HS256, shared) verifying key.
    pub fn verifying_key(&self) -> &Arc<VerifyingKey> {
        &self.verifying
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JwtError> {
        self.signer.sign(message)
    }

    fn may_sign_at(&self, now_ms: i64) -> bool {
        self.record.signs_from_ms <= now_ms
            && self.record.retire_after_ms.is_none_or(|r| now_ms < r)
    }
}

/// A JWKS document with the caching hint to serve it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksDocument {
    /// `{"keys":[...]}` with the public JWK of every published asymmetric key.
    pub json: String,
    /// The `Cache-Control: max-age` to send: half the publish-ahead time (capped),
    /// so a relying party refreshes before a key created right after this response
    /// starts signing.
    pub max_age: Duration,
}

/// Every version of the signing key, oldest first.
#[derive(Debug)]
pub struct KeyRing {
    policy: RotationPolicy,
    keys: Vec<SigningKey>,
}

impl KeyRing {
    /// An empty ring; call [`KeyRing::rotate`] to create the first key.
    pub fn new(policy: RotationPolicy) -> Self {
        Self {
            policy,
            keys: Vec::new(),
        }
    }

    /// Rebuilds a ring from stored records (in any order).
    pub fn from_records(
        policy: RotationPolicy,
        records: impl IntoIterator<Item = KeyRecord>,
    ) -> Result<Self, JwtError> {
        let mut keys = records
            .into_iter()
            .map(SigningKey::from_record)
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by_key(|k| k.record.version);
        // Duplicates would make `kid` lookups and "the newest key" ambiguous.
        let mut kids = std::collections::HashSet::new();
        for pair in keys.windows(2) {
            if pair[0].record.version == pair[1].record.version {
                return Err(JwtError::InvalidKey(
                    "two key records with the same version",
                ));
            }
        }
        if !keys.iter().all(|k| kids.insert(k.record.kid.as_str())) {
            return Err(JwtError::InvalidKey("two key records with the same kid"));
        }
        Ok(Self { policy, keys })
    }

    /// The rotation policy.
    pub fn policy(&self) -> &RotationPolicy {
        &self.policy
    }

    /// Stored form of every key, for persistence.
    pub fn records(&self) -> impl Iterator<Item = &KeyRecord> {
        self.keys.iter().map(|k| &k.record)
    }

    /// Creates the next key version with the policy's algorithm. It is published
    /// at once and signs after `publish_ahead`, when the keys signing until then
    /// retire. The first key of an empty ring (or of a ring with no key able to
    /// sign) signs at once: there is nothing to wait for.
    pub fn rotate(&mut self, now_ms: i64) -> Result<&SigningKey, JwtError> {
        let version = self.keys.last().map_or(1, |k| k.record.version + 1);
        let mut suffix = [0u8; 6];
        rand::fill(&mut suffix).map_err(|_| JwtError::Crypto)?;
        let kid = format!("v{version}-{}", hex_lower(&suffix));
        let anyone_signing = self.keys.iter().any(|k| k.may_sign_at(now_ms));
        let signs_from_ms = if anyone_signing {
            now_ms.saturating_add(millis(self.policy.publish_ahead))
        } else {
            now_ms
        };
        let record = KeyRecord {
            kid,
            version,
            alg: self.policy.algorithm,
            created_at_ms: now_ms,
            signs_from_ms,
            retire_after_ms: None,
            material: Signer::generate(self.policy.algorithm)?,
        };
        let key = SigningKey::from_record(record)?;
        for old in &mut self.keys {
            if old.record.retire_after_ms.is_none_or(|r| r > signs_from_ms) {
                old.record.retire_after_ms = Some(signs_from_ms);
            }
        }
        self.keys.push(key);
        self.keys.last().ok_or(JwtError::NoSigningKey)
    }

    /// The key that signs at `now_ms`: the newest one whose signing has begun.
    pub fn current_signer(&self, now_ms: i64) -> Result<&SigningKey, JwtError> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.may_sign_at(now_ms))
            .ok_or(JwtError::NoSigningKey)
    }

    /// How long after retiring a key stays published: the longest token plus leeway.
    fn grace_ms(&self) -> i64 {
        millis(self.policy.max_token_lifetime).saturating_add(millis(self.policy.leeway))
    }

    /// Unix ms at which `key` leaves the JWKS, if it has been retired.
    fn unpublished_at(&self, key: &SigningKey) -> Option<i64> {
        key.record
            .retire_after_ms
            .map(|r| r.saturating_add(self.grace_ms()))
    }

    /// Keys published at `now_ms`: created, and not past their grace period.
    pub fn published(&self, now_ms: i64) -> impl Iterator<Item = &SigningKey> {
        self.keys.iter().filter(move |k| {
            k.record.created_at_ms <= now_ms && self.unpublished_at(k).is_none_or(|u| now_ms < u)
        })
    }

    /// The verifying keys of every key published at `now_ms`, each usable only until
    /// its grace period ends, for a [`Verifier`](super::Verifier).
    pub fn key_set(&self, now_ms: i64) -> KeySet {
        let mut set = KeySet::new();
        for key in self.published(now_ms) {
            // Kids are unique within a ring (version-prefixed), so insert cannot clash.
            let _ = set.insert_until(Arc::clone(&key.verifying), self.unpublished_at(key));
        }
        set
    }

    /// The JWKS document at `now_ms`: public keys of every published asymmetric key
    /// (HS256 secrets are never published), with its cache hint.
    pub fn jwks(&self, now_ms: i64) -> JwksDocument {
        let keys: Vec<_> = self
            .published(now_ms)
            .filter_map(|k| public_jwk(&k.verifying))
            .collect();
        let json = serde_json::json!({ "keys": keys }).to_string();
        let max_age = (self.policy.publish_ahead / 2).min(self.policy.jwks_max_age);
        JwksDocument { json, max_age }
    }

    /// Drops keys past their grace period; returns their kids so storage can delete them.
    pub fn prune(&mut self, now_ms: i64) -> Vec<String> {
        let grace = self.grace_ms();
        let (gone, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.keys).into_iter().partition(|k| {
                k.record
                    .retire_after_ms
                    .is_some_and(|r| now_ms >= r.saturating_add(grace))
            });
        self.keys = kept;
        gone.into_iter().map(|k| k.record.kid).collect()
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
