//! The rate-limit tower layer: applies every rule whose routes match the
//! request, answers 429 when the strictest says no, and puts the IETF
//! `RateLimit-Policy` / `RateLimit` headers (and optionally `X-RateLimit-*`)
//! on limited and allowed responses alike.
//!
//! What a rule counts by comes from the request:
//! - `ip`: the client IP (see [`crate::client_ip`]);
//! - `route`: the method and the matched route template;
//! - `header:<name>`: that header's value;
//! - `subject`, `api_key`, `tenant`: a [`RateLimitIdentity`] that an
//!   authentication layer put into the request's extensions.
//!
//! A rule whose key the request does not have (a `subject` rule on an
//! anonymous request, a missing header) does not apply to that request; pair
//! it with an `ip` rule so anonymous traffic is limited too. `custom` rules
//! are for `POST /v1/ratelimit/check` only.

use crate::client_ip::{TrustedProxies, client_ip};
use crate::problem::Problem;
use axum::extract::{ConnectInfo, MatchedPath};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use futures_util::future::BoxFuture;
use palisade_guard::GuardError;
use palisade_guard::ratelimit::{Checked, KeySource, MAX_KEY_BYTES, RateLimiter, Rule};
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

/// Who the caller is, for rules keyed by subject, API key or tenant, and the
/// plan that picks a rule's tier. Insert it into the request's extensions
/// from your authentication layer (Palisade's own API does).
#[derive(Debug, Clone, Default)]
pub struct RateLimitIdentity {
    /// The authenticated subject (a token's `sub`).
    pub subject: Option<String>,
    /// The API key's id.
    pub api_key: Option<String>,
    /// The tenant.
    pub tenant: Option<String>,
    /// The plan (tier) from a claim or an API-key attribute.
    pub tier: Option<String>,
}

/// Which headers limited and allowed responses carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// The IETF `RateLimit-Policy` and `RateLimit` headers.
    pub ietf: bool,
    /// The common `X-RateLimit-Limit`, `-Remaining` and `-Reset` headers.
    pub x_ratelimit: bool,
}

impl Default for RateLimitHeaders {
    fn default() -> Self {
        Self {
            ietf: true,
            x_ratelimit: false,
        }
    }
}

/// Applies a [`RateLimiter`]'s rules to every request.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limiter: RateLimiter,
    headers: RateLimitHeaders,
}

impl RateLimitLayer {
    /// A layer enforcing `limiter`'s rules, answering with `headers`.
    pub fn new(limiter: RateLimiter, headers: RateLimitHeaders) -> Self {
        Self { limiter, headers }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limiter: self.limiter.clone(),
            headers: self.headers,
        }
    }
}

/// The service of [`RateLimitLayer`].
#[derive(Debug, Clone)]
pub struct RateLimitService<S> {
    inner: S,
    limiter: RateLimiter,
    headers: RateLimitHeaders,
}

impl<S, B> Service<Request<B>> for RateLimitService<S>
where
    S: Service<Request<B>, Response = Response<axum::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let rules = self.limiter.rules_for_path(req.uri().path());
        // The clone that was driven to readiness serves this request; the
        // fresh clone stays behind for the next one (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if rules.is_empty() {
            return Box::pin(inner.call(req));
        }
        let limiter = self.limiter.clone();
        let headers = self.headers;
        Box::pin(async move {
            let tier = req
                .extensions()
                .get::<RateLimitIdentity>()
                .and_then(|i| i.tier.clone());
            let mut answers = Vec::with_capacity(rules.len());
            let mut applied = Vec::new();
            for rule in &rules {
                let Some(key) = request_key(rule.key_source(), &req) else {
                    continue;
                };
                match limiter.check(rule.name(), &key, 1, tier.as_deref()).await {
                    Ok(checked) => answers.push(checked),
                    Err(GuardError::Full(_)) => {
                        return Ok(limited_response(None, headers));
                    }
                    Err(error) => {
                        tracing::error!(%error, rule = rule.name(), "rate-limit check failed; rule skipped");
                        continue;
                    }
                }
                // Only adaptive rules need the outcome afterwards.
                if rule.adaptive().is_some() {
                    applied.push((rule.clone(), key));
                }
            }
            let Some(strictest) = Checked::strictest(answers) else {
                return inner.call(req).await;
            };
            if !strictest.decision.allowed {
                record_outcomes(&limiter, &applied, true);
                return Ok(limited_response(Some(&strictest), headers));
            }
            let mut response = inner.call(req).await?;
            let failed = response.status().is_client_error() || response.status().is_server_error();
            record_outcomes(&limiter, &applied, failed);
            insert_headers(response.headers_mut(), &strictest, headers);
            Ok(response)
        })
    }
}

/// Feeds adaptive rules the outcome of a request they limited.
fn record_outcomes(limiter: &RateLimiter, applied: &[(Rule, String)], failed: bool) {
    for (rule, key) in applied {
        limiter.record_outcome(rule.name(), key, failed);
    }
}

