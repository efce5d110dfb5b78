//! Health probes and the metrics endpoint, at the root (not under `/v1`, not authenticated).

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_core::health::{ComponentReport, HealthStatus};
use serde::Serialize;
use utoipa::ToSchema;

/// The answer of `/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthBody {
    /// Overall status.
    #[schema(value_type = String, example = "up")]
    pub status: HealthStatus,
    /// Palisade's version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Resident memory of the process, in bytes, where the platform reports it.
    pub resident_memory_bytes: Option<u64>,
    /// Whether the schema is migrated.
    pub migrated: bool,
    /// Each dependency, by name.
    #[schema(value_type = Object)]
    pub components: std::collections::BTreeMap<String, ComponentReport>,
}

/// Liveness: the process is running and serving HTTP. Never checks dependencies,
/// so an orchestrator does not restart Palisade because the database is down.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "The process is alive")))]
pub async fn live() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "up" }))
}

/// Readiness: 200 when migrations are applied and every required dependency answers.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "Ready for traffic"), (status = 503, description = "Not ready")))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let report = state.health.report().await;
    let ready = state.is_migrated() && report.ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({ "status": if ready { "ready" } else { "not_ready" }, "migrated": state.is_migrated() });
    let mut response = (status, Json(body)).into_response();
    if !ready {
        response.headers_mut().insert(header::RETRY_AFTER, 1.into());
    }
    response
}

/// Full health: every dependency with its status, latency and breaker state.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, body = HealthBody), (status = 503, body = HealthBody)))]
pub async fn health(State(state): State<AppState>) -> Response {
    let report = state.health.report().await;
    let status = if state.is_migrated() {
        report.status
    } else {
        HealthStatus::Down
    };
    let code = if status == HealthStatus::Down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = HealthBody {
        status,
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.uptime().as_secs(),
        resident_memory_bytes: resident_memory_bytes(),
        migrated: state.is_migrated(),
        components: report.components,
    };
    (code, Json(body)).into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let (size, idle) = state.db.pool_usage();
    metrics::gauge!("palisade_db_pool_connections").set(f64::from(size));
    metrics::gauge!("palisade_db_pool_idle_connections").set(idle as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// Resident set size from `/proc/self/statm` (Linux); `None` elsewhere.
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
