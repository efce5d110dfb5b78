//! The one place where domain errors become HTTP problems.

use crate::problem::Problem;
use palisade_auth::ApiKeyError;
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
