//! Decisions over a `CompiledPolicy`: the hot `check`, a subject's effective
//! permissions, and the subjects allowed to do an action on a resource.
//!
//! The rule, in one place: a request is allowed when some applicable binding
//! of the subject (directly or through its groups) reaches, through role
//! inheritance, an allow grant matching the action and resource, and no
//! applicable binding reaches a deny grant matching them, and no applicable
//! deny binding reaches any grant matching them. Everything else is denied.

use crate::compile::CompiledPolicy;
use crate::condition::{Attributes, Truth, evaluate_all};
use crate::error::{AuthzError, Result};
use crate::model::Effect;
use crate::pattern::{validate_concrete, validate_name};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

/// One authorization question. Borrowed, so a check allocates nothing for it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The tenant (Casbin's domain).
    pub tenant: &'a str,
    /// Who is asking: a user, group, service account or API key.
    pub subject: &'a str,
    /// A concrete action, `resource_type:verb` or a plain name.
    pub action: &'a str,
    /// A concrete resource such as `project/42/doc/7`.
    pub resource: &'a str,
    /// What is known about the request, for binding conditions.
    pub attributes: &'a Attributes,
}

impl<'a> Request<'a> {
    /// A request without attributes.
    pub fn new(tenant: &'a str, subject: &'a str, action: &'a str, resource: &'a str) -> Self {
        Self {
            tenant,
            subject,
            action,
            resource,
            attributes: Attributes::none(),
        }
    }

    /// The same request with attributes for conditions.
    pub fn with_attributes(mut self, attributes: &'a Attributes) -> Self {
        self.attributes = attributes;
        self
    }

    /// Rejects requests that cannot be answered as asked: empty or overlong
    /// fields, control characters, or `*` in the action or resource.
    pub fn validate(&self, max_name_bytes: usize) -> Result<()> {
        let check = || -> Result<()> {
            validate_name("tenant", self.tenant, max_name_bytes)?;
            validate_name("subject", self.subject, max_name_bytes)?;
            validate_concrete("action", self.action, max_name_bytes)?;
            validate_concrete("resource", self.resource, max_name_bytes)
        };
        check().map_err(|e| AuthzError::InvalidRequest(Box::new(e)))
    }
}

/// One permission a subject holds, flattened from binding, role and grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectivePermission {
    /// The action pattern granted or denied.
    pub action: String,
    /// Where it applies: the binding's scope intersected with the grant's resource.
    pub resource: String,
    /// Deny when the grant or the binding is a deny.
    pub effect: Effect,
    /// The binding it comes from.
    pub binding_id: String,
    /// The subject the binding names (the subject itself or one of its groups).
    pub bound_subject: String,
    /// The role the binding assigns.
    pub bound_role: String,
    /// The role holding the grant (the bound role or one it inherits).
    pub granting_role: String,
    /// Whether the binding has conditions; the permission then holds only
    /// for requests that meet them.
    pub conditional: bool,
}

const ALLOW: u8 = 1;
const DENY: u8 = 2;

/// Per-thread marks of which roles are active for the current check, reused
/// across checks so the hot path does not allocate. A generation counter
/// makes "clear" O(1).
#[derive(Debug, Default)]
struct ActiveRoles {
    stamp: Vec<u32>,
    flags: Vec<u8>,
    generation: u32,
}

impl ActiveRoles {
    fn begin(&mut self, roles: usize) {
        if self.stamp.len() < roles {
            self.stamp.resize(roles, 0);
            self.flags.resize(roles, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.fill(0);
            self.generation = 1;
        }
    }

    #[inline]
    fn mark(&mut self, role: u32, flag: u8) {
        let i = role as usize;
        if self.stamp[i] == self.generation {
            self.flags[i] |= flag;
        } else {
            self.stamp[i] = self.generation;
            self.flags[i] = flag;
        }
    }

    #[inline]
    fn get(&self, role: u32) -> u8 {
        let i = role as usize;
        if self.stamp[i] == self.generation {
            self.flags[i]
        } else {
            0
        }
    }
}

thread_local! {
    static ACTIVE: RefCell<ActiveRoles> = RefCell::new(ActiveRoles::default());
}

/// Whether a binding applies to a request, given how its conditions evaluate.
/// Unknown (a missing attribute) keeps allow bindings out and deny bindings
/// in: both fail closed.
#[inline]
pub(crate) fn binding_applies(effect: Effect, truth: Truth) -> bool {
    match effect {
        Effect::Allow => truth == Truth::True,
        Effect::Deny => truth != Truth::False,
    }
}

impl CompiledPolicy {
    /// Decides a request against this policy: `Ok(true)` to allow. A request
    /// for another tenant, an unknown subject or an unknown action is a deny;
    /// only a malformed request is an error.
    pub fn is_allowed(&self, request: &Request<'_>, now_unix_ms: i64) -> Result<bool> {
        request.validate(self.limits.max_name_bytes)?;
        Ok(self.decide(request, now_unix_ms))
    }

    /// The grant ids whose action pattern can match `action`.
    #[inline]
    pub(crate) fn candidate_grants<'s>(&'s self, action: &str) -> [&'s [u32]; 4] {
        let split = action.split_once(':');
        let empty: &[u32] = &[];
        [
            self.by_exact_action
                .get(action)
                .map_or(empty, Vec::as_slice),
            split
                .and_then(|(ty, _)| self.by_type.get(ty))
                .map_or(empty, Vec::as_slice),
            split
                .and_then(|(_, verb)| self.by_verb.get(verb))
                .map_or(empty, Vec::as_slice),
            &self.any_action,
        ]
    }

