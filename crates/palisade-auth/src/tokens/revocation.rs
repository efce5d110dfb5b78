//! Revocation of access tokens: by token (`jti`), by session (`sid`, every
//! access token refreshed from one login) and by subject (every token issued
//! before a time).
//!
//! The database is the record and every instance keeps the live revocations
//! in memory, so the check on each verify is a few hash lookups (tens of ns)
//! and never a network round trip. A revocation takes effect at once on the
//! instance that made it; the others learn of it through PostgreSQL
//! `NOTIFY` within milliseconds, and through the poll of
//! [`Revocations::refresh`] within its interval if a notice was lost.
//!
//! Why not Redis, where it is configured: a revocation must never be
//! forgotten while the token it names is alive, and Redis may evict keys or
//! restart empty, which would silently un-revoke tokens (fail open). The rows
//! are few and written rarely; the database handles them easily, and the
//! in-memory copy keeps them off the hot path either way.
//!
//! Rows live only while a token they can affect may still be valid
//! (`keep_until_ms`), so memory is bounded by the revocations of the last
//! token lifetime.

use super::TokenError;
use crate::jwt::Claims;
use dashmap::DashMap;
use palisade_store::{Database, StoreError, notify, on_primary};
use sqlx::Row;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// The PostgreSQL channel on which new revocations are announced.
pub const CHANNEL: &str = "palisade_revocations";

/// The claim carrying the tenant a Palisade token was issued in.
pub const TENANT_CLAIM: &str = "tenant";
/// The claim carrying the session (refresh family) an access token belongs to.
pub const SESSION_CLAIM: &str = "sid";

/// What to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// One access token, by its `jti`, until it expires.
    Token {
        /// Tenant of the token.
        tenant: String,
        /// Its `jti`.
        jti: String,
        /// When the revocation may be forgotten: the token's expiry (Unix ms).
        keep_until_ms: i64,
    },
    /// Every access token of one session (the `sid` claim).
    Session {
        /// Tenant of the session.
        tenant: String,
        /// The session id.
        sid: String,
        /// When every access token of the session has expired (Unix ms).
        keep_until_ms: i64,
    },
    /// Every token of `subject` issued before `before_ms`.
    Subject {
        /// Tenant of the subject.
        tenant: String,
        /// The subject (`sub`).
        subject: String,
        /// Tokens issued before this time (Unix ms) are revoked.
        before_ms: i64,
        /// When every such token has expired (Unix ms).
        keep_until_ms: i64,
    },
}

impl Revocation {
    fn kind(&self) -> &'static str {
        match self {
            Self::Token { .. } => "jti",
            Self::Session { .. } => "session",
            Self::Subject { .. } => "subject",
        }
    }

    fn parts(&self) -> (&str, &str, i64, i64) {
        match self {
            Self::Token {
                tenant,
                jti,
                keep_until_ms,
            } => (tenant, jti, 0, *keep_until_ms),
            Self::Session {
                tenant,
                sid,
                keep_until_ms,
            } => (tenant, sid, 0, *keep_until_ms),
            Self::Subject {
                tenant,
                subject,
                before_ms,
                keep_until_ms,
            } => (tenant, subject, *before_ms, *keep_until_ms),
        }
    }

    fn from_row(kind: &str, tenant: String, value: String, cutoff: i64, keep: i64) -> Option<Self> {
        Some(match kind {
            "jti" => Self::Token {
                tenant,
                jti: value,
                keep_until_ms: keep,
            },
            "session" => Self::Session {
                tenant,
                sid: value,
                keep_until_ms: keep,
            },
            "subject" => Self::Subject {
                tenant,
                subject: value,
                before_ms: cutoff,
                keep_until_ms: keep,
            },
            _ => return None,
        })
    }
}

/// The live revocations, in memory.
#[derive(Debug, Default)]
struct RevocationList {
    /// `jti` → keep until.
    tokens: DashMap<Box<str>, i64>,
    /// `sid` → keep until.
    sessions: DashMap<Box<str>, i64>,
    /// `subject` → its cutoffs, one per tenant. Keyed by the subject alone
    /// so a verify looks it up with the claim's `&str`, building no key; a
    /// subject is rarely revoked in more than one tenant.
    subjects: DashMap<Box<str>, Vec<SubjectCutoff>>,
}

