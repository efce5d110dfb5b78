//! Encryption in the binary: the `[crypto]` section of `palisade.toml`, the
//! keyring built from it (local KMS: key file sealed by the master key), the
//! background task of `palisade serve`, and `palisade keys rotate NAME`.
//!
//! The master key never comes from `palisade.toml` in clear. In order:
//! 1. the environment variable `crypto.master_key_env` (default
//!    `PALISADE_MASTER_KEY`), base64 of 32 bytes;
//! 2. the file `crypto.master_key_file`, when configured (it must exist);
//! 3. `data_dir/master.key`, created with mode 0600 on first start so the
//!    embedded default works with zero setup. A warning says so: production
//!    should supply the key from a secret manager and keep it apart from the
//!    data (whoever has both the key file and the master key has every key).
//!
//! With `kms = "vault"` the key-encryption keys live in HashiCorp Vault /
//! OpenBao Transit (`[crypto.vault]`) and no master key or key file is used.
//! The Vault token never comes from `palisade.toml` either: the environment
//! variable `crypto.vault.token_env` (default `VAULT_TOKEN`), else the file
//! `crypto.vault.token_file`.

pub mod aws;

use crate::config::{Config, ConfigError};
use anyhow::Context;
use palisade_audit::checkpoint::NoteSigner;
use palisade_audit::event::{Actor, NewEvent, Outcome, Resource};
use palisade_audit::log::{AuditLog, AuditSettings};
use palisade_audit::store::AuditStore;
use palisade_core::Secret;
use palisade_core::SharedClock;
use palisade_core::principal::TenantId;
use palisade_core::resilience::ResilienceConfig;
use palisade_crypto::keyring::DEFAULT_KEY;
use palisade_crypto::kms::{LocalKms, VaultConfig, VaultKms};
use palisade_crypto::{
    DekCacheSettings, Keyring, KeyringSettings, KeyringStore, Kms, MasterKey, MasterKeySource,
};
use palisade_http::AppState;
use palisade_store::Database;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default name of the master key's environment variable.
pub const MASTER_KEY_ENV: &str = "PALISADE_MASTER_KEY";
/// The master key file made on first start when none is supplied.
const DEFAULT_MASTER_KEY_FILE: &str = "master.key";
/// The local KMS's key file in the data directory.
const DEFAULT_KEY_FILE: &str = "keys.sealed";

/// Which key management service holds the key-encryption keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KmsChoice {
    /// A key file sealed by the master key.
    #[default]
    Local,
    /// HashiCorp Vault / OpenBao Transit (`[crypto.vault]`).
    Vault,
    /// AWS KMS (`[crypto.aws]`; needs the Cargo feature `aws-kms`).
    Aws,
}

/// `[crypto]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CryptoConfig {
    /// Where the key-encryption keys live: `local` (default) or `vault`.
    pub kms: KmsChoice,
    /// `[crypto.vault]`, required with `kms = "vault"`.
    pub vault: Option<VaultSection>,
    /// `[crypto.aws]`, read with `kms = "aws"`.
    pub aws: Option<aws::AwsSection>,
    /// Environment variable holding the master key (base64 of 32 bytes).
    pub master_key_env: String,
    /// File holding the master key (its base64), read when the variable is
    /// not set. Unset: `data_dir/master.key`, created on first start.
    pub master_key_file: Option<PathBuf>,
    /// The local KMS's key file (KEKs sealed by the master key).
    /// Default: `data_dir/keys.sealed`.
    pub key_file: Option<PathBuf>,
    /// Data keys one KEK version wraps before the key rotates by itself
    /// (at most 2^32, the safe number of random GCM nonces).
    pub usage_limit: u64,
    /// Longest a data key is cached, in milliseconds.
    pub dek_cache_ttl_ms: u64,
    /// Longest a data key under a subject key is cached: how long another
    /// instance may still open a subject's data after it was shredded.
    pub dek_cache_subject_ttl_ms: u64,
    /// Messages one cached data key seals before it is replaced.
    pub dek_cache_max_uses: u64,
    /// Most cached data keys (for encryption and for decryption each).
    pub dek_cache_max_entries: usize,
    /// How often key versions are re-read, to pick up rotations made by
    /// other instances or `palisade keys rotate`.
    pub refresh_ms: u64,
}

