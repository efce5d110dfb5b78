//! Authentication:
//! - `api_keys`: the keys that authenticate callers of Palisade's own HTTP API
//!   (random 256-bit values shown once; only keyed hashes are stored);
//! - `jwt`: issuing and verifying JWTs with versioned, rotated signing keys
//!   and JWKS, every known JWT pitfall refused with its own error;
//! - `lockout`: brute-force protection, failures counted per account and per
//!   client address with backoff and lockout, shared through Redis;
//! - `passwords`: argon2id hashing off the async threads, bcrypt import;
//! - `tokens`: Palisade's own access and refresh tokens, sessions, revocation.

pub mod api_keys;
pub mod jwt;
pub mod lockout;
pub mod passwords;
pub mod tokens;

pub use api_keys::{
    ApiKey, ApiKeyError, ApiKeyStore, ApiKeys, IssuedKey, NewApiKey, PresentedKey, Scope, Scopes,
};
