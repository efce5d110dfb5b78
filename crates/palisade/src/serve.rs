//! `palisade serve`: wire the configuration into the HTTP application and run it.

use crate::config::Config;
use anyhow::Context;
use axum::Extension;
use palisade_audit::checkpoint::NoteSigner;
use palisade_audit::event::{Actor, NewEvent, Outcome, Resource};
use palisade_audit::forward::Forwarder;
use palisade_audit::log::{AuditLog, AuditSettings};
use palisade_audit::spool::{Spool, SpoolConfig};
use palisade_audit::store::AuditStore;
use palisade_auth::{ApiKeyStore, ApiKeys};
use palisade_authz::{Authz, DecisionCache, Engine, PolicyStore};
use palisade_core::health::HealthRegistry;
use palisade_core::principal::TenantId;
use palisade_core::{SharedClock, SystemClock};
use palisade_guard::ratelimit::{BlockReport, BlockReporter, RateLimiter, RuleSync};
use palisade_http::{AppState, HttpSettings, api_router};
use palisade_observe::Metrics;
use palisade_store::{Backend, Database, DatabaseHealth, Redis, RedisHealth};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// How often idle rate-limit keys are dropped.
const EVICTION_INTERVAL: Duration = Duration::from_secs(30);

/// How long one health check may take before the dependency counts as down.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A running application's parts, built from the configuration.
#[derive(Debug)]
pub struct App {
    /// The shared state.
    pub state: AppState,
    /// The database.
    pub db: Database,
}

/// Opens the database and assembles the state. Migrations run in the background
/// for PostgreSQL (so Palisade starts, not-ready, while the database is down) and
/// at once for the embedded SQLite file.
pub async fn build(config: &Config) -> anyhow::Result<App> {
    let clock: SharedClock = SystemClock::shared();
    let db = Database::connect(&config.database, &config.data_dir())
        .await
        .context("opening the database")?;
    let metrics = Metrics::install()?;
    let mut health = HealthRegistry::new(HEALTH_CHECK_TIMEOUT);
    health
        .register(Arc::new(DatabaseHealth(db.clone())))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Optional and never required for readiness: Palisade runs without it.
    let redis = match &config.redis {
        Some(redis) => {
            let redis = Redis::new(redis, clock.clone()).context("configuring Redis")?;
            health
                .register(Arc::new(RedisHealth(redis.clone())))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Some(redis)
        }
        None => None,
    };
    let api_keys = ApiKeys::new(
        ApiKeyStore::new(db.clone()),
        &config.secrets.api_key_pepper,
        clock.clone(),
    );
    let audit = start_audit(config, &db, clock.clone())?;
    if let Some(syslog) = &config.audit.syslog {
        // Reads the log on its own task: appends never wait for the syslog server.
        let forwarder = Forwarder::start(audit.clone(), syslog.settings(&config.data_dir()))
            .context("starting audit forwarding to syslog (audit.syslog)")?;
        health
            .register(Arc::new(forwarder.health()))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tracing::info!(transport = ?syslog.transport, "forwarding the audit log to syslog");
    }
    let settings = HttpSettings {
        max_body_bytes: config.server.max_body_bytes,
        request_timeout: config.request_timeout(),
        rate_limit_headers: config.ratelimit.headers(),
        authz_audit_allowed_ratio: config.authz.audit_allowed_ratio,
    };
    let ratelimit = rate_limiter(config, redis.clone(), clock.clone(), audit.clone());
    let authz = Authz::new(
        Engine::new(clock.clone()),
        PolicyStore::new(db.clone()),
        DecisionCache::new(config.authz.cache_max_entries, config.authz.cache_ttl()),
    );
    let state = AppState::new(
        db.clone(),
        api_keys,
        audit,
        ratelimit,
        authz,
        config.passwords.passwords()?,
        health,
        metrics,
        clock.clone(),
        settings,
    )
    .with_protection(config.protection()?)
    .with_inspector(crate::inspection_config::inspector(&config.inspection)?);
    // Reads the state's events, so it is built before anything else may
    // replace them; shares detector state and blocks through Redis.
    let state = match config.threats.start(&state, redis.clone())? {
        Some(threats) => state.with_threats(threats),
        None => state,
    };
    // Shared through Redis when configured; publishes to the state's events.
    let lockout = config.lockout.lockout(
        &config.secrets.api_key_pepper,
        clock,
        redis,
        state.security_events.clone(),
    )?;
    let state = state.with_lockout(lockout);
    // The key file must open with the master key now (a wrong key stops the
    // start); the keyring's tables are read once migrations have run.
    let keyring = config
        .crypto
        .keyring(&config.data_dir(), &db, state.clock.clone())
        .context("setting up the encryption keyring ([crypto])")?;
    // Events' personal data is sealed with it from the start (until migrations
    // have run, such appends answer 503 rather than 422).
    state
        .audit
        .set_pii_cipher(Arc::new(palisade_audit::pii::KeyringPii::new(
            keyring.clone(),
        )));
    match db.backend() {
        Backend::Sqlite => {
            db.migrate()
                .await
                .context("migrating the embedded database")?;
            state.mark_migrated();
        }
        Backend::Postgres => {
            tokio::spawn(migrate_until_done(db.clone(), state.clone()));
        }
    }
    let rule_sync = RuleSync::new(
        state.ratelimit.clone(),
        state.ratelimit_rules.clone(),
        config.ratelimit.rules()?,
    );
    rule_sync
        .install_configured()
        .context("installing the rate-limit rules of ratelimit.rules")?;
    tokio::spawn(sync_rules(
        rule_sync,
        state.clone(),
        config.ratelimit.rules_refresh(),
    ));
    tokio::spawn(refresh_policies(state.clone(), config.authz.refresh()));
    tokio::spawn(palisade_authz::invalidation::listen(
        state.authz.clone(),
        db.clone(),
    ));
    tokio::spawn(housekeeping(state.clone()));
    tokio::spawn(crate::crypto::run(
        state.clone(),
        keyring,
        config.crypto.refresh(),
    ));
    tokio::spawn(crate::tokens_task::run(
        state.clone(),
        db.clone(),
        config.tokens.clone(),
    ));
    Ok(App { state, db })
}

