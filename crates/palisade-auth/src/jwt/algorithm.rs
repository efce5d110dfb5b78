//! The JWS algorithms Palisade implements. Deliberately few: EdDSA (Ed25519) by
//! default, ES256 and RS256 for interoperability, HS256 only where a verifier
//! enables it. Anything else is rejected before a key is looked at.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A JWS `alg` value Palisade can sign and verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037). The default: small keys, fast, no nonce to get wrong.
    EdDSA,
    /// ECDSA P-256 with SHA-256, signature as raw r‖s (RFC 7518 §3.4).
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, moduli of 2048 to 8192 bits.
    RS256,
    /// HMAC-SHA-256 with a shared secret of at least 256 bits. Off by default.
    HS256,
}

impl Algorithm {
    /// The name used in the JWS header and in JWKs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::HS256 => "HS256",
        }
    }

    /// Parses a header `alg` value; names are case-sensitive (RFC 7515 §4.1.1).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Self::EdDSA),
            "ES256" => Some(Self::ES256),
            "RS256" => Some(Self::RS256),
            "HS256" => Some(Self::HS256),
            _ => None,
        }
    }

    /// Whether the algorithm uses a shared secret rather than a key pair.
    pub fn is_symmetric(self) -> bool {
        matches!(self, Self::HS256)
    }

    /// Whether `alg` names an HMAC algorithm of any size, including ones Palisade does
    /// not implement: such a token against a public key is algorithm confusion.
    pub(crate) fn name_is_hmac(name: &str) -> bool {
        matches!(name, "HS256" | "HS384" | "HS512")
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
