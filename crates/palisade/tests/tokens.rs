//! Tokens across real `palisade serve` processes sharing PostgreSQL: keys are
//! shared (a token of one verifies on the other), a revocation on one is
//! enforced by the other within a second, and a refresh token replayed on the
//! other instance still revokes its session.

mod support;

use palisade_testkit::TestDatabase;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use support::{Client, Twins};

const PROMPT: Duration = Duration::from_secs(15);

/// Waits until the token service is up (it opens after migrations).
async fn issue(client: &Client, subject: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = client
            .post(
                "/v1/auth/tokens",
                &json!({"subject": subject, "audience": "default"}),
            )
            .await;
        if status == 200 {
            return body;
        }
        assert!(
            started.elapsed() < PROMPT,
            "no token service: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn verdict(client: &Client, token: &Value) -> Value {
    let (status, body) = client
        .post(
            "/v1/auth/tokens/verify",
            &json!({"token": token, "audience": "default"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_revocations_and_replays_hold_across_instances() {
    let pg = TestDatabase::create().await.expect("test schema");
    // The instances of one deployment share the master key and the key file
    // (the signing keys in the database are sealed with them).
    let shared = tempfile::tempdir().expect("temp dir");
    let env = HashMap::from([
        ("PALISADE_DATABASE__URL".to_owned(), pg.url()),
        (
            "PALISADE_MASTER_KEY".to_owned(),
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_owned(),
        ),
        (
            "PALISADE_CRYPTO__KEY_FILE".to_owned(),
            shared.path().join("keys.sealed").display().to_string(),
        ),
    ]);
    let twins = Twins::start(&env, &HashMap::new()).await;
    let (a, b) = (&twins.a, &twins.b);

    // One key ring: what A signs, B verifies; both publish the same JWKS.
    let pair = issue(a, "alice").await;
    issue(b, "warm-up").await;
    assert_eq!(verdict(b, &pair["access_token"]).await["valid"], true);
    let (_, jwks_a) = a.get("/.well-known/jwks.json").await;
    let (_, jwks_b) = b.get("/.well-known/jwks.json").await;
    assert_eq!(jwks_a, jwks_b);

    // Revoked on A: refused by A at once and by B within a second.
    let (status, body) = a
        .post(
            "/v1/auth/tokens/revoke",
            &json!({"token": pair["access_token"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(verdict(a, &pair["access_token"]).await["reason"], "revoked");
    let started = Instant::now();
    while verdict(b, &pair["access_token"]).await["valid"] == true {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "B still accepts a revoked token"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "revocation reached the other instance in {:?}",
        started.elapsed()
    );

    // Refreshed on A, replayed on B: the session dies everywhere.
    let session = issue(a, "bob").await;
    let (status, next) = a
        .post(
            "/v1/auth/tokens/refresh",
            &json!({"refresh_token": session["refresh_token"]}),
        )
        .await;
    assert_eq!(status, 200, "{next}");
    let (status, replay) = b
        .post(
            "/v1/auth/tokens/refresh",
            &json!({"refresh_token": session["refresh_token"]}),
        )
        .await;
    assert_eq!(status, 400, "{replay}");
    assert!(
        replay["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/refresh_reused"))
    );
    let started = Instant::now();
    while verdict(a, &next["access_token"]).await["valid"] == true {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "A still accepts the replayed session"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
