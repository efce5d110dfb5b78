//! The keyring: named keys with versions, envelope encryption with them, and
//! per-subject keys that can be destroyed.
//!
//! A keyring key is a key-encryption key (KEK) held by the KMS. To encrypt,
//! the keyring takes the current data key (DEK) of the key from the cache,
//! or makes one (random, wrapped by the newest active KEK version: one KMS
//! call) and seals the message under it with a random nonce. The ciphertext
//! carries the wrapped DEK, so decryption needs only the KMS (or the cache).
//!
//! Rotation adds a KEK version: new DEKs are wrapped with it, every older
//! version still unwraps. Each wrap first reserves one use of the version
//! in the store; a version at `usage_limit` (at most 2^32, the safe number
//! of random nonces for one GCM key) refuses, and the keyring rotates. Each
//! DEK is bounded the same way by the cache's `max_uses`.
//!
//! Subject keys (crypto-shredding): a subject's data is sealed under DEKs
//! wrapped by the subject's own key, itself wrapped by the KEK
//! `palisade-subjects` and stored. Destroying the stored key erases the
//! subject's data everywhere; decryption then fails with
//! [`CryptoError::Shredded`].

use crate::aead::{AeadKey, KeyBytes, NoncePool, SAFE_RANDOM_NONCE_LIMIT};
use crate::blind_index::IndexKey;
use crate::dek_cache::{CachedDek, DekCache, DekCacheSettings, DekCacheStats};
use crate::envelope::{self, Envelope, Header, KeyKind, Parts, with_data_aad};
use crate::error::{CryptoError, Result, excerpt};
use crate::kms::Kms;
use crate::store::{KeyInfo, KeyringStore, Reservation, SubjectKeyRecord};
use palisade_core::{SharedClock, SystemClock};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

/// The key `palisade init` creates and the HTTP API uses when none is named.
pub const DEFAULT_KEY: &str = "default";
/// The key that seals Palisade's own secrets ([`crate::SecretSealer`]).
pub const INTERNAL_KEY: &str = "palisade-internal";
/// The key that wraps subject keys.
pub const SUBJECTS_KEY: &str = "palisade-subjects";
/// The key that wraps blind-index keys.
pub const INDEX_KEY: &str = "palisade-index";
/// Names with this prefix are Palisade's own; the HTTP API refuses them.
pub const RESERVED_PREFIX: &str = "palisade-";
/// Longest key name.
pub const MAX_KEY_NAME: usize = 64;
/// Longest subject id, in bytes.
pub const MAX_SUBJECT_ID: usize = 255;
/// Largest plaintext of one message.
pub const MAX_PLAINTEXT: usize = 64 * 1024 * 1024;

/// What a DEK wrapped by a keyring key is (the KMS wrap's context).
const DEK_CONTEXT: &[u8] = b"palisade dek v1";
/// How often a usage reservation may be retried after a rotation.
const RESERVE_ATTEMPTS: usize = 4;

/// Settings of a keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringSettings {
    /// Data keys one KEK version may wrap before the keyring rotates the key.
    /// At most 2^32 (each wrap is one AES-GCM encryption with a random nonce).
    pub usage_limit: u64,
    /// Bounds of the DEK cache.
    pub dek_cache: DekCacheSettings,
}

impl Default for KeyringSettings {
    fn default() -> Self {
        Self {
            usage_limit: SAFE_RANDOM_NONCE_LIMIT,
            dek_cache: DekCacheSettings::default(),
        }
    }
}

impl KeyringSettings {
    /// Checks the limits.
    pub fn validate(&self) -> Result<()> {
        if self.usage_limit == 0 || self.usage_limit > SAFE_RANDOM_NONCE_LIMIT {
            return Err(CryptoError::Invalid {
                field: "usage_limit",
                reason: "must be 1 to 2^32 (the random-nonce limit of one AES-GCM key)".into(),
            });
        }
        self.dek_cache.validate()
    }
}

/// The keyring. Cheap to clone; clones share keys and caches.
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<Inner>,
}

struct Inner {
    kms: Kms,
    store: KeyringStore,
    clock: SharedClock,
    settings: KeyringSettings,
    /// The store's key metadata as last read.
    keys: RwLock<HashMap<String, KeyInfo>>,
    cache: DekCache,
    /// Unwrapped blind-index keys by index name.
    index_keys: RwLock<HashMap<String, Arc<IndexKey>>>,
    /// One DEK (or subject key) is made at a time, so concurrent misses make one.
    create: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("kms", &self.inner.kms.backend())
            .field("store", &self.inner.store)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// Checks a keyring key name: 1 to 64 characters of `A-Z a-z 0-9 . _ -`,
/// starting with a letter or digit.
pub fn validate_key_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(CryptoError::InvalidName {
            what: "key name",
            reason,
        })
    };
    if name.is_empty() || name.len() > MAX_KEY_NAME {
        return invalid("must be 1 to 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("only letters, digits, '.', '_' and '-' are allowed");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return invalid("must start with a letter or digit");
    }
    Ok(())
}

