//! Log set-up: one JSON object per line (what log pipelines ingest) or a readable
//! text format for a terminal.

use serde::Deserialize;
use std::io::BufWriter;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

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

/// Keeps the background log writer alive; drop it last (at exit) so every line
/// already logged reaches stderr.
#[must_use = "logs are lost if the guard is dropped early"]
#[derive(Debug)]
pub struct LogGuard(#[allow(dead_code)] WorkerGuard);

/// Installs the global subscriber. Call once, early; a second call is a no-op.
///
/// Lines are formatted on the calling thread and written by a background thread
/// through a buffer flushed after each burst, so a request never waits for a write
/// syscall. The queue applies back-pressure when full rather than dropping lines:
/// a security service must not lose its logs under load.
pub fn init_logging(config: &LoggingConfig) -> LogGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("palisade-log")
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    LogGuard(guard)
}
