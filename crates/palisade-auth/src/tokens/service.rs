//! The token service: issue, verify, refresh, revoke, and the signing keys.

use super::cache::VerifiedCache;
use super::config::millis;
use super::outside::{OutsideIssuers, unverified_issuer};
use super::refresh::{Claimed, IssuedRefreshToken, RefreshStore, Session, hash_token, well_formed};
use super::revocation::{Revocation, Revocations, SESSION_CLAIM, TENANT_CLAIM};
use super::signing_keys::SigningKeyStore;
use super::{TokenError, TokensConfig};
use crate::jwt::{
    Algorithm, Claims, Issuer, IssuerConfig, JwksDocument, KeyRecord, KeyRing, NewClaims, Verifier,
};
use palisade_core::{
    Secret, SecurityEvent, SecurityEventKind, SecurityEvents, SharedClock, new_id,
};
use palisade_crypto::SecretSealer;
use palisade_store::Database;
use serde_json::{Map, Value};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Longest subject accepted, in bytes.
const MAX_SUBJECT_BYTES: usize = 256;
/// Claims a caller may not set: the issuer sets them (or they mean something to Palisade).
const RESERVED_CLAIMS: [&str; 9] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    TENANT_CLAIM,
    SESSION_CLAIM,
];

/// What a caller asks for.
#[derive(Debug, Clone, Default)]
pub struct IssueRequest {
    /// Subject (`sub`).
    pub subject: String,
    /// Audience (`aud`); one of the configured audiences.
    pub audience: String,
    /// Extra claims; reserved names are refused.
    pub claims: Map<String, Value>,
    /// Access-token lifetime; the configured default when `None`.
    pub ttl: Option<Duration>,
}

/// An access token and the refresh token that renews it. `Debug` shows
/// neither token.
pub struct TokenPair {
    /// The signed JWT.
    pub access_token: String,
    /// The opaque refresh token; shown once, stored only as a hash.
    pub refresh_token: Secret,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The session both belong to (the access token's `sid`).
    pub session_id: String,
    /// Subject of the tokens.
    pub subject: String,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &self.refresh_token)
            .field("expires_in", &self.expires_in)
            .field("session_id", &self.session_id)
            .field("subject", &self.subject)
            .finish()
    }
}

/// Palisade's own tokens. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Tokens {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: TokensConfig,
    ring: Arc<RwLock<KeyRing>>,
    issuer: Issuer,
    verifier: Verifier,
    cache: VerifiedCache,
    refresh: RefreshStore,
    revocations: Revocations,
    outside: OutsideIssuers,
    events: SecurityEvents,
    clock: SharedClock,
    /// Where the signing keys are kept; `None` keeps them in this process only.
    key_store: Option<SigningKeyStore>,
    /// One key-ring change at a time in this process.
    key_change: tokio::sync::Mutex<()>,
}

/// Where a signing key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published, not signing yet (relying parties are fetching it).
    Pending,
    /// Signing new tokens.
    Active,
    /// No longer signing; published until the tokens it signed have expired.
    Retired,
}

/// A signing key's public metadata (never its private material).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyStatus {
    /// Key id.
    pub kid: String,
    /// Version, from 1.
    pub version: u32,
    /// Algorithm.
    pub alg: Algorithm,
    /// Where it is in its life.
    pub state: KeyState,
    /// Created and published (Unix ms).
    pub created_at_ms: i64,
    /// Signs from (Unix ms).
    pub signs_from_ms: i64,
    /// Stops signing (Unix ms), once a newer key exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retire_after_ms: Option<i64>,
    /// Leaves the JWKS (Unix ms), once retired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpublished_at_ms: Option<i64>,
}

impl Tokens {
    /// The service on `db` (migrated), signing with `ring`, kept in this
    /// process only (tests, single-instance tools). A ring without a key able
    /// to sign gets one at once.
    pub fn new(
        config: TokensConfig,
        mut ring: KeyRing,
        db: Database,
        events: SecurityEvents,
        clock: SharedClock,
    ) -> Result<Self, TokenError> {
        let now_ms = clock.now_unix_ms();
        if ring.current_signer(now_ms).is_err() {
            ring.rotate(now_ms)?;
        }
        Self::build(config, ring, db, events, clock, None)
    }

