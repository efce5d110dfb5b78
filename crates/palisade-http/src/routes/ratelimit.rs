//! `/v1/ratelimit`: limit checks for services in other languages, and the
//! rules created over the API.
//!
//! The check answers 200 whether or not the units were granted: answering 429
//! is for the limited request itself, which the calling service sends.
//! Keys are scoped to the caller's tenant, so two tenants using the same key
//! (an IP, a user id) never share a count.

use crate::auth::Caller;
use crate::json::ApiJson;
use crate::problem::Problem;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use palisade_guard::GuardError;
use palisade_guard::ratelimit::{Checked, LimitSpec, Rule, RuleOrigin, RuleSpec};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The scope for checks.
const CHECK_SCOPE: &str = "guard:check";
/// The scope for managing rules.
const ADMIN_SCOPE: &str = "guard:admin";

/// One check: a key against a named rule or an inline limit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// What is limited: a client IP, user id, API key, ... (1 to 512 bytes).
    pub key: String,
    /// A named rule (from `palisade.toml` or the rules API).
    pub rule: Option<String>,
    /// An inline limit, instead of a rule.
    #[schema(value_type = Option<Object>)]
    pub limit: Option<LimitSpec>,
    /// Units this check takes (default 1).
    #[serde(default = "one")]
    pub cost: u64,
    /// The caller's plan, choosing the rule's tier limit when it has one.
    pub tier: Option<String>,
}

fn one() -> u64 {
    1
}

/// The answer to a check.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResponse {
    /// Whether the units were granted (and taken).
    pub allowed: bool,
    /// Units per period of the limit that applied.
    pub limit: u64,
    /// Units still available now.
    pub remaining: u64,
    /// Milliseconds until the key is back to full capacity.
    pub reset_after_ms: u64,
    /// When denied, milliseconds until the same check can pass; else 0.
    pub retry_after_ms: u64,
    /// The policy that applied: the rule, `rule/tier`, or `inline`.
    pub policy: String,
    /// True when Redis was unreachable and this instance's share decided.
    pub degraded: bool,
}

impl From<Checked> for CheckResponse {
    fn from(checked: Checked) -> Self {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            allowed: checked.decision.allowed,
            limit: checked.decision.limit,
            remaining: checked.decision.remaining,
            reset_after_ms: ms(checked.decision.reset_after),
            // Never 0 for a denial: round a sub-millisecond wait up.
            retry_after_ms: if checked.decision.allowed {
                0
            } else {
                ms(checked.decision.retry_after).max(1)
            },
            policy: checked.policy.to_string(),
            degraded: checked.degraded,
        }
    }
}

/// Checks a key against a rule or an inline limit, taking `cost` units when allowed.
#[utoipa::path(post, path = "/v1/ratelimit/check", tag = "ratelimit", request_body = CheckRequest,
    security(("api_key" = [])),
    responses((status = 200, body = CheckResponse), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem, description = "unknown rule"),
        (status = 422, body = Problem)))]
pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CheckRequest>,
) -> Result<Json<CheckResponse>, Problem> {
    caller.require(CHECK_SCOPE)?;
    // Validate the caller's key before adding the tenant, so the limits on
    // its length are the documented ones.
    if body.key.is_empty() || body.key.len() > palisade_guard::ratelimit::MAX_KEY_BYTES {
        return Err(GuardError::Invalid {
            field: "key",
            reason: format!(
                "must be 1 to {} bytes",
                palisade_guard::ratelimit::MAX_KEY_BYTES
            ),
        }
        .into());
    }
    let key = format!("{}\u{1f}{}", caller.key.tenant, body.key);
    let checked = match (&body.rule, &body.limit) {
        (Some(rule), None) => {
            state
                .ratelimit
                .check(rule, &key, body.cost, body.tier.as_deref())
                .await?
        }
        (None, Some(limit)) => state.ratelimit.check_limit(limit, &key, body.cost).await?,
        _ => {
            return Err(Problem::unprocessable("give exactly one of rule and limit")
                .field("rule", "exactly one of rule and limit is required"));
        }
    };
    Ok(Json(checked.into()))
}

/// A rule as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    /// The rule.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub spec: RuleSpec,
    /// `config` (read-only, from `palisade.toml`) or `api`.
    #[schema(value_type = String)]
    pub origin: RuleOrigin,
}

