//! The arithmetic of each algorithm over plain numbers: given what is stored
//! for one key, the time and the cost, the [`Decision`] and what to store.
//!
//! No atomics and no maps live here, so each rule is tested on its own and the
//! Redis scripts can be read against it line by line. Time is nanoseconds on a
//! monotonic clock. Products of a count and a time are taken in `u128`: a
//! billion units times a year in nanoseconds does not fit in a `u64`.
//!
//! Rounding, which the Redis scripts mirror: converting units to time rounds
//! down (`cost * period / limit`), and so does converting time to units
//! (`remaining`). When the period is a whole number of nanoseconds per unit,
//! as with every limit of whole milliseconds and a limit dividing it, both
//! conversions are exact.

use super::{Decision, Limit};
use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A limit turned into the constants of the arithmetic, computed once per
/// limiter so the hot path does no validation and, in the common case, no
/// 128-bit division.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params {
    limit: u64,
    burst: u64,
    period_ns: u64,
    /// The emission interval `T = period / limit` when it is a whole number
    /// of nanoseconds.
    emission_ns: Option<u64>,
    /// `burst * T`: how far ahead of now the GCRA arrival time may run.
    tolerance_ns: u128,
    /// The stored GCRA arrival time is in units of `2^tat_shift` ns. Zero
    /// unless `burst * T` exceeds 292 years, when the arrival time would not
    /// fit a `u64` of nanoseconds; it is then stored rounded up (later, so
    /// the coarser clock can only deny, never over-admit).
    tat_shift: u32,
}

impl Params {
    /// The constants of `limit`.
    pub(crate) fn new(limit: &Limit) -> Self {
        // A validated period is at most 366 days, far below u64::MAX ns.
        let period_ns = u64::try_from(limit.period().as_nanos()).unwrap_or(u64::MAX);
        let emission_ns = (period_ns % limit.limit() == 0).then(|| period_ns / limit.limit());
        let mut params = Self {
            limit: limit.limit(),
            burst: limit.capacity(),
            period_ns,
            emission_ns,
            tolerance_ns: 0,
            tat_shift: 0,
        };
        params.tolerance_ns = params.units_to_ns(params.burst);
        // Room for the tolerance plus 2^63 ns (292 years) of uptime.
        let span = params.tolerance_ns + (1 << 63);
        params.tat_shift = (u128::BITS - span.leading_zeros()).saturating_sub(u64::BITS);
        params
    }

    /// The window holding `now`, and the time elapsed since it began.
    pub(crate) fn window_of(&self, now: u64) -> (u64, u64) {
        (now / self.period_ns, now % self.period_ns)
    }

    /// `units * T`, rounded down.
    fn units_to_ns(&self, units: u64) -> u128 {
        match self.emission_ns {
            Some(t) => u128::from(units) * u128::from(t),
            None => u128::from(units) * u128::from(self.period_ns) / u128::from(self.limit),
        }
    }

    /// `ns / T`, rounded down.
    fn ns_to_units(&self, ns: u128) -> u128 {
        match self.emission_ns {
            // Most slack fits a u64, and a u64 division is several times
            // cheaper than a u128 one.
            Some(t) => match u64::try_from(ns) {
                Ok(ns) => u128::from(ns / t),
                Err(_) => ns / u128::from(t),
            },
            None => ns * u128::from(self.limit) / u128::from(self.period_ns),
        }
    }

    /// GCRA. `stored` is the word stored for the key: its theoretical
    /// arrival time (TAT), 0 for a new key. Returns the decision and, when
    /// allowed, the word to store.
    ///
    /// `tat = max(stored, now)`, `new_tat = tat + cost*T`; the check passes
    /// unless `now < new_tat - burst*T`.
    #[inline]
    pub(crate) fn gcra(&self, stored: u64, now: u64, cost: u64) -> (Decision, Option<u64>) {
        let now_ns = u128::from(now);
        let tat = (u128::from(stored) << self.tat_shift).max(now_ns);
        let new_tat = tat + self.units_to_ns(cost);
        // now + burst*T, so that `now < allow_at` needs no subtraction that
        // could go below zero.
        let horizon = now_ns + self.tolerance_ns;
        if horizon < new_tat {
            let decision = Decision {
                allowed: false,
                limit: self.limit,
                remaining: self.gcra_remaining(horizon.saturating_sub(tat)),
                reset_after: duration(tat - now_ns),
                retry_after: duration(new_tat - horizon),
            };
            return (decision, None);
        }
        let decision = Decision {
            allowed: true,
            limit: self.limit,
            remaining: self.gcra_remaining(horizon - new_tat),
            reset_after: duration(new_tat - now_ns),
            retry_after: Duration::ZERO,
        };
        let word = new_tat.div_ceil(1 << self.tat_shift);
        (decision, Some(u64::try_from(word).unwrap_or(u64::MAX)))
    }

