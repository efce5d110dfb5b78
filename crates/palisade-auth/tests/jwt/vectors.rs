//! Published test vectors through Palisade's verify path: RFC 7515 A.1 (HS256),
//! RFC 8037 A.4/A.5 (Ed25519), and Wycheproof Ed25519, ECDSA P-256 (P1363) and
//! HMAC-SHA-256 through `VerifyingKey::verify`, the call every token's signature
//! goes through.

use super::*;
use palisade_auth::jwt::{JwtError, KeySet, VerifyingKey};
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

fn verifier_at(unix_s: u64, adjust: impl FnOnce(&mut VerifierConfig)) -> Verifier {
    let clock = ManualClock::starting_at(UNIX_EPOCH + Duration::from_secs(unix_s));
    let mut config = VerifierConfig::new("joe", vec!["any".to_owned()]);
    config.required_typ = None;
    config.require_kid = false;
    adjust(&mut config);
    Verifier::new(config, KeySet::new(), Arc::new(clock)).unwrap()
}

/// RFC 7515 Appendix A.1: HS256 with the JWK from A.1.1 (no `kid` in the header).
#[test]
fn verifies_rfc7515_a1_hs256_example() {
    const TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9\
        .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ\
        .dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const K: &str =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    let mut keys = KeySet::new();
    keys.insert(VerifyingKey::hmac("a1", &URL_SAFE_NO_PAD.decode(K).unwrap()).unwrap())
        .unwrap();
    let verifier = verifier_at(1_300_819_000, |c| {
        c.allowed_algorithms.push(Algorithm::HS256)
    });

    let jws = verifier.verify_signature(TOKEN, &keys).unwrap();
    assert_eq!(jws.alg, Algorithm::HS256);
    let claims: Value = serde_json::from_slice(&jws.payload).unwrap();
    assert_eq!(
        claims,
        json!({"iss": "joe", "exp": 1300819380, "http://example.com/is_root": true})
    );
    // The full path gets as far as the claims: the example token has no audience.
    assert_eq!(
        verifier.verify_with_jwks(TOKEN, "any", &keys),
        Err(JwtError::MissingClaim("aud"))
    );
    // HS256 stays off unless enabled.
    let default = verifier_at(1_300_819_000, |_| {});
    assert_eq!(
        default.verify_signature(TOKEN, &keys).unwrap_err(),
        JwtError::AlgorithmNotAllowed
    );
    // After exp plus leeway the same token is expired.
    let later = verifier_at(1_300_819_380 + 60, |c| {
        c.allowed_algorithms.push(Algorithm::HS256)
    });
    assert_eq!(
        later.verify_with_jwks(TOKEN, "any", &keys),
        Err(JwtError::Expired)
    );
}

/// RFC 8037 A.1 key, A.4 signature, A.5 verification of "Example of Ed25519 signing".
#[test]
fn verifies_rfc8037_a4_ed25519_example() {
    const TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc\
        .hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"rfc8037",
        "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
    let keys = KeySet::from_jwks_json(jwks).unwrap();
    let verifier = verifier_at(1_767_225_600, |_| {});
    let jws = verifier.verify_signature(TOKEN, &keys).unwrap();
    assert_eq!(jws.alg, Algorithm::EdDSA);
    assert_eq!(jws.payload, b"Example of Ed25519 signing");

    // A.4 also gives the private key: signing the same input gives the same
    // (deterministic) signature.
    let d = URL_SAFE_NO_PAD
        .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
        .unwrap();
    let x = URL_SAFE_NO_PAD
        .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        .unwrap();
    let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_and_public_key(&d, &x).unwrap();
    let (input, sig) = TOKEN.rsplit_once('.').unwrap();
    assert_eq!(b64(pair.sign(input.as_bytes()).as_ref()), sig);

    let tampered = TOKEN.replace("RXhh", "RXhi");
    assert_eq!(
        verifier.verify_signature(&tampered, &keys).unwrap_err(),
        JwtError::BadSignature
    );
}

