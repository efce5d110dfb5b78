//! IP reputation lookups with a million random networks loaded: the compiled
//! lists (sorted ranges behind a direct index, on 2 MiB pages where the
//! kernel gives them) against a tree-bitmap
//! trie (`ip_network_table`, the peer) and a plain sorted `Vec` of disjoint
//! ranges searched by binary search (the baseline), in the same run.
//!
//! Networks: 1,000,000 random IPv4 networks shaped like a merged blocklist
//! (60% single addresses, 30% /24../31, 10% /12../23); and 1,000,000 random
//! IPv6 networks in 2000::/3 (60% /128, 30% /48../64, 10% /20../47). Probes: 2^20 addresses in a fixed pseudo-random order, half
//! drawn from inside listed networks and half uniformly at random, so both hits
//! and misses are timed. Every contender answers the same question: the most
//! specific listed network holding the address (the baseline only says
//! whether one does).
//!
//! `reputation_lookup_listed` is the request path (`Reputation::lookup`, what
//! the tower layer calls) on the listed probes only, so every call builds its
//! evidence.
//!
//! Memory: the compiled lists report their heap bytes exactly; for every
//! contender the process's resident set is also measured before and after
//! building (`/proc/self/statm`), and for the compiled lists how much of that
//! is on transparent huge pages (`AnonHugePages` in `/proc/self/smaps_rollup`),
//! printed to stderr.
//!
//! Run: `cargo bench -p palisade-guard --bench reputation`
//!
//! With `REPUTATION_BENCH_CLOCK=cpu` in the environment every row is timed by
//! the thread's CPU time instead of the wall clock: on cores shared with other
//! builds the wall clock also counts the time the bench waits descheduled
//! (what other processes do to the caches still counts either way).
//!
//! Instruction counts: with `REPUTATION_BENCH_COUNT=lookup`, `contains` or
//! `request` the bench skips criterion and runs that row's loop once over the
//! probes of each family (the request path over the listed ones), in
//! functions named `count_*`, so that
//! `valgrind --tool=callgrind --toggle-collect='*count_*' <bench binary>`
//! counts only the lookups. `REPUTATION_BENCH_NETWORKS` sets the networks per
//! family (default 1,000,000; fewer build faster under valgrind), and
//! `REPUTATION_BENCH_FAMILY=ipv4` or `ipv6` runs one family only.

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkId, Criterion};
use ip_network::{IpNetwork, Ipv4Network, Ipv6Network};
use ip_network_table::IpNetworkTable;
use ipnet::IpNet;
use palisade_guard::reputation::{CompiledLists, Reputation};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

/// Networks per family, `REPUTATION_BENCH_NETWORKS` or 1,000,000.
fn networks() -> usize {
    std::env::var("REPUTATION_BENCH_NETWORKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000)
}

/// The row whose instructions to count, from `REPUTATION_BENCH_COUNT`.
fn count_row() -> Option<String> {
    std::env::var("REPUTATION_BENCH_COUNT").ok()
}

#[inline(never)]
fn count_lookup<A: Copy + Into<IpAddr>>(lists: &CompiledLists, probes: &[A]) {
    for probe in probes {
        black_box(lists.lookup((*probe).into()));
    }
}

#[inline(never)]
fn count_contains<A: Copy + Into<IpAddr>>(lists: &CompiledLists, probes: &[A]) {
    for probe in probes {
        black_box(lists.contains((*probe).into()));
    }
}

#[inline(never)]
fn count_request(reputation: &Reputation, probes: &[IpAddr]) {
    for probe in probes {
        black_box(reputation.lookup(*probe));
    }
}
const PROBES: usize = 1 << 20;

/// Resident set size in bytes, from /proc/self/statm (0 where unavailable).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Bytes of anonymous memory on transparent huge pages, from
/// /proc/self/smaps_rollup (0 where unavailable).
fn anon_huge_pages() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("AnonHugePages:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn networks_v4(rng: &mut fastrand::Rng) -> Vec<(Ipv4Addr, u8)> {
    (0..networks())
        .map(|_| {
            let len = match rng.u8(0..10) {
                0..=5 => 32,
                6..=8 => rng.u8(24..=31),
                _ => rng.u8(12..=23),
            };
            let addr = rng.u32(..) & !u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            (Ipv4Addr::from(addr), len)
        })
        .collect()
}

fn networks_v6(rng: &mut fastrand::Rng) -> Vec<(Ipv6Addr, u8)> {
    (0..networks())
        .map(|_| {
            let len = match rng.u8(0..10) {
                0..=5 => 128,
                6..=8 => rng.u8(48..=64),
                _ => rng.u8(20..=47),
            };
            let raw = (rng.u128(..) >> 3) | (1u128 << 125);
            let addr = raw & !u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            (Ipv6Addr::from(addr), len)
        })
        .collect()
}

/// Disjoint sorted ranges (the union of the networks), for the baseline.
fn union_ranges<T: Copy + Ord>(
    mut ranges: Vec<(T, T)>,
    next: impl Fn(T) -> Option<T>,
) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::new();
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if next(last.1).is_none_or(|n| start <= n) => {
                if end > last.1 {
                    last.1 = end;
                }
            }
            _ => out.push((start, end)),
        }
    }
    out.shrink_to_fit();
    out
}

