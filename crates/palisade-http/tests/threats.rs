//! `/v1/threats` and the blocking layer driven as a client would, with a
//! manual clock: brute force, credential stuffing and password spraying
//! reported as events and detected, blocks enforced on requests and lifted
//! by time or by hand, incidents, the audit trail, and bad input.

mod common;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use common::{Answer, request, send};
use palisade_auth::{NewApiKey, Scopes};
use palisade_core::principal::TenantId;
use palisade_core::{ManualClock, SharedClock};
use palisade_guard::reputation::Reputation;
use palisade_guard::threats::{
    DetectorRule, ResponseAction, ThreatDefense, ThreatOptions, ThreatSettings,
};
use palisade_http::api_router;
use palisade_http::routes::threats::audit_reporter;
use palisade_testkit::eventually;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

struct Harness {
    app: Router,
    admin: String,
    clock: ManualClock,
    threats: ThreatDefense,
    _backend: common::Backend,
}

fn rule(threshold: u64, action: ResponseAction) -> DetectorRule {
    DetectorRule {
        threshold,
        window_ms: 60_000,
        action,
        block_ttl_ms: 120_000,
        ..DetectorRule::default()
    }
}

fn off() -> DetectorRule {
    DetectorRule {
        enabled: false,
        ..DetectorRule::default()
    }
}

async fn harness(settings: ThreatSettings, reputation: Reputation) -> Harness {
    let backend = common::sqlite(palisade_http::HttpSettings::default()).await;
    let clock = ManualClock::new();
    let shared: SharedClock = Arc::new(clock.clone());
    let threats = ThreatDefense::new(
        ThreatOptions {
            settings,
            reputation: Arc::new(reputation),
            reporter: Some(audit_reporter(backend.state.audit.clone())),
            ..ThreatOptions::default()
        },
        backend.state.security_events.clone(),
        shared,
    )
    .expect("threat settings");
    threats.start();
    let state = backend.state.clone().with_threats(threats.clone());
    Harness {
        app: api_router(state),
        admin: backend.admin.clone(),
        clock,
        threats,
        _backend: backend,
    }
}

