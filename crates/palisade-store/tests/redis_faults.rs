//! "Redis down is not Palisade down": the Redis connection behind a fault proxy
//! fails fast, opens its breaker, reports degraded (never down), recovers on its
//! own, and never hangs; and Palisade starts while Redis is down.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_core::SystemClock;
use palisade_core::health::{HealthCheck, HealthRegistry, HealthStatus};
use palisade_core::resilience::{BreakerConfig, BreakerState};
use palisade_store::{Redis, RedisConfig, RedisError, RedisHealth};
use palisade_testkit::{FaultProxy, RedisServer, eventually, within};

const PROMPT: Duration = Duration::from_secs(5);
const COMMAND_TIMEOUT: Duration = Duration::from_millis(250);
const OPEN_FOR: Duration = Duration::from_millis(500);

/// The small breaker the brief asks for: it opens after five calls at 50 %
/// failures and probes again after half a second.
fn config(addr: impl std::fmt::Display) -> RedisConfig {
    RedisConfig {
        connect_timeout_ms: 250,
        command_timeout_ms: u64::try_from(COMMAND_TIMEOUT.as_millis()).unwrap_or(250),
        breaker: BreakerConfig {
            window_secs: 10,
            minimum_calls: 5,
            open_duration_ms: u64::try_from(OPEN_FOR.as_millis()).unwrap_or(500),
            ..BreakerConfig::default()
        },
        ..RedisConfig::single(format!("redis://{addr}"))
    }
}

fn set(redis: &Redis) -> redis::Cmd {
    let mut set = redis::cmd("SET");
    set.arg(redis.key("fault")).arg("v");
    set
}

async fn proxied_server() -> (RedisServer, FaultProxy) {
    let server = within(PROMPT, "start redis-server", RedisServer::start())
        .await
        .expect("start redis-server");
    let proxy = within(
        PROMPT,
        "start fault proxy",
        FaultProxy::start(server.addr()),
    )
    .await
    .expect("start fault proxy");
    (server, proxy)
}

#[tokio::test]
async fn cut_link_fails_fast_opens_the_breaker_degrades_health_and_recovers() {
    let (_server, proxy) = proxied_server().await;
    let redis = Redis::new(&config(proxy.addr()), SystemClock::shared()).expect("valid config");
    let health = RedisHealth(redis.clone());
    let set = set(&redis);

    for _ in 0..5 {
        let () = within(PROMPT, "SET through the proxy", redis.run(&set))
            .await
            .expect("SET while the link is up");
    }
    assert_eq!(health.check().await.status, HealthStatus::Up);

    proxy.cut();
    let mut failed = 0;
    while redis.breaker_snapshot().state != BreakerState::Open {
        failed += 1;
        assert!(failed <= 10, "breaker still closed after {failed} failures");
        let started = Instant::now();
        let error = within(PROMPT, "SET on a cut link", redis.run::<()>(&set))
            .await
            .expect_err("the link is cut");
        let elapsed = started.elapsed();
        assert!(error.is_unavailable(), "{error:?}");
        // A reset is noticed at once; waiting for the timeout would not be failing fast.
        assert!(
            elapsed < COMMAND_TIMEOUT,
            "took {elapsed:?} to notice a reset link: {error}"
        );
    }
    // The breaker opens once at least half of at least five calls failed.
    assert!(failed >= 5, "opened after only {failed} failures");

    // Open: refused without touching Redis, with the breaker's schedule.
    let started = Instant::now();
    let error = redis.run::<()>(&set).await.expect_err("breaker is open");
    assert!(started.elapsed() < Duration::from_millis(50));
    match &error {
        RedisError::Unavailable {
            retry_after,
            reason,
        } => {
            assert!(reason.contains("circuit breaker"), "{reason}");
            assert!(*retry_after > Duration::ZERO && *retry_after <= OPEN_FOR);
        }
        RedisError::Command(_) => panic!("an outage is not a command error: {error:?}"),
    }

    // Degraded, never down, and the instance stays ready.
    let report = health.check().await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert_eq!(
        report.breaker.as_ref().map(|b| b.state),
        Some(BreakerState::Open),
        "{report:?}"
    );
    assert!(!health.required());
    let mut registry = HealthRegistry::new(Duration::from_secs(1));
    registry
        .register(Arc::new(health.clone()))
        .expect("one redis check");
    let overall = registry.report().await;
    assert_eq!(overall.status, HealthStatus::Degraded);
    assert!(
        overall.ready(),
        "a Redis outage must not take Palisade out of rotation"
    );

    proxy.resume();
    let resumed = Instant::now();
    eventually(
        Duration::from_secs(5),
        "calls to succeed and the breaker to close after resume",
        || async {
            redis.run::<()>(&set).await.is_ok()
                && redis.breaker_snapshot().state == BreakerState::Closed
        },
    )
    .await;
    let recovered = resumed.elapsed();
    // Two open periods at most: a stale failure may cost one more probe cycle.
    assert!(recovered < OPEN_FOR * 4, "recovery took {recovered:?}");
    assert_eq!(health.check().await.status, HealthStatus::Up);
}

