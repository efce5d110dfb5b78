//! OpenTelemetry trace export over OTLP/HTTP (protobuf), on only when
//! `[telemetry] otlp_endpoint` is set.
//!
//! Spans are the `tracing` spans Palisade already creates (the per-request span and
//! its children); `tracing-opentelemetry` turns them into OTel spans, a batch
//! processor queues them, and a background thread posts them to
//! `<otlp_endpoint>/v1/traces`. A request never waits for the collector: ending a
//! span is a non-blocking enqueue, and a full queue drops spans rather than stall.
//!
//! With the setting absent nothing here runs: no provider, no thread, no layer, and
//! [`join_caller_trace`] returns after one relaxed atomic load.

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HeaderExtractor, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};
use serde::Deserialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Longest one export request may take, connection and response included.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest shutdown waits for the last spans to reach the collector, so a dead
/// collector cannot hold up process exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Failed exports are logged at most this often: a collector that is down would
/// otherwise add a warning every few seconds.
const REPORT_EVERY: Duration = Duration::from_secs(60);
/// A collector's answer is a few bytes; anything larger is refused, not buffered.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Set once a subscriber with the OpenTelemetry layer is installed; read on every
/// request by [`join_caller_trace`], so export-off costs one atomic load.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// `[telemetry]` in `palisade.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP collector, e.g. `http://127.0.0.1:4318`; spans are
    /// posted to `<otlp_endpoint>/v1/traces`. Unset or empty: no trace export.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` resource attribute of exported spans.
    pub service_name: String,
    /// Share of new traces exported, 0.0 to 1.0. A request that carries a
    /// `traceparent` follows the caller's sampling decision instead, so a trace is
    /// never exported in part.
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "palisade".into(),
            sample_ratio: 1.0,
        }
    }
}

impl TelemetryConfig {
    /// The collector's base URL when export is on. An empty value counts as unset,
    /// so `PALISADE_TELEMETRY__OTLP_ENDPOINT=` turns export off from the environment.
    pub fn endpoint(&self) -> Option<&str> {
        self.otlp_endpoint
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// Checks every key; the error names the first one at fault (without its value,
    /// which could hold a secret).
    pub fn validate(&self) -> Result<(), TelemetryError> {
        if let Some(endpoint) = self.endpoint() {
            check_endpoint(endpoint).map_err(|message| TelemetryError::Invalid {
                key: "otlp_endpoint",
                message: message.into(),
            })?;
        }
        if self.service_name.trim().is_empty() || self.service_name.contains(['\n', '\r']) {
            return Err(TelemetryError::Invalid {
                key: "service_name",
                message: "must be one non-empty line".into(),
            });
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(TelemetryError::Invalid {
                key: "sample_ratio",
                message: "must be between 0.0 and 1.0".into(),
            });
        }
        Ok(())
    }
}

/// Why trace export cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A `[telemetry]` key has a value that cannot work.
    #[error("{key}: {message}")]
    Invalid {
        /// The key inside `[telemetry]`, e.g. `sample_ratio`.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The exporter could not be built (e.g. no root certificates for an https
    /// collector).
    #[error("cannot start trace export: {0}")]
    Exporter(String),
}

/// An http or https URL with a host, no credentials and no query: the exporter
/// appends `/v1/traces` to it, and a password in it would end up in error messages.
fn check_endpoint(raw: &str) -> Result<(), &'static str> {
    let uri: http::Uri = raw.parse().map_err(|_| "not a URL")?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("must be an http:// or https:// URL (OTLP over HTTP)");
    }
    let Some(authority) = uri.authority() else {
        return Err("must name a host");
    };
    if authority.as_str().contains('@') {
        return Err("must not carry credentials; use OTEL_EXPORTER_OTLP_HEADERS");
    }
    if authority.host().is_empty() {
        return Err("must name a host");
    }
    if uri.query().is_some() {
        return Err("must not have a query string");
    }
    Ok(())
}

/// Makes `span` a child of the caller's span named by the W3C `traceparent` (and
/// `tracestate`) in `headers`, so the exported trace joins the caller's. Call it
/// right after creating the span, before it is first entered.
///
/// A no-op when trace export is off, when the header is absent or malformed (the
/// span then starts a new trace), or when the span is disabled.
pub fn join_caller_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if !EXPORTING.load(Ordering::Relaxed) || !headers.contains_key("traceparent") {
        return;
    }
    set_parent_from(span, headers);
}

