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
/// operating system's monotonic clock where there is not.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: quanta::Instant,
}

impl SystemClock {
    /// A system clock whose monotonic origin is now.
    pub fn new() -> Self {
        Self {
            origin: quanta::Instant::now(),
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
