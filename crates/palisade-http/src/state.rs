//! What every handler can reach: the domain services, the database, health and metrics.

use crate::layers::rate_limit::RateLimitHeaders;
use crate::protection::RequestProtection;
use palisade_audit::log::AuditLog;
use palisade_auth::ApiKeys;
use palisade_auth::passwords::Passwords;
use palisade_authz::Authz;
use palisade_core::SharedClock;
use palisade_core::health::HealthRegistry;
use palisade_guard::ratelimit::{RateLimiter, RuleStore};
use palisade_observe::Metrics;
use palisade_store::Database;
use palisade_store::idempotency::IdempotencyStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Limits and switches of the HTTP layer (`[server]` in `palisade.toml`).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take before it is answered 408.
    pub request_timeout: Duration,
    /// Which rate-limit headers responses carry.
    pub rate_limit_headers: RateLimitHeaders,
    /// Share of allowed authorization decisions written to the audit log
    /// (denied ones always are): 0 for none, 1 for all.
    pub authz_audit_allowed_ratio: f64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            rate_limit_headers: RateLimitHeaders::default(),
            authz_audit_allowed_ratio: 0.0,
        }
    }
}

/// Shared application state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// API keys of Palisade's own API.
    pub api_keys: ApiKeys,
    /// The tamper-evident audit log.
    pub audit: AuditLog,
    /// The database.
    pub db: Database,
    /// Stored responses for `Idempotency-Key`.
    pub idempotency: IdempotencyStore,
    /// Rate-limit rules and the limiters enforcing them.
    pub ratelimit: RateLimiter,
    /// Authorization policies and decisions.
    pub authz: Authz,
    /// Password hashing on bounded blocking threads.
    pub passwords: Passwords,
    /// Rate-limit rules created over the API.
    pub ratelimit_rules: RuleStore,
    /// Dependency health checks.
    pub health: HealthRegistry,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Time.
    pub clock: SharedClock,
    /// HTTP limits.
    pub settings: HttpSettings,
    /// CSRF, security headers, CORS and trusted proxies.
    pub protection: RequestProtection,
    started: Instant,
    migrated: AtomicBool,
}

impl AppState {
    /// Assembles the state. The instance reports not-ready until [`AppState::mark_migrated`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Database,
        api_keys: ApiKeys,
        audit: AuditLog,
        ratelimit: RateLimiter,
        authz: Authz,
        passwords: Passwords,
        health: HealthRegistry,
        metrics: Metrics,
        clock: SharedClock,
        settings: HttpSettings,
    ) -> Self {
        Self(Arc::new(Inner {
            api_keys,
            audit,
            idempotency: IdempotencyStore::new(db.clone()),
            ratelimit,
            authz,
            passwords,
            ratelimit_rules: RuleStore::new(db.clone()),
            db,
            health,
            metrics,
            clock,
            settings,
            protection: RequestProtection::default(),
            started: Instant::now(),
            migrated: AtomicBool::new(false),
        }))
    }

    /// Replaces the default [`RequestProtection`] (random CSRF key, strict
    /// headers, no CORS, no trusted proxies) with the configured one.
    ///
    /// Call it right after [`AppState::new`], before the state is cloned:
    /// configuration set on one clone only would leave the others with the
    /// defaults, so that is refused with a panic at start-up.
    pub fn with_protection(mut self, protection: RequestProtection) -> Self {
        match Arc::get_mut(&mut self.0) {
            Some(inner) => inner.protection = protection,
            None => panic!("AppState::with_protection called after the state was cloned"),
        }
        self
    }

    /// Records that the schema is up to date; readiness may now turn green.
    pub fn mark_migrated(&self) {
        self.0.migrated.store(true, Ordering::Release);
    }

    /// Whether migrations have been applied.
    pub fn is_migrated(&self) -> bool {
        self.0.migrated.load(Ordering::Acquire)
    }

    /// Time since this state was built.
    pub fn uptime(&self) -> Duration {
        self.0.started.elapsed()
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
