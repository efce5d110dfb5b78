//! Tampering: a changed bit anywhere in the ciphertext format, a wrong AAD, a
//! wrong key version, a truncated or extended message: each is a typed
//! error, never a panic and never plaintext. Run with a warm DEK cache (the
//! hot path) and a cold one (through the KMS), for keyring and subject keys,
//! in binary and text form.

use palisade_crypto::envelope::{self, Envelope};
use palisade_crypto::{CryptoError, Keyring};

const AAD: &[u8] = b"tenant=acme;table=users;id=42;field=email";
const PLAINTEXT: &[u8] = b"alice@example.com";

/// A keyring with `default` at version 2 (so version 1 exists too) and a
/// ciphertext of each kind.
async fn setup() -> (Keyring, Vec<u8>, Vec<u8>) {
    let keyring = Keyring::ephemeral();
    keyring.ensure_key("default").await.expect("key");
    keyring.rotate("default").await.expect("rotate");
    let keyring_ct = keyring
        .encrypt("default", PLAINTEXT, AAD)
        .await
        .expect("encrypt");
    let subject_ct = keyring
        .encrypt_for_subject("user-42", PLAINTEXT, AAD)
        .await
        .expect("encrypt for subject");
    (keyring, keyring_ct, subject_ct)
}

/// Decrypts `bytes` and insists on an error (any typed one).
async fn assert_refused(keyring: &Keyring, bytes: &[u8], aad: &[u8], what: &str) -> CryptoError {
    match keyring.decrypt(bytes, aad).await {
        Ok(plain) => panic!(
            "{what}: tampered ciphertext opened to {} bytes",
            plain.len()
        ),
        Err(e) => e,
    }
}

#[tokio::test]
async fn every_flipped_bit_of_a_ciphertext_is_refused_warm_and_cold() {
    let (keyring, keyring_ct, subject_ct) = setup().await;
    for (name, original) in [("keyring", &keyring_ct), ("subject", &subject_ct)] {
        for cold in [false, true] {
            for index in 0..original.len() {
                for bit in 0..8 {
                    let mut tampered = original.clone();
                    tampered[index] ^= 1 << bit;
                    if cold {
                        keyring.clear_cache();
                    }
                    let what = format!("{name} byte {index} bit {bit} cold={cold}");
                    let error = assert_refused(&keyring, &tampered, AAD, &what).await;
                    assert!(
                        !error.to_string().contains("alice"),
                        "{what}: error text leaks plaintext: {error}"
                    );
                }
            }
        }
        // The untouched ciphertext still opens: the refusals were the tampering.
        let opened = keyring
            .decrypt(original, AAD)
            .await
            .expect("original opens");
        assert_eq!(&opened[..], PLAINTEXT);
    }
}

#[tokio::test]
async fn structural_fields_give_their_specific_errors() {
    let (keyring, ct, _) = setup().await;
    let mut bad = ct.clone();
    bad[0] = b'X';
    assert!(matches!(
        assert_refused(&keyring, &bad, AAD, "magic").await,
        CryptoError::Malformed(_)
    ));
    let mut bad = ct.clone();
    bad[2] = 9;
    assert_eq!(
        assert_refused(&keyring, &bad, AAD, "format").await,
        CryptoError::UnsupportedFormat(9)
    );
    let mut bad = ct.clone();
    bad[3] = 2;
    assert_eq!(
        assert_refused(&keyring, &bad, AAD, "algorithm").await,
        CryptoError::UnsupportedAlgorithm(2)
    );
    // Key id "default" → "eefault": no such key.
    let mut bad = ct.clone();
    bad[6] = b'e';
    assert_eq!(
        assert_refused(&keyring, &bad, AAD, "key id").await,
        CryptoError::UnknownKey("eefault".into())
    );
}

#[tokio::test]
async fn a_wrong_key_version_is_refused() {
    let (keyring, ct, _) = setup().await;
    let parsed = Envelope::parse(&ct).expect("parse");
    assert_eq!(parsed.version, 2);
    let version_at = parsed.prefix.len();
    for (version, expected) in [
        (1u32, CryptoError::DecryptFailed),
        (
            3,
            CryptoError::UnknownKeyVersion {
                name: "default".into(),
                version: 3,
            },
        ),
    ] {
        let mut bad = ct.clone();
        bad[version_at..version_at + 4].copy_from_slice(&version.to_be_bytes());
        keyring.clear_cache();
        assert_eq!(
            assert_refused(&keyring, &bad, AAD, "version").await,
            expected
        );
    }
}

#[tokio::test]
async fn a_wrong_aad_is_refused_and_every_truncation_or_extension_too() {
    let (keyring, keyring_ct, subject_ct) = setup().await;
    for ct in [&keyring_ct, &subject_ct] {
        for aad in [
            &b""[..],
            b"tenant=acme;table=users;id=43;field=email",
            &AAD[..AAD.len() - 1],
        ] {
            assert_eq!(
                assert_refused(&keyring, ct, aad, "aad").await,
                CryptoError::DecryptFailed
            );
        }
        for len in 0..ct.len() {
            assert_refused(&keyring, &ct[..len], AAD, &format!("truncated to {len}")).await;
        }
        let mut longer = ct.clone();
        longer.push(0);
        assert_eq!(
            assert_refused(&keyring, &longer, AAD, "extended").await,
            CryptoError::DecryptFailed
        );
    }
}

#[tokio::test]
async fn every_changed_character_of_the_text_form_is_refused() {
    let (keyring, ct, _) = setup().await;
    let text = envelope::to_text(&ct);
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.+/ ";
    for (index, original) in text.char_indices() {
        for replacement in alphabet.chars().filter(|&c| c != original).step_by(7) {
            let mut tampered = text.clone();
            tampered.replace_range(index..index + 1, &replacement.to_string());
            if let Ok(plain) = keyring.decrypt_text(&tampered, AAD).await {
                panic!(
                    "text char {index} → {replacement:?} opened to {} bytes",
                    plain.len()
                );
            }
        }
    }
    let opened = keyring
        .decrypt_text(&text, AAD)
        .await
        .expect("original opens");
    assert_eq!(&opened[..], PLAINTEXT);
}

#[tokio::test]
async fn swapping_wrapped_keys_between_ciphertexts_is_refused() {
    let (keyring, first, _) = setup().await;
    keyring.clear_cache();
    let second = keyring
        .encrypt("default", b"other", AAD)
        .await
        .expect("encrypt");
    let a = Envelope::parse(&first).expect("parse");
    let b = Envelope::parse(&second).expect("parse");
    assert_ne!(a.wrapped_dek, b.wrapped_dek, "two DEKs");
    // b's header (its DEK) with a's nonce, ciphertext and tag.
    let mut spliced = second[..second.len() - b.sealed.len()].to_vec();
    spliced.extend_from_slice(a.sealed);
    assert_eq!(
        assert_refused(&keyring, &spliced, AAD, "spliced").await,
        CryptoError::DecryptFailed
    );
}
