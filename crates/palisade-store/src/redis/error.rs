//! What a Redis call can fail with, and which failures are Redis's fault.

use ::redis::{ErrorKind, ServerErrorKind};
use palisade_core::resilience::{ErrorClass, ResilienceError};
use std::time::Duration;

/// How long a caller is told to wait after a failure the breaker did not
/// schedule (a timeout, a refused connection). Retry-After is in whole seconds,
/// so one second is the shortest useful hint.
const RETRY_HINT: Duration = Duration::from_secs(1);

/// Longest server message kept in an error, so an error cannot carry a large
/// echo of the command's arguments into logs.
const MAX_DETAIL: usize = 200;

/// Why a Redis call failed, split the way a caller has to act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisError {
    /// Redis cannot be used right now: the breaker is open, the call timed out,
    /// the connection was refused or lost, the server is loading or read-only.
    /// Fall back (local limits, L1 cache) or answer 503 with `Retry-After`.
    #[error("redis unavailable: {reason}")]
    Unavailable {
        /// When trying again may help: the breaker's schedule when it is open,
        /// otherwise a short hint.
        retry_after: Duration,
        /// Operator-facing cause; never a URL or password.
        reason: String,
    },
    /// Redis answered, and the answer is an error about this command: unknown
    /// command, wrong type, script error, unexpected reply type. A bug or bad
    /// data, not an outage: it does not count against the breaker and retrying
    /// cannot help.
    #[error("redis command failed: {0}")]
    Command(String),
}

impl RedisError {
    /// Whether this is Redis being unavailable (fall back) rather than a bad command.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// How long to wait before trying again, when waiting can help.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after, .. } => Some(*retry_after),
            Self::Command(_) => None,
        }
    }

    pub(crate) fn from_resilience(error: ResilienceError<::redis::RedisError>) -> Self {
        match error {
            ResilienceError::Open(open) => Self::Unavailable {
                retry_after: open.retry_after,
                reason: format!("circuit breaker is {}", open.state),
            },
            ResilienceError::TimedOut { source, .. } => Self::Unavailable {
                retry_after: RETRY_HINT,
                reason: format!("timed out after {} ms", source.after.as_millis()),
            },
            ResilienceError::Failed { source, .. } => {
                if classify(&source).counts_as_failure() {
                    Self::Unavailable {
                        retry_after: RETRY_HINT,
                        reason: describe(&source),
                    }
                } else {
                    Self::Command(describe(&source))
                }
            }
        }
    }
}

/// Sorts a redis-rs error for the breaker and the retry loop: is Redis (or the
/// path to it) failing, or is the command wrong?
pub(crate) fn classify(error: &::redis::RedisError) -> ErrorClass {
    match error.kind() {
        // The connection or the topology: another attempt, maybe on a fresh
        // connection or the new master, can succeed.
        ErrorKind::Io
        | ErrorKind::ClusterConnectionNotFound
        | ErrorKind::MasterNameNotFoundBySentinel
        | ErrorKind::NoValidReplicasFoundBySentinel
        | ErrorKind::Server(
            ServerErrorKind::ReadOnly
            | ServerErrorKind::MasterDown
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::BusyLoading
            | ServerErrorKind::Moved
            | ServerErrorKind::Ask,
        ) => ErrorClass::Transient,
        // Redis is there but unusable as configured: wrong password, a protocol it
        // does not speak. It counts against the breaker; retrying cannot help.
        ErrorKind::AuthenticationFailed
        | ErrorKind::InvalidClientConfig
        | ErrorKind::EmptySentinelList
        | ErrorKind::RESP3NotSupported => ErrorClass::DependencyFailure,
        // Codes redis-rs has no kind for.
        ErrorKind::Extension => match error.code() {
            // A script or command is hogging the single thread.
            Some("BUSY") => ErrorClass::Transient,
            // Out of memory, cannot persist, or needs credentials: the server is the problem.
            Some("OOM" | "MISCONF" | "NOAUTH" | "WRONGPASS") => ErrorClass::DependencyFailure,
            _ => ErrorClass::Permanent,
        },
        // Unknown command, syntax, WRONGTYPE, script errors, unexpected reply
        // types (Parse), CROSSSLOT, NOPERM: the command is at fault.
        _ => ErrorClass::Permanent,
    }
}

