//! Behaviour of the durable audit spool through its public API and its files
//! on disk: ordering, acknowledgement, limits, crash recovery, concurrency.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use palisade_audit::spool::{MAX_RECORD_BYTES, Spool, SpoolConfig, SpoolError};
use proptest::prelude::*;

const FRAME_HEADER: usize = 8;

fn config(segment_bytes: u64) -> SpoolConfig {
    SpoolConfig {
        max_bytes: 1 << 30,
        segment_bytes,
    }
}

fn open(dir: &Path, config: SpoolConfig) -> Spool {
    Spool::open(dir, config).expect("open spool")
}

/// The frame the spool writes for `payload`, built independently of the
/// implementation: `u32 LE len ‖ u32 LE CRC-32(len bytes ‖ payload) ‖ payload`.
fn frame(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len())
        .expect("small payload")
        .to_le_bytes();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher.update(payload);
    let mut out = len.to_vec();
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Segment files in the directory, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("seg-") && name.ends_with(".log"))
        })
        .collect();
    files.sort();
    files
}

fn segment_name(first_seq: u64) -> String {
    format!("seg-{first_seq:020}.log")
}

fn segment_firsts(dir: &Path) -> Vec<u64> {
    segment_files(dir)
        .iter()
        .map(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("utf-8 name");
            name["seg-".len()..name.len() - ".log".len()]
                .parse()
                .expect("numeric segment name")
        })
        .collect()
}

fn read_all(spool: &Spool) -> Vec<(u64, Vec<u8>)> {
    spool.read_pending(usize::MAX).expect("read pending")
}

fn payload(i: u64) -> Vec<u8> {
    format!(
        "{{\"event\":{i},\"pad\":\"{}\"}}",
        "x".repeat((i % 7) as usize)
    )
    .into_bytes()
}

fn append_one(spool: &Spool, payload: &[u8]) -> u64 {
    let range = spool.append(&[payload]).expect("append");
    assert_eq!(range.end - range.start, 1);
    range.start
}

fn flip_bit(path: &Path, offset: usize, mask: u8) {
    let mut bytes = fs::read(path).expect("read segment");
    bytes[offset] ^= mask;
    fs::write(path, &bytes).expect("write segment");
}

#[test]
fn appends_are_read_back_in_order_across_segments_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut expected = Vec::new();
    {
        let spool = open(dir.path(), config(100));
        let mut i = 0u64;
        for batch_len in (0..40).map(|b| 1 + b % 3) {
            let payloads: Vec<Vec<u8>> = (i..i + batch_len).map(payload).collect();
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            assert_eq!(spool.append(&refs).expect("append"), i..i + batch_len);
            expected.extend((i..).zip(payloads));
            i += batch_len;
        }
        assert!(
            segment_files(dir.path()).len() > 5,
            "test needs many segments"
        );
        assert_eq!(read_all(&spool), expected);
        assert_eq!(spool.read_pending(7).expect("read"), expected[..7]);
        assert_eq!(spool.read_pending(0).expect("read"), []);
        assert_eq!(spool.pending_count(), expected.len() as u64);
    }
    let spool = open(dir.path(), config(100));
    assert_eq!(read_all(&spool), expected);
    let next = expected.len() as u64;
    assert_eq!(append_one(&spool, b"after reopen"), next);
    expected.push((next, b"after reopen".to_vec()));
    assert_eq!(read_all(&spool), expected);
    drop(spool);
    assert_eq!(read_all(&open(dir.path(), config(100))), expected);
}

