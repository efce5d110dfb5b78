//! `POST /v1/inspect`: request inspection for services in other languages.
//! The service sends what it received (method, path, query, headers, body)
//! and gets a verdict, a score and the findings, each with its location and
//! a short piece of evidence that never quotes a credential, cookie or
//! secret-looking field.
//!
//! The answer is 200 whatever the verdict: refusing the inspected request is
//! the calling service's job.
//!
//! When the caller names the client (`client_ip`, and/or `subject`, an
//! account of the caller's tenant), a verdict other than `allow` is also
//! emitted as inspection-finding security events: threat detection counts
//! them per category (`[threats.detectors.inspection_*]`) and answers repeat
//! offenders with the configured action (a block shows in
//! `GET /v1/threats/blocks` and is enforced by Palisade's own blocking
//! layer; the calling service can query it). Without them the verdict is
//! only answered: there is nobody to hold it against.

use crate::auth::Caller;
use crate::json::ApiJson;
use crate::problem::Problem;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use palisade_guard::inspect::{Category, HttpRequest, Sensitivity, Severity, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Scope for inspecting.
const SCOPE: &str = "guard:check";

/// The longest path or query accepted, in bytes.
const MAX_URL_PART: usize = 64 * 1024;
/// The most headers accepted.
const MAX_HEADERS: usize = 256;

/// A header's value: one string, or several for a repeated header.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum HeaderValues {
    /// One value.
    One(String),
    /// A repeated header (as Node's `req.headers` gives `set-cookie`).
    Many(Vec<String>),
}

/// The request to inspect, as the service received it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectRequest {
    /// The method (`GET`, `POST`, ...).
    pub method: String,
    /// The path, still percent-encoded, without the query.
    pub path: String,
    /// The query string, still encoded, without `?`.
    #[serde(default)]
    pub query: String,
    /// Header names and values.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub headers: BTreeMap<String, HeaderValues>,
    /// The body as text.
    #[serde(default)]
    pub body: String,
    /// The body's media type; `Content-Type` from `headers` when absent.
    pub content_type: Option<String>,
    /// 1 to 3; the configured level when absent.
    pub sensitivity: Option<u8>,
    /// The address of the client that sent the inspected request; findings
    /// then count toward threat detection against it.
    pub client_ip: Option<String>,
    /// The account (of the caller's tenant) that sent it, when known;
    /// findings then count against it too (against it alone without
    /// `client_ip`).
    pub subject: Option<String>,
}

/// One finding.
#[derive(Debug, Serialize, ToSchema)]
pub struct FindingView {
    /// `sqli`, `xss`, `path_traversal`, `cmdi` or `protocol`.
    #[schema(value_type = String)]
    pub category: Category,
    /// The rule that matched (`sqli.union-select`).
    pub rule: String,
    /// Where: `query.id`, `body.user.name`, `header.user-agent`, `cookie.sid`, `path`.
    pub location: String,
    /// The decoded text that matched, cut short, or `[redacted]`.
    pub evidence: String,
    /// `notice`, `warning`, `error` or `critical`.
    #[schema(value_type = String)]
    pub severity: Severity,
}

/// The verdict.
#[derive(Debug, Serialize, ToSchema)]
pub struct InspectResponse {
    /// `allow`, `flag` or `block`.
    pub verdict: String,
    /// The sum of the findings' points (notice 2, warning 3, error 4, critical 5).
    pub score: u32,
    /// What was found, strongest first.
    pub findings: Vec<FindingView>,
}

impl From<Verdict> for InspectResponse {
    fn from(v: Verdict) -> Self {
        Self {
            verdict: v.action.as_str().to_owned(),
            score: v.score,
            findings: v
                .findings
                .into_iter()
                .map(|f| FindingView {
                    category: f.category,
                    rule: f.rule.to_owned(),
                    location: f.location,
                    evidence: f.evidence,
                    severity: f.severity,
                })
                .collect(),
        }
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Inspects a request for SQL injection, XSS, path traversal and command
/// injection.
#[utoipa::path(post, path = "/v1/inspect", tag = "guard", request_body = InspectRequest,
    security(("api_key" = [])),
    responses((status = 200, body = InspectResponse), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 413, body = Problem), (status = 422, body = Problem)))]
pub async fn inspect(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<InspectRequest>,
) -> Result<Json<InspectResponse>, Problem> {
    caller.require(SCOPE)?;
    if body.method.len() > 32 || !is_token(&body.method) {
        return Err(invalid("method", "must be an HTTP method token"));
    }
    if !body.path.starts_with('/') && body.path != "*" {
        return Err(invalid("path", "must start with /"));
    }
    if body.path.len() > MAX_URL_PART || body.query.len() > MAX_URL_PART {
        return Err(invalid("path", "path and query are limited to 64 KiB each"));
    }
    if body.headers.len() > MAX_HEADERS {
        return Err(invalid("headers", "at most 256 headers"));
    }
    if let Some(name) = body.headers.keys().find(|n| !is_token(n)) {
        let shown: String = name.chars().take(40).collect();
        return Err(invalid(
            "headers",
            &format!("{shown:?} is not a header name"),
        ));
    }
    let client_ip = match body.client_ip.as_deref() {
        None => None,
        Some(text) => Some(
            text.trim()
                .parse::<std::net::IpAddr>()
                .map_err(|_| invalid("client_ip", "must be an IPv4 or IPv6 address"))?
                .to_canonical(),
        ),
    };
    if let Some(subject) = &body.subject
        && (subject.is_empty() || subject.len() > 256 || subject.chars().any(char::is_control))
    {
        return Err(invalid(
            "subject",
            "must be 1 to 256 bytes without control characters",
        ));
    }
    let sensitivity = match body.sensitivity {
        None => state.inspector().config().sensitivity,
        Some(level) => {
            Sensitivity::try_from(level).map_err(|_| invalid("sensitivity", "must be 1, 2 or 3"))?
        }
    };
    let headers: Vec<(&str, &[u8])> = body
        .headers
        .iter()
        .flat_map(|(name, values)| {
            let values: Vec<&str> = match values {
                HeaderValues::One(v) => vec![v.as_str()],
                HeaderValues::Many(vs) => vs.iter().map(String::as_str).collect(),
            };
            values
                .into_iter()
                .map(move |v| (name.as_str(), v.as_bytes()))
        })
        .collect();
    let content_type = body.content_type.as_deref().or_else(|| {
        body.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            .and_then(|(_, v)| match v {
                HeaderValues::One(v) => Some(v.as_str()),
                HeaderValues::Many(vs) => vs.first().map(String::as_str),
            })
    });
    let request = HttpRequest {
        method: &body.method,
        path: &body.path,
        query: &body.query,
        headers: &headers,
        body: body.body.as_bytes(),
        content_type,
    };
    let verdict = state.inspector().inspect_at(&request, sensitivity);
    if verdict.action != palisade_guard::inspect::Action::Allow {
        tracing::info!(
            verdict = verdict.action.as_str(),
            score = verdict.score,
            rules = ?verdict.findings.iter().map(|f| f.rule).collect::<Vec<_>>(),
            "request inspection finding"
        );
        if client_ip.is_some() || body.subject.is_some() {
            for event in palisade_guard::threats::inspection_events(
                &verdict,
                state.clock.now_unix_ms(),
                client_ip,
                Some(&caller.key.tenant),
                body.subject.as_deref(),
            ) {
                state.security_events.emit(event);
            }
        }
    }
    Ok(Json(verdict.into()))
}

fn invalid(field: &str, message: &str) -> Problem {
    Problem::unprocessable(format!("{field}: {message}")).field(field, message)
}
