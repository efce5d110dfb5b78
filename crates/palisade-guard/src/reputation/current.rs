//! The lists in force, read on the request path with plain loads.
//!
//! `ArcSwap::load` takes a debt slot and gives it back: two locked
//! instructions per call. A locked instruction waits for every earlier
//! memory read, so each lookup waited for the previous one's cache misses
//! and the request path paid the whole latency of every lookup in turn
//! (230-330 ns where `CompiledLists::lookup` alone overlapped to 100-290 ns).
//!
//! Instead each thread keeps an [`arc_swap::Cache`] per [`Reputation`]
//! instance: a clone of the snapshot `Arc` it last saw, revalidated on every
//! read by one plain load of the `ArcSwap`'s pointer. While the pointer is
//! unchanged the read costs no atomic read-modify-write at all; after a
//! reload it differs, and that read takes the new snapshot (one ordinary
//! `load_full`). A reload is therefore seen by the next lookup on every
//! thread, as with `ArcSwap::load`.
//!
//! The trade-off: a thread keeps the snapshot it last read alive until its
//! next lookup or its exit. After a reload, a thread that serves no request
//! holds the previous lists (42 MiB for a million IPv6 networks) meanwhile:
//! at most one stale copy per idle thread and instance. Tokio's workers run
//! the request path continuously and its blocking threads exit after 10 s
//! idle, so on a server this is short-lived; dropping a `Reputation` frees
//! the calling thread's copy at once (other threads' on their next lookup of
//! another instance, or at exit). Caches for more than [`SLOTS`] instances
//! alternating on one thread evict the least recently used, so such a thread
//! still answers correctly, only through `load_full` more often.
//!
//! [`Reputation`]: super::Reputation

use super::Snapshot;
use arc_swap::{ArcSwap, Cache};
use std::cell::RefCell;
use std::sync::Arc;

/// The lists of one `Reputation`, shared with every thread's cache of them.
pub(super) type Shared = Arc<ArcSwap<Snapshot>>;

type SnapshotCache = Cache<Shared, Arc<Snapshot>>;

/// Instances one thread keeps a snapshot of. A server has one.
pub(super) const SLOTS: usize = 4;

thread_local! {
    /// This thread's caches, most recently used first. Each holds its
    /// instance's `ArcSwap` alive, so an address compared equal is always the
    /// same instance (never a later one allocated at a freed address).
    static CACHES: RefCell<Vec<SnapshotCache>> = const { RefCell::new(Vec::new()) };
}

/// Calls `read` with the snapshot in force in `shared`.
#[inline]
pub(super) fn read<R>(shared: &Shared, read: impl Fn(&Snapshot) -> R) -> R {
    CACHES
        .try_with(|caches| {
            // Busy only if `read` itself looked up (it does not), gone only
            // during the thread's teardown: the uncached load answers then.
            let mut caches = caches.try_borrow_mut().ok()?;
            Some(read(front(&mut caches, shared).load()))
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| read(&shared.load()))
}

/// This thread's cache of `shared`, moved to the front (made if missing).
#[inline]
fn front<'a>(caches: &'a mut Vec<SnapshotCache>, shared: &Shared) -> &'a mut SnapshotCache {
    match caches.iter().position(|c| owned_by(c, shared)) {
        Some(0) => {}
        Some(at) => caches[..=at].rotate_right(1),
        None => {
            caches.truncate(SLOTS - 1);
            caches.insert(0, Cache::new(shared.clone()));
        }
    }
    &mut caches[0]
}

/// Drops this thread's cache of `shared`, if it has one.
pub(super) fn forget(shared: &Shared) {
    let _ = CACHES.try_with(|caches| {
        if let Ok(mut caches) = caches.try_borrow_mut() {
            caches.retain(|c| !owned_by(c, shared));
        }
    });
}

fn owned_by(cache: &SnapshotCache, shared: &Shared) -> bool {
    std::ptr::eq(cache.arc_swap(), &**shared)
}
