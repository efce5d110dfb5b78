//! `/v1/authz`: authorization decisions, their explanations, and the policy
//! (roles with their permissions, group memberships, bindings, Casbin import).
//!
//! - Decisions need `authz:check`; policy changes need `authz:admin`.
//! - A key acts in its own tenant; an admin key may name another.
//! - Every policy change is an audit event. Every denied decision is audited
//!   too, and allowed ones when `[authz] audit_allowed_ratio` samples them.
//!   Decision audits are written in the background, so a check never waits
//!   for the log.

use crate::auth::Caller;
use crate::json::ApiJson;
use crate::problem::Problem;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use palisade_audit::event::{Actor, NewEvent, Outcome, Resource};
use palisade_authz::{
    Attributes, AuthzError, Binding, CasbinOptions, Decision, Effect, Grant, Membership, PolicySet,
    Request, RoleDef,
};
use palisade_core::principal::TenantId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Scope for decisions.
const CHECK_SCOPE: &str = "authz:check";
/// Scope for policy changes.
const ADMIN_SCOPE: &str = "authz:admin";
/// Most checks in one batch.
pub const MAX_BATCH: usize = 1000;

/// One authorization question.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The tenant (default: the API key's).
    pub tenant: Option<String>,
    /// Who asks: `user:alice`, `group:eng`, `apikey:...`.
    pub subject: String,
    /// What they want to do: `document:read`.
    pub action: String,
    /// On what: `document/7`.
    pub resource: String,
    /// What binding conditions may look at: `ip`, `time_unix_ms`, `claims`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: Attributes,
}

/// The answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResponse {
    /// Whether it is allowed.
    pub allowed: bool,
    /// The decision's id (UUIDv7), also in its audit event.
    pub decision_id: String,
    /// The tenant's policy version decided against.
    pub policy_version: u64,
}

impl From<&Decision> for CheckResponse {
    fn from(decision: &Decision) -> Self {
        Self {
            allowed: decision.allowed,
            decision_id: decision.id.to_string(),
            policy_version: decision.policy_version,
        }
    }
}

/// Decides one request.
#[utoipa::path(post, path = "/v1/authz/check", tag = "authz", request_body = CheckRequest,
    security(("api_key" = [])),
    responses((status = 200, body = CheckResponse), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CheckRequest>,
) -> Result<Json<CheckResponse>, Problem> {
    caller.require(CHECK_SCOPE)?;
    let tenant = caller.tenant(body.tenant.as_deref())?;
    let decision = decide(&state, &caller, &tenant, &body, false)?;
    Ok(Json(CheckResponse::from(&decision)))
}

/// Several questions at once (at most 1000).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The questions, answered in order.
    pub checks: Vec<CheckRequest>,
}

/// The answers, in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    /// One answer per question.
    pub results: Vec<CheckResponse>,
}

/// Decides up to 1000 requests.
#[utoipa::path(post, path = "/v1/authz/check:batch", tag = "authz", request_body = BatchRequest,
    security(("api_key" = [])),
    responses((status = 200, body = BatchResponse), (status = 422, body = Problem)))]
pub async fn check_batch(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<BatchRequest>,
) -> Result<Json<BatchResponse>, Problem> {
    caller.require(CHECK_SCOPE)?;
    if body.checks.is_empty() || body.checks.len() > MAX_BATCH {
        return Err(
            Problem::unprocessable(format!("a batch holds 1 to {MAX_BATCH} checks"))
                .field("checks", format!("must hold 1 to {MAX_BATCH} checks")),
        );
    }
    // Validate every tenant before deciding anything: a batch is all or nothing.
    let tenants = body
        .checks
        .iter()
        .map(|c| caller.tenant(c.tenant.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut results = Vec::with_capacity(body.checks.len());
    for (index, (check, tenant)) in body.checks.iter().zip(&tenants).enumerate() {
        let decision = decide(&state, &caller, tenant, check, false).map_err(|problem| {
            let detail = problem.detail.clone().unwrap_or_default();
            problem.field(format!("checks[{index}]"), detail)
        })?;
        results.push(CheckResponse::from(&decision));
    }
    Ok(Json(BatchResponse { results }))
}

/// A decision with the reason for it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExplainResponse {
    /// Whether it is allowed.
    pub allowed: bool,
    /// The decision's id.
    pub decision_id: String,
    /// The policy version decided against.
    pub policy_version: u64,
    /// The path that granted it, or the rule that denied it, as data.
    #[schema(value_type = Object)]
    pub explanation: serde_json::Value,
    /// The same as one sentence.
    pub sentence: String,
}

/// Decides one request and says why.
#[utoipa::path(post, path = "/v1/authz/explain", tag = "authz", request_body = CheckRequest,
    security(("api_key" = [])),
    responses((status = 200, body = ExplainResponse), (status = 422, body = Problem)))]
