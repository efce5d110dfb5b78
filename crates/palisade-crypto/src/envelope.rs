//! The ciphertext format: versioned and self-describing, so a ciphertext
//! stored years ago still says which key opens it.
//!
//! Binary form, format version 1 (integers big-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 2 | magic `PC` |
//! | 1 | format version, `1` |
//! | 1 | algorithm, `1` = AES-256-GCM |
//! | 1 | key kind: `1` keyring key (a KEK of the KMS), `2` subject key |
//! | 1 | length *n* of the key id, 1..=255 |
//! | *n* | key id (UTF-8): the key name, or the subject id |
//! | 4 | key version (≥ 1): the KEK version, or the subject key's generation |
//! | 2 | length *m* of the wrapped DEK, 1..=1024 |
//! | *m* | the data key (DEK), wrapped by that key |
//! | 12 | nonce (random) |
//! | rest | AES-256-GCM ciphertext ‖ 16-byte tag |
//!
//! The text form, for JSON and text columns, is `pal1.` followed by the
//! binary form in unpadded base64url (RFC 4648 §5).
//!
//! What protects each part: the associated data (AAD) of the data
//! encryption is the *prefix* (magic through key id) followed by the
//! caller's AAD, so the ciphertext is bound to its key id and its context.
//! The key version and the wrapped DEK are left out of the AAD on purpose:
//! rewrapping a DEK under a newer KEK version changes exactly those two
//! fields and leaves the data untouched. They are protected anyway: the
//! wrapped DEK is itself authenticated encryption under (key id, version),
//! and a DEK that is not the one the data was sealed with fails the data's
//! tag. Every structural field is checked on parsing. So a change anywhere
//! is a typed error, never garbage plaintext.

use crate::error::{CryptoError, Result};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// First two bytes of every binary ciphertext.
pub const MAGIC: [u8; 2] = *b"PC";
/// The format version this build writes.
pub const FORMAT_V1: u8 = 1;
/// Algorithm id of AES-256-GCM.
pub const ALG_AES_256_GCM: u8 = 1;
/// Prefix of the text form.
pub const TEXT_PREFIX: &str = "pal1.";
/// Longest wrapped DEK a ciphertext may carry (a KMS's wrapping is larger
/// than the local 60 bytes: Vault's `vault:vN:...` text, AWS KMS blobs).
pub const MAX_WRAPPED_DEK: usize = 1024;
/// Longest key id (key name or subject id), in bytes.
pub const MAX_KEY_ID: usize = 255;

const NONCE_LEN: usize = crate::aead::NONCE_BYTES;
const TAG_LEN: usize = crate::aead::TAG_LEN;

/// Which kind of key wraps a ciphertext's DEK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// A named key of the keyring, whose versions live in the KMS.
    Keyring,
    /// A subject's own key, destroyed to erase the subject's data.
    Subject,
}

impl KeyKind {
    fn byte(self) -> u8 {
        match self {
            Self::Keyring => 1,
            Self::Subject => 2,
        }
    }

    fn from_byte(byte: u8) -> Result<Self> {
        match byte {
            1 => Ok(Self::Keyring),
            2 => Ok(Self::Subject),
            _ => Err(CryptoError::Malformed("unknown key kind")),
        }
    }
}

/// The header of a ciphertext, everything before the nonce: built once per
/// DEK and reused by every message sealed with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    bytes: Vec<u8>,
    prefix_len: usize,
}

impl Header {
    /// The header naming key `id` of `kind` at `version`, carrying `wrapped_dek`.
    pub fn new(kind: KeyKind, id: &str, version: u32, wrapped_dek: &[u8]) -> Result<Self> {
        if id.is_empty() || id.len() > MAX_KEY_ID {
            return Err(CryptoError::InvalidName {
                what: "key id",
                reason: "must be 1 to 255 bytes",
            });
        }
        if version == 0 {
            return Err(CryptoError::Invalid {
                field: "version",
                reason: "key versions start at 1".into(),
            });
        }
        if wrapped_dek.is_empty() || wrapped_dek.len() > MAX_WRAPPED_DEK {
            return Err(CryptoError::Invalid {
                field: "wrapped_dek",
                reason: format!("must be 1 to {MAX_WRAPPED_DEK} bytes"),
            });
        }
        let mut bytes = Vec::with_capacity(12 + id.len() + wrapped_dek.len());
        bytes.extend_from_slice(&MAGIC);
        bytes.push(FORMAT_V1);
        bytes.push(ALG_AES_256_GCM);
        bytes.push(kind.byte());
        // Checked above: 1..=255.
        bytes.push(id.len() as u8);
        bytes.extend_from_slice(id.as_bytes());
        let prefix_len = bytes.len();
        bytes.extend_from_slice(&version.to_be_bytes());
        bytes.extend_from_slice(&(wrapped_dek.len() as u16).to_be_bytes());
        bytes.extend_from_slice(wrapped_dek);
        Ok(Self { bytes, prefix_len })
    }

