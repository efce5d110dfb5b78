//! Turns a tenant's `PolicySet` into an immutable `CompiledPolicy`: names
//! interned to dense ids, role closure precomputed (cycles rejected with the
//! cycle named), group membership expanded, grants indexed by action so a
//! check touches only the grants that can match.

use crate::condition::CompiledCondition;
use crate::error::{AuthzError, CycleKind, Result};
use crate::graph::{self, Edges};
use crate::model::{Effect, PolicySet};
use crate::pattern::{ActionPattern, ResourcePattern, validate_name};
use foldhash::HashMap;
use serde::{Deserialize, Serialize};

/// Bounds on policy and request sizes, so hostile or accidental huge inputs
/// become typed errors instead of memory or CPU exhaustion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest name, pattern, action or resource, in bytes.
    pub max_name_bytes: usize,
    /// Roles per tenant.
    pub max_roles: usize,
    /// Grants per tenant (all roles together).
    pub max_grants: usize,
    /// Bindings per tenant.
    pub max_bindings: usize,
    /// Memberships per tenant.
    pub max_memberships: usize,
    /// Conditions on one binding.
    pub max_conditions: usize,
    /// CIDRs in one `ip_in` condition.
    pub max_cidrs: usize,
    /// Longest chain of role inheritance or group nesting.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_name_bytes: 1024,
            max_roles: 100_000,
            max_grants: 1_000_000,
            max_bindings: 1_000_000,
            max_memberships: 1_000_000,
            max_conditions: 16,
            max_cidrs: 256,
            max_depth: 64,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledGrant {
    pub(crate) role: u32,
    /// Position in `RoleDef::grants`, to point back at the source.
    pub(crate) index: u32,
    pub(crate) action: ActionPattern,
    pub(crate) resource: ResourcePattern,
    pub(crate) effect: Effect,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledBinding {
    pub(crate) subject: u32,
    pub(crate) role: u32,
    pub(crate) scope: ResourcePattern,
    pub(crate) effect: Effect,
    pub(crate) conditions: Box<[CompiledCondition]>,
}

/// A tenant's policy, compiled for fast checks. Immutable: a change compiles a
/// new one, which the `Engine` swaps in atomically.
#[derive(Debug)]
pub struct CompiledPolicy {
    pub(crate) source: PolicySet,
    pub(crate) limits: Limits,
    pub(crate) role_edges: Edges,
    pub(crate) role_closure: Vec<Box<[u32]>>,
    pub(crate) grants: Vec<CompiledGrant>,
    /// For each role: the range of its grants in `grants` (they are contiguous).
    pub(crate) role_grants: Vec<std::ops::Range<u32>>,
    pub(crate) by_exact_action: HashMap<Box<str>, Vec<u32>>,
    pub(crate) by_type: HashMap<Box<str>, Vec<u32>>,
    pub(crate) by_verb: HashMap<Box<str>, Vec<u32>>,
    pub(crate) any_action: Vec<u32>,
    pub(crate) subject_names: Vec<Box<str>>,
    pub(crate) subject_ids: HashMap<Box<str>, u32>,
    pub(crate) group_edges: Edges,
    /// For each subject: itself and every group it belongs to, transitively.
    pub(crate) principals: Vec<Box<[u32]>>,
    pub(crate) bindings: Vec<CompiledBinding>,
    /// For each subject: the bindings naming it directly.
    pub(crate) bindings_of: Vec<Vec<u32>>,
    pub(crate) uses_time: bool,
    pub(crate) uses_ip: bool,
    pub(crate) claim_names: Box<[Box<str>]>,
}

impl CompiledPolicy {
    /// Validates and compiles a policy. Fails on malformed names or patterns,
    /// duplicate roles or binding ids, references to undefined roles, cycles
    /// and inputs beyond `limits`.
    pub fn compile(source: PolicySet, limits: Limits) -> Result<Self> {
        let max = limits.max_name_bytes;
        validate_name("tenant", &source.tenant, max)?;
        let too_large = |what, limit| AuthzError::TooLarge { what, limit };
        if source.roles.len() > limits.max_roles {
            return Err(too_large("roles", limits.max_roles));
        }
        if source.bindings.len() > limits.max_bindings {
            return Err(too_large("bindings", limits.max_bindings));
        }
        if source.memberships.len() > limits.max_memberships {
            return Err(too_large("memberships", limits.max_memberships));
        }
        let grant_count: usize = source.roles.iter().map(|r| r.grants.len()).sum();
        if grant_count > limits.max_grants {
            return Err(too_large("grants", limits.max_grants));
        }

        // Roles and inheritance.
        let mut role_ids: HashMap<&str, u32> = HashMap::default();
        role_ids.reserve(source.roles.len());
        for (i, role) in source.roles.iter().enumerate() {
            validate_name("role", &role.name, max)?;
            if role_ids.insert(role.name.as_str(), i as u32).is_some() {
                return Err(AuthzError::DuplicateRole {
                    role: role.name.clone(),
                });
            }
        }
        let mut role_edges: Edges = Vec::with_capacity(source.roles.len());
        for role in &source.roles {
            let mut parents = Vec::with_capacity(role.inherits.len());
            for parent in &role.inherits {
                let id = *role_ids
                    .get(parent.as_str())
                    .ok_or_else(|| AuthzError::UnknownRole {
                        role: parent.clone(),
                        referenced_by: format!("role {}", role.name),
                    })?;
                parents.push(id);
            }
            parents.sort_unstable();
            parents.dedup();
            role_edges.push(parents);
        }
        let role_order = graph::post_order(&role_edges).map_err(|cycle| AuthzError::Cycle {
            kind: CycleKind::Role,
            path: cycle
                .iter()
                .map(|&r| source.roles[r as usize].name.clone())
                .collect(),
        })?;
        if graph::longest_chain(&role_edges, &role_order) > limits.max_depth {
            return Err(too_large("role inheritance depth", limits.max_depth));
        }
        let role_closure = graph::closures(&role_edges, &role_order);

        // Grants, indexed by the shape of their action pattern.
        let mut grants = Vec::with_capacity(grant_count);
        let mut by_exact_action: HashMap<Box<str>, Vec<u32>> = HashMap::default();
        let mut by_type: HashMap<Box<str>, Vec<u32>> = HashMap::default();
        let mut by_verb: HashMap<Box<str>, Vec<u32>> = HashMap::default();
        let mut any_action = Vec::new();
        let mut role_grants = Vec::with_capacity(source.roles.len());
        for (r, role) in source.roles.iter().enumerate() {
            let first = grants.len() as u32;
            for (g, grant) in role.grants.iter().enumerate() {
                let action = ActionPattern::parse(&grant.action, max)?;
                let resource = ResourcePattern::parse(&grant.resource, max)?;
                let id = grants.len() as u32;
                match &action {
                    ActionPattern::Any => any_action.push(id),
                    ActionPattern::Exact(a) => {
                        by_exact_action.entry(a.clone()).or_default().push(id)
                    }
                    ActionPattern::Type(t) => by_type.entry(t.clone()).or_default().push(id),
                    ActionPattern::Verb(v) => by_verb.entry(v.clone()).or_default().push(id),
                }
                grants.push(CompiledGrant {
                    role: r as u32,
                    index: g as u32,
                    action,
                    resource,
                    effect: grant.effect,
                });
            }
            role_grants.push(first..grants.len() as u32);
        }

        // Subjects and group membership.
        let mut subject_names: Vec<Box<str>> = Vec::new();
        let mut subject_ids: HashMap<Box<str>, u32> = HashMap::default();
        let mut intern = |name: &str| -> Result<u32> {
            if let Some(&id) = subject_ids.get(name) {
                return Ok(id);
            }
            validate_name("subject", name, max)?;
            let id = subject_names.len() as u32;
            subject_names.push(name.into());
            subject_ids.insert(name.into(), id);
            Ok(id)
        };
        let mut membership_pairs = Vec::with_capacity(source.memberships.len());
        for m in &source.memberships {
            membership_pairs.push((intern(&m.member)?, intern(&m.group)?));
        }
        let mut binding_subjects = Vec::with_capacity(source.bindings.len());
        for b in &source.bindings {
            binding_subjects.push(intern(&b.subject)?);
        }
        let mut group_edges: Edges = vec![Vec::new(); subject_names.len()];
        for (member, group) in membership_pairs {
            group_edges[member as usize].push(group);
        }
        for groups in &mut group_edges {
            groups.sort_unstable();
            groups.dedup();
        }
        let group_order = graph::post_order(&group_edges).map_err(|cycle| AuthzError::Cycle {
            kind: CycleKind::Group,
            path: cycle
                .iter()
                .map(|&s| subject_names[s as usize].to_string())
                .collect(),
        })?;
        if graph::longest_chain(&group_edges, &group_order) > limits.max_depth {
            return Err(too_large("group nesting depth", limits.max_depth));
        }
        let principals = graph::closures(&group_edges, &group_order);

        // Bindings.
        let mut bindings = Vec::with_capacity(source.bindings.len());
        let mut bindings_of: Vec<Vec<u32>> = vec![Vec::new(); subject_names.len()];
        let mut binding_ids: foldhash::HashSet<&str> = foldhash::HashSet::default();
        let (mut uses_time, mut uses_ip) = (false, false);
        let mut claim_names: Vec<Box<str>> = Vec::new();
        for (i, (b, subject)) in source.bindings.iter().zip(binding_subjects).enumerate() {
            validate_name("binding id", &b.id, max)?;
            if !binding_ids.insert(&b.id) {
                return Err(AuthzError::DuplicateBinding { id: b.id.clone() });
            }
            let role = *role_ids
                .get(b.role.as_str())
                .ok_or_else(|| AuthzError::UnknownRole {
                    role: b.role.clone(),
                    referenced_by: format!("binding {}", b.id),
                })?;
            if b.conditions.len() > limits.max_conditions {
                return Err(too_large(
                    "conditions on one binding",
                    limits.max_conditions,
                ));
            }
            let conditions = b
                .conditions
                .iter()
                .map(|c| CompiledCondition::compile(&b.id, c, limits.max_cidrs))
                .collect::<Result<Box<[_]>>>()?;
            for c in &conditions {
                uses_time |= c.uses_time();
                match c {
                    CompiledCondition::IpIn(_) => uses_ip = true,
                    CompiledCondition::Claim { name, .. } => claim_names.push(name.clone()),
                    _ => {}
                }
            }
            bindings_of[subject as usize].push(i as u32);
            bindings.push(CompiledBinding {
                subject,
                role,
                scope: ResourcePattern::parse(&b.scope, max)?,
                effect: b.effect,
                conditions,
            });
        }
        claim_names.sort_unstable();
        claim_names.dedup();
        drop(binding_ids);

        Ok(Self {
            source,
            limits,
            role_edges,
            role_closure,
            grants,
            role_grants,
            by_exact_action,
            by_type,
            by_verb,
            any_action,
            subject_names,
            subject_ids,
            group_edges,
            principals,
            bindings,
            bindings_of,
            uses_time,
            uses_ip,
            claim_names: claim_names.into_boxed_slice(),
        })
    }

    /// The tenant this policy belongs to.
    pub fn tenant(&self) -> &str {
        &self.source.tenant
    }

    /// The policy as it was written (for storage, export and edits).
    pub fn source(&self) -> &PolicySet {
        &self.source
    }

    /// The limits it was compiled under (also applied to requests).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether any binding has a time condition; decisions then depend on the
    /// clock, and the decision cache does not keep them.
    pub fn uses_time(&self) -> bool {
        self.uses_time
    }

    /// Whether any binding has an IP condition (the IP is then part of the
    /// decision cache key).
    pub fn uses_ip(&self) -> bool {
        self.uses_ip
    }

    /// The claim names conditions look at (their values are then part of the
    /// decision cache key).
    pub fn claim_names(&self) -> &[Box<str>] {
        &self.claim_names
    }

    pub(crate) fn role_name(&self, role: u32) -> &str {
        &self.source.roles[role as usize].name
    }
}
