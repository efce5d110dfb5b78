//! Faults against the real binary: the database cut behind a TCP proxy, the
//! process killed mid-load, and tampering caught by `palisade audit verify`.

mod support;

use palisade_testkit::{FaultProxy, TestDatabase};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Client, Server, audit_event, printed_key, run};
use uuid::Uuid;

/// The test database URL with its host and port replaced by the proxy's.
fn through(proxy: SocketAddr, url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (auth, rest) = rest
        .split_once('@')
        .map(|(a, r)| (format!("{a}@"), r))
        .unwrap_or((String::new(), rest));
    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("");
    format!("{scheme}://{auth}{proxy}{path}")
}

fn upstream(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map(|x| x.1).unwrap_or(url);
    let rest = rest.split_once('@').map(|x| x.1).unwrap_or(rest);
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

/// A PostgreSQL-backed instance whose database link goes through a fault proxy.
async fn postgres_server(dir: &Path) -> (Server, FaultProxy, TestDatabase, String) {
    let pg = TestDatabase::create().await.expect("test schema");
    let proxy = FaultProxy::start(upstream(&pg.url())).await.expect("proxy");
    let mut env = HashMap::new();
    env.insert(
        "PALISADE_DATABASE__URL".to_owned(),
        through(proxy.addr(), &pg.url()),
    );
    env.insert(
        "PALISADE_DATABASE__ACQUIRE_TIMEOUT_MS".to_owned(),
        "1000".to_owned(),
    );
    env.insert(
        "PALISADE_DATABASE__BREAKER__OPEN_DURATION_MS".to_owned(),
        "500".to_owned(),
    );
    let (status, out, err) = run(dir, &env, &["init"]);
    assert!(status.success(), "{err}");
    let key = printed_key(&out).expect("admin key");
    let mut server = Server::start(dir, env);
    server.wait_ready(200).await;
    (server, proxy, pg, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_cut_turns_readiness_off_and_back_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, proxy, _pg, key) = postgres_server(dir.path()).await;
    let client = Client::new(&server.base, &key);
    proxy.cut();
    server.wait_ready(503).await;
    let (status, health) = client.get("/health").await;
    assert_eq!(status, 503);
    assert_eq!(
        health["components"]["database"]["status"], "down",
        "{health}"
    );
    // Endpoints that do not need the database keep answering.
    assert_eq!(client.get("/health/live").await.0, 200);
    // A request that needs the database gets a problem, never a hang or a 500.
    let (status, body) = client.get("/v1/audit/events").await;
    assert!(status == 503 || status == 401, "{status} {body}");
    proxy.resume();
    server.wait_ready(200).await;
    assert_eq!(client.get("/v1/api-keys").await.0, 200);
}

/// Appends `total` events from `workers` concurrent clients, calling `fault` once
/// `trigger` events have been acknowledged. Returns the acknowledged ids.
async fn load(
    client: Arc<Client>,
    total: u64,
    workers: u64,
    trigger: usize,
    fault: impl FnOnce() + Send + 'static,
) -> HashSet<Uuid> {
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let fault = Arc::new(Mutex::new(Some(fault)));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, acked, fault) = (client.clone(), acked.clone(), fault.clone());
        tasks.push(tokio::spawn(async move {
            for n in (w..total).step_by(workers as usize) {
                let (id, event) = audit_event(n);
                let (status, _) = client.post("/v1/audit/events", &event).await;
                let count = {
                    let mut acked = acked.lock().expect("lock");
                    if status == 201 {
                        acked.insert(id);
                    }
                    acked.len()
                };
                if count >= trigger
                    && let Some(f) = fault.lock().expect("lock").take()
                {
                    f();
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("worker");
    }
    acked.lock().map(|ids| ids.clone()).unwrap_or_default()
}

/// Every acknowledged id is in the log exactly once (bounded wait for spool replay).
async fn assert_all_present_once(client: &Client, acked: &HashSet<Uuid>) {
    let started = std::time::Instant::now();
    let mut missing: Vec<Uuid> = acked.iter().copied().collect();
    while !missing.is_empty() {
        let mut still = Vec::new();
        for id in missing {
            if client.get(&format!("/v1/audit/events/{id}")).await.0 != 200 {
                still.push(id);
            }
        }
        missing = still;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} acknowledged events never appeared",
            missing.len()
        );
        if !missing.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (status, page) = client
        .get("/v1/audit/events?action=load.test&limit=1000")
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = page["events"]
        .as_array()
        .map(|e| e.iter().filter_map(|x| x["id"].as_str()).collect())
        .unwrap_or_default();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no event is stored twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_event_is_lost_when_the_database_is_cut_mid_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, proxy, _pg, key) = postgres_server(dir.path()).await;
    let client = Arc::new(Client::new(&server.base, &key));
    let proxy = Arc::new(proxy);
    let cutter = proxy.clone();
    let acked = load(client.clone(), 400, 4, 100, move || {
        cutter.cut();
        let resumer = cutter.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            resumer.resume();
        });
    })
    .await;
    proxy.resume();
    assert!(
        acked.len() >= 300,
        "most appends are acknowledged even while the database is down: {}",
        acked.len()
    );
    assert_all_present_once(&client, &acked).await;
    let (status, _, err) = run(dir.path(), &server.env, &["audit", "verify"]);
    assert!(status.success(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_event_is_lost_when_the_process_is_killed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), HashMap::new());
    server.wait_ready(200).await;
    let key = server.printed_key().expect("key");
    let client = Arc::new(Client::new(&server.base, &key));
    let pid = server.child.id();
    let acked = load(client, 600, 4, 150, move || {
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
    })
    .await;
    assert!(acked.len() >= 150);
    let _ = server.wait_exit(Duration::from_secs(10));
    let mut restarted = Server::start(dir.path(), HashMap::new());
    restarted.wait_ready(200).await;
    assert_all_present_once(&Client::new(&restarted.base, &key), &acked).await;
    drop(restarted);
    let (status, _, err) = run(dir.path(), &HashMap::new(), &["audit", "verify"]);
    assert!(status.success(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_the_tampered_index() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), HashMap::new());
    server.wait_ready(200).await;
    let client = Client::new(&server.base, &server.printed_key().expect("key"));
    let events: Vec<_> = (0..20).map(|n| audit_event(n).1).collect();
    assert_eq!(
        client
            .post("/v1/audit/events", &json!({"events": events}))
            .await
            .0,
        201
    );
    let checkpoint = client
        .http
        .get(format!("{}/v1/audit/checkpoint", server.base))
        .bearer_auth(&client.key)
        .send()
        .await
        .expect("checkpoint");
    let note = checkpoint.text().await.expect("note");
    std::fs::write(dir.path().join("saved.note"), &note).expect("save checkpoint");
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(15));

    let (status, out, err) = run(
        dir.path(),
        &HashMap::new(),
        &["audit", "verify", "--checkpoint", "saved.note"],
    );
    assert!(status.success(), "{err}");
    assert!(out.contains("20 leaves verified"), "{out}");

    // An administrator with file access rewrites leaf 5 behind the triggers' back.
    let db_path = dir.path().join("palisade-data/palisade.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db_path.display()))
        .await
        .expect("open");
    sqlx::query("DROP TRIGGER audit_entries_no_update")
        .execute(&pool)
        .await
        .expect("drop trigger");
    sqlx::query(
        "UPDATE audit_entries SET leaf = replace(leaf, 'load.test', 'load.tost') WHERE idx = 5",
    )
    .execute(&pool)
    .await
    .expect("tamper");
    pool.close().await;
    let (status, _, err) = run(dir.path(), &HashMap::new(), &["audit", "verify"]);
    assert!(!status.success());
    assert!(err.contains("index 5"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_degraded_not_down_and_recovers() {
    let proxy = FaultProxy::start(support::redis_addr())
        .await
        .expect("proxy");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut env = HashMap::new();
    env.insert(
        "PALISADE_REDIS__URL".to_owned(),
        format!("redis://{}", proxy.addr()),
    );
    env.insert(
        "PALISADE_REDIS__BREAKER__OPEN_DURATION_MS".to_owned(),
        "300".to_owned(),
    );
    env.insert(
        "PALISADE_REDIS__BREAKER__MINIMUM_CALLS".to_owned(),
        "2".to_owned(),
    );
    let mut server = Server::start(dir.path(), env);
    server.wait_ready(200).await;
    let client = Client::new(&server.base, &server.printed_key().expect("key"));
    let status_of = |body: &serde_json::Value| {
        body["components"]["redis"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    palisade_testkit::eventually(Duration::from_secs(10), "redis up", || async {
        status_of(&client.get("/health").await.1) == "up"
    })
    .await;

    proxy.cut();
    palisade_testkit::eventually(Duration::from_secs(10), "redis degraded", || async {
        let (code, body) = client.get("/health").await;
        code == 200 && body["status"] == "degraded" && status_of(&body) == "degraded"
    })
    .await;
    // Readiness and requests that do not need Redis are unaffected.
    assert_eq!(
        reqwest::get(format!("{}/health/ready", server.base))
            .await
            .map(|r| r.status().as_u16())
            .ok(),
        Some(200)
    );
    for n in 0..20 {
        let (status, body) = client.post("/v1/audit/events", &audit_event(n).1).await;
        assert_eq!(status, 201, "{body}");
    }

    proxy.resume();
    palisade_testkit::eventually(Duration::from_secs(10), "redis back up", || async {
        status_of(&client.get("/health").await.1) == "up"
    })
    .await;
    server.wait_ready(200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_spooled_while_the_database_is_down_survive_a_kill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, proxy, _pg, key) = postgres_server(dir.path()).await;
    let client = Client::new(&server.base, &key);
    // This instance has verified the key once; after that, an outage longer than the
    // key cache's lifetime must not lock the caller out of the spool.
    assert_eq!(client.get("/v1/whoami").await.0, 200);
    proxy.cut();
    tokio::time::sleep(palisade_auth::api_keys::CACHE_TTL + Duration::from_millis(500)).await;
    let stranger = Client::new(
        &server.base,
        "pal_never-seen-by-this-instance-0000000000000",
    );
    assert_ne!(
        stranger
            .post("/v1/audit/events", &audit_event(999).1)
            .await
            .0,
        201,
        "an unknown key is never admitted during an outage"
    );
    // Accepted into the spool only: the database is unreachable.
    let mut acked = HashSet::new();
    for n in 0..60 {
        let (id, event) = audit_event(n);
        let (status, body) = client.post("/v1/audit/events", &event).await;
        assert_eq!(status, 201, "{body}");
        acked.insert(id);
    }
    server.signal("KILL");
    let _ = server.wait_exit(Duration::from_secs(10));
    proxy.resume();
    let env = server.env.clone();
    drop(server);
    let mut restarted = Server::start(dir.path(), env.clone());
    restarted.wait_ready(200).await;
    assert_all_present_once(&Client::new(&restarted.base, &key), &acked).await;
    drop(restarted);
    let (status, _, err) = run(dir.path(), &env, &["audit", "verify"]);
    assert!(status.success(), "{err}");
}