    /// The whole header.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The part that goes into the data's AAD (magic through key id).
    pub fn prefix(&self) -> &[u8] {
        &self.bytes[..self.prefix_len]
    }

    /// The kind of key that wraps the DEK.
    pub fn kind(&self) -> KeyKind {
        // Written by `new` from a `KeyKind`, so always valid; were it not,
        // `Subject` is the kind with the stricter handling.
        KeyKind::from_byte(self.bytes[4]).unwrap_or(KeyKind::Subject)
    }
}

/// A parsed ciphertext, borrowing from the bytes it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// Which kind of key wraps the DEK.
    pub kind: KeyKind,
    /// The key name or subject id.
    pub key_id: &'a str,
    /// The key version or subject key generation.
    pub version: u32,
    /// The DEK, wrapped.
    pub wrapped_dek: &'a [u8],
    /// Magic through key id: the start of the data's AAD.
    pub prefix: &'a [u8],
    /// Key kind through wrapped DEK: what identifies the DEK.
    pub slot: &'a [u8],
    /// The nonce of the data encryption.
    pub nonce: &'a [u8],
    /// Ciphertext ‖ tag.
    pub ciphertext: &'a [u8],
    /// Everything from the nonce on (the part a rewrap keeps).
    pub sealed: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Parses a binary ciphertext, checking every structural field.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let parts = Parts::locate(bytes)?;
        // The slot: kind, id length, id, version, wrapped DEK length, wrapped
        // DEK, every length already checked against the input by `locate`.
        let mut slot = Reader {
            bytes: parts.slot,
            at: 0,
        };
        let kind = KeyKind::from_byte(slot.byte()?)?;
        let id_len = usize::from(slot.byte()?);
        if id_len == 0 {
            return Err(CryptoError::Malformed("empty key id"));
        }
        let key_id = std::str::from_utf8(slot.take(id_len)?)
            .map_err(|_| CryptoError::Malformed("key id is not UTF-8"))?;
        let version = u32::from_be_bytes(slot.array()?);
        if version == 0 {
            return Err(CryptoError::Malformed("key version 0"));
        }
        let wrapped_len = usize::from(u16::from_be_bytes(slot.array()?));
        if wrapped_len == 0 || wrapped_len > MAX_WRAPPED_DEK {
            return Err(CryptoError::Malformed(
                "wrapped data key length out of range",
            ));
        }
        let wrapped_dek = slot.take(wrapped_len)?;
        Ok(Self {
            kind,
            key_id,
            version,
            wrapped_dek,
            prefix: parts.prefix,
            slot: parts.slot,
            nonce: parts.nonce,
            ciphertext: parts.ciphertext,
            sealed: parts.sealed,
        })
    }

    /// Where its parts are.
    pub(crate) fn parts(&self) -> Parts<'a> {
        Parts {
            prefix: self.prefix,
            slot: self.slot,
            nonce: self.nonce,
            ciphertext: self.ciphertext,
            sealed: self.sealed,
        }
    }

    /// The length of the plaintext inside.
    pub fn plaintext_len(&self) -> usize {
        self.ciphertext.len() - TAG_LEN
    }
}

/// Where a ciphertext's parts are, found from its magic, format, algorithm
/// and length fields alone: all the decryption hot path needs. A slot found
/// in the DEK cache equals the slot of a header the keyring built, so its
/// fields are valid without another look; [`Envelope::parse`] checks them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts<'a> {
    /// Magic through key id: the start of the data's AAD.
    pub(crate) prefix: &'a [u8],
    /// Key kind through wrapped DEK: what identifies the DEK.
    pub(crate) slot: &'a [u8],
    /// The nonce of the data encryption.
    pub(crate) nonce: &'a [u8],
    /// Ciphertext ‖ tag.
    pub(crate) ciphertext: &'a [u8],
    /// Everything from the nonce on.
    pub(crate) sealed: &'a [u8],
}

