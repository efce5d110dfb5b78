//! `/v1/crypto`: envelope encryption, field-level encryption, blind indexes,
//! key rotation and crypto-shredding for services in other languages.
//!
//! Everything a caller seals is bound to the caller's tenant (the tenant is
//! part of the AAD, the blind-index context and the subject id), so another
//! tenant's API key can neither open it nor shred it. Keys named
//! `palisade-*` are Palisade's own and cannot be used here. A ciphertext
//! that was altered, or opened with other AAD, is a 400/422 problem, never a
//! 500 and never plaintext; a shredded subject's data is 410.
//!
//! Binary values (plaintext, AAD) travel as standard base64. Key rotation,
//! shredding and rewrap jobs are audit events.

use crate::auth::Caller;
use crate::json::ApiJson;
use crate::problem::Problem;
use crate::routes::changes::record_change;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use palisade_audit::event::{Actor, NewEvent, Outcome, Resource};
use palisade_crypto::envelope::{self, Envelope, KeyKind};
use palisade_crypto::keyring::{DEFAULT_KEY, RESERVED_PREFIX};
use palisade_crypto::{
    BlindIndexSettings, CryptoError, FieldKey, JsonPath, KeyInfo, Keyring, Normalization,
    RewrapJob, RewrapState,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Scope for encrypting, decrypting and blind indexes.
const USE_SCOPE: &str = "crypto:use";
/// Scope for key metadata, rotation and shredding.
const ADMIN_SCOPE: &str = "crypto:admin";
/// Most paths in one field request.
const MAX_PATHS: usize = 64;
/// Longest subject id over HTTP, in bytes (the tenant is prefixed to it).
const MAX_SUBJECT: usize = 180;

impl From<CryptoError> for Problem {
    fn from(e: CryptoError) -> Self {
        use CryptoError as E;
        match e {
            E::Malformed(_) | E::UnsupportedFormat(_) | E::UnsupportedAlgorithm(_) => Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-ciphertext",
                "Malformed ciphertext",
            )
            .detail(e.to_string())
            .field("ciphertext", e.to_string()),
            E::DecryptFailed | E::UnknownKey(_) | E::UnknownKeyVersion { .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "decryption-failed",
                "Decryption failed",
            )
            .detail(e.to_string()),
            E::Shredded(_) => Problem::new(StatusCode::GONE, "erased", "Erased")
                .detail("the data's subject was erased: its key was destroyed"),
            E::InvalidName { what, .. } => {
                let field = if what == "subject id" {
                    "subject"
                } else {
                    "key"
                };
                Problem::unprocessable(e.to_string()).field(field, e.to_string())
            }
            E::Invalid { field, .. } => {
                Problem::unprocessable(e.to_string()).field(field, e.to_string())
            }
            E::InvalidPath { .. } => {
                Problem::unprocessable(e.to_string()).field("paths", e.to_string())
            }
            E::TooLarge { .. } => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            )
            .detail(e.to_string()),
            E::KmsUnavailable(_) | E::StoreUnavailable(_) => {
                tracing::warn!(error = %e, "key management unavailable");
                Problem::unavailable("key management is unavailable", 2)
            }
            other => {
                tracing::error!(error = %other, "encryption service error");
                Problem::internal()
            }
        }
    }
}

/// The AAD of a request: a label, the tenant, then the caller's AAD, so one
/// tenant's ciphertexts never open in another and never look like
/// Palisade's own sealed secrets.
fn request_aad(tenant: &str, aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(18 + tenant.len() + aad.len());
    out.extend_from_slice(b"palisade http v1\0");
    out.extend_from_slice(tenant.as_bytes());
    out.push(0);
    out.extend_from_slice(aad);
    out
}

fn decode_base64(field: &'static str, text: &str) -> Result<Vec<u8>, Problem> {
    STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .map_err(|_| {
            Problem::unprocessable(format!("{field} is not base64"))
                .field(field, "must be standard base64")
        })
}

