//! `Authz`: the policy store and the engine kept in step. Writes go to the
//! store first (optimistic concurrency, retried from a fresh read), then into
//! this instance's engine at the store's version; other instances catch up
//! through `refresh` (a timer, the fallback that keeps them correct when a
//! change notification is lost) or `refresh_tenant` (a notification naming
//! the tenant). Because every instance installs the store's version, all of
//! them agree on what "version 7 of tenant acme" means, and the decision
//! cache, keyed by version, can never answer from a policy that was replaced.

use crate::cache::DecisionCache;
use crate::compile::CompiledPolicy;
use crate::engine::Engine;
use crate::error::{AuthzError, Result};
use crate::invalidation;
use crate::model::PolicySet;
use crate::store::PolicyStore;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How often a write is tried before `VersionConflict` is returned. Every
/// conflict means another writer succeeded, so this only runs out under a
/// sustained storm of writes to one tenant.
const MAX_ATTEMPTS: u32 = 8;

/// The authorization service: engine, decision cache and policy store. Cheap
/// to clone (one `Arc`); clones share everything.
#[derive(Clone)]
pub struct Authz {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    store: PolicyStore,
    cache: DecisionCache,
    /// Held while store state is applied to the engine. A refresh that read
    /// the tenant list before this instance wrote a new tenant would
    /// otherwise remove the tenant just installed; with the lock, the
    /// writer's install waits for the refresh and lands after it.
    apply: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Authz {
    // By hand: the engine's derived Debug would print every tenant's compiled policy.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authz")
            .field("tenants", &self.inner.engine.tenants().len())
            .finish_non_exhaustive()
    }
}

impl Authz {
    /// The service over `engine`, `store` and `cache`. Call `load_all` before
    /// serving checks: a new engine knows no tenant and denies everything.
    pub fn new(engine: Engine, store: PolicyStore, cache: DecisionCache) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                store,
                cache,
                apply: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The engine, for synchronous checks (`check`, `explain`, ...).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The decision cache, used as `authz.cache().check(authz.engine(), ..)`.
    pub fn cache(&self) -> &DecisionCache {
        &self.inner.cache
    }

    /// The policy store.
    pub fn store(&self) -> &PolicyStore {
        &self.inner.store
    }

    /// Loads every stored tenant into the engine (start-up warm-up) and drops
    /// tenants the store no longer has. Returns how many tenants changed.
    ///
    /// One query when every row is usable. If one is not, every other tenant
    /// is still loaded and the error (`CorruptPolicy`) is returned afterwards,
    /// so one bad row cannot keep the rest of the tenants denied.
    pub async fn load_all(&self) -> Result<usize> {
        let _apply = self.inner.apply.lock().await;
        let all = match self.inner.store.list().await {
            Ok(all) => all,
            // Fall back to one read per tenant, which skips the bad row.
            Err(AuthzError::CorruptPolicy { .. }) => return self.sync_all().await,
            Err(e) => return Err(e),
        };
        let live: HashSet<String> = all.iter().map(|(set, _)| set.tenant.clone()).collect();
        let mut outcome = Outcome::default();
        for (set, version) in all {
            let tenant = set.tenant.clone();
            outcome.record(self.apply_stored(&tenant, Some((set, version))));
        }
        self.remove_absent(&live, &mut outcome);
        outcome.finish()
    }

