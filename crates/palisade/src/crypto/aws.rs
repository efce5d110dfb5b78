//! `[crypto.aws]`: the AWS KMS backend (`kms = "aws"`), available when
//! Palisade is built with the Cargo feature `aws-kms`
//! (`cargo build -p palisade --features aws-kms`); without it `kms = "aws"`
//! stops start-up with a message saying so.
//!
//! Credentials come from the AWS SDK's standard chain (environment, profile,
//! web identity, ECS / EC2 metadata) unless `access_key_id` is set; then the
//! secret comes from `secret_access_key_file`, never from `palisade.toml`.

use crate::config::ConfigError;
use palisade_core::resilience::ResilienceConfig;
use serde::Deserialize;
use std::path::PathBuf;

/// The alias prefix when none is configured (`alias/palisade-<name>`).
const DEFAULT_PREFIX: &str = "palisade-";

/// `[crypto.aws]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsSection {
    /// The AWS region. Unset: `AWS_REGION`, then `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
    /// Another endpoint than the region's: a VPC endpoint, or an emulator.
    pub endpoint: Option<String>,
    /// KMS aliases are `alias/<key_alias_prefix><name>` and
    /// `alias/<key_alias_prefix><name>/v<N>` (default `palisade-`).
    pub key_alias_prefix: String,
    /// An access key id, for explicit credentials (with `secret_access_key_file`).
    pub access_key_id: Option<String>,
    /// File holding the secret access key of `access_key_id`.
    pub secret_access_key_file: Option<PathBuf>,
    /// Circuit breaker, retry and per-attempt timeout of every KMS call
    /// (`[crypto.aws.resilience]`).
    pub resilience: ResilienceConfig,
    /// Refused: the secret is never written in the configuration.
    secret_access_key: Option<serde::de::IgnoredAny>,
}

impl Default for AwsSection {
    fn default() -> Self {
        Self {
            region: None,
            endpoint: None,
            key_alias_prefix: DEFAULT_PREFIX.into(),
            access_key_id: None,
            secret_access_key_file: None,
            resilience: ResilienceConfig::default(),
            secret_access_key: None,
        }
    }
}

impl AwsSection {
    /// Checks the section; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: format!("crypto.aws.{key}"),
            message: message.into(),
        };
        if self.secret_access_key.is_some() {
            return Err(invalid(
                "secret_access_key",
                "the AWS secret is never written in the configuration; use the standard \
                 credential chain (AWS_* variables, profile, role) or secret_access_key_file",
            ));
        }
        if self.access_key_id.is_some() != self.secret_access_key_file.is_some() {
            return Err(invalid(
                "access_key_id",
                "access_key_id and secret_access_key_file go together",
            ));
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
        {
            return Err(invalid("endpoint", "must be an http:// or https:// URL"));
        }
        let prefix = &self.key_alias_prefix;
        if prefix.len() > 64
            || prefix.starts_with("aws/")
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
        {
            return Err(invalid(
                "key_alias_prefix",
                "at most 64 characters of A-Z a-z 0-9 / _ -, not starting with aws/",
            ));
        }
        self.resilience
            .validate()
            .map_err(|e| invalid("resilience", &e.to_string()))
    }
}

#[cfg(feature = "aws-kms")]
mod build {
    use super::AwsSection;
    use anyhow::Context;
    use palisade_core::SharedClock;
    use palisade_crypto::Zeroizing;
    use palisade_crypto::kms::{AwsCredentials, AwsKms, AwsKmsConfig};

    impl AwsSection {
        /// The AWS KMS this section describes. Contacts nothing yet.
        pub fn kms(&self, clock: SharedClock) -> anyhow::Result<AwsKms> {
            let region = match &self.region {
                Some(region) => region.clone(),
                None => ["AWS_REGION", "AWS_DEFAULT_REGION"]
                    .into_iter()
                    .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
                    .context(
                        "crypto.aws.region: not set, and neither is AWS_REGION nor AWS_DEFAULT_REGION",
                    )?,
            };
            let credentials = match (&self.access_key_id, &self.secret_access_key_file) {
                (Some(id), Some(path)) => {
                    let text =
                        Zeroizing::new(std::fs::read_to_string(path).with_context(|| {
                            format!(
                                "crypto.aws.secret_access_key_file: reading {}",
                                path.display()
                            )
                        })?);
                    let secret = text.trim();
                    anyhow::ensure!(
                        !secret.is_empty(),
                        "crypto.aws.secret_access_key_file: {} is empty",
                        path.display()
                    );
                    Some(AwsCredentials {
                        access_key_id: id.clone(),
                        secret_access_key: Zeroizing::new(secret.to_owned()),
                        session_token: None,
                    })
                }
                _ => None,
            };
            let config = AwsKmsConfig {
                region,
                endpoint: self.endpoint.clone(),
                alias_prefix: self.key_alias_prefix.clone(),
                credentials,
                resilience: self.resilience.clone(),
            };
            let kms = AwsKms::new(&config, clock).context("crypto.aws")?;
            tracing::info!(kms = ?kms, "crypto KMS: AWS KMS");
            Ok(kms)
        }
    }
}

