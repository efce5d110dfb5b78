//! Brute-force protection across real `palisade serve` processes: failures
//! on one instance lock the account on the other (shared Redis), and the
//! lockout's audit event is in the shared PostgreSQL log.

mod support;

use palisade_testkit::{TestDatabase, eventually};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use support::{Twins, shared_state_env};

const PROMPT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_on_one_instance_lock_the_account_on_the_other() {
    let pg = TestDatabase::create().await.expect("test schema");
    let mut env = shared_state_env(pg.url(), "two_instances_lockout");
    // Locked at the third failure; delays before that of 1 ms.
    for (key, value) in [
        ("ACCOUNT_FREE_FAILURES", "1"),
        ("ACCOUNT_LOCKOUT_AFTER", "3"),
        ("BACKOFF_BASE_MS", "1"),
        ("BACKOFF_CAP_MS", "1"),
        ("LOCKOUT_MS", "60000"),
    ] {
        env.insert(format!("PALISADE_LOCKOUT__{key}"), value.to_owned());
    }
    // Same secrets, same database: the second instance is the first's twin.
    let twins = Twins::start(&env, &HashMap::new()).await;
    let (a, b) = (&twins.a, &twins.b);

    let (status, hashed) = a
        .post(
            "/v1/auth/passwords/hash",
            &json!({"password": "correct horse battery"}),
        )
        .await;
    assert_eq!(status, 200, "{hashed}");
    let hash = hashed["hash"].as_str().expect("hash").to_owned();
    let verify = |password: &str| json!({"password": password, "hash": hash, "account": "alice@example.com", "client_ip": "198.51.100.20"});

    // Before any failure, the other instance lets alice in.
    let (status, ok) = b
        .post(
            "/v1/auth/passwords/verify",
            &verify("correct horse battery"),
        )
        .await;
    assert_eq!((status, ok), (200, json!({"valid": true})));
    for n in 0..3 {
        let (status, body) = a
            .post("/v1/auth/passwords/verify", &verify("wrong password"))
            .await;
        assert_eq!(
            (status, body),
            (200, json!({"valid": false})),
            "failure {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Instance B refuses alice, right password and all, without a verdict.
    let response = b
        .http
        .post(format!("{}/v1/auth/passwords/verify", b.base))
        .bearer_auth(&b.key)
        .json(&verify("correct horse battery"))
        .send()
        .await
        .expect("verify on the second instance");
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((55..=60).contains(&retry_after), "{retry_after}");
    let problem: serde_json::Value = response.json().await.expect("problem");
    assert_eq!(
        problem["type"],
        "https://palisade.dev/problems/account_locked"
    );

    // The lockout is one audit event in the shared log, seen from either instance.
    eventually(PROMPT, "lockout audited", || async {
        let (status, page) = b.get("/v1/audit/events?action=auth.lockout").await;
        status == 200
            && page["events"].as_array().is_some_and(|events| {
                events.len() == 1
                    && events[0]["event"]["actor"]["id"] == "alice@example.com"
                    && events[0]["event"]["metadata"]["scope"] == "account"
            })
    })
    .await;
    eventually(PROMPT, "failures audited", || async {
        let (_, page) = a.get("/v1/audit/events?action=auth.password.verify").await;
        page["events"].as_array().map(Vec::len) == Some(3)
    })
    .await;
}