pub async fn explain(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CheckRequest>,
) -> Result<Json<ExplainResponse>, Problem> {
    caller.require(CHECK_SCOPE)?;
    let tenant = caller.tenant(body.tenant.as_deref())?;
    let decision = decide(&state, &caller, &tenant, &body, true)?;
    let explanation = decision.explanation.as_ref();
    Ok(Json(ExplainResponse {
        allowed: decision.allowed,
        decision_id: decision.id.to_string(),
        policy_version: decision.policy_version,
        sentence: explanation.map(|e| e.sentence()).unwrap_or_default(),
        explanation: serde_json::to_value(explanation).unwrap_or_default(),
    }))
}

/// Decides `body` in `tenant` (explained when asked), auditing denials.
fn decide(
    state: &AppState,
    caller: &Caller,
    tenant: &TenantId,
    body: &CheckRequest,
    explained: bool,
) -> Result<Decision, Problem> {
    let request = Request::new(tenant.as_str(), &body.subject, &body.action, &body.resource)
        .with_attributes(&body.attributes);
    let engine = state.authz.engine();
    let decision = if explained {
        engine.explain(&request)?
    } else {
        // The L1 decision cache: keyed by the tenant's policy version, so a
        // change (here or on another instance) makes old answers unreachable.
        let cached = state.authz.cache().check(engine, &request)?;
        let cache = if cached.hit { "hit" } else { "miss" };
        metrics::counter!("palisade_authz_decisions_total", "cache" => cache, "allowed" => if cached.allowed { "true" } else { "false" })
            .increment(1);
        Decision {
            id: palisade_core::new_id(state.clock.as_ref()),
            allowed: cached.allowed,
            policy_version: cached.policy_version,
            explanation: None,
        }
    };
    audit_decision(state, caller, tenant, body, &decision);
    Ok(decision)
}

/// Writes the audit event of a denied (or sampled allowed) decision in the
/// background.
fn audit_decision(
    state: &AppState,
    caller: &Caller,
    tenant: &TenantId,
    body: &CheckRequest,
    decision: &Decision,
) {
    let ratio = state.settings.authz_audit_allowed_ratio;
    // The low bits of a UUIDv7 are random: a fair sample without an RNG.
    let sampled = ratio > 0.0 && (decision.id.as_u128() & 0xffff) < (ratio * 65536.0) as u128;
    if decision.allowed && !sampled {
        return;
    }
    let event = NewEvent {
        id: Some(decision.id),
        tenant: None,
        action: if decision.allowed {
            "authz.decision.allowed".into()
        } else {
            "authz.decision.denied".into()
        },
        actor: Actor {
            id: body.subject.clone(),
            kind: Some("subject".into()),
            ip: body.attributes.ip.map(|ip| ip.to_string()),
            user_agent: None,
        },
        resource: Some(Resource {
            kind: "resource".into(),
            id: Some(body.resource.clone()),
        }),
        outcome: if decision.allowed {
            Outcome::Success
        } else {
            Outcome::Denied
        },
        occurred_at: None,
        request_id: None,
        metadata: Some(serde_json::Map::from_iter([
            ("requested_action".to_owned(), body.action.clone().into()),
            ("policy_version".to_owned(), decision.policy_version.into()),
            ("asked_by".to_owned(), caller.key.id.to_string().into()),
        ])),
    };
    let audit = state.audit.clone();
    let tenant = tenant.clone();
    tokio::spawn(async move {
        if let Err(error) = audit.append(tenant, event).await {
            tracing::warn!(%error, "could not audit an authorization decision");
        }
    });
}

/// Which tenant a policy request is about.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TenantQuery {
    /// The tenant (default: the API key's; another needs an admin key).
    pub tenant: Option<String>,
}

/// A tenant's whole policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    /// Its version, bumped by every change.
    pub version: u64,
    /// Roles (with their permissions), memberships and bindings.
    #[schema(value_type = Object)]
    pub policy: PolicySet,
}

