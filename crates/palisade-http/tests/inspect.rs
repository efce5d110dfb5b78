//! `POST /v1/inspect` driven as a client would, and the inspection layer
//! in front of a plain axum service.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use palisade_guard::inspect::Inspector;
use palisade_http::api_router;
use palisade_http::layers::inspect::InspectLayer;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn post(app: &axum::Router, key: &str, body: Value) -> common::Answer {
    common::send(app, common::request("POST", "/v1/inspect", key, Some(body))).await
}

#[tokio::test]
async fn blocks_attacks_allows_ordinary_requests_and_names_the_location() {
    let backend = common::sqlite(palisade_http::HttpSettings::default()).await;
    let app = api_router(backend.state.clone());
    let key = &backend.admin;

    let typical: Value = serde_json::from_str(include_str!(
        "../../palisade-guard/benches/typical_request.json"
    ))
    .expect("fixture");
    let answer = post(&app, key, typical).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({"verdict": "allow", "score": 0, "findings": []})
    );

    let answer = post(
        &app,
        key,
        json!({
            "method": "GET",
            "path": "/products",
            "query": "id=1%20UNION%20SELECT%20password%20FROM%20users&sort=asc",
            "headers": {"user-agent": "curl/8"},
        }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["verdict"], "block");
    assert!(answer.body["score"].as_u64().is_some_and(|s| s >= 5));
    let finding = &answer.body["findings"][0];
    assert_eq!(finding["category"], "sqli");
    assert_eq!(finding["location"], "query.id");
    assert!(
        finding["rule"]
            .as_str()
            .is_some_and(|r| r.starts_with("sqli."))
    );
    assert!(
        finding["evidence"]
            .as_str()
            .is_some_and(|e| e.to_lowercase().contains("union")),
        "{finding}"
    );

    let answer = post(
        &app,
        key,
        json!({
            "method": "POST",
            "path": "/comments",
            "headers": {"content-type": "application/json"},
            "body": "{\"post\":7,\"text\":\"nice <img src=x onerror=alert(1)>\"}",
        }),
    )
    .await;
    assert_eq!(answer.body["verdict"], "block");
    assert_eq!(answer.body["findings"][0]["location"], "body.text");
    assert_eq!(answer.body["findings"][0]["category"], "xss");

    // Sensitivity can be raised per call.
    let answer = post(
        &app,
        key,
        json!({"method": "GET", "path": "/", "query": "q=1--", "sensitivity": 3}),
    )
    .await;
    assert_ne!(answer.body["verdict"], "allow", "{}", answer.body);
}

