//! Check latency of the Palisade engine against casbin-rs on the same RBAC
//! with domains policy, generated as Casbin CSV and imported into Palisade so
//! both answer the same questions (the answers are compared on every sampled
//! Casbin request).
//!
//! Shape (scale 1): 10 tenants, 100 roles each (1,000 roles) in 5 levels
//! where each role inherits two roles of the next level (depth 5), 10 grants
//! per role (10,000 permissions), 1,000 users per tenant each bound to one
//! role (10,000 bindings). Scale 10 multiplies roles, grants and bindings by
//! ten. Percentiles come from timing single checks; criterion gives means.
//! Memory is the growth of the process's resident set while the engine is
//! built (a counting allocator would need `unsafe`, which the workspace forbids).

use casbin::{
    CachedApi, CachedEnforcer, CoreApi, DefaultCache, DefaultModel, Enforcer, StringAdapter,
};
use criterion::Criterion;
use palisade_authz::{CasbinOptions, DecisionCache, Engine, Request, import_casbin};
use palisade_core::SystemClock;
use std::hint::black_box;
use std::time::{Duration, Instant};

const MODEL: &str = "
[request_definition]
r = sub, dom, obj, act
[policy_definition]
p = sub, dom, obj, act
[role_definition]
g = _, _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act
";

const TENANTS: usize = 10;
const LEVELS: usize = 5;
const TYPES: &[&str] = &["document", "project", "report", "invoice", "user"];
const VERBS: &[&str] = &["read", "write", "delete", "share"];

/// One request as owned strings: (tenant, subject, object, action).
type Req = (String, String, String, String);

struct Policy {
    csv: String,
    allows: Vec<Req>,
    denies: Vec<Req>,
}

fn generate(scale: usize, rng: &mut fastrand::Rng) -> Policy {
    let roles_per_level = 20 * scale;
    let users = 1000 * scale;
    let objects = 500 * scale;
    let mut csv = String::new();
    let mut allows = Vec::new();
    let mut denies = Vec::new();
    for t in 0..TENANTS {
        let dom = format!("tenant{t}");
        let role = |level: usize, i: usize| format!("role-{level}-{i}");
        // inherits[level][i] = roles of level + 1 that role (level, i) inherits.
        let mut inherits = vec![vec![Vec::new(); roles_per_level]; LEVELS];
        let mut grants = vec![vec![Vec::new(); roles_per_level]; LEVELS];
        for level in 0..LEVELS {
            for i in 0..roles_per_level {
                if level + 1 < LEVELS {
                    for _ in 0..2 {
                        let j = rng.usize(..roles_per_level);
                        inherits[level][i].push(j);
                        csv += &format!("g, {}, {}, {dom}\n", role(level, i), role(level + 1, j));
                    }
                }
                for _ in 0..10 {
                    let obj = format!(
                        "project/{}/doc/{}",
                        rng.usize(..objects / 10),
                        rng.usize(..10)
                    );
                    let act = format!(
                        "{}:{}",
                        TYPES[rng.usize(..TYPES.len())],
                        VERBS[rng.usize(..VERBS.len())]
                    );
                    csv += &format!("p, {}, {dom}, {obj}, {act}\n", role(level, i));
                    grants[level][i].push((obj, act));
                }
            }
        }
        for u in 0..users {
            let (level, i) = (rng.usize(..LEVELS), rng.usize(..roles_per_level));
            let user = format!("user-{u}");
            csv += &format!("g, {user}, {}, {dom}\n", role(level, i));
            if u % 10 == 0 {
                // An allowed request: walk down the hierarchy, take a grant.
                let (mut l, mut r) = (level, i);
                while l + 1 < LEVELS && rng.bool() {
                    r = inherits[l][r][rng.usize(..2)];
                    l += 1;
                }
                let (obj, act) = grants[l][r][rng.usize(..10)].clone();
                allows.push((dom.clone(), user.clone(), obj, act));
                // A request that is almost certainly denied; confirmed later.
                let obj = format!(
                    "project/{}/doc/{}",
                    rng.usize(..objects / 10),
                    rng.usize(..10)
                );
                let act = format!(
                    "{}:{}",
                    TYPES[rng.usize(..TYPES.len())],
                    VERBS[rng.usize(..VERBS.len())]
                );
                denies.push((dom.clone(), user, obj, act));
            }
        }
    }
    Policy {
        csv,
        allows,
        denies,
    }
}

fn request(r: &Req) -> Request<'_> {
    Request::new(&r.0, &r.1, &r.3, &r.2)
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<usize>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// p50 and p99 of single timed calls, in microseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| {
        samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].as_secs_f64() * 1e6
    };
    (at(0.50), at(0.99))
}

