//! RFC 9457 problem details: every error Palisade's API returns, in one shape.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Base of the stable `type` URIs; each error kind appends its own name.
const TYPE_BASE: &str = "https://palisade.dev/problems/";

/// A problem document (RFC 9457).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A stable URI naming the kind of error; clients branch on this.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind, the same for every occurrence.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time, written for the caller. Never internal detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Invalid fields, for 400 and 422 answers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds until a retry may succeed (429, 503); also sent as `Retry-After`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// A JSON pointer or dotted path to the field (`events[3].outcome`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl Problem {
    /// A problem of kind `kind` (the last segment of the `type` URI).
    pub fn new(status: StatusCode, kind: &str, title: &str) -> Self {
        Self {
            kind: format!("{TYPE_BASE}{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: None,
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// Adds the occurrence-specific explanation.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds an invalid field.
    pub fn field(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
        self
    }

    /// Sets `Retry-After`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 400: the request cannot be parsed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request").detail(detail)
    }

    /// 401: no credentials, or credentials that do not check out.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
            .detail("a valid API key is required: Authorization: Bearer <key>")
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden").detail(detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found").detail(detail)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict").detail(detail)
    }

    /// 422: well-formed but invalid.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Invalid request",
        )
        .detail(detail)
    }

    /// 503: a dependency is down; try again later.
    pub fn unavailable(detail: impl Into<String>, retry_after: u64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
        )
        .detail(detail)
        .retry_after(retry_after)
    }

    /// 500: a fault on our side. The detail stays generic; the cause goes to the log.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
        )
        .detail("an unexpected error occurred; it has been logged with this request's id")
    }

    /// The status as a `StatusCode`.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// A problem for any status, used to replace bodies that are not problems
    /// (a framework's plain-text rejection, an empty 405).
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::BAD_REQUEST => Self::bad_request("the request is malformed"),
            StatusCode::UNAUTHORIZED => Self::unauthorized(),
            StatusCode::FORBIDDEN => Self::forbidden("not allowed"),
            StatusCode::NOT_FOUND => Self::not_found("no such resource or route"),
            StatusCode::METHOD_NOT_ALLOWED => {
                Self::new(status, "method-not-allowed", "Method not allowed")
                    .detail("this route does not accept that method")
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(status, "payload-too-large", "Payload too large")
                    .detail("the request body exceeds the configured limit")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Self::new(status, "unsupported-media-type", "Unsupported media type")
                    .detail("send JSON with Content-Type: application/json")
            }
            StatusCode::REQUEST_TIMEOUT => Self::new(status, "timeout", "Request timeout")
                .detail("the request took longer than the configured limit"),
            StatusCode::UNPROCESSABLE_ENTITY => Self::unprocessable("the request is invalid"),
            StatusCode::TOO_MANY_REQUESTS => Self::new(status, "rate-limited", "Too many requests"),
            StatusCode::SERVICE_UNAVAILABLE => Self::unavailable("a dependency is unavailable", 1),
            s if s.is_client_error() => Self::new(
                s,
                "client-error",
                s.canonical_reason().unwrap_or("Client error"),
            ),
            _ => Self::internal(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let retry_after = self.retry_after;
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_maps_to_a_problem_of_that_status() {
        for code in [
            400u16, 401, 403, 404, 405, 408, 409, 413, 415, 418, 422, 429, 500, 502, 503,
        ] {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT);
            let problem = Problem::for_status(status);
            let expected = if code >= 500 && code != 503 {
                500
            } else {
                code
            };
            assert_eq!(problem.status, expected, "{code}");
            assert!(problem.kind.starts_with(TYPE_BASE));
        }
    }
}