#[test]
fn acknowledge_deletes_only_whole_segments_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 10-byte payloads make 18-byte frames: 3 per 50-byte segment.
    let cfg = config(50);
    let spool = open(dir.path(), cfg);
    for i in 0..10u64 {
        append_one(&spool, format!("record-{i:03}").as_bytes());
    }
    assert_eq!(segment_firsts(dir.path()), [0, 3, 6, 9]);
    let used = spool.bytes_used();
    assert_eq!(used, 10 * 18);

    spool.acknowledge_through(1).expect("ack");
    assert_eq!(
        segment_firsts(dir.path()),
        [0, 3, 6, 9],
        "segment 0 still has record 2"
    );
    assert_eq!(spool.bytes_used(), used);
    assert_eq!(spool.read_pending(1).expect("read")[0].0, 2);

    spool.acknowledge_through(2).expect("ack");
    assert_eq!(segment_firsts(dir.path()), [3, 6, 9]);
    assert_eq!(spool.bytes_used(), used - 3 * 18);

    spool.acknowledge_through(4).expect("ack");
    assert_eq!(segment_firsts(dir.path()), [3, 6, 9]);
    assert_eq!(spool.pending_count(), 5);
    let pending = read_all(&spool);
    assert_eq!(pending.first().map(|r| r.0), Some(5));
    assert_eq!(pending.len(), 5);

    // Acknowledging something already acknowledged is a harmless no-op.
    spool.acknowledge_through(3).expect("repeated ack");
    assert_eq!(read_all(&spool), pending);
    drop(spool);

    let spool = open(dir.path(), cfg);
    assert_eq!(read_all(&spool), pending, "ack position survives reopen");
    assert_eq!(segment_firsts(dir.path()), [3, 6, 9]);
    assert_eq!(spool.pending_count(), 5);

    spool.acknowledge_through(9).expect("ack all");
    assert!(spool.is_empty());
    assert_eq!(spool.bytes_used(), 0);
    assert_eq!(segment_files(dir.path()), Vec::<PathBuf>::new());
    drop(spool);

    // Sequence numbers keep increasing after everything was deleted.
    let spool = open(dir.path(), cfg);
    assert!(spool.is_empty());
    assert_eq!(append_one(&spool, b"later"), 10);
    assert_eq!(segment_firsts(dir.path()), [10]);
    assert_eq!(read_all(&spool), [(10, b"later".to_vec())]);
}

#[test]
fn acknowledging_a_sequence_never_assigned_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = open(dir.path(), config(1 << 20));
    assert!(matches!(
        spool.acknowledge_through(0),
        Err(SpoolError::AckBeyondEnd {
            seq: 0,
            next_seq: 0
        })
    ));
    spool.append(&[b"a", b"b"]).expect("append");
    assert!(matches!(
        spool.acknowledge_through(2),
        Err(SpoolError::AckBeyondEnd {
            seq: 2,
            next_seq: 2
        })
    ));
    assert_eq!(spool.pending_count(), 2);
    drop(spool);
    assert_eq!(open(dir.path(), config(1 << 20)).pending_count(), 2);
}

#[test]
fn full_rejects_the_whole_batch_and_accepts_again_after_acknowledgement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = SpoolConfig {
        max_bytes: 100,
        segment_bytes: 36,
    };
    let spool = open(dir.path(), cfg);
    let ten = [b"0123456789".as_slice(); 2]; // two 18-byte frames
    assert_eq!(spool.append(&ten).expect("append"), 0..2);
    assert_eq!(spool.append(&ten).expect("append"), 2..4);
    assert_eq!(spool.bytes_used(), 72);

    match spool.append(&ten) {
        Err(SpoolError::Full {
            used: 72,
            limit: 100,
        }) => {}
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(
        spool.bytes_used(),
        72,
        "nothing of the rejected batch written"
    );
    assert_eq!(spool.pending_count(), 4);
    assert_eq!(read_all(&spool).len(), 4);

    assert_eq!(spool.append(&ten[..1]).expect("one more fits"), 4..5);
    assert!(matches!(
        spool.append(&ten),
        Err(SpoolError::Full { used: 90, .. })
    ));

    spool.acknowledge_through(1).expect("ack first segment");
    assert_eq!(spool.bytes_used(), 54);
    assert_eq!(spool.append(&ten).expect("fits after ack"), 5..7);
    let seqs: Vec<u64> = read_all(&spool).iter().map(|r| r.0).collect();
    assert_eq!(seqs, [2, 3, 4, 5, 6]);
    drop(spool);
    let seqs: Vec<u64> = read_all(&open(dir.path(), cfg))
        .iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(seqs, [2, 3, 4, 5, 6]);
}

