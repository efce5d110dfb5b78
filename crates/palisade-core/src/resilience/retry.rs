//! Retrying idempotent operations with exponential backoff and full jitter,
//! bounded by a number of attempts and a total deadline on the injected clock.
//!
//! Full jitter (sleep a random time between zero and the exponential ceiling)
//! rather than backon's additive jitter: after an outage, many instances retrying
//! on the same schedule would hit the recovering dependency in waves; spreading
//! each sleep over the whole interval breaks the waves up (see the AWS
//! Architecture Blog, "Exponential Backoff And Jitter").

use super::{ConfigError, MAX_CONFIG_MS};
use crate::clock::{ManualClock, SharedClock};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Backoff, attempt limit and total deadline for retrying an idempotent operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (default 3); 1 means never retry.
    pub max_attempts: u32,
    /// Ceiling of the first backoff sleep, in milliseconds (default 50); each
    /// further retry doubles the ceiling.
    pub base_delay_ms: u64,
    /// Largest ceiling any sleep can have, in milliseconds (default 1000).
    pub max_delay_ms: u64,
    /// Total time budget from the first attempt, in milliseconds (default 5000):
    /// no attempt or sleep is started that would end past it.
    pub deadline_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay_ms: 50,
            max_delay_ms: 1_000,
            deadline_ms: 5_000,
        }
    }
}

/// Most attempts a policy may ask for; beyond this a retry loop is hiding an outage.
const MAX_ATTEMPTS: u32 = 100;

impl RetryPolicy {
    /// Checks every field; the constructors call this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(ConfigError::OutOfRange {
                field: "max_attempts",
                expected: "1 to 100",
            });
        }
        if !(1..=MAX_CONFIG_MS).contains(&self.base_delay_ms) {
            return Err(ConfigError::OutOfRange {
                field: "base_delay_ms",
                expected: "1 to 86400000 (one day)",
            });
        }
        if !(self.base_delay_ms..=MAX_CONFIG_MS).contains(&self.max_delay_ms) {
            return Err(ConfigError::OutOfRange {
                field: "max_delay_ms",
                expected: "at least base_delay_ms and at most 86400000 (one day)",
            });
        }
        if !(1..=MAX_CONFIG_MS).contains(&self.deadline_ms) {
            return Err(ConfigError::OutOfRange {
                field: "deadline_ms",
                expected: "1 to 86400000 (one day)",
            });
        }
        Ok(())
    }

    /// The total time budget as a [`Duration`].
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// The ceiling of the sleep before retry number `retry` (0 for the sleep after
    /// the first failure): `min(max_delay, base_delay * 2^retry)`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let max = Duration::from_millis(self.max_delay_ms);
        2u32.checked_pow(retry)
            .and_then(|factor| Duration::from_millis(self.base_delay_ms).checked_mul(factor))
            .map_or(max, |delay| delay.min(max))
    }

    /// A full-jitter sleep before retry number `retry`: uniform in `[0, ceiling]`.
    fn jittered_delay(&self, retry: u32, rng: &mut fastrand::Rng) -> Duration {
        let ceiling = self.backoff_ceiling(retry);
        // Validation caps the ceiling at one day, far below u64::MAX nanoseconds.
        let ceiling_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.u64(0..=ceiling_nanos))
    }
}

/// Waits between attempts. Injected so tests can advance a [`ManualClock`]
/// instead of sleeping for real.
pub trait Sleeper: Send + Sync + fmt::Debug {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// The production sleeper: tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A test sleeper: advances a [`ManualClock`] by the requested duration and
/// returns at once, remembering every sleep so tests can check the schedule.
#[derive(Debug, Clone)]
pub struct ManualSleeper {
    clock: ManualClock,
    slept: Arc<Mutex<Vec<Duration>>>,
}

impl ManualSleeper {
    /// A sleeper that moves `clock` forward.
    pub fn new(clock: ManualClock) -> Self {
        Self {
            clock,
            slept: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Every duration slept so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.slept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Sleeper for ManualSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.clock.advance(duration);
        self.slept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(duration);
        Box::pin(std::future::ready(()))
    }
}

/// Why the retry loop stopped without a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaveUp {
    /// The classifier said another attempt cannot help.
    NotRetryable,
    /// `max_attempts` were made.
    MaxAttempts,
    /// The next sleep and attempt would have ended past the deadline.
    Deadline,
}

impl fmt::Display for GaveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotRetryable => "error is not retryable",
            Self::MaxAttempts => "attempts exhausted",
            Self::Deadline => "deadline reached",
        })
    }
}

