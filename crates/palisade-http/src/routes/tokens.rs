//! `/v1/auth/tokens` and `/v1/auth/signing-keys`: Palisade's own access and
//! refresh tokens for services in any language, and `/.well-known/jwks.json`
//! for anyone verifying them.
//!
//! Scopes: `auth:issue` issues, refreshes and revokes (trusted callers: the
//! service that authenticated the user); `auth:verify` verifies and lists the
//! signing keys; `auth:admin` rotates them. Tokens belong to the caller's
//! tenant: another tenant's caller cannot verify, refresh or revoke them.
//!
//! Every issue, refresh, revocation and failed verification is an audit
//! event, written before the answer. Tokens themselves are never logged,
//! audited or echoed.

use crate::auth::Caller;
use crate::json::ApiJson;
use crate::problem::Problem;
use crate::routes::changes::record_change;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_audit::event::{Actor, NewEvent, Outcome, Resource};
use palisade_auth::tokens::{IssueRequest, KeyStatus, TokenError, TokenPair};
use palisade_core::{Secret, SecurityEvent, SecurityEventKind};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

const ISSUE: &str = "auth:issue";
const VERIFY: &str = "auth:verify";
const ADMIN: &str = "auth:admin";

/// A new session for a user the caller has authenticated.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The user (`sub`), 1 to 256 bytes.
    pub subject: String,
    /// One of the configured audiences (`aud`).
    pub audience: String,
    /// Extra claims. `iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`, `tenant`
    /// and `sid` are set by Palisade and refused here.
    #[serde(default)]
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Access-token lifetime; the configured default when absent.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// A token pair (RFC 6749 §5.1 shape). `Debug` shows neither token.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// The signed JWT (`typ` `at+jwt`).
    pub access_token: String,
    /// Opaque; exchange it at `/v1/auth/tokens/refresh`. Usable once.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

impl From<TokenPair> for TokenResponse {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token.expose().to_owned(),
            token_type: "Bearer",
            expires_in: pair.expires_in,
        }
    }
}

/// Issues an access token and a refresh token, starting a session.
#[utoipa::path(post, path = "/v1/auth/tokens", tag = "auth", request_body = TokenRequest,
    security(("api_key" = [])),
    responses((status = 200, body = TokenResponse), (status = 403, body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<TokenRequest>,
) -> Result<Json<TokenResponse>, Problem> {
    caller.require(ISSUE)?;
    let request = IssueRequest {
        subject: body.subject,
        audience: body.audience,
        claims: body.claims,
        ttl: body.ttl_seconds.map(Duration::from_secs),
    };
    let pair = state
        .tokens()?
        .issue(caller.key.tenant.as_str(), request)
        .await?;
    audit(
        &state,
        &caller,
        "auth.token.issue",
        Outcome::Success,
        &pair.subject,
        Some(&pair.session_id),
        None,
    )
    .await?;
    Ok(Json(pair.into()))
}

/// A token to check.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The access token.
    #[schema(value_type = String)]
    pub token: Secret,
    /// The audience the caller is (must be among the token's `aud`).
    pub audience: String,
}

/// The verdict.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse {
    /// Whether the token is valid now.
    pub valid: bool,
    /// Its claims, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<serde_json::Value>,
    /// Why not, when invalid: a stable code (`expired`, `revoked`,
    /// `bad_signature`, `unknown_kid`, `alg_none`, `wrong_tenant`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// Verifies an access token: signature, claims, revocation. An invalid token
/// is a 200 with `valid: false` and a `reason`; a Palisade fault is a 5xx,
/// never `valid: false`.
#[utoipa::path(post, path = "/v1/auth/tokens/verify", tag = "auth", request_body = VerifyRequest,
    security(("api_key" = [])),
    responses((status = 200, body = VerifyResponse), (status = 503, body = Problem)))]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<Json<VerifyResponse>, Problem> {
    caller.require(VERIFY)?;
    let tenant = caller.key.tenant.as_str();
    let verdict = state
        .tokens()?
        .verify_in(tenant, body.token.expose(), &body.audience)
        .await;
    match verdict {
        Ok(claims) => Ok(Json(VerifyResponse {
            valid: true,
            claims: Some(serde_json::to_value(claims.as_ref()).map_err(|_| Problem::internal())?),
            reason: None,
        })),
        Err(e) if e.is_rejection() => {
            let reason = e.code();
            state.security_events.emit(
                SecurityEvent::new(SecurityEventKind::TokenRejected, state.clock.now_unix_ms())
                    .tenant(caller.key.tenant.clone())
                    .reason(reason),
            );
            let metadata = serde_json::Map::from_iter([("reason".to_owned(), reason.into())]);
            audit(
                &state,
                &caller,
                "auth.token.verify",
                Outcome::Failure,
                "",
                None,
                Some(metadata),
            )
            .await?;
            Ok(Json(VerifyResponse {
                valid: false,
                claims: None,
                reason: Some(reason),
            }))
        }
        Err(e) => Err(e.into()),
    }
}