/// The tenant's policy: roles with their permissions, group memberships, bindings.
#[utoipa::path(get, path = "/v1/authz/policy", tag = "authz", params(TenantQuery),
    security(("api_key" = [])),
    responses((status = 200, body = PolicyView), (status = 403, body = Problem)))]
pub async fn policy(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<TenantQuery>,
) -> Result<Json<PolicyView>, Problem> {
    caller.require(ADMIN_SCOPE)?;
    let tenant = caller.tenant(query.tenant.as_deref())?;
    let (policy, version) = state
        .authz
        .policy(tenant.as_str())
        .await?
        .unwrap_or_else(|| (empty(&tenant), 0));
    Ok(Json(PolicyView { version, policy }))
}

/// A role as sent to `PUT /v1/authz/roles/{name}`: its parents and its
/// permissions (`{"action": "document:read", "resource": "document/*", "effect": "allow"}`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// Roles whose permissions this one inherits.
    #[serde(default)]
    pub inherits: Vec<String>,
    /// Its permissions.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub permissions: Vec<Grant>,
}

/// The answer to a policy change.
#[derive(Debug, Serialize, ToSchema)]
pub struct Changed {
    /// The tenant's policy version after the change.
    pub version: u64,
}

/// Creates or replaces a role and its permissions. A change that would make
/// the hierarchy cyclic is refused with 409, and nothing changes.
#[utoipa::path(put, path = "/v1/authz/roles/{name}", tag = "authz", params(("name" = String, Path), TenantQuery),
    request_body = RoleBody, security(("api_key" = [])),
    responses((status = 200, body = Changed), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn put_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<TenantQuery>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Json<Changed>, Problem> {
    let role = RoleDef {
        name: name.clone(),
        inherits: body.inherits,
        grants: body.permissions,
    };
    let edit = move |policy: &mut PolicySet| {
        policy.roles.retain(|r| r.name != role.name);
        policy.roles.push(role.clone());
        Ok(())
    };
    let version = change(
        &state,
        &caller,
        &query,
        ("authz.role.put", "role", &name),
        edit,
    )
    .await?;
    Ok(Json(Changed { version }))
}

/// Deletes a role and every binding of it (a binding of a deleted role must
/// not come back to life if a role of that name is created later). 404 when
/// there is no such role; 422 when other roles still inherit it.
#[utoipa::path(delete, path = "/v1/authz/roles/{name}", tag = "authz", params(("name" = String, Path), TenantQuery),
    security(("api_key" = [])),
    responses((status = 200, body = Changed), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<TenantQuery>,
) -> Result<Json<Changed>, Problem> {
    let target = name.clone();
    let edit = move |policy: &mut PolicySet| {
        remove(
            &mut policy.roles,
            |r| r.name == target,
            || AuthzError::UnknownRoleName(target.clone()),
        )?;
        policy.bindings.retain(|b| b.role != target);
        Ok(())
    };
    let version = change(
        &state,
        &caller,
        &query,
        ("authz.role.delete", "role", &name),
        edit,
    )
    .await?;
    Ok(Json(Changed { version }))
}

/// A binding as sent to `POST /v1/authz/bindings`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingBody {
    /// An id of your choosing (default: a new UUID); posting the same id
    /// again replaces the binding.
    pub id: Option<String>,
    /// Who gets the role: `user:alice`, `group:eng`.
    pub subject: String,
    /// The role.
    pub role: String,
    /// Where: `*` (the whole tenant, the default), `project/42`, `project/42/*`.
    pub scope: Option<String>,
    /// `allow` (default) or `deny`: a deny binding takes the role's
    /// permissions away, whatever else grants them.
    #[serde(default)]
    #[schema(value_type = String)]
    pub effect: Effect,
    /// Conditions that must hold for the binding to apply.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub conditions: Vec<palisade_authz::Condition>,
}

/// A binding just stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct BindingCreated {
    /// Its id.
    pub id: String,
    /// The tenant's policy version after the change.
    pub version: u64,
}

/// Binds a role to a subject, in the whole tenant or on resources.
#[utoipa::path(post, path = "/v1/authz/bindings", tag = "authz", params(TenantQuery),
    request_body = BindingBody, security(("api_key" = [])),
    responses((status = 201, body = BindingCreated), (status = 422, body = Problem)))]
