//! Blind indexes: equality search on encrypted columns. Next to a field's
//! ciphertext, store `HMAC-SHA-256(index key, normalized value)`, truncated;
//! to find rows whose field equals `x`, compute the index of `x` and look it
//! up. The HMAC key is the index's own (never a data key), random, kept
//! wrapped by the keyring key `palisade-index`, and it never rotates: a new
//! key would change every index value (create a new index instead).
//!
//! Normalization (in this order, each optional): `trim` removes surrounding
//! whitespace, `case_fold` lowercases (Unicode simple lowercase), and
//! `digits_only` keeps only ASCII digits (phone and card numbers). Values
//! equal after normalization get equal indexes.
//!
//! # The trade-off between length and leakage
//!
//! An index leaks equality: whoever reads the column learns which rows hold
//! the same value, and from how often each index value occurs, the shape of
//! the value distribution (frequency analysis: the most common index is
//! probably the most common surname). Truncation trades that leak against
//! false positives. With `length` bytes (L = 8·length bits) and N distinct
//! values, about N²/2^(L+1) pairs of values share an index:
//!
//! - long indexes (16 to 32 bytes) are unique in practice: exact equality
//!   and exact frequencies leak, and a search returns only true matches;
//! - short indexes (2 to 4 bytes) put many values in each bucket, so a
//!   matching index no longer proves equal values and frequencies blur; a
//!   search returns extra rows the caller discards after decrypting. Choose L
//!   so that 2^L is well below the number of distinct values for that
//!   ambiguity, e.g. 2 bytes for a column of a million distinct e-mails.
//!
//! The default, 8 bytes (64 bits), makes false positives negligible (about
//! 3·10^-8 colliding pairs in a million values): exact equality search, with
//! the leakage that implies. Low-cardinality fields (booleans, countries,
//! birth years) should not be indexed at all: every index is guessable by
//! trying every value. Indexes are also bound to a context (the HTTP API
//! passes the tenant), so the same value in two tenants indexes differently.

use crate::aead::KeyBytes;
use crate::error::{CryptoError, Result};
use crate::keyring::{INDEX_KEY, Keyring, validate_key_name};
use crate::store::IndexKeyRecord;
use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Shortest index, in bytes.
pub const MIN_LENGTH: usize = 2;
/// Longest index (the whole HMAC-SHA-256), in bytes.
pub const MAX_LENGTH: usize = 32;
/// Longest value indexed, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;

/// How values are normalized before they are indexed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Normalization {
    /// Remove surrounding whitespace.
    pub trim: bool,
    /// Lowercase (Unicode simple lowercase mapping).
    pub case_fold: bool,
    /// Keep only the ASCII digits.
    pub digits_only: bool,
}

impl Normalization {
    /// `value` normalized.
    pub fn apply(&self, value: &str) -> String {
        let mut text: &str = value;
        if self.trim {
            text = text.trim();
        }
        let mut out = if self.case_fold {
            text.to_lowercase()
        } else {
            text.to_owned()
        };
        if self.digits_only {
            out.retain(|c| c.is_ascii_digit());
        }
        out
    }
}

/// The settings of one blind index, fixed when the index is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlindIndexSettings {
    /// Normalization before hashing.
    #[serde(default)]
    pub normalize: Normalization,
    /// Bytes of the HMAC kept, 2 to 32 (see the module docs for the trade-off).
    #[serde(default = "default_length")]
    pub length: usize,
}

fn default_length() -> usize {
    8
}

impl Default for BlindIndexSettings {
    fn default() -> Self {
        Self {
            normalize: Normalization::default(),
            length: default_length(),
        }
    }
}

impl BlindIndexSettings {
    /// Checks the length.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_LENGTH..=MAX_LENGTH).contains(&self.length) {
            return Err(CryptoError::Invalid {
                field: "length",
                reason: format!("must be {MIN_LENGTH} to {MAX_LENGTH} bytes"),
            });
        }
        Ok(())
    }
}

