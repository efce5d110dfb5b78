//! A per-thread count of the bytes the detectors pass over, so tests can
//! check that the work per request grows linearly with its size by counting
//! steps instead of timing. Substring searches and the SQL tokenizer count;
//! decoding counts its passes in [`super::decode::Decoded::work`].

use std::cell::Cell;

thread_local! {
    static STEPS: Cell<u64> = const { Cell::new(0) };
}

/// Adds `n` steps.
pub(crate) fn add(n: usize) {
    STEPS.with(|s| s.set(s.get().wrapping_add(n as u64)));
}

/// The steps counted on this thread so far.
pub(crate) fn now() -> u64 {
    STEPS.with(Cell::get)
}