fn wycheproof(file: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/wycheproof")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn tests_of(group: &Value) -> &Vec<Value> {
    group["tests"].as_array().unwrap()
}

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap()
}

#[test]
fn wycheproof_ed25519_vectors_through_the_verify_path() {
    let file = wycheproof("ed25519_test.json");
    let mut seen = 0;
    for group in file["testGroups"].as_array().unwrap() {
        // The key arrives the way an outside issuer's would: as a JWK in a JWKS.
        let mut jwk = group["publicKeyJwk"].clone();
        jwk["kid"] = json!("w");
        let keys = KeySet::from_jwks_json(&json!({"keys": [jwk]}).to_string()).unwrap();
        let raw = VerifyingKey::ed25519("w", &hex(field(&group["publicKey"], "pk"))).unwrap();
        for test in tests_of(group) {
            seen += 1;
            let (msg, sig) = (hex(field(test, "msg")), hex(field(test, "sig")));
            let want = field(test, "result") == "valid";
            assert_eq!(
                raw.verify(&msg, &sig).is_ok(),
                want,
                "tcId {}",
                test["tcId"]
            );
            let from_jwk = keys.get("w").unwrap();
            assert_eq!(
                from_jwk.verify(&msg, &sig).is_ok(),
                want,
                "tcId {}",
                test["tcId"]
            );
        }
    }
    assert_eq!(seen, 151);
}

#[test]
fn wycheproof_ecdsa_p256_p1363_vectors_through_the_verify_path() {
    let file = wycheproof("ecdsa_secp256r1_sha256_p1363_test.json");
    let mut seen = 0;
    let mut der_rejections = 0;
    for group in file["testGroups"].as_array().unwrap() {
        let point = hex(field(&group["publicKey"], "uncompressed"));
        let key = VerifyingKey::p256("w", &point[1..33], &point[33..65]).unwrap();
        for test in tests_of(group) {
            seen += 1;
            let (msg, sig) = (hex(field(test, "msg")), hex(field(test, "sig")));
            let want = field(test, "result") == "valid";
            let got = key.verify(&msg, &sig);
            assert_eq!(
                got.is_ok(),
                want,
                "tcId {} {:?}",
                test["tcId"],
                test["comment"]
            );
            if got == Err(JwtError::DerSignature) {
                der_rejections += 1;
            }
        }
    }
    assert_eq!(seen, 262);
    // No vector here is DER-encoded, so none may be reported as one.
    assert_eq!(der_rejections, 0);
}

#[test]
fn wycheproof_hmac_sha256_vectors_through_the_verify_path() {
    let file = wycheproof("hmac_sha256_test.json");
    let mut seen = 0;
    for group in file["testGroups"].as_array().unwrap() {
        let key_bits = group["keySize"].as_u64().unwrap();
        let tag_bits = group["tagSize"].as_u64().unwrap();
        for test in tests_of(group) {
            seen += 1;
            let key_bytes = hex(field(test, "key"));
            let (msg, tag) = (hex(field(test, "msg")), hex(field(test, "tag")));
            let key = VerifyingKey::hmac("w", &key_bytes);
            if key_bits < 256 {
                // RFC 7518 §3.2: HS256 keys are at least 256 bits.
                assert_eq!(key.unwrap_err(), JwtError::WeakKey);
                continue;
            }
            let key = key.unwrap();
            let got = key.verify(&msg, &tag).is_ok();
            if tag_bits < 256 {
                // JWS HS256 carries the full tag; a truncated one never verifies.
                assert!(!got, "tcId {}", test["tcId"]);
            } else {
                assert_eq!(
                    got,
                    field(test, "result") == "valid",
                    "tcId {}",
                    test["tcId"]
                );
            }
        }
    }
    assert_eq!(seen, 174);
}
