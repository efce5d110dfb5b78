//! The AWS KMS backend (feature `aws-kms`) against a real moto server
//! (`moto_server`, PyPI `moto[server]`, installed by `scripts/test`), started
//! by each test on a free loopback port and killed at its end. Credentials
//! are fake and given through the configuration, never the environment. A
//! missing `moto_server` fails the test with a message saying to run
//! `scripts/test`.
#![cfg(feature = "aws-kms")]

#[path = "support/kms_conformance.rs"]
mod kms_conformance;

use kms_conformance::CutCase;
use palisade_crypto::aead::KeyBytes;
use palisade_crypto::kms::{AwsCredentials, AwsKms, AwsKmsConfig};
use palisade_crypto::{CryptoError, Kms, Zeroizing};
use palisade_testkit::{FaultProxy, MotoServer, within};
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
        kms_conformance::tampering_is_refused(
            &Kms::Aws(kms.clone()),
            ("k", 1),
            w1,
            b"dek",
            (0..w1.len()).step_by(step).chain([w1.len() - 1]),
            &[w1.len() - 1, 10, 0],
        )
        .await;
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
        kms_conformance::keyring_end_to_end(Kms::Aws(kms(&server))).await;
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
        let through_proxy = AwsKms::new(
            &AwsKmsConfig {
                resilience: kms_conformance::fault_resilience(),
                ..config(format!("http://{}", proxy.addr()))
            },
            palisade_core::SystemClock::shared(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        kms_conformance::cut_cached_keys_work_breaker_opens_and_recovers(CutCase {
            through_proxy: Kms::Aws(through_proxy.clone()),
            direct: Kms::Aws(kms(&server)),
            proxy: &proxy,
            breaker: &|| through_proxy.breaker_snapshot().state,
            names_backend: &|message| message.contains("AWS KMS"),
            breaker_open: "circuit breaker is open",
            secret: SECRET,
        })
        .await;
    })
    .await;
}
