//! Shared-limiter throughput on a real Redis: `concurrency` tasks run checks
//! for `seconds` on one multiplexed connection (commands of concurrent tasks
//! are pipelined on it), over 100,000 keys, and the rate is printed.
//! `loadtest/ratelimit_redis.sh` runs it next to `redis-benchmark`, the ceiling.
//!
//! Usage: `redis_throughput <redis-url> <seconds> <concurrency> <algorithm>`
//! (algorithm: gcra, sliding_window or fixed_window), or
//! `redis_throughput --print-script <algorithm>` to print that Lua script.

use palisade_core::SystemClock;
use palisade_guard::ratelimit::{
    Algorithm, KeySource, RateLimiter, RateLimiterSettings, Rule, RuleOrigin, RuleSpec,
};
use palisade_store::{Redis, RedisConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const KEYS: u64 = 100_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--print-script") {
        let algorithm: Algorithm = serde_json::from_value(serde_json::Value::String(
            args.get(2).cloned().unwrap_or_else(|| "gcra".into()),
        ))?;
        print!("{}", palisade_guard::ratelimit::script_source(algorithm));
        return Ok(());
    }
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let seconds: u64 = args.get(2).map_or(Ok(10), |s| s.parse())?;
    let concurrency: usize = args.get(3).map_or(Ok(64), |s| s.parse())?;
    let algorithm: Algorithm = serde_json::from_value(serde_json::Value::String(
        args.get(4).cloned().unwrap_or_else(|| "gcra".into()),
    ))?;
    let config = RedisConfig {
        key_prefix: format!("bench:{}:", std::process::id()),
        command_timeout_ms: 2_000,
        ..RedisConfig::single(url)
    };
    let redis = Redis::new(&config, SystemClock::shared())?;
    let limiter = RateLimiter::new(
        RateLimiterSettings::default(),
        SystemClock::shared(),
        Some(redis),
        None,
    );
    let spec = RuleSpec {
        name: "bench".into(),
        key: KeySource::Custom,
        algorithm,
        limit: 1_000_000_000,
        period_ms: 60_000,
        burst: None,
        tiers: Default::default(),
        routes: Vec::new(),
        adaptive: None,
    };
    limiter.replace_rules(vec![Rule::new(spec, RuleOrigin::Config)?])?;
    // Warm up: connect and load the script.
    limiter.check("bench", "warm-up", 1, None).await?;

    let done = Arc::new(AtomicU64::new(0));
    let degraded = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..concurrency {
        let (limiter, done, degraded) = (limiter.clone(), done.clone(), degraded.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = task as u64;
            while Instant::now() < deadline {
                n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let key = format!(
                    "10.{}.{}.{}",
                    (n >> 40) % KEYS / 65_536,
                    (n >> 40) % 65_536 / 256,
                    (n >> 40) % 256
                );
                match limiter.check("bench", &key, 1, None).await {
                    Ok(checked) if checked.degraded => degraded.fetch_add(1, Ordering::Relaxed),
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    Err(e) => panic!("check failed: {e}"),
                };
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let checks = done.load(Ordering::Relaxed);
    println!(
        "algorithm={} concurrency={concurrency} checks={checks} degraded={} checks_per_sec={:.0}",
        algorithm.as_str(),
        degraded.load(Ordering::Relaxed),
        checks as f64 / elapsed
    );
    Ok(())
}
