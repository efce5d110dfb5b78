//! One key's streaming baseline: exponentially weighted mean and variance of
//! per-interval counts (requests, errors, denials), and the z-score of the
//! interval in progress against them.
//!
//! The variance update is West's incremental EWMA form:
//! `d = x - mean; mean += a*d; var = (1-a)*(var + a*d^2)`. A count is a
//! Poisson-like quantity, so the standard deviation used for a z-score is
//! never below `sqrt(max(mean, 1))`: a key that has always sent exactly 3
//! requests per interval does not alarm on 5.
//!
//! Values fed into the baseline are capped at `mean + z*std`, so an attack
//! that goes on for a while does not teach the baseline that it is normal as
//! fast as it would uncapped (it still adapts to a lasting change, slowly).

/// Exponentially weighted mean and variance.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Ewm {
    pub(crate) mean: f64,
    pub(crate) var: f64,
}

impl Ewm {
    /// Folds `x` in with weight `alpha`.
    pub(crate) fn update(&mut self, x: f64, alpha: f64) {
        let d = x - self.mean;
        self.mean += alpha * d;
        self.var = (1.0 - alpha) * (self.var + alpha * d * d);
    }

    /// The standard deviation used for z-scores (see the module docs).
    pub(crate) fn std(&self) -> f64 {
        self.var.max(0.0).sqrt().max(self.mean.max(1.0).sqrt())
    }

    /// How many standard deviations `x` is above the mean.
    pub(crate) fn z(&self, x: f64) -> f64 {
        (x - self.mean) / self.std()
    }
}

/// The three counts kept per key.
pub(crate) const METRICS: usize = 3;

/// A key's state.
#[derive(Debug, Clone)]
pub(crate) struct Baseline {
    /// The interval in progress (its index since the epoch).
    pub(crate) interval: i64,
    /// Counts of the interval in progress.
    pub(crate) counts: [u64; METRICS],
    /// Per-metric baselines over finished intervals.
    pub(crate) stats: [Ewm; METRICS],
    /// Finished intervals folded in (saturating).
    pub(crate) seen: u32,
    /// Metrics already alerted on in the interval in progress (bit mask).
    pub(crate) alerted: u8,
    /// Last observation, Unix ms, for eviction.
    pub(crate) last_seen_ms: i64,
}

impl Baseline {
    pub(crate) fn new(interval: i64, now_ms: i64) -> Self {
        Self {
            interval,
            counts: [0; METRICS],
            stats: [Ewm::default(); METRICS],
            seen: 0,
            alerted: 0,
            last_seen_ms: now_ms,
        }
    }

    /// Moves to `interval`, folding in the interval in progress and the
    /// empty ones in between (at most `max_gap` of them: after that many
    /// zeros the baseline has forgotten the past anyway).
    pub(crate) fn advance(&mut self, interval: i64, alpha: f64, z_cap: f64, max_gap: u32) {
        if interval <= self.interval {
            return;
        }
        let gap = interval - self.interval;
        for (stat, count) in self.stats.iter_mut().zip(self.counts) {
            let x = count as f64;
            // The first interval sets the baseline; later ones are capped.
            let capped = if self.seen == 0 {
                x
            } else {
                x.min(stat.mean + z_cap * stat.std())
            };
            if self.seen == 0 {
                stat.mean = capped;
            } else {
                stat.update(capped, alpha);
            }
        }
        self.seen = self.seen.saturating_add(1);
        let empty = u32::try_from(gap - 1).unwrap_or(u32::MAX).min(max_gap);
        for _ in 0..empty {
            for stat in &mut self.stats {
                stat.update(0.0, alpha);
            }
            self.seen = self.seen.saturating_add(1);
        }
        self.interval = interval;
        self.counts = [0; METRICS];
        self.alerted = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_count_has_a_mean_near_it_and_a_poisson_floor_on_its_spread() {
        let mut b = Baseline::new(0, 0);
        for i in 1..=100 {
            b.counts = [10, 1, 0];
            b.advance(i, 0.1, 4.0, 50);
        }
        assert!((b.stats[0].mean - 10.0).abs() < 1e-6);
        assert!((b.stats[0].std() - 10f64.sqrt()).abs() < 1e-6);
        assert!(b.stats[0].z(12.0) < 1.0, "two more requests are no anomaly");
        assert!(b.stats[0].z(60.0) > 10.0);
        assert_eq!(b.seen, 100);
    }

    #[test]
    fn empty_intervals_pull_the_mean_down_and_the_gap_is_bounded() {
        let mut b = Baseline::new(0, 0);
        b.counts = [100, 0, 0];
        b.advance(1, 0.5, 4.0, 50);
        assert_eq!(b.stats[0].mean, 100.0);
        b.advance(1_000_000, 0.5, 4.0, 50);
        assert!(b.stats[0].mean < 1e-9);
        assert_eq!(b.seen, 52);
        assert_eq!(b.counts, [0; METRICS]);
    }

    #[test]
    fn a_spike_is_capped_before_it_enters_the_baseline() {
        let mut b = Baseline::new(0, 0);
        for i in 1..=50 {
            b.counts = [10, 0, 0];
            b.advance(i, 0.1, 4.0, 50);
        }
        b.counts = [10_000, 0, 0];
        b.advance(51, 0.1, 4.0, 50);
        assert!(b.stats[0].mean < 12.0, "mean {}", b.stats[0].mean);
    }
}
