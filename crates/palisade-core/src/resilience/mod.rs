//! Keeping a slow or failing dependency (PostgreSQL, Redis, a KMS) from taking
//! Palisade down with it: a circuit breaker that fails fast while the dependency
//! is unhealthy, retries with full-jitter backoff for idempotent operations, a
//! typed per-call timeout, and [`Resilience`], which combines the three in the
//! right order so store code does not have to.
//!
//! Order inside [`Resilience::run_idempotent`]: every attempt first asks the
//! breaker for a permit (an open breaker ends the whole run at once, it is never
//! retried), then runs under the per-attempt timeout (a timeout is reported to the
//! breaker as a failure), and the retry loop decides whether to sleep and try
//! again within the total deadline.

mod breaker;
mod retry;
mod timeout;

pub use breaker::{
    BreakerConfig, BreakerError, BreakerOpen, BreakerSnapshot, BreakerState, CircuitBreaker, Permit,
};
pub use retry::{GaveUp, ManualSleeper, Retry, RetryError, RetryPolicy, Sleeper, TokioSleeper};
pub use timeout::{TimedOut, with_timeout};

use crate::clock::SharedClock;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A configuration value outside the range the resilience types can work with.
///
/// Returned by the `validate` methods and the constructors, so a bad value in a
/// config file is reported at start-up with the field to fix, not discovered
/// later as a breaker that never trips or a retry loop that never ends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `field` holds a value outside its allowed range; `expected` says what is allowed.
    #[error("invalid resilience setting `{field}`: expected {expected}")]
    OutOfRange {
        /// The config field at fault, as spelled in the config file.
        field: &'static str,
        /// The allowed range, in words.
        expected: &'static str,
    },
}

/// How an operation's error should be treated by the breaker and the retry loop.
///
/// The two questions are separate on purpose: a PostgreSQL serialization failure
/// is worth retrying although the database is healthy, while a "row not found"
/// is neither a dependency failure nor worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The dependency is failing or unreachable (connection reset, 503, timeout):
    /// counts as a breaker failure and is retried.
    Transient,
    /// The dependency is failing in a way another attempt will not fix soon
    /// (authentication to the database rejected): counts as a failure, not retried.
    DependencyFailure,
    /// The dependency is healthy but the operation lost a race (serialization
    /// failure, deadlock victim): retried, not counted as a failure.
    Contention,
    /// The dependency answered and the answer is final (not found, constraint
    /// violation, bad input): neither counted nor retried.
    Permanent,
}

impl ErrorClass {
    /// Whether the breaker should count this error against the dependency.
    pub fn counts_as_failure(self) -> bool {
        matches!(self, Self::Transient | Self::DependencyFailure)
    }

    /// Whether another attempt could succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Transient | Self::Contention)
    }
}

/// Errors that know their own [`ErrorClass`], so [`Resilience::run_idempotent`]
/// and [`Resilience::run_once`] need no classifier argument.
pub trait Classify {
    /// How the breaker and the retry loop should treat this error.
    fn classify(&self) -> ErrorClass;
}

/// Settings for one [`Resilience`]: a breaker, a retry policy and the per-attempt timeout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResilienceConfig {
    /// The circuit breaker guarding the dependency.
    pub breaker: BreakerConfig,
    /// Backoff, attempts and total deadline for idempotent operations.
    pub retry: RetryPolicy,
    /// Upper bound on one attempt, in milliseconds (default 2000). Each attempt is
    /// further bounded by what is left of the retry deadline.
    pub attempt_timeout_ms: u64,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        Self {
            breaker: BreakerConfig::default(),
            retry: RetryPolicy::default(),
            attempt_timeout_ms: 2_000,
        }
    }
}

impl ResilienceConfig {
    /// Checks every field, including the nested breaker and retry settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.breaker.validate()?;
        self.retry.validate()?;
        if !(1..=MAX_CONFIG_MS).contains(&self.attempt_timeout_ms) {
            return Err(ConfigError::OutOfRange {
                field: "attempt_timeout_ms",
                expected: "1 to 86400000 (one day)",
            });
        }
        Ok(())
    }

    /// The per-attempt timeout as a [`Duration`].
    pub fn attempt_timeout(&self) -> Duration {
        Duration::from_millis(self.attempt_timeout_ms)
    }
}

