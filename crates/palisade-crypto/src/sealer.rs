//! [`SecretSealer`]: how Palisade keeps its own secrets at rest (JWT signing
//! keys, refresh-token material, webhook secrets): sealed by the keyring key
//! `palisade-internal`, never stored in clear.
//!
//! ```no_run
//! # async fn example(keyring: palisade_crypto::Keyring) -> Result<(), palisade_crypto::CryptoError> {
//! use palisade_crypto::SecretSealer;
//! let sealer = SecretSealer::new(keyring);
//! let sealed: Vec<u8> = sealer.seal(b"jwt-signing-key:kid-42", b"pkcs8 bytes").await?;
//! // ... store `sealed` (bytes; or `seal_text` for a text column) ...
//! let opened = sealer.open(b"jwt-signing-key:kid-42", &sealed).await?;
//! assert_eq!(&opened[..], b"pkcs8 bytes");
//! # Ok(()) }
//! ```
//!
//! `purpose_aad` names what the secret is and whose (for example
//! `b"jwt-signing-key:<kid>"`): a sealed value opens only with the same
//! purpose, so one stored secret cannot be swapped for another. Sealed values
//! survive key rotation (old versions keep opening) and open on every
//! instance sharing the keyring. The key is created on first use.

use crate::envelope::{self, Envelope, KeyKind};
use crate::error::{CryptoError, Result};
use crate::keyring::{INTERNAL_KEY, Keyring};
use zeroize::Zeroizing;

/// Domain separation: a sealed secret's AAD never equals an AAD a caller of
/// the HTTP API can produce (those start with the tenant).
const SEALER_AAD_PREFIX: &[u8] = b"palisade sealed secret v1\0";

/// Seals and opens Palisade's own secrets with the keyring key
/// [`INTERNAL_KEY`] (`palisade-internal`). Cheap to clone.
#[derive(Debug, Clone)]
pub struct SecretSealer {
    keyring: Keyring,
}

impl SecretSealer {
    /// The sealer on `keyring`.
    pub fn new(keyring: Keyring) -> Self {
        Self { keyring }
    }

    /// The keyring behind it.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Seals `plaintext` for `purpose_aad`; the result is the binary
    /// ciphertext format (see [`crate::envelope`]).
    pub async fn seal(&self, purpose_aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let aad = aad(purpose_aad);
        match self.keyring.encrypt(INTERNAL_KEY, plaintext, &aad).await {
            Err(CryptoError::UnknownKey(_)) => {
                self.keyring.ensure_key(INTERNAL_KEY).await?;
                self.keyring.encrypt(INTERNAL_KEY, plaintext, &aad).await
            }
            other => other,
        }
    }

    /// Opens what [`SecretSealer::seal`] made for the same `purpose_aad`.
    /// Only ciphertexts of `palisade-internal` are accepted. The plaintext is
    /// zeroed when dropped.
    pub async fn open(&self, purpose_aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let envelope = Envelope::parse(sealed)?;
        if envelope.kind != KeyKind::Keyring || envelope.key_id != INTERNAL_KEY {
            return Err(CryptoError::DecryptFailed);
        }
        let plain = self
            .keyring
            .open_envelope(&envelope, &aad(purpose_aad))
            .await?;
        Ok(Zeroizing::new(plain))
    }

    /// [`SecretSealer::seal`] in the text form (`pal1.…`), for text columns.
    pub async fn seal_text(&self, purpose_aad: &[u8], plaintext: &[u8]) -> Result<String> {
        Ok(envelope::to_text(&self.seal(purpose_aad, plaintext).await?))
    }

    /// [`SecretSealer::open`] of the text form.
    pub async fn open_text(&self, purpose_aad: &[u8], sealed: &str) -> Result<Zeroizing<Vec<u8>>> {
        self.open(purpose_aad, &envelope::from_text(sealed)?).await
    }
}

fn aad(purpose: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(SEALER_AAD_PREFIX.len() + purpose.len());
    aad.extend_from_slice(SEALER_AAD_PREFIX);
    aad.extend_from_slice(purpose);
    aad
}
