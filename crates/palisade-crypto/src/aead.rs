//! AES-256-GCM through aws-lc-rs: the one AEAD every layer of the crate uses
//! (data under a DEK, DEKs under a local KEK, the local key file under the
//! master key), always with a fresh random 96-bit nonce.
//!
//! Random nonces are safe for at most 2^32 encryptions under one key
//! (NIST SP 800-38D §8.3): beyond that the chance of a repeated nonce, which
//! breaks GCM's confidentiality and integrity, exceeds 2^-32. The keyring
//! counts uses per key and rotates before that ([`SAFE_RANDOM_NONCE_LIMIT`]).

use crate::error::{CryptoError, Result};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use std::fmt;
use zeroize::Zeroizing;

/// Length of an AES-256 key.
pub const KEY_LEN: usize = 32;
/// Length of the GCM nonce (96 bits).
pub const NONCE_BYTES: usize = NONCE_LEN;
/// Length of the GCM tag (128 bits).
pub const TAG_LEN: usize = 16;

/// Encryptions with random 96-bit nonces one key may perform (2^32, NIST SP
/// 800-38D §8.3). Every counter in the crate stops a key before this.
pub const SAFE_RANDOM_NONCE_LIMIT: u64 = 1 << 32;

/// 32 bytes of key material: zeroed on drop, never printed.
#[derive(Clone)]
pub struct KeyBytes(Zeroizing<[u8; KEY_LEN]>);

impl KeyBytes {
    /// Fresh random key material from the system generator.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|_| CryptoError::Random)?;
        Ok(Self(bytes))
    }

    /// Wraps exactly 32 bytes; anything else is `Invalid`.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let array: [u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::Invalid {
            field: "key",
            reason: format!("must be {KEY_LEN} bytes"),
        })?;
        Ok(Self(Zeroizing::new(array)))
    }

    /// The key itself. Never log what this returns.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyBytes([redacted])")
    }
}

/// An AES-256-GCM key ready to seal and open. aws-lc-rs keeps the expanded
/// key in its own context and cleanses it when the context is freed.
pub struct AeadKey {
    key: LessSafeKey,
}

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AeadKey([redacted])")
    }
}

impl AeadKey {
    /// The key for `bytes`.
    pub fn new(bytes: &KeyBytes) -> Result<Self> {
        let unbound =
            UnboundKey::new(&AES_256_GCM, bytes.expose()).map_err(|_| CryptoError::Invalid {
                field: "key",
                reason: "not an AES-256 key".into(),
            })?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Appends `nonce ‖ ciphertext ‖ tag` of `plaintext` to `out`, with a
    /// fresh random nonce.
    pub fn seal_append(&self, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let mut nonce = [0u8; NONCE_BYTES];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        self.seal_append_under(nonce, aad, plaintext, out)
    }

    /// [`AeadKey::seal_append`] under a nonce the caller drew from the system
    /// generator ([`NoncePool`]) and uses for this one message only.
    pub(crate) fn seal_append_under(
        &self,
        nonce: [u8; NONCE_BYTES],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        out.reserve(NONCE_BYTES + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[start..],
            )
            .map_err(|_| CryptoError::Invalid {
                field: "plaintext",
                reason: "too large for AES-GCM".into(),
            })?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// `nonce ‖ ciphertext ‖ tag` of `plaintext` as a new buffer.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(NONCE_BYTES + plaintext.len() + TAG_LEN);
        self.seal_append(aad, plaintext, &mut out)?;
        Ok(out)
    }

    /// Opens `nonce ‖ ciphertext ‖ tag`. The plaintext is zeroed when dropped.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_BYTES + TAG_LEN {
            return Err(CryptoError::Malformed("shorter than a nonce and a tag"));
        }
        let (nonce, rest) = sealed.split_at(NONCE_BYTES);
        self.open_parts(nonce, aad, rest)
    }

    /// Opens `ciphertext ‖ tag` under `nonce` (12 bytes) into a plain
    /// buffer: for data, whose plaintext the caller owns anyway. Key
    /// material goes through [`AeadKey::open_parts`], which zeroes it on
    /// drop (zeroing is byte by byte and would cost more than the
    /// decryption itself on large messages).
    #[inline]
    pub fn open_data(
        &self,
        nonce: &[u8],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<Vec<u8>> {
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| CryptoError::Malformed("nonce is not 12 bytes"))?;
        if ciphertext_and_tag.len() < TAG_LEN {
            return Err(CryptoError::Malformed("shorter than a tag"));
        }
        let mut buffer = ciphertext_and_tag.to_vec();
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(aad), buffer.as_mut_slice())
            .map_err(|_| CryptoError::DecryptFailed)?
            .len();
        buffer.truncate(plain_len);
        Ok(buffer)
    }

    /// Opens `ciphertext ‖ tag` under `nonce` (12 bytes); the plaintext is
    /// zeroed when dropped.
    pub fn open_parts(
        &self,
        nonce: &[u8],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| CryptoError::Malformed("nonce is not 12 bytes"))?;
        if ciphertext_and_tag.len() < TAG_LEN {
            return Err(CryptoError::Malformed("shorter than a tag"));
        }
        let mut buffer = Zeroizing::new(ciphertext_and_tag.to_vec());
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(aad), buffer.as_mut_slice())
            .map_err(|_| CryptoError::DecryptFailed)?
            .len();
        buffer.truncate(plain_len);
        Ok(buffer)
    }
}

