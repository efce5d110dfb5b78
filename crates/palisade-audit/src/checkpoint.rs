//! Signed checkpoints: C2SP signed notes (<https://c2sp.org/signed-note>)
//! with Ed25519 keys, carrying a tlog checkpoint body
//! (<https://c2sp.org/tlog-checkpoint>).
//!
//! The formats are byte-compatible with Go's `golang.org/x/mod/sumdb/note`,
//! so any third-party C2SP verifier accepts Palisade checkpoints and
//! operators can manage keys with existing tools.
//!
//! Note layout:
//!
//! ```text
//! <text, ending in a newline>
//! <blank line>
//! — <key name> <base64(4-byte key id ‖ 64-byte Ed25519 signature)>
//! ```
//!
//! The signature covers the text (including its final newline) and nothing
//! else.

use std::collections::HashSet;
use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::merkle::Hash;

/// Algorithm byte for Ed25519 keys in C2SP key strings and key ids.
const ALG_ED25519: u8 = 0x01;

/// Length of an Ed25519 seed and of an Ed25519 public key.
const ED25519_KEY_LEN: usize = 32;

/// Length of an Ed25519 signature.
const ED25519_SIG_LEN: usize = 64;

/// Start of every signature line: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Prefix of Go's signer key strings.
const SIGNER_KEY_PREFIX: &str = "PRIVATE+KEY+";

/// Cap on signature lines, as in Go, so a hostile note cannot make us
/// parse an unbounded signature block.
const MAX_SIGNATURES: usize = 100;

/// Errors from key handling, note signing/opening and checkpoint parsing.
///
/// `InvalidSignature` and `NoTrustedSignature` mean "do not trust this
/// checkpoint"; the `Malformed*` variants mean the input is not in the
/// expected format at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// A key name is empty or contains '+' or whitespace.
    #[error("invalid key name: must be non-empty without '+' or whitespace")]
    InvalidKeyName,
    /// A verifier or signer key string is not in the expected format.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// The key id in a key string does not match its name and key.
    #[error("key id does not match the key name and key")]
    KeyIdMismatch,
    /// The crypto library failed to generate or export a key.
    #[error("key operation failed in the crypto library")]
    KeyOperation,
    /// A note (or text to sign) is not a well-formed signed note.
    #[error("malformed note: {0}")]
    MalformedNote(&'static str),
    /// The note has a signature line for the trusted key that does not verify.
    #[error("signature from the trusted key does not verify")]
    InvalidSignature,
    /// The note has no signature line from the trusted key.
    #[error("note has no signature from the trusted key")]
    NoTrustedSignature,
    /// The signed text is not a valid checkpoint body.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
}

/// Key id: first 4 bytes (big-endian) of SHA-256(name ‖ '\n' ‖ 0x01 ‖ public key).
///
/// Binding the name into the id means the same key under two names gets
/// two ids, as in the Go implementation.
pub fn key_id(name: &str, public_key: &[u8; ED25519_KEY_LEN]) -> u32 {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n");
    ctx.update(&[ALG_ED25519]);
    ctx.update(public_key);
    let d = ctx.finish();
    let mut id = [0u8; 4];
    id.copy_from_slice(&d.as_ref()[..4]);
    u32::from_be_bytes(id)
}

/// Checks the key-name rules shared with Go: non-empty, no '+', no whitespace.
fn check_name(name: &str) -> Result<(), CheckpointError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(CheckpointError::InvalidKeyName);
    }
    Ok(())
}

/// Parses the 8-hex-digit key id of a key string.
fn parse_key_id(hex: &str) -> Result<u32, CheckpointError> {
    // from_str_radix alone would accept a leading '+'.
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CheckpointError::MalformedKey("key id must be 8 hex digits"));
    }
    u32::from_str_radix(hex, 16).map_err(|_| CheckpointError::MalformedKey("bad key id"))
}

/// Decodes `base64(0x01 ‖ 32 bytes)` from a key string.
fn parse_key_bytes(b64: &str) -> Result<[u8; ED25519_KEY_LEN], CheckpointError> {
    let raw = STANDARD
        .decode(b64)
        .map_err(|_| CheckpointError::MalformedKey("bad base64"))?;
    match raw.split_first() {
        Some((&ALG_ED25519, key)) => <[u8; ED25519_KEY_LEN]>::try_from(key)
            .map_err(|_| CheckpointError::MalformedKey("Ed25519 key must be 32 bytes")),
        Some(_) => Err(CheckpointError::MalformedKey("unsupported key algorithm")),
        None => Err(CheckpointError::MalformedKey("empty key")),
    }
}

