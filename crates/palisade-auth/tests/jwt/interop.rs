//! Interoperability with the `jsonwebtoken` crate, both directions, and outside
//! issuers' JWKS documents.

use super::*;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation, decode, encode, jwk::JwkSet};
use palisade_auth::jwt::{Claims, JwtError, KeySet};

fn jsonwebtoken_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
    }
}

fn decoding_key(f: &Fixture) -> DecodingKey {
    let now = f.clock.now_unix_ms();
    let ring = f.ring.read().unwrap();
    if ring.policy().algorithm == Algorithm::HS256 {
        let key = ring.current_signer(now).unwrap();
        return DecodingKey::from_secret(key.record().material.expose());
    }
    let set: JwkSet = serde_json::from_str(&ring.jwks(now).json).unwrap();
    DecodingKey::from_jwk(&set.keys[0]).unwrap()
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(jsonwebtoken_alg(alg));
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[AUDIENCE]);
    // jsonwebtoken reads the system clock; the fixture's clock is manual.
    v.validate_exp = false;
    v.required_spec_claims.clear();
    v
}

#[test]
fn tokens_palisade_issues_verify_with_jsonwebtoken() {
    for alg in [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::RS256,
        Algorithm::HS256,
    ] {
        let f = Fixture::new(alg);
        let token = f.issue(300);
        let data = decode::<Claims>(&token, &decoding_key(&f), &validation(alg))
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(data.claims.sub.as_deref(), Some("user-42"));
        assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(data.header.kid, Some(f.current_kid()));
    }
}

#[test]
fn tokens_jsonwebtoken_signs_verify_with_palisade() {
    for alg in [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::RS256,
        Algorithm::HS256,
    ] {
        let f = Fixture::new(alg);
        let now = f.clock.now_unix_ms();
        let material = {
            let ring = f.ring.read().unwrap();
            ring.current_signer(now).unwrap().record().material.clone()
        };
        let key = match alg {
            Algorithm::EdDSA => EncodingKey::from_ed_der(material.expose()),
            Algorithm::ES256 => EncodingKey::from_ec_der(material.expose()),
            Algorithm::RS256 => EncodingKey::from_rsa_der(&rsa_pkcs1(material.expose())),
            Algorithm::HS256 => EncodingKey::from_secret(material.expose()),
        };
        let mut header = Header::new(jsonwebtoken_alg(alg));
        header.kid = Some(f.current_kid());
        header.typ = Some("at+jwt".to_owned());
        let token = encode(&header, &f.claims(), &key).unwrap();
        let claims = f
            .verifier
            .verify(&token, AUDIENCE)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(claims.jti.as_deref(), Some("t-1"));
    }
}

/// jsonwebtoken's aws-lc RSA signer wants PKCS#1 (`RsaKeyPair::from_der`); the
/// ring stores PKCS#8. The PKCS#1 key is the OCTET STRING at the end of PKCS#8.
fn rsa_pkcs1(pkcs8: &[u8]) -> Vec<u8> {
    // PKCS#8: SEQ { INTEGER 0, SEQ { OID rsaEncryption, NULL }, OCTET STRING { pkcs1 } }
    let prefix_len = {
        // Skip the outer SEQUENCE header.
        let mut i = 1;
        i += if pkcs8[i] & 0x80 != 0 {
            1 + usize::from(pkcs8[i] & 0x7f)
        } else {
            1
        };
        i += 3; // INTEGER 0
        i += 2 + usize::from(pkcs8[i + 1]); // AlgorithmIdentifier
        assert_eq!(pkcs8[i], 0x04, "OCTET STRING");
        i += 1;
        i += if pkcs8[i] & 0x80 != 0 {
            1 + usize::from(pkcs8[i] & 0x7f)
        } else {
            1
        };
        i
    };
    pkcs8[prefix_len..].to_vec()
}

#[test]
fn verifies_outside_issuer_tokens_against_its_jwks_document() {
    let f = Fixture::new(Algorithm::ES256);
    let theirs = f.ring.read().unwrap().jwks(f.clock.now_unix_ms()).json;
    let mut doc: Value = serde_json::from_str(&theirs).unwrap();
    let keys = doc["keys"].as_array_mut().unwrap();
    // Keys Palisade must skip rather than fail on.
    keys.push(
        json!({"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "kid": "shared"}),
    );
    keys.push(json!({"kty": "EC", "crv": "P-384", "kid": "p384",
        "x": "AAAA", "y": "AAAA"}));
    keys.push(json!({"kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB"}));
    let set = KeySet::from_jwks_json(&doc.to_string()).unwrap();
    assert_eq!(set.len(), 1);

    let other = Verifier::new(
        VerifierConfig::new(ISSUER, vec![AUDIENCE.to_owned()]),
        KeySet::new(),
        Arc::new(f.clock.clone()),
    )
    .unwrap();
    let token = f.issue(60);
    assert_eq!(other.verify(&token, AUDIENCE), Err(JwtError::UnknownKid));
    assert!(other.verify_with_jwks(&token, AUDIENCE, &set).is_ok());
}

#[test]
fn refuses_jwks_documents_that_are_not_usable() {
    let cases = [
        "not json",
        r#"{"keys":[]}"#,
        r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"a"}]}"#,
        // A key whose declared alg contradicts its type.
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"ES256","kid":"a",
            "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
        // A point that is not on the curve.
        r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"a",
            "x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE"}]}"#,
        // An RSA modulus under 2048 bits.
        r#"{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}"#,
    ];
    for case in cases {
        assert_eq!(
            KeySet::from_jwks_json(case).unwrap_err().code(),
            "invalid_jwks",
            "{case}"
        );
    }
}
