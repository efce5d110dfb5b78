//! The AWS KMS backend (Cargo feature `aws-kms`, off by default because the
//! AWS SDK is a large build): key-encryption keys are KMS keys that never
//! leave AWS; Palisade sends data keys to `Encrypt` / `Decrypt`, or lets KMS
//! make them (`GenerateDataKey`) and move them between versions
//! (`ReEncrypt`) without the data key leaving KMS.
//!
//! **Keys and versions.** AWS KMS rotates the material of one KMS key
//! internally, and `Decrypt` picks the right material by itself, but a
//! Palisade version must be something a ciphertext can name and that can be
//! retired on its own. So every Palisade version is a *distinct* KMS key
//! (symmetric, `ENCRYPT_DECRYPT`), reached through an alias that never moves:
//!
//! - `alias/<prefix><name>/v<N>`: version `N` of KEK `name`; wrap and unwrap
//!   with version `N` use the key behind it, and nothing else.
//! - `alias/<prefix><name>`: the newest version, moved by `rotate`; a
//!   pointer for operators and other tools, never used to unwrap.
//!
//! The prefix defaults to `palisade-`. The version separator is `/` rather
//! than `-`, because key names may contain `-` (with `-v` the version alias
//! of key `a` would be the main alias of key `a-v1`); names may also contain
//! `.` and `_`, which KMS aliases cannot hold as such, so `_` is written `__`
//! and `.` `_-` (`default` and `palisade-internal` are unchanged). Versions
//! are contiguous from 1, so the newest is found with O(log N) `DescribeKey`
//! calls. A rotation that loses a race with another instance schedules its
//! orphan KMS key for deletion and takes the next number.
//!
//! **Binding.** `wrap` is `Encrypt` with an encryption context of the key
//! name, the version and the caller's `context` (base64); `unwrap` is
//! `Decrypt` with the same context and the version's key id, and the key id
//! KMS reports must be that key: a ciphertext of another key, version or
//! context is refused as [`CryptoError::DecryptFailed`].
//!
//! **Failures.** Every call goes through the breaker and retry of
//! `palisade-core` ([`Resilience`]); the SDK's own retries are off so those
//! decide alone. Errors are typed: unreachable, throttled or timed out
//! ([`CryptoError::KmsUnavailable`], retried), credentials or permissions
//! refused ([`CryptoError::KmsDenied`], counted by the breaker, not
//! retried), unknown key or version, and a ciphertext that does not open
//! ([`CryptoError::DecryptFailed`]). None carries credentials; the SDK's
//! request types print plaintext and data keys redacted. (SDK futures are
//! boxed: they are deep enough to overflow the compiler's layout limit.) The SDK keeps a copy
//! of each data key it sends or receives in buffers Palisade cannot zeroize.
//!
//! **Credentials.** Explicit ones from the configuration (the secret never
//! printed), or the SDK's standard chain (environment, profile, web identity,
//! ECS / EC2 metadata), resolved on first use.

use crate::aead::KeyBytes;
use crate::error::{CryptoError, Result};
use aws_credential_types::provider::future::ProvideCredentials as CredentialsFuture;
use aws_sdk_kms::Client;
use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{
    BehaviorVersion, Credentials, ProvideCredentials, Region, SharedCredentialsProvider,
};
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeySpec, KeyUsageType, Tag};
use base64::Engine as _;
use palisade_core::SharedClock;
use palisade_core::resilience::{
    BreakerSnapshot, ErrorClass, Resilience, ResilienceConfig, ResilienceError,
};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock};
use zeroize::Zeroizing;

/// The alias prefix when none is configured.
pub const DEFAULT_ALIAS_PREFIX: &str = "palisade-";
/// Longest detail of an AWS error kept in ours.
const MAX_DETAIL: usize = 240;
/// Rotations lost to other instances before `rotate` gives up.
const MAX_RACES: u32 = 8;
/// Days a KMS key orphaned by a lost race waits before deletion (the minimum).
const ORPHAN_DELETION_DAYS: i32 = 7;
/// Encryption context entries (the names are part of every wrapped key).
const CONTEXT_KEY: &str = "palisade:key";
const CONTEXT_VERSION: &str = "palisade:version";
const CONTEXT_PURPOSE: &str = "palisade:context";

