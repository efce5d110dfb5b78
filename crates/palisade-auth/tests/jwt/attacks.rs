//! One test per rejection of issue 6 item 1, plus tampering and rotation.

use super::*;
use palisade_auth::jwt::{JwtError, KeySet, VerifyingKey};

fn ed() -> Fixture {
    Fixture::new(Algorithm::EdDSA)
}

#[test]
fn accepts_a_token_it_issued() {
    let f = ed();
    let claims = f.verifier.verify(&f.issue(300), AUDIENCE).unwrap();
    assert_eq!(claims.sub.as_deref(), Some("user-42"));
    assert_eq!(claims.iss.as_deref(), Some(ISSUER));
    assert_eq!(claims.extra["scope"], "orders:read");
    assert_eq!(claims.exp, Some(f.now() + 300));
    let jti = claims.jti.unwrap();
    assert_eq!(uuid::Uuid::parse_str(&jti).unwrap().get_version_num(), 7);
}

#[test]
fn rejects_alg_none_in_any_letter_case() {
    let f = ed();
    for none in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": none, "kid": f.current_kid(), "typ": "at+jwt"});
        let token = format!("{}.", signing_input(&header, &f.claims()));
        assert_eq!(
            f.verifier.verify(&token, AUDIENCE),
            Err(JwtError::AlgNone),
            "{none}"
        );
        // Also with a signature attached: the header decides, not the signature.
        let signed = f.forge(&header, &f.claims());
        assert_eq!(f.verifier.verify(&signed, AUDIENCE), Err(JwtError::AlgNone));
    }
}

#[test]
fn rejects_token_signed_with_public_key_as_hmac_secret() {
    // HS256 is even enabled: the key's single algorithm (EdDSA) still decides.
    let f = Fixture::with_config(Algorithm::EdDSA, |c| {
        c.allowed_algorithms.push(Algorithm::HS256);
    });
    let jwks: Value =
        serde_json::from_str(&f.ring.read().unwrap().jwks(f.clock.now_unix_ms()).json).unwrap();
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let public_key = URL_SAFE_NO_PAD.decode(&x).unwrap();
    let header = json!({"alg": "HS256", "kid": f.current_kid(), "typ": "at+jwt"});
    for secret in [public_key.as_slice(), x.as_bytes()] {
        let token = sign_with(Algorithm::HS256, secret, &header, &f.claims());
        assert_eq!(
            f.verifier.verify(&token, AUDIENCE),
            Err(JwtError::AlgorithmConfusion)
        );
    }
    let hs512 = json!({"alg": "HS512", "kid": f.current_kid(), "typ": "at+jwt"});
    let token = f.forge(&hs512, &f.claims());
    assert_eq!(
        f.verifier.verify(&token, AUDIENCE),
        Err(JwtError::AlgorithmConfusion)
    );
}

#[test]
fn rejects_token_whose_alg_differs_from_its_keys() {
    let f = ed();
    let header = json!({"alg": "ES256", "kid": f.current_kid(), "typ": "at+jwt"});
    let token = f.forge(&header, &f.claims());
    assert_eq!(
        f.verifier.verify(&token, AUDIENCE),
        Err(JwtError::AlgorithmMismatch)
    );
}

#[test]
fn rejects_algorithms_palisade_does_not_implement() {
    let f = ed();
    for alg in ["PS256", "ES384", "RS512", "EdDSA2"] {
        let header = json!({"alg": alg, "kid": f.current_kid(), "typ": "at+jwt"});
        let token = f.forge(&header, &f.claims());
        assert_eq!(
            f.verifier.verify(&token, AUDIENCE),
            Err(JwtError::UnsupportedAlgorithm)
        );
    }
}

#[test]
fn rejects_hs256_unless_the_verifier_enables_it() {
    let f = Fixture::with_config(Algorithm::HS256, |c| {
        c.allowed_algorithms.retain(|a| *a != Algorithm::HS256);
    });
    let token = f.issue(300);
    assert_eq!(
        f.verifier.verify(&token, AUDIENCE),
        Err(JwtError::AlgorithmNotAllowed)
    );
    let enabled = Fixture::new(Algorithm::HS256);
    assert!(
        enabled
            .verifier
            .verify(&enabled.issue(300), AUDIENCE)
            .is_ok()
    );
}

#[test]
fn rejects_unknown_kid() {
    let f = ed();
    let header = json!({"alg": "EdDSA", "kid": "v9-not-a-key", "typ": "at+jwt"});
    let token = f.forge(&header, &f.claims());
    assert_eq!(
        f.verifier.verify(&token, AUDIENCE),
        Err(JwtError::UnknownKid)
    );
}

