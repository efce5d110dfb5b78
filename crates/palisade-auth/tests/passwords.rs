//! Password hashing as a caller sees it: argon2id PHC strings under the policy,
//! verification of our own and imported bcrypt hashes with re-hash, NIST length rules,
//! typed errors for unusable stored hashes, and a hashing pool that neither exceeds
//! its slot count nor starves the async runtime.

use argon2::{Algorithm, Argon2, PasswordHasher, Version};
use palisade_auth::passwords::{
    Argon2Params, PasswordError, PasswordPolicy, Passwords, PhcString, Verified,
};
use palisade_core::Secret;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn passwords() -> Passwords {
    passwords_with(PasswordPolicy::default(), 2)
}

fn passwords_with(policy: PasswordPolicy, slots: usize) -> Passwords {
    Passwords::new(policy, slots).unwrap_or_else(|e| panic!("valid policy: {e}"))
}

fn secret(s: &str) -> Secret {
    Secret::new(s)
}

async fn hash(p: &Passwords, password: &str) -> PhcString {
    p.hash(&secret(password))
        .await
        .unwrap_or_else(|e| panic!("hashing failed: {e}"))
}

async fn verify(p: &Passwords, password: &str, stored: &str) -> Verified {
    p.verify(&secret(password), stored)
        .await
        .unwrap_or_else(|e| panic!("verify of {stored:?} failed: {e}"))
}

/// A hash made by the bare `argon2` crate, as another deployment or an older policy would.
fn foreign_argon2(algorithm: Algorithm, m: u32, t: u32, p: u32, password: &str) -> String {
    let params = argon2::Params::new(m, t, p, Some(32)).unwrap_or_else(|e| panic!("{e}"));
    Argon2::new(algorithm, Version::V0x13, params)
        .hash_password_with_salt(password.as_bytes(), b"sixteen byte sal")
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string()
}

#[tokio::test]
async fn hashes_to_argon2id_phc_with_the_policys_parameters() {
    let p = passwords();
    let stored = hash(&p, "correct horse battery staple").await;
    assert!(
        stored
            .as_str()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored:?}"
    );
    let custom = passwords_with(
        PasswordPolicy {
            argon2: Argon2Params {
                memory_kib: 12288,
                iterations: 3,
                parallelism: 1,
            },
            ..PasswordPolicy::default()
        },
        1,
    );
    let stored = hash(&custom, "correct horse battery staple").await;
    assert!(
        stored
            .as_str()
            .starts_with("$argon2id$v=19$m=12288,t=3,p=1$")
    );
}

#[tokio::test]
async fn the_same_password_hashes_differently_each_time() {
    let p = passwords();
    let a = hash(&p, "correct horse battery staple").await;
    let b = hash(&p, "correct horse battery staple").await;
    assert_ne!(a, b, "salts must be random");
}

#[tokio::test]
async fn verifies_the_right_password_and_rejects_a_wrong_one() {
    let p = passwords();
    let stored = hash(&p, "correct horse battery staple").await;
    assert_eq!(
        verify(&p, "correct horse battery staple", stored.as_str()).await,
        Verified {
            ok: true,
            rehash: None
        }
    );
    for wrong in [
        "correct horse battery stapl",
        "Correct horse battery staple",
        "",
    ] {
        assert_eq!(
            verify(&p, wrong, stored.as_str()).await,
            Verified {
                ok: false,
                rehash: None
            },
            "{wrong:?}"
        );
    }
}

#[tokio::test]
async fn unicode_spellings_that_nfkc_unifies_verify_alike() {
    let p = passwords();
    // Precomposed "é" and "e" + combining acute; full-width digits and ASCII digits.
    let stored = hash(&p, "caf\u{e9} au lait １２３").await;
    assert!(
        verify(&p, "cafe\u{301} au lait 123", stored.as_str())
            .await
            .ok
    );
}

