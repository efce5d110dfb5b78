//! The Redis connection on Sentinel (surviving a failover) and on a Cluster
//! (keys across slots, scripts on hash-tagged keys).

use std::net::SocketAddr;
use std::time::Duration;

use palisade_core::SystemClock;
use palisade_core::health::{HealthCheck, HealthStatus};
use palisade_core::resilience::BreakerConfig;
use palisade_store::{Redis, RedisConfig, RedisHealth, RedisMode};
use palisade_testkit::{RedisCluster, RedisSentinel, eventually, within};

const PROMPT: Duration = Duration::from_secs(5);
/// Fixture start-up: a Sentinel deployment settles in a few seconds.
const START: Duration = Duration::from_secs(40);

/// Sends one command straight to one node, bypassing the code under test.
async fn direct<T: redis::FromRedisValue>(addr: SocketAddr, command: &redis::Cmd) -> T {
    let client = redis::Client::open(format!("redis://{addr}")).expect("node URL");
    let mut connection = within(
        PROMPT,
        "direct connection",
        client.get_multiplexed_async_connection(),
    )
    .await
    .expect("direct connection");
    within(
        PROMPT,
        "direct command",
        command.query_async(&mut connection),
    )
    .await
    .expect("direct command")
}

async fn get_direct(addr: SocketAddr, key: &str) -> Option<String> {
    direct(addr, redis::cmd("GET").arg(key)).await
}

async fn set(redis: &Redis, key: &str, value: &str) -> Result<(), palisade_store::RedisError> {
    redis.run(redis::cmd("SET").arg(key).arg(value)).await
}

#[tokio::test]
async fn sentinel_writes_survive_a_failover_through_the_same_handle() {
    let deployment = within(
        START,
        "start sentinel deployment",
        RedisSentinel::start("mymaster"),
    )
    .await
    .expect("start sentinel deployment");
    let config = RedisConfig {
        // Failures while the master moves must not park the breaker for long.
        breaker: BreakerConfig {
            open_duration_ms: 200,
            ..BreakerConfig::default()
        },
        ..RedisConfig::sentinel(deployment.sentinel_urls(), "mymaster")
    };
    let redis = Redis::new(&config, SystemClock::shared()).expect("valid config");
    assert_eq!(redis.mode(), RedisMode::Sentinel);

    let before = redis.key("before");
    within(PROMPT, "write before failover", set(&redis, &before, "1"))
        .await
        .expect("write before failover");
    let old_master = deployment.master_addr().await.expect("master address");
    assert_eq!(get_direct(old_master, &before).await.as_deref(), Some("1"));
    let generation = redis.connection_generation();

    let new_master = within(START, "failover", deployment.failover())
        .await
        .expect("failover");
    assert_ne!(new_master, old_master);

    let after = redis.key("after");
    eventually(
        Duration::from_secs(10),
        "writes to work again through the same handle after the failover",
        || async { set(&redis, &after, "2").await.is_ok() },
    )
    .await;

    // The write landed on the new master: the handle found it through the Sentinels.
    assert_eq!(get_direct(new_master, &after).await.as_deref(), Some("2"));
    assert!(
        redis.connection_generation() > generation,
        "the connection to the old master must have been replaced"
    );
    let read: Option<String> = within(
        PROMPT,
        "read a pre-failover write",
        redis.run(redis::cmd("GET").arg(&before)),
    )
    .await
    .expect("GET after failover");
    assert_eq!(read.as_deref(), Some("1"), "replicated before the failover");
    let health = within(PROMPT, "health", RedisHealth(redis.clone()).check()).await;
    assert_eq!(health.status, HealthStatus::Up, "{health:?}");
}

#[tokio::test]
async fn cluster_keys_in_many_slots_round_trip_and_tagged_scripts_run() {
    let cluster = within(START, "start cluster", RedisCluster::start(3))
        .await
        .expect("start cluster");
    let redis = Redis::new(
        &RedisConfig::cluster(cluster.node_urls()),
        SystemClock::shared(),
    )
    .expect("valid config");
    assert_eq!(redis.mode(), RedisMode::Cluster);

    let keys: Vec<String> = (0..60).map(|i| redis.key(&format!("k{i}"))).collect();
    within(PROMPT, "write keys", async {
        for (i, key) in keys.iter().enumerate() {
            set(&redis, key, &i.to_string())
                .await
                .expect("SET in cluster");
        }
    })
    .await;
    within(PROMPT, "read keys", async {
        for (i, key) in keys.iter().enumerate() {
            let value: Option<String> = redis
                .run_idempotent(redis::cmd("GET").arg(key))
                .await
                .expect("GET in cluster");
            assert_eq!(value, Some(i.to_string()), "{key}");
        }
    })
    .await;
    // The keys really are spread: every master holds some of them (the
    // cluster is this test's own, so every key on it is one of ours).
    for addr in cluster.node_addrs() {
        let held: u64 = direct(addr, &redis::cmd("DBSIZE")).await;
        assert!(
            held > 0,
            "node {addr} holds none of the {} keys",
            keys.len()
        );
    }

    // Both keys share the hash tag, so the script runs on one node.
    let script = redis::Script::new(
        "redis.call('SET', KEYS[1], ARGV[1]); \
         redis.call('SET', KEYS[2], ARGV[2]); \
         return redis.call('MGET', KEYS[1], KEYS[2])",
    );
    let tagged = [redis.key("{tenant42}:a"), redis.key("{tenant42}:b")];
    for round in ["1", "2"] {
        let values: Vec<String> = within(
            PROMPT,
            "script on hash-tagged keys",
            redis.invoke_script(&script, &tagged, &[round, "x"]),
        )
        .await
        .expect("script on hash-tagged keys");
        assert_eq!(values, vec![round.to_owned(), "x".to_owned()]);
    }
    let health = within(PROMPT, "health", RedisHealth(redis.clone()).check()).await;
    assert_eq!(health.status, HealthStatus::Up, "{health:?}");
}
