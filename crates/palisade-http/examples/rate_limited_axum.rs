//! A Rust service protected by Palisade's tower layers, without the server:
//! 100 requests a minute per client IP, 429 with `Retry-After` and the IETF
//! `RateLimit` headers beyond that, and strict security headers.
//!
//! Run: `cargo run -p palisade-http --example rate_limited_axum -- 127.0.0.1:3000`

use axum::Router;
use axum::routing::get;
use palisade_core::SystemClock;
use palisade_guard::ratelimit::{RateLimiter, RateLimiterSettings, Rule, RuleOrigin, RuleSpec};
use palisade_http::layers::rate_limit::{RateLimitHeaders, RateLimitLayer};
use palisade_http::layers::security_headers::SecurityHeadersLayer;
use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into())
        .parse()?;
    // In process here; pass `Some(palisade_store::Redis)` to share the limits
    // between instances.
    let limiter = RateLimiter::new(
        RateLimiterSettings::default(),
        SystemClock::shared(),
        None,
        None,
    );
    let per_ip: RuleSpec = serde_json::from_value(serde_json::json!({
        "name": "per-ip", "key": "ip", "algorithm": "gcra", "limit": 100, "period_ms": 60_000
    }))?;
    limiter.replace_rules(vec![Rule::new(per_ip, RuleOrigin::Config)?])?;

    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(RateLimitLayer::new(limiter, RateLimitHeaders::default()))
        .layer(SecurityHeadersLayer::default());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    // The layer reads the client IP from the connection.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
