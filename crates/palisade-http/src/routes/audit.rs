//! `/v1/audit`: append events, read the signed checkpoint and verifier key, get
//! inclusion and consistency proofs, raw leaves, single events, filtered queries,
//! and the C2SP tlog-tiles hash tiles.
//!
//! Personal data: an event may carry `subject` (an opaque id, stored in clear) and
//! `pii` (a JSON object), which is encrypted under the subject's key before the
//! leaf is built (`palisade_audit::pii`). Reads show `pii` decrypted to keys with
//! the `audit:pii` scope, `{"redacted": true}` to others, and `{"erased": true}` to
//! everyone once `DELETE /v1/crypto/subjects/{subject}` destroyed the key (also
//! `{"unavailable": true}` while the key service is down, `{"unreadable": true}`
//! for a ciphertext that does not open). Raw leaves hold the ciphertext.

use crate::auth::Caller;
use crate::problem::Problem;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use palisade_audit::event::{NewEvent, Outcome};
use palisade_audit::log::{AuditError, Receipt};
use palisade_audit::pii::{PiiAccess, SubjectPii};
use palisade_audit::store::{EventFilter, Page, StoredEvent};
use palisade_auth::Scope;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// How long `?wait=sequenced` waits for spooled events to reach the tree.
const SEQUENCE_WAIT: Duration = Duration::from_secs(10);
/// Largest page of a query.
const MAX_PAGE: u32 = 1000;
/// Hashes in a full tile (C2SP tlog-tiles).
const TILE_WIDTH: u64 = 256;

impl From<AuditError> for Problem {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Invalid { index, field } => {
                let path = format!("events[{index}].{}", field.field);
                Problem::unprocessable(format!("{path}: {}", field.message))
                    .field(path, field.message)
            }
            AuditError::BatchSize { .. } => {
                Problem::unprocessable(e.to_string()).field("events", e.to_string())
            }
            AuditError::OutOfRange(message) => Problem::bad_request(message),
            AuditError::Unavailable(message) => {
                tracing::warn!(%message, "audit append refused");
                Problem::unavailable("the audit log cannot accept events right now", 5)
            }
            AuditError::Store(e) if e.is_unavailable() => {
                Problem::unavailable("the database is unavailable", 2)
            }
            AuditError::Store(e) => {
                tracing::error!(error = %e, "audit store error");
                Problem::internal()
            }
        }
    }
}

/// Append options.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AppendParams {
    /// `sequenced`: also wait until the events have indexes in the tree.
    pub wait: Option<String>,
}

/// One appended event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppendedEvent {
    /// Event id.
    pub id: Uuid,
    /// Index in the tree (when sequenced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
}

/// Append answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppendResponse {
    /// The events, in request order.
    pub events: Vec<AppendedEvent>,
    /// A tree size whose checkpoint contains them (when sequenced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree_size: Option<u64>,
}

