//! `/v1/csrf`: CSRF protection for services in other languages. They ask for
//! a token bound to their session, set the cookie we return, and before each
//! state-changing request hand us the request's headers for a verdict. The
//! rules are those of the Rust layer (`palisade_guard::csrf`).

use crate::auth::Caller;
use crate::json::ApiJson;
use crate::problem::Problem;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use palisade_guard::GuardError;
use palisade_guard::csrf::{CsrfRequest, normalize_origin};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The scope the CSRF endpoints require: they answer protection questions,
/// like the rate-limit checks.
pub const SCOPE: &str = "guard:check";

/// Longest header value accepted, in bytes; real ones are far shorter.
const MAX_FIELD: usize = 8 * 1024;

/// Request for a token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueToken {
    /// The session identifier the token is bound to (1 to 1024 bytes). Use a
    /// value the attacker cannot choose for the victim, such as the session
    /// cookie's id.
    pub session: String,
}

/// A fresh token.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedToken {
    /// The token: put it in the page, send it back in the CSRF header.
    pub token: String,
    /// A `Set-Cookie` value storing the token (`__Host-csrf`, `Secure`,
    /// `SameSite=Strict`, readable by the page's script).
    pub cookie: String,
}

/// The facts of a request to judge, as the service received them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// HTTP method (`POST`).
    pub method: String,
    /// The session the request belongs to.
    pub session: Option<String>,
    /// The token from the CSRF request header.
    pub token_header: Option<String>,
    /// The token from the CSRF cookie.
    pub token_cookie: Option<String>,
    /// `Sec-Fetch-Site`.
    pub sec_fetch_site: Option<String>,
    /// `Origin`.
    pub origin: Option<String>,
    /// `Referer`.
    pub referer: Option<String>,
    /// The service's own origin for this request (`https://app.example`).
    pub host: Option<String>,
    /// Whether the request carried `Authorization: Bearer`.
    #[serde(default)]
    pub bearer: bool,
}

/// The verdict.
#[derive(Debug, Serialize, ToSchema)]
pub struct Verdict {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Which rule decided: `safe_method`, `bearer_exempt`, `same_origin`,
    /// `user_initiated`, `same_site`, `trusted_origin`, `valid_token`,
    /// `cross_site`, `same_site_not_allowed`, `invalid_fetch_metadata`,
    /// `origin_null`, `origin_mismatch`, `referer_mismatch`, `invalid_referer`,
    /// `token_mismatch`, `invalid_token`, `expired_token`, `missing_headers`.
    pub reason: String,
}

/// Issues a double-submit token bound to a session.
#[utoipa::path(post, path = "/v1/csrf/tokens", tag = "csrf", request_body = IssueToken,
    security(("api_key" = [])),
    responses((status = 200, body = IssuedToken), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn issue_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<IssueToken>,
) -> Result<Json<IssuedToken>, Problem> {
    caller.require(SCOPE)?;
    let protection = &state.protection;
    let token = protection
        .csrf
        .tokens()
        .issue(&body.session, state.clock.as_ref())
        .map_err(guard_problem)?;
    let cookie = protection.csrf_settings.token_cookie(&token);
    Ok(Json(IssuedToken { token, cookie }))
}

/// Judges one request by the CSRF rules. Always 200 with a verdict; 422 only
/// for input that is not a request.
#[utoipa::path(post, path = "/v1/csrf/verify", tag = "csrf", request_body = VerifyRequest,
    security(("api_key" = [])),
    responses((status = 200, body = Verdict), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<Json<Verdict>, Problem> {
    caller.require(SCOPE)?;
    validate(&body)?;
    let method = body.method.to_ascii_uppercase();
    let facts = CsrfRequest {
        method: &method,
        sec_fetch_site: body.sec_fetch_site.as_deref(),
        origin: body.origin.as_deref(),
        referer: body.referer.as_deref(),
        request_origin: body.host.as_deref(),
        has_bearer: body.bearer,
        session: body.session.as_deref(),
        token_header: body.token_header.as_deref(),
        token_cookie: body.token_cookie.as_deref(),
    };
    let verdict = state.protection.csrf.check(&facts, state.clock.as_ref());
    Ok(Json(Verdict {
        allowed: verdict.allowed,
        reason: verdict.reason.as_str().to_owned(),
    }))
}

fn validate(body: &VerifyRequest) -> Result<(), Problem> {
    let bad = |field: &str, message: &str| {
        Problem::unprocessable(format!("{field}: {message}")).field(field, message)
    };
    if body.method.is_empty()
        || body.method.len() > 32
        || !body
            .method
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'-')
    {
        return Err(bad("method", "not an HTTP method"));
    }
    let fields = [
        ("session", &body.session),
        ("token_header", &body.token_header),
        ("token_cookie", &body.token_cookie),
        ("sec_fetch_site", &body.sec_fetch_site),
        ("origin", &body.origin),
        ("referer", &body.referer),
        ("host", &body.host),
    ];
    for (field, value) in fields {
        if value.as_ref().is_some_and(|v| v.len() > MAX_FIELD) {
            return Err(bad(field, "longer than 8 KiB"));
        }
    }
    if let Some(host) = &body.host
        && normalize_origin(host).is_none()
    {
        return Err(bad("host", "not an origin (scheme://host[:port])"));
    }
    Ok(())
}

fn guard_problem(e: GuardError) -> Problem {
    match e {
        GuardError::Invalid { field, reason } => {
            Problem::unprocessable(format!("{field}: {reason}")).field(field, reason)
        }
        other => {
            tracing::error!(error = %other, "CSRF token issue failed");
            Problem::internal()
        }
    }
}
