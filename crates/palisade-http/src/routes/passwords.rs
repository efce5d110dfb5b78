//! `/v1/auth/passwords`: argon2id hashing and verification for services in
//! other languages, so they store PHC strings and never choose parameters.
//!
//! Hashing runs on a bounded number of low-priority threads; when every slot
//! stays busy the answer is 503 with `Retry-After`, never a stalled server.
//! Passwords are never logged and never echoed.

use crate::auth::Caller;
use crate::json::ApiJson;
use crate::problem::Problem;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use palisade_core::Secret;
use serde::{Deserialize, Serialize};
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
pub struct VerifyRequest {
    /// The password as typed.
    #[schema(value_type = String)]
    pub password: Secret,
    /// The stored hash: argon2 PHC, or bcrypt (`$2a$`, `$2b$`, `$2y$`) imported from another system.
    pub hash: String,
}

/// Whether it matches.
#[derive(Debug, Serialize, ToSchema)]
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
#[utoipa::path(post, path = "/v1/auth/passwords/verify", tag = "auth", request_body = VerifyRequest,
    security(("api_key" = [])),
    responses((status = 200, body = VerifyResponse), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<Json<VerifyResponse>, Problem> {
    caller.require(SCOPE)?;
    let verified = state.passwords.verify(&body.password, &body.hash).await?;
    Ok(Json(VerifyResponse {
        valid: verified.ok,
        rehash: verified.rehash.map(|h| h.into_string()),
    }))
}