fn set_parent_from(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    // Fails only when the span is disabled or already started; either way it keeps
    // its own trace, which is the right fallback.
    let _ = span.set_parent(parent);
}

/// Marks the OpenTelemetry layer as installed, turning [`join_caller_trace`] on.
pub(crate) fn mark_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// A started exporter: the tracer provider whose batch thread posts spans.
#[derive(Debug)]
pub(crate) struct TraceExport {
    provider: SdkTracerProvider,
    traces_url: String,
}

impl TraceExport {
    /// Starts export when `config` names an endpoint; `Ok(None)` when it does not.
    pub(crate) fn start(config: &TelemetryConfig) -> Result<Option<Self>, TelemetryError> {
        let Some(endpoint) = config.endpoint() else {
            return Ok(None);
        };
        config.validate()?;
        let traces_url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let https = endpoint
            .parse::<http::Uri>()
            .is_ok_and(|uri| uri.scheme_str() == Some("https"));
        let client = ExportClient::new(https)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(traces_url.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        Ok(Some(Self {
            provider: provider(ReportingExporter::new(exporter), config),
            traces_url,
        }))
    }

    /// The tracer the `tracing` layer creates spans with.
    pub(crate) fn tracer(&self) -> SdkTracer {
        self.provider.tracer("palisade")
    }

    /// Where spans go.
    pub(crate) fn traces_url(&self) -> &str {
        &self.traces_url
    }

    /// The guard that flushes and stops export when dropped.
    pub(crate) fn into_guard(self) -> TraceGuard {
        TraceGuard(self.provider)
    }
}

/// The provider: a batch processor over `exporter`, parent-based ratio sampling,
/// and the `service.*` resource. The `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_BSP_*`
/// variables still apply, for what this configuration does not cover.
fn provider<E: SpanExporter + 'static>(exporter: E, config: &TelemetryConfig) -> SdkTracerProvider {
    // The workspace gives every crate one version, so this is the binary's.
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).build())
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_resource(resource)
        .build()
}

/// Flushes pending spans and stops the export thread when dropped, waiting at most
/// [`SHUTDOWN_TIMEOUT`].
#[derive(Debug)]
pub(crate) struct TraceGuard(SdkTracerProvider);

impl Drop for TraceGuard {
    fn drop(&mut self) {
        if let Err(e) = self.0.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(error = %e, "trace export did not flush before shutdown");
        }
    }
}

/// Wraps the OTLP exporter to log failed exports, at most once per [`REPORT_EVERY`]
/// with the count since the last report. (The SDK's own diagnostics are compiled
/// out: they would log every failed batch.)
#[derive(Debug)]
struct ReportingExporter<E> {
    inner: E,
    report: Mutex<FailureReport>,
}

#[derive(Debug, Default)]
struct FailureReport {
    last_logged: Option<Instant>,
    failed_since: u64,
}

impl<E> ReportingExporter<E> {
    fn new(inner: E) -> Self {
        Self {
            inner,
            report: Mutex::new(FailureReport::default()),
        }
    }

    /// Counts a failure; returns the count to log when a report is due.
    fn failed(&self, now: Instant) -> Option<u64> {
        let mut report = self.report.lock().unwrap_or_else(PoisonError::into_inner);
        report.failed_since += 1;
        let due = report
            .last_logged
            .is_none_or(|at| now.saturating_duration_since(at) >= REPORT_EVERY);
        due.then(|| {
            report.last_logged = Some(now);
            std::mem::take(&mut report.failed_since)
        })
    }
}

