//! IP reputation: allow and block lists of addresses and networks (IPv4 and
//! IPv6), loaded from files and URLs, reloaded while serving, and looked up on
//! every request.
//!
//! - [`parse_list`] reads plain, FireHOL and Spamhaus DROP style lists,
//!   reporting bad lines by number and skipping them.
//! - [`CompiledLists`] answers "which listed network holds this address" in
//!   two dependent memory reads: a direct index, then a short search of
//!   ranges that carry their answer (see `table.rs`).
//! - [`Reputation`] holds the configured sources and the compiled lists behind
//!   an [`ArcSwap`]: a reload compiles new lists off to the side and swaps them
//!   in at once, so a lookup sees the old lists or the new ones, never a mix,
//!   and never waits for a reload. A source that fails to load keeps its last
//!   good content: an unreachable mirror never empties a block list. Lookups
//!   read it through a per-thread cache (`current.rs`), with no locked
//!   instruction while the lists are unchanged.
//! - [`BlockTable`] holds manual and automatic blocks of addresses, networks
//!   and subjects, each with an expiry.
//!
//! Precedence for an address: a block in the [`BlockTable`] made by hand wins,
//! then the allow lists, then automatic blocks and the block lists.

mod blocks;
mod current;
mod lists;
mod parse;
mod source;
mod table;

pub use blocks::{Block, BlockMode, BlockOrigin, BlockTable, BlockTarget};
pub use lists::{CompiledLists, ListMatch};
pub use parse::{IssueKind, ListIssue, MAX_ISSUES_KEPT, MAX_LINE_BYTES, ParsedList, parse_list};
pub use source::{ListKind, ListSource};

use arc_swap::ArcSwap;
use ipnet::IpNet;
use serde::Serialize;
use source::{Fetched, Fetcher, Version};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Limits of list loading.
#[derive(Debug, Clone)]
pub struct ReputationSettings {
    /// Largest list file or download, in bytes.
    pub max_list_bytes: u64,
    /// Most networks kept from one list.
    pub max_entries_per_list: usize,
    /// Longest a download may take.
    pub fetch_timeout: Duration,
}

impl Default for ReputationSettings {
    fn default() -> Self {
        Self {
            max_list_bytes: 256 * 1024 * 1024,
            max_entries_per_list: 5_000_000,
            fetch_timeout: Duration::from_secs(30),
        }
    }
}

/// What the lists say about an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// An allow list holds it.
    Allowed(ListMatch),
    /// A block list holds it (and no allow list).
    Blocked(ListMatch),
    /// No list holds it.
    Unlisted,
}

/// The state of one list, for operators.
#[derive(Debug, Clone, Serialize)]
pub struct ListStatus {
    /// The list's name.
    pub name: String,
    /// Allow or block.
    pub kind: ListKind,
    /// Its path or URL.
    pub location: String,
    /// Networks in force.
    pub entries: usize,
    /// When its content in force was read (Unix ms), if ever.
    pub loaded_at_ms: Option<i64>,
    /// The last reload's error; the previous content stays in force.
    pub error: Option<String>,
    /// Issues of the content in force (the first [`MAX_ISSUES_KEPT`]).
    pub issues: Vec<ListIssue>,
    /// All issues of the content in force.
    pub issue_count: usize,
    /// Lines skipped in the content in force.
    pub skipped: usize,
}

/// What one reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Lists whose content changed.
    pub changed: Vec<String>,
    /// Lists that could not be read (they keep their previous content).
    pub failed: Vec<String>,
}

/// The lists in force.
#[derive(Debug, Default)]
struct Snapshot {
    allow: CompiledLists,
    block: CompiledLists,
    status: Vec<ListStatus>,
}

/// One source's last good content.
#[derive(Debug, Default)]
struct Loaded {
    networks: Arc<Vec<IpNet>>,
    version: Option<Version>,
    parsed: ParsedList,
    loaded_at_ms: Option<i64>,
    error: Option<String>,
}

#[derive(Debug)]
struct Loader {
    sources: Vec<ListSource>,
    loaded: Vec<Loaded>,
    fetcher: Fetcher,
}

/// The allow and block lists, hot-reloadable. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Reputation {
    /// The lists in force; also held by each thread's cache of them.
    current: current::Shared,
    loader: tokio::sync::Mutex<Loader>,
    settings: ReputationSettings,
}

