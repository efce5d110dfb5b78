//! Request counts and latency histograms by method, matched route and status, with
//! the metric handles kept per label set.
//!
//! `metrics::counter!(name, &labels)` builds a key from owned label strings, hashes
//! it and looks it up in the recorder's registry on every call. The label sets of a
//! server are few (routes × methods × statuses), so their handles are looked up
//! once and kept here; a request then costs one read-locked map lookup by route and
//! two atomic updates.

use axum::http::{Method, StatusCode};
use metrics::{Counter, Histogram};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

/// Requests served, by `method`, `route` and `status`.
pub const REQUESTS_TOTAL: &str = "palisade_http_requests_total";
/// Time to the response head, in seconds, by `method`, `route` and `status`.
pub const REQUEST_DURATION: &str = "palisade_http_request_duration_seconds";

/// Label sets kept at most. Methods are whatever a client sends, so the set is
/// bounded here; past it, requests are still counted, through the slower path.
const MAX_KEPT: usize = 4096;

/// The handles of one label set.
#[derive(Debug)]
struct Handles {
    method: Method,
    status: StatusCode,
    requests: Counter,
    duration: Histogram,
}

/// Handles by route, then a short list by method and status.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    by_route: RwLock<HashMap<Box<str>, Vec<Handles>>>,
    kept: AtomicUsize,
}

impl RequestMetrics {
    /// Counts one request and records its latency.
    pub fn record(&self, method: &Method, route: &str, status: StatusCode, latency: Duration) {
        let seconds = latency.as_secs_f64();
        {
            let by_route = self.by_route.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(handles) = by_route.get(route).and_then(|list| {
                list.iter()
                    .find(|h| h.status == status && h.method == method)
            }) {
                handles.requests.increment(1);
                handles.duration.record(seconds);
                return;
            }
        }
        let handles = register(method, route, status);
        handles.requests.increment(1);
        handles.duration.record(seconds);
        if self.kept.load(Ordering::Relaxed) >= MAX_KEPT {
            return;
        }
        let mut by_route = self
            .by_route
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let list = by_route.entry(route.into()).or_default();
        // Another request may have kept the same set meanwhile.
        if !list
            .iter()
            .any(|h| h.status == status && h.method == method)
        {
            list.push(handles);
            self.kept.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The recorder's handles of one label set (what the `metrics` macros look up).
fn register(method: &Method, route: &str, status: StatusCode) -> Handles {
    let labels = [
        ("method", method.as_str().to_owned()),
        ("route", route.to_owned()),
        ("status", status.as_str().to_owned()),
    ];
    Handles {
        method: method.clone(),
        status,
        requests: metrics::counter!(REQUESTS_TOTAL, &labels),
        duration: metrics::histogram!(REQUEST_DURATION, &labels),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::{CounterFn, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    /// Counts and samples by metric name and labels.
    #[derive(Debug, Default)]
    struct Totals(Mutex<BTreeMap<(String, String), (u64, usize)>>);

    /// One label set's slot in [`Totals`].
    struct Slot(Arc<Totals>, (String, String));

    impl CounterFn for Slot {
        fn increment(&self, value: u64) {
            let mut totals = self.0.0.lock().unwrap_or_else(PoisonError::into_inner);
            totals.entry(self.1.clone()).or_default().0 += value;
        }
        fn absolute(&self, _: u64) {}
    }

    impl HistogramFn for Slot {
        fn record(&self, _: f64) {
            let mut totals = self.0.0.lock().unwrap_or_else(PoisonError::into_inner);
            totals.entry(self.1.clone()).or_default().1 += 1;
        }
    }

    /// A recorder whose handles add to [`Totals`].
    struct Counting(Arc<Totals>);

    impl Counting {
        fn slot(&self, key: &Key) -> Arc<Slot> {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            Arc::new(Slot(
                self.0.clone(),
                (key.name().to_owned(), labels.join(",")),
            ))
        }
    }

    impl Recorder for Counting {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> metrics::Counter {
            metrics::Counter::from_arc(self.slot(key))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> metrics::Histogram {
            metrics::Histogram::from_arc(self.slot(key))
        }
    }

    /// The same counts and samples, label for label, as the per-request
    /// `metrics::counter!` calls this replaces: with kept handles and past the bound.
    #[test]
    fn records_what_per_request_label_sets_recorded() {
        let totals = Arc::new(Totals::default());
        let recorder = Counting(totals.clone());
        metrics::with_local_recorder(&recorder, || {
            let metrics = RequestMetrics::default();
            let ms = Duration::from_millis(1);
            metrics.record(&Method::GET, "/v1/whoami", StatusCode::OK, ms);
            metrics.record(&Method::GET, "/v1/whoami", StatusCode::OK, ms);
            metrics.record(&Method::GET, "/v1/whoami", StatusCode::UNAUTHORIZED, ms);
            metrics.record(&Method::POST, "/v1/whoami", StatusCode::OK, ms);
            metrics.kept.store(MAX_KEPT, Ordering::Relaxed);
            metrics.record(&Method::PUT, "unmatched", StatusCode::NOT_FOUND, ms);
            metrics.record(&Method::PUT, "unmatched", StatusCode::NOT_FOUND, ms);
            assert_eq!(metrics.kept.load(Ordering::Relaxed), MAX_KEPT);
        });
        let totals = totals.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut expected = BTreeMap::new();
        for (labels, n) in [
            ("method=GET,route=/v1/whoami,status=200", 2),
            ("method=GET,route=/v1/whoami,status=401", 1),
            ("method=POST,route=/v1/whoami,status=200", 1),
            ("method=PUT,route=unmatched,status=404", 2),
        ] {
            expected.insert((REQUESTS_TOTAL.to_owned(), labels.to_owned()), (n, 0));
            expected.insert(
                (REQUEST_DURATION.to_owned(), labels.to_owned()),
                (0, n as usize),
            );
        }
        assert_eq!(*totals, expected);
    }
}
