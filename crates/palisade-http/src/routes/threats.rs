//! `/v1/threats`: security events from services in other languages, blocks
//! (manual ones made here, automatic ones made by the detectors), and the
//! incidents grouping detections; plus [`audit_reporter`], which writes every
//! detection and action to the audit log with its evidence.

use crate::auth::Caller;
use crate::json::ApiJson;
use crate::problem::Problem;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use ipnet::IpNet;
use palisade_audit::event::{Actor, NewEvent, Outcome, Resource};
use palisade_audit::log::AuditLog;
use palisade_core::principal::TenantId;
use palisade_core::{SecurityEvent, SecurityEventKind};
use palisade_guard::ratelimit::Tightening;
use palisade_guard::reputation::{Block, BlockMode, BlockTarget, ListStatus};
use palisade_guard::threats::{Incident, IpVerdict, ThreatNotice, ThreatReporter};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Reporting events and reading blocks.
const CHECK_SCOPE: &str = "guard:check";
/// Making and lifting blocks, reading incidents.
const ADMIN_SCOPE: &str = "guard:admin";

/// Most events in one batch.
pub const MAX_EVENTS: usize = 1_000;
/// Events may be this far in the past.
const MAX_AGE_MS: i64 = 24 * 3_600_000;
/// ...or this far in the future (clock skew).
const MAX_SKEW_MS: i64 = 5 * 60_000;
/// Longest manual block: 30 days.
const MAX_BLOCK_TTL_MS: u64 = 30 * 24 * 3_600_000;

/// One security event as a service reports it. The tenant is the caller's.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// `login_failure`, `login_success`, `lockout`, `refresh_token_reuse`,
    /// `token_rejected`, `rate_limit_block`, `inspection_finding`, `authorization_deny`.
    #[schema(value_type = String)]
    pub kind: SecurityEventKind,
    /// When (Unix ms); default now. At most 24 h old and 5 min ahead.
    pub at_ms: Option<i64>,
    /// The account concerned (1 to 256 bytes, no control characters).
    pub subject: Option<String>,
    /// The end user's address (not the calling service's).
    pub ip: Option<String>,
    /// Keyed hash of the password tried, hex (16 to 128 digits); never the password.
    pub credential_fingerprint: Option<String>,
    /// Short machine-readable reason (at most 128 bytes).
    pub reason: Option<String>,
    /// Other evidence, a JSON object of at most 4 KiB (never secrets).
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A batch of events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// 1 to 1000 events.
    pub events: Vec<EventInput>,
}

/// How many events were accepted.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsAccepted {
    /// Events emitted for detection.
    pub accepted: usize,
}

fn invalid(index: usize, field: &str, why: &str) -> Problem {
    let name = format!("events[{index}].{field}");
    Problem::unprocessable(format!("{name}: {why}")).field(name, why.to_owned())
}

fn plain_text(text: &str, max: usize) -> bool {
    !text.is_empty() && text.len() <= max && !text.chars().any(char::is_control)
}

fn event_of(
    index: usize,
    input: EventInput,
    tenant: &TenantId,
    now_ms: i64,
) -> Result<SecurityEvent, Problem> {
    let at_ms = input.at_ms.unwrap_or(now_ms);
    if at_ms > now_ms + MAX_SKEW_MS || at_ms < now_ms - MAX_AGE_MS {
        return Err(invalid(
            index,
            "at_ms",
            "must be within the last 24 hours and at most 5 minutes ahead",
        ));
    }
    let mut event = SecurityEvent::new(input.kind, at_ms).tenant(tenant.clone());
    if let Some(subject) = input.subject {
        if !plain_text(&subject, 256) {
            return Err(invalid(
                index,
                "subject",
                "must be 1 to 256 bytes without control characters",
            ));
        }
        event.subject = Some(subject);
    }
    if let Some(ip) = input.ip {
        let ip = IpAddr::from_str(ip.trim())
            .map_err(|_| invalid(index, "ip", "must be an IPv4 or IPv6 address"))?;
        event.ip = Some(ip.to_canonical());
    }
    if let Some(fp) = input.credential_fingerprint {
        if !(16..=128).contains(&fp.len()) || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                index,
                "credential_fingerprint",
                "must be 16 to 128 hex digits",
            ));
        }
        event.credential_fingerprint = Some(fp.to_ascii_lowercase());
    }
    if let Some(reason) = input.reason {
        if !plain_text(&reason, 128) {
            return Err(invalid(
                index,
                "reason",
                "must be 1 to 128 bytes without control characters",
            ));
        }
        event.reason = Some(reason);
    }
    if let Some(detail) = input.detail {
        let size = serde_json::to_vec(&detail).map_or(usize::MAX, |v| v.len());
        if size > 4096 {
            return Err(invalid(index, "detail", "must be at most 4 KiB of JSON"));
        }
        event.detail = detail;
    }
    Ok(event)
}

