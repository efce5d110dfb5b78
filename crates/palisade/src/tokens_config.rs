//! `[tokens]` in `palisade.toml`: Palisade's own access and refresh tokens.

use crate::config::ConfigError;
use palisade_auth::jwt::{Algorithm, RotationPolicy};
use palisade_auth::tokens::{TokensConfig as ServiceConfig, TrustedIssuer};
use serde::Deserialize;
use std::time::Duration;

/// `[tokens]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensConfig {
    /// The `iss` of every token: the URL where this Palisade is reached.
    pub issuer: String,
    /// Audiences tokens may be issued for (the services that accept them).
    pub audiences: Vec<String>,
    /// Access-token lifetime when the caller does not ask for one.
    pub access_ttl_seconds: u64,
    /// Longest access-token lifetime a caller may ask for.
    pub max_access_ttl_seconds: u64,
    /// How long an unused refresh token stays valid.
    pub refresh_ttl_seconds: u64,
    /// Absolute session lifetime, however often it is refreshed.
    pub session_lifetime_seconds: u64,
    /// `EdDSA` (default), `ES256` or `RS256`.
    pub algorithm: String,
    /// A new signing key every this many seconds (0: only when asked).
    pub rotate_every_seconds: u64,
    /// How long a new key is published before it signs; longer than any
    /// relying party caches the JWKS.
    pub publish_ahead_seconds: u64,
    /// Clock leeway of verification, at most 300.
    pub leeway_seconds: u64,
    /// Tokens remembered as verified (0 disables the cache).
    pub verified_cache_entries: u64,
    /// How often revocations made by other instances are polled (they also
    /// arrive by PostgreSQL notification within milliseconds).
    pub revocation_poll_ms: u64,
    /// `[[tokens.trusted_issuers]]`: outside issuers whose tokens
    /// `/v1/auth/tokens/verify` also accepts, checked against their JWKS URL.
    pub trusted_issuers: Vec<TrustedIssuerConfig>,
}

/// One `[[tokens.trusted_issuers]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuerConfig {
    /// Its exact `iss`.
    pub issuer: String,
    /// Its JWKS URL.
    pub jwks_url: String,
    /// Audiences its tokens may be verified for.
    pub audiences: Vec<String>,
    /// Accepted algorithms (default: EdDSA, ES256, RS256).
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Required header `typ`, if any.
    #[serde(default)]
    pub required_typ: Option<String>,
    /// Longest accepted token lifetime (default 3600).
    #[serde(default)]
    pub max_lifetime_seconds: Option<u64>,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".into(),
            audiences: vec!["default".into()],
            access_ttl_seconds: 900,
            max_access_ttl_seconds: 3600,
            refresh_ttl_seconds: 14 * 24 * 3600,
            session_lifetime_seconds: 30 * 24 * 3600,
            algorithm: "EdDSA".into(),
            rotate_every_seconds: 30 * 24 * 3600,
            publish_ahead_seconds: 24 * 3600,
            leeway_seconds: 60,
            verified_cache_entries: 100_000,
            revocation_poll_ms: 1_000,
            trusted_issuers: Vec::new(),
        }
    }
}

impl TokensConfig {
    /// The service settings; errors name the key.
    pub fn service(&self) -> Result<ServiceConfig, ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: format!("tokens.{key}"),
            message: message.into(),
        };
        let algorithm = Algorithm::from_name(&self.algorithm)
            .filter(|a| !a.is_symmetric())
            .ok_or_else(|| invalid("algorithm", "must be EdDSA, ES256 or RS256"))?;
        if self.issuer.is_empty() {
            return Err(invalid("issuer", "must not be empty"));
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(invalid(
                "audiences",
                "needs at least one non-empty audience",
            ));
        }
        if self.leeway_seconds > 300 {
            return Err(invalid("leeway_seconds", "at most 300"));
        }
        if self.revocation_poll_ms == 0 {
            return Err(invalid("revocation_poll_ms", "must be at least 1"));
        }
        let secs = Duration::from_secs;
        let mut config = ServiceConfig::new(self.issuer.clone(), self.audiences.clone());
        config.access_ttl = secs(self.access_ttl_seconds);
        config.refresh_ttl = secs(self.refresh_ttl_seconds);
        config.session_lifetime = secs(self.session_lifetime_seconds);
        config.rotate_every = secs(self.rotate_every_seconds);
        config.verified_cache_entries = self.verified_cache_entries;
        config.rotation = RotationPolicy {
            algorithm,
            publish_ahead: secs(self.publish_ahead_seconds),
            max_token_lifetime: secs(self.max_access_ttl_seconds),
            leeway: secs(self.leeway_seconds),
            ..RotationPolicy::default()
        };
        config.trusted_issuers = self
            .trusted_issuers
            .iter()
            .enumerate()
            .map(|(n, t)| t.trusted(n))
            .collect::<Result<_, _>>()?;
        config.validate().map_err(|message| ConfigError::Invalid {
            key: "tokens".into(),
            message: message.into(),
        })?;
        Ok(config)
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.service().map(|_| ())
    }
}

impl TrustedIssuerConfig {
    fn trusted(&self, n: usize) -> Result<TrustedIssuer, ConfigError> {
        let invalid = |message: &str| ConfigError::Invalid {
            key: format!("tokens.trusted_issuers[{n}]"),
            message: message.into(),
        };
        let names = if self.algorithms.is_empty() {
            vec!["EdDSA".to_owned(), "ES256".to_owned(), "RS256".to_owned()]
        } else {
            self.algorithms.clone()
        };
        let algorithms = names
            .iter()
            .map(|name| Algorithm::from_name(name).filter(|a| !a.is_symmetric()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("algorithms must be EdDSA, ES256 or RS256"))?;
        if self.issuer.is_empty() || self.audiences.is_empty() {
            return Err(invalid("issuer and audiences are required"));
        }
        if !self.jwks_url.starts_with("https://") && !self.jwks_url.starts_with("http://") {
            return Err(invalid("jwks_url must be an http(s) URL"));
        }
        Ok(TrustedIssuer {
            issuer: self.issuer.clone(),
            jwks_url: self.jwks_url.clone(),
            audiences: self.audiences.clone(),
            algorithms,
            required_typ: self.required_typ.clone(),
            max_lifetime: Duration::from_secs(self.max_lifetime_seconds.unwrap_or(3600)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        TokensConfig::default().validate().unwrap();
        let hs: TokensConfig = toml::from_str("algorithm = \"HS256\"").unwrap();
        assert!(
            hs.validate()
                .unwrap_err()
                .to_string()
                .contains("tokens.algorithm")
        );
        let long: TokensConfig = toml::from_str("access_ttl_seconds = 7200").unwrap();
        assert!(long.validate().unwrap_err().to_string().contains("tokens"));
        assert!(toml::from_str::<TokensConfig>("unknown = 1").is_err());
        let trusted: TokensConfig = toml::from_str(
            "[[trusted_issuers]]\nissuer = \"https://idp\"\njwks_url = \"https://idp/jwks\"\naudiences = [\"api\"]\nalgorithms = [\"HS256\"]\n",
        )
        .unwrap();
        let err = trusted.validate().unwrap_err().to_string();
        assert!(err.contains("tokens.trusted_issuers[0]"), "{err}");
    }
}
