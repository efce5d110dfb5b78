//! Local durable spool for audit events while the database is unreachable.
//!
//! "Nothing accepted is lost" (DESIGN.md §3): when the database is down the
//! audit API may only answer 2xx once an event is on local disk, and the
//! events are replayed into the database when it returns. This module is
//! that local disk: an append-only log of opaque byte records, each with a
//! monotonically increasing `u64` sequence number.
//!
//! # Layout
//!
//! A directory owned by exactly one [`Spool`] (one process; there is no lock
//! file, so the caller must not open the same directory twice) holding:
//!
//! - `seg-<first sequence number, 20 digits>.log`: segment files, each a
//!   concatenation of frames `u32 LE payload length ‖ u32 LE CRC-32 ‖
//!   payload`. The checksum is CRC-32/ISO-HDLC (zlib/IEEE polynomial, not
//!   CRC-32C) over the length bytes and the payload. Sequence numbers are
//!   contiguous: a record's number is its segment's first number plus its
//!   index in the segment, so they are never stored per record.
//! - `ack`: the first sequence number not yet acknowledged, replaced
//!   atomically (temp file, fsync, rename, fsync directory).
//!
//! # Durability
//!
//! [`Spool::append`] writes the whole batch with one `write_all`, then
//! `sync_data`, before returning `Ok`; a new segment's directory entry is
//! fsync'd before any record in it is acknowledged to a caller. A batch is
//! never split across segments, so a segment may exceed
//! [`SpoolConfig::segment_bytes`] by up to one batch.
//!
//! # Crash recovery
//!
//! [`Spool::open`] validates every record of every segment it keeps. Damage
//! in the newest segment after which no valid frame starts anywhere (a frame
//! cut short by the end of the file, a final frame failing its checksum, a
//! zero-filled or garbage tail) is what an interrupted append leaves, and
//! that append never returned `Ok`; it is truncated with a warning. Any
//! other damage is [`SpoolError::Corrupt`] and the spool refuses to open:
//! skipping it could silently lose acknowledged events, so an operator must
//! decide. This includes a damaged length field that makes an earlier record
//! seem to run past the end of the file, and also the rare crash where a
//! file system persisted a later block of the final append but not an
//! earlier one; refusing is the safe side of that ambiguity.
//!
//! After a crash, records may be delivered again by
//! [`Spool::read_pending`] (the replayer's inserts are idempotent by event
//! id), but no record whose `append` returned `Ok` and that was not
//! acknowledged is ever lost or skipped. Re-delivery happens only for records
//! read but not yet acknowledged, or acknowledged by a call to
//! [`Spool::acknowledge_through`] that did not return `Ok`. Records of an
//! `append` that returned an error may or may not be present afterwards;
//! the caller answered its client with an error, so the client retries and
//! the event id de-duplicates.
//!
//! # Concurrency and cost
//!
//! The API is synchronous and thread-safe behind one mutex (async callers use
//! `tokio::task::spawn_blocking`). Appends are serialized including their
//! fsync, so throughput is one batch per fsync: callers that need more
//! should batch. `read_pending` also holds the mutex while it reads.
//!
//! Targets Unix: durability relies on fsync of directories.

mod ack;
mod frame;
mod segment;

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use frame::FrameRead;
pub use frame::MAX_RECORD_BYTES;
use segment::Segment;

/// Sequence numbers and segment names above this are treated as damage, so
/// that arithmetic on sequence numbers can never overflow. At a million
/// records a second it takes about 290,000 years to get here.
const SEQ_LIMIT: u64 = 1 << 63;

/// Size limits of a [`Spool`].
///
/// Any values are accepted; degenerate ones just behave degenerately (a
/// `max_bytes` smaller than one frame rejects every batch, a `segment_bytes`
/// of 0 gives every batch its own segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Limit on the total size of all segment files. An append that would go
    /// past it is rejected with [`SpoolError::Full`], so a long database
    /// outage fills this budget instead of the disk. Space is reclaimed a
    /// whole segment at a time, once all its records are acknowledged.
    pub max_bytes: u64,
    /// A new segment is started when the current one has reached this size.
    /// Smaller segments free space sooner after acknowledgement; larger ones
    /// mean fewer files and directory fsyncs.
    pub segment_bytes: u64,
}

