//! Per-request logs, metrics and traces: one span per request carrying the request
//! id, method, matched route and W3C trace id (and, with trace export on, the
//! caller's span as its parent); a log line and metrics when it ends.

mod request_metrics;

use axum::extract::{MatchedPath, Request};
use axum::http::header::HeaderName;
use axum::http::{HeaderMap, HeaderValue, Method, Response};
use pin_project_lite::pin_project;
use request_metrics::RequestMetrics;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tower::{Layer, Service};

/// The request-id header, taken from the caller or generated.
pub const REQUEST_ID: &str = "x-request-id";
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static(REQUEST_ID);

/// The outermost per-route layer: fixes the request id (taken from the caller when
/// sane, else a new UUIDv7; echoed on the response), wraps the request in its span,
/// then logs and measures the outcome. A hand-written service rather than
/// `from_fn`, which boxes the inner service and two futures per request.
#[derive(Debug, Clone, Default)]
pub struct ObserveLayer {
    metrics: Arc<RequestMetrics>,
}

impl ObserveLayer {
    /// A layer with its own kept metric handles.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`ObserveLayer`].
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<RequestMetrics>,
}

impl<S, B> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let started = Instant::now();
        let request_id = request_id(req.headers());
        req.headers_mut()
            .insert(REQUEST_ID_HEADER, request_id.clone());
        let method = req.method().clone();
        let route = req.extensions().get::<MatchedPath>().cloned();
        let span = tracing::info_span!(
            "request",
            request_id = request_id.to_str().unwrap_or(""),
            method = method.as_str(),
            route = route.as_ref().map_or("unmatched", MatchedPath::as_str),
            trace_id = trace_id(req.headers()).unwrap_or(""),
            api_key = tracing::field::Empty,
        );
        // With trace export on, the exported span becomes a child of the caller's, so
        // the trace joins theirs; must happen before the span is first entered.
        palisade_observe::join_caller_trace(&span, req.headers());
        // Inside the span, as the body of an instrumented middleware would be.
        let inner = span.in_scope(|| self.inner.call(req));
        ObserveFuture {
            inner,
            done: Some(Finish {
                span,
                started,
                request_id,
                method,
                route,
                metrics: self.metrics.clone(),
            }),
        }
    }
}

pin_project! {
    /// The response future of [`Observe`].
    pub struct ObserveFuture<F> {
        #[pin]
        inner: F,
        done: Option<Finish>,
    }
}

/// What the end of a request needs to log, measure and answer.
struct Finish {
    span: tracing::Span,
    started: Instant,
    request_id: HeaderValue,
    method: Method,
    route: Option<MatchedPath>,
    metrics: Arc<RequestMetrics>,
}

impl<F, B, E> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(finish) = this.done.as_ref() else {
            // Polled after completion: the inner future decides what that means.
            return this.inner.poll(cx);
        };
        let entered = finish.span.enter();
        let mut response = match ready!(this.inner.poll(cx)) {
            Ok(response) => response,
            // Axum's services cannot fail; another inner service's error passes through.
            Err(e) => return Poll::Ready(Err(e)),
        };
        let latency = finish.started.elapsed();
        let status = response.status();
        tracing::info!(
            status = status.as_u16(),
            latency_ms = latency.as_secs_f64() * 1000.0,
            "request finished"
        );
        drop(entered);
        let route = finish
            .route
            .as_ref()
            .map_or("unmatched", MatchedPath::as_str);
        finish
            .metrics
            .record(&finish.method, route, status, latency);
        if let Some(finish) = this.done.take() {
            response
                .headers_mut()
                .insert(REQUEST_ID_HEADER, finish.request_id);
        }
        Poll::Ready(Ok(response))
    }
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
            let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
            let text = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut text);
            HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
        })
}

/// The trace id of a valid W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), so
/// log lines join the caller's distributed trace.
fn trace_id(headers: &HeaderMap) -> Option<&str> {
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
    valid.then_some(trace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use std::sync::{Mutex, PoisonError};
    use tower::ServiceExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    /// Collects every log line written.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The request log line of each request, the response's `x-request-id`, through
    /// a router with the layer and the production log layer.
    #[tokio::test]
    async fn logs_each_request_with_its_id_method_route_status_and_latency() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry()
            .with(palisade_observe::JsonLines::new(move || writer.clone()));
        let _default = tracing::subscriber::set_default(subscriber);
        let app = axum::Router::new()
            .route(
                "/items/{id}",
                axum::routing::get(|| async {
                    tracing::info!("inside the handler");
                    "item"
                }),
            )
            .layer(ObserveLayer::new());
        let send = |uri: &str, id: Option<&'static str>| {
            let mut request = Request::get(uri);
            if let Some(id) = id {
                request = request.header(REQUEST_ID, id);
            }
            let request = request
                .body(Body::empty())
                .unwrap_or_else(|e| panic!("{e}"));
            app.clone().oneshot(request)
        };
        let kept = send("/items/7", Some("caller-id-1"))
            .await
            .unwrap_or_else(|e| match e {});
        assert_eq!(
            kept.headers().get(REQUEST_ID).map(|v| v.as_bytes()),
            Some(&b"caller-id-1"[..])
        );
        let made = send("/items/8", Some("has spaces, so not kept"))
            .await
            .unwrap_or_else(|e| match e {});
        let made_id = made
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| uuid::Uuid::parse_str(v).ok())
            .unwrap_or_else(|| panic!("no generated request id"));
        assert_eq!(made_id.get_version_num(), 7);

        let text = String::from_utf8_lossy(&lines.0.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].contains("\"message\":\"inside the handler\""),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains("\"request_id\":\"caller-id-1\""),
            "{}",
            lines[0]
        );
        for (line, id, status) in [
            (lines[1], "caller-id-1".to_owned(), 200),
            (lines[3], made_id.to_string(), 200),
        ] {
            assert!(line.contains("\"message\":\"request finished\""), "{line}");
            assert!(
                line.contains(&format!("\"status\":{status},\"latency_ms\":")),
                "{line}"
            );
            assert!(line.contains(&format!("\"request_id\":\"{id}\"")), "{line}");
            assert!(line.contains("\"method\":\"GET\""), "{line}");
            assert!(line.contains("\"route\":\"/items/{id}\""), "{line}");
        }
    }

    fn with_traceparent(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn reads_the_trace_id_of_a_valid_traceparent() {
        let headers = with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(trace_id(&headers), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
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
