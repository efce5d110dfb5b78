//! The baseline of the HTTP overhead benchmark: a bare axum server answering the
//! same JSON as `GET /v1/whoami`, with no middleware at all. See BENCHMARKS.md.

use axum::{Json, Router, routing::get};

/// The same allocator as the `palisade` binary, so the comparison measures the
/// middleware and not the allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".into());
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
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