/// Explicit AWS credentials. `Debug` never shows the secret or the token.
#[derive(Clone)]
pub struct AwsCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Zeroizing<String>,
    /// A session token, for temporary credentials.
    pub session_token: Option<Zeroizing<String>>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// Where the AWS KMS is and how to reach it.
#[derive(Debug, Clone)]
pub struct AwsKmsConfig {
    /// The AWS region (`eu-west-1`).
    pub region: String,
    /// Another endpoint than the region's public one: a VPC endpoint, or an
    /// emulator (moto, LocalStack) in tests.
    pub endpoint: Option<String>,
    /// Put in front of every alias after `alias/` (default `palisade-`).
    pub alias_prefix: String,
    /// Explicit credentials; `None`: the SDK's standard chain.
    pub credentials: Option<AwsCredentials>,
    /// Breaker, retries and per-attempt timeout of every call.
    pub resilience: ResilienceConfig,
}

impl AwsKmsConfig {
    /// Region `region`, its public endpoint, the standard credential chain.
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            endpoint: None,
            alias_prefix: DEFAULT_ALIAS_PREFIX.into(),
            credentials: None,
            resilience: ResilienceConfig::default(),
        }
    }

    /// Checks the region, endpoint and prefix; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field, reason: &str| {
            Err(CryptoError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        let region = &self.region;
        if region.is_empty()
            || region.len() > 64
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return invalid("aws region", "must look like eu-west-1");
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
        {
            return invalid("aws endpoint", "must be an http:// or https:// URL");
        }
        let prefix = &self.alias_prefix;
        if prefix.len() > 64
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
        {
            return invalid(
                "aws key alias prefix",
                "at most 64 characters of A-Z a-z 0-9 / _ -",
            );
        }
        if prefix.starts_with("aws/") {
            return invalid(
                "aws key alias prefix",
                "alias/aws/ is reserved for AWS managed keys",
            );
        }
        if let Some(credentials) = &self.credentials
            && (credentials.access_key_id.is_empty() || credentials.secret_access_key.is_empty())
        {
            return invalid("aws credentials", "access key id and secret must be set");
        }
        self.resilience
            .validate()
            .map_err(|e| CryptoError::Invalid {
                field: "aws resilience",
                reason: e.to_string(),
            })
    }
}

/// The AWS KMS backend. Cheap to clone.
#[derive(Clone)]
pub struct AwsKms {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    resilience: Resilience,
    prefix: String,
    region: String,
    endpoint: Option<String>,
    explicit_credentials: bool,
    /// The key ARN behind each version alias. Version aliases never move, so
    /// an entry never goes stale (a deleted key fails at KMS instead).
    arns: RwLock<HashMap<(String, u32), Arc<str>>>,
}

impl fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("AwsKms")
            .field("region", &inner.region)
            .field("endpoint", &inner.endpoint)
            .field("alias_prefix", &inner.prefix)
            .field(
                "credentials",
                &if inner.explicit_credentials {
                    "explicit"
                } else {
                    "standard chain"
                },
            )
            .finish_non_exhaustive()
    }
}