#[test]
fn oversized_record_rejects_the_whole_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = open(dir.path(), config(1 << 20));
    let big = vec![0u8; MAX_RECORD_BYTES + 1];
    match spool.append(&[b"small", &big]) {
        Err(SpoolError::RecordTooLarge { size, limit }) => {
            assert_eq!((size, limit), (MAX_RECORD_BYTES + 1, MAX_RECORD_BYTES));
        }
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    assert!(spool.is_empty());
    assert_eq!(spool.bytes_used(), 0);
    let max = vec![7u8; MAX_RECORD_BYTES];
    assert_eq!(
        spool.append(&[&max]).expect("maximum size is allowed"),
        0..1
    );
    assert_eq!(read_all(&spool), [(0, max)]);
}

/// Segment size used with [`spool_with_last_record`].
const SEGMENT: u64 = 100;

/// Builds a spool with three or more segments whose last record is `last`, returning
/// the records and the newest segment's path.
fn spool_with_last_record(dir: &Path, last: &[u8]) -> (Vec<(u64, Vec<u8>)>, PathBuf) {
    let spool = open(dir, config(SEGMENT));
    let mut records = Vec::new();
    for i in 0..10u64 {
        let p = payload(i);
        records.push((append_one(&spool, &p), p));
    }
    records.push((append_one(&spool, last), last.to_vec()));
    let files = segment_files(dir);
    assert!(files.len() >= 3, "tests need older and middle segments");
    let newest = files.last().cloned().expect("a segment");
    let newest_len = fs::metadata(&newest).expect("stat").len() as usize;
    assert!(
        newest_len > frame(last).len(),
        "newest segment needs an earlier record"
    );
    (records, newest)
}

#[test]
fn torn_tail_of_every_length_is_truncated_on_open() {
    let last = b"the record being written when the power went out";
    let frame_len = frame(last).len();
    for kept in 1..frame_len {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut records, newest) = spool_with_last_record(dir.path(), last);
        let full_len = fs::metadata(&newest).expect("stat").len();
        let intact_len = full_len - frame_len as u64;
        let file = OpenOptions::new().write(true).open(&newest).expect("open");
        file.set_len(intact_len + kept as u64).expect("truncate");
        drop(file);

        let torn = records.pop().expect("last record");
        let spool = open(dir.path(), config(SEGMENT));
        assert_eq!(
            read_all(&spool),
            records,
            "kept {kept} bytes of the last frame"
        );
        assert_eq!(fs::metadata(&newest).expect("stat").len(), intact_len);
        assert_eq!(append_one(&spool, b"after recovery"), torn.0);
        records.push((torn.0, b"after recovery".to_vec()));
        assert_eq!(read_all(&spool), records);
        drop(spool);
        assert_eq!(read_all(&open(dir.path(), config(SEGMENT))), records);
    }
}

#[test]
fn final_record_failing_its_checksum_is_truncated_as_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut records, newest) = spool_with_last_record(dir.path(), b"last one");
    let len = fs::metadata(&newest).expect("stat").len() as usize;
    flip_bit(&newest, len - 1, 0x01);
    records.pop();
    let spool = open(dir.path(), config(SEGMENT));
    assert_eq!(read_all(&spool), records);
}

#[test]
fn zero_filled_tail_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (records, newest) = spool_with_last_record(dir.path(), b"last one");
    let mut file = OpenOptions::new().append(true).open(&newest).expect("open");
    file.write_all(&[0u8; 4096]).expect("append zeros");
    drop(file);
    let spool = open(dir.path(), config(SEGMENT));
    assert_eq!(read_all(&spool), records);
    assert_eq!(append_one(&spool, b"next"), records.len() as u64);
}

