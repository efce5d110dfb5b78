//! `palisade.toml`, environment overrides (`PALISADE_SECTION__KEY`), and validation
//! that names the key at fault. Secrets are `Secret`s: they never reach a log line.

use palisade_core::Secret;
use palisade_observe::{LoggingConfig, TelemetryConfig, TelemetryError};
use palisade_store::{DatabaseConfig, RedisConfig};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default data directory, relative to where `palisade` runs.
pub const DEFAULT_DATA_DIR: &str = "palisade-data";
/// The configuration file's name inside the data directory.
pub const CONFIG_FILE: &str = "palisade.toml";
/// Environment variables with this prefix override the file.
const ENV_PREFIX: &str = "PALISADE_";
/// Variables with the prefix that are not configuration keys.
const NOT_CONFIG: &[&str] = &[
    "PALISADE_CONFIG",
    "PALISADE_BOOTSTRAP_ADMIN_KEY",
    crate::crypto::MASTER_KEY_ENV,
];

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the embedded database and other local state live. Default: the
    /// directory holding the configuration file.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// `[server]`.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[database]`.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// `[log]`.
    #[serde(default)]
    pub log: LoggingConfig,
    /// `[audit]`.
    #[serde(default)]
    pub audit: AuditConfig,
    /// `[telemetry]`: OTLP trace export, off unless `otlp_endpoint` is set.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// `[redis]`: optional; without it all shared fast state is in-process.
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    /// `[passwords]`: password policy and hashing concurrency.
    #[serde(default)]
    pub passwords: crate::passwords_config::PasswordsConfig,
    /// `[lockout]`: brute-force protection of password verification.
    #[serde(default)]
    pub lockout: crate::lockout_config::LockoutConfig,
    /// `[tokens]`: Palisade's own access and refresh tokens, signing keys.
    #[serde(default)]
    pub tokens: crate::tokens_config::TokensConfig,
    /// `[authz]`: decision cache, decision audit and policy refresh.
    #[serde(default)]
    pub authz: crate::authz_config::AuthzConfig,
    /// `[ratelimit]`: limiter settings and rules.
    #[serde(default)]
    pub ratelimit: crate::ratelimit_config::RateLimitConfig,
    /// `[inspection]`: request inspection behind `POST /v1/inspect`.
    #[serde(default)]
    pub inspection: palisade_guard::inspect::InspectConfig,
    /// `[security_headers]`: response headers of Palisade's own answers.
    #[serde(default)]
    pub security_headers: palisade_http::layers::security_headers::SecurityHeaders,
    /// `[cors]`: browser origins allowed to call the API; off when empty.
    #[serde(default)]
    pub cors: palisade_http::layers::cors::CorsSettings,
    /// `[csrf]`: the CSRF policy of `/v1/csrf` and its token cookie.
    #[serde(default)]
    pub csrf: palisade_http::layers::csrf::CsrfSettings,
    /// `[crypto]`: where the master key comes from, the key file, limits of
    /// keys and of the data-key cache.
    #[serde(default)]
    pub crypto: crate::crypto::CryptoConfig,
    /// `[threats]`: IP reputation lists, account-attack detectors and their
    /// responses, traffic anomaly detection.
    #[serde(default)]
    pub threats: crate::threats_config::ThreatsConfig,
    /// `[secrets]`, written by `palisade init`.
    pub secrets: SecretsConfig,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take, in milliseconds, before a 408.
    pub request_timeout_ms: u64,
    /// On SIGTERM, how long in-flight requests may take to finish.
    pub shutdown_grace_ms: u64,
    /// Proxies (CIDRs or addresses) whose `Forwarded` / `X-Forwarded-For`
    /// are believed for the client address. Empty: the socket peer is the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1024 * 1024,
            request_timeout_ms: 30_000,
            shutdown_grace_ms: 10_000,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[audit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// The log's identity, the first line of every checkpoint (a schema-less URL by
    /// convention). Changing it makes old checkpoints belong to another log.
    pub origin: String,
    /// Largest `metadata` of one event, serialized, in bytes.
    pub max_metadata_bytes: usize,
    /// Deepest nesting of `metadata`.
    pub max_metadata_depth: usize,
    /// Most events in one append.
    pub max_batch: usize,
    /// Largest `pii` object of one event (canonical JSON, before encryption), in bytes.
    pub max_pii_bytes: usize,
    /// Largest size of the local spool that keeps events while the database is down.
    pub spool_max_bytes: u64,
    /// Events buffered per live subscriber (`/v1/audit/stream`, `/v1/audit/ws`).
    pub stream_buffer: usize,
    /// How long a subscriber's buffer may stay full before it is cut off with its cursor.
    pub stream_grace_ms: u64,
    /// Interval of keep-alives on idle streams, so proxies keep them open.
    pub stream_keep_alive_ms: u64,
    /// `[audit.syslog]`: optional forwarding of every event to a syslog server.
    pub syslog: Option<SyslogConfig>,
}

