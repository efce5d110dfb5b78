//! Authentication of Palisade's own API: `Authorization: Bearer <api key>`.

use crate::layers::rate_limit::RateLimitIdentity;
use crate::problem::Problem;
use crate::state::AppState;
use axum::extract::{FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, Either, Ready, ready};
use palisade_auth::{ApiKey, PresentedKey};
use palisade_core::principal::TenantId;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// The authenticated caller of a `/v1` request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The API key used.
    pub key: Arc<ApiKey>,
}

impl Caller {
    /// Fails with 403 unless the key carries `scope` (or `admin`).
    pub fn require(&self, scope: &str) -> Result<(), Problem> {
        if self.key.scopes.allows(scope) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "this API key lacks the scope {scope:?}"
            )))
        }
    }

    /// The tenant to act in: the key's own, or for an admin key the one it names.
    /// A non-admin key naming another tenant gets 403, never that tenant's data.
    pub fn tenant(&self, requested: Option<&str>) -> Result<TenantId, Problem> {
        match requested {
            None => Ok(self.key.tenant.clone()),
            Some(raw) => {
                let tenant = TenantId::parse(raw).map_err(|e| {
                    Problem::unprocessable(e.to_string()).field("tenant", e.to_string())
                })?;
                if tenant == self.key.tenant || self.key.scopes.is_admin() {
                    Ok(tenant)
                } else {
                    Err(Problem::forbidden(
                        "this API key cannot act in another tenant",
                    ))
                }
            }
        }
    }
}

/// The layer of `/v1`: verifies the bearer key and puts the [`Caller`] in the
/// request's extensions, or answers 401. A hand-written service rather than
/// `from_fn`, which boxes the inner service and two futures per request; this
/// boxes one future, and answers a missing key without any.
#[derive(Debug, Clone)]
pub struct AuthenticateLayer {
    state: AppState,
}

impl AuthenticateLayer {
    /// Verifies keys against `state`'s API keys.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for AuthenticateLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service of [`AuthenticateLayer`].
#[derive(Debug, Clone)]
pub struct Authenticate<S> {
    inner: S,
    state: AppState,
}

impl<S> Service<Request> for Authenticate<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        Ready<Result<Response, Infallible>>,
        BoxFuture<'static, Result<Response, Infallible>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let Some(presented) = bearer(req.headers().get(AUTHORIZATION)) else {
            return Either::Left(ready(Ok(Problem::unauthorized().into_response())));
        };
        // The instance polled ready is the one to call; a clone stays behind.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Either::Right(Box::pin(authenticate(state, presented, inner, req)))
    }
}

async fn authenticate<S>(
    state: AppState,
    presented: PresentedKey,
    mut inner: S,
    mut req: Request,
) -> Result<Response, Infallible>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    match state.api_keys.verify(&presented).await {
        Ok(key) => {
            tracing::Span::current().record("api_key", tracing::field::display(key.id));
            req.extensions_mut().insert(RateLimitIdentity {
                subject: None,
                api_key: Some(key.id.to_string()),
                tenant: Some(key.tenant.to_string()),
                tier: None,
            });
            req.extensions_mut().insert(Caller { key });
            inner.call(req).await
        }
        Err(e) => Ok(Problem::from(e).into_response()),
    }
}

fn bearer(value: Option<&axum::http::HeaderValue>) -> Option<PresentedKey> {
    let text = value?.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    // The scheme is case-insensitive (RFC 9110 §11.1).
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| PresentedKey::new(token.trim()))
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(Problem::unauthorized)
    }
}
