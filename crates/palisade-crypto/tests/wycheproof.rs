//! Wycheproof AES-GCM vectors (`testdata/wycheproof/aes_gcm_test.json`, C2SP
//! commit dac1dd47): every vector the AES-GCM layer can express runs through
//! aws-lc-rs, and the AES-256 / 96-bit-nonce / 128-bit-tag ones also through
//! `palisade_crypto::aead::AeadKey`, the layer under the envelope.
//!
//! What is skipped and why: the 113 valid vectors whose IV is not 96 bits
//! (8 to 2056 bits). aws-lc-rs's AEAD API takes only 12-byte nonces (and the
//! envelope only ever makes random 12-byte ones), so those cannot be
//! expressed; the test checks that such IVs are refused rather than misused.
//! The 6 invalid `ZeroLengthIv` vectors are in that group and count as
//! rejected because the zero-length nonce is refused.

use aws_lc_rs::aead::{AES_128_GCM, AES_192_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use palisade_crypto::CryptoError;
use palisade_crypto::aead::{AeadKey, KeyBytes};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/wycheproof/aes_gcm_test.json"
    );
    let text = std::fs::read_to_string(path).expect("testdata/wycheproof/aes_gcm_test.json");
    serde_json::from_str(&text).expect("valid JSON")
}

fn bytes(test: &Value, field: &str) -> Vec<u8> {
    hex::decode(test[field].as_str().expect(field)).expect("hex")
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    total: usize,
    valid_checked: usize,
    invalid_rejected: usize,
    envelope_layer_valid: usize,
    envelope_layer_invalid: usize,
    skipped_valid_non_96_bit_iv: usize,
}

#[test]
fn every_applicable_vector_decrypts_or_is_rejected_as_expected() {
    let file = vectors();
    let mut counts = Counts::default();
    for group in file["testGroups"].as_array().expect("groups") {
        let key_bits = group["keySize"].as_u64().expect("keySize");
        let iv_bits = group["ivSize"].as_u64().expect("ivSize");
        assert_eq!(
            group["tagSize"].as_u64(),
            Some(128),
            "every group has 128-bit tags"
        );
        let algorithm = match key_bits {
            128 => &AES_128_GCM,
            192 => &AES_192_GCM,
            256 => &AES_256_GCM,
            other => panic!("unexpected key size {other}"),
        };
        for test in group["tests"].as_array().expect("tests") {
            counts.total += 1;
            let id = test["tcId"].as_u64().expect("tcId");
            let (key, iv, aad, msg) = (
                bytes(test, "key"),
                bytes(test, "iv"),
                bytes(test, "aad"),
                bytes(test, "msg"),
            );
            let mut ct_tag = bytes(test, "ct");
            ct_tag.extend(bytes(test, "tag"));
            let valid = match test["result"].as_str() {
                Some("valid") => true,
                Some("invalid") => false,
                other => panic!("tcId {id}: unexpected result {other:?}"),
            };

            let Ok(nonce) = Nonce::try_assume_unique_for_key(&iv) else {
                assert_ne!(iv_bits, 96);
                if valid {
                    counts.skipped_valid_non_96_bit_iv += 1;
                } else {
                    counts.invalid_rejected += 1;
                }
                continue;
            };
            assert_eq!(iv_bits, 96, "tcId {id}");
            let aws = LessSafeKey::new(UnboundKey::new(algorithm, &key).expect("key"));
            let mut buffer = ct_tag.clone();
            let opened = aws
                .open_in_place(nonce, Aad::from(&aad), &mut buffer)
                .map(|p| p.to_vec());
            if valid {
                assert_eq!(opened.as_deref().ok(), Some(&msg[..]), "tcId {id}: open");
                let nonce = Nonce::try_assume_unique_for_key(&iv).expect("nonce");
                let mut sealed = msg.clone();
                aws.seal_in_place_append_tag(nonce, Aad::from(&aad), &mut sealed)
                    .expect("seal");
                assert_eq!(
                    sealed, ct_tag,
                    "tcId {id}: seal gives the expected ct ‖ tag"
                );
                counts.valid_checked += 1;
            } else {
                assert!(opened.is_err(), "tcId {id}: an invalid vector opened");
                counts.invalid_rejected += 1;
            }

            if key_bits == 256 {
                let ours =
                    AeadKey::new(&KeyBytes::from_slice(&key).expect("32 bytes")).expect("key");
                let opened = ours.open_parts(&iv, &aad, &ct_tag);
                if valid {
                    assert_eq!(opened.map(|p| p.to_vec()), Ok(msg), "tcId {id}: AeadKey");
                    counts.envelope_layer_valid += 1;
                } else {
                    assert_eq!(
                        opened,
                        Err(CryptoError::DecryptFailed),
                        "tcId {id}: AeadKey"
                    );
                    counts.envelope_layer_invalid += 1;
                }
            }
        }
    }
    assert_eq!(
        counts,
        Counts {
            total: 316,
            valid_checked: 116,
            invalid_rejected: 87,
            envelope_layer_valid: 39,
            envelope_layer_invalid: 27,
            skipped_valid_non_96_bit_iv: 113,
        }
    );
    assert_eq!(file["numberOfTests"].as_u64(), Some(316));
}
