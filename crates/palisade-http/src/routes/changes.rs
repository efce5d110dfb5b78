//! Changes made through the admin API (keys, rules, ...) are audit events:
//! who changed what, recorded in the caller's tenant before the answer.

use crate::auth::Caller;
use crate::problem::Problem;
use crate::state::AppState;
use palisade_audit::event::{Actor, NewEvent, Outcome, Resource};

/// Appends the audit event of a successful change of `resource` by `caller`.
pub(crate) async fn record_change(
    state: &AppState,
    caller: &Caller,
    action: &str,
    resource: Resource,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<(), Problem> {
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
        resource: Some(resource),
        outcome: Outcome::Success,
        occurred_at: None,
        request_id: None,
        metadata,
    };
    state.audit.append(caller.key.tenant.clone(), event).await?;
    Ok(())
}
