//! Brute-force protection of `POST /v1/auth/passwords/verify`, driven as a
//! client would: 429 `account_locked` with `Retry-After` before any hashing,
//! counts per account and per client address, reset on success, audit events
//! and security events that never hold the password or the hash.

mod common;

use axum::http::StatusCode;
use palisade_auth::lockout::{Lockout, LockoutKeys, LockoutPolicy, Thresholds};
use palisade_core::{SecurityEventKind, SystemClock};
use palisade_http::{HttpSettings, api_router};
use serde_json::{Value, json};
use std::time::Duration;

const PASSWORD: &str = "correct horse battery";

/// Accounts: 1 free failure, locked at the 3rd. Addresses: 3 free, locked at
/// the 6th. Delays of 1 ms in between, so tests need not wait for them.
fn policy() -> LockoutPolicy {
    LockoutPolicy {
        account: Thresholds {
            free_failures: 1,
            lockout_after: 3,
        },
        client: Thresholds {
            free_failures: 3,
            lockout_after: 6,
        },
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(1),
        lockout_duration: Duration::from_secs(60),
        window: Duration::from_secs(600),
    }
}

struct Fixture {
    backend: common::Backend,
    app: axum::Router,
    hash: String,
}

async fn fixture(policy: LockoutPolicy) -> Fixture {
    let lockout = Lockout::new(
        policy,
        LockoutKeys::random().expect("keys"),
        SystemClock::shared(),
        palisade_core::SecurityEvents::default(),
    )
    .expect("valid policy");
    let backend = common::sqlite(HttpSettings::default())
        .await
        .map_state(|state| state.with_lockout(lockout));
    let app = api_router(backend.state.clone());
    let hashed = post(
        &app,
        &backend.admin,
        "/v1/auth/passwords/hash",
        json!({"password": PASSWORD}),
    )
    .await;
    let hash = hashed.1["hash"].as_str().expect("hash").to_owned();
    Fixture { backend, app, hash }
}

async fn post(app: &axum::Router, key: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    let answer = common::send(app, common::request("POST", uri, key, Some(body))).await;
    (answer.status, answer.body)
}

impl Fixture {
    /// Verifies `password` for `account` from `ip`; the whole answer.
    async fn verify(&self, password: &str, account: &str, ip: &str) -> common::Answer {
        let body =
            json!({"password": password, "hash": self.hash, "account": account, "client_ip": ip});
        common::send(
            &self.app,
            common::request(
                "POST",
                "/v1/auth/passwords/verify",
                &self.backend.admin,
                Some(body),
            ),
        )
        .await
    }

