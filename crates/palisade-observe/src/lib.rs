//! Observability: structured logs (JSON by default) and the Prometheus metrics registry.

mod logging;
mod metrics_registry;

pub use logging::{LogFormat, LogGuard, LoggingConfig, init_logging};
pub use metrics_registry::{Metrics, MetricsError};
