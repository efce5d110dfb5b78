//! Personal data in audit events over HTTP, on both backends (keyring state in the
//! same database, KEKs in a local key file): `pii` is sealed before the leaf is
//! built, shown decrypted only to `audit:pii` keys, redacted to other readers (in
//! events, queries and every export format), erased for everyone after
//! `DELETE /v1/crypto/subjects/{id}`, while proofs and `audit verify` still pass.
//! Bad input is a 422 problem naming the field, never storing anything.

#[macro_use]
mod common;

use axum::Router;
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use palisade_audit::checkpoint::{Checkpoint, NoteVerifier};
use palisade_audit::merkle::{leaf_hash, verify_inclusion};
use palisade_audit::verify::Verifier;
use palisade_auth::{NewApiKey, Scopes};
use palisade_core::principal::TenantId;
use palisade_crypto::kms::LocalKms;
use palisade_crypto::{Keyring, KeyringSettings, KeyringStore, Kms, MasterKey};
use palisade_http::api_router;
use serde_json::{Value, json};

const EMAIL: &str = "alice.liddell@example.com";
const PHONE: &str = "+44 20 7946 0958";
const NAME: &str = "Alice Pleasance Liddell";

fn pii() -> Value {
    json!({
        "email": EMAIL,
        "phone": PHONE,
        "name": NAME,
        "birth_date": "1852-05-04",
        "address": {"city": "Oxford", "country": "GB"},
    })
}

struct Client {
    app: Router,
    key: String,
}

impl Client {
    async fn send(&self, method: &str, uri: &str, body: Option<Value>) -> common::Answer {
        common::send(&self.app, common::request(method, uri, &self.key, body)).await
    }
}

struct Setup {
    app: Router,
    backend: common::Backend,
    _dir: tempfile::TempDir,
}

/// The router with a keyring installed (`with_crypto`, as `palisade serve` does),
/// which also gives the audit log its cipher of personal data.
async fn setup(backend: common::Backend) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let master = MasterKey::generate().expect("master key");
    let kms = Kms::Local(LocalKms::open(&dir.path().join("keys.sealed"), &master).expect("kms"));
    let keyring = Keyring::open(
        kms,
        KeyringStore::database(backend.state.db.clone()),
        backend.state.clock.clone(),
        KeyringSettings::default(),
    )
    .await
    .expect("keyring");
    let state = backend.state.clone().with_crypto(keyring);
    assert!(state.audit.has_pii_cipher());
    Setup {
        app: api_router(state),
        backend,
        _dir: dir,
    }
}

impl Setup {
    async fn client(&self, scopes: &[&str]) -> Client {
        let issued = self
            .backend
            .state
            .api_keys
            .create(NewApiKey {
                name: format!("{scopes:?}"),
                tenant: TenantId::default_tenant(),
                scopes: Scopes::parse(scopes.iter().copied()).expect("scopes"),
                expires_at_ms: None,
            })
            .await
            .expect("api key");
        Client {
            app: self.app.clone(),
            key: issued.secret.expose().to_owned(),
        }
    }
}

