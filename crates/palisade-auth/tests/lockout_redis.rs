//! Brute-force protection on a real Redis: counts shared by instances, exact
//! under concurrency, the same arithmetic as in process, keys that expire and
//! name no account, a Redis Cluster, and the fallback when Redis is cut.

use palisade_auth::lockout::{Attempt, LockScope, Lockout, LockoutKeys, LockoutPolicy, Thresholds};
use palisade_core::principal::TenantId;
use palisade_core::resilience::BreakerConfig;
use palisade_core::{Secret, SecurityEvents, SystemClock};
use palisade_store::{Redis, RedisConfig};
use palisade_testkit::redis::{delete_prefix, redis_url, unique_prefix};
use palisade_testkit::{FaultProxy, RedisCluster, RedisServer, within};
use std::net::IpAddr;
use std::time::Duration;

const PROMPT: Duration = Duration::from_secs(20);
const SECRET: &str = "lockout-test-secret-lockout-test-secret";

fn policy() -> LockoutPolicy {
    LockoutPolicy {
        account: Thresholds {
            free_failures: 2,
            lockout_after: 5,
        },
        client: Thresholds {
            free_failures: 4,
            lockout_after: 8,
        },
        backoff_base: Duration::from_secs(1),
        backoff_cap: Duration::from_secs(4),
        lockout_duration: Duration::from_secs(60),
        window: Duration::from_secs(600),
    }
}

/// One instance: its own in-process copy, keys from the shared secret.
fn instance(policy: LockoutPolicy, redis: Option<Redis>) -> Lockout {
    let keys = LockoutKeys::derive_from(&Secret::new(SECRET)).expect("keys");
    let lockout = Lockout::new(policy, keys, SystemClock::shared(), SecurityEvents::new(64))
        .expect("valid policy");
    match redis {
        Some(redis) => lockout.with_redis(redis),
        None => lockout,
    }
}

fn shared_redis(prefix: &str) -> Redis {
    let config = RedisConfig {
        key_prefix: prefix.to_owned(),
        ..RedisConfig::single(redis_url())
    };
    Redis::new(&config, SystemClock::shared()).expect("valid redis config")
}

async fn raw_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test redis")
}

async fn keys_under(prefix: &str) -> Vec<String> {
    let mut connection = raw_connection().await;
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .expect("KEYS")
}

async fn cleanup(prefix: &str) {
    let mut connection = raw_connection().await;
    delete_prefix(&mut connection, prefix)
        .await
        .expect("delete test keys");
}

fn on(lockout: &Lockout, account: &str, ip: &str) -> Attempt {
    let ip: IpAddr = ip.parse().expect("ip");
    lockout
        .attempt(&TenantId::default_tenant(), Some(account), Some(ip), None)
        .expect("attempt")
}

#[tokio::test]
async fn failures_on_one_instance_lock_the_account_on_another() {
    let prefix = unique_prefix("lockout_two_instances");
    let a = instance(policy(), Some(shared_redis(&prefix)));
    let b = instance(policy(), Some(shared_redis(&prefix)));
    for n in 0..5 {
        let failure = a
            .record_failure(&on(&a, "alice", &format!("10.0.1.{n}")))
            .await;
        assert!(!failure.degraded);
    }
    let locked = b
        .check(&on(&b, "alice", "10.9.9.9"))
        .await
        .expect_err("locked on the other instance");
    assert_eq!(locked.scope, LockScope::Account);
    assert!(locked.lockout);
    assert!(locked.retry_after > Duration::from_secs(55), "{locked:?}");
    // A success while locked is refused there too, and changes nothing.
    assert!(
        b.record_success(&on(&b, "alice", "10.9.9.9"))
            .await
            .is_err()
    );
    assert!(a.check(&on(&a, "alice", "10.0.1.0")).await.is_err());
    cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_failures_on_two_instances_are_all_counted() {
    let prefix = unique_prefix("lockout_concurrent");
    let lenient = LockoutPolicy {
        account: Thresholds {
            free_failures: 1_000,
            lockout_after: 2_000,
        },
        client: Thresholds {
            free_failures: 1_000,
            lockout_after: 2_000,
        },
        ..policy()
    };
    let a = instance(lenient.clone(), Some(shared_redis(&prefix)));
    let b = instance(lenient, Some(shared_redis(&prefix)));
    let mut tasks = Vec::new();
    for n in 0..100 {
        let lockout = if n % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let attempt = on(&lockout, "bob", "192.0.2.1");
            lockout.record_failure(&attempt).await
        }));
    }
    let mut seen = Vec::new();
    for task in tasks {
        let failure = task.await.expect("task");
        assert!(!failure.degraded);
        seen.push(failure.account.expect("account counted").failures);
    }
    seen.sort_unstable();
    // Every failure got its own number: no lost update.
    assert_eq!(seen, (1..=100).collect::<Vec<u32>>());
    cleanup(&prefix).await;
}

