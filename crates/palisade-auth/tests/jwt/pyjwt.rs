//! Interoperability with an independent implementation, PyJWT (PyPI, with
//! `cryptography`; installed by `scripts/test` from
//! `scripts/python-requirements.txt`): tokens Palisade issues verify in PyJWT
//! from the published JWKS alone, and tokens PyJWT signs verify in Palisade
//! from the public JWK it registered.

use super::*;
use palisade_auth::jwt::KeySet;
use std::process::Command;
use std::time::SystemTime;

/// Verifies `token` with PyJWT against the JWKS; prints the claims as JSON.
const VERIFY_WITH_JWKS: &str = r#"
import json, sys, jwt
jwks, token, alg, audience, issuer = sys.argv[1:6]
kid = jwt.get_unverified_header(token)["kid"]
key = jwt.PyJWKSet.from_json(jwks)[kid]
claims = jwt.decode(token, key.key, algorithms=[alg], audience=audience, issuer=issuer)
print(json.dumps(claims))
"#;

/// Signs a token with a fresh key of `alg`; prints {"jwk": public JWK, "token": ...}.
const SIGN_WITH_NEW_KEY: &str = r#"
import json, sys, time, jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
alg, audience, issuer = sys.argv[1:4]
if alg == "EdDSA":
    private = ed25519.Ed25519PrivateKey.generate()
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key()))
elif alg == "ES256":
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
else:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
jwk.update({"kid": "pyjwt-1", "alg": alg, "use": "sig"})
now = int(time.time())
claims = {"iss": issuer, "sub": "py-user", "aud": audience, "iat": now, "nbf": now,
          "exp": now + 300, "jti": "py-1", "scope": "orders:read"}
token = jwt.encode(claims, private, algorithm=alg, headers={"kid": "pyjwt-1", "typ": "at+jwt"})
print(json.dumps({"jwk": jwk, "token": token}))
"#;

fn python(script: &str, args: &[&str]) -> String {
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 (scripts/test installs PyJWT)");
    assert!(
        output.status.success(),
        "PyJWT failed (run scripts/test, which installs scripts/python-requirements.txt): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// A fixture whose clock reads the real time: PyJWT checks `exp` against it.
fn fixture_now(alg: Algorithm) -> Fixture {
    let f = Fixture::new(alg);
    f.clock.set_wall(SystemTime::now());
    f.refresh_verifier_keys();
    f
}

const ASYMMETRIC: [Algorithm; 3] = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];

#[test]
fn tokens_palisade_issues_verify_in_pyjwt_from_the_jwks_alone() {
    for alg in ASYMMETRIC {
        let f = fixture_now(alg);
        let token = f.issue(300);
        let jwks = f.ring.read().unwrap().jwks(f.clock.now_unix_ms()).json;
        let claims: Value = serde_json::from_str(&python(
            VERIFY_WITH_JWKS,
            &[&jwks, &token, alg.as_str(), AUDIENCE, ISSUER],
        ))
        .expect("claims JSON");
        assert_eq!(claims["sub"], "user-42", "{alg}");
        assert_eq!(claims["scope"], "orders:read", "{alg}");

        // The same check can fail: a token of another key is refused by PyJWT.
        let other = fixture_now(alg).issue(300);
        let refused = Command::new("python3")
            .arg("-c")
            .arg(VERIFY_WITH_JWKS)
            .args([
                jwks.as_str(),
                other.as_str(),
                alg.as_str(),
                AUDIENCE,
                ISSUER,
            ])
            .output()
            .expect("python3");
        assert!(
            !refused.status.success(),
            "{alg}: PyJWT accepted a token of an unknown key"
        );
    }
}

#[test]
fn tokens_pyjwt_signs_verify_in_palisade_with_the_key_registered() {
    for alg in ASYMMETRIC {
        let f = fixture_now(alg);
        let signed: Value = serde_json::from_str(&python(
            SIGN_WITH_NEW_KEY,
            &[alg.as_str(), AUDIENCE, ISSUER],
        ))
        .expect("JSON");
        let jwks = json!({"keys": [signed["jwk"]]}).to_string();
        let keys = KeySet::from_jwks_json(&jwks).expect("PyJWT's JWK");
        let token = signed["token"].as_str().expect("token");
        let claims = f
            .verifier
            .verify_with_jwks(token, AUDIENCE, &keys)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(claims.sub.as_deref(), Some("py-user"));

        // Tampered, it is refused.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"iss":"x","sub":"admin"}"#);
        parts[1] = &forged;
        assert!(
            f.verifier
                .verify_with_jwks(&parts.join("."), AUDIENCE, &keys)
                .is_err()
        );
    }
}
