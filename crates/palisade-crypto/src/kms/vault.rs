//! The HashiCorp Vault / OpenBao Transit KMS: key-encryption keys (KEKs) live
//! in Transit and never leave it; Palisade sends a data key to
//! `encrypt/<name>` and gets back `vault:vN:<base64>`, the wrapped key it
//! stores.
//!
//! Mapping: a Palisade KEK `name` is the Transit key `name` (type
//! `aes256-gcm96`, not derived) under the mount (default `transit`);
//! `create_key` creates it when missing (Transit's create is idempotent);
//! `rotate` calls `keys/<name>/rotate` and returns Transit's new
//! `latest_version`; Palisade's KEK versions are Transit's key versions.
//! `wrap` encrypts with an explicit `key_version` (so the version the keyring
//! recorded is the one used, never "latest at the time"); `unwrap` reads the
//! version from the `vault:vN:` prefix and refuses a ciphertext whose
//! version is not the one asked for, before calling Vault.
//!
//! Context binding: Transit's `context` parameter is only for derived keys
//! (it selects the derived key; a non-derived key rejects it). Palisade binds
//! the wrap context as AES-GCM associated data instead, with Transit's
//! `associated_data` parameter (aes256-gcm96; OpenBao 2 and Vault ≥ 1.14):
//! the AAD is `PLV1 ‖ len(name) ‖ name ‖ version ‖ context`, as the local
//! KMS does. That is what GCM's AAD is for: it is authenticated by the tag,
//! costs nothing in the ciphertext, and a wrong context fails in Vault
//! exactly like a tampered ciphertext. The alternative (a hash of the context
//! inside the plaintext, checked after decryption) would have Vault hand the
//! data key to a caller with the wrong context and rely on Palisade to
//! throw it away: the key would have left the KMS for a request that should
//! not get it. Derived keys would also bind the context, but need it on every
//! call and make Transit keys unusable without Palisade's context scheme.
//!
//! Transit's `encrypt` creates a missing key on the fly ("upsert"). Palisade
//! never wants that (a typo in a key name would silently start a new key), so
//! a key's existence and latest version are read (`GET keys/<name>`, cached
//! per key, re-read when a newer version is asked for) before any wrap; an
//! unknown key is [`CryptoError::UnknownKey`], a version past the latest
//! [`CryptoError::UnknownKeyVersion`].
//!
//! Why reqwest and not the `vaultrs` crate that DESIGN.md names: vaultrs 0.8
//! (the current release) has no `batch_input` for Transit (its documentation
//! says so), which the issue asks for, and it is built on reqwest 0.13 while
//! the workspace is on reqwest 0.12: a second HTTP stack for six endpoints.
//! The Transit HTTP API is small and stable; it is called here directly with
//! the workspace's reqwest (rustls on aws-lc-rs, no OpenSSL).
//!
//! Every call goes through the breaker and retry of `palisade-core`
//! ([`Resilience`], breaker name `kms-vault`): encrypt, decrypt and reads
//! are idempotent and retried; `rotate` is not and runs once. Transport
//! errors, timeouts and 5xx (a sealed Vault answers 503) count against the
//! breaker and are retried; 401/403 count but are not retried (another
//! attempt will not fix a policy); other answers (unknown key, bad
//! ciphertext) are final and are not failures of Vault.
//!
//! The token is a [`Secret`]: sent only in the `X-Vault-Token` header (marked
//! sensitive), never in `Debug` output, logs or errors. Plaintext data keys
//! are zeroized where this module holds them; the HTTP stack's own buffers
//! are not under its control.

use super::wrap_aad;
use crate::aead::{KEY_LEN, KeyBytes};
use crate::error::{CryptoError, Result, excerpt};
use crate::keyring::validate_key_name;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use palisade_core::resilience::{
    CircuitBreaker, Classify, ErrorClass, Resilience, ResilienceConfig, ResilienceError,
};
use palisade_core::{Secret, SharedClock, SystemClock};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use zeroize::Zeroizing;

