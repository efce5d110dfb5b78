//! In-process cost of Palisade's HTTP stack per request, without the network or a
//! load generator sharing the cores: `GET /v1/whoami` through the full router
//! (API-key check, telemetry, problem mapping, timeout, body limit) against a bare
//! axum router returning the same JSON. Request logs are formatted as in
//! production and written into `io::sink`, so formatting is measured but no I/O.
//!
//! Run: `cargo bench -p palisade-http --bench stack`

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use palisade_audit::checkpoint::NoteSigner;
use palisade_audit::event::EventLimits;
use palisade_audit::log::{AuditLog, AuditSettings};
use palisade_audit::store::AuditStore;
use palisade_auth::passwords::{PasswordPolicy, Passwords};
use palisade_auth::{ApiKeyStore, ApiKeys, NewApiKey, Scopes};
use palisade_authz::{Authz, DecisionCache, Engine, PolicyStore};
use palisade_core::health::HealthRegistry;
use palisade_core::principal::TenantId;
use palisade_core::{Secret, SystemClock};
use palisade_guard::ratelimit::{RateLimiter, RateLimiterSettings};
use palisade_http::{AppState, HttpSettings, api_router};
use palisade_observe::{JsonLines, LineWriter, Metrics};
use palisade_store::{Database, DatabaseConfig};
use std::time::Duration;
use tokio::runtime::Runtime;
use tower::ServiceExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

// The allocator `palisade serve` uses, for both peers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn palisade(rt: &Runtime, dir: &std::path::Path) -> (Router, String) {
    rt.block_on(async {
        let db = Database::connect(&DatabaseConfig::default(), dir)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        db.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        let clock = SystemClock::shared();
        let keys = ApiKeys::new(
            ApiKeyStore::new(db.clone()),
            &Secret::new("bench-pepper-bench-pepper-bench-pepper"),
            clock.clone(),
        );
        let admin = keys
            .create(NewApiKey {
                name: "bench".into(),
                tenant: TenantId::default_tenant(),
                scopes: Scopes::admin(),
                expires_at_ms: None,
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let audit = AuditLog::start(
            AuditStore::new(db.clone()),
            NoteSigner::generate("bench").unwrap_or_else(|e| panic!("{e}")),
            AuditSettings {
                origin: "bench".into(),
                limits: EventLimits::default(),
            },
            clock.clone(),
            None,
        );
        let metrics = Metrics::install().unwrap_or_else(|e| panic!("{e}"));
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
            HealthRegistry::new(Duration::from_secs(1)),
            metrics,
            clock,
            HttpSettings::default(),
        );
        state.mark_migrated();
        (api_router(state), admin.secret.expose().to_owned())
    })
}

fn bare() -> Router {
    Router::new().route(
        "/v1/whoami",
        get(|| async {
            axum::Json(serde_json::json!({
                "id": "01a2129c-a548-75a0-802c-d494273e1dc2", "name": "bench", "tenant": "default",
                "scopes": ["admin"], "created_at_ms": 1795608585544u64, "expires_at_ms": null, "revoked_at_ms": null
            }))
        }),
    )
}

fn request(key: Option<&str>) -> Request<Body> {
    let mut builder = Request::get("/v1/whoami").header("x-request-id", "bench-request");
    if let Some(key) = key {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    builder
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn call(app: &Router, req: Request<Body>) {
    let response = app
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    assert!(response.status().is_success(), "{}", response.status());
    let _ = response.into_body().collect().await;
}

fn stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (app, key) = palisade(&rt, dir.path());
    let bare = bare();
    let mut group = c.benchmark_group("whoami_in_process");
    group.bench_function("bare_axum", |b| {
        b.iter(|| rt.block_on(call(&bare, request(None))))
    });
    group.bench_function("palisade_no_log_subscriber", |b| {
        b.iter(|| rt.block_on(call(&app, request(Some(&key)))))
    });
    // The lines through tracing-subscriber's JSON formatter (what Palisade used
    // before), for comparison.
    let fmt_json = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(fmt_json, || {
        group.bench_function("palisade_fmt_json_logs", |b| {
            b.iter(|| rt.block_on(call(&app, request(Some(&key)))))
        });
    });
    // Last, since it stays installed: what `palisade serve` installs, as the
    // global subscriber (a scoped one makes every span and event look it up
    // through a thread-local): an `info` filter and the JSON-lines layer, its
    // lines gathered by the background writer (here into `io::sink`).
    let (writer, _guard) =
        LineWriter::start(std::io::sink(), "bench-log").unwrap_or_else(|e| panic!("{e}"));
    tracing_subscriber::registry()
        .with(EnvFilter::new("info"))
        .with(JsonLines::new(writer))
        .try_init()
        .unwrap_or_else(|e| panic!("{e}"));
    group.bench_function("palisade_json_logs", |b| {
        b.iter(|| rt.block_on(call(&app, request(Some(&key)))))
    });
    group.finish();
}

criterion_group!(benches, stack);
criterion_main!(benches);
