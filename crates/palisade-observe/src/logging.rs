//! Log set-up: one JSON object per line (what log pipelines ingest) or a readable
//! text format for a terminal; plus, when configured, the layer that turns spans
//! into OpenTelemetry spans for export (see `tracing_export`).

use crate::json_lines::JsonLines;
use crate::line_writer::{LineWriter, LineWriterGuard};
use crate::tracing_export::{self, TelemetryConfig, TelemetryError, TraceExport, TraceGuard};
use opentelemetry_sdk::trace::SdkTracer;
use serde::Deserialize;
use tracing_subscriber::layer::{Layered, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt};

/// The log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable text.
    Text,
}

/// `[log]` in `palisade.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// Line format.
    pub format: LogFormat,
    /// An `EnvFilter` directive, e.g. `info` or `info,palisade_http=debug`. `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            level: "info".into(),
        }
    }
}

/// Keeps the background log writer and, when trace export is on, the tracer
/// provider alive. Drop it last (at exit): it first flushes pending spans (waiting
/// a few seconds at most), then every log line already written reaches stderr.
#[must_use = "logs and spans are lost if the guard is dropped early"]
#[derive(Debug)]
pub struct ObservabilityGuard {
    // Fields drop in order: spans are flushed while the log writer still runs, so
    // a failed flush can still be logged.
    _traces: Option<TraceGuard>,
    _logs: Option<LineWriterGuard>,
}

/// Installs the global subscriber with logs only. Call once, early; a second call
/// is a no-op. Same as [`init_observability`] with trace export off.
pub fn init_logging(config: &LoggingConfig) -> ObservabilityGuard {
    install(config, None)
}

/// Installs the global subscriber: logs as [`init_logging`] does, plus OTLP trace
/// export when `telemetry` names an endpoint. Call once, early; a second call
/// installs nothing and starts no exporter.
///
/// Lines are formatted on the calling thread (JSON by [`JsonLines`], which renders a
/// span's fields once rather than per line) and written by a background thread
/// that gathers them for a millisecond, so a request never waits for a write
/// syscall nor wakes a thread per line (see `line_writer`). The buffer applies
/// back-pressure when full rather than dropping lines: a security service must not
/// lose its logs under load. Spans, in contrast, are
/// dropped when the export queue is full: a slow collector must never slow requests.
pub fn init_observability(
    log: &LoggingConfig,
    telemetry: &TelemetryConfig,
) -> Result<ObservabilityGuard, TelemetryError> {
    Ok(install(log, TraceExport::start(telemetry)?))
}

fn install(config: &LoggingConfig, export: Option<TraceExport>) -> ObservabilityGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = match LineWriter::start(std::io::stderr(), "palisade-log") {
        Ok((writer, guard)) => (LogOutput::Background(writer), Some(guard)),
        // No thread to be had: write each line to stderr directly rather than lose it.
        Err(_) => (LogOutput::Direct, None),
    };
    let tracer = export.as_ref().map(TraceExport::tracer);
    let installed = match (config.format, writer) {
        (LogFormat::Json, LogOutput::Background(writer)) => {
            try_install(filter, JsonLines::new(writer), tracer)
        }
        (LogFormat::Json, LogOutput::Direct) => {
            try_install(filter, JsonLines::new(std::io::stderr), tracer)
        }
        // As the `fmt()` builder used before did: report a failed write on stderr.
        (LogFormat::Text, LogOutput::Background(writer)) => try_install(
            filter,
            fmt::layer().log_internal_errors(true).with_writer(writer),
            tracer,
        ),
        (LogFormat::Text, LogOutput::Direct) => try_install(
            filter,
            fmt::layer()
                .log_internal_errors(true)
                .with_writer(std::io::stderr),
            tracer,
        ),
    };
    let traces = match export {
        Some(export) if installed => {
            tracing_export::mark_exporting();
            tracing::info!(url = export.traces_url(), "exporting traces over OTLP");
            Some(export.into_guard())
        }
        Some(export) => {
            // Another subscriber was installed first: no span reaches this
            // exporter, so stop its thread now rather than keep it idle.
            drop(export.into_guard());
            None
        }
        None => None,
    };
    ObservabilityGuard {
        _traces: traces,
        _logs: guard,
    }
}

/// Where formatted lines go.
enum LogOutput {
    Background(LineWriter),
    Direct,
}

/// Installs `filter`, then `fmt_layer`, then the OpenTelemetry layer when there is
/// a tracer. Generic over the format so each combination is a concrete type, as the
/// single `fmt()` subscriber was before: no boxed layer, and with export off not
/// even an empty OpenTelemetry layer.
fn try_install<F>(filter: EnvFilter, fmt_layer: F, tracer: Option<SdkTracer>) -> bool
where
    F: Layer<Layered<EnvFilter, Registry>> + Send + Sync + 'static,
{
    let base = tracing_subscriber::registry().with(filter).with(fmt_layer);
    match tracer {
        Some(tracer) => base
            .with(tracing_opentelemetry::layer().with_tracer(tracer))
            .try_init()
            .is_ok(),
        None => base.try_init().is_ok(),
    }
}
