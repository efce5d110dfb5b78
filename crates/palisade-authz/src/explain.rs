//! Why a decision came out the way it did: the path that granted it
//! (binding → role → inherited role → grant), the rule that denied it, or why
//! nothing applied. As data for APIs and as a sentence for people.
//!
//! Explaining re-walks the policy with bookkeeping the hot `check` skips; a
//! test asserts both always reach the same decision.

use crate::compile::CompiledPolicy;
use crate::condition::{Truth, evaluate_all};
use crate::decide::{Request, binding_applies};
use crate::graph;
use crate::model::{Effect, Grant};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// The explanation of one decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Explanation {
    /// Allowed through this path (the first one found; others may exist).
    Allowed(GrantPath),
    /// Denied by an explicit deny: a deny grant or a deny binding.
    ExplicitDeny(GrantPath),
    /// Denied because nothing allowed it.
    DefaultDeny(DefaultDeny),
}

/// How a subject reaches a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantPath {
    /// The subject that asked.
    pub subject: String,
    /// The groups between the subject and the binding's subject, in order;
    /// empty when the binding names the subject itself.
    pub via_groups: Vec<String>,
    /// The binding id.
    pub binding_id: String,
    /// The subject the binding names.
    pub binding_subject: String,
    /// Where the binding applies.
    pub binding_scope: String,
    /// Allow, or deny for a deny binding.
    pub binding_effect: Effect,
    /// Whether the binding had conditions (all met, or for a deny binding
    /// not disproved).
    pub conditional: bool,
    /// The bound role first, then each inherited role down to the one holding the grant.
    pub roles: Vec<String>,
    /// The grant that matched the action and resource.
    pub grant: Grant,
}

/// Why a request was denied by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultDeny {
    /// The tenant asked about.
    pub tenant: String,
    /// The subject that asked.
    pub subject: String,
    /// The action asked for.
    pub action: String,
    /// The resource asked about.
    pub resource: String,
    /// What was missing.
    pub reason: DefaultDenyReason,
    /// Bindings that would have allowed the request had they applied.
    pub skipped: Vec<SkippedBinding>,
}

/// What was missing for a default deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultDenyReason {
    /// The tenant has no policy.
    UnknownTenant,
    /// The subject appears in no binding or membership of the tenant.
    UnknownSubject,
    /// No applicable binding reaches a grant for this action and resource.
    NoMatchingGrant,
}

/// A binding that would have allowed the request but did not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedBinding {
    /// The binding id.
    pub binding_id: String,
    /// The role it assigns.
    pub role: String,
    /// Its scope.
    pub scope: String,
    /// Why it did not apply.
    pub reason: SkipReason,
}

/// Why a binding did not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The resource is outside the binding's scope.
    OutOfScope,
    /// A condition evaluated to false.
    ConditionNotMet,
    /// A condition needed an attribute the request did not carry.
    AttributeMissing,
}

impl Explanation {
    /// Whether the explained decision is an allow.
    pub fn allowed(&self) -> bool {
        matches!(self, Self::Allowed(_))
    }

    /// The explanation as one readable sentence.
    pub fn sentence(&self) -> String {
        match self {
            Self::Allowed(path) => format!("Allowed: {}.", path.describe()),
            Self::ExplicitDeny(path) => format!("Denied by an explicit deny: {}.", path.describe()),
            Self::DefaultDeny(d) => d.describe(),
        }
    }

    pub(crate) fn unknown_tenant(request: &Request<'_>) -> Self {
        Self::DefaultDeny(DefaultDeny::new(request, DefaultDenyReason::UnknownTenant))
    }
}

impl GrantPath {
    fn describe(&self) -> String {
        let mut s = String::new();
        if !self.via_groups.is_empty() {
            let _ = write!(
                s,
                "{} is a member of {}; ",
                self.subject,
                self.via_groups.join(", which is a member of ")
            );
        }
        let verb = match self.binding_effect {
            Effect::Allow => "gives",
            Effect::Deny => "denies",
        };
        let scope = if self.binding_scope == "*" {
            "everywhere in the tenant".to_owned()
        } else {
            format!("on {}", self.binding_scope)
        };
        let conditional = if self.conditional {
            " (its conditions apply)"
        } else {
            ""
        };
        let bound_role = self.roles.first().map_or("", String::as_str);
        let _ = write!(
            s,
            "binding {} {verb} {} role {bound_role} {scope}{conditional}",
            self.binding_id, self.binding_subject
        );
        for pair in self.roles.windows(2) {
            let _ = write!(s, "; {} inherits {}", pair[0], pair[1]);
        }
        let holder = self.roles.last().map_or("", String::as_str);
        let grant_verb = match self.grant.effect {
            Effect::Allow => "allows",
            Effect::Deny => "denies",
        };
        let _ = write!(
            s,
            "; {holder} {grant_verb} {} on {}",
            self.grant.action, self.grant.resource
        );
        s
    }
}