fn in_sorted<T: Copy + Ord>(ranges: &[(T, T)], addr: T) -> bool {
    let at = ranges.partition_point(|r| r.0 <= addr);
    at > 0 && ranges[at - 1].1 >= addr
}

/// Criterion's clock: the calling thread's CPU time.
struct ThreadCpuTime {
    /// Lends its duration formatter (the values are durations too).
    wall: WallTime,
}

impl ThreadCpuTime {
    fn now() -> Duration {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_nsec).unwrap_or(0),
        )
    }
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        Self::now()
    }
    fn end(&self, start: Duration) -> Duration {
        Self::now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

fn bench_family<A: Copy + Into<IpAddr> + Send + Sync, M: Measurement>(
    c: &mut Criterion<M>,
    family: &str,
    nets: Vec<IpNet>,
    peer_networks: Vec<IpNetwork>,
    probes: Vec<A>,
    ranges_of: impl Fn(&IpNet) -> (u128, u128),
) {
    let (before, huge_before) = (rss(), anon_huge_pages());
    let ours = CompiledLists::build(vec![(Arc::from("bench"), nets.as_slice())]);
    if let Some(row) = count_row() {
        let listed: Vec<IpAddr> = probes
            .iter()
            .map(|p| (*p).into())
            .filter(|p| ours.contains(*p))
            .collect();
        let reputation = Reputation::from_networks(Vec::new(), vec![("bench".to_owned(), nets)]);
        match row.as_str() {
            "lookup" => count_lookup(&ours, &probes),
            "contains" => count_contains(&ours, &probes),
            "request" => count_request(&reputation, &listed),
            other => panic!("REPUTATION_BENCH_COUNT={other}: lookup, contains or request"),
        }
        eprintln!(
            "{family}: {row}: {} probes ({} listed)",
            if row == "request" {
                listed.len()
            } else {
                probes.len()
            },
            listed.len()
        );
        return;
    }
    let ours_rss = rss().saturating_sub(before);
    let ours_huge = anon_huge_pages().saturating_sub(huge_before);
    eprintln!(
        "{family}: palisade compiled lists: {:.1} MiB held (exact, heap or mapped), resident +{:.1} MiB, of it on 2 MiB pages +{:.1} MiB",
        mib(ours.memory_bytes() as u64),
        mib(ours_rss),
        mib(ours_huge)
    );

    let before = rss();
    let mut peer = IpNetworkTable::new();
    for network in &peer_networks {
        peer.insert(*network, 1u32);
    }
    let peer_rss = rss().saturating_sub(before);
    eprintln!(
        "{family}: ip_network_table: resident +{:.1} MiB",
        mib(peer_rss)
    );

    let before = rss();
    let baseline = union_ranges(nets.iter().map(&ranges_of).collect(), |x: u128| {
        x.checked_add(1)
    });
    let baseline_rss = rss().saturating_sub(before);
    eprintln!(
        "{family}: sorted Vec baseline: {} ranges, {:.1} MiB heap, resident +{:.1} MiB",
        baseline.len(),
        mib((baseline.capacity() * 32) as u64),
        mib(baseline_rss)
    );
    let mut listed: Vec<IpAddr> = probes
        .iter()
        .map(|p| (*p).into())
        .filter(|p| ours.contains(*p))
        .collect();
    eprintln!(
        "{family}: {} of {} probes are listed",
        listed.len(),
        probes.len()
    );
    // A power of two, so the benchmark loop steps through them with a mask.
    listed.truncate(1 << listed.len().ilog2());
    let listed_mask = listed.len() - 1;
    // The request path: what the layer calls, on listed addresses only (an
    // unlisted one costs the same search and no evidence).
    let reputation = Reputation::from_networks(Vec::new(), vec![("bench".to_owned(), nets)]);

    let mut group = c.benchmark_group(format!("reputation_lookup_{family}"));
    group.bench_function(BenchmarkId::new("palisade", "1M networks"), |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & (PROBES - 1);
            black_box(ours.lookup(probes[i].into()))
        })
    });
    group.bench_function(BenchmarkId::new("palisade_contains", "1M networks"), |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & (PROBES - 1);
            black_box(ours.contains(probes[i].into()))
        })
    });
    group.bench_function(
        BenchmarkId::new("reputation_lookup_listed", "1M networks"),
        |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & listed_mask;
                black_box(reputation.lookup(listed[i]))
            })
        },
    );
    group.bench_function(BenchmarkId::new("ip_network_table", "1M networks"), |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & (PROBES - 1);
            black_box(peer.longest_match(probes[i].into()))
        })
    });
    group.bench_function(
        BenchmarkId::new("sorted_vec_baseline", "1M networks"),
        |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & (PROBES - 1);
                let addr: u128 = match probes[i].into() {
                    IpAddr::V4(v4) => u128::from(u32::from(v4)),
                    IpAddr::V6(v6) => u128::from(v6),
                };
                black_box(in_sorted(&baseline, addr))
            })
        },
    );
    group.finish();
}

