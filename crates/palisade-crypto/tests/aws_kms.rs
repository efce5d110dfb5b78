//! The AWS KMS backend (feature `aws-kms`) against a real moto server
//! (`moto_server`, PyPI `moto[server]`, installed by `scripts/test`), started
//! by each test on a free loopback port and killed at its end. Credentials
//! are fake and given through the configuration, never the environment. A
//! missing `moto_server` fails the test with a message saying to run
//! `scripts/test`.
#![cfg(feature = "aws-kms")]

use palisade_core::resilience::{BreakerConfig, BreakerState, ResilienceConfig, RetryPolicy};
use palisade_crypto::aead::KeyBytes;
use palisade_crypto::kms::{AwsCredentials, AwsKms, AwsKmsConfig};
use palisade_crypto::{
    CryptoError, DekCacheSettings, Keyring, KeyringSettings, KeyringStore, Kms, Zeroizing,
};
use palisade_testkit::{FaultProxy, MotoServer, eventually, within};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);
const SECRET: &str = "fake-secret-for-moto";

async fn moto() -> MotoServer {
    MotoServer::start().await.unwrap_or_else(|e| {
        panic!("moto_server for the AWS KMS tests (run scripts/test, which installs it): {e:?}")
    })
}

fn config(endpoint: String) -> AwsKmsConfig {
    AwsKmsConfig {
        endpoint: Some(endpoint),
        credentials: Some(AwsCredentials {
            access_key_id: "AKIDPALISADETEST".into(),
            secret_access_key: Zeroizing::new(SECRET.into()),
            session_token: None,
        }),
        ..AwsKmsConfig::new("us-east-1")
    }
}

