//! Field-level encryption: chosen fields of a JSON document are replaced by
//! ciphertexts (text form), the rest stays readable and queryable.
//!
//! Fields are chosen by path: `$.user.email`, `$.cards[*].pan`,
//! `$.items[0].sku`, `$['odd.key'].x`. `[*]` matches every element of an
//! array (or every value of an object). A field's value of any JSON type is
//! sealed as its JSON text, so types survive the round trip.
//!
//! Each field's AAD is the caller's AAD (tenant, table, record id, ...) plus
//! the field's path *pattern* in canonical form. So a ciphertext cannot be
//! moved to another field or another record; it can be moved between the
//! elements of one array (`$.cards[*].pan` is one field), which keeps
//! ciphertexts valid when elements are added, removed or reordered.
//!
//! Fields that are missing are skipped. On decryption, a value at an
//! encrypted path that is not a ciphertext is an error, never passed
//! through: a plaintext planted where a ciphertext belongs must not be
//! mistaken for decrypted data.

use crate::envelope::{self, Envelope, KeyKind};
use crate::error::{CryptoError, Result, excerpt};
use crate::keyring::{BatchSealer, Keyring};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// Longest path, in bytes.
pub const MAX_PATH_LEN: usize = 256;
/// Most segments in one path.
pub const MAX_PATH_DEPTH: usize = 32;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
    /// Every array element or object value.
    Wildcard,
}

/// A parsed JSON path. Its [`fmt::Display`] is the canonical form that goes
/// into the AAD: `.name` for plain names, `['...']` for others, `[n]`, `[*]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    segments: Vec<Segment>,
    canonical: String,
}

impl JsonPath {
    /// Parses `$` followed by `.name`, `['name']`, `["name"]`, `[n]`, `[*]`
    /// or `.*` segments (at least one).
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: &str| CryptoError::InvalidPath {
            path: excerpt(text, 128),
            reason: reason.to_owned(),
        };
        if text.len() > MAX_PATH_LEN {
            return Err(invalid("longer than 256 bytes"));
        }
        let rest = text
            .strip_prefix('$')
            .ok_or_else(|| invalid("must start with $"))?;
        let chars: Vec<char> = rest.chars().collect();
        let mut at = 0;
        let mut segments = Vec::new();
        while at < chars.len() {
            match chars[at] {
                '.' => {
                    at += 1;
                    let start = at;
                    while at < chars.len() && chars[at] != '.' && chars[at] != '[' {
                        at += 1;
                    }
                    let name: String = chars[start..at].iter().collect();
                    match name.as_str() {
                        "" => return Err(invalid("empty name after '.'")),
                        "*" => segments.push(Segment::Wildcard),
                        _ if name.chars().all(is_plain) => segments.push(Segment::Key(name)),
                        _ => return Err(invalid("use ['...'] for names with other characters")),
                    }
                }
                '[' => {
                    at += 1;
                    match chars.get(at) {
                        Some('*') if chars.get(at + 1) == Some(&']') => {
                            segments.push(Segment::Wildcard);
                            at += 2;
                        }
                        Some(&quote @ ('\'' | '"')) => {
                            at += 1;
                            let mut name = String::new();
                            loop {
                                match chars.get(at) {
                                    None => return Err(invalid("unterminated quoted name")),
                                    Some('\\') => {
                                        let escaped = chars
                                            .get(at + 1)
                                            .ok_or_else(|| invalid("dangling backslash"))?;
                                        name.push(*escaped);
                                        at += 2;
                                    }
                                    Some(&c) if c == quote => {
                                        at += 1;
                                        break;
                                    }
                                    Some(&c) => {
                                        name.push(c);
                                        at += 1;
                                    }
                                }
                            }
                            if chars.get(at) != Some(&']') {
                                return Err(invalid("expected ] after a quoted name"));
                            }
                            at += 1;
                            segments.push(Segment::Key(name));
                        }
                        Some(c) if c.is_ascii_digit() => {
                            let start = at;
                            while at < chars.len() && chars[at].is_ascii_digit() {
                                at += 1;
                            }
                            let digits: String = chars[start..at].iter().collect();
                            if digits.len() > 1 && digits.starts_with('0') {
                                return Err(invalid("array index with a leading zero"));
                            }
                            let index = digits
                                .parse::<usize>()
                                .map_err(|_| invalid("array index too large"))?;
                            if chars.get(at) != Some(&']') {
                                return Err(invalid("expected ] after an array index"));
                            }
                            at += 1;
                            segments.push(Segment::Index(index));
                        }
                        _ => return Err(invalid("expected *, an index or a quoted name after [")),
                    }
                }
                _ => return Err(invalid("expected '.' or '['")),
            }
            if segments.len() > MAX_PATH_DEPTH {
                return Err(invalid("more than 32 segments"));
            }
        }
        if segments.is_empty() {
            return Err(invalid("must name a field below $"));
        }
        let canonical = canonical(&segments);
        Ok(Self {
            segments,
            canonical,
        })
    }

    /// The canonical form (what the AAD holds).
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// Every value in `doc` the path matches, in document order.
    fn matches<'d>(&self, doc: &'d mut Value) -> Vec<&'d mut Value> {
        let mut found = Vec::new();
        collect(doc, &self.segments, &mut found);
        found
    }
}

