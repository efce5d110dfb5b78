//! What a password must look like and how hard it is hashed: NIST SP 800-63B length
//! rules on NFKC-normalised text, and OWASP's argon2id parameters.

use super::PasswordError;
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

/// NIST SP 800-63B: passwords chosen by the subscriber must be at least 8 characters.
pub const NIST_MIN_CHARS: usize = 8;
/// NIST SP 800-63B: verifiers must allow at least 64 characters.
pub const NIST_MAX_CHARS_FLOOR: usize = 64;
/// The longest maximum a policy may set. Argon2 pre-hashes the password, so length
/// barely changes its cost, but normalisation and copies do scale with it.
pub const MAX_CHARS_CEILING: usize = 1024;
/// Largest argon2 memory cost a policy may set or a stored hash may ask for (1 GiB).
pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
/// Largest argon2 iteration count a policy may set or a stored hash may ask for.
pub const MAX_ITERATIONS: u32 = 32;
/// Largest argon2 parallelism a policy may set or a stored hash may ask for.
pub const MAX_PARALLELISM: u32 = 16;
/// OWASP's weakest acceptable argon2id trade-off is m=7168 KiB with t=5; its
/// equivalent configurations all have memory × iterations of at least ~35,840.
const MIN_MEMORY_KIB: u32 = 7 * 1024;
const MIN_MEMORY_TIMES_ITERATIONS: u64 = 7 * 1024 * 5;

/// Argon2id cost parameters, as stored in a PHC string (`m=..,t=..,p=..`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Argon2Params {
    /// Memory in KiB (`m`).
    pub memory_kib: u32,
    /// Passes over memory (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
}

impl Argon2Params {
    /// OWASP Password Storage Cheat Sheet (2024/2025): argon2id, m=19456 KiB (19 MiB),
    /// t=2, p=1. About 20-40 ms per hash on one current server core.
    pub const OWASP: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    fn validate(&self) -> Result<(), PasswordError> {
        if self.memory_kib < MIN_MEMORY_KIB
            || u64::from(self.memory_kib) * u64::from(self.iterations) < MIN_MEMORY_TIMES_ITERATIONS
        {
            return Err(PasswordError::InvalidPolicy(
                "argon2 parameters are weaker than OWASP's minimum (m >= 7168 KiB, m*t >= 35840)",
            ));
        }
        if !self.within_ceilings() {
            return Err(PasswordError::InvalidPolicy(
                "argon2 parameters exceed m <= 1 GiB, t <= 32, p <= 16",
            ));
        }
        // argon2 needs at least 8 KiB of memory per lane.
        if self.parallelism == 0 || self.memory_kib < 8 * self.parallelism {
            return Err(PasswordError::InvalidPolicy(
                "argon2 parallelism must be 1..=16 with at least 8 KiB per lane",
            ));
        }
        Ok(())
    }

    /// Whether these parameters are ones this service will compute at all. Also applied
    /// to stored hashes, so an imported row cannot ask for hours of work.
    pub(super) fn within_ceilings(&self) -> bool {
        self.memory_kib <= MAX_MEMORY_KIB
            && self.iterations <= MAX_ITERATIONS
            && self.parallelism <= MAX_PARALLELISM
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::OWASP
    }
}

/// The rules for passwords and the cost of hashing them. Loaded from configuration;
/// checked by [`super::Passwords::new`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Fewest characters (code points after NFKC) a new password may have: 8..=64.
    pub min_chars: usize,
    /// Most characters a password may have: 64..=1024. Also enforced on verification,
    /// so lowering it locks out passwords set under a higher limit.
    pub max_chars: usize,
    /// Cost of new hashes; stored hashes with other parameters are re-hashed on the
    /// next successful verification.
    pub argon2: Argon2Params,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: NIST_MIN_CHARS,
            max_chars: NIST_MAX_CHARS_FLOOR,
            argon2: Argon2Params::OWASP,
        }
    }
}

/// Why a password is being prepared: only new passwords must meet the minimum length,
/// so raising the minimum never locks anyone out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    NewPassword,
    Login,
}

impl PasswordPolicy {
    /// Checks the policy against NIST's length rules and OWASP's cost floor.
    pub fn validate(&self) -> Result<(), PasswordError> {
        if !(NIST_MIN_CHARS..=NIST_MAX_CHARS_FLOOR).contains(&self.min_chars) {
            return Err(PasswordError::InvalidPolicy("min_chars must be 8..=64"));
        }
        if !(NIST_MAX_CHARS_FLOOR..=MAX_CHARS_CEILING).contains(&self.max_chars) {
            return Err(PasswordError::InvalidPolicy("max_chars must be 64..=1024"));
        }
        self.argon2.validate()
    }