/// Reports security events (login failures and successes, token reuse, ...)
/// for threat detection. The whole batch is validated before any event is
/// emitted: one bad event refuses the batch with its index named.
#[utoipa::path(post, path = "/v1/threats/events", tag = "threats", request_body = EventBatch,
    security(("api_key" = [])),
    responses((status = 202, body = EventsAccepted), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn report_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(batch): ApiJson<EventBatch>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(CHECK_SCOPE)?;
    let threats = state.threats()?;
    if batch.events.is_empty() || batch.events.len() > MAX_EVENTS {
        return Err(
            Problem::unprocessable(format!("events: give 1 to {MAX_EVENTS} events"))
                .field("events", format!("must hold 1 to {MAX_EVENTS} events")),
        );
    }
    let now = threats.clock().now_unix_ms();
    let events = batch
        .events
        .into_iter()
        .enumerate()
        .map(|(i, e)| event_of(i, e, &caller.key.tenant, now))
        .collect::<Result<Vec<_>, _>>()?;
    let accepted = events.len();
    for event in events {
        state.security_events.emit(event);
    }
    Ok((StatusCode::ACCEPTED, Json(EventsAccepted { accepted })))
}

/// A manual block.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    /// An address or CIDR (`192.0.2.7`, `2001:db8::/48`); or give `subject`.
    pub ip: Option<String>,
    /// An account (`tenant/subject` outside the default tenant), or an API
    /// key's id; or give `ip`. Refused on every route the blocking layer
    /// protects, from any address.
    pub subject: Option<String>,
    /// How long, ms (1 s to 30 days).
    pub ttl_ms: u64,
    /// Why (at most 256 bytes).
    #[serde(default)]
    pub reason: String,
}

/// Which block, in a query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TargetQuery {
    /// An address or CIDR.
    pub ip: Option<String>,
    /// A subject.
    pub subject: Option<String>,
}

fn parse_network(text: &str) -> Result<IpNet, Problem> {
    let text = text.trim();
    IpNet::from_str(text)
        .or_else(|_| IpAddr::from_str(text).map(IpNet::from))
        .map_err(|_| {
            Problem::unprocessable("ip: not an address or CIDR")
                .field("ip", "must be an address or CIDR")
        })
}

fn target_of(ip: Option<&str>, subject: Option<&str>) -> Result<BlockTarget, Problem> {
    match (ip, subject) {
        (Some(ip), None) => Ok(BlockTarget::ip(parse_network(ip)?)),
        (None, Some(subject)) if plain_text(subject, 512) => {
            Ok(BlockTarget::Subject(subject.to_owned()))
        }
        (None, Some(_)) => Err(Problem::unprocessable(
            "subject: 1 to 512 bytes without control characters",
        )
        .field(
            "subject",
            "must be 1 to 512 bytes without control characters",
        )),
        _ => Err(Problem::unprocessable("give exactly one of ip and subject")
            .field("ip", "exactly one of ip and subject is required")),
    }
}