fn aad_of(caller: &Caller, aad: Option<&str>) -> Result<Vec<u8>, Problem> {
    let aad = aad
        .map(|a| decode_base64("aad", a))
        .transpose()?
        .unwrap_or_default();
    Ok(request_aad(caller.key.tenant.as_str(), &aad))
}

/// The keyring key a request names (default `default`); Palisade's own keys are refused.
fn key_name(key: Option<&str>) -> Result<&str, Problem> {
    let key = key.unwrap_or(DEFAULT_KEY);
    if key.starts_with(RESERVED_PREFIX) {
        return Err(
            Problem::unprocessable("keys named palisade-* are Palisade's own")
                .field("key", "reserved key name"),
        );
    }
    Ok(key)
}

/// The keyring's subject id of a caller's subject: tenant-scoped.
fn subject_id(caller: &Caller, subject: &str) -> Result<String, Problem> {
    if subject.is_empty() || subject.len() > MAX_SUBJECT || subject.chars().any(char::is_control) {
        return Err(Problem::unprocessable("invalid subject").field(
            "subject",
            "must be 1 to 180 bytes without control characters",
        ));
    }
    // Tenant ids never contain '/', so the split is unambiguous.
    Ok(format!("{}/{subject}", caller.key.tenant.as_str()))
}

/// Which key a request seals with: `key` or `subject`, not both.
enum Sealing {
    Key(String),
    Subject(String),
}

fn sealing(caller: &Caller, key: Option<&str>, subject: Option<&str>) -> Result<Sealing, Problem> {
    match (key, subject) {
        (Some(_), Some(_)) => Err(Problem::unprocessable("give key or subject, not both")
            .field("subject", "key and subject are exclusive")),
        (_, Some(subject)) => Ok(Sealing::Subject(subject_id(caller, subject)?)),
        (key, None) => Ok(Sealing::Key(key_name(key)?.to_owned())),
    }
}

/// An unknown key named by the caller is a missing resource, not a bad ciphertext.
fn unknown_key_is_404(e: CryptoError) -> Problem {
    match e {
        CryptoError::UnknownKey(name) => Problem::not_found(format!("no key named {name:?}")),
        other => other.into(),
    }
}

/// Refuses ciphertexts of Palisade's own keys before anything is tried.
fn check_not_reserved(ciphertext: &[u8]) -> Result<(), Problem> {
    let envelope = Envelope::parse(ciphertext)?;
    if envelope.kind == KeyKind::Keyring && envelope.key_id.starts_with(RESERVED_PREFIX) {
        return Err(CryptoError::DecryptFailed.into());
    }
    Ok(())
}

/// A plaintext to seal.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EncryptRequest {
    /// The keyring key (default `default`).
    pub key: Option<String>,
    /// Instead of `key`: seal under this subject's own key, so that
    /// `DELETE /v1/crypto/subjects/{id}` erases it. Use opaque ids (a user
    /// id, not an e-mail address): they appear in the audit log.
    pub subject: Option<String>,
    /// The plaintext, base64.
    pub plaintext: String,
    /// Associated data the ciphertext is bound to (record id, field, ...), base64.
    pub aad: Option<String>,
}

/// A sealed value.
#[derive(Debug, Serialize, ToSchema)]
pub struct EncryptResponse {
    /// The ciphertext in text form (`pal1.` + base64url).
    pub ciphertext: String,
}

/// Seals a plaintext (AES-256-GCM under a data key wrapped by the key).
#[utoipa::path(post, path = "/v1/crypto/encrypt", tag = "crypto", request_body = EncryptRequest,
    security(("api_key" = [])),
    responses((status = 200, body = EncryptResponse), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "no such key"), (status = 422, body = Problem),
        (status = 503, body = Problem)))]
pub async fn encrypt(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<EncryptRequest>,
) -> Result<Json<EncryptResponse>, Problem> {
    caller.require(USE_SCOPE)?;
    let keyring = state.crypto()?;
    let sealing = sealing(&caller, body.key.as_deref(), body.subject.as_deref())?;
    let plaintext = palisade_crypto::Zeroizing::new(decode_base64("plaintext", &body.plaintext)?);
    let aad = aad_of(&caller, body.aad.as_deref())?;
    let sealed = match &sealing {
        Sealing::Key(key) => keyring.encrypt(key, &plaintext, &aad).await,
        Sealing::Subject(subject) => keyring.encrypt_for_subject(subject, &plaintext, &aad).await,
    }
    .map_err(unknown_key_is_404)?;
    Ok(Json(EncryptResponse {
        ciphertext: envelope::to_text(&sealed),
    }))
}

