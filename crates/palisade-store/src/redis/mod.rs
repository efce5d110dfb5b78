//! Palisade's Redis connection: one server, a Sentinel-managed master, or a
//! Cluster, behind one circuit breaker.
//!
//! Redis holds shared fast state (rate limits, the L2 decision cache,
//! revocations), and "Redis down is not Palisade down": [`Redis::new`] never
//! waits for the server, every command goes through the breaker with a short
//! per-call timeout, and a failure comes back as [`RedisError::Unavailable`]
//! so the caller falls back to its in-process equivalent. Bad commands come back
//! as [`RedisError::Command`] and do not count against the breaker.

mod config;
mod connection;
mod error;
mod health;

pub use config::{RedisConfig, RedisMode};
pub use error::RedisError;
pub use health::RedisHealth;

use crate::StoreError;
use ::redis::aio::ConnectionManagerConfig;
use ::redis::cluster::ClusterClientBuilder;
use ::redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionInfo, FromRedisValue, Script, TlsCertificates,
    TlsMode, ToRedisArgs,
};
use connection::{Connector, Reconnecting};
use error::classify;
use palisade_core::SharedClock;
use palisade_core::resilience::{BreakerSnapshot, Resilience, ResilienceConfig, ResilienceError};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Once};
use std::time::Duration;

/// The breaker's name, in logs, metric labels and `/health`.
const BREAKER_NAME: &str = "redis";

/// A handle to Redis. Cheap to clone; clones share the connection and the breaker.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    mode: RedisMode,
    connection: Reconnecting,
    resilience: Resilience,
    key_prefix: String,
    clock: SharedClock,
}

impl Redis {
    /// Validates `config` and builds the connection without waiting for it: the
    /// connect starts in the background (inside a Tokio runtime) or on first use,
    /// so Palisade starts while Redis is down. Fails only on bad configuration
    /// (including an unreadable `ca_file`), never because Redis is unreachable.
    pub fn new(config: &RedisConfig, clock: SharedClock) -> Result<Self, StoreError> {
        config.validate()?;
        let certificates = load_ca(config)?;
        let connector = match config.mode {
            RedisMode::Single => single(config, certificates)?,
            RedisMode::Sentinel => sentinel(config, certificates)?,
            RedisMode::Cluster => cluster(config, certificates)?,
        };
        let resilience = Resilience::new(
            BREAKER_NAME,
            &ResilienceConfig {
                breaker: config.breaker.clone(),
                retry: config.retry.clone(),
                attempt_timeout_ms: config.command_timeout_ms,
            },
            clock.clone(),
        )
        .map_err(|e| StoreError::Config(format!("redis.breaker: {e}")))?;
        describe_metrics();
        // A Sentinel lookup is a query to a Sentinel, a ROLE check on the master
        // and the connect itself: three round trips, each bounded by the connect timeout.
        let connect_bound = config.connect_timeout() * 3;
        Ok(Self {
            inner: Arc::new(Inner {
                mode: config.mode,
                connection: Reconnecting::new(connector, connect_bound),
                resilience,
                key_prefix: config.key_prefix.clone(),
                clock,
            }),
        })
    }