/// Appends one event, or a batch as `{"events": [...]}`. Answers 201 only when every
/// event is durable. An event may carry `subject` (opaque id) and `pii` (a JSON
/// object, stored only encrypted under the subject's key; 422 without a subject).
#[utoipa::path(post, path = "/v1/audit/events", tag = "audit", params(AppendParams),
    request_body(content = Object, description = "An event, or {\"events\": [event, ...]}"),
    security(("api_key" = [])),
    responses((status = 201, body = AppendResponse), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn append(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<AppendParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    caller.require(Scope::AUDIT_WRITE)?;
    let wait_sequenced = match params.wait.as_deref() {
        None | Some("durable") => false,
        Some("sequenced") => true,
        Some(_) => {
            return Err(Problem::bad_request(
                "wait must be 'durable' or 'sequenced'",
            ));
        }
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(Problem::for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| Problem::bad_request(format!("malformed JSON: {e}")))?;
    let (raw_events, batch) = match value {
        Value::Object(mut map) if map.contains_key("events") => match map.remove("events") {
            Some(Value::Array(items)) if map.is_empty() => (items, true),
            _ => {
                return Err(Problem::unprocessable(
                    "events must be the only key, holding an array",
                )
                .field("events", "must be an array"));
            }
        },
        single @ Value::Object(_) => (vec![single], false),
        _ => {
            return Err(
                Problem::unprocessable("send an event object or {\"events\": [...]}")
                    .field(".", "must be an object"),
            );
        }
    };
    let max = state.audit.limits().max_batch;
    if raw_events.is_empty() || raw_events.len() > max {
        let message = format!("a batch holds 1 to {max} events");
        return Err(Problem::unprocessable(message.clone()).field("events", message));
    }
    let mut events = Vec::with_capacity(raw_events.len());
    for (i, raw) in raw_events.into_iter().enumerate() {
        let prefix = if batch {
            format!("events[{i}]")
        } else {
            String::new()
        };
        let (raw, personal) = split_personal(raw, &prefix)?;
        let event: NewEvent = serde_path_to_error::deserialize(raw).map_err(|e| {
            let path = e.path().to_string();
            let field = match (prefix.is_empty(), path.as_str()) {
                (true, p) => p.to_owned(),
                (false, ".") => prefix.clone(),
                (false, p) => format!("{prefix}.{p}"),
            };
            let message: String = e.inner().to_string().chars().take(200).collect();
            Problem::unprocessable(format!("{field}: {message}")).field(field, message)
        })?;
        let tenant = caller.tenant(event.tenant.as_deref())?;
        events.push((tenant, event, personal));
    }
    let mut receipt = state.audit.append_batch_with_pii(events).await?;
    if wait_sequenced && receipt.indexes.is_none() {
        receipt = wait_for_sequencing(&state, receipt).await?;
    }
    let response = AppendResponse {
        events: receipt
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| AppendedEvent {
                id: *id,
                index: receipt.indexes.as_ref().and_then(|x| x.get(i).copied()),
            })
            .collect(),
        tree_size: receipt.tree_size,
    };
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

/// Takes `subject` and `pii` out of a raw event: they are not part of `NewEvent`,
/// since `pii` is sealed before the leaf is built.
fn split_personal(raw: Value, prefix: &str) -> Result<(Value, SubjectPii), Problem> {
    let Value::Object(mut map) = raw else {
        return Ok((raw, SubjectPii::none()));
    };
    let path = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        }
    };
    let subject = match map.remove("subject") {
        None | Some(Value::Null) => None,
        Some(Value::String(subject)) => Some(subject),
        Some(_) => {
            let field = path("subject");
            return Err(Problem::unprocessable(format!("{field}: must be a string"))
                .field(field, "must be a string"));
        }
    };
    let pii = match map.remove("pii") {
        None | Some(Value::Null) => None,
        Some(pii) => Some(pii),
    };
    Ok((Value::Object(map), SubjectPii { subject, pii }))
}

/// What a caller may see of events' personal data.
pub(crate) fn pii_access(caller: &Caller) -> PiiAccess {
    if caller.key.scopes.allows(Scope::AUDIT_PII) {
        PiiAccess::Reveal
    } else {
        PiiAccess::Redact
    }
}

/// Spooled events reach the tree when the database returns; poll until they do.
async fn wait_for_sequencing(state: &AppState, receipt: Receipt) -> Result<Receipt, Problem> {
    let deadline = tokio::time::Instant::now() + SEQUENCE_WAIT;
    loop {
        let mut indexes = Vec::with_capacity(receipt.ids.len());
        for id in &receipt.ids {
            match state.audit.event(*id).await {
                Ok(Some(event)) => indexes.push(event.index),
                _ => break,
            }
        }
        if indexes.len() == receipt.ids.len() {
            let tree_size = state.audit.tree_size().await.ok();
            return Ok(Receipt {
                ids: receipt.ids,
                indexes: Some(indexes),
                tree_size,
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Problem::unavailable(
                "the events are durable but not yet sequenced; retry with the same ids",
                5,
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The latest signed checkpoint (C2SP signed note).
#[utoipa::path(get, path = "/v1/audit/checkpoint", tag = "audit", security(("api_key" = [])),
    responses((status = 200, description = "Signed note", content_type = "text/plain"), (status = 404, body = Problem)))]
pub async fn checkpoint(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    caller.require(Scope::AUDIT_READ)?;
    let checkpoint = state
        .audit
        .checkpoint()
        .await?
        .ok_or_else(|| Problem::not_found("the log is empty: no checkpoint yet"))?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        checkpoint.note,
    )
        .into_response())
}

/// The checkpoint verifier key in note format (`name+keyid+base64(0x01‖key)`).
#[utoipa::path(get, path = "/v1/audit/key", tag = "audit", security(("api_key" = [])),
    responses((status = 200, description = "Verifier key", content_type = "text/plain")))]
