//! Refuses requests from blocked client addresses with a 403 problem: manual
//! blocks, blocks made by the threat detectors, and the reputation block lists
//! (allow lists exempt an address from the last two; see
//! [`ThreatDefense::check_ip`]). A flagged address passes with a
//! [`ThreatFlag`] in the request's extensions. Every answered request also
//! feeds the traffic baselines of anomaly detection (client address and
//! route).
//!
//! Blocked subjects are refused too, from whatever address: the subject is
//! the one an authentication layer that ran before this one put in the
//! request's extensions, a token's `sub` (the claims of
//! [`crate::BearerAuthLayer`], as
//! `tenant/sub` outside the default tenant) or a [`RateLimitIdentity`]'s
//! subject and API key id. Their 403 says until when (`Retry-After`): the
//! caller is authenticated, and knowing when to come back is no use to an
//! attacker who holds the account anyway. Authenticated requests also feed
//! the baselines of their subject and API key.
//!
//! Where the address check must come first, before authentication (as in
//! Palisade's own API), put [`ThreatBlockLayer::new`] outside and
//! [`ThreatBlockLayer::principals`] inside the authentication layer.
//!
//! The client address is the one of [`crate::client_ip`]: forwarding headers
//! count only from trusted proxies, so a forged `X-Forwarded-For` can neither
//! escape a block nor get someone else blocked.

use crate::client_ip::{TrustedProxies, client_ip};
use crate::layers::rate_limit::RateLimitIdentity;
use crate::problem::Problem;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap, Request, Response, StatusCode};
use axum::response::IntoResponse;
use futures_util::future::BoxFuture;
use palisade_auth::jwt::Claims;
use palisade_core::principal::TenantId;
use palisade_guard::reputation::{Block, BlockMode};
use palisade_guard::threats::{IpVerdict, Refusal, ThreatDefense};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// In the extensions of a request from a flagged address: the flag.
#[derive(Debug, Clone)]
pub struct ThreatFlag(pub Block);

/// What a [`ThreatBlockLayer`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The client address, and the principal when one is known.
    All,
    /// The principal only.
    Principals,
}

/// Applies [`ThreatDefense`]'s blocks and lists to every request.
#[derive(Debug, Clone)]
pub struct ThreatBlockLayer {
    threats: ThreatDefense,
    scope: Scope,
}

impl ThreatBlockLayer {
    /// A layer enforcing `threats` on the client address, and on the
    /// authenticated subject when an authentication layer ran before it.
    pub fn new(threats: ThreatDefense) -> Self {
        Self {
            threats,
            scope: Scope::All,
        }
    }

    /// A layer enforcing `threats` on the authenticated subject and API key
    /// only, for inside an authentication layer when [`ThreatBlockLayer::new`]
    /// checks addresses outside it. Requests without a principal pass.
    pub fn principals(threats: ThreatDefense) -> Self {
        Self {
            threats,
            scope: Scope::Principals,
        }
    }
}

impl<S> Layer<S> for ThreatBlockLayer {
    type Service = ThreatBlockService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ThreatBlockService {
            inner,
            threats: self.threats.clone(),
            scope: self.scope,
        }
    }
}

/// The service of [`ThreatBlockLayer`].
#[derive(Debug, Clone)]
pub struct ThreatBlockService<S> {
    inner: S,
    threats: ThreatDefense,
    scope: Scope,
}

/// The 403 of a refused address. Says neither which list nor when the block
/// ends: an attacker learns nothing useful from it.
fn refused() -> Response<Body> {
    Problem::new(StatusCode::FORBIDDEN, "address-blocked", "Forbidden")
        .detail("requests from this address are refused")
        .into_response()
}

/// The 403 of a blocked subject or API key, saying until when.
fn subject_refused(block: &Block, now_ms: i64) -> Response<Body> {
    let wait_ms = u64::try_from(block.expires_at_ms.saturating_sub(now_ms)).unwrap_or(0);
    let seconds = wait_ms.div_ceil(1_000).max(1);
    Problem::new(StatusCode::FORBIDDEN, "subject-blocked", "Forbidden")
        .detail(format!(
            "requests of this account are refused until {} (Unix ms)",
            block.expires_at_ms
        ))
        .retry_after(seconds)
        .into_response()
}

