//! The claims of a Palisade JWT: the registered ones typed, everything else kept
//! as JSON. Parsed in one pass; a claim that appears twice makes the token
//! malformed rather than letting the last copy win.

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// The `aud` claim: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Audience(#[serde(deserialize_with = "one_or_many")] pub Vec<String>);

impl Audience {
    /// Whether `audience` is one of the values.
    pub fn contains(&self, audience: &str) -> bool {
        self.0.iter().any(|a| a == audience)
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(a) => vec![a],
        OneOrMany::Many(a) => a,
    })
}

/// Verified claims. Times are NumericDate seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Claims {
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audiences.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Not before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Token id (a UUIDv7 for tokens Palisade issues).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Every other claim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A NumericDate may be fractional (RFC 7519 §2); whole seconds are enough here.
fn numeric_date<E: de::Error>(value: Value) -> Result<i64, E> {
    let Value::Number(n) = value else {
        return Err(E::custom("date is not a number"));
    };
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        // The cast saturates; dates that far out are rejected by the lifetime bound.
        Some(f) if f.is_finite() => Ok(f.floor() as i64),
        _ => Err(E::custom("date out of range")),
    }
}

impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ClaimsVisitor;

        fn set<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), E> {
            if slot.replace(value).is_some() {
                return Err(E::custom(format_args!("duplicate claim {name}")));
            }
            Ok(())
        }

        impl<'de> Visitor<'de> for ClaimsVisitor {
            type Value = Claims;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of claims")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
                let mut c = Claims::default();
                while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match name.as_ref() {
                        "iss" => set(&mut c.iss, map.next_value()?, "iss")?,
                        "sub" => set(&mut c.sub, map.next_value()?, "sub")?,
                        "aud" => set(&mut c.aud, map.next_value()?, "aud")?,
                        "jti" => set(&mut c.jti, map.next_value()?, "jti")?,
                        "exp" => set(&mut c.exp, numeric_date(map.next_value()?)?, "exp")?,
                        "nbf" => set(&mut c.nbf, numeric_date(map.next_value()?)?, "nbf")?,
                        "iat" => set(&mut c.iat, numeric_date(map.next_value()?)?, "iat")?,
                        _ => {
                            let value = map.next_value()?;
                            if c.extra.insert(name.into_owned(), value).is_some() {
                                return Err(de::Error::custom("duplicate claim"));
                            }
                        }
                    }
                }
                Ok(c)
            }
        }

        deserializer.deserialize_map(ClaimsVisitor)
    }
}

/// What a caller asks to put in a new token; the issuer adds `iss`, `iat`, `nbf`,
/// `exp` and `jti`.
#[derive(Debug, Clone, Default)]
pub struct NewClaims {
    /// Subject.
    pub sub: String,
    /// Audiences (at least one).
    pub aud: Vec<String>,
    /// Other claims. Registered names (`iss`, `exp`, ...) here are refused.
    pub extra: Map<String, Value>,
}
