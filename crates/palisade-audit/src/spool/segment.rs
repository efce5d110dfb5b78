//! Segment files: naming, listing, and validation with torn-tail recovery.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::frame::{self, FrameRead};
use super::{SEQ_LIMIT, SpoolError, io_error};

const PREFIX: &str = "seg-";
const SUFFIX: &str = ".log";
const DIGITS: usize = 20;

/// Read buffer for sequential scans; large enough that a scan is a few big
/// reads per megabyte rather than one per record.
const SCAN_BUFFER_BYTES: usize = 1 << 20;

/// One segment file and what is known to be in it.
#[derive(Debug)]
pub(super) struct Segment {
    /// Sequence number of the first record, also encoded in the file name.
    pub(super) first_seq: u64,
    /// Number of valid records.
    pub(super) records: u64,
    /// Length in bytes of the valid records; the file is never longer once
    /// the spool has opened it.
    pub(super) len: u64,
    pub(super) path: PathBuf,
}

impl Segment {
    /// Sequence number one past the last record.
    pub(super) fn end_seq(&self) -> u64 {
        self.first_seq + self.records
    }
}

/// File name of the segment whose first record has sequence `first_seq`.
///
/// Zero-padded to the full width of a `u64` so that lexical and numeric
/// order agree for operators listing the directory.
pub(super) fn file_name(first_seq: u64) -> String {
    format!("{PREFIX}{first_seq:0DIGITS$}{SUFFIX}")
}

/// The first sequence number encoded in a canonical segment file name.
fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment files in `dir`, ordered by first sequence number.
///
/// Files that merely look like segments are warned about and left alone
/// rather than guessed at; other files are ignored.
pub(super) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SpoolError> {
    let mut found = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !name.starts_with(PREFIX) || !name.ends_with(SUFFIX) {
            continue;
        }
        let is_file = entry.file_type().map_err(|e| io_error(&path, e))?.is_file();
        match parse_file_name(&name) {
            Some(first_seq) if is_file => {
                if first_seq > SEQ_LIMIT {
                    // Only a foreign or damaged file can get here; accepting
                    // it would risk sequence-number overflow.
                    return Err(SpoolError::Corrupt { path, offset: 0 });
                }
                found.push((first_seq, path));
            }
            _ => tracing::warn!(
                path = %path.display(),
                "ignoring file with a non-canonical spool segment name"
            ),
        }
    }
    found.sort_unstable_by_key(|(first_seq, _)| *first_seq);
    Ok(found)
}

/// Creates a new, empty segment file. Fails if it already exists, so an
/// existing segment can never be clobbered.
pub(super) fn create(dir: &Path, first_seq: u64) -> Result<(Segment, File), SpoolError> {
    let path = dir.join(file_name(first_seq));
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    let segment = Segment {
        first_seq,
        records: 0,
        len: 0,
        path,
    };
    Ok((segment, file))
}

/// Opens an existing segment for appending after its last valid record.
pub(super) fn open_for_append(segment: &Segment) -> Result<File, SpoolError> {
    OpenOptions::new()
        .append(true)
        .open(&segment.path)
        .map_err(|e| io_error(&segment.path, e))
}

/// Result of [`scan`].
#[derive(Debug)]
pub(super) struct Scanned {
    pub(super) segment: Segment,
    /// Byte offset of the record with sequence `find_seq`, if it is in
    /// this segment.
    pub(super) found_offset: Option<u64>,
}