/// A ciphertext to open.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecryptRequest {
    /// The ciphertext in text form.
    pub ciphertext: String,
    /// The associated data it was sealed with, base64.
    pub aad: Option<String>,
}

/// An opened value.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecryptResponse {
    /// The plaintext, base64.
    pub plaintext: String,
}

/// Opens a ciphertext of `/v1/crypto/encrypt` made in the caller's tenant
/// with the same AAD.
#[utoipa::path(post, path = "/v1/crypto/decrypt", tag = "crypto", request_body = DecryptRequest,
    security(("api_key" = [])),
    responses((status = 200, body = DecryptResponse),
        (status = 400, body = Problem, description = "not a ciphertext"),
        (status = 410, body = Problem, description = "the subject was erased"),
        (status = 422, body = Problem, description = "altered, other AAD or another tenant's"),
        (status = 503, body = Problem)))]
pub async fn decrypt(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<DecryptRequest>,
) -> Result<Json<DecryptResponse>, Problem> {
    caller.require(USE_SCOPE)?;
    let keyring = state.crypto()?;
    let aad = aad_of(&caller, body.aad.as_deref())?;
    let binary = envelope::from_text(&body.ciphertext)?;
    check_not_reserved(&binary)?;
    let plaintext = keyring.decrypt(&binary, &aad).await?;
    Ok(Json(DecryptResponse {
        plaintext: STANDARD.encode(&plaintext[..]),
    }))
}

fn parse_paths(paths: &[String]) -> Result<Vec<JsonPath>, Problem> {
    if paths.is_empty() || paths.len() > MAX_PATHS {
        return Err(Problem::unprocessable("give 1 to 64 paths").field("paths", "1 to 64 paths"));
    }
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            JsonPath::parse(p).map_err(|e| {
                Problem::unprocessable(e.to_string()).field(format!("paths[{i}]"), e.to_string())
            })
        })
        .collect()
}

/// Fields of a document to seal.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldsEncryptRequest {
    /// The keyring key (default `default`).
    pub key: Option<String>,
    /// Instead of `key`: seal under this subject's own key.
    pub subject: Option<String>,
    /// The JSON document.
    #[schema(value_type = Object)]
    pub document: serde_json::Value,
    /// Paths of the fields to seal: `$.user.email`, `$.cards[*].pan`, ...
    pub paths: Vec<String>,
    /// Associated data of the whole record, base64 (each field adds its path).
    pub aad: Option<String>,
}

/// The document with its fields sealed.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldsResponse {
    /// The document; sealed fields are `pal1.` strings.
    #[schema(value_type = Object)]
    pub document: serde_json::Value,
    /// How many fields were sealed or opened (missing paths are skipped).
    pub fields: usize,
}

