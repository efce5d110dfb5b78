//! Guarantees that no error leaves the server as plain text or an empty body:
//! framework rejections (405, 413 from the body limit, 408 from the timeout, a caught
//! panic) have plain or empty bodies, and are replaced here.

use crate::problem::{PROBLEM_JSON, Problem};
use axum::body::Body;
use axum::http::Response;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::IntoResponse;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tower::{Layer, Service};

/// Replaces the body of any 4xx/5xx response that is not already a problem. A
/// hand-written service rather than `from_fn`, which boxes the inner service and
/// two futures per request.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProblemBodiesLayer;

impl<S> Layer<S> for ProblemBodiesLayer {
    type Service = ProblemBodies<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ProblemBodies { inner }
    }
}

/// The service of [`ProblemBodiesLayer`].
#[derive(Debug, Clone)]
pub struct ProblemBodies<S> {
    inner: S,
}

impl<S, R> Service<R> for ProblemBodies<S>
where
    S: Service<R, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ProblemBodiesFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        ProblemBodiesFuture {
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The response future of [`ProblemBodies`].
    pub struct ProblemBodiesFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, E> Future for ProblemBodiesFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = ready!(self.project().inner.poll(cx))?;
        Poll::Ready(Ok(ensure_problem_body(response)))
    }
}

/// `response` itself unless it is an error without a problem (or JSON) body.
fn ensure_problem_body(response: Response<Body>) -> Response<Body> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // Problems, and JSON a handler chose to send with an error status (the health
    // report's 503), pass through; framework rejections are plain text or empty.
    let deliberate = response.headers().get(CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.starts_with(PROBLEM_JSON.as_bytes()) || v.starts_with(b"application/json")
    });
    if deliberate {
        return response;
    }
    // Keep headers a client may need (Allow on 405, Retry-After), drop the old body.
    let (mut parts, _) = response.into_parts();
    let replacement = Problem::for_status(status).into_response();
    parts.headers.remove(CONTENT_TYPE);
    parts.headers.remove(CONTENT_LENGTH);
    let (new_parts, body) = replacement.into_parts();
    parts.headers.extend(new_parts.headers);
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::{ALLOW, RETRY_AFTER};
    use axum::http::{HeaderValue, StatusCode};
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    /// `make()`'s response after the layer, with its body as text.
    async fn through_layer(make: fn() -> Response<Body>) -> (Response<Body>, String) {
        let inner =
            tower::service_fn(
                move |_: ()| async move { Ok::<_, std::convert::Infallible>(make()) },
            );
        let response = ProblemBodiesLayer
            .layer(inner)
            .oneshot(())
            .await
            .unwrap_or_else(|e| match e {});
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (
            Response::from_parts(parts, Body::empty()),
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    #[tokio::test]
    async fn plain_errors_become_problems_and_keep_their_headers() {
        let (response, body) = through_layer(|| {
            let mut response = Response::new(Body::from("Method Not Allowed"));
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            headers.insert(CONTENT_LENGTH, HeaderValue::from_static("18"));
            headers.insert(ALLOW, HeaderValue::from_static("GET,HEAD"));
            headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
            response
        })
        .await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        let headers = response.headers();
        assert_eq!(
            headers.get(CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(PROBLEM_JSON.as_bytes())
        );
        assert_eq!(
            headers.get(ALLOW).map(|v| v.as_bytes()),
            Some(&b"GET,HEAD"[..])
        );
        assert_eq!(
            headers.get(RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"3"[..])
        );
        assert_eq!(headers.get_all(CONTENT_TYPE).iter().count(), 1);
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(problem["status"], 405, "{body}");
        // An empty 408 from the timeout too.
        let (response, body) = through_layer(|| {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
            response
        })
        .await;
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(body.contains("408"), "{body}");
    }

    #[tokio::test]
    async fn successes_problems_and_json_errors_pass_unchanged() {
        let (_, body) = through_layer(|| Response::new(Body::from("fine"))).await;
        assert_eq!(body, "fine");
        for content_type in [PROBLEM_JSON, "application/json"] {
            let make = match content_type {
                PROBLEM_JSON => || {
                    let mut r = Response::new(Body::from("{\"mine\":1}"));
                    *r.status_mut() = StatusCode::CONFLICT;
                    r.headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
                    r
                },
                _ => || {
                    let mut r = Response::new(Body::from("{\"mine\":1}"));
                    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    r.headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    r
                },
            };
            let (_, body) = through_layer(make).await;
            assert_eq!(body, "{\"mine\":1}", "{content_type}");
        }
    }
}