/// `[audit.syslog]`: forward the audit log to a syslog server as RFC 5424
/// messages over TCP or TLS (see `palisade_audit::forward`). Only `address` is
/// required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `host:port` of the syslog server (e.g. `logs.internal:6514`).
    pub address: String,
    /// `tcp` (default) or `tls`.
    #[serde(default = "default_transport")]
    pub transport: palisade_audit::forward::Transport,
    /// PEM file of the CA certificates that sign the server's; required for `tls`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// APP-NAME of every message.
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// HOSTNAME of every message. Default: the machine's host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Facility name (`authpriv`, `auth`, `local0`…) or number. Default `authpriv` (10).
    #[serde(default = "default_facility")]
    pub facility: String,
    /// What MSG holds: `json` (default), `ocsf` or `cef`.
    #[serde(default = "default_format")]
    pub format: palisade_audit::forward::MessageFormat,
}

fn default_transport() -> palisade_audit::forward::Transport {
    palisade_audit::forward::Transport::Tcp
}

fn default_app_name() -> String {
    "palisade".into()
}

fn default_facility() -> String {
    "authpriv".into()
}

fn default_format() -> palisade_audit::forward::MessageFormat {
    palisade_audit::forward::MessageFormat::Json
}

impl SyslogConfig {
    /// The forwarder's settings, with the position file kept in `state_dir`.
    pub fn settings(&self, state_dir: &Path) -> palisade_audit::forward::ForwarderSettings {
        use palisade_audit::forward::{Facility, ForwarderSettings, MessageBuilder};
        let facility = Facility::parse(&self.facility).unwrap_or(Facility::AUTHPRIV);
        let hostname = self
            .hostname
            .clone()
            .unwrap_or_else(palisade_audit::forward::machine_hostname);
        ForwarderSettings {
            address: self.address.clone(),
            transport: self.transport,
            ca_file: self.ca_file.clone(),
            message: MessageBuilder::new(facility, &hostname, &self.app_name, self.format),
            state_dir: state_dir.to_owned(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        use palisade_audit::forward::{
            APP_NAME_MAX, Facility, HOSTNAME_MAX, Transport, host_of, is_valid_header_field,
        };
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: format!("audit.syslog.{key}"),
            message: message.into(),
        };
        if host_of(&self.address).is_none() {
            return Err(invalid("address", "must be host:port"));
        }
        if self.transport == Transport::Tls && self.ca_file.is_none() {
            return Err(invalid("ca_file", "is required when transport = \"tls\""));
        }
        if Facility::parse(&self.facility).is_none() {
            return Err(invalid(
                "facility",
                "must be a syslog facility name (authpriv, auth, local0..local7, ...) or 0..23",
            ));
        }
        if !is_valid_header_field(&self.app_name, APP_NAME_MAX) {
            return Err(invalid(
                "app_name",
                "must be 1 to 48 printable ASCII characters without spaces",
            ));
        }
        if let Some(hostname) = &self.hostname
            && !is_valid_header_field(hostname, HOSTNAME_MAX)
        {
            return Err(invalid(
                "hostname",
                "must be 1 to 255 printable ASCII characters without spaces",
            ));
        }
        Ok(())
    }
}

impl AuditConfig {
    /// The limits of live subscribers this section configures.
    pub fn stream_settings(&self) -> palisade_http::routes::audit_stream::AuditStreamSettings {
        palisade_http::routes::audit_stream::AuditStreamSettings {
            buffer: self.stream_buffer,
            grace: Duration::from_millis(self.stream_grace_ms),
            keep_alive: Duration::from_millis(self.stream_keep_alive_ms),
            ..Default::default()
        }
    }