#[test]
fn rejects_token_without_kid_when_kid_is_required() {
    let f = ed();
    let header = json!({"alg": "EdDSA", "typ": "at+jwt"});
    let token = f.forge(&header, &f.claims());
    assert_eq!(
        f.verifier.verify(&token, AUDIENCE),
        Err(JwtError::MissingKid)
    );
}

#[test]
fn rejects_crit_header() {
    let f = ed();
    for crit in [json!(["exp"]), json!([]), json!(null)] {
        let mut header = f.header();
        header["crit"] = crit;
        header["exp"] = json!(1);
        let token = f.forge(&header, &f.claims());
        assert_eq!(
            f.verifier.verify(&token, AUDIENCE),
            Err(JwtError::CritHeader)
        );
    }
}

#[test]
fn rejects_headers_that_name_or_carry_a_key_without_fetching() {
    let f = ed();
    let cases = [
        ("jku", json!("https://attacker.example/jwks.json")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        (
            "jwk",
            json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
        ),
        ("x5c", json!(["MIIB"])),
        ("jku", json!(null)),
    ];
    for (member, value) in cases {
        let mut header = f.header();
        header[member] = value;
        let token = f.forge(&header, &f.claims());
        let err = f.verifier.verify(&token, AUDIENCE).unwrap_err();
        assert_eq!(err, JwtError::RemoteKeyHeader(member));
        assert_eq!(err.code(), "remote_key_header");
    }
}

#[test]
fn rejects_wrong_or_missing_typ_and_accepts_the_media_type_forms() {
    let f = ed();
    for typ in [
        Some("JWT"),
        Some("at+jwt+extra"),
        Some("application/jwt"),
        None,
    ] {
        let mut header = f.header();
        match typ {
            Some(t) => header["typ"] = json!(t),
            None => _ = header.as_object_mut().unwrap().remove("typ"),
        }
        let token = f.forge(&header, &f.claims());
        assert_eq!(
            f.verifier.verify(&token, AUDIENCE),
            Err(JwtError::BadTyp),
            "{typ:?}"
        );
    }
    for typ in ["AT+JWT", "application/at+jwt", "Application/At+Jwt"] {
        let mut header = f.header();
        header["typ"] = json!(typ);
        let token = f.forge(&header, &f.claims());
        assert!(f.verifier.verify(&token, AUDIENCE).is_ok(), "{typ}");
    }
}

#[test]
fn rejects_expired_token_beyond_leeway_only() {
    let f = ed();
    let token = f.issue(300);
    f.clock.advance(Duration::from_secs(300 + 59));
    assert!(
        f.verifier.verify(&token, AUDIENCE).is_ok(),
        "inside the 60 s leeway"
    );
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(f.verifier.verify(&token, AUDIENCE), Err(JwtError::Expired));
}

#[test]
fn rejects_not_yet_valid_token_beyond_leeway() {
    let f = ed();
    let mut claims = f.claims();
    claims["nbf"] = json!(f.now() + 61);
    claims["iat"] = json!(f.now());
    let token = f.forge(&f.header(), &claims);
    assert_eq!(
        f.verifier.verify(&token, AUDIENCE),
        Err(JwtError::NotYetValid)
    );
    claims["nbf"] = json!(f.now() + 60);
    let token = f.forge(&f.header(), &claims);
    assert!(f.verifier.verify(&token, AUDIENCE).is_ok());
}

#[test]
fn rejects_token_issued_in_the_future_beyond_leeway() {
    let f = ed();
    let mut claims = f.claims();
    claims.as_object_mut().unwrap().remove("nbf");
    claims["iat"] = json!(f.now() + 120);
    let token = f.forge(&f.header(), &claims);
    assert_eq!(
        f.verifier.verify(&token, AUDIENCE),
        Err(JwtError::IssuedInFuture)
    );
}

#[test]
fn rejects_wrong_issuer() {
    let f = ed();
    let mut claims = f.claims();
    claims["iss"] = json!("https://evil.test");
    let token = f.forge(&f.header(), &claims);
    assert_eq!(
        f.verifier.verify(&token, AUDIENCE),
        Err(JwtError::BadIssuer)
    );
    claims.as_object_mut().unwrap().remove("iss");
    let token = f.forge(&f.header(), &claims);
    assert_eq!(
        f.verifier.verify(&token, AUDIENCE),
        Err(JwtError::MissingClaim("iss"))
    );
}

#[test]
fn rejects_wrong_audience() {
    let f = ed();
    let mut claims = f.claims();
    claims["aud"] = json!(["billing-api", "other"]);
    let token = f.forge(&f.header(), &claims);
    assert_eq!(
        f.verifier.verify(&token, AUDIENCE),
        Err(JwtError::BadAudience)
    );
    claims["aud"] = json!(["billing-api", AUDIENCE]);
    let token = f.forge(&f.header(), &claims);
    assert!(f.verifier.verify(&token, AUDIENCE).is_ok());
    // Asking for an audience the verifier was not configured for is refused too.
    claims["aud"] = json!("billing-api");
    let token = f.forge(&f.header(), &claims);
    assert_eq!(
        f.verifier.verify(&token, "billing-api"),
        Err(JwtError::BadAudience)
    );
}

#[test]
fn rejects_lifetime_over_the_configured_maximum() {
    let f = ed();
    let mut claims = f.claims();
    claims["exp"] = json!(f.now() + 3601);
    let token = f.forge(&f.header(), &claims);
    assert_eq!(
        f.verifier.verify(&token, AUDIENCE),
        Err(JwtError::LifetimeTooLong)
    );
    // Without iat or nbf the lifetime is measured from now.
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "exp": f.now() + 7200});
    let token = f.forge(&f.header(), &claims);
    assert_eq!(
        f.verifier.verify(&token, AUDIENCE),
        Err(JwtError::LifetimeTooLong)
    );
}