/// The rate limiter: shared through Redis when configured, reporting keys
/// that keep being limited to the audit log.
fn rate_limiter(
    config: &Config,
    redis: Option<Redis>,
    clock: SharedClock,
    audit: AuditLog,
) -> RateLimiter {
    let reporter: BlockReporter = Arc::new(move |report: BlockReport| {
        let audit = audit.clone();
        // Reports come from inside a request; never make it wait for the log.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = audit
                    .append(TenantId::default_tenant(), blocked_event(&report))
                    .await
                {
                    tracing::warn!(%error, "could not audit a rate-limit block report");
                }
            });
        }
    });
    RateLimiter::new(config.ratelimit.settings(), clock, redis, Some(reporter))
}

/// The audit event of a key that kept being limited.
fn blocked_event(report: &BlockReport) -> NewEvent {
    NewEvent {
        id: None,
        tenant: None,
        action: "security.ratelimit.blocked".to_owned(),
        actor: Actor {
            id: report.key.clone(),
            kind: Some("ratelimit_key".into()),
            ip: None,
            user_agent: None,
        },
        resource: Some(Resource {
            kind: "ratelimit_policy".into(),
            id: Some(report.policy.clone()),
        }),
        outcome: Outcome::Denied,
        occurred_at: None,
        request_id: None,
        metadata: Some(serde_json::Map::from_iter([(
            "blocks_this_minute".to_owned(),
            serde_json::Value::from(report.blocks),
        )])),
    }
}

/// Re-reads rules created over the API, once the schema exists, so a rule
/// put on one instance reaches all of them; also drops idle limiter state.
async fn sync_rules(sync: RuleSync, state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_eviction = Instant::now();
    loop {
        tick.tick().await;
        if state.is_migrated()
            && let Err(error) = sync.reload().await
        {
            tracing::debug!(%error, "rate-limit rules not reloaded; keeping the current ones");
        }
        if last_eviction.elapsed() >= EVICTION_INTERVAL {
            last_eviction = Instant::now();
            let evicted = state.ratelimit.evict_idle();
            tracing::debug!(evicted, "idle rate-limit keys dropped");
        }
    }
}

/// Keeps this instance's authorization policies in step with the database:
/// loads them all once the schema exists, then compares versions on every
/// tick and re-reads the tenants that changed elsewhere. The poll bounds how
/// long a stale decision can be served, whatever happens to notifications.
async fn refresh_policies(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut loaded = false;
    loop {
        tick.tick().await;
        if !state.is_migrated() {
            continue;
        }
        let result = if loaded {
            state.authz.refresh().await.map(|_| ())
        } else {
            state.authz.load_all().await.map(|tenants| {
                tracing::info!(tenants, "authorization policies loaded");
            })
        };
        match result {
            Ok(()) => loaded = true,
            Err(error) => tracing::debug!(%error, "authorization policies not refreshed; retrying"),
        }
    }
}

/// The audit log with its spool in `data_dir/audit-spool`.
fn start_audit(config: &Config, db: &Database, clock: SharedClock) -> anyhow::Result<AuditLog> {
    let signer = NoteSigner::from_signer_key(config.secrets.audit_signing_key.expose())
        .map_err(|e| anyhow::anyhow!("secrets.audit_signing_key: {e}"))?;
    let spool_dir = config.data_dir().join("audit-spool");
    let spool = Spool::open(
        &spool_dir,
        SpoolConfig {
            max_bytes: config.audit.spool_max_bytes,
            ..SpoolConfig::default()
        },
    )
    .with_context(|| format!("opening the audit spool in {}", spool_dir.display()))?;
    let settings = AuditSettings {
        origin: config.audit.origin.clone(),
        limits: config.audit.limits(),
    };
    Ok(AuditLog::start(
        AuditStore::new(db.clone()),
        signer,
        settings,
        clock,
        Some(spool),
    ))
}

/// Serves until SIGTERM/SIGINT, then drains.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let app = build(&config).await?;
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        backend = ?app.db.backend(),
        startup_ms = started.elapsed().as_secs_f64() * 1000.0,
        "palisade listening"
    );
    let router = api_router(app.state.clone()).layer(Extension(config.audit.stream_settings()));
    palisade_http::serve(
        listener,
        router,
        palisade_http::server::shutdown_signal(),
        config.shutdown_grace(),
    )
    .await?;
    app.db.close().await;
    tracing::info!("palisade stopped");
    Ok(())
}

/// Retries migrations with capped exponential backoff until they succeed.
async fn migrate_until_done(db: Database, state: AppState) {
    let mut delay = Duration::from_millis(200);
    loop {
        match db.migrate().await {
            Ok(()) => {
                tracing::info!("database migrations applied");
                state.mark_migrated();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "migrations failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Periodic upkeep: expired idempotency records, metric histograms.
async fn housekeeping(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        state.metrics.run_upkeep();
        if !state.is_migrated() {
            continue;
        }
        let now_ms = state.clock.now_unix_ms();
        if let Err(e) = state.idempotency.purge_expired(now_ms).await {
            tracing::debug!(error = %e, "idempotency purge skipped");
        }
    }
}
