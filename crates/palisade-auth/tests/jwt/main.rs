//! JWT issue and verify: RFC and Wycheproof vectors, the attack suite, key
//! rotation, and interoperability with the `jsonwebtoken` crate.

mod attacks;
mod interop;
mod pyjwt;
mod remote;
mod rotation;
mod vectors;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use palisade_auth::jwt::{
    Algorithm, Issuer, IssuerConfig, KeyRing, NewClaims, RotationPolicy, Verifier, VerifierConfig,
};
use palisade_core::{Clock, ManualClock, SharedClock};
use serde_json::{Value, json};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub const ISSUER: &str = "https://auth.palisade.test";
pub const AUDIENCE: &str = "orders-api";

/// A key ring, an issuer and a verifier sharing a manual clock.
#[derive(Debug)]
pub struct Fixture {
    pub clock: ManualClock,
    pub ring: Arc<RwLock<KeyRing>>,
    pub issuer: Issuer,
    pub verifier: Verifier,
}

impl Fixture {
    pub fn new(alg: Algorithm) -> Self {
        Self::with_config(alg, |_| {})
    }

    pub fn with_config(alg: Algorithm, adjust: impl FnOnce(&mut VerifierConfig)) -> Self {
        let clock = ManualClock::new();
        let shared: SharedClock = Arc::new(clock.clone());
        let policy = RotationPolicy {
            algorithm: alg,
            ..RotationPolicy::default()
        };
        let mut ring = KeyRing::new(policy);
        ring.rotate(clock.now_unix_ms()).expect("first key");
        let mut config = VerifierConfig::new(ISSUER, vec![AUDIENCE.to_owned()]);
        if alg == Algorithm::HS256 {
            config.allowed_algorithms.push(Algorithm::HS256);
        }
        adjust(&mut config);
        let verifier = Verifier::new(config, ring.key_set(clock.now_unix_ms()), shared.clone())
            .expect("verifier");
        let ring = Arc::new(RwLock::new(ring));
        let issuer = Issuer::new(
            IssuerConfig {
                issuer: ISSUER.to_owned(),
                typ: Some("at+jwt".to_owned()),
                max_ttl: Duration::from_secs(3600),
            },
            Arc::clone(&ring),
            shared,
        )
        .expect("issuer");
        Self {
            clock,
            ring,
            issuer,
            verifier,
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_unix_ms() / 1000
    }

    pub fn issue(&self, ttl_s: u64) -> String {
        let claims = NewClaims {
            sub: "user-42".to_owned(),
            aud: vec![AUDIENCE.to_owned()],
            extra: serde_json::Map::from_iter([("scope".to_owned(), json!("orders:read"))]),
        };
        self.issuer
            .issue(claims, Duration::from_secs(ttl_s))
            .expect("issue")
    }

    /// Rotates the ring and hands the verifier the new key set, as the service does.
    pub fn rotate(&self) -> String {
        let now = self.clock.now_unix_ms();
        let mut ring = self.ring.write().unwrap();
        let kid = ring.rotate(now).expect("rotate").kid().to_owned();
        self.verifier.replace_keys(ring.key_set(now));
        kid
    }

    pub fn refresh_verifier_keys(&self) {
        let now = self.clock.now_unix_ms();
        self.verifier
            .replace_keys(self.ring.read().unwrap().key_set(now));
    }

    pub fn current_kid(&self) -> String {
        let now = self.clock.now_unix_ms();
        self.ring
            .read()
            .unwrap()
            .current_signer(now)
            .unwrap()
            .kid()
            .to_owned()
    }

    /// Standard valid claims at the fixture's current time.
    pub fn claims(&self) -> Value {
        let now = self.now();
        json!({
            "iss": ISSUER, "sub": "user-42", "aud": AUDIENCE,
            "iat": now, "nbf": now, "exp": now + 600, "jti": "t-1"
        })
    }

    /// The standard header for the current key.
    pub fn header(&self) -> Value {
        let alg = self.ring.read().unwrap().policy().algorithm;
        json!({ "alg": alg.as_str(), "kid": self.current_kid(), "typ": "at+jwt" })
    }

    /// Signs arbitrary header and claims with the current key's private material,
    /// outside the issuer, so tests can build tokens the issuer would never make.
    pub fn forge(&self, header: &Value, claims: &Value) -> String {
        let now = self.clock.now_unix_ms();
        let ring = self.ring.read().unwrap();
        let key = ring.current_signer(now).unwrap();
        sign_with(
            key.algorithm(),
            key.record().material.expose(),
            header,
            claims,
        )
    }
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// Signs `header.claims` with private key bytes (PKCS#8, or an HMAC secret).
pub fn sign_with(alg: Algorithm, material: &[u8], header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let sig = sign_raw(alg, material, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

pub fn sign_raw(alg: Algorithm, material: &[u8], msg: &[u8]) -> Vec<u8> {
    match alg {
        Algorithm::EdDSA => Ed25519KeyPair::from_pkcs8(material)
            .unwrap()
            .sign(msg)
            .as_ref()
            .to_vec(),
        Algorithm::ES256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, material)
            .unwrap()
            .sign(&SystemRandom::new(), msg)
            .unwrap()
            .as_ref()
            .to_vec(),
        Algorithm::HS256 => {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, material);
            aws_lc_rs::hmac::sign(&key, msg).as_ref().to_vec()
        }
        Algorithm::RS256 => {
            let pair = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(material).unwrap();
            let mut out = vec![0; pair.public_modulus_len()];
            pair.sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                msg,
                &mut out,
            )
            .unwrap();
            out
        }
    }
}

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}
