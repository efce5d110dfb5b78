//! Checks every remote KMS backend must pass, shared by `tests/aws_kms.rs`
//! and `tests/vault.rs` so the two backends are held to the same bar: each
//! file starts its own server and builds its own `Kms`, then calls these.

#![allow(dead_code)]

use palisade_core::resilience::{BreakerConfig, BreakerState, ResilienceConfig, RetryPolicy};
use palisade_crypto::{CryptoError, DekCacheSettings, Keyring, KeyringSettings, KeyringStore, Kms};
use palisade_testkit::{FaultProxy, eventually};
use std::time::Duration;

/// A keyring on `kms` with an in-memory store.
fn keyring(kms: Kms, store: KeyringStore, settings: KeyringSettings) -> Keyring {
    Keyring::new(kms, store, palisade_core::SystemClock::shared(), settings)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Wrapped data key `wrapped` of `name` v`version` (context `context`) no
/// longer opens once any byte at `flips` is flipped, or once cut to any
/// length in `cuts`: always [`CryptoError::DecryptFailed`].
pub async fn tampering_is_refused(
    kms: &Kms,
    (name, version): (&str, u32),
    wrapped: &[u8],
    context: &[u8],
    flips: impl IntoIterator<Item = usize>,
    cuts: &[usize],
) {
    for i in flips {
        let mut bad = wrapped.to_vec();
        bad[i] ^= 0x01;
        assert_eq!(
            kms.unwrap(name, version, &bad, context).await.err(),
            Some(CryptoError::DecryptFailed),
            "byte {i} of {}",
            wrapped.len()
        );
    }
    for &cut in cuts {
        assert_eq!(
            kms.unwrap(name, version, &wrapped[..cut], context)
                .await
                .err(),
            Some(CryptoError::DecryptFailed),
            "truncated to {cut}"
        );
    }
}

/// A keyring over `kms` encrypts, rotates, decrypts with a cold cache,
/// refuses the wrong associated data, and rewraps to the new version.
pub async fn keyring_end_to_end(kms: Kms) {
    let keyring = keyring(kms, KeyringStore::memory(), KeyringSettings::default());
    keyring
        .ensure_key("default")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let first = keyring
        .encrypt("default", b"card 4111", b"tenant=1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    keyring
        .rotate("default")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    keyring.clear_cache();
    let second = keyring
        .encrypt("default", b"card 5500", b"tenant=1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    keyring.clear_cache();
    assert_eq!(
        keyring.decrypt(&first, b"tenant=1").await.ok(),
        Some(b"card 4111".to_vec())
    );
    assert_eq!(
        keyring.decrypt(&second, b"tenant=1").await.ok(),
        Some(b"card 5500".to_vec())
    );
    assert_eq!(
        keyring.decrypt(&first, b"tenant=2").await.err(),
        Some(CryptoError::DecryptFailed)
    );
    // Rewrap moves the first message's data key to the new version.
    let rewrapped = keyring
        .rewrap(&first)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(rewrapped, first);
    keyring.clear_cache();
    assert_eq!(
        keyring.decrypt(&rewrapped, b"tenant=1").await.ok(),
        Some(b"card 4111".to_vec())
    );
}

/// The resilience settings of the client behind the fault proxy: a breaker
/// that opens after a few failures and a short retry budget, so the cut
/// test is quick.
pub fn fault_resilience() -> ResilienceConfig {
    ResilienceConfig {
        breaker: BreakerConfig {
            minimum_calls: 4,
            failure_rate_threshold: 0.5,
            open_duration_ms: 500,
            ..BreakerConfig::default()
        },
        retry: RetryPolicy {
            max_attempts: 2,
            base_delay_ms: 10,
            max_delay_ms: 50,
            deadline_ms: 3_000,
        },
        ..ResilienceConfig::default()
    }
}

/// One backend set up for [`cut_cached_keys_work_breaker_opens_and_recovers`].
pub struct CutCase<'a> {
    /// The client whose traffic goes through `proxy` (built with
    /// [`fault_resilience`]).
    pub through_proxy: Kms,
    /// A client talking to the server directly (another instance).
    pub direct: Kms,
    pub proxy: &'a FaultProxy,
    /// The state of `through_proxy`'s breaker.
    pub breaker: &'a dyn Fn() -> BreakerState,
    /// Whether the "unavailable" message names the backend as expected.
    pub names_backend: &'a dyn Fn(&str) -> bool,
    /// What the message while the breaker is open contains.
    pub breaker_open: &'a str,
    /// A credential that must never appear in an error message.
    pub secret: &'a str,
}

/// With the link to the KMS cut, data keys in the cache keep working, one
/// not cached fails with a clear [`CryptoError::KmsUnavailable`] (never
/// naming the credential) until the breaker opens; once the link is back,
/// the breaker closes and what was encrypted during the cut decrypts.
pub async fn cut_cached_keys_work_breaker_opens_and_recovers(case: CutCase<'_>) {
    let store = KeyringStore::memory();
    let settings = KeyringSettings {
        dek_cache: DekCacheSettings {
            ttl: Duration::from_secs(600),
            ..DekCacheSettings::default()
        },
        ..KeyringSettings::default()
    };
    let keyring = keyring(case.through_proxy, store.clone(), settings.clone());
    // Another instance on the same store, talking to the KMS directly.
    let other = self::keyring(case.direct, store, settings);
    keyring
        .ensure_key("default")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let cached = keyring
        .encrypt("default", b"seen", b"aad")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        keyring.decrypt(&cached, b"aad").await.ok(),
        Some(b"seen".to_vec())
    );
    let unseen = other
        .encrypt("default", b"unseen", b"aad")
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    case.proxy.cut();
    // Data keys in the cache keep working without the KMS.
    assert_eq!(
        keyring.decrypt(&cached, b"aad").await.ok(),
        Some(b"seen".to_vec())
    );
    let during = keyring.encrypt("default", b"during", b"aad").await;
    assert!(during.is_ok(), "{during:?}");
    // A data key not cached needs the KMS: a clear error, until the breaker opens.
    let error = keyring.decrypt(&unseen, b"aad").await.err();
    let Some(CryptoError::KmsUnavailable(message)) = &error else {
        panic!("{error:?}")
    };
    assert!((case.names_backend)(message), "{message}");
    assert!(!message.contains(case.secret), "{message}");
    for _ in 0..4 {
        let _ = keyring.decrypt(&unseen, b"aad").await;
    }
    assert_eq!((case.breaker)(), BreakerState::Open);
    let error = keyring.decrypt(&unseen, b"aad").await.err();
    let Some(CryptoError::KmsUnavailable(message)) = &error else {
        panic!("{error:?}")
    };
    assert!(message.contains(case.breaker_open), "{message}");
    // Still served from the cache while open.
    assert_eq!(
        keyring.decrypt(&cached, b"aad").await.ok(),
        Some(b"seen".to_vec())
    );

    case.proxy.resume();
    eventually(
        Duration::from_secs(30),
        "the KMS to recover after the cut",
        || {
            let keyring = keyring.clone();
            let unseen = unseen.clone();
            async move { keyring.decrypt(&unseen, b"aad").await.ok() == Some(b"unseen".to_vec()) }
        },
    )
    .await;
    assert_eq!((case.breaker)(), BreakerState::Closed);
    if let Ok(during) = during {
        keyring.clear_cache();
        assert_eq!(
            keyring.decrypt(&during, b"aad").await.ok(),
            Some(b"during".to_vec())
        );
    }
}