#[test]
fn rejects_oversized_token_before_decoding_anything() {
    let f = ed();
    let mut claims = f.claims();
    claims["padding"] = json!("x".repeat(9000));
    let token = f.forge(&f.header(), &claims);
    let err = f.verifier.verify(&token, AUDIENCE).unwrap_err();
    assert!(
        matches!(err, JwtError::TooLarge { max: 8192, .. }),
        "{err:?}"
    );
    // Garbage of the same size is refused the same way: nothing was parsed.
    let garbage = "!".repeat(8193);
    assert!(matches!(
        f.verifier.verify(&garbage, AUDIENCE),
        Err(JwtError::TooLarge { .. })
    ));
}

/// Wraps a raw r‖s ECDSA signature in ASN.1 DER.
fn der_from_raw(raw: &[u8]) -> Vec<u8> {
    fn int(v: &[u8]) -> Vec<u8> {
        let v = &v[v.iter().position(|b| *b != 0).unwrap_or(v.len() - 1)..];
        let mut out = vec![0x02];
        if v[0] & 0x80 != 0 {
            out.push(v.len() as u8 + 1);
            out.push(0);
        } else {
            out.push(v.len() as u8);
        }
        out.extend_from_slice(v);
        out
    }
    let body = [int(&raw[..32]), int(&raw[32..])].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

#[test]
fn rejects_es256_signature_in_der_instead_of_raw_r_s() {
    let f = Fixture::new(Algorithm::ES256);
    let token = f.issue(300);
    assert!(f.verifier.verify(&token, AUDIENCE).is_ok());
    let (input, sig) = token.rsplit_once('.').unwrap();
    let raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let der = der_from_raw(&raw);
    let der_token = format!("{input}.{}", b64(&der));
    assert_eq!(
        f.verifier.verify(&der_token, AUDIENCE),
        Err(JwtError::DerSignature)
    );
    // A truncated raw signature is simply a bad signature.
    let short = format!("{input}.{}", b64(&raw[..63]));
    assert_eq!(
        f.verifier.verify(&short, AUDIENCE),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn rejects_tampered_payload() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::HS256] {
        let f = Fixture::new(alg);
        let token = f.issue(300);
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["sub"] = json!("admin");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64(claims.to_string().as_bytes()),
            parts[2]
        );
        assert_eq!(
            f.verifier.verify(&forged, AUDIENCE),
            Err(JwtError::BadSignature),
            "{alg}"
        );
    }
}

#[test]
fn rejects_tampered_signature() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::HS256] {
        let f = Fixture::new(alg);
        let token = f.issue(300);
        let (input, sig) = token.rsplit_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
        for i in [0, raw.len() / 2, raw.len() - 1] {
            raw[i] ^= 0x01;
            let forged = format!("{input}.{}", b64(&raw));
            assert_eq!(
                f.verifier.verify(&forged, AUDIENCE),
                Err(JwtError::BadSignature)
            );
            raw[i] ^= 0x01;
        }
        let stripped = format!("{input}.");
        assert_eq!(
            f.verifier.verify(&stripped, AUDIENCE),
            Err(JwtError::BadSignature)
        );
    }
}

