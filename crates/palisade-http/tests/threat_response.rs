//! The responses of threat detection driven through the router with a manual
//! clock: subject (API key) blocks refused from any address, the
//! `tighten_rate_limit` action shrinking one key's quota until it expires,
//! and two instances sharing a Redis (a throwaway `redis-server` this test
//! starts and stops) that enforce one set of blocks and tightenings and list
//! one set of incidents.

mod common;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use common::{Answer, Backend, request, send};
use palisade_auth::{NewApiKey, Scopes};
use palisade_core::principal::TenantId;
use palisade_core::{Clock, ManualClock, SharedClock, SystemClock};
use palisade_guard::ratelimit::{
    Algorithm, KeySource, RateLimiter, RateLimiterSettings, RuleOrigin, RuleSpec, rules_from_specs,
};
use palisade_guard::threats::{
    DetectorRule, ResponseAction, ThreatDefense, ThreatOptions, ThreatSettings,
};
use palisade_http::routes::threats::audit_reporter;
use palisade_http::{HttpSettings, api_router};
use palisade_store::{Redis, RedisConfig};
use palisade_testkit::{RedisServer, eventually};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// One Palisade instance on the shared backend: its own rate limiter and
/// threat detection on the manual clock, Redis when given.
struct Instance {
    app: Router,
    threats: ThreatDefense,
}

fn off() -> DetectorRule {
    DetectorRule {
        enabled: false,
        ..DetectorRule::default()
    }
}

/// Brute force per address answered with a rate-limit tightening (factor 5,
/// two minutes), token reuse with a subject block; nothing else.
fn settings() -> ThreatSettings {
    ThreatSettings {
        brute_force_account: off(),
        brute_force_ip: DetectorRule {
            threshold: 3,
            window_ms: 60_000,
            action: ResponseAction::TightenRateLimit,
            tighten_factor: 5,
            block_ttl_ms: 120_000,
            ..DetectorRule::default()
        },
        credential_stuffing: off(),
        password_spraying: off(),
        token_reuse: DetectorRule {
            threshold: 1,
            window_ms: 60_000,
            action: ResponseAction::BlockSubject,
            block_ttl_ms: 60_000,
            ..DetectorRule::default()
        },
        ..ThreatSettings::default()
    }
}

/// Ten requests a minute per client address on `/v1/whoami`.
fn per_ip_rule() -> RuleSpec {
    RuleSpec {
        name: "whoami-per-ip".into(),
        key: KeySource::Ip,
        algorithm: Algorithm::FixedWindow,
        limit: 10,
        period_ms: 60_000,
        burst: None,
        tiers: BTreeMap::new(),
        routes: vec!["/v1/whoami".into()],
        adaptive: None,
    }
}

fn instance(backend: &Backend, clock: &ManualClock, redis: Option<Redis>) -> Instance {
    let shared: SharedClock = Arc::new(clock.clone());
    let b = &backend.state;
    let limiter = RateLimiter::new(RateLimiterSettings::default(), shared.clone(), None, None);
    limiter
        .replace_rules(rules_from_specs([per_ip_rule()], RuleOrigin::Config).expect("rule"))
        .expect("rules");
    let state = common::state_sharing(b, limiter.clone(), shared.clone());
    let threats = ThreatDefense::new(
        ThreatOptions {
            settings: settings(),
            redis,
            reporter: Some(audit_reporter(b.audit.clone())),
            tightenings: Some(limiter.tightenings().clone()),
            ..ThreatOptions::default()
        },
        state.security_events.clone(),
        shared,
    )
    .expect("threat settings");
    threats.start();
    let state = state.with_threats(threats.clone());
    Instance {
        app: api_router(state),
        threats,
    }
}

