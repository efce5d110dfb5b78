//! Bearer-token authentication for Rust services: a tower layer that verifies
//! `Authorization: Bearer <token>` (RFC 6750) and an axum extractor for the
//! verified claims.
//!
//! ```
//! use axum::Router;
//! use axum::routing::get;
//! use palisade_auth::tokens::Tokens;
//! use palisade_http::layers::bearer::{BearerAuthLayer, VerifiedClaims};
//!
//! async fn me(VerifiedClaims(claims): VerifiedClaims) -> String {
//!     claims.sub.clone().unwrap_or_default()
//! }
//!
//! fn app(tokens: Tokens) -> Router {
//!     Router::new()
//!         .route("/me", get(me))
//!         .layer(BearerAuthLayer::new(tokens, "orders-api").require_scope("orders:read"))
//! }
//! ```
//!
//! Answers, with `WWW-Authenticate` as RFC 6750 §3 describes and an RFC 9457
//! problem as the body:
//! - no `Authorization` header, or another scheme: 401 `Bearer` (no error);
//! - two `Authorization` headers, or credentials that are not a token: 400
//!   `error="invalid_request"`;
//! - a refused token: 401 `error="invalid_token"`, with the stable
//!   [`TokenError::code`] (`expired`, `revoked`, `bad_signature`, ...) as
//!   `error_description`;
//! - a valid token without a required scope: 403 `error="insufficient_scope"`;
//! - Palisade unable to decide (a fault, not a verdict on the token): 503 with
//!   `Retry-After`, never a 401 that would send the client to log in again.
//!
//! Verification runs inline in `call`: a signature check takes tens of
//! microseconds (less than 2 µs for a Palisade token seen before, from the
//! cache of verified tokens), too little to be worth a blocking-pool hop.

use crate::problem::Problem;
use axum::body::Body;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use palisade_auth::jwt::{Claims, JwtError, Verifier};
use palisade_auth::tokens::{TokenError, Tokens};
use palisade_store::StoreError;
use pin_project_lite::pin_project;
use serde_json::Value;
use std::convert::Infallible;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Room for the scheme and spaces around a token of the verifier's largest size.
const HEADER_SLACK: usize = 64;
/// Seconds a client should wait after a 503 when the cause names no time.
const RETRY_AFTER_SECS: u64 = 2;

/// Where presented tokens are verified.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// Palisade's own tokens: signature and claims (or the cache of verified
    /// tokens), then revocation, on every request.
    Palisade(Tokens),
    /// An outside issuer's tokens, against its keys (see
    /// [`KeySet::from_jwks_json`](palisade_auth::jwt::KeySet::from_jwks_json)).
    /// Signature and claims only: such an issuer's revocations are not known here.
    Verifier(Arc<Verifier>),
}

impl From<Tokens> for TokenSource {
    fn from(tokens: Tokens) -> Self {
        Self::Palisade(tokens)
    }
}

impl From<Arc<Verifier>> for TokenSource {
    fn from(verifier: Arc<Verifier>) -> Self {
        Self::Verifier(verifier)
    }
}

impl From<Verifier> for TokenSource {
    fn from(verifier: Verifier) -> Self {
        Self::Verifier(Arc::new(verifier))
    }
}

impl TokenSource {
    fn verify(&self, token: &str, audience: &str) -> Result<Arc<Claims>, Refusal> {
        match self {
            Self::Palisade(tokens) => tokens.verify(token, audience).map_err(Refusal::from),
            Self::Verifier(verifier) => verifier
                .verify(token, audience)
                .map(Arc::new)
                .map_err(|e| Refusal::from(TokenError::from(e))),
        }
    }

    fn max_token_bytes(&self) -> usize {
        match self {
            Self::Palisade(tokens) => tokens.config().max_token_bytes,
            Self::Verifier(verifier) => verifier.config().max_token_bytes,
        }
    }
}