/// The AWS KMS of `section` (all defaults when absent), or the error that
/// stops start-up when this build has no AWS KMS backend.
pub fn build(
    section: Option<&AwsSection>,
    clock: palisade_core::SharedClock,
) -> anyhow::Result<palisade_crypto::Kms> {
    #[cfg(feature = "aws-kms")]
    {
        let default = AwsSection::default();
        Ok(palisade_crypto::Kms::Aws(
            section.unwrap_or(&default).kms(clock)?,
        ))
    }
    #[cfg(not(feature = "aws-kms"))]
    {
        let _ = (section, clock);
        anyhow::bail!("crypto.kms: {}", unavailable().unwrap_or_default())
    }
}

/// Why `kms = "aws"` cannot be used by this build, if it cannot.
pub fn unavailable() -> Option<&'static str> {
    if cfg!(feature = "aws-kms") {
        None
    } else {
        Some(
            "kms = \"aws\" needs a palisade built with the Cargo feature `aws-kms` \
             (cargo build -p palisade --features aws-kms); this build has no AWS KMS backend",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> Result<AwsSection, String> {
        let section: AwsSection = toml::from_str(text).map_err(|e| e.to_string())?;
        section.validate().map_err(|e| e.to_string())?;
        Ok(section)
    }

    #[test]
    fn the_section_is_checked_and_never_holds_the_secret() {
        let ok = section("region = \"eu-west-1\"\nendpoint = \"http://127.0.0.1:4566\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.key_alias_prefix, "palisade-");
        for (text, key) in [
            (
                "secret_access_key = \"wJalrSECRET\"\n",
                "crypto.aws.secret_access_key",
            ),
            ("access_key_id = \"AKID\"\n", "crypto.aws.access_key_id"),
            ("endpoint = \"kms:443\"\n", "crypto.aws.endpoint"),
            (
                "key_alias_prefix = \"aws/p-\"\n",
                "crypto.aws.key_alias_prefix",
            ),
            (
                "key_alias_prefix = \"a.b\"\n",
                "crypto.aws.key_alias_prefix",
            ),
        ] {
            let error = section(text).err().unwrap_or_default();
            assert!(error.contains(key), "{text}: {error}");
            assert!(!error.contains("wJalrSECRET"), "{error}");
        }
    }

    #[test]
    fn kms_aws_is_accepted_only_with_the_feature() {
        let config: super::super::CryptoConfig =
            toml::from_str("kms = \"aws\"\n[aws]\nregion = \"eu-west-1\"\n")
                .unwrap_or_else(|e| panic!("{e}"));
        let result = config.validate().map_err(|e| e.to_string());
        if cfg!(feature = "aws-kms") {
            assert!(result.is_ok(), "{result:?}");
        } else {
            let error = result.err().unwrap_or_default();
            assert!(
                error.contains("crypto.kms") && error.contains("aws-kms"),
                "{error}"
            );
        }
    }

    #[cfg(not(feature = "aws-kms"))]
    #[test]
    fn without_the_feature_the_message_names_it() {
        assert!(unavailable().is_some_and(|m| m.contains("--features aws-kms")));
    }

    #[cfg(feature = "aws-kms")]
    #[test]
    fn explicit_credentials_come_from_the_file_and_stay_out_of_debug() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let path = dir.path().join("aws-secret");
        assert!(std::fs::write(&path, "wJalrFILESECRET\n").is_ok());
        let section = AwsSection {
            region: Some("eu-west-1".into()),
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key_file: Some(path),
            ..AwsSection::default()
        };
        let kms = section
            .kms(palisade_core::SystemClock::shared())
            .unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{kms:?}");
        assert!(
            shown.contains("explicit") && !shown.contains("wJalr"),
            "{shown}"
        );
        assert!(unavailable().is_none());
    }
}