/// Random nonces drawn from the system generator in batches, for code that
/// seals many small messages in one go (field-level encryption). One call to
/// the generator costs more than sealing a short field (aws-lc's CTR-DRBG
/// re-keys on every call), so a batch of nonces comes from one call. Each
/// nonce is still 96 independent random bits, handed out once; unused ones
/// are dropped with the pool, never reused.
#[derive(Debug)]
pub(crate) struct NoncePool {
    bytes: [u8; NONCE_BYTES * NoncePool::MAX_BATCH],
    batch: usize,
    next: usize,
    filled: usize,
}

impl NoncePool {
    /// Most nonces drawn in one call.
    const MAX_BATCH: usize = 16;

    /// A pool that draws `batch` nonces per call (clamped to 1..=16): the
    /// number of messages expected, so none are drawn in vain.
    pub(crate) fn new(batch: usize) -> Self {
        Self {
            bytes: [0; NONCE_BYTES * Self::MAX_BATCH],
            batch: batch.clamp(1, Self::MAX_BATCH),
            next: 0,
            filled: 0,
        }
    }

    /// The next unused nonce.
    pub(crate) fn take(&mut self) -> Result<[u8; NONCE_BYTES]> {
        if self.next == self.filled {
            let len = self.batch * NONCE_BYTES;
            aws_lc_rs::rand::fill(&mut self.bytes[..len]).map_err(|_| CryptoError::Random)?;
            self.next = 0;
            self.filled = len;
        }
        let mut nonce = [0u8; NONCE_BYTES];
        nonce.copy_from_slice(&self.bytes[self.next..self.next + NONCE_BYTES]);
        self.next += NONCE_BYTES;
        Ok(nonce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AeadKey {
        let bytes = KeyBytes::generate().unwrap_or_else(|e| panic!("{e}"));
        AeadKey::new(&bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn seals_and_opens_with_the_same_aad_only() {
        let key = key();
        let sealed = key.seal(b"ctx", b"hello").unwrap_or_default();
        assert_eq!(sealed.len(), NONCE_BYTES + 5 + TAG_LEN);
        assert_eq!(
            key.open(b"ctx", &sealed).map(|p| p.to_vec()),
            Ok(b"hello".to_vec())
        );
        assert_eq!(key.open(b"other", &sealed), Err(CryptoError::DecryptFailed));
    }

    #[test]
    fn two_seals_of_one_plaintext_differ() {
        let key = key();
        assert_ne!(key.seal(b"", b"same").ok(), key.seal(b"", b"same").ok());
    }

    #[test]
    fn short_input_is_malformed_not_a_panic() {
        let key = key();
        for len in 0..NONCE_BYTES + TAG_LEN {
            assert!(matches!(
                key.open(b"", &vec![0u8; len]),
                Err(CryptoError::Malformed(_))
            ));
        }
    }

    #[test]
    fn pooled_nonces_are_never_repeated_across_refills() {
        let mut pool = NoncePool::new(3);
        let nonces: std::collections::HashSet<_> =
            (0..50).map(|_| pool.take().unwrap_or_default()).collect();
        assert_eq!(nonces.len(), 50);
        assert!(!nonces.contains(&[0u8; NONCE_BYTES]));
    }

    #[test]
    fn a_pooled_nonce_seals_like_a_fresh_one() {
        let key = key();
        let mut pool = NoncePool::new(2);
        let mut sealed = Vec::new();
        let nonce = pool.take().unwrap_or_default();
        assert!(
            key.seal_append_under(nonce, b"ctx", b"hi", &mut sealed)
                .is_ok()
        );
        assert_eq!(sealed[..NONCE_BYTES], nonce);
        assert_eq!(
            key.open(b"ctx", &sealed).map(|p| p.to_vec()),
            Ok(b"hi".to_vec())
        );
    }

    #[test]
    fn key_material_is_redacted_in_debug() {
        let bytes = KeyBytes::from_slice(&[0x41; 32]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(format!("{bytes:?}"), "KeyBytes([redacted])");
        assert!(KeyBytes::from_slice(&[0; 31]).is_err());
    }
}
