//! An outside issuer's keys, from its JWKS URL: fetched on first use, kept for
//! `max_age`, and re-fetched when a token names a key the cached set lacks
//! (the issuer rotated), at most once per `min_refresh_interval`, so a flood
//! of tokens with made-up `kid`s cannot turn Palisade into a request
//! amplifier against the issuer. A fetch that fails keeps the keys already
//! held; tokens are never accepted without a verified signature.

use super::{Claims, JwtError, KeySet, MAX_JWKS_BYTES, Verifier};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How an outside JWKS is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwksConfig {
    /// The issuer's JWKS URL.
    pub url: String,
    /// Re-fetch after this long even when every `kid` is known.
    pub max_age: Duration,
    /// Least time between two fetches caused by unknown `kid`s.
    pub min_refresh_interval: Duration,
    /// Longest a fetch may take.
    pub timeout: Duration,
}

impl RemoteJwksConfig {
    /// Defaults: refreshed hourly, at most every 30 s on unknown `kid`s, 5 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_age: Duration::from_secs(3600),
            min_refresh_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }
}

/// The cached keys of one outside issuer.
#[derive(Debug)]
pub struct RemoteJwks {
    config: RemoteJwksConfig,
    http: reqwest::Client,
    cached: RwLock<Option<(Arc<KeySet>, Instant)>>,
    /// One fetch at a time; callers arriving during it use its result.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl RemoteJwks {
    /// Keys to be fetched from `config.url` on first use.
    pub fn new(config: RemoteJwksConfig) -> Result<Self, JwtError> {
        if !(config.url.starts_with("https://") || config.url.starts_with("http://")) {
            return Err(JwtError::InvalidConfig("the JWKS URL must be http(s)"));
        }
        // reqwest's rustls needs a process-wide provider; aws-lc-rs is the
        // project's one provider. An error only means one is installed already.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("palisade/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| JwtError::InvalidConfig("no HTTP client for the JWKS URL"))?;
        Ok(Self {
            config,
            http,
            cached: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(None),
        })
    }

    /// Verifies `token` with `verifier`'s rules against this issuer's keys,
    /// re-fetching them once if the token names a key not held.
    pub async fn verify(
        &self,
        verifier: &Verifier,
        token: &str,
        audience: &str,
    ) -> Result<Claims, JwtError> {
        let keys = self.keys().await?;
        match verifier.verify_with_jwks(token, audience, &keys) {
            Err(JwtError::UnknownKid) => match self.refetch_for_unknown_kid(&keys).await? {
                Some(fresh) => verifier.verify_with_jwks(token, audience, &fresh),
                None => Err(JwtError::UnknownKid),
            },
            verdict => verdict,
        }
    }

    /// The held keys, fetched first when there are none or they are older than `max_age`.
    pub async fn keys(&self) -> Result<Arc<KeySet>, JwtError> {
        let held = self.held();
        match held {
            Some((keys, at)) if at.elapsed() < self.config.max_age => Ok(keys),
            _ => match self.fetch_once(held.as_ref().map(|h| h.1)).await {
                Ok(keys) => Ok(keys),
                // Stale keys beat no keys while the issuer is unreachable.
                Err(e) => held.map(|(keys, _)| keys).ok_or(e),
            },
        }
    }

    fn held(&self) -> Option<(Arc<KeySet>, Instant)> {
        self.cached
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(k, at)| (Arc::clone(k), *at))
    }

    /// A fresh set after an unknown `kid`, unless one was fetched too recently.
    async fn refetch_for_unknown_kid(
        &self,
        seen: &Arc<KeySet>,
    ) -> Result<Option<Arc<KeySet>>, JwtError> {
        let last = *self.fetching.lock().await;
        if let Some((held, _)) = self.held()
            && !Arc::ptr_eq(&held, seen)
        {
            // Someone fetched since this caller looked: use that.
            return Ok(Some(held));
        }
        if last.is_some_and(|at| at.elapsed() < self.config.min_refresh_interval) {
            metrics::counter!("palisade_jwks_refetch_suppressed_total").increment(1);
            return Ok(None);
        }
        self.fetch_once(self.held().map(|h| h.1)).await.map(Some)
    }

    /// Fetches unless another caller fetched after `seen_at` while this one waited.
    async fn fetch_once(&self, seen_at: Option<Instant>) -> Result<Arc<KeySet>, JwtError> {
        let mut last = self.fetching.lock().await;
        if let Some((keys, at)) = self.held()
            && seen_at.is_none_or(|seen| at > seen)
        {
            return Ok(keys);
        }
        *last = Some(Instant::now());
        let keys = Arc::new(self.fetch().await?);
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) =
            Some((Arc::clone(&keys), Instant::now()));
        metrics::counter!("palisade_jwks_fetches_total").increment(1);
        Ok(keys)
    }

    async fn fetch(&self) -> Result<KeySet, JwtError> {
        let unreachable = |_| JwtError::InvalidJwks("the JWKS URL could not be read");
        let mut response = self
            .http
            .get(&self.config.url)
            .send()
            .await
            .map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(JwtError::InvalidJwks("the JWKS URL did not answer 2xx"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(JwtError::InvalidJwks("document too large"));
            }
            body.extend_from_slice(&chunk);
        }
        let text = std::str::from_utf8(&body).map_err(|_| JwtError::InvalidJwks("not UTF-8"))?;
        KeySet::from_jwks_json(text)
    }
}
