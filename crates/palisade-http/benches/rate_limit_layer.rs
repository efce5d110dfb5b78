//! What the rate-limit layer adds to a request, in process: a trivial axum
//! handler alone, then behind `RateLimitLayer` with one per-IP GCRA rule
//! (in-process limiter, the embedded default), over one client IP and over
//! 10,000 client IPs. The peer is the bare handler, in the same run.
//!
//! Run: `cargo bench -p palisade-http --bench rate_limit_layer`

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use palisade_core::SystemClock;
use palisade_guard::ratelimit::{
    Algorithm, KeySource, RateLimiter, RateLimiterSettings, Rule, RuleOrigin, RuleSpec,
};
use palisade_http::layers::rate_limit::{RateLimitHeaders, RateLimitLayer};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tower::ServiceExt;

fn handler() -> Router {
    Router::new().route("/hello", get(|| async { "hello" }))
}

fn limited() -> Router {
    let limiter = RateLimiter::new(
        RateLimiterSettings::default(),
        SystemClock::shared(),
        None,
        None,
    );
    let spec = RuleSpec {
        name: "per-ip".into(),
        key: KeySource::Ip,
        algorithm: Algorithm::Gcra,
        // High enough that every request is allowed: the allowed path is the
        // one every healthy request takes.
        limit: 1_000_000_000,
        period_ms: 1_000,
        burst: None,
        tiers: Default::default(),
        routes: Vec::new(),
        adaptive: None,
    };
    let rule = Rule::new(spec, RuleOrigin::Config).unwrap_or_else(|e| panic!("{e}"));
    limiter
        .replace_rules(vec![rule])
        .unwrap_or_else(|e| panic!("{e}"));
    handler().layer(RateLimitLayer::new(limiter, RateLimitHeaders::default()))
}

fn request(peer: u32) -> Request<Body> {
    let mut req = Request::get("/hello")
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("{e}"));
    let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | peer));
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip, 40_000)));
    req
}

async fn call(app: &Router, req: Request<Body>) {
    let response = app
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    assert!(response.status().is_success(), "{}", response.status());
}

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let bare = handler();
    let limited = limited();
    let mut group = c.benchmark_group("rate_limit_layer");
    group.bench_function("bare_handler", |b| {
        b.iter(|| rt.block_on(call(&bare, request(1))))
    });
    group.bench_function("per_ip_rule_one_ip", |b| {
        b.iter(|| rt.block_on(call(&limited, request(1))))
    });
    let mut peer = 0u32;
    group.bench_function("per_ip_rule_10k_ips", |b| {
        b.iter(|| {
            peer = (peer + 1) % 10_000;
            rt.block_on(call(&limited, request(peer)))
        })
    });
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
