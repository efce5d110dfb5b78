//! `/v1/ratelimit` and the rate-limit layer driven as a client would, on both
//! backends: checks by rule and inline limit, the rules API, bad input, 429s
//! with `Retry-After` and the IETF headers, and client IPs that cannot be spoofed.

#[macro_use]
mod common;

use common::{Answer, request, send};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use palisade_http::api_router;
use serde_json::{Value, json};
use std::net::SocketAddr;

/// A request arriving from `peer`, as the server would see it.
fn from_peer(mut req: Request<Body>, peer: &str) -> Request<Body> {
    let peer: SocketAddr = peer.parse().expect("socket address");
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

async fn put_rule(app: &Router, admin: &str, name: &str, rule: Value) -> Answer {
    send(
        app,
        request(
            "PUT",
            &format!("/v1/ratelimit/rules/{name}"),
            admin,
            Some(rule),
        ),
    )
    .await
}

async fn check(app: &Router, admin: &str, body: Value) -> Answer {
    send(
        app,
        request("POST", "/v1/ratelimit/check", admin, Some(body)),
    )
    .await
}

on_both_backends!(
    checks_a_rule_until_denied_and_always_answers_200,
    rules_api_creates_lists_replaces_and_deletes_stored_rules,
    layer_answers_429_with_retry_after_and_ratelimit_headers,
);

async fn checks_a_rule_until_denied_and_always_answers_200(backend: common::Backend) {
    let app = api_router(backend.state.clone());
    let admin = &backend.admin;
    let created = put_rule(
        &app,
        admin,
        "login",
        json!({"limit": 2, "period_ms": 60000, "key": "custom"}),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);

    for remaining in [1, 0] {
        let answer = check(&app, admin, json!({"key": "alice", "rule": "login"})).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body["allowed"], true);
        assert_eq!(answer.body["remaining"], remaining);
        assert_eq!(answer.body["limit"], 2);
        assert_eq!(answer.body["policy"], "login");
        assert_eq!(answer.body["degraded"], false);
    }
    let denied = check(&app, admin, json!({"key": "alice", "rule": "login"})).await;
    assert_eq!(
        denied.status,
        StatusCode::OK,
        "the check itself never answers 429"
    );
    assert_eq!(denied.body["allowed"], false);
    let retry = denied.body["retry_after_ms"]
        .as_u64()
        .expect("retry_after_ms");
    assert!(retry > 29_000 && retry <= 30_000, "{retry}");
    // Another key has its own budget.
    let bob = check(&app, admin, json!({"key": "bob", "rule": "login"})).await;
    assert_eq!(bob.body["allowed"], true);
    // Inline limits need no rule.
    let inline = check(
        &app,
        admin,
        json!({"key": "alice", "limit": {"algorithm": "fixed_window", "limit": 5, "period_ms": 1000}, "cost": 5}),
    )
    .await;
    assert_eq!(inline.body["allowed"], true, "{}", inline.body);
    assert_eq!(inline.body["policy"], "inline");
    assert_eq!(inline.body["remaining"], 0);
}

async fn rules_api_creates_lists_replaces_and_deletes_stored_rules(backend: common::Backend) {
    let app = api_router(backend.state.clone());
    let admin = &backend.admin;
    let rule = json!({"algorithm": "sliding_window", "limit": 100, "period_ms": 60000, "key": "tenant",
                      "tiers": {"pro": {"limit": 1000, "period_ms": 60000}}, "routes": ["/v1/audit/"]});
    assert_eq!(
        put_rule(&app, admin, "tenant-quota", rule).await.status,
        StatusCode::OK
    );
    let listed = send(&app, request("GET", "/v1/ratelimit/rules", admin, None)).await;
    assert_eq!(listed.status, StatusCode::OK);
    let rules = listed.body["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["name"], "tenant-quota");
    assert_eq!(rules[0]["origin"], "api");
    assert_eq!(rules[0]["tiers"]["pro"]["limit"], 1000);

    // Stored, so it survives a restart and reaches other instances.
    let stored = backend
        .state
        .ratelimit_rules
        .list()
        .await
        .expect("list stored rules");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].limit, 100);

    let replaced = put_rule(
        &app,
        admin,
        "tenant-quota",
        json!({"limit": 5, "period_ms": 1000}),
    )
    .await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(replaced.body["limit"], 5);
    let one = send(
        &app,
        request("GET", "/v1/ratelimit/rules/tenant-quota", admin, None),
    )
    .await;
    assert_eq!(one.body["algorithm"], "gcra");

    let deleted = send(
        &app,
        request("DELETE", "/v1/ratelimit/rules/tenant-quota", admin, None),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let again = send(
        &app,
        request("DELETE", "/v1/ratelimit/rules/tenant-quota", admin, None),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(
        backend
            .state
            .ratelimit_rules
            .list()
            .await
            .expect("list")
            .is_empty()
    );

    // Every change is in the audit log.
    let events = send(
        &app,
        request(
            "GET",
            "/v1/audit/events?action=palisade.ratelimit",
            admin,
            None,
        ),
    )
    .await;
    let actions: Vec<&str> = events.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"]["action"].as_str())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "palisade.ratelimit.rule.put")
            .count(),
        2,
        "{actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "palisade.ratelimit.rule.delete")
            .count(),
        1,
        "{actions:?}"
    );
}

