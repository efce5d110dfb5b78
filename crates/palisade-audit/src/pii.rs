//! Personal data in audit events, erasable without breaking the chain
//! (crypto-shredding).
//!
//! An event may name a data `subject` (an opaque id: a user id, never an e-mail
//! address, because the id itself stays in the leaf in clear) and carry a `pii`
//! JSON object. Before the leaf is built, the `pii` object (its RFC 8785 bytes) is
//! sealed under the subject's own key by a [`PiiCipher`], and the leaf holds only
//! the ciphertext: `"pii":"pal1.…"`. The leaf hash commits to the ciphertext, so
//! when the subject's key is destroyed the data becomes unreadable everywhere while
//! every leaf, proof and checkpoint still verifies.
//!
//! The ciphertext is bound (associated data) to the tenant, the subject and the
//! event id ([`pii_aad`]): it cannot be moved to another event or tenant.
//!
//! Reading ([`crate::log::AuditLog::reveal_pii`]) replaces the ciphertext in the
//! event view by one of:
//! - the decrypted object, for callers allowed to see personal data
//!   ([`PiiAccess::Reveal`]; over HTTP the `audit:pii` scope);
//! - `{"redacted": true}` for everyone else, and for any view nobody resolved (fail
//!   closed: the ciphertext itself is never part of a view; the raw leaf is);
//! - `{"erased": true}` once the subject's key was destroyed, for every caller;
//! - `{"unavailable": true}` when the key service cannot be reached now (or no
//!   cipher is configured), for callers who would otherwise see the data;
//! - `{"unreadable": true}` when the ciphertext does not open with its event's
//!   context (an altered leaf, which `audit verify` also reports).
//!
//! The crate does not depend on an implementation: [`PiiCipher`] is a small trait.
//! With the `keyring` feature (on by default), [`KeyringPii`] implements it with
//! `palisade-crypto` subject keys, named `{tenant}/{subject}` like the subjects of
//! `/v1/crypto`, so `DELETE /v1/crypto/subjects/{id}` erases an event's `pii` too.

use crate::event::{EventLimits, InvalidField};
use crate::store::StoredEvent;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;
use zeroize::Zeroizing;

/// Longest subject id, in bytes: the limit of `/v1/crypto` subjects, so that
/// `{tenant}/{subject}` fits a keyring subject id (255 bytes).
pub const MAX_SUBJECT: usize = 180;

/// The view of a `pii` value the caller may not see.
pub fn redacted() -> Value {
    json!({ "redacted": true })
}

/// The view of a `pii` value whose subject key was destroyed.
pub fn erased() -> Value {
    json!({ "erased": true })
}

/// The view of a `pii` value whose key cannot be reached now.
pub fn unavailable() -> Value {
    json!({ "unavailable": true })
}

/// The view of a `pii` value that does not open with its event's context.
pub fn unreadable() -> Value {
    json!({ "unreadable": true })
}

/// Why sealing or opening personal data failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PiiError {
    /// The subject's key was destroyed: the data is gone for good.
    #[error("the subject's data was erased")]
    Erased,
    /// The key service or its store cannot be reached; a retry may succeed.
    #[error("personal data keys unavailable: {0}")]
    Unavailable(String),
    /// The subject id is not acceptable to the cipher.
    #[error("invalid subject: {0}")]
    InvalidSubject(String),
    /// The ciphertext does not open (altered, or bound to another context), or
    /// sealing failed for another reason. Never carries plaintext.
    #[error("personal data could not be processed: {0}")]
    Failed(String),
}

/// What a cipher future resolves to.
pub type PiiFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PiiError>> + Send + 'a>>;

/// Seals and opens personal data under per-subject keys that can be destroyed.
pub trait PiiCipher: Send + Sync {
    /// Seals `plaintext` under the key of `subject` in `tenant`, bound to `aad`;
    /// the ciphertext as text (it goes into a JSON leaf).
    fn seal<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
        plaintext: &'a [u8],
        aad: &'a [u8],
    ) -> PiiFuture<'a, String>;

    /// Opens a ciphertext of [`PiiCipher::seal`] with the same `aad`.
    /// [`PiiError::Erased`] once the subject's key was destroyed.
    fn open<'a>(&'a self, ciphertext: &'a str, aad: &'a [u8]) -> PiiFuture<'a, Vec<u8>>;
}

/// Whether a reader may see personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiAccess {
    /// Decrypted (e.g. API keys with the `audit:pii` scope).
    Reveal,
    /// `{"redacted": true}` (still `{"erased": true}` once erased).
    Redact,
}