#[tokio::test]
async fn offers_a_rehash_when_stored_argon2_parameters_are_weaker() {
    let p = passwords();
    let weak = foreign_argon2(
        Algorithm::Argon2id,
        4096,
        1,
        1,
        "correct horse battery staple",
    );
    let outcome = verify(&p, "correct horse battery staple", &weak).await;
    assert!(outcome.ok);
    let rehash = outcome
        .rehash
        .unwrap_or_else(|| panic!("weaker parameters must be re-hashed"));
    assert!(
        rehash
            .as_str()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    assert_eq!(
        verify(&p, "correct horse battery staple", rehash.as_str()).await,
        Verified {
            ok: true,
            rehash: None
        }
    );
}

#[tokio::test]
async fn offers_a_rehash_for_other_argon2_variants_and_changed_parameters() {
    let p = passwords();
    let password = "correct horse battery staple";
    for stored in [
        foreign_argon2(Algorithm::Argon2i, 19456, 2, 1, password),
        foreign_argon2(Algorithm::Argon2d, 19456, 2, 1, password),
        // Stronger than the policy: still re-hashed, so an operator who lowers costs
        // for latency sees old expensive hashes converge too.
        foreign_argon2(Algorithm::Argon2id, 47104, 2, 1, password),
    ] {
        let outcome = verify(&p, password, &stored).await;
        assert!(outcome.ok, "{stored}");
        assert!(outcome.rehash.is_some(), "{stored}");
    }
    let current = foreign_argon2(Algorithm::Argon2id, 19456, 2, 1, password);
    assert_eq!(
        verify(&p, password, &current).await,
        Verified {
            ok: true,
            rehash: None
        }
    );
}

#[tokio::test]
async fn never_offers_a_rehash_for_a_wrong_password() {
    let p = passwords();
    let weak = foreign_argon2(
        Algorithm::Argon2id,
        4096,
        1,
        1,
        "correct horse battery staple",
    );
    let bcrypt = bcrypt::hash("correct horse battery staple", 4).unwrap_or_else(|e| panic!("{e}"));
    for stored in [weak, bcrypt] {
        assert_eq!(
            verify(&p, "tr0ub4dor&3", &stored).await,
            Verified {
                ok: false,
                rehash: None
            }
        );
    }
}

#[tokio::test]
async fn verifies_bcrypt_hashes_of_every_prefix_and_migrates_them_to_argon2id() {
    let p = passwords();
    let password = "nestjs-user-password";
    let parts = bcrypt::hash_with_result(password, 10).unwrap_or_else(|e| panic!("{e}"));
    for version in [
        bcrypt::Version::TwoA,
        bcrypt::Version::TwoB,
        bcrypt::Version::TwoY,
    ] {
        let stored = parts.format_for_version(version);
        let outcome = verify(&p, password, &stored).await;
        assert!(outcome.ok, "{stored}");
        let rehash = outcome
            .rehash
            .unwrap_or_else(|| panic!("bcrypt must be re-hashed: {stored}"));
        assert!(
            rehash
                .as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
        assert_eq!(
            verify(&p, password, rehash.as_str()).await,
            Verified {
                ok: true,
                rehash: None
            }
        );
        assert!(!verify(&p, "nestjs-user-passw0rd", &stored).await.ok);
    }
}

#[tokio::test]
async fn verifies_published_bcrypt_vectors() {
    // OpenBSD / Solar Designer's crypt_blowfish test vectors (also checked against
    // glibc's libxcrypt), and a hash made by node's `bcrypt` from the bcrypt crate's
    // tests. The 96-character one shows bcrypt's 72-byte truncation is honoured.
    let vectors = [
        (
            "U*U",
            "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
        ),
        (
            "U*U*",
            "$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK",
        ),
        (
            "U*U*U",
            "$2a$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a",
        ),
        (
            "",
            "$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy",
        ),
        (
            "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789chars after 72 are ignored",
            "$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui",
        ),
        (
            "correctbatteryhorsestapler",
            "$2a$04$n4Uy0eSnMfvnESYL.bLwuuj0U/ETSsoTpRT9GVk5bektyVVa5xnIi",
        ),
    ];
    let p = passwords_with(
        PasswordPolicy {
            max_chars: 128,
            ..PasswordPolicy::default()
        },
        2,
    );
    for (password, stored) in vectors {
        let outcome = verify(&p, password, stored).await;
        assert!(outcome.ok, "{stored}");
        assert!(outcome.rehash.is_some(), "{stored}");
        assert!(!verify(&p, "U*U*U*", stored).await.ok, "{stored}");
    }
}

#[tokio::test]
async fn enforces_nist_lengths_counted_in_code_points() {
    let p = passwords();
    assert_eq!(
        p.hash(&secret("1234567")).await,
        Err(PasswordError::TooShort { min: 8 })
    );
    assert!(p.hash(&secret("12345678")).await.is_ok());
    // 8 four-byte emoji: 32 bytes, 8 characters.
    assert!(p.hash(&secret("🔐🔐🔐🔐🔐🔐🔐🔐")).await.is_ok());
    assert_eq!(
        p.check_new(&secret("🔐🔐🔐🔐🔐🔐🔐")),
        Err(PasswordError::TooShort { min: 8 })
    );
    // NIST: at least 64 characters must be accepted, spaces included.
    let sixty_four = "all work and no play makes jack a dull boy ".repeat(2)[..64].to_string();
    assert_eq!(sixty_four.chars().count(), 64);
    assert!(p.hash(&secret(&sixty_four)).await.is_ok());
    let too_long = format!("{sixty_four}x");
    assert_eq!(
        p.hash(&secret(&too_long)).await,
        Err(PasswordError::TooLong { max: 64 })
    );
    assert_eq!(
        p.verify(
            &secret(&too_long),
            "$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie"
        )
        .await,
        Err(PasswordError::TooLong { max: 64 })
    );
    // 64 three-byte characters are fine; the byte count is not the measure.
    assert!(p.hash(&secret(&"密".repeat(64))).await.is_ok());
    let longer = passwords_with(
        PasswordPolicy {
            min_chars: 12,
            max_chars: 256,
            ..PasswordPolicy::default()
        },
        1,
    );
    assert_eq!(
        longer.check_new(&secret("elevenchars")),
        Err(PasswordError::TooShort { min: 12 })
    );
    assert_eq!(longer.check_new(&secret(&"p".repeat(256))), Ok(()));
}

#[tokio::test]
async fn a_raised_minimum_never_locks_out_an_existing_password() {
    let old = passwords();
    let stored = hash(&old, "eightchr").await;
    let stricter = passwords_with(
        PasswordPolicy {
            min_chars: 12,
            ..PasswordPolicy::default()
        },
        1,
    );
    assert!(verify(&stricter, "eightchr", stored.as_str()).await.ok);
}

#[tokio::test]
async fn unusable_stored_hashes_are_typed_errors_not_mismatches() {
    let p = passwords();
    let cases = [
        ("", PasswordError::MalformedHash),
        ("plaintext-password", PasswordError::MalformedHash),
        (
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ",
            PasswordError::MalformedHash,
        ),
        (
            "$argon2id$v=19$m=19456,t=2,p=1$!!!!$!!!!",
            PasswordError::MalformedHash,
        ),
        ("$2b$10$short", PasswordError::MalformedHash),
        (
            "$2x$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            PasswordError::UnsupportedHash,
        ),
        (
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
            PasswordError::UnsupportedHash,
        ),
        (
            "$argon2x$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY",
            PasswordError::UnsupportedHash,
        ),
        (
            "$2b$31$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            PasswordError::UnsupportedHash,
        ),
    ];
    for (stored, expected) in cases {
        assert_eq!(
            p.verify(&secret("whatever password"), stored).await,
            Err(expected.clone()),
            "{stored:?}"
        );
        assert!(!expected.code().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_runs_more_hashes_than_its_slots() {
    let p = passwords();
    let stored = hash(&p, "correct horse battery staple").await;
    let slots = passwords_with(PasswordPolicy::default(), 2);
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (slots, done) = (slots.clone(), done.clone());
        tokio::spawn(async move {
            let (mut most_running, mut most_waiting) = (0, 0);
            while !done.load(Ordering::Relaxed) {
                let load = slots.load();
                most_running = most_running.max(load.running);
                most_waiting = most_waiting.max(load.waiting);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (most_running, most_waiting)
        })
    };
    let mut verifications = Vec::new();
    for _ in 0..20 {
        let (slots, stored) = (slots.clone(), stored.clone());
        verifications.push(tokio::spawn(async move {
            slots
                .verify(
                    &Secret::new("correct horse battery staple"),
                    stored.as_str(),
                )
                .await
        }));
    }
    for v in verifications {
        let outcome = v.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(outcome.map(|v| v.ok), Ok(true));
    }
    done.store(true, Ordering::Relaxed);
    let (most_running, most_waiting) = sampler.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(most_running <= 2, "{most_running} ran at once");
    assert!(most_running >= 1);
    assert!(most_waiting >= 1, "20 calls on 2 slots must queue");
    assert_eq!(slots.load().running + slots.load().waiting, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn the_async_thread_keeps_ticking_while_hashes_run() {
    // One async thread only: if any hash ran on it, the ticker would stall for the
    // whole hash (tens of ms each, eight of them).
    let p = passwords_with(PasswordPolicy::default(), 2);
    // The bound scales with how fast this machine hashes right now (other builds may
    // share the cores): stalling would make the ticker late by about 8 hashes.
    let started = Instant::now();
    hash(&p, "warm-up password").await;
    let one_hash = started.elapsed();
    let hashing = {
        let p = p.clone();
        tokio::spawn(async move {
            let mut jobs = Vec::new();
            for i in 0..8 {
                let p = p.clone();
                jobs.push(tokio::spawn(async move {
                    p.hash(&Secret::new(format!("password number {i}"))).await
                }));
            }
            for job in jobs {
                assert!(matches!(job.await, Ok(Ok(_))));
            }
        })
    };
    let tick = Duration::from_millis(5);
    let mut worst = Duration::ZERO;
    let mut ticks = 0;
    while !hashing.is_finished() {
        let before = Instant::now();
        tokio::time::sleep(tick).await;
        worst = worst.max(before.elapsed().saturating_sub(tick));
        ticks += 1;
    }
    assert!(hashing.await.is_ok());
    // Generous: a stalled thread would be late by whole hashes, all eight in a row.
    let bound = one_hash * 3 + Duration::from_millis(20);
    assert!(
        worst < bound,
        "ticker was {worst:?} late (one hash takes {one_hash:?})"
    );
    assert!(
        ticks >= 4,
        "the hashes finished too fast to observe: {ticks} ticks"
    );
}

#[tokio::test]
async fn sheds_load_with_busy_instead_of_queueing_forever() {
    let p =
        passwords_with(PasswordPolicy::default(), 1).with_wait_timeout(Duration::from_millis(1));
    let mut jobs = Vec::new();
    for _ in 0..6 {
        let p = p.clone();
        jobs.push(tokio::spawn(async move {
            p.hash(&Secret::new("correct horse battery staple")).await
        }));
    }
    let mut busy = 0;
    for job in jobs {
        match job.await {
            Ok(Ok(_)) => {}
            Ok(Err(PasswordError::Busy)) => busy += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        busy >= 1,
        "6 hashes on 1 slot with a 1 ms wait must shed some"
    );
    assert_eq!(PasswordError::Busy.code(), "password_hashing_busy");
}

#[tokio::test]
async fn debug_output_never_contains_the_password_or_the_full_hash() {
    let p = passwords();
    let password = secret("correct horse battery staple");
    let stored = hash(&p, password.expose()).await;
    let outcome = verify(&p, password.expose(), stored.as_str()).await;
    let printed = format!("{password:?} {stored:?} {outcome:?} {p:?}");
    assert!(!printed.contains("horse"));
    let tag = stored.as_str().rsplit('$').next().unwrap_or_default();
    assert!(!printed.contains(tag), "{printed}");
}