    async fn audit(&self, query: &str) -> Vec<Value> {
        let answer = common::send(
            &self.app,
            common::request(
                "GET",
                &format!("/v1/audit/events?{query}"),
                &self.backend.admin,
                None,
            ),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn assert_locked(answer: &common::Answer, retry_after: u64) {
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.body
    );
    assert_eq!(
        answer.body["type"],
        "https://palisade.dev/problems/account_locked"
    );
    assert_eq!(answer.body["retry_after"], retry_after);
    assert_eq!(
        answer
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some(retry_after.to_string().as_str())
    );
    assert!(
        answer.body.get("valid").is_none(),
        "a 429 carries no verdict"
    );
}

#[tokio::test]
async fn an_account_is_locked_after_repeated_failures_and_every_step_is_audited() {
    let f = fixture(policy()).await;
    let mut events = f.backend.state.security_events.subscribe();
    for n in 0..3 {
        let answer = f.verify("wrong password", "Alice", "198.51.100.1").await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "failure {n}: {}",
            answer.body
        );
        assert_eq!(answer.body, json!({"valid": false}));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Locked: even the right password, from another address, is refused.
    let locked = f.verify(PASSWORD, "alice", "198.51.100.2").await;
    assert_locked(&locked, 60);
    // Before any hashing: a hash that cannot even be parsed gets the 429, not a 422.
    let body = json!({"password": PASSWORD, "hash": "$argon2id$garbage", "account": "alice"});
    let unhashed = common::send(
        &f.app,
        common::request(
            "POST",
            "/v1/auth/passwords/verify",
            &f.backend.admin,
            Some(body),
        ),
    )
    .await;
    assert_locked(&unhashed, 60);

    let lockouts = f.audit("action=auth.lockout").await;
    assert_eq!(lockouts.len(), 1, "{lockouts:?}");
    let lockout = &lockouts[0]["event"];
    assert_eq!(lockout["outcome"], "denied");
    assert_eq!(lockout["actor"]["id"], "alice");
    assert_eq!(
        lockout["resource"],
        json!({"type": "account", "id": "alice"})
    );
    assert_eq!(lockout["metadata"]["scope"], "account");
    assert_eq!(lockout["metadata"]["failures"], 3);
    assert_eq!(lockout["metadata"]["locked_for_ms"], 60_000);
    let failures = f.audit("action=auth.password.verify").await;
    assert_eq!(failures.len(), 3, "{failures:?}");
    for event in &failures {
        assert_eq!(event["event"]["outcome"], "failure");
        assert_eq!(event["event"]["actor"]["ip"], "198.51.100.1");
    }
    let everything = serde_json::to_string(&f.audit("").await).unwrap_or_default();
    assert!(!everything.contains("wrong password") && !everything.contains(PASSWORD));
    assert!(!everything.contains(&f.hash) && !everything.contains("$argon2id$"));

    let kinds: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .map(|e| {
            assert!(e.credential_fingerprint.is_some());
            assert_eq!(e.subject.as_deref(), Some("alice"));
            (e.kind, e.reason)
        })
        .collect();
    let failure = (
        SecurityEventKind::LoginFailure,
        Some("bad_password".to_owned()),
    );
    assert_eq!(
        kinds,
        [
            failure.clone(),
            failure.clone(),
            failure,
            (SecurityEventKind::Lockout, Some("too_many_failures".into())),
            (SecurityEventKind::LoginFailure, Some("locked".into())),
            (SecurityEventKind::LoginFailure, Some("locked".into())),
        ]
    );
}

#[tokio::test]
async fn a_locked_address_is_refused_for_every_account_and_other_addresses_are_not() {
    let f = fixture(LockoutPolicy {
        client: Thresholds {
            free_failures: 0,
            lockout_after: 2,
        },
        ..policy()
    })
    .await;
    for account in ["u1", "u2"] {
        assert_eq!(
            f.verify("wrong password", account, "2001:db8:7:7::1")
                .await
                .status,
            StatusCode::OK
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Another address in the same IPv6 /64 is the same client.
    let locked = f.verify(PASSWORD, "u3", "2001:db8:7:7::2").await;
    assert_locked(&locked, 60);
    assert!(
        locked.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("address"))
    );
    let elsewhere = f.verify(PASSWORD, "u3", "2001:db8:7:8::1").await;
    assert_eq!(elsewhere.body, json!({"valid": true}));
    let lockouts = f.audit("action=auth.lockout").await;
    assert_eq!(
        lockouts[0]["event"]["resource"],
        json!({"type": "client_ip", "id": "2001:db8:7:7::1"})
    );
}

#[tokio::test]
async fn a_success_starts_the_accounts_count_over() {
    let f = fixture(policy()).await;
    for _ in 0..2 {
        f.verify("wrong password", "bob", "192.0.2.1").await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        f.verify(PASSWORD, "bob", "192.0.2.1").await.body,
        json!({"valid": true})
    );
    // Two more failures: without the reset the second would lock the account.
    for _ in 0..2 {
        f.verify("wrong password", "bob", "192.0.2.1").await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        f.verify(PASSWORD, "bob", "192.0.2.1").await.body,
        json!({"valid": true})
    );
    assert!(f.audit("action=auth.lockout").await.is_empty());
}

#[tokio::test]
async fn without_account_or_address_nothing_is_counted_but_failures_are_audited() {
    let f = fixture(policy()).await;
    for _ in 0..4 {
        let (status, body) = post(
            &f.app,
            &f.backend.admin,
            "/v1/auth/passwords/verify",
            json!({"password": "wrong password", "hash": f.hash}),
        )
        .await;
        assert_eq!((status, body), (StatusCode::OK, json!({"valid": false})));
    }
    let failures = f.audit("action=auth.password.verify").await;
    assert_eq!(failures.len(), 4);
    assert_eq!(failures[0]["event"]["actor"]["type"], "api_key");
    assert!(f.audit("action=auth.lockout").await.is_empty());
}

#[tokio::test]
async fn a_bad_client_ip_or_account_is_a_422_naming_the_field_before_any_hashing() {
    let f = fixture(policy()).await;
    let cases = [
        (json!({"client_ip": "not-an-ip"}), "client_ip"),
        (json!({"client_ip": "10.0.0.1:443"}), "client_ip"),
        (json!({"account": "   "}), "account"),
        (json!({"account": "a\u{0}b"}), "account"),
        (json!({"account": "a".repeat(257)}), "account"),
    ];
    for (extra, field) in cases {
        let mut body = json!({"password": "wrong password", "hash": f.hash});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let (status, problem) =
            post(&f.app, &f.backend.admin, "/v1/auth/passwords/verify", body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{extra}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{extra}: {problem}");
    }
    assert!(f.audit("action=auth.password.verify").await.is_empty());
}

#[tokio::test]
async fn the_openapi_document_describes_the_new_fields_and_the_429() {
    let f = fixture(policy()).await;
    let answer = common::send(
        &f.app,
        axum::http::Request::builder()
            .uri("/openapi.json")
            .body(axum::body::Body::empty())
            .expect("request"),
    )
    .await;
    let verify = &answer.body["paths"]["/v1/auth/passwords/verify"]["post"];
    let locked = &verify["responses"]["429"];
    assert!(
        locked["description"]
            .as_str()
            .is_some_and(|d| d.contains("account_locked")),
        "{verify}"
    );
    assert!(locked["headers"]["Retry-After"].is_object(), "{locked}");
    let reference = verify["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_default();
    let name = reference.rsplit('/').next().unwrap_or_default();
    let schema = &answer.body["components"]["schemas"][name]["properties"];
    assert!(schema["hash"].is_object(), "{reference}: {schema}");
    assert!(
        schema["account"].is_object() && schema["client_ip"].is_object(),
        "{schema}"
    );
}
