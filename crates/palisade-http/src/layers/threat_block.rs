//! Refuses requests from blocked client addresses with a 403 problem: manual
//! blocks, blocks made by the threat detectors, and the reputation block lists
//! (allow lists exempt an address from the last two; see
//! [`ThreatDefense::check_ip`]). A flagged address passes with a
//! [`ThreatFlag`] in the request's extensions. Every answered request also
//! feeds the traffic baselines of anomaly detection (client address and
//! route).
//!
//! The client address is the one of [`crate::client_ip`]: forwarding headers
//! count only from trusted proxies, so a forged `X-Forwarded-For` can neither
//! escape a block nor get someone else blocked.

use crate::client_ip::{TrustedProxies, client_ip};
use crate::problem::Problem;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use futures_util::future::BoxFuture;
use palisade_guard::reputation::Block;
use palisade_guard::threats::{IpVerdict, Refusal, ThreatDefense};
use std::net::{IpAddr, SocketAddr};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// In the extensions of a request from a flagged address: the flag.
#[derive(Debug, Clone)]
pub struct ThreatFlag(pub Block);

/// Applies [`ThreatDefense`]'s blocks and lists to every request.
#[derive(Debug, Clone)]
pub struct ThreatBlockLayer {
    threats: ThreatDefense,
}

impl ThreatBlockLayer {
    /// A layer enforcing `threats`.
    pub fn new(threats: ThreatDefense) -> Self {
        Self { threats }
    }
}

impl<S> Layer<S> for ThreatBlockLayer {
    type Service = ThreatBlockService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ThreatBlockService {
            inner,
            threats: self.threats.clone(),
        }
    }
}

/// The service of [`ThreatBlockLayer`].
#[derive(Debug, Clone)]
pub struct ThreatBlockService<S> {
    inner: S,
    threats: ThreatDefense,
}

/// The 403 of a refused address. Says neither which list nor when the block
/// ends: an attacker learns nothing useful from it.
fn refused() -> Response<Body> {
    Problem::new(StatusCode::FORBIDDEN, "address-blocked", "Forbidden")
        .detail("requests from this address are refused")
        .into_response()
}

/// The client address: the peer, or what trusted proxies recorded.
fn request_ip<B>(req: &Request<B>) -> Option<IpAddr> {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>()?.0;
    Some(match req.extensions().get::<TrustedProxies>() {
        Some(trusted) => client_ip(peer, req.headers(), trusted),
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
        let Some(ip) = request_ip(&req) else {
            // Served without ConnectInfo (an embedder's oneshot): nothing to check.
            return Box::pin(inner.call(req));
        };
        let route = route_key(&req);
        match self.threats.check_ip(ip) {
            IpVerdict::Refused(refusal) => {
                let reason = match &refusal {
                    Refusal::Block(b) if b.is_manual() => "manual_block",
                    Refusal::Block(_) => "detector_block",
                    Refusal::List(_) => "block_list",
                };
                metrics::counter!("palisade_threat_refusals_total", "reason" => reason)
                    .increment(1);
                self.threats.record_request(ip, &route, None, 403);
                return Box::pin(async move { Ok(refused()) });
            }
            IpVerdict::Flagged(flag) => {
                req.extensions_mut().insert(ThreatFlag(flag));
            }
            IpVerdict::Pass => {}
        }
        let threats = self.threats.clone();
        Box::pin(async move {
            let response = inner.call(req).await?;
            threats.record_request(ip, &route, None, response.status().as_u16());
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
}
