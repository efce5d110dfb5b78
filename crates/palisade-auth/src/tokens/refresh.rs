//! Refresh tokens: opaque 256-bit random values, stored only as SHA-256
//! hashes, rotated on every use and grouped in sessions (refresh families).
//!
//! Rotation claims the presented token with one conditional `UPDATE`, so of
//! two concurrent uses exactly one wins. The loser, like any later replay of
//! a rotated token, is treated as theft (RFC 9700 §4.14.2): the whole session
//! is revoked, including the access tokens it produced (through their `sid`).

use super::TokenError;
use aws_lc_rs::{digest, rand};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use palisade_core::Secret;
use palisade_store::{Database, StoreError, on_primary};
use sqlx::Row;

/// Prefix of every refresh token, so leaked ones are easy to spot (secret scanners).
pub const REFRESH_TOKEN_PREFIX: &str = "prt_";

/// A refresh token as issued: shown once to the caller, never stored.
pub(crate) struct IssuedRefreshToken {
    pub(crate) token: Secret,
    pub(crate) hash: [u8; 32],
}

impl IssuedRefreshToken {
    /// 256 random bits, base64url, with the prefix.
    pub(crate) fn generate() -> Result<Self, TokenError> {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        rand::fill(bytes.as_mut()).map_err(|_| TokenError::Corrupt("no randomness"))?;
        let token = format!(
            "{REFRESH_TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(bytes.as_ref())
        );
        let hash = hash_token(&token);
        Ok(Self {
            token: Secret::new(token),
            hash,
        })
    }
}