/// `req` as arriving from `peer`.
fn from(mut req: Request<Body>, peer: &str) -> Request<Body> {
    let peer: SocketAddr = if peer.contains(':') && !peer.starts_with('[') {
        format!("[{peer}]:40000")
    } else {
        format!("{peer}:40000")
    }
    .parse()
    .expect("peer");
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

impl Harness {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> Answer {
        send(
            &self.app,
            from(request(method, uri, &self.admin, body), "127.0.0.1"),
        )
        .await
    }

    /// Reports `events` and waits until detection has processed them.
    async fn report(&self, events: Vec<Value>) {
        let before = self.threats.processed();
        let n = events.len() as u64;
        let answer = self
            .call(
                "POST",
                "/v1/threats/events",
                Some(json!({"events": events})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
        assert_eq!(answer.body["accepted"], n);
        let threats = self.threats.clone();
        eventually(Duration::from_secs(10), "events processed", || {
            let threats = threats.clone();
            async move { threats.processed() >= before + n }
        })
        .await;
    }

    async fn whoami_from(&self, ip: &str) -> StatusCode {
        send(
            &self.app,
            from(request("GET", "/v1/whoami", &self.admin, None), ip),
        )
        .await
        .status
    }

    async fn audit_actions(&self, prefix: &str) -> Vec<Value> {
        let answer = self
            .call("GET", &format!("/v1/audit/events?action={prefix}"), None)
            .await;
        answer.body["events"]
            .as_array()
            .map(|events| events.iter().map(|e| e["event"].clone()).collect())
            .unwrap_or_default()
    }
}

fn failure(ip: &str, subject: &str) -> Value {
    json!({"kind": "login_failure", "ip": ip, "subject": subject, "reason": "bad_password"})
}

#[tokio::test]
async fn brute_force_reported_over_http_blocks_the_address_until_the_ttl_ends() {
    let h = harness(
        ThreatSettings {
            brute_force_account: off(),
            brute_force_ip: rule(5, ResponseAction::BlockIp),
            credential_stuffing: off(),
            password_spraying: off(),
            ..ThreatSettings::default()
        },
        Reputation::empty(),
    )
    .await;
    assert_eq!(h.whoami_from("198.51.100.66").await, StatusCode::OK);
    h.report(
        (0..4)
            .map(|i| failure("198.51.100.66", &format!("u{i}")))
            .collect(),
    )
    .await;
    assert_eq!(
        h.whoami_from("198.51.100.66").await,
        StatusCode::OK,
        "under the threshold"
    );
    h.report(vec![failure("198.51.100.66", "u9")]).await;

    let refused = send(
        &h.app,
        from(
            request("GET", "/v1/whoami", &h.admin, None),
            "198.51.100.66",
        ),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.body["type"]
            .as_str()
            .map(|t| t.ends_with("/address-blocked")),
        Some(true)
    );
    assert!(
        !refused.body.to_string().contains("brute"),
        "no detail of the detection leaks"
    );
    assert_eq!(h.whoami_from("198.51.100.67").await, StatusCode::OK);

    let blocks = h
        .call("GET", "/v1/threats/blocks?ip=198.51.100.66", None)
        .await;
    assert_eq!(blocks.status, StatusCode::OK);
    assert_eq!(blocks.body["refused"], true);
    let block = &blocks.body["blocks"][0];
    assert_eq!(block["target"]["ip"], "198.51.100.66/32");
    assert_eq!(block["origin"]["by"], "detector");
    assert_eq!(block["origin"]["detector"], "brute_force_ip");

    // Every detection and action is in the audit log with its evidence.
    eventually(Duration::from_secs(10), "audit events", || async {
        h.audit_actions("security.threat").await.len() >= 2
    })
    .await;
    let detected = h.audit_actions("security.threat").await;
    let detection = detected
        .iter()
        .find(|e| e["action"] == "security.threat.detected")
        .unwrap_or_else(|| panic!("detection audited: {detected:?}"));
    assert_eq!(detection["metadata"]["detection"]["evidence"]["count"], 5);
    assert_eq!(detection["actor"]["id"], "198.51.100.66/32");
    assert!(
        detected
            .iter()
            .any(|e| e["action"] == "security.threat.blocked")
    );

    h.clock.advance(Duration::from_secs(121));
    assert_eq!(
        h.whoami_from("198.51.100.66").await,
        StatusCode::OK,
        "the block expired"
    );
}

#[tokio::test]
async fn credential_stuffing_from_a_network_is_one_incident_and_blocks_the_network() {
    let h = harness(
        ThreatSettings {
            brute_force_account: off(),
            brute_force_ip: off(),
            credential_stuffing: rule(12, ResponseAction::BlockIp),
            password_spraying: off(),
            ..ThreatSettings::default()
        },
        Reputation::empty(),
    )
    .await;
    // Six addresses of 203.0.113.0/24 try two accounts each; one succeeds.
    let mut events = Vec::new();
    for host in 1..=6 {
        for n in 0..2 {
            events.push(failure(
                &format!("203.0.113.{host}"),
                &format!("victim{host}-{n}"),
            ));
        }
        h.clock.advance(Duration::from_secs(1));
    }
    events.insert(
        3,
        json!({"kind": "login_success", "ip": "203.0.113.2", "subject": "victim2-0"}),
    );
    h.report(events).await;
    assert_eq!(h.whoami_from("203.0.113.250").await, StatusCode::FORBIDDEN);
    assert_eq!(h.whoami_from("203.0.114.1").await, StatusCode::OK);

    let page = h
        .call("GET", "/v1/threats/incidents?status=open", None)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let incidents = page.body["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["detectors"], json!(["credential_stuffing"]));
    assert!(
        incidents[0]["keys"]
            .as_array()
            .expect("keys")
            .contains(&json!("ip:203.0.113.0/24"))
    );
    assert_eq!(incidents[0]["actions"][0]["target"]["ip"], "203.0.113.0/24");
}

#[tokio::test]
async fn password_spraying_is_detected_across_addresses_and_logged_without_blocking() {
    let h = harness(
        ThreatSettings {
            brute_force_account: off(),
            brute_force_ip: off(),
            credential_stuffing: off(),
            password_spraying: rule(10, ResponseAction::Log),
            ..ThreatSettings::default()
        },
        Reputation::empty(),
    )
    .await;
    let fingerprint = "9f86d081884c7d659a2feaa0c55ad015";
    let events = (0..10)
        .map(|i| {
            json!({"kind": "login_failure", "ip": format!("192.0.2.{}", i * 7), "subject": format!("staff{i}"),
                   "credential_fingerprint": fingerprint})
        })
        .collect();
    h.report(events).await;
    let page = h.call("GET", "/v1/threats/incidents", None).await;
    let incident = &page.body["incidents"][0];
    assert_eq!(incident["detectors"], json!(["password_spraying"]));
    assert!(
        incident["keys"]
            .as_array()
            .expect("keys")
            .contains(&json!(format!("fingerprint:{fingerprint}")))
    );
    assert_eq!(incident["actions"], json!([]));
    let blocks = h.call("GET", "/v1/threats/blocks", None).await;
    assert_eq!(blocks.body["blocks"], json!([]));
    assert_eq!(h.whoami_from("192.0.2.7").await, StatusCode::OK);
}

#[tokio::test]
async fn manual_blocks_are_made_listed_lifted_and_audited() {
    let h = harness(ThreatSettings::default(), Reputation::empty()).await;
    let made = h
        .call(
            "POST",
            "/v1/threats/blocks",
            Some(json!({"ip": "2001:db8:bad::/48", "ttl_ms": 60000, "reason": "abuse report"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.body["origin"]["by"], "manual");
    assert_eq!(
        h.whoami_from("2001:db8:bad::1").await,
        StatusCode::FORBIDDEN
    );
    let subject = h
        .call(
            "POST",
            "/v1/threats/blocks",
            Some(json!({"subject": "mallory", "ttl_ms": 60000})),
        )
        .await;
    assert_eq!(subject.status, StatusCode::CREATED);
    let listed = h
        .call("GET", "/v1/threats/blocks?subject=mallory", None)
        .await;
    assert_eq!(listed.body["blocks"].as_array().map(Vec::len), Some(1));

    let lifted = h
        .call("DELETE", "/v1/threats/blocks?ip=2001:db8:bad::/48", None)
        .await;
    assert_eq!(lifted.status, StatusCode::NO_CONTENT);
    assert_eq!(h.whoami_from("2001:db8:bad::1").await, StatusCode::OK);
    let again = h
        .call("DELETE", "/v1/threats/blocks?ip=2001:db8:bad::/48", None)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    let audited = h.audit_actions("palisade.threats.block").await;
    let actions: Vec<&str> = audited
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"palisade.threats.block.create"));
    assert!(actions.contains(&"palisade.threats.block.delete"));
}

#[tokio::test]
async fn block_lists_refuse_and_allow_lists_exempt() {
    let h = harness(
        ThreatSettings::default(),
        Reputation::from_networks(
            vec![(
                "office".into(),
                vec!["198.51.100.0/28".parse().expect("net")],
            )],
            vec![("drop".into(), vec!["198.51.100.0/24".parse().expect("net")])],
        ),
    )
    .await;
    assert_eq!(h.whoami_from("198.51.100.200").await, StatusCode::FORBIDDEN);
    assert_eq!(h.whoami_from("198.51.100.3").await, StatusCode::OK);
    // A dual-stack socket's mapped address is the same client.
    assert_eq!(
        h.whoami_from("[::ffff:198.51.100.200]").await,
        StatusCode::FORBIDDEN
    );
    let verdict = h
        .call("GET", "/v1/threats/blocks?ip=198.51.100.200", None)
        .await;
    assert_eq!(verdict.body["refused"], true);
    assert_eq!(verdict.body["listed_in"], "drop");
    assert_eq!(verdict.body["lists"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn bad_input_gets_a_problem_naming_the_field() {
    let h = harness(ThreatSettings::default(), Reputation::empty()).await;
    let cases = [
        (
            "POST",
            "/v1/threats/events",
            json!({"events": []}),
            "events",
        ),
        (
            "POST",
            "/v1/threats/events",
            json!({"events": [failure("192.0.2.1", "a"), {"kind": "login_failure", "ip": "999.1.1.1"}]}),
            "events[1].ip",
        ),
        (
            "POST",
            "/v1/threats/events",
            json!({"events": [{"kind": "login_failure", "subject": "a\nb"}]}),
            "events[0].subject",
        ),
        (
            "POST",
            "/v1/threats/events",
            json!({"events": [{"kind": "login_failure", "credential_fingerprint": "hunter2"}]}),
            "events[0].credential_fingerprint",
        ),
        (
            "POST",
            "/v1/threats/events",
            json!({"events": [{"kind": "login_failure", "at_ms": 1}]}),
            "events[0].at_ms",
        ),
        (
            "POST",
            "/v1/threats/blocks",
            json!({"ip": "10.0.0.0/33", "ttl_ms": 60000}),
            "ip",
        ),
        (
            "POST",
            "/v1/threats/blocks",
            json!({"ip": "10.0.0.1", "subject": "x", "ttl_ms": 60000}),
            "ip",
        ),
        (
            "POST",
            "/v1/threats/blocks",
            json!({"ip": "10.0.0.1", "ttl_ms": 10}),
            "ttl_ms",
        ),
    ];
    for (method, uri, body, field) in cases {
        let answer = h.call(method, uri, Some(body.clone())).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            answer.body
        );
        let fields: Vec<&str> = answer.body["errors"]
            .as_array()
            .map(|e| e.iter().filter_map(|x| x["field"].as_str()).collect())
            .unwrap_or_default();
        assert!(fields.contains(&field), "{body}: {}", answer.body);
    }
    let unknown = h
        .call(
            "POST",
            "/v1/threats/events",
            Some(json!({"events": [{"kind": "teleport"}]})),
        )
        .await;
    assert!(unknown.status.is_client_error());
    let oversized: Vec<Value> = (0..1001).map(|_| failure("192.0.2.1", "a")).collect();
    let answer = h
        .call(
            "POST",
            "/v1/threats/events",
            Some(json!({"events": oversized})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(h.threats.processed(), 0, "a refused batch emits nothing");
}

#[tokio::test]
async fn scopes_separate_reporting_from_blocking() {
    let h = harness(ThreatSettings::default(), Reputation::empty()).await;
    let reporter = h
        ._backend
        .state
        .api_keys
        .create(NewApiKey {
            name: "svc".into(),
            tenant: TenantId::default_tenant(),
            scopes: Scopes::parse(["guard:check"]).expect("scopes"),
            expires_at_ms: None,
        })
        .await
        .expect("key");
    let key = reporter.secret.expose().to_owned();
    let post = |uri: &str, body: Value| from(request("POST", uri, &key, Some(body)), "127.0.0.1");
    let events = send(
        &h.app,
        post(
            "/v1/threats/events",
            json!({"events": [failure("192.0.2.1", "a")]}),
        ),
    )
    .await;
    assert_eq!(events.status, StatusCode::ACCEPTED);
    let block = send(
        &h.app,
        post(
            "/v1/threats/blocks",
            json!({"ip": "192.0.2.1", "ttl_ms": 60000}),
        ),
    )
    .await;
    assert_eq!(block.status, StatusCode::FORBIDDEN);
    let incidents = send(
        &h.app,
        from(
            request("GET", "/v1/threats/incidents", &key, None),
            "127.0.0.1",
        ),
    )
    .await;
    assert_eq!(incidents.status, StatusCode::FORBIDDEN);
}
