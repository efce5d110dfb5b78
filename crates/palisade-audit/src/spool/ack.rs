//! The acknowledgement file: the first sequence number not yet acknowledged.
//!
//! Segments are only deleted once *all* their records are acknowledged, so
//! without this file a restart would re-deliver everything acknowledged in
//! the oldest remaining segment. It is replaced atomically (write a temporary
//! file, fsync it, rename it over the old one, fsync the directory), so a
//! crash leaves either the old or the new value, never a torn one.
//!
//! Layout (20 bytes): `"PLSPACK1" ‖ u64 LE next unacknowledged sequence ‖
//! u32 LE CRC-32/ISO-HDLC of the preceding 16 bytes`. The checksum is there
//! because a value that is too large would make records look acknowledged
//! (skipped) and one that is too small would re-deliver them; both must be
//! reported, not believed.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::{SEQ_LIMIT, SpoolError, io_error, sync_dir};

/// Name of the acknowledgement file inside the spool directory.
pub(super) const FILE_NAME: &str = "ack";

/// Name of the temporary file the next value is written to before the rename.
const TEMP_NAME: &str = "ack.tmp";

/// Identifies the file and its format version.
const MAGIC: [u8; 8] = *b"PLSPACK1";

/// Total file length.
const LEN: usize = 20;

fn encode(next_unacknowledged: u64) -> [u8; LEN] {
    let mut bytes = [0u8; LEN];
    bytes[..8].copy_from_slice(&MAGIC);
    bytes[8..16].copy_from_slice(&next_unacknowledged.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..16]);
    bytes[16..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Option<u64> {
    let bytes: &[u8; LEN] = bytes.try_into().ok()?;
    let (body, crc) = bytes.split_at(16);
    if body[..8] != MAGIC || crc32fast::hash(body).to_le_bytes() != crc {
        return None;
    }
    let value = u64::from_le_bytes(body[8..16].try_into().ok()?);
    (value <= SEQ_LIMIT).then_some(value)
}

/// Reads the stored value; `0` (nothing acknowledged) when there is no file.
pub(super) fn load(dir: &Path) -> Result<u64, SpoolError> {
    let path = dir.join(FILE_NAME);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error(&path, e)),
    };
    decode(&bytes).ok_or(SpoolError::Corrupt { path, offset: 0 })
}

/// Durably replaces the stored value. When this returns `Ok`, the value
/// survives a crash; when it fails, either the old or the new value does.
pub(super) fn store(dir: &Path, next_unacknowledged: u64) -> Result<(), SpoolError> {
    let temp = dir.join(TEMP_NAME);
    let mut file = File::create(&temp).map_err(|e| io_error(&temp, e))?;
    file.write_all(&encode(next_unacknowledged))
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(&temp, e))?;
    drop(file);
    let path = dir.join(FILE_NAME);
    fs::rename(&temp, &path).map_err(|e| io_error(&path, e))?;
    sync_dir(dir)
}

/// Removes a temporary file left by a crash during [`store`]; its content
/// was never the acknowledged value, so it is garbage.
pub(super) fn remove_stale_temp(dir: &Path) -> Result<(), SpoolError> {
    let temp = dir.join(TEMP_NAME);
    match fs::remove_file(&temp) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(&temp, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trips_through_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load(dir.path()).expect("load"), 0);
        store(dir.path(), 42).expect("store");
        store(dir.path(), 4242).expect("store");
        assert_eq!(load(dir.path()).expect("load"), 4242);
        assert!(!dir.path().join(TEMP_NAME).exists());
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let good = encode(7);
        assert_eq!(decode(&good), Some(7));
        for byte in 0..LEN {
            for bit in 0..8 {
                let mut bad = good;
                bad[byte] ^= 1 << bit;
                assert_eq!(decode(&bad), None, "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn wrong_length_and_out_of_range_values_are_rejected() {
        assert_eq!(decode(&encode(7)[..19]), None);
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&encode(SEQ_LIMIT + 1)), None);
    }

    #[test]
    fn corrupt_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(FILE_NAME), b"garbage").expect("write");
        match load(dir.path()) {
            Err(SpoolError::Corrupt { path, offset: 0 }) => {
                assert_eq!(path, dir.path().join(FILE_NAME));
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn stale_temp_file_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(TEMP_NAME), b"half").expect("write");
        remove_stale_temp(dir.path()).expect("remove");
        assert!(!dir.path().join(TEMP_NAME).exists());
        remove_stale_temp(dir.path()).expect("absent is fine");
    }
}
