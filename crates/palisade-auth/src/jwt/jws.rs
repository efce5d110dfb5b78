//! The compact JWS layer: size limit, shape, header checks, key choice and the
//! signature, in that order. Everything about the header is decided on its raw
//! JSON before any key is used, so a forbidden member cannot slip past because a
//! typed header struct had no field for it.

use super::{Algorithm, JwtError, KeySet};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;

/// Largest decoded signature: an RSA-8192 signature is 1024 bytes.
const MAX_SIGNATURE_BYTES: usize = 1024;
/// Decode buffer: base64's length estimate rounds up to a multiple of 3.
const SIGNATURE_BUFFER: usize = MAX_SIGNATURE_BYTES + 8;

/// What the JWS layer checks, taken from the verifier's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JwsRules<'a> {
    pub max_token_bytes: usize,
    pub allowed: &'a [Algorithm],
    pub required_typ: Option<&'a str>,
    pub require_kid: bool,
}

/// A JWS whose header passed every check and whose signature verified.
#[derive(Debug)]
pub struct VerifiedJws {
    /// The algorithm, equal to the verifying key's.
    pub alg: Algorithm,
    /// The key id that verified it.
    pub kid: String,
    /// The decoded payload (JSON claims for a JWT).
    pub payload: Vec<u8>,
}

/// The header members Palisade acts on. Serde rejects a duplicate of any of them,
/// which a map would silently collapse to the last value (two `alg`s are an attack,
/// not an accident). Other members are ignored, as RFC 7515 allows.
#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow, default)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    // Presence flags: true whenever the member appears, even as `null`.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    #[serde(default, deserialize_with = "present")]
    jku: bool,
    #[serde(default, deserialize_with = "present")]
    x5u: bool,
    #[serde(default, deserialize_with = "present")]
    jwk: bool,
    #[serde(default, deserialize_with = "present")]
    x5c: bool,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// Verifies a compact JWS against `keys` under `rules` at `now_ms`.
pub(crate) fn verify_jws(
    token: &str,
    rules: &JwsRules<'_>,
    keys: &KeySet,
    now_ms: i64,
) -> Result<VerifiedJws, JwtError> {
    // Size first: nothing is decoded or allocated for an oversized token.
    if token.len() > rules.max_token_bytes {
        return Err(JwtError::TooLarge {
            len: token.len(),
            max: rules.max_token_bytes,
        });
    }
    let (signing_input, signature_b64) = token
        .rsplit_once('.')
        .ok_or(JwtError::Malformed("expected three parts"))?;
    let (header_b64, payload_b64) = signing_input
        .split_once('.')
        .ok_or(JwtError::Malformed("expected three parts"))?;
    if payload_b64.contains('.') {
        return Err(JwtError::Malformed("expected three parts"));
    }

    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| JwtError::Malformed("header is not base64url"))?;
    let header: RawHeader<'_> = serde_json::from_slice(&header_json)
        .map_err(|_| JwtError::Malformed("header is not a JSON object"))?;

    let alg_name = header
        .alg
        .as_deref()
        .ok_or(JwtError::Malformed("header has no alg"))?;
    if alg_name.eq_ignore_ascii_case("none") {
        return Err(JwtError::AlgNone);
    }
    if header.crit {
        return Err(JwtError::CritHeader);
    }
    for (named, member) in [
        (header.jku, "jku"),
        (header.x5u, "x5u"),
        (header.jwk, "jwk"),
        (header.x5c, "x5c"),
    ] {
        if named {
            return Err(JwtError::RemoteKeyHeader(member));
        }
    }
    if let Some(required) = rules.required_typ
        && !header
            .typ
            .as_deref()
            .is_some_and(|typ| typ_matches(typ, required))
    {
        return Err(JwtError::BadTyp);
    }

    let key = keys.find(header.kid.as_deref(), now_ms, !rules.require_kid)?;
    if Algorithm::name_is_hmac(alg_name) && !key.algorithm().is_symmetric() {
        return Err(JwtError::AlgorithmConfusion);
    }
    let alg = Algorithm::from_name(alg_name).ok_or(JwtError::UnsupportedAlgorithm)?;
    if alg != key.algorithm() {
        return Err(JwtError::AlgorithmMismatch);
    }
    if !rules.allowed.contains(&alg) {
        return Err(JwtError::AlgorithmNotAllowed);
    }

    let mut signature = [0u8; SIGNATURE_BUFFER];
    let signature_len = URL_SAFE_NO_PAD
        .decode_slice(signature_b64, &mut signature)
        .map_err(|_| JwtError::Malformed("signature is not base64url"))?;
    key.verify(signing_input.as_bytes(), &signature[..signature_len])?;

    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| JwtError::Malformed("payload is not base64url"))?;
    Ok(VerifiedJws {
        alg,
        kid: key.kid().to_owned(),
        payload,
    })
}

/// `typ` is a media type compared case-insensitively, and the `application/`
/// prefix may be left out (RFC 7515 §4.1.9): `at+jwt` = `application/AT+JWT`.
fn typ_matches(typ: &str, required: &str) -> bool {
    fn strip(t: &str) -> &str {
        match t.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &t[12..],
            _ => t,
        }
    }
    strip(typ).eq_ignore_ascii_case(strip(required))
}

#[cfg(test)]
mod tests {
    use super::typ_matches;

    #[test]
    fn typ_is_a_media_type_with_optional_application_prefix() {
        assert!(typ_matches("at+jwt", "at+jwt"));
        assert!(typ_matches("application/AT+JWT", "at+jwt"));
        assert!(typ_matches("at+jwt", "application/at+jwt"));
        assert!(!typ_matches("jwt", "at+jwt"));
        assert!(!typ_matches("application/", "at+jwt"));
        assert!(!typ_matches("appl\u{e9}cation/at+jwt", "at+jwt"));
    }
}
