//! The crate's one error type. Every variant is something a caller can act on,
//! and none carries key material, plaintext or an excerpt of a ciphertext.
//!
//! How the HTTP layer maps them: `Malformed`, `UnsupportedFormat`,
//! `UnsupportedAlgorithm` and `Invalid*` → 400/422 (the input cannot be what
//! it claims), `DecryptFailed`, `UnknownKey`, `UnknownKeyVersion` → 422 (a
//! well-formed ciphertext that does not open here), `Shredded` → 410,
//! `KmsUnavailable`/`StoreUnavailable` → 503, the rest (`KmsDenied` too) → 500.

/// Everything that can go wrong in `palisade-crypto`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    /// The bytes are not a ciphertext of this format: truncated, a bad magic
    /// number, a length that does not fit, bad text encoding.
    #[error("malformed ciphertext: {0}")]
    Malformed(&'static str),
    /// A ciphertext of a format version this build does not know.
    #[error("unsupported ciphertext format version {0}")]
    UnsupportedFormat(u8),
    /// A ciphertext naming an algorithm this build does not know.
    #[error("unsupported algorithm id {0}")]
    UnsupportedAlgorithm(u8),
    /// Authentication failed: the wrong associated data, the wrong key, or a
    /// ciphertext changed after it was made. Deliberately one variant: which
    /// of these it was is not told (it would be an oracle).
    #[error("decryption failed: wrong associated data or key, or the ciphertext was altered")]
    DecryptFailed,
    /// No key of that name exists in the keyring.
    #[error("unknown key {0:?}")]
    UnknownKey(String),
    /// The key exists but has no such version (never made, or the ciphertext
    /// names a version that was altered).
    #[error("key {name:?} has no version {version}")]
    UnknownKeyVersion {
        /// The key's name.
        name: String,
        /// The version asked for.
        version: u32,
    },
    /// The subject's key was destroyed (crypto-shredding): its data is erased
    /// for good. Distinct from `DecryptFailed`, so callers can show "erased".
    #[error("the data of subject {0:?} was erased: its key was destroyed")]
    Shredded(String),
    /// A key name, subject id or index name that is not allowed.
    #[error("invalid {what}: {reason}")]
    InvalidName {
        /// `key name`, `subject id`, ...
        what: &'static str,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A request argument outside its allowed range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The argument.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A plaintext larger than one message may be.
    #[error("message too large: at most {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// A JSON path that does not parse, or a document that does not have the
    /// shape the operation needs at that path.
    #[error("JSON path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given, truncated to 128 characters.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key management service cannot be reached (or its breaker is
    /// open); a retry may succeed.
    #[error("key management service unavailable: {0}")]
    KmsUnavailable(String),
    /// The key management service answered with an error.
    #[error("key management service error: {0}")]
    Kms(String),
    /// The key management service refused Palisade's credentials or
    /// permissions (AWS KMS `AccessDeniedException`, an unknown or expired
    /// access key). Not retried: an operator must fix the credentials.
    #[error("key management service denied access: {0}")]
    KmsDenied(String),
    /// The master key of the local KMS is missing or unusable.
    #[error("master key: {0}")]
    MasterKey(String),
    /// The local KMS key file cannot be read, opened or written.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong (never its content).
        reason: String,
    },
    /// The database holding the keyring's state is unreachable.
    #[error("keyring store unavailable: {0}")]
    StoreUnavailable(String),
    /// The keyring's database failed otherwise.
    #[error("keyring store error: {0}")]
    Store(String),
    /// A stored record that cannot be used (bad version, bad length).
    #[error("corrupt keyring record: {0}")]
    Corrupt(String),
    /// The system random generator failed; nothing was encrypted.
    #[error("the system random generator failed")]
    Random,
}

/// The crate's result type.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;

/// At most `max` characters of `text`, for echoing names in errors.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