    /// Read-modify-write of one tenant's policy: reads the stored set (an
    /// empty one for a new tenant), applies `change`, compiles the result —
    /// so a cycle, an unknown role or a bad pattern is rejected with its
    /// typed error and nothing is stored — writes it if nobody else wrote in
    /// between, and installs it in this instance's engine at the new version.
    /// On a `VersionConflict` it starts again from a fresh read (so `change`
    /// may run more than once and must not have side effects), a bounded
    /// number of times. Returns the new version.
    ///
    /// If this future is dropped after the write, the engine catches up on
    /// the next `refresh`.
    pub async fn modify<F>(&self, tenant: &str, change: F) -> Result<u64>
    where
        F: Fn(&mut PolicySet) -> Result<()> + Send + Sync,
    {
        let limits = *self.inner.engine.limits();
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt).await;
            let (mut set, expected) = self.inner.store.get(tenant).await?.unwrap_or_else(|| {
                (
                    PolicySet {
                        tenant: tenant.to_owned(),
                        ..PolicySet::default()
                    },
                    0,
                )
            });
            change(&mut set)?;
            // The change must not move the policy to another tenant.
            set.tenant = tenant.to_owned();
            let compiled = Arc::new(CompiledPolicy::compile(set, limits)?);
            match self.commit(compiled, expected).await {
                Err(AuthzError::VersionConflict) => continue,
                other => return other,
            }
        }
        Err(AuthzError::VersionConflict)
    }

    /// Replaces a tenant's whole policy (a Casbin import, a restore), with the
    /// same guarantees as `modify`: compiled before anything is stored,
    /// installed at the store's version. Works on a tenant whose stored row
    /// no longer parses, which makes it the way to repair one.
    pub async fn replace(&self, set: PolicySet) -> Result<u64> {
        let compiled = Arc::new(CompiledPolicy::compile(set, *self.inner.engine.limits())?);
        for attempt in 0..MAX_ATTEMPTS {
            backoff(attempt).await;
            let expected = self.inner.store.version(compiled.tenant()).await?;
            match self.commit(Arc::clone(&compiled), expected).await {
                Err(AuthzError::VersionConflict) => continue,
                other => return other,
            }
        }
        Err(AuthzError::VersionConflict)
    }

    /// The stored policy of a tenant with its version (`None` if it has
    /// none). Read from the store, not the engine, so an administrator sees
    /// the latest write even before this instance has refreshed.
    pub async fn policy(&self, tenant: &str) -> Result<Option<(PolicySet, u64)>> {
        self.inner.store.get(tenant).await
    }

    /// Deletes a tenant's policy from the store and this engine; its checks
    /// then deny (elsewhere after their next refresh). Returns whether it had one.
    pub async fn delete(&self, tenant: &str) -> Result<bool> {
        let now = self.inner.engine.clock().now_unix_ms();
        let existed = self.inner.store.delete(tenant, now).await?;
        {
            let _apply = self.inner.apply.lock().await;
            self.inner.engine.remove_tenant(tenant);
        }
        self.announce(tenant).await;
        Ok(existed)
    }

    /// Tells other instances that `tenant` changed. The change is stored
    /// already; if the announcement fails they learn it from their poll.
    async fn announce(&self, tenant: &str) {
        if let Err(error) = invalidation::announce(self.inner.store.database(), tenant).await {
            tracing::debug!(%error, tenant, "policy change not announced; other instances will poll");
        }
    }

    /// Brings the engine in step with the store: one `versions()` query, then
    /// a read of each tenant whose stored version differs from the engine's;
    /// tenants deleted from the store are removed from the engine. Returns
    /// how many tenants changed. Called on a timer (version polling) and when
    /// a change notification arrives.
    ///
    /// A stored policy that cannot be used leaves that tenant as it was and is
    /// reported as `CorruptPolicy` after every other tenant has been applied.
    pub async fn refresh(&self) -> Result<usize> {
        let _apply = self.inner.apply.lock().await;
        self.sync_all().await
    }

    /// Brings one tenant in step with the store (a change notification names
    /// it). Returns whether the engine changed.
    pub async fn refresh_tenant(&self, tenant: &str) -> Result<bool> {
        let _apply = self.inner.apply.lock().await;
        let stored = self.inner.store.get(tenant).await;
        let changed = stored.and_then(|found| self.apply_stored(tenant, found));
        metrics::counter!("palisade_authz_refreshes_total", "scope" => "tenant").increment(1);
        match &changed {
            Ok(true) => metrics::counter!("palisade_authz_refreshed_tenants_total").increment(1),
            Err(e @ AuthzError::CorruptPolicy { .. }) => note_failure(tenant, e),
            Ok(false) | Err(_) => {}
        }
        changed
    }

    /// Writes a compiled policy if the stored version is still `expected`
    /// and installs it at the version the store gave it.
    async fn commit(&self, compiled: Arc<CompiledPolicy>, expected: u64) -> Result<u64> {
        let now = self.inner.engine.clock().now_unix_ms();
        let written = self
            .inner
            .store
            .put_if_version(compiled.source(), expected, now)
            .await;
        let version = match written {
            Ok(version) => version,
            Err(e) => {
                if matches!(e, AuthzError::VersionConflict) {
                    metrics::counter!("palisade_authz_version_conflicts_total").increment(1);
                }
                return Err(e);
            }
        };
        let tenant = compiled.source().tenant.clone();
        {
            let _apply = self.inner.apply.lock().await;
            // `false` only when a refresh already installed this version or a newer one.
            self.inner.engine.install(compiled, version);
        }
        self.announce(&tenant).await;
        Ok(version)
    }

    /// The body of `refresh`; the caller holds the apply lock.
    async fn sync_all(&self) -> Result<usize> {
        let stored = self.inner.store.versions().await?;
        let engine = &self.inner.engine;
        let mut outcome = Outcome::default();
        for (tenant, version) in &stored {
            if *version == engine.version(tenant) {
                continue;
            }
            match self.inner.store.get(tenant).await {
                Ok(found) => outcome.record(self.apply_stored(tenant, found)),
                // The database went away or failed: the rest would fail too.
                Err(e @ (AuthzError::Store(_) | AuthzError::StoreUnavailable(_))) => {
                    metrics::counter!("palisade_authz_refreshes_total", "scope" => "all")
                        .increment(1);
                    return Err(e);
                }
                Err(e) => outcome.record(Err(e)),
            }
        }
        let live: HashSet<String> = stored.into_iter().map(|(tenant, _)| tenant).collect();
        self.remove_absent(&live, &mut outcome);
        metrics::counter!("palisade_authz_refreshes_total", "scope" => "all").increment(1);
        metrics::counter!("palisade_authz_refreshed_tenants_total")
            .increment(outcome.changed as u64);
        outcome.finish()
    }

    /// Makes the engine hold what the store holds for one tenant; the caller
    /// holds the apply lock. Returns whether the engine changed.
    fn apply_stored(&self, tenant: &str, found: Option<(PolicySet, u64)>) -> Result<bool> {
        let engine = &self.inner.engine;
        let Some((set, version)) = found else {
            return Ok(engine.remove_tenant(tenant));
        };
        let current = engine.version(tenant);
        if version == current {
            return Ok(false);
        }
        // A stored policy that compiled when written may not compile now
        // (lower limits, a newer writer); it is the stored row that is bad.
        let compiled = CompiledPolicy::compile(set, *engine.limits()).map_err(|e| {
            AuthzError::CorruptPolicy {
                tenant: tenant.to_owned(),
                reason: format!("does not compile: {e}"),
            }
        })?;
        if version < current {
            // Versions only grow, so the database was restored from a backup
            // or replaced: it is the source of truth. Cached decisions of the
            // versions being reused must not answer again.
            tracing::warn!(
                tenant,
                stored = version,
                held = current,
                "stored policy version is older than the one held; rolling back to the store"
            );
            engine.remove_tenant(tenant);
            self.inner.cache.clear();
        }
        Ok(engine.install(Arc::new(compiled), version))
    }

    /// Removes tenants the engine holds but the store does not.
    fn remove_absent(&self, live: &HashSet<String>, outcome: &mut Outcome) {
        for tenant in self.inner.engine.tenants() {
            if !live.contains(&tenant) && self.inner.engine.remove_tenant(&tenant) {
                outcome.changed += 1;
            }
        }
    }
}

/// What a pass over several tenants did: how many changed, and the first
/// tenant that could not be applied (the others were still applied).
#[derive(Default)]
struct Outcome {
    changed: usize,
    first_error: Option<AuthzError>,
}

impl Outcome {
    fn record(&mut self, applied: Result<bool>) {
        match applied {
            Ok(changed) => self.changed += usize::from(changed),
            Err(e) => {
                if let AuthzError::CorruptPolicy { tenant, .. } = &e {
                    note_failure(tenant, &e);
                }
                self.first_error.get_or_insert(e);
            }
        }
    }

    fn finish(self) -> Result<usize> {
        self.first_error.map_or(Ok(self.changed), Err)
    }
}

fn note_failure(tenant: &str, error: &AuthzError) {
    metrics::counter!("palisade_authz_policy_load_failures_total").increment(1);
    tracing::error!(tenant, %error, "stored authorization policy could not be applied");
}

/// Waits before retry `attempt` (none before the first), random up to a
/// doubling bound, so writers that just collided do not collide again in step.
async fn backoff(attempt: u32) {
    if attempt > 0 {
        let bound = 1_000u64 << attempt.min(10);
        tokio::time::sleep(Duration::from_micros(fastrand::u64(0..bound))).await;
    }
}
