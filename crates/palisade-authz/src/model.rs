//! The policy of one tenant as plain data: what administrators write, what the
//! storage layer persists, and what `compile` turns into a `CompiledPolicy`.
//!
//! Patterns and CIDRs are kept as strings here so that the stored form is
//! exactly what was written; they are parsed (and rejected with typed errors)
//! when the policy is compiled.

use serde::{Deserialize, Serialize};

/// Whether a grant or binding allows or denies. A deny that applies always
/// wins over any number of allows.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Grants the permission.
    #[default]
    Allow,
    /// Forbids the permission, overriding every allow.
    Deny,
}

/// The whole policy of one tenant (a domain in Casbin terms). Nothing in one
/// tenant's policy can grant anything in another tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySet {
    /// The tenant this policy belongs to.
    pub tenant: String,
    /// The roles defined in the tenant.
    #[serde(default)]
    pub roles: Vec<RoleDef>,
    /// Group memberships: a subject (user, service account, API key or
    /// another group) that is a member of a group subject.
    #[serde(default)]
    pub memberships: Vec<Membership>,
    /// Role assignments to subjects.
    #[serde(default)]
    pub bindings: Vec<Binding>,
}

/// A named bundle of grants that may inherit other roles. Inheritance forms a
/// DAG; a role holds the grants of every role it inherits, transitively.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    /// The role name, unique in the tenant.
    pub name: String,
    /// Roles whose grants this role also holds.
    #[serde(default)]
    pub inherits: Vec<String>,
    /// The permissions this role grants (or denies).
    #[serde(default)]
    pub grants: Vec<Grant>,
}

/// One permission held by a role: an action pattern on a resource pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// `resource_type:action`, `type:*`, `*:action`, `*`, or a plain action name.
    pub action: String,
    /// `*` (the default), an exact resource such as `project/42`, or a subtree
    /// such as `project/42/*` (everything below `project/42`, not itself).
    #[serde(default = "any_resource")]
    pub resource: String,
    /// Allow (default) or an explicit deny.
    #[serde(default)]
    pub effect: Effect,
}

impl Grant {
    /// An allow grant of `action` on every resource.
    pub fn allow(action: impl Into<String>) -> Self {
        Self {
            action: action.into(),
            resource: any_resource(),
            effect: Effect::Allow,
        }
    }

    /// An explicit deny of `action` on every resource.
    pub fn deny(action: impl Into<String>) -> Self {
        Self {
            effect: Effect::Deny,
            ..Self::allow(action)
        }
    }

    /// The same grant restricted to `resource` (a resource pattern).
    pub fn on(mut self, resource: impl Into<String>) -> Self {
        self.resource = resource.into();
        self
    }
}

fn any_resource() -> String {
    "*".to_owned()
}

/// `member` belongs to the group subject `group` and so receives every binding
/// made to the group. Groups may be nested; nesting must not be cyclic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    /// The member subject (user, service account, API key or group).
    pub member: String,
    /// The group subject.
    pub group: String,
}

/// Assigns a role to a subject in the tenant, everywhere (`scope` = `*`) or on
/// one resource or subtree, optionally under conditions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// Stable id, unique in the tenant, so a binding can be revoked and an
    /// explanation can point at it.
    pub id: String,
    /// Who receives the role (user, group, service account, API key).
    pub subject: String,
    /// The role assigned.
    pub role: String,
    /// Where the role applies: `*` (the default: everywhere in the tenant),
    /// an exact resource, or a subtree `prefix/*`.
    #[serde(default = "any_resource")]
    pub scope: String,
    /// `deny` turns every permission of the role into an explicit deny for
    /// this subject in this scope.
    #[serde(default)]
    pub effect: Effect,
    /// All must hold for the binding to apply.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

impl Binding {
    /// A global, unconditional allow binding.
    pub fn new(id: impl Into<String>, subject: impl Into<String>, role: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            subject: subject.into(),
            role: role.into(),
            scope: any_resource(),
            effect: Effect::Allow,
            conditions: Vec::new(),
        }
    }

    /// The same binding restricted to a resource or subtree pattern.
    pub fn on(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// The same binding as an explicit deny.
    pub fn denying(mut self) -> Self {
        self.effect = Effect::Deny;
        self
    }

    /// The same binding with one more condition.
    pub fn when(mut self, condition: Condition) -> Self {
        self.conditions.push(condition);
        self
    }
}

/// A condition on a binding, evaluated against the request's `Attributes`.
///
/// When the attribute a condition needs is missing, an allow binding does not
/// apply and a deny binding does (fail closed both ways).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// The client IP is inside one of these CIDRs (`10.0.0.0/8`, `2001:db8::/32`).
    IpIn {
        /// CIDR blocks; a bare address means a single host.
        cidrs: Vec<String>,
    },
    /// The request time lies in `[not_before, not_after)` (Unix milliseconds;
    /// either bound may be omitted).
    Between {
        /// Inclusive start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_before_unix_ms: Option<i64>,
        /// Exclusive end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_after_unix_ms: Option<i64>,
    },
    /// The request time of day (UTC) lies in `[start, end)`, in minutes after
    /// midnight; a window with `start > end` wraps midnight (22:00–06:00).
    DailyWindow {
        /// Inclusive start, 0..1440.
        start_minute_utc: u16,
        /// Exclusive end, 0..1440.
        end_minute_utc: u16,
    },
    /// A claim of the caller's credential equals a value (`mfa` = `true`).
    Claim {
        /// Claim name.
        name: String,
        /// Required value, compared as JSON.
        equals: serde_json::Value,
    },
}
