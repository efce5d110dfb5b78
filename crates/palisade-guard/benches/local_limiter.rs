//! The in-process limiter against governor's keyed limiter, its peer, on the
//! same workload in the same run: GCRA with a quota generous enough that
//! almost every check passes, so the hot path is what is timed.
//!
//! Rows: one key; 100k `u64` keys; 100k client-address strings (looked up by
//! `&str` here and stored as `CompactString`, the limiter's default, by
//! `&String` for governor). Each on one thread and on two
//! (two threads share the checks; the time reported is wall time divided by
//! the number of checks). Keys are visited in a fixed pseudo-random order and
//! are all tracked before timing starts.
//!
//! Three contenders per row: `palisade` calls `check`, which reads the
//! `SystemClock` (`Instant`, a vDSO `clock_gettime`) on every check;
//! `palisade_check_at` calls `check_at` with a time the caller reads once per
//! 1,024 checks, which is the cost of the limiter itself; `governor` reads
//! its TSC clock (quanta) on every check. A last row times the clock read.
//!
//! Run: `cargo bench -p palisade-guard --bench local_limiter`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};
use palisade_core::{SharedClock, SystemClock};
use palisade_guard::ratelimit::{Algorithm, Limit, LocalLimiter};
use std::hash::Hash;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Barrier;
use std::time::{Duration, Instant};

const KEYS: usize = 100_000;
/// A billion per second: no key runs out during a benchmark.
const PER_SECOND: u32 = 1_000_000_000;
/// Length of the pre-computed visiting order (a power of two).
const ORDER_LEN: usize = 1 << 20;

fn ours<K: Hash + Eq + Send + Sync + 'static>(clock: &SharedClock) -> LocalLimiter<K> {
    let limit = Limit::new(
        Algorithm::Gcra,
        u64::from(PER_SECOND),
        Duration::from_secs(1),
    )
    .expect("a valid limit");
    LocalLimiter::new(limit, clock.clone(), KEYS * 2)
}

fn quota() -> Quota {
    Quota::per_second(NonZeroU32::new(PER_SECOND).expect("non-zero"))
}

/// Indexes into the key set, in a fixed pseudo-random order.
fn visiting_order(keys: usize) -> Vec<usize> {
    let mut rng = fastrand::Rng::with_seed(8);
    (0..ORDER_LEN).map(|_| rng.usize(..keys)).collect()
}

/// Client-address-like keys: "10.1.x.y".
fn address(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

/// Times `iters` calls of `check` over `order` on `threads` threads sharing
/// the calls, returning the wall time.
fn run(threads: usize, iters: u64, order: &[usize], check: &(dyn Fn(usize) + Sync)) -> Duration {
    let per_thread = iters / threads as u64;
    let start = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let start = &start;
            scope.spawn(move || {
                // Each thread starts at a different place in the order.
                let offset = t * ORDER_LEN / threads;
                start.wait();
                for i in 0..per_thread as usize {
                    check(order[(offset + i) & (ORDER_LEN - 1)]);
                }
            });
        }
        start.wait();
        let began = Instant::now();
        // Scope end joins the threads.
        began
    })
    .elapsed()
}

/// The checks one row compares, each given an index into the row's keys.
struct Contenders<'a> {
    ours: &'a (dyn Fn(usize) + Sync),
    ours_at: &'a (dyn Fn(usize, Duration) + Sync),
    governor: &'a (dyn Fn(usize) + Sync),
}

fn bench_row(c: &mut Criterion, row: &str, order: &[usize], clock: &SharedClock, with: Contenders) {
    let mut group = c.benchmark_group(row);
    // `check_at` with the time read once per 1,024 checks, per thread.
    let ours_at = |i: usize| {
        thread_local! {
            static NOW: std::cell::Cell<(u32, Duration)> = const { std::cell::Cell::new((0, Duration::ZERO)) };
        }
        let now = NOW.with(|cell| {
            let (count, mut now) = cell.get();
            if count % 1_024 == 0 {
                now = clock.monotonic();
            }
            cell.set((count.wrapping_add(1), now));
            now
        });
        (with.ours_at)(i, now);
    };
    for threads in [1, 2] {
        group.bench_function(BenchmarkId::new("palisade", threads), |b| {
            b.iter_custom(|iters| run(threads, iters, order, with.ours));
        });
        group.bench_function(BenchmarkId::new("palisade_check_at", threads), |b| {
            b.iter_custom(|iters| run(threads, iters, order, &ours_at));
        });
        group.bench_function(BenchmarkId::new("governor", threads), |b| {
            b.iter_custom(|iters| run(threads, iters, order, with.governor));
        });
    }
    group.finish();
}

fn one_key(c: &mut Criterion) {
    let order = vec![0; ORDER_LEN];
    let clock = SystemClock::shared();
    let limiter = ours::<u64>(&clock);
    let governor = RateLimiter::keyed(quota());
    bench_row(
        c,
        "one key",
        &order,
        &clock,
        Contenders {
            ours: &|_| {
                black_box(limiter.check(&1, 1).is_ok_and(|d| d.allowed));
            },
            ours_at: &|_, now| {
                black_box(limiter.check_at(&1, 1, now).is_ok_and(|d| d.allowed));
            },
            governor: &|_| {
                black_box(governor.check_key(&1u64).is_ok());
            },
        },
    );
}

fn u64_keys(c: &mut Criterion) {
    let order = visiting_order(KEYS);
    let clock = SystemClock::shared();
    let limiter = ours::<u64>(&clock);
    let governor = RateLimiter::keyed(quota());
    for key in 0..KEYS as u64 {
        let _ = limiter.check(&key, 1);
        let _ = governor.check_key(&key);
    }
    bench_row(
        c,
        "100k u64 keys",
        &order,
        &clock,
        Contenders {
            ours: &|i| {
                black_box(limiter.check(&(i as u64), 1).is_ok_and(|d| d.allowed));
            },
            ours_at: &|i, now| {
                black_box(
                    limiter
                        .check_at(&(i as u64), 1, now)
                        .is_ok_and(|d| d.allowed),
                );
            },
            governor: &|i| {
                black_box(governor.check_key(&(i as u64)).is_ok());
            },
        },
    );
}

fn string_keys(c: &mut Criterion) {
    let order = visiting_order(KEYS);
    let keys: Vec<String> = (0..KEYS).map(address).collect();
    let clock = SystemClock::shared();
    let limiter = ours::<compact_str::CompactString>(&clock);
    let governor = RateLimiter::keyed(quota());
    for key in &keys {
        let _ = limiter.check(key.as_str(), 1);
        let _ = governor.check_key(key);
    }
    bench_row(
        c,
        "100k string keys",
        &order,
        &clock,
        Contenders {
            ours: &|i| {
                black_box(limiter.check(keys[i].as_str(), 1).is_ok_and(|d| d.allowed));
            },
            ours_at: &|i, now| {
                black_box(
                    limiter
                        .check_at(keys[i].as_str(), 1, now)
                        .is_ok_and(|d| d.allowed),
                );
            },
            governor: &|i| {
                black_box(governor.check_key(&keys[i]).is_ok());
            },
        },
    );
}

/// What `check` pays on top of `check_at`: one read of the system clock.
fn clock_read(c: &mut Criterion) {
    let clock = SystemClock::shared();
    c.bench_function("SystemClock::monotonic", |b| {
        b.iter(|| black_box(clock.monotonic()))
    });
}

fn config() -> Criterion {
    // 19 benchmarks in about two minutes, setup included.
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = one_key, u64_keys, string_keys, clock_read
}
criterion_main!(benches);
