//! The local KMS: key-encryption keys (KEKs) generated here and kept in a key
//! file sealed by the master key (AES-256-GCM), or only in memory for tests.
//!
//! The file is rewritten whole on every change (temporary file, fsync,
//! rename), so a crash leaves the old or the new file, never a torn one.
//! Several instances may share one file (one host, or a shared volume with
//! exclusive file creation): every change takes a lock file
//! (`<key file>.lock`, created exclusively; one older than 30 s is taken as
//! left by a crashed process), re-reads the file and only then adds to it,
//! so two instances creating or rotating a key at once never overwrite each
//! other's versions. An instance asked for a version it does not know
//! re-reads the file before failing. Deployments with many instances should
//! still prefer a network KMS.
//!
//! Key file layout: `PLKF` ‖ format `1` ‖ nonce ‖ AES-256-GCM(master key,
//! AAD `PLKF\x01`) of the records, each `name length (1) ‖ name ‖ version
//! (4) ‖ created at, Unix ms (8) ‖ key (32)`, preceded by their count (4).

use super::wrap_aad;
use crate::aead::{AeadKey, KEY_LEN, KeyBytes};
use crate::error::{CryptoError, Result};
use crate::master_key::MasterKey;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};
use zeroize::Zeroizing;

const FILE_MAGIC: &[u8; 4] = b"PLKF";
const FILE_FORMAT: u8 = 1;
const WRAP_LABEL: &[u8; 4] = b"PLW1";
/// Longest a change waits for another process's lock on the key file.
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// A lock file older than this was left by a process that died mid-change.
const LOCK_STALE: Duration = Duration::from_secs(30);

/// One version of a local KEK.
struct Version {
    version: u32,
    created_at_ms: i64,
    material: KeyBytes,
    aead: AeadKey,
}

type Keys = BTreeMap<String, Vec<Version>>;

