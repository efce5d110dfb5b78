//! Authorization for Palisade: role-based access control with tenants, a role
//! hierarchy (a DAG), wildcard permissions, bindings scoped to resources or
//! subtrees, explicit deny, conditions on bindings (IP, time, claims),
//! decisions with explanations, a decision cache and Casbin import.
//!
//! The flow: a tenant's policy is plain data (`PolicySet`, serde), compiled
//! into an immutable `CompiledPolicy` (validated, cycles rejected, indexes
//! built), held by the `Engine` with a version per tenant and swapped
//! atomically on change. Checks are default deny; an unknown tenant, subject,
//! role or action is a deny, never an error.
//!
//! Policies are stored per tenant with a version (`PolicyStore`, on SQLite or
//! PostgreSQL); the `Authz` service writes through the store with optimistic
//! concurrency and keeps the engine in step with it (warm-up, version
//! polling, refresh on a change notification). The L2 cache, pub/sub and the
//! HTTP routes build on that API; this crate knows no HTTP.

mod cache;
pub mod casbin;
mod compile;
mod condition;
mod decide;
mod engine;
mod error;
mod explain;
mod graph;
pub mod invalidation;
mod model;
mod pattern;
mod service;
mod store;

pub use cache::{CachedDecision, DecisionCache};
pub use casbin::{CasbinOptions, import_casbin};
pub use compile::{CompiledPolicy, Limits};
pub use condition::Attributes;
pub use decide::{EffectivePermission, Request};
pub use engine::{Decision, Engine, TenantPolicy};
pub use error::{AuthzError, CycleKind, Result};
pub use explain::{
    DefaultDeny, DefaultDenyReason, Explanation, GrantPath, SkipReason, SkippedBinding,
};
pub use model::{Binding, Condition, Effect, Grant, Membership, PolicySet, RoleDef};
pub use pattern::{ActionPattern, ResourcePattern};
pub use service::Authz;
pub use store::PolicyStore;
