//! Authentication. So far: the API keys that authenticate callers of Palisade's own
//! HTTP API. Keys are random 256-bit values shown once; only keyed hashes are stored.

pub mod api_keys;
pub mod jwt;
pub mod passwords;

pub use api_keys::{
    ApiKey, ApiKeyError, ApiKeyStore, ApiKeys, IssuedKey, NewApiKey, PresentedKey, Scope, Scopes,
};
