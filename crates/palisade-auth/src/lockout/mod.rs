//! Brute-force protection: failed credential checks counted per account and
//! per client address, with exponential backoff, lockout, reset on success,
//! shared across instances through Redis.
//!
//! # Use
//!
//! ```text
//! let attempt = lockout.attempt(&tenant, Some(account), Some(ip), Some(&password))?;
//! lockout.check(&attempt).await?;            // Err(Locked): answer 429, hash nothing
//! if passwords.verify(&password, &stored).await?.ok {
//!     lockout.record_success(&attempt).await?; // Err(Locked): answer 429 (see below)
//! } else {
//!     let failure = lockout.record_failure(&attempt).await;
//!     if let Some(locked) = failure.withheld { /* answer 429 */ }
//! }
//! ```
//!
//! [`Lockout::check`] runs before the password hash, so a locked account or
//! client costs no hashing. The numbers are in [`LockoutPolicy`].
//!
//! # Concurrent attempts: verdicts are withheld once a block is in force
//!
//! `check` and `record_*` are separate steps with a hash in between, so a burst
//! of parallel guesses could all pass `check` before the first failure is
//! recorded. To keep such a burst from learning more than the policy allows,
//! the verdict of an attempt that finishes while a block is in force (set by
//! a concurrent attempt) is withheld: its failure still counts, and
//! [`Failure::withheld`] / the `Err` of [`Lockout::record_success`] tell the
//! caller to answer as if `check` had refused it. A correct password guessed
//! in such a burst is therefore never confirmed, and does not reset the counts.
//!
//! # What a success resets
//!
//! A success on an account clears the account's count: its owner proved the
//! password. For the client address it takes back only the failures that
//! address made against *that* account (tracked per account, at most
//! [`MAX_PAIRS`] accounts per address; beyond that nothing is taken back).
//! Clearing the address's whole count instead would let an attacker who owns
//! one account spray others from the same address, logging into their own
//! account between rounds to start afresh. With per-account take-back, their
//! own login returns only their own typos.
//!
//! # Account lockout is also a denial of service
//!
//! Anyone who knows an account name can lock it by failing on purpose. The
//! defaults keep that short (15 minutes, after growing delays), and the
//! account's owner is let in as soon as it ends; applications that prefer
//! never to lock can set a high `lockout_after` for accounts and rely on the
//! backoff delays and on client-address lockout.
//!
//! # Redis down
//!
//! Every instance keeps an in-process copy of the counts it has seen (what
//! Redis answered, plus its own failures). When Redis is unreachable (or a
//! script fails) each operation is answered from that copy, and the result
//! says `degraded`:
//!
//! - **check** refuses what this instance knows to be blocked, including
//!   lockouts set by other instances that it had seen. Refusing every login
//!   instead would turn a cache outage (which an attacker may be able to
//!   cause) into a login outage; allowing every login would drop protection
//!   exactly when it is being probed. In between, the budget of a key during
//!   an outage is at most the policy's per instance.
//! - **record_failure** counts in process; the shared count misses it.
//! - **record_success** clears in process only; the shared count keeps its
//!   failures until the window forgets them. That errs on the strict side.
//!
//! # Events
//!
//! Each step publishes to [`SecurityEvents`]: `LoginFailure` for a failed
//! check (`reason` `bad_password`) and for an attempt refused while blocked
//! (`locked`), `LoginSuccess` (`reason` `withheld` when the verdict was
//! withheld), and `Lockout` for every account or client that a failure locked
//! out. Events carry the account as counted, the address, the tenant and the
//! credential's keyed fingerprint, never the credential.

mod attempt;
mod error;
mod memory;
mod policy;
mod redis;

pub use attempt::{Attempt, LockoutKeys, MAX_ACCOUNT_BYTES, MIN_SECRET_BYTES};
pub use error::{LockScope, Locked, LockoutError};
pub use policy::{LockoutPolicy, MAX_DURATION, MAX_LOCKOUT_AFTER, Penalty, Thresholds};

use attempt::KeyDigest;
use memory::MemoryLockout;
use palisade_core::principal::TenantId;
use palisade_core::{Secret, SecurityEvent, SecurityEventKind, SecurityEvents, SharedClock};
use palisade_store::{Redis, RedisError};
use redis::{KeyKind, RedisLockout};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Most accounts per client address whose failures are tracked separately, so
/// that a success takes back only its own account's failures.
pub const MAX_PAIRS: usize = 16;

/// A key's count and the block in force, as a backend reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KeyState {
    failures: u32,
    blocked_for: Duration,
}

/// What recording one failure did to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recorded {
    failures: u32,
    /// The block that was already in force when this failure was recorded.
    blocked_before: Duration,
    /// The block in force now.
    blocked_for: Duration,
    caused_lockout: bool,
}

