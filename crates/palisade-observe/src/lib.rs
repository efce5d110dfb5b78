//! Observability: structured logs (JSON by default), the Prometheus metrics
//! registry, and OpenTelemetry trace export over OTLP/HTTP when configured.

mod json_lines;
mod json_text;
mod line_writer;
mod logging;
mod metrics_registry;
mod tracing_export;

pub use json_lines::JsonLines;
pub use line_writer::{LineHandle, LineWriter, LineWriterGuard};
pub use logging::{LogFormat, LoggingConfig, ObservabilityGuard, init_logging, init_observability};
pub use metrics_registry::{Metrics, MetricsError};
pub use tracing_export::{TelemetryConfig, TelemetryError, join_caller_trace};
