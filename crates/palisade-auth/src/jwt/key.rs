//! Keys: the public half that verifies (parsed once, when loaded, so a bad key
//! fails at start-up and not on a request) and the private half that signs.
//! Each key is bound to exactly one algorithm; that binding is what defeats
//! algorithm confusion, so nothing here takes an algorithm from a token.

use super::{Algorithm, JwtError};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
    RsaKeyPair, RsaPublicKeyComponents,
};
use aws_lc_rs::{hmac, rand};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// Shortest HS256 secret accepted: RFC 7518 §3.2 requires a key at least as long
/// as the hash output.
pub const MIN_HMAC_SECRET_LEN: usize = 32;

/// Length of an ES256 signature in JWS form (raw r‖s).
const ES256_SIGNATURE_LEN: usize = 64;

/// Private key bytes: PKCS#8 DER for key pairs, the raw secret for HS256.
/// `Debug` prints `[redacted]`, memory is zeroed on drop, and serde writes
/// base64url so a storage backend (sealed at rest, later work) can keep it.
#[derive(Clone)]
pub struct KeyMaterial(Zeroizing<Vec<u8>>);

impl PartialEq for KeyMaterial {
    /// Constant-time, like every comparison of secrets in Palisade.
    fn eq(&self, other: &Self) -> bool {
        self.expose().ct_eq(other.expose()).into()
    }
}

impl Eq for KeyMaterial {}

impl KeyMaterial {
    /// Wraps private key bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The bytes themselves. Never log what this returns.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for KeyMaterial {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let encoded = Zeroizing::new(URL_SAFE_NO_PAD.encode(self.expose()));
        serializer.serialize_str(&encoded)
    }
}

impl<'de> Deserialize<'de> for KeyMaterial {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let encoded = Zeroizing::new(String::deserialize(deserializer)?);
        URL_SAFE_NO_PAD
            .decode(encoded.as_bytes())
            .map(Self::new)
            .map_err(serde::de::Error::custom)
    }
}

/// The public numbers of an asymmetric key, kept to publish it as a JWK.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum PublicParams {
    /// Ed25519: the 32-byte point.
    Okp { x: Vec<u8> },
    /// P-256: the affine coordinates, 32 bytes each.
    Ec { x: Vec<u8>, y: Vec<u8> },
    /// RSA: big-endian modulus and exponent without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

enum Verify {
    Public {
        parsed: ParsedPublicKey,
        params: PublicParams,
    },
    // Boxed: an HMAC key holds both precomputed hash states, several times the
    // size of the other variant.
    Hmac(Box<hmac::Key>),
}

/// A key that verifies signatures of one algorithm, under one key id.
pub struct VerifyingKey {
    kid: String,
    alg: Algorithm,
    verify: Verify,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// An Ed25519 (EdDSA) key from its 32-byte public point.
    pub fn ed25519(kid: impl Into<String>, x: &[u8]) -> Result<Self, JwtError> {
        if x.len() != 32 {
            return Err(JwtError::InvalidKey("Ed25519 public keys are 32 bytes"));
        }
        let parsed = ParsedPublicKey::new(&ED25519, x)
            .map_err(|_| JwtError::InvalidKey("not an Ed25519 public key"))?;
        Ok(Self::public(
            kid,
            Algorithm::EdDSA,
            parsed,
            PublicParams::Okp { x: x.to_vec() },
        ))
    }

    /// A P-256 (ES256) key from its affine coordinates, 32 bytes each. The point
    /// is checked to lie on the curve.
    pub fn p256(kid: impl Into<String>, x: &[u8], y: &[u8]) -> Result<Self, JwtError> {
        if x.len() != 32 || y.len() != 32 {
            return Err(JwtError::InvalidKey("P-256 coordinates are 32 bytes"));
        }
        let mut point = Vec::with_capacity(65);
        point.push(0x04);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        let parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .map_err(|_| JwtError::InvalidKey("not a P-256 public key"))?;
        let params = PublicParams::Ec {
            x: x.to_vec(),
            y: y.to_vec(),
        };
        Ok(Self::public(kid, Algorithm::ES256, parsed, params))
    }

