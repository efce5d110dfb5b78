//! A small, bounded, in-process decision cache (the L1 of issue 7).
//!
//! Keys carry the tenant's policy version, so a policy change makes old
//! entries unreachable at once without any invalidation message; they age
//! out under the size bound and TTL. Keys also carry exactly the attributes
//! the tenant's conditions look at (IP, named claims), and decisions of
//! tenants with time conditions are not cached at all, because they can
//! change from one millisecond to the next.

use crate::decide::Request;
use crate::engine::Engine;
use crate::error::Result;
use std::cell::RefCell;
use std::time::Duration;

/// A decision cache in front of an `Engine`.
#[derive(Debug, Clone)]
pub struct DecisionCache {
    entries: moka::sync::Cache<Box<[u8]>, bool>,
}

/// A cached (or freshly computed) decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedDecision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// The policy version it was decided against.
    pub policy_version: u64,
    /// Whether it came from the cache.
    pub hit: bool,
}

thread_local! {
    // The key is built here and looked up by reference, so a hit allocates nothing.
    static KEY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl DecisionCache {
    /// A cache of at most `max_entries` decisions, each kept at most `ttl`.
    pub fn new(max_entries: u64, ttl: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// Decides `request` through the cache.
    pub fn check(&self, engine: &Engine, request: &Request<'_>) -> Result<CachedDecision> {
        request.validate(engine.limits().max_name_bytes)?;
        let Some(tenant) = engine.tenant(request.tenant) else {
            return Ok(CachedDecision {
                allowed: false,
                policy_version: 0,
                hit: false,
            });
        };
        let policy = &tenant.policy;
        let now = engine.now_for(request.attributes);
        if policy.uses_time() {
            return Ok(CachedDecision {
                allowed: policy.decide(request, now),
                policy_version: tenant.version,
                hit: false,
            });
        }
        KEY.with(|key| {
            let mut key = key.borrow_mut();
            key.clear();
            push_field(&mut key, request.tenant.as_bytes());
            key.extend_from_slice(&tenant.version.to_le_bytes());
            push_field(&mut key, request.subject.as_bytes());
            push_field(&mut key, request.action.as_bytes());
            push_field(&mut key, request.resource.as_bytes());
            if policy.uses_ip() {
                push_field(
                    &mut key,
                    request
                        .attributes
                        .ip
                        .map(|ip| ip.to_string())
                        .unwrap_or_default()
                        .as_bytes(),
                );
            }
            for name in policy.claim_names() {
                // serde_json renders a Value the same way every time, and a
                // missing claim ("") differs from any rendered value.
                let rendered = request
                    .attributes
                    .claims
                    .get(&**name)
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                push_field(&mut key, rendered.as_bytes());
            }
            if let Some(allowed) = self.entries.get(key.as_slice()) {
                return Ok(CachedDecision {
                    allowed,
                    policy_version: tenant.version,
                    hit: true,
                });
            }
            let allowed = policy.decide(request, now);
            self.entries.insert(key.as_slice().into(), allowed);
            Ok(CachedDecision {
                allowed,
                policy_version: tenant.version,
                hit: false,
            })
        })
    }

    /// Drops every entry (for tests and emergency invalidation; policy
    /// changes do not need it).
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }
}

/// Length-prefixed, so no choice of field contents can make two different
/// requests produce the same key.
fn push_field(key: &mut Vec<u8>, field: &[u8]) {
    key.extend_from_slice(&(field.len() as u32).to_le_bytes());
    key.extend_from_slice(field);
}