pub async fn key(State(state): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    caller.require(Scope::AUDIT_READ)?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", state.audit.verifier_key()),
    )
        .into_response())
}

/// Inclusion proof parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InclusionParams {
    /// Leaf index.
    pub index: u64,
    /// Tree size the proof is for.
    pub tree_size: u64,
}

/// An inclusion proof.
#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionProof {
    /// Leaf index.
    pub index: u64,
    /// Tree size.
    pub tree_size: u64,
    /// RFC 6962 leaf hash, base64.
    pub leaf_hash: String,
    /// Audit path, leaf level first, base64.
    pub hashes: Vec<String>,
}

/// Proves that leaf `index` is in the tree of `tree_size` leaves.
#[utoipa::path(get, path = "/v1/audit/proofs/inclusion", tag = "audit", params(InclusionParams),
    security(("api_key" = [])),
    responses((status = 200, body = InclusionProof), (status = 400, body = Problem)))]
pub async fn inclusion(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<InclusionParams>,
) -> Result<Json<InclusionProof>, Problem> {
    caller.require(Scope::AUDIT_READ)?;
    let (leaf, proof) = state
        .audit
        .inclusion_proof(params.index, params.tree_size)
        .await?;
    Ok(Json(InclusionProof {
        index: params.index,
        tree_size: params.tree_size,
        leaf_hash: STANDARD.encode(leaf),
        hashes: proof.iter().map(|h| STANDARD.encode(h)).collect(),
    }))
}

/// Consistency proof parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyParams {
    /// Older tree size.
    pub from: u64,
    /// Newer tree size.
    pub to: u64,
}

/// A consistency proof.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProof {
    /// Older size.
    pub from: u64,
    /// Newer size.
    pub to: u64,
    /// Proof hashes, base64.
    pub hashes: Vec<String>,
}

/// Proves that the tree of `from` leaves is a prefix of the tree of `to` leaves.
#[utoipa::path(get, path = "/v1/audit/proofs/consistency", tag = "audit", params(ConsistencyParams),
    security(("api_key" = [])),
    responses((status = 200, body = ConsistencyProof), (status = 400, body = Problem)))]
pub async fn consistency(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ConsistencyParams>,
) -> Result<Json<ConsistencyProof>, Problem> {
    caller.require(Scope::AUDIT_READ)?;
    let proof = state
        .audit
        .consistency_proof(params.from, params.to)
        .await?;
    Ok(Json(ConsistencyProof {
        from: params.from,
        to: params.to,
        hashes: proof.iter().map(|h| STANDARD.encode(h)).collect(),
    }))
}

/// The exact leaf bytes at `index`, so anyone can recompute its hash.
#[utoipa::path(get, path = "/v1/audit/leaves/{index}", tag = "audit",
    params(("index" = u64, Path, description = "Leaf index")), security(("api_key" = [])),
    responses((status = 200, description = "Leaf bytes", content_type = "application/octet-stream"), (status = 404, body = Problem)))]
pub async fn leaf(
    State(state): State<AppState>,
    caller: Caller,
    Path(index): Path<u64>,
) -> Result<Response, Problem> {
    caller.require(Scope::AUDIT_READ)?;
    let event = state
        .audit
        .leaf(index)
        .await?
        .filter(|e| visible(&caller, e));
    let event = event.ok_or_else(|| Problem::not_found("no leaf at that index"))?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        event.leaf,
    )
        .into_response())
}

