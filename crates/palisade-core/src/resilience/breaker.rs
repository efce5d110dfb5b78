//! A circuit breaker: after too many failures in a rolling window it stops
//! calling the dependency for a while (open), then lets a few probe calls through
//! (half-open) and closes again once they succeed.
//!
//! Time comes from the injected [`Clock`](crate::Clock), so every transition is
//! testable with a manual clock. State is a small struct behind a
//! `std::sync::Mutex`: the critical sections are a few arithmetic operations and
//! never await, so a lock is cheaper and simpler than lock-free counters.

use super::{ConfigError, MAX_CONFIG_MS};
use crate::clock::SharedClock;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Settings for one [`CircuitBreaker`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Share of failed calls in the window that opens the breaker, in `(0, 1]` (default 0.5).
    pub failure_rate_threshold: f64,
    /// Length of the rolling window in whole seconds, 1 to 3600 (default 10). One
    /// counter bucket per second, so memory is constant whatever the call rate.
    pub window_secs: u32,
    /// Calls the window must hold before the failure rate is acted on (default 10),
    /// so two failures out of three calls at idle do not open the breaker.
    pub minimum_calls: u32,
    /// How long the breaker stays open before admitting probes, in milliseconds (default 5000).
    pub open_duration_ms: u64,
    /// Probe calls allowed in flight at once while half-open (default 1).
    pub half_open_max_probes: u32,
    /// Successful probes needed to close again (default 1); any failed probe reopens.
    pub half_open_successes_to_close: u32,
    /// A successful call slower than this many milliseconds counts as a failure
    /// (default: off). A dependency that answers in 30 s is as bad as one that is down.
    pub slow_call_threshold_ms: Option<u64>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_rate_threshold: 0.5,
            window_secs: 10,
            minimum_calls: 10,
            open_duration_ms: 5_000,
            half_open_max_probes: 1,
            half_open_successes_to_close: 1,
            slow_call_threshold_ms: None,
        }
    }
}

impl BreakerConfig {
    /// Checks every field; [`CircuitBreaker::new`] calls this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rate = self.failure_rate_threshold;
        if !(rate.is_finite() && rate > 0.0 && rate <= 1.0) {
            return Err(ConfigError::OutOfRange {
                field: "failure_rate_threshold",
                expected: "a number greater than 0 and at most 1",
            });
        }
        if !(1..=3_600).contains(&self.window_secs) {
            return Err(ConfigError::OutOfRange {
                field: "window_secs",
                expected: "1 to 3600",
            });
        }
        if self.minimum_calls == 0 {
            return Err(ConfigError::OutOfRange {
                field: "minimum_calls",
                expected: "at least 1",
            });
        }
        if !(1..=MAX_CONFIG_MS).contains(&self.open_duration_ms) {
            return Err(ConfigError::OutOfRange {
                field: "open_duration_ms",
                expected: "1 to 86400000 (one day)",
            });
        }
        if self.half_open_max_probes == 0 {
            return Err(ConfigError::OutOfRange {
                field: "half_open_max_probes",
                expected: "at least 1",
            });
        }
        if self.half_open_successes_to_close == 0 {
            return Err(ConfigError::OutOfRange {
                field: "half_open_successes_to_close",
                expected: "at least 1",
            });
        }
        if let Some(slow) = self.slow_call_threshold_ms
            && !(1..=MAX_CONFIG_MS).contains(&slow)
        {
            return Err(ConfigError::OutOfRange {
                field: "slow_call_threshold_ms",
                expected: "absent, or 1 to 86400000 (one day)",
            });
        }
        Ok(())
    }

    /// The rolling window as a [`Duration`].
    pub fn window(&self) -> Duration {
        Duration::from_secs(u64::from(self.window_secs))
    }

    /// The open duration as a [`Duration`].
    pub fn open_duration(&self) -> Duration {
        Duration::from_millis(self.open_duration_ms)
    }

    /// The slow-call threshold as a [`Duration`], if slow calls count as failures.
    pub fn slow_call_threshold(&self) -> Option<Duration> {
        self.slow_call_threshold_ms.map(Duration::from_millis)
    }
}

/// Where a breaker is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls flow; outcomes are counted in the rolling window.
    Closed,
    /// A few probe calls are let through to test whether the dependency recovered.
    HalfOpen,
    /// Calls are refused without touching the dependency.
    Open,
}

impl BreakerState {
    /// The value of the `palisade_breaker_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge_value(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }

    /// The state as it appears in logs, metric labels and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The breaker refused a call. Map to 503 with `Retry-After: retry_after`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker `{breaker}` is {state}; retry after {retry_after:?}")]
pub struct BreakerOpen {
    /// The breaker's name.
    pub breaker: Arc<str>,
    /// `Open`, or `HalfOpen` when every probe slot is taken.
    pub state: BreakerState,
    /// How long until the breaker may admit calls again. When half-open with all
    /// probes in flight there is no schedule, so this is a short hint (one second,
    /// or the open duration if shorter).
    pub retry_after: Duration,
}

/// Either the breaker refused the call or the call itself failed.
#[derive(Debug, thiserror::Error)]
pub enum BreakerError<E> {
    /// The breaker refused the call; the operation was not run.
    #[error(transparent)]
    Open(#[from] BreakerOpen),
    /// The operation ran and returned this error.
    #[error("call through circuit breaker failed")]
    Inner(#[source] E),
}

impl<E> BreakerError<E> {
    /// The operation's own error, if it ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Inner(err) => Some(err),
            Self::Open(_) => None,
        }
    }
}

/// A point-in-time view of a breaker, for `/health` and dashboards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerSnapshot {
    /// The breaker's name.
    pub name: String,
    /// The current state.
    pub state: BreakerState,
    /// Failed share of the calls in the window, 0 when the window is empty.
    pub failure_rate: f64,
    /// Calls recorded in the rolling window.
    pub calls_in_window: u32,
    /// Failed calls recorded in the rolling window.
    pub failures_in_window: u32,
    /// When open, milliseconds until probes are admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// A circuit breaker for one dependency. Cheap to clone: clones share state.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: Arc<str>,
    config: BreakerConfig,
    clock: SharedClock,
    machine: Mutex<Machine>,
}

#[derive(Debug)]
struct Machine {
    phase: Phase,
    /// Bumped on every transition. A permit remembers the epoch it was issued in,
    /// so an outcome that arrives after the state moved on (a slow call issued
    /// while closed, finishing after the breaker opened) is ignored instead of
    /// being mistaken for a probe result or polluting a fresh window.
    epoch: u64,
    window: Window,
    /// Every transition, so tests can check only legal ones happen.
    #[cfg(test)]
    transitions: Vec<(BreakerState, BreakerState)>,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    /// `until` is on the clock's monotonic scale.
    Open {
        until: Duration,
    },
    HalfOpen {
        in_flight: u32,
        successes: u32,
    },
}

impl Phase {
    fn state(self) -> BreakerState {
        match self {
            Self::Closed => BreakerState::Closed,
            Self::Open { .. } => BreakerState::Open,
            Self::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// Call counts over the last `buckets.len()` seconds, one bucket per second.
#[derive(Debug)]
struct Window {
    buckets: Box<[Bucket]>,
    /// The latest second recorded or expired; the window is `(head - len, head]`.
    head: u64,
    calls: u32,
    failures: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    calls: u32,
    failures: u32,
}

impl Window {
    fn new(secs: u32, now_sec: u64) -> Self {
        Self {
            buckets: vec![Bucket::default(); secs as usize].into_boxed_slice(),
            head: now_sec,
            calls: 0,
            failures: 0,
        }
    }

    fn slot(&self, sec: u64) -> usize {
        // `len` is at least 1 (validated) and the remainder is below it, so both casts are lossless.
        (sec % self.buckets.len() as u64) as usize
    }

    /// Moves the window forward to `now_sec`, forgetting the seconds that fell out.
    /// Amortised O(1): each bucket is cleared at most once per second of time.
    fn advance(&mut self, now_sec: u64) {
        // Monotonic time never runs backwards; if a custom clock does, keep the head.
        if now_sec <= self.head {
            return;
        }
        let len = self.buckets.len() as u64;
        if now_sec - self.head >= len {
            self.clear(now_sec);
            return;
        }
        for sec in self.head + 1..=now_sec {
            let slot = self.slot(sec);
            let old = std::mem::take(&mut self.buckets[slot]);
            self.calls = self.calls.saturating_sub(old.calls);
            self.failures = self.failures.saturating_sub(old.failures);
        }
        self.head = now_sec;
    }

    fn record(&mut self, now_sec: u64, failed: bool) {
        self.advance(now_sec);
        let slot = self.slot(self.head);
        let bucket = &mut self.buckets[slot];
        bucket.calls = bucket.calls.saturating_add(1);
        self.calls = self.calls.saturating_add(1);
        if failed {
            bucket.failures = bucket.failures.saturating_add(1);
            self.failures = self.failures.saturating_add(1);
        }
    }

    fn clear(&mut self, now_sec: u64) {
        self.buckets.fill(Bucket::default());
        self.head = now_sec;
        self.calls = 0;
        self.failures = 0;
    }

    fn failure_rate(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            f64::from(self.failures) / f64::from(self.calls)
        }
    }
}

/// How a guarded call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    /// The permit was dropped without an outcome: the caller gave up (timeout,
    /// cancelled request), which says nothing good about the dependency.
    Cancelled,
}

impl CircuitBreaker {
    /// A closed breaker named `name` (used in logs and metric labels).
    pub fn new(
        name: impl Into<Arc<str>>,
        config: BreakerConfig,
        clock: SharedClock,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let name = name.into();
        let now_sec = clock.monotonic().as_secs();
        let machine = Machine {
            phase: Phase::Closed,
            epoch: 0,
            window: Window::new(config.window_secs, now_sec),
            #[cfg(test)]
            transitions: Vec::new(),
        };
        describe_metrics();
        // Export the initial state so a dashboard shows the breaker before its first trip.
        metrics::gauge!("palisade_breaker_state", "breaker" => name.clone())
            .set(BreakerState::Closed.gauge_value());
        Ok(Self {
            inner: Arc::new(Inner {
                name,
                config,
                clock,
                machine: Mutex::new(machine),
            }),
        })
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The validated settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.inner.config
    }

