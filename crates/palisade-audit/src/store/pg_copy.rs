//! PostgreSQL's binary `COPY` format, both ways: a reader of `COPY ... TO STDOUT
//! (FORMAT binary)` for the verifier, and a writer of `COPY ... FROM STDIN (FORMAT
//! binary)` for appends.
//!
//! The verifier reads every leaf of the log; through sqlx rows that is one decoded
//! row object per leaf, which costs more than hashing it. An append writes a thousand
//! rows; as `UNNEST` arrays the server builds and unpacks one array per column and
//! inserts row by row, where `COPY` inserts them in bulk. The binary copy format is
//! simple enough to read in place and to write by hand: an 11-byte signature, a
//! flags word and a header extension, then per tuple a 16-bit field count and per
//! field a 32-bit length (`-1` for NULL) and the bytes, and a field count of `-1` as
//! the trailer (<https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4>).
//! Field bytes are each type's binary send format: big-endian integers, a UUID's 16
//! bytes, and text and bytea as they are.
//!
//! The stream arrives as messages whose boundaries need not match tuples, so an
//! incomplete tail is kept until the next message completes it.

use super::AuditStoreError;
use uuid::Uuid;

/// The fixed start of every binary copy stream.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Signature, flags (4 bytes) and the header extension's length (4 bytes).
const HEADER_LEN: usize = SIGNATURE.len() + 8;
/// Flags bit 16: every tuple carries an OID; never asked for, so refused.
const FLAG_OIDS: u32 = 1 << 16;
/// The most fields a tuple may have here; the verifier's reads select at most this.
pub(crate) const MAX_FIELDS: usize = 4;

/// Where the reader is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    Header,
    Tuples,
    Trailer,
}

/// Incremental reader: [`CopyReader::feed`] each message, then [`CopyReader::finish`].
#[derive(Debug)]
pub(crate) struct CopyReader {
    position: Position,
    /// An incomplete tuple (or header) left over from earlier messages.
    pending: Vec<u8>,
}

impl CopyReader {
    pub(crate) fn new() -> Self {
        Self {
            position: Position::Header,
            pending: Vec::new(),
        }
    }

    /// Reads one message; `tuple` gets the fields (`None` for NULL) of every tuple
    /// it completes, in order.
    pub(crate) fn feed(
        &mut self,
        data: &[u8],
        mut tuple: impl FnMut(&[Option<&[u8]>]) -> Result<(), AuditStoreError>,
    ) -> Result<(), AuditStoreError> {
        if self.pending.is_empty() {
            // The usual case (PostgreSQL sends one tuple per message): no copy.
            let used = read(&mut self.position, data, &mut tuple)?;
            self.pending.extend_from_slice(&data[used..]);
        } else {
            self.pending.extend_from_slice(data);
            let used = read(&mut self.position, &self.pending, &mut tuple)?;
            self.pending.drain(..used);
        }
        Ok(())
    }

    /// Checks that the stream ended with its trailer and nothing is left over.
    pub(crate) fn finish(self) -> Result<(), AuditStoreError> {
        if self.position == Position::Trailer && self.pending.is_empty() {
            Ok(())
        } else {
            Err(corrupt("binary copy stream ended early"))
        }
    }
}

fn corrupt(what: &str) -> AuditStoreError {
    AuditStoreError::Corrupt(what.to_owned())
}