/// SHA-256 of a presented refresh token: how it is found. A plain hash is enough
/// because the token has 256 bits of entropy (nothing to brute-force).
pub(crate) fn hash_token(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// Whether `token` has the shape of a refresh token (checked before any lookup).
pub(crate) fn well_formed(token: &str) -> bool {
    token
        .strip_prefix(REFRESH_TOKEN_PREFIX)
        .is_some_and(|rest| {
            rest.len() == 43
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A login session: what each refresh re-issues.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Session id (UUIDv7), the access tokens' `sid` claim.
    pub id: String,
    /// Tenant of the caller that issued it.
    pub tenant: String,
    /// Subject.
    pub subject: String,
    /// Audience of its access tokens.
    pub audience: String,
    /// Extra claims of its access tokens.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Lifetime of its access tokens, in seconds.
    pub access_ttl_s: i64,
    /// Start (Unix ms).
    pub created_at_ms: i64,
    /// Absolute end (Unix ms), whatever the rotations.
    pub expires_at_ms: i64,
}

/// The refresh-token tables.
#[derive(Debug, Clone)]
pub(crate) struct RefreshStore {
    db: Database,
}

const SESSION_COLUMNS: &str = "id, tenant, subject, audience, claims, access_ttl_s, created_at_ms, expires_at_ms, revoked_at_ms";

/// A session row as stored, before its claims are parsed.
struct SessionRow {
    session: Session,
    claims: String,
    revoked_at_ms: Option<i64>,
}

impl SessionRow {
    fn parse(mut self) -> Result<(Session, Option<i64>), TokenError> {
        self.session.claims = serde_json::from_str(&self.claims)
            .map_err(|_| TokenError::Corrupt("session claims"))?;
        Ok((self.session, self.revoked_at_ms))
    }
}

/// What rotating a presented token found.
pub(crate) enum Claimed {
    /// The token was unused and is now used: its session, to continue.
    Fresh(Session),
    /// The token had been used before: its session (now to be revoked).
    Replayed(Session),
}

impl RefreshStore {
    pub(crate) fn new(db: Database) -> Self {
        Self { db }
    }

    /// Stores a new session and its first refresh token.
    pub(crate) async fn start(
        &self,
        session: &Session,
        first: &[u8; 32],
        token_expires_at_ms: i64,
    ) -> Result<(), TokenError> {
        let claims = serde_json::Value::Object(session.claims.clone()).to_string();
        let pg = "INSERT INTO auth_refresh_families (id, tenant, subject, audience, claims, access_ttl_s, created_at_ms, expires_at_ms) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let lite = "INSERT INTO auth_refresh_families (id, tenant, subject, audience, claims, access_ttl_s, created_at_ms, expires_at_ms) \
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
        on_primary!(
            &self.db,
            pg,
            lite,
            |q| q
                .bind(&session.id)
                .bind(&session.tenant)
                .bind(&session.subject)
                .bind(&session.audience)
                .bind(&claims)
                .bind(session.access_ttl_s)
                .bind(session.created_at_ms)
                .bind(session.expires_at_ms),
            execute,
            |_r| Ok::<_, StoreError>(())
        )?;
        // Without a transaction a failure here leaves a session with no token:
        // unusable, and deleted with the expired ones.
        self.add_token(
            &session.id,
            first,
            session.created_at_ms,
            token_expires_at_ms,
        )
        .await
    }

    /// Adds a refresh token to a session.
    pub(crate) async fn add_token(
        &self,
        session_id: &str,
        hash: &[u8; 32],
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), TokenError> {
        let pg = "INSERT INTO auth_refresh_tokens (token_hash, family_id, issued_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4)";
        let lite = "INSERT INTO auth_refresh_tokens (token_hash, family_id, issued_at_ms, expires_at_ms) VALUES (?, ?, ?, ?)";
        on_primary!(
            &self.db,
            pg,
            lite,
            |q| q
                .bind(hash.as_slice())
                .bind(session_id)
                .bind(now_ms)
                .bind(expires_at_ms),
            execute,
            |_r| Ok::<_, StoreError>(())
        )?;
        Ok(())
    }

    /// Marks the token with `hash` used, if it belongs to `tenant`, and reports
    /// what it was. Fails with the rejection when the token is unknown, of
    /// another tenant, expired, or its session is revoked or over (all checked
    /// before replay, so an expired replay is not an alarm, and a caller of
    /// another tenant can neither use up nor revoke a token).
    pub(crate) async fn claim(
        &self,
        hash: &[u8; 32],
        tenant: &str,
        now_ms: i64,
    ) -> Result<Claimed, TokenError> {
        let pg = "UPDATE auth_refresh_tokens SET used_at_ms = $1 \
                  WHERE token_hash = $2 AND used_at_ms IS NULL AND expires_at_ms > $1 \
                  AND family_id IN (SELECT id FROM auth_refresh_families WHERE tenant = $3) \
                  RETURNING family_id";
        let lite = "UPDATE auth_refresh_tokens SET used_at_ms = ?1 \
                    WHERE token_hash = ?2 AND used_at_ms IS NULL AND expires_at_ms > ?1 \
                    AND family_id IN (SELECT id FROM auth_refresh_families WHERE tenant = ?3) \
                    RETURNING family_id";
        let claimed: Option<String> = on_primary!(
            &self.db,
            pg,
            lite,
            |q| q.bind(now_ms).bind(hash.as_slice()).bind(tenant),
            fetch_optional,
            |row| row
                .map(|r| r.try_get::<String, _>("family_id"))
                .transpose()
                .map_err(StoreError::from)
        )?;
        let (session_id, fresh, token_expires_at_ms) = match claimed {
            Some(id) => (id, true, i64::MAX),
            None => {
                let (id, expires_at_ms) = self
                    .token(hash)
                    .await?
                    .ok_or(TokenError::UnknownRefreshToken)?;
                (id, false, expires_at_ms)
            }
        };
        let (session, revoked_at) = self
            .session(&session_id)
            .await?
            .ok_or(TokenError::Corrupt("refresh token without a session"))?;
        if session.tenant != tenant {
            return Err(TokenError::WrongTenant);
        }
        if token_expires_at_ms <= now_ms || session.expires_at_ms <= now_ms {
            return Err(TokenError::RefreshExpired);
        }
        if revoked_at.is_some() {
            return Err(TokenError::SessionRevoked);
        }
        Ok(if fresh {
            Claimed::Fresh(session)
        } else {
            Claimed::Replayed(session)
        })
    }

    /// The session of the token with `hash` and its expiry, used or not.
    async fn token(&self, hash: &[u8; 32]) -> Result<Option<(String, i64)>, TokenError> {
        let pg = "SELECT family_id, expires_at_ms FROM auth_refresh_tokens WHERE token_hash = $1";
        let lite = "SELECT family_id, expires_at_ms FROM auth_refresh_tokens WHERE token_hash = ?";
        Ok(on_primary!(
            &self.db,
            pg,
            lite,
            |q| q.bind(hash.as_slice()),
            fetch_optional,
            |row| row
                .map(|r| Ok::<_, StoreError>((
                    r.try_get("family_id")?,
                    r.try_get("expires_at_ms")?
                )))
                .transpose()
        )?)
    }

    /// The session a refresh token belongs to, if the token exists.
    pub(crate) async fn session_of(&self, hash: &[u8; 32]) -> Result<Option<Session>, TokenError> {
        match self.token(hash).await? {
            Some((id, _)) => Ok(self.session(&id).await?.map(|(s, _)| s)),
            None => Ok(None),
        }
    }

    /// A session and when it was revoked, if it was.
    pub(crate) async fn session(
        &self,
        id: &str,
    ) -> Result<Option<(Session, Option<i64>)>, TokenError> {
        let pg = format!("SELECT {SESSION_COLUMNS} FROM auth_refresh_families WHERE id = $1");
        let lite = format!("SELECT {SESSION_COLUMNS} FROM auth_refresh_families WHERE id = ?");
        let row: Option<SessionRow> = on_primary!(
            &self.db,
            &pg,
            &lite,
            |q| q.bind(id),
            fetch_optional,
            |row| row
                .map(|r| {
                    Ok::<_, StoreError>(SessionRow {
                        session: Session {
                            id: r.try_get("id")?,
                            tenant: r.try_get("tenant")?,
                            subject: r.try_get("subject")?,
                            audience: r.try_get("audience")?,
                            claims: serde_json::Map::new(),
                            access_ttl_s: r.try_get("access_ttl_s")?,
                            created_at_ms: r.try_get("created_at_ms")?,
                            expires_at_ms: r.try_get("expires_at_ms")?,
                        },
                        claims: r.try_get("claims")?,
                        revoked_at_ms: r.try_get("revoked_at_ms")?,
                    })
                })
                .transpose()
        )?;
        row.map(SessionRow::parse).transpose()
    }

    /// Revokes a session; `false` if it was already revoked (or does not exist).
    pub(crate) async fn revoke_session(
        &self,
        id: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<bool, TokenError> {
        let pg = "UPDATE auth_refresh_families SET revoked_at_ms = $1, revoked_reason = $2 \
                  WHERE id = $3 AND revoked_at_ms IS NULL";
        let lite = "UPDATE auth_refresh_families SET revoked_at_ms = ?, revoked_reason = ? \
                    WHERE id = ? AND revoked_at_ms IS NULL";
        Ok(on_primary!(
            &self.db,
            pg,
            lite,
            |q| q.bind(now_ms).bind(reason).bind(id),
            execute,
            |r| Ok::<_, StoreError>(r.rows_affected() > 0)
        )?)
    }

    /// Revokes every live session of a subject started before `before_ms`.
    pub(crate) async fn revoke_subject(
        &self,
        tenant: &str,
        subject: &str,
        before_ms: i64,
        now_ms: i64,
    ) -> Result<u64, TokenError> {
        let pg = "UPDATE auth_refresh_families SET revoked_at_ms = $1, revoked_reason = 'subject' \
                  WHERE tenant = $2 AND subject = $3 AND created_at_ms < $4 AND revoked_at_ms IS NULL";
        let lite = "UPDATE auth_refresh_families SET revoked_at_ms = ?, revoked_reason = 'subject' \
                    WHERE tenant = ? AND subject = ? AND created_at_ms < ? AND revoked_at_ms IS NULL";
        Ok(on_primary!(
            &self.db,
            pg,
            lite,
            |q| q.bind(now_ms).bind(tenant).bind(subject).bind(before_ms),
            execute,
            |r| Ok::<_, StoreError>(r.rows_affected())
        )?)
    }

    /// Deletes sessions (and their tokens) that ended before `now_ms`.
    pub(crate) async fn prune(&self, now_ms: i64) -> Result<u64, TokenError> {
        let tokens_pg = "DELETE FROM auth_refresh_tokens WHERE family_id IN \
                         (SELECT id FROM auth_refresh_families WHERE expires_at_ms <= $1)";
        let tokens_lite = "DELETE FROM auth_refresh_tokens WHERE family_id IN \
                           (SELECT id FROM auth_refresh_families WHERE expires_at_ms <= ?)";
        on_primary!(
            &self.db,
            tokens_pg,
            tokens_lite,
            |q| q.bind(now_ms),
            execute,
            |_r| Ok::<_, StoreError>(())
        )?;
        let pg = "DELETE FROM auth_refresh_families WHERE expires_at_ms <= $1";
        let lite = "DELETE FROM auth_refresh_families WHERE expires_at_ms <= ?";
        Ok(on_primary!(
            &self.db,
            pg,
            lite,
            |q| q.bind(now_ms),
            execute,
            |r| Ok::<_, StoreError>(r.rows_affected())
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_distinct_and_hashed() {
        let a = IssuedRefreshToken::generate().unwrap_or_else(|e| panic!("{e}"));
        let b = IssuedRefreshToken::generate().unwrap_or_else(|e| panic!("{e}"));
        assert!(well_formed(a.token.expose()));
        assert_ne!(a.token.expose(), b.token.expose());
        assert_eq!(hash_token(a.token.expose()), a.hash);
        assert!(!well_formed("prt_short"));
        assert!(!well_formed(&a.token.expose().replace("prt_", "xxx_")));
        assert!(!well_formed(&format!("{}=", &a.token.expose()[..46])));
    }
}
