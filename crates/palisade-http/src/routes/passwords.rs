//! `/v1/auth/passwords`: argon2id hashing and verification for services in
//! other languages, so they store PHC strings and never choose parameters.
//!
//! Hashing runs on a bounded number of low-priority threads; when every slot
//! stays busy the answer is 503 with `Retry-After`, never a stalled server.
//! Passwords are never logged and never echoed.
//!
//! Verification is brute-force protected when the caller names the `account`
//! and/or the user's `client_ip`: failures are counted (shared across
//! instances through Redis), and a blocked account or address gets 429
//! `account_locked` with `Retry-After` before any hashing. Every failed
//! verification and every lockout is an audit event (without the password or
//! the hash), written before the answer.

use crate::auth::Caller;
use crate::json::ApiJson;
use crate::problem::Problem;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use palisade_audit::event::{Actor, NewEvent, Outcome, Resource};
use palisade_auth::lockout::{Attempt, Failure, LockScope, Locked, LockoutError};
use palisade_core::Secret;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use utoipa::ToSchema;

/// Scope for hashing and verifying.
const SCOPE: &str = "auth:verify";

/// A password to hash.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HashRequest {
    /// The new password (8 to 64 characters by default, counted after NFKC).
    #[schema(value_type = String)]
    pub password: Secret,
}

/// Its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct HashResponse {
    /// An argon2id PHC string to store.
    pub hash: String,
}

/// Hashes a new password with the configured argon2id parameters.
#[utoipa::path(post, path = "/v1/auth/passwords/hash", tag = "auth", request_body = HashRequest,
    security(("api_key" = [])),
    responses((status = 200, body = HashResponse), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn hash(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<HashRequest>,
) -> Result<Json<HashResponse>, Problem> {
    caller.require(SCOPE)?;
    let hash = state.passwords.hash(&body.password).await?;
    Ok(Json(HashResponse {
        hash: hash.into_string(),
    }))
}

/// A password and the hash stored for it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
// Named apart from the token routes' `VerifyRequest` in the OpenAPI components.
#[schema(as = PasswordVerifyRequest)]
pub struct VerifyRequest {
    /// The password as typed.
    #[schema(value_type = String)]
    pub password: Secret,
    /// The stored hash: argon2 PHC, or bcrypt (`$2a$`, `$2b$`, `$2y$`) imported from another system.
    pub hash: String,
    /// The account the password is for (user name, e-mail or id; up to 256
    /// bytes). With it, failures are counted against the account in the API
    /// key's tenant, case-insensitively (NFKC, lowercase, trimmed), and a
    /// locked account is answered 429 without hashing.
    #[serde(default)]
    pub account: Option<String>,
    /// The IP address of the user who typed the password: when a service
    /// verifies its user's login, the user's address, not the service's.
    /// With it, failures are counted against the address (IPv6 by /64).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "203.0.113.7")]
    pub client_ip: Option<String>,
}

/// Whether it matches.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PasswordVerifyResponse)]
pub struct VerifyResponse {
    /// Whether the password matches the hash.
    pub valid: bool,
    /// Set only on a match whose hash is bcrypt or uses other parameters:
    /// a fresh argon2id hash to store in its place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rehash: Option<String>,
}

/// Checks a password against a stored hash, offering a rehash when the
/// stored one is outdated.
///
/// With `account` and/or `client_ip`, failures are counted and a blocked
/// account or address is answered **429** with `Retry-After` and the problem
/// type `https://palisade.dev/problems/account_locked` (the same type whether
/// the account or the address is blocked, and whether by a backoff delay or a
/// lockout: the caller's answer is the same, "try again later"). A 429 carries
/// no verdict: it is also the answer to an attempt that was already being
/// checked when a concurrent failure set the block, even if its password was
/// right. Failed verifications and lockouts are audit events
/// (`auth.password.verify` with outcome `failure`, `auth.lockout` with
/// outcome `denied`).
#[utoipa::path(post, path = "/v1/auth/passwords/verify", tag = "auth", request_body = VerifyRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, body = VerifyResponse),
        (status = 422, body = Problem, description = "Invalid password length, stored hash, account or client_ip"),
        (status = 429, body = Problem, description = "account_locked: too many failed attempts for this account or from this address; see Retry-After",
            headers(("Retry-After" = u64, description = "Seconds until an attempt is let in again"))),
        (status = 503, body = Problem)))]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<Json<VerifyResponse>, Problem> {
    caller.require(SCOPE)?;
    let ip = body
        .client_ip
        .as_deref()
        .map(|raw| {
            raw.trim().parse::<IpAddr>().map_err(|_| {
                Problem::unprocessable("client_ip must be an IPv4 or IPv6 address")
                    .field("client_ip", "must be an IPv4 or IPv6 address")
            })
        })
        .transpose()?;
    let attempt = state.lockout.attempt(
        &caller.key.tenant,
        body.account.as_deref(),
        ip,
        Some(&body.password),
    )?;
    // Before hashing: a blocked account costs no hash.
    state.lockout.check(&attempt).await?;
    let verified = state.passwords.verify(&body.password, &body.hash).await?;
    if verified.ok {
        state.lockout.record_success(&attempt).await?;
        return Ok(Json(VerifyResponse {
            valid: true,
            rehash: verified.rehash.map(|h| h.into_string()),
        }));
    }
    let failure = state.lockout.record_failure(&attempt).await;
    audit_failure(&state, &caller, &attempt, &failure).await?;
    if let Some(locked) = failure.withheld {
        return Err(locked.into());
    }
    Ok(Json(VerifyResponse {
        valid: false,
        rehash: None,
    }))
}