/// Encodes `base64(0x01 ‖ key)` for a key string.
fn encode_key_bytes(key: &[u8]) -> String {
    let mut raw = Vec::with_capacity(1 + key.len());
    raw.push(ALG_ED25519);
    raw.extend_from_slice(key);
    STANDARD.encode(raw)
}

/// Parsed `<name>+<key id hex>+<base64 key>`, shared by both key formats.
fn split_key_string(s: &str) -> Result<(&str, u32, [u8; ED25519_KEY_LEN]), CheckpointError> {
    // Names cannot contain '+', but base64 can, so split from the left only.
    let (name, rest) = s
        .split_once('+')
        .ok_or(CheckpointError::MalformedKey("missing '+' separators"))?;
    let (id_hex, key_b64) = rest
        .split_once('+')
        .ok_or(CheckpointError::MalformedKey("missing '+' separators"))?;
    check_name(name)?;
    Ok((name, parse_key_id(id_hex)?, parse_key_bytes(key_b64)?))
}

/// Checks that text to sign is valid note text: newline-terminated, with no
/// control characters other than '\n'.
fn check_text(text: &str) -> Result<(), CheckpointError> {
    if !text.ends_with('\n') {
        return Err(CheckpointError::MalformedNote(
            "text must end with a newline",
        ));
    }
    check_no_controls(text)
}

/// Rejects ASCII control characters other than newline (as Go does), so a
/// note cannot hide content behind carriage returns or escapes.
fn check_no_controls(s: &str) -> Result<(), CheckpointError> {
    if s.chars().any(|c| c < ' ' && c != '\n') {
        return Err(CheckpointError::MalformedNote("control character"));
    }
    Ok(())
}

/// Signs notes with an Ed25519 key under a key name.
///
/// Debug output shows only the public identity, never the private key.
pub struct NoteSigner {
    name: String,
    key_id: u32,
    key_pair: Ed25519KeyPair,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl NoteSigner {
    /// Builds a signer from a 32-byte Ed25519 seed (the private key).
    pub fn from_seed(name: &str, seed: &[u8; ED25519_KEY_LEN]) -> Result<Self, CheckpointError> {
        check_name(name)?;
        let key_pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| CheckpointError::MalformedKey("Ed25519 seed rejected"))?;
        Ok(Self::with_key_pair(name, key_pair))
    }

    /// Generates a fresh key from the system CSPRNG (via aws-lc-rs).
    pub fn generate(name: &str) -> Result<Self, CheckpointError> {
        check_name(name)?;
        let key_pair = Ed25519KeyPair::generate().map_err(|_| CheckpointError::KeyOperation)?;
        Ok(Self::with_key_pair(name, key_pair))
    }

    /// Parses Go's signer key format
    /// `PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 ‖ seed)>`, checking that
    /// the key id matches the key it names.
    pub fn from_signer_key(signer_key: &str) -> Result<Self, CheckpointError> {
        let rest = signer_key
            .strip_prefix(SIGNER_KEY_PREFIX)
            .ok_or(CheckpointError::MalformedKey("missing PRIVATE+KEY+ prefix"))?;
        let (name, id, seed) = split_key_string(rest)?;
        let signer = Self::from_seed(name, &seed)?;
        if signer.key_id != id {
            return Err(CheckpointError::KeyIdMismatch);
        }
        Ok(signer)
    }

    fn with_key_pair(name: &str, key_pair: Ed25519KeyPair) -> Self {
        let key_id = key_id(name, &public_key_bytes(&key_pair));
        Self {
            name: name.to_owned(),
            key_id,
            key_pair,
        }
    }