/// Where Transit is mounted unless configured otherwise.
pub const DEFAULT_MOUNT: &str = "transit";
/// The breaker's name (label `breaker` of `palisade_breaker_state`).
pub const BREAKER_NAME: &str = "kms-vault";
/// The Transit key type Palisade creates and accepts.
const KEY_TYPE: &str = "aes256-gcm96";
/// Label of the associated data, so it never collides with another use.
const WRAP_LABEL: &[u8; 4] = b"PLV1";
/// Items per batch request; larger batches are split. OpenBao refuses a
/// JSON body of more than 1000 strings by default ("refused JSON input due
/// to high complexity"), and an encrypt item is 6 of them (keys included).
pub const MAX_BATCH: usize = 128;
/// Longest Vault error message echoed in an error.
const MAX_MESSAGE: usize = 200;

/// How to reach Transit.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// Base URL, `https://vault.example:8200` (`http://` only for loopback
    /// development servers; a warning says so otherwise).
    pub address: String,
    /// The Vault token (needs `create`/`update` on `<mount>/keys/*`,
    /// `<mount>/keys/*/rotate`, `<mount>/encrypt/*`, `<mount>/decrypt/*`,
    /// `read` on `<mount>/keys/*`).
    pub token: Secret,
    /// Transit's mount path (default `transit`).
    pub mount: String,
    /// A PEM file of CA certificates to trust for the Vault server, on top of
    /// the system's roots (a private CA).
    pub ca_file: Option<PathBuf>,
    /// Bound on one HTTP call (each retry attempt).
    pub request_timeout: Duration,
    /// Breaker and retry; its `attempt_timeout_ms` is replaced by
    /// `request_timeout`.
    pub resilience: ResilienceConfig,
}

impl VaultConfig {
    /// Defaults for everything but the address and token.
    pub fn new(address: impl Into<String>, token: Secret) -> Self {
        Self {
            address: address.into(),
            token,
            mount: DEFAULT_MOUNT.to_owned(),
            ca_file: None,
            request_timeout: Duration::from_secs(5),
            resilience: ResilienceConfig::default(),
        }
    }
}

/// The Vault / OpenBao Transit KMS. Cheap to clone.
#[derive(Clone)]
pub struct VaultKms {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// `<address>/v1/<mount>`, without a trailing slash.
    base: String,
    address: String,
    mount: String,
    token: Secret,
    resilience: Resilience,
    /// Latest version seen per key: wraps and unwraps up to it need no read.
    latest: RwLock<HashMap<String, u32>>,
}

impl fmt::Debug for VaultKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultKms")
            .field("address", &self.inner.address)
            .field("mount", &self.inner.mount)
            .field("breaker", &self.inner.resilience.breaker().state())
            .finish_non_exhaustive()
    }
}

/// One wrapped key handed to [`VaultKms::unwrap_many`], with its context.
pub type UnwrapItem<'a> = (&'a [u8], &'a [u8]);

impl VaultKms {
    /// A client for `config`, on the system clock. Checks the address and
    /// mount and reads the CA file; contacts nothing yet.
    pub fn new(config: VaultConfig) -> Result<Self> {
        Self::with_clock(config, SystemClock::shared())
    }

