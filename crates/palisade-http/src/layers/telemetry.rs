//! Per-request logs, metrics and traces: one span per request carrying the request
//! id, method, matched route and W3C trace id (and, with trace export on, the
//! caller's span as its parent); a log line and metrics when it ends.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

/// The request-id header, taken from the caller or generated.
pub const REQUEST_ID: &str = "x-request-id";

/// The outermost per-route layer: fixes the request id (taken from the caller when
/// sane, else a new UUIDv7; echoed on the response), wraps the request in its span,
/// then logs and measures the outcome. One middleware rather than several, because
/// each layer costs a boxed future per request.
pub async fn observe(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request_id(req.headers());
    req.headers_mut().insert(REQUEST_ID, request_id.clone());
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let trace_id = trace_id(req.headers());
    let span = tracing::info_span!(
        "request",
        request_id = request_id.to_str().unwrap_or(""),
        method = method.as_str(),
        route,
        trace_id = trace_id.as_deref().unwrap_or(""),
        api_key = tracing::field::Empty,
    );
    // With trace export on, the exported span becomes a child of the caller's, so
    // the trace joins theirs; must happen before the span is first entered.
    palisade_observe::join_caller_trace(&span, req.headers());
    let mut response = next.run(req).instrument(span.clone()).await;
    let latency = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = latency.as_secs_f64() * 1000.0,
            "request finished"
        );
    });
    let labels = [
        ("method", method.as_str().to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!("palisade_http_requests_total", &labels).increment(1);
    metrics::histogram!("palisade_http_request_duration_seconds", &labels)
        .record(latency.as_secs_f64());
    response.headers_mut().insert(REQUEST_ID, request_id);
    response
}

/// The caller's `x-request-id` when it is 1 to 128 visible ASCII characters
/// (anything else could be used to forge log lines), else a new UUIDv7.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID)
        .filter(|v| {
            (1..=128).contains(&v.len()) && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
        })
}

/// The trace id of a valid W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), so
/// log lines join the caller's distributed trace.
fn trace_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    let mut parts = value.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    valid.then(|| trace.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_traceparent(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn reads_the_trace_id_of_a_valid_traceparent() {
        let headers = with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(
            trace_id(&headers).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }

    #[test]
    fn ignores_malformed_or_all_zero_traceparents() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert_eq!(trace_id(&with_traceparent(bad)), None, "{bad}");
        }
    }
}