impl DefaultDeny {
    fn new(request: &Request<'_>, reason: DefaultDenyReason) -> Self {
        Self {
            tenant: request.tenant.to_owned(),
            subject: request.subject.to_owned(),
            action: request.action.to_owned(),
            resource: request.resource.to_owned(),
            reason,
            skipped: Vec::new(),
        }
    }

    fn describe(&self) -> String {
        let mut s = match self.reason {
            DefaultDenyReason::UnknownTenant => {
                format!("Denied by default: tenant {} has no policy", self.tenant)
            }
            DefaultDenyReason::UnknownSubject => {
                format!(
                    "Denied by default: {} has no bindings in tenant {}",
                    self.subject, self.tenant
                )
            }
            DefaultDenyReason::NoMatchingGrant => format!(
                "Denied by default: no binding of {} grants {} on {}",
                self.subject, self.action, self.resource
            ),
        };
        for skipped in &self.skipped {
            let why = match skipped.reason {
                SkipReason::OutOfScope => format!("it is scoped to {}", skipped.scope),
                SkipReason::ConditionNotMet => "its conditions are not met".to_owned(),
                SkipReason::AttributeMissing => {
                    "a condition needs an attribute the request did not carry".to_owned()
                }
            };
            let _ = write!(
                s,
                "; binding {} (role {}) would allow it but {why}",
                skipped.binding_id, skipped.role
            );
        }
        s.push('.');
        s
    }
}

impl CompiledPolicy {
    /// Explains the decision for an already validated request. Reaches the
    /// same allow/deny as `is_allowed`.
    pub(crate) fn explain_validated(&self, request: &Request<'_>, now_unix_ms: i64) -> Explanation {
        if request.tenant != self.tenant() {
            return Explanation::unknown_tenant(request);
        }
        let Some(&subject) = self.subject_ids.get(request.subject) else {
            return Explanation::DefaultDeny(DefaultDeny::new(
                request,
                DefaultDenyReason::UnknownSubject,
            ));
        };
        let mut allow: Option<(u32, u32, u32)> = None;
        let mut skipped = Vec::new();
        for &principal in &*self.principals[subject as usize] {
            for &b in &self.bindings_of[principal as usize] {
                let binding = &self.bindings[b as usize];
                let in_scope = binding.scope.matches(request.resource);
                let truth = evaluate_all(&binding.conditions, request.attributes, now_unix_ms);
                let applies = in_scope && binding_applies(binding.effect, truth);
                let mut would_allow = false;
                for &role in &*self.role_closure[binding.role as usize] {
                    for g in self.role_grants[role as usize].clone() {
                        let grant = &self.grants[g as usize];
                        if !grant.action.matches(request.action)
                            || !grant.resource.matches(request.resource)
                        {
                            continue;
                        }
                        let deny = binding.effect == Effect::Deny || grant.effect == Effect::Deny;
                        if applies && deny {
                            return Explanation::ExplicitDeny(
                                self.path(request, subject, b, role, g),
                            );
                        }
                        if applies && allow.is_none() {
                            allow = Some((b, role, g));
                        }
                        would_allow |= !deny;
                    }
                }
                if !applies && would_allow && binding.effect == Effect::Allow {
                    let source = &self.source.bindings[b as usize];
                    skipped.push(SkippedBinding {
                        binding_id: source.id.clone(),
                        role: source.role.clone(),
                        scope: source.scope.clone(),
                        reason: if !in_scope {
                            SkipReason::OutOfScope
                        } else if truth == Truth::False {
                            SkipReason::ConditionNotMet
                        } else {
                            SkipReason::AttributeMissing
                        },
                    });
                }
            }
        }
        match allow {
            Some((b, role, g)) => Explanation::Allowed(self.path(request, subject, b, role, g)),
            None => {
                let mut deny = DefaultDeny::new(request, DefaultDenyReason::NoMatchingGrant);
                deny.skipped = skipped;
                Explanation::DefaultDeny(deny)
            }
        }
    }

    fn path(&self, request: &Request<'_>, subject: u32, b: u32, role: u32, g: u32) -> GrantPath {
        let binding = &self.bindings[b as usize];
        let source = &self.source.bindings[b as usize];
        let via_groups = graph::shortest_path(&self.group_edges, subject, binding.subject)
            .unwrap_or_default()
            .into_iter()
            .skip(1)
            .map(|s| self.subject_names[s as usize].to_string())
            .collect();
        let roles = graph::shortest_path(&self.role_edges, binding.role, role)
            .unwrap_or_default()
            .into_iter()
            .map(|r| self.role_name(r).to_owned())
            .collect();
        let grant = &self.grants[g as usize];
        GrantPath {
            subject: request.subject.to_owned(),
            via_groups,
            binding_id: source.id.clone(),
            binding_subject: source.subject.clone(),
            binding_scope: source.scope.clone(),
            binding_effect: binding.effect,
            conditional: !binding.conditions.is_empty(),
            roles,
            grant: self.source.roles[role as usize].grants[grant.index as usize].clone(),
        }
    }
}
