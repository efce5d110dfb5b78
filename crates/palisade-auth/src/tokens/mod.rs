//! Palisade's own tokens: short-lived access JWTs, refresh tokens rotated on
//! every use with replay detection, revocation, and a cache of verified tokens.
//!
//! - An access token carries `tenant` (the issuing caller's tenant) and `sid`
//!   (its session: every token refreshed from one login) besides the
//!   registered claims.
//! - Verifying checks the signature and claims (or finds the token in the
//!   cache of verified tokens) and then, on every call, revocation: by `jti`,
//!   by `sid`, and by subject and issue time.
//! - Refreshing uses the refresh token up and returns a new pair; presenting a
//!   used refresh token again revokes its whole session and emits a
//!   [`SecurityEventKind::RefreshTokenReuse`](palisade_core::SecurityEventKind).

mod cache;
mod config;
mod error;
mod outside;
mod refresh;
mod revocation;
mod service;
mod signing_keys;

pub use config::TokensConfig;
pub use error::TokenError;
pub use outside::{OutsideIssuers, TrustedIssuer};
pub use refresh::{REFRESH_TOKEN_PREFIX, Session};
pub use revocation::{Revocation, Revocations, SESSION_CLAIM, TENANT_CLAIM};
pub use service::{IssueRequest, KeyState, KeyStatus, TokenPair, Tokens, check_tenant};
pub use signing_keys::SigningKeyStore;