impl<E: SpanExporter> SpanExporter for ReportingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        if let Err(e) = &result
            && let Some(failed_exports) = self.failed(Instant::now())
        {
            tracing::warn!(
                error = %e,
                spans,
                failed_exports,
                "trace export failed; those spans are dropped (logged at most once a minute)"
            );
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The exporter's HTTP client: hyper over TCP or rustls (aws-lc-rs, the system's
/// roots), driven by a small runtime of its own.
///
/// The SDK exports from a plain background thread through
/// `futures_executor::block_on`, where no Tokio reactor runs; this client brings
/// its own single-threaded runtime, created on that thread at the first export.
/// It never touches the server's runtime, so export keeps working while the server
/// drains and cannot deadlock it.
#[derive(Debug)]
struct ExportClient {
    client: Client<Connector, Full<Bytes>>,
    runtime: OnceLock<Result<tokio::runtime::Runtime, String>>,
}

impl ExportClient {
    fn new(https: bool) -> Result<Self, TelemetryError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = if https {
            builder
                .with_provider_and_native_roots(provider)
                .map_err(|e| {
                    TelemetryError::Exporter(format!("loading the system's root certificates: {e}"))
                })?
        } else {
            // Plain http never uses TLS, so no roots are loaded: a slim container
            // may have none, and that must not stop a local collector from working.
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            builder.with_tls_config(tls)
        };
        let connector = builder.https_or_http().enable_http1().build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            runtime: OnceLock::new(),
        })
    }

    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let response = self.client.request(request.map(Full::new)).await?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await?
            .to_bytes();
        Ok(Response::from_parts(parts, body))
    }
}