/// Longest duration any setting may hold, in milliseconds: one day. Longer values
/// are almost certainly a unit mistake (seconds written as milliseconds the other way round).
pub(crate) const MAX_CONFIG_MS: u64 = 86_400_000;

/// Why [`Resilience`] could not produce a value.
#[derive(Debug, thiserror::Error)]
pub enum ResilienceError<E> {
    /// The breaker is open (or its half-open probes are taken): the operation was
    /// not attempted. Answer 503 with `Retry-After` from [`BreakerOpen::retry_after`].
    #[error(transparent)]
    Open(#[from] BreakerOpen),
    /// The last attempt ran out of time.
    #[error("timed out after {attempts} attempt(s)")]
    TimedOut {
        /// Attempts made, including the one that timed out.
        attempts: u32,
        /// The bound the last attempt ran into.
        #[source]
        source: TimedOut,
    },
    /// The operation's own error from the last attempt: either not retryable, or
    /// the attempts or the deadline ran out.
    #[error("operation failed after {attempts} attempt(s)")]
    Failed {
        /// Attempts made.
        attempts: u32,
        /// The error the last attempt returned.
        #[source]
        source: E,
    },
}

impl<E> ResilienceError<E> {
    /// How long to wait before calling again, when the breaker refused the call.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Open(open) => Some(open.retry_after),
            Self::TimedOut { .. } | Self::Failed { .. } => None,
        }
    }

    /// The operation's own error, if that is what ended the run.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Failed { source, .. } => Some(source),
            Self::Open(_) | Self::TimedOut { .. } => None,
        }
    }
}

/// Breaker + per-attempt timeout + retry for one dependency, so store code can
/// write `resilience.run_idempotent(|| async { query }).await`.
///
/// Cheap to clone; clones share the breaker. Two `Resilience` values may share
/// one breaker (see [`Resilience::from_parts`]) when reads and writes to the same
/// dependency need different retry policies.
#[derive(Debug, Clone)]
pub struct Resilience {
    breaker: CircuitBreaker,
    retry: Retry,
    attempt_timeout: Duration,
}

/// What one guarded attempt produced, before the retry loop decides what to do.
enum AttemptError<E> {
    Open(BreakerOpen),
    TimedOut(TimedOut),
    Failed(E, ErrorClass),
}

impl Resilience {
    /// Builds the breaker and retry policy from `config`, sleeping on tokio's timer.
    pub fn new(
        name: impl Into<Arc<str>>,
        config: &ResilienceConfig,
        clock: SharedClock,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let breaker = CircuitBreaker::new(name, config.breaker.clone(), clock.clone())?;
        let retry = Retry::new(config.retry.clone(), clock)?;
        Ok(Self::from_parts(breaker, retry, config.attempt_timeout()))
    }

    /// Assembles a `Resilience` from an existing breaker (possibly shared) and retry.
    pub fn from_parts(breaker: CircuitBreaker, retry: Retry, attempt_timeout: Duration) -> Self {
        Self {
            breaker,
            retry,
            attempt_timeout,
        }
    }