/// Validates every record of a segment, counting them.
///
/// When `tail_may_be_torn` (the newest segment, the only one an interrupted
/// append can have touched), damage is truncated away with a warning if it
/// is a torn tail: no valid frame starts anywhere after the first damaged
/// byte. That covers a frame cut short by the end of the file, a last frame
/// whose checksum fails, and a zero-filled or garbage tail (what some file
/// systems leave for blocks whose data never reached the disk). None of these
/// can hide a record whose append had returned, because that append's
/// `sync_data` completed first.
///
/// Anything else is [`SpoolError::Corrupt`], including a damaged length field
/// that makes an earlier record seem to run past the end of the file: the
/// valid frames after it may be acknowledged records, and dropping them would
/// lose events.
pub(super) fn scan(
    path: PathBuf,
    first_seq: u64,
    tail_may_be_torn: bool,
    find_seq: u64,
) -> Result<Scanned, SpoolError> {
    let file = File::open(&path).map_err(|e| io_error(&path, e))?;
    let file_len = file.metadata().map_err(|e| io_error(&path, e))?.len();
    let mut reader = BufReader::with_capacity(SCAN_BUFFER_BYTES, file);
    let mut payload = Vec::new();
    let mut offset = 0u64;
    let mut records = 0u64;
    let mut found_offset = None;
    while offset < file_len {
        let read = frame::read(&mut reader, file_len - offset, &mut payload)
            .map_err(|e| io_error(&path, e))?;
        if let FrameRead::Valid { frame_len } = read {
            if first_seq + records == find_seq {
                found_offset = Some(offset);
            }
            records += 1;
            offset += frame_len;
            continue;
        }
        if tail_may_be_torn && !valid_frame_after(&path, offset, file_len)? {
            truncate_torn_tail(&path, offset, file_len)?;
            break;
        }
        return Err(SpoolError::Corrupt { path, offset });
    }
    Ok(Scanned {
        segment: Segment {
            first_seq,
            records,
            len: offset,
            path,
        },
        found_offset,
    })
}

/// Whether a valid frame may start anywhere after `damaged`, which decides
/// between a torn tail and corruption in the middle of the data.
///
/// Every byte offset is tried, since the damage may have destroyed the
/// information about where the next frame starts. This is cheap in practice:
/// a candidate needs a length of at most [`frame::MAX_RECORD_BYTES`] that
/// fits before the end of the file, which JSON text (no raw bytes below
/// 0x20) never provides, so only offsets near real frame headers are
/// checksummed. Binary payloads could provide many candidates, so the
/// checksumming work is capped; past the cap the answer is "may", the side
/// that refuses to drop data.
fn valid_frame_after(path: &Path, damaged: u64, file_len: u64) -> Result<bool, SpoolError> {
    const CHUNK: u64 = 1 << 20;
    const CHECKSUM_BUDGET_BYTES: u64 = 1 << 30;
    let header_len = frame::HEADER_LEN;
    let mut budget = CHECKSUM_BUDGET_BYTES;
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut chunk = Vec::new();
    let mut payload = Vec::new();
    let mut chunk_start = damaged + 1;
    while chunk_start + header_len <= file_len {
        // Overlap by one header so a header spanning two chunks is seen.
        let chunk_len = (CHUNK + header_len - 1).min(file_len - chunk_start);
        read_exact_at(&mut file, path, chunk_start, chunk_len, &mut chunk)?;
        // Candidates at and past `CHUNK` are the next chunk's.
        for (i, window) in chunk.windows(8).enumerate().take(CHUNK as usize) {
            let Ok(bytes) = <[u8; 8]>::try_from(window) else {
                continue;
            };
            let header = frame::Header::parse(bytes);
            let candidate = chunk_start + i as u64;
            if !header.is_plausible(file_len - candidate) {
                continue;
            }
            let Some(left) = budget.checked_sub(u64::from(header.len)) else {
                return Ok(true);
            };
            budget = left;
            let payload_start = i + header_len as usize;
            let payload_end = payload_start + header.len as usize;
            let candidate_payload = match chunk.get(payload_start..payload_end) {
                Some(in_chunk) => in_chunk,
                None => {
                    let at = candidate + header_len;
                    read_exact_at(&mut file, path, at, u64::from(header.len), &mut payload)?;
                    &payload
                }
            };
            if header.matches(candidate_payload) {
                return Ok(true);
            }
        }
        chunk_start += CHUNK;
    }
    Ok(false)
}

/// Reads `len` bytes at `offset` into `buf`, replacing its content.
fn read_exact_at(
    file: &mut File,
    path: &Path,
    offset: u64,
    len: u64,
    buf: &mut Vec<u8>,
) -> Result<(), SpoolError> {
    let len = usize::try_from(len).map_err(|_| SpoolError::Corrupt {
        path: path.to_owned(),
        offset,
    })?;
    buf.clear();
    buf.resize(len, 0);
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(buf))
        .map_err(|e| io_error(path, e))
}