impl SpoolConfig {
    /// Default for [`SpoolConfig::max_bytes`]: 1 GiB.
    pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
    /// Default for [`SpoolConfig::segment_bytes`]: 64 MiB.
    pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// Errors from the spool, by what the caller can do about them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// A file-system operation failed. For `append` the batch was not
    /// accepted; for `acknowledge_through` the acknowledgement may not be
    /// durable and should be retried.
    #[error("spool I/O error on {}: {source}", path.display())]
    Io {
        /// File or directory the operation was on.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Accepting the batch would take the spool past
    /// [`SpoolConfig::max_bytes`]; nothing was written. Retry after the
    /// replayer has acknowledged enough records to free a segment (the API
    /// answers 503 with `Retry-After`).
    #[error("spool is full: {used} of {limit} bytes in use")]
    Full {
        /// Bytes currently used by segment files.
        used: u64,
        /// The configured [`SpoolConfig::max_bytes`].
        limit: u64,
    },
    /// A spool file holds damaged data that cannot be the torn tail of an
    /// interrupted append (see the module docs). Needs an operator: the data
    /// is not skipped automatically because it may be acknowledged events.
    #[error("spool file {} is corrupt at byte offset {offset}", path.display())]
    Corrupt {
        /// The damaged segment file (or the `ack` file).
        path: PathBuf,
        /// Byte offset of the first damaged frame, or where an inconsistency
        /// between files was detected.
        offset: u64,
    },
    /// A record is larger than [`MAX_RECORD_BYTES`]; nothing of the batch
    /// was written. Retrying cannot help.
    #[error("spool record of {size} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge {
        /// Size of the offending record.
        size: usize,
        /// [`MAX_RECORD_BYTES`].
        limit: usize,
    },
    /// `acknowledge_through` was given a sequence number that was never
    /// assigned. Acknowledging it would mark future records as stored, so it
    /// is refused; it indicates a bug in the caller.
    #[error("cannot acknowledge sequence {seq}: only sequences below {next_seq} exist")]
    AckBeyondEnd {
        /// The sequence number passed in.
        seq: u64,
        /// The sequence number the next appended record will get.
        next_seq: u64,
    },
    /// A failed append could not be rolled back (or a thread panicked inside
    /// the spool), so the in-memory view may no longer match the disk. Every
    /// operation fails until the spool is dropped and opened again, which
    /// re-derives the state from disk.
    #[error("spool is unusable after an unrecoverable I/O failure; reopen it")]
    Poisoned,
}

fn io_error(path: &Path, source: io::Error) -> SpoolError {
    SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Makes renames, creations and deletions in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

fn remove_file_if_present(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path, e)),
    }
}

/// The durable, append-only local spool. See the module docs.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    config: SpoolConfig,
    state: Mutex<State>,
}

/// A known byte offset of a record, kept so that `read_pending` need not walk
/// a segment's frame headers from its start on every call.
#[derive(Debug, Clone, Copy)]
struct Position {
    segment_first: u64,
    seq: u64,
    offset: u64,
}

/// The segment being appended to.
#[derive(Debug)]
struct Active {
    segment: Segment,
    file: File,
    /// Whether the directory has been fsync'd since the file was created.
    /// Checked before every append instead of only at creation, so that a
    /// failed directory fsync is retried rather than forgotten.
    entry_synced: bool,
}