/// The personal data an event carries about one data subject, as a caller submits
/// it: the `subject` and `pii` members of an event on the HTTP API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectPii {
    /// Opaque id of the data subject (1 to 180 bytes, no control characters).
    /// Stored in clear: use a user id, not an e-mail address.
    pub subject: Option<String>,
    /// Personal data about the subject: a JSON object, stored only encrypted.
    pub pii: Option<Value>,
}

/// What [`SubjectPii::check`] found: the subject, and the canonical bytes of the
/// `pii` object to seal (if any).
#[derive(Debug, Default)]
pub(crate) struct CheckedPii {
    pub subject: Option<String>,
    pub plaintext: Option<Zeroizing<Vec<u8>>>,
}

fn invalid(field: &str, message: impl Into<String>) -> InvalidField {
    InvalidField {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Checks a subject id: 1 to [`MAX_SUBJECT`] bytes of UTF-8 without control
/// characters (the rule of `palisade_crypto::keyring::validate_subject_id`, with the
/// length of `/v1/crypto` subjects so that the tenant prefix still fits).
pub fn check_subject(subject: &str) -> Result<(), InvalidField> {
    if subject.is_empty() || subject.len() > MAX_SUBJECT {
        return Err(invalid(
            "subject",
            format!("must be 1 to {MAX_SUBJECT} bytes"),
        ));
    }
    if subject.chars().any(char::is_control) {
        return Err(invalid("subject", "must not contain control characters"));
    }
    Ok(())
}

impl SubjectPii {
    /// Nothing personal.
    pub fn none() -> Self {
        Self::default()
    }

    /// `pii` about `subject`.
    pub fn new(subject: impl Into<String>, pii: Map<String, Value>) -> Self {
        Self {
            subject: Some(subject.into()),
            pii: Some(Value::Object(pii)),
        }
    }

    /// Validates the subject and the `pii` object and encodes the object
    /// canonically (RFC 8785).
    pub(crate) fn check(&self, limits: &EventLimits) -> Result<CheckedPii, InvalidField> {
        if let Some(subject) = &self.subject {
            check_subject(subject)?;
        }
        let Some(pii) = &self.pii else {
            return Ok(CheckedPii {
                subject: self.subject.clone(),
                plaintext: None,
            });
        };
        let Value::Object(map) = pii else {
            return Err(invalid("pii", "must be a JSON object"));
        };
        if self.subject.is_none() {
            return Err(invalid(
                "pii",
                "needs a subject: personal data is encrypted under its subject's key",
            ));
        }
        let nesting = 1 + map.values().map(depth).max().unwrap_or(0);
        if nesting > limits.max_metadata_depth {
            return Err(invalid(
                "pii",
                format!(
                    "nested {nesting} levels deep; at most {}",
                    limits.max_metadata_depth
                ),
            ));
        }
        let plaintext = Zeroizing::new(
            serde_jcs::to_vec(pii)
                .map_err(|e| invalid("pii", format!("not representable: {e}")))?,
        );
        if plaintext.len() > limits.max_pii_bytes {
            return Err(invalid(
                "pii",
                format!(
                    "{} bytes; at most {}",
                    plaintext.len(),
                    limits.max_pii_bytes
                ),
            ));
        }
        Ok(CheckedPii {
            subject: self.subject.clone(),
            plaintext: Some(plaintext),
        })
    }
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The associated data of an event's `pii` ciphertext: binds it to the tenant,
/// the subject and the event id (known before sequencing, unlike the index).
/// Tenant ids and subject ids hold no NUL, so the encoding is unambiguous.
pub fn pii_aad(tenant: &str, subject: &str, id: Uuid) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64 + tenant.len() + subject.len());
    aad.extend_from_slice(b"palisade audit pii v1\0");
    aad.extend_from_slice(tenant.as_bytes());
    aad.push(0);
    aad.extend_from_slice(subject.as_bytes());
    aad.push(0);
    aad.extend_from_slice(id.as_hyphenated().to_string().as_bytes());
    aad
}

/// The sealed `pii` of a parsed leaf with what its AAD needs, if it has one.
pub(crate) struct SealedPii<'a> {
    pub ciphertext: &'a str,
    pub aad: Vec<u8>,
}