    /// The event limits this section configures.
    pub fn limits(&self) -> palisade_audit::event::EventLimits {
        palisade_audit::event::EventLimits {
            max_metadata_bytes: self.max_metadata_bytes,
            max_metadata_depth: self.max_metadata_depth,
            max_batch: self.max_batch,
            max_pii_bytes: self.max_pii_bytes,
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            origin: "palisade.local/audit".into(),
            max_metadata_bytes: 16 * 1024,
            max_metadata_depth: 16,
            max_batch: 1000,
            max_pii_bytes: 8 * 1024,
            spool_max_bytes: 1024 * 1024 * 1024,
            stream_buffer: 256,
            stream_grace_ms: 5_000,
            stream_keep_alive_ms: 15_000,
            syslog: None,
        }
    }
}

/// `[secrets]`: generated by `palisade init`, never printed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// Key for the keyed hashes of API keys (at least 32 characters).
    pub api_key_pepper: Secret,
    /// Ed25519 key that signs audit checkpoints, in the signed-note format
    /// `PRIVATE+KEY+<name>+<keyid>+<base64>`.
    pub audit_signing_key: Secret,
    /// Key of CSRF tokens, base64 of at least 32 bytes. Optional: without it
    /// the key is derived from `api_key_pepper` by HKDF-SHA-256, so tokens
    /// survive restarts and are shared by instances with the same pepper.
    #[serde(default)]
    pub csrf_key: Option<Secret>,
}

/// Why the configuration cannot be used. The message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (line and column, no values).
        message: String,
    },
    /// A key has a value of the wrong type or range, or is unknown.
    #[error("invalid configuration: {key}: {message}")]
    Invalid {
        /// Dotted key, e.g. `server.listen`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads `path`, applies `PALISADE_*` overrides from `env`, and validates.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: path.to_owned(),
                    // The span, not the snippet: the snippet could quote a secret.
                    message: e.message().to_owned(),
                })?;
        apply_env(&mut table, env)?;
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::Invalid {
                key: e.path().to_string(),
                message: redact(e.inner().to_string()),
            })?;
        if config.data_dir.is_none() {
            config.data_dir = Some(
                path.parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| ".".into()),
            );
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        };
        self.database
            .validate()
            .map_err(|e| from_store(&e, "database"))?;
        if let Some(redis) = &self.redis {
            redis.validate().map_err(|e| from_store(&e, "redis"))?;
        }
        self.ratelimit.validate()?;
        crate::inspection_config::inspector(&self.inspection)?;
        self.threats.validate()?;
        self.authz.validate()?;
        self.passwords.validate()?;
        self.lockout.validate()?;
        self.tokens.validate()?;
        self.crypto.validate()?;
        self.telemetry.validate().map_err(|e| match e {
            TelemetryError::Invalid { key, message } => ConfigError::Invalid {
                key: format!("telemetry.{key}"),
                message,
            },
            other => invalid("telemetry", &other.to_string()),
        })?;
        if self.secrets.api_key_pepper.expose().len() < 32 {
            return Err(invalid(
                "secrets.api_key_pepper",
                "must be at least 32 characters",
            ));
        }
        if palisade_audit::checkpoint::NoteSigner::from_signer_key(
            self.secrets.audit_signing_key.expose(),
        )
        .is_err()
        {
            return Err(invalid(
                "secrets.audit_signing_key",
                "not a PRIVATE+KEY+name+keyid+base64 signer key",
            ));
        }
        if self.audit.origin.is_empty() || self.audit.origin.contains('\n') {
            return Err(invalid("audit.origin", "must be one non-empty line"));
        }
        if let Some(syslog) = &self.audit.syslog {
            syslog.validate()?;
        }
        if self.audit.stream_buffer == 0 {
            return Err(invalid("audit.stream_buffer", "must be at least 1"));
        }
        if self.audit.stream_grace_ms == 0 {
            return Err(invalid("audit.stream_grace_ms", "must be at least 1"));
        }
        if self.audit.max_batch == 0 {
            return Err(invalid("audit.max_batch", "must be at least 1"));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(invalid("server.max_body_bytes", "must be at least 1024"));
        }
        if self.server.request_timeout_ms == 0 {
            return Err(invalid("server.request_timeout_ms", "must be at least 1"));
        }
        self.protection()?;
        Ok(())
    }

    /// CSRF, security headers, CORS and trusted proxies, checked and built.
    /// The CSRF key is `secrets.csrf_key`, or else derived from
    /// `secrets.api_key_pepper` (HKDF-SHA-256, info `palisade csrf v1`): a key
    /// of its own, never the pepper itself, so neither use can weaken the other.
    pub fn protection(&self) -> Result<palisade_http::RequestProtection, ConfigError> {
        let tokens = match &self.secrets.csrf_key {
            Some(key) => palisade_guard::csrf::CsrfTokens::from_base64(key).map_err(|e| {
                ConfigError::Invalid {
                    key: "secrets.csrf_key".into(),
                    message: match e {
                        palisade_guard::GuardError::Invalid { reason, .. } => reason,
                        other => other.to_string(),
                    },
                }
            })?,
            None => palisade_guard::csrf::CsrfTokens::derive_from(&self.secrets.api_key_pepper)
                .map_err(|e| ConfigError::Invalid {
                    key: "secrets.api_key_pepper".into(),
                    message: e.to_string(),
                })?,
        };
        palisade_http::RequestProtection::new(
            tokens,
            &self.csrf,
            &self.security_headers,
            &self.cors,
            &self.server.trusted_proxies,
        )
        .map_err(|e| ConfigError::Invalid {
            key: e.key().to_owned(),
            message: e.reason(),
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into())
    }

    /// Request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.server.request_timeout_ms)
    }

    /// Drain deadline on shutdown.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.server.shutdown_grace_ms)
    }
}