    /// [`VaultKms::new`] with the clock of the breaker and retry.
    pub fn with_clock(config: VaultConfig, clock: SharedClock) -> Result<Self> {
        let address = config.address.trim_end_matches('/').to_owned();
        let invalid = |field, reason: &str| CryptoError::Invalid {
            field,
            reason: reason.to_owned(),
        };
        let rest = address
            .strip_prefix("https://")
            .or_else(|| address.strip_prefix("http://"))
            .ok_or_else(|| invalid("vault address", "must start with https:// or http://"))?;
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(invalid(
                "vault address",
                "must be scheme://host[:port], without a path or credentials",
            ));
        }
        if address.starts_with("http://") && !is_loopback(rest) {
            tracing::warn!(
                address = %address,
                "Vault over plain HTTP to a non-loopback address: the token and data keys cross the network in clear; use https://"
            );
        }
        let mount = config.mount.trim_matches('/').to_owned();
        let mount_ok = !mount.is_empty()
            && mount.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            });
        if !mount_ok {
            return Err(invalid(
                "vault mount",
                "must be a path of letters, digits, '.', '_', '-'",
            ));
        }
        if config.token.expose().is_empty() {
            return Err(invalid("vault token", "is empty"));
        }
        if config.request_timeout.is_zero() {
            return Err(invalid("vault request timeout", "must be positive"));
        }
        // reqwest's rustls needs a process-wide provider; aws-lc-rs is the
        // project's one provider. An error only means one is installed already.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("palisade/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                CryptoError::Kms(format!(
                    "vault CA file {}: cannot read: {e}",
                    path.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
                CryptoError::Kms(format!(
                    "vault CA file {}: not PEM certificates",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(CryptoError::Kms(format!(
                    "vault CA file {}: holds no certificate",
                    path.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| CryptoError::Kms(format!("vault HTTP client: {e}")))?;
        let resilience_config = ResilienceConfig {
            attempt_timeout_ms: u64::try_from(config.request_timeout.as_millis())
                .unwrap_or(u64::MAX),
            ..config.resilience
        };
        let resilience = Resilience::new(BREAKER_NAME, &resilience_config, clock)
            .map_err(|e| invalid("vault resilience", &e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base: format!("{address}/v1/{mount}"),
                address,
                mount,
                token: config.token,
                resilience,
                latest: RwLock::default(),
            }),
        })
    }

    /// The breaker guarding Vault (state, snapshot for `/health`).
    pub fn breaker(&self) -> &CircuitBreaker {
        self.inner.resilience.breaker()
    }

    /// The Vault address in use.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// Creates Transit key `name` (aes256-gcm96) unless it exists; returns its
    /// latest version. An existing key of another type, or derived, is an
    /// error: Palisade could not wrap with it as documented.
    pub async fn create_key(&self, name: &str, _now_ms: i64) -> Result<u32> {
        validate_key_name(name)?;
        let path = format!("keys/{name}");
        let body = json!({ "type": KEY_TYPE });
        let answer = self
            .inner
            .resilience
            .run_idempotent(|| self.send(reqwest::Method::POST, &path, Some(&body), false))
            .await
            .map_err(|e| self.error(e, "create", name, 0))?;
        // Vault < 1.12 answers 204 without the key; read it then.
        let info = if answer.pointer("/data/latest_version").is_some() {
            answer
        } else {
            self.read_key(name).await?
        };
        self.learn(name, &info)
    }

    /// Adds a version to `name` (creating the key if missing, as the local
    /// KMS does) and returns it.
    pub async fn rotate(&self, name: &str, now_ms: i64) -> Result<u32> {
        validate_key_name(name)?;
        let path = format!("keys/{name}/rotate");
        // Not idempotent: retrying a rotation whose answer was lost would
        // add a second version.
        let answer = self
            .inner
            .resilience
            .run_once(self.send(reqwest::Method::POST, &path, None, false))
            .await
            .map_err(|e| self.error(e, "rotate", name, 0));
        let info = match answer {
            Ok(info) if info.pointer("/data/latest_version").is_some() => info,
            Ok(_) => self.read_key(name).await?,
            Err(CryptoError::UnknownKey(_)) => return self.create_key(name, now_ms).await,
            Err(e) => return Err(e),
        };
        self.learn(name, &info)
    }

    /// The latest version of `name`, read from Vault.
    pub async fn latest_version(&self, name: &str) -> Result<u32> {
        validate_key_name(name)?;
        let info = self.read_key(name).await?;
        self.learn(name, &info)
    }

    /// Wraps `key` under version `version` of `name`, bound to `context`.
    pub async fn wrap(
        &self,
        name: &str,
        version: u32,
        key: &KeyBytes,
        context: &[u8],
    ) -> Result<Vec<u8>> {
        validate_key_name(name)?;
        self.ensure_version(name, version).await?;
        // The single form, not a batch of one: Transit answers it faster.
        let body = json!({
            "plaintext": B64.encode(key.expose()),
            "associated_data": B64.encode(wrap_aad(WRAP_LABEL, name, version, context)),
            "key_version": version,
        });
        let path = format!("encrypt/{name}");
        let answer = self
            .inner
            .resilience
            .run_idempotent(|| self.send(reqwest::Method::POST, &path, Some(&body), false))
            .await
            .map_err(|e| self.error(e, "encrypt", name, version))?;
        let ciphertext = answer
            .pointer("/data/ciphertext")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_answer("encrypt", name))?;
        checked_ciphertext(ciphertext, name, version)
    }

    /// Unwraps what [`VaultKms::wrap`] made with the same name, version and context.
    pub async fn unwrap(
        &self,
        name: &str,
        version: u32,
        wrapped: &[u8],
        context: &[u8],
    ) -> Result<KeyBytes> {
        validate_key_name(name)?;
        let ciphertext = parse_wrapped(wrapped, version)?;
        self.ensure_version(name, version).await?;
        let body = json!({
            "ciphertext": ciphertext,
            "associated_data": B64.encode(wrap_aad(WRAP_LABEL, name, version, context)),
        });
        let path = format!("decrypt/{name}");
        let answer = self
            .inner
            .resilience
            .run_idempotent(|| self.send(reqwest::Method::POST, &path, Some(&body), false))
            .await
            .map_err(|e| self.error(e, "decrypt", name, version))?;
        let plaintext = answer
            .pointer("/data/plaintext")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_answer("decrypt", name))?;
        decode_key(plaintext)
    }

    /// Wraps many keys under version `version` of `name` in as few calls as
    /// possible (`batch_input`, [`MAX_BATCH`] per call), each bound to its
    /// own context. All or nothing: one failed item fails the call.
    pub async fn wrap_many(
        &self,
        name: &str,
        version: u32,
        keys: &[(&KeyBytes, &[u8])],
    ) -> Result<Vec<Vec<u8>>> {
        validate_key_name(name)?;
        self.ensure_version(name, version).await?;
        let path = format!("encrypt/{name}");
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_BATCH) {
            let items: Vec<Value> = chunk
                .iter()
                .map(|(key, context)| {
                    json!({
                        "plaintext": B64.encode(key.expose()),
                        "associated_data": B64.encode(wrap_aad(WRAP_LABEL, name, version, context)),
                        "key_version": version,
                    })
                })
                .collect();
            let body = json!({ "batch_input": items });
            let answer = self
                .inner
                .resilience
                .run_idempotent(|| self.send(reqwest::Method::POST, &path, Some(&body), true))
                .await
                .map_err(|e| self.error(e, "encrypt", name, version))?;
            let results = batch_results(&answer, chunk.len(), "encrypt", name)?;
            for result in results {
                if let Some(message) = item_error(result) {
                    return Err(self.classify_message(400, message, "encrypt", name, version));
                }
                let ciphertext = result
                    .get("ciphertext")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_answer("encrypt", name))?;
                out.push(checked_ciphertext(ciphertext, name, version)?);
            }
        }
        Ok(out)
    }

    /// Unwraps many keys wrapped under version `version` of `name`, in as few
    /// calls as possible. One result per item, in order: a tampered item
    /// fails alone; an unreachable Vault fails the whole call.
    pub async fn unwrap_many(
        &self,
        name: &str,
        version: u32,
        items: &[UnwrapItem<'_>],
    ) -> Result<Vec<Result<KeyBytes>>> {
        validate_key_name(name)?;
        self.ensure_version(name, version).await?;
        let path = format!("decrypt/{name}");
        let mut out: Vec<Result<KeyBytes>> = Vec::with_capacity(items.len());
        for chunk in items.chunks(MAX_BATCH) {
            // Items that are not this version's ciphertexts never reach Vault.
            let parsed: Vec<Result<&str>> = chunk
                .iter()
                .map(|(wrapped, _)| parse_wrapped(wrapped, version))
                .collect();
            let inputs: Vec<Value> = chunk
                .iter()
                .zip(&parsed)
                .filter_map(|((_, context), ciphertext)| {
                    let ciphertext = ciphertext.as_ref().ok()?;
                    Some(json!({
                        "ciphertext": ciphertext,
                        "associated_data": B64.encode(wrap_aad(WRAP_LABEL, name, version, context)),
                    }))
                })
                .collect();
            let mut results = Vec::new().into_iter();
            if !inputs.is_empty() {
                let count = inputs.len();
                let body = json!({ "batch_input": inputs });
                let answer = self
                    .inner
                    .resilience
                    .run_idempotent(|| self.send(reqwest::Method::POST, &path, Some(&body), true))
                    .await
                    .map_err(|e| self.error(e, "decrypt", name, version))?;
                results = batch_results(&answer, count, "decrypt", name)?
                    .iter()
                    .map(|result| match item_error(result) {
                        Some(message) => {
                            Err(self.classify_message(400, message, "decrypt", name, version))
                        }
                        None => result
                            .get("plaintext")
                            .and_then(Value::as_str)
                            .ok_or_else(|| bad_answer("decrypt", name))
                            .and_then(decode_key),
                    })
                    .collect::<Vec<_>>()
                    .into_iter();
            }
            for ciphertext in parsed {
                out.push(match ciphertext {
                    Err(e) => Err(e),
                    Ok(_) => results
                        .next()
                        .unwrap_or_else(|| Err(bad_answer("decrypt", name))),
                });
            }
        }
        Ok(out)
    }

    /// Makes sure `version` of `name` exists, reading the key once when the
    /// cached latest version is older (a rotation made elsewhere).
    async fn ensure_version(&self, name: &str, version: u32) -> Result<()> {
        let cached = self.cached_latest(name);
        if version >= 1 && cached.is_some_and(|latest| version <= latest) {
            return Ok(());
        }
        let latest = self.latest_version(name).await?;
        if version >= 1 && version <= latest {
            Ok(())
        } else {
            Err(CryptoError::UnknownKeyVersion {
                name: name.to_owned(),
                version,
            })
        }
    }

    fn cached_latest(&self, name: &str) -> Option<u32> {
        self.inner
            .latest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied()
    }

    async fn read_key(&self, name: &str) -> Result<Value> {
        let path = format!("keys/{name}");
        self.inner
            .resilience
            .run_idempotent(|| self.send(reqwest::Method::GET, &path, None, false))
            .await
            .map_err(|e| self.error(e, "read", name, 0))
    }

    /// Checks a key's description (`data` of `keys/<name>`) and caches its
    /// latest version.
    fn learn(&self, name: &str, info: &Value) -> Result<u32> {
        let data = info.get("data").ok_or_else(|| bad_answer("read", name))?;
        let kind = data.get("type").and_then(Value::as_str).unwrap_or("?");
        if kind != KEY_TYPE {
            return Err(CryptoError::Kms(format!(
                "Transit key {name:?} is of type {}, Palisade needs {KEY_TYPE}",
                excerpt(kind, 40)
            )));
        }
        if data.get("derived").and_then(Value::as_bool) == Some(true) {
            return Err(CryptoError::Kms(format!(
                "Transit key {name:?} is derived; Palisade needs a key without derivation"
            )));
        }
        let latest = data
            .get("latest_version")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .filter(|&v| v >= 1)
            .ok_or_else(|| bad_answer("read", name))?;
        let mut cache = self.inner.latest.write().unwrap_or_else(|e| e.into_inner());
        let entry = cache.entry(name.to_owned()).or_insert(latest);
        *entry = (*entry).max(latest);
        Ok(latest)
    }

    /// One HTTP call. `batch`: a 400 carrying `batch_results` is an answer
    /// (per-item errors), not a failed call.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        batch: bool,
    ) -> std::result::Result<Value, CallError> {
        let mut token = reqwest::header::HeaderValue::from_str(self.inner.token.expose())
            .map_err(|_| CallError::BadToken)?;
        token.set_sensitive(true);
        let url = format!("{}/{path}", self.inner.base);
        let mut request = self
            .inner
            .http
            .request(method, url)
            .header("X-Vault-Token", token);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(body).unwrap_or_default());
        }
        let response = request.send().await.map_err(CallError::transport)?;
        let status = response.status().as_u16();
        let bytes = Zeroizing::new(
            response
                .bytes()
                .await
                .map_err(CallError::transport)?
                .to_vec(),
        );
        let parsed: Option<Value> = if bytes.is_empty() {
            Some(Value::Null)
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        if (200..300).contains(&status) {
            return parsed.ok_or(CallError::Status {
                status,
                message: "answer is not JSON".into(),
            });
        }
        if batch
            && status == 400
            && let Some(answer) = parsed
                .as_ref()
                .filter(|v| v.pointer("/data/batch_results").is_some())
        {
            return Ok(answer.clone());
        }
        let message = parsed
            .as_ref()
            .and_then(|v| v.get("errors"))
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        Err(CallError::Status { status, message })
    }

    /// The crate error for a failed guarded call; names the key, never the token.
    fn error(
        &self,
        error: ResilienceError<CallError>,
        op: &str,
        name: &str,
        version: u32,
    ) -> CryptoError {
        let address = &self.inner.address;
        match error {
            ResilienceError::Open(open) => CryptoError::KmsUnavailable(format!(
                "Vault Transit at {address}: circuit breaker open after repeated failures; retry in {} ms",
                open.retry_after.as_millis()
            )),
            ResilienceError::TimedOut { attempts, source } => CryptoError::KmsUnavailable(format!(
                "Vault Transit at {address} did not answer {op} on key {name:?} within {:?} ({attempts} attempt(s))",
                source.after
            )),
            ResilienceError::Failed { attempts, source } => match source {
                CallError::Transport(reason) => CryptoError::KmsUnavailable(format!(
                    "Vault Transit at {address} unreachable ({op} on key {name:?}, {attempts} attempt(s)): {reason}"
                )),
                CallError::BadToken => {
                    CryptoError::Kms("the Vault token is not a valid HTTP header value".into())
                }
                CallError::Status { status, message } => {
                    self.classify_message(status, &message, op, name, version)
                }
            },
        }
    }

    /// Maps Vault's answer (status and error text) to the crate's error.
    fn classify_message(
        &self,
        status: u16,
        message: &str,
        op: &str,
        name: &str,
        version: u32,
    ) -> CryptoError {
        let address = &self.inner.address;
        let mount = &self.inner.mount;
        let lower = message.to_ascii_lowercase();
        let shown = excerpt(message, MAX_MESSAGE);
        match status {
            401 | 403 => CryptoError::KmsDenied(format!(
                "Vault at {address} denied {op} on Transit key {name:?} (HTTP {status} permission denied): \
                 the token is invalid or expired, or its policy does not allow {mount}/{}/{name}",
                if op == "read" || op == "create" {
                    "keys"
                } else {
                    op
                }
            )),
            500..=599 | 429 => CryptoError::KmsUnavailable(format!(
                "Vault Transit at {address} answered HTTP {status} to {op} on key {name:?}: {shown}"
            )),
            404 => CryptoError::UnknownKey(name.to_owned()),
            _ if lower.contains("key not found") || lower.contains("no existing key") => {
                CryptoError::UnknownKey(name.to_owned())
            }
            _ if lower.contains("higher than the latest key version")
                || lower.contains("version is too new")
                || lower.contains("invalid key version") =>
            {
                CryptoError::UnknownKeyVersion {
                    name: name.to_owned(),
                    version,
                }
            }
            _ if op == "decrypt"
                && (lower.contains("message authentication failed")
                    || lower.contains("invalid ciphertext")
                    || lower.contains("could not decode")) =>
            {
                CryptoError::DecryptFailed
            }
            _ => CryptoError::Kms(format!(
                "Vault Transit at {address}: {op} on key {name:?} failed (HTTP {status}): {shown}"
            )),
        }
    }
}

