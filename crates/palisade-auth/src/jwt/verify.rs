//! Token verification: the JWS checks, then the claims (issuer, audience, time).

use super::jws::{JwsRules, verify_jws};
use super::{Algorithm, Claims, JwtError, KeySet, MAX_LEEWAY, VerifiedJws};
use palisade_core::SharedClock;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The RFC 9068 media type of OAuth 2.0 access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// What a verifier accepts. Build with [`VerifierConfig::new`] and adjust fields;
/// [`Verifier::new`] checks the values are sane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// The only accepted `iss`.
    pub issuer: String,
    /// Audiences this verifier may be asked to check (`aud` must contain the one asked for).
    pub audiences: Vec<String>,
    /// Allowed clock skew, at most [`MAX_LEEWAY`].
    pub leeway: Duration,
    /// Longest accepted `exp - iat` (or `exp - nbf`, or `exp - now`).
    pub max_lifetime: Duration,
    /// Longest accepted token, in bytes; checked before anything is decoded.
    pub max_token_bytes: usize,
    /// The required header `typ`, compared as a media type; `None` accepts any.
    pub required_typ: Option<String>,
    /// Algorithms accepted. HS256 only when listed here explicitly.
    pub allowed_algorithms: Vec<Algorithm>,
    /// Whether a token must name its key. When false, a token without `kid` is
    /// checked against the only key of a one-key set (some outside issuers omit it).
    pub require_kid: bool,
}

impl VerifierConfig {
    /// Defaults: 60 s leeway, 1 h maximum lifetime, 8 KiB tokens, `typ` `at+jwt`,
    /// EdDSA, ES256 and RS256 allowed (not HS256), `kid` required.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences,
            leeway: Duration::from_secs(60),
            max_lifetime: Duration::from_secs(3600),
            max_token_bytes: 8 * 1024,
            required_typ: Some(ACCESS_TOKEN_TYP.to_owned()),
            allowed_algorithms: vec![Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256],
            require_kid: true,
        }
    }

    fn validate(&self) -> Result<(), JwtError> {
        if self.leeway > MAX_LEEWAY {
            return Err(JwtError::InvalidConfig("leeway above 5 minutes"));
        }
        if self.max_lifetime.is_zero() {
            return Err(JwtError::InvalidConfig("max_lifetime must be positive"));
        }
        if self.allowed_algorithms.is_empty() {
            return Err(JwtError::InvalidConfig("no algorithm allowed"));
        }
        if self.issuer.is_empty() || self.audiences.is_empty() {
            return Err(JwtError::InvalidConfig("issuer and audiences are required"));
        }
        Ok(())
    }
}

/// Verifies tokens against a replaceable set of keys (Palisade's own, from
/// [`KeyRing::key_set`](super::KeyRing::key_set)) or an outside issuer's JWKS.
#[derive(Debug)]
pub struct Verifier {
    config: VerifierConfig,
    leeway_s: i64,
    max_lifetime_s: i64,
    keys: RwLock<Arc<KeySet>>,
    clock: SharedClock,
}

