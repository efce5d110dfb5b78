//! What an attempt is counted against, and how it shows up in events.
//!
//! - **Keyed digests, not names.** Counts are stored under HMAC-SHA-256 digests
//!   (truncated to 128 bits) of the tenant and the account, or the tenant and
//!   the client address, so Redis never holds e-mail addresses or IPs and a key
//!   is 32 hex characters however long the account name is. Every instance
//!   sharing Redis must derive the same key ([`LockoutKeys::derive_from`]).
//! - **Accounts are normalised before counting**: NFKC, lowercase, surrounding
//!   whitespace trimmed. A service that looks users up case-insensitively
//!   would otherwise give an attacker a fresh budget per spelling (`Alice`,
//!   `ALICE`, ...). Two accounts differing only in case share a count, which
//!   can only make protection stricter.
//! - **Client addresses are grouped**: an IPv4 address counts alone, an IPv6
//!   address by its /64 (what one subscriber is usually given), and an
//!   IPv4-mapped IPv6 address as the IPv4 address. Otherwise one host could
//!   multiply its budget by 2^64.
//! - **Credential fingerprints**: a hex, truncated HMAC-SHA-256 of the password
//!   under a key of their own, so threat detection can see one password tried
//!   on many accounts (spraying) without ever seeing a password. The key never
//!   leaves the process; without it a fingerprint cannot be tested against
//!   guesses offline.

use super::LockoutError;
use aws_lc_rs::{hkdf, hmac, rand};
use palisade_core::Secret;
use palisade_core::principal::TenantId;
use std::fmt;
use std::net::IpAddr;
use unicode_normalization::UnicodeNormalization;

/// Longest account name accepted, in bytes, as given and once normalised
/// (an e-mail address is at most 254; audit events take actor ids of 256).
pub const MAX_ACCOUNT_BYTES: usize = 256;

/// Shortest secret keys are derived from.
pub const MIN_SECRET_BYTES: usize = 32;

/// HKDF `info` of the key that names stored counts.
const STORAGE_INFO: &[u8] = b"palisade lockout keys v1";
/// HKDF `info` of the credential fingerprint key.
const FINGERPRINT_INFO: &[u8] = b"palisade credential fingerprint v1";
/// Bytes of a fingerprint and of a storage digest: 128 bits, collision-free
/// for any realistic number of accounts and passwords.
const DIGEST_BYTES: usize = 16;

/// Domain separation of the two kinds of counted key.
const ACCOUNT_KIND: u8 = b'a';
const CLIENT_KIND: u8 = b'c';

/// The keys of brute-force protection: one names stored counts, one makes
/// credential fingerprints. `Debug` shows neither.
pub struct LockoutKeys {
    storage: hmac::Key,
    fingerprint: hmac::Key,
}

impl fmt::Debug for LockoutKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockoutKeys([redacted])")
    }
}