    /// Runs one command through the breaker, bounded by the command timeout.
    /// Never retried: use it for anything that must not happen twice (INCR, a
    /// SET whose timing matters), and fall back on [`RedisError::Unavailable`].
    pub async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        self.observe(
            self.inner
                .resilience
                .run_once_with(classify, self.query(cmd)),
        )
        .await
    }

    /// Runs a command that is safe to repeat (GET, a SET of a fixed value, DEL),
    /// retrying transient failures with jittered backoff within `retry`'s budget.
    /// Each attempt goes through the breaker; an open breaker stops the retries.
    pub async fn run_idempotent<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        self.observe(
            self.inner
                .resilience
                .run_idempotent_with(classify, || self.query(cmd)),
        )
        .await
    }

    /// Runs a Lua script with EVALSHA, loading it once (SCRIPT LOAD, on every
    /// cluster node) when the server does not know it yet. Not retried, since a
    /// script usually writes. In cluster mode every key must share one hash tag
    /// (`{tenant42}`), so the script runs on one node.
    pub async fn invoke_script<T, K, A>(
        &self,
        script: &Script,
        keys: &[K],
        args: &[A],
    ) -> Result<T, RedisError>
    where
        T: FromRedisValue,
        K: ToRedisArgs,
        A: ToRedisArgs,
    {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        let call = async {
            let mut lease = self.inner.connection.get().await?;
            let result = invocation.invoke_async(&mut lease.conn).await;
            lease.settle(result.as_ref().err());
            result
        };
        self.observe(self.inner.resilience.run_once_with(classify, call))
            .await
    }

    /// `suffix` with the configured prefix in front: the key to use for anything
    /// Palisade stores. Put hash tags in the suffix (`{tenant42}:limits`); the
    /// prefix never contains braces, so they keep their meaning in a cluster.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.inner.key_prefix)
    }

    /// The configured key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.inner.key_prefix
    }

    /// Which topology this handle talks to.
    pub fn mode(&self) -> RedisMode {
        self.inner.mode
    }

    /// The breaker's state, for `/health` and dashboards.
    pub fn breaker_snapshot(&self) -> BreakerSnapshot {
        self.inner.resilience.breaker().snapshot()
    }

    /// How many times this handle has replaced its connection: 0 until the
    /// first reconnect, then one more per reconnect it started itself (a Sentinel
    /// failover, a failed connect). Reconnects a `ConnectionManager` or a cluster
    /// connection does internally are not counted. For tests and debugging.
    pub fn connection_generation(&self) -> u64 {
        self.inner.connection.generation()
    }

    /// One attempt of `cmd` on the current connection, reporting the outcome so
    /// a connection that went bad is replaced.
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> ::redis::RedisResult<T> {
        let mut lease = self.inner.connection.get().await?;
        let result = cmd.query_async(&mut lease.conn).await;
        lease.settle(result.as_ref().err());
        result
    }

    /// Times a guarded call, records its outcome and maps its error.
    async fn observe<T>(
        &self,
        call: impl Future<Output = Result<T, ResilienceError<::redis::RedisError>>>,
    ) -> Result<T, RedisError> {
        let started = self.inner.clock.monotonic();
        let result = call.await;
        let elapsed = self.inner.clock.monotonic().saturating_sub(started);
        let outcome = match &result {
            Ok(_) => "ok",
            Err(ResilienceError::Open(_)) => "rejected",
            Err(ResilienceError::TimedOut { .. }) => "timeout",
            Err(ResilienceError::Failed { source, .. }) => {
                if classify(source).counts_as_failure() {
                    "unavailable"
                } else {
                    "command_error"
                }
            }
        };
        metrics::histogram!("palisade_redis_command_duration_seconds", "outcome" => outcome)
            .record(elapsed.as_secs_f64());
        if outcome != "ok" {
            metrics::counter!("palisade_redis_errors_total", "outcome" => outcome).increment(1);
        }
        result.map_err(|e| {
            let error = RedisError::from_resilience(e);
            if let RedisError::Command(detail) = &error {
                // A bug or bad data in the caller, not an outage; worth seeing in logs.
                tracing::debug!(%detail, "redis command rejected");
            }
            error
        })
    }
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No URLs: they may hold passwords.
        f.debug_struct("Redis")
            .field("mode", &self.inner.mode)
            .field("key_prefix", &self.inner.key_prefix)
            .field("connection", &self.inner.connection)
            .field("breaker", &self.inner.resilience.breaker().state())
            .finish()
    }
}

fn describe_metrics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        metrics::describe_histogram!(
            "palisade_redis_command_duration_seconds",
            metrics::Unit::Seconds,
            "Redis calls (commands and scripts, retries included) by outcome: ok, command_error, unavailable, timeout, rejected (breaker open)."
        );
        metrics::describe_counter!(
            "palisade_redis_errors_total",
            "Failed Redis calls by outcome: command_error, unavailable, timeout, rejected (breaker open)."
        );
    });
}