/// What a success did to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reset {
    /// Cleared as asked.
    Done,
    /// Refused: the key is blocked; nothing changed.
    Blocked(KeyState),
}

/// What a success clears on a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clear {
    /// The whole key (an account).
    All,
    /// One account's failures on a client key.
    Pair(KeyDigest),
    /// Nothing (a client key when the account is unknown).
    Nothing,
}

/// One key's side of a recorded failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// Failures now counted against the key.
    pub failures: u32,
    /// How long further attempts are refused (zero when within the free failures).
    pub blocked_for: Duration,
    /// Whether this failure started a lockout of the key.
    pub caused_lockout: bool,
}

/// What [`Lockout::record_failure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Failure {
    /// The account's count, when the attempt named an account.
    pub account: Option<Counted>,
    /// The client address's count, when the attempt had one.
    pub client: Option<Counted>,
    /// Set when a block was already in force as this failure was recorded:
    /// the attempt got past `check` before a concurrent one set it. Do not
    /// reveal the verdict; answer as for a refused `check`.
    pub withheld: Option<Locked>,
    /// Whether Redis was unreachable and this instance's counts decided.
    pub degraded: bool,
}

impl Failure {
    /// Whether this failure locked out the account or the client.
    pub fn caused_lockout(&self) -> bool {
        self.lockouts().next().is_some()
    }

    /// The keys this failure locked out, with their counts.
    pub fn lockouts(&self) -> impl Iterator<Item = (LockScope, Counted)> + '_ {
        [
            (LockScope::Account, self.account),
            (LockScope::Client, self.client),
        ]
        .into_iter()
        .filter_map(|(scope, counted)| counted.filter(|c| c.caused_lockout).map(|c| (scope, c)))
    }
}

/// Brute-force protection for one deployment: counts in process, shared
/// through Redis when given. Cheap to clone; clones share the counts.
#[derive(Clone)]
pub struct Lockout {
    policy: Arc<LockoutPolicy>,
    /// `None` when lockout is off: nothing is counted, events are still sent.
    keys: Option<Arc<LockoutKeys>>,
    clock: SharedClock,
    local: Arc<MemoryLockout>,
    shared: Option<RedisLockout>,
    events: SecurityEvents,
}

