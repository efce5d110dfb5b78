//! Recognising a stored password hash: our argon2 PHC strings, or bcrypt hashes
//! imported from another application (NestJS apps commonly use `bcrypt`/`bcryptjs`).

use super::PasswordError;
use super::policy::Argon2Params;
use argon2::{Algorithm, PasswordHash, Version};

/// Costliest bcrypt hash this service will verify: cost 16 is about 5 s on one core.
/// Imported hashes normally use 10-12; a higher one would hold a hashing slot for
/// minutes (each step doubles the work).
pub(super) const MAX_BCRYPT_COST: u32 = 16;
/// bcrypt itself refuses costs below 4.
const MIN_BCRYPT_COST: u32 = 4;

/// A stored hash, parsed enough to know how to verify it.
pub(super) enum StoredHash {
    /// An argon2 PHC string (`$argon2id$v=19$m=..,t=..,p=..$salt$hash`).
    Argon2 {
        // Boxed: a parsed PHC string is a few hundred bytes of inline buffers.
        hash: Box<PasswordHash>,
        algorithm: Algorithm,
        version: Version,
        params: Argon2Params,
    },
    /// A bcrypt hash in modular crypt format (`$2b$12$` + 53 characters).
    Bcrypt,
}

impl StoredHash {
    /// Parses `stored`. A string naming a scheme we verify but not parsing as it is
    /// [`PasswordError::MalformedHash`]; any other scheme is
    /// [`PasswordError::UnsupportedHash`]. Neither is ever reported as a mismatch:
    /// a corrupt row must be noticed, not silently lock its user out.
    pub(super) fn parse(stored: &str) -> Result<Self, PasswordError> {
        if stored.starts_with("$argon2") {
            return parse_argon2(stored);
        }
        if ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|p| stored.starts_with(p))
        {
            return parse_bcrypt(stored);
        }
        if stored.starts_with('$') && stored.len() > 1 {
            // `$2x$` (crypt_blowfish's bug-compatible mode), scrypt, PBKDF2, sha512-crypt...
            return Err(PasswordError::UnsupportedHash);
        }
        Err(PasswordError::MalformedHash)
    }
}

fn parse_argon2(stored: &str) -> Result<StoredHash, PasswordError> {
    let hash = PasswordHash::new(stored).map_err(|_| PasswordError::MalformedHash)?;
    let algorithm =
        Algorithm::try_from(hash.algorithm.as_str()).map_err(|_| PasswordError::UnsupportedHash)?;
    // A PHC string without `v=` is version 0x10, the original argon2.
    let version = match hash.version {
        None => Version::V0x10,
        Some(v) => Version::try_from(v).map_err(|_| PasswordError::UnsupportedHash)?,
    };
    let parsed = argon2::Params::try_from(&hash).map_err(|_| PasswordError::MalformedHash)?;
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(PasswordError::MalformedHash);
    }
    let params = Argon2Params {
        memory_kib: parsed.m_cost(),
        iterations: parsed.t_cost(),
        parallelism: parsed.p_cost(),
    };
    if !params.within_ceilings() {
        return Err(PasswordError::UnsupportedHash);
    }
    Ok(StoredHash::Argon2 {
        hash: Box::new(hash),
        algorithm,
        version,
        params,
    })
}

fn parse_bcrypt(stored: &str) -> Result<StoredHash, PasswordError> {
    let parts: bcrypt::HashParts = stored.parse().map_err(|_| PasswordError::MalformedHash)?;
    if !(MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&parts.get_cost()) {
        return Err(PasswordError::UnsupportedHash);
    }
    Ok(StoredHash::Bcrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(stored: &str) -> Result<&'static str, PasswordError> {
        StoredHash::parse(stored).map(|h| match h {
            StoredHash::Argon2 { .. } => "argon2",
            StoredHash::Bcrypt => "bcrypt",
        })
    }

    #[test]
    fn recognises_argon2_and_bcrypt_variants() {
        assert_eq!(
            kind(
                "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY"
            ),
            Ok("argon2")
        );
        for prefix in ["2a", "2b", "2y"] {
            let stored =
                format!("${prefix}$10$......................21jzCB1r6pN6rp5O2Ev0ejjTAboskKm");
            assert_eq!(kind(&stored), Ok("bcrypt"), "{prefix}");
        }
    }

    #[test]
    fn unknown_schemes_are_unsupported_not_mismatches() {
        for stored in [
            "$2x$10$......................21jzCB1r6pN6rp5O2Ev0ejjTAboskKm",
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
            "$pbkdf2-sha256$29000$N2YMIWQsBWBMae09x1jrPQ$5Xm8Z7qRR7y0Wt0y4lG5HVBM4I9RlCIVBO8RV6kh/6k",
            "$6$rounds=5000$salt$hash",
        ] {
            assert_eq!(
                kind(stored),
                Err(PasswordError::UnsupportedHash),
                "{stored}"
            );
        }
    }

    #[test]
    fn garbage_and_truncated_hashes_are_malformed() {
        for stored in [
            "",
            "$",
            "password123",
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ",
            "$argon2id$v=19$m=lots,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY",
            "$argon2id$$$$",
            "$2b$10$tooshort",
            "$2b$xx$......................21jzCB1r6pN6rp5O2Ev0ejjTAboskKm",
        ] {
            assert_eq!(
                kind(stored),
                Err(PasswordError::MalformedHash),
                "{stored:?}"
            );
        }
    }

    #[test]
    fn refuses_stored_costs_that_would_hold_a_slot_for_minutes() {
        assert_eq!(
            kind("$2b$20$......................21jzCB1r6pN6rp5O2Ev0ejjTAboskKm"),
            Err(PasswordError::UnsupportedHash)
        );
        assert_eq!(
            kind(
                "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY"
            ),
            Err(PasswordError::UnsupportedHash)
        );
    }
}