/// A refresh token to exchange.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last issue or refresh.
    #[schema(value_type = String)]
    pub refresh_token: Secret,
}

/// Exchanges a refresh token for a new pair. The presented token is used up.
/// Presenting a used one again revokes its whole session (every refresh and
/// access token of it) and answers 400 `refresh_reused`.
#[utoipa::path(post, path = "/v1/auth/tokens/refresh", tag = "auth", request_body = RefreshRequest,
    security(("api_key" = [])),
    responses((status = 200, body = TokenResponse),
        (status = 400, body = Problem, description = "unknown_refresh_token, refresh_expired, session_revoked or refresh_reused"),
        (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn refresh(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, Problem> {
    caller.require(ISSUE)?;
    match state
        .tokens()?
        .refresh(caller.key.tenant.as_str(), body.refresh_token.expose())
        .await
    {
        Ok(pair) => {
            audit(
                &state,
                &caller,
                "auth.token.refresh",
                Outcome::Success,
                &pair.subject,
                Some(&pair.session_id),
                None,
            )
            .await?;
            Ok(Json(pair.into()))
        }
        Err(TokenError::RefreshReused { session, subject }) => {
            audit(
                &state,
                &caller,
                "auth.token.reuse",
                Outcome::Denied,
                &subject,
                Some(&session),
                None,
            )
            .await?;
            Err(TokenError::RefreshReused { session, subject }.into())
        }
        Err(e) if e.is_rejection() => {
            let metadata = serde_json::Map::from_iter([("reason".to_owned(), e.code().into())]);
            audit(
                &state,
                &caller,
                "auth.token.refresh",
                Outcome::Failure,
                "",
                None,
                Some(metadata),
            )
            .await?;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// What to revoke: exactly one field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// An access token: revoked until it expires.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub token: Option<Secret>,
    /// A refresh token: its whole session ends (logout).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub refresh_token: Option<Secret>,
    /// An access token's `jti`, when the token itself is not at hand.
    #[serde(default)]
    pub jti: Option<String>,
    /// A subject: every token and session issued to it before `before` (now
    /// when absent) is revoked ("log out everywhere", password change).
    #[serde(default)]
    pub subject: Option<String>,
    /// With `subject`: the cutoff, Unix ms (at most now).
    #[serde(default)]
    pub before: Option<i64>,
}

/// What was revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokeResponse {
    /// `token`, `session` or `subject`.
    pub revoked: &'static str,
    /// The token id, session id or subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// With a subject: the cutoff applied (Unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
}

/// Revokes an access token, a session (by its refresh token), a token id, or
/// everything of a subject. Takes effect at once on this instance and within
/// milliseconds on the others (PostgreSQL notifications, with a poll behind).
#[utoipa::path(post, path = "/v1/auth/tokens/revoke", tag = "auth", request_body = RevokeRequest,
    security(("api_key" = [])),
    responses((status = 200, body = RevokeResponse), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RevokeRequest>,
) -> Result<Json<RevokeResponse>, Problem> {
    caller.require(ISSUE)?;
    let tenant = caller.key.tenant.as_str();
    let tokens = state.tokens()?;
    let given = [
        body.token.is_some(),
        body.refresh_token.is_some(),
        body.jti.is_some(),
        body.subject.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(Problem::unprocessable(
            "give exactly one of token, refresh_token, jti, subject",
        ));
    }
    if body.before.is_some() && body.subject.is_none() {
        return Err(
            Problem::unprocessable("before goes with subject").field("before", "only with subject")
        );
    }
    let answer = if let Some(token) = &body.token {
        let jti = tokens.revoke_access_token(tenant, token.expose()).await?;
        RevokeResponse {
            revoked: "token",
            id: jti,
            before: None,
        }
    } else if let Some(refresh) = &body.refresh_token {
        let session = tokens
            .revoke_refresh_token(tenant, refresh.expose())
            .await?;
        RevokeResponse {
            revoked: "session",
            id: Some(session),
            before: None,
        }
    } else if let Some(jti) = &body.jti {
        tokens.revoke_jti(tenant, jti).await?;
        RevokeResponse {
            revoked: "token",
            id: Some(jti.clone()),
            before: None,
        }
    } else {
        let subject = body.subject.clone().unwrap_or_default();
        let (before, _) = tokens.revoke_subject(tenant, &subject, body.before).await?;
        RevokeResponse {
            revoked: "subject",
            id: Some(subject),
            before: Some(before),
        }
    };
    let mut metadata = serde_json::Map::from_iter([("revoked".to_owned(), answer.revoked.into())]);
    if let Some(before) = answer.before {
        metadata.insert("before".into(), before.into());
    }
    record_change(
        &state,
        &caller,
        "auth.token.revoke",
        Resource {
            kind: answer.revoked.into(),
            id: answer.id.clone(),
        },
        Some(metadata),
    )
    .await?;
    Ok(Json(answer))
}

/// The signing keys, without private material.
#[utoipa::path(get, path = "/v1/auth/signing-keys", tag = "auth",
    security(("api_key" = [])),
    responses((status = 200, body = [KeyStatusBody])))]
pub async fn list_signing_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<KeyStatus>>, Problem> {
    caller.require(VERIFY)?;
    Ok(Json(state.tokens()?.signing_keys()))
}

/// The documented shape of a [`KeyStatus`].
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation only
pub struct KeyStatusBody {
    kid: String,
    version: u32,
    /// `EdDSA`, `ES256` or `RS256`.
    alg: String,
    /// `pending` (published, not signing yet), `active` or `retired`.
    state: String,
    created_at_ms: i64,
    signs_from_ms: i64,
    retire_after_ms: Option<i64>,
    unpublished_at_ms: Option<i64>,
}

/// Creates the next signing key: published in the JWKS at once, signing after
/// the configured publish-ahead time, when the current key retires.
#[utoipa::path(post, path = "/v1/auth/signing-keys", tag = "auth",
    security(("api_key" = [])),
    responses((status = 201, body = KeyStatusBody), (status = 409, body = Problem), (status = 503, body = Problem)))]