    /// Replaces the sleeper used between attempts (tests pass a [`ManualSleeper`]).
    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.retry = self.retry.with_sleeper(sleeper);
        self
    }

    /// The breaker, for `/health` snapshots and for sharing with another `Resilience`.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The retry settings in use.
    pub fn retry(&self) -> &Retry {
        &self.retry
    }

    /// Runs an **idempotent** operation with breaker, per-attempt timeout and
    /// retries; the error type classifies itself through [`Classify`].
    ///
    /// Only for operations that are safe to run more than once (reads, upserts
    /// keyed by an id): an attempt that timed out may still have taken effect.
    pub async fn run_idempotent<T, E, Op, Fut>(&self, op: Op) -> Result<T, ResilienceError<E>>
    where
        E: Classify,
        Op: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_idempotent_with(E::classify, op).await
    }

    /// [`Resilience::run_idempotent`] with an explicit classifier, for error types
    /// that do not implement [`Classify`].
    pub async fn run_idempotent_with<T, E, Op, Fut, C>(
        &self,
        classify: C,
        mut op: Op,
    ) -> Result<T, ResilienceError<E>>
    where
        C: Fn(&E) -> ErrorClass,
        Op: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let attempt = GuardedAttempt {
            resilience: self,
            classify: &classify,
            op: &mut op,
        };
        let outcome = self
            .retry
            .run_loop(
                |err: &AttemptError<E>| match err {
                    // Retrying into an open breaker only adds load to a struggling dependency.
                    AttemptError::Open(_) => false,
                    AttemptError::TimedOut(_) => true,
                    AttemptError::Failed(_, class) => class.is_retryable(),
                },
                attempt,
            )
            .await;
        outcome.map_err(|gave_up| match gave_up.error {
            AttemptError::Open(open) => ResilienceError::Open(open),
            AttemptError::TimedOut(source) => ResilienceError::TimedOut {
                attempts: gave_up.attempts,
                source,
            },
            AttemptError::Failed(source, _) => ResilienceError::Failed {
                attempts: gave_up.attempts,
                source,
            },
        })
    }

    /// Runs an operation exactly once, guarded by the breaker and the per-attempt
    /// timeout: for writes that are not idempotent and so must never be retried.
    pub async fn run_once<T, E, Fut>(&self, fut: Fut) -> Result<T, ResilienceError<E>>
    where
        E: Classify,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_once_with(E::classify, fut).await
    }

    /// [`Resilience::run_once`] with an explicit classifier.
    pub async fn run_once_with<T, E, Fut, C>(
        &self,
        classify: C,
        fut: Fut,
    ) -> Result<T, ResilienceError<E>>
    where
        C: Fn(&E) -> ErrorClass,
        Fut: Future<Output = Result<T, E>>,
    {
        let result = self.attempt(self.attempt_timeout, &classify, || fut).await;
        result.map_err(|err| match err {
            AttemptError::Open(open) => ResilienceError::Open(open),
            AttemptError::TimedOut(source) => ResilienceError::TimedOut {
                attempts: 1,
                source,
            },
            AttemptError::Failed(source, _) => ResilienceError::Failed {
                attempts: 1,
                source,
            },
        })
    }

    /// One guarded attempt: permit, then the caller's closure, bounded by the
    /// timeout, with the outcome reported to the breaker.
    ///
    /// The closure is called only once the breaker has admitted the call, so an
    /// open breaker never reaches the caller's code, even code that does work
    /// before returning its future.
    async fn attempt<T, E, Op, Fut, C>(
        &self,
        remaining: Duration,
        classify: &C,
        op: Op,
    ) -> Result<T, AttemptError<E>>
    where
        C: Fn(&E) -> ErrorClass,
        Op: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let permit = self.breaker.try_acquire().map_err(AttemptError::Open)?;
        // Never let one attempt run past the retry deadline.
        let bound = self.attempt_timeout.min(remaining);
        match with_timeout(bound, op()).await {
            Ok(Ok(value)) => {
                permit.success();
                Ok(value)
            }
            Ok(Err(err)) => {
                let class = classify(&err);
                if class.counts_as_failure() {
                    permit.failure();
                } else {
                    // The dependency answered; that is evidence of health, not failure.
                    permit.success();
                }
                Err(AttemptError::Failed(err, class))
            }
            Err(timed_out) => {
                permit.failure();
                Err(AttemptError::TimedOut(timed_out))
            }
        }
    }
}

/// The retry loop's view of one guarded attempt of [`Resilience::run_idempotent_with`].
struct GuardedAttempt<'a, C, Op> {
    resilience: &'a Resilience,
    classify: &'a C,
    op: &'a mut Op,
}