/// Why one HTTP call to Vault failed, before the breaker and retry see it.
#[derive(Debug)]
enum CallError {
    /// No answer: connection refused or reset, TLS failure, timeout.
    Transport(String),
    /// The token cannot be sent as a header (a newline in it).
    BadToken,
    /// Vault answered with an error status.
    Status { status: u16, message: String },
}

impl CallError {
    fn transport(error: reqwest::Error) -> Self {
        // The URL holds no secret; the chain says what failed (refused, reset, TLS).
        let error = error.without_url();
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Transport(excerpt(&reason, 300))
    }
}

impl Classify for CallError {
    fn classify(&self) -> ErrorClass {
        match self {
            Self::Transport(_) => ErrorClass::Transient,
            Self::BadToken => ErrorClass::Permanent,
            // 503: sealed or standby; 429: rate limited; 412: a performance
            // standby not yet caught up. All pass.
            Self::Status { status, .. } if *status >= 500 || matches!(status, 412 | 429) => {
                ErrorClass::Transient
            }
            // A revoked token or a policy change: Vault is unusable for us,
            // and another attempt will not fix it.
            Self::Status {
                status: 401 | 403, ..
            } => ErrorClass::DependencyFailure,
            Self::Status { .. } => ErrorClass::Permanent,
        }
    }
}

