//! `/v1/api-keys`: create, list and revoke the API keys of Palisade's own API. Admin only.

use crate::auth::Caller;
use crate::json::ApiJson;
use crate::problem::Problem;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use palisade_auth::{ApiKey, NewApiKey, Scope, Scopes};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Request to create a key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// A human name, 1 to 200 characters.
    pub name: String,
    /// Scopes, e.g. `["audit:write"]`.
    pub scopes: Vec<String>,
    /// Tenant; defaults to the caller's.
    pub tenant: Option<String>,
    /// Expiry as Unix milliseconds.
    pub expires_at_ms: Option<i64>,
}

/// A key as listed (no secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Tenant.
    pub tenant: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Created (Unix ms).
    pub created_at_ms: i64,
    /// Expires (Unix ms).
    pub expires_at_ms: Option<i64>,
    /// Revoked (Unix ms).
    pub revoked_at_ms: Option<i64>,
}

impl From<ApiKey> for KeyView {
    fn from(key: ApiKey) -> Self {
        Self::from(&key)
    }
}

impl From<&ApiKey> for KeyView {
    fn from(key: &ApiKey) -> Self {
        Self {
            id: key.id,
            name: key.name.clone(),
            tenant: key.tenant.to_string(),
            scopes: key.scopes.iter().map(|s| s.to_string()).collect(),
            created_at_ms: key.created_at_ms,
            expires_at_ms: key.expires_at_ms,
            revoked_at_ms: key.revoked_at_ms,
        }
    }
}

/// A key just created, with its secret: shown this once, never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The stored key.
    #[serde(flatten)]
    pub key: KeyView,
    /// The secret to use as `Authorization: Bearer <secret>`.
    pub secret: String,
}

/// List filter.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListKeys {
    /// Only keys of this tenant.
    pub tenant: Option<String>,
}

/// Creates an API key.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = CreateKey,
    security(("api_key" = [])),
    responses((status = 201, body = CreatedKey), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(Scope::ADMIN)?;
    let scopes = Scopes::parse(body.scopes.iter().map(String::as_str))
        .map_err(|e| Problem::unprocessable(e.to_string()).field("scopes", e.to_string()))?;
    if scopes.iter().next().is_none() {
        return Err(
            Problem::unprocessable("a key needs at least one scope").field("scopes", "empty")
        );
    }
    let tenant = caller.tenant(body.tenant.as_deref())?;
    let issued = state
        .api_keys
        .create(NewApiKey {
            name: body.name,
            tenant,
            scopes,
            expires_at_ms: body.expires_at_ms,
        })
        .await?;
    tracing::info!(key_id = %issued.key.id, "API key created");
    record(&state, &caller, "palisade.api_key.create", &issued.key).await?;
    let created = CreatedKey {
        secret: issued.secret.expose().to_owned(),
        key: issued.key.into(),
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// Lists API keys, newest first.
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", params(ListKeys),
    security(("api_key" = [])),
    responses((status = 200, body = Vec<KeyView>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListKeys>,
) -> Result<Json<serde_json::Value>, Problem> {
    caller.require(Scope::ADMIN)?;
    let tenant = query
        .tenant
        .as_deref()
        .map(|t| caller.tenant(Some(t)))
        .transpose()?;
    let keys: Vec<KeyView> = state
        .api_keys
        .list(tenant.as_ref())
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(serde_json::json!({ "keys": keys })))
}

/// Revokes an API key. It stops working at once on this instance.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = Uuid, Path, description = "Key id")),
    security(("api_key" = [])),
    responses((status = 200, body = KeyView), (status = 404, body = Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, Problem> {
    caller.require(Scope::ADMIN)?;
    let id = Uuid::parse_str(&id).map_err(|_| Problem::not_found("no API key with that id"))?;
    let key = state.api_keys.revoke(id).await?;
    tracing::info!(key_id = %key.id, "API key revoked");
    record(&state, &caller, "palisade.api_key.revoke", &key).await?;
    Ok(Json(key.into()))
}

/// Changes to who may call Palisade are themselves audit events.
async fn record(
    state: &AppState,
    caller: &Caller,
    action: &str,
    key: &ApiKey,
) -> Result<(), Problem> {
    let resource = palisade_audit::event::Resource {
        kind: "api_key".into(),
        id: Some(key.id.to_string()),
    };
    let metadata = serde_json::Map::from_iter([
        ("name".to_owned(), serde_json::Value::from(key.name.clone())),
        (
            "key_tenant".to_owned(),
            serde_json::Value::from(key.tenant.to_string()),
        ),
        (
            "scopes".to_owned(),
            serde_json::Value::from(key.scopes.to_stored()),
        ),
    ]);
    super::changes::record_change(state, caller, action, resource, Some(metadata)).await
}

/// The API key making this request: lets a caller check its credentials and scopes.
#[utoipa::path(get, path = "/v1/whoami", tag = "api-keys", security(("api_key" = [])),
    responses((status = 200, body = KeyView), (status = 401, body = Problem)))]
pub async fn whoami(caller: Caller) -> Json<KeyView> {
    Json(caller.key.as_ref().into())
}