fn truncate_torn_tail(path: &Path, offset: u64, file_len: u64) -> Result<(), SpoolError> {
    tracing::warn!(
        path = %path.display(),
        offset,
        discarded_bytes = file_len - offset,
        "truncating torn tail of spool segment (left by an interrupted append; \
         no acknowledged record is affected)"
    );
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    // Synced so that a later scan cannot see the damaged bytes reappear
    // behind records appended after this point.
    file.set_len(offset)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, e))
}

/// Byte offset of the record with sequence `target` in `segment`, walking
/// frame headers forward from a known `(seq, offset)` starting point.
///
/// Payloads are skipped, not read or checked: the caller reads and checks
/// the records it returns.
pub(super) fn offset_of(
    segment: &Segment,
    start: (u64, u64),
    target: u64,
) -> Result<u64, SpoolError> {
    let (mut seq, mut offset) = start;
    if seq == target {
        return Ok(offset);
    }
    let path = &segment.path;
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut reader = BufReader::new(file);
    reader
        .seek(SeekFrom::Start(offset))
        .map_err(|e| io_error(path, e))?;
    while seq < target {
        let remaining = segment.len.saturating_sub(offset);
        if remaining < frame::HEADER_LEN {
            return Err(SpoolError::Corrupt {
                path: path.clone(),
                offset,
            });
        }
        let header = frame::read_header(&mut reader).map_err(|e| io_error(path, e))?;
        if !header.is_plausible(remaining) {
            return Err(SpoolError::Corrupt {
                path: path.clone(),
                offset,
            });
        }
        reader
            .seek_relative(i64::from(header.len))
            .map_err(|e| io_error(path, e))?;
        offset += frame::frame_len(header.len);
        seq += 1;
    }
    Ok(offset)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn write_segment(dir: &Path, first_seq: u64, payloads: &[&[u8]], tail: &[u8]) -> PathBuf {
        let mut bytes = Vec::new();
        for payload in payloads {
            frame::encode(&mut bytes, payload).expect("small payload");
        }
        bytes.extend_from_slice(tail);
        let path = dir.join(file_name(first_seq));
        let mut file = File::create(&path).expect("create");
        file.write_all(&bytes).expect("write");
        path
    }

    #[test]
    fn file_names_are_canonical_and_round_trip() {
        assert_eq!(file_name(42), "seg-00000000000000000042.log");
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        for bad in [
            "seg-42.log",
            "seg-0000000000000000004x.log",
            "seg-00000000000000000042.tmp",
            "seg-+0000000000000000042.log",
            "seg-99999999999999999999.log",
            "ack",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn list_orders_segments_and_skips_other_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        for first in [30u64, 4, 100] {
            File::create(dir.path().join(file_name(first))).expect("create");
        }
        File::create(dir.path().join("seg-7.log")).expect("create");
        File::create(dir.path().join("notes.txt")).expect("create");
        let firsts: Vec<u64> = list(dir.path())
            .expect("list")
            .into_iter()
            .map(|(first, _)| first)
            .collect();
        assert_eq!(firsts, [4, 30, 100]);
    }

    #[test]
    fn scan_counts_records_and_finds_the_requested_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_segment(dir.path(), 10, &[b"a", b"bb", b"ccc"], b"");
        let scanned = scan(path, 10, false, 12).expect("scan");
        assert_eq!(scanned.segment.records, 3);
        assert_eq!(scanned.segment.end_seq(), 13);
        assert_eq!(scanned.segment.len, 9 + 10 + 11);
        assert_eq!(scanned.found_offset, Some(19));
    }

    #[test]
    fn zero_filled_tail_is_truncated_only_when_tail_may_be_torn() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_segment(dir.path(), 0, &[b"a", b"bb"], &[0u8; 100]);
        assert!(matches!(
            scan(path.clone(), 0, false, 0),
            Err(SpoolError::Corrupt { offset: 19, .. })
        ));
        let scanned = scan(path.clone(), 0, true, 0).expect("scan");
        assert_eq!(scanned.segment.records, 2);
        assert_eq!(fs::metadata(&path).expect("stat").len(), 19);
    }

    #[test]
    fn bad_record_followed_by_data_is_corrupt_even_at_the_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_segment(dir.path(), 0, &[b"a", b"bb"], b"");
        let mut bytes = fs::read(&path).expect("read");
        bytes[8] ^= 1;
        fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            scan(path, 0, true, 0),
            Err(SpoolError::Corrupt { offset: 0, .. })
        ));
    }

    #[test]
    fn oversized_length_followed_by_a_valid_frame_is_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let len = u32::try_from(frame::MAX_RECORD_BYTES + 1).expect("fits");
        let mut tail = len.to_le_bytes().to_vec();
        tail.resize(frame::MAX_RECORD_BYTES + 9, 1);
        frame::encode(&mut tail, b"acknowledged").expect("small");
        let path = write_segment(dir.path(), 0, &[b"a"], &tail);
        assert!(matches!(
            scan(path, 0, true, 0),
            Err(SpoolError::Corrupt { offset: 9, .. })
        ));
    }

    #[test]
    fn garbage_tail_without_any_valid_frame_is_torn() {
        let dir = tempfile::tempdir().expect("tempdir");
        let garbage: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
        let path = write_segment(dir.path(), 0, &[b"a", b"bb"], &garbage);
        let scanned = scan(path.clone(), 0, true, 0).expect("scan");
        assert_eq!(scanned.segment.records, 2);
        assert_eq!(fs::metadata(&path).expect("stat").len(), 19);
    }

    #[test]
    fn damaged_length_running_past_the_end_is_corrupt_when_records_follow() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_segment(dir.path(), 0, &[b"first", b"second", b"third"], b"");
        let mut bytes = fs::read(&path).expect("read");
        bytes[2] ^= 0x40; // length now far beyond the end of the file
        fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            scan(path.clone(), 0, true, 0),
            Err(SpoolError::Corrupt { offset: 0, .. })
        ));
        assert_eq!(fs::metadata(&path).expect("stat").len(), bytes.len() as u64);
    }

    #[test]
    fn valid_frame_is_found_around_chunk_boundaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(file_name(0));
        // Damage at 0; chunks start at offset 1 and are 1 MiB apart, so these
        // put the header before, on, across and after the first boundary.
        for frame_at in [
            (1 << 20) - 2,
            1 << 20,
            (1 << 20) + 1,
            (1 << 20) + 3,
            2 << 20,
        ] {
            let mut bytes = vec![0xffu8; frame_at];
            frame::encode(&mut bytes, b"payload").expect("small");
            let file_len = bytes.len() as u64;
            fs::write(&path, &bytes).expect("write");
            assert!(
                valid_frame_after(&path, 0, file_len).expect("search"),
                "frame at {frame_at}"
            );
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            fs::write(&path, &bytes).expect("write");
            assert!(
                !valid_frame_after(&path, 0, file_len).expect("search"),
                "damaged frame at {frame_at}"
            );
        }
    }

    #[test]
    fn offset_of_walks_headers_from_any_known_point() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_segment(dir.path(), 5, &[b"a", b"bb", b"ccc", b"dddd"], b"");
        let segment = scan(path, 5, false, 5).expect("scan").segment;
        assert_eq!(offset_of(&segment, (5, 0), 5).expect("offset"), 0);
        assert_eq!(offset_of(&segment, (5, 0), 8).expect("offset"), 9 + 10 + 11);
        assert_eq!(offset_of(&segment, (6, 9), 8).expect("offset"), 9 + 10 + 11);
        assert_eq!(offset_of(&segment, (5, 0), 9).expect("offset"), segment.len);
    }

    #[test]
    fn offset_of_reports_a_length_that_runs_past_the_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_segment(dir.path(), 0, &[b"a", b"bb"], b"");
        let segment = scan(path.clone(), 0, false, 0).expect("scan").segment;
        let mut bytes = fs::read(&path).expect("read");
        bytes[0] = 200;
        fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            offset_of(&segment, (0, 0), 2),
            Err(SpoolError::Corrupt { offset: 0, .. })
        ));
    }
}