#[tokio::test]
async fn never_echoes_credentials_cookies_or_secret_fields() {
    let backend = common::sqlite(palisade_http::HttpSettings::default()).await;
    let app = api_router(backend.state.clone());
    let secret_token = "Bearer x' OR '1'='1' -- SECRETTOKEN";
    let secret_cookie = "sid=' UNION SELECT 1,2 -- SECRETCOOKIE";
    let secret_field = "' OR 1=1 -- SECRETPASSWORD";
    let answer = post(
        &app,
        &backend.admin,
        json!({
            "method": "POST",
            "path": "/login",
            "headers": {"authorization": secret_token, "cookie": secret_cookie},
            "content_type": "application/json",
            "body": json!({"user": "bob", "password": secret_field}).to_string(),
        }),
    )
    .await;
    assert_eq!(answer.body["verdict"], "block", "{}", answer.body);
    let text = answer.body.to_string();
    for secret in [
        "SECRETTOKEN",
        "SECRETCOOKIE",
        "SECRETPASSWORD",
        "UNION SELECT",
    ] {
        assert!(!text.contains(secret), "{secret} echoed: {text}");
    }
    let locations: Vec<_> = answer.body["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["location"].as_str().unwrap_or(""),
                f["evidence"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for location in ["header.authorization", "cookie.sid", "body.password"] {
        assert!(
            locations.contains(&(location, "[redacted]")),
            "{location} not reported redacted: {locations:?}"
        );
    }
}

#[tokio::test]
async fn malformed_requests_get_problems() {
    let settings = palisade_http::HttpSettings {
        max_body_bytes: 64 * 1024,
        ..palisade_http::HttpSettings::default()
    };
    let backend = common::sqlite(settings).await;
    let app = api_router(backend.state.clone());
    let key = &backend.admin;

    // 400: not JSON.
    let req = Request::builder()
        .method("POST")
        .uri("/v1/inspect")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from("{\"method\": \"GET\", "))
        .expect("request");
    let answer = common::send(&app, req).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.headers["content-type"], "application/problem+json");

    // 413: over the server's body limit.
    let big = json!({"method": "POST", "path": "/", "body": "a".repeat(100 * 1024)});
    let answer = post(&app, key, big).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.body
    );

    // 422: well-formed but invalid, naming the field.
    for (body, field) in [
        (json!({"method": "GET"}), "path"),
        (json!({"method": "GE T", "path": "/"}), "method"),
        (json!({"method": "GET", "path": "relative"}), "path"),
        (
            json!({"method": "GET", "path": "/", "sensitivity": 7}),
            "sensitivity",
        ),
        (
            json!({"method": "GET", "path": "/", "headers": {"bad name": "x"}}),
            "headers",
        ),
        (
            json!({"method": "GET", "path": "/", "headers": {"x": 1}}),
            "headers",
        ),
        (
            json!({"method": "GET", "path": "/", "extra": true}),
            "extra",
        ),
    ] {
        let answer = post(&app, key, body.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            answer.body
        );
        let named = answer.body.to_string().contains(field);
        assert!(named, "{body}: {} does not name {field}", answer.body);
    }

    // 401 without a key.
    let req = Request::builder()
        .method("POST")
        .uri("/v1/inspect")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"method": "GET", "path": "/"}).to_string(),
        ))
        .expect("request");
    assert_eq!(
        common::send(&app, req).await.status,
        StatusCode::UNAUTHORIZED
    );

    // The route is in the OpenAPI document.
    let doc = palisade_http::openapi_document(&backend.state);
    assert!(doc.paths.paths.contains_key("/v1/inspect"));
}

async fn echo(body: axum::body::Bytes) -> String {
    format!("got {} bytes", body.len())
}

#[tokio::test]
async fn the_layer_blocks_with_403_passes_the_body_on_and_bounds_its_read() {
    let app = axum::Router::new()
        .route("/submit", axum::routing::post(echo))
        .layer(InspectLayer::new(Inspector::default()).max_body_bytes(1024));
    let send = |uri: &str, body: &'static str| {
        Request::builder()
            .method("POST")
            .uri(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("request")
    };

    let ok = app
        .clone()
        .oneshot(send("/submit?page=2", "name=Marie&city=Paris"))
        .await;
    let ok = ok.expect("infallible");
    assert_eq!(ok.status(), StatusCode::OK);
    let bytes = http_body_util::BodyExt::collect(ok.into_body())
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(
        &bytes[..],
        b"got 21 bytes",
        "the service gets the whole body"
    );

    let blocked = app
        .clone()
        .oneshot(send("/submit", "name=x%27%20OR%20%271%27%3D%271"))
        .await
        .expect("infallible");
    assert_eq!(blocked.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        blocked.headers()["content-type"],
        "application/problem+json"
    );
    let bytes = http_body_util::BodyExt::collect(blocked.into_body())
        .await
        .expect("body")
        .to_bytes();
    let problem: Value = serde_json::from_slice(&bytes).expect("problem");
    assert_eq!(problem["errors"][0]["field"], "body.name");
    assert!(
        !String::from_utf8_lossy(&bytes).contains("OR '1'"),
        "no evidence echoed"
    );

    let blocked = app
        .clone()
        .oneshot(send("/submit?file=..%2f..%2fetc%2fpasswd", ""))
        .await
        .expect("infallible");
    assert_eq!(blocked.status(), StatusCode::FORBIDDEN);

    let big = "a".repeat(4096);
    let req = Request::builder()
        .method("POST")
        .uri("/submit")
        .body(Body::from(big))
        .expect("request");
    let too_large = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
