//! Password hashing cost against the bare crates (the peer: what a user would call
//! directly), and how quickly the async runtime still answers while hashes run.
//!
//! `cargo bench -p palisade-auth --bench passwords`
//!
//! Criterion groups: argon2id hash and verify with OWASP's parameters, and bcrypt
//! cost-10 verification, each against the bare `argon2` / `bcrypt` call. Then a
//! runtime-latency probe (printed as a table): a plain thread pings a task on a
//! 2-worker tokio runtime 1,000 times, unloaded and with 50 hashes in flight
//! (`PALISADE_BENCH_NO_LATENCY=1` skips it).

use argon2::{Algorithm, Argon2, PasswordHasher, PasswordVerifier, Version};
use criterion::{Criterion, criterion_group};
use palisade_auth::passwords::{PasswordPolicy, Passwords};
use palisade_core::Secret;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The allocator `palisade serve` uses. It matters here: each hash allocates its 19 MiB
/// anew, and glibc returns a blocking thread's arena memory to the OS after every hash,
/// so under glibc each hash on a blocking thread also pays ~5k page faults.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PASSWORD: &str = "correct horse battery staple";

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

fn bare_argon2id() -> Argon2<'static> {
    let params = argon2::Params::new(19 * 1024, 2, 1, Some(32)).unwrap_or_else(|e| panic!("{e}"));
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn palisade() -> Passwords {
    Passwords::new(PasswordPolicy::default(), 2).unwrap_or_else(|e| panic!("{e}"))
}

fn argon2id(c: &mut Criterion) {
    let rt = runtime(2);
    let p = palisade();
    let secret = Secret::new(PASSWORD);
    let stored = rt
        .block_on(p.hash(&secret))
        .unwrap_or_else(|e| panic!("{e}"));
    let bare = bare_argon2id();
    let bare_stored = argon2::PasswordHash::new(stored.as_str()).unwrap_or_else(|e| panic!("{e}"));

    let mut group = c.benchmark_group("argon2id m=19456 t=2 p=1");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("hash / bare argon2 crate", |b| {
        b.iter(|| {
            bare.hash_password_with_salt(black_box(PASSWORD.as_bytes()), b"sixteen byte sal")
                .unwrap_or_else(|e| panic!("{e}"))
        })
    });
    group.bench_function("hash / palisade Passwords::hash", |b| {
        b.iter(|| rt.block_on(p.hash(black_box(&secret))))
    });
    group.bench_function("verify / bare argon2 crate", |b| {
        b.iter(|| bare.verify_password(black_box(PASSWORD.as_bytes()), &bare_stored))
    });
    group.bench_function("verify / palisade Passwords::verify", |b| {
        b.iter(|| rt.block_on(p.verify(black_box(&secret), stored.as_str())))
    });
    group.finish();
}

fn bcrypt_cost_10(c: &mut Criterion) {
    let rt = runtime(2);
    let p = palisade();
    let secret = Secret::new(PASSWORD);
    let wrong = Secret::new("tr0ub4dor&3 tr0ub4dor&3");
    let stored = bcrypt::hash(PASSWORD, 10).unwrap_or_else(|e| panic!("{e}"));

    let mut group = c.benchmark_group("bcrypt verify cost 10");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("bare bcrypt crate", |b| {
        b.iter(|| bcrypt::verify(black_box(PASSWORD), &stored))
    });
    group.bench_function("palisade, wrong password (no rehash)", |b| {
        b.iter(|| rt.block_on(p.verify(black_box(&wrong), &stored)))
    });
    group.bench_function("palisade, match + argon2id rehash", |b| {
        b.iter(|| rt.block_on(p.verify(black_box(&secret), &stored)))
    });
    group.finish();
}

criterion_group!(benches, argon2id, bcrypt_cost_10);

/// How 50 concurrent hashes are started in the latency probe.
#[derive(Clone, Copy)]
enum Load {
    None,
    /// Through `Passwords` with this many slots (blocking threads, bounded).
    Palisade(usize),
    /// The mistake the module exists to prevent: argon2 called on the async workers.
    OnAsyncWorkers,
}

/// p50 and p99 of 1,000 round trips from a plain thread to a task on a 2-worker runtime
/// and back, the in-process analogue of `/health/live` being served while hashing.
fn ping_latency(load: Load) -> (Duration, Duration) {
    let rt = runtime(2);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<tokio::sync::oneshot::Sender<()>>();
    rt.spawn(async move {
        while let Some(reply) = rx.recv().await {
            let _ = reply.send(());
        }
    });
    let hashing = match load {
        Load::None => None,
        Load::Palisade(slots) => {
            let p =
                Passwords::new(PasswordPolicy::default(), slots).unwrap_or_else(|e| panic!("{e}"));
            Some(rt.spawn(async move {
                loop {
                    let jobs: Vec<_> = (0..50)
                        .map(|_| {
                            let p = p.clone();
                            tokio::spawn(async move { p.hash(&Secret::new(PASSWORD)).await })
                        })
                        .collect();
                    for job in jobs {
                        let _ = job.await;
                    }
                }
            }))
        }
        Load::OnAsyncWorkers => Some(rt.spawn(async move {
            loop {
                let jobs: Vec<_> = (0..50)
                    .map(|_| {
                        tokio::spawn(async move {
                            bare_argon2id()
                                .hash_password_with_salt(PASSWORD.as_bytes(), b"sixteen byte sal")
                                .map(drop)
                        })
                    })
                    .collect();
                for job in jobs {
                    let _ = job.await;
                }
            }
        })),
    };
    std::thread::sleep(Duration::from_millis(100));
    let mut samples = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let (reply, answered) = tokio::sync::oneshot::channel();
        let sent = Instant::now();
        if tx.send(reply).is_err() {
            break;
        }
        let _ = answered.blocking_recv();
        samples.push(sent.elapsed());
        std::thread::sleep(Duration::from_millis(1));
    }
    if let Some(task) = hashing {
        task.abort();
    }
    // Hashes already on blocking threads finish on their own; don't wait for them.
    rt.shutdown_background();
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

fn latency_table() {
    println!("\nruntime ping while 50 argon2id hashes are in flight (2 async workers)");
    println!("| load | p50 | p99 | p99 / unloaded p99 |");
    println!("|---|---|---|---|");
    let mut unloaded_p99 = None;
    for (name, load) in [
        ("none", Load::None),
        ("Passwords, 2 slots (one per core)", Load::Palisade(2)),
        (
            "Passwords, 1 slot (the default on 2 cores: cores - 1)",
            Load::Palisade(1),
        ),
        (
            "argon2 on the async workers (no spawn_blocking)",
            Load::OnAsyncWorkers,
        ),
    ] {
        let (p50, p99) = ping_latency(load);
        let base99 = *unloaded_p99.get_or_insert(p99);
        println!(
            "| {name} | {p50:.2?} | {p99:.2?} | {:.1}× |",
            p99.as_secs_f64() / base99.as_secs_f64()
        );
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Criterion owns the command line, so the probe is switched off by environment.
    if std::env::var_os("PALISADE_BENCH_NO_LATENCY").is_none() {
        latency_table();
    }
}
