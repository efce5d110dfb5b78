//! Password hashing: argon2id with OWASP's parameters, NIST SP 800-63B length rules,
//! imported bcrypt hashes, transparent re-hashing, and a bounded hashing pool.
//!
//! - **New hashes** are argon2id v1.3 PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$..`)
//!   with a 16-byte random salt and a 32-byte tag. Cost comes from [`PasswordPolicy`].
//! - **Verification** accepts our argon2 PHC strings and bcrypt hashes (`$2a$`, `$2b$`,
//!   `$2y$`) imported from other applications. When a password matches a hash that is
//!   not what the policy would produce today (bcrypt, argon2i/d, other parameters),
//!   [`Verified::rehash`] carries a fresh argon2id hash for the caller to store, so
//!   users migrate on their next login without ever resetting.
//! - **Normalisation**: NIST asks for NFKC or NFKD before hashing; we NFKC-normalise
//!   (crate `unicode-normalization`, the rust-lang-owned implementation used by `url`
//!   and `idna`) and count length in code points. Imported bcrypt hashes are checked
//!   against the password as typed, since that is what their application hashed.
//! - **Not on async threads**: every hash runs on tokio's blocking pool behind a
//!   semaphore of `max_concurrent` slots (default: one less than the CPUs, see
//!   [`Passwords::default_concurrency`]), so a login flood queues instead of starving
//!   other requests, and can be shed with [`PasswordError::Busy`] (see
//!   [`Passwords::with_wait_timeout`]).
//! - **Secrets**: passwords arrive as [`Secret`] (redacted `Debug`, zeroed on drop);
//!   our normalised copies are `Zeroizing`. Hash comparison is constant time inside
//!   the `argon2` and `bcrypt` crates (`subtle`); nothing here compares hash bytes.

mod error;
mod hashing;
mod policy;
mod slots;
mod stored_hash;

pub use error::PasswordError;
pub use policy::{
    Argon2Params, MAX_CHARS_CEILING, MAX_ITERATIONS, MAX_MEMORY_KIB, MAX_PARALLELISM,
    NIST_MAX_CHARS_FLOOR, NIST_MIN_CHARS, PasswordPolicy,
};
pub use slots::HashingLoad;

use palisade_core::Secret;
use policy::Purpose;
use slots::HashingSlots;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A password hash in PHC string format, ready to store.
///
/// `Debug` shows only the scheme and parameters: a full hash is enough to start an
/// offline guessing attack, so it should not end up in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct PhcString(String);

impl PhcString {
    /// The string to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The string to store, by value.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for PhcString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `$id$v=..$params$salt$hash`: keep everything before the salt.
        let visible = self
            .0
            .match_indices('$')
            .nth(3)
            .map_or("", |(end, _)| &self.0[..end]);
        write!(f, "PhcString({visible:?}…)")
    }
}