fn is_loopback(host_port: &str) -> bool {
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.rsplit_once(':').map_or(host_port, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The version `N` of a `vault:vN:...` ciphertext.
fn ciphertext_version(ciphertext: &str) -> Option<u32> {
    let rest = ciphertext.strip_prefix("vault:v")?;
    let (digits, body) = rest.split_once(':')?;
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return None;
    }
    digits.parse().ok()
}

/// Vault's answer to an encrypt, if it is under the version asked for.
fn checked_ciphertext(ciphertext: &str, name: &str, version: u32) -> Result<Vec<u8>> {
    if ciphertext_version(ciphertext) == Some(version) {
        Ok(ciphertext.as_bytes().to_vec())
    } else {
        Err(CryptoError::Kms(format!(
            "Vault Transit encrypted with another version of key {name:?} than {version}"
        )))
    }
}

/// A stored wrapped key as Vault's text, if it is one of version `version`.
/// Anything else does not open here: [`CryptoError::DecryptFailed`], as a
/// tampered ciphertext (which of the two it was is not told).
fn parse_wrapped(wrapped: &[u8], version: u32) -> Result<&str> {
    let text = std::str::from_utf8(wrapped).map_err(|_| CryptoError::DecryptFailed)?;
    match ciphertext_version(text) {
        Some(v) if v == version => Ok(text),
        _ => Err(CryptoError::DecryptFailed),
    }
}

fn decode_key(plaintext_b64: &str) -> Result<KeyBytes> {
    let plain = Zeroizing::new(
        B64.decode(plaintext_b64)
            .map_err(|_| CryptoError::DecryptFailed)?,
    );
    if plain.len() != KEY_LEN {
        return Err(CryptoError::DecryptFailed);
    }
    KeyBytes::from_slice(&plain).map_err(|_| CryptoError::DecryptFailed)
}

fn batch_results<'a>(
    answer: &'a Value,
    expected: usize,
    op: &str,
    name: &str,
) -> Result<&'a [Value]> {
    answer
        .pointer("/data/batch_results")
        .and_then(Value::as_array)
        .filter(|results| results.len() == expected)
        .map(Vec::as_slice)
        .ok_or_else(|| bad_answer(op, name))
}

