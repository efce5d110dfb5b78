//! A read-only buffer of `u32` words on 2 MiB pages where the kernel gives
//! them.
//!
//! A lookup in a table of tens of MiB reads one random place in it. With
//! 4 KiB pages that read also misses the TLB, and the page walk costs about
//! as much as the cache miss itself (a dependent random read in 48 MiB took
//! ~210 ns with 4 KiB pages and ~111 ns with 2 MiB pages on the benchmark VM).
//! A heap allocation gets 2 MiB pages only where transparent huge pages are
//! `always`; most hosts say `madvise`, so a large buffer is an anonymous
//! mapping advised `MADV_HUGEPAGE` before it is first written.
//!
//! Anything that fails (no mmap on the platform, no THP in the kernel, a
//! mapping the words cannot be viewed in) falls back to a `Vec` holding the
//! same words: the contents, and so every answer, are identical either way;
//! only the speed differs.

use memmap2::MmapMut;

/// One huge page: mappings are sized in multiples of it, which also lets the
/// kernel place them on a 2 MiB boundary.
const HUGE_PAGE: usize = 2 * 1024 * 1024;

/// Buffers smaller than one huge page stay on the heap: rounding them up
/// would waste more than it saves (a few hundred 4 KiB pages fit the TLB).
const MAP_AT_LEAST: usize = HUGE_PAGE;

/// The words, mapped or on the heap.
pub(crate) struct Words {
    storage: Storage,
}

enum Storage {
    /// The first `len` words of the mapping hold the buffer.
    Mapped {
        map: MmapMut,
        len: usize,
    },
    Heap(Vec<u32>),
}

impl Words {
    /// Holds `words`, on huge pages when they are at least one huge page and
    /// the system allows it.
    pub(crate) fn new(words: Vec<u32>) -> Self {
        let bytes = std::mem::size_of_val(words.as_slice());
        let storage = if bytes >= MAP_AT_LEAST {
            map_huge(&words).map_or(Storage::Heap(words), |map| Storage::Mapped {
                map,
                len: bytes / std::mem::size_of::<u32>(),
            })
        } else {
            Storage::Heap(words)
        };
        Self { storage }
    }

    /// The words.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u32] {
        match &self.storage {
            // `map_huge` viewed these same bytes as words before returning
            // the mapping (page-aligned, a multiple of four bytes), so
            // neither the slice nor the cast can fail. Were they to, this
            // panics rather than answer from an empty table, which would
            // let every listed address through.
            Storage::Mapped { map, len } => {
                bytemuck::cast_slice(&map[..len * std::mem::size_of::<u32>()])
            }
            Storage::Heap(words) => words,
        }
    }

    /// Bytes held: the whole mapping (rounded up to huge pages) or the heap
    /// allocation.
    pub(crate) fn memory_bytes(&self) -> usize {
        match &self.storage {
            Storage::Mapped { map, .. } => map.len(),
            Storage::Heap(words) => words.capacity() * std::mem::size_of::<u32>(),
        }
    }

    /// Whether the words live in a mapping advised to use huge pages.
    #[cfg(test)]
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped { .. })
    }

    /// The mapping's first address, for finding it in `/proc/self/smaps`.
    #[cfg(test)]
    pub(crate) fn mapping_address(&self) -> Option<usize> {
        match &self.storage {
            Storage::Mapped { map, .. } => Some(map.as_ptr() as usize),
            Storage::Heap(_) => None,
        }
    }
}

/// An anonymous mapping advised to use huge pages, holding `words`; `None`
/// where the platform or kernel does not allow it.
#[cfg(target_os = "linux")]
fn map_huge(words: &[u32]) -> Option<MmapMut> {
    let bytes = std::mem::size_of_val(words);
    let mut map = MmapMut::map_anon(bytes.checked_next_multiple_of(HUGE_PAGE)?).ok()?;
    // Before the first write: pages are allocated when first touched, and
    // only then can they be huge ones.
    map.advise(memmap2::Advice::HugePage).ok()?;
    let view: &mut [u32] = bytemuck::try_cast_slice_mut(map.get_mut(..bytes)?).ok()?;
    view.copy_from_slice(words);
    Some(map)
}

#[cfg(not(target_os = "linux"))]
fn map_huge(_words: &[u32]) -> Option<MmapMut> {
    None
}

impl Clone for Words {
    fn clone(&self) -> Self {
        Self::new(self.as_slice().to_vec())
    }
}

impl std::fmt::Debug for Words {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Words")
            .field("len", &self.as_slice().len())
            .field("mapped", &matches!(self.storage, Storage::Mapped { .. }))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_buffers_stay_on_the_heap_and_large_ones_keep_their_words() {
        let small = Words::new(vec![1, 2, 3]);
        assert!(!small.is_mapped());
        assert_eq!(small.as_slice(), &[1, 2, 3]);
        assert_eq!(small.memory_bytes(), 12);

        let words: Vec<u32> = (0..1_000_003u32)
            .map(|i| i.wrapping_mul(2_654_435_761))
            .collect();
        let large = Words::new(words.clone());
        assert_eq!(large.as_slice(), words.as_slice());
        let copy = large.clone();
        assert_eq!(copy.as_slice(), words.as_slice());
        if large.is_mapped() {
            assert_eq!(large.memory_bytes(), 2 * HUGE_PAGE);
        }
        #[cfg(target_os = "linux")]
        assert!(large.is_mapped(), "anonymous mappings work on Linux");
    }
}