#[test]
fn flipped_bit_in_an_earlier_record_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, newest) = spool_with_last_record(dir.path(), b"last one");
    // Every bit of the first frame of the newest segment (header and
    // payload): records follow it, so none of this is a torn tail.
    let first_frame_len = {
        let bytes = fs::read(&newest).expect("read");
        FRAME_HEADER + u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize
    };
    let pristine = fs::read(&newest).expect("read");
    for offset in 0..first_frame_len {
        for bit in 0..8 {
            flip_bit(&newest, offset, 1 << bit);
            match Spool::open(dir.path(), config(SEGMENT)) {
                Err(SpoolError::Corrupt { path, offset: 0 }) => assert_eq!(path, newest),
                other => panic!("byte {offset} bit {bit}: expected Corrupt, got {other:?}"),
            }
            flip_bit(&newest, offset, 1 << bit);
            assert_eq!(
                fs::read(&newest).expect("read"),
                pristine,
                "nothing truncated"
            );
        }
    }
    assert!(Spool::open(dir.path(), config(SEGMENT)).is_ok());
}

#[test]
fn damaged_final_record_of_an_older_segment_is_corrupt_not_torn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, _) = spool_with_last_record(dir.path(), b"last one");
    let oldest = segment_files(dir.path()).remove(0);
    let len = fs::metadata(&oldest).expect("stat").len() as usize;
    flip_bit(&oldest, len - 1, 0x80);
    match Spool::open(dir.path(), config(SEGMENT)) {
        Err(SpoolError::Corrupt { path, .. }) => assert_eq!(path, oldest),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn corruption_after_open_is_reported_by_read_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, newest) = spool_with_last_record(dir.path(), b"last one");
    let spool = open(dir.path(), config(SEGMENT));
    let oldest = segment_files(dir.path()).remove(0);
    flip_bit(&oldest, FRAME_HEADER + 2, 0x04);
    match spool.read_pending(100) {
        Err(SpoolError::Corrupt { path, offset: 0 }) => assert_eq!(path, oldest),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(newest.exists());
}

#[test]
fn missing_middle_segment_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    spool_with_last_record(dir.path(), b"last one");
    let files = segment_files(dir.path());
    assert!(files.len() >= 3, "test needs a middle segment");
    fs::remove_file(&files[1]).expect("remove");
    assert!(matches!(
        Spool::open(dir.path(), config(SEGMENT)),
        Err(SpoolError::Corrupt { .. })
    ));
}

#[test]
fn missing_oldest_unacknowledged_segment_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    spool_with_last_record(dir.path(), b"last one");
    fs::remove_file(&segment_files(dir.path())[0]).expect("remove");
    assert!(matches!(
        Spool::open(dir.path(), config(SEGMENT)),
        Err(SpoolError::Corrupt { .. })
    ));
}

#[test]
fn acknowledged_segments_left_by_an_interrupted_deletion_are_removed_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (records, _) = spool_with_last_record(dir.path(), b"last one");
    let before: Vec<(PathBuf, Vec<u8>)> = segment_files(dir.path())
        .into_iter()
        .map(|path| {
            let bytes = fs::read(&path).expect("read");
            (path, bytes)
        })
        .collect();
    let second_first = segment_firsts(dir.path())[1];
    let spool = open(dir.path(), config(SEGMENT));
    spool.acknowledge_through(second_first).expect("ack");
    drop(spool);
    // Simulate a crash after the ack file was written but before the
    // segments were deleted.
    for (path, bytes) in &before {
        fs::write(path, bytes).expect("restore");
    }
    let spool = open(dir.path(), config(SEGMENT));
    assert_eq!(read_all(&spool), records[second_first as usize + 1..]);
    assert_eq!(segment_firsts(dir.path())[0], second_first);
}