    /// NFKC-normalises the password and checks its length in code points.
    ///
    /// NIST SP 800-63B asks verifiers to normalise (NFKC or NFKD) before hashing, so the
    /// same password typed on different keyboards or platforms hashes the same way.
    /// Input over 4 bytes per allowed character is refused before normalising, which
    /// bounds that work too (no code point takes more than 4 bytes).
    pub(super) fn prepare(
        &self,
        password: &str,
        purpose: Purpose,
    ) -> Result<Zeroizing<String>, PasswordError> {
        let too_long = PasswordError::TooLong {
            max: self.max_chars,
        };
        if password.len() > self.max_chars.saturating_mul(4) {
            return Err(too_long);
        }
        let normalised = Zeroizing::new(password.nfkc().collect::<String>());
        let chars = normalised.chars().count();
        if chars > self.max_chars {
            return Err(too_long);
        }
        if purpose == Purpose::NewPassword && chars < self.min_chars {
            return Err(PasswordError::TooShort {
                min: self.min_chars,
            });
        }
        Ok(normalised)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_nist_lengths_and_owasp_argon2id() {
        let policy = PasswordPolicy::default();
        assert_eq!((policy.min_chars, policy.max_chars), (8, 64));
        assert_eq!(
            policy.argon2,
            Argon2Params {
                memory_kib: 19456,
                iterations: 2,
                parallelism: 1
            }
        );
        assert_eq!(policy.validate(), Ok(()));
    }

    #[test]
    fn rejects_policies_outside_nist_and_owasp_bounds() {
        let base = PasswordPolicy::default();
        let cases = [
            PasswordPolicy {
                min_chars: 6,
                ..base.clone()
            },
            PasswordPolicy {
                min_chars: 65,
                ..base.clone()
            },
            PasswordPolicy {
                max_chars: 32,
                ..base.clone()
            },
            PasswordPolicy {
                max_chars: 4096,
                ..base.clone()
            },
            PasswordPolicy {
                argon2: Argon2Params {
                    memory_kib: 4096,
                    iterations: 10,
                    parallelism: 1,
                },
                ..base.clone()
            },
            PasswordPolicy {
                argon2: Argon2Params {
                    memory_kib: 19456,
                    iterations: 1,
                    parallelism: 1,
                },
                ..base.clone()
            },
            PasswordPolicy {
                argon2: Argon2Params {
                    memory_kib: 19456,
                    iterations: 2,
                    parallelism: 0,
                },
                ..base.clone()
            },
            PasswordPolicy {
                argon2: Argon2Params {
                    memory_kib: 2 * MAX_MEMORY_KIB,
                    iterations: 2,
                    parallelism: 1,
                },
                ..base.clone()
            },
        ];
        for policy in cases {
            assert!(
                matches!(policy.validate(), Err(PasswordError::InvalidPolicy(_))),
                "{policy:?} should be refused"
            );
        }
    }

    #[test]
    fn accepts_owasp_equivalent_configurations() {
        for (m, t) in [(47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5)] {
            let policy = PasswordPolicy {
                argon2: Argon2Params {
                    memory_kib: m,
                    iterations: t,
                    parallelism: 1,
                },
                ..PasswordPolicy::default()
            };
            assert_eq!(policy.validate(), Ok(()), "m={m} t={t}");
        }
    }

    #[test]
    fn counts_code_points_after_nfkc_not_bytes() {
        let policy = PasswordPolicy::default();
        // Eight 3-byte CJK characters: 24 bytes but 8 characters, so long enough.
        assert!(
            policy
                .prepare("密码密码密码密码", Purpose::NewPassword)
                .is_ok()
        );
        // "ﬁ" (U+FB01) becomes "fi" under NFKC: 4 ligatures are 8 characters.
        let prepared = policy.prepare("ﬁﬁﬁﬁ", Purpose::NewPassword);
        assert_eq!(prepared.as_deref().map(String::as_str), Ok("fifififi"));
        // 7 emoji (4 bytes each) are too short.
        assert_eq!(
            policy
                .prepare("🔑🔑🔑🔑🔑🔑🔑", Purpose::NewPassword)
                .map(|_| ()),
            Err(PasswordError::TooShort { min: 8 })
        );
    }

    #[test]
    fn composes_so_precomposed_and_decomposed_input_match() {
        let policy = PasswordPolicy::default();
        let precomposed = policy.prepare("caf\u{e9}-passw0rd", Purpose::NewPassword);
        let decomposed = policy.prepare("cafe\u{301}-passw0rd", Purpose::NewPassword);
        assert_eq!(precomposed, decomposed);
    }

    #[test]
    fn minimum_applies_to_new_passwords_only_maximum_to_both() {
        let policy = PasswordPolicy::default();
        assert!(policy.prepare("short", Purpose::Login).is_ok());
        let long = "a".repeat(65);
        for purpose in [Purpose::Login, Purpose::NewPassword] {
            assert_eq!(
                policy.prepare(&long, purpose).map(|_| ()),
                Err(PasswordError::TooLong { max: 64 })
            );
        }
        assert!(
            policy
                .prepare(&"a".repeat(64), Purpose::NewPassword)
                .is_ok()
        );
    }

    #[test]
    fn refuses_huge_input_before_normalising_it() {
        let policy = PasswordPolicy::default();
        let huge = "x".repeat(1_000_000);
        assert_eq!(
            policy.prepare(&huge, Purpose::Login).map(|_| ()),
            Err(PasswordError::TooLong { max: 64 })
        );
    }
}