impl Default for CryptoConfig {
    fn default() -> Self {
        let cache = DekCacheSettings::default();
        Self {
            kms: KmsChoice::Local,
            vault: None,
            aws: None,
            master_key_env: MASTER_KEY_ENV.into(),
            master_key_file: None,
            key_file: None,
            usage_limit: KeyringSettings::default().usage_limit,
            dek_cache_ttl_ms: millis(cache.ttl),
            dek_cache_subject_ttl_ms: millis(cache.subject_ttl),
            dek_cache_max_uses: cache.max_uses,
            dek_cache_max_entries: cache.max_entries,
            refresh_ms: 10_000,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl CryptoConfig {
    /// Checks the section; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("crypto.{key}"),
            message,
        };
        let env = &self.master_key_env;
        if env.is_empty() || !env.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(invalid(
                "master_key_env",
                "must be an environment variable name (letters, digits, _)".into(),
            ));
        }
        // Other PALISADE_* variables are configuration overrides.
        if env.starts_with("PALISADE_") && env != MASTER_KEY_ENV {
            return Err(invalid(
                "master_key_env",
                format!(
                    "PALISADE_* names are configuration overrides; use {MASTER_KEY_ENV} or another prefix"
                ),
            ));
        }
        if self.refresh_ms == 0 {
            return Err(invalid("refresh_ms", "must be at least 1".into()));
        }
        match (&self.vault, self.kms) {
            (Some(vault), _) => vault.validate()?,
            (None, KmsChoice::Vault) => {
                return Err(invalid(
                    "vault",
                    "the [crypto.vault] section is required with kms = \"vault\"".into(),
                ));
            }
            (None, KmsChoice::Local | KmsChoice::Aws) => {}
        }
        if let Some(aws) = &self.aws {
            aws.validate()?;
        }
        if self.kms == KmsChoice::Aws
            && let Some(message) = aws::unavailable()
        {
            return Err(invalid("kms", message.into()));
        }
        self.settings()
            .validate()
            .map_err(|e| invalid("usage_limit", e.to_string()))
    }

    /// The keyring settings this section describes.
    pub fn settings(&self) -> KeyringSettings {
        KeyringSettings {
            usage_limit: self.usage_limit,
            dek_cache: DekCacheSettings {
                ttl: Duration::from_millis(self.dek_cache_ttl_ms),
                subject_ttl: Duration::from_millis(self.dek_cache_subject_ttl_ms),
                max_uses: self.dek_cache_max_uses,
                max_entries: self.dek_cache_max_entries,
            },
        }
    }

    /// How often key metadata is re-read.
    pub fn refresh(&self) -> Duration {
        Duration::from_millis(self.refresh_ms)
    }

    fn key_file(&self, data_dir: &Path) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| data_dir.join(DEFAULT_KEY_FILE))
    }

    /// The master key, by the rules of the module documentation.
    fn master_key(&self, data_dir: &Path) -> anyhow::Result<(MasterKey, MasterKeySource)> {
        if let Some(key) = MasterKey::from_env(&self.master_key_env)? {
            return Ok((key, MasterKeySource::Env(self.master_key_env.clone())));
        }
        if let Some(path) = &self.master_key_file {
            // Configured: it must be there. Generating one would silently
            // replace the key the operator meant to supply.
            let key = MasterKey::from_file(path).context("crypto.master_key_file")?;
            return Ok((key, MasterKeySource::File(path.clone())));
        }
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        Ok(MasterKey::load_or_create(
            &data_dir.join(DEFAULT_MASTER_KEY_FILE),
        )?)
    }

    /// The keyring: local KMS on the key file, state in `db`. Reads no table
    /// yet (PostgreSQL may still be migrating); a key file that does not
    /// open with the master key is an error here, at start-up.
    pub fn keyring(
        &self,
        data_dir: &Path,
        db: &Database,
        clock: SharedClock,
    ) -> anyhow::Result<Keyring> {
        let kms = match (self.kms, &self.vault) {
            (KmsChoice::Local, _) => Kms::Local(self.local_kms(data_dir)?),
            (KmsChoice::Vault, Some(vault)) => Kms::Vault(vault.kms()?),
            (KmsChoice::Aws, _) => aws::build(self.aws.as_ref(), clock.clone())?,
            (KmsChoice::Vault, None) => {
                anyhow::bail!("crypto.vault: the section is required with kms = \"vault\"")
            }
        };
        Ok(Keyring::new(
            kms,
            KeyringStore::database(db.clone()),
            clock,
            self.settings(),
        )?)
    }

    /// The local KMS on the key file, sealed by the master key.
    fn local_kms(&self, data_dir: &Path) -> anyhow::Result<LocalKms> {
        let (master, source) = self.master_key(data_dir)?;
        match &source {
            MasterKeySource::Env(name) => {
                tracing::info!(variable = %name, "crypto master key from the environment");
            }
            MasterKeySource::File(path) => {
                tracing::info!(file = %path.display(), "crypto master key from a file");
            }
            MasterKeySource::Generated(path) => {
                tracing::warn!(
                    file = %path.display(),
                    "generated a crypto master key in the data directory (mode 0600); production \
                     should supply one from a secret manager ({} or crypto.master_key_file), kept \
                     apart from the data and backed up: without it every encrypted value is lost",
                    self.master_key_env
                );
            }
        }
        let key_file = self.key_file(data_dir);
        LocalKms::open(&key_file, &master).with_context(|| {
            format!(
                "opening the key file {} with the master key from {}",
                key_file.display(),
                describe(&source)
            )
        })
    }
}

