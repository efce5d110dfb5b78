//! Request protection driven as a client would: the `/v1/csrf` endpoints, the
//! CSRF layer in front of a Rust service, security headers on Palisade's own
//! responses, CORS preflights, and client addresses behind proxies.

mod common;

use common::send;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::routing::{get, post};
use axum::{Extension, Router};
use http_body_util::BodyExt;
use palisade_guard::csrf::CsrfTokens;
use palisade_http::client_ip::ClientIp;
use palisade_http::layers::cors::CorsSettings;
use palisade_http::layers::csrf::{CsrfLayer, CsrfSettings};
use palisade_http::layers::security_headers::SecurityHeaders;
use palisade_http::{HttpSettings, RequestProtection, api_router};
use serde_json::{Value, json};
use std::net::SocketAddr;
use tower::ServiceExt;

fn protection(cors: CorsSettings, proxies: &[&str]) -> RequestProtection {
    let proxies: Vec<String> = proxies.iter().map(|p| p.to_string()).collect();
    RequestProtection::new(
        CsrfTokens::generate().expect("key"),
        &CsrfSettings::default(),
        &SecurityHeaders::default(),
        &cors,
        &proxies,
    )
    .expect("protection")
}

/// Palisade on SQLite with `protection`, its admin key, and what keeps it alive.
async fn palisade(protection: RequestProtection) -> (Router, String, common::Backend) {
    let mut backend = common::sqlite(HttpSettings::default()).await;
    backend.state = backend.state.with_protection(protection);
    let app = api_router(backend.state.clone());
    let admin = backend.admin.clone();
    (app, admin, backend)
}

fn post_json(path: &str, key: &str, body: Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Body::from(body.to_string()))
        .expect("request")
}

async fn verdict(app: &Router, key: &str, facts: Value) -> (bool, String) {
    let answer = send(app, post_json("/v1/csrf/verify", key, facts)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    (
        answer.body["allowed"].as_bool().expect("allowed"),
        answer.body["reason"].as_str().expect("reason").to_owned(),
    )
}

#[tokio::test]
async fn verify_rejects_a_cross_site_post_and_accepts_same_origin() {
    let (app, admin, _b) = palisade(protection(CorsSettings::default(), &[])).await;
    let cross = json!({"method": "POST", "sec_fetch_site": "cross-site",
        "origin": "https://evil.example", "host": "https://app.example"});
    assert_eq!(
        verdict(&app, &admin, cross).await,
        (false, "cross_site".into())
    );
    let same =
        json!({"method": "POST", "sec_fetch_site": "same-origin", "host": "https://app.example"});
    assert_eq!(
        verdict(&app, &admin, same).await,
        (true, "same_origin".into())
    );
    let by_origin =
        json!({"method": "POST", "origin": "https://app.example", "host": "https://app.example"});
    assert_eq!(
        verdict(&app, &admin, by_origin).await,
        (true, "same_origin".into())
    );
}

#[tokio::test]
async fn a_token_replayed_in_another_session_is_rejected() {
    let (app, admin, _b) = palisade(protection(CorsSettings::default(), &[])).await;
    let issued = send(
        &app,
        post_json("/v1/csrf/tokens", &admin, json!({"session": "alice"})),
    )
    .await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.body);
    let token = issued.body["token"].as_str().expect("token").to_owned();
    let cookie = issued.body["cookie"].as_str().expect("cookie");
    assert!(
        cookie.starts_with(&format!(
            "__Host-csrf={token}; Path=/; Secure; SameSite=Strict"
        )),
        "{cookie}"
    );
    let facts = |session: &str| json!({"method": "POST", "session": session, "token_header": token, "token_cookie": token});
    assert_eq!(
        verdict(&app, &admin, facts("alice")).await,
        (true, "valid_token".into())
    );
    assert_eq!(
        verdict(&app, &admin, facts("mallory")).await,
        (false, "invalid_token".into())
    );
}

