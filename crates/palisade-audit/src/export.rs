//! Export formats of stored events: NDJSON (the API's event view plus the leaf
//! hash), OCSF 1.3 JSON, and ArcSight CEF. Pure functions over one [`StoredEvent`],
//! so an exporter can stream any number of events a page at a time.
//!
//! Every format carries the event's index in the tree and its RFC 6962 leaf hash
//! (base64), so a record found in a SIEM can be proven against a signed checkpoint
//! with `/v1/audit/proofs/inclusion`.
//!
//! # OCSF mapping
//!
//! OCSF 1.x has no class for authorization decisions (Authorize Session, 3003, is
//! about privileges granted to a new session), so access checks are API activity.
//! The first matching row wins:
//!
//! | action | class | `activity_id` |
//! |---|---|---|
//! | `auth.*` | Authentication (3002), category IAM (3) | `login`/`logon`/`signin`/`sign_in` → 1 Logon; `logout`/`logoff`/`signout`/`sign_out` → 2 Logoff; else 99 Other |
//! | `authz.*` (access decisions, permission denials) | API Activity (6003), category Application Activity (6) | 99 Other (`activity_name` is the action) |
//! | any segment `api_key`, `user` or `account` (`palisade.api_key.create`, `user.delete`) | Account Change (3001), category IAM (3) | last segment `create` → 1 Create; `enable` → 2; `password_change` → 3; `password_reset` → 4; `disable`/`revoke` → 5 Disable; `delete` → 6; `lock` → 9; `unlock` → 12; else 99 |
//! | anything else (`document.read`) | API Activity (6003), category Application Activity (6) | last segment `create`/`add`/`insert` → 1 Create; `read`/`get`/`list`/`view`/`search`/`export` → 2 Read; `update`/`edit`/`modify`/`patch`/`set` → 3 Update; `delete`/`remove`/`destroy` → 4 Delete; else 99 |
//!
//! Common to every class: `type_uid` = `class_uid`·100 + `activity_id`; `time` is
//! `occurred_at` when the caller gave one, else `received_at` (Unix ms), with
//! `metadata.logged_time` = `received_at` and `metadata.original_time` = the
//! caller's `occurred_at` text; `status_id` 1 Success for `success`, 2 Failure for
//! `failure`, `denied` and `error` (the outcome itself in `status_detail`);
//! `severity_id` 1 Informational (success), 2 Low (failure, error), 3 Medium
//! (denied); `actor.user.uid` = actor id; `src_endpoint.ip` = actor IP;
//! `metadata.uid` = event id, `metadata.sequence` = index, `metadata.tenant_uid` =
//! tenant, `metadata.correlation_uid` = the caller's request id; `unmapped.palisade`
//! holds `index`, `leaf_hash`, `tenant`, the caller's `metadata`, and the event's
//! `subject` and `pii` view (decrypted, redacted or erased, as in
//! [`crate::pii`]; CEF records carry neither). Authentication
//! and Account Change also set the required `user` (the actor for a login, the
//! changed resource for an account change); API Activity sets `api.operation` (the
//! action) and `resources`.
//!
//! # CEF
//!
//! `CEF:0|Palisade|Palisade|<version>|<action>|<action>|<severity>|<extension>` with
//! severity 3 (success), 5 (failure, error) or 7 (denied). Header fields escape `\`
//! and `|`; extension values escape `\`, `=`, CR and LF (as `\r`, `\n`). Extension
//! keys: `externalId` (event id), `rt` (received, Unix ms), `start` (occurred, when
//! given), `suser` (actor id), `src` (IPv4) or `c6a2` (IPv6, labelled), `requestClientApplication`
//! (user agent), `outcome`, `cs1` index, `cs2` leaf hash, `cs3` tenant, `cs4`
//! resource (`type/id`), `cs5` request id, each `csN` with its `csNLabel`.

use crate::merkle::leaf_hash;
use crate::store::StoredEvent;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use std::fmt::Write as _;
use std::net::IpAddr;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The product version written into OCSF metadata and CEF headers.
const PRODUCT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The OCSF schema version the mapping follows.
pub const OCSF_VERSION: &str = "1.3.0";

