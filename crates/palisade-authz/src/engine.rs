//! The `Engine`: every tenant's compiled policy and its version, swapped
//! atomically on change, and the decision API on top (check, batch check,
//! explain, effective permissions, subjects allowed).
//!
//! Storage, caches and pub/sub invalidation live elsewhere and drive the
//! engine through `put_policy`, `update_policy` and `install`.

use crate::compile::{CompiledPolicy, Limits};
use crate::condition::Attributes;
use crate::decide::{EffectivePermission, Request};
use crate::error::Result;
use crate::explain::Explanation;
use crate::model::PolicySet;
use arc_swap::ArcSwap;
use foldhash::HashMap;
use palisade_core::{SharedClock, new_id};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// A tenant's compiled policy with its version. The version grows by at
/// least one on every change, so it can key caches and order updates.
#[derive(Debug, Clone)]
pub struct TenantPolicy {
    /// Version of this policy; higher is newer.
    pub version: u64,
    /// The compiled policy.
    pub policy: Arc<CompiledPolicy>,
}

/// The answer to one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// UUIDv7 identifying this decision, for audit records.
    pub id: Uuid,
    /// Whether the request is allowed.
    pub allowed: bool,
    /// The tenant policy version decided against (0 when the tenant is unknown).
    pub policy_version: u64,
    /// Why, when asked for with `Engine::explain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

/// Holds every tenant's policy and answers authorization questions.
#[derive(Debug)]
pub struct Engine {
    clock: SharedClock,
    limits: Limits,
    tenants: ArcSwap<HashMap<Box<str>, TenantPolicy>>,
    /// Serialises writers so read-modify-write updates never lose a change;
    /// readers never take it.
    writer: Mutex<()>,
}

impl Engine {
    /// An empty engine (every check denies) using `clock` for decision ids
    /// and for time conditions when a request carries no time.
    pub fn new(clock: SharedClock) -> Self {
        Self::with_limits(clock, Limits::default())
    }

    /// An empty engine with non-default limits.
    pub fn with_limits(clock: SharedClock, limits: Limits) -> Self {
        Self {
            clock,
            limits,
            tenants: ArcSwap::from_pointee(HashMap::default()),
            writer: Mutex::new(()),
        }
    }

    /// The limits policies and requests are held to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The clock decisions are stamped with; the service layer uses it for
    /// the time of policy writes, so tests with a manual clock control both.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Compiles `set` and makes it its tenant's policy, replacing any previous
    /// one. Returns the new version. On error nothing changes.
    pub fn put_policy(&self, set: PolicySet) -> Result<u64> {
        let compiled = Arc::new(CompiledPolicy::compile(set, self.limits)?);
        let _writer = self.lock_writer();
        let version = self.version(compiled.tenant()) + 1;
        self.swap_in(compiled, version);
        Ok(version)
    }

    /// Applies `change` to a copy of the tenant's current policy (an empty
    /// one if it has none), compiles it and swaps it in. If `change` or the
    /// compilation fails — a cycle, an unknown role — nothing changes.
    pub fn update_policy<F>(&self, tenant: &str, change: F) -> Result<u64>
    where
        F: FnOnce(&mut PolicySet) -> Result<()>,
    {
        let _writer = self.lock_writer();
        let current = self.tenant(tenant);
        let mut set = current.as_ref().map_or_else(
            || PolicySet {
                tenant: tenant.to_owned(),
                ..PolicySet::default()
            },
            |t| t.policy.source().clone(),
        );
        change(&mut set)?;
        // The change must not move the policy to another tenant.
        set.tenant = tenant.to_owned();
        let compiled = Arc::new(CompiledPolicy::compile(set, self.limits)?);
        let version = current.map_or(0, |t| t.version) + 1;
        self.swap_in(compiled, version);
        Ok(version)
    }

    /// Installs a policy compiled elsewhere at a version chosen by the caller
    /// (the storage layer's version, so every instance agrees). Ignored, and
    /// `false` returned, when the engine already holds that version or newer:
    /// a late invalidation message cannot roll a tenant back.
    pub fn install(&self, policy: Arc<CompiledPolicy>, version: u64) -> bool {
        let _writer = self.lock_writer();
        if self
            .tenant(policy.tenant())
            .is_some_and(|t| t.version >= version)
        {
            return false;
        }
        self.swap_in(policy, version);
        true
    }

