//! How Palisade issues its own tokens.

use crate::jwt::{ACCESS_TOKEN_TYP, Algorithm, RotationPolicy, VerifierConfig};
use std::time::Duration;

/// Token service settings (`[tokens]` in `palisade.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokensConfig {
    /// The `iss` of every token.
    pub issuer: String,
    /// Audiences tokens may be issued for and verified against.
    pub audiences: Vec<String>,
    /// Access-token lifetime when the caller does not ask for one.
    pub access_ttl: Duration,
    /// How long an unused refresh token stays valid (idle timeout).
    pub refresh_ttl: Duration,
    /// Absolute lifetime of a session, however often it is refreshed.
    pub session_lifetime: Duration,
    /// Signing keys: algorithm, publish-ahead time, longest token lifetime
    /// (also the longest `ttl` a caller may ask for), leeway, JWKS cache hint.
    pub rotation: RotationPolicy,
    /// A new signing key is created when the newest is this old (0: never).
    pub rotate_every: Duration,
    /// Tokens remembered as verified (0 disables the cache).
    pub verified_cache_entries: u64,
    /// Longest token accepted for verification, in bytes.
    pub max_token_bytes: usize,
    /// Outside issuers whose tokens the verify endpoint also accepts.
    pub trusted_issuers: Vec<super::TrustedIssuer>,
}

impl TokensConfig {
    /// Defaults: 15 min access tokens, 14 days idle and 30 days absolute for
    /// sessions, EdDSA keys rotated every 30 days and published a day ahead.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences,
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(14 * 24 * 3600),
            session_lifetime: Duration::from_secs(30 * 24 * 3600),
            rotation: RotationPolicy::default(),
            rotate_every: Duration::from_secs(30 * 24 * 3600),
            verified_cache_entries: 100_000,
            max_token_bytes: 8 * 1024,
            trusted_issuers: Vec::new(),
        }
    }

    /// The verifier settings matching how tokens are issued: only this ring's
    /// algorithm, `at+jwt`, and no lifetime beyond the ring's maximum.
    pub(crate) fn verifier(&self) -> VerifierConfig {
        let mut v = VerifierConfig::new(self.issuer.clone(), self.audiences.clone());
        v.leeway = self.rotation.leeway;
        v.max_lifetime = self.rotation.max_token_lifetime;
        v.max_token_bytes = self.max_token_bytes;
        v.required_typ = Some(ACCESS_TOKEN_TYP.to_owned());
        v.allowed_algorithms = vec![self.rotation.algorithm];
        v
    }

    /// How long after its last possible use a revocation must be kept: the
    /// longest token plus the leeway.
    pub(crate) fn revocation_horizon_ms(&self) -> i64 {
        millis(self.rotation.max_token_lifetime).saturating_add(millis(self.rotation.leeway))
    }

    /// Checks the settings fit together.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.access_ttl.is_zero() || self.access_ttl > self.rotation.max_token_lifetime {
            return Err("access_ttl must be positive and at most the longest token lifetime");
        }
        if self.refresh_ttl.is_zero() || self.session_lifetime < self.refresh_ttl {
            return Err("refresh_ttl must be positive and at most session_lifetime");
        }
        if self.rotation.algorithm == Algorithm::HS256 {
            // A shared secret cannot be published in a JWKS, and every relying
            // party holding it could mint tokens: Palisade signs asymmetrically.
            return Err("Palisade's own tokens are signed with EdDSA, ES256 or RS256");
        }
        Ok(())
    }
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