#[derive(Debug)]
struct State {
    /// Segments no longer appended to, oldest first.
    sealed: VecDeque<Segment>,
    /// The newest segment, if any; `None` after everything was acknowledged
    /// and deleted.
    active: Option<Active>,
    /// Sequence number of the next appended record.
    next_seq: u64,
    /// First sequence number not yet acknowledged (`acked <= next_seq`).
    acked: u64,
    /// Sum of segment lengths.
    bytes_used: u64,
    /// Where record `acked` was when last looked up.
    cursor: Option<Position>,
    /// Where the record after the last one returned by `read_pending` is:
    /// usually what the next `acknowledge_through` moves `acked` to.
    read_end: Option<Position>,
    /// See [`SpoolError::Poisoned`].
    poisoned: bool,
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, validating every stored
    /// record and truncating a torn tail left by a crash.
    ///
    /// Fully acknowledged segments left behind by a crash are deleted.
    /// Returns [`SpoolError::Corrupt`] for damage that is not a torn tail (see
    /// the module docs), when segments are missing from the sequence, or
    /// when the `ack` file is damaged or claims more than was stored. Reads
    /// every segment it keeps, so it takes time proportional to
    /// [`Spool::bytes_used`].
    pub fn open(dir: &Path, config: SpoolConfig) -> Result<Self, SpoolError> {
        ensure_dir(dir)?;
        ack::remove_stale_temp(dir)?;
        let acked = ack::load(dir)?;
        let state = recover(dir, acked)?;
        // Makes the entries of every segment found durable (one may have
        // been created just before a crash, with its directory fsync never
        // completed), as well as any deletion done by `recover`.
        sync_dir(dir)?;
        tracing::info!(
            dir = %dir.display(),
            pending = state.next_seq - state.acked,
            bytes_used = state.bytes_used,
            "opened audit spool"
        );
        Ok(Self {
            dir: dir.to_owned(),
            config,
            state: Mutex::new(state),
        })
    }

    /// Durably appends a batch of records and returns their sequence
    /// numbers (empty for an empty batch).
    ///
    /// All or nothing: on any error no record of the batch is accepted
    /// ([`SpoolError::Full`] if it would exceed `max_bytes`,
    /// [`SpoolError::RecordTooLarge`] if a record exceeds
    /// [`MAX_RECORD_BYTES`]). `Ok` means the records are on disk (`sync_data`
    /// completed) and will survive a crash.
    pub fn append(&self, records: &[&[u8]]) -> Result<Range<u64>, SpoolError> {
        // Encoded before taking the lock so that concurrent callers only
        // serialize on the I/O.
        let mut batch = Vec::with_capacity(
            records
                .iter()
                .map(|r| r.len() + frame::HEADER_LEN as usize)
                .sum(),
        );
        for record in records {
            frame::encode(&mut batch, record)?;
        }
        let mut state = self.lock()?;
        if records.is_empty() {
            return Ok(state.next_seq..state.next_seq);
        }
        state.append(&self.dir, &self.config, &batch, records.len() as u64)
    }

    /// Returns up to `max_records` of the oldest unacknowledged records, in
    /// sequence order, as `(sequence number, payload)`.
    ///
    /// Does not consume anything: until [`Spool::acknowledge_through`] is
    /// called, the same records are returned again. Every record is
    /// checksummed again as it is read, so damage that happened after
    /// [`Spool::open`] is reported as [`SpoolError::Corrupt`], not returned.
    /// Memory use is up to `max_records` payloads, so pick it with
    /// [`MAX_RECORD_BYTES`] in mind.
    pub fn read_pending(&self, max_records: usize) -> Result<Vec<(u64, Vec<u8>)>, SpoolError> {
        self.lock()?.read_pending(max_records)
    }

    /// Records that every record up to and including `seq` is durably stored
    /// elsewhere, and deletes the segments that are now fully acknowledged.
    ///
    /// When this returns `Ok` the acknowledgement survives a crash: after a
    /// restart `read_pending` starts after `seq`. Acknowledging an already
    /// acknowledged sequence is a no-op, so a replayer may safely repeat
    /// itself; a sequence number never assigned is [`SpoolError::AckBeyondEnd`].
    /// Failing to delete a segment is only logged (the space stays in use
    /// and deletion is retried on the next call).
    pub fn acknowledge_through(&self, seq: u64) -> Result<(), SpoolError> {
        self.lock()?.acknowledge_through(&self.dir, seq)
    }

    /// Whether every appended record has been acknowledged.
    pub fn is_empty(&self) -> bool {
        self.pending_count() == 0
    }

    /// Number of appended records not yet acknowledged (exact).
    pub fn pending_count(&self) -> u64 {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.next_seq - state.acked
    }

    /// Bytes used by segment files, the quantity [`SpoolConfig::max_bytes`]
    /// limits. Includes acknowledged records whose segment still holds
    /// unacknowledged ones.
    pub fn bytes_used(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes_used
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configured limits.
    pub fn config(&self) -> SpoolConfig {
        self.config
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, SpoolError> {
        // A panic while the lock was held may have left the state half
        // updated, which is exactly what `Poisoned` means.
        let state = self.state.lock().map_err(|_| SpoolError::Poisoned)?;
        if state.poisoned {
            return Err(SpoolError::Poisoned);
        }
        Ok(state)
    }
}

/// Creates the spool directory if needed, making its entry durable.
fn ensure_dir(dir: &Path) -> Result<(), SpoolError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => sync_dir(Path::new(".")),
    }
}