/// Reads whole items from `buf`; returns how many bytes they used (the rest is an
/// incomplete item).
fn read(
    position: &mut Position,
    buf: &[u8],
    tuple: &mut impl FnMut(&[Option<&[u8]>]) -> Result<(), AuditStoreError>,
) -> Result<usize, AuditStoreError> {
    let mut at = 0;
    loop {
        let rest = &buf[at..];
        match *position {
            Position::Header => {
                let Some(fixed) = rest.get(..HEADER_LEN) else {
                    return Ok(at);
                };
                if &fixed[..SIGNATURE.len()] != SIGNATURE {
                    return Err(corrupt("not a binary copy stream"));
                }
                if be_u32(&fixed[11..15]) & FLAG_OIDS != 0 {
                    return Err(corrupt("binary copy stream with OIDs"));
                }
                let extension = be_u32(&fixed[15..19]) as usize;
                if rest.len() - HEADER_LEN < extension {
                    return Ok(at);
                }
                at += HEADER_LEN + extension;
                *position = Position::Tuples;
            }
            Position::Tuples => {
                let Some(count) = rest.get(..2) else {
                    return Ok(at);
                };
                let count = i16::from_be_bytes([count[0], count[1]]);
                if count == -1 {
                    at += 2;
                    *position = Position::Trailer;
                    continue;
                }
                let count = usize::try_from(count)
                    .ok()
                    .filter(|&c| c <= MAX_FIELDS)
                    .ok_or_else(|| corrupt("binary copy tuple field count"))?;
                let mut fields: [Option<&[u8]>; MAX_FIELDS] = [None; MAX_FIELDS];
                let mut used = 2;
                for field in fields.iter_mut().take(count) {
                    let Some(len) = rest.get(used..used + 4) else {
                        return Ok(at);
                    };
                    let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                    used += 4;
                    if len == -1 {
                        continue; // NULL
                    }
                    let len =
                        usize::try_from(len).map_err(|_| corrupt("binary copy field length"))?;
                    let Some(bytes) = rest.get(used..used + len) else {
                        return Ok(at);
                    };
                    *field = Some(bytes);
                    used += len;
                }
                tuple(&fields[..count])?;
                at += used;
            }
            Position::Trailer => {
                return if rest.is_empty() {
                    Ok(at)
                } else {
                    Err(corrupt("data after the binary copy trailer"))
                };
            }
        }
    }
}

/// Builds a binary copy stream: [`CopyWriter::tuple`], then one call per field, and
/// [`CopyWriter::finish`] for the trailer and the whole stream.
#[derive(Debug)]
pub(crate) struct CopyWriter {
    buf: Vec<u8>,
}

