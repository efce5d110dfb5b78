//! The bearer-token layer on a bare axum router with real token services:
//! what a Rust service sees for valid, missing, malformed, expired, revoked
//! and wrong-audience tokens, and with its database cut.

mod common;

use axum::Router;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use common::{Answer, send};
use palisade_auth::jwt::{KeySet, RotationPolicy, Verifier, VerifierConfig};
use palisade_auth::tokens::{IssueRequest, Tokens, TokensConfig};
use palisade_core::{Clock, ManualClock, SecurityEvents, SharedClock};
use palisade_http::{BearerAuthLayer, VerifiedClaims};
use palisade_store::{Database, DatabaseConfig};
use palisade_testkit::{FaultProxy, TestDatabase};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const ISSUER: &str = "https://palisade.test";
const AUD: &str = "orders-api";
const TENANT: &str = "t1";

/// A token service on a migrated database, with the clock it reads.
struct Fixture {
    tokens: Tokens,
    clock: ManualClock,
    _dir: Option<tempfile::TempDir>,
}

fn config() -> TokensConfig {
    let mut config = TokensConfig::new(ISSUER, vec![AUD.into(), "billing-api".into()]);
    config.rotation = RotationPolicy {
        publish_ahead: Duration::from_secs(600),
        ..RotationPolicy::default()
    };
    config
}