/// Whether to run `family`: `REPUTATION_BENCH_FAMILY` unset or naming it.
fn runs(family: &str) -> bool {
    std::env::var("REPUTATION_BENCH_FAMILY").map_or(true, |f| f == family)
}

fn lookups<M: Measurement>(c: &mut Criterion<M>) {
    let mut rng = fastrand::Rng::with_seed(9);
    let v4 = networks_v4(&mut rng);
    let probes: Vec<Ipv4Addr> = (0..PROBES)
        .map(|_| {
            if rng.bool() {
                let (addr, len) = v4[rng.usize(..v4.len())];
                let host = rng.u32(..) & u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                Ipv4Addr::from(u32::from(addr) | host)
            } else {
                Ipv4Addr::from(rng.u32(..))
            }
        })
        .collect();
    let nets: Vec<IpNet> = v4
        .iter()
        .map(|(a, l)| IpNet::V4(ipnet::Ipv4Net::new(*a, *l).expect("valid")))
        .collect();
    let peer: Vec<IpNetwork> = v4
        .iter()
        .map(|(a, l)| IpNetwork::V4(Ipv4Network::new(*a, *l).expect("valid")))
        .collect();
    drop(v4);
    if runs("ipv4") {
        bench_family(c, "ipv4", nets, peer, probes, |n| match n {
            IpNet::V4(n) => (
                u128::from(u32::from(n.network())),
                u128::from(u32::from(n.broadcast())),
            ),
            IpNet::V6(_) => (0, 0),
        });
    }

    let v6 = networks_v6(&mut rng);
    let probes: Vec<Ipv6Addr> = (0..PROBES)
        .map(|_| {
            if rng.bool() {
                let (addr, len) = v6[rng.usize(..v6.len())];
                let host = rng.u128(..) & u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                Ipv6Addr::from(u128::from(addr) | host)
            } else {
                Ipv6Addr::from((rng.u128(..) >> 3) | (1u128 << 125))
            }
        })
        .collect();
    let nets: Vec<IpNet> = v6
        .iter()
        .map(|(a, l)| IpNet::V6(ipnet::Ipv6Net::new(*a, *l).expect("valid")))
        .collect();
    let peer: Vec<IpNetwork> = v6
        .iter()
        .map(|(a, l)| IpNetwork::V6(Ipv6Network::new(*a, *l).expect("valid")))
        .collect();
    drop(v6);
    if runs("ipv6") {
        bench_family(c, "ipv6", nets, peer, probes, |n| match n {
            IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
            IpNet::V4(_) => (0, 0),
        });
    }
}

fn main() {
    if std::env::var("REPUTATION_BENCH_CLOCK").as_deref() == Ok("cpu") {
        let mut c = Criterion::default()
            .with_measurement(ThreadCpuTime { wall: WallTime })
            .configure_from_args();
        lookups(&mut c);
        c.final_summary();
    } else {
        let mut c = Criterion::default().configure_from_args();
        lookups(&mut c);
        c.final_summary();
    }
}