impl Reputation {
    /// Lists from `sources`, empty until the first [`Reputation::reload`].
    pub fn new(sources: Vec<ListSource>, settings: ReputationSettings) -> Result<Self, String> {
        for source in &sources {
            source
                .validate()
                .map_err(|e| format!("list {:?}: {e}", source.name))?;
        }
        let mut names = std::collections::BTreeSet::new();
        if let Some(dup) = sources.iter().find(|s| !names.insert(s.name.as_str())) {
            return Err(format!("two lists are named {:?}", dup.name));
        }
        Ok(Self::build(sources, settings))
    }

    /// No lists at all.
    pub fn empty() -> Self {
        Self::build(Vec::new(), ReputationSettings::default())
    }

    fn build(sources: Vec<ListSource>, settings: ReputationSettings) -> Self {
        let fetcher = Fetcher::new(
            settings.max_list_bytes,
            settings.fetch_timeout,
            sources.iter().any(|s| s.url.is_some()),
        );
        let loaded = sources.iter().map(|_| Loaded::default()).collect();
        Self {
            current: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
            loader: tokio::sync::Mutex::new(Loader {
                sources,
                loaded,
                fetcher,
            }),
            settings,
        }
    }

    /// Lists given directly (tests, benchmarks, embedders with their own
    /// loading), with no sources to reload.
    pub fn from_networks(
        allow: Vec<(String, Vec<IpNet>)>,
        block: Vec<(String, Vec<IpNet>)>,
    ) -> Self {
        let reputation = Self::empty();
        let status = |kind| {
            move |(name, nets): &(String, Vec<IpNet>)| ListStatus {
                name: name.clone(),
                kind,
                location: String::new(),
                entries: nets.len(),
                loaded_at_ms: None,
                error: None,
                issues: Vec::new(),
                issue_count: 0,
                skipped: 0,
            }
        };
        let mut statuses: Vec<ListStatus> = allow.iter().map(status(ListKind::Allow)).collect();
        statuses.extend(block.iter().map(status(ListKind::Block)));
        let compile = |lists: &[(String, Vec<IpNet>)]| {
            CompiledLists::build(
                lists
                    .iter()
                    .map(|(n, nets)| (Arc::from(n.as_str()), nets.as_slice()))
                    .collect(),
            )
        };
        reputation.current.store(Arc::new(Snapshot {
            allow: compile(&allow),
            block: compile(&block),
            status: statuses,
        }));
        reputation
    }

    /// What the lists say about `ip`. Allow lists win over block lists.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Listing {
        current::read(&self.current, |snapshot| {
            // One search per list: the range found carries its network's
            // list and prefix length, so the evidence costs no further
            // memory read.
            if let Some(hit) = snapshot.allow.lookup(ip) {
                return Listing::Allowed(hit);
            }
            if let Some(hit) = snapshot.block.lookup(ip) {
                return Listing::Blocked(hit);
            }
            Listing::Unlisted
        })
    }

    /// Whether an allow list holds `ip`.
    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        current::read(&self.current, |snapshot| snapshot.allow.contains(ip))
    }

    /// The state of every list.
    pub fn status(&self) -> Vec<ListStatus> {
        self.current.load().status.clone()
    }

    /// Heap bytes of the lists in force (lookup structures and entries).
    pub fn memory_bytes(&self) -> usize {
        let snapshot = self.current.load();
        snapshot.allow.memory_bytes() + snapshot.block.memory_bytes()
    }

    /// Re-reads every source that changed and, if any did, compiles and swaps
    /// in new lists. Reloads are serialised; lookups never wait.
    pub async fn reload(&self, now_ms: i64) -> ReloadReport {
        let mut loader = self.loader.lock().await;
        let Loader {
            sources,
            loaded,
            fetcher,
        } = &mut *loader;
        let mut report = ReloadReport::default();
        for (source, slot) in sources.iter().zip(loaded.iter_mut()) {
            match fetcher.fetch(source, slot.version.as_ref()).await {
                Ok(Fetched::Unchanged) => {
                    slot.error = None;
                }
                Ok(Fetched::Changed(bytes, version)) => {
                    let max = self.settings.max_entries_per_list;
                    let Ok(parsed) =
                        tokio::task::spawn_blocking(move || parse_list(&bytes, max)).await
                    else {
                        slot.error = Some("parsing failed".into());
                        report.failed.push(source.name.clone());
                        continue;
                    };
                    if parsed.issue_count > 0 {
                        tracing::warn!(list = %source.name, issues = parsed.issue_count, skipped = parsed.skipped, first_line = parsed.issues.first().map(|i| i.line), "IP list has lines that are not addresses or networks");
                    }
                    slot.networks = Arc::new(parsed.networks.clone());
                    slot.parsed = ParsedList {
                        networks: Vec::new(),
                        ..parsed
                    };
                    slot.version = Some(version);
                    slot.loaded_at_ms = Some(now_ms);
                    slot.error = None;
                    report.changed.push(source.name.clone());
                }
                Err(error) => {
                    tracing::warn!(list = %source.name, %error, "IP list not reloaded; keeping its previous content");
                    slot.error = Some(error);
                    report.failed.push(source.name.clone());
                }
            }
        }
        let errors_changed = {
            let current = self.current.load();
            current
                .status
                .iter()
                .zip(loaded.iter())
                .any(|(s, l)| s.error != l.error)
                || current.status.len() != loaded.len()
        };
        if (!report.changed.is_empty() || errors_changed)
            && let Some(snapshot) = compile(sources, loaded).await
        {
            self.current.store(Arc::new(snapshot));
        }
        for name in &report.changed {
            metrics::counter!("palisade_reputation_reloads_total", "list" => name.clone())
                .increment(1);
        }
        report
    }

    /// Reloads every `every` on a task of its own, reading time from `clock`.
    pub fn spawn_reloader(
        self: &Arc<Self>,
        every: Duration,
        clock: palisade_core::SharedClock,
    ) -> tokio::task::JoinHandle<()> {
        let reputation = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(reputation) = reputation.upgrade() else {
                    return;
                };
                reputation.reload(clock.now_unix_ms()).await;
            }
        })
    }
}