/// The default environment variable of the Vault token.
pub const VAULT_TOKEN_ENV: &str = "VAULT_TOKEN";

/// `[crypto.vault]`: HashiCorp Vault / OpenBao Transit.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaultSection {
    /// `https://vault.example:8200`.
    pub address: String,
    /// Environment variable holding the token (default `VAULT_TOKEN`).
    pub token_env: String,
    /// File holding the token, read when the variable is not set.
    pub token_file: Option<PathBuf>,
    /// Transit's mount path.
    pub mount: String,
    /// PEM CA certificates to trust for Vault (a private CA).
    pub ca_file: Option<PathBuf>,
    /// Bound on one call to Vault (each retry), in milliseconds.
    pub request_timeout_ms: u64,
    /// Circuit breaker and retry (`[crypto.vault.resilience]`,
    /// `attempt_timeout_ms` is `request_timeout_ms`).
    pub resilience: ResilienceConfig,
    /// Refused: the token is never written in the configuration.
    token: Option<serde::de::IgnoredAny>,
}

impl Default for VaultSection {
    fn default() -> Self {
        Self {
            address: String::new(),
            token_env: VAULT_TOKEN_ENV.into(),
            token_file: None,
            mount: palisade_crypto::kms::vault::DEFAULT_MOUNT.into(),
            ca_file: None,
            request_timeout_ms: 5_000,
            resilience: ResilienceConfig::default(),
            token: None,
        }
    }
}

impl VaultSection {
    /// Checks the section; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: format!("crypto.vault.{key}"),
            message: message.into(),
        };
        if self.token.is_some() {
            return Err(invalid(
                "token",
                "the Vault token is never written in the configuration; put it in the \
                 environment variable named by token_env (default VAULT_TOKEN) or in token_file",
            ));
        }
        if !(self.address.starts_with("https://") || self.address.starts_with("http://")) {
            return Err(invalid(
                "address",
                "must be the Vault URL, https://host:port",
            ));
        }
        let env = &self.token_env;
        if env.is_empty() || !env.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(invalid(
                "token_env",
                "must be an environment variable name (letters, digits, _)",
            ));
        }
        if env.starts_with("PALISADE_") {
            return Err(invalid(
                "token_env",
                "PALISADE_* names are configuration overrides; use VAULT_TOKEN or another prefix",
            ));
        }
        if self.mount.trim_matches('/').is_empty() {
            return Err(invalid("mount", "must not be empty"));
        }
        if !(1..=600_000).contains(&self.request_timeout_ms) {
            return Err(invalid(
                "request_timeout_ms",
                "must be 1 to 600000 (ten minutes)",
            ));
        }
        let resilience = ResilienceConfig {
            attempt_timeout_ms: self.request_timeout_ms,
            ..self.resilience.clone()
        };
        resilience
            .validate()
            .map_err(|e| invalid("resilience", &e.to_string()))
    }

    /// The token: the environment variable, else the file. Never logged.
    fn token(&self) -> anyhow::Result<Secret> {
        if let Ok(token) = std::env::var(&self.token_env)
            && !token.trim().is_empty()
        {
            return Ok(Secret::new(token.trim()));
        }
        let Some(path) = &self.token_file else {
            anyhow::bail!(
                "crypto.vault: no Vault token: set the environment variable {} or crypto.vault.token_file",
                self.token_env
            );
        };
        // In a Secret at once, so the file's content is zeroized on drop.
        let text = std::fs::read_to_string(path)
            .map(Secret::new)
            .with_context(|| format!("crypto.vault.token_file: reading {}", path.display()))?;
        let token = text.expose().trim();
        if token.is_empty() {
            anyhow::bail!("crypto.vault.token_file: {} is empty", path.display());
        }
        Ok(Secret::new(token))
    }

    /// The Vault KMS this section describes. Contacts nothing yet.
    fn kms(&self) -> anyhow::Result<VaultKms> {
        let config = VaultConfig {
            address: self.address.clone(),
            token: self.token()?,
            mount: self.mount.clone(),
            ca_file: self.ca_file.clone(),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            resilience: self.resilience.clone(),
        };
        let kms = VaultKms::new(config).context("crypto.vault")?;
        tracing::info!(address = %kms.address(), mount = %self.mount, "crypto KMS: Vault Transit");
        Ok(kms)
    }
}

