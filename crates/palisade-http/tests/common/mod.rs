//! Shared set-up of the HTTP integration tests: a migrated database on one backend,
//! an admin key, and the application state around them.

#![allow(dead_code)]

use palisade_audit::checkpoint::NoteSigner;
use palisade_audit::event::EventLimits;
use palisade_audit::log::{AuditLog, AuditSettings};
use palisade_audit::store::AuditStore;
use palisade_auth::passwords::{PasswordPolicy, Passwords};
use palisade_auth::{ApiKeyStore, ApiKeys, NewApiKey, Scopes};
use palisade_authz::{Authz, DecisionCache, Engine, PolicyStore};
use palisade_core::health::HealthRegistry;
use palisade_core::principal::TenantId;
use palisade_core::{Secret, SharedClock, SystemClock};
use palisade_guard::ratelimit::{RateLimiter, RateLimiterSettings};
use palisade_http::{AppState, HttpSettings};
use palisade_observe::Metrics;
use palisade_store::{Database, DatabaseConfig, DatabaseHealth};
use palisade_testkit::postgres::TestDatabase;
use std::sync::Arc;
use std::time::Duration;

/// Runs each listed `async fn(Backend)` once on a fresh SQLite file and once
/// on a fresh PostgreSQL schema, as the tests `sqlite::<name>` and
/// `postgres::<name>`, with default HTTP settings. Use with `#[macro_use] mod common;`.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = crate::common::sqlite(palisade_http::HttpSettings::default()).await;
                    super::$name(backend).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = crate::common::postgres(palisade_http::HttpSettings::default()).await;
                    super::$name(backend).await;
                }
            )*
        }
    };
}

/// A response taken apart for assertions.
pub struct Answer {
    pub status: axum::http::StatusCode,
    pub headers: axum::http::HeaderMap,
    /// The JSON body; `Null` when empty, a string when the body is not JSON.
    pub body: serde_json::Value,
}

/// A request with `key` as its bearer API key and `body`, if any, as JSON.
pub fn request(
    method: &str,
    uri: &str,
    key: &str,
    body: Option<serde_json::Value>,
) -> axum::http::Request<axum::body::Body> {
    let builder = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header(axum::http::header::AUTHORIZATION, format!("Bearer {key}"));
    match body {
        Some(body) => builder
            .header(axum::http::header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(body.to_string())),
        None => builder.body(axum::body::Body::empty()),
    }
    .expect("request")
}

/// Sends `req` through `app` and collects the answer.
pub async fn send(app: &axum::Router, req: axum::http::Request<axum::body::Body>) -> Answer {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = app.clone().oneshot(req).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        })
    };
    Answer {
        status,
        headers,
        body,
    }
}

const PEPPER: &str = "test-pepper-test-pepper-test-pepper";

/// Application state on one backend, plus what keeps its storage alive.
pub struct Backend {
    pub state: AppState,
    /// The admin key's secret.
    pub admin: String,
    _sqlite_dir: Option<tempfile::TempDir>,
    _pg: Option<TestDatabase>,
}

impl Backend {
    /// Passes the state through `f`, for the `AppState::with_*` builders,
    /// which need the only handle to it.
    pub fn map_state(mut self, f: impl FnOnce(AppState) -> AppState) -> Self {
        self.state = f(self.state);
        self
    }
}

/// State on a fresh embedded SQLite file.
pub async fn sqlite(settings: HttpSettings) -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::connect(&DatabaseConfig::default(), dir.path())
        .await
        .expect("open sqlite");
    backend(db, settings, Some(dir), None).await
}

/// State on a fresh schema of the test PostgreSQL.
pub async fn postgres(settings: HttpSettings) -> Backend {
    let pg = TestDatabase::create()
        .await
        .expect("test schema on PostgreSQL");
    let db = Database::connect(
        &DatabaseConfig::postgres(pg.url()),
        std::path::Path::new("."),
    )
    .await
    .expect("connect postgres");
    backend(db, settings, None, Some(pg)).await
}

async fn backend(
    db: Database,
    settings: HttpSettings,
    dir: Option<tempfile::TempDir>,
    pg: Option<TestDatabase>,
) -> Backend {
    db.migrate().await.expect("migrate");
    let clock = SystemClock::shared();
    let keys = ApiKeys::new(
        ApiKeyStore::new(db.clone()),
        &Secret::new(PEPPER),
        clock.clone(),
    );
    let admin = keys
        .create(NewApiKey {
            name: "admin".into(),
            tenant: TenantId::default_tenant(),
            scopes: Scopes::admin(),
            expires_at_ms: None,
        })
        .await
        .expect("admin key");
    let mut health = HealthRegistry::new(Duration::from_secs(2));
    health
        .register(Arc::new(DatabaseHealth(db.clone())))
        .expect("register");
    let audit = AuditLog::start(
        AuditStore::new(db.clone()),
        NoteSigner::generate("test-log").expect("signer"),
        AuditSettings {
            origin: "test.local/audit".into(),
            limits: EventLimits::default(),
        },
        clock.clone(),
        None,
    );
    let state = AppState::new(
        db.clone(),
        keys,
        audit,
        RateLimiter::new(RateLimiterSettings::default(), clock.clone(), None, None),
        Authz::new(
            Engine::new(clock.clone()),
            PolicyStore::new(db.clone()),
            DecisionCache::new(10_000, Duration::from_secs(60)),
        ),
        Passwords::new(PasswordPolicy::default(), 2).unwrap_or_else(|e| panic!("{e}")),
        health,
        Metrics::install().expect("metrics"),
        clock,
        settings,
    );
    state.mark_migrated();
    let tokens = test_tokens(&state);
    let state = state.with_tokens(tokens);
    Backend {
        state,
        admin: admin.secret.expose().to_owned(),
        _sqlite_dir: dir,
        _pg: pg,
    }
}

/// A second state on the same storage, keys, audit log, policies and metrics as
/// `b`, with its own `limiter` and `clock` (a manual clock, in tests that move
/// time), marked migrated.
pub fn state_sharing(b: &AppState, limiter: RateLimiter, clock: SharedClock) -> AppState {
    let state = AppState::new(
        b.db.clone(),
        b.api_keys.clone(),
        b.audit.clone(),
        limiter,
        b.authz.clone(),
        b.passwords.clone(),
        HealthRegistry::new(Duration::from_secs(2)),
        b.metrics.clone(),
        clock,
        HttpSettings::default(),
    );
    state.mark_migrated();
    state
}

/// Tokens with keys in this process: issuer `palisade`, audience `default`.
pub fn test_tokens(state: &AppState) -> palisade_auth::tokens::Tokens {
    use palisade_auth::tokens::{Tokens, TokensConfig};
    let config = TokensConfig::new("palisade", vec!["default".to_owned()]);
    let ring = palisade_auth::jwt::KeyRing::new(config.rotation.clone());
    Tokens::new(
        config,
        ring,
        state.db.clone(),
        state.security_events.clone(),
        state.clock.clone(),
    )
    .expect("token service")
}