impl LockoutKeys {
    /// Keys derived from a deployment secret (at least 32 bytes) by
    /// HKDF-SHA-256, one per use, unrelated to every other use of the secret.
    /// Instances with the same secret name counts alike, so they share them
    /// through Redis, and make the same fingerprints.
    pub fn derive_from(secret: &Secret) -> Result<Self, LockoutError> {
        if secret.expose().len() < MIN_SECRET_BYTES {
            return Err(LockoutError::Key(
                "the secret to derive from must be at least 32 bytes",
            ));
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(secret.expose().as_bytes());
        let expand = |info: &[u8]| {
            prk.expand(&[info], hmac::HMAC_SHA256)
                .map(hmac::Key::from)
                .map_err(|_| LockoutError::Key("HKDF expansion failed"))
        };
        Ok(Self {
            storage: expand(STORAGE_INFO)?,
            fingerprint: expand(FINGERPRINT_INFO)?,
        })
    }

    /// Fresh random keys, valid in this process only: counts cannot be shared
    /// with another instance, and fingerprints change at every start.
    pub fn random() -> Result<Self, LockoutError> {
        let rng = rand::SystemRandom::new();
        let key = || {
            hmac::Key::generate(hmac::HMAC_SHA256, &rng)
                .map_err(|_| LockoutError::Key("no random bytes"))
        };
        Ok(Self {
            storage: key()?,
            fingerprint: key()?,
        })
    }

    /// The fingerprint of `credential`: 32 hex characters. The same password
    /// gives the same fingerprint on every account and tenant, which is what
    /// makes spraying visible.
    pub fn fingerprint(&self, credential: &Secret) -> String {
        let tag = hmac::sign(&self.fingerprint, credential.expose().as_bytes());
        hex::encode(&tag.as_ref()[..DIGEST_BYTES])
    }

    fn digest(&self, kind: u8, tenant: &TenantId, id: &[u8]) -> KeyDigest {
        let mut ctx = hmac::Context::with_key(&self.storage);
        // Tenant ids are at most 64 bytes: one length byte keeps the fields apart.
        let tenant = tenant.as_str().as_bytes();
        ctx.update(&[kind, u8::try_from(tenant.len()).unwrap_or(u8::MAX)]);
        ctx.update(tenant);
        ctx.update(id);
        let tag = ctx.sign();
        let mut out = [0u8; DIGEST_BYTES];
        out.copy_from_slice(&tag.as_ref()[..DIGEST_BYTES]);
        KeyDigest(out)
    }
}

/// The stored name of one counted key (an account or a client address).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct KeyDigest(pub(crate) [u8; DIGEST_BYTES]);

impl KeyDigest {
    /// Lowercase hex, as used in Redis keys and fields.
    pub(crate) fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({})", self.hex())
    }
}

/// One attempt to prove a credential, described once and passed to
/// [`super::Lockout::check`] and then to `record_failure` or `record_success`.
/// Holds digests and the fingerprint, never the credential.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub(crate) tenant: TenantId,
    pub(crate) account: Option<String>,
    pub(crate) ip: Option<IpAddr>,
    pub(crate) account_key: Option<KeyDigest>,
    pub(crate) client_key: Option<KeyDigest>,
    pub(crate) fingerprint: Option<String>,
}

impl Attempt {
    /// Describes an attempt in `tenant` on `account` from `ip`, either of which
    /// may be unknown (nothing is counted for an unknown one). `keys` is `None`
    /// when lockout is off: the attempt is then only reported, without a
    /// fingerprint.
    pub(crate) fn new(
        keys: Option<&LockoutKeys>,
        tenant: &TenantId,
        account: Option<&str>,
        ip: Option<IpAddr>,
        credential: Option<&Secret>,
    ) -> Result<Self, LockoutError> {
        let account = account.map(normalise_account).transpose()?;
        let (account_key, client_key, fingerprint) = match keys {
            Some(keys) => (
                account
                    .as_deref()
                    .map(|a| keys.digest(ACCOUNT_KIND, tenant, a.as_bytes())),
                ip.map(|ip| keys.digest(CLIENT_KIND, tenant, &client_bytes(ip))),
                credential.map(|c| keys.fingerprint(c)),
            ),
            None => (None, None, None),
        };
        Ok(Self {
            tenant: tenant.clone(),
            account,
            ip,
            account_key,
            client_key,
            fingerprint,
        })
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The account as counted (normalised), when known.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// The client address as given, when known.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// The credential's fingerprint, when a credential was given and lockout is on.
    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }
}

/// NFKC, lowercase, trimmed; refused when empty, too long (as given or once
/// normalised: NFKC can expand a character up to 18) or holding control
/// characters.
pub(crate) fn normalise_account(raw: &str) -> Result<String, LockoutError> {
    if raw.len() > MAX_ACCOUNT_BYTES {
        return Err(LockoutError::InvalidAccount);
    }
    let normalised: String = raw.nfkc().collect::<String>().to_lowercase();
    let trimmed = normalised.trim();
    if trimmed.is_empty()
        || trimmed.len() > MAX_ACCOUNT_BYTES
        || trimmed.chars().any(char::is_control)
    {
        return Err(LockoutError::InvalidAccount);
    }
    Ok(trimmed.to_owned())
}