/// Finds the sealed `pii` of a leaf. `None` when the leaf has none; a leaf whose
/// `pii` is there but whose context is not (an altered leaf) gives an empty AAD,
/// which never opens.
pub(crate) fn sealed_in(leaf: &Value) -> Option<SealedPii<'_>> {
    let ciphertext = leaf.get("pii")?.as_str()?;
    let context = (
        leaf.get("tenant").and_then(Value::as_str),
        leaf.get("subject").and_then(Value::as_str),
        leaf.get("id")
            .and_then(Value::as_str)
            .and_then(|id| Uuid::parse_str(id).ok()),
    );
    let aad = match context {
        (Some(tenant), Some(subject), Some(id)) => pii_aad(tenant, subject, id),
        _ => Vec::new(),
    };
    Some(SealedPii { ciphertext, aad })
}

/// Whether a leaf may carry `pii` (a cheap byte test before parsing).
pub(crate) fn may_carry_pii(leaf: &[u8]) -> bool {
    leaf.windows(6).any(|w| w == b"\"pii\":")
}

/// The view of an opened `pii` value for a reader with `access`.
pub(crate) fn view_of(opened: Result<Vec<u8>, PiiError>, access: PiiAccess) -> Value {
    match (opened, access) {
        (Err(PiiError::Erased), _) => erased(),
        (_, PiiAccess::Redact) => redacted(),
        (Ok(mut plaintext), PiiAccess::Reveal) => {
            let view = match serde_json::from_slice::<Value>(&plaintext) {
                Ok(object @ Value::Object(_)) => object,
                _ => unreadable(),
            };
            zeroize::Zeroize::zeroize(&mut plaintext);
            view
        }
        (Err(PiiError::Unavailable(_)), PiiAccess::Reveal) => unavailable(),
        (Err(_), PiiAccess::Reveal) => unreadable(),
    }
}

/// The parsed leaf as a reader sees it: `pii` replaced by the view
/// [`crate::log::AuditLog::reveal_pii`] resolved, or `{"redacted": true}` when
/// nothing resolved it. `null` for bytes that are not JSON (every leaf Palisade
/// writes is; a damaged one must still be shown, and `audit verify` reports it).
pub fn leaf_view(event: &StoredEvent) -> Value {
    let mut leaf: Value = serde_json::from_slice(&event.leaf).unwrap_or(Value::Null);
    if let Some(pii) = leaf.get_mut("pii") {
        *pii = event.pii.clone().unwrap_or_else(redacted);
    }
    leaf
}

/// [`PiiCipher`] on a `palisade-crypto` keyring: each subject's data is sealed under
/// the keyring subject `{tenant}/{subject}` (the naming of `/v1/crypto` subjects),
/// so `Keyring::shred_subject` / `DELETE /v1/crypto/subjects/{id}` erases it.
#[cfg(feature = "keyring")]
#[derive(Clone)]
pub struct KeyringPii {
    keyring: palisade_crypto::Keyring,
}

#[cfg(feature = "keyring")]
impl std::fmt::Debug for KeyringPii {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringPii").finish_non_exhaustive()
    }
}

#[cfg(feature = "keyring")]
impl KeyringPii {
    /// The cipher on `keyring`.
    pub fn new(keyring: palisade_crypto::Keyring) -> Self {
        Self { keyring }
    }

    /// The keyring subject id of `subject` in `tenant`.
    pub fn keyring_subject(tenant: &str, subject: &str) -> String {
        format!("{tenant}/{subject}")
    }
}

#[cfg(feature = "keyring")]
fn from_crypto(e: palisade_crypto::CryptoError) -> PiiError {
    use palisade_crypto::CryptoError as E;
    match e {
        E::Shredded(_) => PiiError::Erased,
        E::KmsUnavailable(m) | E::StoreUnavailable(m) => PiiError::Unavailable(m),
        e @ E::InvalidName { .. } => PiiError::InvalidSubject(e.to_string()),
        other => PiiError::Failed(other.to_string()),
    }
}

