//! `Idempotency-Key` on POST: a retried request with the same key and body gets the
//! first response again instead of running twice; the same key with a different
//! body is refused with 422; a retry while the first is still running gets 409.

use crate::auth::Caller;
use crate::problem::Problem;
use crate::state::AppState;
use aws_lc_rs::digest;
use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, Either};
use palisade_store::idempotency::{Begin, StoredResponse};
use std::convert::Infallible;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// The request header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a replayed response.
pub const REPLAYED: &str = "idempotent-replayed";
/// Largest response body kept for replay.
const MAX_STORED_RESPONSE: usize = 1024 * 1024;

/// The layer; runs after authentication so records are scoped per API key.
/// A hand-written service rather than `from_fn`, so requests it has nothing to
/// do with (every one but a POST carrying the header) pass through without
/// boxing the inner service or their futures.
#[derive(Debug, Clone)]
pub struct IdempotencyLayer {
    state: AppState,
}

impl IdempotencyLayer {
    /// Keeps records in `state`'s idempotency store.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = Idempotency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Idempotency {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service of [`IdempotencyLayer`].
#[derive(Debug, Clone)]
pub struct Idempotency<S> {
    inner: S,
    state: AppState,
}

impl<S> Service<Request> for Idempotency<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if req.method() != Method::POST || !req.headers().contains_key(IDEMPOTENCY_KEY) {
            return Either::Left(self.inner.call(req));
        }
        // The instance polled ready is the one to call; a clone stays behind.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Either::Right(Box::pin(async move {
            Ok(idempotent_post(state, inner, req).await)
        }))
    }
}

/// A POST carrying an `Idempotency-Key`: runs it once, replays it after.
async fn idempotent_post<S>(state: AppState, mut inner: S, req: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let Some(raw_key) = req.headers().get(IDEMPOTENCY_KEY) else {
        let Ok(response) = inner.call(req).await;
        return response;
    };
    let key = match raw_key.to_str() {
        Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
            k.to_owned()
        }
        _ => {
            return Problem::bad_request(
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
            .into_response();
        }
    };
    let Some(owner) = req
        .extensions()
        .get::<Caller>()
        .map(|c| c.key.id.to_string())
    else {
        return Problem::unauthorized().into_response();
    };

    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, state.settings.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => return Problem::for_status(StatusCode::PAYLOAD_TOO_LARGE).into_response(),
    };
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(parts.method.as_str().as_bytes());
    ctx.update(b"\n");
    ctx.update(parts.uri.to_string().as_bytes());
    ctx.update(b"\n");
    ctx.update(&bytes);
    let fingerprint = ctx.finish();

    let now_ms = state.clock.now_unix_ms();
    match state
        .idempotency
        .begin(&owner, &key, fingerprint.as_ref(), now_ms)
        .await
    {
        Err(e) => return Problem::from(e).into_response(),
        Ok(Begin::Mismatch) => {
            return Problem::unprocessable(
                "this Idempotency-Key was used with a different request",
            )
            .field(
                "Idempotency-Key",
                "reused with a different method, path or body",
            )
            .into_response();
        }
        Ok(Begin::InFlight) => {
            return Problem::conflict(
                "a request with this Idempotency-Key is still being processed",
            )
            .retry_after(1)
            .into_response();
        }
        Ok(Begin::Replay(stored)) => return replay(stored),
        Ok(Begin::Proceed) => {}
    }

    let Ok(response) = inner
        .call(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status();
    // Errors on our side, and answers that depend on the moment (rate limits,
    // conflicts), are not final: release the key so a retry runs again.
    let final_answer = !(status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::CONFLICT);
    if !final_answer {
        if let Err(e) = state.idempotency.abandon(&owner, &key).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = match to_bytes(body, MAX_STORED_RESPONSE).await {
        Ok(body) => body,
        Err(_) => {
            let _ = state.idempotency.abandon(&owner, &key).await;
            return Problem::internal().into_response();
        }
    };
    let stored = StoredResponse {
        status: parts.status.as_u16(),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.to_vec(),
    };
    if let Err(e) = state.idempotency.complete(&owner, &key, &stored).await {
        // The work is done; failing to remember it only means a retry may run again.
        tracing::warn!(error = %e, "could not store an idempotent response");
    }
    Response::from_parts(parts, Body::from(body))
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    if let Some(ct) = stored
        .content_type
        .and_then(|ct| HeaderValue::from_str(&ct).ok())
    {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