    /// Key name, as it appears on signature lines.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key id, as it prefixes each signature.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Public verifier key string `<name>+<key id hex>+<base64(0x01 ‖ pubkey)>`,
    /// for publishing to anyone who checks checkpoints.
    pub fn verifier_key(&self) -> String {
        let public = public_key_bytes(&self.key_pair);
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_key_bytes(&public)
        )
    }

    /// The matching [`NoteVerifier`].
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            public_key: public_key_bytes(&self.key_pair),
        }
    }

    /// SECRET: the private key in Go's signer key format, for storing in
    /// configuration. Never log the returned string.
    ///
    /// Returns a `Result` because the seed is exported from the crypto
    /// library on demand instead of keeping a second copy in memory.
    pub fn signer_key(&self) -> Result<String, CheckpointError> {
        let seed: Curve25519SeedBin<'static> = self
            .key_pair
            .seed()
            .and_then(|s| s.as_be_bytes())
            .map_err(|_| CheckpointError::KeyOperation)?;
        Ok(format!(
            "{SIGNER_KEY_PREFIX}{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_key_bytes(seed.as_ref())
        ))
    }

    /// Signs `text` and returns the whole note: the text, a blank line and
    /// one signature line.
    pub fn sign_note(&self, text: &str) -> Result<String, CheckpointError> {
        check_text(text)?;
        let sig = self.key_pair.sign(text.as_bytes());
        let mut payload = Vec::with_capacity(4 + ED25519_SIG_LEN);
        payload.extend_from_slice(&self.key_id.to_be_bytes());
        payload.extend_from_slice(sig.as_ref());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(payload)
        ))
    }
}

/// Raw 32-byte public key of a key pair.
fn public_key_bytes(key_pair: &Ed25519KeyPair) -> [u8; ED25519_KEY_LEN] {
    let mut out = [0u8; ED25519_KEY_LEN];
    // An Ed25519 public key is always 32 bytes.
    out.copy_from_slice(key_pair.public_key().as_ref());
    out
}

/// Verifies notes signed by one Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    public_key: [u8; ED25519_KEY_LEN],
}

impl NoteVerifier {
    /// Parses a verifier key string `<name>+<key id hex>+<base64(0x01 ‖ pubkey)>`,
    /// checking that the key id matches the name and key.
    pub fn from_verifier_key(verifier_key: &str) -> Result<Self, CheckpointError> {
        let (name, id, public_key) = split_key_string(verifier_key)?;
        if key_id(name, &public_key) != id {
            return Err(CheckpointError::KeyIdMismatch);
        }
        Ok(Self {
            name: name.to_owned(),
            key_id: id,
            public_key,
        })
    }

    /// Key name this verifier looks for on signature lines.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key id this verifier looks for in signatures.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The verifier key string (key id in lowercase hex).
    pub fn verifier_key(&self) -> String {
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_key_bytes(&self.public_key)
        )
    }

    /// Checks a signed note and returns its text if it carries a valid
    /// signature from this key.
    ///
    /// Signatures from other keys (for example witness cosignatures) are
    /// ignored but must still be well-formed. Fails on a malformed note, on
    /// a bad signature from this key, on duplicate signature lines, and when
    /// this key did not sign.
    pub fn open_note<'a>(&self, note: &'a str) -> Result<&'a str, CheckpointError> {
        check_no_controls(note)?;
        // The signature block starts after the last blank line; signature
        // lines are never empty, so the text cannot be cut short.
        let split = note
            .rfind("\n\n")
            .ok_or(CheckpointError::MalformedNote("missing blank line"))?;
        let text = &note[..=split];
        let sigs = &note[split + 2..];
        let sigs = sigs
            .strip_suffix('\n')
            .ok_or(CheckpointError::MalformedNote(
                "missing signature or final newline",
            ))?;

        let mut seen = HashSet::new();
        let mut verified = false;
        for (count, line) in sigs.split('\n').enumerate() {
            if count >= MAX_SIGNATURES {
                return Err(CheckpointError::MalformedNote("too many signatures"));
            }
            if !seen.insert(line) {
                return Err(CheckpointError::MalformedNote("duplicate signature line"));
            }
            let sig = SignatureLine::parse(line)?;
            if sig.name != self.name || sig.key_id != self.key_id {
                continue;
            }
            if verified {
                return Err(CheckpointError::MalformedNote("key signed twice"));
            }
            self.verify(text, &sig.signature)?;
            verified = true;
        }
        if verified {
            Ok(text)
        } else {
            Err(CheckpointError::NoTrustedSignature)
        }
    }

    /// Verifies one Ed25519 signature over the note text.
    fn verify(&self, text: &str, signature: &[u8]) -> Result<(), CheckpointError> {
        UnparsedPublicKey::new(&signature::ED25519, &self.public_key)
            .verify(text.as_bytes(), signature)
            .map_err(|_| CheckpointError::InvalidSignature)
    }
}