impl AwsKms {
    /// A client of the KMS `config` describes. Makes no call: credentials
    /// and keys are checked on first use.
    pub fn new(config: &AwsKmsConfig, clock: SharedClock) -> Result<Self> {
        config.validate()?;
        let resilience = Resilience::new("kms-aws", &config.resilience, clock).map_err(|e| {
            CryptoError::Invalid {
                field: "aws resilience",
                reason: e.to_string(),
            }
        })?;
        let region = Region::new(config.region.clone());
        let credentials = match &config.credentials {
            Some(c) => SharedCredentialsProvider::new(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.as_str(),
                c.session_token.as_ref().map(|t| t.to_string()),
                None,
                "palisade-config",
            )),
            None => SharedCredentialsProvider::new(StandardChain {
                region: region.clone(),
                chain: tokio::sync::OnceCell::new(),
            }),
        };
        let attempt = config.resilience.attempt_timeout();
        let mut builder = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(region)
            .credentials_provider(credentials)
            // Palisade's retry and breaker decide; SDK retries would hide
            // failures from the breaker and multiply the attempts.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(attempt)
                    .operation_attempt_timeout(attempt)
                    .build(),
            );
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                client: Client::from_conf(builder.build()),
                resilience,
                prefix: config.alias_prefix.clone(),
                region: config.region.clone(),
                endpoint: config.endpoint.clone(),
                explicit_credentials: config.credentials.is_some(),
                arns: RwLock::new(HashMap::new()),
            }),
        })
    }

    /// The breaker's state, for `/health` and tests.
    pub fn breaker_snapshot(&self) -> BreakerSnapshot {
        self.inner.resilience.breaker().snapshot()
    }

    /// The alias of the newest version of `name`: `alias/<prefix><name>`.
    pub fn main_alias(&self, name: &str) -> String {
        format!("alias/{}{}", self.inner.prefix, encode_name(name))
    }

    /// The alias of version `version` of `name`: `alias/<prefix><name>/v<N>`.
    pub fn version_alias(&self, name: &str, version: u32) -> String {
        format!("{}/v{version}", self.main_alias(name))
    }

    /// Creates KEK `name` (KMS key and aliases) unless it exists; returns
    /// its newest version.
    pub async fn create_key(&self, name: &str, _now_ms: i64) -> Result<u32> {
        if let Some(latest) = self.latest_version(name).await? {
            return Ok(latest);
        }
        match self.add_version(name, 1).await? {
            Some(version) => Ok(version),
            // Another instance made version 1 meanwhile.
            None => self
                .latest_version(name)
                .await?
                .ok_or_else(|| CryptoError::UnknownKey(name.to_owned())),
        }
    }

    /// Adds a version to KEK `name` (a new KMS key behind a new version
    /// alias, the main alias moved to it) and returns it.
    pub async fn rotate(&self, name: &str, _now_ms: i64) -> Result<u32> {
        for _ in 0..MAX_RACES {
            let next = self
                .latest_version(name)
                .await?
                .unwrap_or(0)
                .checked_add(1)
                .ok_or_else(|| CryptoError::Kms(format!("key {name:?} has no version left")))?;
            if let Some(version) = self.add_version(name, next).await? {
                return Ok(version);
            }
        }
        Err(CryptoError::KmsUnavailable(format!(
            "AWS KMS: rotating {name:?} lost {MAX_RACES} races with other instances"
        )))
    }

    /// Wraps `key` under version `version` of KEK `name`, bound to `context`.
    pub async fn wrap(
        &self,
        name: &str,
        version: u32,
        key: &KeyBytes,
        context: &[u8],
    ) -> Result<Vec<u8>> {
        let arn = self.key_arn(name, version).await?;
        let encryption_context = encryption_context(name, version, context);
        let client = &self.inner.client;
        let out = self
            .call(|| {
                let request = Box::pin(
                    client
                        .encrypt()
                        .key_id(&*arn)
                        .plaintext(Blob::new(key.expose().to_vec()))
                        .set_encryption_context(Some(encryption_context.clone()))
                        .send(),
                );
                async move { request.await.map_err(|e| sdk_error(e, name, version)) }
            })
            .await?;
        out.ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| answered_without("Encrypt", "a ciphertext"))
    }

    /// Unwraps what [`AwsKms::wrap`] or [`AwsKms::generate_data_key`] made
    /// with the same name, version and context.
    pub async fn unwrap(
        &self,
        name: &str,
        version: u32,
        wrapped: &[u8],
        context: &[u8],
    ) -> Result<KeyBytes> {
        if wrapped.is_empty() {
            return Err(CryptoError::DecryptFailed);
        }
        let arn = self.key_arn(name, version).await?;
        let encryption_context = encryption_context(name, version, context);
        let client = &self.inner.client;
        let out = self
            .call(|| {
                let request = Box::pin(
                    client
                        .decrypt()
                        .key_id(&*arn)
                        .ciphertext_blob(Blob::new(wrapped.to_vec()))
                        .set_encryption_context(Some(encryption_context.clone()))
                        .send(),
                );
                async move { request.await.map_err(|e| open_error(e, name, version)) }
            })
            .await?;
        check_key(out.key_id.as_deref(), &arn)?;
        let plain = Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default());
        KeyBytes::from_slice(&plain).map_err(|_| CryptoError::DecryptFailed)
    }

    /// A fresh AES-256 data key made by KMS (`GenerateDataKey`), in clear
    /// and wrapped under version `version` of `name` bound to `context`:
    /// one call, and the key comes from the KMS's generator.
    pub async fn generate_data_key(
        &self,
        name: &str,
        version: u32,
        context: &[u8],
    ) -> Result<(KeyBytes, Vec<u8>)> {
        let arn = self.key_arn(name, version).await?;
        let encryption_context = encryption_context(name, version, context);
        let client = &self.inner.client;
        let out = self
            .call(|| {
                let request = Box::pin(
                    client
                        .generate_data_key()
                        .key_id(&*arn)
                        .key_spec(DataKeySpec::Aes256)
                        .set_encryption_context(Some(encryption_context.clone()))
                        .send(),
                );
                async move { request.await.map_err(|e| sdk_error(e, name, version)) }
            })
            .await?;
        check_key(out.key_id.as_deref(), &arn)?;
        let plain = Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default());
        let key = KeyBytes::from_slice(&plain)
            .map_err(|_| answered_without("GenerateDataKey", "a 32-byte key"))?;
        let wrapped = out
            .ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| answered_without("GenerateDataKey", "a ciphertext"))?;
        Ok((key, wrapped))
    }

    /// Moves a wrapped key from version `from` of `from_name` to version
    /// `to` of `to_name` (`ReEncrypt`): the key is never in clear outside
    /// KMS. Refused like [`AwsKms::unwrap`] when `wrapped` is not a key
    /// wrapped under `from` with `context`.
    pub async fn rewrap(
        &self,
        (from_name, from): (&str, u32),
        (to_name, to): (&str, u32),
        wrapped: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>> {
        if wrapped.is_empty() {
            return Err(CryptoError::DecryptFailed);
        }
        let source = self.key_arn(from_name, from).await?;
        let destination = self.key_arn(to_name, to).await?;
        let source_context = encryption_context(from_name, from, context);
        let destination_context = encryption_context(to_name, to, context);
        let client = &self.inner.client;
        let out = self
            .call(|| {
                let request = Box::pin(
                    client
                        .re_encrypt()
                        .ciphertext_blob(Blob::new(wrapped.to_vec()))
                        .source_key_id(&*source)
                        .set_source_encryption_context(Some(source_context.clone()))
                        .destination_key_id(&*destination)
                        .set_destination_encryption_context(Some(destination_context.clone()))
                        .send(),
                );
                async move { request.await.map_err(|e| open_error(e, from_name, from)) }
            })
            .await?;
        check_key(out.source_key_id.as_deref(), &source)?;
        out.ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| answered_without("ReEncrypt", "a ciphertext"))
    }

    /// The newest version of `name`, `None` when it has none. Versions are
    /// contiguous from 1: doubling probes, then a binary search.
    async fn latest_version(&self, name: &str) -> Result<Option<u32>> {
        if !self.version_exists(name, 1).await? {
            return Ok(None);
        }
        // Invariant: `low` exists; `high` does not, or is None (not found yet).
        let (mut low, mut high) = (1u32, None::<u32>);
        while high.is_none() {
            let probe = low.saturating_mul(2);
            if probe == low {
                return Ok(Some(low));
            }
            if self.version_exists(name, probe).await? {
                low = probe;
            } else {
                high = Some(probe);
            }
        }
        let mut high = high.unwrap_or(low);
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if self.version_exists(name, mid).await? {
                low = mid;
            } else {
                high = mid;
            }
        }
        Ok(Some(low))
    }

    /// Whether version `version` of `name` has its alias (remembering its key).
    async fn version_exists(&self, name: &str, version: u32) -> Result<bool> {
        if self.cached_arn(name, version).is_some() {
            return Ok(true);
        }
        Ok(self.describe(name, version).await?.is_some())
    }

    fn cached_arn(&self, name: &str, version: u32) -> Option<Arc<str>> {
        self.inner
            .arns
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(name.to_owned(), version))
            .cloned()
    }

    /// The ARN of the key behind version alias `version` of `name` (KMS
    /// asked once), or `None` when the alias does not exist.
    async fn describe(&self, name: &str, version: u32) -> Result<Option<Arc<str>>> {
        let alias = self.version_alias(name, version);
        let client = &self.inner.client;
        let arn = self
            .call(|| {
                let request = Box::pin(client.describe_key().key_id(&alias).send());
                async move {
                    match request.await {
                        Ok(out) => out
                            .key_metadata
                            .and_then(|m| m.arn)
                            .map(Some)
                            .ok_or_else(|| answered_without("DescribeKey", "a key ARN")),
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(|s| s.is_not_found_exception()) =>
                        {
                            Ok(None)
                        }
                        Err(e) => Err(sdk_error(e, name, version)),
                    }
                }
            })
            .await?;
        Ok(arn.map(|arn| {
            let arn: Arc<str> = arn.into();
            self.inner
                .arns
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert((name.to_owned(), version), arn.clone());
            arn
        }))
    }

    /// The key of version `version` of `name`, or why there is none.
    async fn key_arn(&self, name: &str, version: u32) -> Result<Arc<str>> {
        if let Some(arn) = self.cached_arn(name, version) {
            return Ok(arn);
        }
        if let Some(arn) = self.describe(name, version).await? {
            return Ok(arn);
        }
        if version != 1 && self.version_exists(name, 1).await? {
            Err(CryptoError::UnknownKeyVersion {
                name: name.to_owned(),
                version,
            })
        } else {
            Err(CryptoError::UnknownKey(name.to_owned()))
        }
    }

    /// Makes version `version` of `name`: a KMS key, its version alias, and
    /// the main alias moved to it. `None` when another instance made that
    /// version first (the key made here is then scheduled for deletion).
    async fn add_version(&self, name: &str, version: u32) -> Result<Option<u32>> {
        let client = &self.inner.client;
        let description = format!("Palisade key-encryption key {name:?}, version {version}");
        let tags = [
            (CONTEXT_KEY, name.to_owned()),
            (CONTEXT_VERSION, version.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| Tag::builder().tag_key(k).tag_value(v).build())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| CryptoError::Kms(format!("AWS KMS tag: {e}")))?;
        // Not retried: a retry after a lost answer would make a second key.
        let created = self
            .call_once(async {
                Box::pin(
                    client
                        .create_key()
                        .description(description)
                        .key_usage(KeyUsageType::EncryptDecrypt)
                        .key_spec(KeySpec::SymmetricDefault)
                        .set_tags(Some(tags))
                        .send(),
                )
                .await
                .map_err(|e| sdk_error(e, name, version))
            })
            .await?;
        let metadata = created
            .key_metadata
            .ok_or_else(|| answered_without("CreateKey", "the key's metadata"))?;
        let (key_id, arn) = (metadata.key_id, metadata.arn.unwrap_or_default());
        let alias = self.version_alias(name, version);
        let aliased = self
            .call_once(async {
                match Box::pin(
                    client
                        .create_alias()
                        .alias_name(&alias)
                        .target_key_id(&key_id)
                        .send(),
                )
                .await
                {
                    Ok(_) => Ok(true),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_already_exists_exception()) =>
                    {
                        Ok(false)
                    }
                    Err(e) => Err(sdk_error(e, name, version)),
                }
            })
            .await;
        let ours = match aliased {
            Ok(true) => true,
            // Taken: by another instance, or by our own attempt whose answer was lost.
            Ok(false) => self
                .describe(name, version)
                .await
                .is_ok_and(|found| found.as_deref() == Some(arn.as_str())),
            Err(e) => {
                self.discard(&key_id).await;
                return Err(e);
            }
        };
        if !ours {
            self.discard(&key_id).await;
            return Ok(None);
        }
        self.inner
            .arns
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((name.to_owned(), version), arn.into());
        self.point_main_alias(name, &key_id).await?;
        Ok(Some(version))
    }

    /// Moves (or creates) the main alias of `name` to `key_id`.
    async fn point_main_alias(&self, name: &str, key_id: &str) -> Result<()> {
        let alias = self.main_alias(name);
        let client = &self.inner.client;
        let updated = self
            .call(|| {
                let request = Box::pin(
                    client
                        .update_alias()
                        .alias_name(&alias)
                        .target_key_id(key_id)
                        .send(),
                );
                async move {
                    match request.await {
                        Ok(_) => Ok(true),
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(|s| s.is_not_found_exception()) =>
                        {
                            Ok(false)
                        }
                        Err(e) => Err(sdk_error(e, name, 0)),
                    }
                }
            })
            .await?;
        if updated {
            return Ok(());
        }
        self.call(|| {
            let request = Box::pin(
                client
                    .create_alias()
                    .alias_name(&alias)
                    .target_key_id(key_id)
                    .send(),
            );
            async move {
                match request.await {
                    Ok(_) => Ok(()),
                    // Made by another instance meanwhile: it points at a version too.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_already_exists_exception()) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(sdk_error(e, name, 0)),
                }
            }
        })
        .await
    }

    /// Schedules an orphan KMS key for deletion; a failure is only logged
    /// (the key is unused, and costs nothing but money).
    async fn discard(&self, key_id: &str) {
        let result = Box::pin(
            self.inner
                .client
                .schedule_key_deletion()
                .key_id(key_id)
                .pending_window_in_days(ORPHAN_DELETION_DAYS)
                .send(),
        )
        .await;
        if let Err(e) = result {
            tracing::warn!(key_id, error = %detail(&e), "AWS KMS: could not schedule an orphan key for deletion");
        }
    }

    /// An idempotent call: breaker, per-attempt timeout, retries.
    async fn call<T, Op, Fut>(&self, op: Op) -> Result<T>
    where
        Op: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.inner
            .resilience
            .run_idempotent_with(classify, op)
            .await
            .map_err(from_resilience)
    }

    /// A call that must not be repeated: breaker and timeout only.
    async fn call_once<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        self.inner
            .resilience
            .run_once_with(classify, call)
            .await
            .map_err(from_resilience)
    }
}

