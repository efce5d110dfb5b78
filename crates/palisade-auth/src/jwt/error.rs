//! The one error type of the JWT module. Every rejection of a token has its own
//! variant and a stable [`JwtError::code`], which the HTTP API returns as-is, so
//! a client (or an alert rule) can tell an expired token from a forged one.

use std::time::Duration;

/// Why a token was rejected, or why a key or configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The token is longer than the configured limit; nothing else was read.
    #[error("token is {len} bytes, the limit is {max}")]
    TooLarge {
        /// Length of the presented token.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// Not a compact JWS of three base64url parts holding a JSON header and claims.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header says `alg: none` (in any letter case): an unsigned token.
    #[error("unsigned tokens (alg none) are never accepted")]
    AlgNone,
    /// The header names an algorithm Palisade does not implement (HS512, PS256, ...).
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The algorithm is implemented but not enabled in this verifier's configuration
    /// (HS256 is off unless asked for).
    #[error("algorithm not allowed by configuration")]
    AlgorithmNotAllowed,
    /// The token's `alg` differs from the single algorithm its key is bound to.
    #[error("token algorithm does not match its key")]
    AlgorithmMismatch,
    /// An HMAC token presented against an asymmetric key: the classic attack that
    /// uses a published public key as the HMAC secret.
    #[error("HMAC token against a public key (algorithm confusion)")]
    AlgorithmConfusion,
    /// The header has no `kid` and the verifier requires one.
    #[error("token has no key id")]
    MissingKid,
    /// No key with this `kid` is published (never was, or was rotated out).
    #[error("unknown key id")]
    UnknownKid,
    /// The header has a `crit` member: extensions Palisade does not understand
    /// must make the token invalid (RFC 7515 §4.1.11), and it understands none.
    #[error("critical header extensions are not supported")]
    CritHeader,
    /// The header points at a key (`jku`, `x5u`) or carries one (`jwk`, `x5c`).
    /// Such keys are never fetched nor trusted: keys come from configuration only.
    #[error("header names its own key ({0}); never fetched or trusted")]
    RemoteKeyHeader(&'static str),
    /// The header's `typ` is missing or differs from the required one (RFC 9068 `at+jwt`).
    #[error("wrong token type")]
    BadTyp,
    /// An ES256 signature in ASN.1 DER instead of the raw 64-byte r‖s that JWS requires.
    #[error("ES256 signature is DER-encoded; JWS requires raw r||s")]
    DerSignature,
    /// The signature does not verify (tampered header, claims or signature, or wrong key).
    #[error("bad signature")]
    BadSignature,
    /// `exp` is in the past, beyond the leeway.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future, beyond the leeway.
    #[error("token issued in the future")]
    IssuedInFuture,
    /// A claim the verifier needs (`exp`, `iss`, `aud`) is absent or has the wrong type.
    #[error("missing or mistyped claim {0}")]
    MissingClaim(&'static str),
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    BadIssuer,
    /// `aud` does not contain the expected audience, or that audience is not configured.
    #[error("wrong audience")]
    BadAudience,
    /// `exp` minus `iat` (or `nbf`, or now) exceeds the configured maximum lifetime.
    #[error("token lifetime exceeds the maximum")]
    LifetimeTooLong,
    /// A key could not be parsed or used (bad DER, wrong curve, short RSA modulus).
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// An HMAC secret shorter than the 256 bits RFC 7518 §3.2 requires for HS256.
    #[error("HMAC secret shorter than 32 bytes")]
    WeakKey,
    /// A JWKS document could not be parsed.
    #[error("invalid JWKS document: {0}")]
    InvalidJwks(&'static str),
    /// The key ring has no key that may sign at this time.
    #[error("no signing key is active")]
    NoSigningKey,
    /// A configuration value is out of range (leeway above the bound, ttl above the
    /// maximum lifetime, ...).
    #[error("invalid JWT configuration: {0}")]
    InvalidConfig(&'static str),
    /// The crypto library failed to generate a key or sign.
    #[error("cryptographic operation failed")]
    Crypto,
}

impl JwtError {
    /// A stable machine-readable code for this error, returned by the HTTP API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Malformed(_) => "malformed",
            Self::AlgNone => "alg_none",
            Self::UnsupportedAlgorithm => "unsupported_alg",
            Self::AlgorithmNotAllowed => "alg_not_allowed",
            Self::AlgorithmMismatch => "alg_mismatch",
            Self::AlgorithmConfusion => "alg_confusion",
            Self::MissingKid => "missing_kid",
            Self::UnknownKid => "unknown_kid",
            Self::CritHeader => "crit_header",
            Self::RemoteKeyHeader(_) => "remote_key_header",
            Self::BadTyp => "bad_typ",
            Self::DerSignature => "der_signature",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::MissingClaim(_) => "missing_claim",
            Self::BadIssuer => "bad_issuer",
            Self::BadAudience => "bad_audience",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::InvalidKey(_) => "invalid_key",
            Self::WeakKey => "weak_key",
            Self::InvalidJwks(_) => "invalid_jwks",
            Self::NoSigningKey => "no_signing_key",
            Self::InvalidConfig(_) => "invalid_config",
            Self::Crypto => "crypto",
        }
    }

    /// Whether this error rejects a presented token (the caller answers 401), as
    /// opposed to a fault in keys or configuration (the operator must act).
    pub fn is_token_rejection(&self) -> bool {
        !matches!(
            self,
            Self::InvalidKey(_)
                | Self::WeakKey
                | Self::InvalidJwks(_)
                | Self::NoSigningKey
                | Self::InvalidConfig(_)
                | Self::Crypto
        )
    }
}

/// The largest leeway a verifier accepts: clock skew beyond this is a broken
/// clock, and a larger window would quietly extend every token's life.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);