/// The bytes a client address is counted by: IPv4 whole, IPv6 by its /64.
pub(crate) fn client_bytes(ip: IpAddr) -> Vec<u8> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => [&[4u8][..], &v4.octets()].concat(),
        IpAddr::V6(v6) => [&[6u8][..], &v6.octets()[..8]].concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> LockoutKeys {
        LockoutKeys::derive_from(&Secret::new("x".repeat(32))).unwrap_or_else(|e| panic!("{e}"))
    }

    fn attempt(keys: &LockoutKeys, tenant: &str, account: &str, ip: &str) -> Attempt {
        let tenant = TenantId::parse(tenant).unwrap_or_else(|e| panic!("{e}"));
        let ip = ip.parse().ok();
        Attempt::new(Some(keys), &tenant, Some(account), ip, None).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn spellings_of_one_account_share_a_count_and_tenants_do_not() {
        let keys = keys();
        let base = attempt(&keys, "t1", "alice@example.com", "10.0.0.1");
        for same in [" Alice@Example.COM ", "ＡＬＩＣＥ@example.com"] {
            let other = attempt(&keys, "t1", same, "10.0.0.1");
            assert_eq!(other.account_key, base.account_key, "{same}");
            assert_eq!(other.account(), Some("alice@example.com"));
        }
        let other_tenant = attempt(&keys, "t2", "alice@example.com", "10.0.0.1");
        assert_ne!(other_tenant.account_key, base.account_key);
        assert_ne!(other_tenant.client_key, base.client_key);
        // An account and a client with the same text are different keys.
        let as_account = attempt(&keys, "t1", "10.0.0.1", "10.0.0.1");
        assert_ne!(as_account.account_key, as_account.client_key);
    }

    #[test]
    fn an_ipv6_slash_64_is_one_client_and_mapped_ipv4_is_the_ipv4_address() {
        let keys = keys();
        let a = attempt(&keys, "t", "u", "2001:db8:1:2::1");
        let b = attempt(&keys, "t", "u", "2001:db8:1:2:ffff:ffff:ffff:ffff");
        let c = attempt(&keys, "t", "u", "2001:db8:1:3::1");
        assert_eq!(a.client_key, b.client_key);
        assert_ne!(a.client_key, c.client_key);
        let v4 = attempt(&keys, "t", "u", "192.0.2.7");
        let mapped = attempt(&keys, "t", "u", "::ffff:192.0.2.7");
        assert_eq!(v4.client_key, mapped.client_key);
    }

    #[test]
    fn empty_or_oversized_accounts_are_refused() {
        let expands = "\u{fdfa}".repeat(MAX_ACCOUNT_BYTES / 3);
        for bad in [
            "",
            "   ",
            "\u{3000}",
            "alice\u{0}",
            "al\nice",
            &"a".repeat(MAX_ACCOUNT_BYTES + 1),
            &expands,
        ] {
            assert_eq!(normalise_account(bad), Err(LockoutError::InvalidAccount));
        }
        assert!(normalise_account(&"a".repeat(MAX_ACCOUNT_BYTES)).is_ok());
    }

    #[test]
    fn fingerprints_are_keyed_stable_and_never_the_password() {
        let keys = keys();
        let password = Secret::new("correct horse battery staple");
        let fp = keys.fingerprint(&password);
        assert_eq!(fp.len(), 32);
        assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(fp, keys.fingerprint(&password));
        assert_ne!(fp, keys.fingerprint(&Secret::new("another password")));
        // Another deployment secret, another fingerprint; random keys differ too.
        let other = LockoutKeys::derive_from(&Secret::new("y".repeat(32)))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(fp, other.fingerprint(&password));
        let random = LockoutKeys::random().unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(fp, random.fingerprint(&password));
        assert!(!format!("{keys:?}").contains("x"));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            LockoutKeys::derive_from(&Secret::new("too short")),
            Err(LockoutError::Key(_))
        ));
    }
}