    /// The decision for an already validated request.
    pub(crate) fn decide(&self, request: &Request<'_>, now_unix_ms: i64) -> bool {
        if request.tenant != self.tenant() {
            return false;
        }
        let Some(&subject) = self.subject_ids.get(request.subject) else {
            return false;
        };
        let candidates = self.candidate_grants(request.action);
        if candidates.iter().all(|c| c.is_empty()) {
            return false;
        }
        let resource = request.resource;
        ACTIVE.with(|active| {
            let mut active = active.borrow_mut();
            active.begin(self.role_closure.len());
            let mut any_applies = false;
            for &principal in &*self.principals[subject as usize] {
                for &b in &self.bindings_of[principal as usize] {
                    let binding = &self.bindings[b as usize];
                    if !binding.scope.matches(resource) {
                        continue;
                    }
                    let truth = evaluate_all(&binding.conditions, request.attributes, now_unix_ms);
                    if !binding_applies(binding.effect, truth) {
                        continue;
                    }
                    let flag = if binding.effect == Effect::Allow {
                        ALLOW
                    } else {
                        DENY
                    };
                    for &role in &*self.role_closure[binding.role as usize] {
                        active.mark(role, flag);
                    }
                    any_applies = true;
                }
            }
            if !any_applies {
                return false;
            }
            let mut allowed = false;
            for list in candidates {
                for &g in list {
                    let grant = &self.grants[g as usize];
                    let flags = active.get(grant.role);
                    if flags == 0 || !grant.resource.matches(resource) {
                        continue;
                    }
                    if flags & DENY != 0 || grant.effect == Effect::Deny {
                        return false;
                    }
                    allowed = true;
                }
            }
            allowed
        })
    }

    /// Every permission `subject` holds in this tenant, directly or through
    /// groups and inherited roles, with denies and conditional ones marked.
    /// Conditions are not evaluated: this answers "what could they do".
    pub fn effective_permissions(&self, subject: &str) -> Vec<EffectivePermission> {
        let Some(&subject) = self.subject_ids.get(subject) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for &principal in &*self.principals[subject as usize] {
            for &b in &self.bindings_of[principal as usize] {
                let binding = &self.bindings[b as usize];
                let source = &self.source.bindings[b as usize];
                for &role in &*self.role_closure[binding.role as usize] {
                    for g in self.role_grants[role as usize].clone() {
                        let grant = &self.grants[g as usize];
                        let Some(resource) = binding.scope.intersect(&grant.resource) else {
                            continue;
                        };
                        let deny = binding.effect == Effect::Deny || grant.effect == Effect::Deny;
                        out.push(EffectivePermission {
                            action: grant.action.to_string(),
                            resource: resource.to_string(),
                            effect: if deny { Effect::Deny } else { Effect::Allow },
                            binding_id: source.id.clone(),
                            bound_subject: source.subject.clone(),
                            bound_role: source.role.clone(),
                            granting_role: self.role_name(role).to_owned(),
                            conditional: !binding.conditions.is_empty(),
                        });
                    }
                }
            }
        }
        out
    }

    /// The subjects (users, groups, keys known to the policy) allowed to do
    /// `action` on `resource` given `attributes`, sorted by name. Every
    /// candidate is confirmed with a full check, so denies and conditions
    /// count exactly as they do for `is_allowed`.
    pub fn subjects_allowed(
        &self,
        action: &str,
        resource: &str,
        attributes: &Attributes,
        now_unix_ms: i64,
    ) -> Result<Vec<String>> {
        let max = self.limits.max_name_bytes;
        validate_concrete("action", action, max)
            .and_then(|()| validate_concrete("resource", resource, max))
            .map_err(|e| AuthzError::InvalidRequest(Box::new(e)))?;
        // Roles holding an allow grant for this action and resource.
        let mut granting = vec![false; self.role_closure.len()];
        for list in self.candidate_grants(action) {
            for &g in list {
                let grant = &self.grants[g as usize];
                if grant.effect == Effect::Allow && grant.resource.matches(resource) {
                    granting[grant.role as usize] = true;
                }
            }
        }
        // Subjects named by an allow binding in scope that reaches one of them.
        let mut bound = vec![false; self.subject_names.len()];
        for binding in &self.bindings {
            if binding.effect == Effect::Allow
                && binding.scope.matches(resource)
                && self.role_closure[binding.role as usize]
                    .iter()
                    .any(|&r| granting[r as usize])
            {
                bound[binding.subject as usize] = true;
            }
        }
        let mut out: Vec<String> = (0..self.subject_names.len())
            .filter(|&s| self.principals[s].iter().any(|&p| bound[p as usize]))
            .map(|s| &*self.subject_names[s])
            .filter(|name| {
                self.decide(
                    &Request {
                        tenant: self.tenant(),
                        subject: name,
                        action,
                        resource,
                        attributes,
                    },
                    now_unix_ms,
                )
            })
            .map(str::to_owned)
            .collect();
        out.sort_unstable();
        Ok(out)
    }
}