/// Who an authentication layer said the caller is.
#[derive(Debug, Default, PartialEq, Eq)]
struct Principal {
    /// The subject as blocks name it (`tenant/sub` outside the default tenant).
    subject: Option<String>,
    /// The API key's id.
    api_key: Option<String>,
}

/// `sub` as blocks and detections name it.
fn qualified(tenant: Option<&str>, sub: &str) -> String {
    match tenant {
        Some(t) if !t.is_empty() && t != TenantId::DEFAULT => format!("{t}/{sub}"),
        _ => sub.to_owned(),
    }
}

/// The principal in `req`'s extensions: a token's claims first, then a
/// [`RateLimitIdentity`].
fn principal<B>(req: &Request<B>) -> Principal {
    let mut found = Principal {
        subject: authenticated_subject(req.extensions()).map(|(t, sub)| qualified(t, sub)),
        ..Principal::default()
    };
    if let Some(identity) = req.extensions().get::<RateLimitIdentity>() {
        found.api_key = identity.api_key.clone().filter(|k| !k.is_empty());
    }
    found
}

/// The tenant (as given, unparsed) and the non-empty subject an
/// authentication layer that ran before this one put in `extensions`: a
/// token's claims first, else a [`RateLimitIdentity`]. Shared with
/// [`crate::layers::inspect`], so both layers name the same subject.
pub(crate) fn authenticated_subject(extensions: &Extensions) -> Option<(Option<&str>, &str)> {
    // BearerAuthLayer stores the claims as `Arc<Claims>` (what
    // `VerifiedClaims` extracts).
    if let Some(claims) = extensions.get::<Arc<Claims>>()
        && let Some(sub) = claims.sub.as_deref().filter(|s| !s.is_empty())
    {
        let tenant = claims.extra.get("tenant").and_then(|t| t.as_str());
        return Some((tenant, sub));
    }
    let identity = extensions.get::<RateLimitIdentity>()?;
    let sub = identity.subject.as_deref().filter(|s| !s.is_empty())?;
    Some((identity.tenant.as_deref(), sub))
}

/// The block or flag of `principal` (its subject's or its API key's; a
/// block over a flag).
fn principal_verdict(threats: &ThreatDefense, principal: &Principal) -> Option<Block> {
    let mut found: Option<Block> = None;
    for who in [&principal.subject, &principal.api_key]
        .into_iter()
        .flatten()
    {
        if let Some(block) = threats.check_subject(who) {
            if block.mode == BlockMode::Block {
                return Some(block);
            }
            found.get_or_insert(block);
        }
    }
    found
}

/// The client address: the peer, or what trusted proxies recorded. Shared
/// with [`crate::layers::inspect`], so a block it asks for lands on the
/// address this layer checks.
pub(crate) fn client_addr(extensions: &Extensions, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>()?.0;
    Some(match extensions.get::<TrustedProxies>() {
        Some(trusted) => client_ip(peer, headers, trusted),
        None => peer.ip().to_canonical(),
    })
}

/// A route key of bounded cardinality for the baselines: the method and the
/// first two path segments (`POST /v1/threats`).
fn route_key<B>(req: &Request<B>) -> String {
    let mut segments = req.uri().path().split('/').filter(|s| !s.is_empty());
    match (segments.next(), segments.next()) {
        (Some(a), Some(b)) => format!("{} /{a}/{b}", req.method()),
        (Some(a), None) => format!("{} /{a}", req.method()),
        _ => format!("{} /", req.method()),
    }
}

