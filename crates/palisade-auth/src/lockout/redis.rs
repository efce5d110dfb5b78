//! The shared backend: one Lua script per operation, so every instance on the
//! same Redis sees one count per account and per client address.
//!
//! - **One key per counted thing**, `<prefix>lk:{a<digest>}` for an account and
//!   `<prefix>lk:{c<digest>}` for a client address. The braces are a hash tag,
//!   so each key is one Cluster slot and each script touches one key. A key is
//!   a small hash: `n` (failures), `b` (blocked until, Unix ms by Redis's
//!   clock) and, on client keys, `p<account digest>` per-account counts (at
//!   most [`super::MAX_PAIRS`]).
//! - **Atomic**: each script reads, decides and writes in one step, so two
//!   instances recording failures at once both count, and a block set by one
//!   is seen by the other's next step.
//! - **Server time** (`TIME`): instances whose clocks disagree still agree on
//!   when a delay ends.
//! - **Nothing lives forever**: every write sets the key's TTL to the block
//!   still in force plus the policy's window, the same rule as in process.
//! - The arithmetic mirrors [`super::LockoutPolicy::penalty`] in milliseconds;
//!   Lua's doubles are exact far beyond the 30-day ceilings.
//!
//! Errors come back as [`RedisError`]; the facade falls back to the in-process
//! counts (see [`super::Lockout`]).

use super::policy::{LockoutPolicy, Thresholds};
use super::{Clear, KeyState, MAX_PAIRS, Recorded, Reset, attempt::KeyDigest};
use palisade_store::{Redis, RedisError};
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

/// Reads a key. Returns {failures, blocked ms left}.
const CHECK_SOURCE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'n', 'b')
local n, b = tonumber(s[1]) or 0, tonumber(s[2]) or 0
local left = 0
if b > now then left = b - now end
return {n, left}
";
static CHECK: LazyLock<Script> = LazyLock::new(|| Script::new(CHECK_SOURCE));

/// Counts one failure. ARGV: free failures, lockout after, backoff base ms,
/// backoff cap ms, lockout ms, window ms, per-account field ('' for none),
/// most per-account fields. Returns {failures, blocked ms left before this
/// failure, blocked ms left now, 1 when this failure started a lockout}.
const FAIL_SOURCE: &str = r"
local free, after = tonumber(ARGV[1]), tonumber(ARGV[2])
local base, cap, lock, window = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'n', 'b')
local n, b = tonumber(s[1]) or 0, tonumber(s[2]) or 0
local before = 0
if b > now then before = b - now end
local was_lockout = before > 0 and n >= after
n = n + 1
local delay, lockout = 0, false
if n >= after then
  delay, lockout = lock, true
elseif n > free then
  delay = base * 2 ^ (n - free - 1)
  if delay > cap then delay = cap end
end
if now + delay > b then b = now + delay end
redis.call('HSET', KEYS[1], 'n', n, 'b', string.format('%.0f', b))
local pair = ARGV[7]
if pair ~= '' and (redis.call('HEXISTS', KEYS[1], pair) == 1
    or redis.call('HLEN', KEYS[1]) < 2 + tonumber(ARGV[8])) then
  redis.call('HINCRBY', KEYS[1], pair, 1)
end
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', b - now + window))
local caused = 0
if lockout and not was_lockout then caused = 1 end
return {n, before, b - now, caused}
";
static FAIL: LazyLock<Script> = LazyLock::new(|| Script::new(FAIL_SOURCE));

/// A success. ARGV[1]: '*' clears the key, '' clears nothing, anything else
/// is the per-account field whose failures are taken back. Refused (nothing
/// written) while the key is blocked. Returns {1 done / 0 blocked, failures,
/// blocked ms left}.
const SUCCEED_SOURCE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'n', 'b')
local n, b = tonumber(s[1]) or 0, tonumber(s[2]) or 0
if b > now then return {0, n, b - now} end
local clear = ARGV[1]
if clear == '*' then
  redis.call('DEL', KEYS[1])
  n = 0