/// A short description safe for logs and `/health`: server error codes and
/// messages, I/O causes, never reply values (a type error's message would quote
/// the value, which may be a token) and never connection strings.
pub(crate) fn describe(error: &::redis::RedisError) -> String {
    let text = match error.kind() {
        ErrorKind::Server(_) | ErrorKind::Extension => match (error.code(), error.detail()) {
            (Some(code), Some(detail)) => format!("{code} {detail}"),
            (Some(code), None) => code.to_owned(),
            (None, _) => error.category().to_owned(),
        },
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => {
            "reply has an unexpected type for the requested Rust type".to_owned()
        }
        ErrorKind::Io => error.to_string(),
        _ => error.category().to_owned(),
    };
    truncate(text)
}

fn truncate(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_DETAIL) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::redis::make_extension_error;
    use palisade_core::resilience::{BreakerOpen, BreakerState, TimedOut};
    use std::io;
    use std::sync::Arc;

    fn io_error(kind: io::ErrorKind) -> ::redis::RedisError {
        io::Error::new(kind, "boom").into()
    }

    #[test]
    fn outages_are_unavailable_and_bad_commands_are_not() {
        let unavailable = [
            io_error(io::ErrorKind::ConnectionRefused),
            io_error(io::ErrorKind::ConnectionReset),
            io_error(io::ErrorKind::TimedOut),
            make_extension_error("BUSY".into(), Some("script running".into())),
            make_extension_error("OOM".into(), Some("used memory > maxmemory".into())),
            ::redis::RedisError::from((ErrorKind::AuthenticationFailed, "wrong password")),
            ::redis::RedisError::from((ErrorKind::Server(ServerErrorKind::ReadOnly), "replica")),
            ::redis::RedisError::from((ErrorKind::Server(ServerErrorKind::BusyLoading), "loading")),
        ];
        for error in unavailable {
            assert!(classify(&error).counts_as_failure(), "{error:?}");
            let mapped = RedisError::from_resilience(ResilienceError::Failed {
                attempts: 1,
                source: error,
            });
            assert!(mapped.is_unavailable(), "{mapped:?}");
        }
        let command = [
            make_extension_error("WRONGTYPE".into(), Some("wrong kind of value".into())),
            ::redis::RedisError::from((
                ErrorKind::Server(ServerErrorKind::ResponseError),
                "unknown command",
            )),
            ::redis::RedisError::from((ErrorKind::Server(ServerErrorKind::CrossSlot), "slots")),
            ::redis::RedisError::from((ErrorKind::Parse, "not an integer")),
            ::redis::RedisError::from((ErrorKind::Client, "empty command")),
        ];
        for error in command {
            assert_eq!(classify(&error), ErrorClass::Permanent, "{error:?}");
            let mapped = RedisError::from_resilience(ResilienceError::Failed {
                attempts: 1,
                source: error,
            });
            assert!(matches!(mapped, RedisError::Command(_)), "{mapped:?}");
        }
    }

    #[test]
    fn breaker_and_timeout_map_to_unavailable_with_a_retry_hint() {
        let open = RedisError::from_resilience(ResilienceError::Open(BreakerOpen {
            breaker: Arc::from("redis"),
            state: BreakerState::Open,
            retry_after: Duration::from_millis(1_500),
        }));
        assert_eq!(open.retry_after(), Some(Duration::from_millis(1_500)));
        assert!(
            open.to_string().contains("circuit breaker is open"),
            "{open}"
        );

        let timed_out = RedisError::from_resilience(ResilienceError::TimedOut {
            attempts: 1,
            source: TimedOut {
                after: Duration::from_millis(250),
            },
        });
        assert_eq!(timed_out.retry_after(), Some(RETRY_HINT));
        assert!(timed_out.to_string().contains("250 ms"), "{timed_out}");
        assert_eq!(RedisError::Command("x".into()).retry_after(), None);
    }

    #[test]
    fn descriptions_are_bounded_and_never_quote_reply_values() {
        let long = make_extension_error("ERR".into(), Some("x".repeat(10_000)));
        assert!(describe(&long).chars().count() <= MAX_DETAIL + 1);
        let parse =
            ::redis::RedisError::from((ErrorKind::Parse, "bad", "secret-token-value".into()));
        assert!(!describe(&parse).contains("secret-token-value"));
    }
}