/// The last error of a retry loop, with how many attempts were made and why it stopped.
#[derive(Debug, thiserror::Error)]
#[error("gave up after {attempts} attempt(s): {gave_up}")]
pub struct RetryError<E> {
    /// The error the last attempt returned.
    #[source]
    pub error: E,
    /// Attempts made, the first included.
    pub attempts: u32,
    /// Why no further attempt was made.
    pub gave_up: GaveUp,
}

impl<E> RetryError<E> {
    /// The last attempt's error, dropping the retry bookkeeping.
    pub fn into_inner(self) -> E {
        self.error
    }
}

/// One attempt of a retried operation.
///
/// A trait rather than a closure returning a future because
/// [`Resilience`](super::Resilience) must take the breaker permit *before* calling
/// the caller's closure, so its attempt future has to borrow that closure
/// mutably, which a closure's returned future cannot do.
pub(super) trait Attempt<T, E> {
    /// Runs the attempt; `remaining` is what is left of the deadline, so an
    /// attempt can bound itself by it.
    fn run(&mut self, remaining: Duration) -> impl Future<Output = Result<T, E>>;
}

/// Adapts a plain `FnMut() -> Future` to [`Attempt`].
struct PlainAttempt<'a, Op>(&'a mut Op);

impl<T, E, Op, Fut> Attempt<T, E> for PlainAttempt<'_, Op>
where
    Op: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    fn run(&mut self, _remaining: Duration) -> impl Future<Output = Result<T, E>> {
        (self.0)()
    }
}

/// A retry policy bound to a clock and a sleeper; cheap to clone.
#[derive(Debug, Clone)]
pub struct Retry {
    policy: RetryPolicy,
    clock: SharedClock,
    sleeper: Arc<dyn Sleeper>,
    seed: Option<u64>,
}

impl Retry {
    /// Validates `policy`; the deadline is measured on `clock`, sleeps use tokio's timer.
    pub fn new(policy: RetryPolicy, clock: SharedClock) -> Result<Self, ConfigError> {
        policy.validate()?;
        Ok(Self {
            policy,
            clock,
            sleeper: Arc::new(TokioSleeper),
            seed: None,
        })
    }

