//! Redis configuration, as read from `[redis]` in `palisade.toml`.

use crate::StoreError;
use ::redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};
use palisade_core::Secret;
use palisade_core::resilience::{BreakerConfig, RetryPolicy};
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Longest connect or command timeout accepted: Redis is a fast path, and a
/// minute-long wait on it would hold requests that should have fallen back.
const MAX_TIMEOUT_MS: u64 = 60_000;

/// How Palisade finds its Redis server(s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// One server at `url`.
    #[default]
    Single,
    /// A master found through the Sentinels in `nodes`, under `master_name`;
    /// found again after a failover.
    Sentinel,
    /// A Redis Cluster reached through the seed nodes in `nodes`.
    Cluster,
}

impl RedisMode {
    /// The mode as written in the config, in logs and in health details.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Sentinel => "sentinel",
            Self::Cluster => "cluster",
        }
    }
}

impl fmt::Display for RedisMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `[redis]` section: where Redis is and how hard to try.
///
/// Leave the section out to run without Redis (shared fast state then stays
/// in-process). A section that is present must validate.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// The server in `single` mode: `redis://[user:password@]host:port[/db]`, or
    /// `rediss://...` for TLS. Secret because it may hold a password.
    pub url: Option<Secret>,
    /// Single server, Sentinel or Cluster (default `single`).
    pub mode: RedisMode,
    /// The Sentinels (`sentinel` mode) or the cluster seed nodes (`cluster` mode),
    /// as `redis://` / `rediss://` URLs, all with the same credentials. In
    /// `sentinel` mode a URL's user and password log in to the Sentinels (the
    /// master's are `master_username` / `master_password`), and its database
    /// number selects the master's database (Sentinels have none).
    pub nodes: Vec<Secret>,
    /// The name the Sentinels monitor the master under (`sentinel` mode only).
    pub master_name: Option<String>,
    /// ACL user for the master (`sentinel` mode only; default: the default user).
    pub master_username: Option<String>,
    /// Password for the master (`sentinel` mode only). Separate from the
    /// Sentinels' password because deployments often protect only the data nodes.
    pub master_password: Option<Secret>,
    /// PEM file of the CA that signed the servers' certificates, for `rediss://`
    /// servers whose CA is not in the system trust store (a private CA, the usual
    /// case for Redis). Without it the system trust store is used.
    pub ca_file: Option<PathBuf>,
    /// How long one TCP (and TLS) connect may take, in milliseconds (default 1000).
    pub connect_timeout_ms: u64,
    /// How long one command may take, in milliseconds, including a connect it has
    /// to wait for (default 250). Redis is a fast path: past this, callers fall back.
    pub command_timeout_ms: u64,
    /// Put in front of every key made with [`Redis::key`](super::Redis::key), so
    /// Palisade can share a server (default `palisade:`). Must not contain `{` or
    /// `}`: in a cluster they would override the hash tags callers put in keys.
    pub key_prefix: String,
    /// The circuit breaker in front of Redis.
    pub breaker: BreakerConfig,
    /// Retries for [`Redis::run_idempotent`](super::Redis::run_idempotent) only
    /// (default: 3 attempts within 1 s). Other calls are never retried.
    pub retry: RetryPolicy,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            mode: RedisMode::Single,
            nodes: Vec::new(),
            master_name: None,
            master_username: None,
            master_password: None,
            ca_file: None,
            connect_timeout_ms: 1_000,
            command_timeout_ms: 250,
            key_prefix: "palisade:".to_owned(),
            breaker: BreakerConfig::default(),
            retry: RetryPolicy {
                max_attempts: 3,
                base_delay_ms: 10,
                max_delay_ms: 100,
                deadline_ms: 1_000,
            },
        }
    }
}

impl RedisConfig {
    /// A single-server configuration with defaults for everything but the URL.
    pub fn single(url: impl Into<String>) -> Self {
        Self {
            url: Some(Secret::new(url)),
            ..Self::default()
        }
    }

    /// A Sentinel configuration: the Sentinels' URLs and the monitored master's name.
    pub fn sentinel<S: Into<String>>(
        sentinels: impl IntoIterator<Item = S>,
        master_name: impl Into<String>,
    ) -> Self {
        Self {
            mode: RedisMode::Sentinel,
            nodes: sentinels.into_iter().map(Secret::new).collect(),
            master_name: Some(master_name.into()),
            ..Self::default()
        }
    }

    /// A Cluster configuration: the seed nodes' URLs.
    pub fn cluster<S: Into<String>>(seeds: impl IntoIterator<Item = S>) -> Self {
        Self {
            mode: RedisMode::Cluster,
            nodes: seeds.into_iter().map(Secret::new).collect(),
            ..Self::default()
        }
    }

