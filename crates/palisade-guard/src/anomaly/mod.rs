//! Anomaly detection: a streaming baseline per key (client address, subject,
//! API key, route) of three counts per interval (requests, errors, denials),
//! and an alert when the interval in progress is far above its baseline.
//!
//! There is no fixed threshold of requests per second: a key is compared with
//! its own history. Each count's baseline is an exponentially weighted mean and
//! variance over finished intervals (see `baseline.rs`); the interval in
//! progress alerts as soon as its count is `z_threshold` standard deviations
//! above the mean, once per metric and interval, so a flood is reported while
//! it happens rather than after. Two guards keep this quiet on small numbers:
//! a key alerts only after `warmup_intervals` of history, and only when the
//! count is at least `min_count`.
//!
//! Memory is bounded by `max_keys` (see `keys.rs`): a flood of new keys evicts
//! old ones rather than growing the map.

mod baseline;
mod keys;

use baseline::{Baseline, METRICS};
use keys::Keys;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a key identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// A client address.
    Ip,
    /// An account or token subject.
    Subject,
    /// An API key id.
    ApiKey,
    /// A route (method and path template).
    Route,
}

/// A key whose baseline is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AnomalyKey {
    /// What it identifies.
    pub kind: KeyKind,
    /// Its value (an address, a subject, ...).
    pub value: String,
}

impl AnomalyKey {
    /// A key of `kind` with `value`.
    pub fn new(kind: KeyKind, value: impl Into<String>) -> Self {
        Self {
            kind,
            value: value.into(),
        }
    }
}

/// What came of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered normally.
    Ok,
    /// Failed (a 5xx, or a 4xx that is not a denial).
    Error,
    /// Refused: not authenticated, not allowed or rate limited (401, 403, 429).
    Denied,
}

impl Outcome {
    /// The outcome of an HTTP status code.
    pub fn of_status(status: u16) -> Self {
        match status {
            401 | 403 | 429 => Self::Denied,
            400..=599 => Self::Error,
            _ => Self::Ok,
        }
    }
}

/// The metric that spiked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Requests per interval.
    RequestRate,
    /// Errors per interval.
    ErrorRate,
    /// Denials per interval.
    DenialRate,
}

const METRIC_ORDER: [Metric; METRICS] =
    [Metric::RequestRate, Metric::ErrorRate, Metric::DenialRate];

/// A spike: a count far above its key's baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyAlert {
    /// The key.
    pub key: AnomalyKey,
    /// Which count.
    pub metric: Metric,
    /// The count so far in the interval in progress.
    pub observed: u64,
    /// The baseline's mean count per interval.
    pub mean: f64,
    /// The baseline's standard deviation (with its Poisson floor).
    pub std: f64,
    /// `(observed - mean) / std`.
    pub z: f64,
    /// Start of the interval (Unix ms).
    pub interval_start_ms: i64,
    /// Length of an interval (ms).
    pub interval_ms: u64,
}

/// Tuning of the detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalySettings {
    /// Length of one interval, ms.
    pub interval_ms: u64,
    /// Weight of the newest interval in the baseline (0 < alpha <= 1); 0.1
    /// means the baseline remembers about the last 10-20 intervals.
    pub alpha: f64,
    /// Standard deviations above the mean that make an alert.
    pub z_threshold: f64,
    /// Finished intervals a key needs before it can alert.
    pub warmup_intervals: u32,
    /// Smallest count that can alert.
    pub min_count: u64,
    /// Most keys kept; beyond it the least recently seen are evicted.
    pub max_keys: usize,
}

impl Default for AnomalySettings {
    fn default() -> Self {
        Self {
            interval_ms: 10_000,
            alpha: 0.1,
            z_threshold: 6.0,
            warmup_intervals: 12,
            min_count: 20,
            max_keys: 100_000,
        }
    }
}

impl AnomalySettings {
    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), crate::GuardError> {
        use crate::GuardError as E;
        if !(1_000..=3_600_000).contains(&self.interval_ms) {
            return Err(E::invalid(
                "interval_ms",
                "must be between 1000 and 3600000",
            ));
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(E::invalid("alpha", "must be in (0, 1]"));
        }
        if !(self.z_threshold.is_finite() && self.z_threshold >= 1.0) {
            return Err(E::invalid("z_threshold", "must be at least 1"));
        }
        if self.max_keys == 0 {
            return Err(E::invalid("max_keys", "must be at least 1"));
        }
        Ok(())
    }
}

/// Empty intervals folded in at most when a key comes back after a pause.
const MAX_GAP: u32 = 64;