/// Writes the audit events of a failed verification and of the lockouts it
/// caused, durably, before the answer. They name the account and address,
/// never the password, the hash or the credential's fingerprint.
async fn audit_failure(
    state: &AppState,
    caller: &Caller,
    attempt: &Attempt,
    failure: &Failure,
) -> Result<(), Problem> {
    let caller_id = caller.key.id.to_string();
    let actor = match attempt.account() {
        Some(account) => Actor {
            id: account.to_owned(),
            kind: Some("user".into()),
            ip: attempt.ip().map(|ip| ip.to_string()),
            user_agent: None,
        },
        None => Actor {
            id: caller_id.clone(),
            kind: Some("api_key".into()),
            ip: attempt.ip().map(|ip| ip.to_string()),
            user_agent: None,
        },
    };
    let account_resource = attempt.account().map(|account| Resource {
        kind: "account".into(),
        id: Some(account.to_owned()),
    });
    let mut metadata = serde_json::Map::from_iter([
        ("asked_by".to_owned(), caller_id.clone().into()),
        ("withheld".to_owned(), failure.withheld.is_some().into()),
        ("degraded".to_owned(), failure.degraded.into()),
    ]);
    if let Some(counted) = failure.account {
        metadata.insert("account_failures".into(), counted.failures.into());
    }
    if let Some(counted) = failure.client {
        metadata.insert("client_failures".into(), counted.failures.into());
    }
    let mut events = vec![NewEvent {
        id: None,
        tenant: None,
        action: "auth.password.verify".into(),
        actor: actor.clone(),
        resource: account_resource.clone(),
        outcome: Outcome::Failure,
        occurred_at: None,
        request_id: None,
        metadata: Some(metadata),
    }];
    for (scope, counted) in failure.lockouts() {
        let resource = match scope {
            LockScope::Account => account_resource.clone(),
            LockScope::Client => attempt.ip().map(|ip| Resource {
                kind: "client_ip".into(),
                id: Some(ip.to_string()),
            }),
        };
        let locked_for_ms = u64::try_from(counted.blocked_for.as_millis()).unwrap_or(u64::MAX);
        events.push(NewEvent {
            id: None,
            tenant: None,
            action: "auth.lockout".into(),
            actor: actor.clone(),
            resource,
            outcome: Outcome::Denied,
            occurred_at: None,
            request_id: None,
            metadata: Some(serde_json::Map::from_iter([
                ("scope".to_owned(), scope.as_str().into()),
                ("failures".to_owned(), counted.failures.into()),
                ("locked_for_ms".to_owned(), locked_for_ms.into()),
                ("asked_by".to_owned(), caller_id.clone().into()),
            ])),
        });
    }
    let tenant = attempt.tenant().clone();
    state
        .audit
        .append_batch(events.into_iter().map(|e| (tenant.clone(), e)).collect())
        .await?;
    Ok(())
}

impl From<Locked> for Problem {
    fn from(locked: Locked) -> Self {
        let detail = match locked.scope {
            LockScope::Account => "too many failed attempts for this account; try again later",
            LockScope::Client => "too many failed attempts from this address; try again later",
        };
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "account_locked",
            "Too many failed attempts",
        )
        .detail(detail)
        .retry_after(locked.retry_after_secs())
    }
}

impl From<LockoutError> for Problem {
    fn from(e: LockoutError) -> Self {
        match e {
            LockoutError::InvalidAccount => {
                Problem::unprocessable(e.to_string()).field("account", e.to_string())
            }
            LockoutError::InvalidPolicy(_) | LockoutError::Key(_) => {
                tracing::error!(error = %e, "lockout misconfigured");
                Problem::internal()
            }
        }
    }
}
