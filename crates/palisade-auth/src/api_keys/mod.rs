//! API keys for Palisade's own HTTP API.
//!
//! A key is `pal_` followed by 43 base64url characters (256 random bits), shown once
//! when it is created. The database holds two HMAC-SHA-256 values keyed by a server
//! pepper: a lookup value (indexed, finds the row) and a verification value (compared
//! in constant time). A copy of the database alone therefore cannot be used to test
//! guesses of a key, not even of a low-entropy bootstrap key.

mod scope;
mod store;

pub use scope::{Scope, Scopes, UnknownScope};
pub use store::ApiKeyStore;

use aws_lc_rs::{hmac, rand};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moka::sync::Cache;
use palisade_core::principal::TenantId;
use palisade_core::{Secret, SharedClock, new_id};
use palisade_store::StoreError;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The prefix of every generated key, so secret scanners can recognise leaked keys.
pub const KEY_PREFIX: &str = "pal_";
/// Shortest key accepted, generated or supplied (`PALISADE_BOOTSTRAP_ADMIN_KEY`).
pub const MIN_KEY_LEN: usize = 32;
/// Longest key accepted; longer input is rejected before any hashing.
pub const MAX_KEY_LEN: usize = 256;
/// How long a verified key is remembered by one instance. A revocation made on
/// another instance takes at most this long to reach this one.
pub const CACHE_TTL: Duration = Duration::from_secs(5);

/// A stored API key, without any secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// The key's id (UUIDv7).
    pub id: Uuid,
    /// A human name ("billing-service prod").
    pub name: String,
    /// The tenant the key acts in.
    pub tenant: TenantId,
    /// What the key may do.
    pub scopes: Scopes,
    /// When it was created (Unix ms).
    pub created_at_ms: i64,
    /// When it stops working (Unix ms), if ever.
    pub expires_at_ms: Option<i64>,
    /// When it was revoked (Unix ms), if it was.
    pub revoked_at_ms: Option<i64>,
}

/// What a caller asks for when creating a key.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// A human name.
    pub name: String,
    /// The tenant it acts in.
    pub tenant: TenantId,
    /// What it may do.
    pub scopes: Scopes,
    /// Optional expiry (Unix ms).
    pub expires_at_ms: Option<i64>,
}

/// A key just created: the only moment the secret exists outside the caller.
#[derive(Debug)]
pub struct IssuedKey {
    /// The stored record.
    pub key: ApiKey,
    /// The key itself, to hand to the caller exactly once.
    pub secret: Secret,
}

/// A key as presented in `Authorization: Bearer`, before it is checked.
#[derive(Debug, Clone)]
pub struct PresentedKey(Secret);

impl PresentedKey {
    /// Wraps the bearer value.
    pub fn new(raw: &str) -> Self {
        Self(Secret::new(raw))
    }
}

/// Why an API-key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// No such key, wrong secret, revoked or expired: deliberately one answer, so a
    /// caller cannot tell which (and learn that a key exists).
    #[error("invalid API key")]
    Invalid,
    /// The key text is shorter than `MIN_KEY_LEN` or longer than `MAX_KEY_LEN`.
    #[error("API keys are {MIN_KEY_LEN} to {MAX_KEY_LEN} characters")]
    BadLength,
    /// The name is empty or too long.
    #[error("name must be 1 to 200 characters")]
    BadName,
    /// No key with that id.
    #[error("API key not found")]
    NotFound,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ApiKeyError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}