impl Verifier {
    /// A verifier with `config`, verifying against `keys`, reading time from `clock`.
    pub fn new(config: VerifierConfig, keys: KeySet, clock: SharedClock) -> Result<Self, JwtError> {
        config.validate()?;
        Ok(Self {
            leeway_s: secs(config.leeway),
            max_lifetime_s: secs(config.max_lifetime),
            config,
            keys: RwLock::new(Arc::new(keys)),
            clock,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Replaces the key set, after a rotation or a JWKS refresh.
    pub fn replace_keys(&self, keys: KeySet) {
        // A poisoned lock only means a panic elsewhere while swapping an Arc; the
        // value inside is still a whole key set.
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
    }

    /// Verifies `token` for `expected_audience` against the configured keys.
    pub fn verify(&self, token: &str, expected_audience: &str) -> Result<Claims, JwtError> {
        let keys = Arc::clone(&self.keys.read().unwrap_or_else(|e| e.into_inner()));
        self.verify_with_jwks(token, expected_audience, &keys)
    }

    /// Verifies `token` for `expected_audience` against `keys` (an outside issuer's
    /// JWKS, parsed with [`KeySet::from_jwks_json`]).
    pub fn verify_with_jwks(
        &self,
        token: &str,
        expected_audience: &str,
        keys: &KeySet,
    ) -> Result<Claims, JwtError> {
        let now_ms = self.clock.now_unix_ms();
        let jws = self.verify_jws_at(token, keys, now_ms)?;
        let claims: Claims = serde_json::from_slice(&jws.payload)
            .map_err(|_| JwtError::Malformed("claims are not a JSON object"))?;
        self.check_claims(&claims, expected_audience, now_ms.div_euclid(1000))?;
        Ok(claims)
    }

    /// Re-checks claims verified earlier (time, issuer, audience) at the current
    /// time: what a cache of verified tokens must do on every hit.
    pub fn recheck_claims(&self, claims: &Claims, expected_audience: &str) -> Result<(), JwtError> {
        self.check_claims(
            claims,
            expected_audience,
            self.clock.now_unix_ms().div_euclid(1000),
        )
    }

    /// The claims of `token` once its signature checks out against the configured
    /// keys, without the time, issuer and audience checks: for acting on a token
    /// one has been shown (revoking it), where an expired token is not an error.
    pub fn signed_claims(&self, token: &str) -> Result<Claims, JwtError> {
        let keys = Arc::clone(&self.keys.read().unwrap_or_else(|e| e.into_inner()));
        let jws = self.verify_jws_at(token, &keys, self.clock.now_unix_ms())?;
        serde_json::from_slice(&jws.payload)
            .map_err(|_| JwtError::Malformed("claims are not a JSON object"))
    }

    /// The JWS half alone (size, header, key, signature) for payloads that are not
    /// JWT claims; [`Verifier::verify`] is what token consumers want.
    pub fn verify_signature(&self, token: &str, keys: &KeySet) -> Result<VerifiedJws, JwtError> {
        self.verify_jws_at(token, keys, self.clock.now_unix_ms())
    }

    fn verify_jws_at(
        &self,
        token: &str,
        keys: &KeySet,
        now_ms: i64,
    ) -> Result<VerifiedJws, JwtError> {
        let rules = JwsRules {
            max_token_bytes: self.config.max_token_bytes,
            allowed: &self.config.allowed_algorithms,
            required_typ: self.config.required_typ.as_deref(),
            require_kid: self.config.require_kid,
        };
        verify_jws(token, &rules, keys, now_ms)
    }

    fn check_claims(&self, c: &Claims, audience: &str, now: i64) -> Result<(), JwtError> {
        let leeway = self.leeway_s;
        let exp = c.exp.ok_or(JwtError::MissingClaim("exp"))?;
        if now >= exp.saturating_add(leeway) {
            return Err(JwtError::Expired);
        }
        if c.nbf.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
            return Err(JwtError::NotYetValid);
        }
        if c.iat.is_some_and(|iat| now.saturating_add(leeway) < iat) {
            return Err(JwtError::IssuedInFuture);
        }
        // The lifetime is measured from the earliest start the token states; with
        // neither iat nor nbf, from now, which still bounds how long it is usable.
        let start = c.iat.or(c.nbf).unwrap_or(now);
        if exp.saturating_sub(start) > self.max_lifetime_s {
            return Err(JwtError::LifetimeTooLong);
        }
        match c.iss.as_deref() {
            None => return Err(JwtError::MissingClaim("iss")),
            Some(iss) if iss != self.config.issuer => return Err(JwtError::BadIssuer),
            Some(_) => {}
        }
        if !self.config.audiences.iter().any(|a| a == audience) {
            return Err(JwtError::BadAudience);
        }
        let aud = c.aud.as_ref().ok_or(JwtError::MissingClaim("aud"))?;
        if !aud.contains(audience) {
            return Err(JwtError::BadAudience);
        }
        Ok(())
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