fn kms(server: &MotoServer) -> AwsKms {
    AwsKms::new(&config(server.url()), palisade_core::SystemClock::shared())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn key() -> KeyBytes {
    KeyBytes::generate().unwrap_or_else(|e| panic!("{e}"))
}

fn same(opened: Result<KeyBytes, CryptoError>, expected: &KeyBytes) -> bool {
    opened.map(|k| *k.expose()).ok() == Some(*expected.expose())
}

#[tokio::test]
async fn creates_and_rotates_keys_and_another_instance_sees_the_versions() {
    within(LIMIT, "AWS KMS create and rotate", async {
        let server = moto().await;
        let kms = kms(&server);
        assert_eq!(kms.create_key("orders", 0).await, Ok(1));
        // Idempotent: the existing key is kept.
        assert_eq!(kms.create_key("orders", 0).await, Ok(1));
        assert_eq!(kms.rotate("orders", 0).await, Ok(2));
        assert_eq!(kms.rotate("orders", 0).await, Ok(3));
        // A name KMS aliases cannot hold as such, and one that would collide
        // with a version alias under a `-v<N>` scheme.
        assert_eq!(kms.create_key("orders-v1", 0).await, Ok(1));
        assert_eq!(kms.create_key("a.b_c", 0).await, Ok(1));
        // A fresh instance (nothing cached) finds the newest version in KMS
        // and builds on it.
        let fresh = self::kms(&server);
        assert_eq!(fresh.create_key("orders", 0).await, Ok(3));
        assert_eq!(fresh.rotate("orders", 0).await, Ok(4));
        assert_eq!(kms.rotate("orders", 0).await, Ok(5));
        let through_enum = Kms::Aws(fresh);
        assert_eq!(through_enum.backend(), "aws");
        assert_eq!(through_enum.rotate("orders", 0).await, Ok(6));
    })
    .await;
}

#[tokio::test]
async fn wraps_per_version_and_refuses_the_wrong_version_context_key_or_bytes() {
    within(LIMIT, "AWS KMS wrap and unwrap", async {
        let server = moto().await;
        let kms = kms(&server);
        assert_eq!(kms.create_key("k", 0).await, Ok(1));
        assert_eq!(kms.rotate("k", 0).await, Ok(2));
        assert_eq!(kms.create_key("other", 0).await, Ok(1));
        let mut wrapped = Vec::new();
        for version in 1..=2 {
            let dek = key();
            let w = kms
                .wrap("k", version, &dek, b"dek")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(!w.windows(32).any(|x| x == dek.expose()), "no key in clear");
            wrapped.push((version, dek, w));
        }
        for (version, dek, w) in &wrapped {
            assert!(
                same(kms.unwrap("k", *version, w, b"dek").await, dek),
                "v{version}"
            );
        }
        let (_, dek, w1) = &wrapped[0];
        // Empty context works too (left out of the encryption context).
        let plain = kms.wrap("k", 1, dek, b"").await.unwrap_or_default();
        assert!(same(kms.unwrap("k", 1, &plain, b"").await, dek));
        assert_eq!(
            kms.unwrap("k", 1, &plain, b"dek").await.err(),
            Some(CryptoError::DecryptFailed)
        );
        // Wrong context, wrong version, another key: refused.
        assert_eq!(
            kms.unwrap("k", 1, w1, b"subject").await.err(),
            Some(CryptoError::DecryptFailed)
        );
        assert_eq!(
            kms.unwrap("k", 2, w1, b"dek").await.err(),
            Some(CryptoError::DecryptFailed)
        );
        assert_eq!(
            kms.unwrap("other", 1, w1, b"dek").await.err(),
            Some(CryptoError::DecryptFailed)
        );
        // Unknown version and key: typed.
        assert_eq!(
            kms.unwrap("k", 7, w1, b"dek").await.err(),
            Some(CryptoError::UnknownKeyVersion {
                name: "k".into(),
                version: 7
            })
        );
        assert_eq!(
            kms.unwrap("nope", 1, w1, b"dek").await.err(),
            Some(CryptoError::UnknownKey("nope".into()))
        );
        assert_eq!(
            kms.wrap("nope", 1, dek, b"dek").await.err(),
            Some(CryptoError::UnknownKey("nope".into()))
        );
        // Tampered: bytes flipped across the blob, truncated, emptied.
        let step = (w1.len() / 24).max(1);
        for i in (0..w1.len()).step_by(step).chain([w1.len() - 1]) {
            let mut bad = w1.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                kms.unwrap("k", 1, &bad, b"dek").await.err(),
                Some(CryptoError::DecryptFailed),
                "byte {i} of {}",
                w1.len()
            );
        }
        for bad in [&w1[..w1.len() - 1], &w1[..10], &[][..]] {
            assert_eq!(
                kms.unwrap("k", 1, bad, b"dek").await.err(),
                Some(CryptoError::DecryptFailed),
                "truncated to {}",
                bad.len()
            );
        }
    })
    .await;
}

#[tokio::test]
async fn generate_data_key_and_reencrypt_keep_the_key_inside_kms() {
    within(LIMIT, "AWS KMS GenerateDataKey and ReEncrypt", async {
        let server = moto().await;
        let kms = kms(&server);
        assert_eq!(kms.create_key("k", 0).await, Ok(1));
        assert_eq!(kms.rotate("k", 0).await, Ok(2));
        let (dek, wrapped) = kms
            .generate_data_key("k", 1, b"dek")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (other, _) = kms
            .generate_data_key("k", 1, b"dek")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(dek.expose(), other.expose(), "fresh keys");
        assert!(same(kms.unwrap("k", 1, &wrapped, b"dek").await, &dek));

        let moved = kms
            .rewrap(("k", 1), ("k", 2), &wrapped, b"dek")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(same(kms.unwrap("k", 2, &moved, b"dek").await, &dek));
        assert_eq!(
            kms.unwrap("k", 1, &moved, b"dek").await.err(),
            Some(CryptoError::DecryptFailed)
        );
        // ReEncrypt checks the source like Decrypt does.
        assert_eq!(
            kms.rewrap(("k", 1), ("k", 2), &wrapped, b"other")
                .await
                .err(),
            Some(CryptoError::DecryptFailed)
        );
        assert_eq!(
            kms.rewrap(("k", 2), ("k", 1), &wrapped, b"dek").await.err(),
            Some(CryptoError::DecryptFailed)
        );
        let mut bad = wrapped.clone();
        let middle = bad.len() / 2;
        bad[middle] ^= 0x80;
        assert_eq!(
            kms.rewrap(("k", 1), ("k", 2), &bad, b"dek").await.err(),
            Some(CryptoError::DecryptFailed)
        );
    })
    .await;
}

