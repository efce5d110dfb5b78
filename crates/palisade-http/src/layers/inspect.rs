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
//! - With [`InspectLayer::report_to`], every verdict other than `allow` is
//!   also emitted as [`SecurityEventKind::InspectionFinding`] events (one per
//!   category, see [`inspection_events`]) with the client address and, when
//!   an authentication layer ran before this one, the subject: threat
//!   detection counts them per category (`[threats.detectors.inspection_*]`)
//!   and answers repeat offenders with the configured action, such as a
//!   block that [`crate::layers::threat_block::ThreatBlockLayer`] enforces.
//!   Emitting never waits: detection runs on its own task.
//!
//! [`SecurityEventKind::InspectionFinding`]: palisade_core::SecurityEventKind::InspectionFinding

use crate::layers::threat_block::{authenticated_subject, client_addr};
use crate::problem::Problem;
use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Limited};
use palisade_core::principal::TenantId;
use palisade_core::{SecurityEvents, SharedClock};
use palisade_guard::inspect::{Action, HttpRequest, Inspector, Verdict};
use palisade_guard::threats::inspection_events;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Where findings are reported: the security-event stream and its clock.
#[derive(Debug, Clone)]
struct Reporting {
    events: SecurityEvents,
    clock: SharedClock,
}

/// Inspects requests with an [`Inspector`].
#[derive(Debug, Clone)]
pub struct InspectLayer {
    inspector: Inspector,
    max_body_bytes: usize,
    reporting: Option<Reporting>,
}

impl InspectLayer {
    /// A layer running `inspector`, reading at most 1 MiB of body.
    pub fn new(inspector: Inspector) -> Self {
        Self {
            inspector,
            max_body_bytes: 1024 * 1024,
            reporting: None,
        }
    }

    /// Also emits findings into `events` (the stream threat detection
    /// reads, e.g. `AppState::security_events` or
    /// `ThreatDefense::events`), stamped with `clock`.
    pub fn report_to(mut self, events: SecurityEvents, clock: SharedClock) -> Self {
        self.reporting = Some(Reporting { events, clock });
        self
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
            reporting: self.reporting.clone(),
        }
    }
}

/// The service of [`InspectLayer`].
#[derive(Debug, Clone)]
pub struct InspectService<S> {
    inner: S,
    inspector: Inspector,
    max_body_bytes: usize,
    reporting: Option<Reporting>,
}

/// The tenant and subject an authentication layer that ran before this one
/// put in the extensions: a token's claims, else a `RateLimitIdentity` (the
/// same lookup as the threat-block layer's, see [`authenticated_subject`]).
fn request_subject(parts: &Parts) -> (Option<TenantId>, Option<String>) {
    match authenticated_subject(&parts.extensions) {
        Some((tenant, sub)) => (
            tenant.and_then(|t| TenantId::parse(t).ok()),
            Some(sub.to_owned()),
        ),
        None => (None, None),
    }
}

/// Emits the findings of `verdict` for threat detection.
fn report(reporting: &Reporting, parts: &Parts, verdict: &Verdict) {
    let (tenant, subject) = request_subject(parts);
    let ip = client_addr(&parts.extensions, &parts.headers);
    if ip.is_none() && subject.is_none() {
        // Nobody to count the finding against.
        return;
    }
    for event in inspection_events(
        verdict,
        reporting.clock.now_unix_ms(),
        ip,
        tenant.as_ref(),
        subject.as_deref(),
    ) {
        reporting.events.emit(event);
    }
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
        let reporting = self.reporting.clone();
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
            if let Some(reporting) = &reporting
                && verdict.action != Action::Allow
            {
                report(reporting, &parts, &verdict);
            }
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