/// One parsed `— <name> <base64>` line.
struct SignatureLine<'a> {
    name: &'a str,
    key_id: u32,
    /// Signature bytes after the 4-byte key id; length unchecked here, so
    /// non-Ed25519 signatures from other keys still parse.
    signature: Vec<u8>,
}

impl<'a> SignatureLine<'a> {
    fn parse(line: &'a str) -> Result<Self, CheckpointError> {
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or(CheckpointError::MalformedNote(
                "signature line must start with '— '",
            ))?;
        let (name, b64) = rest.split_once(' ').ok_or(CheckpointError::MalformedNote(
            "signature line needs a name and a signature",
        ))?;
        check_name(name).map_err(|_| CheckpointError::MalformedNote("bad signature key name"))?;
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| CheckpointError::MalformedNote("bad signature base64"))?;
        // Go requires a key id and at least one signature byte.
        if raw.len() < 5 {
            return Err(CheckpointError::MalformedNote("signature too short"));
        }
        let (id, signature) = raw.split_at(4);
        let mut id_bytes = [0u8; 4];
        id_bytes.copy_from_slice(id);
        Ok(Self {
            name,
            key_id: u32::from_be_bytes(id_bytes),
            signature: signature.to_vec(),
        })
    }
}

/// A tlog checkpoint: the log's identity, size and root hash at one point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Log identity (first line), conventionally a schema-less URL; it stops
    /// a checkpoint of one log from being replayed as another's.
    pub origin: String,
    /// Number of leaves in the tree.
    pub size: u64,
    /// RFC 6962 root hash of the tree of `size` leaves.
    pub root: Hash,
}

impl Checkpoint {
    /// Checkpoint body: `origin\nsize\nbase64(root)\n`. No extension lines
    /// are written.
    pub fn to_body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Parses a checkpoint body strictly: exactly three lines, a non-empty
    /// origin, a canonical decimal size and a 32-byte root in padded std
    /// base64.
    ///
    /// Extension lines are rejected: Palisade never writes them, and
    /// dropping signed content silently would misreport what was signed.
    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MalformedCheckpoint(
                "body must end with a newline",
            ))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root), None) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::MalformedCheckpoint(
                "expected exactly origin, size and root lines",
            ));
        };
        check_origin(origin)?;
        let checkpoint = Self {
            origin: origin.to_owned(),
            size: parse_size(size)?,
            root: parse_root(root)?,
        };
        // Parsing is strict, so re-encoding must give back the exact bytes;
        // this guards against any leniency in the decoders above.
        if checkpoint.to_body() != text {
            return Err(CheckpointError::MalformedCheckpoint(
                "non-canonical encoding",
            ));
        }
        Ok(checkpoint)
    }

    /// Signs the checkpoint and returns the signed note.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, CheckpointError> {
        check_origin(&self.origin)?;
        signer.sign_note(&self.to_body())
    }

    /// Verifies a signed checkpoint note with `verifier` and parses its body.
    pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Self, CheckpointError> {
        let text = verifier.open_note(note)?;
        Self::parse_body(text)
    }
}

/// Origin must be non-empty and free of control characters (a newline
/// would shift the size and root lines).
fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    if origin.is_empty() || origin.chars().any(char::is_control) {
        return Err(CheckpointError::MalformedCheckpoint(
            "origin must be non-empty without control characters",
        ));
    }
    Ok(())
}

/// Parses a decimal `u64` without sign or leading zeros.
fn parse_size(s: &str) -> Result<u64, CheckpointError> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err(CheckpointError::MalformedCheckpoint(
            "size must be a decimal number without leading zeros",
        ));
    }
    s.parse()
        .map_err(|_| CheckpointError::MalformedCheckpoint("size does not fit in u64"))
}

