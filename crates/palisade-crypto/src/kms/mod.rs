//! Key management: where the key-encryption keys (KEKs) live and the only
//! place that wraps and unwraps data keys with them.
//!
//! One concrete enum of backends (the house style, as `palisade_store::Database`),
//! not a trait object: every backend is known at build time, a `match` shows
//! what each does, and calls stay static. A KEK is named and versioned;
//! `rotate` adds a version, and every version stays able to unwrap.

#[cfg(feature = "aws-kms")]
pub mod aws;
mod local;
pub mod vault;

#[cfg(feature = "aws-kms")]
pub use aws::{AwsCredentials, AwsKms, AwsKmsConfig};
pub use local::LocalKms;
pub use vault::{VaultConfig, VaultKms};

use crate::aead::KeyBytes;
use crate::error::Result;

/// The associated data of a wrapped key: the backend's label, then the KEK's
/// name and version and what is wrapped (`context`), so a wrapped key cannot
/// be passed off as another key's, another version's or another kind. Key
/// names are at most 64 bytes (`validate_key_name`), so the length fits a byte.
pub(crate) fn wrap_aad(label: &[u8; 4], name: &str, version: u32, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(4 + 1 + name.len() + 4 + context.len());
    aad.extend_from_slice(label);
    aad.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    aad.extend_from_slice(name.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(context);
    aad
}

/// The configured key management service. Cheap to clone.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Kms {
    /// KEKs in a key file sealed by a master key (or in memory).
    Local(LocalKms),
    /// KEKs in AWS KMS, one KMS key per version (feature `aws-kms`).
    #[cfg(feature = "aws-kms")]
    Aws(AwsKms),
    /// KEKs in HashiCorp Vault / OpenBao Transit.
    Vault(VaultKms),
}

impl Kms {
    /// A local KMS whose keys live only in this process.
    pub fn in_memory() -> Self {
        Self::Local(LocalKms::in_memory())
    }

    /// The backend's name, for metrics and logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Local(_) => "local",
            #[cfg(feature = "aws-kms")]
            Self::Aws(_) => "aws",
            Self::Vault(_) => "vault",
        }
    }

    /// Creates KEK `name` unless it exists; returns its newest version.
    pub async fn create_key(&self, name: &str, now_ms: i64) -> Result<u32> {
        let result = match self {
            Self::Local(kms) => kms.create_key(name, now_ms).await,
            #[cfg(feature = "aws-kms")]
            Self::Aws(kms) => kms.create_key(name, now_ms).await,
            Self::Vault(kms) => kms.create_key(name, now_ms).await,
        };
        self.count("create_key", &result);
        result
    }

    /// Adds a version to KEK `name` and returns it.
    pub async fn rotate(&self, name: &str, now_ms: i64) -> Result<u32> {
        let result = match self {
            Self::Local(kms) => kms.rotate(name, now_ms).await,
            #[cfg(feature = "aws-kms")]
            Self::Aws(kms) => kms.rotate(name, now_ms).await,
            Self::Vault(kms) => kms.rotate(name, now_ms).await,
        };
        self.count("rotate", &result);
        result
    }

    /// Wraps `key` under version `version` of KEK `name`. `context` says what
    /// is wrapped (a DEK, a subject key, an index key) and must be given
    /// again to unwrap.
    pub async fn wrap(
        &self,
        name: &str,
        version: u32,
        key: &KeyBytes,
        context: &[u8],
    ) -> Result<Vec<u8>> {
        let result = match self {
            Self::Local(kms) => kms.wrap(name, version, key, context).await,
            #[cfg(feature = "aws-kms")]
            Self::Aws(kms) => kms.wrap(name, version, key, context).await,
            Self::Vault(kms) => kms.wrap(name, version, key, context).await,
        };
        self.count("wrap", &result);
        result
    }

    /// Unwraps a key wrapped by [`Kms::wrap`] with the same arguments.
    pub async fn unwrap(
        &self,
        name: &str,
        version: u32,
        wrapped: &[u8],
        context: &[u8],
    ) -> Result<KeyBytes> {
        let result = match self {
            Self::Local(kms) => kms.unwrap(name, version, wrapped, context).await,
            #[cfg(feature = "aws-kms")]
            Self::Aws(kms) => kms.unwrap(name, version, wrapped, context).await,
            Self::Vault(kms) => kms.unwrap(name, version, wrapped, context).await,
        };
        self.count("unwrap", &result);
        result
    }

    /// A fresh data key and its wrap under version `version` of KEK `name`
    /// bound to `context`, as [`Kms::unwrap`] opens it. AWS KMS makes the
    /// key itself (`GenerateDataKey`, one call); the others get one made
    /// here and wrapped.
    pub async fn generate_data_key(
        &self,
        name: &str,
        version: u32,
        context: &[u8],
    ) -> Result<(KeyBytes, Vec<u8>)> {
        #[cfg(feature = "aws-kms")]
        if let Self::Aws(kms) = self {
            let result = kms.generate_data_key(name, version, context).await;
            self.count("generate_data_key", &result);
            return result;
        }
        let key = KeyBytes::generate()?;
        let wrapped = self.wrap(name, version, &key, context).await?;
        Ok((key, wrapped))
    }

    /// Moves a key wrapped under `from` (name, version) to `to`, same
    /// `context`. AWS KMS does it in one call without the key leaving it
    /// (`ReEncrypt`); the others unwrap and wrap.
    pub async fn rewrap(
        &self,
        from: (&str, u32),
        to: (&str, u32),
        wrapped: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>> {
        #[cfg(feature = "aws-kms")]
        if let Self::Aws(kms) = self {
            let result = kms.rewrap(from, to, wrapped, context).await;
            self.count("rewrap", &result);
            return result;
        }
        let key = self.unwrap(from.0, from.1, wrapped, context).await?;
        self.wrap(to.0, to.1, &key, context).await
    }

    fn count<T>(&self, op: &'static str, result: &Result<T>) {
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("palisade_crypto_kms_calls_total",
            "backend" => self.backend(), "op" => op, "outcome" => outcome)
        .increment(1);
    }
}