/// The local KMS. Cheap to clone.
#[derive(Clone)]
pub struct LocalKms {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None`: in memory only.
    file: Option<KeyFile>,
    keys: RwLock<Keys>,
    /// Serialises changes (and their file writes) within this process.
    change: tokio::sync::Mutex<()>,
}

struct KeyFile {
    path: PathBuf,
    master: AeadKey,
}

impl fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.read().len();
        f.debug_struct("LocalKms")
            .field(
                "file",
                &self
                    .inner
                    .file
                    .as_ref()
                    .map(|f| f.path.display().to_string()),
            )
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

impl LocalKms {
    /// A KMS whose keys live only in this process (tests, benchmarks,
    /// ephemeral keyrings): they are gone when it is dropped.
    pub fn in_memory() -> Self {
        Self::with(None, Keys::new())
    }

    /// The KMS of key file `path`, sealed by `master`. A missing file is
    /// created on the first change; a file that does not open with this
    /// master key is an error (never silently replaced).
    pub fn open(path: &Path, master: &MasterKey) -> Result<Self> {
        let master = AeadKey::new(master.bytes())?;
        let keys = match std::fs::read(path) {
            Ok(bytes) => decode_file(path, &master, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Keys::new(),
            Err(e) => return Err(file_error(path, format!("cannot read: {e}"))),
        };
        let file = KeyFile {
            path: path.to_owned(),
            master,
        };
        Ok(Self::with(Some(file), keys))
    }

    fn with(file: Option<KeyFile>, keys: Keys) -> Self {
        Self {
            inner: Arc::new(Inner {
                file,
                keys: RwLock::new(keys),
                change: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        // A poisoned lock means a panic elsewhere mid-read; the map itself is intact.
        self.inner.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Keys> {
        self.inner.keys.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest version of `name`, if the key exists.
    pub fn latest_version(&self, name: &str) -> Option<u32> {
        self.read()
            .get(name)
            .and_then(|versions| versions.last().map(|v| v.version))
    }

    /// Creates `name` with version 1 unless it exists; returns its newest version.
    pub async fn create_key(&self, name: &str, now_ms: i64) -> Result<u32> {
        let _change = self.inner.change.lock().await;
        let _lock = self.lock_file().await?;
        // Another instance sharing the file may have made it meanwhile.
        self.reload_from_file().await?;
        if let Some(latest) = self.latest_version(name) {
            return Ok(latest);
        }
        self.add_version(name, 1, now_ms).await
    }

    /// Adds a new version of `name` (creating the key if needed) and returns it.
    pub async fn rotate(&self, name: &str, now_ms: i64) -> Result<u32> {
        let _change = self.inner.change.lock().await;
        let _lock = self.lock_file().await?;
        // Another process sharing the file may have rotated since we read it.
        self.reload_from_file().await?;
        let next = self
            .latest_version(name)
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| CryptoError::Kms(format!("key {name:?} has no version left")))?;
        self.add_version(name, next, now_ms).await
    }

    async fn add_version(&self, name: &str, version: u32, now_ms: i64) -> Result<u32> {
        let material = KeyBytes::generate()?;
        let fresh = Version {
            version,
            created_at_ms: now_ms,
            aead: AeadKey::new(&material)?,
            material,
        };
        if let Some(file) = &self.inner.file {
            let body = {
                let keys = self.read();
                encode_records(&keys, Some((name, &fresh)))
            };
            let sealed = seal_file(&file.master, &body)?;
            let path = file.path.clone();
            tokio::task::spawn_blocking(move || write_atomically(&path, &sealed))
                .await
                .map_err(|_| file_error(&file.path, "the writer task failed".into()))??;
        }
        self.write().entry(name.to_owned()).or_default().push(fresh);
        Ok(version)
    }

    /// Takes the key file's lock (no-op in memory) for one change.
    async fn lock_file(&self) -> Result<Option<FileLock>> {
        let Some(file) = &self.inner.file else {
            return Ok(None);
        };
        let path = file.path.clone();
        tokio::task::spawn_blocking(move || FileLock::acquire(&path))
            .await
            .map_err(|_| file_error(&file.path, "the lock task failed".into()))?
            .map(Some)
    }

    /// Re-reads the key file (no-op in memory), keeping what it adds.
    async fn reload_from_file(&self) -> Result<()> {
        let Some(file) = &self.inner.file else {
            return Ok(());
        };
        let path = file.path.clone();
        let read = tokio::task::spawn_blocking(move || std::fs::read(&path))
            .await
            .map_err(|_| file_error(&file.path, "the reader task failed".into()))?;
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(file_error(&file.path, format!("cannot read: {e}"))),
        };
        let loaded = decode_file(&file.path, &file.master, &bytes)?;
        let mut keys = self.write();
        for (name, versions) in loaded {
            let known = keys.entry(name).or_default();
            for version in versions {
                if !known.iter().any(|v| v.version == version.version) {
                    known.push(version);
                }
            }
            known.sort_by_key(|v| v.version);
        }
        Ok(())
    }

    /// Wraps `key` under version `version` of `name`, bound to `context`.
    pub async fn wrap(
        &self,
        name: &str,
        version: u32,
        key: &KeyBytes,
        context: &[u8],
    ) -> Result<Vec<u8>> {
        self.ensure_version(name, version).await?;
        let keys = self.read();
        let kek = find(&keys, name, version)?;
        kek.aead
            .seal(&wrap_aad(WRAP_LABEL, name, version, context), key.expose())
    }

    /// Unwraps what [`LocalKms::wrap`] made with the same name, version and context.
    pub async fn unwrap(
        &self,
        name: &str,
        version: u32,
        wrapped: &[u8],
        context: &[u8],
    ) -> Result<KeyBytes> {
        self.ensure_version(name, version).await?;
        let keys = self.read();
        let kek = find(&keys, name, version)?;
        let plain = kek
            .aead
            .open(&wrap_aad(WRAP_LABEL, name, version, context), wrapped)?;
        KeyBytes::from_slice(&plain).map_err(|_| CryptoError::DecryptFailed)
    }

    /// Makes sure `version` of `name` is loaded, re-reading the file once if not.
    async fn ensure_version(&self, name: &str, version: u32) -> Result<()> {
        let known = |kms: &Self| {
            kms.read()
                .get(name)
                .is_some_and(|vs| vs.iter().any(|v| v.version == version))
        };
        if known(self) {
            return Ok(());
        }
        self.reload_from_file().await?;
        if known(self) {
            Ok(())
        } else if self.read().contains_key(name) {
            Err(CryptoError::UnknownKeyVersion {
                name: name.to_owned(),
                version,
            })
        } else {
            Err(CryptoError::UnknownKey(name.to_owned()))
        }
    }

    /// Every key with its versions and their creation times (no material).
    pub fn describe(&self) -> Vec<(String, Vec<(u32, i64)>)> {
        self.read()
            .iter()
            .map(|(name, versions)| {
                (
                    name.clone(),
                    versions
                        .iter()
                        .map(|v| (v.version, v.created_at_ms))
                        .collect(),
                )
            })
            .collect()
    }
}

fn find<'k>(keys: &'k Keys, name: &str, version: u32) -> Result<&'k Version> {
    let versions = keys
        .get(name)
        .ok_or_else(|| CryptoError::UnknownKey(name.to_owned()))?;
    versions
        .iter()
        .find(|v| v.version == version)
        .ok_or_else(|| CryptoError::UnknownKeyVersion {
            name: name.to_owned(),
            version,
        })
}

fn file_error(path: &Path, reason: String) -> CryptoError {
    CryptoError::KeyFile {
        path: path.display().to_string(),
        reason,
    }
}

fn file_aad() -> [u8; 5] {
    let mut aad = [0u8; 5];
    aad[..4].copy_from_slice(FILE_MAGIC);
    aad[4] = FILE_FORMAT;
    aad
}

fn encode_records(keys: &Keys, extra: Option<(&str, &Version)>) -> Zeroizing<Vec<u8>> {
    let mut records: Vec<(&str, &Version)> = keys
        .iter()
        .flat_map(|(name, versions)| versions.iter().map(move |v| (name.as_str(), v)))
        .collect();
    records.extend(extra);
    let mut body = Zeroizing::new(Vec::with_capacity(4 + records.len() * 110));
    body.extend_from_slice(&(records.len() as u32).to_be_bytes());
    for (name, version) in records {
        body.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(&version.version.to_be_bytes());
        body.extend_from_slice(&version.created_at_ms.to_be_bytes());
        body.extend_from_slice(version.material.expose());
    }
    body
}

fn seal_file(master: &AeadKey, body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(5 + body.len() + 28);
    out.extend_from_slice(&file_aad());
    master.seal_append(&file_aad(), body, &mut out)?;
    Ok(out)
}

fn decode_file(path: &Path, master: &AeadKey, bytes: &[u8]) -> Result<Keys> {
    let corrupt = |reason: &str| file_error(path, reason.to_owned());
    if bytes.len() < 5 || bytes[..4] != FILE_MAGIC[..] {
        return Err(corrupt("not a Palisade key file"));
    }
    if bytes[4] != FILE_FORMAT {
        return Err(corrupt("unsupported key file format"));
    }
    let body = master.open(&file_aad(), &bytes[5..]).map_err(|_| {
        corrupt("does not open with this master key (wrong master key, or the file was altered)")
    })?;
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8]> {
        let end = at
            .checked_add(n)
            .filter(|&e| e <= body.len())
            .ok_or_else(|| corrupt("truncated record"))?;
        let slice = &body[at..end];
        at = end;
        Ok(slice)
    };
    let count = u32::from_be_bytes(take(4)?.try_into().map_err(|_| corrupt("count"))?);
    let mut keys = Keys::new();
    for _ in 0..count {
        let name_len = usize::from(take(1)?[0]);
        let name = std::str::from_utf8(take(name_len)?)
            .map_err(|_| corrupt("key name is not UTF-8"))?
            .to_owned();
        let version = u32::from_be_bytes(take(4)?.try_into().map_err(|_| corrupt("version"))?);
        let created_at_ms =
            i64::from_be_bytes(take(8)?.try_into().map_err(|_| corrupt("created at"))?);
        let material = KeyBytes::from_slice(take(KEY_LEN)?)?;
        let aead = AeadKey::new(&material)?;
        keys.entry(name).or_default().push(Version {
            version,
            created_at_ms,
            material,
            aead,
        });
    }
    if at != body.len() {
        return Err(corrupt("trailing bytes"));
    }
    for versions in keys.values_mut() {
        versions.sort_by_key(|v| v.version);
    }
    Ok(keys)
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// (mode 0600), fsynced and renamed over the old file, then fsyncs the
/// directory so the rename itself survives a crash.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| file_error(path, format!("cannot create its directory: {e}")))?;
    // Unique per process and write, in the same directory (rename is atomic there).
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(format!(
        ".tmp.{}.{}",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(file_error(path, format!("cannot write: {e}")));
    }
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// An exclusive lock on the key file for one change: `<key file>.lock`,
/// created exclusively and removed when dropped.
#[derive(Debug)]
struct FileLock {
    path: PathBuf,
}

impl FileLock {
    fn acquire(key_file: &Path) -> Result<Self> {
        let mut name = key_file.file_name().unwrap_or_default().to_owned();
        name.push(".lock");
        let path = key_file.with_file_name(name);
        let started = Instant::now();
        loop {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&path) {
                Ok(_) => return Ok(Self { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|at| SystemTime::now().duration_since(at).ok())
                        .is_some_and(|age| age > LOCK_STALE);
                    if stale {
                        tracing::warn!(lock = %path.display(), "removing a stale key file lock");
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    if started.elapsed() > LOCK_WAIT {
                        return Err(file_error(
                            key_file,
                            format!("locked by another process ({} exists)", path.display()),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let dir = path.parent().unwrap_or(Path::new("."));
                    std::fs::create_dir_all(dir).map_err(|e| {
                        file_error(key_file, format!("cannot create its directory: {e}"))
                    })?;
                }
                Err(e) => return Err(file_error(key_file, format!("cannot lock: {e}"))),
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
            .block_on(future)
    }

    #[test]
    fn wrapped_keys_open_only_with_the_same_name_version_and_context() {
        block_on(async {
            let kms = LocalKms::in_memory();
            assert_eq!(kms.create_key("a", 0).await, Ok(1));
            assert_eq!(kms.create_key("b", 0).await, Ok(1));
            assert_eq!(kms.rotate("a", 0).await, Ok(2));
            let dek = KeyBytes::generate().unwrap_or_else(|e| panic!("{e}"));
            let wrapped = kms.wrap("a", 1, &dek, b"dek").await.unwrap_or_default();
            let opened = kms.unwrap("a", 1, &wrapped, b"dek").await;
            assert_eq!(opened.map(|k| *k.expose()).ok(), Some(*dek.expose()));
            assert_eq!(
                kms.unwrap("a", 2, &wrapped, b"dek").await.err(),
                Some(CryptoError::DecryptFailed)
            );
            assert_eq!(
                kms.unwrap("b", 1, &wrapped, b"dek").await.err(),
                Some(CryptoError::DecryptFailed)
            );
            assert_eq!(
                kms.unwrap("a", 1, &wrapped, b"subject").await.err(),
                Some(CryptoError::DecryptFailed)
            );
            assert_eq!(
                kms.unwrap("a", 3, &wrapped, b"dek").await.err(),
                Some(CryptoError::UnknownKeyVersion {
                    name: "a".into(),
                    version: 3
                })
            );
            assert_eq!(
                kms.unwrap("zz", 1, &wrapped, b"dek").await.err(),
                Some(CryptoError::UnknownKey("zz".into()))
            );
        });
    }

    #[test]
    fn key_file_survives_a_restart_and_refuses_another_master_key() {
        block_on(async {
            let Ok(dir) = tempfile::tempdir() else { return };
            let path = dir.path().join("keys.sealed");
            let master = MasterKey::generate().unwrap_or_else(|e| panic!("{e}"));
            let kms = LocalKms::open(&path, &master).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(kms.create_key("default", 5).await, Ok(1));
            assert_eq!(kms.rotate("default", 6).await, Ok(2));
            let dek = KeyBytes::generate().unwrap_or_else(|e| panic!("{e}"));
            let wrapped = kms.wrap("default", 2, &dek, b"").await.unwrap_or_default();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
                assert_eq!(mode.ok(), Some(0o600));
            }
            let raw = std::fs::read(&path).unwrap_or_default();
            assert!(
                !raw.windows(32).any(|w| w == dek.expose()),
                "no key in clear"
            );

            let again = LocalKms::open(&path, &master).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                again.describe(),
                vec![("default".into(), vec![(1, 5), (2, 6)])]
            );
            let opened = again.unwrap("default", 2, &wrapped, b"").await;
            assert_eq!(opened.map(|k| *k.expose()).ok(), Some(*dek.expose()));

            let other = MasterKey::generate().unwrap_or_else(|e| panic!("{e}"));
            assert!(matches!(
                LocalKms::open(&path, &other),
                Err(CryptoError::KeyFile { .. })
            ));
        });
    }

    #[test]
    fn an_instance_sharing_the_file_sees_versions_added_by_another() {
        block_on(async {
            let Ok(dir) = tempfile::tempdir() else { return };
            let path = dir.path().join("keys.sealed");
            let master = MasterKey::generate().unwrap_or_else(|e| panic!("{e}"));
            let first = LocalKms::open(&path, &master).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(first.create_key("k", 0).await, Ok(1));
            let second = LocalKms::open(&path, &master).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(first.rotate("k", 0).await, Ok(2));
            let dek = KeyBytes::generate().unwrap_or_else(|e| panic!("{e}"));
            let wrapped = first.wrap("k", 2, &dek, b"").await.unwrap_or_default();
            assert!(second.unwrap("k", 2, &wrapped, b"").await.is_ok());
            // A rotation on the second builds on the first's version 2.
            assert_eq!(second.rotate("k", 0).await, Ok(3));
        });
    }

    #[test]
    fn instances_creating_keys_at_once_on_one_file_agree_on_the_material() {
        let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            let Ok(dir) = tempfile::tempdir() else { return };
            let path = dir.path().join("keys.sealed");
            let master = MasterKey::generate().unwrap_or_else(|e| panic!("{e}"));
            let instances: Vec<LocalKms> = (0..4)
                .map(|_| LocalKms::open(&path, &master).unwrap_or_else(|e| panic!("{e}")))
                .collect();
            let tasks: Vec<_> = instances
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, kms)| {
                    tokio::spawn(async move {
                        for name in ["shared-a", "shared-b", "shared-c"] {
                            kms.create_key(name, i as i64).await?;
                        }
                        kms.rotate("shared-c", 0).await
                    })
                })
                .collect();
            for task in tasks {
                assert!(matches!(task.await, Ok(Ok(_))));
            }
            let dek = KeyBytes::generate().unwrap_or_else(|e| panic!("{e}"));
            for name in ["shared-a", "shared-b"] {
                let wrapped = instances[0]
                    .wrap(name, 1, &dek, b"")
                    .await
                    .unwrap_or_default();
                for other in &instances[1..] {
                    let opened = other.unwrap(name, 1, &wrapped, b"").await;
                    assert_eq!(
                        opened.map(|k| *k.expose()).ok(),
                        Some(*dek.expose()),
                        "{name}"
                    );
                }
            }
            // Four rotations of shared-c, none lost: versions 1 to 5.
            let reopened = LocalKms::open(&path, &master).unwrap_or_else(|e| panic!("{e}"));
            let versions: Vec<u32> = reopened
                .describe()
                .into_iter()
                .find(|(name, _)| name == "shared-c")
                .map(|(_, vs)| vs.into_iter().map(|v| v.0).collect())
                .unwrap_or_default();
            assert_eq!(versions, vec![1, 2, 3, 4, 5]);
            assert!(!dir.path().join("keys.sealed.lock").exists());
        });
    }

    #[test]
    fn every_flipped_byte_of_the_key_file_is_refused() {
        block_on(async {
            let Ok(dir) = tempfile::tempdir() else { return };
            let path = dir.path().join("keys.sealed");
            let master = MasterKey::generate().unwrap_or_else(|e| panic!("{e}"));
            let kms = LocalKms::open(&path, &master).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(kms.create_key("k", 0).await, Ok(1));
            let raw = std::fs::read(&path).unwrap_or_default();
            for i in 0..raw.len() {
                let mut bad = raw.clone();
                bad[i] ^= 0x01;
                assert!(std::fs::write(&path, &bad).is_ok());
                assert!(
                    matches!(
                        LocalKms::open(&path, &master),
                        Err(CryptoError::KeyFile { .. })
                    ),
                    "byte {i}"
                );
            }
        });
    }
}
