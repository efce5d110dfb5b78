//! Request protection settings of the running server, assembled once at start:
//! the CSRF policy and its cookie names, security headers, CORS and the
//! trusted proxies. Held in [`AppState`](crate::AppState) so the `/v1/csrf`
//! routes and the router's layers read the same configuration.

use crate::client_ip::TrustedProxies;
use crate::layers::cors::CorsSettings;
use crate::layers::csrf::CsrfSettings;
use crate::layers::security_headers::{SecurityHeaders, SecurityHeadersLayer};
use palisade_guard::GuardError;
use palisade_guard::csrf::{CsrfPolicy, CsrfTokens};
use std::sync::Arc;
use tower_http::cors::CorsLayer;

/// Why request protection cannot be configured. Each names the configuration
/// key at fault (`security_headers.referrer_policy`, `cors.allowed_origins`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtectionError {
    /// A value is malformed or out of range.
    #[error("{key}: {reason}")]
    Invalid {
        /// Dotted configuration key.
        key: String,
        /// What is wrong, never quoting a secret.
        reason: String,
    },
    /// `*` among the CORS origins while credentials are allowed: every site
    /// could act as the signed-in user.
    #[error("cors.allowed_origins: \"*\" cannot be combined with allow_credentials = true")]
    CorsWildcardWithCredentials,
    /// A CORS origin is not `scheme://host[:port]`.
    #[error("cors.allowed_origins: {0:?} is not an origin (scheme://host[:port], no path)")]
    CorsOrigin(String),
}

impl ProtectionError {
    /// The configuration key at fault.
    pub fn key(&self) -> &str {
        match self {
            Self::Invalid { key, .. } => key,
            Self::CorsWildcardWithCredentials | Self::CorsOrigin(_) => "cors.allowed_origins",
        }
    }

    /// What is wrong, without the key.
    pub fn reason(&self) -> String {
        let text = self.to_string();
        text.split_once(": ")
            .map_or(text.clone(), |(_, r)| r.to_owned())
    }

    fn from_guard(section: &str, e: GuardError) -> Self {
        match e {
            GuardError::Invalid { field, reason } => Self::Invalid {
                key: format!("{section}.{field}"),
                reason,
            },
            other => Self::Invalid {
                key: section.to_owned(),
                reason: other.to_string(),
            },
        }
    }
}

/// Everything that protects requests, ready to use.
#[derive(Debug, Clone)]
pub struct RequestProtection {
    /// The CSRF policy, with the token key.
    pub csrf: Arc<CsrfPolicy>,
    /// CSRF cookie and header names, for the routes and the layer.
    pub csrf_settings: CsrfSettings,
    /// The security headers layer of Palisade's own responses.
    pub security_headers: SecurityHeadersLayer,
    /// The CORS layer, when origins are configured.
    pub cors: Option<CorsLayer>,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: TrustedProxies,
}

impl RequestProtection {
    /// Validates the configuration sections and builds the layers. `tokens`
    /// carries the CSRF key; `trusted_proxies` are CIDRs or addresses.
    pub fn new(
        tokens: CsrfTokens,
        csrf: &CsrfSettings,
        security_headers: &SecurityHeaders,
        cors: &CorsSettings,
        trusted_proxies: &[String],
    ) -> Result<Self, ProtectionError> {
        let policy = CsrfPolicy::new(tokens, csrf.rules())
            .map_err(|e| ProtectionError::from_guard("csrf", e))?;
        csrf.validate()?;
        let trusted_proxies =
            TrustedProxies::parse(trusted_proxies).map_err(|entry| ProtectionError::Invalid {
                key: "server.trusted_proxies".into(),
                reason: format!("{entry:?} is not an IP address or CIDR network"),
            })?;
        Ok(Self {
            csrf: Arc::new(policy),
            csrf_settings: csrf.clone(),
            security_headers: SecurityHeadersLayer::new(security_headers)?,
            cors: cors.layer()?,
            trusted_proxies,
        })
    }

    /// Defaults with a random CSRF key (tokens die with the process), strict
    /// headers, no CORS, no trusted proxies. Fails only if the system has no
    /// random numbers.
    pub fn with_random_key() -> Result<Self, ProtectionError> {
        let tokens = CsrfTokens::generate().map_err(|e| ProtectionError::from_guard("csrf", e))?;
        Self::new(
            tokens,
            &CsrfSettings::default(),
            &SecurityHeaders::default(),
            &CorsSettings::default(),
            &[],
        )
    }
}

impl Default for RequestProtection {
    /// [`RequestProtection::with_random_key`]. Panics only without system
    /// randomness, where aws-lc aborts the process before this is reached
    /// and nothing secure could run anyway.
    fn default() -> Self {
        Self::with_random_key().unwrap_or_else(|e| panic!("request protection defaults: {e}"))
    }
}