fn text(body: &Value) -> String {
    match body {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn leaks(body: &Value) -> bool {
    let text = text(body);
    [EMAIL, PHONE, NAME, "Oxford"]
        .iter()
        .any(|secret| text.contains(secret))
}

/// The first event of `GET /v1/audit/stream?start=earliest`, read from the
/// endless body within a bounded wait.
async fn first_streamed(app: &Router, key: &str) -> Value {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = common::request("GET", "/v1/audit/stream?start=earliest", key, None);
    let response = app.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut text = String::new();
    let read = async {
        loop {
            // Only complete events (each ends with a blank line).
            let complete = &text[..text.rfind("\n\n").unwrap_or(0)];
            if let Some(line) = complete.lines().find_map(|l| l.strip_prefix("data:")) {
                return serde_json::from_str::<Value>(line.trim()).expect("event JSON");
            }
            let frame = body.frame().await.expect("stream open").expect("frame");
            if let Ok(data) = frame.into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("an event within 10 s")
}

on_both_backends!(
    pii_over_http_is_sealed_scoped_and_erased_by_shredding,
    bad_pii_is_a_422_naming_the_field_and_stores_nothing,
);

async fn pii_over_http_is_sealed_scoped_and_erased_by_shredding(backend: common::Backend) {
    let s = setup(backend).await;
    let writer = s.client(&["audit:write"]).await;
    let reader = s.client(&["audit:read"]).await;
    let pii_reader = s.client(&["audit:read", "audit:pii"]).await;
    let crypto_admin = s.client(&["crypto:admin"]).await;

    let appended = writer
        .send(
            "POST",
            "/v1/audit/events?wait=sequenced",
            Some(json!({"events": [
                {"action": "user.profile.read", "actor": {"id": "agent-7"}, "outcome": "success",
                 "subject": "alice", "pii": pii()},
                {"action": "user.list", "actor": {"id": "agent-7"}, "outcome": "success"},
            ]})),
        )
        .await;
    assert_eq!(appended.status, StatusCode::CREATED, "{}", appended.body);
    let id = appended.body["events"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(appended.body["events"][0]["index"], 0);
    assert_eq!(appended.body["tree_size"], 2);

    // The leaf: ciphertext and subject, no plaintext.
    let leaf = reader.send("GET", "/v1/audit/leaves/0", None).await;
    assert_eq!(leaf.status, StatusCode::OK);
    assert!(!leaks(&leaf.body), "{}", leaf.body);
    assert!(text(&leaf.body).contains(r#""pii":"pal1."#));
    assert!(text(&leaf.body).contains(r#""subject":"alice""#));

    // One event and queries: decrypted with audit:pii, redacted without.
    let uri = format!("/v1/audit/events/{id}");
    let seen = pii_reader.send("GET", &uri, None).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.body["event"]["pii"], pii());
    assert_eq!(seen.body["event"]["subject"], "alice");
    let redacted = reader.send("GET", &uri, None).await;
    assert_eq!(redacted.body["event"]["pii"], json!({"redacted": true}));
    assert!(!leaks(&redacted.body) && !text(&redacted.body).contains("pal1."));
    let page = reader.send("GET", "/v1/audit/events", None).await;
    assert_eq!(
        page.body["events"][1]["event"]["pii"],
        json!({"redacted": true})
    );
    assert!(page.body["events"][0]["event"].get("pii").is_none());
    assert!(!leaks(&page.body));
    let page = pii_reader.send("GET", "/v1/audit/events", None).await;
    assert_eq!(page.body["events"][1]["event"]["pii"], pii());

    // The live stream (SSE) resolves the same way.
    let streamed = first_streamed(&s.app, &reader.key).await;
    assert_eq!(streamed["event"]["pii"], json!({"redacted": true}));
    assert!(!leaks(&streamed));
    let streamed = first_streamed(&s.app, &pii_reader.key).await;
    assert_eq!(streamed["event"]["pii"], pii());

    // Exports: every format redacts without the scope; OCSF carries the view.
    for format in ["ndjson", "ocsf", "cef"] {
        let export = reader
            .send("GET", &format!("/v1/audit/export?format={format}"), None)
            .await;
        assert_eq!(export.status, StatusCode::OK, "{format}");
        assert!(!leaks(&export.body), "{format}: {}", export.body);
        assert!(!text(&export.body).contains("pal1."), "{format}");
    }
    let export = pii_reader
        .send("GET", "/v1/audit/export?format=ocsf", None)
        .await;
    let first: Value = serde_json::from_str(text(&export.body).lines().next().expect("a line"))
        .expect("OCSF JSON");
    assert_eq!(first["unmapped"]["palisade"]["pii"], pii());
    let export = pii_reader
        .send("GET", "/v1/audit/export?format=ndjson", None)
        .await;
    assert!(text(&export.body).contains(EMAIL));

    // Shredding the subject erases the data for every reader.
    let shred = crypto_admin
        .send("DELETE", "/v1/crypto/subjects/alice", None)
        .await;
    assert_eq!(shred.status, StatusCode::NO_CONTENT, "{}", shred.body);
    for client in [&reader, &pii_reader] {
        let erased = client.send("GET", &uri, None).await;
        assert_eq!(erased.status, StatusCode::OK);
        assert_eq!(erased.body["event"]["pii"], json!({"erased": true}));
        let export = client
            .send("GET", "/v1/audit/export?format=ndjson", None)
            .await;
        assert!(!leaks(&export.body));
        assert!(text(&export.body).contains(r#""pii":{"erased":true}"#));
    }

    // Proofs still hold: the inclusion proof of the erased event's unchanged leaf
    // checks against the signed checkpoint (which now also covers the audit event
    // of the shredding), and the whole log verifies.
    let key = reader.send("GET", "/v1/audit/key", None).await;
    let verifier = NoteVerifier::from_verifier_key(text(&key.body).trim()).expect("verifier key");
    let note = reader.send("GET", "/v1/audit/checkpoint", None).await;
    let checkpoint = Checkpoint::open(&text(&note.body), &verifier).expect("signed");
    assert!(checkpoint.size >= 3, "the shredding was audited");
    let proof = reader
        .send(
            "GET",
            &format!(
                "/v1/audit/proofs/inclusion?index=0&tree_size={}",
                checkpoint.size
            ),
            None,
        )
        .await;
    assert_eq!(proof.status, StatusCode::OK, "{}", proof.body);
    let after = reader.send("GET", "/v1/audit/leaves/0", None).await;
    assert_eq!(
        text(&after.body),
        text(&leaf.body),
        "the leaf never changes"
    );
    let hash = leaf_hash(text(&after.body).as_bytes());
    assert_eq!(proof.body["leaf_hash"], STANDARD.encode(hash));
    let path: Vec<Vec<u8>> = proof.body["hashes"]
        .as_array()
        .expect("hashes")
        .iter()
        .map(|h| STANDARD.decode(h.as_str().expect("b64")).expect("b64"))
        .collect();
    assert_eq!(
        verify_inclusion(0, checkpoint.size, &hash, &path, &checkpoint.root),
        Ok(())
    );
    let store = s.backend.state.audit.store();
    let verified = Verifier::new(store, &verifier)
        .verify(None, |_, _| {})
        .await
        .expect("verifies after shredding");
    assert_eq!(verified.tree_size, checkpoint.size);
}

async fn bad_pii_is_a_422_naming_the_field_and_stores_nothing(backend: common::Backend) {
    let s = setup(backend).await;
    let writer = s.client(&["audit:write"]).await;
    let base = || json!({"action": "user.read", "actor": {"id": "agent-7"}, "outcome": "success"});
    let with = |patch: Value| {
        let mut event = base();
        if let (Some(event), Some(patch)) = (event.as_object_mut(), patch.as_object()) {
            event.extend(patch.clone());
        }
        event
    };
    let cases = [
        (with(json!({"pii": {"email": EMAIL}})), "pii"),
        (
            with(json!({"subject": "a\u{1}b", "pii": {"email": EMAIL}})),
            "subject",
        ),
        (
            with(json!({"subject": 42, "pii": {"email": EMAIL}})),
            "subject",
        ),
        (with(json!({"subject": "alice", "pii": EMAIL})), "pii"),
        (with(json!({"subject": "alice", "pii": [EMAIL]})), "pii"),
        (
            with(json!({"subject": "alice", "pii": {"email": EMAIL, "blob": "x".repeat(9000)}})),
            "pii",
        ),
    ];
    for (event, field) in cases {
        for body in [event.clone(), json!({"events": [base(), event.clone()]})] {
            let answer = writer.send("POST", "/v1/audit/events", Some(body)).await;
            assert_eq!(
                answer.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{event}: {}",
                answer.body
            );
            assert!(
                answer.body["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("https://")),
                "{}",
                answer.body
            );
            let named = answer.body["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["field"].as_str())
                .any(|f| f.ends_with(field));
            assert!(named, "{field}: {}", answer.body);
            assert!(!leaks(&answer.body), "{}", answer.body);
        }
    }
    assert_eq!(s.backend.state.audit.tree_size().await.expect("size"), 0);
}
