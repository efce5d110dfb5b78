//! The one error type of the testkit.

use std::path::PathBuf;
use std::time::Duration;

/// Why a testkit fixture could not be set up.
///
/// Fixtures return this instead of panicking so a test can add its own context
/// (`.expect("sentinel for the failover test")`); every variant's message says
/// what to fix on the machine running the tests.
///
/// `Debug` prints the same message as `Display` (plus its causes), because
/// tests meet these errors through `expect`, `unwrap` and `Result`-returning
/// tests, which print `Debug`.
#[derive(thiserror::Error)]
pub enum TestkitError {
    /// A program the fixture runs (e.g. `redis-server`) is not installed.
    #[error("`{program}` was not found on PATH; {hint}")]
    MissingProgram {
        /// The program that was looked up.
        program: &'static str,
        /// How to install it.
        hint: &'static str,
    },

    /// A condition the fixture waits for did not hold before its deadline.
    #[error("timed out after {waited:?} waiting for {what}{}", detail_suffix(.detail.as_deref()))]
    Timeout {
        /// What was being waited for.
        what: String,
        /// How long the fixture waited.
        waited: Duration,
        /// The last error seen or the tail of a server log, if any.
        detail: Option<String>,
    },

    /// A server process exited while the fixture was starting it.
    #[error("{program} exited during start-up ({status}); log {log}:\n{log_tail}")]
    ProcessExited {
        /// The program that exited.
        program: &'static str,
        /// Its exit status, as text.
        status: String,
        /// Where its full log is (removed when the fixture is dropped).
        log: PathBuf,
        /// The last lines of that log.
        log_tail: String,
    },

    /// A fixture argument was out of range (e.g. a cluster of zero masters).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Local I/O failed (temp dir, config file, socket, spawning a process).
    #[error("{context}: {source}")]
    Io {
        /// What the fixture was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// PostgreSQL refused a connection or a statement.
    #[error("PostgreSQL at {url}: {context}: {source}")]
    Postgres {
        /// The server URL (test URLs carry no password).
        url: String,
        /// What the fixture was doing.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: sqlx::Error,
    },

    /// A Redis server refused a connection or a command.
    #[error("Redis at {addr}: {context}: {source}")]
    Redis {
        /// The server that answered (or did not).
        addr: String,
        /// What the fixture was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: ::redis::RedisError,
    },
}

impl std::fmt::Debug for TestkitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")?;
        // Every variant's message already ends with its direct source, so
        // the chain starts one further down.
        let mut source = std::error::Error::source(self).and_then(std::error::Error::source);
        while let Some(cause) = source {
            write!(f, "\n  caused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

fn detail_suffix(detail: Option<&str>) -> String {
    match detail {
        Some(detail) => format!(" (last seen: {detail})"),
        None => String::new(),
    }
}

impl TestkitError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
