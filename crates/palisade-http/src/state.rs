//! What every handler can reach: the domain services, the database, health and metrics.

use crate::layers::rate_limit::RateLimitHeaders;
use crate::protection::RequestProtection;
use palisade_audit::log::AuditLog;
use palisade_auth::ApiKeys;
use palisade_auth::lockout::{Lockout, LockoutKeys, LockoutPolicy};
use palisade_auth::passwords::Passwords;
use palisade_auth::tokens::Tokens;
use palisade_authz::Authz;
use palisade_core::health::HealthRegistry;
use palisade_core::{SecurityEvents, SharedClock};
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
    /// Brute-force protection of password verification; publishes to
    /// `security_events`.
    pub lockout: Lockout,
    /// Security events (login failures, lockouts, ...) for threat detection
    /// to subscribe to.
    pub security_events: SecurityEvents,
    /// Palisade's own access and refresh tokens, once [`AppState::with_tokens`]
    /// installed them (after migrations: their keys live in the database).
    tokens: std::sync::OnceLock<Tokens>,
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
    /// Threat detection and response, once [`AppState::with_threats`] installed it.
    threats: std::sync::OnceLock<palisade_guard::threats::ThreatDefense>,
    /// The encryption keyring, once [`AppState::with_crypto`] installed it.
    crypto: std::sync::OnceLock<palisade_crypto::Keyring>,
    /// Request inspection for `/v1/inspect`; the default one until
    /// [`AppState::with_inspector`] installs the configured one.
    inspector: std::sync::OnceLock<palisade_guard::inspect::Inspector>,
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
        let security_events = SecurityEvents::default();
        let lockout = default_lockout(clock.clone(), security_events.clone());
        Self(Arc::new(Inner {
            api_keys,
            audit,
            idempotency: IdempotencyStore::new(db.clone()),
            ratelimit,
            authz,
            passwords,
            lockout,
            security_events,
            tokens: std::sync::OnceLock::new(),
            ratelimit_rules: RuleStore::new(db.clone()),
            db,
            health,
            metrics,
            clock,
            settings,
            protection: RequestProtection::default(),
            threats: std::sync::OnceLock::new(),
            crypto: std::sync::OnceLock::new(),
            inspector: std::sync::OnceLock::new(),
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

    /// Replaces the default [`Lockout`] (in process, default policy, keys
    /// valid in this process only) with the configured one. It is made to
    /// publish to this state's `security_events`.
    ///
    /// Like [`AppState::with_protection`], call it before the state is cloned.
    pub fn with_lockout(mut self, lockout: Lockout) -> Self {
        match Arc::get_mut(&mut self.0) {
            Some(inner) => inner.lockout = lockout.with_events(inner.security_events.clone()),
            None => panic!("AppState::with_lockout called after the state was cloned"),
        }
        self
    }

    /// Replaces the security-event sink (for a capacity of one's own, or one
    /// shared with other components); the lockout publishes to it too.
    ///
    /// Like [`AppState::with_protection`], call it before the state is cloned.
    pub fn with_security_events(mut self, events: SecurityEvents) -> Self {
        match Arc::get_mut(&mut self.0) {
            Some(inner) => {
                inner.lockout = inner.lockout.clone().with_events(events.clone());
                inner.security_events = events;
            }
            None => panic!("AppState::with_security_events called after the state was cloned"),
        }
        self
    }

    /// Installs the token service behind `/v1/auth/tokens` and the JWKS
    /// (without one those answer 503). Build it with this state's
    /// `security_events`. May be called on any clone, once.
    pub fn with_tokens(self, tokens: Tokens) -> Self {
        if self.0.tokens.set(tokens).is_err() {
            tracing::error!("AppState::with_tokens called twice; keeping the first token service");
        }
        self
    }

    /// The token service, or 503 while there is none.
    pub fn tokens(&self) -> Result<&Tokens, crate::problem::Problem> {
        self.0.tokens.get().ok_or_else(|| {
            crate::problem::Problem::unavailable("the token service is not ready", 2)
        })
    }

    /// Installs the encryption keyring behind `/v1/crypto` (without one those
    /// routes answer 503). Set once, on the state shared by every clone, so it
    /// may be called after cloning; a second keyring is refused (logged) and
    /// the first stays. The audit log seals events' `pii` with it too, unless
    /// it was given a cipher already.
    pub fn with_crypto(self, keyring: palisade_crypto::Keyring) -> Self {
        if !self.0.audit.has_pii_cipher() {
            self.0
                .audit
                .set_pii_cipher(std::sync::Arc::new(palisade_audit::pii::KeyringPii::new(
                    keyring.clone(),
                )));
        }
        if self.0.crypto.set(keyring).is_err() {
            tracing::error!("AppState::with_crypto called twice; keeping the first keyring");
        }
        self
    }

    /// The encryption keyring, or 503 when none is installed.
    pub fn crypto(&self) -> Result<&palisade_crypto::Keyring, crate::problem::Problem> {
        self.0.crypto.get().ok_or_else(|| {
            crate::problem::Problem::unavailable("the encryption keyring is not ready", 2)
        })
    }

    /// Installs threat detection (`/v1/threats` and the blocking layer;
    /// without it those routes answer 503 and nothing is blocked). Build it
    /// on this state's `security_events`. Set once, shared by every clone; a
    /// second one is refused (logged) and the first stays.
    pub fn with_threats(self, threats: palisade_guard::threats::ThreatDefense) -> Self {
        if self.0.threats.set(threats).is_err() {
            tracing::error!("AppState::with_threats called twice; keeping the first");
        }
        self
    }

    /// Threat detection, or 503 when none is installed.
    pub fn threats(
        &self,
    ) -> Result<&palisade_guard::threats::ThreatDefense, crate::problem::Problem> {
        self.0.threats.get().ok_or_else(|| {
            crate::problem::Problem::unavailable(
                "threat detection is not configured on this instance",
                60,
            )
        })
    }

    /// Installs the configured request inspector behind `/v1/inspect`. Set
    /// once, shared by every clone; a second one is refused (logged).
    pub fn with_inspector(self, inspector: palisade_guard::inspect::Inspector) -> Self {
        if self.0.inspector.set(inspector).is_err() {
            tracing::error!("AppState::with_inspector called twice; keeping the first");
        }
        self
    }

    /// The request inspector: the configured one, or the default until then.
    pub fn inspector(&self) -> &palisade_guard::inspect::Inspector {
        self.0
            .inspector
            .get_or_init(palisade_guard::inspect::Inspector::default)
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

/// Lockout for a state assembled without configuration: in process, default
/// policy, random keys. Off (and logged) only if no random key can be made.
fn default_lockout(clock: SharedClock, events: SecurityEvents) -> Lockout {
    match LockoutKeys::random().and_then(|keys| {
        Lockout::new(
            LockoutPolicy::default(),
            keys,
            clock.clone(),
            events.clone(),
        )
    }) {
        Ok(lockout) => lockout,
        Err(error) => {
            tracing::error!(%error, "brute-force protection is off: no lockout keys");
            Lockout::disabled(clock, events)
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
