//! Rotation under load: two instances encrypt and decrypt continuously (each
//! opening the other's ciphertexts) while one rotates the key twice and old
//! ciphertexts are rewrapped; no operation may fail, and everything sealed
//! during the run opens afterwards with cold caches. On every store backend.

#[macro_use]
mod common;

use common::Backend;
use palisade_core::SystemClock;
use palisade_crypto::envelope::Envelope;
use palisade_crypto::kms::LocalKms;
use palisade_crypto::{Keyring, KeyringSettings, Kms, MasterKey};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

on_every_backend!(no_operation_fails_while_the_key_rotates_twice_and_rewraps);

const WORKERS: usize = 4;

/// A ciphertext and its AAD.
type Sealed = (Vec<u8>, Vec<u8>);

async fn no_operation_fails_while_the_key_rotates_twice_and_rewraps(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("keys.sealed");
    let master = MasterKey::generate().expect("master key");
    let open = |store| {
        let kms = Kms::Local(LocalKms::open(&path, &master).expect("key file"));
        Keyring::new(
            kms,
            store,
            SystemClock::shared(),
            KeyringSettings::default(),
        )
        .expect("keyring")
    };
    let a = open(backend.store());
    a.ensure_key("default").await.expect("key");
    let b = open(backend.store());

    let stop = Arc::new(AtomicBool::new(false));
    let operations = Arc::new(AtomicU64::new(0));
    let sealed: Arc<Mutex<Vec<Sealed>>> = Arc::default();
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (mine, other) = if worker % 2 == 0 {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        let (stop, operations, sealed) = (stop.clone(), operations.clone(), sealed.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let plaintext = format!("worker {worker} message {n}").into_bytes();
                let aad = format!("w{worker}").into_bytes();
                let ct = if n.is_multiple_of(5) {
                    mine.encrypt_for_subject(&format!("subject-{worker}"), &plaintext, &aad)
                        .await
                } else {
                    mine.encrypt("default", &plaintext, &aad).await
                }
                .map_err(|e| format!("worker {worker} encrypt {n}: {e}"))?;
                let opened = other.decrypt(&ct, &aad).await.map_err(|e| {
                    format!("worker {worker} decrypt {n} on the other instance: {e}")
                })?;
                if opened[..] != plaintext[..] {
                    return Err(format!("worker {worker} message {n} changed"));
                }
                operations.fetch_add(2, Ordering::Relaxed);
                // Keep some of each kind (subject ciphertexts are every fifth).
                if n % 10 == 3 || n % 10 == 5 {
                    sealed.lock().await.push((ct, aad));
                }
                if n.is_multiple_of(50) {
                    // Make both instances miss the cache now and then: the
                    // KMS path must hold up during rotations too.
                    mine.clear_cache();
                }
                tokio::task::yield_now().await;
            }
            Ok::<u64, String>(n)
        }));
    }

    // Waits until the workers have done `more` operations from now.
    let wait_for_more = |more: u64| {
        let operations = operations.clone();
        async move {
            let target = operations.load(Ordering::Relaxed) + more;
            palisade_testkit::eventually(Duration::from_secs(60), "operations", || {
                let operations = operations.clone();
                async move { operations.load(Ordering::Relaxed) >= target }
            })
            .await;
        }
    };
    wait_for_more(400).await;
    a.rotate("default").await.expect("first rotation");
    wait_for_more(400).await;
    // The other instance adopts it on its periodic refresh.
    b.refresh().await.expect("refresh");
    let to_rewrap: Vec<Sealed> = sealed.lock().await.clone();
    let mut rewrapped = Vec::new();
    for (ct, aad) in &to_rewrap {
        rewrapped.push((b.rewrap(ct).await.expect("rewrap during load"), aad.clone()));
    }
    a.rotate("default").await.expect("second rotation");
    wait_for_more(400).await;
    stop.store(true, Ordering::Relaxed);
    let mut messages = 0;
    for worker in workers {
        messages += worker
            .await
            .expect("worker task")
            .unwrap_or_else(|e| panic!("{} {e}", backend.name));
    }
    assert!(messages >= 600, "{messages}");

    // Everything sealed (and rewrapped) during the run opens with cold caches.
    a.clear_cache();
    b.clear_cache();
    let all = sealed.lock().await.clone();
    let mut versions = std::collections::BTreeSet::new();
    for (ct, aad) in all.iter().chain(rewrapped.iter()) {
        let envelope = Envelope::parse(ct).expect("parse");
        if envelope.key_id == "default" {
            versions.insert(envelope.version);
        }
        a.decrypt(ct, aad).await.expect("opens after the run");
    }
    assert_eq!(
        versions,
        [1, 2, 3].into_iter().collect(),
        "{}",
        backend.name
    );
    for (ct, _) in &rewrapped {
        let envelope = Envelope::parse(ct).expect("parse");
        if envelope.key_id == "default" {
            assert!(envelope.version >= 2, "rewrapped to the newer version");
        }
    }
}
