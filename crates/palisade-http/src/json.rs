//! A JSON body extractor whose rejections are problem documents, with the field
//! that failed named, instead of axum's plain-text messages.

use crate::problem::Problem;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// Like `axum::Json`, but every rejection is an RFC 9457 problem:
/// 415 wrong content type, 400 malformed JSON, 422 valid JSON of the wrong shape,
/// 413 body over the limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejection_to_problem(rejection)),
        }
    }
}

fn rejection_to_problem(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            Problem::for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        }
        JsonRejection::JsonSyntaxError(e) => {
            Problem::bad_request(format!("malformed JSON: {}", inner_message(&e)))
        }
        JsonRejection::JsonDataError(e) => {
            // serde_path_to_error inside axum gives "path: message"; split it so the
            // field is machine-readable.
            let message = inner_message(&e);
            let (field, why) = message
                .split_once(": ")
                .map(|(f, w)| (f.to_owned(), w.to_owned()))
                .unwrap_or_else(|| (".".to_owned(), message.clone()));
            Problem::unprocessable(format!("invalid field {field}: {why}")).field(field, why)
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::for_status(StatusCode::PAYLOAD_TOO_LARGE)
        }
        other => Problem::bad_request(format!("unreadable body ({})", other.status())),
    }
}

fn inner_message(e: &dyn std::error::Error) -> String {
    // The outermost message is axum's generic sentence; the useful part is the source.
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    let text = source.to_string();
    // Bound what is echoed back: it can quote the input.
    text.chars().take(300).collect()
}