    /// Removes a tenant's policy; its checks then deny. Returns whether it existed.
    pub fn remove_tenant(&self, tenant: &str) -> bool {
        let _writer = self.lock_writer();
        let mut map = HashMap::clone(&self.tenants.load());
        let existed = map.remove(tenant).is_some();
        self.tenants.store(Arc::new(map));
        existed
    }

    /// The tenant's current policy and version.
    pub fn tenant(&self, tenant: &str) -> Option<TenantPolicy> {
        self.tenants.load().get(tenant).cloned()
    }

    /// The tenant's current policy version, 0 if it has none.
    pub fn version(&self, tenant: &str) -> u64 {
        self.tenants.load().get(tenant).map_or(0, |t| t.version)
    }

    /// The tenants that have a policy, sorted.
    pub fn tenants(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tenants.load().keys().map(|k| k.to_string()).collect();
        names.sort_unstable();
        names
    }

    /// Decides one request. Unknown tenant, subject, role or action: deny.
    /// Errors only for a malformed request (`AuthzError::InvalidRequest`).
    pub fn check(&self, request: &Request<'_>) -> Result<Decision> {
        let (allowed, policy_version) = self.decide(request)?;
        Ok(Decision {
            id: new_id(&*self.clock),
            allowed,
            policy_version,
            explanation: None,
        })
    }

    /// Just the allow/deny and the policy version, without a decision id:
    /// what a decision cache stores.
    pub fn decide(&self, request: &Request<'_>) -> Result<(bool, u64)> {
        request.validate(self.limits.max_name_bytes)?;
        let tenants = self.tenants.load();
        let Some(tenant) = tenants.get(request.tenant) else {
            return Ok((false, 0));
        };
        let now = self.now_for(request.attributes);
        Ok((tenant.policy.decide(request, now), tenant.version))
    }

    /// Decides many requests; each answer is independent.
    pub fn check_batch(&self, requests: &[Request<'_>]) -> Vec<Result<Decision>> {
        requests.iter().map(|r| self.check(r)).collect()
    }

    /// Decides one request and explains the decision.
    pub fn explain(&self, request: &Request<'_>) -> Result<Decision> {
        request.validate(self.limits.max_name_bytes)?;
        let tenants = self.tenants.load();
        let (explanation, policy_version) = match tenants.get(request.tenant) {
            None => (Explanation::unknown_tenant(request), 0),
            Some(tenant) => (
                tenant
                    .policy
                    .explain_validated(request, self.now_for(request.attributes)),
                tenant.version,
            ),
        };
        Ok(Decision {
            id: new_id(&*self.clock),
            allowed: explanation.allowed(),
            policy_version,
            explanation: Some(explanation),
        })
    }

    /// Every permission `subject` holds in `tenant` (empty for unknown ones).
    pub fn effective_permissions(&self, tenant: &str, subject: &str) -> Vec<EffectivePermission> {
        self.tenants
            .load()
            .get(tenant)
            .map(|t| t.policy.effective_permissions(subject))
            .unwrap_or_default()
    }

    /// The subjects allowed to do `action` on `resource` in `tenant`.
    pub fn subjects_allowed(
        &self,
        tenant: &str,
        action: &str,
        resource: &str,
        attributes: &Attributes,
    ) -> Result<Vec<String>> {
        match self.tenants.load().get(tenant) {
            None => Ok(Vec::new()),
            Some(t) => {
                t.policy
                    .subjects_allowed(action, resource, attributes, self.now_for(attributes))
            }
        }
    }

    /// The time conditions are evaluated at: the request's, else the clock's.
    pub fn now_for(&self, attributes: &Attributes) -> i64 {
        attributes
            .time_unix_ms
            .unwrap_or_else(|| self.clock.now_unix_ms())
    }

    fn swap_in(&self, policy: Arc<CompiledPolicy>, version: u64) {
        let mut map = HashMap::clone(&self.tenants.load());
        map.insert(policy.tenant().into(), TenantPolicy { version, policy });
        self.tenants.store(Arc::new(map));
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic while holding the lock cannot leave the map half-written
        // (it is swapped whole), so a poisoned lock is safe to reuse.
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