/// Decodes the root line: padded std base64 of exactly 32 bytes.
fn parse_root(s: &str) -> Result<Hash, CheckpointError> {
    let raw = STANDARD
        .decode(s)
        .map_err(|_| CheckpointError::MalformedCheckpoint("root is not valid base64"))?;
    Hash::try_from(raw.as_slice())
        .map_err(|_| CheckpointError::MalformedCheckpoint("root must be 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known answer from golang.org/x/mod/sumdb/note note_test.go (TestSign,
    // TestNewVerifier), the reference implementation of signed notes.
    const GO_SIGNER_KEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VERIFIER_KEY: &str =
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_SIG_LINE: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    // Example from the C2SP signed-note specification.
    const SPEC_VERIFIER_KEY: &str =
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

    fn signer(name: &str, fill: u8) -> NoteSigner {
        NoteSigner::from_seed(name, &[fill; 32]).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "palisade.example/audit".to_owned(),
            size: 1234,
            root: [7; 32],
        }
    }

    #[test]
    fn go_known_answer() {
        let s = NoteSigner::from_signer_key(GO_SIGNER_KEY).unwrap();
        assert_eq!(s.name(), "PeterNeumann");
        assert_eq!(s.key_id(), 0xc74f20a3);
        assert_eq!(s.verifier_key(), GO_VERIFIER_KEY);
        assert_eq!(s.signer_key().unwrap(), GO_SIGNER_KEY);
        let note = s.sign_note(GO_TEXT).unwrap();
        assert_eq!(note, format!("{GO_TEXT}\n{GO_SIG_LINE}"));

        let v = NoteVerifier::from_verifier_key(GO_VERIFIER_KEY).unwrap();
        assert_eq!(v, s.verifier());
        assert_eq!(v.verifier_key(), GO_VERIFIER_KEY);
        assert_eq!(v.open_note(&note), Ok(GO_TEXT));
    }

    #[test]
    fn spec_example_opens() {
        let v = NoteVerifier::from_verifier_key(SPEC_VERIFIER_KEY).unwrap();
        assert_eq!(v.open_note(SPEC_NOTE), Ok("This is an example message.\n"));
        // The Go key must not accept the spec note.
        let go = NoteVerifier::from_verifier_key(GO_VERIFIER_KEY).unwrap();
        assert_eq!(
            go.open_note(SPEC_NOTE),
            Err(CheckpointError::NoTrustedSignature)
        );
    }

    #[test]
    fn key_id_formula() {
        let s = signer("log.example", 9);
        let public = s.verifier().public_key;
        let mut input = b"log.example\n\x01".to_vec();
        input.extend_from_slice(&public);
        let d = digest::digest(&digest::SHA256, &input);
        assert_eq!(s.key_id().to_be_bytes(), d.as_ref()[..4]);
        // Same key under another name gets another id.
        assert_ne!(signer("other", 9).key_id(), s.key_id());
    }

    #[test]
    fn key_strings_round_trip_and_reject_junk() {
        let s = NoteSigner::generate("log.example/a").unwrap();
        let again = NoteSigner::from_signer_key(&s.signer_key().unwrap()).unwrap();
        assert_eq!(again.verifier_key(), s.verifier_key());
        assert_eq!(
            NoteVerifier::from_verifier_key(&s.verifier_key()).unwrap(),
            s.verifier()
        );

        // Debug must not leak the private key.
        let debug = format!("{s:?}");
        let secret = s.signer_key().unwrap();
        // The encoded seed is everything after the key id: base64 itself may
        // hold '+', so split off the fixed fields from the left.
        let key_id = format!("+{:08x}+", s.key_id());
        let seed_b64 = secret.split_once(&key_id).unwrap().1;
        assert!(seed_b64.len() > 40, "{seed_b64}");
        assert!(!debug.contains(seed_b64), "{debug}");
        assert!(debug.contains("redacted"));

        let bad_id = GO_VERIFIER_KEY.replace("c74f20a3", "c74f20a4");
        assert_eq!(
            NoteVerifier::from_verifier_key(&bad_id),
            Err(CheckpointError::KeyIdMismatch)
        );
        let bad_signer = GO_SIGNER_KEY.replace("c74f20a3", "00000000");
        assert_eq!(
            NoteSigner::from_signer_key(&bad_signer).unwrap_err(),
            CheckpointError::KeyIdMismatch
        );
        for junk in [
            "",
            "PeterNeumann",
            "PeterNeumann+c74f20a3",
            "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann++c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
            "PeterNeumann+c74f20a3+AhpjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+fw==",
            "PeterNeumann+c74f20a3+",
        ] {
            assert!(NoteVerifier::from_verifier_key(junk).is_err(), "{junk:?}");
        }
        assert!(NoteSigner::from_signer_key(GO_VERIFIER_KEY).is_err());
        for name in ["", "a+b", "a b", "a\tb"] {
            assert_eq!(
                NoteSigner::from_seed(name, &[1; 32]).unwrap_err(),
                CheckpointError::InvalidKeyName
            );
        }
    }

    #[test]
    fn checkpoint_round_trip() {
        let s = signer("palisade.example/audit", 1);
        let cp = checkpoint();
        let note = cp.sign(&s).unwrap();
        assert!(note.starts_with("palisade.example/audit\n1234\nBwcH"));
        assert_eq!(Checkpoint::open(&note, &s.verifier()), Ok(cp.clone()));
        assert_eq!(Checkpoint::parse_body(&cp.to_body()), Ok(cp));
        let zero = Checkpoint {
            size: 0,
            ..checkpoint()
        };
        assert_eq!(Checkpoint::parse_body(&zero.to_body()), Ok(zero));
    }

    #[test]
    fn tampered_checkpoints_fail() {
        let s = signer("palisade.example/audit", 1);
        let note = checkpoint().sign(&s).unwrap();
        let v = s.verifier();
        let root_b64 = STANDARD.encode([7u8; 32]);
        let other_root = STANDARD.encode([8u8; 32]);
        for tampered in [
            note.replace("1234\n", "1235\n"),
            note.replace(&root_b64, &other_root),
            note.replace("palisade.example/audit\n", "palisade.example/other\n"),
        ] {
            assert_ne!(tampered, note);
            assert_eq!(
                Checkpoint::open(&tampered, &v),
                Err(CheckpointError::InvalidSignature)
            );
        }
    }

    #[test]
    fn other_keys_are_ignored_but_not_trusted() {
        let ours = signer("palisade.example/audit", 1);
        let theirs = signer("palisade.example/audit", 2);
        let witness = signer("witness.example", 3);
        let cp = checkpoint();

        // Same name, different key: ignored, so nothing trusted remains.
        let forged = cp.sign(&theirs).unwrap();
        assert_eq!(
            Checkpoint::open(&forged, &ours.verifier()),
            Err(CheckpointError::NoTrustedSignature)
        );

        // Our signature plus a cosignature from another key: accepted.
        let note = cp.sign(&ours).unwrap();
        let cosig = witness.sign_note(&cp.to_body()).unwrap();
        let cosig_line = cosig.rsplit_once("\n\n").unwrap().1;
        let both = format!("{note}{cosig_line}");
        assert_eq!(Checkpoint::open(&both, &ours.verifier()), Ok(cp.clone()));
        assert_eq!(Checkpoint::open(&both, &witness.verifier()), Ok(cp));
    }

    #[test]
    fn malformed_notes_are_rejected() {
        let s = signer("palisade.example/audit", 1);
        let v = s.verifier();
        let note = checkpoint().sign(&s).unwrap();
        let (body, sig_line) = note.split_once("\n\n").unwrap();
        let sig_b64 = sig_line.rsplit_once(' ').unwrap().1.trim_end();
        let cases = [
            (
                "missing final newline",
                note.trim_end_matches('\n').to_owned(),
            ),
            ("no blank line", format!("{body}\n{sig_line}")),
            ("no signatures", format!("{body}\n\n")),
            ("hyphen instead of em dash", note.replace('\u{2014}', "-")),
            ("no space after dash", note.replace("\u{2014} ", "\u{2014}")),
            ("duplicate line", format!("{note}{sig_line}")),
            (
                "bad base64",
                note.replace(sig_b64, &sig_b64.replace('=', "")),
            ),
            (
                "foreign signature with only a key id",
                format!(
                    "{note}\u{2014} other.example {}\n",
                    STANDARD.encode([1, 2, 3, 4])
                ),
            ),
            (
                "truncated ed25519 signature",
                note.replace(sig_b64, &sig_b64[..sig_b64.len() - 8]),
            ),
            ("carriage return", note.replace("1234\n", "1234\r\n")),
            ("empty line in signatures", format!("{note}\n")),
            (
                "bad name on foreign line",
                format!("{note}\u{2014} a+b {sig_b64}\n"),
            ),
        ];
        for (what, bad) in cases {
            assert!(Checkpoint::open(&bad, &v).is_err(), "{what}: {bad:?}");
        }
        // A second, different signature line from the trusted key is
        // refused outright (not merely checked), since Ed25519 signers need
        // not be deterministic.
        let fake = STANDARD.encode([&s.key_id().to_be_bytes()[..], &[0u8; 64]].concat());
        assert_eq!(
            v.open_note(&format!("{note}\u{2014} palisade.example/audit {fake}\n")),
            Err(CheckpointError::MalformedNote("key signed twice"))
        );
        // Duplicate lines are refused even from keys we do not check.
        let witness = signer("witness.example", 3)
            .sign_note(&checkpoint().to_body())
            .unwrap();
        let cosig = witness.rsplit_once("\n\n").unwrap().1;
        assert_eq!(
            v.open_note(&format!("{note}{cosig}{cosig}")),
            Err(CheckpointError::MalformedNote("duplicate signature line"))
        );
        assert!(v.open_note(&format!("{note}{cosig}")).is_ok());

        // Our key id and a valid signature, but under another name: the
        // line belongs to another key, so nothing trusted remains.
        let renamed = note.replace(
            "\u{2014} palisade.example/audit ",
            "\u{2014} other.example ",
        );
        assert_ne!(renamed, note);
        assert_eq!(
            v.open_note(&renamed),
            Err(CheckpointError::NoTrustedSignature)
        );

        // At most 100 signature lines, as in Go.
        let foreign = |i: u32| {
            format!(
                "\u{2014} k{i} {}\n",
                STANDARD.encode(i.to_be_bytes().repeat(17))
            )
        };
        let many: String = (0..99).map(foreign).collect();
        assert!(v.open_note(&format!("{note}{many}")).is_ok());
        let too_many: String = (0..100).map(foreign).collect();
        assert_eq!(
            v.open_note(&format!("{note}{too_many}")),
            Err(CheckpointError::MalformedNote("too many signatures"))
        );

        assert!(s.sign_note("no newline").is_err());
        assert!(s.sign_note("bell\u{7}\n").is_err());
    }

    #[test]
    fn malformed_bodies_are_rejected() {
        let leading_zero = format!("o\n01\n{}\n", STANDARD.encode([0u8; 32]));
        assert_eq!(
            Checkpoint::parse_body(&leading_zero),
            Err(CheckpointError::MalformedCheckpoint(
                "size must be a decimal number without leading zeros"
            ))
        );
        let root = STANDARD.encode([7u8; 32]);
        let bodies = [
            format!("origin\n1234\n{root}"),
            format!("\n1234\n{root}\n"),
            format!("origin\n01234\n{root}\n"),
            format!("origin\n+1234\n{root}\n"),
            format!("origin\n-1\n{root}\n"),
            format!("origin\n\n{root}\n"),
            format!("origin\n 1234\n{root}\n"),
            format!("origin\n18446744073709551616\n{root}\n"),
            format!("origin\n1234\n{}\n", STANDARD.encode([7u8; 31])),
            format!("origin\n1234\n{}\n", STANDARD.encode([7u8; 33])),
            format!("origin\n1234\n{}\n", root.trim_end_matches('=')),
            "origin\n1234\nnot base64!\n".to_owned(),
            format!("origin\n1234\n{root}\nextension line\n"),
            "origin\n1234\n".to_owned(),
        ];
        for body in bodies {
            assert!(Checkpoint::parse_body(&body).is_err(), "{body:?}");
        }
        // Largest size parses.
        let max = format!("origin\n18446744073709551615\n{root}\n");
        assert_eq!(Checkpoint::parse_body(&max).unwrap().size, u64::MAX);
        // A checkpoint with a newline in its origin cannot be signed.
        let bad = Checkpoint {
            origin: "a\nb".to_owned(),
            ..checkpoint()
        };
        assert!(bad.sign(&signer("k", 1)).is_err());
    }
}
