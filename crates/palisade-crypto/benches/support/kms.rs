//! What the KMS benchmarks (`aws_kms.rs`, `vault.rs`) share: the runtime, the
//! criterion group settings, and the keyring with a warm data-key cache
//! whose 1 KiB envelope encrypt/decrypt both measure.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use palisade_crypto::{Keyring, KeyringSettings, KeyringStore, Kms};
use std::hint::black_box;
use std::time::Duration;

/// A single-threaded runtime: one call at a time, as a request handler makes them.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A group with small samples, so a run against a server stays bounded.
pub fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    group
}

/// A keyring over a KMS with key `default`, a 1 KiB plaintext and its
/// envelope, decrypted once so the data key is cached.
pub struct CachedEnvelope {
    keyring: Keyring,
    plaintext: Vec<u8>,
    sealed: Vec<u8>,
}

impl CachedEnvelope {
    pub fn new(rt: &tokio::runtime::Runtime, kms: Kms) -> Self {
        let keyring = Keyring::new(
            kms,
            KeyringStore::memory(),
            palisade_core::SystemClock::shared(),
            KeyringSettings::default(),
        )
        .expect("keyring");
        rt.block_on(keyring.ensure_key("default"))
            .expect("default key");
        let plaintext = vec![0x5au8; 1024];
        let sealed = rt
            .block_on(keyring.encrypt("default", &plaintext, b"aad"))
            .expect("encrypt");
        rt.block_on(keyring.decrypt(&sealed, b"aad"))
            .expect("decrypt");
        Self {
            keyring,
            plaintext,
            sealed,
        }
    }

    /// `envelope_encrypt_1k_cached` and `envelope_decrypt_1k_cached`.
    pub fn bench(&self, group: &mut BenchmarkGroup<'_, WallTime>, rt: &tokio::runtime::Runtime) {
        group.bench_function("envelope_encrypt_1k_cached", |b| {
            b.iter(|| {
                rt.block_on(
                    self.keyring
                        .encrypt("default", black_box(&self.plaintext), b"aad"),
                )
                .expect("encrypt")
            })
        });
        group.bench_function("envelope_decrypt_1k_cached", |b| {
            b.iter(|| {
                rt.block_on(self.keyring.decrypt(black_box(&self.sealed), b"aad"))
                    .expect("decrypt")
            })
        });
    }
}
