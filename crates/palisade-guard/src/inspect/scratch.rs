//! Per-thread scratch buffers for the lower-cased copies the detectors scan
//! (XSS, traversal, command injection): one allocation per thread instead
//! of one per value and detector.

use std::cell::RefCell;

/// A buffer that grew past this is dropped after use, so one huge value
/// (a whole body) leaves no huge buffer behind.
const KEEP_BYTES: usize = 4096;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Calls `f` with `bytes` mapped byte by byte through `map` (a lower-casing),
/// in a reused buffer. Should a call be nested (it is not today), the inner
/// one gets a buffer of its own: never a panic.
pub(crate) fn with_mapped<R>(
    bytes: &[u8],
    map: impl Fn(u8) -> u8,
    f: impl FnOnce(&[u8]) -> R,
) -> R {
    BUFFER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            // A plain copy, then the map in place: both loops vectorize,
            // where mapping while extending went byte by byte.
            buf.extend_from_slice(bytes);
            for b in buf.iter_mut() {
                *b = map(*b);
            }
            let out = f(&buf);
            if buf.capacity() > KEEP_BYTES {
                *buf = Vec::new();
            }
            out
        }
        Err(_) => {
            let buf: Vec<u8> = bytes.iter().map(|&b| map(b)).collect();
            f(&buf)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_mapped_copy_agrees_with_mapping_each_byte(
            bytes in proptest::collection::vec(any::<u8>(), 0..300)
        ) {
            let lower = |b: u8| b.to_ascii_lowercase();
            let slash = |b: u8| if b == b'\\' { b'/' } else { b.to_ascii_lowercase() };
            prop_assert_eq!(
                with_mapped(&bytes, lower, <[u8]>::to_vec),
                bytes.iter().map(|&b| lower(b)).collect::<Vec<u8>>()
            );
            prop_assert_eq!(
                with_mapped(&bytes, slash, <[u8]>::to_vec),
                bytes.iter().map(|&b| slash(b)).collect::<Vec<u8>>()
            );
        }
    }

    #[test]
    fn maps_and_survives_nesting() {
        let outer = with_mapped(
            b"AbC",
            |b| b.to_ascii_lowercase(),
            |s| {
                let inner = with_mapped(b"XY", |b| b.to_ascii_lowercase(), <[u8]>::to_vec);
                (s.to_vec(), inner)
            },
        );
        assert_eq!(outer, (b"abc".to_vec(), b"xy".to_vec()));
        let big = vec![b'A'; KEEP_BYTES * 2];
        assert_eq!(
            with_mapped(&big, |b| b.to_ascii_lowercase(), <[u8]>::len),
            big.len()
        );
        assert_eq!(
            with_mapped(b"Q", |b| b.to_ascii_lowercase(), <[u8]>::to_vec),
            b"q"
        );
    }
}