fn time_each<T>(requests: &[Req], rounds: usize, mut f: impl FnMut(&Req) -> T) -> (f64, f64) {
    let mut samples = Vec::with_capacity(requests.len() * rounds);
    for _ in 0..rounds {
        for r in requests {
            let start = Instant::now();
            black_box(f(r));
            samples.push(start.elapsed());
        }
    }
    percentiles(samples)
}

fn row(label: &str, (p50, p99): (f64, f64)) {
    println!("| {label} | {p50:.3} | {p99:.3} |");
}

struct Built {
    policy: Policy,
    engine: Engine,
    enforcer: Enforcer,
    cached: CachedEnforcer,
    /// RSS growth while importing (the `PolicySet`s the engine keeps as its
    /// source) and while compiling.
    palisade_bytes: (usize, usize),
    casbin_bytes: usize,
}

fn build(scale: usize, rt: &tokio::runtime::Runtime) -> Built {
    let mut rng = fastrand::Rng::with_seed(7 + scale as u64);
    let mut policy = generate(scale, &mut rng);
    let before = rss_bytes();
    let sets = import_casbin(MODEL, &policy.csv, &CasbinOptions::default()).expect("import");
    let imported = rss_bytes();
    let engine = Engine::new(SystemClock::shared());
    for set in sets {
        engine.put_policy(set).expect("compile");
    }
    let palisade_bytes = (
        imported.saturating_sub(before),
        rss_bytes().saturating_sub(imported),
    );
    // Keep only requests whose expected outcome Palisade confirms; Casbin is
    // compared on every request it answers below.
    policy
        .denies
        .retain(|r| !engine.check(&request(r)).expect("valid").allowed);
    assert!(
        policy
            .allows
            .iter()
            .all(|r| engine.check(&request(r)).expect("valid").allowed)
    );
    let before = rss_bytes();
    let enforcer = rt.block_on(async {
        Enforcer::new(
            DefaultModel::from_str(MODEL).await.expect("model"),
            StringAdapter::new(policy.csv.clone()),
        )
        .await
        .expect("casbin loads")
    });
    let casbin_bytes = rss_bytes().saturating_sub(before);
    let mut cached = rt.block_on(async {
        CachedEnforcer::new(
            DefaultModel::from_str(MODEL).await.expect("model"),
            StringAdapter::new(policy.csv.clone()),
        )
        .await
        .expect("casbin loads")
    });
    cached.set_cache(Box::new(DefaultCache::new(1_000_000)));
    Built {
        policy,
        engine,
        enforcer,
        cached,
        palisade_bytes,
        casbin_bytes,
    }
}

fn casbin_agrees(enforcer: &Enforcer, r: &Req, expected: bool) -> bool {
    let got = enforcer
        .enforce((r.1.as_str(), r.0.as_str(), r.2.as_str(), r.3.as_str()))
        .expect("casbin enforces");
    assert_eq!(got, expected, "casbin disagrees on {r:?}");
    got
}

fn report(scale: usize, built: &Built, casbin_samples: usize) {
    let Built {
        policy,
        engine,
        enforcer,
        cached,
        palisade_bytes,
        casbin_bytes,
    } = built;
    let lines = policy.csv.lines().count();
    println!(
        "\n### scale {scale}: {} roles, {} grants, {} bindings ({lines} Casbin lines); {} allow / {} deny requests",
        1000 * scale,
        10_000 * scale,
        10_000 * scale,
        policy.allows.len(),
        policy.denies.len()
    );
    let mib = |b: usize| b as f64 / 1_048_576.0;
    println!(
        "memory (RSS growth while built): Palisade {:.1} MiB (imported PolicySets {:.1} + compiled {:.1}), casbin Enforcer {:.1} MiB",
        mib(palisade_bytes.0 + palisade_bytes.1),
        mib(palisade_bytes.0),
        mib(palisade_bytes.1),
        mib(*casbin_bytes)
    );
    println!("| check | p50 µs | p99 µs |\n|---|---|---|");
    row(
        "Palisade check, allow",
        time_each(&policy.allows, 20, |r| engine.check(&request(r))),
    );
    row(
        "Palisade check, deny",
        time_each(&policy.denies, 20, |r| engine.check(&request(r))),
    );
    let cache = DecisionCache::new(1_000_000, Duration::from_secs(600));
    for r in policy.allows.iter().chain(&policy.denies) {
        let _ = cache.check(engine, &request(r));
    }
    row(
        "Palisade DecisionCache hit, allow",
        time_each(&policy.allows, 20, |r| cache.check(engine, &request(r))),
    );
    row(
        "Palisade DecisionCache hit, deny",
        time_each(&policy.denies, 20, |r| cache.check(engine, &request(r))),
    );
    let allows = &policy.allows[..casbin_samples.min(policy.allows.len())];
    let denies = &policy.denies[..casbin_samples.min(policy.denies.len())];
    row(
        "casbin Enforcer::enforce, allow",
        time_each(allows, 1, |r| casbin_agrees(enforcer, r, true)),
    );
    row(
        "casbin Enforcer::enforce, deny",
        time_each(denies, 1, |r| casbin_agrees(enforcer, r, false)),
    );
    let hit_set = &policy.allows[..200.min(policy.allows.len())];
    for r in hit_set {
        let _ = cached.enforce((r.1.as_str(), r.0.as_str(), r.2.as_str(), r.3.as_str()));
    }
    row(
        "casbin CachedEnforcer hit",
        time_each(hit_set, 50, |r| {
            cached.enforce((r.1.as_str(), r.0.as_str(), r.2.as_str(), r.3.as_str()))
        }),
    );
}