    /// Checks what serde cannot, naming the key that is wrong. Messages never
    /// quote a URL: it may hold a password.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |key: &str, why: &str| Err(StoreError::Config(format!("redis.{key}: {why}")));
        match self.mode {
            RedisMode::Single => {
                if self.url.is_none() {
                    return bad("url", "required in single mode");
                }
                if !self.nodes.is_empty() {
                    return bad(
                        "nodes",
                        "only used in sentinel and cluster mode; use redis.url",
                    );
                }
                if self.master_name.is_some() {
                    return bad("master_name", "only used in sentinel mode");
                }
            }
            RedisMode::Sentinel | RedisMode::Cluster => {
                let mode = self.mode.as_str();
                if self.url.is_some() {
                    return bad(
                        "url",
                        &format!("not used in {mode} mode; list the servers in redis.nodes"),
                    );
                }
                if self.nodes.is_empty() {
                    return bad(
                        "nodes",
                        &format!("at least one URL required in {mode} mode"),
                    );
                }
            }
        }
        if self.mode == RedisMode::Sentinel {
            match self.master_name.as_deref().map(str::trim) {
                None => return bad("master_name", "required in sentinel mode"),
                Some("") => return bad("master_name", "must not be empty"),
                Some(_) => {}
            }
        } else {
            if self.mode == RedisMode::Cluster && self.master_name.is_some() {
                return bad("master_name", "only used in sentinel mode");
            }
            if self.master_username.is_some() {
                return bad("master_username", "only used in sentinel mode");
            }
            if self.master_password.is_some() {
                return bad("master_password", "only used in sentinel mode");
            }
        }
        if let Some(url) = &self.url {
            parse_url(url).map_err(|why| StoreError::Config(format!("redis.url: {why}")))?;
        }
        let mut first: Option<ConnectionInfo> = None;
        for (index, node) in self.nodes.iter().enumerate() {
            let info = parse_url(node)
                .map_err(|why| StoreError::Config(format!("redis.nodes[{index}]: {why}")))?;
            let Some(first) = &first else {
                first = Some(info);
                continue;
            };
            if is_tls(&info) != is_tls(first) {
                return bad(
                    &format!("nodes[{index}]"),
                    "mixes redis:// and rediss://; use one scheme for every node",
                );
            }
            // The clients take one set of credentials for all nodes; a node that
            // needs others would fail at connect time, far from this config.
            let (a, b) = (info.redis_settings(), first.redis_settings());
            if a.username() != b.username() || a.password() != b.password() || a.db() != b.db() {
                return bad(
                    &format!("nodes[{index}]"),
                    "user, password and database must be the same in every node URL",
                );
            }
        }
        if let Some(ca) = &self.ca_file {
            if !self.uses_tls() {
                return bad("ca_file", "set, but no server URL is rediss://");
            }
            if !ca.is_file() {
                return bad("ca_file", "file does not exist");
            }
        }
        for (key, ms) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("command_timeout_ms", self.command_timeout_ms),
        ] {
            if !(1..=MAX_TIMEOUT_MS).contains(&ms) {
                return bad(key, "must be 1 to 60000");
            }
        }
        if self.key_prefix.contains(['{', '}']) {
            return bad(
                "key_prefix",
                "must not contain `{` or `}` (they would override the hash tags in cluster keys)",
            );
        }
        if self.key_prefix.chars().any(char::is_whitespace) {
            return bad("key_prefix", "must not contain whitespace");
        }
        if let Err(e) = self.breaker.validate() {
            return bad("breaker", &e.to_string());
        }
        if let Err(e) = self.retry.validate() {
            return bad("retry", &e.to_string());
        }
        Ok(())
    }

    /// Whether the servers are reached over TLS (`rediss://`).
    pub fn uses_tls(&self) -> bool {
        self.url
            .iter()
            .chain(&self.nodes)
            .any(|url| parse_url(url).is_ok_and(|info| is_tls(&info)))
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub(crate) fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.command_timeout_ms)
    }
}

/// Parses a server URL, refusing what Palisade must not do. The error text is
/// fixed: the parser's own message could echo the URL, password included.
pub(crate) fn parse_url(url: &Secret) -> Result<ConnectionInfo, &'static str> {
    let text = url.expose();
    if !(text.starts_with("redis://") || text.starts_with("rediss://")) {
        return Err("must start with redis:// or rediss://");
    }
    let info = text
        .into_connection_info()
        .map_err(|_| "not a valid redis:// or rediss:// URL")?;
    if let ConnectionAddr::TcpTls { insecure: true, .. } = info.addr() {
        // `#insecure` turns off certificate verification; a security product does
        // not offer that switch. A private CA goes in redis.ca_file instead.
        return Err("#insecure (no certificate verification) is not allowed; set redis.ca_file");
    }
    Ok(info)
}