#[test]
fn damaged_ack_file_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = open(dir.path(), config(64));
    spool.append(&[b"a", b"b"]).expect("append");
    spool.acknowledge_through(0).expect("ack");
    drop(spool);
    let ack = dir.path().join("ack");
    flip_bit(&ack, 9, 0x01);
    match Spool::open(dir.path(), config(64)) {
        Err(SpoolError::Corrupt { path, .. }) => assert_eq!(path, ack),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn leftover_partial_ack_write_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = open(dir.path(), config(64));
    spool.append(&[b"a", b"b", b"c"]).expect("append");
    spool.acknowledge_through(0).expect("ack");
    drop(spool);
    fs::write(dir.path().join("ack.tmp"), b"torn").expect("write");
    let spool = open(dir.path(), config(64));
    assert_eq!(read_all(&spool), [(1, b"b".to_vec()), (2, b"c".to_vec())]);
    assert!(!dir.path().join("ack.tmp").exists());
}

#[test]
fn empty_segment_left_by_a_crash_after_creation_is_reused() {
    // 0 is the edge case: an empty segment is already "full", yet rolling
    // would try to create a second file with the same name.
    for segment_bytes in [10, 0] {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = open(dir.path(), config(segment_bytes));
        spool.append(&[b"0123456789"]).expect("append");
        drop(spool);
        fs::write(dir.path().join(segment_name(1)), b"").expect("create empty segment");
        let spool = open(dir.path(), config(segment_bytes));
        assert_eq!(
            append_one(&spool, b"next"),
            1,
            "segment_bytes {segment_bytes}"
        );
        assert_eq!(segment_firsts(dir.path()), [0, 1]);
        assert_eq!(
            read_all(&spool),
            [(0, b"0123456789".to_vec()), (1, b"next".to_vec())]
        );
    }
}

#[test]
fn concurrent_appends_are_all_present_without_interleaving() {
    const THREADS: u64 = 8;
    const BATCHES: u64 = 60;
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Arc::new(open(dir.path(), config(4096)));
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let spool = Arc::clone(&spool);
            std::thread::spawn(move || {
                let mut assigned = Vec::new();
                for batch in 0..BATCHES {
                    let payloads: Vec<Vec<u8>> = (0..1 + (thread + batch) % 4)
                        .map(|i| {
                            let pad = "#".repeat(((thread * 31 + batch * 7 + i) % 200) as usize);
                            format!("t{thread}-b{batch}-r{i}-{pad}").into_bytes()
                        })
                        .collect();
                    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                    let range = spool.append(&refs).expect("append");
                    assert_eq!(range.end - range.start, payloads.len() as u64);
                    assigned.extend(range.zip(payloads));
                }
                assigned
            })
        })
        .collect();
    let mut expected: Vec<(u64, Vec<u8>)> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("appender thread"))
        .collect();
    expected.sort();
    // Every sequence number assigned exactly once, with no gaps.
    let seqs: Vec<u64> = expected.iter().map(|r| r.0).collect();
    assert_eq!(seqs, (0..expected.len() as u64).collect::<Vec<_>>());
    assert!(segment_files(dir.path()).len() > 1);
    assert_eq!(read_all(&spool), expected);
    drop(spool);
    assert_eq!(read_all(&open(dir.path(), config(4096))), expected);
}

#[test]
fn spool_is_usable_from_async_code_via_spawn_blocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Arc::new(open(dir.path(), config(1 << 20)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let range = runtime.block_on(async {
        let spool = Arc::clone(&spool);
        tokio::task::spawn_blocking(move || spool.append(&[b"from async"]))
            .await
            .expect("join")
    });
    assert_eq!(range.expect("append"), 0..1);
}

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Vec<u8>>),
    /// Acknowledge the n-th pending record (modulo the number pending).
    Ack(usize),
    /// Acknowledge an already acknowledged sequence again.
    ReAck,
    Read(usize),
    Reopen,
    /// Crash in the middle of an append: part of a frame reaches the newest
    /// segment, the append never returned, then the spool is reopened.
    TornAppendThenReopen {
        payload: Vec<u8>,
        kept: usize,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let record = prop::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        5 => prop::collection::vec(record.clone(), 0..5).prop_map(Op::Append),
        2 => any::<usize>().prop_map(Op::Ack),
        1 => Just(Op::ReAck),
        2 => (1..8usize).prop_map(Op::Read),
        1 => Just(Op::Reopen),
        1 => (prop::collection::vec(any::<u8>(), 1..40), any::<usize>())
            .prop_map(|(payload, kept)| Op::TornAppendThenReopen { payload, kept }),
    ]
}