#[tokio::test]
async fn missing_headers_are_handled_as_documented() {
    let (app, admin, _b) = palisade(protection(CorsSettings::default(), &[])).await;
    // Nothing shows where a state-changing request came from: refused.
    let bare = json!({"method": "POST", "host": "https://app.example"});
    assert_eq!(
        verdict(&app, &admin, bare).await,
        (false, "missing_headers".into())
    );
    // Safe methods need nothing.
    assert_eq!(
        verdict(&app, &admin, json!({"method": "get"})).await,
        (true, "safe_method".into())
    );
    // Without Fetch Metadata and Origin, the Referer decides.
    let referer = json!({"method": "POST", "referer": "https://app.example/form", "host": "https://app.example"});
    assert_eq!(
        verdict(&app, &admin, referer).await,
        (true, "same_origin".into())
    );
    let null = json!({"method": "POST", "origin": "null"});
    assert_eq!(
        verdict(&app, &admin, null).await,
        (false, "origin_null".into())
    );
    let bearer = json!({"method": "DELETE", "bearer": true});
    assert_eq!(
        verdict(&app, &admin, bearer).await,
        (true, "bearer_exempt".into())
    );
}

#[tokio::test]
async fn csrf_endpoints_check_scope_and_input() {
    let (app, admin, _b) = palisade(protection(CorsSettings::default(), &[])).await;
    let created = send(
        &app,
        post_json(
            "/v1/api-keys",
            &admin,
            json!({"name": "reader", "scopes": ["audit:read"]}),
        ),
    )
    .await;
    let reader = created.body["secret"].as_str().expect("secret").to_owned();
    let refused = send(
        &app,
        post_json("/v1/csrf/tokens", &reader, json!({"session": "s"})),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    for bad in [
        json!({"method": "PO ST"}),
        json!({"method": "POST", "host": "app.example"}),
        json!({"method": "POST", "unexpected": 1}),
    ] {
        let answer = send(&app, post_json("/v1/csrf/verify", &admin, bad.clone())).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            answer.body
        );
    }
    let empty = send(
        &app,
        post_json("/v1/csrf/tokens", &admin, json!({"session": ""})),
    )
    .await;
    assert_eq!(
        empty.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        empty.body
    );
}

#[tokio::test]
async fn the_csrf_layer_guards_a_rust_service() {
    let protection = protection(CorsSettings::default(), &[]);
    let layer = CsrfLayer::new(
        protection.csrf.clone(),
        &protection.csrf_settings,
        palisade_core::SystemClock::shared(),
    )
    .expect("layer");
    let app = Router::new()
        .route("/transfer", post(|| async { "done" }))
        .layer(layer);
    let request = |headers: &[(&str, &str)]| {
        let mut b = Request::post("/transfer").header(header::HOST, "bank.example");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(Body::empty()).expect("request")
    };
    let cross = send(
        &app,
        request(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ]),
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert_eq!(
        cross.headers[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert!(
        cross.body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("cross_site")),
        "{}",
        cross.body
    );
    let same = send(&app, request(&[("origin", "https://bank.example")])).await;
    assert_eq!(same.status, StatusCode::OK);
    let none = send(&app, request(&[])).await;
    assert_eq!(none.status, StatusCode::FORBIDDEN);
    assert!(
        none.body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("missing_headers"))
    );
}

fn assert_security_headers(headers: &HeaderMap, what: &str) {
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
        (
            "strict-transport-security",
            "max-age=63072000; includeSubDomains",
        ),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        ("x-permitted-cross-domain-policies", "none"),
    ] {
        assert_eq!(
            headers.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{what}: {name}"
        );
    }
    assert!(headers.contains_key("permissions-policy"), "{what}");
}