/// Tokens of `subject` in `tenant` issued before `before_ms` are revoked.
#[derive(Debug)]
struct SubjectCutoff {
    tenant: Box<str>,
    before_ms: i64,
    keep_until_ms: i64,
}

impl RevocationList {
    fn apply(&self, revocation: &Revocation) {
        match revocation {
            Revocation::Token {
                jti, keep_until_ms, ..
            } => {
                self.tokens.insert(jti.as_str().into(), *keep_until_ms);
            }
            Revocation::Session {
                sid, keep_until_ms, ..
            } => {
                self.sessions.insert(sid.as_str().into(), *keep_until_ms);
            }
            Revocation::Subject {
                tenant,
                subject,
                before_ms,
                keep_until_ms,
            } => {
                let mut cutoffs = self.subjects.entry(subject.as_str().into()).or_default();
                match cutoffs.iter_mut().find(|c| *c.tenant == **tenant) {
                    // A later cutoff covers an earlier one; never move it back.
                    Some(cut) => {
                        cut.before_ms = cut.before_ms.max(*before_ms);
                        cut.keep_until_ms = cut.keep_until_ms.max(*keep_until_ms);
                    }
                    None => cutoffs.push(SubjectCutoff {
                        tenant: tenant.as_str().into(),
                        before_ms: *before_ms,
                        keep_until_ms: *keep_until_ms,
                    }),
                }
            }
        }
    }

    fn is_revoked(&self, claims: &Claims) -> bool {
        if let Some(jti) = claims.jti.as_deref()
            && self.tokens.contains_key(jti)
        {
            return true;
        }
        if let Some(serde_json::Value::String(sid)) = claims.extra.get(SESSION_CLAIM)
            && self.sessions.contains_key(sid.as_str())
        {
            return true;
        }
        if self.subjects.is_empty() {
            return false;
        }
        let (Some(sub), Some(serde_json::Value::String(tenant))) =
            (claims.sub.as_deref(), claims.extra.get(TENANT_CLAIM))
        else {
            return false;
        };
        let Some(cutoffs) = self.subjects.get(sub) else {
            return false;
        };
        match cutoffs.iter().find(|c| *c.tenant == **tenant) {
            // `iat` has whole seconds: a token issued in the same second as the
            // cutoff counts as before it (revoking too much, never too little).
            // A token without `iat` cannot show it came after, so it is revoked.
            Some(cut) => claims
                .iat
                .is_none_or(|iat| iat.saturating_mul(1000) < cut.before_ms.saturating_add(1000)),
            None => false,
        }
    }

    fn forget_expired(&self, now_ms: i64) {
        self.tokens.retain(|_, keep| *keep > now_ms);
        self.sessions.retain(|_, keep| *keep > now_ms);
        self.subjects.retain(|_, cutoffs| {
            cutoffs.retain(|c| c.keep_until_ms > now_ms);
            !cutoffs.is_empty()
        });
    }

    fn len(&self) -> usize {
        let subjects: usize = self.subjects.iter().map(|cutoffs| cutoffs.len()).sum();
        self.tokens.len() + self.sessions.len() + subjects
    }
}

/// Revocations: recorded in the database, mirrored in memory, shared with the
/// other instances. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Revocations {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    list: RevocationList,
    /// Highest `seq` read from the database.
    seen: AtomicI64,
}