/// Seals chosen fields of a JSON document, leaving the rest readable.
#[utoipa::path(post, path = "/v1/crypto/fields/encrypt", tag = "crypto", request_body = FieldsEncryptRequest,
    security(("api_key" = [])),
    responses((status = 200, body = FieldsResponse), (status = 404, body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn fields_encrypt(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<FieldsEncryptRequest>,
) -> Result<Json<FieldsResponse>, Problem> {
    caller.require(USE_SCOPE)?;
    let keyring = state.crypto()?;
    let sealing = sealing(&caller, body.key.as_deref(), body.subject.as_deref())?;
    let paths = parse_paths(&body.paths)?;
    let aad = aad_of(&caller, body.aad.as_deref())?;
    let key = match &sealing {
        Sealing::Key(key) => FieldKey::Key(key),
        Sealing::Subject(subject) => FieldKey::Subject(subject),
    };
    let mut document = body.document;
    let fields = keyring
        .encrypt_fields(&mut document, &paths, key, &aad)
        .await
        .map_err(unknown_key_is_404)?;
    Ok(Json(FieldsResponse { document, fields }))
}

/// Sealed fields of a document to open.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldsDecryptRequest {
    /// The document as `/v1/crypto/fields/encrypt` returned it.
    #[schema(value_type = Object)]
    pub document: serde_json::Value,
    /// The same paths as when sealing.
    pub paths: Vec<String>,
    /// The same associated data, base64.
    pub aad: Option<String>,
}

/// Opens the sealed fields of a document.
#[utoipa::path(post, path = "/v1/crypto/fields/decrypt", tag = "crypto", request_body = FieldsDecryptRequest,
    security(("api_key" = [])),
    responses((status = 200, body = FieldsResponse), (status = 400, body = Problem),
        (status = 410, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn fields_decrypt(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<FieldsDecryptRequest>,
) -> Result<Json<FieldsResponse>, Problem> {
    caller.require(USE_SCOPE)?;
    let keyring = state.crypto()?;
    let paths = parse_paths(&body.paths)?;
    let aad = aad_of(&caller, body.aad.as_deref())?;
    let mut document = body.document;
    let fields = keyring.decrypt_fields(&mut document, &paths, &aad).await?;
    Ok(Json(FieldsResponse { document, fields }))
}

/// A value to index.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlindIndexRequest {
    /// The index's name (one per searchable field, e.g. `users.email`).
    pub index: String,
    /// The value.
    pub value: String,
    /// Normalization before hashing (`trim`, `case_fold`, `digits_only`).
    /// Fixed when the index is made: give the same (or nothing) afterwards.
    #[schema(value_type = Option<Object>)]
    pub normalize: Option<Normalization>,
    /// Bytes of the index, 2 to 32 (default 8). Shorter leaks less and
    /// matches more false positives; see the documentation.
    pub length: Option<usize>,
}

/// A blind index.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlindIndexResponse {
    /// The index value, lowercase hex. Store it next to the ciphertext and
    /// search for equality on it.
    pub index: String,
    /// The index's length in bytes.
    pub length: usize,
    /// The index's normalization.
    #[schema(value_type = Object)]
    pub normalize: Normalization,
}

/// Computes the blind index of a value (HMAC-SHA-256 with the index's own
/// key, truncated), bound to the caller's tenant.
#[utoipa::path(post, path = "/v1/crypto/blind-index", tag = "crypto", request_body = BlindIndexRequest,
    security(("api_key" = [])),
    responses((status = 200, body = BlindIndexResponse), (status = 422, body = Problem),
        (status = 503, body = Problem)))]
pub async fn blind_index(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<BlindIndexRequest>,
) -> Result<Json<BlindIndexResponse>, Problem> {
    caller.require(USE_SCOPE)?;
    let keyring = state.crypto()?;
    if body.index.starts_with(RESERVED_PREFIX) {
        return Err(
            Problem::unprocessable("index names palisade-* are reserved")
                .field("index", "reserved name"),
        );
    }
    let settings = match (body.normalize, body.length) {
        (None, None) => None,
        (normalize, length) => Some(BlindIndexSettings {
            normalize: normalize.unwrap_or_default(),
            length: length.unwrap_or(BlindIndexSettings::default().length),
        }),
    };
    let value = palisade_crypto::Zeroizing::new(body.value);
    let index = keyring
        .blind_index(
            &body.index,
            caller.key.tenant.as_str().as_bytes(),
            &value,
            settings.as_ref(),
        )
        .await
        .map_err(|e| match e {
            CryptoError::InvalidName { .. } => {
                Problem::unprocessable(e.to_string()).field("index", e.to_string())
            }
            other => other.into(),
        })?;
    Ok(Json(BlindIndexResponse {
        index: index.value,
        length: index.settings.length,
        normalize: index.settings.normalize,
    }))
}

/// One version of a key (metadata only).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyVersionView {
    /// The version number.
    pub version: u32,
    /// `active` (wraps new data keys) or `retired` (only unwraps).
    pub state: String,
    /// Data keys wrapped with it so far.
    pub usage: u64,
    /// When it was made (Unix ms).
    pub created_at_ms: i64,
}