impl<T, E, C, Op, Fut> retry::Attempt<T, AttemptError<E>> for GuardedAttempt<'_, C, Op>
where
    C: Fn(&E) -> ErrorClass,
    Op: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    fn run(&mut self, remaining: Duration) -> impl Future<Output = Result<T, AttemptError<E>>> {
        // `&mut Op` is itself callable once, which is all one attempt needs.
        self.resilience
            .attempt(remaining, self.classify, &mut *self.op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum StoreError {
        ConnectionReset,
        NotFound,
        SerializationFailure,
    }

    impl Classify for StoreError {
        fn classify(&self) -> ErrorClass {
            match self {
                Self::ConnectionReset => ErrorClass::Transient,
                Self::NotFound => ErrorClass::Permanent,
                Self::SerializationFailure => ErrorClass::Contention,
            }
        }
    }

    fn config() -> ResilienceConfig {
        ResilienceConfig {
            breaker: BreakerConfig {
                minimum_calls: 2,
                failure_rate_threshold: 1.0,
                ..BreakerConfig::default()
            },
            retry: RetryPolicy {
                max_attempts: 4,
                base_delay_ms: 10,
                max_delay_ms: 100,
                deadline_ms: 10_000,
            },
            attempt_timeout_ms: 20,
        }
    }

    fn resilience(config: &ResilienceConfig) -> (Resilience, ManualClock) {
        let clock = ManualClock::new();
        let resilience = Resilience::new("store", config, Arc::new(clock.clone()))
            .expect("test config is valid")
            .with_sleeper(Arc::new(ManualSleeper::new(clock.clone())));
        (resilience, clock)
    }

    /// An operation that fails with `errors` in turn, then succeeds, counting calls.
    fn scripted(
        errors: Vec<StoreError>,
        calls: &AtomicU32,
    ) -> impl FnMut() -> std::future::Ready<Result<u32, StoreError>> + '_ {
        move || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(match errors.get(n as usize) {
                Some(err) => Err(*err),
                None => Ok(n + 1),
            })
        }
    }

    #[tokio::test]
    async fn retries_transient_errors_until_success() {
        let (resilience, _clock) = resilience(&config());
        let calls = AtomicU32::new(0);
        let op = scripted(vec![StoreError::ConnectionReset], &calls);
        let result = resilience.run_idempotent(op).await;
        assert!(matches!(result, Ok(2)), "{result:?}");
        let snapshot = resilience.breaker().snapshot();
        assert_eq!(
            (snapshot.calls_in_window, snapshot.failures_in_window),
            (2, 1)
        );
    }

    #[tokio::test]
    async fn retries_contention_without_counting_it_against_the_dependency() {
        let (resilience, _clock) = resilience(&config());
        let calls = AtomicU32::new(0);
        let op = scripted(vec![StoreError::SerializationFailure; 3], &calls);
        let result = resilience.run_idempotent(op).await;
        assert!(matches!(result, Ok(4)), "{result:?}");
        assert_eq!(resilience.breaker().snapshot().failures_in_window, 0);
    }

    #[tokio::test]
    async fn stops_at_max_attempts_with_the_last_error() {
        let (resilience, _clock) = resilience(&ResilienceConfig {
            breaker: BreakerConfig::default(),
            ..config()
        });
        let calls = AtomicU32::new(0);
        let op = scripted(vec![StoreError::ConnectionReset; 10], &calls);
        let result = resilience.run_idempotent(op).await;
        assert!(
            matches!(
                result,
                Err(ResilienceError::Failed {
                    attempts: 4,
                    source: StoreError::ConnectionReset
                })
            ),
            "{result:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn permanent_error_returns_at_once_and_is_not_a_failure() {
        let (resilience, _clock) = resilience(&config());
        let calls = AtomicU32::new(0);
        let op = scripted(vec![StoreError::NotFound], &calls);
        let result = resilience.run_idempotent(op).await;
        assert_eq!(
            result.map_err(ResilienceError::into_inner).err(),
            Some(Some(StoreError::NotFound))
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let snapshot = resilience.breaker().snapshot();
        assert_eq!(
            (snapshot.calls_in_window, snapshot.failures_in_window),
            (1, 0)
        );
    }

    #[tokio::test]
    async fn timeout_counts_as_a_breaker_failure() {
        let (resilience, _clock) = resilience(&ResilienceConfig {
            retry: RetryPolicy {
                max_attempts: 1,
                ..config().retry
            },
            ..config()
        });
        let result = resilience
            .run_idempotent(|| async {
                std::future::pending::<()>().await;
                Ok::<u32, StoreError>(0)
            })
            .await;
        assert!(
            matches!(
                result,
                Err(ResilienceError::TimedOut { attempts: 1, source }) if source.after == Duration::from_millis(20)
            ),
            "{result:?}"
        );
        assert_eq!(resilience.breaker().snapshot().failures_in_window, 1);
    }

    #[tokio::test]
    async fn open_breaker_short_circuits_without_calling_the_operation() {
        let (resilience, _clock) = resilience(&config());
        for _ in 0..2 {
            resilience
                .breaker()
                .try_acquire()
                .expect("closed")
                .failure();
        }
        assert_eq!(resilience.breaker().state(), BreakerState::Open);
        let calls = AtomicU32::new(0);
        let result = resilience.run_idempotent(scripted(vec![], &calls)).await;
        let err = result.expect_err("open breaker refuses");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
        assert!(matches!(err, ResilienceError::Open(_)));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn breaker_opening_mid_run_stops_the_retries() {
        let (resilience, _clock) = resilience(&config());
        let calls = AtomicU32::new(0);
        let op = scripted(vec![StoreError::ConnectionReset; 10], &calls);
        let result = resilience.run_idempotent(op).await;
        assert!(
            matches!(result, Err(ResilienceError::Open(_))),
            "{result:?}"
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "two failures open the breaker; the third attempt is refused, not retried"
        );
    }

    #[tokio::test]
    async fn attempt_timeout_is_cut_to_the_remaining_deadline() {
        let (resilience, _clock) = resilience(&ResilienceConfig {
            retry: RetryPolicy {
                max_attempts: 1,
                deadline_ms: 30,
                ..config().retry
            },
            attempt_timeout_ms: 60_000,
            ..config()
        });
        let result = resilience
            .run_idempotent_with(
                |_: &StoreError| ErrorClass::Transient,
                || async {
                    std::future::pending::<()>().await;
                    Ok::<u32, StoreError>(0)
                },
            )
            .await;
        assert!(
            matches!(&result, Err(ResilienceError::TimedOut { source, .. }) if source.after == Duration::from_millis(30)),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn run_once_never_retries() {
        let (resilience, _clock) = resilience(&config());
        let calls = AtomicU32::new(0);
        let mut op = scripted(vec![StoreError::ConnectionReset], &calls);
        let result = resilience.run_once(op()).await;
        assert!(
            matches!(
                result,
                Err(ResilienceError::Failed {
                    attempts: 1,
                    source: StoreError::ConnectionReset
                })
            ),
            "{result:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(resilience.breaker().snapshot().failures_in_window, 1);
    }

    #[test]
    fn futures_are_send_so_they_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let (resilience, _clock) = resilience(&config());
        let run = resilience.run_idempotent(|| async { Ok::<_, StoreError>(1) });
        assert_send(&run);
        let once = resilience.run_once(async { Ok::<_, StoreError>(1) });
        assert_send(&once);
        let call = resilience.breaker().call(async { Ok::<_, StoreError>(1) });
        assert_send(&call);
    }

    #[test]
    fn error_classes_answer_both_questions() {
        let table = [
            (ErrorClass::Transient, true, true),
            (ErrorClass::DependencyFailure, true, false),
            (ErrorClass::Contention, false, true),
            (ErrorClass::Permanent, false, false),
        ];
        for (class, failure, retryable) in table {
            assert_eq!(
                (class.counts_as_failure(), class.is_retryable()),
                (failure, retryable),
                "{class:?}"
            );
        }
    }

    #[test]
    fn default_config_is_valid_and_zero_attempt_timeout_is_not() {
        assert_eq!(ResilienceConfig::default().validate(), Ok(()));
        let bad = ResilienceConfig {
            attempt_timeout_ms: 0,
            ..ResilienceConfig::default()
        };
        assert!(matches!(
            Resilience::new("bad", &bad, Arc::new(ManualClock::new())),
            Err(ConfigError::OutOfRange {
                field: "attempt_timeout_ms",
                ..
            })
        ));
    }
}