/// The SDK's standard credential chain, built on first use (building it is
/// async, `AwsKms::new` is not).
#[derive(Debug)]
struct StandardChain {
    region: Region,
    chain:
        tokio::sync::OnceCell<aws_config::default_provider::credentials::DefaultCredentialsChain>,
}

impl ProvideCredentials for StandardChain {
    fn provide_credentials<'a>(&'a self) -> CredentialsFuture<'a>
    where
        Self: 'a,
    {
        CredentialsFuture::new(async move {
            let chain = self
                .chain
                .get_or_init(|| {
                    aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .region(self.region.clone())
                        .build()
                })
                .await;
            chain.provide_credentials().await
        })
    }
}

/// `_` → `__`, `.` → `_-`: injective, and only characters aliases allow.
fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        match c {
            '_' => out.push_str("__"),
            '.' => out.push_str("_-"),
            c => out.push(c),
        }
    }
    out
}

/// What every wrapped key is bound to: the KEK name and version, and the
/// caller's context (base64; left out when empty, KMS refuses empty values).
fn encryption_context(name: &str, version: u32, context: &[u8]) -> HashMap<String, String> {
    let mut map = HashMap::with_capacity(3);
    map.insert(CONTEXT_KEY.to_owned(), name.to_owned());
    map.insert(CONTEXT_VERSION.to_owned(), version.to_string());
    if !context.is_empty() {
        map.insert(
            CONTEXT_PURPOSE.to_owned(),
            base64::engine::general_purpose::STANDARD.encode(context),
        );
    }
    map
}