/// Rebuilds the in-memory state from the segment files, given the stored
/// acknowledgement.
fn recover(dir: &Path, acked: u64) -> Result<State, SpoolError> {
    let mut listed = segment::list(dir)?;
    let Some((last_first, last_path)) = listed.pop() else {
        return Ok(State::new(VecDeque::new(), None, acked, acked, None));
    };
    // The newest segment first: it is the only one that may have a torn
    // tail, and its end is needed to check the acknowledgement.
    let last = segment::scan(last_path, last_first, true, acked)?;
    if acked > last.segment.end_seq() {
        // Only records that were fully synced can ever be acknowledged, so
        // this is damage, and believing it would skip records.
        tracing::error!(
            acked,
            end = last.segment.end_seq(),
            "spool acknowledgement is past the last stored record"
        );
        return Err(SpoolError::Corrupt {
            path: dir.join(ack::FILE_NAME),
            offset: 0,
        });
    }

    // Older segments whose successor starts at or before `acked` hold only
    // acknowledged records: a crash interrupted their deletion. They are
    // deleted without being read, as damage in them can no longer matter.
    let mut kept = Vec::new();
    for (index, (first_seq, path)) in listed.iter().enumerate() {
        let successor_first = listed
            .get(index + 1)
            .map_or(last_first, |(first, _)| *first);
        if successor_first <= acked {
            tracing::info!(path = %path.display(), "deleting acknowledged spool segment left by a crash");
            remove_file_if_present(path)?;
        } else {
            kept.push((*first_seq, path.clone()));
        }
    }

    let mut cursor = last.found_offset.map(|offset| Position {
        segment_first: last_first,
        seq: acked,
        offset,
    });
    let mut segments = Vec::with_capacity(kept.len() + 1);
    for (first_seq, path) in kept {
        let scanned = segment::scan(path, first_seq, false, acked)?;
        if let Some(offset) = scanned.found_offset {
            cursor = Some(Position {
                segment_first: first_seq,
                seq: acked,
                offset,
            });
        }
        segments.push(scanned.segment);
    }
    segments.push(last.segment);

    check_contiguous(dir, &segments, acked)?;

    let mut sealed: VecDeque<Segment> = segments.into();
    let Some(last) = sealed.pop_back() else {
        return Ok(State::new(sealed, None, acked, acked, cursor));
    };
    let next_seq = last.end_seq();
    let active = if last.end_seq() <= acked {
        // Everything was acknowledged; `check_contiguous` guarantees no older
        // segment is left, so the spool is simply empty.
        remove_file_if_present(&last.path)?;
        None
    } else {
        let file = segment::open_for_append(&last)?;
        Some(Active {
            segment: last,
            file,
            entry_synced: true,
        })
    };
    Ok(State::new(sealed, active, next_seq, acked, cursor))
}

/// Checks that the kept segments hold exactly the records from `acked` (or
/// earlier) on, without gaps or overlaps: a missing or extra segment would
/// otherwise shift sequence numbers or silently lose records.
fn check_contiguous(dir: &Path, segments: &[Segment], acked: u64) -> Result<(), SpoolError> {
    if let Some(first) = segments.first()
        && first.first_seq > acked
    {
        tracing::error!(
            acked,
            first_seq = first.first_seq,
            "spool records between the acknowledgement and the oldest segment are missing"
        );
        let path = dir.join(ack::FILE_NAME);
        return Err(SpoolError::Corrupt { path, offset: 0 });
    }
    for pair in segments.windows(2) {
        if let [older, newer] = pair
            && older.end_seq() != newer.first_seq
        {
            tracing::error!(
                older = %older.path.display(),
                newer = %newer.path.display(),
                older_end = older.end_seq(),
                newer_first = newer.first_seq,
                "spool segments are not contiguous"
            );
            return Err(SpoolError::Corrupt {
                path: older.path.clone(),
                offset: older.len,
            });
        }
    }
    Ok(())
}

