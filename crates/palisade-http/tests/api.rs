//! The HTTP frame driven as a client would, on both backends: authentication,
//! scopes, problem documents for every kind of bad input, idempotency, request ids,
//! and no API key ever written to a log line.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use palisade_http::{AppState, HttpSettings, api_router};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

/// One running application on one backend.
struct Harness {
    app: Router,
    state: AppState,
    admin: String,
    _backend: common::Backend,
}

fn settings() -> HttpSettings {
    HttpSettings {
        max_body_bytes: 64 * 1024,
        ..HttpSettings::default()
    }
}

async fn sqlite() -> Harness {
    harness(common::sqlite(settings()).await)
}

async fn postgres() -> Harness {
    harness(common::postgres(settings()).await)
}

fn harness(backend: common::Backend) -> Harness {
    Harness {
        app: api_router(backend.state.clone()),
        state: backend.state.clone(),
        admin: backend.admin.clone(),
        _backend: backend,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Harness {
    async fn bytes(&self, req: Request<Body>) -> Vec<u8> {
        let response = self.app.clone().oneshot(req).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec()
    }

    async fn text(&self, req: Request<Body>) -> String {
        String::from_utf8(self.bytes(req).await).expect("utf-8")
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(req).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn create_key(&self, scopes: &[&str]) -> (String, String) {
        let answer = self
            .send(post(
                "/v1/api-keys",
                Some(&self.admin),
                json!({"name": "k", "scopes": scopes}),
            ))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        (
            answer.body["id"].as_str().unwrap_or_default().to_owned(),
            answer.body["secret"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }
}

fn get(path: &str, key: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(path);
    if let Some(key) = key {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    builder.body(Body::empty()).expect("request")
}

fn post(path: &str, key: Option<&str>, body: Value) -> Request<Body> {
    raw_post(path, key, "application/json", body.to_string())
}

fn raw_post(path: &str, key: Option<&str>, content_type: &str, body: String) -> Request<Body> {
    let mut builder = Request::post(path).header(header::CONTENT_TYPE, content_type);
    if let Some(key) = key {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    builder.body(Body::from(body)).expect("request")
}

fn assert_problem(answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(
        answer
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    assert_eq!(answer.body["status"], status.as_u16());
    assert!(
        answer.body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("https://"))
    );
}

async fn bad_input_gets_the_right_problem(h: Harness) {
    let admin = Some(h.admin.as_str());
    assert_problem(
        &h.send(get("/v1/nowhere", admin)).await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(&h.send(get("/nowhere", None)).await, StatusCode::NOT_FOUND);
    let put = Request::put("/health/live")
        .body(Body::empty())
        .expect("request");
    assert_problem(&h.send(put).await, StatusCode::METHOD_NOT_ALLOWED);

    let malformed = raw_post(
        "/v1/api-keys",
        admin,
        "application/json",
        "{\"name\":".into(),
    );
    assert_problem(&h.send(malformed).await, StatusCode::BAD_REQUEST);
    let wrong_type = raw_post("/v1/api-keys", admin, "text/plain", "{}".into());
    assert_problem(
        &h.send(wrong_type).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    );
    let oversized = raw_post(
        "/v1/api-keys",
        admin,
        "application/json",
        format!("{{\"name\":\"{}\"}}", "x".repeat(70_000)),
    );
    assert_problem(&h.send(oversized).await, StatusCode::PAYLOAD_TOO_LARGE);

    let wrong_shape = h
        .send(post(
            "/v1/api-keys",
            admin,
            json!({"name": 5, "scopes": []}),
        ))
        .await;
    assert_problem(&wrong_shape, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong_shape.body["errors"][0]["field"], "name");
    let unknown_scope = h
        .send(post(
            "/v1/api-keys",
            admin,
            json!({"name": "x", "scopes": ["root"]}),
        ))
        .await;
    assert_problem(&unknown_scope, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown_scope.body["errors"][0]["field"], "scopes");
}

async fn credentials_are_checked(h: Harness) {
    assert_problem(
        &h.send(get("/v1/api-keys", None)).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_problem(
        &h.send(get(
            "/v1/api-keys",
            Some("pal_not-a-real-key-not-a-real-key-0000"),
        ))
        .await,
        StatusCode::UNAUTHORIZED,
    );
    let basic = Request::get("/v1/api-keys")
        .header(header::AUTHORIZATION, format!("Basic {}", h.admin))
        .body(Body::empty())
        .expect("request");
    assert_problem(&h.send(basic).await, StatusCode::UNAUTHORIZED);
    // A key differing from a real one in its last character.
    let mut near = h.admin.clone();
    let last = near
        .pop()
        .map(|c| if c == 'A' { 'B' } else { 'A' })
        .unwrap_or('A');
    near.push(last);
    assert_problem(
        &h.send(get("/v1/api-keys", Some(&near))).await,
        StatusCode::UNAUTHORIZED,
    );

    let (_, writer) = h.create_key(&["audit:write"]).await;
    assert_problem(
        &h.send(get("/v1/api-keys", Some(&writer))).await,
        StatusCode::FORBIDDEN,
    );

    let (id, doomed) = h.create_key(&["audit:read"]).await;
    // Valid but not admin: 403 shows the key authenticates before it is revoked.
    assert_problem(
        &h.send(get("/v1/api-keys", Some(&doomed))).await,
        StatusCode::FORBIDDEN,
    );
    let delete = Request::delete(format!("/v1/api-keys/{id}"))
        .header(header::AUTHORIZATION, format!("Bearer {}", h.admin))
        .body(Body::empty())
        .expect("request");
    let revoked = h.send(delete).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert!(revoked.body["revoked_at_ms"].is_i64());
    assert_problem(
        &h.send(get("/v1/api-keys", Some(&doomed))).await,
        StatusCode::UNAUTHORIZED,
    );
}

async fn idempotency_key_replays_and_refuses_reuse(h: Harness) {
    let with_key = |body: Value, key: &str| {
        let mut req = post("/v1/api-keys", Some(&h.admin), body);
        req.headers_mut()
            .insert("idempotency-key", key.parse().expect("header"));
        req
    };
    let body = json!({"name": "once", "scopes": ["audit:read"]});
    let first = h.send(with_key(body.clone(), "k-1")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = h.send(with_key(body.clone(), "k-1")).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body, "a replay returns the very same key");
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let listed = h.send(get("/v1/api-keys", Some(&h.admin))).await;
    let named_once = listed.body["keys"]
        .as_array()
        .map(|keys| keys.iter().filter(|k| k["name"] == "once").count());
    assert_eq!(named_once, Some(1), "the replay created nothing");

    let other = h
        .send(with_key(
            json!({"name": "twice", "scopes": ["audit:read"]}),
            "k-1",
        ))
        .await;
    assert_problem(&other, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_key = h.send(with_key(body, "has space")).await;
    assert_problem(&bad_key, StatusCode::BAD_REQUEST);
}

async fn request_ids_are_kept_or_made(h: Harness) {
    let mut req = get("/health/live", None);
    req.headers_mut()
        .insert("x-request-id", "abc-123".parse().expect("header"));
    let kept = h.send(req).await;
    assert_eq!(
        kept.headers.get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"abc-123"[..])
    );
    let made = h.send(get("/health/live", None)).await;
    let id = made
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
}

async fn health_and_readiness_report_the_database(h: Harness) {
    let health = h.send(get("/health", None)).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "up");
    assert_eq!(health.body["components"]["database"]["status"], "up");
    assert!(
        health.body["resident_memory_bytes"]
            .as_u64()
            .is_some_and(|b| b > 0)
    );
    assert_eq!(
        h.send(get("/health/ready", None)).await.status,
        StatusCode::OK
    );
    let metrics = h
        .app
        .clone()
        .oneshot(get("/metrics", None))
        .await
        .expect("infallible");
    let text = metrics
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("palisade_http_requests_total"), "{text}");
    let _ = &h.state;
}

async fn audit_appends_are_sequenced_signed_and_provable(h: Harness) {
    use base64::Engine as _;
    use palisade_audit::checkpoint::{Checkpoint, NoteVerifier};
    use palisade_audit::merkle::{leaf_hash, verify_consistency, verify_inclusion};
    let b64 = |s: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(s.as_str().unwrap_or_default())
            .unwrap_or_default()
    };
    let (_, writer) = h.create_key(&["audit:write", "audit:read"]).await;
    let event = |i: usize| json!({"action": "auth.login", "actor": {"id": format!("user-{i}"), "ip": "10.0.0.1"}, "outcome": "success", "metadata": {"n": i}});

    let single = h
        .send(post("/v1/audit/events", Some(&writer), event(0)))
        .await;
    assert_eq!(single.status, StatusCode::CREATED, "{}", single.body);
    let batch = h
        .send(post(
            "/v1/audit/events",
            Some(&writer),
            json!({"events": (1..6).map(event).collect::<Vec<_>>()}),
        ))
        .await;
    assert_eq!(batch.status, StatusCode::CREATED, "{}", batch.body);
    let first = single.body["events"][0]["index"]
        .as_u64()
        .unwrap_or(u64::MAX);
    let indexes: Vec<u64> = batch.body["events"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["index"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(
        indexes,
        (first + 1..first + 6).collect::<Vec<_>>(),
        "contiguous, in request order"
    );

    let key = h.text(get("/v1/audit/key", Some(&writer))).await;
    let verifier = NoteVerifier::from_verifier_key(key.trim()).expect("verifier key parses");
    let note = h.text(get("/v1/audit/checkpoint", Some(&writer))).await;
    let checkpoint = Checkpoint::open(&note, &verifier).expect("checkpoint signature verifies");
    assert_eq!(checkpoint.origin, "test.local/audit");
    assert!(checkpoint.size >= first + 6);

    for index in first..first + 6 {
        let proof = h
            .send(get(
                &format!(
                    "/v1/audit/proofs/inclusion?index={index}&tree_size={}",
                    checkpoint.size
                ),
                Some(&writer),
            ))
            .await;
        assert_eq!(proof.status, StatusCode::OK, "{}", proof.body);
        let hashes: Vec<Vec<u8>> = proof.body["hashes"]
            .as_array()
            .map(|a| a.iter().map(b64).collect())
            .unwrap_or_default();
        let leaf = h
            .bytes(get(&format!("/v1/audit/leaves/{index}"), Some(&writer)))
            .await;
        assert_eq!(
            b64(&proof.body["leaf_hash"]),
            leaf_hash(&leaf).to_vec(),
            "leaf bytes hash to the proven leaf hash"
        );
        verify_inclusion(
            index,
            checkpoint.size,
            &leaf_hash(&leaf),
            &hashes,
            &checkpoint.root,
        )
        .expect("inclusion proof verifies");
    }
    let old_size = first + 1;
    let proof = h
        .send(get(
            &format!(
                "/v1/audit/proofs/consistency?from={old_size}&to={}",
                checkpoint.size
            ),
            Some(&writer),
        ))
        .await;
    assert_eq!(proof.status, StatusCode::OK, "{}", proof.body);
    let hashes: Vec<Vec<u8>> = proof.body["hashes"]
        .as_array()
        .map(|a| a.iter().map(b64).collect())
        .unwrap_or_default();
    let old_root = h
        .state
        .audit
        .store()
        .read_hashes(&palisade_audit::merkle::root_nodes(old_size))
        .await
        .expect("hashes");
    let old_root = palisade_audit::merkle::assemble_root(old_size, &old_root).expect("root");
    verify_consistency(
        old_size,
        checkpoint.size,
        &hashes,
        &old_root,
        &checkpoint.root,
    )
    .expect("consistency proof verifies");

    for bad in [
        format!(
            "/v1/audit/proofs/inclusion?index={}&tree_size={}",
            checkpoint.size, checkpoint.size
        ),
        format!(
            "/v1/audit/proofs/inclusion?index=0&tree_size={}",
            checkpoint.size + 1
        ),
        format!("/v1/audit/proofs/consistency?from={}&to=1", checkpoint.size),
        "/v1/audit/proofs/consistency?from=0&to=1".to_owned(),
        "/v1/audit/proofs/inclusion?index=-1&tree_size=2".to_owned(),
    ] {
        assert_problem(
            &h.send(get(&bad, Some(&writer))).await,
            StatusCode::BAD_REQUEST,
        );
    }
}

async fn audit_rejects_bad_events_and_writes_nothing(h: Harness) {
    let (_, writer) = h.create_key(&["audit:write", "audit:read"]).await;
    // Key creation is itself audited: create every key before measuring.
    let (_, reader) = h.create_key(&["audit:read"]).await;
    let size_before = h.state.audit.tree_size().await.expect("size");
    let good = json!({"action": "doc.read", "actor": {"id": "u"}, "outcome": "success"});
    let cases = [
        (
            json!({"events": [good.clone(), {"action": "doc.read", "actor": {"id": "u"}, "outcome": "maybe"}]}),
            "events[1].outcome",
        ),
        (
            json!({"action": "doc.read", "actor": {"id": 5}, "outcome": "success"}),
            "actor.id",
        ),
        (
            json!({"action": "doc.read", "actor": {"id": "u"}, "outcome": "success", "metadata": {"x": "y".repeat(20_000)}}),
            "events[0].metadata",
        ),
        (json!({"events": vec![good.clone(); 1001]}), "events"),
        (json!({"events": []}), "events"),
        (
            json!({"action": "doc.read", "actor": {"id": "u"}, "outcome": "success", "surprise": 1}),
            "surprise",
        ),
    ];
    for (body, field) in cases {
        let answer = h.send(post("/v1/audit/events", Some(&writer), body)).await;
        assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY);
        let named = answer.body["errors"][0]["field"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(named, field, "{}", answer.body);
    }
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!([deep]);
    }
    let answer = h.send(post("/v1/audit/events", Some(&writer), json!({"action": "a", "actor": {"id": "u"}, "outcome": "success", "metadata": {"d": deep}}))).await;
    assert!(
        answer.status == StatusCode::BAD_REQUEST
            || answer.status == StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.status
    );
    let other_tenant = h.send(post("/v1/audit/events", Some(&writer), json!({"tenant": "someone-else", "action": "a", "actor": {"id": "u"}, "outcome": "success"}))).await;
    assert_problem(&other_tenant, StatusCode::FORBIDDEN);
    assert_problem(
        &h.send(post("/v1/audit/events", Some(&reader), good)).await,
        StatusCode::FORBIDDEN,
    );
    assert_eq!(
        h.state.audit.tree_size().await.expect("size"),
        size_before,
        "nothing half-written"
    );
}

async fn audit_is_idempotent_by_event_id_and_isolated_by_tenant(h: Harness) {
    let (_, writer) = h.create_key(&["audit:write", "audit:read"]).await;
    let id = uuid::Uuid::now_v7();
    let event = json!({"id": id, "action": "doc.delete", "actor": {"id": "u"}, "resource": {"type": "doc", "id": "7"}, "outcome": "denied"});
    let first = h
        .send(post("/v1/audit/events", Some(&writer), event.clone()))
        .await;
    let again = h.send(post("/v1/audit/events", Some(&writer), event)).await;
    assert_eq!(
        first.body["events"][0]["index"],
        again.body["events"][0]["index"]
    );
    let fetched = h
        .send(get(&format!("/v1/audit/events/{id}"), Some(&writer)))
        .await;
    assert_eq!(fetched.body["event"]["resource"]["id"], "7");

    let other = h
        .send(post(
            "/v1/api-keys",
            Some(&h.admin),
            json!({"name": "b", "scopes": ["audit:read", "audit:write"], "tenant": "tenant-b"}),
        ))
        .await;
    let other = other.body["secret"].as_str().unwrap_or_default().to_owned();
    assert_problem(
        &h.send(get(&format!("/v1/audit/events/{id}"), Some(&other)))
            .await,
        StatusCode::NOT_FOUND,
    );
    let index = first.body["events"][0]["index"]
        .as_u64()
        .unwrap_or_default();
    assert_problem(
        &h.send(get(&format!("/v1/audit/leaves/{index}"), Some(&other)))
            .await,
        StatusCode::NOT_FOUND,
    );
    let theirs = h
        .send(get("/v1/audit/events?action=doc", Some(&other)))
        .await;
    assert_eq!(theirs.body["events"].as_array().map(Vec::len), Some(0));
    assert_problem(
        &h.send(get("/v1/audit/events?tenant=default", Some(&other)))
            .await,
        StatusCode::FORBIDDEN,
    );
}

async fn audit_query_filters_and_pages_without_gaps(h: Harness) {
    let (_, writer) = h.create_key(&["audit:write", "audit:read"]).await;
    let events: Vec<Value> = (0..25)
        .map(|i| json!({"action": if i % 2 == 0 { "auth.login" } else { "authz.check" }, "actor": {"id": format!("a{}", i % 3)}, "outcome": if i % 5 == 0 { "failure" } else { "success" }}))
        .collect();
    assert_eq!(
        h.send(post(
            "/v1/audit/events",
            Some(&writer),
            json!({"events": events})
        ))
        .await
        .status,
        StatusCode::CREATED
    );
    // "auth" matches auth.login but not authz.check: prefixes end at dots.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("/v1/audit/events?action=auth&limit=4&cursor={c}"),
            None => "/v1/audit/events?action=auth&limit=4".to_owned(),
        };
        let page = h.send(get(&url, Some(&writer))).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for e in page.body["events"].as_array().cloned().unwrap_or_default() {
            assert_eq!(e["event"]["action"], "auth.login");
            seen.push(e["index"].as_u64().unwrap_or_default());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 13);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, no duplicates"
    );
    let failures = h
        .send(get(
            "/v1/audit/events?outcome=failure&actor=a0",
            Some(&writer),
        ))
        .await;
    assert_eq!(failures.body["events"].as_array().map(Vec::len), Some(2)); // i = 0, 15
    assert_problem(
        &h.send(get("/v1/audit/events?cursor=garbage", Some(&writer)))
            .await,
        StatusCode::BAD_REQUEST,
    );
    assert_problem(
        &h.send(get("/v1/audit/events?limit=0", Some(&writer))).await,
        StatusCode::BAD_REQUEST,
    );
}

async fn api_key_changes_are_audited(h: Harness) {
    let (id, _) = h.create_key(&["audit:read"]).await;
    let found = h
        .send(get(
            &format!("/v1/audit/events?action=palisade.api_key&resource_id={id}"),
            Some(&h.admin),
        ))
        .await;
    assert_eq!(
        found.body["events"].as_array().map(Vec::len),
        Some(1),
        "{}",
        found.body
    );
    assert_eq!(
        found.body["events"][0]["event"]["action"],
        "palisade.api_key.create"
    );
}

macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod on_sqlite {
            use super::*;
            $( #[tokio::test] async fn $scenario() { super::$scenario(sqlite().await).await } )*
        }
        mod on_postgres {
            use super::*;
            $( #[tokio::test] async fn $scenario() { super::$scenario(postgres().await).await } )*
        }
    };
}

on_both_backends!(
    bad_input_gets_the_right_problem,
    credentials_are_checked,
    idempotency_key_replays_and_refuses_reuse,
    request_ids_are_kept_or_made,
    health_and_readiness_report_the_database,
    audit_appends_are_sequenced_signed_and_provable,
    audit_rejects_bad_events_and_writes_nothing,
    audit_is_idempotent_by_event_id_and_isolated_by_tenant,
    audit_query_filters_and_pages_without_gaps,
    api_key_changes_are_audited,
);

/// A writer that keeps every log line in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_api_key_is_ever_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = sqlite().await;
    let (_, created) = h.create_key(&["audit:write"]).await;
    let wrong = "pal_wrong-key-wrong-key-wrong-key-wrong-key";
    h.send(get("/v1/api-keys", Some(&h.admin))).await;
    h.send(get("/v1/api-keys", Some(&created))).await;
    h.send(get("/v1/api-keys", Some(wrong))).await;
    h.send(raw_post(
        "/v1/api-keys",
        Some(&h.admin),
        "application/json",
        "{oops".into(),
    ))
    .await;

    let logs = String::from_utf8_lossy(&captured.0.lock().map(|b| b.clone()).unwrap_or_default())
        .into_owned();
    assert!(
        logs.contains("request finished"),
        "the capture works: {logs}"
    );
    for secret in [h.admin.as_str(), created.as_str(), wrong] {
        assert!(!logs.contains(secret), "a key reached the logs");
    }
}