/// A format `GET /v1/audit/export` can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One event view (`index`, `id`, `event`, `leaf_hash`) per line.
    Ndjson,
    /// One OCSF event per line.
    Ocsf,
    /// One CEF record per line.
    Cef,
}

impl ExportFormat {
    /// Parses the `format` query value.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ndjson" => Some(Self::Ndjson),
            "ocsf" => Some(Self::Ocsf),
            "cef" => Some(Self::Cef),
            _ => None,
        }
    }

    /// The media type of an export in this format.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Ndjson | Self::Ocsf => "application/x-ndjson",
            Self::Cef => "text/plain; charset=utf-8",
        }
    }

    /// A file name extension for downloads.
    pub fn file_extension(self) -> &'static str {
        match self {
            Self::Ndjson | Self::Ocsf => "ndjson",
            Self::Cef => "cef",
        }
    }

    /// One event as one line, newline included.
    pub fn line(self, event: &StoredEvent) -> String {
        let mut line = match self {
            Self::Ndjson => ndjson(event).to_string(),
            Self::Ocsf => ocsf(event).to_string(),
            Self::Cef => cef(event),
        };
        line.push('\n');
        line
    }
}

/// The leaf hash of a stored event, base64: what inclusion proofs are about.
pub fn leaf_hash_base64(event: &StoredEvent) -> String {
    STANDARD.encode(leaf_hash(&event.leaf))
}

/// The parsed leaf as the reader may see it ([`crate::pii::leaf_view`]: `pii`
/// decrypted, redacted or erased, never the ciphertext), or `null` for bytes that
/// are not JSON (every leaf Palisade writes is; a damaged one must still export,
/// and `audit verify` reports it).
fn parsed_leaf(event: &StoredEvent) -> Value {
    crate::pii::leaf_view(event)
}

/// The NDJSON record: the shape of a `GET /v1/audit/events` item plus `leaf_hash`.
pub fn ndjson(event: &StoredEvent) -> Value {
    json!({
        "index": event.index,
        "id": event.id,
        "event": parsed_leaf(event),
        "leaf_hash": leaf_hash_base64(event),
    })
}

/// An OCSF class and activity, with their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OcsfClass {
    /// `category_uid`.
    pub category_uid: u32,
    /// `category_name`.
    pub category_name: &'static str,
    /// `class_uid`.
    pub class_uid: u32,
    /// `class_name`.
    pub class_name: &'static str,
    /// `activity_id`.
    pub activity_id: u32,
    /// `activity_name`.
    pub activity_name: &'static str,
}

const IAM: (u32, &str) = (3, "Identity & Access Management");
const APPLICATION: (u32, &str) = (6, "Application Activity");

