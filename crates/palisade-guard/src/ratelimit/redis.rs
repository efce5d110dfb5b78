//! The shared limiter: one Lua script per check on Redis, so every instance
//! sharing the Redis enforces one global limit.
//!
//! - Time comes from Redis (`TIME`), never from the instance, so instances
//!   whose clocks disagree still agree on the limit.
//! - Each check touches exactly one key, `<prefix>rl:{<namespace>:<key>}`.
//!   The braces are a hash tag, so the key maps to one Cluster slot. All state
//!   of an algorithm lives in that key: a string for GCRA, a small hash for
//!   the windows.
//! - The scripts mirror the arithmetic of the in-process limiter in
//!   microseconds. Lua numbers are doubles, exact up to 2^53 µs (285 years).
//! - A denied check writes nothing.
//!
//! Errors come back as [`RedisError`]; the caller decides whether to fall
//! back (see `RateLimiter`).

use super::{Algorithm, Decision, Limit};
use palisade_store::{Redis, RedisError};
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

/// GCRA: the key holds the theoretical arrival time (TAT) in µs.
/// ARGV: period µs, limit, burst, cost. Returns {allowed, remaining, reset µs, retry µs}.
const GCRA_SOURCE: &str = r"
local period, limit, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + cost * interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  local remaining = math.floor((now + burst * interval - tat) / interval)
  if remaining < 0 then remaining = 0 end
  return {0, remaining, math.ceil(tat - now), math.ceil(allow_at - now)}
end
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
local remaining = math.floor((now + burst * interval - new_tat) / interval)
if remaining < 0 then remaining = 0 end
return {1, remaining, math.ceil(new_tat - now), 0}
";
static GCRA: LazyLock<Script> = LazyLock::new(|| Script::new(GCRA_SOURCE));

/// Sliding window: a hash {w = window index, c = its count, p = the count of
/// window w-1}. ARGV: period µs, limit, cost.
const SLIDING_WINDOW_SOURCE: &str = r"
local period, limit, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local w = math.floor(now / period)
local e = now - w * period
local s = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local sw, cur, prev = tonumber(s[1]), tonumber(s[2]) or 0, tonumber(s[3]) or 0
if sw == nil or sw < w - 1 then cur, prev = 0, 0
elseif sw == w - 1 then prev, cur = cur, 0 end
local weight = (period - e) / period
local estimate = prev * weight + cur
local function reset(c, p)
  if c > 0 then return 2 * period - e elseif p > 0 then return period - e end
  return 0
end
if estimate + cost > limit then
  local remaining = math.floor(limit - estimate)
  if remaining < 0 then remaining = 0 end
  local retry
  if prev > 0 and limit - cur - cost >= 0 then
    retry = period * (1 - (limit - cur - cost) / prev) - e
  elseif cur > 0 then
    retry = (period - e) + math.max(0, period * (1 - (limit - cost) / cur))
  else
    retry = period - e
  end
  if retry < 1 then retry = 1 end
  return {0, remaining, math.ceil(reset(cur, prev)), math.ceil(retry)}
end
cur = cur + cost
redis.call('HSET', KEYS[1], 'w', w, 'c', cur, 'p', prev)
redis.call('PEXPIRE', KEYS[1], math.ceil((2 * period - e) / 1000) + 1)
local remaining = math.floor(limit - (prev * weight + cur))
if remaining < 0 then remaining = 0 end
return {1, remaining, math.ceil(reset(cur, prev)), 0}
";
static SLIDING_WINDOW: LazyLock<Script> = LazyLock::new(|| Script::new(SLIDING_WINDOW_SOURCE));

/// Fixed window: a hash {w = window index, c = its count}. ARGV: period µs, limit, cost.
const FIXED_WINDOW_SOURCE: &str = r"
local period, limit, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local w = math.floor(now / period)
local left = (w + 1) * period - now
local s = redis.call('HMGET', KEYS[1], 'w', 'c')
local count = 0
if tonumber(s[1]) == w then count = tonumber(s[2]) or 0 end
if count + cost > limit then
  return {0, limit - count, math.ceil(left), math.ceil(left)}
