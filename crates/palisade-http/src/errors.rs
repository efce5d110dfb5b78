//! The one place where domain errors become HTTP problems.

use crate::problem::Problem;
use palisade_auth::ApiKeyError;
use palisade_guard::GuardError;
use palisade_store::StoreError;

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            Problem::unavailable("the database is unavailable", 2)
        } else {
            tracing::error!(error = %e, "database error");
            Problem::internal()
        }
    }
}

impl From<ApiKeyError> for Problem {
    fn from(e: ApiKeyError) -> Self {
        match e {
            ApiKeyError::Invalid => Problem::unauthorized(),
            ApiKeyError::BadLength => {
                Problem::unprocessable(e.to_string()).field("secret", e.to_string())
            }
            ApiKeyError::BadName => {
                Problem::unprocessable(e.to_string()).field("name", e.to_string())
            }
            ApiKeyError::NotFound => Problem::not_found("no API key with that id"),
            ApiKeyError::Store(e) => e.into(),
        }
    }
}

impl From<GuardError> for Problem {
    fn from(e: GuardError) -> Self {
        match e {
            GuardError::Invalid { field, .. } => {
                Problem::unprocessable(e.to_string()).field(field, e.to_string())
            }
            GuardError::CostExceedsCapacity { .. } => {
                Problem::unprocessable(e.to_string()).field("cost", e.to_string())
            }
            GuardError::UnknownRule(_) => Problem::not_found(e.to_string()),
            GuardError::Full(_) => {
                tracing::warn!(error = %e, "rate limiter full; limiting new keys");
                Problem::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too Many Requests",
                )
                .detail("too many keys are being limited at once")
                .retry_after(1)
            }
            GuardError::StoreUnavailable(_) => {
                tracing::warn!(error = %e, "rule store unavailable");
                Problem::unavailable("the database is unavailable", 2)
            }
            other => {
                tracing::error!(error = %other, "request protection error");
                Problem::internal()
            }
        }
    }
}

impl From<palisade_authz::AuthzError> for Problem {
    fn from(e: palisade_authz::AuthzError) -> Self {
        use palisade_authz::AuthzError as E;
        match e {
            E::Cycle { .. } | E::VersionConflict => Problem::conflict(e.to_string()),
            E::UnknownRoleName(_) | E::UnknownBinding(_) | E::UnknownMembership => {
                Problem::not_found(e.to_string())
            }
            E::InvalidRequest(_) => Problem::bad_request(e.to_string()),
            E::StoreUnavailable(_) => {
                tracing::warn!(error = %e, "policy store unavailable");
                Problem::unavailable("the database is unavailable", 2)
            }
            E::Store(_) | E::CorruptPolicy { .. } => {
                tracing::error!(error = %e, "policy store error");
                Problem::internal()
            }
            // Every other error is about the policy or import the caller sent.
            other => Problem::unprocessable(other.to_string()),
        }
    }
}

impl From<palisade_auth::passwords::PasswordError> for Problem {
    fn from(e: palisade_auth::passwords::PasswordError) -> Self {
        use palisade_auth::passwords::PasswordError as E;
        match e {
            E::TooShort { .. } | E::TooLong { .. } => {
                Problem::unprocessable(e.to_string()).field("password", e.to_string())
            }
            E::UnsupportedHash | E::MalformedHash => {
                Problem::unprocessable(e.to_string()).field("hash", e.to_string())
            }
            E::Busy => Problem::unavailable(e.to_string(), 1),
            E::InvalidPolicy(_) | E::Internal => {
                tracing::error!(error = %e, "password hashing failed");
                Problem::internal()
            }
        }
    }
}

impl From<palisade_auth::tokens::TokenError> for Problem {
    fn from(e: palisade_auth::tokens::TokenError) -> Self {
        use palisade_auth::tokens::TokenError;
        match e {
            TokenError::Store(e) => e.into(),
            TokenError::Invalid(detail) => Problem::unprocessable(detail),
            TokenError::Conflict(detail) => Problem::conflict(detail),
            TokenError::WrongTenant => {
                Problem::forbidden("the token belongs to another tenant than the API key")
            }
            TokenError::Corrupt(what) => {
                tracing::error!(what, "corrupt token data");
                Problem::internal()
            }
            TokenError::Jwt(jwt) if !jwt.is_token_rejection() => {
                tracing::error!(error = %jwt, "token service misconfigured");
                Problem::internal()
            }
            // A verdict on the presented token: 400 with its stable code as the type.
            rejection => Problem::new(
                axum::http::StatusCode::BAD_REQUEST,
                rejection.code(),
                "Token refused",
            )
            .detail(rejection.to_string()),
        }
    }
}