#[async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            // Blocking on a runtime from inside another one would panic; the SDK's
            // batch thread never does this, so refuse rather than crash.
            return Err("the OTLP client must not be driven from a Tokio runtime".into());
        }
        let runtime = self.runtime.get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name("palisade-otlp")
                .build()
                .map_err(|e| e.to_string())
        });
        let runtime = runtime
            .as_ref()
            .map_err(|e| format!("cannot start the OTLP client runtime: {e}"))?;
        runtime.block_on(async {
            tokio::time::timeout(EXPORT_TIMEOUT, self.send(request))
                .await
                .map_err(|_| HttpError::from("OTLP export timed out"))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceId};
    use tracing_subscriber::layer::SubscriberExt as _;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn config(endpoint: Option<&str>) -> TelemetryConfig {
        TelemetryConfig {
            otlp_endpoint: endpoint.map(str::to_owned),
            ..TelemetryConfig::default()
        }
    }

    fn key_at_fault(config: &TelemetryConfig) -> Option<&'static str> {
        match config.validate() {
            Err(TelemetryError::Invalid { key, .. }) => Some(key),
            _ => None,
        }
    }

    #[test]
    fn accepts_http_and_https_collectors_and_treats_empty_as_off() {
        for good in [
            "http://127.0.0.1:4318",
            "https://otel.example.com/",
            "https://otel.example.com/prefix",
        ] {
            assert_eq!(key_at_fault(&config(Some(good))), None, "{good}");
        }
        assert_eq!(config(Some("  ")).endpoint(), None);
        assert_eq!(config(None).endpoint(), None);
        assert_eq!(key_at_fault(&config(Some(""))), None);
    }

    #[test]
    fn rejects_endpoints_that_are_not_plain_http_urls() {
        for bad in [
            "127.0.0.1:4318",
            "grpc://127.0.0.1:4317",
            "ftp://collector",
            "http://user:hunter2@collector:4318",
            "http://collector:4318/?token=x",
            "not a url",
        ] {
            assert_eq!(
                key_at_fault(&config(Some(bad))),
                Some("otlp_endpoint"),
                "{bad}"
            );
            let message = config(Some(bad))
                .validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!message.contains("hunter2"), "{message}");
        }
    }

    #[test]
    fn rejects_a_sample_ratio_outside_zero_to_one_and_an_empty_service_name() {
        for bad in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
            let config = TelemetryConfig {
                sample_ratio: bad,
                ..TelemetryConfig::default()
            };
            assert_eq!(key_at_fault(&config), Some("sample_ratio"), "{bad}");
        }
        let config = TelemetryConfig {
            service_name: " ".into(),
            ..TelemetryConfig::default()
        };
        assert_eq!(key_at_fault(&config), Some("service_name"));
    }

    #[test]
    fn start_without_an_endpoint_starts_nothing() {
        assert!(matches!(TraceExport::start(&config(None)), Ok(None)));
    }

    #[test]
    fn failures_are_reported_at_most_once_a_minute_with_the_count() {
        let exporter = ReportingExporter::new(());
        let t0 = Instant::now();
        assert_eq!(exporter.failed(t0), Some(1));
        assert_eq!(exporter.failed(t0 + Duration::from_secs(5)), None);
        assert_eq!(exporter.failed(t0 + Duration::from_secs(30)), None);
        assert_eq!(exporter.failed(t0 + REPORT_EVERY), Some(3));
    }

    /// Keeps exported spans in memory.
    #[derive(Debug, Clone, Default)]
    struct Collect(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Collect {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(batch);
            Ok(())
        }
    }

    /// Runs `f` under a subscriber that exports to memory with `ratio`, then
    /// returns the exported spans.
    fn exported(ratio: f64, f: impl FnOnce()) -> Vec<SpanData> {
        let sink = Collect::default();
        let config = TelemetryConfig {
            sample_ratio: ratio,
            ..TelemetryConfig::default()
        };
        let provider = provider(sink.clone(), &config);
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f);
        let _ = provider.force_flush();
        let _ = provider.shutdown();
        let spans = sink.0.lock().unwrap_or_else(PoisonError::into_inner);
        spans.clone()
    }

    fn headers(traceparent: &'static str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", http::HeaderValue::from_static(traceparent));
        headers
    }

    #[test]
    fn a_request_span_joins_the_callers_trace_and_its_children_follow() {
        let spans = exported(1.0, || {
            let span = tracing::info_span!("request");
            set_parent_from(&span, &headers(TRACEPARENT));
            span.in_scope(|| tracing::info_span!("child").in_scope(|| {}));
        });
        let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").ok();
        let caller = SpanId::from_hex("00f067aa0ba902b7").ok();
        let request = spans.iter().find(|s| s.name == "request");
        let child = spans.iter().find(|s| s.name == "child");
        assert_eq!(request.map(|s| s.span_context.trace_id()), trace);
        assert_eq!(request.map(|s| s.parent_span_id), caller);
        assert_eq!(child.map(|s| s.span_context.trace_id()), trace);
        assert_eq!(
            child.map(|s| s.parent_span_id),
            request.map(|s| s.span_context.span_id())
        );
    }

    #[test]
    fn sampling_follows_the_caller_and_the_ratio_applies_to_new_traces() {
        // Ratio 0 drops new traces but keeps one the caller sampled...
        let spans = exported(0.0, || {
            let joined = tracing::info_span!("joined");
            set_parent_from(&joined, &headers(TRACEPARENT));
            joined.in_scope(|| {});
            tracing::info_span!("new").in_scope(|| {});
        });
        let names: Vec<_> = spans.iter().map(|s| s.name.as_ref()).collect();
        assert_eq!(names, ["joined"]);
        // ...and ratio 1 keeps new traces but drops one the caller did not sample.
        let spans = exported(1.0, || {
            let joined = tracing::info_span!("joined");
            set_parent_from(
                &joined,
                &headers("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
            );
            joined.in_scope(|| {});
            tracing::info_span!("new").in_scope(|| {});
        });
        let names: Vec<_> = spans.iter().map(|s| s.name.as_ref()).collect();
        assert_eq!(names, ["new"]);
    }

    #[test]
    fn a_dead_collector_neither_blocks_spans_nor_holds_up_shutdown() {
        // A port nothing listens on: every export fails with connection refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(9);
        let endpoint = format!("http://127.0.0.1:{port}");
        let export = TraceExport::start(&config(Some(&endpoint)));
        let Ok(Some(export)) = export else {
            panic!("export should start: {export:?}");
        };
        assert_eq!(export.traces_url(), format!("{endpoint}/v1/traces"));
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(export.tracer()));
        let started = Instant::now();
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..5_000 {
                tracing::info_span!("request").in_scope(|| {});
            }
        });
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "ending spans must not wait for the collector: {:?}",
            started.elapsed()
        );
        let stopping = Instant::now();
        drop(export.into_guard());
        assert!(
            stopping.elapsed() < SHUTDOWN_TIMEOUT + Duration::from_secs(2),
            "shutdown is bounded: {:?}",
            stopping.elapsed()
        );
    }
}