/// Creates, verifies, lists and revokes API keys.
#[derive(Clone)]
pub struct ApiKeys {
    store: ApiKeyStore,
    lookup_key: hmac::Key,
    verify_key: hmac::Key,
    clock: SharedClock,
    /// Keys whose secret matched their verifier here, by the whole lookup HMAC
    /// of the presented secret: 256 bits that only that secret yields, so a hit
    /// needs neither the verifier's HMAC nor the database.
    verified: Cache<[u8; 32], Arc<ApiKey>>,
    /// The last stored state of every key this instance has verified, kept past
    /// [`CACHE_TTL`] for one purpose: while the database is unreachable, callers this
    /// instance already knows keep working (audit events still reach the spool).
    /// Keys never seen here are refused, so an outage cannot admit a new credential.
    last_known: Cache<String, Arc<(ApiKey, Vec<u8>)>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl ApiKeys {
    /// A key service over `store`, hashing with `pepper` (a server secret from the config).
    pub fn new(store: ApiKeyStore, pepper: &Secret, clock: SharedClock) -> Self {
        // Two keys derived from one pepper, so the lookup value says nothing about the verifier.
        let derive = |label: &str| {
            let tag = hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, pepper.expose().as_bytes()),
                label.as_bytes(),
            );
            hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref())
        };
        Self {
            store,
            lookup_key: derive("palisade api-key lookup v1"),
            verify_key: derive("palisade api-key verify v1"),
            clock,
            verified: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(CACHE_TTL)
                .support_invalidation_closures()
                .build(),
            last_known: Cache::builder()
                .max_capacity(10_000)
                .support_invalidation_closures()
                .build(),
        }
    }

    /// Creates a key with a fresh random secret.
    pub async fn create(&self, new: NewApiKey) -> Result<IssuedKey, ApiKeyError> {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        rand::fill(bytes.as_mut()).map_err(|_| ApiKeyError::Invalid)?;
        let secret = Secret::new(format!(
            "{KEY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(bytes.as_ref())
        ));
        self.create_with_secret(new, secret).await
    }

    /// Creates a key whose secret the operator chose (`PALISADE_BOOTSTRAP_ADMIN_KEY`).
    pub async fn create_with_secret(
        &self,
        new: NewApiKey,
        secret: Secret,
    ) -> Result<IssuedKey, ApiKeyError> {
        check_length(secret.expose())?;
        if new.name.trim().is_empty() || new.name.chars().count() > 200 {
            return Err(ApiKeyError::BadName);
        }
        let key = ApiKey {
            id: new_id(self.clock.as_ref()),
            name: new.name,
            tenant: new.tenant,
            scopes: new.scopes,
            created_at_ms: self.clock.now_unix_ms(),
            expires_at_ms: new.expires_at_ms,
            revoked_at_ms: None,
        };
        let lookup = self.lookup(secret.expose());
        let verifier = hmac::sign(&self.verify_key, secret.expose().as_bytes());
        self.store.insert(&key, &lookup, verifier.as_ref()).await?;
        Ok(IssuedKey { key, secret })
    }

    /// Checks a presented key: found, secret matches (constant time), not revoked, not expired.
    /// Shared, as the cached record is: the caller gets it without a copy.
    pub async fn verify(&self, presented: &PresentedKey) -> Result<Arc<ApiKey>, ApiKeyError> {
        let raw = presented.0.expose();
        if check_length(raw).is_err() {
            return Err(ApiKeyError::Invalid);
        }
        let tag = self.lookup_tag(raw);
        let key = match self.verified.get(&tag) {
            Some(key) => key,
            None => {
                let (key, verifier) = self.stored(&lookup_of(&tag)).await?.as_ref().clone();
                // hmac::verify compares in constant time.
                hmac::verify(&self.verify_key, raw.as_bytes(), &verifier)
                    .map_err(|_| ApiKeyError::Invalid)?;
                let key = Arc::new(key);
                self.verified.insert(tag, key.clone());
                key
            }
        };
        let now = self.clock.now_unix_ms();
        if key.revoked_at_ms.is_some() || key.expires_at_ms.is_some_and(|exp| exp <= now) {
            return Err(ApiKeyError::Invalid);
        }
        Ok(key)
    }

    /// The stored key and verifier under lookup value `lookup`; while the
    /// database is unreachable, the last state this instance read.
    async fn stored(&self, lookup: &str) -> Result<Arc<(ApiKey, Vec<u8>)>, ApiKeyError> {
        match self.store.find_by_lookup(lookup).await {
            Ok(found) => {
                let entry = Arc::new(found.ok_or(ApiKeyError::Invalid)?);
                self.last_known.insert(lookup.to_owned(), entry.clone());
                Ok(entry)
            }
            Err(e) if e.is_unavailable() => match self.last_known.get(lookup) {
                Some(entry) => {
                    tracing::debug!(
                        "database unavailable: using the last known state of an API key"
                    );
                    Ok(entry)
                }
                None => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Lists keys, newest first, optionally of one tenant.
    pub async fn list(&self, tenant: Option<&TenantId>) -> Result<Vec<ApiKey>, ApiKeyError> {
        Ok(self.store.list(tenant).await?)
    }

    /// Fetches one key by id.
    pub async fn get(&self, id: Uuid) -> Result<ApiKey, ApiKeyError> {
        self.store.get(id).await?.ok_or(ApiKeyError::NotFound)
    }

    /// Revokes a key; it stops working at once on this instance and within
    /// [`CACHE_TTL`] on every other. Revoking twice keeps the first time.
    pub async fn revoke(&self, id: Uuid) -> Result<ApiKey, ApiKeyError> {
        let now = self.clock.now_unix_ms();
        if !self.store.revoke(id, now).await? {
            return Err(ApiKeyError::NotFound);
        }
        // Drop every cached entry of this key (the cache is keyed by lookup value, so
        // match on the id). Without this, a revoked key would work until the TTL ends.
        drop_where(&self.verified, move |key| key.id == id);
        drop_where(&self.last_known, move |entry| entry.0.id == id);
        self.get(id).await
    }

    /// How many keys exist; `palisade init` creates the first only when there are none.
    pub async fn count(&self) -> Result<i64, ApiKeyError> {
        Ok(self.store.count().await?)
    }

    fn lookup(&self, raw: &str) -> String {
        lookup_of(&self.lookup_tag(raw))
    }

    /// The whole lookup HMAC of a presented secret.
    fn lookup_tag(&self, raw: &str) -> [u8; 32] {
        let mut tag = [0u8; 32];
        tag.copy_from_slice(hmac::sign(&self.lookup_key, raw.as_bytes()).as_ref());
        tag
    }
}

/// Drops the entries of `cache` whose value `matches`, or every entry if the
/// cache cannot take the predicate: a stale entry must never outlive this.
fn drop_where<K, V>(cache: &Cache<K, V>, matches: impl Fn(&V) -> bool + Send + Sync + 'static)
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    if cache
        .invalidate_entries_if(move |_, value| matches(value))
        .is_err()
    {
        cache.invalidate_all();
    }
}

/// The stored lookup value: the first 144 bits of the lookup HMAC.
fn lookup_of(tag: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(&tag[..18])
}

fn check_length(raw: &str) -> Result<(), ApiKeyError> {
    if (MIN_KEY_LEN..=MAX_KEY_LEN).contains(&raw.len()) {
        Ok(())
    } else {
        Err(ApiKeyError::BadLength)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::SystemClock;
    use palisade_store::{Database, DatabaseConfig};

    async fn keys_on(dir: &std::path::Path) -> (ApiKeys, Database) {
        let db = Database::connect(&DatabaseConfig::default(), dir)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        db.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        let keys = ApiKeys::new(
            ApiKeyStore::new(db.clone()),
            &Secret::new("test-pepper-test-pepper-test-pepper"),
            SystemClock::shared(),
        );
        (keys, db)
    }

    async fn issue(keys: &ApiKeys) -> IssuedKey {
        keys.create(NewApiKey {
            name: "svc".into(),
            tenant: TenantId::default_tenant(),
            scopes: Scopes::admin(),
            expires_at_ms: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn presented(issued: &IssuedKey) -> PresentedKey {
        PresentedKey::new(issued.secret.expose())
    }

    #[tokio::test]
    async fn a_verified_key_is_answered_from_memory_until_revoked() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (keys, _db) = keys_on(dir.path()).await;
        let issued = issue(&keys).await;
        for _ in 0..3 {
            let key = keys.verify(&presented(&issued)).await;
            assert_eq!(key.ok().map(|k| k.id), Some(issued.key.id));
        }
        keys.revoke(issued.key.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            keys.verify(&presented(&issued)).await,
            Err(ApiKeyError::Invalid)
        ));
    }

    #[tokio::test]
    async fn the_verifier_is_checked_before_a_key_is_remembered() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (keys, db) = keys_on(dir.path()).await;
        let issued = issue(&keys).await;
        // A row whose lookup value matches but whose verifier does not (a
        // tampered database) refuses the key, and keeps refusing it.
        let Database::Sqlite(lite) = &db else {
            panic!("the default database is SQLite")
        };
        sqlx::query("UPDATE api_keys SET secret_hash = ?")
            .bind(vec![0u8; 32])
            .execute(lite.writer())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..2 {
            assert!(matches!(
                keys.verify(&presented(&issued)).await,
                Err(ApiKeyError::Invalid)
            ));
        }
        assert_eq!(keys.verified.iter().count(), 0);
    }

    #[tokio::test]
    async fn another_secret_with_the_same_prefix_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (keys, _db) = keys_on(dir.path()).await;
        let issued = issue(&keys).await;
        assert!(keys.verify(&presented(&issued)).await.is_ok());
        let mut other = issued.secret.expose().to_owned();
        let last = other.pop();
        other.push(if last == Some('x') { 'y' } else { 'x' });
        assert!(matches!(
            keys.verify(&PresentedKey::new(&other)).await,
            Err(ApiKeyError::Invalid)
        ));
    }
}