#[tokio::test]
async fn blackholed_link_fails_within_the_command_timeout() {
    let (_server, proxy) = proxied_server().await;
    let redis = Redis::new(&config(proxy.addr()), SystemClock::shared()).expect("valid config");
    let set = set(&redis);
    let () = within(PROMPT, "SET through the proxy", redis.run(&set))
        .await
        .expect("SET while the link is up");

    proxy.blackhole();
    for command in ["run", "run_idempotent"] {
        let started = Instant::now();
        let result = within(Duration::from_secs(3), "SET into a blackhole", async {
            if command == "run" {
                redis.run::<()>(&set).await
            } else {
                // Retries are bounded by the retry deadline, each attempt by the timeout.
                redis.run_idempotent::<()>(&set).await
            }
        })
        .await;
        let elapsed = started.elapsed();
        let error = result.expect_err("nothing comes back from a blackhole");
        assert!(error.is_unavailable(), "{command}: {error:?}");
        assert!(
            error.to_string().contains("timed out")
                || error.to_string().contains("circuit breaker"),
            "{command}: {error}"
        );
        let bound = if command == "run" {
            COMMAND_TIMEOUT + Duration::from_millis(150)
        } else {
            Duration::from_millis(1_000 + 150)
        };
        assert!(elapsed < bound, "{command} took {elapsed:?}");
    }

    // The partition heals: the same connection carries on.
    proxy.resume();
    eventually(
        Duration::from_secs(5),
        "calls to succeed after the blackhole lifts",
        || async { redis.run::<()>(&set).await.is_ok() },
    )
    .await;
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

#[tokio::test]
async fn starts_while_redis_is_down_and_reports_degraded() {
    let started = Instant::now();
    let redis = Redis::new(
        &config(format!("127.0.0.1:{}", closed_port())),
        SystemClock::shared(),
    )
    .expect("Redis being down is not a start-up error");
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "Redis::new must not wait for the server: {:?}",
        started.elapsed()
    );

    let error = within(
        PROMPT,
        "PING a closed port",
        redis.run::<String>(&redis::cmd("PING")),
    )
    .await
    .expect_err("nothing listens there");
    assert!(error.is_unavailable(), "{error:?}");
    let report = within(PROMPT, "health check", RedisHealth(redis).check()).await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert!(report.breaker.is_some(), "{report:?}");
}

#[tokio::test]
async fn connects_once_redis_comes_up_after_start() {
    let (_server, proxy) = proxied_server().await;
    proxy.cut();
    let redis = Redis::new(&config(proxy.addr()), SystemClock::shared()).expect("valid config");
    let set = set(&redis);
    let error = within(PROMPT, "SET before Redis is up", redis.run::<()>(&set))
        .await
        .expect_err("Redis is not reachable yet");
    assert!(error.is_unavailable(), "{error:?}");

    proxy.resume();
    eventually(
        Duration::from_secs(5),
        "the first connection once Redis is reachable",
        || async { redis.run::<()>(&set).await.is_ok() },
    )
    .await;
}
