//! Authorization across real `palisade serve` processes sharing PostgreSQL:
//! a binding revoked on one instance stops granting on the other within one
//! second, by notification, after the other instance's database link (its
//! listener among it) was cut and restored, and with Redis cut.

mod support;

use palisade_testkit::{FaultProxy, TestDatabase};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{Client, Twins};

const PROMPT: Duration = Duration::from_secs(15);

async fn put(client: &Client, path: &str, body: &Value) -> u16 {
    client
        .http
        .put(format!("{}{path}", client.base))
        .bearer_auth(&client.key)
        .json(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn delete(client: &Client, path: &str) -> u16 {
    client
        .http
        .delete(format!("{}{path}", client.base))
        .bearer_auth(&client.key)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn allowed(client: &Client) -> bool {
    let (status, body) = client
        .post(
            "/v1/authz/check",
            &json!({"subject": "user:alice", "action": "document:read", "resource": "doc/1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["allowed"] == true
}

/// How long until `client` answers `expected`, polling every 10 ms.
async fn time_until(client: &Client, expected: bool) -> Duration {
    let started = Instant::now();
    while allowed(client).await != expected {
        assert!(
            started.elapsed() < PROMPT,
            "still not {expected} after {PROMPT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

fn upstream(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |x| x.1);
    let rest = rest.split_once('@').map_or(rest, |x| x.1);
    let host = rest.split('/').next().unwrap_or("127.0.0.1:5432");
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    host.replace("localhost", "127.0.0.1")
        .parse()
        .expect("host:port")
}

/// Two instances on one database; the second's link to it goes through
/// `proxy` when given, and both use Redis through `redis` when given.
async fn two_instances(
    pg: &TestDatabase,
    proxy: Option<&FaultProxy>,
    redis: Option<&FaultProxy>,
) -> Twins {
    let mut env = HashMap::new();
    env.insert("PALISADE_DATABASE__URL".to_owned(), pg.url());
    if let Some(redis) = redis {
        env.insert(
            "PALISADE_REDIS__URL".to_owned(),
            format!("redis://{}", redis.addr()),
        );
    }
    let mut second_env = HashMap::new();
    if let Some(proxy) = proxy {
        let url = pg
            .url()
            .replace(&upstream(&pg.url()).to_string(), &proxy.addr().to_string());
        second_env.insert("PALISADE_DATABASE__URL".to_owned(), url);
    }
    Twins::start(&env, &second_env).await
}

async fn grant(a: &Client) {
    let role = json!({"permissions": [{"action": "document:read"}]});
    assert_eq!(put(a, "/v1/authz/roles/reader", &role).await, 200);
    let (status, body) = a
        .post(
            "/v1/authz/bindings",
            &json!({"id": "alice", "subject": "user:alice", "role": "reader"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_binding_stops_granting_on_the_other_instance_within_a_second() {
    let pg = TestDatabase::create().await.expect("test schema");
    let twins = two_instances(&pg, None, None).await;
    let (a, b) = (&twins.a, &twins.b);
    let mut revocations = Vec::new();
    for _ in 0..5 {
        grant(a).await;
        time_until(b, true).await;
        assert_eq!(delete(a, "/v1/authz/bindings/alice").await, 200);
        assert!(
            !allowed(a).await,
            "the instance that changed it denies at once"
        );
        revocations.push(time_until(b, false).await);
    }
    eprintln!("revocation reached the other instance after {revocations:?}");
    let slowest = revocations.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(1),
        "revocations took {revocations:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_its_database_link_is_cut_and_restored_an_instance_still_stops_granting_within_a_second()
 {
    let pg = TestDatabase::create().await.expect("test schema");
    let proxy = FaultProxy::start(upstream(&pg.url())).await.expect("proxy");
    let twins = two_instances(&pg, Some(&proxy), None).await;
    let (a, b) = (&twins.a, &twins.b);
    grant(a).await;
    time_until(b, true).await;
    // Drop every connection of the second instance (its LISTEN among them),
    // then let new ones through: the listener is gone for a while, the pool
    // reconnects at once.
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.resume();
    assert_eq!(delete(a, "/v1/authz/bindings/alice").await, 200);
    let took = time_until(b, false).await;
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_cut_decisions_stay_correct_and_revocations_still_arrive() {
    let pg = TestDatabase::create().await.expect("test schema");
    let redis = FaultProxy::start(support::redis_addr())
        .await
        .expect("proxy");
    let twins = two_instances(&pg, None, Some(&redis)).await;
    let (a, b) = (&twins.a, &twins.b);
    grant(a).await;
    time_until(b, true).await;
    // Policies and their change notices live in PostgreSQL: Redis being away
    // changes nothing about what is decided.
    redis.cut();
    assert!(allowed(b).await);
    assert_eq!(delete(a, "/v1/authz/bindings/alice").await, 200);
    let took = time_until(b, false).await;
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
    let (_, health) = b.get("/health").await;
    assert_eq!(health["status"], "degraded", "{health}");
}