/// Verifies the bearer token of every request and puts its claims, as an
/// `Arc<Claims>`, into the request's extensions for [`VerifiedClaims`].
#[derive(Debug, Clone)]
pub struct BearerAuthLayer {
    settings: Arc<Settings>,
}

#[derive(Debug, Clone)]
struct Settings {
    source: TokenSource,
    audience: String,
    scopes: Vec<String>,
    anonymous: bool,
}

impl BearerAuthLayer {
    /// Requires a token from `source` ([`Tokens`] or a [`Verifier`]) issued for
    /// `audience`.
    pub fn new(source: impl Into<TokenSource>, audience: impl Into<String>) -> Self {
        Self {
            settings: Arc::new(Settings {
                source: source.into(),
                audience: audience.into(),
                scopes: Vec::new(),
                anonymous: false,
            }),
        }
    }

    /// Also requires `scope` among the token's space-separated `scope` claim
    /// (RFC 9068 §2.2.3); call once per scope.
    pub fn require_scope(mut self, scope: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.settings).scopes.push(scope.into());
        self
    }

    /// Lets requests without bearer credentials through without claims (read
    /// them with `Option<VerifiedClaims>`); a token that is presented must
    /// still be valid.
    pub fn allow_anonymous(mut self) -> Self {
        Arc::make_mut(&mut self.settings).anonymous = true;
        self
    }

    /// The claims of the request's token; `Ok(None)` for an anonymous request
    /// the layer lets through.
    fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Arc<Claims>>, Refusal> {
        let settings = &self.settings;
        let max_header = settings
            .source
            .max_token_bytes()
            .saturating_add(HEADER_SLACK);
        let token = match bearer_token(headers, max_header) {
            Ok(token) => token,
            Err(Refusal::NoCredentials) if settings.anonymous => return Ok(None),
            Err(refusal) => return Err(refusal),
        };
        let claims = settings.source.verify(token, &settings.audience)?;
        if !settings.scopes.iter().all(|s| has_scope(&claims, s)) {
            return Err(Refusal::InsufficientScope);
        }
        Ok(Some(claims))
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`BearerAuthLayer`].
#[derive(Debug, Clone)]
pub struct BearerAuth<S> {
    inner: S,
    layer: BearerAuthLayer,
}

impl<S, B> Service<Request<B>> for BearerAuth<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BearerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let state = match self.layer.authenticate(req.headers()) {
            Ok(claims) => {
                // Claims in the extensions only ever come from this layer.
                let extensions = req.extensions_mut();
                extensions.remove::<Arc<Claims>>();
                if let Some(claims) = claims {
                    extensions.insert(claims);
                }
                FutureState::Inner {
                    future: self.inner.call(req),
                }
            }
            Err(refusal) => FutureState::Refused {
                response: Some(refusal.into_response(&self.layer.settings.scopes)),
            },
        };
        BearerFuture { state }
    }
}

pin_project! {
    /// Response future of [`BearerAuth`].
    #[derive(Debug)]
    pub struct BearerFuture<F> {
        #[pin]
        state: FutureState<F>,
    }
}

pin_project! {
    #[project = FutureStateProj]
    #[derive(Debug)]
    enum FutureState<F> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response<Body>> },
    }
}

impl<F, E> Future for BearerFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            FutureStateProj::Inner { future } => future.poll(cx),
            // Polled again after completion only by a broken caller.
            FutureStateProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| Problem::internal().into_response()))),
        }
    }
}

