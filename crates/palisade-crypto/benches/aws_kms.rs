//! AWS KMS throughput through Palisade's `AwsKms`, against plain aws-sdk-kms
//! `Encrypt` / `Decrypt` calls (what a user would write by hand), in the same
//! run against the same moto server (started here on a free loopback port,
//! killed at the end; `moto_server` from PyPI `moto[server]`, installed by
//! `scripts/test`). Needs the feature: `--features aws-kms`.
//!
//! - `wrap` / `unwrap`: one 32-byte data key per call (`AwsKms::wrap` /
//!   `unwrap`: breaker, retry, encryption context, key id checked).
//! - peer `sdk_encrypt` / `sdk_decrypt`: the same calls on a bare
//!   `aws_sdk_kms::Client` (same key, same encryption context).
//! - `generate_data_key`: `AwsKms::generate_data_key`.
//! - `envelope_encrypt_1k_cached` / `envelope_decrypt_1k_cached`:
//!   `Keyring::encrypt`/`decrypt` of 1 KiB on a keyring over AWS KMS with a
//!   warm DEK cache: what an application sees between KMS calls.
//!
//! moto is an emulator in Python: its latency is nothing like AWS's, so the
//! ratios measure Palisade's overhead per call, not AWS KMS. Small samples
//! keep the run bounded; the machine is shared.
//!
//! `cargo bench -p palisade-crypto --features aws-kms --bench aws_kms`

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::primitives::Blob;
#[path = "support/kms.rs"]
mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use palisade_crypto::aead::KeyBytes;
use palisade_crypto::kms::{AwsCredentials, AwsKms, AwsKmsConfig};
use palisade_crypto::{Kms, Zeroizing};
use palisade_testkit::MotoServer;
use std::collections::HashMap;
use std::hint::black_box;
use support::CachedEnvelope;

const KEY: &str = "bench";

fn aws_kms(c: &mut Criterion) {
    let rt = support::runtime();
    let server = rt.block_on(MotoServer::start()).unwrap_or_else(|e| {
        panic!("moto_server for the AWS KMS bench (run scripts/test, which installs it): {e:?}")
    });
    let config = AwsKmsConfig {
        endpoint: Some(server.url()),
        credentials: Some(AwsCredentials {
            access_key_id: "AKIDBENCH".into(),
            secret_access_key: Zeroizing::new("bench-secret".into()),
            session_token: None,
        }),
        ..AwsKmsConfig::new("us-east-1")
    };
    let kms = AwsKms::new(&config, palisade_core::SystemClock::shared()).expect("aws kms");
    rt.block_on(kms.create_key(KEY, 0)).expect("create key");
    let dek = KeyBytes::generate().expect("key");
    let wrapped = rt.block_on(kms.wrap(KEY, 1, &dek, b"dek")).expect("wrap");

    // The peer: a bare SDK client on the same server, key and context.
    let sdk = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(server.url())
            .credentials_provider(Credentials::new(
                "AKIDBENCH",
                "bench-secret",
                None,
                None,
                "bench",
            ))
            .build(),
    );
    let alias = kms.version_alias(KEY, 1);
    let context: HashMap<String, String> = [
        ("palisade:key", KEY.to_owned()),
        ("palisade:version", "1".to_owned()),
        ("palisade:context", "ZGVr".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let sdk_encrypt = || async {
        sdk.encrypt()
            .key_id(&alias)
            .plaintext(Blob::new(dek.expose().to_vec()))
            .set_encryption_context(Some(context.clone()))
            .send()
            .await
            .expect("sdk encrypt")
            .ciphertext_blob
            .expect("ciphertext")
    };
    let sdk_wrapped = rt.block_on(sdk_encrypt());
    // Same context, so Palisade opens what the bare client made.
    assert!(
        rt.block_on(kms.unwrap(KEY, 1, sdk_wrapped.as_ref(), b"dek"))
            .is_ok()
    );

    let envelope = CachedEnvelope::new(&rt, Kms::Aws(kms.clone()));

    let mut group = support::group(c, "aws_kms");
    group.throughput(Throughput::Elements(1));
    group.bench_function("wrap", |b| {
        b.iter(|| {
            rt.block_on(kms.wrap(KEY, 1, black_box(&dek), b"dek"))
                .expect("wrap")
        })
    });
    group.bench_function("sdk_encrypt", |b| b.iter(|| rt.block_on(sdk_encrypt())));
    group.bench_function("unwrap", |b| {
        b.iter(|| {
            rt.block_on(kms.unwrap(KEY, 1, black_box(&wrapped), b"dek"))
                .expect("unwrap")
        })
    });
    group.bench_function("sdk_decrypt", |b| {
        b.iter(|| {
            rt.block_on(
                sdk.decrypt()
                    .key_id(&alias)
                    .ciphertext_blob(sdk_wrapped.clone())
                    .set_encryption_context(Some(context.clone()))
                    .send(),
            )
            .expect("sdk decrypt")
            .plaintext
            .expect("plaintext")
        })
    });
    group.bench_function("generate_data_key", |b| {
        b.iter(|| {
            rt.block_on(kms.generate_data_key(KEY, 1, b"dek"))
                .expect("generate")
        })
    });
    envelope.bench(&mut group, &rt);
    group.finish();
    drop(server);
}

criterion_group!(benches, aws_kms);
criterion_main!(benches);
