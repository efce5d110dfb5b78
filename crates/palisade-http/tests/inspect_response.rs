//! Threat response to request-inspection findings, driven through routers
//! with a manual clock: repeated SQL injection from one address through the
//! [`InspectLayer`] gets the address blocked by the threat-block layer,
//! XSS configured as log-only never blocks, and `POST /v1/inspect` with a
//! `client_ip` feeds the same detectors (blocked, listed and audited).

mod common;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use common::{Answer, request, send};
use palisade_core::{ManualClock, SecurityEvents, SharedClock};
use palisade_guard::inspect::Inspector;
use palisade_guard::ratelimit::{RateLimiter, RateLimiterSettings};
use palisade_guard::threats::{
    DetectorKind, DetectorRule, IpVerdict, ResponseAction, ThreatDefense, ThreatNotice,
    ThreatOptions, ThreatSettings,
};
use palisade_http::layers::inspect::InspectLayer;
use palisade_http::layers::threat_block::ThreatBlockLayer;
use palisade_http::routes::threats::audit_reporter;
use palisade_http::{HttpSettings, api_router};
use palisade_testkit::eventually;
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// SQL injection blocked on the third request from one address within a
/// minute, for a minute; XSS only logged.
fn settings() -> ThreatSettings {
    let rule = |action| DetectorRule {
        threshold: 3,
        window_ms: 60_000,
        action,
        block_ttl_ms: 60_000,
        ..DetectorRule::default()
    };
    ThreatSettings {
        inspection_sqli: rule(ResponseAction::BlockIp),
        inspection_xss: rule(ResponseAction::Log),
        ..ThreatSettings::default()
    }
}

const SQLI: &str = "/search?id=1%27%20UNION%20SELECT%20password%20FROM%20users--";
const XSS: &str = "/search?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E";

/// `req` as arriving from `peer`.
fn from(mut req: Request<Body>, peer: &str) -> Request<Body> {
    let ip: IpAddr = peer.parse().expect("peer");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip, 40000)));
    req
}

fn get(uri: &str, peer: &str) -> Request<Body> {
    from(
        Request::builder()
            .uri(uri)
            .body(Body::empty())
            .expect("request"),
        peer,
    )
}

