//! Errors of the token service. Each rejection has a stable [`TokenError::code`]:
//! the verify endpoint returns it as `reason`, and alert rules match on it.

use crate::jwt::JwtError;
use palisade_store::StoreError;

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The access token itself was refused (signature, claims, ...).
    #[error(transparent)]
    Jwt(#[from] JwtError),
    /// The access token was revoked (by id, by session, or by subject).
    #[error("token revoked")]
    Revoked,
    /// No such refresh token (never issued, or deleted after expiry).
    #[error("unknown refresh token")]
    UnknownRefreshToken,
    /// The refresh token or its session has expired.
    #[error("refresh token expired")]
    RefreshExpired,
    /// The refresh token's session was revoked.
    #[error("refresh session revoked")]
    SessionRevoked,
    /// The refresh token had already been used: its whole session is now
    /// revoked and a security event was emitted.
    #[error("refresh token reused; its session is revoked")]
    RefreshReused {
        /// The revoked session (refresh family) id.
        session: String,
        /// Its subject.
        subject: String,
    },
    /// A request that cannot be honoured as made.
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    /// The token belongs to another tenant than the caller's.
    #[error("token belongs to another tenant")]
    WrongTenant,
    /// Another instance changed the same thing first (a concurrent key rotation).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The database could not be reached or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored data that cannot be used (corrupt row, unsealable key).
    #[error("corrupt stored token data: {0}")]
    Corrupt(&'static str),
}

impl TokenError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Jwt(e) => e.code(),
            Self::Revoked => "revoked",
            Self::UnknownRefreshToken => "unknown_refresh_token",
            Self::RefreshExpired => "refresh_expired",
            Self::SessionRevoked => "session_revoked",
            Self::RefreshReused { .. } => "refresh_reused",
            Self::Invalid(_) => "invalid_request",
            Self::WrongTenant => "wrong_tenant",
            Self::Conflict(_) => "conflict",
            Self::Store(_) => "unavailable",
            Self::Corrupt(_) => "corrupt",
        }
    }

    /// Whether this is a verdict on the presented token (as opposed to a fault of
    /// Palisade or its configuration, which must not read as "invalid token").
    pub fn is_rejection(&self) -> bool {
        match self {
            Self::Jwt(e) => e.is_token_rejection(),
            Self::Revoked
            | Self::UnknownRefreshToken
            | Self::RefreshExpired
            | Self::SessionRevoked
            | Self::RefreshReused { .. }
            | Self::WrongTenant => true,
            Self::Invalid(_) | Self::Conflict(_) | Self::Store(_) | Self::Corrupt(_) => false,
        }
    }
}

/// The queries' own errors (the `?` inside [`palisade_store::on_primary!`]).
impl From<sqlx::Error> for TokenError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::from(error))
    }
}