/// Blocks an address, network or subject for `ttl_ms` (replacing any block
/// of it). Recorded in the audit log.
#[utoipa::path(post, path = "/v1/threats/blocks", tag = "threats", request_body = BlockRequest,
    security(("api_key" = [])),
    responses((status = 201, body = Object, description = "The block"), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn create_block(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<BlockRequest>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(ADMIN_SCOPE)?;
    let threats = state.threats()?;
    let target = target_of(body.ip.as_deref(), body.subject.as_deref())?;
    if !(1_000..=MAX_BLOCK_TTL_MS).contains(&body.ttl_ms) {
        return Err(Problem::unprocessable("ttl_ms: 1000 to 2592000000")
            .field("ttl_ms", "must be between 1000 and 2592000000"));
    }
    if body.reason.len() > 256 || body.reason.chars().any(char::is_control) {
        return Err(
            Problem::unprocessable("reason: at most 256 bytes without control characters").field(
                "reason",
                "must be at most 256 bytes without control characters",
            ),
        );
    }
    let block = threats
        .block(target, body.ttl_ms, body.reason, caller.key.id.to_string())
        .await?;
    record(&state, &caller, "palisade.threats.block.create", &block).await?;
    Ok((StatusCode::CREATED, Json(block)))
}

/// Lifts the block of `ip` (exactly the address or CIDR blocked) or
/// `subject`, manual or automatic. Recorded in the audit log.
#[utoipa::path(delete, path = "/v1/threats/blocks", tag = "threats", params(TargetQuery),
    security(("api_key" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn delete_block(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<TargetQuery>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(ADMIN_SCOPE)?;
    let threats = state.threats()?;
    let target = target_of(query.ip.as_deref(), query.subject.as_deref())?;
    match threats.unblock(&target).await? {
        Some(block) => {
            record(&state, &caller, "palisade.threats.block.delete", &block).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(Problem::not_found(
            "no block of that address, network or subject",
        )),
    }
}

/// Blocks in force and the reputation lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockList {
    /// Blocks and flags in force (those concerning `ip` or `subject` when given), newest first.
    #[schema(value_type = Vec<Object>)]
    pub blocks: Vec<Block>,
    /// Rate-limit tightenings in force (those concerning `ip` or `subject`
    /// when given), newest first: the key pays `factor` units per request.
    #[schema(value_type = Vec<Object>)]
    pub tightened: Vec<Tightening>,
    /// With `ip` or `subject`: whether a request from that address, or by
    /// that subject, would be refused now (blocks and lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<bool>,
    /// With `subject`: when the block refusing it ends (Unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_until_ms: Option<i64>,
    /// With `ip`: the list holding it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listed_in: Option<String>,
    /// The allow and block lists: entries, issues (malformed lines by number), errors.
    #[schema(value_type = Vec<Object>)]
    pub lists: Vec<ListStatus>,
}

/// Lists the blocks and rate-limit tightenings in force; with `ip` (an
/// address) or `subject`, only those concerning it, and the verdict a request
/// from that address or by that subject gets now: services in other
/// languages call this to enforce subject blocks.
#[utoipa::path(get, path = "/v1/threats/blocks", tag = "threats", params(TargetQuery),
    security(("api_key" = [])),
    responses((status = 200, body = BlockList), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn list_blocks(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<TargetQuery>,
) -> Result<Json<BlockList>, Problem> {
    caller.require(CHECK_SCOPE)?;
    let threats = state.threats()?;
    let mut blocks = threats.blocks();
    let mut tightened = threats.tightenings();
    let (mut refused, mut listed_in, mut refused_until_ms) = (None, None, None);
    if query.ip.is_some() && query.subject.is_some() {
        return Err(Problem::unprocessable("give at most one of ip and subject")
            .field("subject", "at most one of ip and subject is accepted"));
    }
    if let Some(ip) = &query.ip {
        let ip = IpAddr::from_str(ip.trim()).map_err(|_| {
            Problem::unprocessable("ip: not an address").field("ip", "must be an address")
        })?;
        let concerns =
            |t: &BlockTarget| matches!(t, BlockTarget::Ip(net) if net.contains(&ip.to_canonical()));
        blocks.retain(|b| concerns(&b.target));
        tightened.retain(|t| concerns(&t.target));
        let verdict = threats.check_ip(ip);
        refused = Some(matches!(verdict, IpVerdict::Refused(_)));
        listed_in = match threats.reputation().lookup(ip) {
            palisade_guard::reputation::Listing::Allowed(m)
            | palisade_guard::reputation::Listing::Blocked(m) => Some(m.list.to_string()),
            palisade_guard::reputation::Listing::Unlisted => None,
        };
    }
    if let Some(subject) = &query.subject {
        if !plain_text(subject, 512) {
            return Err(Problem::unprocessable(
                "subject: 1 to 512 bytes without control characters",
            )
            .field(
                "subject",
                "must be 1 to 512 bytes without control characters",
            ));
        }
        let concerns = |t: &BlockTarget| matches!(t, BlockTarget::Subject(s) if s == subject);
        blocks.retain(|b| concerns(&b.target));
        tightened.retain(|t| concerns(&t.target));
        let block = threats
            .check_subject(subject)
            .filter(|b| b.mode == BlockMode::Block);
        refused = Some(block.is_some());
        refused_until_ms = block.map(|b| b.expires_at_ms);
    }
    Ok(Json(BlockList {
        blocks,
        tightened,
        refused,
        refused_until_ms,
        listed_in,
        lists: threats.reputation().status(),
    }))
}

/// Which incidents.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    /// At most this many (1 to 200, default 50).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `open` for open incidents only.
    pub status: Option<String>,
}

/// A page of incidents.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentPage {
    /// Incidents, newest first.
    #[schema(value_type = Vec<Object>)]
    pub incidents: Vec<Incident>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Incidents: related detections, the blocks and rate-limit tightenings
/// made for them and the events around them, newest first. Those of every
/// instance when Redis is configured.
#[utoipa::path(get, path = "/v1/threats/incidents", tag = "threats", params(IncidentQuery),
    security(("api_key" = [])),
    responses((status = 200, body = IncidentPage), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn list_incidents(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<IncidentQuery>,
) -> Result<Json<IncidentPage>, Problem> {
    caller.require(ADMIN_SCOPE)?;
    let threats = state.threats()?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Problem::unprocessable("limit: 1 to 200").field("limit", "must be 1 to 200"));
    }
    let open_only = match query.status.as_deref() {
        None => false,
        Some("open") => true,
        Some(_) => {
            return Err(Problem::unprocessable("status: only `open` is accepted")
                .field("status", "must be `open` or absent"));
        }
    };
    if let Some(cursor) = &query.cursor
        && (cursor.len() > 64 || !cursor.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
    {
        return Err(Problem::unprocessable("cursor: not a cursor of this list")
            .field("cursor", "must be a next_cursor of this list"));
    }
    let mut incidents = threats
        .incidents(query.cursor.as_deref(), limit + 1, open_only)
        .await;
    let next_cursor = if incidents.len() > limit {
        incidents.truncate(limit);
        incidents.last().map(|i| i.id.clone())
    } else {
        None
    };
    Ok(Json(IncidentPage {
        incidents,
        next_cursor,
    }))
}

/// Block changes made over the API are audit events.
async fn record(
    state: &AppState,
    caller: &Caller,
    action: &str,
    block: &Block,
) -> Result<(), Problem> {
    let resource = Resource {
        kind: "threat_block".into(),
        id: Some(block.target.key()),
    };
    let metadata = match serde_json::to_value(block) {
        Ok(serde_json::Value::Object(map)) => Some(map),
        _ => None,
    };
    super::changes::record_change(state, caller, action, resource, metadata).await
}

/// A reporter writing every [`ThreatNotice`] to `audit`, each on a task of
/// its own so detection never waits for the log: `security.threat.detected`
/// (with the detection's evidence and trigger), `security.threat.blocked` /
/// `security.threat.flagged`, `security.threat.rate_limit_tightened`,
/// `security.threat.action_skipped` and `security.anomaly`.
pub fn audit_reporter(audit: AuditLog) -> ThreatReporter {
    Arc::new(move |notice: ThreatNotice| {
        let (tenant, event) = audit_event(&notice);
        let audit = audit.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = audit.append(tenant, event).await {
                    tracing::warn!(%error, "could not audit a threat detection or action");
                }
            });
        }
    })
}