impl<'a> Parts<'a> {
    pub(crate) fn locate(bytes: &'a [u8]) -> Result<Self> {
        let mut reader = Reader { bytes, at: 0 };
        if reader.take(2)? != MAGIC {
            return Err(CryptoError::Malformed(
                "not a Palisade ciphertext (bad magic)",
            ));
        }
        let format = reader.byte()?;
        if format != FORMAT_V1 {
            return Err(CryptoError::UnsupportedFormat(format));
        }
        let algorithm = reader.byte()?;
        if algorithm != ALG_AES_256_GCM {
            return Err(CryptoError::UnsupportedAlgorithm(algorithm));
        }
        reader.byte()?; // key kind
        let id_len = usize::from(reader.byte()?);
        reader.take(id_len)?;
        let prefix = &bytes[..reader.at];
        reader.take(4)?; // key version
        let wrapped_len = usize::from(u16::from_be_bytes(reader.array()?));
        reader.take(wrapped_len)?;
        let slot = &bytes[4..reader.at];
        let sealed = &bytes[reader.at..];
        let nonce = reader.take(NONCE_LEN)?;
        let ciphertext = &bytes[reader.at..];
        if ciphertext.len() < TAG_LEN {
            return Err(CryptoError::Malformed("truncated: no room for the tag"));
        }
        Ok(Self {
            prefix,
            slot,
            nonce,
            ciphertext,
            sealed,
        })
    }
}

/// Calls `f` with the data's AAD: the header prefix, then the caller's AAD.
/// The prefix is self-delimiting (its key id carries its length), so the
/// concatenation is unambiguous. Built on the stack when it is small, as it
/// is on every message.
#[inline]
pub(crate) fn with_data_aad<T>(prefix: &[u8], aad: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    // Stack buffers, zeroed on every call, so two sizes: 64 bytes covers a
    // typical prefix (13 bytes for `default`) and a short AAD such as a
    // record id and column name; 256 bytes most others.
    fn on_stack<const N: usize, T>(prefix: &[u8], aad: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
        let len = prefix.len() + aad.len();
        let mut buffer = [0u8; N];
        buffer[..prefix.len()].copy_from_slice(prefix);
        buffer[prefix.len()..len].copy_from_slice(aad);
        f(&buffer[..len])
    }
    let len = prefix.len() + aad.len();
    if aad.is_empty() {
        f(prefix)
    } else if len <= 64 {
        on_stack::<64, T>(prefix, aad, f)
    } else if len <= 256 {
        on_stack::<256, T>(prefix, aad, f)
    } else {
        let mut buffer = Vec::with_capacity(len);
        buffer.extend_from_slice(prefix);
        buffer.extend_from_slice(aad);
        f(&buffer)
    }
}

/// The text form of a binary ciphertext.
pub fn to_text(binary: &[u8]) -> String {
    // Encoded in one pass into a buffer of the exact size (`encode_string`
    // goes through a chunked encoder that costs a third more on the short
    // ciphertexts of fields).
    let encoded_len = (binary.len() * 4).div_ceil(3);
    let mut text = vec![0u8; TEXT_PREFIX.len() + encoded_len];
    text[..TEXT_PREFIX.len()].copy_from_slice(TEXT_PREFIX.as_bytes());
    let encoded = URL_SAFE_NO_PAD.encode_slice(binary, &mut text[TEXT_PREFIX.len()..]);
    // Base64url output and the prefix are ASCII, and the length is exact, so
    // neither fallback is ever taken; they keep this total without a panic.
    match encoded.map(|_| String::from_utf8(text)) {
        Ok(Ok(text)) => text,
        _ => {
            let mut text = String::with_capacity(TEXT_PREFIX.len() + encoded_len);
            text.push_str(TEXT_PREFIX);
            URL_SAFE_NO_PAD.encode_string(binary, &mut text);
            text
        }
    }
}

