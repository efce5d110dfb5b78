//! `/v1/crypto` driven as a client would, on both backends (keyring state in
//! the same SQLite file or PostgreSQL schema as everything else, KEKs in a
//! local key file): round trips, tenant isolation, fields, blind indexes,
//! rotation, shredding, the audit events of both, and tampered input that
//! is always a 400/422 problem, never a 500 and never plaintext.

#[macro_use]
mod common;

use axum::Router;
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use palisade_auth::{NewApiKey, Scopes};
use palisade_core::principal::TenantId;
use palisade_crypto::kms::LocalKms;
use palisade_crypto::{Keyring, KeyringSettings, KeyringStore, Kms, MasterKey};
use palisade_http::api_router;
use serde_json::{Value, json};

struct Client {
    app: Router,
    key: String,
}

impl Client {
    async fn send(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let answer = common::send(&self.app, common::request(method, uri, &self.key, body)).await;
        (answer.status, answer.body)
    }

    async fn encrypt(&self, body: Value) -> String {
        let (status, answer) = self.send("POST", "/v1/crypto/encrypt", Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["ciphertext"]
            .as_str()
            .expect("ciphertext")
            .to_owned()
    }

    async fn decrypt(&self, ciphertext: &str, aad: Option<&str>) -> (StatusCode, Value) {
        let mut body = json!({"ciphertext": ciphertext});
        if let Some(aad) = aad {
            body["aad"] = json!(aad);
        }
        self.send("POST", "/v1/crypto/decrypt", Some(body)).await
    }
}

/// The app with a keyring on the backend's database, its key file in a
/// temporary directory (kept alive by the returned guard), key `default`
/// created as `palisade init` does.
struct Setup {
    admin: Client,
    app: Router,
    keyring: Keyring,
    backend: common::Backend,
    _dir: tempfile::TempDir,
}

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
    keyring.ensure_key("default").await.expect("default key");
    let state = backend.state.clone().with_crypto(keyring.clone());
    let app = api_router(state);
    Setup {
        admin: Client {
            app: app.clone(),
            key: backend.admin.clone(),
        },
        app,
        keyring,
        backend,
        _dir: dir,
    }
}