pub(crate) fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(config: &RedisConfig) -> String {
        config
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn defaults_suit_a_fast_path() {
        let config = RedisConfig::single("redis://127.0.0.1:6379");
        assert_eq!(config.validate().ok(), Some(()));
        assert_eq!(config.mode, RedisMode::Single);
        assert_eq!(config.command_timeout_ms, 250);
        assert_eq!(config.key_prefix, "palisade:");
    }

    #[test]
    fn deserializes_the_redis_section_and_rejects_unknown_keys() {
        let config: RedisConfig = toml::from_str(
            r#"
            mode = "sentinel"
            nodes = ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"]
            master_name = "mymaster"
            command_timeout_ms = 100
            [breaker]
            minimum_calls = 5
            "#,
        )
        .expect("valid section");
        assert_eq!(config.mode, RedisMode::Sentinel);
        assert_eq!(config.nodes.len(), 2);
        assert_eq!(config.breaker.minimum_calls, 5);
        assert_eq!(config.connect_timeout_ms, 1_000, "unset keys keep defaults");
        assert_eq!(config.validate().ok(), Some(()));

        let unknown = toml::from_str::<RedisConfig>("urll = \"redis://h\"");
        assert!(unknown.is_err(), "a typo must not be silently ignored");
    }

    #[test]
    fn validation_names_the_key_that_is_wrong() {
        let table: Vec<(RedisConfig, &str)> = vec![
            (RedisConfig::default(), "redis.url: required in single mode"),
            (
                RedisConfig::single("http://h:6379"),
                "redis.url: must start with redis:// or rediss://",
            ),
            (
                RedisConfig {
                    master_name: None,
                    ..RedisConfig::sentinel(["redis://h:26379"], "x")
                },
                "redis.master_name: required in sentinel mode",
            ),
            (
                RedisConfig::sentinel(["redis://h:26379"], " "),
                "redis.master_name: must not be empty",
            ),
            (
                RedisConfig::cluster(Vec::<String>::new()),
                "redis.nodes: at least one URL required in cluster mode",
            ),
            (
                RedisConfig::cluster(["redis://a:7000", "rediss://b:7000"]),
                "redis.nodes[1]: mixes redis:// and rediss://",
            ),
            (
                RedisConfig::cluster(["redis://:pw@a:7000", "redis://:other@b:7000"]),
                "redis.nodes[1]: user, password and database must be the same",
            ),
            (
                RedisConfig {
                    master_password: Some(Secret::new("pw")),
                    ..RedisConfig::single("redis://h")
                },
                "redis.master_password: only used in sentinel mode",
            ),
            (
                RedisConfig {
                    key_prefix: "app{x}:".into(),
                    ..RedisConfig::single("redis://h")
                },
                "redis.key_prefix:",
            ),
            (
                RedisConfig {
                    command_timeout_ms: 0,
                    ..RedisConfig::single("redis://h")
                },
                "redis.command_timeout_ms:",
            ),
            (
                RedisConfig {
                    breaker: BreakerConfig {
                        minimum_calls: 0,
                        ..BreakerConfig::default()
                    },
                    ..RedisConfig::single("redis://h")
                },
                "redis.breaker:",
            ),
            (
                RedisConfig {
                    ca_file: Some("/etc/ca.pem".into()),
                    ..RedisConfig::single("redis://h")
                },
                "redis.ca_file: set, but no server URL is rediss://",
            ),
            (
                RedisConfig {
                    ca_file: Some("/nonexistent/palisade-ca.pem".into()),
                    ..RedisConfig::single("rediss://h")
                },
                "redis.ca_file: file does not exist",
            ),
            (
                RedisConfig::single("rediss://h:6380/#insecure"),
                "redis.url: #insecure",
            ),
        ];
        for (config, expected) in table {
            let message = error(&config);
            assert!(
                message.contains(expected),
                "expected {expected:?}, got {message:?}"
            );
        }
    }

    #[test]
    fn validation_errors_never_contain_the_password() {
        let secrets = [
            RedisConfig::single("http://user:s3cr3t-pw@h:6379"),
            RedisConfig::single("redis://user:s3cr3t-pw@h:notaport"),
            RedisConfig::single("rediss://user:s3cr3t-pw@h:6380/#insecure"),
            RedisConfig::cluster(["redis://:s3cr3t-pw@a:7000", "rediss://:s3cr3t-pw@b:7000"]),
            RedisConfig::cluster(["redis://:s3cr3t-pw@a:7000", "redis://:s3cr3t-pw2@b:7000"]),
            RedisConfig {
                master_password: Some(Secret::new("s3cr3t-pw")),
                ..RedisConfig::cluster(["redis://a:7000"])
            },
        ];
        for config in secrets {
            let message = error(&config);
            assert!(!message.is_empty(), "{config:?} must be rejected");
            assert!(!message.contains("s3cr3t-pw"), "{message}");
            assert!(!format!("{config:?}").contains("s3cr3t-pw"));
        }
    }
}
