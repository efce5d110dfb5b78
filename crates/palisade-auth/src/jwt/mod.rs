//! JSON Web Tokens: issuing Palisade's own access tokens and verifying tokens,
//! Palisade's or an outside issuer's (from its JWKS).
//!
//! - Algorithms: EdDSA (default), ES256, RS256; HS256 only when a verifier lists it.
//!   Every key is bound to exactly one algorithm and a token's `alg` must equal it.
//! - Verification order: size limit, shape, header checks on the raw header JSON
//!   (`alg: none`, `crit`, `jku`/`x5u`/`jwk`/`x5c`, `typ`), key by `kid`, algorithm
//!   against the key, signature, then claims (time with a bounded leeway, lifetime,
//!   issuer, audience). Each rejection is its own [`JwtError`] with a stable code.
//! - Keys rotate ([`KeyRing`]): a new key is published before it signs and an old
//!   one stays published until every token it signed has expired.
//!
//! Signatures are computed and checked with aws-lc-rs directly, on keys parsed
//! once when loaded; `jsonwebtoken` supplies the JWK model for outside JWKS
//! documents and is the reference the tests and benchmark compare against.

mod algorithm;
mod claims;
mod error;
mod issue;
mod jws;
mod key;
mod key_set;
mod keyring;
mod remote;
mod verify;

pub use algorithm::Algorithm;
pub use claims::{Audience, Claims, NewClaims};
pub use error::{JwtError, MAX_LEEWAY};
pub use issue::{Issuer, IssuerConfig};
pub use jws::VerifiedJws;
pub use key::{KeyMaterial, MIN_HMAC_SECRET_LEN, VerifyingKey};
pub use key_set::{KeySet, MAX_JWKS_BYTES};
pub use keyring::{JwksDocument, KeyRecord, KeyRing, RotationPolicy, SigningKey};
pub use remote::{RemoteJwks, RemoteJwksConfig};
pub use verify::{ACCESS_TOKEN_TYP, Verifier, VerifierConfig};
