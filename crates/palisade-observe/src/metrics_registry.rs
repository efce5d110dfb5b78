//! The process-wide metrics recorder and its Prometheus rendering.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Buckets for request latency, in seconds: fine below 10 ms, where Palisade's own
/// endpoints live, and coarse up to 10 s for slow dependencies.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Why the metrics recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the metrics recorder: {0}")]
pub struct MetricsError(String);

/// A handle that renders every metric recorded in this process.
#[derive(Debug, Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

static INSTALLED: OnceLock<Metrics> = OnceLock::new();

impl Metrics {
    /// Installs the global recorder on first call and returns it on every call, so
    /// tests that build several servers in one process share one registry.
    pub fn install() -> Result<Self, MetricsError> {
        if let Some(metrics) = INSTALLED.get() {
            return Ok(metrics.clone());
        }
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), LATENCY_BUCKETS)
            .map_err(|e| MetricsError(e.to_string()))?
            .build_recorder();
        let handle = recorder.handle();
        let metrics = INSTALLED.get_or_init(|| {
            // Only the first caller's recorder becomes global; OnceLock makes that one call.
            let _ = metrics::set_global_recorder(recorder);
            Self { handle }
        });
        Ok(metrics.clone())
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram samples older than the exporter's window; call periodically.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}
