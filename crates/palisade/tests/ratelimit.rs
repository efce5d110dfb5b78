//! Rate limiting across real `palisade serve` processes: two instances sharing
//! PostgreSQL and Redis enforce one global limit and see each other's rules,
//! and a Redis cut mid-traffic costs no request a 5xx.

mod support;

use palisade_testkit::redis::unique_prefix;
use palisade_testkit::{FaultProxy, TestDatabase, eventually};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use support::{Client, Server, printed_key, redis_addr, run, shared_state_env};

const PROMPT: Duration = Duration::from_secs(15);

async fn put_rule(client: &Client, name: &str, rule: &Value) -> u16 {
    let response = client
        .http
        .put(format!("{}/v1/ratelimit/rules/{name}", client.base))
        .bearer_auth(&client.key)
        .json(rule)
        .send()
        .await
        .expect("PUT rule");
    response.status().as_u16()
}

/// Fires `n` checks of `key` under `rule` and returns how many were allowed,
/// failing on any answer but 200.
async fn allowed_of(client: &Client, rule: &str, key: &str, n: usize) -> usize {
    let mut allowed = 0;
    for _ in 0..n {
        let (status, body) = client
            .post("/v1/ratelimit/check", &json!({"rule": rule, "key": key}))
            .await;
        assert_eq!(status, 200, "{body}");
        allowed += usize::from(body["allowed"] == true);
    }
    allowed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_postgres_and_redis_enforce_one_limit_and_share_rules() {
    let pg = TestDatabase::create().await.expect("test schema");
    let first_dir = tempfile::tempdir().expect("temp dir");
    let second_dir = tempfile::tempdir().expect("temp dir");
    let mut env = shared_state_env(pg.url(), "two_instances_rate_limit");
    env.insert("PALISADE_RATELIMIT__INSTANCES".to_owned(), "2".to_owned());
    env.insert(
        "PALISADE_RATELIMIT__RULES_REFRESH_MS".to_owned(),
        "200".to_owned(),
    );
    let (status, out, err) = run(first_dir.path(), &env, &["init"]);
    assert!(status.success(), "{err}");
    let key = printed_key(&out).expect("admin key");
    // Same secrets, same database: the second instance is the first's twin.
    std::fs::create_dir_all(second_dir.path().join("palisade-data")).expect("data dir");
    std::fs::copy(
        first_dir.path().join("palisade-data/palisade.toml"),
        second_dir.path().join("palisade-data/palisade.toml"),
    )
    .expect("copy config");
    let mut first = Server::start(first_dir.path(), env.clone());
    let mut second = Server::start(second_dir.path(), env);
    first.wait_ready(200).await;
    second.wait_ready(200).await;
    let (a, b) = (
        Client::new(&first.base, &key),
        Client::new(&second.base, &key),
    );

    // A rule created on one instance reaches the other.
    let rule = json!({"limit": 20, "period_ms": 3_600_000, "key": "custom"});
    assert_eq!(put_rule(&a, "global", &rule).await, 200);
    eventually(PROMPT, "rule reaches the second instance", || async {
        b.get("/v1/ratelimit/rules/global").await.0 == 200
    })
    .await;

    let (from_a, from_b) = tokio::join!(
        allowed_of(&a, "global", "user-7", 30),
        allowed_of(&b, "global", "user-7", 30)
    );
    assert_eq!(
        from_a + from_b,
        20,
        "{from_a} + {from_b}: one global limit of 20"
    );
    assert!(from_a > 0 && from_b > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cut_mid_traffic_gives_no_5xx_and_limiting_recovers() {
    let proxy = FaultProxy::start(redis_addr()).await.expect("proxy");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut env = HashMap::new();
    env.insert(
        "PALISADE_REDIS__URL".to_owned(),
        format!("redis://{}", proxy.addr()),
    );
    env.insert(
        "PALISADE_REDIS__KEY_PREFIX".to_owned(),
        unique_prefix("redis_cut_rate_limit"),
    );
    env.insert(
        "PALISADE_REDIS__BREAKER__OPEN_DURATION_MS".to_owned(),
        "300".to_owned(),
    );
    env.insert(
        "PALISADE_REDIS__BREAKER__MINIMUM_CALLS".to_owned(),
        "2".to_owned(),
    );
    env.insert("PALISADE_RATELIMIT__INSTANCES".to_owned(), "4".to_owned());
    let mut server = Server::start(dir.path(), env);
    server.wait_ready(200).await;
    let client = Client::new(&server.base, &server.printed_key().expect("key"));
    let rule = json!({"limit": 400, "period_ms": 3_600_000, "key": "custom"});
    assert_eq!(put_rule(&client, "api", &rule).await, 200);

    let check = || async {
        let (status, body) = client
            .post("/v1/ratelimit/check", &json!({"rule": "api", "key": "k"}))
            .await;
        assert!(status == 200, "status {status}: {body}");
        body
    };
    assert_eq!(check().await["degraded"], false);

    proxy.cut();
    let mut degraded = 0;
    let mut allowed_while_cut = 0;
    for _ in 0..150 {
        let body = check().await;
        degraded += usize::from(body["degraded"] == true);
        allowed_while_cut += usize::from(body["degraded"] == true && body["allowed"] == true);
    }
    assert!(degraded >= 140, "only {degraded} of 150 checks fell back");
    // A quarter of 400 is this instance's share while Redis is away.
    assert!(
        allowed_while_cut <= 100,
        "{allowed_while_cut} allowed beyond the local share"
    );
    let (_, health) = client.get("/health").await;
    assert_eq!(health["status"], "degraded", "{health}");

    proxy.resume();
    eventually(PROMPT, "shared limiting resumes", || async {
        check().await["degraded"] == false
    })
    .await;
}
