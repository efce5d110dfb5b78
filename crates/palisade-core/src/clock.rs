//! Time, passed in rather than read from the system deep in logic, so expiry,
//! lockouts, rate limits and circuit breakers are testable without sleeping.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// A source of wall-clock and monotonic time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Wall-clock time, for timestamps and expiry that must mean the same on every machine.
    fn now(&self) -> SystemTime;

    /// Monotonic time since an arbitrary fixed origin, for measuring durations
    /// (breaker windows, timeouts) that must not jump when the wall clock is adjusted.
    fn monotonic(&self) -> Duration;

    /// Monotonic time at a coarse resolution (a few milliseconds), cheaper to
    /// read than [`Clock::monotonic`]: for age checks on hot paths, such as a
    /// cache entry's time to live, where a few milliseconds do not matter.
    /// Compare it only with other readings of this method: its origin may
    /// differ from [`Clock::monotonic`]'s.
    fn monotonic_coarse(&self) -> Duration {
        self.monotonic()
    }

    /// Wall-clock time as Unix milliseconds, the form stored in the database
    /// (0 before 1970, saturating far in the future).
    fn now_unix_ms(&self) -> i64 {
        self.now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A shared, dynamically dispatched clock.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock. Monotonic time comes from `quanta`: the CPU's invariant
/// time-stamp counter where there is one (a few nanoseconds a read, which
/// matters on paths like rate-limit checks that read it per request), and the
/// operating system's monotonic clock where there is not. Coarse monotonic time
/// is Linux's `CLOCK_MONOTONIC_COARSE`, the kernel's last tick read from the
/// vDSO without touching the time-stamp counter (a third of the cost on a
/// virtual machine, where reading the counter is slow); elsewhere it is the
/// precise clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: quanta::Instant,
    coarse_origin: Duration,
}

impl SystemClock {
    /// A system clock whose monotonic origin is now.
    pub fn new() -> Self {
        Self {
            origin: quanta::Instant::now(),
            coarse_origin: coarse::now().unwrap_or_default(),
        }
    }

    /// The system clock behind an `Arc`, ready to pass around.
    pub fn shared() -> SharedClock {
        Arc::new(Self::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn monotonic(&self) -> Duration {
        quanta::Instant::now().saturating_duration_since(self.origin)
    }

    fn monotonic_coarse(&self) -> Duration {
        match coarse::now() {
            Some(now) => now.saturating_sub(self.coarse_origin),
            None => self.monotonic(),
        }
    }
}

/// The operating system's coarse monotonic clock, where it has one.
mod coarse {
    use std::time::Duration;

    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) fn now() -> Option<Duration> {
        use rustix::time::{ClockId, clock_gettime};
        let t = clock_gettime(ClockId::MonotonicCoarse);
        Some(Duration::new(
            u64::try_from(t.tv_sec).ok()?,
            u32::try_from(t.tv_nsec).ok()?,
        ))
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) fn now() -> Option<Duration> {
        None
    }
}

/// A clock that moves only when told to; wall and monotonic time advance together.
#[derive(Debug, Clone)]
pub struct ManualClock {
    state: Arc<Mutex<ManualState>>,
}

#[derive(Debug)]
struct ManualState {
    wall: SystemTime,
    monotonic: Duration,
}

impl ManualClock {
    /// A manual clock starting at the given wall-clock time.
    pub fn starting_at(wall: SystemTime) -> Self {
        Self {
            state: Arc::new(Mutex::new(ManualState {
                wall,
                monotonic: Duration::ZERO,
            })),
        }
    }

    /// A manual clock starting at 2026-01-01T00:00:00Z.
    pub fn new() -> Self {
        Self::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
    }

    /// Moves both wall and monotonic time forward.
    pub fn advance(&self, by: Duration) {
        let mut state = self.lock();
        state.wall += by;
        state.monotonic += by;
    }

    /// Sets the wall clock only (as an NTP step would); monotonic time is unchanged.
    pub fn set_wall(&self, wall: SystemTime) {
        self.lock().wall = wall;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        // A poisoned lock only means a test panicked while holding it; the state is still valid.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.lock().wall
    }

    fn monotonic(&self) -> Duration {
        self.lock().monotonic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_monotonic_time_advances_with_the_precise_clock() {
        let clock = SystemClock::new();
        let (coarse, precise) = (clock.monotonic_coarse(), clock.monotonic());
        std::thread::sleep(Duration::from_millis(60));
        let coarse_elapsed = clock.monotonic_coarse() - coarse;
        let precise_elapsed = clock.monotonic() - precise;
        // The coarse clock lags by at most a few kernel ticks (4 ms at 250 Hz).
        assert!(
            coarse_elapsed >= Duration::from_millis(40),
            "{coarse_elapsed:?}"
        );
        assert!(
            coarse_elapsed <= precise_elapsed + Duration::from_millis(20),
            "{coarse_elapsed:?} vs {precise_elapsed:?}"
        );
    }

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new();
        let (wall, mono) = (clock.now(), clock.monotonic());
        assert_eq!(clock.now(), wall);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), wall + Duration::from_millis(1500));
        assert_eq!(clock.monotonic(), mono + Duration::from_millis(1500));
    }

    #[test]
    fn unix_ms_follows_the_wall_clock() {
        let clock = ManualClock::starting_at(SystemTime::UNIX_EPOCH + Duration::from_millis(1_500));
        assert_eq!(clock.now_unix_ms(), 1_500);
        clock.set_wall(SystemTime::UNIX_EPOCH - Duration::from_secs(1));
        assert_eq!(clock.now_unix_ms(), 0);
    }

    #[test]
    fn wall_clock_step_does_not_move_monotonic_time() {
        let clock = ManualClock::new();
        clock.advance(Duration::from_secs(3));
        clock.set_wall(SystemTime::UNIX_EPOCH);
        assert_eq!(clock.monotonic(), Duration::from_secs(3));
        assert_eq!(clock.now(), SystemTime::UNIX_EPOCH);
    }
}
