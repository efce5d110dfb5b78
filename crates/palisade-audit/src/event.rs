//! The audit event: what a caller sends, how it is validated, and the canonical
//! leaf bytes (RFC 8785 JSON) that enter the Merkle tree and are stored verbatim,
//! so verification never re-serializes anything.

use palisade_core::principal::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::IpAddr;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// Version of the leaf layout, the first field of every leaf.
pub const LEAF_VERSION: u32 = 1;

/// An event as a caller submits it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// Optional client-chosen id (UUID); resubmitting the same id is a no-op.
    pub id: Option<Uuid>,
    /// Tenant to record under; only admin keys may name one other than their own.
    pub tenant: Option<String>,
    /// What happened, dotted lowercase (`auth.login`, `document.delete`).
    pub action: String,
    /// Who did it.
    pub actor: Actor,
    /// What it was done to.
    pub resource: Option<Resource>,
    /// How it ended.
    pub outcome: Outcome,
    /// When it happened by the caller's clock (RFC 3339).
    pub occurred_at: Option<String>,
    /// The caller's request id, to join with its logs.
    pub request_id: Option<String>,
    /// Anything else, as a JSON object (bounded size and depth).
    pub metadata: Option<Map<String, Value>>,
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// Stable id of the actor (user id, service name).
    pub id: String,
    /// Kind of actor (`user`, `service`, `api_key`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Client IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Client user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// What was acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// Kind of resource (`document`, `user`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// How the action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It worked.
    Success,
    /// It was attempted and failed (wrong password).
    Failure,
    /// It was refused by policy.
    Denied,
    /// It broke.
    Error,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
            Self::Error => "error",
        }
    }

    /// Parses a stored or queried name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "success" => Some(Self::Success),
            "failure" => Some(Self::Failure),
            "denied" => Some(Self::Denied),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

/// Bounds on what one event may carry.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventLimits {
    /// Largest `metadata`, serialized, in bytes.
    pub max_metadata_bytes: usize,
    /// Deepest nesting of `metadata` (and of `pii`).
    pub max_metadata_depth: usize,
    /// Most events in one append.
    pub max_batch: usize,
    /// Largest `pii` object, in canonical (RFC 8785) bytes, before encryption.
    pub max_pii_bytes: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            max_metadata_bytes: 16 * 1024,
            max_metadata_depth: 16,
            max_batch: 1000,
            max_pii_bytes: 8 * 1024,
        }
    }
}

/// An invalid field, named by its path (`actor.ip`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    /// Path of the field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> InvalidField {
    InvalidField {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// An event that passed validation, with its id, tenant and canonical leaf fixed.
/// Serializable so the spool can keep it while the database is down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedEvent {
    /// The event id.
    pub id: Uuid,
    /// The tenant.
    pub tenant: TenantId,
    /// Dotted action.
    pub action: String,
    /// Actor id.
    pub actor_id: String,
    /// Actor type.
    pub actor_type: Option<String>,
    /// Resource type.
    pub resource_type: Option<String>,
    /// Resource id.
    pub resource_id: Option<String>,
    /// Outcome.
    pub outcome: Outcome,
    /// Server receive time, Unix ms.
    pub received_at_ms: i64,
    /// The canonical leaf bytes.
    pub leaf: Vec<u8>,
}

/// The canonical leaf layout; field names are part of the log's format forever.
#[derive(Serialize)]
struct Leaf<'a> {
    v: u32,
    id: Uuid,
    tenant: &'a str,
    action: &'a str,
    actor: &'a Actor,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a Resource>,
    outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    occurred_at: Option<String>,
    received_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Map<String, Value>>,
    /// The data subject (`crate::pii`), in clear.
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    /// The subject's personal data, only ever as ciphertext (`crate::pii`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pii: Option<&'a str>,
}

/// An event whose fields passed validation, waiting for its leaf.
#[derive(Debug)]
pub(crate) struct CheckedEvent {
    occurred_at: Option<String>,
}

impl NewEvent {
    /// Validates the event and builds its leaf. `id` is used when the caller gave none.
    pub fn prepare(
        &self,
        tenant: TenantId,
        id: Uuid,
        received_at: OffsetDateTime,
        limits: &EventLimits,
    ) -> Result<PreparedEvent, InvalidField> {
        let checked = self.check(limits)?;
        self.build(
            tenant,
            self.id.unwrap_or(id),
            received_at,
            &checked,
            None,
            None,
        )
    }

