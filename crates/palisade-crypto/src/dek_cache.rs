//! The data-key cache: keeps unwrapped DEKs in memory so the KMS is called
//! once per DEK, not once per message.
//!
//! Every entry is bounded three ways: by age (`ttl`, shorter for subject
//! keys so a shredded subject becomes unreadable on other instances soon),
//! by uses (`max_uses` encryptions, never above the random-nonce limit of one
//! GCM key; opening a message draws no nonce, so decryptions are not
//! counted), and by count (`max_entries` per map, oldest evicted first).
//! Encryption keeps one current DEK per key; decryption looks DEKs up by the
//! ciphertext's key slot (kind, key id, version, wrapped DEK: the bytes that
//! identify the DEK), so a ciphertext made here opens without a KMS call.
//!
//! A lookup takes a read lock, and for an encryption one atomic increment
//! (the use); inserts (after a KMS call) take the write lock. Each thread
//! also keeps the keyring DEK it decrypted with last ([`RecentDek`]), checked
//! against a count of removals from the maps, so a run of messages under one
//! DEK takes no lock at all. Ages are read from the coarse monotonic clock (a
//! few milliseconds off at worst), since the check runs on every message.
//! Hits are counted per thread, as an atomic read-modify-write per message
//! would cost as much as parsing the header; misses and evictions in atomics.
//! [`DekCache::publish_metrics`] publishes them.

use crate::aead::{AeadKey, SAFE_RANDOM_NONCE_LIMIT};
use crate::envelope::{Header, KeyKind};
use crate::error::{CryptoError, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use thread_local::ThreadLocal;

type Map<K> = HashMap<K, Arc<CachedDek>, foldhash::fast::RandomState>;

/// Bounds of the DEK cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DekCacheSettings {
    /// Longest a DEK of a keyring key is used or kept.
    pub ttl: Duration,
    /// Longest a DEK under a subject key is used or kept: after a subject is
    /// shredded on one instance, others may open its data for at most this long.
    pub subject_ttl: Duration,
    /// Most messages one cached DEK seals before a new one is made. Opening
    /// is not counted: the bound is the random-nonce limit of AES-GCM, and
    /// decryption draws no nonce.
    pub max_uses: u64,
    /// Most DEKs kept, for encryption and for decryption each.
    pub max_entries: usize,
}

impl Default for DekCacheSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            subject_ttl: Duration::from_secs(30),
            max_uses: 1 << 20,
            max_entries: 10_000,
        }
    }
}

impl DekCacheSettings {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &'static str, reason: &str| {
            Err(CryptoError::Invalid {
                field,
                reason: reason.into(),
            })
        };
        if self.ttl.is_zero() || self.subject_ttl.is_zero() {
            return invalid("dek_cache.ttl", "must be above zero");
        }
        if self.max_uses == 0 || self.max_uses > SAFE_RANDOM_NONCE_LIMIT {
            return invalid(
                "dek_cache.max_uses",
                "must be 1 to 2^32 (the random-nonce limit of one AES-GCM key)",
            );
        }
        if self.max_entries == 0 {
            return invalid("dek_cache.max_entries", "must be at least 1");
        }
        Ok(())
    }
}

/// One unwrapped DEK and the header of the ciphertexts it seals.
pub(crate) struct CachedDek {
    pub(crate) aead: AeadKey,
    pub(crate) header: Header,
    created: Duration,
    ttl: Duration,
    max_uses: u64,
    uses: AtomicU64,
}

impl fmt::Debug for CachedDek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedDek")
            .field("uses", &self.uses.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl CachedDek {
    pub(crate) fn new(
        aead: AeadKey,
        header: Header,
        created: Duration,
        ttl: Duration,
        max_uses: u64,
    ) -> Self {
        Self {
            aead,
            header,
            created,
            ttl,
            max_uses,
            uses: AtomicU64::new(0),
        }
    }

    fn fresh(&self, now: Duration) -> bool {
        now.saturating_sub(self.created) < self.ttl
    }

    /// Takes one use; false once the entry is too old or used up.
    fn take_use(&self, now: Duration) -> bool {
        self.fresh(now) && self.uses.fetch_add(1, Ordering::Relaxed) < self.max_uses
    }

    /// Counts a use made without a lookup (the one that made the entry).
    pub(crate) fn count_use(&self) {
        self.uses.fetch_add(1, Ordering::Relaxed);
    }

    /// The slot bytes that identify this DEK in a ciphertext.
    fn slot(&self) -> &[u8] {
        slot_of_header(self.header.as_bytes())
    }
}

/// The key slot of a header or ciphertext: from the key kind through the
/// wrapped DEK (everything after magic, format and algorithm).
pub(crate) fn slot_of_header(header: &[u8]) -> &[u8] {
    header.get(4..).unwrap_or_default()
}

/// Counters of the cache, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DekCacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that needed a new or unwrapped DEK.
    pub misses: u64,
    /// Entries dropped for age, uses, size or invalidation.
    pub evictions: u64,
    /// DEKs held now for encryption.
    pub encrypting: usize,
    /// DEKs held now for decryption.
    pub decrypting: usize,
}