#[test]
fn rejects_tampered_header() {
    let f = ed();
    let token = f.issue(300);
    let parts: Vec<&str> = token.split('.').collect();
    let mut header = f.header();
    header["typ"] = json!("application/at+jwt");
    let forged = format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        parts[1],
        parts[2]
    );
    assert_eq!(
        f.verifier.verify(&forged, AUDIENCE),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn rejects_token_signed_by_rotated_out_key_after_its_grace_period() {
    let f = ed();
    let old_material = {
        let ring = f.ring.read().unwrap();
        ring.current_signer(f.clock.now_unix_ms())
            .unwrap()
            .record()
            .material
            .clone()
    };
    let old_kid = f.current_kid();
    let old_token = f.issue(3600);
    f.rotate();
    // The new key takes over after the publish-ahead day; the old one's last
    // tokens live an hour, plus a minute of leeway.
    f.clock.advance(Duration::from_secs(24 * 3600));
    f.refresh_verifier_keys();
    assert_ne!(f.current_kid(), old_kid);
    f.clock.advance(Duration::from_secs(3600 + 60));
    // A fresh token forged with the old (perhaps leaked) key is refused: the key is unpublished.
    let header = json!({"alg": "EdDSA", "kid": old_kid, "typ": "at+jwt"});
    let forged = sign_with(
        Algorithm::EdDSA,
        old_material.expose(),
        &header,
        &f.claims(),
    );
    assert_eq!(
        f.verifier.verify(&forged, AUDIENCE),
        Err(JwtError::UnknownKid)
    );
    // Even a verifier whose key set was never refreshed refuses it.
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(
        f.verifier.verify(&old_token, AUDIENCE),
        Err(JwtError::UnknownKid)
    );
    // And the JWKS no longer lists it.
    let jwks = f.ring.read().unwrap().jwks(f.clock.now_unix_ms()).json;
    assert!(!jwks.contains(&old_kid));
}

#[test]
fn rejects_malformed_tokens() {
    let f = ed();
    let token = f.issue(300);
    let parts: Vec<&str> = token.split('.').collect();
    let padded = format!("{}=.{}.{}", parts[0], parts[1], parts[2]);
    let two_alg = b64(br#"{"alg":"none","alg":"EdDSA","typ":"at+jwt"}"#);
    let cases = [
        String::new(),
        "abc".to_owned(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{token}.extra.parts"),
        padded,
        format!("{}.{}.{}", b64(b"not json"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"[1,2]"), parts[1], parts[2]),
        format!("{two_alg}.{}.{}", parts[1], parts[2]),
    ];
    for case in cases {
        let err = f.verifier.verify(&case, AUDIENCE).unwrap_err();
        assert_eq!(err.code(), "malformed", "{case}: {err:?}");
    }
}

#[test]
fn rejects_duplicate_claims() {
    let f = ed();
    let now = f.now();
    let payload = format!(
        r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","sub":"user","sub":"admin","iat":{now},"exp":{}}}"#,
        now + 60
    );
    let input = format!(
        "{}.{}",
        b64(f.header().to_string().as_bytes()),
        b64(payload.as_bytes())
    );
    let ring = f.ring.read().unwrap();
    let material = ring
        .current_signer(f.clock.now_unix_ms())
        .unwrap()
        .record()
        .material
        .clone();
    let sig = sign_raw(Algorithm::EdDSA, material.expose(), input.as_bytes());
    let token = format!("{input}.{}", b64(&sig));
    assert_eq!(
        f.verifier.verify(&token, AUDIENCE).unwrap_err().code(),
        "malformed"
    );
}

#[test]
fn refuses_leeway_above_five_minutes() {
    let clock: SharedClock = Arc::new(ManualClock::new());
    let mut config = VerifierConfig::new(ISSUER, vec![AUDIENCE.to_owned()]);
    config.leeway = Duration::from_secs(301);
    let err = Verifier::new(config, KeySet::new(), clock).unwrap_err();
    assert_eq!(err.code(), "invalid_config");
}

#[test]
fn refuses_hmac_secrets_shorter_than_256_bits() {
    assert_eq!(
        VerifyingKey::hmac("k", &[7; 31]).unwrap_err(),
        JwtError::WeakKey
    );
    assert!(VerifyingKey::hmac("k", &[7; 32]).is_ok());
}

#[test]
fn every_rejection_has_its_own_code() {
    let errors = [
        JwtError::TooLarge { len: 1, max: 0 },
        JwtError::Malformed("x"),
        JwtError::AlgNone,
        JwtError::UnsupportedAlgorithm,
        JwtError::AlgorithmNotAllowed,
        JwtError::AlgorithmMismatch,
        JwtError::AlgorithmConfusion,
        JwtError::MissingKid,
        JwtError::UnknownKid,
        JwtError::CritHeader,
        JwtError::RemoteKeyHeader("jku"),
        JwtError::BadTyp,
        JwtError::DerSignature,
        JwtError::BadSignature,
        JwtError::Expired,
        JwtError::NotYetValid,
        JwtError::IssuedInFuture,
        JwtError::MissingClaim("exp"),
        JwtError::BadIssuer,
        JwtError::BadAudience,
        JwtError::LifetimeTooLong,
    ];
    let codes: std::collections::HashSet<_> = errors.iter().map(JwtError::code).collect();
    assert_eq!(codes.len(), errors.len());
    assert!(errors.iter().all(JwtError::is_token_rejection));
    assert!(!JwtError::WeakKey.is_token_rejection());
}