    /// An RSA (RS256) key from its big-endian modulus and exponent. Moduli under
    /// 2048 bits are refused.
    pub fn rsa(kid: impl Into<String>, n: &[u8], e: &[u8]) -> Result<Self, JwtError> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        if n.len() < 256 {
            return Err(JwtError::InvalidKey(
                "RSA moduli must be at least 2048 bits",
            ));
        }
        let parsed = RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
            .map_err(|_| JwtError::InvalidKey("not a usable RSA public key"))?;
        let params = PublicParams::Rsa {
            n: n.to_vec(),
            e: e.to_vec(),
        };
        Ok(Self::public(kid, Algorithm::RS256, parsed, params))
    }

    /// An HS256 key from a shared secret of at least [`MIN_HMAC_SECRET_LEN`] bytes.
    pub fn hmac(kid: impl Into<String>, secret: &[u8]) -> Result<Self, JwtError> {
        if secret.len() < MIN_HMAC_SECRET_LEN {
            return Err(JwtError::WeakKey);
        }
        Ok(Self {
            kid: kid.into(),
            alg: Algorithm::HS256,
            verify: Verify::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret))),
        })
    }

    fn public(
        kid: impl Into<String>,
        alg: Algorithm,
        parsed: ParsedPublicKey,
        params: PublicParams,
    ) -> Self {
        Self {
            kid: kid.into(),
            alg,
            verify: Verify::Public { parsed, params },
        }
    }

    /// The key id tokens name in their `kid` header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    pub(crate) fn public_params(&self) -> Option<&PublicParams> {
        match &self.verify {
            Verify::Public { params, .. } => Some(params),
            Verify::Hmac(_) => None,
        }
    }

    /// Checks `signature` over `signing_input` (the `header.payload` text of a
    /// compact JWS). This is the single place every token's signature is checked.
    ///
    /// An ES256 signature must be exactly 64 bytes; one that looks like ASN.1 DER
    /// gets [`JwtError::DerSignature`] so the sender can see what it did wrong.
    /// HMAC tags are compared in constant time by aws-lc.
    pub fn verify(&self, signing_input: &[u8], signature: &[u8]) -> Result<(), JwtError> {
        if self.alg == Algorithm::ES256 && signature.len() != ES256_SIGNATURE_LEN {
            return Err(if looks_like_der_sequence(signature) {
                JwtError::DerSignature
            } else {
                JwtError::BadSignature
            });
        }
        let ok = match &self.verify {
            Verify::Public { parsed, .. } => parsed.verify_sig(signing_input, signature).is_ok(),
            Verify::Hmac(key) => hmac::verify(key, signing_input, signature).is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(JwtError::BadSignature)
        }
    }
}