/// Why a request is not let through.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// No bearer credentials: no header, or another scheme (RFC 6750 §3.1).
    NoCredentials,
    /// Malformed credentials: `invalid_request`.
    BadRequest(&'static str),
    /// The token itself was refused: `invalid_token` with its stable code.
    InvalidToken(&'static str),
    /// A valid token without a required scope.
    InsufficientScope,
    /// Palisade could not decide; nothing is known about the token.
    Unavailable {
        /// The stable code of the fault.
        code: &'static str,
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
}

impl From<TokenError> for Refusal {
    fn from(error: TokenError) -> Self {
        let code = error.code();
        if error.is_rejection() {
            tracing::debug!(code, "bearer token refused");
            return Self::InvalidToken(code);
        }
        tracing::error!(code, %error, "bearer token could not be verified");
        let retry_after = match &error {
            TokenError::Store(StoreError::Unavailable { retry_after }) => {
                retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)
            }
            _ => RETRY_AFTER_SECS,
        };
        Self::Unavailable {
            code,
            retry_after: retry_after.max(1),
        }
    }
}

impl Refusal {
    fn into_response(self, scopes: &[String]) -> Response<Body> {
        let (problem, challenge) = match self {
            Self::NoCredentials => (
                Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
                    .detail("a bearer token is required: Authorization: Bearer <token>"),
                Some("Bearer".to_owned()),
            ),
            Self::BadRequest(code) => (
                Problem::bad_request(format!("malformed bearer credentials: {code}")),
                Some(format!(
                    "Bearer error=\"invalid_request\", error_description=\"{code}\""
                )),
            ),
            Self::InvalidToken(code) => (
                Problem::new(StatusCode::UNAUTHORIZED, "invalid-token", "Invalid token")
                    .detail(format!("the bearer token was refused: {code}")),
                Some(format!(
                    "Bearer error=\"invalid_token\", error_description=\"{code}\""
                )),
            ),
            Self::InsufficientScope => {
                let mut challenge = "Bearer error=\"insufficient_scope\"".to_owned();
                // Scope tokens cannot hold quotes, backslashes or spaces (RFC 6750 §3).
                if scopes.iter().all(|s| is_scope_token(s)) {
                    challenge.push_str(&format!(", scope=\"{}\"", scopes.join(" ")));
                }
                (
                    Problem::new(
                        StatusCode::FORBIDDEN,
                        "insufficient-scope",
                        "Insufficient scope",
                    )
                    .detail(format!(
                        "the token lacks a required scope: {}",
                        scopes.join(" ")
                    )),
                    Some(challenge),
                )
            }
            Self::Unavailable { code, retry_after } => (
                Problem::unavailable(
                    format!("the token could not be verified now ({code}); retry later"),
                    retry_after,
                ),
                None,
            ),
        };
        let mut response = problem.into_response();
        if let Some(value) = challenge.and_then(|c| HeaderValue::try_from(c).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// The token of the request's single `Authorization: Bearer` header.
fn bearer_token(headers: &HeaderMap, max_bytes: usize) -> Result<&str, Refusal> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Refusal::NoCredentials);
    };
    if values.next().is_some() {
        return Err(Refusal::BadRequest("multiple_authorization_headers"));
    }
    if value.len() > max_bytes {
        // Nothing of an oversized header is read.
        return Err(Refusal::InvalidToken(
            JwtError::TooLarge {
                len: value.len(),
                max: max_bytes,
            }
            .code(),
        ));
    }
    let text = value
        .to_str()
        .map_err(|_| Refusal::BadRequest("malformed_credentials"))?;
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    // The scheme is case-insensitive (RFC 9110 §11.1).
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refusal::NoCredentials);
    }
    let token = rest.trim_matches(' ');
    if !is_b64token(token) {
        return Err(Refusal::BadRequest("malformed_credentials"));
    }
    Ok(token)
}

/// RFC 6750 §2.1: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// RFC 6750 §3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// Whether the `scope` claim (space-separated, RFC 9068 §2.2.3) holds `scope`.
fn has_scope(claims: &Claims, scope: &str) -> bool {
    match claims.extra.get("scope") {
        Some(Value::String(granted)) => !scope.is_empty() && granted.split(' ').any(|s| s == scope),
        _ => false,
    }
}

/// The claims [`BearerAuthLayer`] verified. Use `Option<VerifiedClaims>` on
/// routes behind [`BearerAuthLayer::allow_anonymous`].
#[derive(Debug, Clone)]
pub struct VerifiedClaims(pub Arc<Claims>);