fn class(
    (category_uid, category_name): (u32, &'static str),
    class_uid: u32,
    class_name: &'static str,
    (activity_id, activity_name): (u32, &'static str),
) -> OcsfClass {
    OcsfClass {
        category_uid,
        category_name,
        class_uid,
        class_name,
        activity_id,
        activity_name,
    }
}

/// The OCSF class and activity of an action (the table in the module docs).
pub fn ocsf_class(action: &str) -> OcsfClass {
    let segments: Vec<&str> = action.split('.').collect();
    let first = segments.first().copied().unwrap_or_default();
    let last = segments.last().copied().unwrap_or_default();
    if first == "auth" {
        let activity = match last {
            "login" | "logon" | "signin" | "sign_in" => (1, "Logon"),
            "logout" | "logoff" | "signout" | "sign_out" => (2, "Logoff"),
            _ => (99, "Other"),
        };
        return class(IAM, 3002, "Authentication", activity);
    }
    if first == "authz" {
        return class(APPLICATION, 6003, "API Activity", (99, "Other"));
    }
    if segments
        .iter()
        .any(|s| matches!(*s, "api_key" | "user" | "account"))
    {
        let activity = match last {
            "create" => (1, "Create"),
            "enable" => (2, "Enable"),
            "password_change" => (3, "Password Change"),
            "password_reset" => (4, "Password Reset"),
            "disable" | "revoke" => (5, "Disable"),
            "delete" => (6, "Delete"),
            "lock" => (9, "Lock"),
            "unlock" => (12, "Unlock"),
            _ => (99, "Other"),
        };
        return class(IAM, 3001, "Account Change", activity);
    }
    let activity = match last {
        "create" | "add" | "insert" => (1, "Create"),
        "read" | "get" | "list" | "view" | "search" | "export" => (2, "Read"),
        "update" | "edit" | "modify" | "patch" | "set" => (3, "Update"),
        "delete" | "remove" | "destroy" => (4, "Delete"),
        _ => (99, "Other"),
    };
    class(APPLICATION, 6003, "API Activity", activity)
}

/// Unix ms of an RFC 3339 timestamp in the leaf.
fn unix_ms(value: &Value) -> Option<i64> {
    let at = OffsetDateTime::parse(value.as_str()?, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

fn text(value: &Value) -> Option<&str> {
    value.as_str()
}

/// Inserts `key` only when `value` is present, so records carry no `null`s.
fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        map.insert(key.to_owned(), value);
    }
}

/// The OCSF event of a stored event (see the mapping table in the module docs).
pub fn ocsf(event: &StoredEvent) -> Value {
    let leaf = parsed_leaf(event);
    let action = text(&leaf["action"]).unwrap_or_default();
    let outcome = text(&leaf["outcome"]).unwrap_or("unknown");
    let class = ocsf_class(action);
    let actor_id = text(&leaf["actor"]["id"]);
    let received_ms = unix_ms(&leaf["received_at"]);
    let occurred_ms = unix_ms(&leaf["occurred_at"]);
    let (status_id, status) = match outcome {
        "success" => (1, "Success"),
        "failure" | "denied" | "error" => (2, "Failure"),
        _ => (0, "Unknown"),
    };
    let (severity_id, severity) = match outcome {
        "success" => (1, "Informational"),
        "denied" => (3, "Medium"),
        "failure" | "error" => (2, "Low"),
        _ => (0, "Unknown"),
    };

    let mut user = Map::new();
    put(&mut user, "uid", actor_id.map(Value::from));
    put(
        &mut user,
        "type",
        text(&leaf["actor"]["type"]).map(Value::from),
    );
    let actor_user = Value::Object(user);

    let mut metadata = Map::new();
    metadata.insert(
        "product".into(),
        json!({"name": "Palisade", "vendor_name": "Palisade", "version": PRODUCT_VERSION}),
    );
    metadata.insert("version".into(), Value::from(OCSF_VERSION));
    metadata.insert("uid".into(), Value::from(event.id.to_string()));
    metadata.insert("sequence".into(), Value::from(event.index));
    metadata.insert("tenant_uid".into(), Value::from(event.tenant.as_str()));
    put(&mut metadata, "logged_time", received_ms.map(Value::from));
    put(
        &mut metadata,
        "original_time",
        text(&leaf["occurred_at"]).map(Value::from),
    );
    put(
        &mut metadata,
        "correlation_uid",
        text(&leaf["request_id"]).map(Value::from),
    );

    let mut out = Map::new();
    out.insert("category_uid".into(), Value::from(class.category_uid));
    out.insert("category_name".into(), Value::from(class.category_name));
    out.insert("class_uid".into(), Value::from(class.class_uid));
    out.insert("class_name".into(), Value::from(class.class_name));
    out.insert("activity_id".into(), Value::from(class.activity_id));
    out.insert(
        "activity_name".into(),
        Value::from(if class.activity_id == 99 {
            action
        } else {
            class.activity_name
        }),
    );
    out.insert(
        "type_uid".into(),
        Value::from(u64::from(class.class_uid) * 100 + u64::from(class.activity_id)),
    );
    out.insert(
        "type_name".into(),
        Value::from(format!("{}: {}", class.class_name, class.activity_name)),
    );
    put(
        &mut out,
        "time",
        occurred_ms.or(received_ms).map(Value::from),
    );
    out.insert("severity_id".into(), Value::from(severity_id));
    out.insert("severity".into(), Value::from(severity));
    out.insert("status_id".into(), Value::from(status_id));
    out.insert("status".into(), Value::from(status));
    if status_id == 2 {
        out.insert("status_detail".into(), Value::from(outcome));
    }
    out.insert(
        "message".into(),
        Value::from(format!(
            "{action} by {}: {outcome}",
            actor_id.unwrap_or("unknown")
        )),
    );
    out.insert("metadata".into(), Value::Object(metadata));
    out.insert("actor".into(), json!({ "user": actor_user }));
    let ip = text(&leaf["actor"]["ip"]).map(|ip| json!({ "ip": ip }));
    let user_agent = text(&leaf["actor"]["user_agent"]).map(|agent| json!({ "user_agent": agent }));
    let resource = &leaf["resource"];
    match class.class_uid {
        3002 => {
            out.insert("user".into(), actor_user);
            put(&mut out, "src_endpoint", ip);
            put(&mut out, "http_request", user_agent);
        }
        3001 => {
            // The changed account is the resource when named, else the actor itself
            // (a user changing their own password).
            let changed = match text(&resource["id"]) {
                Some(id) => {
                    let mut user = Map::new();
                    user.insert("uid".into(), Value::from(id));
                    put(&mut user, "type", text(&resource["type"]).map(Value::from));
                    Value::Object(user)
                }
                None => actor_user,
            };
            out.insert("user".into(), changed);
            put(&mut out, "src_endpoint", ip);
        }
        _ => {
            out.insert("api".into(), json!({ "operation": action }));
            // API Activity requires a source endpoint even when the IP is unknown.
            out.insert("src_endpoint".into(), ip.unwrap_or_else(|| json!({})));
            put(&mut out, "http_request", user_agent);
            if let Some(kind) = text(&resource["type"]) {
                let mut details = Map::new();
                details.insert("type".into(), Value::from(kind));
                put(&mut details, "uid", text(&resource["id"]).map(Value::from));
                out.insert("resources".into(), json!([details]));
            }
        }
    }
    let mut palisade = Map::new();
    palisade.insert("index".into(), Value::from(event.index));
    palisade.insert("leaf_hash".into(), Value::from(leaf_hash_base64(event)));
    palisade.insert("tenant".into(), Value::from(event.tenant.as_str()));
    put(&mut palisade, "metadata", leaf.get("metadata").cloned());
    put(&mut palisade, "subject", leaf.get("subject").cloned());
    put(&mut palisade, "pii", leaf.get("pii").cloned());
    out.insert("unmapped".into(), json!({ "palisade": palisade }));
    Value::Object(out)
}

/// Escapes a CEF header field: `\` and `|` are escaped; a line break cannot appear
/// in a header at all (it would end the record), so it becomes a space.
pub fn escape_cef_header(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a CEF extension value: `\`, `=` and line breaks (as `\r`, `\n`); a `|`
/// needs no escaping after the header.
pub fn escape_cef_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// The CEF record of a stored event, without the trailing newline.
pub fn cef(event: &StoredEvent) -> String {
    let leaf = parsed_leaf(event);
    let action = text(&leaf["action"]).unwrap_or("unknown");
    let outcome = text(&leaf["outcome"]).unwrap_or("unknown");
    let severity = match outcome {
        "success" => 3,
        "denied" => 7,
        _ => 5,
    };
    let action = escape_cef_header(action);
    let mut line = format!(
        "CEF:0|Palisade|Palisade|{}|{action}|{action}|{severity}|",
        escape_cef_header(PRODUCT_VERSION)
    );
    let mut fields: Vec<(&str, String)> = vec![("externalId", event.id.to_string())];
    if let Some(ms) = unix_ms(&leaf["received_at"]) {
        fields.push(("rt", ms.to_string()));
    }
    if let Some(ms) = unix_ms(&leaf["occurred_at"]) {
        fields.push(("start", ms.to_string()));
    }
    if let Some(actor) = text(&leaf["actor"]["id"]) {
        fields.push(("suser", actor.to_owned()));
    }
    // CEF's `src` is IPv4 only; IPv6 goes to the labelled custom address field.
    match text(&leaf["actor"]["ip"]).map(|ip| (ip, ip.parse::<IpAddr>())) {
        Some((ip, Ok(IpAddr::V4(_)))) => fields.push(("src", ip.to_owned())),
        Some((ip, Ok(IpAddr::V6(_)))) => {
            fields.push(("c6a2", ip.to_owned()));
            fields.push(("c6a2Label", "Source IPv6 Address".to_owned()));
        }
        _ => {}
    }
    if let Some(agent) = text(&leaf["actor"]["user_agent"]) {
        fields.push(("requestClientApplication", agent.to_owned()));
    }
    fields.push(("outcome", outcome.to_owned()));
    fields.push(("cs1Label", "index".to_owned()));
    fields.push(("cs1", event.index.to_string()));
    fields.push(("cs2Label", "leafHash".to_owned()));
    fields.push(("cs2", leaf_hash_base64(event)));
    fields.push(("cs3Label", "tenant".to_owned()));
    fields.push(("cs3", event.tenant.clone()));
    if let Some(kind) = text(&leaf["resource"]["type"]) {
        let resource = match text(&leaf["resource"]["id"]) {
            Some(id) => format!("{kind}/{id}"),
            None => kind.to_owned(),
        };
        fields.push(("cs4Label", "resource".to_owned()));
        fields.push(("cs4", resource));
    }
    if let Some(request) = text(&leaf["request_id"]) {
        fields.push(("cs5Label", "requestId".to_owned()));
        fields.push(("cs5", request.to_owned()));
    }
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(line, "{key}={}", escape_cef_value(value));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn stored(leaf: Value) -> StoredEvent {
        StoredEvent {
            index: 41,
            id: Uuid::nil(),
            tenant: "acme".into(),
            leaf: serde_jcs::to_vec(&leaf).unwrap_or_default(),
            pii: None,
        }
    }

    fn login() -> StoredEvent {
        stored(json!({
            "v": 1, "id": Uuid::nil(), "tenant": "acme", "action": "auth.login",
            "actor": {"id": "user-1", "ip": "10.0.0.1", "user_agent": "curl/8"},
            "outcome": "failure", "received_at": "2026-01-01T00:00:00.250Z",
            "request_id": "req-9", "metadata": {"method": "password"}
        }))
    }

    /// Splits a CEF record into its seven header fields and the extension, honouring
    /// `\|` escapes, so tests read it the way a SIEM parser would.
    fn split_header(line: &str) -> (Vec<String>, String) {
        let mut fields = Vec::new();
        let mut current = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    current.push(c);
                    if let Some(next) = chars.next() {
                        current.push(next);
                    }
                }
                '|' if fields.len() < 7 => fields.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        (fields, current)
    }

    /// Parses CEF extension pairs: a key is the word before an unescaped `=`.
    fn extension_pairs(extension: &str) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut raw = String::new();
        let mut chars = extension.chars();
        // Text between unescaped `=` signs.
        let mut tokens: Vec<String> = Vec::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    raw.push(c);
                    if let Some(next) = chars.next() {
                        raw.push(next);
                    }
                }
                '=' => tokens.push(std::mem::take(&mut raw)),
                c => raw.push(c),
            }
        }
        tokens.push(raw);
        // Each token but the first is "value [next_key]"; the key is its last word.
        let mut key = tokens.first().cloned().unwrap_or_default();
        for (i, token) in tokens.iter().enumerate().skip(1) {
            let last = i + 1 == tokens.len();
            let (value, next) = if last {
                (token.as_str(), "")
            } else {
                token.rsplit_once(' ').unwrap_or((token.as_str(), ""))
            };
            pairs.push((key.clone(), unescape(value)));
            key = next.to_owned();
        }
        pairs
    }

    fn unescape(value: &str) -> String {
        let mut out = String::new();
        let mut chars = value.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some(other) => out.push(other),
                    None => {}
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn cef_escapes_header_pipes_and_backslashes() {
        assert_eq!(escape_cef_header(r"a|b\c"), r"a\|b\\c");
        assert_eq!(escape_cef_header("line\r\nbreak"), "line  break");
        assert_eq!(
            escape_cef_header("a=b"),
            "a=b",
            "= needs no escape in the header"
        );
    }

    #[test]
    fn cef_escapes_extension_equals_backslashes_and_newlines() {
        assert_eq!(escape_cef_value(r"a=b\c"), r"a\=b\\c");
        assert_eq!(escape_cef_value("one\ntwo\rthree"), r"one\ntwo\rthree");
        assert_eq!(
            escape_cef_value("a|b"),
            "a|b",
            "| needs no escape in extensions"
        );
    }

    #[test]
    fn cef_record_survives_hostile_values() {
        let hostile = "ev|il=x\\y\nz";
        let event = stored(json!({
            "v": 1, "id": Uuid::nil(), "tenant": "acme", "action": "doc.read",
            "actor": {"id": hostile}, "resource": {"type": "doc", "id": "a=b"},
            "outcome": "denied", "received_at": "2026-01-01T00:00:00Z",
            "request_id": "r|1"
        }));
        let line = cef(&event);
        assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
        let (header, extension) = split_header(&line);
        assert_eq!(
            header,
            [
                "CEF:0",
                "Palisade",
                "Palisade",
                PRODUCT_VERSION,
                "doc.read",
                "doc.read",
                "7"
            ]
        );
        let pairs = extension_pairs(&extension);
        assert_eq!(get(&pairs, "suser"), Some(hostile));
        assert_eq!(get(&pairs, "cs4"), Some("doc/a=b"));
        assert_eq!(get(&pairs, "cs5"), Some("r|1"));
        assert_eq!(get(&pairs, "outcome"), Some("denied"));
        assert_eq!(get(&pairs, "rt"), Some("1767225600000"));
        assert_eq!(get(&pairs, "cs1Label"), Some("index"));
        assert_eq!(get(&pairs, "cs1"), Some("41"));
        assert_eq!(get(&pairs, "cs2Label"), Some("leafHash"));
        // Base64 padding is an `=` and must come back intact.
        assert_eq!(get(&pairs, "cs2"), Some(leaf_hash_base64(&event).as_str()));
        assert!(leaf_hash_base64(&event).ends_with('='));
    }

    #[test]
    fn cef_header_escapes_a_hostile_action() {
        // Actions are validated on append, but a leaf is data: escape anyway.
        let event = stored(json!({"action": "a|b\\c", "actor": {"id": "u"}, "outcome": "success"}));
        let (header, _) = split_header(&cef(&event));
        assert_eq!(header.get(4).map(String::as_str), Some(r"a\|b\\c"));
        assert_eq!(header.len(), 7);
    }

    #[test]
    fn cef_puts_ipv6_in_the_labelled_field() {
        let event = stored(
            json!({"action": "auth.login", "actor": {"id": "u", "ip": "2001:db8::1"}, "outcome": "success"}),
        );
        let (_, extension) = split_header(&cef(&event));
        let pairs = extension_pairs(&extension);
        assert_eq!(get(&pairs, "src"), None);
        assert_eq!(get(&pairs, "c6a2"), Some("2001:db8::1"));
    }

    #[test]
    fn ocsf_maps_a_login_to_authentication() {
        let event = login();
        let record = ocsf(&event);
        assert_eq!(record["class_uid"], 3002);
        assert_eq!(record["category_uid"], 3);
        assert_eq!(record["activity_id"], 1);
        assert_eq!(record["type_uid"], 300_201);
        assert_eq!(record["time"], 1_767_225_600_250_i64);
        assert_eq!(record["status_id"], 2);
        assert_eq!(record["status_detail"], "failure");
        assert_eq!(record["actor"]["user"]["uid"], "user-1");
        assert_eq!(record["user"]["uid"], "user-1");
        assert_eq!(record["src_endpoint"]["ip"], "10.0.0.1");
        assert_eq!(record["http_request"]["user_agent"], "curl/8");
        assert_eq!(record["metadata"]["product"]["name"], "Palisade");
        assert_eq!(record["metadata"]["version"], OCSF_VERSION);
        assert_eq!(record["metadata"]["sequence"], 41);
        assert_eq!(record["metadata"]["tenant_uid"], "acme");
        assert_eq!(record["metadata"]["correlation_uid"], "req-9");
        assert_eq!(record["unmapped"]["palisade"]["index"], 41);
        assert_eq!(
            record["unmapped"]["palisade"]["leaf_hash"],
            leaf_hash_base64(&event)
        );
        assert_eq!(
            record["unmapped"]["palisade"]["metadata"]["method"],
            "password"
        );
    }

    #[test]
    fn ocsf_classes_follow_the_mapping_table() {
        let cases = [
            ("auth.login", 3002, 1),
            ("auth.logout", 3002, 2),
            ("auth.mfa.challenge", 3002, 99),
            ("authz.check", 6003, 99),
            ("palisade.api_key.create", 3001, 1),
            ("palisade.api_key.revoke", 3001, 5),
            ("user.password_reset", 3001, 4),
            ("iam.user.delete", 3001, 6),
            ("document.read", 6003, 2),
            ("document.delete", 6003, 4),
            ("billing.invoice.pay", 6003, 99),
        ];
        for (action, class_uid, activity_id) in cases {
            let class = ocsf_class(action);
            assert_eq!(
                (class.class_uid, class.activity_id),
                (class_uid, activity_id),
                "{action}"
            );
        }
    }

    #[test]
    fn ocsf_api_activity_names_the_operation_and_resource() {
        let event = stored(
            json!({"action": "document.delete", "actor": {"id": "u"}, "resource": {"type": "document", "id": "7"}, "outcome": "success", "received_at": "2026-01-01T00:00:00Z", "occurred_at": "2025-12-31T23:59:59Z"}),
        );
        let record = ocsf(&event);
        assert_eq!(record["api"]["operation"], "document.delete");
        assert_eq!(record["resources"][0]["uid"], "7");
        assert_eq!(record["time"], 1_767_225_599_000_i64, "occurred_at wins");
        assert_eq!(record["metadata"]["logged_time"], 1_767_225_600_000_i64);
        assert_eq!(record["status_id"], 1);
        assert!(record.get("status_detail").is_none());
    }

    #[test]
    fn ndjson_is_the_event_view_with_the_leaf_hash() {
        let event = login();
        let record = ndjson(&event);
        assert_eq!(record["index"], 41);
        assert_eq!(record["id"], Uuid::nil().to_string());
        assert_eq!(record["event"]["action"], "auth.login");
        assert_eq!(record["leaf_hash"], leaf_hash_base64(&event));
        let line = ExportFormat::Ndjson.line(&event);
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with('\n'));
    }

    #[test]
    fn a_damaged_leaf_still_exports() {
        let event = StoredEvent {
            index: 1,
            id: Uuid::nil(),
            tenant: "t".into(),
            leaf: b"not json".to_vec(),
            pii: None,
        };
        assert_eq!(ndjson(&event)["event"], Value::Null);
        assert_eq!(ocsf(&event)["unmapped"]["palisade"]["index"], 1);
        assert!(cef(&event).starts_with("CEF:0|Palisade|Palisade|"));
    }

    #[test]
    fn formats_parse_by_name_only() {
        assert_eq!(ExportFormat::parse("ocsf"), Some(ExportFormat::Ocsf));
        assert_eq!(ExportFormat::parse("OCSF"), None);
        assert_eq!(ExportFormat::parse("csv"), None);
    }
}
