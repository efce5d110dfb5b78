//! Proof latency from the store at a large tree size, and `audit verify` speed next
//! to raw SHA-256 over the same leaves (the ceiling: verification is hashing plus
//! reading). Percentiles need every sample, so this bench keeps its own timings
//! instead of criterion's per-iteration means.
//!
//! Run: `PALISADE_BENCH_SIZE=1000000 cargo bench -p palisade-audit --bench audit_proofs`
//! (`PALISADE_BENCH_BACKENDS=sqlite,postgres` by default).
//!
//! For iterating on the verifier: `PALISADE_BENCH_ONLY=verify` skips the proofs and
//! queries, `PALISADE_BENCH_VERIFY_RUNS=3` repeats verify and its ceiling (alternating,
//! so a load change hits both), and `PALISADE_BENCH_REUSE=1` keeps the filled store
//! (SQLite under the system temp dir, PostgreSQL in schema `bench_proofs_<size>`) and
//! only tops it up on the next run. `PALISADE_BENCH_VERIFY_CHUNK` sets the verifier's
//! range size.

use aws_lc_rs::digest;
use palisade_audit::checkpoint::NoteSigner;
use palisade_audit::event::{EventLimits, NewEvent, PreparedEvent};
use palisade_audit::merkle;
use palisade_audit::store::{AuditStore, EventFilter, Page};
use palisade_audit::verify::Verifier;
use palisade_core::principal::TenantId;
use palisade_store::{Database, DatabaseConfig};
use palisade_testkit::postgres::{TestDatabase, database_url};
use serde_json::json;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use uuid::Uuid;

const SAMPLES: usize = 5000;

fn events(start: u64, n: u64) -> Vec<PreparedEvent> {
    let now = OffsetDateTime::now_utc();
    (start..start + n)
        .map(|i| {
            let event: NewEvent = serde_json::from_value(json!({
                "action": "auth.login",
                "actor": {"id": format!("user-{}", i % 977), "ip": "203.0.113.7"},
                "resource": {"type": "session", "id": format!("s-{i}")},
                "outcome": "success",
                "metadata": {"n": i},
            }))
            .unwrap_or_else(|e| panic!("{e}"));
            event
                .prepare(
                    TenantId::default_tenant(),
                    Uuid::now_v7(),
                    now,
                    &EventLimits::default(),
                )
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

/// CPU time (user + system, seconds) in a `/proc/<pid>/stat` line.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ on Linux
}

/// CPU time of this process (SQLite's threads included): on a shared machine, what
/// verify costs regardless of how long it waited for a core. Linux only; 0 elsewhere.
fn own_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_cpu_seconds(&s))
        .unwrap_or(0.0)
}

/// CPU time of every process named `comm` (the PostgreSQL server's backends).
fn cpu_seconds_of(comm: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| stat.contains(&format!(" ({comm}) ")))
        .filter_map(|stat| stat_cpu_seconds(&stat))
        .sum()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A small deterministic generator, so runs sample the same indexes.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// The bench's options, from the environment.
struct Options {
    size: u64,
    verify_only: bool,
    verify_runs: u32,
    reuse: bool,
}

async fn run(name: &str, db: Database, opts: &Options) -> Result<(), Box<dyn std::error::Error>> {
    let size = opts.size;
    let store = AuditStore::new(db);
    // A fixed seed, so a reused store's checkpoints still verify with this key.
    let signer = NoteSigner::from_seed("bench", &[7u8; 32])?;
    let filled = Instant::now();
    let mut n = store.tree_size().await?;
    while n < size {
        let batch = events(n, 1000.min(size - n));
        store.append(&batch, &signer, "bench", 0).await?;
        n += batch.len() as u64;
    }
    let fill = filled.elapsed();
    println!(
        "{name}: load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "{name}: filled {size} events in {:.1}s ({:.0} events/s incl. event encoding)",
        fill.as_secs_f64(),
        size as f64 / fill.as_secs_f64()
    );

    if !opts.verify_only {
        proofs_and_queries(name, &store, size).await?;
    }
    for _ in 0..opts.verify_runs {
        verify_and_ceiling(name, &store, &signer, size).await?;
    }
    Ok(())
}