/// A key (metadata only, never key material).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// The key's name.
    pub name: String,
    /// The version that encrypts.
    pub current_version: Option<u32>,
    /// Every version, oldest first.
    pub versions: Vec<KeyVersionView>,
}

impl From<KeyInfo> for KeyView {
    fn from(info: KeyInfo) -> Self {
        Self {
            name: info.name.clone(),
            current_version: info.current().map(|v| v.version),
            versions: info
                .versions
                .into_iter()
                .map(|v| KeyVersionView {
                    version: v.version,
                    state: v.state.as_str().to_owned(),
                    usage: v.usage,
                    created_at_ms: v.created_at_ms,
                })
                .collect(),
        }
    }
}

/// The keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeysResponse {
    /// Every key of the keyring, by name.
    pub keys: Vec<KeyView>,
    /// The KMS holding the key-encryption keys (`local`, ...).
    pub kms: String,
}

/// Lists the keyring's keys and versions (metadata only).
#[utoipa::path(get, path = "/v1/crypto/keys", tag = "crypto", security(("api_key" = [])),
    responses((status = 200, body = KeysResponse), (status = 403, body = Problem),
        (status = 503, body = Problem)))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<KeysResponse>, Problem> {
    caller.require(ADMIN_SCOPE)?;
    let keyring = state.crypto()?;
    let keys = keyring.keys().await?;
    Ok(Json(KeysResponse {
        keys: keys.into_iter().map(KeyView::from).collect(),
        kms: keyring.kms().backend().to_owned(),
    }))
}

