//! Throwaway redis-server fixtures: single, Sentinel, Cluster.

use std::time::Duration;

use palisade_testkit::{RedisCluster, RedisSentinel, RedisServer, TestkitError, within};
use redis::AsyncCommands;
use redis::cluster::ClusterClient;
use redis::sentinel::{SentinelClient, SentinelServerType};

/// Bounds for fixture start-up and failover, above the fixtures' own internal
/// deadlines so their more specific errors win.
const START: Duration = Duration::from_secs(90);
const PROMPT: Duration = Duration::from_secs(10);

async fn ping(url: &str) -> redis::RedisResult<String> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async(&mut connection).await
}

#[tokio::test]
async fn single_server_answers_and_is_gone_after_drop() {
    let server = within(START, "start redis-server", RedisServer::start())
        .await
        .expect("start redis-server");
    assert_eq!(server.addr().port(), server.port());
    let url = server.url();
    assert_eq!(url, format!("redis://127.0.0.1:{}", server.port()));
    let pong = within(PROMPT, "PING", ping(&url)).await.expect("PING");
    assert_eq!(pong, "PONG");

    let other = within(START, "start a second redis-server", RedisServer::start())
        .await
        .expect("start second redis-server");
    assert_ne!(other.port(), server.port());

    drop(server);
    let after = within(PROMPT, "PING after drop", ping(&url)).await;
    assert!(
        after.is_err(),
        "the dropped server still answers: {after:?}"
    );
}

#[tokio::test]
async fn extra_config_is_applied() {
    let server = within(
        START,
        "start redis-server",
        RedisServer::start_with_config("maxmemory 3mb"),
    )
    .await
    .expect("start redis-server with extra config");
    let client = redis::Client::open(server.url()).expect("client");
    let mut connection = within(PROMPT, "connect", client.get_multiplexed_async_connection())
        .await
        .expect("connect");
    let setting: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query_async(&mut connection)
        .await
        .expect("CONFIG GET");
    assert_eq!(
        setting,
        vec!["maxmemory".to_owned(), (3 * 1024 * 1024).to_string()]
    );
}

#[tokio::test]
async fn sentinel_reports_the_master_and_fails_over_back_and_forth() {
    let deployment = within(
        START,
        "start the sentinel deployment",
        RedisSentinel::start("palisade-main"),
    )
    .await
    .expect("start sentinel deployment");
    assert_eq!(deployment.master_name(), "palisade-main");
    assert_eq!(deployment.sentinel_addrs().len(), 3);
    let [first, second] = deployment.server_addrs()[..] else {
        panic!(
            "expected two data nodes, got {:?}",
            deployment.server_addrs()
        );
    };
    let master = within(PROMPT, "ask for the master", deployment.master_addr())
        .await
        .expect("master address");
    assert_eq!(master, first);

    // A real Sentinel client finds the master and writes to it.
    let mut client = SentinelClient::build(
        deployment.sentinel_urls(),
        deployment.master_name(),
        None,
        SentinelServerType::Master,
    )
    .expect("sentinel client");
    let mut connection = within(
        PROMPT,
        "connect through sentinel",
        client.get_async_connection(),
    )
    .await
    .expect("connect to master through sentinel");
    let () = connection
        .set("before-failover", "kept")
        .await
        .expect("SET on master");
    // WAIT for the replica, so the write survives the promotion.
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut connection)
        .await
        .expect("WAIT");
    assert_eq!(acked, 1, "the replica did not acknowledge the write");

    let promoted = within(START, "first failover", deployment.failover())
        .await
        .expect("first failover");
    assert_eq!(promoted, second);
    assert_eq!(
        within(PROMPT, "ask for the master", deployment.master_addr())
            .await
            .expect("master"),
        second
    );
    let mut connection = within(
        PROMPT,
        "reconnect through sentinel",
        client.get_async_connection(),
    )
    .await
    .expect("connect to the new master through sentinel");
    let kept: Option<String> = connection.get("before-failover").await.expect("GET");
    assert_eq!(kept.as_deref(), Some("kept"));
    let () = connection
        .set("after-failover", 1)
        .await
        .expect("the new master accepts writes");

    // The old master was demoted to a replica, so a second failover works.
    let back = within(START, "second failover", deployment.failover())
        .await
        .expect("second failover");
    assert_eq!(back, first);
}

#[tokio::test]
async fn sentinel_rejects_a_master_name_sentinel_cannot_parse() {
    let error = RedisSentinel::start("bad name")
        .await
        .expect_err("spaces are not allowed");
    assert!(matches!(error, TestkitError::InvalidArgument(_)), "{error}");
}

#[tokio::test]
async fn cluster_of_three_masters_serves_keys_across_all_nodes() {
    let cluster = within(START, "start the cluster", RedisCluster::start(3))
        .await
        .expect("start cluster");
    let urls = cluster.node_urls();
    assert_eq!(urls.len(), 3);
    let client = ClusterClient::new(urls.clone()).expect("cluster client");
    let mut connection = within(
        PROMPT,
        "connect to the cluster",
        client.get_async_connection(),
    )
    .await
    .expect("connect to the cluster");
    within(PROMPT, "write and read 300 keys", async {
        for n in 0..300 {
            let () = connection.set(format!("key-{n}"), n).await.expect("SET");
        }
        for n in 0..300 {
            let value: i32 = connection.get(format!("key-{n}")).await.expect("GET");
            assert_eq!(value, n);
        }
    })
    .await;

    // Every node owns a third of the slots, so every node holds some keys.
    for url in &urls {
        let client = redis::Client::open(url.as_str()).expect("node client");
        let mut node = within(
            PROMPT,
            "connect to one node",
            client.get_multiplexed_async_connection(),
        )
        .await
        .expect("connect to node");
        let keys: i64 = redis::cmd("DBSIZE")
            .query_async(&mut node)
            .await
            .expect("DBSIZE");
        assert!(keys > 0, "node {url} holds no keys");
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut node)
            .await
            .expect("CLUSTER INFO");
        assert!(info.contains("cluster_state:ok"), "node {url}: {info}");
    }
}

#[tokio::test]
async fn cluster_of_one_master_owns_every_slot() {
    let cluster = within(START, "start a one-node cluster", RedisCluster::start(1))
        .await
        .expect("start cluster");
    let client = ClusterClient::new(cluster.node_urls()).expect("cluster client");
    let mut connection = within(
        PROMPT,
        "connect to the cluster",
        client.get_async_connection(),
    )
    .await
    .expect("connect");
    let () = connection.set("{tag}a", 1).await.expect("SET");
    let value: i32 = connection.get("{tag}a").await.expect("GET");
    assert_eq!(value, 1);
}

#[tokio::test]
async fn cluster_rejects_zero_masters() {
    let error = RedisCluster::start(0).await.expect_err("zero masters");
    assert!(matches!(error, TestkitError::InvalidArgument(_)), "{error}");
}