impl<S, B> Service<Request<B>> for ThreatBlockService<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let threats = self.threats.clone();
        // The address and route: checked and recorded by the outer layer only.
        let address = match self.scope {
            Scope::All => {
                client_addr(req.extensions(), req.headers()).map(|ip| (ip, route_key(&req)))
            }
            Scope::Principals => None,
        };
        if let Some((ip, route)) = &address {
            match threats.check_ip(*ip) {
                IpVerdict::Refused(refusal) => {
                    let reason = match &refusal {
                        Refusal::Block(b) if b.is_manual() => "manual_block",
                        Refusal::Block(_) => "detector_block",
                        Refusal::List(_) => "block_list",
                    };
                    metrics::counter!("palisade_threat_refusals_total", "reason" => reason)
                        .increment(1);
                    threats.record_request(*ip, route, None, 403);
                    return Box::pin(async move { Ok(refused()) });
                }
                IpVerdict::Flagged(flag) => {
                    req.extensions_mut().insert(ThreatFlag(flag));
                }
                IpVerdict::Pass => {}
            }
        }
        let who = principal(&req);
        match principal_verdict(&threats, &who) {
            Some(block) if block.mode == BlockMode::Block => {
                let reason = if block.is_manual() {
                    "manual_subject_block"
                } else {
                    "detector_subject_block"
                };
                metrics::counter!("palisade_threat_refusals_total", "reason" => reason)
                    .increment(1);
                if let Some((ip, route)) = &address {
                    threats.record_request(*ip, route, None, 403);
                }
                threats.record_principal(who.subject.as_deref(), who.api_key.as_deref(), 403);
                let now = threats.clock().now_unix_ms();
                return Box::pin(async move { Ok(subject_refused(&block, now)) });
            }
            // A flag of the address, put in above, stays.
            Some(flag) if req.extensions().get::<ThreatFlag>().is_none() => {
                req.extensions_mut().insert(ThreatFlag(flag));
            }
            _ => {}
        }
        if address.is_none() && who == Principal::default() {
            // Nothing to record (an embedder's oneshot without ConnectInfo,
            // or an anonymous request inside authentication).
            return Box::pin(inner.call(req));
        }
        Box::pin(async move {
            let response = inner.call(req).await?;
            let status = response.status().as_u16();
            if let Some((ip, route)) = &address {
                threats.record_request(*ip, route, None, status);
            }
            threats.record_principal(who.subject.as_deref(), who.api_key.as_deref(), status);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_keys_keep_two_segments() {
        let req = |uri: &str| {
            Request::builder()
                .method("POST")
                .uri(uri)
                .body(())
                .unwrap_or_default()
        };
        assert_eq!(route_key(&req("/v1/threats/events")), "POST /v1/threats");
        assert_eq!(route_key(&req("/health")), "POST /health");
        assert_eq!(route_key(&req("/")), "POST /");
    }

    #[test]
    fn principals_are_named_as_blocks_name_them() {
        let claims = |sub: &str, tenant: Option<&str>| {
            let mut claims = Claims {
                sub: Some(sub.to_owned()),
                ..Claims::default()
            };
            if let Some(tenant) = tenant {
                claims.extra.insert("tenant".into(), tenant.into());
            }
            Arc::new(claims)
        };
        let with = |claims: Option<Arc<Claims>>, identity: Option<RateLimitIdentity>| {
            let mut req = Request::new(());
            if let Some(claims) = claims {
                req.extensions_mut().insert(claims);
            }
            if let Some(identity) = identity {
                req.extensions_mut().insert(identity);
            }
            principal(&req)
        };
        assert_eq!(with(None, None), Principal::default());
        assert_eq!(
            with(Some(claims("alice", Some("acme"))), None)
                .subject
                .as_deref(),
            Some("acme/alice")
        );
        assert_eq!(
            with(Some(claims("alice", Some(TenantId::DEFAULT))), None)
                .subject
                .as_deref(),
            Some("alice")
        );
        let key = RateLimitIdentity {
            api_key: Some("0192-key".into()),
            tenant: Some("acme".into()),
            ..RateLimitIdentity::default()
        };
        assert_eq!(
            with(None, Some(key.clone())),
            Principal {
                subject: None,
                api_key: Some("0192-key".into()),
            }
        );
        // The token's subject comes first; the key is still checked.
        let both = with(Some(claims("bob", None)), Some(key));
        assert_eq!(both.subject.as_deref(), Some("bob"));
        assert_eq!(both.api_key.as_deref(), Some("0192-key"));
    }

    #[test]
    fn a_subject_refusal_says_until_when() {
        use palisade_guard::reputation::{BlockOrigin, BlockTarget};
        let block = Block {
            target: BlockTarget::Subject("alice".into()),
            mode: BlockMode::Block,
            origin: BlockOrigin::Manual {
                actor: "key".into(),
            },
            reason: String::new(),
            created_at_ms: 0,
            expires_at_ms: 90_500,
            incident: None,
            offense: 1,
        };
        let response = subject_refused(&block, 0);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.headers()["retry-after"], "91");
        assert_eq!(
            subject_refused(&block, 95_000).headers()["retry-after"],
            "1"
        );
    }
}
