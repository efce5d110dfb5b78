//! First start: a data directory with a `palisade.toml` holding fresh secrets
//! (mode 0600), a migrated database, and one admin API key printed exactly once.

use crate::config::{CONFIG_FILE, Config};
use anyhow::{Context, bail};
use aws_lc_rs::rand;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use palisade_auth::{ApiKeyStore, ApiKeys, NewApiKey, Scopes};
use palisade_core::principal::TenantId;
use palisade_core::{Secret, SystemClock};
use palisade_store::Database;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The environment variable whose value becomes the first admin key.
pub const BOOTSTRAP_ENV: &str = "PALISADE_BOOTSTRAP_ADMIN_KEY";

/// Writes `dir/palisade.toml` with fresh secrets. Refuses to overwrite an existing one.
pub fn write_config(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    restrict_dir(dir)?;
    let path = dir.join(CONFIG_FILE);
    if path.exists() {
        bail!(
            "{} already exists; refusing to overwrite its secrets",
            path.display()
        );
    }
    let signer = palisade_audit::checkpoint::NoteSigner::generate("palisade-audit")
        .map_err(|e| anyhow::anyhow!("generating the audit signing key: {e}"))?;
    let signer_key = signer
        .signer_key()
        .map_err(|e| anyhow::anyhow!("encoding the audit signing key: {e}"))?;
    let text = template(&random_secret()?, &signer_key);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(path)
}

/// Creates the first admin key when the database has no key at all. Returns the
/// secret to print, or `None` when keys already exist (a restart).
pub async fn bootstrap_admin_key(config: &Config, db: &Database) -> anyhow::Result<Option<Secret>> {
    let keys = ApiKeys::new(
        ApiKeyStore::new(db.clone()),
        &config.secrets.api_key_pepper,
        SystemClock::shared(),
    );
    if keys.count().await? > 0 {
        return Ok(None);
    }
    let new = NewApiKey {
        name: "bootstrap admin".into(),
        tenant: TenantId::default_tenant(),
        scopes: Scopes::admin(),
        expires_at_ms: None,
    };
    let issued = match std::env::var(BOOTSTRAP_ENV) {
        Ok(given) if given.len() < palisade_auth::api_keys::MIN_KEY_LEN => {
            bail!(
                "{BOOTSTRAP_ENV} must be at least {} characters",
                palisade_auth::api_keys::MIN_KEY_LEN
            )
        }
        Ok(given) => keys.create_with_secret(new, Secret::new(given)).await?,
        Err(_) => keys.create(new).await?,
    };
    Ok(Some(issued.secret))
}

/// Prints the admin key to stdout, once, with what to do with it.
pub fn announce_admin_key(secret: &Secret) {
    if std::env::var(BOOTSTRAP_ENV).is_ok() {
        // The operator chose this key; confirm it is installed without re-printing it.
        println!("Palisade admin API key installed from {BOOTSTRAP_ENV}.");
        return;
    }
    println!("Palisade admin API key (shown once; store it in your secret manager):");
    println!();
    println!("    {}", secret.expose());
    println!();
    println!("Use it as: Authorization: Bearer <key>");
}

fn random_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(unix)]
fn restrict_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.display()))
}

#[cfg(not(unix))]
fn restrict_dir(_dir: &Path) -> anyhow::Result<()> {
    Ok(())
}