/// The CA from `ca_file`, read at start so a missing or unreadable file is a
/// configuration error rather than a failure on every connect.
fn load_ca(config: &RedisConfig) -> Result<Option<TlsCertificates>, StoreError> {
    let Some(path) = &config.ca_file else {
        return Ok(None);
    };
    let pem = std::fs::read(path).map_err(|e| {
        StoreError::Config(format!(
            "redis.ca_file: cannot read {}: {e}",
            path.display()
        ))
    })?;
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(StoreError::Config(format!(
            "redis.ca_file: {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(Some(TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }))
}

/// The parsed server URLs. `validate` already accepted them, so an error here
/// is a bug; it is still reported as configuration, without the URL.
fn parsed_nodes(config: &RedisConfig) -> Result<Vec<ConnectionInfo>, StoreError> {
    config
        .nodes
        .iter()
        .enumerate()
        .map(|(index, node)| {
            config::parse_url(node)
                .map_err(|why| StoreError::Config(format!("redis.nodes[{index}]: {why}")))
        })
        .collect()
}

/// The client library's own response timeout. The breaker's per-call timeout
/// is what callers see; this one only clears abandoned requests out of a
/// connection that stopped answering, so it is set past the per-call timeout to
/// leave the caller's timeout the one that fires (and is counted as a timeout).
fn response_backstop(config: &RedisConfig) -> Duration {
    config.command_timeout() * 2
}

fn single(
    config: &RedisConfig,
    certificates: Option<TlsCertificates>,
) -> Result<Connector, StoreError> {
    let url = config
        .url
        .as_ref()
        .ok_or_else(|| StoreError::Config("redis.url: required in single mode".into()))?;
    let info =
        config::parse_url(url).map_err(|why| StoreError::Config(format!("redis.url: {why}")))?;
    let client = match certificates {
        Some(certificates) => Client::build_with_tls(info, certificates),
        None => Client::open(info),
    }
    .map_err(|_| StoreError::Config("redis.url: cannot build a client for this URL".into()))?;
    let manager = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout()))
        .set_response_timeout(Some(response_backstop(config)))
        // One connect per attempt: the breaker paces attempts during an outage,
        // and a retry loop inside the manager would only delay noticing recovery.
        .set_number_of_retries(0);
    Ok(Connector::Single {
        client,
        config: manager,
    })
}

fn sentinel(
    config: &RedisConfig,
    certificates: Option<TlsCertificates>,
) -> Result<Connector, StoreError> {
    let nodes = parsed_nodes(config)?;
    let master_name = config
        .master_name
        .as_deref()
        .ok_or_else(|| StoreError::Config("redis.master_name: required in sentinel mode".into()))?;
    let Some(first) = nodes.first() else {
        return Err(StoreError::Config(
            "redis.nodes: at least one URL required in sentinel mode".into(),
        ));
    };
    let sentinel_login = first.redis_settings().clone();
    let tls = config::is_tls(first);
    let mut builder = SentinelClientBuilder::new(
        nodes.iter().map(|node| node.addr().clone()),
        master_name,
        SentinelServerType::Master,
    )
    .map_err(|_| StoreError::Config("redis.nodes: cannot build a sentinel client".into()))?
    .set_client_to_redis_db(sentinel_login.db());
    // The builder ignores the credentials inside the addresses; pass them explicitly.
    if let Some(username) = sentinel_login.username() {
        builder = builder.set_client_to_sentinel_username(username);
    }
    if let Some(password) = sentinel_login.password() {
        builder = builder.set_client_to_sentinel_password(password);
    }
    if let Some(username) = &config.master_username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = &config.master_password {
        builder = builder.set_client_to_redis_password(password.expose());
    }
    if tls {
        builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
        if let Some(certificates) = certificates {
            builder = builder
                .set_client_to_redis_certificates(certificates.clone())
                .set_client_to_sentinel_certificates(certificates);
        }
    }
    let client = builder
        .build()
        .map_err(|_| StoreError::Config("redis.nodes: cannot build a sentinel client".into()))?;
    let connection = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout()))
        .set_response_timeout(Some(response_backstop(config)));
    Ok(Connector::Sentinel {
        sentinel: Arc::new(tokio::sync::Mutex::new(client)),
        config: connection,
    })
}

fn cluster(
    config: &RedisConfig,
    certificates: Option<TlsCertificates>,
) -> Result<Connector, StoreError> {
    let nodes = parsed_nodes(config)?;
    let mut builder = ClusterClientBuilder::new(nodes)
        .connection_timeout(config.connect_timeout())
        .response_timeout(response_backstop(config));
    if let Some(certificates) = certificates {
        builder = builder.certs(certificates);
    }
    let client = builder.build().map_err(|_| {
        StoreError::Config(
            "redis.nodes: cannot build a cluster client (seed nodes must share credentials and database)"
                .into(),
        )
    })?;
    Ok(Connector::Cluster { client })
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::SystemClock;

    #[test]
    fn futures_are_send_so_handlers_can_await_them() {
        fn assert_send<T: Send>(_: &T) {}
        fn assert_sync_clone<T: Send + Sync + Clone>() {}
        assert_sync_clone::<Redis>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let redis = Redis::new(
                &RedisConfig::single("redis://127.0.0.1:1"),
                SystemClock::shared(),
            )
            .expect("valid config");
            let cmd = ::redis::cmd("PING");
            assert_send(&redis.run::<String>(&cmd));
            assert_send(&redis.run_idempotent::<String>(&cmd));
            let script = Script::new("return 1");
            assert_send(&redis.invoke_script::<i64, &str, &str>(&script, &["k"], &["a"]));
        });
    }

    #[test]
    fn new_works_outside_a_runtime_and_connects_on_first_use() {
        let redis = Redis::new(
            &RedisConfig::single("redis://127.0.0.1:1"),
            SystemClock::shared(),
        );
        assert!(redis.is_ok(), "{redis:?}");
    }

    #[test]
    fn key_applies_the_prefix_and_debug_hides_the_url() {
        let config = RedisConfig {
            key_prefix: "app:".into(),
            ..RedisConfig::single("redis://user:s3cr3t-pw@127.0.0.1:1")
        };
        let redis = Redis::new(&config, SystemClock::shared()).expect("valid config");
        assert_eq!(redis.key("{t1}:limits"), "app:{t1}:limits");
        assert_eq!(redis.key_prefix(), "app:");
        assert!(!format!("{redis:?}").contains("s3cr3t-pw"));
    }

    #[test]
    fn unreadable_ca_file_is_a_config_error_naming_the_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("not-a-cert.pem");
        std::fs::write(&path, "hello").expect("write");
        let config = RedisConfig {
            ca_file: Some(path),
            ..RedisConfig::single("rediss://127.0.0.1:1")
        };
        let error = Redis::new(&config, SystemClock::shared())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("redis.ca_file"), "{error}");
    }
}
