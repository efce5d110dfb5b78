//! Invariants over random inputs: decrypt(encrypt(x)) = x for sizes from 0
//! to 1 MiB, in binary and text form; two encryptions of one plaintext differ;
//! another AAD never opens.

use palisade_crypto::Keyring;
use proptest::prelude::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

/// `len` bytes from `seed` (xorshift), so large inputs are cheap to make.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn decrypt_inverts_encrypt_for_sizes_up_to_one_mebibyte(
        len in prop_oneof![0usize..64, 64usize..4096, 4096usize..=(1 << 20)],
        seed in any::<u64>(),
        aad in proptest::collection::vec(any::<u8>(), 0..64),
        subject in any::<bool>(),
    ) {
        let plaintext = bytes(seed, len);
        runtime().block_on(async {
            let keyring = Keyring::ephemeral();
            keyring.ensure_key("default").await.expect("key");
            let ct = if subject {
                keyring.encrypt_for_subject("s-1", &plaintext, &aad).await
            } else {
                keyring.encrypt("default", &plaintext, &aad).await
            }
            .expect("encrypt");
            let opened = keyring.decrypt(&ct, &aad).await.expect("decrypt");
            prop_assert_eq!(&opened[..], &plaintext[..]);
            keyring.clear_cache();
            let text = palisade_crypto::envelope::to_text(&ct);
            let opened = keyring.decrypt_text(&text, &aad).await.expect("decrypt text");
            prop_assert_eq!(&opened[..], &plaintext[..]);
            let mut other = aad.clone();
            other.push(0);
            prop_assert!(keyring.decrypt(&ct, &other).await.is_err());
            Ok(())
        })?;
    }

    #[test]
    fn two_encryptions_of_the_same_plaintext_differ(
        len in 0usize..2048,
        seed in any::<u64>(),
    ) {
        let plaintext = bytes(seed, len);
        runtime().block_on(async {
            let keyring = Keyring::ephemeral();
            keyring.ensure_key("default").await.expect("key");
            let a = keyring.encrypt("default", &plaintext, b"").await.expect("encrypt");
            let b = keyring.encrypt("default", &plaintext, b"").await.expect("encrypt");
            prop_assert_ne!(&a, &b);
            // Same cached DEK, so the difference is the random nonce (and what it changes).
            let (pa, pb) = (
                palisade_crypto::envelope::Envelope::parse(&a).expect("parse"),
                palisade_crypto::envelope::Envelope::parse(&b).expect("parse"),
            );
            prop_assert_eq!(pa.wrapped_dek, pb.wrapped_dek);
            prop_assert_ne!(pa.nonce, pb.nonce);
            Ok(())
        })?;
    }
}