    /// Units spendable with `slack = now + burst*T - tat`, at most the burst.
    fn gcra_remaining(&self, slack: u128) -> u64 {
        let units = self.ns_to_units(slack).min(u128::from(self.burst));
        u64::try_from(units).unwrap_or(self.burst)
    }

    /// Whether a key whose stored GCRA word is `stored` answers like a new
    /// key at `now`: its arrival time is not in the future.
    pub(crate) fn gcra_at_rest(&self, stored: u64, now: u64) -> bool {
        (u128::from(stored) << self.tat_shift) <= u128::from(now)
    }

    /// Sliding window. `prev` is the count of the window before the current
    /// one, `cur` the current window's count and `elapsed` the time since the
    /// current window began. Returns the decision and, when allowed, the
    /// current window's new count.
    ///
    /// The estimate is `prev * (period - elapsed) / period + cur`; the check
    /// passes if the estimate plus the cost stays within the limit, compared
    /// exactly in integers.
    pub(crate) fn sliding_window(
        &self,
        prev: u64,
        cur: u64,
        elapsed: u64,
        cost: u64,
    ) -> (Decision, Option<u64>) {
        let period = u128::from(self.period_ns);
        let limit = u128::from(self.limit);
        // prev * (period - elapsed): the previous window's weight, in
        // unit-nanoseconds, so nothing is divided before comparing.
        let weighted_prev = u128::from(prev) * (period - u128::from(elapsed));
        let allowed = weighted_prev + u128::from(cur + cost) * period <= limit * period;
        let cur_after = if allowed { cur + cost } else { cur };
        let estimate_ceil = u128::from(cur_after) + weighted_prev.div_ceil(period);
        let remaining = u64::try_from(limit.saturating_sub(estimate_ceil)).unwrap_or(0);
        let reset_after = if cur_after > 0 {
            2 * self.period_ns - elapsed
        } else if prev > 0 {
            self.period_ns - elapsed
        } else {
            0
        };
        let retry_after = if allowed {
            0
        } else {
            self.sliding_retry(prev, cur, elapsed, cost)
        };
        let decision = Decision {
            allowed,
            limit: self.limit,
            remaining,
            reset_after: Duration::from_nanos(reset_after),
            retry_after: Duration::from_nanos(retry_after),
        };
        (decision, allowed.then_some(cur_after))
    }

    /// The shortest wait, in nanoseconds, after which a denied sliding-window
    /// check passes if nothing else is taken meanwhile.
    ///
    /// Without traffic the estimate only falls, so the first passing instant
    /// is found by solving `weight * count <= room` in the first place it can
    /// hold: later in this window (the previous count decaying), else in the
    /// next window (this window's count becoming the decaying one), else at
    /// the start of the window after, when both counts have expired.
    fn sliding_retry(&self, prev: u64, cur: u64, elapsed: u64, cost: u64) -> u64 {
        let period = u128::from(self.period_ns);
        let limit = u128::from(self.limit);
        let (prev, cur, elapsed, cost) = (
            u128::from(prev),
            u128::from(cur),
            u128::from(elapsed),
            u128::from(cost),
        );
        // The latest instant of a window where a decaying `count` leaves room
        // for `room` units: `count * (period - e) <= room * period` holds for
        // `e >= period - floor(room * period / count)`. None if no instant
        // of the window works.
        let first_instant = |count: u128, room: u128| -> Option<u128> {
            if count == 0 {
                return Some(0);
            }
            let weight = room * period / count;
            (weight >= 1).then(|| period - weight.min(period))
        };
        let wait = if limit >= cur + cost
            && let Some(e) = first_instant(prev, limit - cur - cost).filter(|e| *e > elapsed)
        {
            e - elapsed
        } else if let Some(e) = first_instant(cur, limit - cost.min(limit)) {
            period - elapsed + e
        } else {
            2 * period - elapsed
        };
        u64::try_from(wait).unwrap_or(u64::MAX)
    }

    /// Fixed window. `count` is the current window's count and `elapsed` the
    /// time since it began. Returns the decision and, when allowed, the new
    /// count.
    pub(crate) fn fixed_window(
        &self,
        count: u64,
        elapsed: u64,
        cost: u64,
    ) -> (Decision, Option<u64>) {
        let allowed = count + cost <= self.limit;
        let count_after = if allowed { count + cost } else { count };
        let reset_after = Duration::from_nanos(self.period_ns - elapsed);
        let decision = Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit.saturating_sub(count_after),
            reset_after,
            retry_after: if allowed { Duration::ZERO } else { reset_after },
        };
        (decision, allowed.then_some(count_after))
    }
}

