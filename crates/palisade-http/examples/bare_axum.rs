//! The baseline of the HTTP overhead benchmark: a bare axum server answering the
//! same JSON as `GET /v1/whoami`, with no middleware at all. See BENCHMARKS.md.
//!
//! `bare_axum ADDR --observe` adds only what the issue requires of every request's
//! observability, as `palisade serve` does it: the request id, span, JSON log line
//! (to stderr) and Prometheus metrics of `ObserveLayer`. It shows what that share of
//! the full stack costs on its own.

use axum::{Json, Router, routing::get};
use palisade_http::layers::telemetry::ObserveLayer;
use palisade_observe::{LoggingConfig, Metrics, init_logging};

/// The same allocator as the `palisade` binary, so the comparison measures the
/// middleware and not the allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".into());
    let observe = std::env::args().any(|arg| arg == "--observe");
    let app = Router::new().route(
        "/v1/whoami",
        get(|| async {
            Json(serde_json::json!({
                "id": "01a2129c-a548-75a0-802c-d494273e1dc2",
                "name": "bench",
                "tenant": "default",
                "scopes": ["admin"],
                "created_at_ms": 1795608585544u64,
                "expires_at_ms": null,
                "revoked_at_ms": null
            }))
        }),
    );
    // Kept until exit: dropping them stops the log writer and the metrics recorder.
    let (_logs, _metrics, app) = if observe {
        let logs = init_logging(&LoggingConfig::default());
        let metrics = Metrics::install().map_err(std::io::Error::other)?;
        (Some(logs), Some(metrics), app.layer(ObserveLayer::new()))
    } else {
        (None, None, app)
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
