//! Signed double-submit tokens bound to a session.
//!
//! A token is `base64url(version ‖ nonce ‖ issued_at ‖ tag)`: one version byte,
//! a random 128-bit nonce, the issue time as big-endian Unix seconds, and
//! `HMAC-SHA-256(key, "palisade-csrf-v1" ‖ len(session) ‖ session ‖ nonce ‖ issued_at)`.
//! The session is length-prefixed so no two (session, nonce) pairs sign the
//! same bytes. Binding to the session is what stops a token minted for the
//! attacker's own session from being replayed in the victim's; the nonce makes
//! every token different, so a token leaking from one page says nothing about
//! the next.

use crate::GuardError;
use aws_lc_rs::{hkdf, hmac, rand};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use palisade_core::{Clock, Secret};
use std::fmt;
use std::time::Duration;

/// The shortest key accepted: 256 bits, the HMAC-SHA-256 block strength.
pub const MIN_KEY_BYTES: usize = 32;

/// Domain separation of the HMAC input, so a tag made here can never be a
/// valid tag of another Palisade feature that shares the key.
const CONTEXT: &[u8] = b"palisade-csrf-v1";

/// HKDF `info` when the key is derived from another secret.
const DERIVE_INFO: &[u8] = b"palisade csrf v1";

const VERSION: u8 = 1;
const NONCE_LEN: usize = 16;
const TIME_LEN: usize = 8;
const TAG_LEN: usize = 32;
const TOKEN_LEN: usize = 1 + NONCE_LEN + TIME_LEN + TAG_LEN;

/// The longest session identifier accepted, in bytes.
const MAX_SESSION_LEN: usize = 1024;

/// How far in the future an issue time may lie before the token is refused:
/// tolerates clock differences between instances sharing the key.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Why a presented token does not verify. Deliberately coarse: a forged tag and
/// another session's token look the same, so the answer leaks nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// Not a token of this format, or not signed with this key for this session.
    Invalid,
    /// Correctly signed, but older than the maximum age.
    Expired,
}

/// Issues and verifies tokens with one HMAC key. `Debug` never shows the key.
#[derive(Clone)]
pub struct CsrfTokens {
    key: hmac::Key,
}

impl fmt::Debug for CsrfTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsrfTokens")
            .field("key", &"[redacted]")
            .finish()
    }
}