fn criterion_benches(c: &mut Criterion, built: &Built) {
    let Built {
        policy,
        engine,
        enforcer,
        cached,
        ..
    } = built;
    let mut group = c.benchmark_group("authz_check_scale1");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut i = 0;
    group.bench_function("palisade_check_allow", |b| {
        b.iter(|| {
            i = (i + 1) % policy.allows.len();
            engine.check(&request(&policy.allows[i]))
        })
    });
    group.bench_function("palisade_check_deny", |b| {
        b.iter(|| {
            i = (i + 1) % policy.denies.len();
            engine.check(&request(&policy.denies[i]))
        })
    });
    let cache = DecisionCache::new(1_000_000, Duration::from_secs(600));
    group.bench_function("palisade_decision_cache_hit", |b| {
        b.iter(|| {
            i = (i + 1) % 200;
            cache.check(engine, &request(&policy.allows[i]))
        })
    });
    group.bench_function("casbin_cached_enforcer_hit", |b| {
        b.iter(|| {
            i = (i + 1) % 200;
            let r = &policy.allows[i];
            cached.enforce((r.1.as_str(), r.0.as_str(), r.2.as_str(), r.3.as_str()))
        })
    });
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("casbin_enforce_allow", |b| {
        b.iter(|| {
            i = (i + 1) % policy.allows.len();
            let r = &policy.allows[i];
            enforcer.enforce((r.1.as_str(), r.0.as_str(), r.2.as_str(), r.3.as_str()))
        })
    });
    group.finish();
}

/// Memory of bindings alone: 100,000 users each bound on a project subtree
/// to one of 10 roles, in one tenant.
fn bindings_memory() {
    use palisade_authz::{Binding, Grant, PolicySet, RoleDef};
    let before = rss_bytes();
    let set = PolicySet {
        tenant: "bindings".into(),
        roles: (0..10)
            .map(|r| RoleDef {
                name: format!("role-{r}"),
                inherits: vec![],
                grants: vec![Grant::allow("document:read")],
            })
            .collect(),
        memberships: vec![],
        bindings: (0..100_000)
            .map(|i| {
                Binding::new(
                    format!("binding-{i}"),
                    format!("user-{i}"),
                    format!("role-{}", i % 10),
                )
                .on(format!("project/{}/*", i % 1000))
            })
            .collect(),
    };
    let built = rss_bytes();
    let engine = Engine::new(SystemClock::shared());
    engine.put_policy(set).expect("compile");
    let compiled = rss_bytes();
    println!(
        "\n100,000 bindings (10 roles, one tenant): PolicySet {:.1} MiB + compiled {:.1} MiB (RSS growth)",
        built.saturating_sub(before) as f64 / 1_048_576.0,
        compiled.saturating_sub(built) as f64 / 1_048_576.0
    );
    // Leaked on purpose: freed memory would be reused by the builds measured
    // next and hide their growth.
    std::mem::forget(black_box(engine));
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut criterion = Criterion::default().configure_from_args();
    // Both are built before anything is dropped, so each RSS growth is
    // measured without freed memory to reuse.
    bindings_memory();
    let small = build(1, &rt);
    let big = build(10, &rt);
    report(10, &big, 10);
    drop(big);
    report(1, &small, 50);
    criterion_benches(&mut criterion, &small);
    criterion.final_summary();
}