async fn proofs_and_queries(
    name: &str,
    store: &AuditStore,
    size: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Lcg(42);
    let mut inclusion = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let index = rng.below(size);
        let start = Instant::now();
        let ids = merkle::inclusion_proof_nodes(index, size)?;
        let hashes = store.read_hashes(&ids).await?;
        let proof = merkle::assemble_inclusion_proof(index, size, &hashes)?;
        inclusion.push(start.elapsed());
        std::hint::black_box(proof);
    }
    let mut consistency = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let from = 1 + rng.below(size - 1);
        let start = Instant::now();
        let ids = merkle::consistency_proof_nodes(from, size)?;
        let hashes = store.read_hashes(&ids).await?;
        let proof = merkle::assemble_consistency_proof(from, size, &hashes)?;
        consistency.push(start.elapsed());
        std::hint::black_box(proof);
    }
    for (what, mut samples) in [("inclusion", inclusion), ("consistency", consistency)] {
        samples.sort();
        println!(
            "{name}: {what} proof at {size}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({SAMPLES} samples)",
            percentile(&samples, 0.5).as_secs_f64() * 1e3,
            percentile(&samples, 0.99).as_secs_f64() * 1e3,
            percentile(&samples, 1.0).as_secs_f64() * 1e3,
        );
    }

    // Filtered queries a dashboard runs: one page (50) of the newest matching events.
    // An actor with no events is the worst case of the bucket walk: every bucket of
    // the log is read (see `store/filtered.rs`).
    let queries: [(&str, EventFilter); 5] = [
        (
            "actor",
            EventFilter {
                tenant: "default".into(),
                actor_id: Some("user-42".into()),
                ..Default::default()
            },
        ),
        (
            "actor with no events",
            EventFilter {
                tenant: "default".into(),
                actor_id: Some("nobody".into()),
                ..Default::default()
            },
        ),
        (
            "action prefix",
            EventFilter {
                tenant: "default".into(),
                action_prefix: Some("auth".into()),
                ..Default::default()
            },
        ),
        (
            "resource",
            EventFilter {
                tenant: "default".into(),
                resource_type: Some("session".into()),
                resource_id: Some(format!("s-{}", size / 2)),
                ..Default::default()
            },
        ),
        (
            "actor + outcome",
            EventFilter {
                tenant: "default".into(),
                actor_id: Some("user-7".into()),
                outcome: Some(palisade_audit::event::Outcome::Success),
                ..Default::default()
            },
        ),
    ];
    for (what, filter) in &queries {
        let mut samples = Vec::with_capacity(200);
        for _ in 0..200 {
            let start = Instant::now();
            let page = store
                .query(
                    filter,
                    Page {
                        before: None,
                        limit: 50,
                    },
                )
                .await?;
            samples.push(start.elapsed());
            std::hint::black_box(page);
        }
        samples.sort();
        println!(
            "{name}: filtered query ({what}) at {size}: p50 {:.3} ms, p99 {:.3} ms (200 samples, page of 50)",
            percentile(&samples, 0.5).as_secs_f64() * 1e3,
            percentile(&samples, 0.99).as_secs_f64() * 1e3,
        );
    }
    Ok(())
}

async fn verify_and_ceiling(
    name: &str,
    store: &AuditStore,
    signer: &NoteSigner,
    size: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let key = signer.verifier();
    let cpu_before = (own_cpu_seconds(), cpu_seconds_of("postgres"));
    let started = Instant::now();
    let mut verifier = Verifier::new(store, &key);
    if let Some(chunk) = std::env::var("PALISADE_BENCH_VERIFY_CHUNK")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        verifier = verifier.with_chunk(chunk);
    }
    let verified = verifier.verify(None, |_, _| {}).await?;
    let verify = started.elapsed();
    let cpu_after = (own_cpu_seconds(), cpu_seconds_of("postgres"));
    println!(
        "{name}: audit verify of {} leaves in {:.2}s = {:.0} leaves/s; CPU {:.2}s in this process (SQLite included), {:.2}s in PostgreSQL processes",
        verified.tree_size,
        verify.as_secs_f64(),
        verified.tree_size as f64 / verify.as_secs_f64(),
        cpu_after.0 - cpu_before.0,
        cpu_after.1 - cpu_before.1,
    );

    // The ceiling: SHA-256 (leaf hashing plus the same number of interior nodes) over
    // the same bytes, already in memory.
    let leaves: Vec<Vec<u8>> = store
        .events_range(0, size.min(1_000_000))
        .await?
        .into_iter()
        .map(|e| e.leaf)
        .collect();
    let started = Instant::now();
    let mut acc = [0u8; 32];
    for leaf in &leaves {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&[0]);
        ctx.update(leaf);
        let d = ctx.finish();
        let mut node = digest::Context::new(&digest::SHA256);
        node.update(&[1]);
        node.update(&acc);
        node.update(d.as_ref());
        acc.copy_from_slice(node.finish().as_ref());
    }
    let raw = started.elapsed();
    println!(
        "{name}: raw aws-lc-rs SHA-256 (leaf + node hash) over {} leaves in memory: {:.0} leaves/s; verify reaches {:.0}% of it",
        leaves.len(),
        leaves.len() as f64 / raw.as_secs_f64(),
        100.0 * (verified.tree_size as f64 / verify.as_secs_f64())
            / (leaves.len() as f64 / raw.as_secs_f64())
    );
    std::hint::black_box(acc);
    println!(
        "{name}: load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: keep that run tiny.
    let benching = std::env::args().any(|a| a == "--bench");
    let size: u64 = std::env::var("PALISADE_BENCH_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 1_000_000 } else { 2000 });
    let opts = Options {
        size,
        verify_only: std::env::var("PALISADE_BENCH_ONLY").is_ok_and(|v| v == "verify"),
        verify_runs: std::env::var("PALISADE_BENCH_VERIFY_RUNS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1),
        reuse: std::env::var("PALISADE_BENCH_REUSE").is_ok_and(|v| v == "1"),
    };
    let backends =
        std::env::var("PALISADE_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        if backends.contains("sqlite") {
            let temp = tempfile::tempdir()?;
            let dir = if opts.reuse {
                std::env::temp_dir().join(format!("palisade-bench-proofs-{size}"))
            } else {
                temp.path().to_owned()
            };
            let db = Database::connect(&DatabaseConfig::default(), &dir).await?;
            db.migrate().await?;
            run("sqlite", db, &opts).await?;
        }
        if backends.contains("postgres") {
            let temp;
            let url = if opts.reuse {
                let schema = format!("bench_proofs_{size}");
                let admin = sqlx::PgPool::connect(&database_url()).await?;
                sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                    .execute(&admin)
                    .await?;
                let separator = if database_url().contains('?') {
                    '&'
                } else {
                    '?'
                };
                format!(
                    "{}{separator}options=-c%20search_path%3D{schema}",
                    database_url()
                )
            } else {
                temp = TestDatabase::create().await?;
                temp.url()
            };
            let db = Database::connect(&DatabaseConfig::postgres(url), std::path::Path::new("."))
                .await?;
            db.migrate().await?;
            run("postgres", db, &opts).await?;
        }
        Ok(())
    })
}