    /// Validates every field (the `pii` of [`crate::pii`] is checked apart).
    pub(crate) fn check(&self, limits: &EventLimits) -> Result<CheckedEvent, InvalidField> {
        check_action(&self.action)?;
        check_text("actor.id", &self.actor.id, 1, 256)?;
        if let Some(kind) = &self.actor.kind {
            check_token("actor.type", kind)?;
        }
        if let Some(ip) = &self.actor.ip {
            ip.parse::<IpAddr>()
                .map_err(|_| invalid("actor.ip", "must be an IPv4 or IPv6 address"))?;
        }
        if let Some(agent) = &self.actor.user_agent {
            check_text("actor.user_agent", agent, 0, 512)?;
        }
        if let Some(resource) = &self.resource {
            check_token("resource.type", &resource.kind)?;
            if let Some(rid) = &resource.id {
                check_text("resource.id", rid, 1, 256)?;
            }
        }
        if let Some(request_id) = &self.request_id {
            check_text("request_id", request_id, 1, 128)?;
        }
        let occurred_at = self
            .occurred_at
            .as_deref()
            .map(|raw| {
                OffsetDateTime::parse(raw, &Rfc3339)
                    .map_err(|_| invalid("occurred_at", "must be an RFC 3339 timestamp"))
                    .and_then(format_utc)
            })
            .transpose()?;
        if let Some(metadata) = &self.metadata {
            check_metadata(metadata, limits)?;
        }
        Ok(CheckedEvent { occurred_at })
    }

    /// Builds the leaf of a checked event with its final `id`, the data subject
    /// and the already sealed `pii` (never plaintext).
    pub(crate) fn build(
        &self,
        tenant: TenantId,
        id: Uuid,
        received_at: OffsetDateTime,
        checked: &CheckedEvent,
        subject: Option<&str>,
        sealed_pii: Option<&str>,
    ) -> Result<PreparedEvent, InvalidField> {
        let leaf = Leaf {
            v: LEAF_VERSION,
            id,
            tenant: tenant.as_str(),
            action: &self.action,
            actor: &self.actor,
            resource: self.resource.as_ref(),
            outcome: self.outcome,
            occurred_at: checked.occurred_at.clone(),
            received_at: format_utc(received_at)?,
            request_id: self.request_id.as_deref(),
            metadata: self.metadata.as_ref(),
            subject,
            pii: sealed_pii,
        };
        let leaf = serde_jcs::to_vec(&leaf)
            .map_err(|e| invalid("metadata", format!("not representable: {e}")))?;
        Ok(PreparedEvent {
            id,
            tenant,
            action: self.action.clone(),
            actor_id: self.actor.id.clone(),
            actor_type: self.actor.kind.clone(),
            resource_type: self.resource.as_ref().map(|r| r.kind.clone()),
            resource_id: self.resource.as_ref().and_then(|r| r.id.clone()),
            outcome: self.outcome,
            received_at_ms: (received_at.unix_timestamp_nanos() / 1_000_000) as i64,
            leaf,
        })
    }
}

/// RFC 3339 in UTC with millisecond precision, one spelling per instant.
fn format_utc(at: OffsetDateTime) -> Result<String, InvalidField> {
    let utc = at.to_offset(time::UtcOffset::UTC);
    let millis = utc
        .replace_nanosecond(utc.millisecond() as u32 * 1_000_000)
        .unwrap_or(utc);
    millis
        .format(&Rfc3339)
        .map_err(|_| invalid("occurred_at", "out of range"))
}

fn check_action(action: &str) -> Result<(), InvalidField> {
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if action.len() > 128 || !action.split('.').all(segment_ok) {
        return Err(invalid(
            "action",
            "must be dotted lowercase segments of [a-z0-9_-], at most 128 characters (e.g. auth.login)",
        ));
    }
    Ok(())
}

fn check_token(field: &str, value: &str) -> Result<(), InvalidField> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            "must be 1 to 64 characters of [A-Za-z0-9_.:-]",
        ))
    }
}

fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<(), InvalidField> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(invalid(field, format!("must be {min} to {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_metadata(metadata: &Map<String, Value>, limits: &EventLimits) -> Result<(), InvalidField> {
    fn depth(value: &Value) -> usize {
        match value {
            Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    let nesting = 1 + metadata.values().map(depth).max().unwrap_or(0);
    if nesting > limits.max_metadata_depth {
        return Err(invalid(
            "metadata",
            format!(
                "nested {nesting} levels deep; at most {}",
                limits.max_metadata_depth
            ),
        ));
    }
    let size = serde_json::to_vec(metadata)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > limits.max_metadata_bytes {
        return Err(invalid(
            "metadata",
            format!("{size} bytes; at most {}", limits.max_metadata_bytes),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: Value) -> NewEvent {
        serde_json::from_value(json).unwrap_or_else(|e| panic!("test event: {e}"))
    }

    fn prepare(e: &NewEvent) -> Result<PreparedEvent, InvalidField> {
        let at = OffsetDateTime::from_unix_timestamp(1_767_225_600)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        e.prepare(
            TenantId::default_tenant(),
            Uuid::nil(),
            at,
            &EventLimits::default(),
        )
    }

    fn minimal() -> Value {
        serde_json::json!({"action": "auth.login", "actor": {"id": "u1"}, "outcome": "success"})
    }

    #[test]
    fn leaf_is_canonical_json_with_sorted_keys_and_utc_times() {
        let mut json = minimal();
        json["metadata"] = serde_json::json!({"z": 1, "a": [true, null, 1.5]});
        json["occurred_at"] = Value::from("2026-01-01T01:00:00.123456+01:00");
        let prepared = prepare(&event(json)).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8(prepared.leaf).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"action":"auth.login","actor":{"id":"u1"},"id":"00000000-0000-0000-0000-000000000000","metadata":{"a":[true,null,1.5],"z":1},"occurred_at":"2026-01-01T00:00:00.123Z","outcome":"success","received_at":"2026-01-01T00:00:00Z","tenant":"default","v":1}"#
        );
    }

    #[test]
    fn names_the_invalid_field() {
        let cases = [
            (serde_json::json!({"action": "Auth Login"}), "action"),
            (serde_json::json!({"actor": {"id": ""}}), "actor.id"),
            (
                serde_json::json!({"actor": {"id": "u", "ip": "999.1.1.1"}}),
                "actor.ip",
            ),
            (
                serde_json::json!({"occurred_at": "yesterday"}),
                "occurred_at",
            ),
            (
                serde_json::json!({"resource": {"type": "a b"}}),
                "resource.type",
            ),
            (serde_json::json!({"request_id": "a\nb"}), "request_id"),
            (
                serde_json::json!({"metadata": {"blob": "x".repeat(17 * 1024)}}),
                "metadata",
            ),
        ];
        for (patch, field) in cases {
            let mut json = minimal();
            if let (Some(target), Some(patch)) = (json.as_object_mut(), patch.as_object()) {
                target.extend(patch.clone());
            }
            let err = prepare(&event(json)).err();
            assert_eq!(err.map(|e| e.field), Some(field.to_owned()), "{patch:?}");
        }
    }

    #[test]
    fn rejects_deep_metadata() {
        let mut deep = Value::from(1);
        for _ in 0..20 {
            deep = serde_json::json!({ "d": deep });
        }
        let mut json = minimal();
        json["metadata"] = serde_json::json!({ "deep": deep });
        assert_eq!(
            prepare(&event(json)).err().map(|e| e.field),
            Some("metadata".into())
        );
    }

    #[test]
    fn unknown_outcome_and_unknown_fields_do_not_parse() {
        let mut json = minimal();
        json["outcome"] = Value::from("maybe");
        assert!(serde_json::from_value::<NewEvent>(json).is_err());
        let mut json = minimal();
        json["extra"] = Value::from(1);
        assert!(serde_json::from_value::<NewEvent>(json).is_err());
    }

    #[test]
    fn client_id_wins_over_the_generated_one() {
        let mut json = minimal();
        let id = Uuid::now_v7();
        json["id"] = Value::from(id.to_string());
        assert_eq!(prepare(&event(json)).map(|p| p.id).ok(), Some(id));
    }
}