impl CsrfTokens {
    /// Tokens signed with `key`, which must be at least [`MIN_KEY_BYTES`] long.
    pub fn new(key: &[u8]) -> Result<Self, GuardError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(GuardError::invalid(
                "csrf_key",
                format!("must be at least {MIN_KEY_BYTES} bytes"),
            ));
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        })
    }

    /// Tokens signed with a key given in configuration as base64 (standard or
    /// URL-safe alphabet, padding optional) of at least [`MIN_KEY_BYTES`].
    pub fn from_base64(key: &Secret) -> Result<Self, GuardError> {
        let text = key.expose().trim().trim_end_matches('=');
        let bytes = URL_SAFE_NO_PAD
            .decode(text.replace('+', "-").replace('/', "_"))
            .map_err(|_| GuardError::invalid("csrf_key", "not valid base64"))?;
        Self::new(&bytes)
    }

    /// Tokens signed with a key derived from another secret by HKDF-SHA-256
    /// (`info = "palisade csrf v1"`). The derived key is unrelated to every
    /// other use of that secret, so one configured secret can serve both.
    pub fn derive_from(secret: &Secret) -> Result<Self, GuardError> {
        if secret.expose().len() < MIN_KEY_BYTES {
            return Err(GuardError::invalid(
                "csrf_key",
                format!("the secret to derive from must be at least {MIN_KEY_BYTES} bytes"),
            ));
        }
        let mut key = [0u8; 32];
        hkdf::Salt::new(hkdf::HKDF_SHA256, &[])
            .extract(secret.expose().as_bytes())
            .expand(&[DERIVE_INFO], hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut key))
            .map_err(|_| GuardError::Crypto("HKDF expansion failed"))?;
        let tokens = Self::new(&key);
        // Overwrite the stack copy; aws-lc keeps its own inside the HMAC key.
        key.fill(0);
        tokens
    }

    /// Tokens with a fresh random key: valid only in this process, which suits
    /// tests and single instances that need no tokens to survive a restart.
    pub fn generate() -> Result<Self, GuardError> {
        let mut key = [0u8; 32];
        rand::fill(&mut key).map_err(|_| GuardError::Crypto("no random bytes"))?;
        let tokens = Self::new(&key);
        key.fill(0);
        tokens
    }

    /// A new token for `session`, stamped with the clock's time.
    pub fn issue(&self, session: &str, clock: &dyn Clock) -> Result<String, GuardError> {
        check_session(session)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce).map_err(|_| GuardError::Crypto("no random bytes"))?;
        let issued = unix_seconds(clock).to_be_bytes();
        let tag = self.tag(session, &nonce, &issued);
        let mut raw = Vec::with_capacity(TOKEN_LEN);
        raw.push(VERSION);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&issued);
        raw.extend_from_slice(tag.as_ref());
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }

    /// Whether `token` was issued by this key for `session` and, if `max_age`
    /// is set, is not older than that. The tag is compared in constant time.
    pub fn verify(
        &self,
        token: &str,
        session: &str,
        max_age: Option<Duration>,
        clock: &dyn Clock,
    ) -> Result<(), TokenRejection> {
        if check_session(session).is_err() || token.len() > 2 * TOKEN_LEN {
            return Err(TokenRejection::Invalid);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenRejection::Invalid)?;
        if raw.len() != TOKEN_LEN || raw[0] != VERSION {
            return Err(TokenRejection::Invalid);
        }
        let nonce = &raw[1..1 + NONCE_LEN];
        let issued = &raw[1 + NONCE_LEN..1 + NONCE_LEN + TIME_LEN];
        let tag = &raw[1 + NONCE_LEN + TIME_LEN..];
        hmac::verify(&self.key, &message(session, nonce, issued), tag)
            .map_err(|_| TokenRejection::Invalid)?;
        // Checked only after the signature, so an unsigned time is never read.
        let mut time = [0u8; TIME_LEN];
        time.copy_from_slice(issued);
        let issued = u64::from_be_bytes(time);
        let now = unix_seconds(clock);
        if issued > now.saturating_add(CLOCK_SKEW.as_secs()) {
            return Err(TokenRejection::Invalid);
        }
        if let Some(max_age) = max_age
            && now.saturating_sub(issued) > max_age.as_secs()
        {
            return Err(TokenRejection::Expired);
        }
        Ok(())
    }

    fn tag(&self, session: &str, nonce: &[u8], issued: &[u8]) -> hmac::Tag {
        hmac::sign(&self.key, &message(session, nonce, issued))
    }
}

fn message(session: &str, nonce: &[u8], issued: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + 4 + session.len() + nonce.len() + issued.len());
    m.extend_from_slice(CONTEXT);
    // The length fits: sessions are capped at MAX_SESSION_LEN bytes.
    m.extend_from_slice(&(session.len() as u32).to_be_bytes());
    m.extend_from_slice(session.as_bytes());
    m.extend_from_slice(nonce);
    m.extend_from_slice(issued);
    m
}

fn check_session(session: &str) -> Result<(), GuardError> {
    if session.is_empty() || session.len() > MAX_SESSION_LEN {
        return Err(GuardError::invalid(
            "session",
            format!("must be 1 to {MAX_SESSION_LEN} bytes"),
        ));
    }
    Ok(())
}

