//! `/v1/auth/tokens`, `/v1/auth/signing-keys` and `/.well-known/jwks.json`
//! driven as a NestJS service would: issue, verify, refresh, replay, revoke,
//! keys, and the audit trail they leave.

#[macro_use]
mod common;

use axum::http::StatusCode;
use common::{Answer, Backend};
use palisade_auth::{NewApiKey, Scopes};
use palisade_core::principal::TenantId;
use palisade_http::api_router;
use serde_json::{Value, json};

on_both_backends!(
    issue_verify_refresh_replay_and_revoke,
    revocation_by_subject_and_by_refresh_token,
    tokens_stay_in_their_tenant_and_scopes_are_enforced,
);

async fn key(backend: &Backend, tenant: &str, scopes: &[&str]) -> String {
    let created = backend
        .state
        .api_keys
        .create(NewApiKey {
            name: format!("{tenant} key"),
            tenant: TenantId::parse(tenant).expect("tenant"),
            scopes: Scopes::parse(scopes.iter().copied()).expect("scopes"),
            expires_at_ms: None,
        })
        .await
        .expect("key");
    created.secret.expose().to_owned()
}

async fn post(app: &axum::Router, key: &str, uri: &str, body: Value) -> Answer {
    common::send(app, common::request("POST", uri, key, Some(body))).await
}

async fn refresh(app: &axum::Router, key: &str, refresh_token: &Value) -> Answer {
    post(
        app,
        key,
        "/v1/auth/tokens/refresh",
        json!({"refresh_token": refresh_token}),
    )
    .await
}

async fn revoke(app: &axum::Router, key: &str, body: Value) -> Answer {
    post(app, key, "/v1/auth/tokens/revoke", body).await
}