/// A stored event as returned by the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Index in the tree.
    pub index: u64,
    /// Event id.
    pub id: Uuid,
    /// The event (the canonical leaf, parsed), with `pii` as the caller may see it
    /// (decrypted, `{"redacted": true}` or `{"erased": true}`), never the ciphertext.
    #[schema(value_type = Object)]
    pub event: Value,
}

/// The view of an event whose `pii` was resolved with `AuditLog::reveal_pii`
/// (unresolved `pii` shows as redacted).
pub(crate) fn view(event: &StoredEvent) -> EventView {
    EventView {
        index: event.index,
        id: event.id,
        event: palisade_audit::pii::leaf_view(event),
    }
}

/// A key sees only its own tenant's events, unless it is an admin key.
fn visible(caller: &Caller, event: &StoredEvent) -> bool {
    caller.key.scopes.is_admin() || event.tenant == caller.key.tenant.as_str()
}

/// One event by id.
#[utoipa::path(get, path = "/v1/audit/events/{id}", tag = "audit",
    params(("id" = Uuid, Path, description = "Event id")), security(("api_key" = [])),
    responses((status = 200, body = EventView), (status = 404, body = Problem)))]
pub async fn event(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<EventView>, Problem> {
    caller.require(Scope::AUDIT_READ)?;
    let not_found = || Problem::not_found("no event with that id");
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let event = state
        .audit
        .event(id)
        .await?
        .filter(|e| visible(&caller, e))
        .ok_or_else(not_found)?;
    let mut events = [event];
    state
        .audit
        .reveal_pii(&mut events, pii_access(&caller))
        .await;
    Ok(Json(view(&events[0])))
}

/// The filters every audit read shares with `GET /v1/audit/events`.
#[derive(Debug, Default)]
pub(crate) struct Filters {
    /// Tenant named by the caller (admin keys only).
    pub tenant: Option<String>,
    /// Exact actor id.
    pub actor: Option<String>,
    /// Action prefix on dot boundaries.
    pub action: Option<String>,
    /// Resource type.
    pub resource_type: Option<String>,
    /// Resource id.
    pub resource_id: Option<String>,
    /// Outcome name, checked here.
    pub outcome: Option<String>,
    /// Received at or after (Unix ms).
    pub from: Option<i64>,
    /// Received before (Unix ms).
    pub to: Option<i64>,
}

impl Filters {
    /// The store filter, with the tenant rule of every audit read: a key reads its
    /// own tenant, and only an admin key may name another.
    pub(crate) fn into_filter(self, caller: &Caller) -> Result<EventFilter, Problem> {
        let tenant = caller.tenant(self.tenant.as_deref())?;
        let outcome = self
            .outcome
            .as_deref()
            .map(|o| {
                Outcome::parse(o).ok_or_else(|| {
                    Problem::bad_request("outcome must be success, failure, denied or error")
                })
            })
            .transpose()?;
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            return Err(Problem::bad_request("from must be before to"));
        }
        Ok(EventFilter {
            tenant: tenant.to_string(),
            actor_id: self.actor,
            action_prefix: self.action,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            outcome,
            from_ms: self.from,
            to_ms: self.to,
        })
    }
}

/// Query filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct QueryParams {
    /// Tenant (admin keys only; others always see their own).
    pub tenant: Option<String>,
    /// Actor id.
    pub actor: Option<String>,
    /// Action prefix on dot boundaries (`auth` matches `auth.login`).
    pub action: Option<String>,
    /// Resource type.
    pub resource_type: Option<String>,
    /// Resource id.
    pub resource_id: Option<String>,
    /// Outcome.
    pub outcome: Option<String>,
    /// Received at or after (Unix ms).
    pub from: Option<i64>,
    /// Received before (Unix ms).
    pub to: Option<i64>,
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
}

/// A page of events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// The events.
    pub events: Vec<EventView>,
    /// Cursor of the next page, absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Events matching the filters, newest first, with an opaque cursor.
