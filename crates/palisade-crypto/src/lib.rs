//! Encryption and keys for Palisade, on one crypto provider: aws-lc-rs.
//!
//! - [`envelope`]: the versioned, self-describing ciphertext format (binary
//!   and the `pal1.` text form) of AES-256-GCM envelope encryption.
//! - [`Keyring`]: named keys with versions; the newest active version
//!   encrypts, older ones still decrypt; usage counted per version and the
//!   key rotated before a GCM key meets its random-nonce limit; data keys
//!   cached ([`DekCacheSettings`]); per-subject keys that can be destroyed
//!   (crypto-shredding, [`CryptoError::Shredded`]).
//! - [`Kms`]: where the key-encryption keys live. [`kms::LocalKms`] keeps
//!   them in a key file sealed by a [`MasterKey`] from an environment variable
//!   or a file.
//! - Field-level encryption ([`Keyring::encrypt_fields`], [`JsonPath`]):
//!   chosen fields of a JSON document, each bound to its path.
//! - Blind indexes ([`Keyring::blind_index`], [`blind_index`] for the
//!   trade-off between length and leakage): equality search on encrypted
//!   columns.
//! - Rewrap jobs ([`Keyring::start_rewrap`], [`Keyring::run_rewrap`]): after
//!   a rotation, the keys Palisade stores are re-wrapped with the newest
//!   version in the background, resumably; [`Keyring::rewrap`] does the same
//!   for one ciphertext stored elsewhere. Data is never re-encrypted.
//! - [`KeyringStore`]: the keyring's state (versions, usage, subject keys,
//!   index keys), key material only ever wrapped.
//! - [`SecretSealer`]: Palisade's own secrets at rest (signing keys, token
//!   material), sealed by the key `palisade-internal`:
//!   `SecretSealer::new(keyring)`, then `seal(purpose_aad, plaintext) ->
//!   Result<Vec<u8>, CryptoError>` and `open(purpose_aad, sealed) ->
//!   Result<Zeroizing<Vec<u8>>, CryptoError>` (both `async`), plus
//!   `seal_text`/`open_text` for text columns. For tests,
//!   `SecretSealer::new(Keyring::ephemeral())`.
//!
//! Secrets are zeroized on drop and print as `[redacted]`; errors never carry
//! key material or plaintext.

pub mod aead;
pub mod blind_index;
mod dek_cache;
pub mod envelope;
mod error;
pub mod fields;
pub mod keyring;
pub mod kms;
mod master_key;
mod rewrap;
mod sealer;
pub mod store;

pub use blind_index::{BlindIndex, BlindIndexSettings, Normalization};
pub use dek_cache::{DekCacheSettings, DekCacheStats};
pub use error::{CryptoError, Result};
pub use fields::{FieldKey, JsonPath};
pub use keyring::{Keyring, KeyringSettings};
pub use kms::Kms;
pub use master_key::{MasterKey, MasterKeySource};
pub use sealer::SecretSealer;
pub use store::{KeyInfo, KeyringStore, RewrapJob, RewrapState, VersionInfo, VersionState};
/// Re-exported: plaintexts come back in it.
pub use zeroize::Zeroizing;