async fn layer_answers_429_with_retry_after_and_ratelimit_headers(backend: common::Backend) {
    let app = api_router(backend.state.clone());
    let admin = &backend.admin;
    let rule = json!({"limit": 2, "period_ms": 60000, "key": "api_key", "routes": ["/v1/whoami"]});
    assert_eq!(
        put_rule(&app, admin, "whoami", rule).await.status,
        StatusCode::OK
    );

    for remaining in [1, 0] {
        let ok = send(&app, request("GET", "/v1/whoami", admin, None)).await;
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(ok.headers["ratelimit-policy"], "\"whoami\";q=2;w=60");
        assert_eq!(
            ok.headers["ratelimit"].to_str().unwrap().split(';').nth(1),
            Some(format!("r={remaining}").as_str())
        );
    }
    let limited = send(&app, request("GET", "/v1/whoami", admin, None)).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers[header::RETRY_AFTER], "30");
    assert_eq!(
        limited.headers[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(limited.body["status"], 429);
    assert!(limited.headers.contains_key("ratelimit"));
    // Routes the rule does not name are not limited by it.
    let other = send(&app, request("GET", "/v1/ratelimit/rules", admin, None)).await;
    assert_eq!(other.status, StatusCode::OK);
    assert!(!other.headers.contains_key("ratelimit"));
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_naming_the_field() {
    let backend = common::sqlite(palisade_http::HttpSettings::default()).await;
    let app = api_router(backend.state.clone());
    let admin = &backend.admin;
    put_rule(
        &app,
        admin,
        "api",
        json!({"limit": 10, "period_ms": 1000, "key": "custom"}),
    )
    .await;
    let cases = [
        (
            json!({"key": "k", "rule": "api", "cost": -1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cost",
        ),
        (
            json!({"key": "k", "rule": "api", "cost": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cost",
        ),
        (
            json!({"key": "k", "rule": "api", "cost": 11}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cost",
        ),
        (
            json!({"key": "k", "rule": "api", "cost": u64::MAX}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cost",
        ),
        (
            json!({"key": "", "rule": "api"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "key",
        ),
        (
            json!({"key": "x".repeat(10_240), "rule": "api"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "key",
        ),
        (
            json!({"key": "k"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rule",
        ),
        (
            json!({"key": "k", "rule": "api", "limit": {"limit": 1, "period_ms": 1}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rule",
        ),
        (
            json!({"key": "k", "rule": "api", "colour": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
        ),
        (
            json!({"key": "k", "limit": {"limit": 1, "period_ms": 0}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "period_ms",
        ),
        (
            json!({"key": "k", "limit": {"limit": 0, "period_ms": 10}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit",
        ),
        (
            json!({"key": "k", "limit": {"limit": 5, "period_ms": 10, "algorithm": "leaky"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit.algorithm",
        ),
    ];
    for (body, status, field) in cases {
        let answer = check(&app, admin, body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        let named = answer.body["errors"].as_array().is_some_and(|errors| {
            errors
                .iter()
                .any(|e| e["field"].as_str().is_some_and(|f| f.contains(field)))
        });
        assert!(
            named,
            "{body}: the problem should name {field}: {}",
            answer.body
        );
    }
    let unknown = check(&app, admin, json!({"key": "k", "rule": "nope"})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let bad_rules = [
        (
            "Bad Name",
            json!({"limit": 1, "period_ms": 1000}),
            StatusCode::NOT_FOUND,
        ),
        (
            "ok",
            json!({"limit": 1, "period_ms": 1000, "routes": ["no-slash"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "ok",
            json!({"limit": 1, "period_ms": 1000, "name": "other"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("ok", json!({"limit": 1}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "ok",
            json!({"limit": 1, "period_ms": 1000, "key": "cookie"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (name, rule, status) in bad_rules {
        let uri_name = name.replace(' ', "%20");
        let answer = put_rule(&app, admin, &uri_name, rule.clone()).await;
        let expected = if name == "Bad Name" {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            status
        };
        assert_eq!(answer.status, expected, "{name} {rule}: {}", answer.body);
    }
    // Nothing bad was stored.
    let stored = backend.state.ratelimit_rules.list().await.expect("list");
    assert_eq!(stored.len(), 1, "only the good rule");
}

#[tokio::test]
async fn checks_need_the_guard_scope_and_tenants_never_share_counts() {
    let backend = common::sqlite(palisade_http::HttpSettings::default()).await;
    let app = api_router(backend.state.clone());
    let admin = &backend.admin;
    put_rule(
        &app,
        admin,
        "api",
        json!({"limit": 1, "period_ms": 60000, "key": "custom"}),
    )
    .await;
    let mut keys = Vec::new();
    for (tenant, scopes) in [
        ("acme", vec!["guard:check"]),
        ("globex", vec!["guard:check"]),
        ("acme", vec!["audit:read"]),
    ] {
        let created = send(
            &app,
            request(
                "POST",
                "/v1/api-keys",
                admin,
                Some(json!({"name": "svc", "tenant": tenant, "scopes": scopes})),
            ),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        keys.push(created.body["secret"].as_str().expect("secret").to_owned());
    }
    let body = json!({"key": "1.2.3.4", "rule": "api"});
    assert_eq!(
        check(&app, &keys[0], body.clone()).await.body["allowed"],
        true
    );
    assert_eq!(
        check(&app, &keys[0], body.clone()).await.body["allowed"],
        false
    );
    assert_eq!(
        check(&app, &keys[1], body.clone()).await.body["allowed"],
        true,
        "another tenant's use of the same key is its own"
    );
    assert_eq!(
        check(&app, &keys[2], body.clone()).await.status,
        StatusCode::FORBIDDEN
    );
    let put = put_rule(
        &app,
        &keys[0],
        "mine",
        json!({"limit": 1, "period_ms": 1000}),
    )
    .await;
    assert_eq!(
        put.status,
        StatusCode::FORBIDDEN,
        "managing rules needs guard:admin"
    );
}

#[tokio::test]
async fn a_forged_x_forwarded_for_from_an_untrusted_peer_does_not_escape_an_ip_limit() {
    let backend = common::sqlite(palisade_http::HttpSettings::default()).await;
    let app = api_router(backend.state.clone());
    let admin = &backend.admin;
    put_rule(
        &app,
        admin,
        "per-ip",
        json!({"limit": 1, "period_ms": 60000, "key": "ip", "routes": ["/v1/whoami"]}),
    )
    .await;
    let mut first = request("GET", "/v1/whoami", admin, None);
    first
        .headers_mut()
        .insert("x-forwarded-for", "198.51.100.1".parse().unwrap());
    let first = send(&app, from_peer(first, "203.0.113.9:5000")).await;
    assert_eq!(first.status, StatusCode::OK);
    let mut forged = request("GET", "/v1/whoami", admin, None);
    forged
        .headers_mut()
        .insert("x-forwarded-for", "198.51.100.2".parse().unwrap());
    forged
        .headers_mut()
        .insert("forwarded", "for=198.51.100.3".parse().unwrap());
    let forged = send(&app, from_peer(forged, "203.0.113.9:5001")).await;
    assert_eq!(
        forged.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the peer is not a trusted proxy, so its forwarding headers are ignored"
    );
    let other_peer = send(
        &app,
        from_peer(
            request("GET", "/v1/whoami", admin, None),
            "203.0.113.10:5000",
        ),
    )
    .await;
    assert_eq!(other_peer.status, StatusCode::OK);
}