impl State {
    fn new(
        sealed: VecDeque<Segment>,
        active: Option<Active>,
        next_seq: u64,
        acked: u64,
        cursor: Option<Position>,
    ) -> Self {
        let bytes_used = sealed
            .iter()
            .chain(active.as_ref().map(|a| &a.segment))
            .map(|s| s.len)
            .sum();
        Self {
            sealed,
            active,
            next_seq,
            acked,
            bytes_used,
            cursor,
            read_end: None,
            poisoned: false,
        }
    }

    fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.sealed
            .iter()
            .chain(self.active.as_ref().map(|a| &a.segment))
    }

    fn append(
        &mut self,
        dir: &Path,
        config: &SpoolConfig,
        batch: &[u8],
        count: u64,
    ) -> Result<Range<u64>, SpoolError> {
        let batch_len = batch.len() as u64;
        if batch_len > config.max_bytes.saturating_sub(self.bytes_used) {
            return Err(SpoolError::Full {
                used: self.bytes_used,
                limit: config.max_bytes,
            });
        }
        let mut active = self.take_active(dir, config)?;
        let result = match write_batch(dir, &mut active, batch) {
            Ok(()) => {
                active.segment.len += batch_len;
                active.segment.records += count;
                self.bytes_used += batch_len;
                let first = self.next_seq;
                self.next_seq += count;
                Ok(first..self.next_seq)
            }
            Err(failure) => {
                if !failure.rolled_back {
                    tracing::error!(
                        error = %failure.error,
                        "spool append failed and could not be rolled back; spool disabled until reopened"
                    );
                    self.poisoned = true;
                }
                Err(failure.error)
            }
        };
        self.active = Some(active);
        result
    }

    /// Takes the segment to append to out of `self`, starting a new one when
    /// there is none or the current one is full. Taken by value so the
    /// caller can put it back whatever happens.
    fn take_active(&mut self, dir: &Path, config: &SpoolConfig) -> Result<Active, SpoolError> {
        match self.active.take() {
            // Never roll away from an empty segment: the new one would get
            // the same name.
            Some(active)
                if active.segment.records == 0 || active.segment.len < config.segment_bytes =>
            {
                Ok(active)
            }
            previous => match segment::create(dir, self.next_seq) {
                Ok((segment, file)) => {
                    tracing::debug!(path = %segment.path.display(), "started spool segment");
                    if let Some(previous) = previous {
                        self.sealed.push_back(previous.segment);
                    }
                    Ok(Active {
                        segment,
                        file,
                        entry_synced: false,
                    })
                }
                Err(e) => {
                    self.active = previous;
                    Err(e)
                }
            },
        }
    }

    fn read_pending(&mut self, max_records: usize) -> Result<Vec<(u64, Vec<u8>)>, SpoolError> {
        let mut records = Vec::new();
        let mut seq = self.acked;
        let mut cursor = None;
        let mut read_end = None;
        for segment in self.segments() {
            if records.len() >= max_records || seq >= self.next_seq {
                break;
            }
            if segment.end_seq() <= seq {
                continue; // acknowledged, deletion pending
            }
            let mut offset = self.offset_of(segment, seq)?;
            if seq == self.acked {
                cursor = Some(Position {
                    segment_first: segment.first_seq,
                    seq,
                    offset,
                });
            }
            let path = &segment.path;
            let mut reader = BufReader::new(File::open(path).map_err(|e| io_error(path, e))?);
            reader
                .seek(SeekFrom::Start(offset))
                .map_err(|e| io_error(path, e))?;
            while seq < segment.end_seq() && records.len() < max_records {
                let mut payload = Vec::new();
                let remaining = segment.len.saturating_sub(offset);
                match frame::read(&mut reader, remaining, &mut payload)
                    .map_err(|e| io_error(path, e))?
                {
                    FrameRead::Valid { frame_len } => {
                        records.push((seq, payload));
                        seq += 1;
                        offset += frame_len;
                    }
                    _ => {
                        return Err(SpoolError::Corrupt {
                            path: path.clone(),
                            offset,
                        });
                    }
                }
            }
            read_end = Some(Position {
                segment_first: segment.first_seq,
                seq,
                offset,
            });
        }
        self.cursor = cursor.or(self.cursor);
        self.read_end = read_end.or(self.read_end);
        Ok(records)
    }

    /// Byte offset of record `seq` in `segment`, starting from the closest
    /// remembered position at or before it.
    fn offset_of(&self, segment: &Segment, seq: u64) -> Result<u64, SpoolError> {
        let mut start = (segment.first_seq, 0);
        for hint in [self.cursor, self.read_end].into_iter().flatten() {
            if hint.segment_first == segment.first_seq && hint.seq <= seq && hint.seq >= start.0 {
                start = (hint.seq, hint.offset);
            }
        }
        segment::offset_of(segment, start, seq)
    }

    fn acknowledge_through(&mut self, dir: &Path, seq: u64) -> Result<(), SpoolError> {
        if seq >= self.next_seq {
            return Err(SpoolError::AckBeyondEnd {
                seq,
                next_seq: self.next_seq,
            });
        }
        let next_unacknowledged = seq + 1;
        if next_unacknowledged > self.acked {
            // Durable before any segment is deleted: a deleted segment must
            // never be one a restart would still consider pending.
            ack::store(dir, next_unacknowledged)?;
            self.acked = next_unacknowledged;
        }
        self.delete_acknowledged_segments(dir);
        Ok(())
    }

    /// Deletes fully acknowledged segments, oldest first, stopping at the
    /// first failure so the remaining segments stay contiguous.
    fn delete_acknowledged_segments(&mut self, dir: &Path) {
        let mut deleted = Vec::new();
        while let Some(segment) = self.sealed.pop_front() {
            if segment.end_seq() > self.acked {
                self.sealed.push_front(segment);
                break;
            }
            if let Err(error) = remove_file_if_present(&segment.path) {
                tracing::warn!(%error, "could not delete acknowledged spool segment; will retry");
                self.sealed.push_front(segment);
                break;
            }
            deleted.push(segment);
        }
        if self.sealed.is_empty() {
            let acked = self.acked;
            if let Some(active) = self.active.take_if(|a| a.segment.end_seq() <= acked) {
                match remove_file_if_present(&active.segment.path) {
                    Ok(()) => deleted.push(active.segment),
                    Err(error) => {
                        tracing::warn!(%error, "could not delete acknowledged spool segment; will retry");
                        self.active = Some(active);
                    }
                }
            }
        }
        if deleted.is_empty() {
            return;
        }
        let freed: u64 = deleted.iter().map(|s| s.len).sum();
        self.bytes_used -= freed;
        for segment in &deleted {
            for hint in [&mut self.cursor, &mut self.read_end] {
                if hint.is_some_and(|h| h.segment_first == segment.first_seq) {
                    *hint = None;
                }
            }
        }
        // Not needed for correctness (a resurrected segment is fully
        // acknowledged and deleted again on open), but keeps the directory
        // in line with what was reported.
        if let Err(error) = sync_dir(dir) {
            tracing::warn!(%error, "could not fsync spool directory after deleting segments");
        }
        tracing::info!(
            segments = deleted.len(),
            freed_bytes = freed,
            acknowledged_through = self.acked.saturating_sub(1),
            "deleted fully acknowledged spool segments"
        );
    }
}