#[utoipa::path(get, path = "/v1/audit/events", tag = "audit", params(QueryParams), security(("api_key" = [])),
    responses((status = 200, body = EventPage), (status = 400, body = Problem)))]
pub async fn query(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<QueryParams>,
) -> Result<Json<EventPage>, Problem> {
    caller.require(Scope::AUDIT_READ)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::bad_request(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    let before = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let filter = Filters {
        tenant: params.tenant,
        actor: params.actor,
        action: params.action,
        resource_type: params.resource_type,
        resource_id: params.resource_id,
        outcome: params.outcome,
        from: params.from,
        to: params.to,
    }
    .into_filter(&caller)?;
    let mut events = state.audit.query(&filter, Page { before, limit }).await?;
    state
        .audit
        .reveal_pii(&mut events, pii_access(&caller))
        .await;
    let next_cursor = (events.len() == limit as usize)
        .then(|| events.last().map(|e| encode_cursor(e.index)))
        .flatten();
    Ok(Json(EventPage {
        events: events.iter().map(view).collect(),
        next_cursor,
    }))
}

fn encode_cursor(index: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{index}"))
}

fn decode_cursor(cursor: &str) -> Result<u64, Problem> {
    let bad = || Problem::bad_request("invalid cursor");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    text.strip_prefix("v1:")
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)
}

/// A hash tile (C2SP tlog-tiles): `tile/{L}/{N}` or `tile/{L}/{N}.p/{W}`, with N in
/// the three-digit path form (`x001/x234/067`).
#[utoipa::path(get, path = "/v1/audit/tile/{level}/{index}", tag = "audit",
    params(("level" = u8, Path, description = "Tile level"), ("index" = String, Path, description = "Tile index path, e.g. x001/234 or 067.p/12")),
    security(("api_key" = [])),
    responses((status = 200, description = "Concatenated hashes", content_type = "application/octet-stream"), (status = 404, body = Problem)))]
pub async fn tile(
    State(state): State<AppState>,
    caller: Caller,
    Path((level, rest)): Path<(u8, String)>,
) -> Result<Response, Problem> {
    caller.require(Scope::AUDIT_READ)?;
    let not_found = || Problem::not_found("no such tile");
    let (index, width) = parse_tile_path(&rest).ok_or_else(not_found)?;
    // Tile level L holds tree level 8·L.
    let tree_level = level
        .checked_mul(8)
        .filter(|l| *l < 64)
        .ok_or_else(not_found)?;
    let start = index.checked_mul(TILE_WIDTH).ok_or_else(not_found)?;
    let hashes = state.audit.hashes(tree_level, start, width).await?;
    if hashes.len() as u64 != width {
        return Err(not_found());
    }
    let body: Vec<u8> = hashes.concat();
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

/// Parses `x001/x234/067[.p/W]` into (index, width).
fn parse_tile_path(path: &str) -> Option<(u64, u64)> {
    let (index_path, width) = match path.split_once(".p/") {
        Some((index, width)) => {
            let width: u64 = width.parse().ok()?;
            if !(1..TILE_WIDTH).contains(&width) || width.to_string() != path.split_once(".p/")?.1 {
                return None;
            }
            (index, width)
        }
        None => (path, TILE_WIDTH),
    };
    let parts: Vec<&str> = index_path.split('/').collect();
    let mut index: u64 = 0;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let digits = if last { *part } else { part.strip_prefix('x')? };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        index = index
            .checked_mul(1000)?
            .checked_add(digits.parse::<u64>().ok()?)?;
    }
    Some((index, width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tile_paths_in_the_c2sp_form() {
        assert_eq!(parse_tile_path("067"), Some((67, 256)));
        assert_eq!(parse_tile_path("x001/x234/067"), Some((1_234_067, 256)));
        assert_eq!(parse_tile_path("000.p/12"), Some((0, 12)));
        for bad in [
            "67",
            "x001/67",
            "001/067",
            "000.p/0",
            "000.p/256",
            "000.p/012",
            "abc",
        ] {
            assert_eq!(parse_tile_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(42)).ok(), Some(42));
        assert!(decode_cursor("not-a-cursor").is_err());
    }
}