elseif clear ~= '' then
  local p = tonumber(redis.call('HGET', KEYS[1], clear)) or 0
  if p > 0 then
    n = n - p
    if n < 0 then n = 0 end
    redis.call('HDEL', KEYS[1], clear)
    redis.call('HSET', KEYS[1], 'n', n)
  end
end
return {1, n, 0}
";
static SUCCEED: LazyLock<Script> = LazyLock::new(|| Script::new(SUCCEED_SOURCE));

/// The check script takes no arguments.
const NO_ARGS: [&str; 0] = [];

/// Which kind of thing a key counts, for its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Account,
    Client,
}

/// Counts on Redis. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RedisLockout {
    redis: Redis,
}

impl std::fmt::Debug for RedisLockout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLockout")
            .field("key_prefix", &self.redis.key_prefix())
            .finish()
    }
}

impl RedisLockout {
    pub(crate) fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// The Redis key of `key`.
    pub(crate) fn storage_key(&self, kind: KeyKind, key: KeyDigest) -> String {
        let tag = match kind {
            KeyKind::Account => 'a',
            KeyKind::Client => 'c',
        };
        self.redis.key(&format!("lk:{{{tag}{}}}", key.hex()))
    }

    pub(crate) async fn check(
        &self,
        kind: KeyKind,
        key: KeyDigest,
    ) -> Result<KeyState, RedisError> {
        let keys = [self.storage_key(kind, key)];
        let reply: Vec<i64> = self.redis.invoke_script(&CHECK, &keys, &NO_ARGS).await?;
        match reply[..] {
            [n, left] => Ok(KeyState {
                failures: count(n),
                blocked_for: millis(left),
            }),
            _ => Err(malformed("check", reply.len())),
        }
    }

    pub(crate) async fn fail(
        &self,
        kind: KeyKind,
        key: KeyDigest,
        thresholds: Thresholds,
        policy: &LockoutPolicy,
        pair: Option<KeyDigest>,
    ) -> Result<Recorded, RedisError> {
        let keys = [self.storage_key(kind, key)];
        let mut args: Vec<String> = policy
            .script_args(thresholds)
            .iter()
            .map(u64::to_string)
            .collect();
        args.push(pair.map(pair_field).unwrap_or_default());
        args.push(MAX_PAIRS.to_string());
        let reply: Vec<i64> = self.redis.invoke_script(&FAIL, &keys, &args).await?;
        match reply[..] {
            [n, before, left, caused] => Ok(Recorded {
                failures: count(n),
                blocked_before: millis(before),
                blocked_for: millis(left),
                caused_lockout: caused == 1,
            }),
            _ => Err(malformed("fail", reply.len())),
        }
    }

    pub(crate) async fn succeed(
        &self,
        kind: KeyKind,
        key: KeyDigest,
        clear: Clear,
    ) -> Result<Reset, RedisError> {
        let keys = [self.storage_key(kind, key)];
        let arg = match clear {
            Clear::All => "*".to_owned(),
            Clear::Pair(pair) => pair_field(pair),
            Clear::Nothing => String::new(),
        };
        let reply: Vec<i64> = self.redis.invoke_script(&SUCCEED, &keys, &[arg]).await?;
        match reply[..] {
            [1, _, _] => Ok(Reset::Done),
            [0, n, left] => Ok(Reset::Blocked(KeyState {
                failures: count(n),
                blocked_for: millis(left),
            })),
            _ => Err(malformed("succeed", reply.len())),
        }
    }
}

/// The hash field of one account's failures on a client key.
fn pair_field(pair: KeyDigest) -> String {
    format!("p{}", pair.hex())
}

fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn malformed(script: &str, len: usize) -> RedisError {
    RedisError::Command(format!(
        "lockout {script} script returned an unexpected reply ({len} values)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_or_huge_replies_are_clamped_not_wrapped() {
        assert_eq!(count(-3), 0);
        assert_eq!(count(i64::MAX), u32::MAX);
        assert_eq!(millis(-1), Duration::ZERO);
        assert_eq!(millis(1_500), Duration::from_millis(1_500));
    }
}