#[cfg(feature = "keyring")]
impl PiiCipher for KeyringPii {
    fn seal<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
        plaintext: &'a [u8],
        aad: &'a [u8],
    ) -> PiiFuture<'a, String> {
        Box::pin(async move {
            let id = Self::keyring_subject(tenant, subject);
            palisade_crypto::keyring::validate_subject_id(&id).map_err(from_crypto)?;
            let sealed = self
                .keyring
                .encrypt_for_subject(&id, plaintext, aad)
                .await
                .map_err(from_crypto)?;
            Ok(palisade_crypto::envelope::to_text(&sealed))
        })
    }

    fn open<'a>(&'a self, ciphertext: &'a str, aad: &'a [u8]) -> PiiFuture<'a, Vec<u8>> {
        Box::pin(async move {
            self.keyring
                .decrypt_text(ciphertext, aad)
                .await
                .map_err(from_crypto)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: Value) -> Result<CheckedPii, InvalidField> {
        let input: SubjectPii = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        input.check(&EventLimits::default())
    }

    #[test]
    fn pii_needs_a_subject_an_object_and_bounds() {
        let field = |json: Value| check(json).err().map(|e| e.field);
        assert_eq!(field(json!({"pii": {"email": "a@b"}})), Some("pii".into()));
        assert_eq!(
            field(json!({"subject": "u1", "pii": "a@b"})),
            Some("pii".into())
        );
        assert_eq!(
            field(json!({"subject": "u1", "pii": ["a"]})),
            Some("pii".into())
        );
        assert_eq!(
            field(json!({"subject": "", "pii": {"a": 1}})),
            Some("subject".into())
        );
        assert_eq!(
            field(json!({"subject": "a\nb", "pii": {"a": 1}})),
            Some("subject".into())
        );
        assert_eq!(
            field(json!({"subject": "s".repeat(MAX_SUBJECT + 1)})),
            Some("subject".into())
        );
        assert_eq!(
            field(json!({"subject": "u1", "pii": {"blob": "x".repeat(9 * 1024)}})),
            Some("pii".into())
        );
        let mut deep = json!(1);
        for _ in 0..20 {
            deep = json!({ "d": deep });
        }
        assert_eq!(
            field(json!({"subject": "u1", "pii": {"deep": deep}})),
            Some("pii".into())
        );
        // A subject alone is fine; a subject with an object is sealed canonically.
        assert!(check(json!({"subject": "u1"})).is_ok_and(|c| c.plaintext.is_none()));
        let checked = check(json!({"subject": "u1", "pii": {"z": 1, "a": "x"}}));
        assert_eq!(
            checked.ok().and_then(|c| c.plaintext.as_deref().cloned()),
            Some(br#"{"a":"x","z":1}"#.to_vec())
        );
    }

    #[test]
    fn the_aad_names_tenant_subject_and_event() {
        let id = Uuid::nil();
        let a = pii_aad("t", "u1", id);
        assert_ne!(a, pii_aad("t2", "u1", id));
        assert_ne!(a, pii_aad("t", "u2", id));
        assert_ne!(a, pii_aad("t", "u1", Uuid::max()));
        // No shifting of bytes between tenant and subject gives the same AAD.
        assert_ne!(pii_aad("ab", "c", id), pii_aad("a", "bc", id));
    }

    #[test]
    fn views_fail_closed() {
        let plain = br#"{"email":"a@b"}"#.to_vec();
        assert_eq!(
            view_of(Ok(plain.clone()), PiiAccess::Reveal),
            json!({"email": "a@b"})
        );
        assert_eq!(view_of(Ok(plain), PiiAccess::Redact), redacted());
        for access in [PiiAccess::Reveal, PiiAccess::Redact] {
            assert_eq!(view_of(Err(PiiError::Erased), access), erased());
        }
        assert_eq!(
            view_of(Err(PiiError::Unavailable("x".into())), PiiAccess::Reveal),
            unavailable()
        );
        assert_eq!(
            view_of(Err(PiiError::Unavailable("x".into())), PiiAccess::Redact),
            redacted()
        );
        assert_eq!(
            view_of(Err(PiiError::Failed("x".into())), PiiAccess::Reveal),
            unreadable()
        );
        assert_eq!(
            view_of(Ok(b"[1]".to_vec()), PiiAccess::Reveal),
            unreadable()
        );
        // A view nobody resolved shows neither plaintext nor ciphertext.
        let event = StoredEvent {
            index: 0,
            id: Uuid::nil(),
            tenant: "t".into(),
            leaf: br#"{"id":"x","pii":"pal1.secret"}"#.to_vec(),
            pii: None,
        };
        assert_eq!(leaf_view(&event)["pii"], redacted());
    }

    #[cfg(feature = "keyring")]
    #[test]
    fn every_audit_subject_is_a_keyring_subject() {
        let longest_tenant = "t".repeat(64);
        for subject in ["u1", "user 42 ü", &"s".repeat(MAX_SUBJECT)] {
            assert!(check_subject(subject).is_ok());
            let id = KeyringPii::keyring_subject(&longest_tenant, subject);
            assert!(
                palisade_crypto::keyring::validate_subject_id(&id).is_ok(),
                "{subject}"
            );
        }
    }
}