fn problem_type(answer: &Answer) -> String {
    answer.body["type"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn repeated_sqli_through_the_layer_blocks_the_address_and_log_only_xss_does_not() {
    let clock = ManualClock::new();
    let shared: SharedClock = Arc::new(clock.clone());
    let events = SecurityEvents::new(256);
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = notices.clone();
    let threats = ThreatDefense::new(
        ThreatOptions {
            settings: settings(),
            reporter: Some(Arc::new(move |n| sink.lock().expect("notices").push(n))),
            ..ThreatOptions::default()
        },
        events.clone(),
        shared.clone(),
    )
    .expect("threat settings");
    threats.start();
    let app = Router::new()
        .route("/search", axum::routing::get(|| async { "results" }))
        .layer(InspectLayer::new(Inspector::default()).report_to(events, shared))
        .layer(ThreatBlockLayer::new(threats.clone()));

    // Each attack is refused by inspection; the third gets the address blocked.
    for _ in 0..3 {
        let answer = send(&app, get(SQLI, "198.51.100.7")).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert!(
            problem_type(&answer).ends_with("/request-blocked"),
            "{}",
            answer.body
        );
    }
    let t = threats.clone();
    eventually(Duration::from_secs(10), "sqli address blocked", || {
        let t = t.clone();
        async move {
            matches!(
                t.check_ip("198.51.100.7".parse().expect("ip")),
                IpVerdict::Refused(_)
            )
        }
    })
    .await;
    // Now even a harmless request from it is refused, by the blocking layer.
    let answer = send(&app, get("/search?q=shoes", "198.51.100.7")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        problem_type(&answer).ends_with("/address-blocked"),
        "{}",
        answer.body
    );
    assert_eq!(
        send(&app, get("/search?q=shoes", "198.51.100.8"))
            .await
            .status,
        StatusCode::OK,
        "other addresses pass"
    );
    {
        let notices = notices.lock().expect("notices");
        let detection = notices
            .iter()
            .find_map(|n| match n {
                ThreatNotice::Detection {
                    detection, action, ..
                } if detection.detector == DetectorKind::InspectionSqli => {
                    Some((detection.clone(), *action))
                }
                _ => None,
            })
            .expect("sqli detection notice");
        assert_eq!(detection.1, ResponseAction::BlockIp);
        let evidence = &detection.0.evidence;
        assert_eq!(evidence["category"], "sqli");
        assert_eq!(evidence["count"], 3);
        assert_eq!(evidence["location"], "query.id");
        assert!(evidence["rule"].as_str().expect("rule").starts_with("sqli"));
    }

    // XSS from another address is detected and logged, never blocked.
    for _ in 0..5 {
        let answer = send(&app, get(XSS, "192.0.2.44")).await;
        assert!(
            problem_type(&answer).ends_with("/request-blocked"),
            "{}",
            answer.body
        );
    }
    let n = notices.clone();
    eventually(Duration::from_secs(10), "xss detection", || {
        let n = n.clone();
        async move {
            n.lock().expect("notices").iter().any(|n| {
                matches!(n, ThreatNotice::Detection { detection, .. }
                    if detection.detector == DetectorKind::InspectionXss)
            })
        }
    })
    .await;
    assert_eq!(
        send(&app, get("/search?q=shoes", "192.0.2.44"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        threats.check_ip("192.0.2.44".parse().expect("ip")),
        IpVerdict::Pass
    );
    assert_eq!(threats.blocks().len(), 1, "only the sqli address");

    // The block ends with its TTL.
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        send(&app, get("/search?q=shoes", "198.51.100.7"))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn post_inspect_with_a_client_ip_feeds_detection_which_blocks_lists_and_audits() {
    let backend = common::sqlite(HttpSettings::default()).await;
    let clock = ManualClock::new();
    let shared: SharedClock = Arc::new(clock.clone());
    let b = &backend.state;
    let state = common::state_sharing(
        b,
        RateLimiter::new(RateLimiterSettings::default(), shared.clone(), None, None),
        shared.clone(),
    );
    let threats = ThreatDefense::new(
        ThreatOptions {
            settings: settings(),
            reporter: Some(audit_reporter(b.audit.clone())),
            ..ThreatOptions::default()
        },
        state.security_events.clone(),
        shared,
    )
    .expect("threat settings");
    threats.start();
    let app = api_router(state.with_threats(threats.clone()));
    let admin = backend.admin.clone();
    let call = |method: &str, uri: &str, body: Option<Value>| {
        let req = from(request(method, uri, &admin, body), "127.0.0.1");
        let app = app.clone();
        async move { send(&app, req).await }
    };
    let inspected = |client_ip: Option<&str>| {
        let mut body = json!({
            "method": "GET",
            "path": "/login",
            "query": "user=admin%27%20OR%201%3D1--",
        });
        if let Some(ip) = client_ip {
            body["client_ip"] = json!(ip);
        }
        body
    };

    let bad = call(
        "POST",
        "/v1/inspect",
        Some(json!({"method": "GET", "path": "/", "client_ip": "not-an-ip"})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["errors"][0]["field"], "client_ip");

    for _ in 0..3 {
        let answer = call("POST", "/v1/inspect", Some(inspected(Some("203.0.113.5")))).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.body["verdict"], "block");
    }
    let t = threats.clone();
    eventually(Duration::from_secs(10), "client address blocked", || {
        let t = t.clone();
        async move {
            matches!(
                t.check_ip("203.0.113.5".parse().expect("ip")),
                IpVerdict::Refused(_)
            )
        }
    })
    .await;
    let blocks = call("GET", "/v1/threats/blocks?ip=203.0.113.5", None).await;
    assert_eq!(blocks.status, StatusCode::OK, "{}", blocks.body);
    assert_eq!(
        blocks.body["blocks"][0]["origin"]["detector"], "inspection_sqli",
        "{}",
        blocks.body
    );

    let audited = |action: &'static str| {
        let call = &call;
        async move {
            let answer = call("GET", &format!("/v1/audit/events?action={action}"), None).await;
            answer.body["events"]
                .as_array()
                .map(|events| {
                    events
                        .iter()
                        .map(|e| e["event"].clone())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }
    };
    let audited_ref = &audited;
    eventually(Duration::from_secs(10), "block audited", || async move {
        !audited_ref("security.threat.blocked").await.is_empty()
    })
    .await;
    let detected = audited("security.threat.detected").await;
    let detection = &detected[0]["metadata"]["detection"];
    assert_eq!(detection["detector"], "inspection_sqli");
    assert_eq!(detection["evidence"]["category"], "sqli");
    assert_eq!(detection["evidence"]["location"], "query.user");
    assert_eq!(detected[0]["metadata"]["action"], "block_ip");
    assert_eq!(detected[0]["actor"]["id"], "203.0.113.5/32");
}
