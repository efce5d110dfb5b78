//! A Rust service that accepts only requests with a valid Palisade access
//! token: `BearerAuthLayer` verifies `Authorization: Bearer <token>` (signature,
//! claims, revocation) and handlers read the claims with `VerifiedClaims`.
//!
//! Run: `cargo run -p palisade-http --example bearer_axum -- 127.0.0.1:3000`
//! It prints a token for `alice` with the scope `orders:read`; then
//! `curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/orders`.
//!
//! Here the token service lives in the process, on SQLite in a temporary
//! directory. A service that only verifies the tokens of a Palisade server
//! builds a `palisade_auth::jwt::Verifier` on the server's
//! `/.well-known/jwks.json` (`KeySet::from_jwks_json`) and passes it to
//! `BearerAuthLayer::new` instead of `Tokens`.

use axum::Router;
use axum::routing::get;
use palisade_auth::jwt::KeyRing;
use palisade_auth::tokens::{IssueRequest, Tokens, TokensConfig};
use palisade_core::{SecurityEvents, SystemClock};
use palisade_http::{BearerAuthLayer, VerifiedClaims};
use palisade_store::{Database, DatabaseConfig};
use std::net::SocketAddr;
use std::time::Duration;

async fn orders(claims: VerifiedClaims) -> String {
    format!(
        "orders of {} (tenant {})\n",
        claims.sub.as_deref().unwrap_or("?"),
        claims
            .extra
            .get("tenant")
            .and_then(|t| t.as_str())
            .unwrap_or("?")
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into())
        .parse()?;
    let dir = tempfile::tempdir()?;
    let db = Database::connect(&DatabaseConfig::default(), dir.path()).await?;
    db.migrate().await?;
    let config = TokensConfig::new("https://auth.example.test", vec!["orders-api".into()]);
    let ring = KeyRing::new(config.rotation.clone());
    let clock = SystemClock::shared();
    let tokens = Tokens::new(config, ring, db, SecurityEvents::new(64), clock.clone())?;

    // Revocations are checked in memory; reading the database's now and then
    // picks up those made by other instances.
    let revocations = tokens.revocations().clone();
    tokio::spawn(async move {
        loop {
            if let Err(error) = revocations.refresh(clock.now_unix_ms()).await {
                eprintln!("revocation refresh failed: {error}");
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    });

    let mut claims = serde_json::Map::new();
    claims.insert("scope".into(), "orders:read".into());
    let pair = tokens
        .issue(
            "acme",
            IssueRequest {
                subject: "alice".into(),
                audience: "orders-api".into(),
                claims,
                ttl: None,
            },
        )
        .await?;
    println!("TOKEN={}", pair.access_token);

    let app = Router::new()
        .route("/orders", get(orders))
        .layer(BearerAuthLayer::new(tokens, "orders-api").require_scope("orders:read"));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