impl std::fmt::Debug for Lockout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lockout")
            .field("enabled", &self.keys.is_some())
            .field("shared", &self.shared)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Lockout {
    /// Keys the in-process copy holds at most (accounts and addresses with
    /// recent failures): about 10-30 MB when full.
    pub const DEFAULT_LOCAL_CAPACITY: usize = 100_000;

    /// In-process protection under `policy`, naming counts with `keys` and
    /// publishing to `events`. Add Redis with [`Lockout::with_redis`].
    pub fn new(
        policy: LockoutPolicy,
        keys: LockoutKeys,
        clock: SharedClock,
        events: SecurityEvents,
    ) -> Result<Self, LockoutError> {
        policy.validate()?;
        Ok(Self {
            policy: Arc::new(policy),
            keys: Some(Arc::new(keys)),
            clock,
            local: Arc::new(MemoryLockout::new(Self::DEFAULT_LOCAL_CAPACITY)),
            shared: None,
            events,
        })
    }

    /// Protection off: every attempt is let in and nothing is counted; events
    /// are still published (without fingerprints, which need a key).
    pub fn disabled(clock: SharedClock, events: SecurityEvents) -> Self {
        Self {
            policy: Arc::new(LockoutPolicy::default()),
            keys: None,
            clock,
            local: Arc::new(MemoryLockout::new(1)),
            shared: None,
            events,
        }
    }

    /// Shares counts with every instance on `redis` (whose keys must come
    /// from the same secret, see [`LockoutKeys::derive_from`]).
    pub fn with_redis(mut self, redis: Redis) -> Self {
        self.shared = Some(RedisLockout::new(redis));
        self
    }

    /// Publishes to `events` instead (the sink the application's detectors
    /// subscribe to).
    pub fn with_events(mut self, events: SecurityEvents) -> Self {
        self.events = events;
        self
    }

    /// Bounds the in-process copy to `max_entries` keys. Call before use:
    /// it starts an empty copy.
    pub fn with_local_capacity(mut self, max_entries: usize) -> Self {
        self.local = Arc::new(MemoryLockout::new(max_entries));
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> &LockoutPolicy {
        &self.policy
    }

    /// Whether attempts are counted.
    pub fn is_enabled(&self) -> bool {
        self.keys.is_some()
    }

    /// Whether counts are shared through Redis.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Where this lockout publishes its events.
    pub fn events(&self) -> &SecurityEvents {
        &self.events
    }

    /// Describes an attempt in `tenant` on `account` (normalised, see
    /// [`Attempt`]) from the user's address `ip`. Either may be `None`: only
    /// what is known is counted. `credential` is used only for the event
    /// fingerprint and is not kept.
    pub fn attempt(
        &self,
        tenant: &TenantId,
        account: Option<&str>,
        ip: Option<IpAddr>,
        credential: Option<&Secret>,
    ) -> Result<Attempt, LockoutError> {
        Attempt::new(self.keys.as_deref(), tenant, account, ip, credential)
    }

    /// Refuses the attempt, before any hashing, when its account or client is
    /// in a backoff delay or locked out.
    pub async fn check(&self, attempt: &Attempt) -> Result<(), Locked> {
        let (account, client) = tokio::join!(
            self.check_key(LockScope::Account, attempt.account_key),
            self.check_key(LockScope::Client, attempt.client_key),
        );
        match self.blocked(account.map(|(s, _)| s), client.map(|(s, _)| s)) {
            None => Ok(()),
            Some(locked) => {
                metrics::counter!("palisade_lockout_refused_total", "scope" => locked.scope.as_str())
                    .increment(1);
                let mut event = self
                    .event(SecurityEventKind::LoginFailure, attempt)
                    .reason("locked");
                event.detail = locked_detail(&locked);
                self.events.emit(event);
                Err(locked)
            }
        }
    }

    /// Counts a failed check of the attempt's credential against its account
    /// and client, and reports lockouts.
    pub async fn record_failure(&self, attempt: &Attempt) -> Failure {
        let (account, client) = tokio::join!(
            self.fail_key(LockScope::Account, attempt.account_key, None),
            self.fail_key(LockScope::Client, attempt.client_key, attempt.account_key),
        );
        let degraded = account.is_some_and(|(_, d)| d) || client.is_some_and(|(_, d)| d);
        let before = |r: Option<(Recorded, bool)>| {
            r.map(|(r, _)| KeyState {
                failures: r.failures.saturating_sub(1),
                blocked_for: r.blocked_before,
            })
        };
        let failure = Failure {
            withheld: self.blocked(before(account), before(client)),
            account: account.map(|(r, _)| counted(r)),
            client: client.map(|(r, _)| counted(r)),
            degraded,
        };
        let mut event = self
            .event(SecurityEventKind::LoginFailure, attempt)
            .reason("bad_password");
        for (scope, counted) in [("account", failure.account), ("client", failure.client)] {
            if let Some(c) = counted {
                event
                    .detail
                    .insert(format!("{scope}_failures"), c.failures.into());
            }
        }
        self.events.emit(event);
        for (scope, counted) in failure.lockouts() {
            metrics::counter!("palisade_lockout_lockouts_total", "scope" => scope.as_str())
                .increment(1);
            tracing::warn!(
                tenant = %attempt.tenant.as_str(),
                scope = scope.as_str(),
                failures = counted.failures,
                locked_for_ms = policy::ms(counted.blocked_for),
                "lockout after repeated failures"
            );
            let mut event = self
                .event(SecurityEventKind::Lockout, attempt)
                .reason("too_many_failures");
            event.detail = serde_json::Map::from_iter([
                ("scope".to_owned(), scope.as_str().into()),
                ("failures".to_owned(), counted.failures.into()),
                (
                    "locked_for_ms".to_owned(),
                    policy::ms(counted.blocked_for).into(),
                ),
            ]);
            self.events.emit(event);
        }
        failure
    }

    /// Records a successful check: clears the account's count and takes back
    /// the client's failures against this account (see the module docs).
    /// Refused, changing nothing, when either is blocked: the attempt got past
    /// `check` before a concurrent failure set the block, and its verdict must
    /// not be revealed.
    pub async fn record_success(&self, attempt: &Attempt) -> Result<(), Locked> {
        let account = match attempt.account_key {
            Some(key) => self.succeed_key(LockScope::Account, key, Clear::All).await,
            None => Reset::Done,
        };
        // The client's share is cleared only once the account has accepted.
        let client = match (account, attempt.client_key) {
            (Reset::Done, Some(key)) => {
                let clear = attempt.account_key.map_or(Clear::Nothing, Clear::Pair);
                self.succeed_key(LockScope::Client, key, clear).await
            }
            _ => Reset::Done,
        };
        let blocked_state = |r: Reset| match r {
            Reset::Blocked(s) => Some(s),
            Reset::Done => None,
        };
        let refused = self.blocked(blocked_state(account), blocked_state(client));
        let mut event = self.event(SecurityEventKind::LoginSuccess, attempt);
        if let Some(locked) = &refused {
            event = event.reason("withheld");
            event.detail = locked_detail(locked);
        }
        self.events.emit(event);
        refused.map_or(Ok(()), Err)
    }

    fn thresholds(&self, scope: LockScope) -> Thresholds {
        match scope {
            LockScope::Account => self.policy.account,
            LockScope::Client => self.policy.client,
        }
    }

    /// The longer of the blocks in force, as a refusal.
    fn blocked(&self, account: Option<KeyState>, client: Option<KeyState>) -> Option<Locked> {
        [(LockScope::Account, account), (LockScope::Client, client)]
            .into_iter()
            .filter_map(|(scope, state)| state.map(|s| (scope, s)))
            .filter(|(_, s)| !s.blocked_for.is_zero())
            .max_by_key(|(_, s)| s.blocked_for)
            .map(|(scope, s)| Locked {
                retry_after: s.blocked_for,
                scope,
                lockout: s.failures >= self.thresholds(scope).lockout_after,
            })
    }

    /// Monotonic milliseconds, the time base of the in-process copy.
    fn local_now(&self) -> u64 {
        policy::ms(self.clock.monotonic())
    }

    async fn check_key(
        &self,
        scope: LockScope,
        key: Option<KeyDigest>,
    ) -> Option<(KeyState, bool)> {
        let key = key?;
        if let Some(shared) = &self.shared {
            match shared.check(kind(scope), key).await {
                Ok(state) => {
                    let window = self.policy.window;
                    self.local.raise(key, state, None, window, self.local_now());
                    return Some((state, false));
                }
                Err(error) => fell_back("check", &error),
            }
        }
        Some((
            self.local.check(key, self.local_now()),
            self.shared.is_some(),
        ))
    }

    async fn fail_key(
        &self,
        scope: LockScope,
        key: Option<KeyDigest>,
        pair: Option<KeyDigest>,
    ) -> Option<(Recorded, bool)> {
        let key = key?;
        let thresholds = self.thresholds(scope);
        if let Some(shared) = &self.shared {
            match shared
                .fail(kind(scope), key, thresholds, &self.policy, pair)
                .await
            {
                Ok(recorded) => {
                    let state = KeyState {
                        failures: recorded.failures,
                        blocked_for: recorded.blocked_for,
                    };
                    let window = self.policy.window;
                    self.local.raise(key, state, pair, window, self.local_now());
                    return Some((recorded, false));
                }
                Err(error) => fell_back("fail", &error),
            }
        }
        let recorded = self
            .local
            .fail(key, thresholds, &self.policy, pair, self.local_now());
        Some((recorded, self.shared.is_some()))
    }

    async fn succeed_key(&self, scope: LockScope, key: KeyDigest, clear: Clear) -> Reset {
        if let Some(shared) = &self.shared {
            match shared.succeed(kind(scope), key, clear).await {
                Ok(Reset::Done) => {
                    self.local.force_clear(key, clear, self.local_now());
                    return Reset::Done;
                }
                Ok(Reset::Blocked(state)) => {
                    let window = self.policy.window;
                    self.local.raise(key, state, None, window, self.local_now());
                    return Reset::Blocked(state);
                }
                Err(error) => fell_back("succeed", &error),
            }
        }
        self.local.succeed(key, clear, self.local_now())
    }

    fn event(&self, kind: SecurityEventKind, attempt: &Attempt) -> SecurityEvent {
        let mut event = SecurityEvent::new(kind, self.clock.now_unix_ms())
            .tenant(attempt.tenant.clone())
            .ip(attempt.ip);
        if let Some(account) = &attempt.account {
            event = event.subject(account.clone());
        }
        event.credential_fingerprint = attempt.fingerprint.clone();
        event
    }
}

fn kind(scope: LockScope) -> KeyKind {
    match scope {
        LockScope::Account => KeyKind::Account,
        LockScope::Client => KeyKind::Client,
    }
}

fn counted(r: Recorded) -> Counted {
    Counted {
        failures: r.failures,
        blocked_for: r.blocked_for,
        caused_lockout: r.caused_lockout,
    }
}

fn locked_detail(locked: &Locked) -> serde_json::Map<String, serde_json::Value> {
    serde_json::Map::from_iter([
        ("scope".to_owned(), locked.scope.as_str().into()),
        ("lockout".to_owned(), locked.lockout.into()),
        (
            "retry_after_ms".to_owned(),
            policy::ms(locked.retry_after).into(),
        ),
    ])
}

/// Notes a Redis failure before answering from the in-process copy. Outages
/// are already visible in health and the breaker's metrics; a command error
/// is a bug or foreign data under our keys, and is logged louder.
fn fell_back(operation: &'static str, error: &RedisError) {
    metrics::counter!("palisade_lockout_fallbacks_total", "operation" => operation).increment(1);
    if error.is_unavailable() {
        tracing::debug!(%error, operation, "lockout answered from in-process counts");
    } else {
        tracing::warn!(%error, operation, "lockout script failed; answered from in-process counts");
    }
}

#[cfg(test)]
mod tests;