/// The key KMS says it used must be the one asked for (an emulator or a
/// proxy that ignored the key id must not pass another key's ciphertext).
fn check_key(reported: Option<&str>, arn: &str) -> Result<()> {
    match reported {
        Some(id) if id == arn || arn.ends_with(&format!("/{id}")) => Ok(()),
        _ => Err(CryptoError::DecryptFailed),
    }
}

fn answered_without(op: &str, what: &str) -> CryptoError {
    CryptoError::Kms(format!("AWS KMS {op} answered without {what}"))
}

/// How the breaker and the retry loop treat our errors.
fn classify(error: &CryptoError) -> ErrorClass {
    match error {
        CryptoError::KmsUnavailable(_) => ErrorClass::Transient,
        CryptoError::KmsDenied(_) => ErrorClass::DependencyFailure,
        _ => ErrorClass::Permanent,
    }
}

fn from_resilience(error: ResilienceError<CryptoError>) -> CryptoError {
    match error {
        ResilienceError::Open(open) => CryptoError::KmsUnavailable(format!(
            "AWS KMS: circuit breaker is {}, retry after {} ms",
            open.state,
            open.retry_after.as_millis()
        )),
        ResilienceError::TimedOut { attempts, source } => CryptoError::KmsUnavailable(format!(
            "AWS KMS: no answer within {} ms ({attempts} attempt(s))",
            source.after.as_millis()
        )),
        ResilienceError::Failed { source, .. } => source,
    }
}

