//! Tokens of outside issuers the deployment trusts (an OIDC provider, another
//! Palisade): each verified against its own JWKS URL with its own rules.

use super::TokenError;
use crate::jwt::{
    Algorithm, Claims, KeySet, RemoteJwks, RemoteJwksConfig, Verifier, VerifierConfig,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use palisade_core::SharedClock;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// One trusted outside issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuer {
    /// Its exact `iss`.
    pub issuer: String,
    /// Where its public keys are published.
    pub jwks_url: String,
    /// Audiences its tokens may be verified for.
    pub audiences: Vec<String>,
    /// Algorithms accepted from it (never HS256: its keys are public).
    pub algorithms: Vec<Algorithm>,
    /// Required header `typ`; `None` accepts any (many providers send `JWT`).
    pub required_typ: Option<String>,
    /// Longest accepted token lifetime.
    pub max_lifetime: Duration,
}

/// The trusted outside issuers, by `iss`.
#[derive(Debug, Clone, Default)]
pub struct OutsideIssuers {
    by_issuer: Arc<HashMap<String, (Verifier, RemoteJwks)>>,
}

impl OutsideIssuers {
    /// Verifiers for `issuers`, reading time from `clock`.
    pub fn new(issuers: Vec<TrustedIssuer>, clock: SharedClock) -> Result<Self, TokenError> {
        let mut by_issuer = HashMap::new();
        for trusted in issuers {
            if trusted.algorithms.iter().any(|a| a.is_symmetric()) {
                return Err(TokenError::Invalid(
                    "outside issuers sign with public keys, never HS256",
                ));
            }
            let mut config = VerifierConfig::new(trusted.issuer.clone(), trusted.audiences);
            config.allowed_algorithms = trusted.algorithms;
            config.required_typ = trusted.required_typ;
            config.max_lifetime = trusted.max_lifetime;
            let verifier = Verifier::new(config, KeySet::new(), clock.clone())?;
            let remote = RemoteJwks::new(RemoteJwksConfig::new(trusted.jwks_url))?;
            if by_issuer
                .insert(trusted.issuer, (verifier, remote))
                .is_some()
            {
                return Err(TokenError::Invalid("an outside issuer is listed twice"));
            }
        }
        Ok(Self {
            by_issuer: Arc::new(by_issuer),
        })
    }

    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.by_issuer.is_empty()
    }

    /// Verifies `token` if its (unverified) `iss` names a trusted issuer;
    /// `None` otherwise. The `iss` read here only picks the verifier: that
    /// verifier checks `iss` again, along with everything else.
    pub async fn verify(&self, token: &str, audience: &str) -> Option<Result<Claims, TokenError>> {
        let iss = unverified_issuer(token)?;
        let (verifier, remote) = self.by_issuer.get(&iss)?;
        Some(
            remote
                .verify(verifier, token, audience)
                .await
                .map_err(TokenError::from),
        )
    }
}

/// The `iss` of a compact JWS, read without verifying anything.
pub(crate) fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    if payload.len() > 64 * 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}
