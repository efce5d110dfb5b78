//! The CPU-heavy part: argon2id hashing and verification of stored argon2 and bcrypt
//! hashes. Everything here is synchronous and runs on the hashing threads (low
//! priority, see `slots.rs`), never on an async worker.
//!
//! Constant time: the final comparison is done by the crates, argon2 through
//! `password_hash::phc::Output`'s `PartialEq` (`subtle::ConstantTimeEq`) and bcrypt
//! through `subtle::ConstantTimeEq` on the 23 hash bytes. Nothing here compares hash
//! bytes itself.

use super::policy::{Argon2Params, PasswordPolicy};
use super::stored_hash::StoredHash;
use super::{PasswordError, PhcString, Verified};
use argon2::{Algorithm, Argon2, PasswordHasher, PasswordVerifier, Version};

/// 16 random bytes, OWASP's and RFC 9106's recommended salt length.
const SALT_LEN: usize = 16;
/// 32-byte tag: argon2's default and RFC 9106's recommendation.
const OUTPUT_LEN: usize = 32;

/// Hashes an already normalised password with argon2id v1.3 and the given cost.
pub(super) fn hash_argon2id(
    normalised: &str,
    params: Argon2Params,
) -> Result<PhcString, PasswordError> {
    let mut salt = [0u8; SALT_LEN];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| PasswordError::Internal)?;
    let hasher = argon2id(params)?;
    let hash = hasher
        .hash_password_with_salt(normalised.as_bytes(), &salt)
        .map_err(|_| PasswordError::Internal)?;
    Ok(PhcString(hash.to_string()))
}

/// Verifies a password against a stored hash and, on success, re-hashes it when the
/// stored hash is not what the policy would produce today.
///
/// `raw` is the password as typed; `normalised` its NFKC form. Our argon2 hashes are
/// always of the normalised form. Imported bcrypt hashes are checked against the raw
/// form, because the application that made them hashed what the user typed; the
/// argon2id replacement is then of the normalised form, like every other hash.
pub(super) fn verify(
    raw: &str,
    normalised: &str,
    stored: &str,
    policy: &PasswordPolicy,
) -> Result<Verified, PasswordError> {
    let (ok, outdated) = match StoredHash::parse(stored)? {
        StoredHash::Argon2 {
            hash,
            algorithm,
            version,
            params,
        } => {
            let ok = match Argon2::new(algorithm, version, argon2::Params::DEFAULT)
                .verify_password(normalised.as_bytes(), &*hash)
            {
                Ok(()) => true,
                Err(argon2::password_hash::Error::PasswordInvalid) => false,
                // Parsed fine but the crate refused its parameters (say, a 4-byte salt).
                Err(_) => return Err(PasswordError::MalformedHash),
            };
            let current = algorithm == Algorithm::Argon2id
                && version == Version::V0x13
                && params == policy.argon2
                && hash.hash.as_ref().map(|o| o.len()) == Some(OUTPUT_LEN);
            (ok, !current)
        }
        // bcrypt truncates at 72 bytes; the importing app did the same, so the
        // truncating `verify` is the one that matches its hashes.
        StoredHash::Bcrypt => match bcrypt::verify(raw.as_bytes(), stored) {
            Ok(ok) => (ok, true),
            Err(_) => return Err(PasswordError::MalformedHash),
        },
    };
    let rehash = if ok && outdated {
        Some(hash_argon2id(normalised, policy.argon2)?)
    } else {
        None
    };
    Ok(Verified { ok, rehash })
}

fn argon2id(params: Argon2Params) -> Result<Argon2<'static>, PasswordError> {
    let params = argon2::Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(OUTPUT_LEN),
    )
    .map_err(|_| PasswordError::Internal)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}
