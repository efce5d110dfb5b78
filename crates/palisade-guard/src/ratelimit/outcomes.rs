//! Per-key tallies over a sliding pair of fixed windows, for two jobs:
//! adaptive limits (how many of a key's recent requests failed) and block
//! reports (how often a key was limited, reported once past a threshold).
//!
//! Both are per instance and best effort: they tighten or report, never
//! grant, so losing a tally (eviction, a restart) can only make Palisade
//! less strict for a moment, never let through more than the rule's limit.

use dashmap::DashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Counts of one key in the current and the previous window.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    window: u64,
    total: u64,
    marked: u64,
    prev_total: u64,
    prev_marked: u64,
}

impl Tally {
    /// Moves the tally to `window`, shifting or clearing the counts.
    fn roll(&mut self, window: u64) {
        if window == self.window {
            return;
        }
        if window == self.window + 1 {
            self.prev_total = self.total;
            self.prev_marked = self.marked;
        } else {
            self.prev_total = 0;
            self.prev_marked = 0;
        }
        self.window = window;
        self.total = 0;
        self.marked = 0;
    }
}

/// Tallies events per key, some of them marked (errors, blocks).
#[derive(Debug)]
pub(crate) struct Tallies {
    window: Duration,
    max_keys: usize,
    keys: DashMap<String, Mutex<Tally>, foldhash::fast::RandomState>,
}

impl Tallies {
    /// Tallies over windows of `window`, tracking at most `max_keys` keys.
    pub(crate) fn new(window: Duration, max_keys: usize) -> Self {
        Self {
            window: window.max(Duration::from_millis(1)),
            max_keys,
            keys: DashMap::default(),
        }
    }

    fn window_of(&self, now: Duration) -> (u64, f64) {
        let period = self.window.as_nanos();
        let now = now.as_nanos();
        let index = u64::try_from(now / period).unwrap_or(u64::MAX);
        #[allow(clippy::cast_precision_loss)] // a weight, not a count
        let elapsed = (now % period) as f64 / period as f64;
        (index, elapsed)
    }

    /// Records one event for `key`, `marked` or not. Returns the number of
    /// marked events in the current window, this one included. A new key is
    /// not tracked when the table is full (after dropping idle keys).
    pub(crate) fn record(&self, key: &str, marked: bool, now: Duration) -> u64 {
        let (window, _) = self.window_of(now);
        let update = |tally: &Mutex<Tally>| {
            let mut tally = tally.lock().unwrap_or_else(|e| e.into_inner());
            tally.roll(window);
            tally.total += 1;
            tally.marked += u64::from(marked);
            tally.marked
        };
        if let Some(tally) = self.keys.get(key) {
            return update(&tally);
        }
        if self.keys.len() >= self.max_keys {
            self.evict_idle(now);
            if self.keys.len() >= self.max_keys {
                return 0;
            }
        }
        let tally = self.keys.entry(key.to_owned()).or_default();
        update(&tally)
    }

    /// The weighted totals `(events, marked)` of `key` over the last window.
    pub(crate) fn recent(&self, key: &str, now: Duration) -> (f64, f64) {
        let (window, elapsed) = self.window_of(now);
        let Some(tally) = self.keys.get(key) else {
            return (0.0, 0.0);
        };
        let mut tally = *tally.lock().unwrap_or_else(|e| e.into_inner());
        tally.roll(window);
        let weight = 1.0 - elapsed;
        #[allow(clippy::cast_precision_loss)] // estimates
        (
            tally.prev_total as f64 * weight + tally.total as f64,
            tally.prev_marked as f64 * weight + tally.marked as f64,
        )
    }

    /// Drops keys with nothing in the current or the previous window.
    pub(crate) fn evict_idle(&self, now: Duration) -> usize {
        let (window, _) = self.window_of(now);
        let before = self.keys.len();
        self.keys.retain(|_, tally| {
            let tally = tally.get_mut().unwrap_or_else(|e| e.into_inner());
            tally.window + 1 >= window
        });
        before.saturating_sub(self.keys.len())
    }

    /// Keys tracked now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn weighs_the_previous_window_by_what_is_left_of_it() {
        let tallies = Tallies::new(SECOND * 10, 100);
        for i in 0..10 {
            tallies.record("k", i % 2 == 0, SECOND * 5);
        }
        assert_eq!(tallies.recent("k", SECOND * 5), (10.0, 5.0));
        // Halfway through the next window, half of the previous one counts.
        assert_eq!(tallies.recent("k", SECOND * 15), (5.0, 2.5));
        assert_eq!(tallies.recent("k", SECOND * 25), (0.0, 0.0));
    }

    #[test]
    fn record_returns_the_marked_count_of_the_current_window() {
        let tallies = Tallies::new(SECOND, 100);
        assert_eq!(tallies.record("k", true, Duration::ZERO), 1);
        assert_eq!(tallies.record("k", false, Duration::ZERO), 1);
        assert_eq!(tallies.record("k", true, Duration::ZERO), 2);
        assert_eq!(
            tallies.record("k", true, SECOND),
            1,
            "a new window starts at zero"
        );
    }

    #[test]
    fn stops_tracking_new_keys_when_full_of_active_ones_and_evicts_idle_ones() {
        let tallies = Tallies::new(SECOND, 2);
        tallies.record("a", true, Duration::ZERO);
        tallies.record("b", true, Duration::ZERO);
        assert_eq!(tallies.record("c", true, Duration::ZERO), 0);
        assert_eq!(tallies.len(), 2);
        // Two windows later a and b are idle and make room.
        assert_eq!(tallies.record("c", true, SECOND * 2), 1);
        assert_eq!(tallies.len(), 1);
    }
}