/// A store's "invalid configuration: section.key: what" as a `ConfigError` naming the key.
fn from_store(e: &palisade_store::StoreError, section: &str) -> ConfigError {
    let text = e.to_string();
    let detail = text.split_once(": ").map_or(text.as_str(), |x| x.1);
    let (key, message) = detail.split_once(": ").unwrap_or((section, detail));
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// Applies `PALISADE_SECTION__KEY=value` (and `PALISADE_DATA_DIR`) onto the table.
/// A value that parses as a TOML integer, float or boolean takes that type;
/// anything else is a string.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if NOT_CONFIG.contains(&name.as_str()) || rest.starts_with("TEST_") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::Invalid {
                key: name,
                message: "use PALISADE_SECTION__KEY (two underscores between levels)".into(),
            });
        }
        let value = parse_env_value(&raw);
        let mut cursor = &mut *table;
        for (i, segment) in path.iter().enumerate() {
            if i + 1 == path.len() {
                cursor.insert(segment.clone(), value.clone());
            } else {
                let entry = cursor
                    .entry(segment.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                cursor = match entry {
                    toml::Value::Table(t) => t,
                    _ => {
                        return Err(ConfigError::Invalid {
                            key: path[..=i].join("."),
                            message: format!(
                                "{name} addresses a key inside a value that is not a section"
                            ),
                        });
                    }
                };
            }
        }
    }
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(b) = raw.parse::<bool>() {
        toml::Value::Boolean(b)
    } else if let Ok(f) = raw.parse::<f64>()
        && raw.contains('.')
        && !raw.contains(':')
    {
        toml::Value::Float(f)
    } else {
        toml::Value::String(raw.to_owned())
    }
}

