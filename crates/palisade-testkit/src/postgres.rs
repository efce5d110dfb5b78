//! A fresh PostgreSQL schema per test.
//!
//! Tests share one server (CI's, or the throwaway one `scripts/test` starts) and
//! run in parallel, so each test gets its own schema with a random name and a
//! `search_path` pointing at it: migrations and queries written without a schema
//! qualifier land there and never see another test's tables.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor};

use crate::TestkitError;

/// Environment variable naming the PostgreSQL server tests use.
pub const DATABASE_URL_VAR: &str = "PALISADE_TEST_DATABASE_URL";

/// The server tests use when [`DATABASE_URL_VAR`] is unset: the CI service and
/// the developer default.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// How long creating or dropping a schema may take, connection included, so a
/// missing or wedged server fails the test instead of hanging it.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

/// The PostgreSQL URL tests connect to: `PALISADE_TEST_DATABASE_URL`, or
/// [`DEFAULT_DATABASE_URL`] when it is unset or empty.
pub fn database_url() -> String {
    std::env::var(DATABASE_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

/// A uniquely named schema on the test server, dropped (with everything in it)
/// when this value is dropped.
///
/// Declare it before any pool built from it, so the pool is dropped first and
/// holds no locks on the schema when it is removed.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let db = palisade_testkit::postgres::TestDatabase::create().await?;
/// let pool = db.pool().await?;
/// sqlx::query("CREATE TABLE t (id int)").execute(&pool).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TestDatabase {
    server_url: String,
    server_options: PgConnectOptions,
    schema: String,
    /// Set once the schema is gone, so `Drop` does not try again.
    removed: bool,
}

impl TestDatabase {
    /// Creates a fresh schema on the server named by [`database_url`].
    pub async fn create() -> Result<Self, TestkitError> {
        Self::create_on(&database_url()).await
    }

    /// Creates a fresh schema on the given server, for tests that need a server
    /// other than the default one.
    pub async fn create_on(server_url: &str) -> Result<Self, TestkitError> {
        let server_options = parse_url(server_url)?;
        // UUIDv7 carries 74 random bits, so parallel tests (and parallel CI jobs
        // on one server) never pick the same name; `simple` keeps it a plain
        // lowercase identifier well under PostgreSQL's 63-byte limit.
        let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
        run_admin(
            server_url,
            &server_options,
            &format!("CREATE SCHEMA \"{schema}\""),
            "create test schema",
        )
        .await?;
        Ok(Self {
            server_url: server_url.to_owned(),
            server_options,
            schema,
            removed: false,
        })
    }

    /// The schema's name (`t_` followed by 32 hex digits).
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// A URL that selects this schema (libpq's `options=-c search_path=...`),
    /// for code configured by URL, such as the `palisade` binary or `psql`.
    pub fn url(&self) -> String {
        let separator = if self.server_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.server_url, self.schema
        )
    }

    /// Connect options for the test server with `search_path` set to this schema.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.server_options
            .clone()
            .options([("search_path", self.schema.as_str())])
    }

    /// A small pool on this schema, with a bounded acquire timeout so a test
    /// that leaks connections fails instead of hanging.
    pub async fn pool(&self) -> Result<PgPool, TestkitError> {
        PgPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(ADMIN_TIMEOUT)
            .connect_with(self.connect_options())
            .await
            .map_err(|source| TestkitError::Postgres {
                url: self.server_url.clone(),
                context: "open pool on test schema",
                source,
            })
    }

    /// Drops the schema now and reports failure, instead of the best-effort
    /// drop (which can only print a warning).
    pub async fn cleanup(mut self) -> Result<(), TestkitError> {
        self.removed = true;
        drop_schema(&self.server_url, &self.server_options, &self.schema).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        let url = self.server_url.clone();
        let options = self.server_options.clone();
        let schema = self.schema.clone();
        // Drop cannot await, and blocking on the test's own runtime would
        // deadlock a current-thread runtime; a separate thread with its own
        // runtime works from any context. It is joined so the schema is gone
        // before the test process exits.
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| TestkitError::io("build runtime to drop test schema", e))?;
            runtime.block_on(drop_schema(&url, &options, &schema))
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                eprintln!(
                    "palisade-testkit: could not drop test schema {}: {error}",
                    self.schema
                );
            }
            Err(_) => eprintln!(
                "palisade-testkit: thread dropping test schema {} panicked",
                self.schema
            ),
        }
    }
}

fn parse_url(url: &str) -> Result<PgConnectOptions, TestkitError> {
    PgConnectOptions::from_str(url).map_err(|source| TestkitError::Postgres {
        url: url.to_owned(),
        context: "parse URL",
        source,
    })
}

async fn drop_schema(
    url: &str,
    options: &PgConnectOptions,
    schema: &str,
) -> Result<(), TestkitError> {
    // A lock timeout turns "a leaked connection still holds a lock in the
    // schema" into an error instead of a hang.
    run_admin(
        url,
        options,
        &format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
        "drop test schema",
    )
    .await
}

/// Runs `sql` on a fresh connection, all within [`ADMIN_TIMEOUT`].
async fn run_admin(
    url: &str,
    options: &PgConnectOptions,
    sql: &str,
    context: &'static str,
) -> Result<(), TestkitError> {
    let work = async {
        let mut connection = PgConnection::connect_with(options).await?;
        connection.execute(sql).await?;
        connection.close().await
    };
    match tokio::time::timeout(ADMIN_TIMEOUT, work).await {
        Ok(result) => result.map_err(|source| TestkitError::Postgres {
            url: url.to_owned(),
            context,
            source,
        }),
        Err(_) => Err(TestkitError::Timeout {
            what: format!("PostgreSQL at {url} to {context}"),
            waited: ADMIN_TIMEOUT,
            detail: None,
        }),
    }
}
