//! Per-request logs and metrics: one span per request carrying the request id,
//! method, matched route and W3C trace id; a log line and metrics when it ends.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

/// The request-id header, taken from the caller or generated.
pub const REQUEST_ID: &str = "x-request-id";

/// Wraps a request in its span, then logs and measures the outcome.
pub async fn observe(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = header_text(req.headers(), REQUEST_ID);
    let trace_id = trace_id(req.headers());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = %route,
        trace_id = trace_id.as_deref().unwrap_or(""),
        api_key = tracing::field::Empty,
    );
    let response = next.run(req).instrument(span.clone()).await;
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
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("palisade_http_requests_total", &labels).increment(1);
    metrics::histogram!("palisade_http_request_duration_seconds", &labels)
        .record(latency.as_secs_f64());
    response
}

fn header_text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
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

/// Takes `x-request-id` from the request when it is a sane value (1 to 128 visible
/// ASCII characters; anything else could be used to forge log lines) or makes a
/// UUIDv7, and returns it on the response.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(REQUEST_ID)
        .filter(|v| {
            (1..=128).contains(&v.len()) && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
        })
        .cloned();
    let id = match given {
        Some(id) => id,
        None => axum::http::HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
            .unwrap_or_else(|_| axum::http::HeaderValue::from_static("invalid")),
    };
    req.headers_mut().insert(REQUEST_ID, id.clone());
    let mut response = next.run(req).await;
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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