pub async fn rotate_signing_key(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<KeyStatus>), Problem> {
    caller.require(ADMIN)?;
    let key = state.tokens()?.rotate_signing_key().await?;
    let metadata = serde_json::Map::from_iter([("version".to_owned(), key.version.into())]);
    record_change(
        &state,
        &caller,
        "auth.signing_key.rotate",
        Resource {
            kind: "signing_key".into(),
            id: Some(key.kid.clone()),
        },
        Some(metadata),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(key)))
}

/// The public keys of Palisade's tokens (RFC 7517), for any verifier. Public,
/// cacheable for half the publish-ahead time: a new key is published that
/// long before it signs.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "JWK Set", content_type = "application/jwk-set+json",
        headers(("Cache-Control" = String)))))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    let document = match state.tokens() {
        Ok(tokens) => tokens.jwks(),
        Err(problem) => return problem.into_response(),
    };
    let cache = format!("public, max-age={}", document.max_age.as_secs());
    let mut response = document.json.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    if let Ok(value) = HeaderValue::from_str(&cache) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}

/// Appends the audit event of a token operation: who asked (the API key),
/// for which subject and session; never the tokens.
async fn audit(
    state: &AppState,
    caller: &Caller,
    action: &str,
    outcome: Outcome,
    subject: &str,
    session: Option<&str>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<(), Problem> {
    let mut metadata = metadata.unwrap_or_default();
    metadata.insert("asked_by".into(), caller.key.id.to_string().into());
    if !subject.is_empty() {
        metadata.insert("subject".into(), subject.into());
    }
    let event = NewEvent {
        id: None,
        tenant: None,
        action: action.to_owned(),
        actor: Actor {
            id: caller.key.id.to_string(),
            kind: Some("api_key".into()),
            ip: None,
            user_agent: None,
        },
        resource: session.map(|id| Resource {
            kind: "session".into(),
            id: Some(id.to_owned()),
        }),
        outcome,
        occurred_at: None,
        request_id: None,
        metadata: Some(metadata),
    };
    state.audit.append(caller.key.tenant.clone(), event).await?;
    Ok(())
}
