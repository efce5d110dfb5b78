//! Guarantees that no error leaves the server as plain text or an empty body:
//! framework rejections (405, 413 from the body limit, 408 from the timeout, a caught
//! panic) have plain or empty bodies, and are replaced here.

use crate::problem::{PROBLEM_JSON, Problem};
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Replaces the body of any 4xx/5xx response that is not already a problem.
pub async fn ensure_problem_bodies(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // Problems, and JSON a handler chose to send with an error status (the health
    // report's 503), pass through; framework rejections are plain text or empty.
    let deliberate = response.headers().get(CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.starts_with(PROBLEM_JSON.as_bytes()) || v.starts_with(b"application/json")
    });
    if deliberate {
        return response;
    }
    // Keep headers a client may need (Allow on 405, Retry-After), drop the old body.
    let (mut parts, _) = response.into_parts();
    let replacement = Problem::for_status(status).into_response();
    parts.headers.remove(CONTENT_TYPE);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let (new_parts, body) = replacement.into_parts();
    parts.headers.extend(new_parts.headers);
    Response::from_parts(parts, body)
}