/// An ASN.1 SEQUENCE whose length byte(s) account for the rest of the input: what
/// an ECDSA signature in DER (X9.62) looks like.
fn looks_like_der_sequence(sig: &[u8]) -> bool {
    match sig {
        [0x30, len, rest @ ..] if *len < 0x80 => usize::from(*len) == rest.len(),
        [0x30, 0x81, len, rest @ ..] => usize::from(*len) == rest.len(),
        _ => false,
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// The private half of a key, parsed once from its [`KeyMaterial`].
pub(crate) enum Signer {
    Ed25519(Ed25519KeyPair),
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
    Hs256(Box<hmac::Key>),
}

impl Signer {
    /// Parses private key material for `alg` (PKCS#8 DER, or the raw HS256 secret).
    pub(crate) fn from_material(alg: Algorithm, material: &KeyMaterial) -> Result<Self, JwtError> {
        let bytes = material.expose();
        match alg {
            Algorithm::EdDSA => Ed25519KeyPair::from_pkcs8(bytes)
                .map(Self::Ed25519)
                .map_err(|_| JwtError::InvalidKey("not an Ed25519 PKCS#8 key")),
            Algorithm::ES256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, bytes)
                .map(Self::Es256)
                .map_err(|_| JwtError::InvalidKey("not a P-256 PKCS#8 key")),
            Algorithm::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(bytes)
                    .map_err(|_| JwtError::InvalidKey("not an RSA PKCS#8 key"))?;
                if pair.public_modulus_len() < 256 {
                    return Err(JwtError::InvalidKey(
                        "RSA moduli must be at least 2048 bits",
                    ));
                }
                Ok(Self::Rs256(pair))
            }
            Algorithm::HS256 => {
                if bytes.len() < MIN_HMAC_SECRET_LEN {
                    return Err(JwtError::WeakKey);
                }
                Ok(Self::Hs256(Box::new(hmac::Key::new(
                    hmac::HMAC_SHA256,
                    bytes,
                ))))
            }
        }
    }

    /// Generates fresh private key material for `alg` from the system RNG.
    pub(crate) fn generate(alg: Algorithm) -> Result<KeyMaterial, JwtError> {
        let bytes = match alg {
            Algorithm::EdDSA => Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8())
                .map_err(|_| JwtError::Crypto)?
                .as_ref()
                .to_vec(),
            Algorithm::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|k| k.to_pkcs8v1())
                .map_err(|_| JwtError::Crypto)?
                .as_ref()
                .to_vec(),
            Algorithm::RS256 => {
                let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| JwtError::Crypto)?;
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                    pair.as_der().map_err(|_| JwtError::Crypto)?;
                der.as_ref().to_vec()
            }
            Algorithm::HS256 => {
                let mut secret = vec![0u8; 64];
                rand::fill(&mut secret).map_err(|_| JwtError::Crypto)?;
                secret
            }
        };
        Ok(KeyMaterial::new(bytes))
    }

    /// The verifying half under `kid`: the public key, or the same HMAC secret.
    pub(crate) fn verifying_key(
        &self,
        kid: &str,
        material: &KeyMaterial,
    ) -> Result<VerifyingKey, JwtError> {
        match self {
            Self::Ed25519(pair) => VerifyingKey::ed25519(kid, pair.public_key().as_ref()),
            Self::Es256(pair) => {
                // An uncompressed SEC1 point: 0x04 ‖ x ‖ y.
                match pair.public_key().as_ref() {
                    [0x04, xy @ ..] if xy.len() == 64 => {
                        VerifyingKey::p256(kid, &xy[..32], &xy[32..])
                    }
                    _ => Err(JwtError::InvalidKey("unexpected P-256 public key encoding")),
                }
            }
            Self::Rs256(pair) => {
                let public = pair.public_key();
                VerifyingKey::rsa(
                    kid,
                    public.modulus().big_endian_without_leading_zero(),
                    public.exponent().big_endian_without_leading_zero(),
                )
            }
            Self::Hs256(_) => VerifyingKey::hmac(kid, material.expose()),
        }
    }

    /// Signs `message`, returning the JWS signature bytes (raw r‖s for ES256).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JwtError> {
        match self {
            Self::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Self::Es256(pair) => {
                let rng = rand::SystemRandom::new();
                pair.sign(&rng, message)
                    .map(|s| s.as_ref().to_vec())
                    .map_err(|_| JwtError::Crypto)
            }
            Self::Rs256(pair) => {
                let rng = rand::SystemRandom::new();
                let mut out = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut out)
                    .map_err(|_| JwtError::Crypto)?;
                Ok(out)
            }
            Self::Hs256(key) => Ok(hmac::sign(key, message).as_ref().to_vec()),
        }
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_der_sequences_by_their_length_bytes() {
        assert!(looks_like_der_sequence(&[0x30, 0x02, 0x02, 0x00]));
        assert!(!looks_like_der_sequence(&[0x30, 0x03, 0x02, 0x00]));
        let long = [[0x30, 0x81, 0x80].as_slice(), &[0u8; 0x80]].concat();
        assert!(looks_like_der_sequence(&long));
        assert!(!looks_like_der_sequence(&[0x31, 0x00]));
        assert!(!looks_like_der_sequence(&[]));
    }

    #[test]
    fn key_material_never_prints_and_round_trips_as_base64url() {
        let material = KeyMaterial::new(vec![0xfb; 40]);
        assert_eq!(format!("{material:?}"), "[redacted]");
        let json = serde_json::to_string(&material).unwrap();
        assert_eq!(
            serde_json::from_str::<KeyMaterial>(&json).unwrap(),
            material
        );
        assert_ne!(KeyMaterial::new(vec![0xfb; 39]), material);
    }

    #[test]
    fn generated_keys_sign_what_their_verifying_half_accepts() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::HS256] {
            let material = Signer::generate(alg).unwrap();
            let signer = Signer::from_material(alg, &material).unwrap();
            let key = signer.verifying_key("k", &material).unwrap();
            let sig = signer.sign(b"header.payload").unwrap();
            assert_eq!(key.verify(b"header.payload", &sig), Ok(()));
            assert_eq!(
                key.verify(b"header.payloae", &sig),
                Err(JwtError::BadSignature)
            );
        }
    }
}