/// The binary form of a text ciphertext. Only the canonical encoding is
/// accepted (no padding, no stray bits), so one ciphertext has one text.
pub fn from_text(text: &str) -> Result<Vec<u8>> {
    let body = text
        .strip_prefix(TEXT_PREFIX)
        .ok_or(CryptoError::Malformed(
            "text ciphertext must start with pal1.",
        ))?;
    URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| CryptoError::Malformed("text ciphertext is not unpadded base64url"))
}

/// The error of a field running past the end. A function, not a value
/// built up front: `ok_or(CryptoError::…)` would build and drop an error on
/// every field read, a third of the parse's time.
fn truncated() -> CryptoError {
    CryptoError::Malformed("truncated")
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(truncated)?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_aad_is_the_prefix_then_the_callers_aad_at_every_size() {
        let prefix = b"PS\x01\x01\x01\x07default";
        for aad_len in [0, 1, 51, 52, 64, 243, 244, 300, 5000] {
            let aad: Vec<u8> = (0..aad_len).map(|i| (i % 251) as u8).collect();
            let expected = [&prefix[..], &aad].concat();
            assert_eq!(
                with_data_aad(prefix, &aad, <[u8]>::to_vec),
                expected,
                "{aad_len}"
            );
        }
    }

    fn sample() -> Vec<u8> {
        let header = Header::new(KeyKind::Keyring, "default", 3, &[7u8; 60])
            .unwrap_or_else(|e| panic!("{e}"));
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(&[1u8; NONCE_LEN]);
        bytes.extend_from_slice(b"ciphertext");
        bytes.extend_from_slice(&[2u8; TAG_LEN]);
        bytes
    }

    #[test]
    fn parses_what_the_header_writes() {
        let bytes = sample();
        let envelope = Envelope::parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(envelope.kind, KeyKind::Keyring);
        assert_eq!(envelope.key_id, "default");
        assert_eq!(envelope.version, 3);
        assert_eq!(envelope.wrapped_dek, &[7u8; 60]);
        assert_eq!(envelope.nonce, &[1u8; NONCE_LEN]);
        assert_eq!(envelope.plaintext_len(), 10);
        assert_eq!(envelope.prefix, b"PC\x01\x01\x01\x07default");
    }

    #[test]
    fn every_truncation_is_malformed() {
        let bytes = sample();
        for len in 0..bytes.len() - "ciphertext".len() {
            assert!(
                matches!(
                    Envelope::parse(&bytes[..len]),
                    Err(CryptoError::Malformed(_))
                ),
                "length {len}"
            );
        }
    }

    #[test]
    fn unknown_versions_and_algorithms_are_named() {
        let mut bytes = sample();
        bytes[2] = 2;
        assert_eq!(
            Envelope::parse(&bytes),
            Err(CryptoError::UnsupportedFormat(2))
        );
        let mut bytes = sample();
        bytes[3] = 9;
        assert_eq!(
            Envelope::parse(&bytes),
            Err(CryptoError::UnsupportedAlgorithm(9))
        );
    }

    #[test]
    fn text_form_is_the_prefix_and_standard_base64url_at_every_length() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        for len in 0..bytes.len() {
            let expected = format!("{TEXT_PREFIX}{}", URL_SAFE_NO_PAD.encode(&bytes[..len]));
            assert_eq!(to_text(&bytes[..len]), expected, "length {len}");
        }
    }

    #[test]
    fn text_form_round_trips_and_rejects_non_canonical_text() {
        let bytes = sample();
        let text = to_text(&bytes);
        assert!(text.starts_with("pal1."));
        assert_eq!(from_text(&text), Ok(bytes));
        assert!(from_text("pal2.AAAA").is_err());
        assert!(from_text(&format!("{text}=")).is_err());
        assert!(from_text("pal1.A").is_err());
        assert!(from_text("pal1.AB+/").is_err());
    }

    #[test]
    fn header_rejects_out_of_range_fields() {
        assert!(Header::new(KeyKind::Keyring, "", 1, &[1]).is_err());
        assert!(Header::new(KeyKind::Keyring, &"k".repeat(256), 1, &[1]).is_err());
        assert!(Header::new(KeyKind::Keyring, "k", 0, &[1]).is_err());
        assert!(Header::new(KeyKind::Keyring, "k", 1, &[]).is_err());
        assert!(Header::new(KeyKind::Keyring, "k", 1, &[0; MAX_WRAPPED_DEK + 1]).is_err());
    }
}