    /// Asks to make one call. On success the returned [`Permit`] must be told how
    /// the call went; dropping it untold counts as a failure.
    pub fn try_acquire(&self) -> Result<Permit, BreakerOpen> {
        let now = self.inner.clock.monotonic();
        let result = {
            let mut machine = self.inner.lock();
            self.inner.refresh(&mut machine, now);
            match &mut machine.phase {
                Phase::Closed => Ok(machine.epoch),
                Phase::Open { until } => Err(BreakerOpen {
                    breaker: self.inner.name.clone(),
                    state: BreakerState::Open,
                    retry_after: until.saturating_sub(now),
                }),
                Phase::HalfOpen { in_flight, .. } => {
                    if *in_flight < self.inner.config.half_open_max_probes {
                        *in_flight += 1;
                        Ok(machine.epoch)
                    } else {
                        Err(BreakerOpen {
                            breaker: self.inner.name.clone(),
                            state: BreakerState::HalfOpen,
                            retry_after: self
                                .inner
                                .config
                                .open_duration()
                                .min(Duration::from_secs(1)),
                        })
                    }
                }
            }
        };
        match result {
            Ok(epoch) => Ok(Permit {
                inner: Arc::clone(&self.inner),
                epoch,
                started: now,
                settled: false,
            }),
            Err(open) => {
                // Outside the lock: ordering between counter increments does not matter.
                metrics::counter!("palisade_breaker_rejected_total", "breaker" => self.inner.name.clone())
                    .increment(1);
                Err(open)
            }
        }
    }

    /// Runs `fut` through the breaker, counting every error as a failure.
    pub async fn call<T, E, Fut>(&self, fut: Fut) -> Result<T, BreakerError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        self.call_with(|_| true, fut).await
    }

    /// Runs `fut` through the breaker; `is_failure` says which errors count against
    /// the dependency (a "row not found" is an answer, not a failure, and is
    /// recorded as a success).
    ///
    /// `fut` is not polled when the breaker refuses the call. If the returned future
    /// is dropped before `fut` finishes, the call counts as a failure.
    pub async fn call_with<T, E, Fut, C>(
        &self,
        is_failure: C,
        fut: Fut,
    ) -> Result<T, BreakerError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
        C: FnOnce(&E) -> bool,
    {
        let permit = self.try_acquire()?;
        match fut.await {
            Ok(value) => {
                permit.success();
                Ok(value)
            }
            Err(err) => {
                if is_failure(&err) {
                    permit.failure();
                } else {
                    permit.success();
                }
                Err(BreakerError::Inner(err))
            }
        }
    }

    /// The current state (an open breaker whose time is up reports half-open).
    pub fn state(&self) -> BreakerState {
        let now = self.inner.clock.monotonic();
        let mut machine = self.inner.lock();
        self.inner.refresh(&mut machine, now);
        machine.phase.state()
    }