#[tokio::test]
async fn redis_and_in_process_backends_agree_on_every_step() {
    let prefix = unique_prefix("lockout_agree");
    let shared = instance(policy(), Some(shared_redis(&prefix)));
    let local = instance(policy(), None);
    // Failures from one address against two accounts, a success on one, more failures.
    let script: [(&str, bool); 9] = [
        ("carol", false),
        ("carol", false),
        ("dan", false),
        ("carol", false),
        ("dan", false),
        ("dan", true),
        ("carol", false),
        ("carol", false),
        ("erin", false),
    ];
    for (step, (account, success)) in script.into_iter().enumerate() {
        if success {
            let on_redis = shared
                .record_success(&on(&shared, account, "10.1.1.1"))
                .await;
            let in_process = local.record_success(&on(&local, account, "10.1.1.1")).await;
            assert_eq!(on_redis.is_ok(), in_process.is_ok(), "step {step}");
            continue;
        }
        let r = shared
            .record_failure(&on(&shared, account, "10.1.1.1"))
            .await;
        let l = local.record_failure(&on(&local, account, "10.1.1.1")).await;
        assert!(!r.degraded);
        for (scope, on_redis, in_process) in [
            ("account", r.account, l.account),
            ("client", r.client, l.client),
        ] {
            let (on_redis, in_process) = (on_redis.expect("counted"), in_process.expect("counted"));
            assert_eq!(
                on_redis.failures, in_process.failures,
                "step {step} {scope}"
            );
            assert_eq!(
                on_redis.caused_lockout, in_process.caused_lockout,
                "step {step} {scope}"
            );
            let gap = on_redis.blocked_for.abs_diff(in_process.blocked_for);
            assert!(
                gap < Duration::from_millis(200),
                "step {step} {scope}: {on_redis:?} vs {in_process:?}"
            );
        }
        match (r.withheld, l.withheld) {
            (Some(on_redis), Some(in_process)) => {
                // The longest block in force is the one withheld. When the
                // account's and the client's blocks are equally long, their
                // remaining times differ only by the milliseconds between the
                // two updates (Redis server time vs the local clock), so
                // either scope may be named; the wait must agree. This was a
                // CI failure: step 7 named the account on Redis, the client
                // in process, for two equal blocks.
                let gap = on_redis.retry_after.abs_diff(in_process.retry_after);
                assert!(
                    gap < Duration::from_millis(200),
                    "step {step}: {on_redis:?} vs {in_process:?}"
                );
                // Both backends' per-scope counts and blocks are compared
                // above, so equal waits under different names are that tie.
            }
            (on_redis, in_process) => {
                assert_eq!(on_redis.is_some(), in_process.is_some(), "step {step}")
            }
        }
    }
    cleanup(&prefix).await;
}