    /// Replaces the sleeper (tests pass a [`ManualSleeper`] over the same manual clock).
    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    /// Makes the jitter reproducible: every run draws the same sequence of delays.
    pub fn with_jitter_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The policy in use.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Runs `op` until it succeeds, `is_retryable` rejects its error, the attempts
    /// run out, or the deadline would be passed.
    ///
    /// Only for **idempotent** operations: a failed attempt may still have taken
    /// effect (the reply was lost, not the write). Do not classify
    /// [`BreakerOpen`](super::BreakerOpen) as retryable: it means "stop calling".
    /// This loop does not bound an attempt's own duration; wrap `op` in
    /// [`with_timeout`](super::with_timeout) or use [`Resilience`](super::Resilience).
    pub async fn retry_idempotent<T, E, Op, Fut, C>(
        &self,
        is_retryable: C,
        mut op: Op,
    ) -> Result<T, RetryError<E>>
    where
        C: FnMut(&E) -> bool,
        Op: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_loop(is_retryable, PlainAttempt(&mut op)).await
    }

    /// The loop behind [`Retry::retry_idempotent`] and [`Resilience`](super::Resilience).
    pub(super) async fn run_loop<T, E, A, C>(
        &self,
        mut is_retryable: C,
        mut attempt: A,
    ) -> Result<T, RetryError<E>>
    where
        C: FnMut(&E) -> bool,
        A: Attempt<T, E>,
    {
        let start = self.clock.monotonic();
        let deadline = start.saturating_add(self.policy.deadline());
        let mut rng = self
            .seed
            .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let remaining = deadline.saturating_sub(self.clock.monotonic());
            let error = match attempt.run(remaining).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let gave_up = if !is_retryable(&error) {
                Some(GaveUp::NotRetryable)
            } else if attempts >= self.policy.max_attempts {
                Some(GaveUp::MaxAttempts)
            } else {
                let delay = self.policy.jittered_delay(attempts - 1, &mut rng);
                // The next attempt must start strictly before the deadline, or it
                // would end past it; a sleep that cannot lead to an attempt is wasted.
                let wake = self.clock.monotonic().checked_add(delay);
                if wake.is_none_or(|wake| wake >= deadline) {
                    Some(GaveUp::Deadline)
                } else {
                    tracing::debug!(
                        attempt = attempts,
                        delay_ms = delay.as_secs_f64() * 1e3,
                        "retrying idempotent operation after backoff"
                    );
                    self.sleeper.sleep(delay).await;
                    // A sleeper may oversleep (a busy runtime); re-check before starting.
                    (self.clock.monotonic() >= deadline).then_some(GaveUp::Deadline)
                }
            };
            if let Some(gave_up) = gave_up {
                return Err(RetryError {
                    error,
                    attempts,
                    gave_up,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use proptest::prelude::*;
    use std::cell::Cell;

    const MS: Duration = Duration::from_millis(1);

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base_delay_ms: 100,
            max_delay_ms: 1_000,
            deadline_ms: 10_000,
        }
    }

    fn retry(policy: RetryPolicy) -> (Retry, ManualClock, ManualSleeper) {
        let clock = ManualClock::new();
        let sleeper = ManualSleeper::new(clock.clone());
        let retry = Retry::new(policy, Arc::new(clock.clone()))
            .expect("test policy is valid")
            .with_sleeper(Arc::new(sleeper.clone()))
            .with_jitter_seed(7);
        (retry, clock, sleeper)
    }

    #[test]
    fn backoff_ceiling_doubles_then_caps() {
        let ceilings: Vec<u128> = (0..7)
            .map(|n| policy().backoff_ceiling(n).as_millis())
            .collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1_000, 1_000, 1_000]);
        assert_eq!(
            policy().backoff_ceiling(u32::MAX),
            1_000 * MS,
            "no overflow"
        );
    }

    #[test]
    fn full_jitter_spreads_sleeps_over_the_whole_interval() {
        let policy = policy();
        let mut rng = fastrand::Rng::with_seed(1);
        let delays: Vec<Duration> = (0..1_000)
            .map(|_| policy.jittered_delay(3, &mut rng))
            .collect();
        // Additive ("equal") jitter would never go below the 800 ms ceiling's half.
        assert!(delays.iter().any(|d| *d < 200 * MS));
        assert!(delays.iter().any(|d| *d > 600 * MS));
        assert!(delays.iter().all(|d| *d <= 800 * MS));
    }

    proptest! {
        #[test]
        fn jittered_delay_never_exceeds_the_ceiling(
            seed in any::<u64>(),
            retry in 0_u32..80,
            base in 1_u64..5_000,
            extra in 0_u64..60_000,
        ) {
            let policy = RetryPolicy {
                base_delay_ms: base,
                max_delay_ms: base + extra,
                ..policy()
            };
            let mut rng = fastrand::Rng::with_seed(seed);
            prop_assert!(policy.jittered_delay(retry, &mut rng) <= policy.backoff_ceiling(retry));
        }
    }

    #[tokio::test]
    async fn retries_until_success() {
        let (retry, _clock, sleeper) = retry(policy());
        let calls = Cell::new(0_u32);
        let result = retry
            .retry_idempotent(
                |_: &&str| true,
                || {
                    calls.set(calls.get() + 1);
                    let n = calls.get();
                    async move { if n < 3 { Err("reset") } else { Ok(n) } }
                },
            )
            .await;
        assert_eq!(result.map_err(|e| e.error), Ok(3));
        let sleeps = sleeper.sleeps();
        assert_eq!(sleeps.len(), 2);
        assert!(sleeps[0] <= 100 * MS && sleeps[1] <= 200 * MS);
    }

    #[tokio::test]
    async fn stops_after_max_attempts() {
        let (retry, _clock, sleeper) = retry(policy());
        let calls = Cell::new(0_u32);
        let result: Result<(), _> = retry
            .retry_idempotent(
                |_: &&str| true,
                || {
                    calls.set(calls.get() + 1);
                    async { Err("reset") }
                },
            )
            .await;
        let err = result.expect_err("every attempt fails");
        assert_eq!(
            (err.attempts, err.gave_up, err.error),
            (3, GaveUp::MaxAttempts, "reset")
        );
        assert_eq!(calls.get(), 3);
        assert_eq!(sleeper.sleeps().len(), 2, "no sleep after the last attempt");
    }

    #[tokio::test]
    async fn non_retryable_error_returns_at_once() {
        let (retry, _clock, sleeper) = retry(policy());
        let calls = Cell::new(0_u32);
        let result: Result<(), _> = retry
            .retry_idempotent(
                |e: &&str| *e != "not found",
                || {
                    calls.set(calls.get() + 1);
                    async { Err("not found") }
                },
            )
            .await;
        let err = result.expect_err("fails");
        assert_eq!((err.attempts, err.gave_up), (1, GaveUp::NotRetryable));
        assert_eq!(calls.get(), 1);
        assert!(sleeper.sleeps().is_empty());
    }

    #[tokio::test]
    async fn stops_at_the_deadline_without_starting_work_past_it() {
        let (retry, clock, _sleeper) = retry(RetryPolicy {
            max_attempts: 100,
            base_delay_ms: 100,
            max_delay_ms: 400,
            deadline_ms: 1_000,
        });
        let origin = clock.monotonic();
        let starts = std::cell::RefCell::new(Vec::new());
        let result: Result<(), _> = retry
            .retry_idempotent(
                |_: &&str| true,
                || {
                    starts.borrow_mut().push(clock.monotonic() - origin);
                    // Each attempt takes 150 ms of (manual) time.
                    clock.advance(150 * MS);
                    async { Err("reset") }
                },
            )
            .await;
        let err = result.expect_err("never succeeds");
        assert_eq!(err.gave_up, GaveUp::Deadline);
        let starts = starts.into_inner();
        assert!(
            starts.len() >= 3,
            "deadline leaves room for several attempts: {starts:?}"
        );
        assert_eq!(err.attempts as usize, starts.len());
        assert!(
            starts.iter().all(|s| *s < 1_000 * MS),
            "an attempt started at or past the deadline: {starts:?}"
        );
        assert!(
            clock.monotonic() - origin < 1_000 * MS + 150 * MS,
            "no sleep was started that ends past the deadline"
        );
    }

    #[tokio::test]
    async fn does_not_sleep_once_the_deadline_is_used_up() {
        let (retry, clock, sleeper) = retry(RetryPolicy {
            deadline_ms: 500,
            ..policy()
        });
        let result: Result<(), _> = retry
            .retry_idempotent(
                |_: &&str| true,
                || {
                    clock.advance(500 * MS);
                    async { Err("reset") }
                },
            )
            .await;
        let err = result.expect_err("fails");
        assert_eq!((err.attempts, err.gave_up), (1, GaveUp::Deadline));
        assert!(sleeper.sleeps().is_empty());
    }

    #[tokio::test]
    async fn single_attempt_policy_never_retries() {
        let (retry, _clock, _sleeper) = retry(RetryPolicy {
            max_attempts: 1,
            ..policy()
        });
        let result: Result<(), _> = retry
            .retry_idempotent(|_: &&str| true, || async { Err("reset") })
            .await;
        assert_eq!(result.map_err(|e| e.gave_up), Err(GaveUp::MaxAttempts));
    }

    #[tokio::test]
    async fn tokio_sleeper_sleeps() {
        let started = tokio::time::Instant::now();
        TokioSleeper.sleep(5 * MS).await;
        assert!(started.elapsed() >= 5 * MS);
    }

    #[test]
    fn default_policy_is_valid_and_bad_values_name_their_field() {
        assert_eq!(RetryPolicy::default().validate(), Ok(()));
        let cases = [
            (
                RetryPolicy {
                    max_attempts: 0,
                    ..policy()
                },
                "max_attempts",
            ),
            (
                RetryPolicy {
                    base_delay_ms: 0,
                    ..policy()
                },
                "base_delay_ms",
            ),
            (
                RetryPolicy {
                    max_delay_ms: 50,
                    ..policy()
                },
                "max_delay_ms",
            ),
            (
                RetryPolicy {
                    deadline_ms: 0,
                    ..policy()
                },
                "deadline_ms",
            ),
        ];
        for (bad, field) in cases {
            match Retry::new(bad, Arc::new(ManualClock::new())) {
                Err(ConfigError::OutOfRange { field: got, .. }) => assert_eq!(got, field),
                Ok(_) => panic!("{field}: invalid policy accepted"),
            }
        }
    }
}