fn item_error(result: &Value) -> Option<&str> {
    result
        .get("error")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
}

fn bad_answer(op: &str, name: &str) -> CryptoError {
    CryptoError::Kms(format!(
        "Vault Transit answered {op} on key {name:?} with an unexpected body"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ciphertext_versions_are_parsed_strictly() {
        assert_eq!(ciphertext_version("vault:v3:AAAA"), Some(3));
        assert_eq!(ciphertext_version("vault:v12:ab+/=="), Some(12));
        for bad in [
            "vault:v:AAAA",
            "vault:3:AAAA",
            "vault:v3:",
            "vault:v3:AA AA",
            "vault:v99999999999:AAAA",
            "vault:v-1:AAAA",
            "vaulx:v1:AAAA",
        ] {
            assert_eq!(ciphertext_version(bad), None, "{bad}");
        }
        assert_eq!(parse_wrapped(b"vault:v2:AAAA", 2), Ok("vault:v2:AAAA"));
        assert_eq!(
            parse_wrapped(b"vault:v2:AAAA", 1),
            Err(CryptoError::DecryptFailed)
        );
        assert_eq!(
            parse_wrapped(&[0xff, 0xfe], 1),
            Err(CryptoError::DecryptFailed)
        );
    }

    #[test]
    fn config_is_checked_and_the_token_never_printed() {
        let token = Secret::new("s.very-secret-token");
        let config = VaultConfig::new("http://127.0.0.1:8200", token.clone());
        let printed = format!("{config:?}");
        assert!(!printed.contains("very-secret"), "{printed}");
        let kms = VaultKms::new(config.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{kms:?}").contains("very-secret"));
        for (address, mount) in [
            ("ftp://vault", "transit"),
            ("https://", "transit"),
            ("https://vault/v1", "transit"),
            ("https://user:pw@vault", "transit"),
            ("https://vault", ""),
            ("https://vault", "a/../b"),
            ("https://vault", "tran sit"),
        ] {
            let config = VaultConfig {
                address: address.into(),
                mount: mount.into(),
                ..config.clone()
            };
            assert!(
                matches!(VaultKms::new(config), Err(CryptoError::Invalid { .. })),
                "{address} {mount}"
            );
        }
        let empty = VaultConfig::new("https://vault:8200", Secret::new(""));
        assert!(VaultKms::new(empty).is_err());
    }

    #[test]
    fn loopback_detection() {
        for yes in [
            "127.0.0.1:8200",
            "localhost:8200",
            "[::1]:8200",
            "localhost",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in ["vault:8200", "10.0.0.1:8200", "[2001:db8::1]:8200"] {
            assert!(!is_loopback(no), "{no}");
        }
    }
}