/// Checks a subject id: 1 to 255 bytes of UTF-8 without control characters.
pub fn validate_subject_id(subject: &str) -> Result<()> {
    if subject.is_empty() || subject.len() > MAX_SUBJECT_ID {
        return Err(CryptoError::InvalidName {
            what: "subject id",
            reason: "must be 1 to 255 bytes",
        });
    }
    if subject.chars().any(char::is_control) {
        return Err(CryptoError::InvalidName {
            what: "subject id",
            reason: "must not contain control characters",
        });
    }
    Ok(())
}

/// Opens a ciphertext's data with its DEK.
fn open_with(dek: &CachedDek, parts: &Parts<'_>, aad: &[u8]) -> Result<Vec<u8>> {
    with_data_aad(parts.prefix, aad, |aad| {
        dek.aead.open_data(parts.nonce, aad, parts.ciphertext)
    })
}

fn check_size(plaintext: &[u8]) -> Result<()> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(CryptoError::TooLarge { max: MAX_PLAINTEXT });
    }
    Ok(())
}

/// The KMS wrap context of a subject key: binds it to its subject and generation.
pub(crate) fn subject_context(subject: &str, generation: u32) -> Vec<u8> {
    let mut context = Vec::with_capacity(24 + subject.len());
    context.extend_from_slice(b"palisade subject key v1\0");
    context.extend_from_slice(subject.as_bytes());
    context.push(0);
    context.extend_from_slice(&generation.to_be_bytes());
    context
}

/// The AAD of a DEK wrapped by a subject key.
fn subject_dek_aad(subject: &str, generation: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(24 + subject.len());
    aad.extend_from_slice(b"palisade subject dek v1\0");
    aad.extend_from_slice(subject.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&generation.to_be_bytes());
    aad
}

impl Keyring {
    /// A keyring on `kms` and `store`, with its key metadata loaded.
    pub async fn open(
        kms: Kms,
        store: KeyringStore,
        clock: SharedClock,
        settings: KeyringSettings,
    ) -> Result<Self> {
        let keyring = Self::new(kms, store, clock, settings)?;
        keyring.refresh().await?;
        Ok(keyring)
    }