#[tokio::test]
async fn palisade_responses_carry_security_headers() {
    let (app, admin, _b) = palisade(protection(CorsSettings::default(), &[])).await;
    let live = send(
        &app,
        Request::get("/health/live")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(live.status, StatusCode::OK);
    assert_security_headers(&live.headers, "health");
    let missing = send(
        &app,
        Request::get("/no/such/route")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_security_headers(&missing.headers, "404");
    let unauthorized = send(
        &app,
        Request::get("/v1/whoami").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);
    assert_security_headers(&unauthorized.headers, "401 problem");
    let invalid = send(
        &app,
        post_json("/v1/csrf/verify", &admin, json!({"method": 1})),
    )
    .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_security_headers(&invalid.headers, "422 problem");
}

#[tokio::test]
async fn the_docs_get_a_policy_that_allows_their_own_scripts() {
    let (app, _admin, _b) = palisade(protection(CorsSettings::default(), &[])).await;
    let docs = send(
        &app,
        Request::get("/docs/").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(docs.status, StatusCode::OK);
    let csp = docs.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ascii");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(docs.headers["x-frame-options"], "DENY");
}

fn preflight(origin: &str) -> Request<Body> {
    Request::options("/v1/whoami")
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
        .body(Body::empty())
        .expect("request")
}

#[tokio::test]
async fn cors_preflight_answers_listed_origins_only() {
    let cors = CorsSettings {
        allowed_origins: vec!["https://app.example".into()],
        allow_credentials: true,
        ..CorsSettings::default()
    };
    let (app, _admin, _b) = palisade(protection(cors, &[])).await;
    let allowed = send(&app, preflight("https://app.example")).await;
    assert!(allowed.status.is_success(), "{}", allowed.status);
    assert_eq!(
        allowed.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
    assert_eq!(
        allowed.headers[header::ACCESS_CONTROL_ALLOW_CREDENTIALS],
        "true"
    );
    assert!(allowed.headers.contains_key(header::X_CONTENT_TYPE_OPTIONS));
    let refused = send(&app, preflight("https://evil.example")).await;
    // Without Access-Control-Allow-Origin the browser refuses; tower-http
    // still sends Allow-Credentials, which alone grants nothing.
    assert!(
        !refused
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[tokio::test]
async fn without_cors_origins_no_cors_headers_are_sent() {
    let (app, _admin, _b) = palisade(protection(CorsSettings::default(), &[])).await;
    let answer = send(&app, preflight("https://app.example")).await;
    assert!(
        !answer
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[test]
fn cors_refuses_a_wildcard_with_credentials() {
    let cors = CorsSettings {
        allowed_origins: vec!["*".into()],
        allow_credentials: true,
        ..CorsSettings::default()
    };
    let err = RequestProtection::new(
        CsrfTokens::generate().expect("key"),
        &CsrfSettings::default(),
        &SecurityHeaders::default(),
        &cors,
        &[],
    )
    .expect_err("wildcard with credentials");
    assert_eq!(err.key(), "cors.allowed_origins");
}

#[tokio::test]
async fn forged_x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let protection = protection(CorsSettings::default(), &["10.0.0.0/8"]);
    let app = Router::new()
        .route(
            "/ip",
            get(|ClientIp(ip): ClientIp| async move { ip.to_string() }),
        )
        .layer(Extension(protection.trusted_proxies.clone()));
    let ask = |peer: &str, forwarded_for: &str| {
        let mut req = Request::get("/ip")
            .header("x-forwarded-for", forwarded_for)
            .body(Body::empty())
            .expect("request");
        let peer: SocketAddr = peer.parse().expect("peer");
        req.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move {
            let response = app.oneshot(req).await.expect("infallible");
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            String::from_utf8(bytes.to_vec()).expect("utf-8")
        }
    };
    // A client talking to us directly cannot claim another address.
    assert_eq!(ask("203.0.113.5:5000", "1.2.3.4").await, "203.0.113.5");
    // Through our proxy, the right-most untrusted hop is the client; what the
    // client prepended itself is ignored.
    assert_eq!(
        ask("10.0.0.2:5000", "6.6.6.6, 198.51.100.7").await,
        "198.51.100.7"
    );
}