/// Adds a version to a key: new data is sealed under it, older data still
/// opens. Audited.
#[utoipa::path(post, path = "/v1/crypto/keys/{name}/rotate", tag = "crypto", security(("api_key" = [])),
    params(("name" = String, Path, description = "The key's name")),
    responses((status = 200, body = KeyView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<KeyView>, Problem> {
    caller.require(ADMIN_SCOPE)?;
    let keyring: &Keyring = state.crypto()?;
    let info = keyring.rotate(&name).await.map_err(unknown_key_is_404)?;
    let version = info.current().map(|v| v.version);
    record_change(
        &state,
        &caller,
        "crypto.key.rotated",
        Resource {
            kind: "crypto_key".into(),
            id: Some(name),
        },
        Some(serde_json::Map::from_iter([(
            "version".to_owned(),
            serde_json::Value::from(version),
        )])),
    )
    .await?;
    Ok(Json(info.into()))
}

/// Destroys a subject's key (crypto-shredding): everything sealed under it,
/// wherever it is stored, becomes unreadable (410). Audited. Idempotent:
/// 204 whether or not a key was still there.
#[utoipa::path(delete, path = "/v1/crypto/subjects/{id}", tag = "crypto", security(("api_key" = [])),
    params(("id" = String, Path, description = "The subject id")),
    responses((status = 204, description = "erased"), (status = 403, body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn shred_subject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(ADMIN_SCOPE)?;
    let keyring = state.crypto()?;
    let subject = subject_id(&caller, &id)?;
    let destroyed = keyring.shred_subject(&subject).await?;
    record_change(
        &state,
        &caller,
        "crypto.subject.shredded",
        Resource {
            kind: "crypto_subject".into(),
            id: Some(id),
        },
        Some(serde_json::Map::from_iter([(
            "key_destroyed".to_owned(),
            serde_json::Value::from(destroyed),
        )])),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A rewrap job.
#[derive(Debug, Serialize, ToSchema)]
pub struct RewrapJobView {
    /// The job's id.
    pub id: String,
    /// The key whose stored keys are rewrapped.
    pub key: String,
    /// The version they are brought to.
    pub target_version: u32,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// `subjects`, `indexes` or `finished`.
    pub phase: String,
    /// Stored keys to rewrap when the job started.
    pub total: u64,
    /// Rewrapped so far.
    pub rewrapped: u64,
    /// Started (Unix ms).
    pub started_at_ms: i64,
    /// Last progress (Unix ms).
    pub updated_at_ms: i64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<RewrapJob> for RewrapJobView {
    fn from(job: RewrapJob) -> Self {
        Self {
            id: job.id,
            key: job.kek_name,
            target_version: job.target_version,
            state: job.state.as_str().to_owned(),
            phase: job.phase.as_str().to_owned(),
            total: job.total,
            rewrapped: job.rewrapped,
            started_at_ms: job.started_at_ms,
            updated_at_ms: job.updated_at_ms,
            error: job.error,
        }
    }
}

/// Starts a background job re-wrapping the keys Palisade stores under this
/// key (subject keys under `palisade-subjects`, blind-index keys under
/// `palisade-index`) with its newest version; data is not re-encrypted.
/// Resumable, with progress at `GET /v1/crypto/rewrap-jobs/{id}`; its start
/// and end are audited. Ciphertexts stored elsewhere keep opening; there is
/// nothing of theirs here to rewrap.
#[utoipa::path(post, path = "/v1/crypto/keys/{name}/rewrap", tag = "crypto", security(("api_key" = [])),
    params(("name" = String, Path, description = "The key's name")),
    responses((status = 202, body = RewrapJobView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn start_rewrap(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(ADMIN_SCOPE)?;
    let keyring = state.crypto()?.clone();
    let job = keyring
        .start_rewrap(&name)
        .await
        .map_err(unknown_key_is_404)?;
    record_change(
        &state,
        &caller,
        "crypto.rewrap.started",
        Resource {
            kind: "crypto_key".into(),
            id: Some(name),
        },
        Some(serde_json::Map::from_iter([
            ("job".to_owned(), serde_json::Value::from(job.id.clone())),
            (
                "target_version".to_owned(),
                serde_json::Value::from(job.target_version),
            ),
            ("total".to_owned(), serde_json::Value::from(job.total)),
        ])),
    )
    .await?;
    let view = RewrapJobView::from(job.clone());
    tokio::spawn(run_rewrap_job(state, caller, keyring, job.id));
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// Runs a rewrap job to its end and writes the audit event of how it ended.
async fn run_rewrap_job(state: AppState, caller: Caller, keyring: Keyring, id: String) {
    let (outcome, metadata) = match keyring.run_rewrap(&id).await {
        Ok(job) => (
            if job.state == RewrapState::Done {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            serde_json::Map::from_iter([
                ("job".to_owned(), serde_json::Value::from(job.id)),
                (
                    "rewrapped".to_owned(),
                    serde_json::Value::from(job.rewrapped),
                ),
                (
                    "state".to_owned(),
                    serde_json::Value::from(job.state.as_str()),
                ),
            ]),
        ),
        Err(error) => {
            tracing::warn!(job = %id, %error, "rewrap job could not be run");
            (
                Outcome::Error,
                serde_json::Map::from_iter([("job".to_owned(), serde_json::Value::from(id))]),
            )
        }
    };
    let event = NewEvent {
        id: None,
        tenant: None,
        action: "crypto.rewrap.finished".to_owned(),
        actor: Actor {
            id: caller.key.id.to_string(),
            kind: Some("api_key".into()),
            ip: None,
            user_agent: None,
        },
        resource: None,
        outcome,
        occurred_at: None,
        request_id: None,
        metadata: Some(metadata),
    };
    if let Err(error) = state.audit.append(caller.key.tenant.clone(), event).await {
        tracing::warn!(%error, "could not audit the end of a rewrap job");
    }
}

/// A rewrap job's progress.
#[utoipa::path(get, path = "/v1/crypto/rewrap-jobs/{id}", tag = "crypto", security(("api_key" = [])),
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, body = RewrapJobView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn rewrap_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RewrapJobView>, Problem> {
    caller.require(ADMIN_SCOPE)?;
    let keyring = state.crypto()?;
    match keyring.rewrap_job(&id).await? {
        Some(job) => Ok(Json(job.into())),
        None => Err(Problem::not_found("no rewrap job with that id")),
    }
}