    /// A keyring on `kms` and `store` that reads its key metadata on first use.
    pub fn new(
        kms: Kms,
        store: KeyringStore,
        clock: SharedClock,
        settings: KeyringSettings,
    ) -> Result<Self> {
        settings.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                kms,
                store,
                clock,
                cache: DekCache::new(settings.dek_cache.clone()),
                settings,
                keys: RwLock::default(),
                index_keys: RwLock::default(),
                create: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// A keyring whose keys live only in this process: for tests of code
    /// that needs one (and its [`crate::SecretSealer`]), never for data kept
    /// beyond the process.
    pub fn ephemeral() -> Self {
        Self {
            inner: Arc::new(Inner {
                kms: Kms::in_memory(),
                store: KeyringStore::memory(),
                clock: SystemClock::shared(),
                cache: DekCache::new(DekCacheSettings::default()),
                settings: KeyringSettings::default(),
                keys: RwLock::default(),
                index_keys: RwLock::default(),
                create: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The KMS.
    pub fn kms(&self) -> &Kms {
        &self.inner.kms
    }

    /// The store.
    pub fn store(&self) -> &KeyringStore {
        &self.inner.store
    }

    /// The settings.
    pub fn settings(&self) -> &KeyringSettings {
        &self.inner.settings
    }

    /// The clock.
    pub(crate) fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// The time the DEK cache's entries are dated and aged by: coarse, since
    /// it is read on every encryption and decryption and its ages are seconds.
    fn cache_now(&self) -> std::time::Duration {
        self.inner.clock.monotonic_coarse()
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.now_unix_ms()
    }

    pub(crate) fn cached_index_key(&self, name: &str) -> Option<Arc<IndexKey>> {
        self.inner
            .index_keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub(crate) fn cache_index_key(&self, name: &str, key: Arc<IndexKey>) {
        let mut keys = self
            .inner
            .index_keys
            .write()
            .unwrap_or_else(|e| e.into_inner());
        // Index names are few; a flood of new names must not grow this unbounded.
        if keys.len() >= self.inner.settings.dek_cache.max_entries {
            keys.clear();
        }
        keys.insert(name.to_owned(), key);
    }

    fn cached_key(&self, name: &str) -> Option<KeyInfo> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Re-reads key metadata from the store, picking up rotations made by
    /// other instances. Instances call it periodically.
    pub async fn refresh(&self) -> Result<()> {
        let keys = self.inner.store.load_keys().await?;
        let mut map = self.inner.keys.write().unwrap_or_else(|e| e.into_inner());
        for (name, old) in map.iter() {
            let changed = keys
                .iter()
                .find(|k| &k.name == name)
                .is_none_or(|k| k.current().map(|v| v.version) != old.current().map(|v| v.version));
            if changed {
                self.inner.cache.retire_keyring_key(name);
            }
        }
        *map = keys.into_iter().map(|k| (k.name.clone(), k)).collect();
        Ok(())
    }

    /// Key `name`'s metadata, from the store if this instance has not seen it.
    pub(crate) async fn key_info(&self, name: &str) -> Result<KeyInfo> {
        if let Some(info) = self.cached_key(name) {
            return Ok(info);
        }
        self.refresh().await?;
        self.cached_key(name)
            .ok_or_else(|| CryptoError::UnknownKey(excerpt(name, MAX_KEY_NAME)))
    }

    /// Creates key `name` unless it exists, and returns its metadata.
    pub async fn ensure_key(&self, name: &str) -> Result<KeyInfo> {
        validate_key_name(name)?;
        if let Some(info) = self.cached_key(name) {
            return Ok(info);
        }
        self.refresh().await?;
        if let Some(info) = self.cached_key(name) {
            return Ok(info);
        }
        let now = self.now_ms();
        let version = self.inner.kms.create_key(name, now).await?;
        self.inner.store.insert_key(name, version, now).await?;
        self.refresh().await?;
        self.cached_key(name)
            .ok_or_else(|| CryptoError::UnknownKey(name.to_owned()))
    }

    /// Adds a version to key `name`: new data keys are wrapped with it from
    /// now on, and data sealed before still opens.
    pub async fn rotate(&self, name: &str) -> Result<KeyInfo> {
        validate_key_name(name)?;
        // Only existing keys rotate: a typo must not create a key.
        self.key_info(name).await?;
        let now = self.now_ms();
        let version = self.inner.kms.rotate(name, now).await?;
        self.inner.store.add_version(name, version, now).await?;
        self.inner.cache.retire_keyring_key(name);
        self.refresh().await?;
        tracing::info!(key = name, version, "key rotated");
        self.key_info(name).await
    }

    /// Every key with its versions (metadata only), sorted by name.
    pub async fn keys(&self) -> Result<Vec<KeyInfo>> {
        self.refresh().await?;
        let mut keys: Vec<KeyInfo> = self
            .inner
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(keys)
    }

    /// Seals `plaintext` under key `key`, bound to `aad`. The binary form.
    pub async fn encrypt(&self, key: &str, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        check_size(plaintext)?;
        let now = self.cache_now();
        let dek = match self.inner.cache.encrypting(KeyKind::Keyring, key, now) {
            Some(dek) => dek,
            // Boxed: the miss path's future (KMS, store) is kilobytes, and
            // inline it would make every call's future that big to move.
            None => Box::pin(self.new_keyring_dek(key)).await?,
        };
        seal(&dek, plaintext, aad)
    }

    /// [`Keyring::encrypt`] in the text form (`pal1.…`).
    pub async fn encrypt_text(&self, key: &str, plaintext: &[u8], aad: &[u8]) -> Result<String> {
        Ok(envelope::to_text(&self.encrypt(key, plaintext, aad).await?))
    }

    /// Seals `plaintext` under subject `subject`'s own key, bound to `aad`:
    /// [`Keyring::shred_subject`] erases it.
    pub async fn encrypt_for_subject(
        &self,
        subject: &str,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        check_size(plaintext)?;
        let now = self.cache_now();
        let dek = match self.inner.cache.encrypting(KeyKind::Subject, subject, now) {
            Some(dek) => dek,
            None => Box::pin(self.new_subject_dek(subject)).await?,
        };
        seal(&dek, plaintext, aad)
    }

    /// Opens a binary ciphertext of [`Keyring::encrypt`] or
    /// [`Keyring::encrypt_for_subject`] with the same `aad`. The plaintext is
    /// the caller's: wrap it in [`zeroize::Zeroizing`] if it must be wiped after use
    /// ([`crate::SecretSealer`] does).
    pub async fn decrypt(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        // The hit path is synchronous and the rest boxed, so this future
        // holds only its arguments: a parsed envelope kept across an await
        // made it 280 bytes to move and poll, a fifth of a 1 KiB decryption.
        if let Some(opened) = self.open_if_cached(ciphertext, aad) {
            return opened;
        }
        Box::pin(async {
            let envelope = Envelope::parse(ciphertext)?;
            self.open_uncached(&envelope, aad).await
        })
        .await
    }

    /// Opens a ciphertext whose DEK is in the cache; `None` when it is not
    /// (a malformed ciphertext is `Some` of its error).
    fn open_if_cached(&self, ciphertext: &[u8], aad: &[u8]) -> Option<Result<Vec<u8>>> {
        match Parts::locate(ciphertext) {
            Ok(parts) => self.open_cached(&parts, aad),
            Err(e) => Some(Err(e)),
        }
    }

    fn open_cached(&self, parts: &Parts<'_>, aad: &[u8]) -> Option<Result<Vec<u8>>> {
        let now = self.cache_now();
        self.inner
            .cache
            .with_decrypting(parts.slot, now, |dek| open_with(dek, parts, aad))
    }

    /// Opens a parsed ciphertext.
    pub(crate) async fn open_envelope(
        &self,
        envelope: &Envelope<'_>,
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        if let Some(opened) = self.open_cached(&envelope.parts(), aad) {
            return opened;
        }
        self.open_uncached(envelope, aad).await
    }

    /// Opens a parsed ciphertext whose DEK was not in the cache (a second
    /// lookup would count a second miss).
    async fn open_uncached(&self, envelope: &Envelope<'_>, aad: &[u8]) -> Result<Vec<u8>> {
        // Boxed, as in `encrypt`: keeps the hit path's future small.
        let dek = Box::pin(self.unwrap_dek(envelope)).await?;
        open_with(&dek, &envelope.parts(), aad)
    }

    /// [`Keyring::decrypt`] of the text form.
    pub async fn decrypt_text(&self, ciphertext: &str, aad: &[u8]) -> Result<Vec<u8>> {
        let binary = envelope::from_text(ciphertext)?;
        self.decrypt(&binary, aad).await
    }

    /// Destroys every key of `subject`: its data, wherever it is stored,
    /// becomes unreadable (on other instances once their cached keys expire,
    /// within the cache's `subject_ttl`). True if a key was destroyed.
    pub async fn shred_subject(&self, subject: &str) -> Result<bool> {
        validate_subject_id(subject)?;
        let destroyed = self
            .inner
            .store
            .destroy_subject(subject, self.now_ms())
            .await?;
        self.inner.cache.forget_subject(subject);
        Ok(destroyed)
    }

    /// Re-wraps the DEK of a ciphertext under the newest version of its key,
    /// leaving nonce, ciphertext and tag untouched. Subject ciphertexts are
    /// returned as they are (their keys are rewrapped in the store instead).
    pub async fn rewrap(&self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let envelope = Envelope::parse(ciphertext)?;
        if envelope.kind == KeyKind::Subject {
            return Ok(ciphertext.to_vec());
        }
        let name = envelope.key_id;
        let current = self.key_info(name).await?;
        let current = current
            .current()
            .map(|v| v.version)
            .ok_or_else(|| CryptoError::Corrupt(format!("key {name:?} has no active version")))?;
        if envelope.version >= current {
            return Ok(ciphertext.to_vec());
        }
        let version = self.reserve_version(name).await?;
        // One KMS call; with AWS KMS the data key never leaves it.
        let wrapped = self
            .inner
            .kms
            .rewrap(
                (name, envelope.version),
                (name, version),
                envelope.wrapped_dek,
                DEK_CONTEXT,
            )
            .await?;
        let header = Header::new(KeyKind::Keyring, name, version, &wrapped)?;
        let mut out = Vec::with_capacity(header.as_bytes().len() + envelope.sealed.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(envelope.sealed);
        Ok(out)
    }

    /// Counters of the DEK cache.
    pub fn cache_stats(&self) -> DekCacheStats {
        self.inner.cache.stats()
    }

    /// Publishes the DEK cache's counters as metrics (call periodically).
    pub fn publish_metrics(&self) {
        self.inner.cache.publish_metrics();
    }

    /// Drops every cached DEK: the next operations go to the KMS.
    pub fn clear_cache(&self) {
        self.inner.cache.clear();
        self.inner
            .index_keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Reserves one use of the active version of keyring key `name` for a
    /// wrap made outside the DEK path (index keys), rotating at the limit.
    pub(crate) async fn reserve_key_use(&self, name: &str) -> Result<u32> {
        self.reserve_version(name).await
    }

    /// Makes the current DEK of keyring key `name`.
    async fn new_keyring_dek(&self, name: &str) -> Result<Arc<CachedDek>> {
        validate_key_name(name)?;
        let _one_at_a_time = self.inner.create.lock().await;
        let now = self.cache_now();
        if let Some(dek) = self.inner.cache.encrypting(KeyKind::Keyring, name, now) {
            return Ok(dek);
        }
        let version = self.reserve_version(name).await?;
        // Made by the KMS where it can (AWS KMS GenerateDataKey).
        let (dek, wrapped) = self
            .inner
            .kms
            .generate_data_key(name, version, DEK_CONTEXT)
            .await?;
        let header = Header::new(KeyKind::Keyring, name, version, &wrapped)?;
        self.install(KeyKind::Keyring, name, &dek, header)
    }

    /// Makes the current DEK of subject `subject`, making its key if needed.
    async fn new_subject_dek(&self, subject: &str) -> Result<Arc<CachedDek>> {
        validate_subject_id(subject)?;
        let _one_at_a_time = self.inner.create.lock().await;
        let now = self.cache_now();
        if let Some(dek) = self.inner.cache.encrypting(KeyKind::Subject, subject, now) {
            return Ok(dek);
        }
        let (generation, subject_key) = self.current_subject_key(subject).await?;
        let dek = KeyBytes::generate()?;
        let wrapped = AeadKey::new(&subject_key)?
            .seal(&subject_dek_aad(subject, generation), dek.expose())?;
        let header = Header::new(KeyKind::Subject, subject, generation, &wrapped)?;
        self.install(KeyKind::Subject, subject, &dek, header)
    }

    /// Caches a new encryption DEK, with this first use counted.
    fn install(
        &self,
        kind: KeyKind,
        id: &str,
        dek: &KeyBytes,
        header: Header,
    ) -> Result<Arc<CachedDek>> {
        let now = self.cache_now();
        let cache = &self.inner.cache;
        let cached = Arc::new(CachedDek::new(
            AeadKey::new(dek)?,
            header,
            now,
            cache.ttl(kind),
            cache.max_uses(),
        ));
        cached.count_use();
        cache.insert_encrypting(kind, id, cached.clone(), now);
        Ok(cached)
    }

    /// Reserves one use of the active version of `name`, rotating the key
    /// when that version is at its limit. Returns the version to wrap with.
    async fn reserve_version(&self, name: &str) -> Result<u32> {
        let limit = self.inner.settings.usage_limit;
        for _ in 0..RESERVE_ATTEMPTS {
            let info = self.key_info(name).await?;
            let current = info.current().cloned().ok_or_else(|| {
                CryptoError::Corrupt(format!("key {name:?} has no active version"))
            })?;
            match self
                .inner
                .store
                .reserve_use(name, current.version, limit)
                .await?
            {
                Reservation::Reserved => return Ok(current.version),
                Reservation::Refused => {
                    // Either another instance rotated (our metadata is stale)
                    // or the version is used up.
                    self.refresh().await?;
                    let fresh = self.key_info(name).await?;
                    if let Some(now_current) = fresh.current()
                        && now_current.version == current.version
                        && now_current.usage >= limit
                    {
                        tracing::warn!(
                            key = name,
                            version = current.version,
                            limit,
                            "key version reached its usage limit; rotating"
                        );
                        metrics::counter!("palisade_crypto_usage_rotations_total").increment(1);
                        self.rotate(name).await?;
                    }
                }
            }
        }
        Err(CryptoError::Store(format!(
            "could not reserve a use of key {name:?} after {RESERVE_ATTEMPTS} attempts"
        )))
    }

    /// The newest live key of `subject`, made (and stored) when it has none.
    async fn current_subject_key(&self, subject: &str) -> Result<(u32, KeyBytes)> {
        let newest = self.inner.store.subject_key(subject, None).await?;
        let generation = match &newest {
            Some(record) if record.wrapped.is_some() => {
                let key = self.unwrap_subject_key(record).await?;
                return Ok((record.generation, key));
            }
            // Shredded: data from now on gets a new key; the old stays erased.
            Some(record) => record
                .generation
                .checked_add(1)
                .ok_or_else(|| CryptoError::Corrupt("subject key generation overflow".into()))?,
            None => 1,
        };
        self.ensure_key(SUBJECTS_KEY).await?;
        let kek_version = self.reserve_version(SUBJECTS_KEY).await?;
        let key = KeyBytes::generate()?;
        let wrapped = self
            .inner
            .kms
            .wrap(
                SUBJECTS_KEY,
                kek_version,
                &key,
                &subject_context(subject, generation),
            )
            .await?;
        let record = SubjectKeyRecord {
            subject: subject.to_owned(),
            generation,
            kek_name: SUBJECTS_KEY.to_owned(),
            kek_version,
            wrapped: Some(wrapped),
            created_at_ms: self.now_ms(),
        };
        if self.inner.store.insert_subject_key(&record).await? {
            return Ok((generation, key));
        }
        // Another instance made this generation first: use theirs.
        let theirs = self
            .inner
            .store
            .subject_key(subject, Some(generation))
            .await?
            .ok_or_else(|| CryptoError::Store("subject key vanished after a conflict".into()))?;
        Ok((generation, self.unwrap_subject_key(&theirs).await?))
    }

    async fn unwrap_subject_key(&self, record: &SubjectKeyRecord) -> Result<KeyBytes> {
        let wrapped = record
            .wrapped
            .as_deref()
            .ok_or_else(|| CryptoError::Shredded(record.subject.clone()))?;
        self.inner
            .kms
            .unwrap(
                &record.kek_name,
                record.kek_version,
                wrapped,
                &subject_context(&record.subject, record.generation),
            )
            .await
    }

    /// Unwraps a ciphertext's DEK (a cache miss) and caches it.
    async fn unwrap_dek(&self, envelope: &Envelope<'_>) -> Result<Arc<CachedDek>> {
        let id = envelope.key_id;
        let dek = match envelope.kind {
            KeyKind::Keyring => {
                if validate_key_name(id).is_err() {
                    return Err(CryptoError::UnknownKey(excerpt(id, MAX_KEY_NAME)));
                }
                self.inner
                    .kms
                    .unwrap(id, envelope.version, envelope.wrapped_dek, DEK_CONTEXT)
                    .await?
            }
            KeyKind::Subject => {
                let record = self
                    .inner
                    .store
                    .subject_key(id, Some(envelope.version))
                    .await?;
                let record = match record {
                    Some(record) => record,
                    None => {
                        let known = self.inner.store.subject_key(id, None).await?.is_some();
                        return Err(if known {
                            CryptoError::UnknownKeyVersion {
                                name: excerpt(id, MAX_KEY_NAME),
                                version: envelope.version,
                            }
                        } else {
                            CryptoError::UnknownKey(excerpt(id, MAX_KEY_NAME))
                        });
                    }
                };
                let subject_key = self.unwrap_subject_key(&record).await?;
                let plain = AeadKey::new(&subject_key)?
                    .open(&subject_dek_aad(id, envelope.version), envelope.wrapped_dek)?;
                KeyBytes::from_slice(&plain).map_err(|_| CryptoError::DecryptFailed)?
            }
        };
        let header = Header::new(envelope.kind, id, envelope.version, envelope.wrapped_dek)?;
        let now = self.cache_now();
        let cache = &self.inner.cache;
        let cached = Arc::new(CachedDek::new(
            AeadKey::new(&dek)?,
            header,
            now,
            cache.ttl(envelope.kind),
            cache.max_uses(),
        ));
        cached.count_use();
        cache.insert_decrypting(cached.clone(), now);
        Ok(cached)
    }
}

/// Seals many messages under one key in a row, as field-level encryption
/// does: the DEK is looked up once and kept while it is fresh and has uses
/// left (each message still takes one use, so the DEK limits hold message by
/// message), and the nonces come from a [`NoncePool`].
#[derive(Debug)]
pub(crate) struct BatchSealer<'a> {
    keyring: &'a Keyring,
    kind: KeyKind,
    id: &'a str,
    dek: Option<Arc<CachedDek>>,
    nonces: NoncePool,
}

impl<'a> BatchSealer<'a> {
    /// A sealer under keyring key or subject `id`, for about `expected`
    /// messages (more are fine).
    pub(crate) fn new(keyring: &'a Keyring, kind: KeyKind, id: &'a str, expected: usize) -> Self {
        Self {
            keyring,
            kind,
            id,
            dek: None,
            nonces: NoncePool::new(expected),
        }
    }

    /// Writes the binary ciphertext of `plaintext` bound to `aad` into `out`
    /// (cleared first).
    pub(crate) async fn seal(
        &mut self,
        plaintext: &[u8],
        aad: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        check_size(plaintext)?;
        let inner = &self.keyring.inner;
        let now = inner.clock.monotonic_coarse();
        let dek = match self.dek.take() {
            Some(dek) if inner.cache.reuse(&dek, now) => dek,
            _ => {
                let cached = inner.cache.encrypting(self.kind, self.id, now);
                match (cached, self.kind) {
                    (Some(dek), _) => dek,
                    // Boxed, as in `Keyring::encrypt`.
                    (None, KeyKind::Keyring) => {
                        Box::pin(self.keyring.new_keyring_dek(self.id)).await?
                    }
                    (None, KeyKind::Subject) => {
                        Box::pin(self.keyring.new_subject_dek(self.id)).await?
                    }
                }
            }
        };
        out.clear();
        out.extend_from_slice(dek.header.as_bytes());
        let nonce = self.nonces.take()?;
        let sealed = with_data_aad(dek.header.prefix(), aad, |aad| {
            dek.aead.seal_append_under(nonce, aad, plaintext, out)
        });
        self.dek = Some(dek);
        sealed
    }
}

/// Seals one message under a cached DEK: header, then nonce ‖ ciphertext ‖ tag.
fn seal(dek: &CachedDek, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let header = dek.header.as_bytes();
    let mut out = Vec::with_capacity(
        header.len() + crate::aead::NONCE_BYTES + plaintext.len() + crate::aead::TAG_LEN,
    );
    out.extend_from_slice(header);
    with_data_aad(dek.header.prefix(), aad, |aad| {
        dek.aead.seal_append(aad, plaintext, &mut out)
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::ManualClock;
    use std::time::Duration;

    fn keyring_with(clock: &ManualClock, settings: KeyringSettings) -> Keyring {
        Keyring::new(
            Kms::in_memory(),
            KeyringStore::memory(),
            Arc::new(clock.clone()),
            settings,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn ready(keyring: &Keyring, name: &str) {
        keyring
            .ensure_key(name)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test]
    async fn round_trips_and_binds_the_aad() {
        let keyring = Keyring::ephemeral();
        ready(&keyring, "default").await;
        let sealed = keyring
            .encrypt("default", b"card 4111", b"tenant=a;table=users;id=7")
            .await
            .unwrap_or_default();
        let opened = keyring.decrypt(&sealed, b"tenant=a;table=users;id=7").await;
        assert_eq!(opened.map(|p| p.to_vec()), Ok(b"card 4111".to_vec()));
        assert_eq!(
            keyring.decrypt(&sealed, b"tenant=a;table=users;id=8").await,
            Err(CryptoError::DecryptFailed)
        );
        assert_eq!(
            keyring.decrypt(&sealed, b"").await,
            Err(CryptoError::DecryptFailed)
        );
    }

    #[tokio::test]
    async fn encrypting_with_an_unknown_key_is_a_typed_error() {
        let keyring = Keyring::ephemeral();
        assert_eq!(
            keyring.encrypt("nope", b"x", b"").await,
            Err(CryptoError::UnknownKey("nope".into()))
        );
        assert!(matches!(
            keyring.encrypt("bad name!", b"x", b"").await,
            Err(CryptoError::InvalidName { .. })
        ));
    }

    #[tokio::test]
    async fn old_versions_decrypt_after_rotation_and_the_new_one_encrypts() {
        let keyring = Keyring::ephemeral();
        ready(&keyring, "default").await;
        let before = keyring
            .encrypt("default", b"v1 data", b"")
            .await
            .unwrap_or_default();
        let rotated = keyring
            .rotate("default")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rotated.current().map(|v| v.version), Some(2));
        assert_eq!(rotated.versions[0].state, crate::VersionState::Retired);
        let after = keyring
            .encrypt("default", b"v2 data", b"")
            .await
            .unwrap_or_default();
        let version = |bytes: &[u8]| Envelope::parse(bytes).map(|e| e.version).ok();
        assert_eq!(version(&before), Some(1));
        assert_eq!(version(&after), Some(2));
        // Without the cache, both still open through the KMS.
        keyring.clear_cache();
        assert_eq!(
            keyring.decrypt(&before, b"").await.map(|p| p.to_vec()),
            Ok(b"v1 data".to_vec())
        );
        assert_eq!(
            keyring.decrypt(&after, b"").await.map(|p| p.to_vec()),
            Ok(b"v2 data".to_vec())
        );
        assert_eq!(
            keyring.rotate("missing").await.err(),
            Some(CryptoError::UnknownKey("missing".into()))
        );
    }

    #[tokio::test]
    async fn rewrap_moves_a_ciphertext_to_the_newest_version_without_touching_the_data() {
        let keyring = Keyring::ephemeral();
        ready(&keyring, "default").await;
        let old = keyring
            .encrypt("default", b"payload", b"ctx")
            .await
            .unwrap_or_default();
        keyring
            .rotate("default")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let new = keyring.rewrap(&old).await.unwrap_or_default();
        let (old_env, new_env) = (Envelope::parse(&old), Envelope::parse(&new));
        let (Ok(old_env), Ok(new_env)) = (old_env, new_env) else {
            panic!("unparseable")
        };
        assert_eq!(new_env.version, 2);
        assert_eq!(
            old_env.sealed, new_env.sealed,
            "nonce, ciphertext and tag unchanged"
        );
        keyring.clear_cache();
        assert_eq!(
            keyring.decrypt(&new, b"ctx").await.map(|p| p.to_vec()),
            Ok(b"payload".to_vec())
        );
        // Already current: unchanged.
        assert_eq!(keyring.rewrap(&new).await.ok(), Some(new.clone()));
    }

    #[tokio::test]
    async fn a_version_at_its_usage_limit_triggers_a_rotation() {
        let clock = ManualClock::new();
        let settings = KeyringSettings {
            usage_limit: 3,
            dek_cache: DekCacheSettings {
                max_uses: 2,
                ..DekCacheSettings::default()
            },
        };
        let keyring = keyring_with(&clock, settings);
        ready(&keyring, "k").await;
        let mut versions = Vec::new();
        let mut sealed = Vec::new();
        // 2 messages per DEK, 3 DEKs per KEK version: version 2 starts at message 7.
        for i in 0..8u8 {
            let ct = keyring.encrypt("k", &[i], b"").await.unwrap_or_default();
            versions.push(Envelope::parse(&ct).map(|e| e.version).unwrap_or(0));
            sealed.push(ct);
        }
        assert_eq!(versions, vec![1, 1, 1, 1, 1, 1, 2, 2]);
        let info = keyring.keys().await.unwrap_or_default();
        let key = info.iter().find(|k| k.name == "k").cloned();
        let usage: Vec<(u32, u64)> = key
            .map(|k| k.versions.iter().map(|v| (v.version, v.usage)).collect())
            .unwrap_or_default();
        assert_eq!(usage, vec![(1, 3), (2, 1)]);
        keyring.clear_cache();
        for (i, ct) in sealed.iter().enumerate() {
            assert_eq!(
                keyring.decrypt(ct, b"").await.map(|p| p.to_vec()),
                Ok(vec![i as u8])
            );
        }
    }

    #[tokio::test]
    async fn a_decryption_counts_one_miss_then_hits() {
        let clock = ManualClock::new();
        let keyring = keyring_with(&clock, KeyringSettings::default());
        ready(&keyring, "k").await;
        let sealed = keyring.encrypt("k", b"m", b"").await.unwrap_or_default();
        keyring.clear_cache();
        let before = keyring.cache_stats();
        for _ in 0..3 {
            assert_eq!(
                keyring.decrypt(&sealed, b"").await.ok(),
                Some(b"m".to_vec())
            );
        }
        let after = keyring.cache_stats();
        assert_eq!(
            (after.misses - before.misses, after.hits - before.hits),
            (1, 2)
        );
    }

    #[tokio::test]
    async fn a_dek_is_replaced_after_its_ttl() {
        let clock = ManualClock::new();
        let keyring = keyring_with(&clock, KeyringSettings::default());
        ready(&keyring, "k").await;
        let wrapped = |ct: &[u8]| {
            Envelope::parse(ct)
                .map(|e| e.wrapped_dek.to_vec())
                .unwrap_or_default()
        };
        let a = keyring.encrypt("k", b"1", b"").await.unwrap_or_default();
        let b = keyring.encrypt("k", b"2", b"").await.unwrap_or_default();
        assert_eq!(wrapped(&a), wrapped(&b), "one DEK while cached");
        clock.advance(Duration::from_secs(301));
        let c = keyring.encrypt("k", b"3", b"").await.unwrap_or_default();
        assert_ne!(wrapped(&a), wrapped(&c), "a new DEK after the TTL");
        let stats = keyring.cache_stats();
        assert!(stats.hits >= 1 && stats.misses >= 2, "{stats:?}");
    }

    #[tokio::test]
    async fn shredding_a_subject_erases_its_data_and_only_its_data() {
        let keyring = Keyring::ephemeral();
        let alice = keyring
            .encrypt_for_subject("user-alice", b"alice@example.com", b"email")
            .await
            .unwrap_or_default();
        let bob = keyring
            .encrypt_for_subject("user-bob", b"bob@example.com", b"email")
            .await
            .unwrap_or_default();
        assert_eq!(
            keyring.decrypt(&alice, b"email").await.map(|p| p.to_vec()),
            Ok(b"alice@example.com".to_vec())
        );
        assert_eq!(keyring.shred_subject("user-alice").await, Ok(true));
        assert_eq!(
            keyring.decrypt(&alice, b"email").await,
            Err(CryptoError::Shredded("user-alice".into()))
        );
        assert_eq!(
            keyring.decrypt(&bob, b"email").await.map(|p| p.to_vec()),
            Ok(b"bob@example.com".to_vec())
        );
        assert_eq!(keyring.shred_subject("user-alice").await, Ok(false));
        // New data for the same id gets a new key; the old stays erased.
        let again = keyring
            .encrypt_for_subject("user-alice", b"new", b"")
            .await
            .unwrap_or_default();
        assert_eq!(Envelope::parse(&again).map(|e| e.version), Ok(2));
        assert_eq!(
            keyring.decrypt(&again, b"").await.map(|p| p.to_vec()),
            Ok(b"new".to_vec())
        );
        assert_eq!(
            keyring.decrypt(&alice, b"email").await,
            Err(CryptoError::Shredded("user-alice".into()))
        );
    }

    #[tokio::test]
    async fn a_subject_ciphertext_naming_an_unknown_subject_is_unknown_key() {
        let keyring = Keyring::ephemeral();
        let sealed = keyring
            .encrypt_for_subject("abc", b"x", b"")
            .await
            .unwrap_or_default();
        let mut forged = sealed.clone();
        // The subject id starts after magic, format, algorithm, kind and length.
        forged[6] = b'x';
        assert_eq!(
            keyring.decrypt(&forged, b"").await,
            Err(CryptoError::UnknownKey("xbc".into()))
        );
    }

    #[tokio::test]
    async fn the_sealer_opens_only_its_own_purpose_and_key() {
        let keyring = Keyring::ephemeral();
        let sealer = crate::SecretSealer::new(keyring.clone());
        let sealed = sealer
            .seal(b"jwt:kid-1", b"signing key")
            .await
            .unwrap_or_default();
        assert_eq!(
            sealer.open(b"jwt:kid-1", &sealed).await.map(|p| p.to_vec()),
            Ok(b"signing key".to_vec())
        );
        assert_eq!(
            sealer.open(b"jwt:kid-2", &sealed).await,
            Err(CryptoError::DecryptFailed)
        );
        let text = sealer.seal_text(b"p", b"v").await.unwrap_or_default();
        assert_eq!(
            sealer.open_text(b"p", &text).await.map(|p| p.to_vec()),
            Ok(b"v".to_vec())
        );
        // A keyring ciphertext of another key is refused even with the same AAD.
        ready(&keyring, "default").await;
        let other = keyring
            .encrypt("default", b"v", b"p")
            .await
            .unwrap_or_default();
        assert_eq!(
            sealer.open(b"p", &other).await,
            Err(CryptoError::DecryptFailed)
        );
        // Sealed values survive rotation of palisade-internal.
        keyring
            .rotate(INTERNAL_KEY)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        keyring.clear_cache();
        assert_eq!(
            sealer.open(b"jwt:kid-1", &sealed).await.map(|p| p.to_vec()),
            Ok(b"signing key".to_vec())
        );
    }

    #[tokio::test]
    async fn debug_output_names_no_secret() {
        let keyring = Keyring::ephemeral();
        ready(&keyring, "default").await;
        let _ = keyring.encrypt("default", b"secret plaintext", b"").await;
        let shown = format!("{keyring:?}");
        assert!(shown.contains("local"), "{shown}");
        assert!(!shown.contains("secret plaintext"));
    }

    #[test]
    fn key_names_and_subject_ids_are_checked() {
        assert!(validate_key_name("default").is_ok());
        assert!(validate_key_name("a.b_c-9").is_ok());
        for bad in ["", "-x", ".x", "a b", "é", &"k".repeat(65)] {
            assert!(validate_key_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_subject_id("user 42 ü").is_ok());
        assert!(validate_subject_id("").is_err());
        assert!(validate_subject_id("a\nb").is_err());
        assert!(validate_subject_id(&"s".repeat(256)).is_err());
    }
}