/// serde's messages quote the offending value (`invalid type: string "..."`); a
/// value may be a secret, so the quote is cut out.
fn redact(message: String) -> String {
    match (message.find('"'), message.rfind('"')) {
        (Some(start), Some(end)) if end > start => {
            format!("{}<value>{}", &message[..start], &message[end + 1..])
        }
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEPPER: &str = "0123456789abcdef0123456789abcdef";
    const SIGNER: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join(CONFIG_FILE);
        std::fs::write(&path, text).unwrap_or_default();
        path
    }

    fn minimal() -> String {
        format!("[secrets]\napi_key_pepper = \"{PEPPER}\"\naudit_signing_key = \"{SIGNER}\"\n")
    }

    fn load_err(text: &str, env: Vec<(&str, &str)>) -> String {
        let dir = tempfile::tempdir().ok();
        let dir = dir.as_ref().map(|d| d.path()).unwrap_or(Path::new("."));
        let env = env.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned()));
        match Config::load(&write(dir, text), env) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_fill_everything_but_secrets() {
        let dir = tempfile::tempdir().ok();
        let dir = dir.as_ref().map(|d| d.path()).unwrap_or(Path::new("."));
        let config = Config::load(&write(dir, &minimal()), Vec::new());
        let config = config.ok();
        assert_eq!(config.as_ref().map(|c| c.server.listen.port()), Some(8080));
        assert_eq!(config.map(|c| c.data_dir()), Some(dir.to_path_buf()));
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().ok();
        let dir = dir.as_ref().map(|d| d.path()).unwrap_or(Path::new("."));
        let env = vec![
            (
                "PALISADE_SERVER__LISTEN".to_owned(),
                "0.0.0.0:9999".to_owned(),
            ),
            (
                "PALISADE_DATABASE__MAX_CONNECTIONS".to_owned(),
                "3".to_owned(),
            ),
            (
                "PALISADE_BOOTSTRAP_ADMIN_KEY".to_owned(),
                "not-a-config-key".to_owned(),
            ),
        ];
        let config = Config::load(&write(dir, &minimal()), env).ok();
        assert_eq!(config.as_ref().map(|c| c.server.listen.port()), Some(9999));
        assert_eq!(config.map(|c| c.database.max_connections), Some(3));
    }

    #[test]
    fn invalid_values_name_the_key() {
        let err = load_err(
            &format!("{}[server]\nlisten = \"nowhere\"\n", minimal()),
            vec![],
        );
        assert!(err.contains("server.listen"), "{err}");
        let err = load_err(&minimal(), vec![("PALISADE_SERVER__MAX_BODY_BYTES", "12")]);
        assert!(err.contains("server.max_body_bytes"), "{err}");
        let err = load_err(&minimal(), vec![("PALISADE_AUDIT__STREAM_BUFFER", "0")]);
        assert!(err.contains("audit.stream_buffer"), "{err}");
        let err = load_err(&minimal(), vec![("PALISADE_SERVER__LISTN", "x")]);
        assert!(err.contains("listn"), "{err}");
        let err = load_err(
            &format!("[secrets]\napi_key_pepper = \"short\"\naudit_signing_key = \"{SIGNER}\"\n"),
            vec![],
        );
        assert!(err.contains("secrets.api_key_pepper"), "{err}");
        let err = load_err(
            &minimal(),
            vec![("PALISADE_DATABASE__URL", "mysql://u:pw@h/d")],
        );
        assert!(err.contains("database.url"), "{err}");
    }

    #[test]
    fn telemetry_is_off_by_default_and_set_from_the_environment() {
        let dir = tempfile::tempdir().ok();
        let dir = dir.as_ref().map(|d| d.path()).unwrap_or(Path::new("."));
        let config = Config::load(&write(dir, &minimal()), Vec::new()).ok();
        assert_eq!(
            config.map(|c| c.telemetry),
            Some(TelemetryConfig::default())
        );
        let env = vec![
            (
                "PALISADE_TELEMETRY__OTLP_ENDPOINT".to_owned(),
                "http://127.0.0.1:4318".to_owned(),
            ),
            (
                "PALISADE_TELEMETRY__SAMPLE_RATIO".to_owned(),
                "0.25".to_owned(),
            ),
            (
                "PALISADE_TELEMETRY__SERVICE_NAME".to_owned(),
                "edge".to_owned(),
            ),
        ];
        let telemetry = Config::load(&write(dir, &minimal()), env)
            .ok()
            .map(|c| c.telemetry);
        assert_eq!(
            telemetry.as_ref().and_then(|t| t.endpoint()),
            Some("http://127.0.0.1:4318")
        );
        assert_eq!(telemetry.as_ref().map(|t| t.sample_ratio), Some(0.25));
        assert_eq!(telemetry.map(|t| t.service_name), Some("edge".into()));
        // An integer ratio from the environment is a number, not a type error.
        let err = load_err(&minimal(), vec![("PALISADE_TELEMETRY__SAMPLE_RATIO", "1")]);
        assert_eq!(err, "");
    }

    #[test]
    fn invalid_telemetry_names_the_key() {
        for endpoint in ["grpc://127.0.0.1:4317", "127.0.0.1:4318", "collector"] {
            let err = load_err(
                &minimal(),
                vec![("PALISADE_TELEMETRY__OTLP_ENDPOINT", endpoint)],
            );
            assert!(err.contains("telemetry.otlp_endpoint"), "{endpoint}: {err}");
        }
        for ratio in ["1.5", "-0.1", "2"] {
            let err = load_err(
                &minimal(),
                vec![("PALISADE_TELEMETRY__SAMPLE_RATIO", ratio)],
            );
            assert!(err.contains("telemetry.sample_ratio"), "{ratio}: {err}");
        }
        let err = load_err(
            &format!("{}[telemetry]\nsample_ratio = \"all\"\n", minimal()),
            vec![],
        );
        assert!(err.contains("telemetry.sample_ratio"), "{err}");
        let err = load_err(
            &format!("{}[telemetry]\nendpoint = \"x\"\n", minimal()),
            vec![],
        );
        assert!(err.contains("endpoint"), "{err}");
        let err = load_err(
            &minimal(),
            vec![(
                "PALISADE_TELEMETRY__OTLP_ENDPOINT",
                "http://u:hunter2@collector:4318",
            )],
        );
        assert!(err.contains("telemetry.otlp_endpoint"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn syslog_is_off_by_default_and_configured_from_the_environment() {
        let dir = tempfile::tempdir().ok();
        let dir = dir.as_ref().map(|d| d.path()).unwrap_or(Path::new("."));
        let config = Config::load(&write(dir, &minimal()), Vec::new()).ok();
        assert!(config.is_some_and(|c| c.audit.syslog.is_none()));
        let env = vec![(
            "PALISADE_AUDIT__SYSLOG__ADDRESS".to_owned(),
            "127.0.0.1:5514".to_owned(),
        )];
        let syslog = Config::load(&write(dir, &minimal()), env)
            .ok()
            .and_then(|c| c.audit.syslog);
        assert_eq!(
            syslog.as_ref().map(|s| s.address.as_str()),
            Some("127.0.0.1:5514")
        );
        assert_eq!(
            syslog.as_ref().map(|s| s.transport),
            Some(palisade_audit::forward::Transport::Tcp)
        );
        assert_eq!(
            syslog.as_ref().map(|s| s.facility.as_str()),
            Some("authpriv")
        );
        assert_eq!(syslog.map(|s| s.app_name), Some("palisade".into()));
    }

    #[test]
    fn invalid_syslog_settings_name_the_key() {
        let section = |extra: &str| {
            format!(
                "{}[audit.syslog]\naddress = \"logs.internal:6514\"\n{extra}",
                minimal()
            )
        };
        assert_eq!(load_err(&section(""), vec![]), "");
        for (extra, key) in [
            ("transport = \"udp\"\n", "audit.syslog.transport"),
            ("transport = \"tls\"\n", "audit.syslog.ca_file"),
            ("facility = \"local9\"\n", "audit.syslog.facility"),
            ("app_name = \"has space\"\n", "audit.syslog.app_name"),
            ("hostname = \"\"\n", "audit.syslog.hostname"),
            ("format = \"xml\"\n", "audit.syslog.format"),
            ("adress = \"x\"\n", "adress"),
        ] {
            let err = load_err(&section(extra), vec![]);
            assert!(err.contains(key), "{extra}: {err}");
        }
        let err = load_err(
            &minimal(),
            vec![("PALISADE_AUDIT__SYSLOG__ADDRESS", "no-port")],
        );
        assert!(err.contains("audit.syslog.address"), "{err}");
    }

    #[test]
    fn errors_never_show_secret_values() {
        let err = load_err(
            &format!("[secrets]\napi_key_pepper = 12345\naudit_signing_key = \"{SIGNER}\"\n"),
            vec![],
        );
        assert!(err.contains("secrets.api_key_pepper"), "{err}");
        let err = load_err(
            &minimal(),
            vec![("PALISADE_DATABASE__URL", "mysql://u:hunter2@h/d")],
        );
        assert!(!err.contains("hunter2"), "{err}");
        let err = load_err(
            "[secrets]\napi_key_pepper = [\"hunter2-hunter2\"]\n",
            vec![],
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn request_protection_has_strict_defaults() {
        let dir = tempfile::tempdir().ok();
        let dir = dir.as_ref().map(|d| d.path()).unwrap_or(Path::new("."));
        let config = Config::load(&write(dir, &minimal()), Vec::new()).ok();
        let config = config.as_ref();
        assert!(config.is_some_and(|c| c.server.trusted_proxies.is_empty()));
        assert!(config.is_some_and(|c| c.cors.allowed_origins.is_empty()));
        assert!(config.is_some_and(|c| c.csrf.exempt_bearer));
        assert_eq!(
            config.map(|c| c.security_headers.x_frame_options.as_str()),
            Some("DENY")
        );
        let protection = config.and_then(|c| c.protection().ok());
        assert!(protection.is_some_and(|p| p.cors.is_none()));
    }

    #[test]
    fn invalid_request_protection_names_the_key() {
        let cases = [
            (
                "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"proxy\"]\n",
                "server.trusted_proxies",
            ),
            (
                "[cors]\nallowed_origins = [\"*\"]\nallow_credentials = true\n",
                "cors.allowed_origins",
            ),
            (
                "[cors]\nallowed_origins = [\"https://app.example/path\"]\n",
                "cors.allowed_origins",
            ),
            (
                "[csrf]\ntrusted_origins = [\"app.example\"]\n",
                "csrf.trusted_origins",
            ),
            ("[csrf]\ncookie_name = \"bad name\"\n", "csrf.cookie_name"),
            ("[csrf]\nsame_site = \"sometimes\"\n", "csrf.same_site"),
            (
                "[security_headers]\nreferrer_policy = \"a\\u0001b\"\n",
                "security_headers.referrer_policy",
            ),
            (
                "[security_headers]\nx_powered_by = \"me\"\n",
                "security_headers",
            ),
        ];
        for (section, key) in cases {
            let err = load_err(&format!("{}{section}", minimal()), vec![]);
            assert!(err.contains(key), "{section}: {err}");
        }
    }

    #[test]
    fn a_configured_csrf_key_must_be_base64_of_32_bytes_and_is_never_shown() {
        let secret = "c2hvcnQtYnV0LXNlY3JldA";
        let text = format!(
            "[secrets]\napi_key_pepper = \"{PEPPER}\"\naudit_signing_key = \"{SIGNER}\"\ncsrf_key = \"{secret}\"\n"
        );
        let err = load_err(&text, vec![]);
        assert!(err.contains("secrets.csrf_key"), "{err}");
        assert!(!err.contains(secret), "{err}");
        let good = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
        let text = text.replace(secret, good);
        assert_eq!(load_err(&text, vec![]), "");
    }

    #[test]
    fn the_derived_csrf_key_is_stable_for_one_pepper() {
        let dir = tempfile::tempdir().ok();
        let dir = dir.as_ref().map(|d| d.path()).unwrap_or(Path::new("."));
        let config = Config::load(&write(dir, &minimal()), Vec::new()).ok();
        let first = config.as_ref().and_then(|c| c.protection().ok());
        let second = config.as_ref().and_then(|c| c.protection().ok());
        let clock = palisade_core::ManualClock::new();
        let token = first
            .as_ref()
            .and_then(|p| p.csrf.tokens().issue("s", &clock).ok())
            .unwrap_or_default();
        let verified = second.map(|p| p.csrf.tokens().verify(&token, "s", None, &clock));
        assert_eq!(verified, Some(Ok(())));
    }
}