fn template(pepper: &str, audit_signing_key: &str) -> String {
    format!(
        r#"# Palisade configuration, written by `palisade init`.
# Every key can be overridden from the environment: PALISADE_SECTION__KEY
# (e.g. PALISADE_SERVER__LISTEN=0.0.0.0:8080, PALISADE_DATABASE__URL=postgres://...).
# This file holds secrets: keep it mode 0600 and out of version control.

# Where local state lives (the embedded database). Default: this file's directory.
# data_dir = "/var/lib/palisade"

[server]
# Address and port to listen on.
listen = "127.0.0.1:8080"
# Largest request body accepted, in bytes.
max_body_bytes = 1048576
# A request that takes longer is answered 408.
request_timeout_ms = 30000
# On SIGTERM/SIGINT, how long in-flight requests may take to finish.
shutdown_grace_ms = 10000

[database]
# Leave unset for the embedded SQLite database in data_dir.
# For PostgreSQL: url = "postgres://palisade:PASSWORD@db.internal/palisade?sslmode=verify-full"
# ssl_root_cert = "/etc/palisade/db-ca.pem"
# replica_url = "postgres://palisade:PASSWORD@replica.internal/palisade?sslmode=verify-full"
max_connections = 16
acquire_timeout_ms = 5000
idle_timeout_ms = 600000
statement_timeout_ms = 15000

[audit]
# The log's identity: the first line of every signed checkpoint.
origin = "palisade.local/audit"
# Limits on one event and one append.
max_metadata_bytes = 16384
max_metadata_depth = 16
max_batch = 1000
# While the database is down, accepted events wait in data_dir/audit-spool; past
# this size appends answer 503 rather than accept what cannot be kept.
spool_max_bytes = 1073741824
# Live subscribers (/v1/audit/stream, /v1/audit/ws): events buffered each, and how
# long a full buffer is tolerated before the subscriber is cut off with its cursor.
stream_buffer = 256
stream_grace_ms = 5000
stream_keep_alive_ms = 15000

# [audit.syslog]
# Forward every audit event to a syslog server: RFC 5424 messages, octet-counted
# framing (RFC 6587), over TCP or TLS (RFC 5425), in index order. The position is
# kept in data_dir/audit-syslog.position, so a restart resumes without gaps;
# delivery is at least once (after a broken connection or a crash the last few
# events may arrive twice; the structured data carries their index to dedupe).
# A syslog server that is down never blocks or fails appends. Uncomment the
# section line too.
# address = "logs.internal:6514"
# "tcp" or "tls"; for "tls", ca_file (PEM) holds the CA that signs the server's
# certificate, which must name the host of address.
# transport = "tls"
# ca_file = "/etc/palisade/syslog-ca.pem"
# app_name = "palisade"
# Default: this machine's host name.
# hostname = "palisade-1"
# A facility name (authpriv, auth, local0 .. local7, ...) or number.
# facility = "authpriv"
# The message body: "json" (the event record with its leaf hash), "ocsf" or "cef".
# format = "json"

[log]
# "json" (one object per line) or "text".
format = "json"
# Filter directives; RUST_LOG overrides.
level = "info"

# [telemetry]
# Export traces over OTLP/HTTP (protobuf) to an OpenTelemetry collector; spans are
# posted to <otlp_endpoint>/v1/traces. Unset: no export. A request carrying a W3C
# traceparent header joins the caller's trace. Uncomment the section line too.
# otlp_endpoint = "http://127.0.0.1:4318"
# service_name = "palisade"
# Share of new traces exported (0.0 to 1.0); a caller's sampling decision is kept.
# sample_ratio = 1.0

# [crypto]
# Encryption keys (/v1/crypto, Palisade's own sealed secrets). The master key
# that seals the key file (data_dir/keys.sealed) comes from the environment
# variable PALISADE_MASTER_KEY (base64 of 32 random bytes), else from
# master_key_file; without either, data_dir/master.key is created (mode 0600)
# on first start. In production supply it from a secret manager, keep it apart
# from the data and back it up: without it every encrypted value is lost.
# Uncomment the section line too.
# master_key_env = "PALISADE_MASTER_KEY"
# master_key_file = "/run/secrets/palisade-master-key"
# key_file = "/var/lib/palisade/keys.sealed"
# Data keys one key version wraps before the key rotates by itself (<= 2^32).
# usage_limit = 4294967296
# Data-key cache: age, age under a subject key (how long another instance may
# still open a shredded subject's data), messages one data key seals, and size.
# dek_cache_ttl_ms = 300000
# dek_cache_subject_ttl_ms = 30000
# dek_cache_max_uses = 1048576
# dek_cache_max_entries = 10000
# How often key versions are re-read (rotations by other instances or the CLI).
# refresh_ms = 10000
# Where the key-encryption keys live: "local" (the key file above) or "vault"
# (HashiCorp Vault / OpenBao Transit, [crypto.vault]; no master key then).
# kms = "local"

# [crypto.vault]
# With kms = "vault". The token is never written here: it comes from the
# environment variable token_env, else from token_file. It needs create/update
# on transit/keys/*, transit/keys/*/rotate, transit/encrypt/*, transit/decrypt/*
# and read on transit/keys/*. Uncomment the section line too.
# address = "https://vault.example:8200"
# token_env = "VAULT_TOKEN"
# token_file = "/run/secrets/vault-token"
# mount = "transit"
# ca_file = "/etc/palisade/vault-ca.pem"
# Bound on one call to Vault (each retry), in milliseconds.
# request_timeout_ms = 5000

[secrets]
# Keys the hashes of API keys. Changing it invalidates every API key.
api_key_pepper = "{pepper}"
# Signs audit checkpoints (Ed25519, signed-note format). Publish the verifier key
# from GET /v1/audit/key; changing this key starts a new chain of trust.
audit_signing_key = "{audit_signing_key}"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_private_config_that_loads_and_refuses_to_overwrite_it() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let path = write_config(dir.path()).ok();
        assert!(path.is_some());
        let path = path.unwrap_or_default();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .ok();
            assert_eq!(mode, Some(0o600));
        }
        assert!(Config::load(&path, Vec::new()).is_ok());
        assert!(write_config(dir.path()).is_err());
    }
}