pub async fn create_binding(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<TenantQuery>,
    ApiJson(body): ApiJson<BindingBody>,
) -> Result<impl IntoResponse, Problem> {
    let id = body
        .id
        .unwrap_or_else(|| palisade_core::new_id(state.clock.as_ref()).to_string());
    let binding = Binding {
        id: id.clone(),
        subject: body.subject,
        role: body.role,
        scope: body.scope.unwrap_or_else(|| "*".into()),
        effect: body.effect,
        conditions: body.conditions,
    };
    let edit = move |policy: &mut PolicySet| {
        policy.bindings.retain(|b| b.id != binding.id);
        policy.bindings.push(binding.clone());
        Ok(())
    };
    let what = ("authz.binding.put", "binding", id.as_str());
    let version = change(&state, &caller, &query, what, edit).await?;
    Ok((StatusCode::CREATED, Json(BindingCreated { id, version })))
}

/// Removes a binding; it stops granting on every instance within a second.
#[utoipa::path(delete, path = "/v1/authz/bindings/{id}", tag = "authz", params(("id" = String, Path), TenantQuery),
    security(("api_key" = [])),
    responses((status = 200, body = Changed), (status = 404, body = Problem)))]
pub async fn delete_binding(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<TenantQuery>,
) -> Result<Json<Changed>, Problem> {
    let target = id.clone();
    let edit = move |policy: &mut PolicySet| {
        remove(
            &mut policy.bindings,
            |b| b.id == target,
            || AuthzError::UnknownBinding(target.clone()),
        )
    };
    let what = ("authz.binding.delete", "binding", id.as_str());
    let version = change(&state, &caller, &query, what, edit).await?;
    Ok(Json(Changed { version }))
}

/// Adds a subject to a group: the group's bindings then apply to it.
#[utoipa::path(post, path = "/v1/authz/memberships", tag = "authz", params(TenantQuery),
    request_body(content = Object, description = "{\"member\": \"user:alice\", \"group\": \"group:eng\"}"),
    security(("api_key" = [])),
    responses((status = 200, body = Changed), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn add_membership(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<TenantQuery>,
    ApiJson(body): ApiJson<Membership>,
) -> Result<Json<Changed>, Problem> {
    let resource = format!("{} in {}", body.member, body.group);
    let edit = move |policy: &mut PolicySet| {
        if !policy.memberships.contains(&body) {
            policy.memberships.push(body.clone());
        }
        Ok(())
    };
    let what = ("authz.membership.add", "membership", resource.as_str());
    let version = change(&state, &caller, &query, what, edit).await?;
    Ok(Json(Changed { version }))
}

/// Removes a subject from a group.
#[utoipa::path(delete, path = "/v1/authz/memberships", tag = "authz", params(TenantQuery),
    request_body(content = Object, description = "{\"member\": \"user:alice\", \"group\": \"group:eng\"}"),
    security(("api_key" = [])),
    responses((status = 200, body = Changed), (status = 404, body = Problem)))]
pub async fn remove_membership(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<TenantQuery>,
    ApiJson(body): ApiJson<Membership>,
) -> Result<Json<Changed>, Problem> {
    let resource = format!("{} in {}", body.member, body.group);
    let edit = move |policy: &mut PolicySet| {
        remove(
            &mut policy.memberships,
            |m| m == &body,
            || AuthzError::UnknownMembership,
        )
    };
    let what = ("authz.membership.remove", "membership", resource.as_str());
    let version = change(&state, &caller, &query, what, edit).await?;
    Ok(Json(Changed { version }))
}

/// A Casbin model and policy to import.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CasbinImport {
    /// The tenant for models without domains (default: the key's). With
    /// domains, each Casbin domain is a tenant.
    pub tenant: Option<String>,
    /// `model.conf` text.
    pub model: String,
    /// `policy.csv` text (`p` and `g` lines).
    pub policy: String,
}

/// What an import replaced.
#[derive(Debug, Serialize, ToSchema)]
pub struct Imported {
    /// Each tenant replaced, with its new version.
    pub tenants: Vec<ImportedTenant>,
}

/// One tenant replaced by an import.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportedTenant {
    /// The tenant.
    pub tenant: String,
    /// Its policy version after the import.
    pub version: u64,
}

