//! Two keyring instances on one store and one key file, as two `palisade
//! serve` processes on one database with a shared local KMS: rotations,
//! usage limits, shredding and restarts seen from both sides, on every
//! store backend.

#[macro_use]
mod common;

use common::Backend;
use palisade_core::ManualClock;
use palisade_crypto::envelope::Envelope;
use palisade_crypto::kms::LocalKms;
use palisade_crypto::{CryptoError, DekCacheSettings, Keyring, KeyringSettings, Kms, MasterKey};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

on_every_backend!(
    a_rotation_on_one_instance_reaches_the_other,
    the_usage_limit_is_shared_and_rotates_once,
    a_shredded_subject_is_erased_on_every_instance,
    state_survives_a_restart,
);

struct Pair {
    a: Keyring,
    b: Keyring,
    clock: ManualClock,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    master: MasterKey,
}

async fn instance(
    b: &Backend,
    path: &Path,
    master: &MasterKey,
    clock: &ManualClock,
    settings: KeyringSettings,
) -> Keyring {
    let kms = Kms::Local(LocalKms::open(path, master).expect("key file"));
    Keyring::open(kms, b.store(), Arc::new(clock.clone()), settings)
        .await
        .expect("keyring")
}

async fn pair(b: &Backend, settings: KeyringSettings) -> Pair {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("keys.sealed");
    let master = MasterKey::generate().expect("master key");
    let clock = ManualClock::new();
    let a = instance(b, &path, &master, &clock, settings.clone()).await;
    a.ensure_key("default").await.expect("key");
    let b = instance(b, &path, &master, &clock, settings).await;
    Pair {
        a,
        b,
        clock,
        _dir: dir,
        path,
        master,
    }
}

fn version(ciphertext: &[u8]) -> u32 {
    Envelope::parse(ciphertext).expect("parse").version
}

async fn a_rotation_on_one_instance_reaches_the_other(backend: Backend) {
    let p = pair(&backend, KeyringSettings::default()).await;
    let old =
        p.b.encrypt("default", b"before", b"")
            .await
            .expect("encrypt");
    assert_eq!(version(&old), 1);
    let rotated = p.a.rotate("default").await.expect("rotate");
    assert_eq!(
        rotated.current().map(|v| v.version),
        Some(2),
        "{}",
        backend.name
    );
    // B picks the rotation up on its next refresh (serve runs one periodically).
    p.b.refresh().await.expect("refresh");
    let new =
        p.b.encrypt("default", b"after", b"")
            .await
            .expect("encrypt");
    assert_eq!(version(&new), 2);
    for keyring in [&p.a, &p.b] {
        keyring.clear_cache();
        assert_eq!(
            &keyring.decrypt(&old, b"").await.expect("old")[..],
            b"before"
        );
        assert_eq!(
            &keyring.decrypt(&new, b"").await.expect("new")[..],
            b"after"
        );
    }
    // Without a refresh, B's usage reservation on the retired version is
    // refused and B catches up by itself.
    p.a.rotate("default").await.expect("rotate");
    p.b.clear_cache();
    let newest = p.b.encrypt("default", b"x", b"").await.expect("encrypt");
    assert_eq!(version(&newest), 3);
}

async fn the_usage_limit_is_shared_and_rotates_once(backend: Backend) {
    let settings = KeyringSettings {
        usage_limit: 3,
        dek_cache: DekCacheSettings {
            max_uses: 1,
            ..DekCacheSettings::default()
        },
    };
    let p = pair(&backend, settings).await;
    let mut versions = Vec::new();
    for i in 0..7 {
        let keyring = if i % 2 == 0 { &p.a } else { &p.b };
        versions.push(version(
            &keyring
                .encrypt("default", b"m", b"")
                .await
                .expect("encrypt"),
        ));
    }
    assert_eq!(versions, vec![1, 1, 1, 2, 2, 2, 3], "{}", backend.name);
    let keys = p.a.keys().await.expect("keys");
    let default = keys.iter().find(|k| k.name == "default").expect("default");
    let usage: Vec<(u32, u64)> = default
        .versions
        .iter()
        .map(|v| (v.version, v.usage))
        .collect();
    assert_eq!(usage, vec![(1, 3), (2, 3), (3, 1)]);
}

async fn a_shredded_subject_is_erased_on_every_instance(backend: Backend) {
    let p = pair(&backend, KeyringSettings::default()).await;
    let sealed =
        p.a.encrypt_for_subject("user-7", b"pii", b"")
            .await
            .expect("encrypt");
    // B opens it (and caches the DEK).
    assert_eq!(&p.b.decrypt(&sealed, b"").await.expect("open")[..], b"pii");
    assert_eq!(
        p.a.shred_subject("user-7").await,
        Ok(true),
        "{}",
        backend.name
    );
    assert_eq!(
        p.a.decrypt(&sealed, b"").await,
        Err(CryptoError::Shredded("user-7".into()))
    );
    // B may still hold the DEK for at most the subject TTL.
    p.clock
        .advance(DekCacheSettings::default().subject_ttl + Duration::from_millis(1));
    assert_eq!(
        p.b.decrypt(&sealed, b"").await,
        Err(CryptoError::Shredded("user-7".into()))
    );
    // A new instance never opens it.
    let c = instance(
        &backend,
        &p.path,
        &p.master,
        &p.clock,
        KeyringSettings::default(),
    )
    .await;
    assert_eq!(
        c.decrypt(&sealed, b"").await,
        Err(CryptoError::Shredded("user-7".into()))
    );
}

async fn state_survives_a_restart(backend: Backend) {
    let p = pair(&backend, KeyringSettings::default()).await;
    let keyring_ct = p.a.encrypt("default", b"k", b"aad").await.expect("encrypt");
    let subject_ct =
        p.a.encrypt_for_subject("s", b"s", b"aad")
            .await
            .expect("encrypt");
    let index =
        p.a.blind_index("email", b"t", "a@example.com", None)
            .await
            .expect("index");
    p.a.rotate("default").await.expect("rotate");
    drop(p.a);
    drop(p.b);
    let restarted = instance(
        &backend,
        &p.path,
        &p.master,
        &p.clock,
        KeyringSettings::default(),
    )
    .await;
    assert_eq!(
        &restarted.decrypt(&keyring_ct, b"aad").await.expect("open")[..],
        b"k"
    );
    assert_eq!(
        &restarted.decrypt(&subject_ct, b"aad").await.expect("open")[..],
        b"s"
    );
    assert_eq!(
        restarted
            .blind_index("email", b"t", "a@example.com", None)
            .await,
        Ok(index),
        "{}",
        backend.name
    );
    let keys = restarted.keys().await.expect("keys");
    let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["default", "palisade-index", "palisade-subjects"]
    );
    assert_eq!(keys[0].current().map(|v| v.version), Some(2));
    // The wrong master key cannot open the key file at all.
    let other = MasterKey::generate().expect("master key");
    assert!(matches!(
        LocalKms::open(&p.path, &other),
        Err(CryptoError::KeyFile { .. })
    ));
}