/// Sorts an SDK error into ours. `name` and `version` say which key a
/// "not found" is about.
fn sdk_error<E>(error: SdkError<E, HttpResponse>, name: &str, version: u32) -> CryptoError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let service = match &error {
        SdkError::ServiceError(service) => service,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            return CryptoError::KmsUnavailable(format!("AWS KMS unreachable: {}", detail(&error)));
        }
        _ => return CryptoError::Kms(format!("AWS KMS request: {}", detail(&error))),
    };
    let code = service.err().code().unwrap_or("");
    let message = truncate(service.err().message().unwrap_or(""));
    match code {
        "NotFoundException" => CryptoError::UnknownKeyVersion {
            name: name.to_owned(),
            version,
        },
        "InvalidCiphertextException" | "IncorrectKeyException" => CryptoError::DecryptFailed,
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "InvalidClientTokenId"
        | "MissingAuthenticationToken"
        | "SignatureDoesNotMatch"
        | "ExpiredTokenException" => CryptoError::KmsDenied(format!("{code}: {message}")),
        "ThrottlingException"
        | "LimitExceededException"
        | "DependencyTimeoutException"
        | "KMSInternalException"
        | "KeyUnavailableException"
        | "ServiceUnavailable"
        | "InternalFailure" => CryptoError::KmsUnavailable(format!("AWS KMS {code}: {message}")),
        _ if service.raw().status().as_u16() >= 500 => CryptoError::KmsUnavailable(format!(
            "AWS KMS answered {}: {code} {message}",
            service.raw().status().as_u16()
        )),
        _ => CryptoError::Kms(format!("AWS KMS {code}: {message}")),
    }
}