impl From<Rule> for RuleView {
    fn from(rule: Rule) -> Self {
        Self {
            origin: rule.origin(),
            spec: rule.spec().clone(),
        }
    }
}

/// The rules in force on this instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleList {
    /// Rules by name.
    pub rules: Vec<RuleView>,
}

/// Lists the rate-limit rules in force.
#[utoipa::path(get, path = "/v1/ratelimit/rules", tag = "ratelimit",
    security(("api_key" = [])),
    responses((status = 200, body = RuleList), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_rules(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<RuleList>, Problem> {
    caller.require(CHECK_SCOPE)?;
    let rules = state
        .ratelimit
        .rules()
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(RuleList { rules }))
}

/// One rule.
#[utoipa::path(get, path = "/v1/ratelimit/rules/{name}", tag = "ratelimit",
    params(("name" = String, Path, description = "Rule name")),
    security(("api_key" = [])),
    responses((status = 200, body = RuleView), (status = 404, body = Problem)))]
pub async fn get_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<RuleView>, Problem> {
    caller.require(CHECK_SCOPE)?;
    state
        .ratelimit
        .rule(&name)
        .map(|rule| Json(rule.into()))
        .ok_or_else(|| GuardError::UnknownRule(name).into())
}

/// Creates or replaces a rule. The body is the rule without its name (or with
/// the same name as the path). Configured rules cannot be replaced (409).
#[utoipa::path(put, path = "/v1/ratelimit/rules/{name}", tag = "ratelimit",
    params(("name" = String, Path, description = "Rule name")),
    request_body(content = Object, description = "The rule: algorithm, limit, period_ms, burst, key, tiers, routes, adaptive"),
    security(("api_key" = [])),
    responses((status = 200, body = RuleView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn put_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(mut body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<RuleView>, Problem> {
    caller.require(ADMIN_SCOPE)?;
    match body.get("name") {
        None => {
            body.insert("name".into(), serde_json::Value::String(name.clone()));
        }
        Some(given) if given.as_str() == Some(name.as_str()) => {}
        Some(_) => {
            return Err(
                Problem::unprocessable("the body's name differs from the path's")
                    .field("name", "must equal the name in the path"),
            );
        }
    }
    let spec: RuleSpec = serde_path_to_error::deserialize(serde_json::Value::Object(body))
        .map_err(|e| {
            let field = e.path().to_string();
            let why: String = e.inner().to_string().chars().take(300).collect();
            Problem::unprocessable(format!("invalid field {field}: {why}")).field(field, why)
        })?;
    refuse_configured(&state, &name)?;
    let rule = Rule::new(spec, RuleOrigin::Api)?;
    state
        .ratelimit_rules
        .put(rule.spec(), state.clock.now_unix_ms())
        .await?;
    state.ratelimit.upsert_rule(rule.clone());
    record(&state, &caller, "palisade.ratelimit.rule.put", &name).await?;
    Ok(Json(rule.into()))
}

/// Deletes a rule created over the API.
#[utoipa::path(delete, path = "/v1/ratelimit/rules/{name}", tag = "ratelimit",
    params(("name" = String, Path, description = "Rule name")),
    security(("api_key" = [])),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(ADMIN_SCOPE)?;
    refuse_configured(&state, &name)?;
    let stored = state.ratelimit_rules.delete(&name).await?;
    let in_force = state.ratelimit.remove_rule(&name);
    if !stored && !in_force {
        return Err(GuardError::UnknownRule(name).into());
    }
    record(&state, &caller, "palisade.ratelimit.rule.delete", &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn refuse_configured(state: &AppState, name: &str) -> Result<(), Problem> {
    match state.ratelimit.rule(name) {
        Some(rule) if rule.origin() == RuleOrigin::Config => Err(Problem::conflict(
            "this rule comes from palisade.toml; change it there",
        )),
        _ => Ok(()),
    }
}

/// Rule changes are audit events.
async fn record(
    state: &AppState,
    caller: &Caller,
    action: &str,
    rule: &str,
) -> Result<(), Problem> {
    let resource = palisade_audit::event::Resource {
        kind: "ratelimit_rule".into(),
        id: Some(rule.to_owned()),
    };
    super::changes::record_change(state, caller, action, resource, None).await
}