impl Drop for Reputation {
    /// Frees this thread's cached snapshot now; other threads drop theirs
    /// when they next look up another instance, or exit (see `current.rs`).
    fn drop(&mut self) {
        current::forget(&self.current);
    }
}

/// Compiles the loaded lists, off the async workers (a million networks take
/// a fraction of a second to sort). `None` if compiling failed: the lists in
/// force then stay.
async fn compile(sources: &[ListSource], loaded: &[Loaded]) -> Option<Snapshot> {
    let parts: Vec<(ListSource, Arc<Vec<IpNet>>)> = sources
        .iter()
        .zip(loaded)
        .map(|(s, l)| (s.clone(), l.networks.clone()))
        .collect();
    let status: Vec<ListStatus> = sources
        .iter()
        .zip(loaded)
        .map(|(s, l)| ListStatus {
            name: s.name.clone(),
            kind: s.kind,
            location: s.location(),
            entries: l.networks.len(),
            loaded_at_ms: l.loaded_at_ms,
            error: l.error.clone(),
            issues: l.parsed.issues.clone(),
            issue_count: l.parsed.issue_count,
            skipped: l.parsed.skipped,
        })
        .collect();
    let build = move || {
        let of_kind = |kind| {
            CompiledLists::build(
                parts
                    .iter()
                    .filter(|(s, _)| s.kind == kind)
                    .map(|(s, nets)| (Arc::from(s.name.as_str()), nets.as_slice()))
                    .collect(),
            )
        };
        (of_kind(ListKind::Allow), of_kind(ListKind::Block))
    };
    let (allow, block) = tokio::task::spawn_blocking(build).await.ok()?;
    Some(Snapshot {
        allow,
        block,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn file_source(name: &str, kind: ListKind, path: &std::path::Path) -> ListSource {
        ListSource {
            name: name.into(),
            kind,
            path: Some(path.to_owned()),
            url: None,
        }
    }

    #[tokio::test]
    async fn reloads_a_changed_file_and_keeps_the_last_good_content_when_it_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drop.txt");
        std::fs::write(&path, "; DROP\n192.0.2.0/24 ; SBL1\nbogus\n").unwrap();
        let reputation = Reputation::new(
            vec![file_source("drop", ListKind::Block, &path)],
            ReputationSettings::default(),
        )
        .unwrap();
        assert_eq!(reputation.lookup(ip("192.0.2.1")), Listing::Unlisted);
        let report = reputation.reload(1).await;
        assert_eq!(report.changed, ["drop"]);
        assert!(
            matches!(reputation.lookup(ip("192.0.2.1")), Listing::Blocked(m) if m.list == "drop")
        );
        let status = reputation.status();
        assert_eq!(status[0].entries, 1);
        assert_eq!(status[0].issues[0].line, 3);
        assert_eq!(status[0].loaded_at_ms, Some(1));

        // Unchanged: nothing recompiled.
        assert_eq!(reputation.reload(2).await, ReloadReport::default());

        std::fs::write(&path, "198.51.100.0/24\n2001:db8::/32\n").unwrap();
        assert_eq!(reputation.reload(3).await.changed, ["drop"]);
        assert_eq!(reputation.lookup(ip("192.0.2.1")), Listing::Unlisted);
        assert!(matches!(
            reputation.lookup(ip("2001:db8::5")),
            Listing::Blocked(_)
        ));

        std::fs::remove_file(&path).unwrap();
        let report = reputation.reload(4).await;
        assert_eq!(report.failed, ["drop"]);
        assert!(
            matches!(reputation.lookup(ip("198.51.100.7")), Listing::Blocked(_)),
            "a list that cannot be read keeps its content"
        );
        assert!(reputation.status()[0].error.is_some());
    }

    #[tokio::test]
    async fn allow_lists_win_over_block_lists() {
        let reputation = Reputation::from_networks(
            vec![("office".into(), vec!["192.0.2.128/25".parse().unwrap()])],
            vec![("drop".into(), vec!["192.0.2.0/24".parse().unwrap()])],
        );
        assert!(
            matches!(reputation.lookup(ip("192.0.2.200")), Listing::Allowed(m) if m.list == "office")
        );
        assert!(matches!(
            reputation.lookup(ip("192.0.2.1")),
            Listing::Blocked(_)
        ));
        assert!(reputation.is_allowed(ip("192.0.2.129")));
        assert_eq!(reputation.status().len(), 2);
    }

    /// Serves `bodies[n]` for the n-th version, with an ETag, answering 304
    /// to a matching `If-None-Match`. Returns the URL and the request count.
    async fn list_server(body: Arc<std::sync::Mutex<String>>) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/drop.txt", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let body = body.lock().unwrap().clone();
                tokio::spawn(async move {
                    let mut request = vec![0u8; 4096];
                    let n = socket.read(&mut request).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&request[..n]).to_lowercase();
                    let etag = format!("\"{}\"", body.len());
                    let response = if request.contains(&format!("if-none-match: {etag}")) {
                        "HTTP/1.1 304 Not Modified\r\nconnection: close\r\n\r\n".to_owned()
                    } else {
                        format!(
                            "HTTP/1.1 200 OK\r\netag: {etag}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        (url, requests)
    }

    #[tokio::test]
    async fn loads_from_a_url_with_conditional_requests() {
        let body = Arc::new(std::sync::Mutex::new("203.0.113.0/24\n".to_owned()));
        let (url, requests) = list_server(body.clone()).await;
        let reputation = Reputation::new(
            vec![ListSource {
                name: "remote".into(),
                kind: ListKind::Block,
                path: None,
                url: Some(url),
            }],
            ReputationSettings::default(),
        )
        .unwrap();
        assert_eq!(reputation.reload(1).await.changed, ["remote"]);
        assert!(matches!(
            reputation.lookup(ip("203.0.113.9")),
            Listing::Blocked(_)
        ));
        assert_eq!(
            reputation.reload(2).await,
            ReloadReport::default(),
            "304: unchanged"
        );
        *body.lock().unwrap() = "203.0.113.0/25\n198.51.100.1\n".to_owned();
        assert_eq!(reputation.reload(3).await.changed, ["remote"]);
        assert_eq!(reputation.lookup(ip("203.0.113.200")), Listing::Unlisted);
        assert!(matches!(
            reputation.lookup(ip("198.51.100.1")),
            Listing::Blocked(_)
        ));
        assert_eq!(requests.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookups_during_reloads_always_see_a_whole_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.txt");
        // Both versions block 10.0.0.0/8 among thousands of other networks.
        let version = |salt: u32| {
            let mut text = String::from("10.0.0.0/8\n");
            for i in 0..20_000u32 {
                let a = std::net::Ipv4Addr::from(0x2000_0000 + i * 256 + salt);
                text.push_str(&format!("{a}/32\n"));
            }
            text
        };
        std::fs::write(&path, version(0)).unwrap();
        let reputation = Arc::new(
            Reputation::new(
                vec![file_source("l", ListKind::Block, &path)],
                ReputationSettings::default(),
            )
            .unwrap(),
        );
        reputation.reload(0).await;
        let stop = Arc::new(AtomicBool::new(false));
        let checked = Arc::new(AtomicUsize::new(0));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (reputation, stop, checked) =
                    (reputation.clone(), stop.clone(), checked.clone());
                std::thread::spawn(move || {
                    let mut misses = 0;
                    while !stop.load(Ordering::Relaxed) {
                        if !matches!(reputation.lookup(ip("10.20.30.40")), Listing::Blocked(_)) {
                            misses += 1;
                        }
                        checked.fetch_add(1, Ordering::Relaxed);
                    }
                    misses
                })
            })
            .collect();
        for round in 1..=10u32 {
            // A different length each time, so the change is seen whatever
            // the file system's timestamp resolution.
            let mut text = version(round % 2);
            text.push_str(&"#\n".repeat(round as usize));
            std::fs::write(&path, text).unwrap();
            assert_eq!(reputation.reload(i64::from(round)).await.changed, ["l"]);
        }
        stop.store(true, Ordering::Relaxed);
        for reader in readers {
            assert_eq!(
                reader.join().unwrap(),
                0,
                "a lookup saw a missing or partial list"
            );
        }
        assert!(checked.load(Ordering::Relaxed) > 1_000);
        assert_eq!(reputation.status()[0].entries, 20_001);
    }

    #[tokio::test]
    async fn a_reload_is_seen_by_the_next_lookup_on_every_thread_which_then_frees_the_old_lists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.txt");
        std::fs::write(&path, "192.0.2.0/24\n").unwrap();
        let reputation = Arc::new(
            Reputation::new(
                vec![file_source("l", ListKind::Block, &path)],
                ReputationSettings::default(),
            )
            .unwrap(),
        );
        reputation.reload(1).await;
        // Another thread answering lookups one at a time.
        let (ask, asked) = std::sync::mpsc::channel::<IpAddr>();
        let (answer, answers) = std::sync::mpsc::channel::<Listing>();
        let other = {
            let reputation = reputation.clone();
            std::thread::spawn(move || {
                for address in asked {
                    answer.send(reputation.lookup(address)).unwrap();
                }
            })
        };
        let on_other = |address: &str| {
            ask.send(ip(address)).unwrap();
            answers.recv().unwrap()
        };
        // Both threads cache the first lists.
        assert!(matches!(
            reputation.lookup(ip("192.0.2.1")),
            Listing::Blocked(_)
        ));
        assert!(matches!(on_other("192.0.2.1"), Listing::Blocked(_)));
        let old = Arc::downgrade(&reputation.current.load_full());

        std::fs::write(&path, "198.51.100.0/24\n").unwrap();
        assert_eq!(reputation.reload(2).await.changed, ["l"]);
        assert!(
            old.upgrade().is_some(),
            "both threads still hold the old lists"
        );
        assert_eq!(reputation.lookup(ip("192.0.2.1")), Listing::Unlisted);
        assert!(matches!(
            reputation.lookup(ip("198.51.100.1")),
            Listing::Blocked(_)
        ));
        assert!(old.upgrade().is_some(), "the other thread still holds them");
        assert_eq!(on_other("192.0.2.1"), Listing::Unlisted);
        assert!(matches!(on_other("198.51.100.1"), Listing::Blocked(_)));
        assert!(old.upgrade().is_none(), "no thread holds the old lists");
        drop(ask);
        other.join().unwrap();
    }

    #[test]
    fn more_instances_than_cache_slots_on_one_thread_answer_their_own_lists() {
        let instances: Vec<Reputation> = (0..current::SLOTS as u8 + 3)
            .map(|i| {
                let net = format!("10.{i}.0.0/16").parse().unwrap();
                Reputation::from_networks(Vec::new(), vec![(format!("l{i}"), vec![net])])
            })
            .collect();
        for _ in 0..3 {
            for (i, reputation) in instances.iter().enumerate() {
                for j in 0..instances.len() {
                    let found = reputation.lookup(ip(&format!("10.{j}.1.1")));
                    if i == j {
                        let name = format!("l{i}");
                        assert!(matches!(found, Listing::Blocked(m) if m.list == name));
                    } else {
                        assert_eq!(found, Listing::Unlisted, "instance {i}, address {j}");
                    }
                }
            }
        }
        // Dropping an instance frees this thread's cached copy of it.
        let first = instances.into_iter().next().unwrap();
        let lists = Arc::downgrade(&first.current);
        drop(first);
        assert!(lists.upgrade().is_none());
    }

    #[test]
    fn sources_are_validated_and_names_unique() {
        let a = file_source("a", ListKind::Block, std::path::Path::new("/x"));
        assert!(
            Reputation::new(vec![a.clone(), a.clone()], ReputationSettings::default()).is_err()
        );
        let mut bad = a;
        bad.url = Some("http://x".into());
        assert!(Reputation::new(vec![bad], ReputationSettings::default()).is_err());
    }
}
