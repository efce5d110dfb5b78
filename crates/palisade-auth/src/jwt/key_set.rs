//! A set of verifying keys by `kid`: Palisade's own published keys (from the
//! [`KeyRing`](super::KeyRing)) or an outside issuer's, read from its JWKS document.

use super::key::PublicParams;
use super::{Algorithm, JwtError, VerifyingKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Largest JWKS document parsed; a key set is a few kilobytes at most.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone)]
struct Entry {
    key: Arc<VerifyingKey>,
    /// Unix ms after which the key no longer verifies (a rotated-out key past its
    /// grace period), so a stale set cannot keep an old key alive.
    usable_until_ms: Option<i64>,
}

/// Verifying keys by key id. Cheap to clone; keys are shared.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, Entry>,
}

impl KeySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key that stays usable until replaced; a second key with the same
    /// `kid` is refused because a lookup would be ambiguous.
    pub fn insert(&mut self, key: VerifyingKey) -> Result<(), JwtError> {
        self.insert_until(Arc::new(key), None)
    }

    /// Adds a key that stops verifying at `usable_until_ms` (Unix ms).
    pub(crate) fn insert_until(
        &mut self,
        key: Arc<VerifyingKey>,
        usable_until_ms: Option<i64>,
    ) -> Result<(), JwtError> {
        let kid = key.kid().to_owned();
        if self.keys.contains_key(&kid) {
            return Err(JwtError::InvalidKey("two keys with the same kid"));
        }
        self.keys.insert(
            kid,
            Entry {
                key,
                usable_until_ms,
            },
        );
        Ok(())
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key with id `kid`, whatever its usable-until time (for inspection;
    /// verification goes through the time check).
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid).map(|e| e.key.as_ref())
    }

    /// Key ids in the set, in no particular order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The key for a token's `kid` at `now_ms`. Without a `kid`, the sole key of a
    /// one-key set is used only when `allow_missing_kid` says so.
    pub(crate) fn find(
        &self,
        kid: Option<&str>,
        now_ms: i64,
        allow_missing_kid: bool,
    ) -> Result<&Arc<VerifyingKey>, JwtError> {
        let entry = match kid {
            Some(kid) => self.keys.get(kid).ok_or(JwtError::UnknownKid)?,
            None if allow_missing_kid && self.keys.len() == 1 => {
                self.keys.values().next().ok_or(JwtError::MissingKid)?
            }
            None => return Err(JwtError::MissingKid),
        };
        match entry.usable_until_ms {
            Some(until) if now_ms >= until => Err(JwtError::UnknownKid),
            _ => Ok(&entry.key),
        }
    }

    /// Parses an outside issuer's JWKS document (RFC 7517). Usable signing keys are
    /// kept: OKP Ed25519, EC P-256 and RSA, each bound to one algorithm (its `alg`,
    /// or the one its type implies). Encryption keys, other curves and algorithms
    /// are skipped, so one exotic key does not break the set. Symmetric (`oct`) keys
    /// are always skipped: a shared secret has no business in a published document.
    pub fn from_jwks_json(json: &str) -> Result<Self, JwtError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(JwtError::InvalidJwks("document too large"));
        }
        let set: JwkSet =
            serde_json::from_str(json).map_err(|_| JwtError::InvalidJwks("not a JWK set"))?;
        let mut keys = Self::new();
        for jwk in &set.keys {
            let Some(key) = usable_key(jwk)? else {
                continue;
            };
            keys.insert(key)
                .map_err(|_| JwtError::InvalidJwks("two keys with the same kid"))?;
        }
        if keys.is_empty() {
            return Err(JwtError::InvalidJwks("no usable signing key"));
        }
        Ok(keys)
    }
}

/// The verifying key a JWK describes, `None` for a key Palisade does not use.
fn usable_key(jwk: &Jwk) -> Result<Option<VerifyingKey>, JwtError> {
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return Ok(None);
    }
    let Some(kid) = jwk.common.key_id.clone() else {
        return Err(JwtError::InvalidJwks("signing key without kid"));
    };
    let declared = jwk.common.key_algorithm;
    let (implied, key) = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            (Algorithm::EdDSA, VerifyingKey::ed25519(kid, &b64(&p.x)?))
        }
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => (
            Algorithm::ES256,
            VerifyingKey::p256(kid, &b64(&p.x)?, &b64(&p.y)?),
        ),
        AlgorithmParameters::RSA(p) => (
            Algorithm::RS256,
            VerifyingKey::rsa(kid, &b64(&p.n)?, &b64(&p.e)?),
        ),
        _ => return Ok(None),
    };
    let declared_ok = match declared {
        None => true,
        Some(KeyAlgorithm::EdDSA) => implied == Algorithm::EdDSA,
        Some(KeyAlgorithm::ES256) => implied == Algorithm::ES256,
        Some(KeyAlgorithm::RS256) => implied == Algorithm::RS256,
        // PS256, ES384, RSA-OAEP, ...: a key bound to an algorithm we do not verify.
        Some(_) => return Ok(None),
    };
    if !declared_ok {
        return Err(JwtError::InvalidJwks("key type does not match its alg"));
    }
    key.map(Some)
        .map_err(|_| JwtError::InvalidJwks("invalid key material"))
}

fn b64(field: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(field)
        .map_err(|_| JwtError::InvalidJwks("key field is not base64url"))
}

/// The public JWK of `key` (`None` for an HMAC key, which is never published).
pub(crate) fn public_jwk(key: &VerifyingKey) -> Option<Value> {
    let kid = key.kid();
    let alg = key.algorithm().as_str();
    let enc = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    Some(match key.public_params()? {
        PublicParams::Okp { x } => {
            json!({"kty": "OKP", "crv": "Ed25519", "x": enc(x), "kid": kid, "alg": alg, "use": "sig"})
        }
        PublicParams::Ec { x, y } => json!({
            "kty": "EC", "crv": "P-256", "x": enc(x), "y": enc(y),
            "kid": kid, "alg": alg, "use": "sig"
        }),
        PublicParams::Rsa { n, e } => {
            json!({"kty": "RSA", "n": enc(n), "e": enc(e), "kid": kid, "alg": alg, "use": "sig"})
        }
    })
}