/// Why [`write_batch`] failed, and whether the segment is back to its state
/// before the attempt.
struct WriteFailure {
    error: SpoolError,
    rolled_back: bool,
}

/// Writes and syncs one batch at the end of the active segment. On failure
/// the segment is truncated back to its previous length, so that bytes that
/// may or may not have reached the disk cannot sit in front of later,
/// successfully synced records.
fn write_batch(dir: &Path, active: &mut Active, batch: &[u8]) -> Result<(), WriteFailure> {
    if !active.entry_synced {
        sync_dir(dir).map_err(|error| WriteFailure {
            error,
            rolled_back: true,
        })?;
        active.entry_synced = true;
    }
    let file = &mut active.file;
    if let Err(e) = file.write_all(batch).and_then(|()| file.sync_data()) {
        let rolled_back = file
            .set_len(active.segment.len)
            .and_then(|()| file.sync_data())
            .is_ok();
        return Err(WriteFailure {
            error: io_error(&active.segment.path, e),
            rolled_back,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(segment_bytes: u64) -> SpoolConfig {
        SpoolConfig {
            max_bytes: 1 << 20,
            segment_bytes,
        }
    }

    fn segment_firsts(dir: &Path) -> Vec<u64> {
        segment::list(dir)
            .expect("list")
            .into_iter()
            .map(|(first, _)| first)
            .collect()
    }

    #[test]
    fn default_config_is_one_gib_with_64_mib_segments() {
        let config = SpoolConfig::default();
        assert_eq!(config.max_bytes, 1 << 30);
        assert_eq!(config.segment_bytes, 64 << 20);
    }

    #[test]
    fn sequence_numbers_are_contiguous_and_named_after_segment_starts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path(), config(20)).expect("open");
        assert_eq!(spool.append(&[b"0123456789", b"x"]).expect("append"), 0..2);
        assert_eq!(spool.append(&[b"y"]).expect("append"), 2..3);
        assert_eq!(spool.append(&[]).expect("append"), 3..3);
        // seg-2 holds 9 bytes, under the 20-byte threshold: no roll yet.
        assert_eq!(spool.append(&[b"z", b"w"]).expect("append"), 3..5);
        assert_eq!(segment_firsts(dir.path()), [0, 2]);
        assert_eq!(spool.append(&[b"v"]).expect("append"), 5..6);
        assert_eq!(segment_firsts(dir.path()), [0, 2, 5]);
    }

    #[test]
    fn read_pending_uses_and_refreshes_position_hints() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path(), config(1 << 20)).expect("open");
        for i in 0..10u8 {
            spool.append(&[&[i; 3]]).expect("append");
        }
        let first = spool.read_pending(4).expect("read");
        assert_eq!(first.len(), 4);
        {
            let state = spool.lock().expect("lock");
            let end = state.read_end.expect("read_end set");
            assert_eq!((end.seq, end.offset), (4, 4 * 11));
        }
        spool.acknowledge_through(3).expect("ack");
        // Corrupt the headers before the hint: if the hint were not used,
        // walking from offset 0 would hit the damage.
        let path = dir.path().join(segment::file_name(0));
        let mut bytes = fs::read(&path).expect("read");
        bytes[0] = 0xff;
        bytes[1] = 0xff;
        fs::write(&path, &bytes).expect("write");
        let next = spool.read_pending(2).expect("read via hint");
        assert_eq!(next, [(4, vec![4; 3]), (5, vec![5; 3])]);
    }

    #[test]
    fn hints_of_deleted_segments_are_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path(), config(0)).expect("open");
        spool.append(&[b"a"]).expect("append");
        spool.append(&[b"b"]).expect("append");
        assert_eq!(spool.read_pending(1).expect("read").len(), 1);
        spool.acknowledge_through(0).expect("ack");
        let state = spool.lock().expect("lock");
        assert!(state.read_end.is_none());
        assert!(state.cursor.is_none());
    }

    #[test]
    fn full_check_counts_frame_headers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(
            dir.path(),
            SpoolConfig {
                max_bytes: 20,
                segment_bytes: 1 << 20,
            },
        )
        .expect("open");
        // 2 * (8 + 2) = 20 fits exactly; 8 more bytes do not.
        spool.append(&[b"ab", b"cd"]).expect("fits exactly");
        assert!(matches!(
            spool.append(&[b""]),
            Err(SpoolError::Full {
                used: 20,
                limit: 20
            })
        ));
    }

    #[test]
    fn poisoned_spool_refuses_everything_but_counters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path(), config(1 << 20)).expect("open");
        spool.append(&[b"a"]).expect("append");
        spool.lock().expect("lock").poisoned = true;
        assert!(matches!(spool.append(&[b"b"]), Err(SpoolError::Poisoned)));
        assert!(matches!(spool.read_pending(1), Err(SpoolError::Poisoned)));
        assert!(matches!(
            spool.acknowledge_through(0),
            Err(SpoolError::Poisoned)
        ));
        assert_eq!(spool.pending_count(), 1);
        drop(spool);
        let reopened = Spool::open(dir.path(), config(1 << 20)).expect("reopen");
        assert_eq!(
            reopened.read_pending(10).expect("read"),
            [(0, b"a".to_vec())]
        );
    }

    #[test]
    fn creates_missing_nested_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("a/b/spool");
        let spool = Spool::open(&nested, config(1 << 20)).expect("open");
        spool.append(&[b"a"]).expect("append");
        assert!(nested.join(segment::file_name(0)).is_file());
    }
}
