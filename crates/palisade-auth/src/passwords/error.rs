//! Why a password operation failed, with a stable code per kind for the HTTP layer.

/// Why hashing or verifying a password failed.
///
/// A wrong password is not an error: [`super::Verified::ok`] is `false`. Errors are for
/// input the policy refuses, stored hashes that cannot be used, and overload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Shorter than the policy's minimum (Unicode code points after NFKC).
    #[error("password must be at least {min} characters")]
    TooShort {
        /// The policy's minimum.
        min: usize,
    },
    /// Longer than the policy's maximum (Unicode code points after NFKC).
    #[error("password must be at most {max} characters")]
    TooLong {
        /// The policy's maximum.
        max: usize,
    },
    /// The stored hash is of a scheme this service does not verify (scrypt, PBKDF2,
    /// `$2x$`, ...) or has parameters beyond what it will compute, so that one stored
    /// row cannot hold a hashing slot for minutes.
    #[error("unsupported password hash")]
    UnsupportedHash,
    /// The stored hash claims a supported scheme but does not parse as one.
    #[error("malformed password hash")]
    MalformedHash,
    /// Every hashing slot stayed busy for longer than the configured wait, or too many
    /// requests were already waiting. The caller should answer 503 with `Retry-After`.
    #[error("password hashing is busy; try again shortly")]
    Busy,
    /// The policy given to [`super::Passwords::new`] is outside the allowed ranges.
    #[error("invalid password policy: {0}")]
    InvalidPolicy(&'static str),
    /// The system random generator failed or the hashing task died. Never caused by input.
    #[error("internal password hashing failure")]
    Internal,
}

impl PasswordError {
    /// A stable, machine-readable name for the kind of error (used in problem types,
    /// metrics and logs; never changes once released).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "password_too_short",
            Self::TooLong { .. } => "password_too_long",
            Self::UnsupportedHash => "password_hash_unsupported",
            Self::MalformedHash => "password_hash_malformed",
            Self::Busy => "password_hashing_busy",
            Self::InvalidPolicy(_) => "password_policy_invalid",
            Self::Internal => "password_hashing_internal",
        }
    }
}