async fn login(app: &axum::Router, key: &str, subject: &str) -> Value {
    let answer = post(
        app,
        key,
        "/v1/auth/tokens",
        json!({"subject": subject, "audience": "default", "claims": {"roles": ["editor"]}, "ttl_seconds": 300}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body
}

async fn verify(app: &axum::Router, key: &str, token: &Value) -> Value {
    let answer = post(
        app,
        key,
        "/v1/auth/tokens/verify",
        json!({"token": token, "audience": "default"}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body
}

async fn issue_verify_refresh_replay_and_revoke(backend: Backend) {
    let app = api_router(backend.state.clone());
    let key = key(&backend, "acme", &["auth:issue", "auth:verify"]).await;

    let pair = login(&app, &key, "user-1").await;
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 300);
    assert!(
        pair["refresh_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("prt_"))
    );
    let valid = verify(&app, &key, &pair["access_token"]).await;
    assert_eq!(valid["valid"], true, "{valid}");
    assert_eq!(valid["claims"]["sub"], "user-1");
    assert_eq!(valid["claims"]["tenant"], "acme");
    assert_eq!(valid["claims"]["roles"], json!(["editor"]));

    // A tampered token: one character of the payload changed.
    let token = pair["access_token"].as_str().unwrap_or_default();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let flipped = if parts[1].ends_with('A') { 'B' } else { 'A' };
    parts[1].pop();
    parts[1].push(flipped);
    let tampered = verify(&app, &key, &json!(parts.join("."))).await;
    assert_eq!(tampered["valid"], false);
    assert!(tampered.get("claims").is_none());
    let invalid = verify(&app, &key, &json!("not.a.token")).await;
    assert_eq!(invalid["valid"], false);

    // Refresh rotates; the old refresh token replayed kills the session.
    let next = refresh(&app, &key, &pair["refresh_token"]).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.body);
    assert_ne!(next.body["refresh_token"], pair["refresh_token"]);
    let replay = refresh(&app, &key, &pair["refresh_token"]).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(
        replay.body["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/refresh_reused")),
        "{}",
        replay.body
    );
    assert_eq!(
        verify(&app, &key, &next.body["access_token"]).await["reason"],
        "revoked"
    );
    let dead = refresh(&app, &key, &next.body["refresh_token"]).await;
    assert!(
        dead.body["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/session_revoked")),
        "{}",
        dead.body
    );

    // Revoke one access token of a fresh session.
    let other = login(&app, &key, "user-1").await;
    let revoked = revoke(&app, &key, json!({"token": other["access_token"]})).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_eq!(revoked.body["revoked"], "token");
    assert_eq!(
        verify(&app, &key, &other["access_token"]).await["reason"],
        "revoked"
    );

    // The audit trail: issue, refresh, reuse, failed verifies, revoke; never a token.
    let events = common::send(
        &app,
        common::request(
            "GET",
            "/v1/audit/events?tenant=acme&limit=100",
            &backend.admin,
            None,
        ),
    )
    .await;
    let trail = events.body.to_string();
    for action in [
        "auth.token.issue",
        "auth.token.refresh",
        "auth.token.reuse",
        "auth.token.verify",
        "auth.token.revoke",
    ] {
        assert!(trail.contains(action), "{action} missing from {trail}");
    }
    for secret in [&pair["access_token"], &pair["refresh_token"]] {
        assert!(
            !trail.contains(secret.as_str().unwrap_or("-")),
            "a token leaked into the audit log"
        );
    }
}

async fn revocation_by_subject_and_by_refresh_token(backend: Backend) {
    let app = api_router(backend.state.clone());
    let key = key(&backend, "acme", &["auth:issue", "auth:verify"]).await;
    let a = login(&app, &key, "user-2").await;
    let b = login(&app, &key, "user-2").await;
    let bystander = login(&app, &key, "user-3").await;

    let logout = revoke(&app, &key, json!({"refresh_token": a["refresh_token"]})).await;
    assert_eq!(logout.body["revoked"], "session", "{}", logout.body);
    assert_eq!(
        verify(&app, &key, &a["access_token"]).await["reason"],
        "revoked"
    );
    assert_eq!(verify(&app, &key, &b["access_token"]).await["valid"], true);

    let everywhere = revoke(&app, &key, json!({"subject": "user-2"})).await;
    assert_eq!(everywhere.body["revoked"], "subject", "{}", everywhere.body);
    assert_eq!(
        verify(&app, &key, &b["access_token"]).await["reason"],
        "revoked"
    );
    let refreshed = refresh(&app, &key, &b["refresh_token"]).await;
    assert_eq!(refreshed.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        verify(&app, &key, &bystander["access_token"]).await["valid"],
        true
    );

    // Exactly one of the fields.
    let both = revoke(&app, &key, json!({"subject": "x", "jti": "y"})).await;
    assert_eq!(both.status, StatusCode::UNPROCESSABLE_ENTITY);
    let none = post(&app, &key, "/v1/auth/tokens/revoke", json!({})).await;
    assert_eq!(none.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = revoke(&app, &key, json!({"refresh_token": "prt_nope"})).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
}

async fn tokens_stay_in_their_tenant_and_scopes_are_enforced(backend: Backend) {
    let app = api_router(backend.state.clone());
    let acme = key(&backend, "acme", &["auth:issue", "auth:verify"]).await;
    let globex = key(&backend, "globex", &["auth:issue", "auth:verify"]).await;
    let verifier_only = key(&backend, "acme", &["auth:verify"]).await;

    let pair = login(&app, &acme, "user-4").await;
    assert_eq!(
        verify(&app, &globex, &pair["access_token"]).await["reason"],
        "wrong_tenant"
    );
    let stolen = refresh(&app, &globex, &pair["refresh_token"]).await;
    assert_eq!(stolen.status, StatusCode::FORBIDDEN);
    // Still usable by its owner: the other tenant could not use it up.
    let own = refresh(&app, &acme, &pair["refresh_token"]).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);

    let refused = post(
        &app,
        &verifier_only,
        "/v1/auth/tokens",
        json!({"subject": "x", "audience": "default"}),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let rotate = common::send(
        &app,
        common::request("POST", "/v1/auth/signing-keys", &acme, None),
    )
    .await;
    assert_eq!(rotate.status, StatusCode::FORBIDDEN);

    // Bad requests name what is wrong.
    for (body, status) in [
        (
            json!({"subject": "", "audience": "default"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"subject": "x", "audience": "elsewhere"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"subject": "x", "audience": "default", "claims": {"sub": "admin"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"subject": "x", "audience": "default", "ttl_seconds": 86400}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"subject": "x", "audience": "default", "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let answer = post(&app, &acme, "/v1/auth/tokens", body.clone()).await;
        assert_eq!(answer.status, status, "{body} -> {}", answer.body);
    }
}

#[tokio::test]
async fn signing_keys_rotate_and_the_jwks_is_public_and_cacheable() {
    let backend = common::sqlite(palisade_http::HttpSettings::default()).await;
    let app = api_router(backend.state.clone());
    let jwks = common::send(
        &app,
        axum::http::Request::get("/.well-known/jwks.json")
            .body(axum::body::Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(jwks.status, StatusCode::OK);
    assert_eq!(
        jwks.headers[axum::http::header::CONTENT_TYPE],
        "application/jwk-set+json"
    );
    assert_eq!(
        jwks.headers[axum::http::header::CACHE_CONTROL],
        "public, max-age=3600"
    );
    assert_eq!(jwks.body["keys"].as_array().map(Vec::len), Some(1));
    assert!(
        jwks.body["keys"][0].get("d").is_none(),
        "no private material"
    );

    let rotated = common::send(
        &app,
        common::request("POST", "/v1/auth/signing-keys", &backend.admin, None),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    assert_eq!(rotated.body["state"], "pending");
    let listed = common::send(
        &app,
        common::request("GET", "/v1/auth/signing-keys", &backend.admin, None),
    )
    .await;
    let states: Vec<&str> = listed
        .body
        .as_array()
        .map(|keys| keys.iter().filter_map(|k| k["state"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(states, ["active", "pending"]);
    assert!(!listed.body.to_string().contains("material"));
    let jwks = common::send(
        &app,
        axum::http::Request::get("/.well-known/jwks.json")
            .body(axum::body::Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(
        jwks.body["keys"].as_array().map(Vec::len),
        Some(2),
        "published before it signs"
    );
}