#[tokio::test]
async fn the_keyring_encrypts_end_to_end_over_aws_kms() {
    within(LIMIT, "keyring over AWS KMS", async {
        let server = moto().await;
        let keyring = Keyring::new(
            Kms::Aws(kms(&server)),
            KeyringStore::memory(),
            palisade_core::SystemClock::shared(),
            KeyringSettings::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
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
    })
    .await;
}

#[tokio::test]
async fn with_aws_kms_cut_cached_keys_work_the_breaker_opens_and_recovers() {
    within(Duration::from_secs(120), "AWS KMS fault test", async {
        let server = moto().await;
        let proxy = FaultProxy::start(server.addr())
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let resilience = ResilienceConfig {
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
        };
        let through_proxy = AwsKms::new(
            &AwsKmsConfig {
                resilience,
                ..config(format!("http://{}", proxy.addr()))
            },
            palisade_core::SystemClock::shared(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let store = KeyringStore::memory();
        let settings = KeyringSettings {
            dek_cache: DekCacheSettings {
                ttl: Duration::from_secs(600),
                ..DekCacheSettings::default()
            },
            ..KeyringSettings::default()
        };
        let keyring = Keyring::new(
            Kms::Aws(through_proxy.clone()),
            store.clone(),
            palisade_core::SystemClock::shared(),
            settings.clone(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // Another instance on the same store, talking to KMS directly.
        let other = Keyring::new(
            Kms::Aws(kms(&server)),
            store,
            palisade_core::SystemClock::shared(),
            settings,
        )
        .unwrap_or_else(|e| panic!("{e}"));
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

        proxy.cut();
        // Data keys in the cache keep working without KMS.
        assert_eq!(
            keyring.decrypt(&cached, b"aad").await.ok(),
            Some(b"seen".to_vec())
        );
        let during = keyring.encrypt("default", b"during", b"aad").await;
        assert!(during.is_ok(), "{during:?}");
        // A data key not cached needs KMS: a clear error, until the breaker opens.
        let error = keyring.decrypt(&unseen, b"aad").await.err();
        let Some(CryptoError::KmsUnavailable(message)) = &error else {
            panic!("{error:?}")
        };
        assert!(message.contains("AWS KMS"), "{message}");
        assert!(!message.contains(SECRET), "{message}");
        for _ in 0..4 {
            let _ = keyring.decrypt(&unseen, b"aad").await;
        }
        assert_eq!(through_proxy.breaker_snapshot().state, BreakerState::Open);
        let error = keyring.decrypt(&unseen, b"aad").await.err();
        let Some(CryptoError::KmsUnavailable(message)) = &error else {
            panic!("{error:?}")
        };
        assert!(message.contains("circuit breaker is open"), "{message}");
        // Still served from the cache while open.
        assert_eq!(
            keyring.decrypt(&cached, b"aad").await.ok(),
            Some(b"seen".to_vec())
        );

        proxy.resume();
        eventually(
            Duration::from_secs(30),
            "the AWS KMS to recover after the cut",
            || {
                let keyring = keyring.clone();
                let unseen = unseen.clone();
                async move {
                    keyring.decrypt(&unseen, b"aad").await.ok() == Some(b"unseen".to_vec())
                }
            },
        )
        .await;
        assert_eq!(through_proxy.breaker_snapshot().state, BreakerState::Closed);
        if let Ok(during) = during {
            keyring.clear_cache();
            assert_eq!(
                keyring.decrypt(&during, b"aad").await.ok(),
                Some(b"during".to_vec())
            );
        }
    })
    .await;
}