/// The key `source` names in `req`, if the request has one.
fn request_key<B>(source: &KeySource, req: &Request<B>) -> Option<String> {
    let identity = || req.extensions().get::<RateLimitIdentity>();
    let key = match source {
        KeySource::Ip => {
            let peer = req.extensions().get::<ConnectInfo<SocketAddr>>()?.0;
            let default_proxies = TrustedProxies::default();
            let trusted = req
                .extensions()
                .get::<TrustedProxies>()
                .unwrap_or(&default_proxies);
            client_ip(peer, req.headers(), trusted).to_string()
        }
        KeySource::Route => {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or_else(|| req.uri().path(), MatchedPath::as_str);
            format!("{} {route}", req.method())
        }
        KeySource::Header(name) => req.headers().get(name.as_str())?.to_str().ok()?.to_owned(),
        KeySource::Subject => identity()?.subject.clone()?,
        KeySource::ApiKey => identity()?.api_key.clone()?,
        KeySource::Tenant => identity()?.tenant.clone()?,
        KeySource::Custom => return None,
    };
    if key.is_empty() {
        return None;
    }
    Some(bounded(key))
}

/// A key over the limiter's length bound is replaced by its SHA-256, so a
/// long header value still gets a (distinct) budget instead of an error.
fn bounded(key: String) -> String {
    if key.len() <= MAX_KEY_BYTES {
        return key;
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
    format!(
        "sha256:{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            digest.as_ref()
        )
    )
}

/// The 429 answer: a problem document with `Retry-After` and the limit headers.
fn limited_response(
    checked: Option<&Checked>,
    headers: RateLimitHeaders,
) -> Response<axum::body::Body> {
    let retry_after = checked.map_or(1, |c| seconds_up(c.decision.retry_after).max(1));
    let mut response = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too Many Requests",
    )
    .detail("rate limit exceeded; retry later")
    .retry_after(retry_after)
    .into_response();
    if let Some(checked) = checked {
        insert_headers(response.headers_mut(), checked, headers);
    }
    response
}

/// Adds the limit headers of `checked`.
pub fn insert_headers(map: &mut HeaderMap, checked: &Checked, which: RateLimitHeaders) {
    let reset = seconds_up(checked.decision.reset_after);
    let mut put = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            map.insert(HeaderName::from_static(name), value);
        }
    };
    if which.ietf {
        // Structured-field strings; policy names are [a-z0-9_.-/] so need no escaping.
        put(
            "ratelimit-policy",
            format!(
                "\"{}\";q={};w={}",
                checked.policy,
                checked.decision.limit,
                seconds_up(checked.period).max(1)
            ),
        );
        put(
            "ratelimit",
            format!(
                "\"{}\";r={};t={reset}",
                checked.policy, checked.decision.remaining
            ),
        );
    }
    if which.x_ratelimit {
        put("x-ratelimit-limit", checked.decision.limit.to_string());
        put(
            "x-ratelimit-remaining",
            checked.decision.remaining.to_string(),
        );
        put("x-ratelimit-reset", reset.to_string());
    }
}

/// Whole seconds, rounded up: headers carry seconds, and rounding down would
/// invite a retry that is still too early.
fn seconds_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_guard::ratelimit::Decision;

    fn checked(allowed: bool) -> Checked {
        Checked {
            decision: Decision {
                allowed,
                limit: 100,
                remaining: 7,
                reset_after: Duration::from_millis(2_500),
                retry_after: Duration::from_millis(if allowed { 0 } else { 1_200 }),
            },
            policy: "api".into(),
            period: Duration::from_secs(60),
            degraded: false,
        }
    }

    #[test]
    fn writes_ietf_headers_with_seconds_rounded_up() {
        let mut map = HeaderMap::new();
        insert_headers(&mut map, &checked(true), RateLimitHeaders::default());
        assert_eq!(map["ratelimit-policy"], "\"api\";q=100;w=60");
        assert_eq!(map["ratelimit"], "\"api\";r=7;t=3");
        assert!(map.get("x-ratelimit-limit").is_none());
    }

    #[test]
    fn writes_x_ratelimit_headers_when_asked() {
        let mut map = HeaderMap::new();
        let which = RateLimitHeaders {
            ietf: false,
            x_ratelimit: true,
        };
        insert_headers(&mut map, &checked(true), which);
        assert_eq!(map["x-ratelimit-limit"], "100");
        assert_eq!(map["x-ratelimit-remaining"], "7");
        assert_eq!(map["x-ratelimit-reset"], "3");
        assert!(map.get("ratelimit").is_none());
    }

    #[test]
    fn a_limited_answer_is_a_429_problem_with_retry_after() {
        let response = limited_response(Some(&checked(false)), RateLimitHeaders::default());
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "2");
        assert_eq!(response.headers()["ratelimit"], "\"api\";r=7;t=3");
    }

    #[test]
    fn long_keys_are_replaced_by_their_digest() {
        let long = "x".repeat(10_000);
        let key = bounded(long.clone());
        assert!(key.starts_with("sha256:") && key.len() < 100);
        assert_ne!(bounded("y".repeat(10_000)), key);
        assert_eq!(bounded("short".into()), "short");
    }
}
