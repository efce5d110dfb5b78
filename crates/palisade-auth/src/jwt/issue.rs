//! Token issuing: Palisade's own access tokens, signed by the key ring's current key.

use super::{Claims, JwtError, KeyRing, NewClaims};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use palisade_core::{SharedClock, new_id};
use serde_json::json;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Claims the issuer sets itself; callers may not supply them in `extra`.
const REGISTERED: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// How tokens are issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    /// The `iss` of every token.
    pub issuer: String,
    /// The header `typ`; RFC 9068 `at+jwt` by default, `None` leaves it out.
    pub typ: Option<String>,
    /// Longest ttl a caller may ask for; must not exceed the key ring's
    /// `max_token_lifetime`, or old keys would leave the JWKS too early.
    pub max_ttl: Duration,
}

/// Issues signed tokens with the current key of a shared [`KeyRing`].
#[derive(Debug)]
pub struct Issuer {
    config: IssuerConfig,
    keys: Arc<RwLock<KeyRing>>,
    clock: SharedClock,
}

impl Issuer {
    /// An issuer signing with `keys`. Refuses a `max_ttl` longer than the ring's
    /// `max_token_lifetime`.
    pub fn new(
        config: IssuerConfig,
        keys: Arc<RwLock<KeyRing>>,
        clock: SharedClock,
    ) -> Result<Self, JwtError> {
        let ring_max = keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .policy()
            .max_token_lifetime;
        if config.max_ttl > ring_max || config.max_ttl.is_zero() {
            return Err(JwtError::InvalidConfig(
                "max_ttl must be positive and within the key ring's max_token_lifetime",
            ));
        }
        Ok(Self {
            config,
            keys,
            clock,
        })
    }

    /// Issues a token for `claims` valid for `ttl` (whole seconds), with `iss`,
    /// `iat` = `nbf` = now, `exp`, and a UUIDv7 `jti`; the header names the
    /// signing key's `kid` and algorithm.
    pub fn issue(&self, claims: NewClaims, ttl: Duration) -> Result<String, JwtError> {
        if ttl.as_secs() == 0 || ttl > self.config.max_ttl {
            return Err(JwtError::InvalidConfig("ttl must be 1 s to max_ttl"));
        }
        if claims.aud.is_empty() {
            return Err(JwtError::InvalidConfig("at least one audience is required"));
        }
        if REGISTERED.iter().any(|n| claims.extra.contains_key(*n)) {
            return Err(JwtError::InvalidConfig(
                "extra claims may not set registered claims",
            ));
        }
        let now_ms = self.clock.now_unix_ms();
        let now = now_ms.div_euclid(1000);
        let ttl_s = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let body = Claims {
            iss: Some(self.config.issuer.clone()),
            sub: Some(claims.sub),
            aud: Some(super::Audience(claims.aud)),
            exp: Some(now.saturating_add(ttl_s)),
            nbf: Some(now),
            iat: Some(now),
            jti: Some(new_id(self.clock.as_ref()).to_string()),
            extra: claims.extra,
        };
        let payload = serde_json::to_vec(&body)
            .map_err(|_| JwtError::InvalidConfig("claims are not serialisable"))?;

        let ring = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = ring.current_signer(now_ms)?;
        let mut header = json!({ "alg": key.algorithm().as_str(), "kid": key.kid() });
        if let Some(typ) = &self.config.typ {
            header["typ"] = json!(typ);
        }
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = key.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}