impl Deref for VerifiedClaims {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedClaims {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Arc<Claims>>() {
            Some(claims) => Ok(Self(Arc::clone(claims))),
            None => {
                // A programming error, not the client's: the route reads claims
                // that no layer verified.
                tracing::error!(
                    path = %parts.uri.path(),
                    "VerifiedClaims used on a route without BearerAuthLayer (or one allowing anonymous requests: use Option<VerifiedClaims>)"
                );
                Err(Problem::internal().detail(
                    "this route reads verified claims but no bearer authentication layer is mounted on it \
                     (or the layer lets anonymous requests through: read Option<VerifiedClaims>)",
                ))
            }
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedClaims {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Arc<Claims>>().cloned().map(Self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn reads_one_bearer_token_with_any_scheme_case() {
        for value in [
            "Bearer abc.def-_~+/.x==",
            "bearer abc.def-_~+/.x==",
            "BEARER  abc.def-_~+/.x== ",
        ] {
            assert_eq!(
                bearer_token(&headers(&[value]), 100),
                Ok("abc.def-_~+/.x=="),
                "{value}"
            );
        }
    }

    #[test]
    fn tells_missing_from_malformed_credentials() {
        assert_eq!(
            bearer_token(&headers(&[]), 100),
            Err(Refusal::NoCredentials)
        );
        assert_eq!(
            bearer_token(&headers(&["Basic dXNlcjpwYXNz"]), 100),
            Err(Refusal::NoCredentials)
        );
        for value in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a=b",
            "Bearer \"a\"",
            "Bearer ===",
        ] {
            assert_eq!(
                bearer_token(&headers(&[value]), 100),
                Err(Refusal::BadRequest("malformed_credentials")),
                "{value}"
            );
        }
        assert_eq!(
            bearer_token(&headers(&["Bearer a", "Bearer b"]), 100),
            Err(Refusal::BadRequest("multiple_authorization_headers"))
        );
        let long = format!("Bearer {}", "a".repeat(100));
        assert_eq!(
            bearer_token(&headers(&[&long]), 100),
            Err(Refusal::InvalidToken("too_large"))
        );
    }

    #[test]
    fn faults_are_503_with_retry_after_and_no_challenge() {
        let refusal = Refusal::from(TokenError::Store(StoreError::Unavailable {
            retry_after: Duration::from_millis(4_200),
        }));
        assert_eq!(
            refusal,
            Refusal::Unavailable {
                code: "unavailable",
                retry_after: 5
            }
        );
        let response = refusal.into_response(&[]);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());

        let config = Refusal::from(TokenError::Jwt(JwtError::NoSigningKey));
        assert!(matches!(
            config,
            Refusal::Unavailable { retry_after: 2, .. }
        ));
        let rejection = Refusal::from(TokenError::Jwt(JwtError::Expired));
        assert_eq!(rejection, Refusal::InvalidToken("expired"));
    }

    #[test]
    fn insufficient_scope_names_the_scopes_when_they_are_valid_tokens() {
        let scopes = vec!["orders:read".to_owned(), "orders:write".to_owned()];
        let response = Refusal::InsufficientScope.into_response(&scopes);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"insufficient_scope\", scope=\"orders:read orders:write\""
        );
        let odd = Refusal::InsufficientScope.into_response(&["a\"b".to_owned()]);
        assert_eq!(
            odd.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"insufficient_scope\""
        );
    }

    #[test]
    fn scopes_are_whole_space_separated_words() {
        let mut claims = Claims::default();
        claims.extra.insert(
            "scope".into(),
            Value::String("orders:read orders:write".into()),
        );
        assert!(has_scope(&claims, "orders:read"));
        assert!(has_scope(&claims, "orders:write"));
        assert!(!has_scope(&claims, "orders"));
        assert!(!has_scope(&claims, "orders:read orders:write"));
        assert!(!has_scope(&Claims::default(), "orders:read"));
    }
}