/// [`sdk_error`] for calls that open a wrapped key (`Decrypt`,
/// `ReEncrypt`). KMS answers `AccessDeniedException` both when Palisade lacks
/// the permission and when the blob names a key it may not use (a tampered or
/// foreign ciphertext, moto's answer to a flipped byte). A real permission
/// denial says "not authorized"; the rest is a ciphertext that does not open
/// here, so a caller sending garbage can neither trip the breaker nor pass
/// for a credentials problem.
fn open_error<E>(error: SdkError<E, HttpResponse>, name: &str, version: u32) -> CryptoError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match sdk_error(error, name, version) {
        CryptoError::KmsDenied(message)
            if message.starts_with("AccessDeniedException")
                && !message.contains("not authorized") =>
        {
            CryptoError::DecryptFailed
        }
        other => other,
    }
}

/// An SDK error's chain of causes, cut short. These hold the endpoint and
/// I/O causes, never the request's credentials or body.
fn detail(error: &(dyn std::error::Error + 'static)) -> String {
    truncate(&DisplayErrorContext(error).to_string())
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_DETAIL) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_distinct_aliases() {
        let kms = AwsKms::new(
            &AwsKmsConfig::new("eu-west-1"),
            palisade_core::clock::SystemClock::shared(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kms.main_alias("default"), "alias/palisade-default");
        assert_eq!(kms.version_alias("default", 3), "alias/palisade-default/v3");
        assert_eq!(kms.main_alias("a.b_c"), "alias/palisade-a_-b__c");
        // With `-v<N>` these would collide.
        assert_ne!(kms.version_alias("a", 1), kms.main_alias("a-v1"));
        assert_ne!(encode_name("a_-"), encode_name("a._"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let mut config = AwsKmsConfig::new("eu-west-1");
        config.credentials = Some(AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Zeroizing::new("wJalrXUtnFEMI-secret".into()),
            session_token: Some(Zeroizing::new("token-secret".into())),
        });
        let shown = format!("{config:?}");
        assert!(!shown.contains("secret\""), "{shown}");
        assert!(
            !shown.contains("wJalr") && !shown.contains("token-secret"),
            "{shown}"
        );
        let kms = AwsKms::new(&config, palisade_core::clock::SystemClock::shared())
            .unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{kms:?}");
        assert!(
            !shown.contains("wJalr") && shown.contains("explicit"),
            "{shown}"
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        for (field, config) in [
            ("aws region", AwsKmsConfig::new("")),
            ("aws region", AwsKmsConfig::new("EU WEST")),
            (
                "aws endpoint",
                AwsKmsConfig {
                    endpoint: Some("127.0.0.1:4566".into()),
                    ..AwsKmsConfig::new("us-east-1")
                },
            ),
            (
                "aws key alias prefix",
                AwsKmsConfig {
                    alias_prefix: "aws/x-".into(),
                    ..AwsKmsConfig::new("us-east-1")
                },
            ),
            (
                "aws key alias prefix",
                AwsKmsConfig {
                    alias_prefix: "a.b".into(),
                    ..AwsKmsConfig::new("us-east-1")
                },
            ),
        ] {
            assert!(
                matches!(config.validate(), Err(CryptoError::Invalid { field: f, .. }) if f == field),
                "{config:?}"
            );
        }
    }
}