/// Replaces the policy of the tenant (or of each Casbin domain) with a Casbin
/// RBAC model and policy; the same requests then get the same decisions.
/// Models Palisade cannot represent exactly are refused with 422.
#[utoipa::path(post, path = "/v1/authz/import/casbin", tag = "authz", request_body = CasbinImport,
    security(("api_key" = [])),
    responses((status = 200, body = Imported), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn import_casbin(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CasbinImport>,
) -> Result<Json<Imported>, Problem> {
    caller.require(ADMIN_SCOPE)?;
    let default_tenant = caller.tenant(body.tenant.as_deref())?;
    let sets = palisade_authz::import_casbin(
        &body.model,
        &body.policy,
        &CasbinOptions {
            tenant: default_tenant.to_string(),
        },
    )?;
    // Every domain must be a tenant this key may act in, before anything changes.
    let tenants = sets
        .iter()
        .map(|set| caller.tenant(Some(&set.tenant)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut imported = Vec::with_capacity(sets.len());
    for (set, tenant) in sets.into_iter().zip(tenants) {
        let version = state.authz.replace(set).await?;
        record(
            &state,
            &caller,
            &tenant,
            "authz.policy.import",
            "policy",
            "casbin",
        )
        .await?;
        imported.push(ImportedTenant {
            tenant: tenant.to_string(),
            version,
        });
    }
    Ok(Json(Imported { tenants: imported }))
}

/// What a subject may do.
#[derive(Debug, Serialize, ToSchema)]
pub struct Permissions {
    /// The subject.
    pub subject: String,
    /// Its effective permissions: action, resource, and whether a condition applies.
    #[schema(value_type = Vec<Object>)]
    pub permissions: serde_json::Value,
}

/// A subject's effective permissions, flattened through groups, roles and inheritance.
#[utoipa::path(get, path = "/v1/authz/subjects/{id}/permissions", tag = "authz",
    params(("id" = String, Path, description = "The subject, e.g. user:alice"), TenantQuery),
    security(("api_key" = [])),
    responses((status = 200, body = Permissions)))]
pub async fn subject_permissions(
    State(state): State<AppState>,
    caller: Caller,
    Path(subject): Path<String>,
    Query(query): Query<TenantQuery>,
) -> Result<Json<Permissions>, Problem> {
    caller.require(CHECK_SCOPE)?;
    let tenant = caller.tenant(query.tenant.as_deref())?;
    let permissions = state
        .authz
        .engine()
        .effective_permissions(tenant.as_str(), &subject);
    Ok(Json(Permissions {
        subject,
        permissions: serde_json::to_value(permissions).unwrap_or_default(),
    }))
}

/// Removes the items `doomed` picks; the error of `missing` when there were none.
fn remove<T>(
    items: &mut Vec<T>,
    doomed: impl Fn(&T) -> bool,
    missing: impl FnOnce() -> AuthzError,
) -> Result<(), AuthzError> {
    let before = items.len();
    items.retain(|item| !doomed(item));
    if items.len() == before {
        Err(missing())
    } else {
        Ok(())
    }
}

/// One policy change: checks the caller may change the tenant's policy,
/// applies `edit` (validated, stored and installed by `Authz::modify`), and
/// records `what` = (audit action, resource kind, resource id).
async fn change<F>(
    state: &AppState,
    caller: &Caller,
    query: &TenantQuery,
    what: (&str, &str, &str),
    edit: F,
) -> Result<u64, Problem>
where
    F: Fn(&mut PolicySet) -> Result<(), AuthzError> + Send + Sync,
{
    caller.require(ADMIN_SCOPE)?;
    let tenant = caller.tenant(query.tenant.as_deref())?;
    let version = state.authz.modify(tenant.as_str(), edit).await?;
    let (action, kind, id) = what;
    record(state, caller, &tenant, action, kind, id).await?;
    Ok(version)
}

fn empty(tenant: &TenantId) -> PolicySet {
    PolicySet {
        tenant: tenant.to_string(),
        ..PolicySet::default()
    }
}

/// Policy changes are audit events, in the tenant they change.
async fn record(
    state: &AppState,
    caller: &Caller,
    tenant: &TenantId,
    action: &str,
    kind: &str,
    id: &str,
) -> Result<(), Problem> {
    let resource = Resource {
        kind: kind.into(),
        id: Some(id.to_owned()),
    };
    let metadata = serde_json::Map::from_iter([("tenant".to_owned(), tenant.to_string().into())]);
    super::changes::record_change(state, caller, action, resource, Some(metadata)).await
}