impl Setup {
    /// A client with a new API key of `scopes` in `tenant`.
    async fn client(&self, tenant: &str, scopes: &[&str]) -> Client {
        let issued = self
            .backend
            .state
            .api_keys
            .create(NewApiKey {
                name: format!("{tenant} {scopes:?}"),
                tenant: TenantId::parse(tenant).expect("tenant"),
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

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// A problem answer: 4xx, problem+json shape, no plaintext anywhere in it.
fn assert_problem(status: StatusCode, body: &Value, plaintext: &str, what: &str) {
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
        "{what}: {status} {body}"
    );
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("https://")),
        "{what}: {body}"
    );
    let text = body.to_string();
    assert!(
        !text.contains(plaintext),
        "{what}: the answer leaks the plaintext: {text}"
    );
    assert!(
        !text.contains(&b64(plaintext.as_bytes())),
        "{what}: the answer leaks the plaintext"
    );
}

on_both_backends!(
    encrypts_and_decrypts_with_aad_and_refuses_other_aad_and_other_tenants,
    every_tampered_ciphertext_is_a_4xx_problem_without_plaintext,
    bad_requests_get_clear_problems,
    fields_round_trip_and_tampered_fields_are_refused,
    blind_indexes_match_equal_values_per_tenant_and_keep_their_settings,
    rotation_keeps_old_data_readable_and_is_audited,
    a_shredded_subject_is_gone_and_the_shredding_is_audited,
    scopes_are_enforced_and_an_unconfigured_instance_answers_503,
    a_rewrap_job_moves_stored_subject_keys_to_the_new_version_and_is_audited,
);

async fn encrypts_and_decrypts_with_aad_and_refuses_other_aad_and_other_tenants(
    backend: common::Backend,
) {
    let s = setup(backend).await;
    let user = s.client("default", &["crypto:use"]).await;
    let aad = b64(b"users/42/email");
    let ciphertext = user
        .encrypt(json!({"plaintext": b64(b"alice@example.com"), "aad": aad}))
        .await;
    assert!(ciphertext.starts_with("pal1."), "{ciphertext}");
    let (status, body) = user.decrypt(&ciphertext, Some(&aad)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["plaintext"], b64(b"alice@example.com"));

    // Other AAD, no AAD, another tenant: 422, no plaintext.
    for (client, aad) in [(&user, Some(b64(b"users/43/email"))), (&user, None)] {
        let (status, body) = client.decrypt(&ciphertext, aad.as_deref()).await;
        assert_problem(status, &body, "alice@example.com", "other aad");
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let other_tenant = s.client("acme", &["crypto:use"]).await;
    let (status, body) = other_tenant.decrypt(&ciphertext, Some(&aad)).await;
    assert_problem(status, &body, "alice@example.com", "other tenant");
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Empty plaintexts and named keys work too; Palisade's own keys are refused.
    let empty = user
        .encrypt(json!({"key": "default", "plaintext": ""}))
        .await;
    assert_eq!(user.decrypt(&empty, None).await.1["plaintext"], "");
    let (status, body) = user
        .send(
            "POST",
            "/v1/crypto/encrypt",
            Some(json!({"key": "palisade-internal", "plaintext": ""})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = user
        .send(
            "POST",
            "/v1/crypto/encrypt",
            Some(json!({"key": "nope", "plaintext": ""})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // A ciphertext sealed by Palisade's own sealer does not open over HTTP.
    let sealed = palisade_crypto::SecretSealer::new(s.keyring.clone())
        .seal_text(b"", b"internal secret")
        .await
        .expect("seal");
    let (status, body) = user.decrypt(&sealed, None).await;
    assert_problem(status, &body, "internal secret", "sealed secret");
}

async fn every_tampered_ciphertext_is_a_4xx_problem_without_plaintext(backend: common::Backend) {
    let s = setup(backend).await;
    let user = s.client("default", &["crypto:use"]).await;
    let secret = "correct horse battery staple";
    for subject in [None, Some("user-1")] {
        let mut request = json!({"plaintext": b64(secret.as_bytes()), "aad": b64(b"ctx")});
        if let Some(subject) = subject {
            request["subject"] = json!(subject);
        }
        let ciphertext = user.encrypt(request).await;
        let binary = URL_SAFE_NO_PAD
            .decode(ciphertext.trim_start_matches("pal1."))
            .expect("base64url");
        // Every byte of the binary form flipped (bit 0 and bit 7), every
        // truncation, and an extra byte: each a problem.
        let mut variants = Vec::new();
        for index in 0..binary.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = binary.clone();
                bad[index] ^= bit;
                variants.push((format!("byte {index} ^ {bit:#x}"), bad));
            }
        }
        for len in (0..binary.len()).step_by(7) {
            variants.push((format!("truncated to {len}"), binary[..len].to_vec()));
        }
        let mut longer = binary.clone();
        longer.push(0);
        variants.push(("one byte longer".into(), longer));
        for (what, bad) in variants {
            let text = format!("pal1.{}", URL_SAFE_NO_PAD.encode(&bad));
            let (status, body) = user.decrypt(&text, Some(&b64(b"ctx"))).await;
            assert_problem(status, &body, secret, &format!("{subject:?} {what}"));
        }
        // Text-level damage.
        for bad in [
            ciphertext.replacen("pal1.", "pal2.", 1),
            format!("{ciphertext}="),
            ciphertext[..ciphertext.len() - 1].to_owned(),
            String::new(),
            "not a ciphertext".to_owned(),
        ] {
            let (status, body) = user.decrypt(&bad, Some(&b64(b"ctx"))).await;
            assert_problem(status, &body, secret, "text");
        }
        let (status, body) = user.decrypt(&ciphertext, Some(&b64(b"ctx"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

async fn bad_requests_get_clear_problems(backend: common::Backend) {
    let s = setup(backend).await;
    let user = s.client("default", &["crypto:use"]).await;
    for (uri, body, field) in [
        (
            "/v1/crypto/encrypt",
            json!({"plaintext": "%%%"}),
            "plaintext",
        ),
        (
            "/v1/crypto/encrypt",
            json!({"plaintext": "", "aad": "%%%"}),
            "aad",
        ),
        (
            "/v1/crypto/encrypt",
            json!({"plaintext": "", "key": "a b"}),
            "key",
        ),
        (
            "/v1/crypto/encrypt",
            json!({"plaintext": "", "key": "default", "subject": "s"}),
            "subject",
        ),
        (
            "/v1/crypto/encrypt",
            json!({"plaintext": "", "subject": ""}),
            "subject",
        ),
        (
            "/v1/crypto/fields/encrypt",
            json!({"document": {}, "paths": []}),
            "paths",
        ),
        (
            "/v1/crypto/fields/encrypt",
            json!({"document": {}, "paths": ["email"]}),
            "paths[0]",
        ),
        (
            "/v1/crypto/blind-index",
            json!({"index": "e", "value": "", "length": 40}),
            "length",
        ),
        (
            "/v1/crypto/blind-index",
            json!({"index": "palisade-x", "value": ""}),
            "index",
        ),
        (
            "/v1/crypto/blind-index",
            json!({"index": "bad name", "value": ""}),
            "index",
        ),
    ] {
        let (status, answer) = user.send("POST", uri, Some(body.clone())).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{uri} {body}: {answer}"
        );
        let fields: Vec<&str> = answer["errors"]
            .as_array()
            .map(|e| e.iter().filter_map(|f| f["field"].as_str()).collect())
            .unwrap_or_default();
        assert!(fields.contains(&field), "{uri} {body}: {answer}");
    }
    let (status, answer) = user
        .send(
            "POST",
            "/v1/crypto/encrypt",
            Some(json!({"plaintext": "", "extra": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
}

async fn fields_round_trip_and_tampered_fields_are_refused(backend: common::Backend) {
    let s = setup(backend).await;
    let user = s.client("default", &["crypto:use"]).await;
    let document = json!({
        "id": 42,
        "user": {"email": "alice@example.com", "name": "Alice"},
        "cards": [{"pan": "4111111111111111", "exp": "12/30"}, {"pan": "5500000000000004", "exp": "01/29"}],
    });
    let paths = json!(["$.user.email", "$.cards[*].pan"]);
    let aad = b64(b"customers/42");
    let (status, sealed) = user
        .send(
            "POST",
            "/v1/crypto/fields/encrypt",
            Some(json!({"document": document, "paths": paths, "aad": aad})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sealed}");
    assert_eq!(sealed["fields"], 3);
    let doc = &sealed["document"];
    assert_eq!(doc["user"]["name"], "Alice");
    assert_eq!(doc["cards"][0]["exp"], "12/30");
    assert!(!doc.to_string().contains("4111111111111111"));
    assert!(
        doc["user"]["email"]
            .as_str()
            .is_some_and(|s| s.starts_with("pal1."))
    );

    let (status, opened) = user
        .send(
            "POST",
            "/v1/crypto/fields/decrypt",
            Some(json!({"document": doc, "paths": paths, "aad": aad})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{opened}");
    assert_eq!(opened["document"], document);
    assert_eq!(opened["fields"], 3);

    // A ciphertext moved to another field, a changed character, a planted
    // plaintext: problems without the plaintext.
    let mut moved = doc.clone();
    moved["user"]["email"] = doc["cards"][0]["pan"].clone();
    let mut changed = doc.clone();
    let email = doc["user"]["email"].as_str().expect("email").to_owned();
    let flipped = if email.ends_with('A') { 'B' } else { 'A' };
    changed["user"]["email"] = json!(format!("{}{flipped}", &email[..email.len() - 1]));
    let mut planted = doc.clone();
    planted["user"]["email"] = json!("mallory@example.com");
    for (what, bad) in [("moved", moved), ("changed", changed), ("planted", planted)] {
        let (status, body) = user
            .send(
                "POST",
                "/v1/crypto/fields/decrypt",
                Some(json!({"document": bad, "paths": paths, "aad": aad})),
            )
            .await;
        assert_problem(status, &body, "4111111111111111", what);
        assert!(
            !body.to_string().contains("alice@example.com"),
            "{what}: {body}"
        );
    }
}

async fn index(client: &Client, body: Value) -> (StatusCode, Value) {
    client
        .send("POST", "/v1/crypto/blind-index", Some(body))
        .await
}

async fn blind_indexes_match_equal_values_per_tenant_and_keep_their_settings(
    backend: common::Backend,
) {
    let s = setup(backend).await;
    let user = s.client("default", &["crypto:use"]).await;
    let settings = json!({"index": "users.email", "value": "  Alice@Example.com ",
        "normalize": {"trim": true, "case_fold": true}, "length": 16});
    let (status, first) = index(&user, settings).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["length"], 16);
    assert_eq!(first["index"].as_str().map(str::len), Some(32));
    let (_, same) = index(
        &user,
        json!({"index": "users.email", "value": "alice@example.com"}),
    )
    .await;
    assert_eq!(same["index"], first["index"]);
    let (_, other) = index(
        &user,
        json!({"index": "users.email", "value": "bob@example.com"}),
    )
    .await;
    assert_ne!(other["index"], first["index"]);
    let acme = s.client("acme", &["crypto:use"]).await;
    let (_, other_tenant) = index(
        &acme,
        json!({"index": "users.email", "value": "alice@example.com"}),
    )
    .await;
    assert_ne!(other_tenant["index"], first["index"]);
    let (status, conflict) = index(
        &user,
        json!({"index": "users.email", "value": "x", "length": 8}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{conflict}");
    assert!(!conflict.to_string().contains("alice"));
}

async fn rotation_keeps_old_data_readable_and_is_audited(backend: common::Backend) {
    let s = setup(backend).await;
    let old = s.admin.encrypt(json!({"plaintext": b64(b"v1")})).await;
    let (status, rotated) = s
        .admin
        .send("POST", "/v1/crypto/keys/default/rotate", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["current_version"], 2);
    let new = s.admin.encrypt(json!({"plaintext": b64(b"v2")})).await;
    assert_ne!(old, new);
    s.keyring.clear_cache();
    assert_eq!(s.admin.decrypt(&old, None).await.1["plaintext"], b64(b"v1"));
    assert_eq!(s.admin.decrypt(&new, None).await.1["plaintext"], b64(b"v2"));

    let (status, keys) = s.admin.send("GET", "/v1/crypto/keys", None).await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    assert_eq!(keys["kms"], "local");
    let default = keys["keys"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["name"] == "default"))
        .expect("default key");
    assert_eq!(default["current_version"], 2);
    assert_eq!(default["versions"][0]["state"], "retired");
    assert_eq!(default["versions"][1]["state"], "active");
    assert!(
        default["versions"][0]["usage"]
            .as_u64()
            .is_some_and(|u| u >= 1)
    );
    let listing = keys.to_string();
    assert!(
        !listing.contains("material") && !listing.contains("wrapped"),
        "{listing}"
    );

    let (status, missing) = s
        .admin
        .send("POST", "/v1/crypto/keys/nope/rotate", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    let (_, events) = s
        .admin
        .send("GET", "/v1/audit/events?action=crypto.key.rotated", None)
        .await;
    let events = events["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"]["resource"]["id"], "default");
    assert_eq!(events[0]["event"]["metadata"]["version"], 2);
}

async fn a_shredded_subject_is_gone_and_the_shredding_is_audited(backend: common::Backend) {
    let s = setup(backend).await;
    let user = s.client("default", &["crypto:use"]).await;
    let acme = s.client("acme", &["crypto:use", "crypto:admin"]).await;
    let mine = user
        .encrypt(json!({"subject": "user-7", "plaintext": b64(b"pii of user 7")}))
        .await;
    let theirs = acme
        .encrypt(json!({"subject": "user-7", "plaintext": b64(b"acme's user 7")}))
        .await;
    let (status, sealed_doc) = user
        .send(
            "POST",
            "/v1/crypto/fields/encrypt",
            Some(json!({"subject": "user-7", "document": {"email": "u7@example.com"}, "paths": ["$.email"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sealed_doc}");

    // Another tenant shredding "user-7" erases its own user 7 only.
    let (status, _) = acme
        .send("DELETE", "/v1/crypto/subjects/user-7", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(user.decrypt(&mine, None).await.0, StatusCode::OK);
    assert_eq!(acme.decrypt(&theirs, None).await.0, StatusCode::GONE);

    let (status, _) = s
        .admin
        .send("DELETE", "/v1/crypto/subjects/user-7", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = user.decrypt(&mine, None).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/erased")),
        "{body}"
    );
    let (status, body) = user
        .send(
            "POST",
            "/v1/crypto/fields/decrypt",
            Some(json!({"document": sealed_doc["document"], "paths": ["$.email"]})),
        )
        .await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    // Idempotent.
    let (status, _) = s
        .admin
        .send("DELETE", "/v1/crypto/subjects/user-7", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (_, events) = s
        .admin
        .send(
            "GET",
            "/v1/audit/events?action=crypto.subject.shredded",
            None,
        )
        .await;
    let events = events["events"].as_array().cloned().unwrap_or_default();
    let destroyed: Vec<(Value, Value)> = events
        .iter()
        .map(|e| {
            (
                e["event"]["resource"]["id"].clone(),
                e["event"]["metadata"]["key_destroyed"].clone(),
            )
        })
        .collect();
    // Newest first: the repeated call found nothing left to destroy.
    assert_eq!(
        destroyed,
        vec![
            (json!("user-7"), json!(false)),
            (json!("user-7"), json!(true))
        ]
    );
}

async fn scopes_are_enforced_and_an_unconfigured_instance_answers_503(backend: common::Backend) {
    let unconfigured = Client {
        app: api_router(backend.state.clone()),
        key: backend.admin.clone(),
    };
    let (status, body) = unconfigured
        .send("POST", "/v1/crypto/encrypt", Some(json!({"plaintext": ""})))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    let s = setup(backend).await;
    let auditor = s.client("default", &["audit:read"]).await;
    let (status, _) = auditor
        .send("POST", "/v1/crypto/encrypt", Some(json!({"plaintext": ""})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let user = s.client("default", &["crypto:use"]).await;
    for (method, uri) in [
        ("GET", "/v1/crypto/keys"),
        ("POST", "/v1/crypto/keys/default/rotate"),
        ("DELETE", "/v1/crypto/subjects/x"),
    ] {
        assert_eq!(
            user.send(method, uri, None).await.0,
            StatusCode::FORBIDDEN,
            "{uri}"
        );
    }
}

async fn a_rewrap_job_moves_stored_subject_keys_to_the_new_version_and_is_audited(
    backend: common::Backend,
) {
    let s = setup(backend).await;
    let mut sealed = Vec::new();
    for i in 0..5 {
        let subject = format!("user-{i}");
        let ct = s
            .admin
            .encrypt(json!({"subject": subject, "plaintext": b64(subject.as_bytes())}))
            .await;
        sealed.push((subject, ct));
    }
    let (status, rotated) = s
        .admin
        .send("POST", "/v1/crypto/keys/palisade-subjects/rotate", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (status, job) = s
        .admin
        .send("POST", "/v1/crypto/keys/palisade-subjects/rewrap", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["total"], 5);
    assert_eq!(job["target_version"], 2);
    let id = job["id"].as_str().expect("job id").to_owned();
    let admin = &s.admin;
    palisade_testkit::eventually(
        std::time::Duration::from_secs(10),
        "rewrap job done",
        || {
            let uri = format!("/v1/crypto/rewrap-jobs/{id}");
            async move {
                let (_, job) = admin.send("GET", &uri, None).await;
                job["state"] == "done"
            }
        },
    )
    .await;
    let (_, done) = s
        .admin
        .send("GET", &format!("/v1/crypto/rewrap-jobs/{id}"), None)
        .await;
    assert_eq!(done["rewrapped"], 5, "{done}");
    assert_eq!(done["phase"], "finished");
    s.keyring.clear_cache();
    for (subject, ct) in &sealed {
        let (status, body) = s.admin.decrypt(ct, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["plaintext"], b64(subject.as_bytes()));
    }
    assert_eq!(
        s.admin
            .send("GET", "/v1/crypto/rewrap-jobs/nope", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.admin
            .send("POST", "/v1/crypto/keys/nope/rewrap", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    palisade_testkit::eventually(
        std::time::Duration::from_secs(5),
        "rewrap audited",
        || async {
            let (_, events) = admin
                .send("GET", "/v1/audit/events?action=crypto.rewrap", None)
                .await;
            let actions: Vec<String> = events["events"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .filter_map(|e| e["event"]["action"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            actions.contains(&"crypto.rewrap.started".to_owned())
                && actions.contains(&"crypto.rewrap.finished".to_owned())
        },
    )
    .await;
}
