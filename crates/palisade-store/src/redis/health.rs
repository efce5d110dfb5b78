//! Redis as an optional health component.

use super::Redis;
use futures_util::future::BoxFuture;
use palisade_core::health::{ComponentHealth, HealthCheck};
use palisade_core::resilience::BreakerState;

/// Redis in `/health`: optional, so when it fails Palisade reports `degraded`
/// and stays ready. Rate limits and caches fall back to in-process state;
/// taking the instance out of rotation would turn a Redis outage into a full one.
#[derive(Debug, Clone)]
pub struct RedisHealth(pub Redis);

impl HealthCheck for RedisHealth {
    fn name(&self) -> &str {
        "redis"
    }

    fn required(&self) -> bool {
        false
    }

    fn check(&self) -> BoxFuture<'_, ComponentHealth> {
        Box::pin(async move {
            let redis = &self.0;
            let mode = redis.mode();
            let started = redis.inner.clock.monotonic();
            // Through the breaker like any call: an open breaker answers at once
            // instead of the probe adding load to a struggling server, and a
            // successful PING while half-open helps close it. `Value` because a
            // cluster answers PING per node.
            let ping = redis.run::<::redis::Value>(&::redis::cmd("PING")).await;
            let latency = redis.inner.clock.monotonic().saturating_sub(started);
            let breaker = redis.breaker_snapshot();
            let health = match ping {
                Ok(_) if breaker.state == BreakerState::Closed => {
                    ComponentHealth::up().with_detail(mode.as_str())
                }
                // Answered, but the breaker still wants more successful probes.
                Ok(_) => ComponentHealth::degraded(format!(
                    "{mode}: recovering, circuit breaker is {}",
                    breaker.state
                )),
                // Degraded, never down: Palisade works without Redis.
                Err(e) => ComponentHealth::degraded(format!("{mode}: {e}")),
            };
            health.with_latency(latency).with_breaker(breaker)
        })
    }
}