/// A blind index's key and settings, unwrapped.
pub(crate) struct IndexKey {
    key: hmac::Key,
    settings: BlindIndexSettings,
}

impl fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexKey")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl IndexKey {
    fn compute(&self, context: &[u8], value: &str) -> String {
        let normalized = zeroize::Zeroizing::new(self.settings.normalize.apply(value));
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(b"palisade blind index v1\0");
        // Contexts are short (a tenant id); the length keeps context and value apart.
        ctx.update(&(context.len() as u64).to_be_bytes());
        ctx.update(context);
        ctx.update(normalized.as_bytes());
        let tag = ctx.sign();
        hex::encode(&tag.as_ref()[..self.settings.length])
    }
}

/// What the index context of an index key's wrap is.
pub(crate) fn index_context(name: &str) -> Vec<u8> {
    let mut context = b"palisade index key v1\0".to_vec();
    context.extend_from_slice(name.as_bytes());
    context
}

/// A computed blind index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlindIndex {
    /// The index value, lowercase hex of `settings.length` bytes.
    pub value: String,
    /// The settings of the index it belongs to.
    pub settings: BlindIndexSettings,
}

impl Keyring {
    /// The blind index of `value` in index `index` (a name like a key name),
    /// bound to `context`. The index is made on first use with `settings`
    /// (or the defaults); later calls may omit them, and settings that differ
    /// from the index's are refused rather than silently giving indexes that
    /// never match.
    pub async fn blind_index(
        &self,
        index: &str,
        context: &[u8],
        value: &str,
        settings: Option<&BlindIndexSettings>,
    ) -> Result<BlindIndex> {
        if value.len() > MAX_VALUE {
            return Err(CryptoError::TooLarge { max: MAX_VALUE });
        }
        let key = self.index_key(index, settings).await?;
        if let Some(wanted) = settings
            && wanted != &key.settings
        {
            return Err(CryptoError::Invalid {
                field: "settings",
                reason: format!(
                    "index {index:?} was made with other settings (normalize {:?}, length {})",
                    key.settings.normalize, key.settings.length
                ),
            });
        }
        Ok(BlindIndex {
            value: key.compute(context, value),
            settings: key.settings,
        })
    }

    /// The key of index `name`, from the cache, the store, or made now.
    async fn index_key(
        &self,
        name: &str,
        settings: Option<&BlindIndexSettings>,
    ) -> Result<std::sync::Arc<IndexKey>> {
        validate_key_name(name).map_err(|_| CryptoError::InvalidName {
            what: "index name",
            reason: "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        })?;
        if let Some(settings) = settings {
            settings.validate()?;
        }
        if let Some(key) = self.cached_index_key(name) {
            return Ok(key);
        }
        let record = match self.store().index_key(name).await? {
            Some(record) => record,
            None => {
                self.make_index_key(name, settings.copied().unwrap_or_default())
                    .await?
            }
        };
        let settings: BlindIndexSettings = serde_json::from_str(&record.settings)
            .map_err(|e| CryptoError::Corrupt(format!("index {name:?} settings: {e}")))?;
        settings.validate()?;
        let material = self
            .kms()
            .unwrap(
                &record.kek_name,
                record.kek_version,
                &record.wrapped,
                &index_context(name),
            )
            .await?;
        let key = std::sync::Arc::new(IndexKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, material.expose()),
            settings,
        });
        self.cache_index_key(name, key.clone());
        Ok(key)
    }