/// `req` as arriving from `peer`.
fn from(mut req: Request<Body>, peer: &str) -> Request<Body> {
    let peer: SocketAddr = if peer.contains(':') {
        format!("[{peer}]:40000")
    } else {
        format!("{peer}:40000")
    }
    .parse()
    .expect("peer");
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

impl Instance {
    async fn call(&self, key: &str, method: &str, uri: &str, body: Option<Value>) -> Answer {
        send(
            &self.app,
            from(request(method, uri, key, body), "127.0.0.1"),
        )
        .await
    }

    async fn whoami(&self, key: &str, ip: &str) -> Answer {
        send(&self.app, from(request("GET", "/v1/whoami", key, None), ip)).await
    }

    /// How many of `n` requests from `ip` pass.
    async fn passing(&self, key: &str, ip: &str, n: usize) -> usize {
        let mut ok = 0;
        for _ in 0..n {
            let answer = self.whoami(key, ip).await;
            match answer.status {
                StatusCode::OK => ok += 1,
                StatusCode::TOO_MANY_REQUESTS => {}
                other => panic!("unexpected {other}: {}", answer.body),
            }
        }
        ok
    }

    /// Reports `events` with `key` and waits until detection processed them.
    async fn report(&self, key: &str, events: Vec<Value>) {
        let before = self.threats.processed();
        let n = events.len() as u64;
        let answer = self
            .call(
                key,
                "POST",
                "/v1/threats/events",
                Some(json!({ "events": events })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
        let threats = self.threats.clone();
        eventually(Duration::from_secs(10), "events processed", || {
            let threats = threats.clone();
            async move { threats.processed() >= before + n }
        })
        .await;
    }
}

fn failure(ip: &str, subject: &str) -> Value {
    json!({"kind": "login_failure", "ip": ip, "subject": subject, "reason": "bad_password"})
}

/// A key allowed to call `/v1/whoami` only; its id and secret.
async fn user_key(backend: &Backend) -> (String, String) {
    let issued = backend
        .state
        .api_keys
        .create(NewApiKey {
            name: "service".into(),
            tenant: TenantId::default_tenant(),
            scopes: Scopes::parse(["guard:check"]).expect("scopes"),
            expires_at_ms: None,
        })
        .await
        .expect("key");
    (issued.key.id.to_string(), issued.secret.expose().to_owned())
}

async fn audited(instance: &Instance, admin: &str, action: &str) -> Vec<Value> {
    let answer = instance
        .call(
            admin,
            "GET",
            &format!("/v1/audit/events?action={action}"),
            None,
        )
        .await;
    answer.body["events"]
        .as_array()
        .map(|events| events.iter().map(|e| e["event"].clone()).collect())
        .unwrap_or_default()
}

fn is_problem(answer: &Answer, kind: &str) -> bool {
    answer.body["type"]
        .as_str()
        .is_some_and(|t| t.ends_with(&format!("/{kind}")))
}

#[tokio::test]
async fn a_blocked_api_key_is_refused_from_any_address_until_the_block_ends() {
    let backend = common::sqlite(HttpSettings::default()).await;
    let clock = ManualClock::new();
    let a = instance(&backend, &clock, None);
    let (id, secret) = user_key(&backend).await;
    assert_eq!(
        a.whoami(&secret, "198.51.100.1").await.status,
        StatusCode::OK
    );

    let made = a
        .call(
            &backend.admin,
            "POST",
            "/v1/threats/blocks",
            Some(json!({"subject": id, "ttl_ms": 60000, "reason": "leaked key"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    for ip in ["198.51.100.1", "203.0.113.9", "2001:db8::7"] {
        let refused = a.whoami(&secret, ip).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "from {ip}");
        assert!(is_problem(&refused, "subject-blocked"), "{}", refused.body);
        assert_eq!(refused.headers["retry-after"], "60");
        assert_eq!(refused.body["retry_after"], 60);
    }
    // Other keys from the same address pass: the key is blocked, not the address.
    assert_eq!(
        a.whoami(&backend.admin, "198.51.100.1").await.status,
        StatusCode::OK
    );
    // Services in other languages ask the same question.
    let verdict = a
        .call(
            &backend.admin,
            "GET",
            &format!("/v1/threats/blocks?subject={id}"),
            None,
        )
        .await;
    assert_eq!(verdict.status, StatusCode::OK);
    assert_eq!(verdict.body["refused"], true);
    assert_eq!(
        verdict.body["refused_until_ms"],
        clock.now_unix_ms() + 60_000
    );
    let other = a
        .call(
            &backend.admin,
            "GET",
            "/v1/threats/blocks?subject=nobody",
            None,
        )
        .await;
    assert_eq!(other.body["refused"], false);
    assert!(other.body.get("refused_until_ms").is_none());

    clock.advance(Duration::from_secs(30));
    assert_eq!(
        a.whoami(&secret, "203.0.113.9").await.headers["retry-after"],
        "30"
    );
    clock.advance(Duration::from_secs(31));
    assert_eq!(
        a.whoami(&secret, "203.0.113.9").await.status,
        StatusCode::OK
    );

    // A detector's subject block is enforced the same way: token reuse of
    // the key's subject, reported by another service.
    a.report(
        &backend.admin,
        vec![json!({"kind": "refresh_token_reuse", "subject": id, "ip": "192.0.2.1"})],
    )
    .await;
    let refused = a.whoami(&secret, "192.0.2.200").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(is_problem(&refused, "subject-blocked"));
}

#[tokio::test]
async fn a_tightened_address_gets_a_fifth_of_its_quota_until_the_tightening_expires() {
    let backend = common::sqlite(HttpSettings::default()).await;
    let clock = ManualClock::new();
    let a = instance(&backend, &clock, None);
    let admin = backend.admin.clone();
    a.report(
        &admin,
        (0..3)
            .map(|i| failure("198.51.100.50", &format!("u{i}")))
            .collect(),
    )
    .await;
    assert_eq!(a.passing(&admin, "198.51.100.50", 15).await, 2, "10 / 5");
    assert_eq!(a.passing(&admin, "198.51.100.51", 15).await, 10);
    let limited = a.whoami(&admin, "198.51.100.50").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(is_problem(&limited, "rate-limited"));

    let listed = a
        .call(&admin, "GET", "/v1/threats/blocks?ip=198.51.100.50", None)
        .await;
    assert_eq!(listed.body["refused"], false, "tightened, not blocked");
    let tightened = &listed.body["tightened"][0];
    assert_eq!(tightened["factor"], 5);
    assert_eq!(tightened["target"]["ip"], "198.51.100.50/32");
    assert_eq!(tightened["detector"], "brute_force_ip");
    let incidents = a.call(&admin, "GET", "/v1/threats/incidents", None).await;
    assert_eq!(
        incidents.body["incidents"][0]["rate_limits"][0]["factor"],
        5
    );

    // Audited with its evidence (the detection) and the action.
    let a_ref = &a;
    let admin_ref = admin.as_str();
    eventually(
        Duration::from_secs(10),
        "tightening audited",
        || async move {
            !audited(a_ref, admin_ref, "security.threat.rate_limit_tightened")
                .await
                .is_empty()
        },
    )
    .await;
    let event = &audited(&a, &admin, "security.threat.rate_limit_tightened").await[0];
    assert_eq!(event["resource"]["id"], "ip:198.51.100.50/32");
    assert_eq!(event["metadata"]["tightening"]["factor"], 5);
    let detected = audited(&a, &admin, "security.threat.detected").await;
    assert_eq!(detected[0]["metadata"]["action"], "tighten_rate_limit");
    assert_eq!(detected[0]["metadata"]["detection"]["evidence"]["count"], 3);

    // After two minutes the tightening is over (and a new window began).
    clock.advance(Duration::from_secs(121));
    assert_eq!(a.passing(&admin, "198.51.100.50", 15).await, 10);
}

#[tokio::test]
async fn two_instances_sharing_redis_enforce_one_response_and_list_one_set_of_incidents() {
    let server = RedisServer::start().await.expect("redis-server");
    let redis = || {
        Redis::new(&RedisConfig::single(server.url()), SystemClock::shared()).expect("redis config")
    };
    let backend = common::sqlite(HttpSettings::default()).await;
    let clock = ManualClock::new();
    let (a, b) = (
        instance(&backend, &clock, Some(redis())),
        instance(&backend, &clock, Some(redis())),
    );
    let admin = backend.admin.clone();
    let (id, secret) = user_key(&backend).await;

    // (a) A subject block made on A refuses the key on B, from anywhere.
    let made = a
        .call(
            &admin,
            "POST",
            "/v1/threats/blocks",
            Some(json!({"subject": id, "ttl_ms": 600000})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED);
    b.threats.sync_blocks().await.expect("sync b");
    let refused = b.whoami(&secret, "2001:db8::99").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(is_problem(&refused, "subject-blocked"));

    // (b) An attack seen on A tightens the address on B as well.
    a.report(
        &admin,
        (0..3)
            .map(|i| failure("198.51.100.77", &format!("v{i}")))
            .collect(),
    )
    .await;
    b.threats.sync_blocks().await.expect("sync b");
    assert_eq!(b.passing(&admin, "198.51.100.77", 15).await, 2);
    assert_eq!(b.passing(&admin, "198.51.100.78", 15).await, 10);

    // (d) A's incident is listed on B, with its action.
    let on_a = a.call(&admin, "GET", "/v1/threats/incidents", None).await;
    let on_b = b.call(&admin, "GET", "/v1/threats/incidents", None).await;
    assert_eq!(on_b.status, StatusCode::OK);
    let incident = &on_b.body["incidents"][0];
    assert_eq!(incident["id"], on_a.body["incidents"][0]["id"]);
    assert_eq!(incident["detectors"], json!(["brute_force_ip"]));
    assert_eq!(incident["rate_limits"][0]["factor"], 5);
    // More of the same attack seen on B joins A's incident.
    clock.advance(Duration::from_secs(61));
    b.report(
        &admin,
        (0..3)
            .map(|i| failure("198.51.100.77", &format!("w{i}")))
            .collect(),
    )
    .await;
    let on_a = a.call(&admin, "GET", "/v1/threats/incidents", None).await;
    let incidents = on_a.body["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0]["detection_count"], 2);
    assert_eq!(incidents[0]["id"], incident["id"]);

    // Bad input on the new fields is a problem naming the field.
    let bad = b
        .call(
            &admin,
            "GET",
            "/v1/threats/blocks?subject=a&ip=192.0.2.1",
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["errors"][0]["field"], "subject");
    let bad = b
        .call(&admin, "GET", "/v1/threats/blocks?subject=", None)
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["errors"][0]["field"], "subject");
    let bad = b
        .call(&admin, "GET", "/v1/threats/blocks?subjects=x", None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
}

#[tokio::test]
async fn a_rust_service_behind_the_bearer_layer_refuses_a_blocked_token_subject() {
    use palisade_auth::tokens::IssueRequest;
    use palisade_guard::reputation::BlockTarget;
    use palisade_http::BearerAuthLayer;
    use palisade_http::layers::threat_block::ThreatBlockLayer;
    let backend = common::sqlite(HttpSettings::default()).await;
    let tokens = common::test_tokens(&backend.state);
    let clock = ManualClock::new();
    let threats = ThreatDefense::new(
        ThreatOptions::default(),
        backend.state.security_events.clone(),
        Arc::new(clock.clone()),
    )
    .expect("threats");
    // The service's own router: tokens verified first, then blocks.
    let app = Router::new()
        .route("/orders", axum::routing::get(|| async { "orders" }))
        .layer(ThreatBlockLayer::new(threats.clone()))
        .layer(BearerAuthLayer::new(tokens.clone(), "default"));
    let token = |subject: &'static str| {
        let tokens = tokens.clone();
        async move {
            tokens
                .issue(
                    "acme",
                    IssueRequest {
                        subject: subject.into(),
                        audience: "default".into(),
                        claims: serde_json::Map::new(),
                        ttl: Some(Duration::from_secs(600)),
                    },
                )
                .await
                .expect("token")
                .access_token
        }
    };
    let (alice, bob) = (token("alice").await, token("bob").await);
    let get = |token: &str, ip: &str| send(&app, from(request("GET", "/orders", token, None), ip));
    assert_eq!(get(&alice, "192.0.2.1").await.status, StatusCode::OK);
    threats
        .block(
            BlockTarget::Subject("acme/alice".into()),
            120_000,
            "account takeover".into(),
            "ops".into(),
        )
        .await
        .expect("block");
    for ip in ["192.0.2.1", "198.51.100.3"] {
        let refused = get(&alice, ip).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "from {ip}");
        assert!(is_problem(&refused, "subject-blocked"));
        assert_eq!(refused.headers["retry-after"], "120");
    }
    assert_eq!(get(&bob, "192.0.2.1").await.status, StatusCode::OK);
    // A block of `alice` in the default tenant is someone else.
    threats
        .unblock(&BlockTarget::Subject("acme/alice".into()))
        .await
        .expect("unblock");
    threats
        .block(
            BlockTarget::Subject("alice".into()),
            60_000,
            String::new(),
            "ops".into(),
        )
        .await
        .expect("block");
    assert_eq!(get(&alice, "192.0.2.1").await.status, StatusCode::OK);
}