end
count = count + cost
redis.call('HSET', KEYS[1], 'w', w, 'c', count)
redis.call('PEXPIRE', KEYS[1], math.ceil(left / 1000) + 1)
return {1, limit - count, math.ceil(left), 0}
";
static FIXED_WINDOW: LazyLock<Script> = LazyLock::new(|| Script::new(FIXED_WINDOW_SOURCE));

/// The Lua source of `algorithm`'s script, for operators and benchmarks
/// (`redis-benchmark EVALSHA` of the same script).
pub fn script_source(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Gcra => GCRA_SOURCE,
        Algorithm::SlidingWindow => SLIDING_WINDOW_SOURCE,
        Algorithm::FixedWindow => FIXED_WINDOW_SOURCE,
    }
}

/// Checks limits on Redis. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RedisLimiter {
    redis: Redis,
}

impl RedisLimiter {
    /// A limiter on `redis`, its keys under the connection's key prefix.
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// The Redis key of `key` in `namespace` (a rule name, or the canonical
    /// form of an inline limit).
    pub fn storage_key(&self, namespace: &str, key: &str) -> String {
        self.redis.key(&format!("rl:{{{namespace}:{key}}}"))
    }

    /// Takes `cost` units of `limit` for `key` in `namespace`. The cost must
    /// already have been checked against the limit ([`Limit::check_cost`]).
    pub async fn check(
        &self,
        namespace: &str,
        key: &str,
        limit: &Limit,
        cost: u64,
    ) -> Result<Decision, RedisError> {
        let storage_key = [self.storage_key(namespace, key)];
        let period_us = u64::try_from(limit.period().as_micros()).unwrap_or(u64::MAX);
        let reply: Vec<i64> = match limit.algorithm() {
            Algorithm::Gcra => {
                let args = [period_us, limit.limit(), limit.capacity(), cost];
                self.redis.invoke_script(&GCRA, &storage_key, &args).await?
            }
            Algorithm::SlidingWindow => {
                let args = [period_us, limit.limit(), cost];
                self.redis
                    .invoke_script(&SLIDING_WINDOW, &storage_key, &args)
                    .await?
            }
            Algorithm::FixedWindow => {
                let args = [period_us, limit.limit(), cost];
                self.redis
                    .invoke_script(&FIXED_WINDOW, &storage_key, &args)
                    .await?
            }
        };
        decode(limit, &reply)
    }
}

/// Turns a script's `{allowed, remaining, reset µs, retry µs}` into a [`Decision`].
fn decode(limit: &Limit, reply: &[i64]) -> Result<Decision, RedisError> {
    let [allowed, remaining, reset_us, retry_us] = reply else {
        return Err(RedisError::Command(format!(
            "rate-limit script returned {} values instead of 4",
            reply.len()
        )));
    };
    let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
    Ok(Decision {
        allowed: *allowed == 1,
        limit: limit.limit(),
        remaining: u64::try_from(*remaining).unwrap_or(0).min(limit.capacity()),
        reset_after: micros(*reset_us),
        retry_after: micros(*retry_us),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_script_reply_and_clamps_remaining_to_capacity() {
        let limit = Limit::new(Algorithm::FixedWindow, 10, Duration::from_secs(1)).unwrap();
        let decision = decode(&limit, &[1, 99, 1_500, 0]).unwrap();
        assert!(decision.allowed);
        assert_eq!(decision.remaining, 10);
        assert_eq!(decision.reset_after, Duration::from_micros(1_500));
        let denied = decode(&limit, &[0, -3, 10, 20]).unwrap();
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 0);
        assert_eq!(denied.retry_after, Duration::from_micros(20));
    }

    #[test]
    fn a_malformed_reply_is_a_command_error_not_a_decision() {
        let limit = Limit::new(Algorithm::Gcra, 10, Duration::from_secs(1)).unwrap();
        assert!(matches!(
            decode(&limit, &[1, 2]),
            Err(RedisError::Command(_))
        ));
    }
}