#[tokio::test]
async fn keys_expire_and_name_no_account_or_address() {
    let prefix = unique_prefix("lockout_keys");
    let lockout = instance(policy(), Some(shared_redis(&prefix)));
    for _ in 0..3 {
        let _ = lockout
            .record_failure(&on(&lockout, "frank@example.com", "198.51.100.7"))
            .await;
    }
    let keys = keys_under(&prefix).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    let mut connection = raw_connection().await;
    for key in &keys {
        assert!(!key.contains("frank") && !key.contains("198.51"), "{key}");
        assert!(key.contains(":lk:{"), "{key}");
        let ttl_ms: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut connection)
            .await
            .expect("PTTL");
        // Blocked for 1 s (account) or not at all (client), plus the 600 s window.
        assert!(ttl_ms > 590_000 && ttl_ms <= 601_000, "{key}: {ttl_ms}");
    }
    cleanup(&prefix).await;
}

#[tokio::test]
async fn a_success_takes_back_only_its_own_accounts_failures_from_the_address() {
    let prefix = unique_prefix("lockout_pairs");
    let lockout = instance(policy(), Some(shared_redis(&prefix)));
    let ip = "203.0.113.50";
    for victim in ["v1", "v2", "v3"] {
        let _ = lockout.record_failure(&on(&lockout, victim, ip)).await;
    }
    let _ = lockout.record_failure(&on(&lockout, "mallory", ip)).await;
    assert_eq!(
        lockout.record_success(&on(&lockout, "mallory", ip)).await,
        Ok(())
    );
    let next = lockout.record_failure(&on(&lockout, "v4", ip)).await;
    assert_eq!(next.client.map(|c| c.failures), Some(4));
    cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_on_a_redis_cluster() {
    let cluster = within(
        Duration::from_secs(60),
        "start cluster",
        RedisCluster::start(3),
    )
    .await
    .expect("start cluster");
    let redis = Redis::new(
        &RedisConfig::cluster(cluster.node_urls()),
        SystemClock::shared(),
    )
    .expect("valid config");
    let lockout = instance(policy(), Some(redis));
    within(PROMPT, "lockouts on the cluster", async {
        for user in 0..20 {
            let account = format!("user-{user}");
            for n in 0..5 {
                let failure = lockout
                    .record_failure(&on(&lockout, &account, &format!("10.2.{user}.{n}")))
                    .await;
                assert!(!failure.degraded, "{account} fell back: the cluster is up");
            }
            assert!(
                lockout
                    .check(&on(&lockout, &account, "10.3.3.3"))
                    .await
                    .is_err()
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_redis_keeps_the_lockouts_this_instance_saw_and_keeps_counting() {
    let server = within(PROMPT, "start redis", RedisServer::start())
        .await
        .expect("start redis-server");
    let proxy = within(PROMPT, "start proxy", FaultProxy::start(server.addr()))
        .await
        .expect("start proxy");
    let config = RedisConfig {
        connect_timeout_ms: 200,
        command_timeout_ms: 200,
        breaker: BreakerConfig {
            window_secs: 10,
            minimum_calls: 3,
            open_duration_ms: 300,
            ..BreakerConfig::default()
        },
        ..RedisConfig::single(format!("redis://{}", proxy.addr()))
    };
    let redis = Redis::new(&config, SystemClock::shared()).expect("valid config");
    let lockout = instance(policy(), Some(redis));
    for n in 0..5 {
        let failure = lockout
            .record_failure(&on(&lockout, "gina", &format!("10.4.0.{n}")))
            .await;
        assert!(!failure.degraded);
    }

    proxy.cut();
    within(PROMPT, "answers while cut", async {
        // The lockout seen before the cut still holds.
        let locked = lockout.check(&on(&lockout, "gina", "10.4.1.1")).await;
        assert!(locked.is_err_and(|l| l.lockout));
        // New failures are counted in process and lock as usual.
        for n in 0..5 {
            let failure = lockout
                .record_failure(&on(&lockout, "hank", &format!("10.5.0.{n}")))
                .await;
            assert!(failure.degraded, "answered by Redis while cut?");
            assert_eq!(failure.account.map(|c| c.failures), Some(n + 1));
        }
        assert!(
            lockout
                .check(&on(&lockout, "hank", "10.5.1.1"))
                .await
                .is_err()
        );
        // Others are let in.
        assert_eq!(
            lockout.check(&on(&lockout, "ivy", "10.6.0.1")).await,
            Ok(())
        );
    })
    .await;
}
