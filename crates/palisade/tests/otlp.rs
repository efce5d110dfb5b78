//! OTLP trace export from the real binary: with `[telemetry] otlp_endpoint` set, a
//! request's span reaches a collector on shutdown, inside the caller's trace, with
//! the service's name; without it, nothing is sent anywhere.

mod support;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use prost::Message as _;
use std::collections::HashMap;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Server, printed_key};

/// What the fake collector received: request path, content type, body.
type Received = Arc<Mutex<Vec<(String, String, Bytes)>>>;

/// A minimal OTLP/HTTP collector on a free loopback port that records every POST.
async fn collector() -> (String, Received) {
    let received = Received::default();
    let app = Router::new().fallback(record).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the collector");
    let addr = listener.local_addr().expect("collector address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

async fn record(
    State(received): State<Received>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let path = uri.path().to_owned();
    let known = path == "/v1/traces";
    received
        .lock()
        .expect("lock")
        .push((path, content_type, body));
    // An empty ExportTraceServiceResponse is an empty protobuf message.
    if known {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

fn snapshot(received: &Received) -> Vec<(String, String, Bytes)> {
    received.lock().expect("lock").clone()
}

/// Waits for exit without blocking the runtime the collector runs on.
async fn exit_within(server: &mut Server, within: Duration) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            return status;
        }
        assert!(
            started.elapsed() < within,
            "palisade did not exit within {within:?}:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fresh W3C trace id and parent span id, as hex.
fn trace_and_span_ids() -> (String, String) {
    let trace = uuid::Uuid::now_v7().simple().to_string();
    let span = uuid::Uuid::now_v7().simple().to_string()[16..].to_owned();
    (trace, span)
}

fn string_attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// Starts a first-start server with `env`, sends one authenticated request with
/// `traceparent`, stops it with SIGTERM and returns the admin key.
async fn serve_one_traced_request(
    dir: &std::path::Path,
    env: HashMap<String, String>,
    traceparent: &str,
) -> String {
    let mut server = Server::start(dir, env);
    server.wait_ready(200).await;
    let key = printed_key(&server.stdout()).expect("the admin key is printed on first start");
    let response = support::http_client()
        .get(format!("{}/v1/api-keys", server.base))
        .bearer_auth(&key)
        .header("traceparent", traceparent)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    // SIGTERM: drain, then flush pending spans before exit.
    server.signal("TERM");
    let status = exit_within(&mut server, Duration::from_secs(20)).await;
    assert!(status.success(), "{}", server.stderr());
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_the_request_span_inside_the_callers_trace_on_shutdown() {
    let (endpoint, received) = collector().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (trace_id, parent_id) = trace_and_span_ids();
    let env = HashMap::from([
        ("PALISADE_TELEMETRY__OTLP_ENDPOINT".to_owned(), endpoint),
        (
            "PALISADE_TELEMETRY__SERVICE_NAME".to_owned(),
            "palisade-otlp-test".to_owned(),
        ),
    ]);
    let key =
        serve_one_traced_request(dir.path(), env, &format!("00-{trace_id}-{parent_id}-01")).await;

    let posts = snapshot(&received);
    assert!(!posts.is_empty(), "the collector received nothing");
    let trace_bytes = hex::decode(&trace_id).expect("hex");
    let parent_bytes = hex::decode(&parent_id).expect("hex");
    let mut joined = Vec::new();
    for (path, content_type, body) in &posts {
        assert_eq!(path, "/v1/traces");
        assert_eq!(content_type, "application/x-protobuf");
        assert!(
            !body.windows(key.len()).any(|w| w == key.as_bytes()),
            "the API key never reaches a span"
        );
        let request = ExportTraceServiceRequest::decode(body.as_ref()).expect("OTLP protobuf");
        for resource_spans in &request.resource_spans {
            let resource = resource_spans.resource.as_ref().expect("a resource");
            assert_eq!(
                string_attr(&resource.attributes, "service.name"),
                Some("palisade-otlp-test")
            );
            assert_eq!(
                string_attr(&resource.attributes, "service.version"),
                Some(env!("CARGO_PKG_VERSION"))
            );
            for scope_spans in &resource_spans.scope_spans {
                joined.extend(
                    scope_spans
                        .spans
                        .iter()
                        .filter(|s| s.trace_id == trace_bytes)
                        .cloned(),
                );
            }
        }
    }
    let request_span = joined
        .iter()
        .find(|s| s.name == "request")
        .unwrap_or_else(|| panic!("no request span in trace {trace_id}: {joined:?}"));
    assert_eq!(
        request_span.parent_span_id, parent_bytes,
        "the caller's span is the parent"
    );
    assert_eq!(
        string_attr(&request_span.attributes, "route"),
        Some("/v1/api-keys")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_nothing_without_an_otlp_endpoint() {
    let (endpoint, received) = collector().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (trace_id, parent_id) = trace_and_span_ids();
    // The standard OpenTelemetry variables alone must not turn export on: the
    // setting is `[telemetry] otlp_endpoint`.
    let env = HashMap::from([
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), endpoint.clone()),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".to_owned(),
            format!("{endpoint}/v1/traces"),
        ),
    ]);
    serve_one_traced_request(dir.path(), env, &format!("00-{trace_id}-{parent_id}-01")).await;
    // Anything in flight would have landed during the shutdown flush; allow a beat.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(snapshot(&received).is_empty(), "nothing is exported");
}