/// The audit event of a notice, under its tenant.
pub fn audit_event(notice: &ThreatNotice) -> (TenantId, NewEvent) {
    let metadata = match serde_json::to_value(notice) {
        Ok(serde_json::Value::Object(map)) => Some(map),
        _ => None,
    };
    let actor = |id: String, kind: &str, ip: Option<String>| Actor {
        id,
        kind: Some(kind.to_owned()),
        ip,
        user_agent: None,
    };
    let resource = |kind: &str, id: String| {
        Some(Resource {
            kind: kind.to_owned(),
            id: Some(id),
        })
    };
    let (tenant, action, actor, resource, outcome) = match notice {
        ThreatNotice::Detection { detection, .. } => {
            let who = match (&detection.source, &detection.subject) {
                (Some(net), _) => actor(net.to_string(), "ip", Some(net.addr().to_string())),
                (None, Some(subject)) => actor(subject.clone(), "subject", None),
                (None, None) => actor("unknown".into(), "unknown", None),
            };
            (
                detection.tenant.clone(),
                "security.threat.detected",
                who,
                resource("threat_detector", detection.detector.as_str().to_owned()),
                Outcome::Denied,
            )
        }
        ThreatNotice::Action { block, .. } => {
            let action = match block.mode {
                BlockMode::Block => "security.threat.blocked",
                BlockMode::Flag => "security.threat.flagged",
            };
            (
                None,
                action,
                actor("palisade".into(), "service", None),
                resource("threat_block", block.target.key()),
                Outcome::Success,
            )
        }
        ThreatNotice::RateLimitTightened { tightening, .. } => (
            None,
            "security.threat.rate_limit_tightened",
            actor("palisade".into(), "service", None),
            resource("rate_limit_key", tightening.target.key()),
            Outcome::Success,
        ),
        ThreatNotice::ActionSkipped { detection, .. } => (
            None,
            "security.threat.action_skipped",
            actor("palisade".into(), "service", None),
            resource("threat_detection", detection.clone()),
            Outcome::Success,
        ),
        ThreatNotice::Anomaly(alert) => (
            None,
            "security.anomaly",
            actor(alert.key.value.clone(), "traffic_key", None),
            resource(
                "anomaly_metric",
                serde_json::to_value(alert.metric)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            ),
            Outcome::Denied,
        ),
    };
    let event = NewEvent {
        id: None,
        tenant: None,
        action: action.to_owned(),
        actor,
        resource,
        outcome,
        occurred_at: None,
        request_id: None,
        metadata,
    };
    (tenant.unwrap_or_else(TenantId::default_tenant), event)
}