/// The cache. Shared by a keyring's clones.
pub(crate) struct DekCache {
    settings: DekCacheSettings,
    /// The current DEK per keyring key name.
    keyring: RwLock<Map<String>>,
    /// The current DEK per subject.
    subjects: RwLock<Map<String>>,
    /// DEKs by key slot.
    decrypting: RwLock<Map<Box<[u8]>>>,
    /// How many times entries left a map: a [`RecentDek`] taken before the
    /// latest removal is stale.
    removals: AtomicU64,
    /// Per thread, the keyring DEK it opened with last.
    recent: ThreadLocal<RefCell<RecentDek>>,
    hits: PerThreadCounter,
    misses: AtomicU64,
    evictions: AtomicU64,
}

impl fmt::Debug for DekCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DekCache")
            .field("settings", &self.settings)
            .field("stats", &self.stats())
            .finish()
    }
}

fn read<K>(lock: &RwLock<Map<K>>) -> std::sync::RwLockReadGuard<'_, Map<K>> {
    // A poisoned lock means a panic elsewhere; the map is still consistent.
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<K>(lock: &RwLock<Map<K>>) -> std::sync::RwLockWriteGuard<'_, Map<K>> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl DekCache {
    pub(crate) fn new(settings: DekCacheSettings) -> Self {
        Self {
            settings,
            keyring: RwLock::default(),
            subjects: RwLock::default(),
            decrypting: RwLock::default(),
            removals: AtomicU64::new(0),
            recent: ThreadLocal::new(),
            hits: PerThreadCounter::default(),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    fn encrypting_map(&self, kind: KeyKind) -> &RwLock<Map<String>> {
        match kind {
            KeyKind::Keyring => &self.keyring,
            KeyKind::Subject => &self.subjects,
        }
    }

    pub(crate) fn ttl(&self, kind: KeyKind) -> Duration {
        match kind {
            KeyKind::Keyring => self.settings.ttl,
            KeyKind::Subject => self.settings.subject_ttl,
        }
    }

    pub(crate) fn max_uses(&self) -> u64 {
        self.settings.max_uses
    }

    /// The current DEK of key `id`, if one is cached, fresh and not used up.
    pub(crate) fn encrypting(
        &self,
        kind: KeyKind,
        id: &str,
        now: Duration,
    ) -> Option<Arc<CachedDek>> {
        let found = read(self.encrypting_map(kind)).get(id).cloned();
        self.answer(found, now)
    }

    /// Calls `f` with the DEK of a ciphertext's key slot if it is cached and
    /// fresh, under the map's read lock: the hot path of decryption, without
    /// a reference count to take and drop. Takes no use (see
    /// [`DekCacheSettings::max_uses`]). `f` must be short (it holds off
    /// inserts, never other readers).
    pub(crate) fn with_decrypting<T>(
        &self,
        slot: &[u8],
        now: Duration,
        f: impl FnOnce(&CachedDek) -> T,
    ) -> Option<T> {
        let recent = self.recent.get_or_default();
        // Read before the map: an entry removed after this read makes the
        // count move on, so a `RecentDek` never outlives its map entry.
        let removals = self.removals.load(Ordering::SeqCst);
        if let Ok(mut recent) = recent.try_borrow_mut()
            && let Some(dek) = recent.current(slot, now, removals)
        {
            self.hits.increment();
            return Some(f(dek));
        }
        let map = read(&self.decrypting);
        match map.get(slot) {
            Some(dek) if dek.fresh(now) => {
                self.hits.increment();
                if let Ok(mut recent) = recent.try_borrow_mut() {
                    recent.saw(dek, removals);
                }
                Some(f(dek))
            }
            _ => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Takes one more use of a DEK already in hand (a [`crate::keyring`]
    /// batch): true while it is fresh and has uses left, as a lookup would.
    pub(crate) fn reuse(&self, dek: &CachedDek, now: Duration) -> bool {
        let usable = dek.take_use(now);
        if usable {
            self.hits.increment();
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        usable
    }

    fn answer(&self, found: Option<Arc<CachedDek>>, now: Duration) -> Option<Arc<CachedDek>> {
        match found {
            Some(dek) if dek.take_use(now) => {
                self.hits.increment();
                Some(dek)
            }
            _ => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Installs a new current DEK of key `id` (also usable for decryption).
    pub(crate) fn insert_encrypting(
        &self,
        kind: KeyKind,
        id: &str,
        dek: Arc<CachedDek>,
        now: Duration,
    ) {
        self.insert_decrypting(dek.clone(), now);
        let mut map = write(self.encrypting_map(kind));
        self.make_room(&mut map, now);
        map.insert(id.to_owned(), dek);
    }

    /// Keeps an unwrapped DEK for the ciphertexts naming its slot.
    pub(crate) fn insert_decrypting(&self, dek: Arc<CachedDek>, now: Duration) {
        let slot: Box<[u8]> = dek.slot().into();
        let mut map = write(&self.decrypting);
        self.make_room(&mut map, now);
        map.insert(slot, dek);
    }

    /// Drops stale entries when the map is full, then the oldest if still full.
    fn make_room<K: Eq + std::hash::Hash + Clone>(&self, map: &mut Map<K>, now: Duration) {
        if map.len() < self.settings.max_entries {
            return;
        }
        let before = map.len();
        map.retain(|_, dek| dek.fresh(now) && dek.uses.load(Ordering::Relaxed) < dek.max_uses);
        if map.len() >= self.settings.max_entries
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, dek)| dek.created)
                .map(|(key, _)| key.clone())
        {
            map.remove(&oldest);
        }
        self.evicted((before - map.len()) as u64);
    }

    /// Counts `n` entries gone from a map; called after they left it.
    fn evicted(&self, n: u64) {
        if n > 0 {
            self.evictions.fetch_add(n, Ordering::Relaxed);
            self.removals.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Stops encrypting with the current DEK of keyring key `name` (after a
    /// rotation); its ciphertexts still open from the decryption map.
    pub(crate) fn retire_keyring_key(&self, name: &str) {
        let removed = write(&self.keyring).remove(name).is_some();
        self.evicted(u64::from(removed));
    }

    /// Forgets every DEK of subject `subject` (after it was shredded).
    pub(crate) fn forget_subject(&self, subject: &str) {
        let removed = write(&self.subjects).remove(subject).is_some();
        self.evicted(u64::from(removed));
        let mut map = write(&self.decrypting);
        let before = map.len();
        map.retain(|slot, _| !slot_names_subject(slot, subject));
        self.evicted((before - map.len()) as u64);
    }

    /// Forgets everything (tests, emergencies). A thread's [`RecentDek`]
    /// stops opening anything at once, and leaves memory at that thread's
    /// next decryption.
    pub(crate) fn clear(&self) {
        let n = write(&self.keyring).drain().count()
            + write(&self.subjects).drain().count()
            + write(&self.decrypting).drain().count();
        self.evicted(n as u64);
    }

    pub(crate) fn stats(&self) -> DekCacheStats {
        DekCacheStats {
            hits: self.hits.sum(),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            encrypting: read(&self.keyring).len() + read(&self.subjects).len(),
            decrypting: read(&self.decrypting).len(),
        }
    }

    /// Publishes the counters as `palisade_crypto_dek_cache_*` metrics.
    pub(crate) fn publish_metrics(&self) {
        let stats = self.stats();
        metrics::counter!("palisade_crypto_dek_cache_hits_total").absolute(stats.hits);
        metrics::counter!("palisade_crypto_dek_cache_misses_total").absolute(stats.misses);
        metrics::counter!("palisade_crypto_dek_cache_evictions_total").absolute(stats.evictions);
        metrics::gauge!("palisade_crypto_dek_cache_entries", "use" => "encrypt")
            .set(stats.encrypting as f64);
        metrics::gauge!("palisade_crypto_dek_cache_entries", "use" => "decrypt")
            .set(stats.decrypting as f64);
    }
}

/// The keyring DEK a thread opened with last, so a run of messages under one
/// DEK skips the map's lock and hash (two locked instructions and a hash of
/// the slot: about 26 ns, against 260 ns for AES to open 1 KiB).
///
/// Subject DEKs are never kept here: when a subject is shredded its DEKs must
/// leave memory with the map's entries, and this slot would keep one until its
/// thread's next decryption.
#[derive(Default)]
struct RecentDek {
    dek: Option<Arc<CachedDek>>,
    /// [`DekCache::removals`] when `dek` was taken from the map.
    removals: u64,
    /// The address of the entry the last map hit found, zero after a hit on
    /// `dek`: an entry replaces `dek` on its second map hit in a row, so
    /// messages alternating between DEKs keep one here instead of swapping
    /// it (a reference count taken and dropped) on every message.
    candidate: usize,
}

impl RecentDek {
    /// The kept DEK if it opens `slot`, is fresh and nothing left the map
    /// since it was taken; a stale one is dropped.
    fn current(&mut self, slot: &[u8], now: Duration, removals: u64) -> Option<&CachedDek> {
        let dek = self.dek.as_ref()?;
        if self.removals != removals || !dek.fresh(now) {
            self.dek = None;
            return None;
        }
        if dek.slot() != slot {
            return None;
        }
        self.candidate = 0;
        self.dek.as_deref()
    }

    /// Notes a map hit on `dek`, taken while `removals` removals had happened.
    fn saw(&mut self, dek: &Arc<CachedDek>, removals: u64) {
        if dek.header.kind() != KeyKind::Keyring {
            return;
        }
        let address = Arc::as_ptr(dek) as usize;
        if self.dek.is_none() || self.candidate == address {
            self.dek = Some(dek.clone());
            self.removals = removals;
        }
        self.candidate = address;
    }
}

/// A count incremented without a locked instruction: each thread adds to a
/// cell of its own (one writer per cell, so a plain load and store lose no
/// increment) and a reading sums the cells.
#[derive(Default)]
struct PerThreadCounter(ThreadLocal<AtomicU64>);

impl PerThreadCounter {
    fn increment(&self) {
        let cell = self.0.get_or_default();
        cell.store(cell.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    fn sum(&self) -> u64 {
        self.0.iter().map(|cell| cell.load(Ordering::Relaxed)).sum()
    }
}

/// Whether a key slot (kind, id length, id, ...) names subject `subject`.
fn slot_names_subject(slot: &[u8], subject: &str) -> bool {
    slot.len() >= 2 + subject.len()
        && slot[0] == 2
        && usize::from(slot[1]) == subject.len()
        && &slot[2..2 + subject.len()] == subject.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aead::KeyBytes;

    fn dek(
        kind: KeyKind,
        id: &str,
        version: u32,
        created: Duration,
        settings: &DekCacheSettings,
    ) -> Arc<CachedDek> {
        let bytes = KeyBytes::generate().unwrap_or_else(|e| panic!("{e}"));
        let aead = AeadKey::new(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let header =
            Header::new(kind, id, version, &[version as u8; 60]).unwrap_or_else(|e| panic!("{e}"));
        let ttl = match kind {
            KeyKind::Keyring => settings.ttl,
            KeyKind::Subject => settings.subject_ttl,
        };
        Arc::new(CachedDek::new(
            aead,
            header,
            created,
            ttl,
            settings.max_uses,
        ))
    }

    fn settings() -> DekCacheSettings {
        DekCacheSettings {
            ttl: Duration::from_secs(10),
            subject_ttl: Duration::from_secs(2),
            max_uses: 3,
            max_entries: 2,
        }
    }

    #[test]
    fn an_entry_serves_at_most_max_uses_then_misses() {
        let cache = DekCache::new(settings());
        let t0 = Duration::from_secs(100);
        cache.insert_encrypting(
            KeyKind::Keyring,
            "k",
            dek(KeyKind::Keyring, "k", 1, t0, &settings()),
            t0,
        );
        for _ in 0..3 {
            assert!(cache.encrypting(KeyKind::Keyring, "k", t0).is_some());
        }
        assert!(cache.encrypting(KeyKind::Keyring, "k", t0).is_none());
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (3, 1));
    }

    impl DekCache {
        /// Whether a lookup of `slot` would answer (taking a use).
        fn decrypting(&self, slot: &[u8], now: Duration) -> Option<()> {
            self.with_decrypting(slot, now, |_| ())
        }
    }

    #[test]
    fn decryption_takes_no_use() {
        let cache = DekCache::new(settings());
        let t0 = Duration::from_secs(100);
        let entry = dek(KeyKind::Keyring, "k", 1, t0, &settings());
        let slot: Vec<u8> = slot_of_header(entry.header.as_bytes()).to_vec();
        cache.insert_encrypting(KeyKind::Keyring, "k", entry, t0);
        for _ in 0..10 {
            assert!(cache.decrypting(&slot, t0).is_some());
        }
        // All three encryptions are still available.
        for _ in 0..3 {
            assert!(cache.encrypting(KeyKind::Keyring, "k", t0).is_some());
        }
        assert!(cache.encrypting(KeyKind::Keyring, "k", t0).is_none());
    }

    #[test]
    fn an_entry_expires_after_its_ttl() {
        let cache = DekCache::new(settings());
        let t0 = Duration::from_secs(100);
        let entry = dek(KeyKind::Subject, "alice", 1, t0, &settings());
        let slot: Vec<u8> = slot_of_header(entry.header.as_bytes()).to_vec();
        cache.insert_encrypting(KeyKind::Subject, "alice", entry, t0);
        assert!(
            cache
                .decrypting(&slot, t0 + Duration::from_millis(1999))
                .is_some()
        );
        assert!(
            cache
                .decrypting(&slot, t0 + Duration::from_secs(2))
                .is_none()
        );
    }

    #[test]
    fn a_full_map_evicts_the_oldest_entry() {
        let cache = DekCache::new(settings());
        let s = settings();
        let t = |s: u64| Duration::from_secs(s);
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            let at = t(i as u64);
            cache.insert_encrypting(
                KeyKind::Keyring,
                name,
                dek(KeyKind::Keyring, name, 1, at, &s),
                at,
            );
        }
        let stats = cache.stats();
        assert_eq!((stats.encrypting, stats.decrypting), (2, 2));
        assert!(stats.evictions >= 2);
        assert!(cache.encrypting(KeyKind::Keyring, "a", t(3)).is_none());
        assert!(cache.encrypting(KeyKind::Keyring, "c", t(3)).is_some());
    }

    #[test]
    fn forgetting_a_subject_drops_only_its_deks() {
        let cache = DekCache::new(DekCacheSettings::default());
        let s = DekCacheSettings::default();
        let t0 = Duration::ZERO;
        let alice = dek(KeyKind::Subject, "alice", 1, t0, &s);
        let alice_slot: Vec<u8> = slot_of_header(alice.header.as_bytes()).to_vec();
        let bob = dek(KeyKind::Subject, "bob", 1, t0, &s);
        let bob_slot: Vec<u8> = slot_of_header(bob.header.as_bytes()).to_vec();
        cache.insert_encrypting(KeyKind::Subject, "alice", alice, t0);
        cache.insert_encrypting(KeyKind::Subject, "bob", bob, t0);
        cache.forget_subject("alice");
        assert!(cache.encrypting(KeyKind::Subject, "alice", t0).is_none());
        assert!(cache.decrypting(&alice_slot, t0).is_none());
        assert!(cache.decrypting(&bob_slot, t0).is_some());
    }

    impl DekCache {
        /// The slot of the DEK this thread keeps, if any.
        fn kept(&self) -> Option<Vec<u8>> {
            let recent = self.recent.get()?.borrow();
            recent.dek.as_ref().map(|dek| dek.slot().to_vec())
        }
    }

    fn keyring_entry(cache: &DekCache, id: &str, at: Duration) -> Vec<u8> {
        let entry = dek(KeyKind::Keyring, id, 1, at, &settings());
        let slot = slot_of_header(entry.header.as_bytes()).to_vec();
        cache.insert_encrypting(KeyKind::Keyring, id, entry, at);
        slot
    }

    #[test]
    fn a_thread_keeps_its_keyring_dek_until_an_entry_leaves_the_map() {
        let cache = DekCache::new(settings());
        let t0 = Duration::from_secs(100);
        let slot = keyring_entry(&cache, "k", t0);
        assert!(cache.decrypting(&slot, t0).is_some());
        assert_eq!(cache.kept(), Some(slot.clone()));
        assert!(cache.decrypting(&slot, t0).is_some());
        assert_eq!(cache.stats().hits, 2);

        cache.clear();
        assert!(cache.decrypting(&slot, t0).is_none());
        assert_eq!(cache.kept(), None);
    }

    #[test]
    fn a_kept_dek_evicted_from_the_map_opens_nothing_more() {
        let cache = DekCache::new(settings());
        let t = |s: u64| Duration::from_secs(100 + s);
        let a = keyring_entry(&cache, "a", t(0));
        assert!(cache.decrypting(&a, t(0)).is_some());
        let removals = cache.removals.load(Ordering::SeqCst);
        // The third key evicts the oldest entries (max_entries is 2), `a`'s
        // included.
        keyring_entry(&cache, "b", t(1));
        keyring_entry(&cache, "c", t(2));
        assert!(cache.removals.load(Ordering::SeqCst) > removals);
        assert!(cache.decrypting(&a, t(2)).is_none());
        assert_eq!(cache.kept(), None);
    }

    #[test]
    fn a_kept_dek_expires_with_its_ttl() {
        let cache = DekCache::new(settings());
        let t0 = Duration::from_secs(100);
        let slot = keyring_entry(&cache, "k", t0);
        assert!(cache.decrypting(&slot, t0).is_some());
        assert!(cache.kept().is_some());
        assert!(cache.decrypting(&slot, t0 + settings().ttl).is_none());
        assert_eq!(cache.kept(), None);
    }

    #[test]
    fn subject_deks_are_never_kept_per_thread() {
        let cache = DekCache::new(settings());
        let t0 = Duration::from_secs(100);
        let entry = dek(KeyKind::Subject, "alice", 1, t0, &settings());
        let slot = slot_of_header(entry.header.as_bytes()).to_vec();
        cache.insert_encrypting(KeyKind::Subject, "alice", entry, t0);
        for _ in 0..3 {
            assert!(cache.decrypting(&slot, t0).is_some());
        }
        assert_eq!(cache.kept(), None);
    }

    #[test]
    fn messages_alternating_between_deks_keep_the_first_one() {
        let cache = DekCache::new(settings());
        let t0 = Duration::from_secs(100);
        let a = keyring_entry(&cache, "a", t0);
        let b = keyring_entry(&cache, "b", t0);
        for _ in 0..4 {
            assert!(cache.decrypting(&a, t0).is_some());
            assert!(cache.decrypting(&b, t0).is_some());
            assert_eq!(cache.kept(), Some(a.clone()));
        }
        // Two in a row: `b` is the DEK in use now.
        assert!(cache.decrypting(&b, t0).is_some());
        assert_eq!(cache.kept(), Some(b.clone()));
        assert_eq!(cache.stats().hits, 9);
    }

    #[test]
    fn each_thread_keeps_its_own_dek() {
        let cache = Arc::new(DekCache::new(settings()));
        let t0 = Duration::from_secs(100);
        let a = keyring_entry(&cache, "a", t0);
        assert!(cache.decrypting(&a, t0).is_some());
        let other = cache.clone();
        std::thread::spawn(move || {
            assert_eq!(other.kept(), None);
            assert!(other.decrypting(&a, t0).is_some());
            assert_eq!(other.kept(), Some(a));
        })
        .join()
        .unwrap_or_else(|_| panic!("decrypting thread panicked"));
        assert_eq!(cache.stats().hits, 2);
    }

    #[test]
    fn hits_counted_on_several_threads_add_up() {
        let counter = Arc::new(PerThreadCounter::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counter = counter.clone();
                std::thread::spawn(move || (0..10_000).for_each(|_| counter.increment()))
            })
            .collect();
        for thread in threads {
            thread
                .join()
                .unwrap_or_else(|_| panic!("counting thread panicked"));
        }
        counter.increment();
        assert_eq!(counter.sum(), 40_001);
    }

    #[test]
    fn settings_refuse_uses_past_the_nonce_limit() {
        let mut s = DekCacheSettings::default();
        assert!(s.validate().is_ok());
        s.max_uses = SAFE_RANDOM_NONCE_LIMIT + 1;
        assert!(s.validate().is_err());
    }
}