/// Per-key baselines and spike alerts. Shareable across threads.
#[derive(Debug)]
pub struct AnomalyDetector {
    settings: AnomalySettings,
    keys: Keys<AnomalyKey>,
    evicted: AtomicU64,
}

impl AnomalyDetector {
    /// A detector with `settings` (validate them first).
    pub fn new(settings: AnomalySettings) -> Self {
        Self {
            keys: Keys::new(settings.max_keys),
            settings,
            evicted: AtomicU64::new(0),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &AnomalySettings {
        &self.settings
    }

    /// Counts one request of `key` with `outcome` at `now_ms`; returns the
    /// alerts it raised (at most one per metric, key and interval).
    pub fn observe(&self, key: &AnomalyKey, outcome: Outcome, now_ms: i64) -> Vec<AnomalyAlert> {
        let s = &self.settings;
        let interval_ms = i64::try_from(s.interval_ms).unwrap_or(i64::MAX).max(1);
        let interval = now_ms.div_euclid(interval_ms);
        let (alerts, evicted) = self.keys.with(
            key,
            || Baseline::new(interval, now_ms),
            |b| {
                b.advance(interval, s.alpha, s.z_threshold, MAX_GAP);
                b.last_seen_ms = b.last_seen_ms.max(now_ms);
                // A late event for an interval already folded in counts in
                // the current one.
                b.counts[0] += 1;
                match outcome {
                    Outcome::Ok => {}
                    Outcome::Error => b.counts[1] += 1,
                    Outcome::Denied => b.counts[2] += 1,
                }
                let mut alerts = Vec::new();
                if b.seen < s.warmup_intervals {
                    return alerts;
                }
                for (i, metric) in METRIC_ORDER.iter().enumerate() {
                    let bit = 1u8 << i;
                    let (Some(&count), Some(stat)) = (b.counts.get(i), b.stats.get(i)) else {
                        continue;
                    };
                    if b.alerted & bit != 0 || count < s.min_count {
                        continue;
                    }
                    let z = stat.z(count as f64);
                    if z >= s.z_threshold {
                        b.alerted |= bit;
                        alerts.push(AnomalyAlert {
                            key: key.clone(),
                            metric: *metric,
                            observed: count,
                            mean: stat.mean,
                            std: stat.std(),
                            z,
                            interval_start_ms: b.interval * interval_ms,
                            interval_ms: s.interval_ms,
                        });
                    }
                }
                alerts
            },
        );
        if evicted {
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        for alert in &alerts {
            metrics::counter!("palisade_anomaly_alerts_total", "metric" => metric_name(alert.metric))
                .increment(1);
        }
        alerts
    }

    /// Keys with a baseline now.
    pub fn tracked(&self) -> usize {
        self.keys.len()
    }

    /// The most keys ever tracked.
    pub fn capacity(&self) -> usize {
        self.keys.capacity()
    }

    /// Keys evicted to make room so far.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Drops keys unseen for `idle_ms`; returns how many.
    pub fn evict_idle(&self, now_ms: i64, idle_ms: i64) -> usize {
        self.keys.evict_idle(now_ms.saturating_sub(idle_ms))
    }
}

fn metric_name(metric: Metric) -> &'static str {
    match metric {
        Metric::RequestRate => "request_rate",
        Metric::ErrorRate => "error_rate",
        Metric::DenialRate => "denial_rate",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000;

    fn detector() -> AnomalyDetector {
        AnomalyDetector::new(AnomalySettings {
            interval_ms: 10_000,
            warmup_intervals: 6,
            min_count: 10,
            ..AnomalySettings::default()
        })
    }

    /// `per_interval` requests of `key` in each of `intervals` intervals from
    /// `start`, returning the alerts.
    fn feed(
        d: &AnomalyDetector,
        key: &AnomalyKey,
        start: i64,
        intervals: i64,
        per_interval: u64,
        outcome: Outcome,
    ) -> Vec<AnomalyAlert> {
        let mut alerts = Vec::new();
        for i in 0..intervals {
            for r in 0..per_interval {
                let at = start + i * 10 * SECOND + (r as i64 * 10 * SECOND) / per_interval as i64;
                alerts.extend(d.observe(key, outcome, at));
            }
        }
        alerts
    }

    #[test]
    fn a_steady_key_never_alerts_and_a_spike_alerts_once_per_interval() {
        let d = detector();
        let key = AnomalyKey::new(KeyKind::Ip, "192.0.2.1");
        // 30 requests per 10 s for 20 intervals, with a little jitter.
        let mut alerts = Vec::new();
        for i in 0..20 {
            alerts.extend(feed(
                &d,
                &key,
                i * 10 * SECOND,
                1,
                28 + (i as u64 % 5),
                Outcome::Ok,
            ));
        }
        assert!(alerts.is_empty(), "{alerts:?}");
        // Ten times the usual traffic in the next interval.
        let spike = feed(&d, &key, 200 * SECOND, 1, 300, Outcome::Ok);
        assert_eq!(spike.len(), 1, "{spike:?}");
        assert_eq!(spike[0].metric, Metric::RequestRate);
        assert!(spike[0].z >= 6.0);
        assert!(
            spike[0].observed < 300,
            "alerted while the spike was under way"
        );
        assert_eq!(spike[0].interval_start_ms, 200 * SECOND);
    }

    #[test]
    fn the_threshold_follows_each_keys_own_history() {
        let d = detector();
        let busy = AnomalyKey::new(KeyKind::Route, "GET /v1/things");
        let quiet = AnomalyKey::new(KeyKind::Route, "POST /v1/admin");
        assert!(feed(&d, &busy, 0, 10, 500, Outcome::Ok).is_empty());
        assert!(feed(&d, &quiet, 0, 10, 2, Outcome::Ok).is_empty());
        // 600 is ordinary for the busy route, a flood for the quiet one.
        assert!(feed(&d, &busy, 100 * SECOND, 1, 600, Outcome::Ok).is_empty());
        assert!(!feed(&d, &quiet, 100 * SECOND, 1, 600, Outcome::Ok).is_empty());
    }

    #[test]
    fn denial_and_error_spikes_are_their_own_metrics() {
        let d = detector();
        let key = AnomalyKey::new(KeyKind::Subject, "alice");
        assert!(feed(&d, &key, 0, 10, 20, Outcome::Ok).is_empty());
        let denied = feed(&d, &key, 100 * SECOND, 1, 25, Outcome::Denied);
        let metrics: Vec<Metric> = denied.iter().map(|a| a.metric).collect();
        assert_eq!(metrics, [Metric::DenialRate]);
        let errors = feed(&d, &key, 110 * SECOND, 1, 25, Outcome::Error);
        assert_eq!(
            errors.iter().map(|a| a.metric).collect::<Vec<_>>(),
            [Metric::ErrorRate]
        );
    }

    #[test]
    fn no_alert_before_warm_up_or_below_the_minimum_count() {
        let d = detector();
        let key = AnomalyKey::new(KeyKind::ApiKey, "key-1");
        assert!(feed(&d, &key, 0, 3, 1, Outcome::Ok).is_empty());
        assert!(
            feed(&d, &key, 30 * SECOND, 1, 500, Outcome::Ok).is_empty(),
            "still warming up"
        );
        let other = AnomalyKey::new(KeyKind::ApiKey, "key-2");
        assert!(feed(&d, &other, 0, 10, 0, Outcome::Ok).is_empty());
        assert!(feed(&d, &other, 0, 10, 1, Outcome::Ok).is_empty());
        assert!(
            feed(&d, &other, 100 * SECOND, 1, 9, Outcome::Ok).is_empty(),
            "under min_count"
        );
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_new_keys() {
        let d = AnomalyDetector::new(AnomalySettings {
            max_keys: 1_000,
            ..AnomalySettings::default()
        });
        assert_eq!(d.capacity(), 1_008, "1000 rounded up to 16 shards of 63");
        for i in 0..100_000u32 {
            let key = AnomalyKey::new(KeyKind::Ip, std::net::Ipv4Addr::from(i).to_string());
            d.observe(&key, Outcome::Ok, i64::from(i));
            assert!(d.tracked() <= d.capacity());
        }
        assert!(
            d.tracked() > 900,
            "the map stays nearly full: {}",
            d.tracked()
        );
        assert_eq!(d.evicted(), 100_000 - d.tracked() as u64);
        let tracked = d.tracked();
        assert_eq!(d.evict_idle(200_000, 100_000), tracked);
        assert_eq!(d.tracked(), 0);
    }

    #[test]
    fn settings_are_validated() {
        assert!(AnomalySettings::default().validate().is_ok());
        let bad = AnomalySettings {
            alpha: 0.0,
            ..AnomalySettings::default()
        };
        assert!(bad.validate().is_err());
        let bad = AnomalySettings {
            interval_ms: 10,
            ..AnomalySettings::default()
        };
        assert!(bad.validate().is_err());
    }
}