fn tokens_on(db: Database, clock: &ManualClock) -> Tokens {
    let shared: SharedClock = Arc::new(clock.clone());
    let ring = palisade_auth::jwt::KeyRing::new(config().rotation);
    Tokens::new(config(), ring, db, SecurityEvents::new(16), shared)
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = Database::connect(&DatabaseConfig::default(), dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    db.migrate().await.unwrap_or_else(|e| panic!("{e}"));
    let clock = ManualClock::new();
    Fixture {
        tokens: tokens_on(db, &clock),
        clock,
        _dir: Some(dir),
    }
}

async fn issue(tokens: &Tokens, audience: &str, scope: Option<&str>) -> String {
    let mut claims = serde_json::Map::new();
    if let Some(scope) = scope {
        claims.insert("scope".into(), json!(scope));
    }
    let request = IssueRequest {
        subject: "alice".into(),
        audience: audience.into(),
        claims,
        ttl: Some(Duration::from_secs(600)),
    };
    tokens
        .issue(TENANT, request)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .access_token
}

async fn me(VerifiedClaims(claims): VerifiedClaims) -> axum::Json<Value> {
    axum::Json(json!({ "sub": claims.sub, "tenant": claims.extra.get("tenant") }))
}

async fn maybe(claims: Option<VerifiedClaims>) -> String {
    claims.map_or("anonymous".into(), |c| c.sub.clone().unwrap_or_default())
}

fn app(layer: BearerAuthLayer) -> Router {
    Router::new()
        .route("/me", get(me))
        .route("/maybe", get(maybe))
        .layer(layer)
}

async fn get_with(app: &Router, uri: &str, authorization: &[&str]) -> Answer {
    let mut builder = Request::get(uri);
    for value in authorization {
        builder = builder.header(header::AUTHORIZATION, *value);
    }
    send(
        app,
        builder.body(axum::body::Body::empty()).unwrap_or_default(),
    )
    .await
}

async fn get_me(app: &Router, token: &str) -> Answer {
    get_with(app, "/me", &[&format!("Bearer {token}")]).await
}

fn challenge(answer: &Answer) -> &str {
    answer
        .headers
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn assert_invalid_token(answer: &Answer, code: &str) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{:?}", answer.body);
    assert_eq!(
        challenge(answer),
        format!("Bearer error=\"invalid_token\", error_description=\"{code}\"")
    );
    assert_eq!(
        answer.headers[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(
        answer.body["type"],
        "https://palisade.dev/problems/invalid-token"
    );
    assert_eq!(answer.body["status"], 401);
}

#[tokio::test]
async fn a_valid_token_reaches_the_handler_with_its_claims() {
    let f = sqlite().await;
    let app = app(BearerAuthLayer::new(f.tokens.clone(), AUD));
    let token = issue(&f.tokens, AUD, None).await;
    // The second request is served from the cache of verified tokens.
    for _ in 0..2 {
        let answer = get_me(&app, &token).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        assert_eq!(answer.body, json!({"sub": "alice", "tenant": TENANT}));
    }
    let lower = get_with(&app, "/me", &[&format!("bearer {token}")]).await;
    assert_eq!(lower.status, StatusCode::OK);
}

#[tokio::test]
async fn no_credentials_get_a_bare_bearer_challenge() {
    let f = sqlite().await;
    let app = app(BearerAuthLayer::new(f.tokens.clone(), AUD));
    for authorization in [&[][..], &["Basic YWxpY2U6c2VjcmV0"][..]] {
        let answer = get_with(&app, "/me", authorization).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenge(&answer), "Bearer");
        assert_eq!(
            answer.body["type"],
            "https://palisade.dev/problems/unauthorized"
        );
    }
}

#[tokio::test]
async fn malformed_credentials_and_two_headers_are_invalid_requests() {
    let f = sqlite().await;
    let app = app(BearerAuthLayer::new(f.tokens.clone(), AUD));
    let token = issue(&f.tokens, AUD, None).await;
    for (authorization, code) in [
        (vec!["Bearer".to_owned()], "malformed_credentials"),
        (
            vec![format!("Bearer {token} extra")],
            "malformed_credentials",
        ),
        (
            vec![format!("Bearer {token}"), format!("Bearer {token}")],
            "multiple_authorization_headers",
        ),
    ] {
        let values: Vec<&str> = authorization.iter().map(String::as_str).collect();
        let answer = get_with(&app, "/me", &values).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{authorization:?}");
        assert_eq!(
            challenge(&answer),
            format!("Bearer error=\"invalid_request\", error_description=\"{code}\"")
        );
    }
    // Well-formed credentials that are not a JWT are an invalid token.
    assert_invalid_token(&get_me(&app, "not-a-jwt").await, "malformed");
    // An oversized header is refused before anything in it is read.
    assert_invalid_token(&get_me(&app, &"a".repeat(20_000)).await, "too_large");
}

#[tokio::test]
async fn tampered_expired_and_wrong_audience_tokens_are_refused_with_their_code() {
    let f = sqlite().await;
    let app = app(BearerAuthLayer::new(f.tokens.clone(), AUD));
    let token = issue(&f.tokens, AUD, None).await;
    assert_eq!(get_me(&app, &token).await.status, StatusCode::OK);

    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap_or_default();
    assert_invalid_token(&get_me(&app, &tampered).await, "bad_signature");

    let billing = issue(&f.tokens, "billing-api", None).await;
    assert_invalid_token(&get_me(&app, &billing).await, "bad_audience");

    // Past expiry and the 60 s leeway; the cached copy is expired too.
    f.clock.advance(Duration::from_secs(600 + 61));
    assert_invalid_token(&get_me(&app, &token).await, "expired");
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once() {
    let f = sqlite().await;
    let app = app(BearerAuthLayer::new(f.tokens.clone(), AUD));
    let token = issue(&f.tokens, AUD, None).await;
    assert_eq!(get_me(&app, &token).await.status, StatusCode::OK);
    f.tokens
        .revoke_access_token(TENANT, &token)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_invalid_token(&get_me(&app, &token).await, "revoked");
}

#[tokio::test]
async fn required_scopes_answer_403_insufficient_scope() {
    let f = sqlite().await;
    let layer = BearerAuthLayer::new(f.tokens.clone(), AUD)
        .require_scope("orders:read")
        .require_scope("orders:write");
    let app = app(layer);
    let both = issue(&f.tokens, AUD, Some("orders:read orders:write")).await;
    assert_eq!(get_me(&app, &both).await.status, StatusCode::OK);
    for scope in [Some("orders:read"), None] {
        let token = issue(&f.tokens, AUD, scope).await;
        let answer = get_me(&app, &token).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert_eq!(
            challenge(&answer),
            "Bearer error=\"insufficient_scope\", scope=\"orders:read orders:write\""
        );
    }
}

#[tokio::test]
async fn anonymous_requests_pass_when_allowed_but_bad_tokens_never_do() {
    let f = sqlite().await;
    let app = app(BearerAuthLayer::new(f.tokens.clone(), AUD).allow_anonymous());
    let token = issue(&f.tokens, AUD, None).await;

    let anonymous = get_with(&app, "/maybe", &[]).await;
    assert_eq!(
        (anonymous.status, anonymous.body),
        (StatusCode::OK, json!("anonymous"))
    );
    let known = get_with(&app, "/maybe", &[&format!("Bearer {token}")]).await;
    assert_eq!((known.status, known.body), (StatusCode::OK, json!("alice")));
    let bad = get_with(&app, "/maybe", &["Bearer not-a-jwt"]).await;
    assert_invalid_token(&bad, "malformed");
    // A route that requires claims is a programming error here, not a 401.
    let required = get_with(&app, "/me", &[]).await;
    assert_eq!(required.status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn the_extractor_without_the_layer_is_a_500_naming_the_mistake() {
    let app = Router::new().route("/me", get(me));
    let answer = get_with(&app, "/me", &["Bearer abc"]).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    let detail = answer.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("no bearer authentication layer"),
        "{detail}"
    );
}

#[tokio::test]
async fn an_outside_issuers_tokens_verify_against_its_jwks() {
    let f = sqlite().await;
    // Palisade stands in for the outside issuer; the service knows only its JWKS.
    let keys = KeySet::from_jwks_json(&f.tokens.jwks().json).unwrap_or_else(|e| panic!("{e}"));
    let clock: SharedClock = Arc::new(f.clock.clone());
    let verifier = Verifier::new(VerifierConfig::new(ISSUER, vec![AUD.into()]), keys, clock)
        .unwrap_or_else(|e| panic!("{e}"));
    let app = app(BearerAuthLayer::new(verifier, AUD));
    let token = issue(&f.tokens, AUD, None).await;
    let answer = get_me(&app, &token).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["sub"], "alice");
    f.clock.advance(Duration::from_secs(600 + 61));
    assert_invalid_token(&get_me(&app, &token).await, "expired");
}

/// `host:port` of the test PostgreSQL server.
fn upstream(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |x| x.1);
    let rest = rest.split_once('@').map_or(rest, |x| x.1);
    let host = rest.split(['/', '?']).next().unwrap_or("127.0.0.1:5432");
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    host.replace("localhost", "127.0.0.1")
        .parse()
        .unwrap_or_else(|e| panic!("{host}: {e}"))
}

/// `url` with its host and port replaced by `proxy`.
fn through(proxy: SocketAddr, url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (auth, rest) = rest
        .split_once('@')
        .map_or((String::new(), rest), |(a, r)| (format!("{a}@"), r));
    let path = rest.find(['/', '?']).map_or("", |i| &rest[i..]);
    format!("{scheme}://{auth}{proxy}{path}")
}

/// Revocations are checked in memory (the database is the record, polled in
/// the background), so with PostgreSQL cut a valid token still passes and a
/// revoked one stays refused: neither turns into a 401 for the wrong reason
/// nor into an outage of every protected route.
#[tokio::test]
async fn with_the_database_cut_verification_goes_on_from_memory() {
    let pg = TestDatabase::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let proxy = FaultProxy::start(upstream(&pg.url()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut db_config = DatabaseConfig::postgres(through(proxy.addr(), &pg.url()));
    db_config.acquire_timeout_ms = 1_000;
    let db = Database::connect(&db_config, std::path::Path::new("."))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    db.migrate().await.unwrap_or_else(|e| panic!("{e}"));
    let clock = ManualClock::new();
    let tokens = tokens_on(db, &clock);
    let app = app(BearerAuthLayer::new(tokens.clone(), AUD));
    let valid = issue(&tokens, AUD, None).await;
    let revoked = issue(&tokens, AUD, None).await;
    tokens
        .revoke_access_token(TENANT, &revoked)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    proxy.cut();
    let refresh = tokens.revocations().refresh(clock.now_unix_ms()).await;
    assert!(refresh.is_err(), "the database should be unreachable");
    assert_eq!(get_me(&app, &valid).await.status, StatusCode::OK);
    assert_invalid_token(&get_me(&app, &revoked).await, "revoked");
    drop(proxy);
}
