//! Request inspection for Rust services: a tower layer that runs an
//! [`Inspector`] on every request before the service sees it.
//!
//! - The body is read up to a bound ([`InspectLayer::max_body_bytes`], 1 MiB
//!   by default); a longer body is answered 413 without being read further,
//!   so the inspection work per request stays bounded. The bytes read are
//!   handed on to the service unchanged.
//! - A `block` verdict is answered 403 with a problem document naming the
//!   rules and locations (not the evidence: the client sent it).
//! - A `flag` verdict passes; the [`Verdict`] is put into the request's
//!   extensions for the service (and the audit layer) to record.

use crate::problem::Problem;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Limited};
use palisade_guard::inspect::{Action, HttpRequest, Inspector, Verdict};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Inspects requests with an [`Inspector`].
#[derive(Debug, Clone)]
pub struct InspectLayer {
    inspector: Inspector,
    max_body_bytes: usize,
}

impl InspectLayer {
    /// A layer running `inspector`, reading at most 1 MiB of body.
    pub fn new(inspector: Inspector) -> Self {
        Self {
            inspector,
            max_body_bytes: 1024 * 1024,
        }
    }

    /// Sets the most body bytes read; a longer body is answered 413.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }
}

impl<S> Layer<S> for InspectLayer {
    type Service = InspectService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InspectService {
            inner,
            inspector: self.inspector.clone(),
            max_body_bytes: self.max_body_bytes,
        }
    }
}

/// The service of [`InspectLayer`].
#[derive(Debug, Clone)]
pub struct InspectService<S> {
    inner: S,
    inspector: Inspector,
    max_body_bytes: usize,
}

impl<S> Service<Request<Body>> for InspectService<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let inspector = self.inspector.clone();
        let limit = self.max_body_bytes;
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let bytes = match Limited::new(body, limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) => {
                    let status = if e.is::<http_body_util::LengthLimitError>() {
                        StatusCode::PAYLOAD_TOO_LARGE
                    } else {
                        StatusCode::BAD_REQUEST
                    };
                    return Ok(Problem::for_status(status).into_response());
                }
            };
            let headers: Vec<(&str, &[u8])> = parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes()))
                .collect();
            let content_type = parts
                .headers
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            let verdict = inspector.inspect(&HttpRequest {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query().unwrap_or(""),
                headers: &headers,
                body: &bytes,
                content_type,
            });
            drop(headers);
            match verdict.action {
                Action::Block => return Ok(blocked(&verdict)),
                Action::Flag => {
                    tracing::info!(
                        score = verdict.score,
                        "request inspection flagged a request"
                    );
                    parts.extensions.insert(verdict);
                }
                Action::Allow => {}
            }
            inner
                .call(Request::from_parts(parts, Body::from(bytes)))
                .await
        })
    }
}

/// The 403 answer: the rules and where they matched, without evidence.
fn blocked(verdict: &Verdict) -> Response<Body> {
    let mut problem = Problem::new(StatusCode::FORBIDDEN, "request-blocked", "Request blocked")
        .detail("request inspection found an attack in this request");
    for finding in &verdict.findings {
        problem = problem.field(finding.location.clone(), finding.rule);
    }
    problem.into_response()
}