impl CopyWriter {
    /// A stream whose header is already written; `capacity` bytes reserved.
    pub(crate) fn new(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity.max(HEADER_LEN));
        buf.extend_from_slice(SIGNATURE);
        buf.extend_from_slice(&0u32.to_be_bytes()); // flags: no OIDs
        buf.extend_from_slice(&0u32.to_be_bytes()); // no header extension
        Self { buf }
    }

    /// Starts a tuple of `fields` fields.
    pub(crate) fn tuple(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    /// A `smallint` field.
    pub(crate) fn int2(&mut self, value: i16) {
        self.buf.extend_from_slice(&2i32.to_be_bytes());
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    /// A `bigint` field.
    pub(crate) fn int8(&mut self, value: i64) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    /// A `uuid` field.
    pub(crate) fn uuid(&mut self, value: Uuid) {
        self.buf.extend_from_slice(&16i32.to_be_bytes());
        self.buf.extend_from_slice(value.as_bytes());
    }

    /// A `bytea` or `text` field (text as its UTF-8 bytes), or NULL.
    pub(crate) fn bytes(&mut self, value: Option<&[u8]>) -> Result<(), AuditStoreError> {
        match value {
            None => self.buf.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(bytes) => {
                let len = i32::try_from(bytes.len())
                    .map_err(|_| corrupt("field beyond the copy format's 2 GiB"))?;
                self.buf.extend_from_slice(&len.to_be_bytes());
                self.buf.extend_from_slice(bytes);
            }
        }
        Ok(())
    }

    /// Writes the trailer; returns the rest of the stream.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(bytes);
    u32::from_be_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Row = Vec<Option<Vec<u8>>>;

    /// The writer side, as PostgreSQL formats it.
    fn encode(rows: &[Row], extension: &[u8]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&(extension.len() as u32).to_be_bytes());
        out.extend_from_slice(extension);
        for row in rows {
            out.extend_from_slice(&(row.len() as i16).to_be_bytes());
            for field in row {
                match field {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(bytes) => {
                        out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                        out.extend_from_slice(bytes);
                    }
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    /// Feeds `stream` cut at `cuts` and collects the tuples.
    fn decode(stream: &[u8], cuts: &[usize]) -> Result<Vec<Row>, AuditStoreError> {
        let mut reader = CopyReader::new();
        let mut rows = Vec::new();
        let mut from = 0;
        let mut ends: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        ends.sort_unstable();
        ends.push(stream.len());
        for end in ends {
            reader.feed(&stream[from..end], |fields| {
                rows.push(fields.iter().map(|f| f.map(<[u8]>::to_vec)).collect());
                Ok(())
            })?;
            from = end;
        }
        reader.finish()?;
        Ok(rows)
    }

    fn rows() -> impl Strategy<Value = Vec<Row>> {
        let field = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40));
        proptest::collection::vec(proptest::collection::vec(field, 0..=MAX_FIELDS), 0..20)
    }

    proptest! {
        /// However the stream is cut into messages, the same tuples come out.
        #[test]
        fn any_message_boundaries_give_the_same_tuples(
            rows in rows(),
            extension in proptest::collection::vec(any::<u8>(), 0..8),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let stream = encode(&rows, &extension);
            prop_assert_eq!(decode(&stream, &cuts).map_err(|e| e.to_string()), Ok(rows));
        }

        /// A stream cut short anywhere is an error, never a shorter success.
        #[test]
        fn a_truncated_stream_is_refused(rows in rows(), cut in any::<usize>()) {
            let stream = encode(&rows, &[]);
            let cut = cut % stream.len();
            prop_assert!(decode(&stream[..cut], &[]).is_err());
        }
    }

    /// What [`CopyWriter`] makes of `rows` (all fields as bytes).
    fn write(rows: &[Row]) -> Vec<u8> {
        let mut writer = CopyWriter::new(0);
        for row in rows {
            writer.tuple(row.len() as i16);
            for field in row {
                writer.bytes(field.as_deref()).expect("small field");
            }
        }
        writer.finish()
    }

    proptest! {
        /// The writer produces exactly the stream PostgreSQL's format describes, and
        /// the reader reads it back.
        #[test]
        fn the_writer_writes_the_format(rows in rows()) {
            let written = write(&rows);
            prop_assert_eq!(&written, &encode(&rows, &[]));
            prop_assert_eq!(decode(&written, &[]).map_err(|e| e.to_string()), Ok(rows));
        }

        /// Typed fields are PostgreSQL's binary send formats.
        #[test]
        fn typed_fields_are_the_send_formats(a in any::<i16>(), b in any::<i64>(), id in any::<u128>()) {
            let mut writer = CopyWriter::new(0);
            writer.tuple(3);
            writer.int2(a);
            writer.int8(b);
            writer.uuid(Uuid::from_u128(id));
            let row = vec![
                Some(a.to_be_bytes().to_vec()),
                Some(b.to_be_bytes().to_vec()),
                Some(id.to_be_bytes().to_vec()),
            ];
            prop_assert_eq!(writer.finish(), encode(&[row], &[]));
        }
    }

    #[test]
    fn other_bytes_are_refused() {
        let good = encode(&[vec![Some(b"x".to_vec())]], &[]);
        let mut bad_signature = good.clone();
        bad_signature[0] = b'Q';
        assert!(decode(&bad_signature, &[]).is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode(&trailing, &[]).is_err());
        let mut oids = good.clone();
        oids[11..15].copy_from_slice(&FLAG_OIDS.to_be_bytes());
        assert!(decode(&oids, &[]).is_err());
        let too_many = encode(&[vec![None; MAX_FIELDS + 1]], &[]);
        assert!(decode(&too_many, &[]).is_err());
        let mut negative_length = encode(&[vec![Some(b"x".to_vec())]], &[]);
        negative_length[HEADER_LEN + 2..HEADER_LEN + 6].copy_from_slice(&(-2i32).to_be_bytes());
        assert!(decode(&negative_length, &[]).is_err());
    }
}