fn unix_seconds(clock: &dyn Clock) -> u64 {
    u64::try_from(clock.now_unix_ms() / 1000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::ManualClock;

    fn tokens() -> CsrfTokens {
        CsrfTokens::new(&[7u8; 32]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn issue(tokens: &CsrfTokens, session: &str, clock: &ManualClock) -> String {
        tokens
            .issue(session, clock)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_token_verifies_for_the_session_it_was_issued_to() {
        let clock = ManualClock::new();
        let t = tokens();
        let token = issue(&t, "session-a", &clock);
        assert_eq!(t.verify(&token, "session-a", None, &clock), Ok(()));
    }

    #[test]
    fn rejects_a_token_replayed_in_another_session() {
        let clock = ManualClock::new();
        let t = tokens();
        let token = issue(&t, "attacker-session", &clock);
        assert_eq!(
            t.verify(&token, "victim-session", None, &clock),
            Err(TokenRejection::Invalid)
        );
    }

    #[test]
    fn rejects_a_token_signed_with_another_key() {
        let clock = ManualClock::new();
        let other = CsrfTokens::new(&[8u8; 32]).unwrap_or_else(|e| panic!("{e}"));
        let token = issue(&other, "s", &clock);
        assert_eq!(
            tokens().verify(&token, "s", None, &clock),
            Err(TokenRejection::Invalid)
        );
    }

    #[test]
    fn rejects_tampered_and_malformed_tokens() {
        let clock = ManualClock::new();
        let t = tokens();
        let token = issue(&t, "s", &clock);
        let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap_or_default();
        raw[5] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(&raw);
        for bad in [
            tampered.as_str(),
            "",
            "!!!",
            &token[..token.len() - 2],
            "AAAA",
        ] {
            assert_eq!(
                t.verify(bad, "s", None, &clock),
                Err(TokenRejection::Invalid),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn every_token_is_different() {
        let clock = ManualClock::new();
        let t = tokens();
        assert_ne!(issue(&t, "s", &clock), issue(&t, "s", &clock));
    }

    #[test]
    fn expires_after_the_maximum_age_only_when_one_is_set() {
        let clock = ManualClock::new();
        let t = tokens();
        let token = issue(&t, "s", &clock);
        let hour = Some(Duration::from_secs(3600));
        clock.advance(Duration::from_secs(3600));
        assert_eq!(t.verify(&token, "s", hour, &clock), Ok(()));
        clock.advance(Duration::from_secs(2));
        assert_eq!(
            t.verify(&token, "s", hour, &clock),
            Err(TokenRejection::Expired)
        );
        assert_eq!(t.verify(&token, "s", None, &clock), Ok(()));
    }

    #[test]
    fn refuses_short_keys_and_empty_sessions() {
        assert!(CsrfTokens::new(&[1u8; 31]).is_err());
        assert!(tokens().issue("", &ManualClock::new()).is_err());
        assert!(CsrfTokens::from_base64(&Secret::new("c2hvcnQ=")).is_err());
        assert!(CsrfTokens::from_base64(&Secret::new("not base64 at all!")).is_err());
    }

    #[test]
    fn a_base64_key_and_a_derived_key_work_and_differ() {
        let clock = ManualClock::new();
        let b64 = URL_SAFE_NO_PAD.encode([3u8; 32]);
        let from_b64 = CsrfTokens::from_base64(&Secret::new(b64)).unwrap_or_else(|e| panic!("{e}"));
        let pepper = Secret::new("0123456789abcdef0123456789abcdef");
        let derived = CsrfTokens::derive_from(&pepper).unwrap_or_else(|e| panic!("{e}"));
        let again = CsrfTokens::derive_from(&pepper).unwrap_or_else(|e| panic!("{e}"));
        let token = issue(&derived, "s", &clock);
        assert_eq!(again.verify(&token, "s", None, &clock), Ok(()));
        assert_eq!(
            from_b64.verify(&token, "s", None, &clock),
            Err(TokenRejection::Invalid)
        );
        // The derived key is not the pepper itself used as an HMAC key.
        let raw = CsrfTokens::new(pepper.expose().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            raw.verify(&token, "s", None, &clock),
            Err(TokenRejection::Invalid)
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        assert!(format!("{:?}", tokens()).contains("[redacted]"));
    }
}