    /// State and window counts, for `/health`.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let now = self.inner.clock.monotonic();
        let mut machine = self.inner.lock();
        self.inner.refresh(&mut machine, now);
        machine.window.advance(now.as_secs());
        let retry_after_ms = match machine.phase {
            Phase::Open { until } => {
                Some(u64::try_from(until.saturating_sub(now).as_millis()).unwrap_or(u64::MAX))
            }
            Phase::Closed | Phase::HalfOpen { .. } => None,
        };
        BreakerSnapshot {
            name: self.inner.name.to_string(),
            state: machine.phase.state(),
            failure_rate: machine.window.failure_rate(),
            calls_in_window: machine.window.calls,
            failures_in_window: machine.window.failures,
            retry_after_ms,
        }
    }

    /// Every transition so far, oldest first.
    #[cfg(test)]
    fn transitions(&self) -> Vec<(BreakerState, BreakerState)> {
        self.inner.lock().transitions.clone()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Machine> {
        // Nothing panics while the lock is held, so a poisoned lock still guards a
        // consistent state; refusing to work would turn one bug into an outage.
        self.machine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies transitions that are due purely to the passage of time.
    fn refresh(&self, machine: &mut Machine, now: Duration) {
        if let Phase::Open { until } = machine.phase
            && now >= until
        {
            self.transition(
                machine,
                Phase::HalfOpen {
                    in_flight: 0,
                    successes: 0,
                },
            );
        }
    }

    fn record(&self, epoch: u64, started: Duration, outcome: Outcome) {
        let now = self.clock.monotonic();
        let slow = self
            .config
            .slow_call_threshold()
            .is_some_and(|threshold| now.saturating_sub(started) >= threshold);
        let failed = outcome != Outcome::Success || slow;
        let mut machine = self.lock();
        if machine.epoch != epoch {
            return;
        }
        match &mut machine.phase {
            Phase::Closed => {
                machine.window.record(now.as_secs(), failed);
                let window = &machine.window;
                if window.calls >= self.config.minimum_calls
                    && window.failure_rate() >= self.config.failure_rate_threshold
                {
                    let until = now.saturating_add(self.config.open_duration());
                    self.transition(&mut machine, Phase::Open { until });
                }
            }
            Phase::HalfOpen {
                in_flight,
                successes,
            } => {
                *in_flight = in_flight.saturating_sub(1);
                if failed {
                    let until = now.saturating_add(self.config.open_duration());
                    self.transition(&mut machine, Phase::Open { until });
                } else {
                    *successes += 1;
                    if *successes >= self.config.half_open_successes_to_close {
                        // A recovered dependency starts with a clean slate; the
                        // failures that opened the breaker are history.
                        machine.window.clear(now.as_secs());
                        self.transition(&mut machine, Phase::Closed);
                    }
                }
            }
            // Unreachable in practice: every transition bumps the epoch and no
            // permit is issued while open. Ignoring is the safe reading anyway.
            Phase::Open { .. } => {}
        }
    }

    /// Moves to `to`, logs it and exports it. Done while holding the lock so the
    /// gauge is set in the same order the transitions happen; transitions are rare,
    /// so the extra time under the lock does not touch the hot path.
    fn transition(&self, machine: &mut Machine, to: Phase) {
        let from = machine.phase.state();
        let to_state = to.state();
        machine.phase = to;
        machine.epoch = machine.epoch.wrapping_add(1);
        #[cfg(test)]
        machine.transitions.push((from, to_state));
        let failure_rate = machine.window.failure_rate();
        if to_state == BreakerState::Open {
            tracing::warn!(
                breaker = %self.name,
                from = from.as_str(),
                to = to_state.as_str(),
                failure_rate,
                "circuit breaker state changed"
            );
        } else {
            tracing::info!(
                breaker = %self.name,
                from = from.as_str(),
                to = to_state.as_str(),
                failure_rate,
                "circuit breaker state changed"
            );
        }
        metrics::gauge!("palisade_breaker_state", "breaker" => self.name.clone())
            .set(to_state.gauge_value());
        metrics::counter!(
            "palisade_breaker_transitions_total",
            "breaker" => self.name.clone(),
            "to" => to_state.as_str()
        )
        .increment(1);
    }
}

fn describe_metrics() {
    metrics::describe_gauge!(
        "palisade_breaker_state",
        "Circuit breaker state: 0 closed, 1 half-open, 2 open."
    );
    metrics::describe_counter!(
        "palisade_breaker_transitions_total",
        "Circuit breaker state transitions, by target state."
    );
    metrics::describe_counter!(
        "palisade_breaker_rejected_total",
        "Calls refused by an open (or saturated half-open) circuit breaker."
    );
}

/// Leave to make one call through a [`CircuitBreaker`]. Report the outcome with
/// [`Permit::success`] or [`Permit::failure`]; a permit dropped without either
/// counts as a failure, because a cancelled call usually means a slow dependency.
#[must_use = "a permit dropped without an outcome counts as a failure"]
#[derive(Debug)]
pub struct Permit {
    inner: Arc<Inner>,
    epoch: u64,
    started: Duration,
    settled: bool,
}

impl Permit {
    /// The call succeeded (or failed in a way that is not the dependency's fault).
    /// Still counts as a failure if it took longer than the slow-call threshold.
    pub fn success(mut self) {
        self.settle(Outcome::Success);
    }

    /// The call failed because of the dependency.
    pub fn failure(mut self) {
        self.settle(Outcome::Failure);
    }

    fn settle(&mut self, outcome: Outcome) {
        self.settled = true;
        self.inner.record(self.epoch, self.started, outcome);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.settled {
            self.settle(Outcome::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use futures_util::FutureExt;
    use proptest::prelude::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, MapDeserializer};

    const SEC: Duration = Duration::from_secs(1);

    fn config() -> BreakerConfig {
        BreakerConfig {
            failure_rate_threshold: 0.5,
            window_secs: 10,
            minimum_calls: 4,
            open_duration_ms: 5_000,
            half_open_max_probes: 1,
            half_open_successes_to_close: 1,
            slow_call_threshold_ms: None,
        }
    }

    fn breaker(config: BreakerConfig) -> (CircuitBreaker, ManualClock) {
        let clock = ManualClock::new();
        let breaker = CircuitBreaker::new("test", config, Arc::new(clock.clone()))
            .expect("test config is valid");
        (breaker, clock)
    }

    fn permit(breaker: &CircuitBreaker) -> Permit {
        breaker.try_acquire().expect("breaker should admit a call")
    }

    fn succeed(breaker: &CircuitBreaker, times: u32) {
        for _ in 0..times {
            permit(breaker).success();
        }
    }

    fn fail(breaker: &CircuitBreaker, times: u32) {
        for _ in 0..times {
            permit(breaker).failure();
        }
    }

    /// Trips a breaker built from `config()` and returns how long it stays open.
    fn trip(breaker: &CircuitBreaker) {
        fail(breaker, breaker.config().minimum_calls);
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    use BreakerState::{Closed, HalfOpen, Open};

    #[test]
    fn stays_closed_while_calls_are_below_the_minimum() {
        let (breaker, _clock) = breaker(config());
        fail(&breaker, 3);
        assert_eq!(breaker.state(), Closed);
        let snapshot = breaker.snapshot();
        assert_eq!(snapshot.calls_in_window, 3);
        assert_eq!(snapshot.failures_in_window, 3);
        assert_eq!(snapshot.failure_rate, 1.0);
        assert!(breaker.transitions().is_empty());
    }

    #[test]
    fn stays_closed_below_the_failure_rate_threshold() {
        let (breaker, _clock) = breaker(config());
        succeed(&breaker, 3);
        fail(&breaker, 2);
        assert_eq!(breaker.state(), Closed, "2 of 5 is below 0.5");
    }

    #[test]
    fn opens_when_the_failure_rate_reaches_the_threshold() {
        let (breaker, _clock) = breaker(config());
        succeed(&breaker, 2);
        fail(&breaker, 1);
        assert_eq!(
            breaker.state(),
            Closed,
            "3 calls are below the minimum of 4"
        );
        fail(&breaker, 1);
        assert_eq!(breaker.state(), Open, "2 of 4 reaches 0.5");
        assert_eq!(breaker.transitions(), vec![(Closed, Open)]);
        assert_eq!(breaker.snapshot().failure_rate, 0.5);
    }

    #[test]
    fn opens_when_a_success_brings_calls_to_the_minimum_with_the_rate_above_threshold() {
        let (breaker, _clock) = breaker(config());
        fail(&breaker, 3);
        succeed(&breaker, 1);
        assert_eq!(breaker.state(), Open, "3 of 4 failed");
    }

    #[test]
    fn failures_still_inside_the_window_count() {
        let (breaker, clock) = breaker(config());
        fail(&breaker, 3);
        clock.advance(Duration::from_millis(9_999));
        fail(&breaker, 1);
        assert_eq!(breaker.state(), Open);
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let (breaker, clock) = breaker(config());
        fail(&breaker, 3);
        clock.advance(10 * SEC);
        fail(&breaker, 1);
        assert_eq!(breaker.state(), Closed);
        assert_eq!(breaker.snapshot().calls_in_window, 1);
    }

    #[test]
    fn window_expires_second_by_second() {
        let (breaker, clock) = breaker(config());
        fail(&breaker, 1);
        clock.advance(5 * SEC);
        succeed(&breaker, 3);
        clock.advance(5 * SEC);
        // The failures of second 0 have left; the successes of second 5 remain.
        let snapshot = breaker.snapshot();
        assert_eq!(
            (snapshot.calls_in_window, snapshot.failures_in_window),
            (3, 0)
        );
        clock.advance(5 * SEC);
        assert_eq!(breaker.snapshot().calls_in_window, 0);
    }

    #[test]
    fn open_rejects_with_the_remaining_open_time() {
        let (breaker, clock) = breaker(config());
        trip(&breaker);
        clock.advance(Duration::from_millis(2_000));
        let open = breaker.try_acquire().expect_err("open breaker must reject");
        assert_eq!(open.retry_after, Duration::from_millis(3_000));
        assert_eq!(open.state, Open);
        assert_eq!(&*open.breaker, "test");
        assert_eq!(breaker.snapshot().retry_after_ms, Some(3_000));
    }

    #[test]
    fn moves_to_half_open_once_the_open_duration_has_passed() {
        let (breaker, clock) = breaker(config());
        trip(&breaker);
        clock.advance(Duration::from_millis(4_999));
        assert_eq!(breaker.state(), Open);
        assert!(breaker.try_acquire().is_err());
        clock.advance(Duration::from_millis(1));
        assert_eq!(breaker.state(), HalfOpen);
        assert_eq!(
            breaker.transitions(),
            vec![(Closed, Open), (Open, HalfOpen)]
        );
    }

    #[test]
    fn half_open_limits_concurrent_probes() {
        let (breaker, clock) = breaker(BreakerConfig {
            half_open_max_probes: 2,
            half_open_successes_to_close: 3,
            ..config()
        });
        trip(&breaker);
        clock.advance(5 * SEC);
        let first = permit(&breaker);
        let second = permit(&breaker);
        let refused = breaker
            .try_acquire()
            .expect_err("a third concurrent probe must be refused");
        assert_eq!(refused.state, HalfOpen);
        assert_eq!(refused.retry_after, SEC);
        first.success();
        let third = permit(&breaker);
        assert_eq!(breaker.state(), HalfOpen, "one of three successes so far");
        second.success();
        third.success();
        assert_eq!(breaker.state(), Closed);
    }

    #[test]
    fn half_open_closes_after_the_required_successes_with_a_fresh_window() {
        let (breaker, clock) = breaker(BreakerConfig {
            half_open_successes_to_close: 2,
            ..config()
        });
        trip(&breaker);
        clock.advance(5 * SEC);
        permit(&breaker).success();
        assert_eq!(breaker.state(), HalfOpen);
        permit(&breaker).success();
        assert_eq!(breaker.state(), Closed);
        assert_eq!(
            breaker.transitions(),
            vec![(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
        );
        let snapshot = breaker.snapshot();
        assert_eq!(
            (snapshot.calls_in_window, snapshot.failure_rate),
            (0, 0.0),
            "the failures that opened the breaker are forgotten"
        );
        fail(&breaker, 3);
        assert_eq!(breaker.state(), Closed, "minimum calls apply afresh");
    }

    #[test]
    fn half_open_reopens_for_a_full_open_duration_when_a_probe_fails() {
        let (breaker, clock) = breaker(BreakerConfig {
            half_open_successes_to_close: 2,
            ..config()
        });
        trip(&breaker);
        clock.advance(5 * SEC);
        permit(&breaker).success();
        permit(&breaker).failure();
        assert_eq!(breaker.state(), Open);
        let open = breaker.try_acquire().expect_err("reopened breaker rejects");
        assert_eq!(open.retry_after, 5 * SEC);
        assert_eq!(
            breaker.transitions(),
            vec![(Closed, Open), (Open, HalfOpen), (HalfOpen, Open)]
        );
    }

    #[test]
    fn dropped_permit_counts_as_failure() {
        let (breaker, _clock) = breaker(config());
        for _ in 0..4 {
            drop(permit(&breaker));
        }
        assert_eq!(breaker.state(), Open);
    }

    #[test]
    fn dropped_probe_reopens_the_breaker() {
        let (breaker, clock) = breaker(config());
        trip(&breaker);
        clock.advance(5 * SEC);
        drop(permit(&breaker));
        assert_eq!(breaker.state(), Open);
    }

    #[test]
    fn slow_success_counts_as_failure() {
        let (breaker, clock) = breaker(BreakerConfig {
            slow_call_threshold_ms: Some(100),
            ..config()
        });
        let fast = permit(&breaker);
        clock.advance(Duration::from_millis(99));
        fast.success();
        let slow = permit(&breaker);
        clock.advance(Duration::from_millis(100));
        slow.success();
        assert_eq!(breaker.snapshot().failures_in_window, 1);
    }

    #[test]
    fn outcome_from_before_a_transition_is_ignored() {
        let (breaker, clock) = breaker(config());
        let straggler = permit(&breaker);
        trip(&breaker);
        clock.advance(5 * SEC);
        assert_eq!(breaker.state(), HalfOpen);
        straggler.failure();
        assert_eq!(
            breaker.state(),
            HalfOpen,
            "a call issued while closed is not a probe"
        );
        permit(&breaker).success();
        assert_eq!(breaker.state(), Closed);
    }

    #[tokio::test]
    async fn errors_the_classifier_excludes_do_not_trip_the_breaker() {
        let (breaker, _clock) = breaker(config());
        for _ in 0..10 {
            let result: Result<(), _> = breaker
                .call_with(|_: &&str| false, async { Err("row not found") })
                .await;
            assert!(matches!(result, Err(BreakerError::Inner("row not found"))));
        }
        assert_eq!(breaker.state(), Closed);
        assert_eq!(breaker.snapshot().failures_in_window, 0);

        // The same errors through `call` count, so the test above can fail.
        for _ in 0..4 {
            let _ = breaker
                .call(async { Err::<(), _>("connection reset") })
                .await;
        }
        assert_eq!(breaker.snapshot().failures_in_window, 4);
    }

    #[tokio::test]
    async fn call_through_an_open_breaker_does_not_poll_the_future() {
        let (breaker, _clock) = breaker(config());
        trip(&breaker);
        let mut polled = false;
        let result = breaker
            .call(async {
                polled = true;
                Ok::<_, ()>(())
            })
            .await;
        assert!(matches!(result, Err(BreakerError::Open(_))));
        assert!(!polled);
    }

    #[tokio::test]
    async fn cancelled_call_counts_as_failure() {
        let (breaker, _clock) = breaker(config());
        for _ in 0..4 {
            let call = breaker.call(std::future::pending::<Result<(), ()>>());
            // Poll once so the permit is taken, then drop the call mid-flight.
            let mut call = Box::pin(call);
            assert!(call.as_mut().now_or_never().is_none());
        }
        assert_eq!(breaker.state(), Open);
    }

    #[test]
    fn clones_share_state() {
        let (breaker, _clock) = breaker(config());
        let clone = breaker.clone();
        trip(&breaker);
        assert_eq!(clone.state(), Open);
    }

    #[test]
    fn breaker_and_permit_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<CircuitBreaker>();
        assert_send_sync::<Permit>();
        assert_send_sync::<BreakerOpen>();
    }

    #[test]
    fn default_config_is_valid_and_bad_values_name_their_field() {
        assert_eq!(BreakerConfig::default().validate(), Ok(()));
        let cases: Vec<(BreakerConfig, &str)> = vec![
            (
                BreakerConfig {
                    failure_rate_threshold: 0.0,
                    ..config()
                },
                "failure_rate_threshold",
            ),
            (
                BreakerConfig {
                    failure_rate_threshold: 1.5,
                    ..config()
                },
                "failure_rate_threshold",
            ),
            (
                BreakerConfig {
                    failure_rate_threshold: f64::NAN,
                    ..config()
                },
                "failure_rate_threshold",
            ),
            (
                BreakerConfig {
                    window_secs: 0,
                    ..config()
                },
                "window_secs",
            ),
            (
                BreakerConfig {
                    minimum_calls: 0,
                    ..config()
                },
                "minimum_calls",
            ),
            (
                BreakerConfig {
                    open_duration_ms: 0,
                    ..config()
                },
                "open_duration_ms",
            ),
            (
                BreakerConfig {
                    half_open_max_probes: 0,
                    ..config()
                },
                "half_open_max_probes",
            ),
            (
                BreakerConfig {
                    half_open_successes_to_close: 0,
                    ..config()
                },
                "half_open_successes_to_close",
            ),
            (
                BreakerConfig {
                    slow_call_threshold_ms: Some(0),
                    ..config()
                },
                "slow_call_threshold_ms",
            ),
        ];
        for (bad, field) in cases {
            match CircuitBreaker::new("bad", bad, Arc::new(ManualClock::new())) {
                Err(ConfigError::OutOfRange { field: got, .. }) => assert_eq!(got, field),
                Ok(_) => panic!("{field}: invalid config accepted"),
            }
        }
    }

    #[test]
    fn config_deserializes_with_defaults_for_missing_fields() {
        let fields = vec![("window_secs", 30_u64), ("minimum_calls", 20)];
        let parsed = BreakerConfig::deserialize(MapDeserializer::<_, DeError>::new(
            fields.into_iter().map(|(k, v)| (k, v.into_deserializer())),
        ))
        .expect("valid config");
        assert_eq!(
            parsed,
            BreakerConfig {
                window_secs: 30,
                minimum_calls: 20,
                ..BreakerConfig::default()
            }
        );
        let unknown = vec![("window_seconds", 30_u64)];
        let result = BreakerConfig::deserialize(MapDeserializer::<_, DeError>::new(
            unknown.into_iter().map(|(k, v)| (k, v.into_deserializer())),
        ));
        assert!(result.is_err(), "a misspelt field must not be ignored");
    }

    #[test]
    fn state_names_match_the_json_spelling() {
        for state in [Closed, HalfOpen, Open] {
            let parsed = BreakerState::deserialize(state.as_str().into_deserializer())
                .map_err(|e: DeError| e.to_string());
            assert_eq!(parsed, Ok(state));
        }
    }

    /// Records every metric operation, to check what the breaker exports.
    mod capture {
        use metrics::{
            Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
            Recorder, SharedString, Unit,
        };
        use std::sync::{Arc, Mutex};

        /// (metric name, sorted labels, value); counters record increments, gauges the value set.
        pub type Event = (String, Vec<(String, String)>, f64);

        #[derive(Debug, Default)]
        pub struct Capture(pub Arc<Mutex<Vec<Event>>>);

        struct Handle {
            key: Key,
            sink: Arc<Mutex<Vec<Event>>>,
        }

        impl Handle {
            fn push(&self, value: f64) {
                let mut labels: Vec<_> = self
                    .key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                labels.sort();
                if let Ok(mut sink) = self.sink.lock() {
                    sink.push((self.key.name().to_owned(), labels, value));
                }
            }
        }

        impl CounterFn for Handle {
            fn increment(&self, value: u64) {
                self.push(value as f64);
            }
            fn absolute(&self, value: u64) {
                self.push(value as f64);
            }
        }

        impl GaugeFn for Handle {
            fn increment(&self, value: f64) {
                self.push(value);
            }
            fn decrement(&self, value: f64) {
                self.push(-value);
            }
            fn set(&self, value: f64) {
                self.push(value);
            }
        }

        impl HistogramFn for Handle {
            fn record(&self, value: f64) {
                self.push(value);
            }
        }

        impl Capture {
            fn handle(&self, key: &Key) -> Arc<Handle> {
                Arc::new(Handle {
                    key: key.clone(),
                    sink: Arc::clone(&self.0),
                })
            }

            pub fn events(&self) -> Vec<Event> {
                self.0.lock().map(|e| e.clone()).unwrap_or_default()
            }
        }

        impl Recorder for Capture {
            fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
                Counter::from_arc(self.handle(key))
            }
            fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
                Gauge::from_arc(self.handle(key))
            }
            fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
                Histogram::from_arc(self.handle(key))
            }
        }
    }

    #[test]
    fn exports_state_transitions_and_rejections_as_metrics() {
        let capture = capture::Capture::default();
        metrics::with_local_recorder(&capture, || {
            let (breaker, clock) = breaker(config());
            trip(&breaker);
            let _ = breaker.try_acquire();
            clock.advance(5 * SEC);
            permit(&breaker).success();
        });
        let label = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let events = capture.events();
        let gauge: Vec<f64> = events
            .iter()
            .filter(|(name, labels, _)| {
                name == "palisade_breaker_state" && *labels == label(&[("breaker", "test")])
            })
            .map(|(_, _, value)| *value)
            .collect();
        assert_eq!(
            gauge,
            vec![0.0, 2.0, 1.0, 0.0],
            "initial, open, half-open, closed"
        );
        let transitions_to = |to: &str| {
            events
                .iter()
                .filter(|(name, labels, _)| {
                    name == "palisade_breaker_transitions_total"
                        && *labels == label(&[("breaker", "test"), ("to", to)])
                })
                .count()
        };
        assert_eq!(
            (
                transitions_to("open"),
                transitions_to("half_open"),
                transitions_to("closed")
            ),
            (1, 1, 1)
        );
        let rejected = events
            .iter()
            .filter(|(name, labels, _)| {
                name == "palisade_breaker_rejected_total"
                    && *labels == label(&[("breaker", "test")])
            })
            .count();
        assert_eq!(rejected, 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Acquire,
        Succeed(usize),
        Fail(usize),
        Drop(usize),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Acquire),
            2 => any::<usize>().prop_map(Op::Succeed),
            2 => any::<usize>().prop_map(Op::Fail),
            1 => any::<usize>().prop_map(Op::Drop),
            2 => (0_u64..4_000).prop_map(Op::Advance),
        ]
    }

    fn arb_config() -> impl Strategy<Value = BreakerConfig> {
        (
            prop_oneof![Just(0.25), Just(0.5), Just(1.0)],
            1_u32..5,
            1_u32..6,
            1_u64..3_000,
            1_u32..4,
            1_u32..4,
            proptest::option::of(1_u64..2_000),
        )
            .prop_map(
                |(rate, window, min, open, probes, successes, slow)| BreakerConfig {
                    failure_rate_threshold: rate,
                    window_secs: window,
                    minimum_calls: min,
                    open_duration_ms: open,
                    half_open_max_probes: probes,
                    half_open_successes_to_close: successes,
                    slow_call_threshold_ms: slow,
                },
            )
    }

    fn is_legal(from: BreakerState, to: BreakerState) -> bool {
        matches!(
            (from, to),
            (Closed, Open) | (Open, HalfOpen) | (HalfOpen, Closed) | (HalfOpen, Open)
        )
    }

    proptest! {
        #[test]
        fn random_outcomes_only_make_legal_transitions(
            config in arb_config(),
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let (breaker, clock) = breaker(config.clone());
            let mut held: Vec<Permit> = Vec::new();
            for op in ops {
                match op {
                    Op::Acquire => match breaker.try_acquire() {
                        Ok(permit) => held.push(permit),
                        Err(open) => {
                            prop_assert!(open.state != Closed);
                            prop_assert!(open.retry_after <= config.open_duration());
                            if open.state == Open {
                                prop_assert!(open.retry_after > Duration::ZERO);
                            }
                        }
                    },
                    Op::Succeed(i) if !held.is_empty() => held.swap_remove(i % held.len()).success(),
                    Op::Fail(i) if !held.is_empty() => held.swap_remove(i % held.len()).failure(),
                    Op::Drop(i) if !held.is_empty() => drop(held.swap_remove(i % held.len())),
                    Op::Advance(ms) => clock.advance(Duration::from_millis(ms)),
                    Op::Succeed(_) | Op::Fail(_) | Op::Drop(_) => {}
                }
                // Snapshot first: it applies a time-due open -> half-open transition.
                let snapshot = breaker.snapshot();
                let mut current = Closed;
                for (from, to) in breaker.transitions() {
                    prop_assert_eq!(from, current, "transitions must chain");
                    prop_assert!(is_legal(from, to), "illegal transition {:?} -> {:?}", from, to);
                    current = to;
                }
                prop_assert_eq!(snapshot.state, current);
                prop_assert!((0.0..=1.0).contains(&snapshot.failure_rate));
                prop_assert!(snapshot.failures_in_window <= snapshot.calls_in_window);
                if let Phase::HalfOpen { in_flight, successes } = breaker.inner.lock().phase {
                    prop_assert!(in_flight <= config.half_open_max_probes);
                    prop_assert!(successes < config.half_open_successes_to_close);
                }
            }
        }
    }
}