impl Revocations {
    /// Revocations recorded in `db` (migrated). Call [`Revocations::refresh`]
    /// once before serving, then periodically.
    pub fn new(db: Database) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                list: RevocationList::default(),
                seen: AtomicI64::new(0),
            }),
        }
    }

    /// Whether `claims` are revoked. Memory only.
    pub fn is_revoked(&self, claims: &Claims) -> bool {
        self.inner.list.is_revoked(claims)
    }

    /// Number of live revocations held in memory.
    pub fn len(&self) -> usize {
        self.inner.list.len()
    }

    /// Whether no revocation is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records `revocation`: durable in the database before this returns, in
    /// effect here at once, announced to the other instances.
    pub async fn revoke(&self, revocation: Revocation) -> Result<(), TokenError> {
        let (tenant, value, cutoff, keep) = revocation.parts();
        let kind = revocation.kind();
        let pg = "INSERT INTO auth_revocations (kind, tenant, value, cutoff_ms, keep_until_ms) \
                  VALUES ($1, $2, $3, $4, $5)";
        let lite = "INSERT INTO auth_revocations (kind, tenant, value, cutoff_ms, keep_until_ms) \
                    VALUES (?, ?, ?, ?, ?)";
        on_primary!(
            &self.inner.db,
            pg,
            lite,
            |q| q
                .bind(kind)
                .bind(tenant)
                .bind(value)
                .bind(cutoff)
                .bind(keep),
            execute,
            |_r| Ok::<_, StoreError>(())
        )?;
        self.inner.list.apply(&revocation);
        metrics::counter!("palisade_token_revocations_total", "kind" => kind).increment(1);
        if let Err(error) = notify::announce(&self.inner.db, CHANNEL, kind).await {
            // The others still see it at their next poll.
            tracing::warn!(%error, "could not announce a revocation; other instances will poll it");
        }
        Ok(())
    }

    /// Reads revocations recorded since the last refresh (by any instance) and
    /// forgets those whose tokens have all expired. Returns how many rows were read.
    pub async fn refresh(&self, now_ms: i64) -> Result<usize, TokenError> {
        let seen = self.inner.seen.load(Ordering::Acquire);
        // PostgreSQL re-reads the last 10 s (server time), so a row whose
        // transaction committed after a higher `seq` had been read is still seen.
        let pg = "SELECT seq, kind, tenant, value, cutoff_ms, keep_until_ms FROM auth_revocations \
                  WHERE (seq > $1 OR inserted_at > clock_timestamp() - interval '10 seconds') \
                  AND keep_until_ms > $2 ORDER BY seq";
        let lite = "SELECT seq, kind, tenant, value, cutoff_ms, keep_until_ms FROM auth_revocations \
                    WHERE seq > ? AND keep_until_ms > ? ORDER BY seq";
        let rows: Vec<(i64, Option<Revocation>)> = on_primary!(
            &self.inner.db,
            pg,
            lite,
            |q| q.bind(seen).bind(now_ms),
            fetch_all,
            |rows| rows
                .iter()
                .map(|r| {
                    let kind: String = r.try_get("kind")?;
                    Ok::<_, StoreError>((
                        r.try_get("seq")?,
                        Revocation::from_row(
                            &kind,
                            r.try_get("tenant")?,
                            r.try_get("value")?,
                            r.try_get("cutoff_ms")?,
                            r.try_get("keep_until_ms")?,
                        ),
                    ))
                })
                .collect::<Result<Vec<_>, _>>()
        )?;
        let mut highest = seen;
        for (seq, revocation) in &rows {
            highest = highest.max(*seq);
            match revocation {
                Some(r) => self.inner.list.apply(r),
                // Unknown kinds come from a newer version; it enforces them itself.
                None => tracing::warn!(seq, "skipping a revocation of an unknown kind"),
            }
        }
        self.inner.seen.fetch_max(highest, Ordering::AcqRel);
        self.inner.list.forget_expired(now_ms);
        Ok(rows.len())
    }

    /// Deletes rows whose tokens have all expired. Any instance may run it.
    pub async fn prune(&self, now_ms: i64) -> Result<u64, TokenError> {
        let pg = "DELETE FROM auth_revocations WHERE keep_until_ms <= $1";
        let lite = "DELETE FROM auth_revocations WHERE keep_until_ms <= ?";
        Ok(on_primary!(
            &self.inner.db,
            pg,
            lite,
            |q| q.bind(now_ms),
            execute,
            |r| Ok::<_, StoreError>(r.rows_affected())
        )?)
    }

    /// Listens for revocations announced by other instances and reads them at
    /// once, until the process ends. Returns at once on SQLite.
    pub async fn listen(self, clock: palisade_core::SharedClock) {
        let db = self.inner.db.clone();
        let refresh = || {
            let (this, clock) = (self.clone(), clock.clone());
            async move {
                if let Err(error) = this.refresh(clock.now_unix_ms()).await {
                    tracing::debug!(%error, "revocation refresh on notice failed; the poll will retry");
                }
            }
        };
        notify::listen(db, CHANNEL, refresh, |_kind| refresh()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(jti: &str, sub: &str, iat: i64, sid: Option<&str>) -> Claims {
        let mut c = Claims {
            jti: Some(jti.into()),
            sub: Some(sub.into()),
            iat: Some(iat),
            ..Claims::default()
        };
        c.extra.insert(TENANT_CLAIM.into(), json!("t1"));
        if let Some(sid) = sid {
            c.extra.insert(SESSION_CLAIM.into(), json!(sid));
        }
        c
    }

    #[test]
    fn revokes_by_jti_by_session_and_by_subject_cutoff() {
        let list = RevocationList::default();
        let token = claims("j1", "alice", 1_000, Some("s1"));
        assert!(!list.is_revoked(&token));

        list.apply(&Revocation::Token {
            tenant: "t1".into(),
            jti: "j1".into(),
            keep_until_ms: 10,
        });
        assert!(list.is_revoked(&token));
        assert!(!list.is_revoked(&claims("j2", "alice", 1_000, Some("s1"))));

        list.apply(&Revocation::Session {
            tenant: "t1".into(),
            sid: "s1".into(),
            keep_until_ms: 10,
        });
        assert!(list.is_revoked(&claims("j2", "alice", 1_000, Some("s1"))));
        assert!(!list.is_revoked(&claims("j3", "alice", 1_000, Some("s2"))));

        list.apply(&Revocation::Subject {
            tenant: "t1".into(),
            subject: "alice".into(),
            before_ms: 2_000_000,
            keep_until_ms: 10,
        });
        assert!(list.is_revoked(&claims("j3", "alice", 1_999, None)));
        // Same second as the cutoff: revoked (fail closed).
        assert!(list.is_revoked(&claims("j3", "alice", 2_000, None)));
        assert!(!list.is_revoked(&claims("j3", "alice", 2_001, None)));
        assert!(!list.is_revoked(&claims("j3", "bob", 1_000, None)));
    }

    #[test]
    fn subject_cutoffs_are_per_tenant_and_never_move_back() {
        let list = RevocationList::default();
        let subject = |before_ms| Revocation::Subject {
            tenant: "t1".into(),
            subject: "alice".into(),
            before_ms,
            keep_until_ms: 10,
        };
        list.apply(&subject(5_000_000));
        list.apply(&subject(1_000_000));
        assert!(list.is_revoked(&claims("j", "alice", 4_000, None)));
        let mut other_tenant = claims("j", "alice", 4_000, None);
        other_tenant.extra.insert(TENANT_CLAIM.into(), json!("t2"));
        assert!(!list.is_revoked(&other_tenant));

        // The same subject revoked in a second tenant, kept for longer: each
        // tenant keeps its own cutoff, and each is forgotten on its own.
        list.apply(&Revocation::Subject {
            tenant: "t2".into(),
            subject: "alice".into(),
            before_ms: 4_500_000,
            keep_until_ms: 20,
        });
        assert_eq!(list.len(), 2);
        assert!(list.is_revoked(&other_tenant));
        let mut after_t2_cutoff = claims("j", "alice", 4_000, None);
        after_t2_cutoff.iat = Some(4_600);
        after_t2_cutoff
            .extra
            .insert(TENANT_CLAIM.into(), json!("t2"));
        assert!(!list.is_revoked(&after_t2_cutoff));
        list.forget_expired(15);
        assert_eq!(list.len(), 1);
        assert!(!list.is_revoked(&claims("j", "alice", 4_000, None)));
        assert!(list.is_revoked(&other_tenant));
    }

    #[test]
    fn forgets_revocations_once_their_tokens_have_expired() {
        let list = RevocationList::default();
        list.apply(&Revocation::Token {
            tenant: "t1".into(),
            jti: "old".into(),
            keep_until_ms: 100,
        });
        list.apply(&Revocation::Token {
            tenant: "t1".into(),
            jti: "new".into(),
            keep_until_ms: 300,
        });
        list.forget_expired(200);
        assert_eq!(list.len(), 1);
        assert!(list.is_revoked(&claims("new", "a", 0, None)));
    }
}