fn describe(source: &MasterKeySource) -> String {
    match source {
        MasterKeySource::Env(name) => format!("${name}"),
        MasterKeySource::File(path) | MasterKeySource::Generated(path) => {
            path.display().to_string()
        }
    }
}

/// The keyring of `palisade serve`: once the schema exists, makes sure the key
/// `default` exists, installs the keyring in `state` (until then `/v1/crypto`
/// answers 503), resumes rewrap jobs left running, then re-reads key versions
/// every `refresh` (rotations made elsewhere) and publishes the DEK cache
/// metrics.
pub async fn run(state: AppState, keyring: Keyring, refresh: Duration) {
    loop {
        if state.is_migrated() {
            match keyring.ensure_key(DEFAULT_KEY).await {
                Ok(_) => break,
                Err(error) => tracing::warn!(%error, "keyring not ready yet; retrying"),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let state = state.with_crypto(keyring.clone());
    tracing::info!(kms = keyring.kms().backend(), "keyring ready");
    drop(state);
    // Rewrap jobs a stopped process left running continue here.
    let resuming = keyring.clone();
    tokio::spawn(async move {
        if let Err(error) = resuming.resume_rewraps().await {
            tracing::warn!(%error, "rewrap jobs not resumed");
        }
    });
    let mut tick = tokio::time::interval(refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = keyring.refresh().await {
            tracing::debug!(%error, "key versions not refreshed; retrying");
        }
        keyring.publish_metrics();
    }
}

/// `palisade init`: the key `default`, so encryption works at once.
pub async fn create_default_key(config: &Config, db: &Database) -> anyhow::Result<()> {
    let keyring =
        config
            .crypto
            .keyring(&config.data_dir(), db, palisade_core::SystemClock::shared())?;
    keyring
        .ensure_key(DEFAULT_KEY)
        .await
        .context("creating the key \"default\"")?;
    Ok(())
}

/// `palisade keys rotate NAME`: adds a version to a key and writes the audit
/// event. Running instances pick the version up within `crypto.refresh_ms`.
pub async fn rotate(config: &Config, db: &Database, name: &str) -> anyhow::Result<u32> {
    let clock = palisade_core::SystemClock::shared();
    let keyring = config
        .crypto
        .keyring(&config.data_dir(), db, clock.clone())?;
    let info = keyring
        .rotate(name)
        .await
        .with_context(|| format!("rotating key {name:?}"))?;
    let version = info
        .current()
        .map(|v| v.version)
        .context("the key has no active version after rotating")?;
    let signer = NoteSigner::from_signer_key(config.secrets.audit_signing_key.expose())
        .map_err(|e| anyhow::anyhow!("secrets.audit_signing_key: {e}"))?;
    // No spool: this process ends right after; if the log cannot take the
    // event, the command fails and says so.
    let audit = AuditLog::start(
        AuditStore::new(db.clone()),
        signer,
        AuditSettings {
            origin: config.audit.origin.clone(),
            limits: config.audit.limits(),
        },
        clock,
        None,
    );
    let event = NewEvent {
        id: None,
        tenant: None,
        action: "crypto.key.rotated".to_owned(),
        actor: Actor {
            id: "palisade-cli".to_owned(),
            kind: Some("cli".into()),
            ip: None,
            user_agent: None,
        },
        resource: Some(Resource {
            kind: "crypto_key".into(),
            id: Some(name.to_owned()),
        }),
        outcome: Outcome::Success,
        occurred_at: None,
        request_id: None,
        metadata: Some(serde_json::Map::from_iter([(
            "version".to_owned(),
            serde_json::Value::from(version),
        )])),
    };
    audit
        .append(TenantId::default_tenant(), event)
        .await
        .with_context(|| {
            format!("key {name:?} was rotated to version {version}, but its audit event could not be written")
        })?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_palisade_variable_that_is_not_the_master_key() {
        let mut config = CryptoConfig::default();
        assert!(config.validate().is_ok());
        config.master_key_env = "PALISADE_SERVER__LISTEN".into();
        assert!(config.validate().is_err());
        config.master_key_env = "MY APP KEY".into();
        assert!(config.validate().is_err());
        config.master_key_env = "VAULT_MASTER_KEY".into();
        assert!(config.validate().is_ok());
        config.usage_limit = (1 << 32) + 1;
        assert!(config.validate().is_err());
    }

    fn vault(text: &str) -> Result<CryptoConfig, String> {
        let config: CryptoConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn the_vault_section_is_checked_and_never_holds_the_token() {
        let ok = vault("kms = \"vault\"\n[vault]\naddress = \"https://vault:8200\"\n");
        let ok = ok.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.kms, KmsChoice::Vault);
        let section = ok.vault.unwrap_or_else(|| panic!("section"));
        assert_eq!(section.token_env, "VAULT_TOKEN");
        assert_eq!(section.mount, "transit");
        let cases = [
            ("kms = \"vault\"\n", "crypto.vault"),
            (
                "kms = \"vault\"\n[vault]\naddress = \"https://v\"\ntoken = \"s.abc\"\n",
                "crypto.vault.token",
            ),
            (
                "kms = \"vault\"\n[vault]\naddress = \"vault:8200\"\n",
                "crypto.vault.address",
            ),
            (
                "kms = \"vault\"\n[vault]\naddress = \"https://v\"\ntoken_env = \"PALISADE_X\"\n",
                "crypto.vault.token_env",
            ),
            (
                "kms = \"vault\"\n[vault]\naddress = \"https://v\"\nrequest_timeout_ms = 0\n",
                "crypto.vault.request_timeout_ms",
            ),
        ];
        for (text, key) in cases {
            let error = vault(text).err().unwrap_or_default();
            assert!(error.contains(key), "{text}: {error}");
            assert!(!error.contains("s.abc"), "{error}");
        }
        assert!(vault("kms = \"aws-nope\"\n").is_err());
    }

    #[test]
    fn the_vault_token_comes_from_the_variable_or_the_file() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let mut section = VaultSection {
            address: "http://127.0.0.1:8200".into(),
            token_env: "C5_TEST_UNSET_VAULT_TOKEN_VARIABLE".into(),
            ..VaultSection::default()
        };
        let missing = section
            .token()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            missing.contains("C5_TEST_UNSET_VAULT_TOKEN_VARIABLE"),
            "{missing}"
        );
        let path = dir.path().join("vault-token");
        assert!(std::fs::write(&path, "s.file-token\n").is_ok());
        section.token_file = Some(path);
        let token = section.token().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(token.expose(), "s.file-token");
        let kms = section.kms().unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{kms:?}").contains("file-token"));
    }

    #[test]
    fn a_configured_master_key_file_must_exist() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let config = CryptoConfig {
            master_key_env: "C5_TEST_UNSET_MASTER_KEY_VARIABLE".into(),
            master_key_file: Some(dir.path().join("missing.key")),
            ..CryptoConfig::default()
        };
        assert!(config.master_key(dir.path()).is_err());
        assert!(!dir.path().join("missing.key").exists());
        let default = CryptoConfig {
            master_key_env: "C5_TEST_UNSET_MASTER_KEY_VARIABLE".into(),
            ..CryptoConfig::default()
        };
        let made = default
            .master_key(dir.path())
            .map(|(_, source)| source)
            .ok();
        assert_eq!(
            made,
            Some(MasterKeySource::Generated(dir.path().join("master.key")))
        );
    }
}