fn frames_len(records: &[Vec<u8>]) -> u64 {
    records
        .iter()
        .map(|r| (FRAME_HEADER + r.len()) as u64)
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Every record whose append returned `Ok` and that was not acknowledged
    /// is returned by `read_pending` exactly once, in order, whatever
    /// sequence of appends, acknowledgements, reopens and torn appends
    /// happened before.
    #[test]
    fn unacknowledged_records_are_returned_exactly_once_in_order(
        ops in prop::collection::vec(op_strategy(), 1..40),
        segment_bytes in 0u64..200,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = SpoolConfig { max_bytes: 600, segment_bytes };
        let mut spool = Some(open(dir.path(), cfg));
        let mut pending: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
        let mut next_seq = 0u64;
        let mut last_acked: Option<u64> = None;
        for op in ops {
            let s = spool.as_ref().expect("spool is open");
            match op {
                Op::Append(batch) => {
                    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                    let used = s.bytes_used();
                    match s.append(&refs) {
                        Ok(range) => {
                            prop_assert_eq!(range.clone(), next_seq..next_seq + batch.len() as u64);
                            next_seq = range.end;
                            pending.extend(range.zip(batch));
                        }
                        Err(SpoolError::Full { used: reported, limit }) => {
                            prop_assert_eq!(reported, used);
                            prop_assert!(used + frames_len(&batch) > limit);
                            prop_assert_eq!(s.bytes_used(), used);
                        }
                        Err(e) => prop_assert!(false, "append failed: {e}"),
                    }
                }
                Op::Ack(n) => {
                    if !pending.is_empty() {
                        let seq = pending[n % pending.len()].0;
                        s.acknowledge_through(seq).expect("ack");
                        while pending.front().is_some_and(|r| r.0 <= seq) {
                            pending.pop_front();
                        }
                        last_acked = Some(seq);
                    }
                }
                Op::ReAck => {
                    if let Some(seq) = last_acked {
                        s.acknowledge_through(seq).expect("repeated ack");
                    }
                }
                Op::Read(n) => {
                    let got = s.read_pending(n).expect("read");
                    let want: Vec<_> = pending.iter().take(n).cloned().collect();
                    prop_assert_eq!(got, want);
                }
                Op::Reopen => {
                    drop(spool.take());
                    spool = Some(open(dir.path(), cfg));
                }
                Op::TornAppendThenReopen { payload, kept } => {
                    drop(spool.take());
                    if let Some(newest) = segment_files(dir.path()).pop() {
                        let frame = frame(&payload);
                        let kept = 1 + kept % (frame.len() - 1);
                        let mut file = OpenOptions::new().append(true).open(&newest).expect("open");
                        file.write_all(&frame[..kept]).expect("write partial frame");
                    }
                    spool = Some(open(dir.path(), cfg));
                }
            }
            let s = spool.as_ref().expect("spool is open");
            let all = read_all(s);
            let seqs: HashSet<u64> = all.iter().map(|r| r.0).collect();
            prop_assert_eq!(seqs.len(), all.len(), "a record returned twice");
            prop_assert_eq!(all, pending.iter().cloned().collect::<Vec<_>>());
            prop_assert_eq!(s.pending_count(), pending.len() as u64);
            prop_assert_eq!(s.is_empty(), pending.is_empty());
            let on_disk: u64 = segment_files(dir.path())
                .iter()
                .map(|p| fs::metadata(p).expect("stat").len())
                .sum();
            prop_assert_eq!(s.bytes_used(), on_disk);
            prop_assert!(s.bytes_used() <= cfg.max_bytes);
        }
    }
}