impl FromStr for JsonPath {
    type Err = CryptoError;
    fn from_str(text: &str) -> Result<Self> {
        Self::parse(text)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn canonical(segments: &[Segment]) -> String {
    let mut out = String::from("$");
    for segment in segments {
        match segment {
            Segment::Key(name) if !name.is_empty() && name.chars().all(is_plain) => {
                out.push('.');
                out.push_str(name);
            }
            Segment::Key(name) => {
                out.push_str("['");
                for c in name.chars() {
                    if c == '\'' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push_str("']");
            }
            Segment::Index(index) => {
                out.push('[');
                out.push_str(&index.to_string());
                out.push(']');
            }
            Segment::Wildcard => out.push_str("[*]"),
        }
    }
    out
}

fn collect<'d>(value: &'d mut Value, segments: &[Segment], found: &mut Vec<&'d mut Value>) {
    let Some((first, rest)) = segments.split_first() else {
        found.push(value);
        return;
    };
    match (first, value) {
        (Segment::Key(name), Value::Object(map)) => {
            if let Some(child) = map.get_mut(name) {
                collect(child, rest, found);
            }
        }
        (Segment::Index(index), Value::Array(items)) => {
            if let Some(child) = items.get_mut(*index) {
                collect(child, rest, found);
            }
        }
        (Segment::Wildcard, Value::Array(items)) => {
            for child in items {
                collect(child, rest, found);
            }
        }
        (Segment::Wildcard, Value::Object(map)) => {
            for child in map.values_mut() {
                collect(child, rest, found);
            }
        }
        // Missing, or a scalar where a container was expected: nothing here.
        _ => {}
    }
}

/// Which key seals the fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKey<'a> {
    /// A keyring key, by name.
    Key(&'a str),
    /// A subject's own key: shredding the subject erases these fields.
    Subject(&'a str),
}

/// The AAD of one field: a label, the canonical path (length-prefixed) and
/// the caller's AAD.
fn field_aad(path: &JsonPath, aad: &[u8], buffer: &mut Vec<u8>) {
    buffer.clear();
    buffer.extend_from_slice(b"palisade field v1\0");
    // Paths are at most 256 bytes.
    buffer.extend_from_slice(&(path.as_str().len() as u32).to_be_bytes());
    buffer.extend_from_slice(path.as_str().as_bytes());
    buffer.extend_from_slice(aad);
}

impl Keyring {
    /// Replaces every value `paths` match in `doc` with its ciphertext (text
    /// form), sealed under `key` and bound to its path and `aad`. Returns how
    /// many fields were encrypted. On error `doc` may be partly encrypted:
    /// keep the original until this succeeds.
    pub async fn encrypt_fields(
        &self,
        doc: &mut Value,
        paths: &[JsonPath],
        key: FieldKey<'_>,
        aad: &[u8],
    ) -> Result<usize> {
        let (kind, id) = match key {
            FieldKey::Key(name) => (KeyKind::Keyring, name),
            FieldKey::Subject(subject) => (KeyKind::Subject, subject),
        };
        // One DEK lookup and one batch of nonces for the whole document.
        let mut sealer = BatchSealer::new(self, kind, id, paths.len());
        let mut count = 0;
        // Sized for typical fields, so they do not grow field by field.
        let mut field_aad_buffer = Vec::with_capacity(aad.len() + 64);
        let mut plain = Vec::with_capacity(128);
        let mut sealed = Vec::with_capacity(256);
        for path in paths {
            field_aad(path, aad, &mut field_aad_buffer);
            for value in path.matches(doc) {
                plain.clear();
                serde_json::to_writer(&mut plain, &*value).map_err(|e| CryptoError::Invalid {
                    field: "document",
                    reason: e.to_string(),
                })?;
                let result = sealer.seal(&plain, &field_aad_buffer, &mut sealed).await;
                // The field's plaintext does not outlive this loop.
                zeroize::Zeroize::zeroize(&mut plain);
                result?;
                *value = Value::String(envelope::to_text(&sealed));
                count += 1;
            }
        }
        Ok(count)
    }

    /// Replaces every ciphertext `paths` match in `doc` with its plaintext
    /// value. Paths are processed in reverse order, undoing
    /// [`Keyring::encrypt_fields`] with the same list even when one path lies
    /// inside another. Returns how many fields were decrypted.
    pub async fn decrypt_fields(
        &self,
        doc: &mut Value,
        paths: &[JsonPath],
        aad: &[u8],
    ) -> Result<usize> {
        let mut count = 0;
        let mut field_aad_buffer = Vec::new();
        for path in paths.iter().rev() {
            field_aad(path, aad, &mut field_aad_buffer);
            for value in path.matches(doc) {
                let not_ciphertext = || CryptoError::InvalidPath {
                    path: path.to_string(),
                    reason: "the value is not a ciphertext".into(),
                };
                let text = value.as_str().ok_or_else(not_ciphertext)?;
                let binary = envelope::from_text(text)?;
                let envelope = Envelope::parse(&binary)?;
                let plain = self.open_envelope(&envelope, &field_aad_buffer).await?;
                *value = serde_json::from_slice(&plain).map_err(|_| CryptoError::DecryptFailed)?;
                count += 1;
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(text: &str) -> JsonPath {
        JsonPath::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parses_and_canonicalises_paths() {
        for (given, canonical) in [
            ("$.user.email", "$.user.email"),
            ("$['user'][\"email\"]", "$.user.email"),
            ("$.cards[*].pan", "$.cards[*].pan"),
            ("$.cards.*.pan", "$.cards[*].pan"),
            ("$.items[0].sku", "$.items[0].sku"),
            ("$['odd.key']['it\\'s']", "$['odd.key']['it\\'s']"),
        ] {
            assert_eq!(path(given).as_str(), canonical, "{given}");
            assert_eq!(path(canonical).as_str(), canonical);
        }
        for bad in [
            "",
            "$",
            "user.email",
            "$.",
            "$..a",
            "$.a b",
            "$[",
            "$[01]",
            "$[-1]",
            "$['a'",
            "$[a]",
            "$.a[*",
            "$x",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad:?}");
        }
        assert!(JsonPath::parse(&format!("${}", ".a".repeat(33))).is_err());
    }

    #[tokio::test]
    async fn encrypts_only_the_chosen_fields_and_round_trips_every_json_type() {
        let keyring = Keyring::ephemeral();
        keyring
            .ensure_key("default")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let original = json!({
            "id": 7,
            "user": {"email": "a@example.com", "name": "Alice", "age": 41},
            "cards": [{"pan": "4111111111111111", "exp": "12/30"}, {"pan": 5500, "exp": "01/29"}],
            "notes": null,
        });
        let paths = [
            path("$.user.email"),
            path("$.user.age"),
            path("$.cards[*].pan"),
            path("$.missing.x"),
        ];
        let mut doc = original.clone();
        let n = keyring
            .encrypt_fields(&mut doc, &paths, FieldKey::Key("default"), b"record 7")
            .await;
        assert_eq!(n, Ok(4));
        assert_eq!(doc["id"], 7);
        assert_eq!(doc["user"]["name"], "Alice");
        assert_eq!(doc["cards"][0]["exp"], "12/30");
        for encrypted in [
            &doc["user"]["email"],
            &doc["user"]["age"],
            &doc["cards"][1]["pan"],
        ] {
            assert!(
                encrypted.as_str().is_some_and(|s| s.starts_with("pal1.")),
                "{encrypted}"
            );
        }
        assert!(!doc.to_string().contains("4111111111111111"));
        let mut back = doc.clone();
        assert_eq!(
            keyring.decrypt_fields(&mut back, &paths, b"record 7").await,
            Ok(4)
        );
        assert_eq!(back, original);
        // Another record's AAD does not open them.
        let mut other = doc.clone();
        assert_eq!(
            keyring
                .decrypt_fields(&mut other, &paths, b"record 8")
                .await,
            Err(CryptoError::DecryptFailed)
        );
    }

    #[tokio::test]
    async fn a_ciphertext_moved_to_another_field_does_not_open() {
        let keyring = Keyring::ephemeral();
        keyring
            .ensure_key("default")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let paths = [path("$.email"), path("$.phone")];
        let mut doc = json!({"email": "a@example.com", "phone": "+1 555"});
        assert_eq!(
            keyring
                .encrypt_fields(&mut doc, &paths, FieldKey::Key("default"), b"")
                .await,
            Ok(2)
        );
        let mut swapped = json!({"email": doc["phone"].clone(), "phone": doc["email"].clone()});
        assert_eq!(
            keyring.decrypt_fields(&mut swapped, &paths, b"").await,
            Err(CryptoError::DecryptFailed)
        );
    }

    #[tokio::test]
    async fn a_plaintext_where_a_ciphertext_belongs_is_refused() {
        let keyring = Keyring::ephemeral();
        let mut doc = json!({"email": "planted@example.com", "n": 5});
        let refused = keyring
            .decrypt_fields(&mut doc, &[path("$.email")], b"")
            .await;
        assert!(
            matches!(refused, Err(CryptoError::Malformed(_))),
            "{refused:?}"
        );
        let refused = keyring.decrypt_fields(&mut doc, &[path("$.n")], b"").await;
        assert!(
            matches!(refused, Err(CryptoError::InvalidPath { .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn nested_paths_round_trip_in_either_order_and_subject_fields_shred() {
        let keyring = Keyring::ephemeral();
        keyring
            .ensure_key("default")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let original = json!({"a": {"b": "inner", "c": 1}});
        for order in [[path("$.a"), path("$.a.b")], [path("$.a.b"), path("$.a")]] {
            let mut doc = original.clone();
            let sealed = keyring
                .encrypt_fields(&mut doc, &order, FieldKey::Subject("user-9"), b"")
                .await;
            assert!(sealed.is_ok());
            let mut back = doc.clone();
            assert!(keyring.decrypt_fields(&mut back, &order, b"").await.is_ok());
            assert_eq!(back, original);
        }
        let mut doc = original.clone();
        let only = [path("$.a.b")];
        assert_eq!(
            keyring
                .encrypt_fields(&mut doc, &only, FieldKey::Subject("user-9"), b"")
                .await,
            Ok(1)
        );
        assert_eq!(keyring.shred_subject("user-9").await, Ok(true));
        assert_eq!(
            keyring.decrypt_fields(&mut doc, &only, b"").await,
            Err(CryptoError::Shredded("user-9".into()))
        );
    }
}
