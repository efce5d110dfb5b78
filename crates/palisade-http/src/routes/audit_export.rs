//! `GET /v1/audit/export`: a tenant's audit events as NDJSON, OCSF or CEF, in index
//! order, streamed a page at a time so an export of any size holds one page in
//! memory. The export covers the log as it was when the request arrived: events
//! appended while it runs are left for the next export (or the live stream).

use crate::auth::Caller;
use crate::problem::Problem;
use crate::routes::audit::Filters;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use palisade_audit::export::ExportFormat;
use palisade_audit::log::AuditLog;
use palisade_audit::pii::PiiAccess;
use palisade_audit::store::{EventFilter, PageAfter};
use palisade_auth::Scope;
use serde::Deserialize;
use std::time::Duration;
use utoipa::IntoParams;

/// Events read from the store per page (one body chunk each).
const PAGE: u32 = 500;
/// Pause before re-reading when a read made no progress (a replica behind the
/// primary), and how many such pauses an export tolerates before giving up.
const STALL_PAUSE: Duration = Duration::from_millis(100);
const MAX_STALLS: u32 = 100;

/// Export format and filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// `ndjson` (default): event views with `leaf_hash`; `ocsf`: OCSF 1.3 events, one
    /// per line; `cef`: ArcSight CEF records, one per line.
    pub format: Option<String>,
    /// Tenant (admin keys only; others always export their own).
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
}

/// Exports the caller's audit events (an admin may name a tenant), oldest first, in
/// the chosen format. Every record carries the event's index and leaf hash, so it
/// can be proven against a signed checkpoint. A failure after the first byte cuts
/// the response short (the chunked body never terminates), so a truncated export is
/// never mistaken for a complete one.
#[utoipa::path(get, path = "/v1/audit/export", tag = "audit", params(ExportParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "One record per line: NDJSON and OCSF as `application/x-ndjson`, CEF as `text/plain`", content_type = "application/x-ndjson"),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ExportParams>,
) -> Result<Response, Problem> {
    caller.require(Scope::AUDIT_READ)?;
    let format = match params.format.as_deref() {
        None => ExportFormat::Ndjson,
        Some(raw) => ExportFormat::parse(raw)
            .ok_or_else(|| Problem::bad_request("format must be ndjson, ocsf or cef"))?,
    };
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
    let end = state.audit.tree_size().await?;
    let access = crate::routes::audit::pii_access(&caller);
    let body = Body::from_stream(export_stream(
        state.audit.clone(),
        filter,
        access,
        format,
        end,
    ));
    let disposition = format!(
        "attachment; filename=\"audit-export.{}\"",
        format.file_extension()
    );
    Ok((
        [
            (header::CONTENT_TYPE, format.media_type().to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}

/// Where an export is.
struct Progress {
    log: AuditLog,
    filter: EventFilter,
    /// What the caller may see of personal data.
    access: PiiAccess,
    format: ExportFormat,
    /// The tree size when the export began: it covers indexes below this.
    end: u64,
    position: Option<u64>,
    stalls: u32,
    done: bool,
}

/// The export body: one chunk per non-empty page, until every index below `end` was
/// read.
fn export_stream(
    log: AuditLog,
    filter: EventFilter,
    access: PiiAccess,
    format: ExportFormat,
    end: u64,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let progress = Progress {
        log,
        filter,
        access,
        format,
        end,
        position: None,
        stalls: 0,
        done: end == 0,
    };
    futures_util::stream::unfold(progress, |mut progress| async move {
        let chunk = next_chunk(&mut progress).await?;
        Some((chunk, progress))
    })
}

async fn next_chunk(progress: &mut Progress) -> Option<Result<Bytes, std::io::Error>> {
    while !progress.done {
        let page = PageAfter {
            after: progress.position,
            before: Some(progress.end),
            limit: PAGE,
        };
        let mut page = match progress.log.query_after(&progress.filter, page).await {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, "audit export failed part-way");
                progress.done = true;
                return Some(Err(std::io::Error::other("audit export failed")));
            }
        };
        let advanced = page.through > progress.position;
        progress.position = progress.position.max(page.through);
        progress.done = progress
            .position
            .is_some_and(|p| p.saturating_add(1) >= progress.end);
        if !advanced && !progress.done {
            // Only a read replica behind the primary (where `end` was read) makes no
            // progress; wait for it, within reason.
            progress.stalls += 1;
            if progress.stalls > MAX_STALLS {
                progress.done = true;
                return Some(Err(std::io::Error::other(
                    "audit export: the database replica is too far behind",
                )));
            }
            tokio::time::sleep(STALL_PAUSE).await;
            continue;
        }
        progress.stalls = 0;
        if page.events.is_empty() {
            continue;
        }
        progress
            .log
            .reveal_pii(&mut page.events, progress.access)
            .await;
        let mut chunk = String::new();
        for event in &page.events {
            chunk.push_str(&progress.format.line(event));
        }
        return Some(Ok(Bytes::from(chunk)));
    }
    None
}
