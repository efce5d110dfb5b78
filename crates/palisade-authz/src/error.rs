//! The crate's one error type. Every variant is something a caller can act on;
//! the HTTP layer maps them to problem types in one place (`Cycle` and
//! `VersionConflict` → 409, the rest of the policy errors → 422,
//! `InvalidRequest` → 400, `StoreUnavailable` → 503, `Store` and
//! `CorruptPolicy` → 500).

use std::fmt;

/// Which graph a cycle was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CycleKind {
    /// Role inheritance (`RoleDef::inherits`).
    Role,
    /// Group membership (`Membership`).
    Group,
}

impl fmt::Display for CycleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CycleKind::Role => "role inheritance",
            CycleKind::Group => "group membership",
        })
    }
}

/// Everything that can go wrong in `palisade-authz`.
///
/// Checks never fail because a tenant, subject or role is unknown (that is a
/// deny); they fail only when the request itself is malformed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthzError {
    /// A name (tenant, subject, role, binding id, action, resource) is empty.
    #[error("{what} must not be empty")]
    EmptyName {
        /// What kind of name it was.
        what: &'static str,
    },
    /// A name is longer than the configured limit or contains control characters.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// What kind of name it was.
        what: &'static str,
        /// The offending value, truncated to 64 characters.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An action or resource pattern that is not one of the supported shapes.
    #[error("malformed {what} pattern {pattern:?}: {reason}")]
    MalformedPattern {
        /// `action` or `resource`.
        what: &'static str,
        /// The offending pattern, truncated to 64 characters.
        pattern: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// A condition that cannot be evaluated as written (bad CIDR, empty window...).
    #[error("invalid condition on binding {binding:?}: {reason}")]
    InvalidCondition {
        /// The binding carrying the condition.
        binding: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A role is defined twice in one tenant.
    #[error("role {role:?} is defined more than once")]
    DuplicateRole {
        /// The role name.
        role: String,
    },
    /// A binding id is used twice in one tenant.
    #[error("binding id {id:?} is used more than once")]
    DuplicateBinding {
        /// The binding id.
        id: String,
    },
    /// A binding or an inheritance edge names a role the tenant does not define.
    ///
    /// Rejected rather than ignored: a dangling binding would silently come
    /// back to life if a role of that name were created later.
    #[error("role {role:?} referenced by {referenced_by} is not defined")]
    UnknownRole {
        /// The missing role.
        role: String,
        /// Who referenced it (`binding <id>` or `role <name>`).
        referenced_by: String,
    },
    /// The change would make role inheritance or group membership cyclic.
    #[error("{kind} cycle: {}", path.join(" -> "))]
    Cycle {
        /// Which graph.
        kind: CycleKind,
        /// The cycle, first element repeated at the end (`a -> b -> a`).
        path: Vec<String>,
    },
    /// An input exceeds a configured limit (`Limits`).
    #[error("too large: {what} exceeds the limit of {limit}")]
    TooLarge {
        /// What was counted.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A check request that cannot be answered as asked (wildcard in a request,
    /// empty field). Unknown tenants, subjects and roles are denies, not this.
    #[error("invalid request: {0}")]
    InvalidRequest(Box<AuthzError>),
    /// A change names a role the tenant does not define.
    #[error("no role named {0:?}")]
    UnknownRoleName(String),
    /// A change names a binding id the tenant does not have.
    #[error("no binding with id {0:?}")]
    UnknownBinding(String),
    /// A change names a group membership the tenant does not have.
    #[error("no such group membership")]
    UnknownMembership,
    /// A Casbin model file Palisade cannot represent faithfully.
    #[error("unsupported Casbin model: {0}")]
    CasbinModel(String),
    /// A Casbin policy line that cannot be imported.
    #[error("Casbin policy line {line}: {reason}")]
    CasbinPolicy {
        /// 1-based line number in the policy CSV.
        line: usize,
        /// Why it was rejected.
        reason: String,
    },
    /// The policy store failed in a way a retry will not fix (a bad query, a
    /// constraint violated).
    #[error("policy store error: {0}")]
    Store(String),
    /// The policy store cannot be reached (connection refused, circuit
    /// breaker open); worth retrying later.
    #[error("policy store unavailable: {0}")]
    StoreUnavailable(String),
    /// Another writer changed the tenant's policy since it was read; the
    /// write was not applied. Read again and retry.
    #[error("the policy was changed concurrently; read it again and retry")]
    VersionConflict,
    /// A stored policy cannot be used: it does not parse, names another
    /// tenant, or no longer compiles (written by a newer version, edited by
    /// hand). The tenant keeps whatever policy the engine already had.
    #[error("stored policy of tenant {tenant:?} is unusable: {reason}")]
    CorruptPolicy {
        /// The tenant whose row is bad.
        tenant: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The crate's result type.
pub type Result<T, E = AuthzError> = std::result::Result<T, E>;

/// Shortens user input for error messages so a huge value cannot blow up logs.
pub(crate) fn excerpt(value: &str) -> String {
    const MAX: usize = 64;
    if value.chars().count() <= MAX {
        value.to_owned()
    } else {
        let mut cut: String = value.chars().take(MAX).collect();
        cut.push('…');
        cut
    }
}