    /// The service on `db` (migrated) with its signing keys stored there,
    /// sealed by `sealer`, shared with every instance on the same database.
    /// Creates the first key when none can sign.
    pub async fn open(
        config: TokensConfig,
        db: Database,
        sealer: SecretSealer,
        events: SecurityEvents,
        clock: SharedClock,
    ) -> Result<Self, TokenError> {
        config.validate().map_err(TokenError::Invalid)?;
        let store = SigningKeyStore::new(db.clone(), sealer);
        let mut ring = KeyRing::from_records(config.rotation.clone(), store.load().await?)?;
        let now_ms = clock.now_unix_ms();
        if ring.current_signer(now_ms).is_err() {
            let before: Vec<KeyRecord> = ring.records().cloned().collect();
            ring.rotate(now_ms)?;
            if !persist_rotation(&store, &before, &ring).await? {
                // Another instance created it first: use theirs.
                ring = KeyRing::from_records(config.rotation.clone(), store.load().await?)?;
            }
        }
        Self::build(config, ring, db, events, clock, Some(store))
    }

    fn build(
        config: TokensConfig,
        ring: KeyRing,
        db: Database,
        events: SecurityEvents,
        clock: SharedClock,
        key_store: Option<SigningKeyStore>,
    ) -> Result<Self, TokenError> {
        config.validate().map_err(TokenError::Invalid)?;
        let now_ms = clock.now_unix_ms();
        let keys = ring.key_set(now_ms);
        let ring = Arc::new(RwLock::new(ring));
        let issuer = Issuer::new(
            IssuerConfig {
                issuer: config.issuer.clone(),
                typ: Some(crate::jwt::ACCESS_TOKEN_TYP.to_owned()),
                max_ttl: config.rotation.max_token_lifetime,
            },
            Arc::clone(&ring),
            clock.clone(),
        )?;
        let verifier = Verifier::new(config.verifier(), keys, clock.clone())?;
        let outside = OutsideIssuers::new(config.trusted_issuers.clone(), clock.clone())?;
        let cache = VerifiedCache::new(
            config.verified_cache_entries,
            config.rotation.max_token_lifetime + config.rotation.leeway,
        );
        Ok(Self {
            inner: Arc::new(Inner {
                issuer,
                verifier,
                cache,
                refresh: RefreshStore::new(db.clone()),
                revocations: Revocations::new(db),
                outside,
                ring,
                config,
                events,
                clock,
                key_store,
                key_change: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TokensConfig {
        &self.inner.config
    }

    /// The revocations, for the background refresh and listener.
    pub fn revocations(&self) -> &Revocations {
        &self.inner.revocations
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.now_unix_ms()
    }

    /// Issues an access token and a refresh token starting a new session in `tenant`.
    pub async fn issue(
        &self,
        tenant: &str,
        request: IssueRequest,
    ) -> Result<TokenPair, TokenError> {
        let config = &self.inner.config;
        if request.subject.is_empty() || request.subject.len() > MAX_SUBJECT_BYTES {
            return Err(TokenError::Invalid("subject must be 1 to 256 bytes"));
        }
        if !config.audiences.contains(&request.audience) {
            return Err(TokenError::Invalid(
                "audience is not one of the configured audiences",
            ));
        }
        if RESERVED_CLAIMS
            .iter()
            .any(|c| request.claims.contains_key(*c))
        {
            return Err(TokenError::Invalid("claims may not set reserved claims"));
        }
        let ttl = request.ttl.unwrap_or(config.access_ttl);
        if ttl.as_secs() == 0 || ttl > config.rotation.max_token_lifetime {
            return Err(TokenError::Invalid(
                "ttl must be 1 s to the longest token lifetime",
            ));
        }
        let now_ms = self.now_ms();
        let session = Session {
            id: new_id(self.inner.clock.as_ref()).to_string(),
            tenant: tenant.to_owned(),
            subject: request.subject,
            audience: request.audience,
            claims: request.claims,
            access_ttl_s: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(millis(config.session_lifetime)),
        };
        let refresh = IssuedRefreshToken::generate()?;
        self.inner
            .refresh
            .start(
                &session,
                &refresh.hash,
                self.refresh_expiry(&session, now_ms),
            )
            .await?;
        self.pair(&session, refresh)
    }

    fn refresh_expiry(&self, session: &Session, now_ms: i64) -> i64 {
        now_ms
            .saturating_add(millis(self.inner.config.refresh_ttl))
            .min(session.expires_at_ms)
    }

    /// Signs the access token of `session` and pairs it with `refresh`.
    fn pair(
        &self,
        session: &Session,
        refresh: IssuedRefreshToken,
    ) -> Result<TokenPair, TokenError> {
        let mut extra = session.claims.clone();
        extra.insert(TENANT_CLAIM.into(), Value::String(session.tenant.clone()));
        extra.insert(SESSION_CLAIM.into(), Value::String(session.id.clone()));
        let ttl_s = u64::try_from(session.access_ttl_s).unwrap_or(0);
        let access_token = self.inner.issuer.issue(
            NewClaims {
                sub: session.subject.clone(),
                aud: vec![session.audience.clone()],
                extra,
            },
            Duration::from_secs(ttl_s),
        )?;
        Ok(TokenPair {
            access_token,
            refresh_token: refresh.token,
            expires_in: ttl_s,
            session_id: session.id.clone(),
            subject: session.subject.clone(),
        })
    }

    /// Verifies an access token for `audience`: signature and claims (or the
    /// cache of tokens verified before), then revocation, on every call.
    pub fn verify(&self, token: &str, audience: &str) -> Result<Arc<Claims>, TokenError> {
        let verifier = &self.inner.verifier;
        if token.len() > self.inner.config.max_token_bytes {
            // Refused by the verifier with its size error, before hashing it.
            return Err(verifier
                .verify(token, audience)
                .err()
                .map_or(TokenError::Invalid("token too large"), TokenError::Jwt));
        }
        let key = self.inner.cache.key(token);
        let claims = match key.and_then(|k| self.inner.cache.get(&k)) {
            Some(claims) => {
                verifier.recheck_claims(&claims, audience)?;
                claims
            }
            None => {
                let claims = Arc::new(verifier.verify(token, audience)?);
                if let Some(key) = key {
                    self.inner.cache.insert(key, Arc::clone(&claims));
                }
                claims
            }
        };
        if self.inner.revocations.is_revoked(&claims) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    /// Verifies a token presented to a caller of `tenant`: Palisade's own
    /// (which must belong to `tenant`), or one of a trusted outside issuer
    /// (which belongs to the deployment, not to a tenant). Revocation by `jti`
    /// applies to both.
    pub async fn verify_in(
        &self,
        tenant: &str,
        token: &str,
        audience: &str,
    ) -> Result<Arc<Claims>, TokenError> {
        let own = &self.inner.config.issuer;
        if !self.inner.outside.is_empty()
            && let Some(iss) = unverified_issuer(token)
            && &iss != own
            && let Some(verdict) = self.inner.outside.verify(token, audience).await
        {
            let claims = Arc::new(verdict?);
            if self.inner.revocations.is_revoked(&claims) {
                return Err(TokenError::Revoked);
            }
            return Ok(claims);
        }
        let claims = self.verify(token, audience)?;
        check_tenant(&claims, tenant)?;
        Ok(claims)
    }

    /// Exchanges a refresh token for a new pair, in `tenant`. The presented token
    /// is used up; presenting it again revokes the whole session.
    pub async fn refresh(
        &self,
        tenant: &str,
        refresh_token: &str,
    ) -> Result<TokenPair, TokenError> {
        if !well_formed(refresh_token) {
            return Err(TokenError::UnknownRefreshToken);
        }
        let now_ms = self.now_ms();
        let store = &self.inner.refresh;
        match store
            .claim(&hash_token(refresh_token), tenant, now_ms)
            .await?
        {
            Claimed::Fresh(session) => {
                let next = IssuedRefreshToken::generate()?;
                store
                    .add_token(
                        &session.id,
                        &next.hash,
                        now_ms,
                        self.refresh_expiry(&session, now_ms),
                    )
                    .await?;
                self.pair(&session, next)
            }
            Claimed::Replayed(session) => {
                self.end_session(&session, "reuse", now_ms).await?;
                self.inner.events.emit(
                    SecurityEvent::new(SecurityEventKind::RefreshTokenReuse, now_ms)
                        .subject(session.subject.clone())
                        .reason("refresh_reused"),
                );
                metrics::counter!("palisade_refresh_token_reuse_total").increment(1);
                Err(TokenError::RefreshReused {
                    session: session.id,
                    subject: session.subject,
                })
            }
        }
    }

    /// Revokes a session and every access token it produced.
    async fn end_session(
        &self,
        session: &Session,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), TokenError> {
        self.inner
            .refresh
            .revoke_session(&session.id, reason, now_ms)
            .await?;
        self.inner
            .revocations
            .revoke(Revocation::Session {
                tenant: session.tenant.clone(),
                sid: session.id.clone(),
                keep_until_ms: now_ms.saturating_add(self.inner.config.revocation_horizon_ms()),
            })
            .await
    }

    /// Revokes an access token that `tenant` has been shown. An expired token
    /// needs nothing: answers `Ok(None)`; otherwise the revoked `jti`.
    pub async fn revoke_access_token(
        &self,
        tenant: &str,
        token: &str,
    ) -> Result<Option<String>, TokenError> {
        let claims = self.inner.verifier.signed_claims(token)?;
        check_tenant(&claims, tenant)?;
        let jti = claims
            .jti
            .clone()
            .ok_or(TokenError::Invalid("token has no jti"))?;
        let exp = claims.exp.ok_or(TokenError::Invalid("token has no exp"))?;
        let keep_until_ms = exp
            .saturating_mul(1000)
            .saturating_add(millis(self.inner.config.rotation.leeway));
        if keep_until_ms <= self.now_ms() {
            return Ok(None);
        }
        self.inner
            .revocations
            .revoke(Revocation::Token {
                tenant: tenant.to_owned(),
                jti: jti.clone(),
                keep_until_ms,
            })
            .await?;
        Ok(Some(jti))
    }

    /// Revokes an access token by id, for a token one no longer holds.
    pub async fn revoke_jti(&self, tenant: &str, jti: &str) -> Result<(), TokenError> {
        if jti.is_empty() || jti.len() > 128 {
            return Err(TokenError::Invalid("jti must be 1 to 128 bytes"));
        }
        let keep_until_ms = self
            .now_ms()
            .saturating_add(self.inner.config.revocation_horizon_ms());
        self.inner
            .revocations
            .revoke(Revocation::Token {
                tenant: tenant.to_owned(),
                jti: jti.to_owned(),
                keep_until_ms,
            })
            .await
    }

    /// Revokes the session of a refresh token (logout): the refresh token, every
    /// later one, and their access tokens. Returns the session id.
    pub async fn revoke_refresh_token(
        &self,
        tenant: &str,
        token: &str,
    ) -> Result<String, TokenError> {
        if !well_formed(token) {
            return Err(TokenError::UnknownRefreshToken);
        }
        let session = self
            .inner
            .refresh
            .session_of(&hash_token(token))
            .await?
            .ok_or(TokenError::UnknownRefreshToken)?;
        if session.tenant != tenant {
            return Err(TokenError::WrongTenant);
        }
        self.end_session(&session, "revoked", self.now_ms()).await?;
        Ok(session.id)
    }

    /// Revokes every token and session of `subject` issued before `before_ms`
    /// (now when `None`). Returns the cutoff and the number of sessions ended.
    pub async fn revoke_subject(
        &self,
        tenant: &str,
        subject: &str,
        before_ms: Option<i64>,
    ) -> Result<(i64, u64), TokenError> {
        if subject.is_empty() || subject.len() > MAX_SUBJECT_BYTES {
            return Err(TokenError::Invalid("subject must be 1 to 256 bytes"));
        }
        let now_ms = self.now_ms();
        let before_ms = before_ms.unwrap_or(now_ms).min(now_ms);
        let sessions = self
            .inner
            .refresh
            .revoke_subject(tenant, subject, before_ms, now_ms)
            .await?;
        self.inner
            .revocations
            .revoke(Revocation::Subject {
                tenant: tenant.to_owned(),
                subject: subject.to_owned(),
                before_ms,
                keep_until_ms: before_ms.saturating_add(self.inner.config.revocation_horizon_ms()),
            })
            .await?;
        Ok((before_ms, sessions))
    }

    /// The JWKS to publish now.
    pub fn jwks(&self) -> JwksDocument {
        self.ring().jwks(self.now_ms())
    }

    fn ring(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        // A poisoned lock means a panic while holding it; the ring is only ever
        // replaced whole, so its content is still consistent.
        self.inner.ring.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `change` on the in-memory key ring, then gives the verifier the
    /// resulting keys. When a key was removed, the cache of verified tokens is
    /// emptied. Not persisted: [`Tokens::rotate_signing_key`] and
    /// [`Tokens::maintain_keys`] are the persistent changes.
    pub fn change_keys<T>(&self, change: impl FnOnce(&mut KeyRing, i64) -> T) -> T {
        let now_ms = self.now_ms();
        let mut ring = self.inner.ring.write().unwrap_or_else(|e| e.into_inner());
        let before: Vec<String> = ring.records().map(|r| r.kid.clone()).collect();
        let result = change(&mut ring, now_ms);
        let removed = before
            .iter()
            .any(|kid| !ring.records().any(|r| &r.kid == kid));
        self.inner.verifier.replace_keys(ring.key_set(now_ms));
        drop(ring);
        if removed {
            self.inner.cache.clear();
        }
        result
    }

    /// Reads the key ring.
    pub fn with_keys<T>(&self, read: impl FnOnce(&KeyRing, i64) -> T) -> T {
        read(&self.ring(), self.now_ms())
    }

    /// Every signing key's public metadata, oldest first.
    pub fn signing_keys(&self) -> Vec<KeyStatus> {
        let grace_ms = self.inner.config.revocation_horizon_ms();
        self.with_keys(|ring, now_ms| {
            ring.records()
                .map(|r| KeyStatus {
                    kid: r.kid.clone(),
                    version: r.version,
                    alg: r.alg,
                    state: if now_ms < r.signs_from_ms {
                        KeyState::Pending
                    } else if r.retire_after_ms.is_none_or(|t| now_ms < t) {
                        KeyState::Active
                    } else {
                        KeyState::Retired
                    },
                    created_at_ms: r.created_at_ms,
                    signs_from_ms: r.signs_from_ms,
                    retire_after_ms: r.retire_after_ms,
                    unpublished_at_ms: r.retire_after_ms.map(|t| t.saturating_add(grace_ms)),
                })
                .collect()
        })
    }

    /// The key records to change: the stored ones (what other instances may
    /// have added), or the in-memory ones without a store.
    async fn current_records(&self) -> Result<Vec<KeyRecord>, TokenError> {
        match &self.inner.key_store {
            Some(store) => store.load().await,
            None => Ok(self.with_keys(|ring, _| ring.records().cloned().collect())),
        }
    }

    fn install(&self, ring: KeyRing) {
        self.change_keys(|current, _| *current = ring);
    }

    /// Creates the next signing key: published at once, signing after the
    /// publish-ahead time. Stored (sealed) before it is used here; if another
    /// instance rotated at the same moment, adopts its key and answers
    /// [`TokenError::Conflict`].
    pub async fn rotate_signing_key(&self) -> Result<KeyStatus, TokenError> {
        let _one_at_a_time = self.inner.key_change.lock().await;
        let stored = self.current_records().await?;
        let kid = match self.rotated(stored).await? {
            Rotation::Done(ring, kid) => {
                self.install(ring);
                kid
            }
            Rotation::LostTo(theirs) => {
                self.install(theirs);
                return Err(TokenError::Conflict(
                    "another instance rotated the signing key first",
                ));
            }
        };
        self.signing_keys()
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or(TokenError::Corrupt("the new key vanished"))
    }

    /// The ring of `stored` plus a new key, stored; or, when another instance
    /// stored a key of the same version first, the ring as stored now.
    async fn rotated(&self, stored: Vec<KeyRecord>) -> Result<Rotation, TokenError> {
        let policy = &self.inner.config.rotation;
        let mut ring = KeyRing::from_records(policy.clone(), stored.clone())?;
        let kid = ring.rotate(self.now_ms())?.kid().to_owned();
        match &self.inner.key_store {
            Some(store) if !persist_rotation(store, &stored, &ring).await? => Ok(Rotation::LostTo(
                KeyRing::from_records(policy.clone(), store.load().await?)?,
            )),
            _ => Ok(Rotation::Done(ring, kid)),
        }
    }

    /// What every instance runs periodically: adopt keys other instances
    /// stored, rotate when the newest key is `rotate_every` old, and delete
    /// keys past their grace period. Returns whether the ring changed.
    pub async fn maintain_keys(&self) -> Result<bool, TokenError> {
        let _one_at_a_time = self.inner.key_change.lock().await;
        let stored = self.current_records().await?;
        let rotate_every = millis(self.inner.config.rotate_every);
        let now_ms = self.now_ms();
        let rotation_due = rotate_every > 0
            && stored
                .iter()
                .map(|r| r.created_at_ms)
                .max()
                .is_some_and(|newest| newest.saturating_add(rotate_every) <= now_ms);
        let (mut ring, mut changed) = if rotation_due {
            match self.rotated(stored).await? {
                Rotation::Done(ring, _) | Rotation::LostTo(ring) => (ring, true),
            }
        } else {
            let changed = !self.with_keys(|current, _| same_keys(current, &stored));
            (
                KeyRing::from_records(self.inner.config.rotation.clone(), stored)?,
                changed,
            )
        };
        let gone = ring.prune(now_ms);
        if let Some(store) = &self.inner.key_store {
            for kid in &gone {
                store.delete(kid).await?;
            }
        }
        changed |= !gone.is_empty();
        if changed {
            self.install(ring);
        }
        Ok(changed)
    }

    /// Ends a session and revokes its tokens, for an operator.
    pub async fn revoke_session(&self, tenant: &str, session_id: &str) -> Result<(), TokenError> {
        let (session, _) = self
            .inner
            .refresh
            .session(session_id)
            .await?
            .ok_or(TokenError::UnknownRefreshToken)?;
        if session.tenant != tenant {
            return Err(TokenError::WrongTenant);
        }
        self.end_session(&session, "revoked", self.now_ms()).await
    }

    /// Deletes expired sessions and revocations. Any instance may run it.
    pub async fn prune(&self) -> Result<(u64, u64), TokenError> {
        let now_ms = self.now_ms();
        let sessions = self.inner.refresh.prune(now_ms).await?;
        let revocations = self.inner.revocations.prune(now_ms).await?;
        Ok((sessions, revocations))
    }
}

/// The outcome of a rotation attempt.
enum Rotation {
    /// The ring with the new key (named), stored.
    Done(KeyRing, String),
    /// Another instance stored a key of the same version first: the ring as stored.
    LostTo(KeyRing),
}

/// Stores what a rotation changed: the new key (`false` if its version was
/// taken by another instance) and the retirement of the older ones.
async fn persist_rotation(
    store: &SigningKeyStore,
    before: &[KeyRecord],
    after: &KeyRing,
) -> Result<bool, TokenError> {
    // The new key first: if another instance took its version, nothing of this
    // rotation may be stored (the older keys' retirement is theirs to set).
    for record in after.records() {
        if !before.iter().any(|b| b.kid == record.kid) && !store.insert(record).await? {
            return Ok(false);
        }
    }
    for record in after.records() {
        let retired_now = before
            .iter()
            .any(|b| b.kid == record.kid && b.retire_after_ms != record.retire_after_ms);
        if let (true, Some(at)) = (retired_now, record.retire_after_ms) {
            store.set_retire_after(&record.kid, at).await?;
        }
    }
    Ok(true)
}

/// Whether `ring` holds exactly `records` (same keys, same retirement).
fn same_keys(ring: &KeyRing, records: &[KeyRecord]) -> bool {
    let mut held: Vec<_> = ring
        .records()
        .map(|r| (&r.kid, r.retire_after_ms))
        .collect();
    let mut stored: Vec<_> = records
        .iter()
        .map(|r| (&r.kid, r.retire_after_ms))
        .collect();
    held.sort();
    stored.sort();
    held == stored
}

/// Refuses a token of another tenant than the caller's.
pub fn check_tenant(claims: &Claims, tenant: &str) -> Result<(), TokenError> {
    match claims.extra.get(TENANT_CLAIM) {
        Some(Value::String(t)) if t == tenant => Ok(()),
        _ => Err(TokenError::WrongTenant),
    }
}
