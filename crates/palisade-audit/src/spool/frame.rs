//! Record framing: `u32 LE payload length ‖ u32 LE CRC-32 ‖ payload`.
//!
//! The checksum is CRC-32/ISO-HDLC (the zlib / IEEE 802.3 polynomial, what
//! `crc32fast` computes), *not* CRC-32C. It covers the length bytes as well
//! as the payload, so a damaged length is caught by the checksum instead of
//! silently shifting every later frame boundary, and a zero-filled region
//! (what some file systems leave after a crash) never parses as a valid
//! empty record: the CRC-32 of four zero bytes is not zero.

use std::io::{self, Read};

use super::SpoolError;

/// Size of the frame header: payload length and checksum.
pub(super) const HEADER_LEN: u64 = 8;

/// Largest payload a record may have.
///
/// The reader refuses any larger length before allocating, so a corrupted
/// length field costs at most this much memory. It is a constant rather than
/// a configuration knob so that no configuration change can make records
/// already on disk unreadable.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// Appends the frame of `payload` to `out`.
pub(super) fn encode(out: &mut Vec<u8>, payload: &[u8]) -> Result<(), SpoolError> {
    let too_large = SpoolError::RecordTooLarge {
        size: payload.len(),
        limit: MAX_RECORD_BYTES,
    };
    if payload.len() > MAX_RECORD_BYTES {
        return Err(too_large);
    }
    let len = u32::try_from(payload.len()).map_err(|_| too_large)?;
    let len_bytes = len.to_le_bytes();
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&checksum(len_bytes, payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Size on disk of the frame of a payload of `payload_len` bytes.
pub(super) fn frame_len(payload_len: u32) -> u64 {
    HEADER_LEN + u64::from(payload_len)
}

/// CRC-32/ISO-HDLC of the length bytes followed by the payload.
fn checksum(len_bytes: [u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_bytes);
    hasher.update(payload);
    hasher.finalize()
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    /// Payload length as stored (not yet checked against the maximum).
    pub(super) len: u32,
    /// Stored checksum.
    pub(super) crc: u32,
}

impl Header {
    pub(super) fn parse(bytes: [u8; 8]) -> Self {
        let [l0, l1, l2, l3, c0, c1, c2, c3] = bytes;
        Self {
            len: u32::from_le_bytes([l0, l1, l2, l3]),
            crc: u32::from_le_bytes([c0, c1, c2, c3]),
        }
    }

    /// Whether a frame with this header fits in `remaining` bytes and has an
    /// acceptable length; what a reader that only skips frames can check.
    pub(super) fn is_plausible(self, remaining: u64) -> bool {
        self.len as usize <= MAX_RECORD_BYTES && frame_len(self.len) <= remaining
    }

    /// Whether `payload` (of this header's length) matches the checksum.
    pub(super) fn matches(self, payload: &[u8]) -> bool {
        checksum(self.len.to_le_bytes(), payload) == self.crc
    }
}

/// Reads one header; the caller has checked that `HEADER_LEN` bytes remain.
pub(super) fn read_header(reader: &mut impl Read) -> io::Result<Header> {
    let mut bytes = [0u8; 8];
    reader.read_exact(&mut bytes)?;
    Ok(Header::parse(bytes))
}

/// What [`read`] found at the reader's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FrameRead {
    /// A complete frame with a matching checksum; its payload is in the buffer.
    Valid { frame_len: u64 },
    /// The header, or the frame it announces, extends past the end of the
    /// data: what an interrupted append leaves at the end of a file.
    Truncated,
    /// A complete frame whose checksum does not match.
    BadChecksum,
    /// A length above [`MAX_RECORD_BYTES`] that still fits in the data.
    BadLength,
}

/// Reads the frame at the reader's position into `payload`, given that
/// `remaining` bytes of data are left from that position.
///
/// Never allocates more than [`MAX_RECORD_BYTES`], and never more than what
/// is actually left, whatever the stored length says.
pub(super) fn read(
    reader: &mut impl Read,
    remaining: u64,
    payload: &mut Vec<u8>,
) -> io::Result<FrameRead> {
    if remaining < HEADER_LEN {
        return Ok(FrameRead::Truncated);
    }
    let header = read_header(reader)?;
    let frame_len = frame_len(header.len);
    if frame_len > remaining {
        return Ok(FrameRead::Truncated);
    }
    if header.len as usize > MAX_RECORD_BYTES {
        return Ok(FrameRead::BadLength);
    }
    payload.clear();
    payload.resize(header.len as usize, 0);
    reader.read_exact(payload)?;
    if !header.matches(payload) {
        return Ok(FrameRead::BadChecksum);
    }
    Ok(FrameRead::Valid { frame_len })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, payload).expect("payload is small");
        out
    }

    fn read_all(bytes: &[u8]) -> (FrameRead, Vec<u8>) {
        let mut payload = Vec::new();
        let mut reader = bytes;
        let result = read(&mut reader, bytes.len() as u64, &mut payload).expect("in-memory read");
        (result, payload)
    }

    #[test]
    fn encoded_frame_reads_back() {
        let bytes = encoded(b"hello");
        assert_eq!(bytes.len(), 13);
        assert_eq!(&bytes[..4], &5u32.to_le_bytes());
        let (result, payload) = read_all(&bytes);
        assert_eq!(result, FrameRead::Valid { frame_len: 13 });
        assert_eq!(payload, b"hello");
    }

    #[test]
    fn empty_payload_is_a_valid_record() {
        let bytes = encoded(b"");
        assert_eq!(read_all(&bytes).0, FrameRead::Valid { frame_len: 8 });
    }

    #[test]
    fn checksum_is_crc32_iso_hdlc_over_length_and_payload() {
        // CRC-32/ISO-HDLC check value: crc("123456789") = 0xCBF43926.
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(b"123456789");
        assert_eq!(hasher.finalize(), 0xCBF4_3926);
        let bytes = encoded(b"123456789");
        let mut covered = 9u32.to_le_bytes().to_vec();
        covered.extend_from_slice(b"123456789");
        assert_eq!(&bytes[4..8], &crc32fast::hash(&covered).to_le_bytes());
    }

    #[test]
    fn zero_filled_bytes_are_not_a_valid_record() {
        let (result, _) = read_all(&[0u8; 8]);
        assert_eq!(result, FrameRead::BadChecksum);
    }

    #[test]
    fn damaged_length_is_caught_by_the_checksum() {
        let mut bytes = encoded(b"abcdef");
        bytes.push(0); // room for the longer length to still fit
        bytes[0] = 7;
        assert_eq!(read_all(&bytes).0, FrameRead::BadChecksum);
    }

    #[test]
    fn flipped_payload_bit_is_a_bad_checksum() {
        let mut bytes = encoded(b"abcdef");
        bytes[10] ^= 0x10;
        assert_eq!(read_all(&bytes).0, FrameRead::BadChecksum);
    }

    #[test]
    fn frame_longer_than_remaining_data_is_truncated() {
        let bytes = encoded(b"abcdef");
        for cut in 0..bytes.len() {
            assert_eq!(
                read_all(&bytes[..cut]).0,
                FrameRead::Truncated,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn oversized_length_that_fits_is_bad_length_without_allocating_it() {
        let mut bytes = vec![0u8; MAX_RECORD_BYTES + 9];
        let len = u32::try_from(MAX_RECORD_BYTES + 1).expect("fits");
        bytes[..4].copy_from_slice(&len.to_le_bytes());
        let (result, payload) = read_all(&bytes);
        assert_eq!(result, FrameRead::BadLength);
        assert!(payload.capacity() < MAX_RECORD_BYTES);
    }

    #[test]
    fn huge_length_past_the_end_is_truncated() {
        let mut bytes = encoded(b"x");
        bytes[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read_all(&bytes).0, FrameRead::Truncated);
    }

    #[test]
    fn encode_rejects_oversized_payload() {
        let payload = vec![0u8; MAX_RECORD_BYTES + 1];
        let mut out = Vec::new();
        assert!(matches!(
            encode(&mut out, &payload),
            Err(SpoolError::RecordTooLarge { size, limit })
                if size == MAX_RECORD_BYTES + 1 && limit == MAX_RECORD_BYTES
        ));
        assert!(out.is_empty());
    }
}