    async fn make_index_key(
        &self,
        name: &str,
        settings: BlindIndexSettings,
    ) -> Result<IndexKeyRecord> {
        self.ensure_key(INDEX_KEY).await?;
        let kek_version = self.reserve_key_use(INDEX_KEY).await?;
        let material = KeyBytes::generate()?;
        let wrapped = self
            .kms()
            .wrap(INDEX_KEY, kek_version, &material, &index_context(name))
            .await?;
        let record = IndexKeyRecord {
            name: name.to_owned(),
            kek_name: INDEX_KEY.to_owned(),
            kek_version,
            wrapped,
            settings: serde_json::to_string(&settings)
                .map_err(|e| CryptoError::Corrupt(e.to_string()))?,
            created_at_ms: self.clock().now_unix_ms(),
        };
        if self.store().insert_index_key(&record).await? {
            return Ok(record);
        }
        // Made by another instance at the same moment: theirs wins.
        self.store()
            .index_key(name)
            .await?
            .ok_or_else(|| CryptoError::Store("index key vanished after a conflict".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_applies_trim_then_case_fold_then_digits() {
        let all = Normalization {
            trim: true,
            case_fold: true,
            digits_only: false,
        };
        assert_eq!(all.apply("  Alice@Example.COM \n"), "alice@example.com");
        let digits = Normalization {
            digits_only: true,
            ..Normalization::default()
        };
        assert_eq!(digits.apply("+1 (555) 010-9999"), "15550109999");
        assert_eq!(Normalization::default().apply(" A "), " A ");
    }

    #[tokio::test]
    async fn equal_values_after_normalization_index_equally_and_context_separates() {
        let keyring = Keyring::ephemeral();
        let settings = BlindIndexSettings {
            normalize: Normalization {
                trim: true,
                case_fold: true,
                digits_only: false,
            },
            length: 16,
        };
        let a = keyring
            .blind_index("email", b"tenant-a", " Alice@Example.com", Some(&settings))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.value.len(), 32);
        let b = keyring
            .blind_index("email", b"tenant-a", "alice@example.com", None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a, b, "omitted settings are the index's own");
        let other = keyring
            .blind_index("email", b"tenant-a", "bob@example.com", None)
            .await;
        assert_ne!(other.map(|i| i.value).ok(), Some(a.value.clone()));
        let other_tenant = keyring
            .blind_index("email", b"tenant-b", "alice@example.com", None)
            .await;
        assert_ne!(other_tenant.map(|i| i.value).ok(), Some(a.value.clone()));
        // Another index has another key.
        let phone = keyring
            .blind_index("email2", b"tenant-a", "alice@example.com", Some(&settings))
            .await;
        assert_ne!(phone.map(|i| i.value).ok(), Some(a.value));
    }

    #[tokio::test]
    async fn settings_that_differ_from_the_index_are_refused() {
        let keyring = Keyring::ephemeral();
        assert!(keyring.blind_index("phone", b"", "1", None).await.is_ok());
        let longer = BlindIndexSettings {
            length: 12,
            ..BlindIndexSettings::default()
        };
        assert!(matches!(
            keyring.blind_index("phone", b"", "1", Some(&longer)).await,
            Err(CryptoError::Invalid {
                field: "settings",
                ..
            })
        ));
        for length in [0, 1, 33] {
            let bad = BlindIndexSettings {
                length,
                ..BlindIndexSettings::default()
            };
            assert!(
                keyring
                    .blind_index("x", b"", "1", Some(&bad))
                    .await
                    .is_err()
            );
        }
        assert!(
            keyring
                .blind_index("bad name", b"", "1", None)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_index_key_survives_the_cache_through_the_store() {
        let keyring = Keyring::ephemeral();
        let first = keyring.blind_index("ssn", b"t", "123-45-6789", None).await;
        keyring.clear_cache();
        let second = keyring.blind_index("ssn", b"t", "123-45-6789", None).await;
        assert_eq!(first, second);
        assert!(first.is_ok());
    }

    #[test]
    fn matches_hmac_sha256_truncated() {
        // The index is HMAC-SHA-256 over label, context length, context and value.
        let key = IndexKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]),
            settings: BlindIndexSettings::default(),
        };
        let mut message = b"palisade blind index v1\0".to_vec();
        message.extend_from_slice(&3u64.to_be_bytes());
        message.extend_from_slice(b"ctx");
        message.extend_from_slice(b"value");
        let full = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]), &message);
        assert_eq!(
            key.compute(b"ctx", "value"),
            hex::encode(&full.as_ref()[..8])
        );
    }
}