/// A duration of `ns` nanoseconds, saturating far beyond any valid limit.
fn duration(ns: u128) -> Duration {
    match u64::try_from(ns) {
        Ok(ns) => Duration::from_nanos(ns),
        Err(_) => {
            let secs = u64::try_from(ns / NANOS_PER_SEC).unwrap_or(u64::MAX);
            let nanos = u32::try_from(ns % NANOS_PER_SEC).unwrap_or(0);
            Duration::new(secs, nanos)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Algorithm;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;
    const SEC: u64 = 1_000 * MS;

    fn params(algorithm: Algorithm, limit: u64, period_ms: u64) -> Params {
        let limit = Limit::new(algorithm, limit, Duration::from_millis(period_ms)).unwrap();
        Params::new(&limit)
    }

    fn gcra_params(limit: u64, period_ms: u64, burst: u64) -> Params {
        let limit = Limit::new(Algorithm::Gcra, limit, Duration::from_millis(period_ms))
            .unwrap()
            .with_burst(burst)
            .unwrap();
        Params::new(&limit)
    }

    /// Runs a sequence of GCRA checks of `cost` at `times`, storing what each
    /// allowed check returns, and gives back the decisions and the final TAT.
    fn gcra_run(p: &Params, mut tat: u64, checks: &[(u64, u64)]) -> (Vec<Decision>, u64) {
        let mut decisions = Vec::new();
        for &(now, cost) in checks {
            let (decision, stored) = p.gcra(tat, now, cost);
            if let Some(stored) = stored {
                tat = stored;
            }
            decisions.push(decision);
        }
        (decisions, tat)
    }

    #[test]
    fn gcra_allows_a_full_burst_at_once_then_one_unit_per_emission_interval() {
        // 10 per second, burst 5: T = 100 ms.
        let p = gcra_params(10, 1_000, 5);
        let now = 50 * SEC;
        let (decisions, tat) = gcra_run(&p, 0, &[(now, 1); 6]);
        let allowed: Vec<bool> = decisions.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, true, true, true, false]);
        let remaining: Vec<u64> = decisions.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0, 0]);
        assert_eq!(decisions[0].reset_after, Duration::from_millis(100));
        assert_eq!(decisions[4].reset_after, Duration::from_millis(500));
        assert_eq!(decisions[5].retry_after, Duration::from_millis(100));
        assert_eq!(decisions[5].reset_after, Duration::from_millis(500));
        // One emission interval later exactly one more unit fits.
        let later = now + 100 * MS;
        let (decisions, _) = gcra_run(&p, tat, &[(later, 1), (later, 1)]);
        assert!(decisions[0].allowed);
        assert!(!decisions[1].allowed);
    }

    #[test]
    fn gcra_denial_stores_nothing() {
        let p = gcra_params(10, 1_000, 2);
        let (first, tat) = p.gcra(0, SEC, 2);
        assert!(first.allowed);
        let tat = tat.unwrap();
        let (denied, stored) = p.gcra(tat, SEC, 1);
        assert!(!denied.allowed);
        assert_eq!(stored, None);
        assert_eq!(denied.limit, 10);
        assert_eq!(denied.remaining, 0);
    }

    #[test]
    fn gcra_cost_takes_cost_times_the_emission_interval() {
        let p = gcra_params(10, 1_000, 10);
        let (decision, tat) = p.gcra(0, SEC, 4);
        assert!(decision.allowed);
        assert_eq!(tat, Some(SEC + 400 * MS));
        assert_eq!(decision.remaining, 6);
        assert_eq!(decision.reset_after, Duration::from_millis(400));
        // 6 left: a cost of 7 waits for one interval, a cost of 6 passes.
        let (denied, _) = p.gcra(SEC + 400 * MS, SEC, 7);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, Duration::from_millis(100));
        assert_eq!(denied.remaining, 6);
        assert!(p.gcra(SEC + 400 * MS, SEC, 6).0.allowed);
    }

    #[test]
    fn gcra_is_at_rest_and_answers_like_a_new_key_after_reset_after() {
        // 4 per second: T = 250 ms.
        let p = gcra_params(4, 1_000, 4);
        let (decisions, tat) = gcra_run(&p, 0, &[(SEC, 1), (SEC, 2)]);
        assert_eq!(decisions[1].reset_after, Duration::from_millis(750));
        assert_eq!(decisions[1].remaining, 1);
        let full_at = SEC + 750 * MS;
        assert!(!p.gcra_at_rest(tat, full_at - 1));
        assert!(p.gcra_at_rest(tat, full_at));
        let (fresh, _) = p.gcra(0, full_at, 1);
        let (rested, _) = p.gcra(tat, full_at, 1);
        assert_eq!(fresh, rested);
        assert_eq!(fresh.remaining, 3);
    }

    #[test]
    fn gcra_with_a_fractional_emission_interval_rounds_each_cost_down() {
        // 3 per second: T = 333,333,333.3 ns.
        let p = gcra_params(3, 1_000, 3);
        assert_eq!(p.emission_ns, None);
        let (decision, tat) = p.gcra(0, 0, 1);
        assert!(decision.allowed);
        assert_eq!(tat, Some(333_333_333));
        let (decision, tat) = p.gcra(0, 0, 3);
        assert!(decision.allowed);
        assert_eq!(tat, Some(SEC));
        assert_eq!(decision.remaining, 0);
    }

    #[test]
    fn gcra_with_a_huge_burst_over_a_long_period_does_not_overflow() {
        let limit = Limit::new(Algorithm::Gcra, 1, super::super::MAX_PERIOD)
            .unwrap()
            .with_burst(super::super::MAX_LIMIT)
            .unwrap();
        let p = Params::new(&limit);
        assert!(p.tat_shift > 0);
        let year = Duration::from_secs(366 * 24 * 3600);
        let (decision, tat) = p.gcra(0, SEC, super::super::MAX_LIMIT);
        assert!(decision.allowed);
        assert_eq!(decision.reset_after, year * 1_000_000_000);
        let tat = tat.unwrap();
        // A billion years of arrival time is stored, coarsely, and the next
        // unit waits for one period (give or take the coarser resolution).
        let (denied, _) = p.gcra(tat, SEC, 1);
        assert!(!denied.allowed);
        assert!(denied.retry_after >= year);
        assert!(denied.retry_after < year + Duration::from_millis(10));
        assert!(!p.gcra_at_rest(tat, u64::MAX));
    }

    /// The sliding-window state seen `wait` ns after a check at `elapsed` in
    /// a window with counts `prev` and `cur`, if nothing else is taken.
    fn sliding_later(p: &Params, prev: u64, cur: u64, elapsed: u64, wait: u64) -> (u64, u64, u64) {
        let period = p.period_ns;
        let at = elapsed + wait;
        if at < period {
            (prev, cur, at)
        } else if at < 2 * period {
            (cur, 0, at - period)
        } else {
            (0, 0, at % period)
        }
    }

    #[test]
    fn sliding_window_weights_the_previous_window_by_its_share_still_inside() {
        // 10 per second; 10 in the previous window; a quarter into this one
        // the previous window counts 7.5, so 2 more fit (7.5 + 2 <= 10).
        let p = params(Algorithm::SlidingWindow, 10, 1_000);
        let (d1, cur) = p.sliding_window(10, 0, 250 * MS, 2);
        assert!(d1.allowed);
        assert_eq!(cur, Some(2));
        // 7.5 + 2 = 9.5 rounds up to 10: nothing remains.
        assert_eq!(d1.remaining, 0);
        assert_eq!(d1.reset_after, Duration::from_millis(1_750));
        let (d2, stored) = p.sliding_window(10, 2, 250 * MS, 1);
        assert!(!d2.allowed);
        assert_eq!(stored, None);
        // 7.5 + 3 <= 10 once the previous weight is 7: at 300 ms.
        assert_eq!(d2.retry_after, Duration::from_millis(50));
        assert!(p.sliding_window(10, 2, 300 * MS, 1).0.allowed);
        assert!(!p.sliding_window(10, 2, 300 * MS - 1, 1).0.allowed);
    }

    #[test]
    fn sliding_window_reset_after_covers_the_counts_that_still_matter() {
        let p = params(Algorithm::SlidingWindow, 10, 1_000);
        assert_eq!(
            p.sliding_window(0, 0, 0, 1).0.reset_after,
            Duration::from_secs(2)
        );
        // Denied with only a previous count: it expires at the window's end.
        let (denied, _) = p.sliding_window(10, 0, 100 * MS, 5);
        assert!(!denied.allowed);
        assert_eq!(denied.reset_after, Duration::from_millis(900));
        assert_eq!(denied.remaining, 1);
    }

    #[test]
    fn sliding_window_retry_moves_into_the_next_window_when_this_one_is_full() {
        let p = params(Algorithm::SlidingWindow, 10, 1_000);
        // This window already holds 10: only decay of those 10 in the next
        // window frees room; 1 unit fits once they weigh 9, at 100 ms.
        let (denied, _) = p.sliding_window(0, 10, 600 * MS, 1);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, Duration::from_millis(400 + 100));
        assert_eq!(denied.remaining, 0);
    }

    #[test]
    fn sliding_window_retry_waits_two_windows_when_the_cost_is_the_whole_limit() {
        let p = params(Algorithm::SlidingWindow, 10, 1_000);
        let (denied, _) = p.sliding_window(0, 1, 600 * MS, 10);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, Duration::from_millis(1_400));
    }

    #[test]
    fn fixed_window_counts_until_the_window_ends() {
        let p = params(Algorithm::FixedWindow, 3, 1_000);
        let (d, count) = p.fixed_window(0, 200 * MS, 2);
        assert!(d.allowed);
        assert_eq!(count, Some(2));
        assert_eq!(d.remaining, 1);
        assert_eq!(d.reset_after, Duration::from_millis(800));
        assert_eq!(d.retry_after, Duration::ZERO);
        let (denied, stored) = p.fixed_window(2, 300 * MS, 2);
        assert!(!denied.allowed);
        assert_eq!(stored, None);
        assert_eq!(denied.remaining, 1);
        assert_eq!(denied.retry_after, Duration::from_millis(700));
        assert_eq!(denied.reset_after, Duration::from_millis(700));
    }

    fn any_gcra() -> impl Strategy<Value = Params> {
        (1u64..=1_000, 1u64..=10_000, 1u64..=1_000).prop_map(|(limit, period_ms, burst)| {
            gcra_params(limit, period_ms, burst.min(limit * 2))
        })
    }

    proptest! {
        #[test]
        fn gcra_retry_after_is_exact(
            p in any_gcra(),
            stored in 0u64..20 * SEC,
            now in 0u64..20 * SEC,
            cost_seed in 1u64..=u64::MAX,
        ) {
            let cost = 1 + cost_seed % p.burst;
            let (decision, _) = p.gcra(stored, now, cost);
            if !decision.allowed {
                let retry = u64::try_from(decision.retry_after.as_nanos()).unwrap();
                prop_assert!(retry > 0);
                prop_assert!(p.gcra(stored, now + retry, cost).0.allowed);
                prop_assert!(!p.gcra(stored, now + retry - 1, cost).0.allowed);
            }
        }

        #[test]
        fn gcra_remaining_units_can_be_taken_at_once(
            limit in 1u64..=1_000,
            per_unit_ms in 1u64..=10,
            burst in 1u64..=1_000,
            stored in 0u64..20 * SEC,
            now in 0u64..20 * SEC,
        ) {
            // A whole number of nanoseconds per unit: remaining is exact.
            let p = gcra_params(limit, limit * per_unit_ms, burst);
            let (decision, tat) = p.gcra(stored, now, 1);
            let tat = tat.unwrap_or(stored);
            let remaining = decision.remaining;
            if remaining > 0 {
                prop_assert!(p.gcra(tat, now, remaining).0.allowed);
            }
            if remaining < p.burst {
                prop_assert!(!p.gcra(tat, now, remaining + 1).0.allowed);
            }
        }

        #[test]
        fn sliding_window_retry_after_is_exact(
            limit in 1u64..=100,
            period_ms in 1u64..=2_000,
            prev_seed in 0u64..=u64::MAX,
            cur_seed in 0u64..=u64::MAX,
            elapsed_seed in 0u64..=u64::MAX,
            cost_seed in 0u64..=u64::MAX,
        ) {
            let p = params(Algorithm::SlidingWindow, limit, period_ms);
            let (prev, cur) = (prev_seed % (limit + 1), cur_seed % (limit + 1));
            let elapsed = elapsed_seed % p.period_ns;
            let cost = 1 + cost_seed % limit;
            let (decision, _) = p.sliding_window(prev, cur, elapsed, cost);
            if decision.allowed {
                prop_assert_eq!(decision.retry_after, Duration::ZERO);
            } else {
                let retry = u64::try_from(decision.retry_after.as_nanos()).unwrap();
                prop_assert!(retry > 0);
                let (p1, c1, e1) = sliding_later(&p, prev, cur, elapsed, retry);
                prop_assert!(p.sliding_window(p1, c1, e1, cost).0.allowed);
                let (p0, c0, e0) = sliding_later(&p, prev, cur, elapsed, retry - 1);
                prop_assert!(!p.sliding_window(p0, c0, e0, cost).0.allowed);
            }
        }
    }
}