impl From<PhcString> for String {
    fn from(hash: PhcString) -> Self {
        hash.0
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Verified {
    /// Whether the password matches.
    pub ok: bool,
    /// Set only when `ok`: a fresh argon2id hash under the current policy, to store in
    /// place of the old one (which was bcrypt, another argon2 variant or other costs).
    pub rehash: Option<PhcString>,
}

/// Hashes and verifies passwords under one [`PasswordPolicy`], on a bounded number of
/// low-priority hashing threads. Cheap to clone; clones share the slots.
#[derive(Debug, Clone)]
pub struct Passwords {
    policy: Arc<PasswordPolicy>,
    slots: HashingSlots,
    /// A well-formed argon2id hash under the policy that matches no password, verified
    /// against when the account does not exist (see [`Passwords::verify_unknown_user`]).
    decoy: Arc<str>,
}

impl Passwords {
    /// A hasher for `policy` running at most `max_concurrent` hashes at once.
    ///
    /// Each running hash holds `policy.argon2.memory_kib` of memory, so the peak is
    /// about `max_concurrent × 19 MiB` with the defaults.
    pub fn new(policy: PasswordPolicy, max_concurrent: usize) -> Result<Self, PasswordError> {
        policy.validate()?;
        if max_concurrent == 0 {
            return Err(PasswordError::InvalidPolicy(
                "max_concurrent hashes must be at least 1",
            ));
        }
        let Argon2Params {
            memory_kib,
            iterations,
            parallelism,
        } = policy.argon2;
        // All-zero salt (16 bytes) and tag (32 bytes), base64 without padding.
        let decoy = format!(
            "$argon2id$v=19$m={memory_kib},t={iterations},p={parallelism}${}${}",
            "A".repeat(22),
            "A".repeat(43)
        );
        Ok(Self {
            policy: Arc::new(policy),
            slots: HashingSlots::new(max_concurrent),
            decoy: decoy.into(),
        })
    }

    /// The default slot count: one less than the CPUs the process may use (at least 1),
    /// so one core always stays free for the async workers. With one slot per core, the
    /// in-process probe in `benches/passwords.rs` saw the runtime's p99 answer time grow
    /// 8-37× on 2 cores while 50 hashes ran; with one core left free it stayed within
    /// 1.6× of unloaded.
    pub fn default_concurrency() -> usize {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .saturating_sub(1)
            .max(1)
    }

    /// Answer [`PasswordError::Busy`] instead of waiting longer than `limit` for a slot.
    pub fn with_wait_timeout(mut self, limit: Duration) -> Self {
        self.slots.wait_timeout = Some(limit);
        self
    }

    /// Answer [`PasswordError::Busy`] at once when `limit` calls are already waiting.
    pub fn with_max_waiting(mut self, limit: usize) -> Self {
        self.slots.max_waiting = Some(limit);
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    /// How many hashes are running and waiting now.
    pub fn load(&self) -> HashingLoad {
        self.slots.load()
    }

    /// Checks a would-be new password against the length rules without hashing it.
    pub fn check_new(&self, password: &Secret) -> Result<(), PasswordError> {
        self.policy
            .prepare(password.expose(), Purpose::NewPassword)
            .map(drop)
    }

    /// Hashes a new password (enforcing the length rules) into an argon2id PHC string.
    pub async fn hash(&self, password: &Secret) -> Result<PhcString, PasswordError> {
        // Length is checked before queueing, so refusals never wait for a slot.
        let normalised = self
            .policy
            .prepare(password.expose(), Purpose::NewPassword)?;
        let params = self.policy.argon2;
        self.slots
            .run(move || hashing::hash_argon2id(&normalised, params))
            .await
    }

    /// Checks `password` against a stored argon2 or bcrypt hash.
    ///
    /// A wrong password is `Ok` with `ok: false`. A stored hash that cannot be used is
    /// an error ([`PasswordError::MalformedHash`], [`PasswordError::UnsupportedHash`]),
    /// never a silent mismatch, so corrupt rows are noticed. Passwords longer than the
    /// policy's maximum are refused without hashing; the minimum is not applied, so a
    /// raised minimum never locks out existing users.
    pub async fn verify(&self, password: &Secret, stored: &str) -> Result<Verified, PasswordError> {
        let normalised = self.policy.prepare(password.expose(), Purpose::Login)?;
        let raw = password.clone();
        let stored = stored.to_owned();
        let policy = Arc::clone(&self.policy);
        self.slots
            .run(move || hashing::verify(raw.expose(), &normalised, &stored, &policy))
            .await
    }

    /// Spends the same work as [`Passwords::verify`] against a hash under the current
    /// policy, for logins naming an account that does not exist: answering those
    /// faster would tell an attacker which accounts exist.
    pub async fn verify_unknown_user(&self, password: &Secret) -> Result<(), PasswordError> {
        self.verify(password, &self.decoy).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phc_debug_hides_salt_and_tag() {
        let hash = PhcString("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$dGFndGFndGFn".into());
        assert_eq!(
            format!("{hash:?}"),
            "PhcString(\"$argon2id$v=19$m=19456,t=2,p=1\"…)"
        );
    }

    #[test]
    fn default_concurrency_leaves_a_core_for_the_async_workers() {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let slots = Passwords::default_concurrency();
        assert!(slots >= 1);
        assert!(slots < cpus || cpus == 1, "{slots} slots on {cpus} cpus");
    }

    #[test]
    fn refuses_zero_slots() {
        assert!(matches!(
            Passwords::new(PasswordPolicy::default(), 0),
            Err(PasswordError::InvalidPolicy(_))
        ));
    }

    #[tokio::test]
    async fn unknown_user_check_does_the_work_and_never_matches() {
        let passwords =
            Passwords::new(PasswordPolicy::default(), 1).unwrap_or_else(|e| panic!("{e}"));
        let started = std::time::Instant::now();
        let outcome = passwords
            .verify(&Secret::new("any password at all"), &passwords.decoy)
            .await;
        assert_eq!(
            outcome,
            Ok(Verified {
                ok: false,
                rehash: None
            })
        );
        // A real argon2 run, not an early parse failure.
        assert!(started.elapsed() >= Duration::from_millis(2));
        assert_eq!(
            passwords.verify_unknown_user(&Secret::new("x")).await,
            Ok(())
        );
    }
}
