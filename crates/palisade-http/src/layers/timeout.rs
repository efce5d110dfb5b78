//! The request timeout, with the timer armed only for requests that wait.
//!
//! `tower_http::timeout::TimeoutLayer` creates a `Sleep` per request and polls it
//! before the inner service, which registers a timer in the runtime's wheel (under
//! the timer driver's lock) and removes it again when the request ends, even for
//! the many requests answered on their first poll. Here the inner future is polled
//! first; only when it is still pending is the timer armed, for the deadline counted
//! from the call. The answer on expiry is the same: an empty response with the
//! configured status (408), which the problem layer turns into a problem document.

use axum::http::{Response, StatusCode};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// Answers `status` when the inner service has not answered within `timeout`.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimeoutLayer {
    timeout: Duration,
    status: StatusCode,
}

impl RequestTimeoutLayer {
    /// A request still unanswered after `timeout` gets an empty `status` response.
    pub fn new(timeout: Duration, status: StatusCode) -> Self {
        Self { timeout, status }
    }
}

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout {
            inner,
            timeout: self.timeout,
            status: self.status,
        }
    }
}

/// The service of [`RequestTimeoutLayer`].
#[derive(Debug, Clone)]
pub struct RequestTimeout<S> {
    inner: S,
    timeout: Duration,
    status: StatusCode,
}

impl<S, R, B> Service<R> for RequestTimeout<S>
where
    S: Service<R, Response = Response<B>>,
    B: Default,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = RequestTimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        RequestTimeoutFuture {
            deadline: Instant::now() + self.timeout,
            inner: self.inner.call(req),
            sleep: None,
            status: self.status,
        }
    }
}

pin_project! {
    /// The response future of [`RequestTimeout`].
    pub struct RequestTimeoutFuture<F> {
        #[pin]
        inner: F,
        // Boxed so the future stays small for the requests that never need it.
        sleep: Option<Pin<Box<Sleep>>>,
        deadline: Instant,
        status: StatusCode,
    }
}

impl<F> std::fmt::Debug for RequestTimeoutFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestTimeoutFuture")
            .field("deadline", &self.deadline)
            .field("armed", &self.sleep.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for RequestTimeoutFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result);
        }
        let deadline = *this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                let mut response = Response::new(B::default());
                *response.status_mut() = *this.status;
                Poll::Ready(Ok(response))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::ServiceExt as _;

    const TIMEOUT: Duration = Duration::from_millis(300);

    /// The layer's answer for a service that answers after `delay`, and how long
    /// it took.
    async fn answer_after(delay: Duration) -> (Response<String>, Duration) {
        let started = Instant::now();
        let response = RequestTimeoutLayer::new(TIMEOUT, StatusCode::REQUEST_TIMEOUT)
            .layer(tower::service_fn(move |()| async move {
                tokio::time::sleep(delay).await;
                Ok::<_, Infallible>(Response::new("answer".to_owned()))
            }))
            .oneshot(())
            .await
            .unwrap_or_else(|e| match e {});
        (response, started.elapsed())
    }

    #[tokio::test]
    async fn slow_requests_get_the_status_at_the_deadline() {
        let (response, took) = answer_after(Duration::from_secs(30)).await;
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.body(), "");
        assert!(
            took >= TIMEOUT && took < Duration::from_secs(10),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn requests_within_the_deadline_are_answered() {
        for delay in [Duration::ZERO, Duration::from_millis(20)] {
            let (response, _) = answer_after(delay).await;
            assert_eq!(response.status(), StatusCode::OK, "{delay:?}");
            assert_eq!(response.body(), "answer");
        }
    }

    /// The deadline counts from the call, not from the first time the request waits.
    #[tokio::test]
    async fn time_before_the_first_wait_counts() {
        let mut service = RequestTimeoutLayer::new(TIMEOUT, StatusCode::REQUEST_TIMEOUT).layer(
            tower::service_fn(|()| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok::<_, Infallible>(Response::new(String::new()))
            }),
        );
        let future = service.call(());
        std::thread::sleep(TIMEOUT);
        let started = Instant::now();
        let response = future.await.unwrap_or_else(|e| match e {});
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(started.elapsed() < TIMEOUT / 2, "{:?}", started.elapsed());
    }
}
