//! The master key of the local KMS: 32 bytes that seal the key file. It comes
//! from an environment variable or a file, never from `palisade.toml` in
//! clear, so a leaked configuration does not leak the keys.

use crate::aead::KeyBytes;
use crate::error::{CryptoError, Result};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use std::fmt;
use std::io::Write as _;
use std::path::Path;

/// The local KMS's master key. `Debug` never shows it; zeroed on drop.
#[derive(Clone)]
pub struct MasterKey(KeyBytes);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// Where a master key came from, for the start-up log (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    /// An environment variable, by name.
    Env(String),
    /// A file that already existed.
    File(std::path::PathBuf),
    /// A file created just now because none was supplied (embedded default).
    Generated(std::path::PathBuf),
}

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Result<Self> {
        KeyBytes::generate().map(Self)
    }

    /// The key from its text form: base64 (standard or URL-safe, padded or
    /// not) of exactly 32 bytes, surrounding whitespace ignored.
    pub fn from_base64(text: &str) -> Result<Self> {
        let text = text.trim();
        let decoded = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .map(zeroize::Zeroizing::new)
            .ok_or_else(|| CryptoError::MasterKey("not base64".into()))?;
        KeyBytes::from_slice(&decoded).map(Self).map_err(|_| {
            CryptoError::MasterKey("must be 32 bytes (base64 of 32 random bytes)".into())
        })
    }

    /// The key's text form (base64), to write to a file or a secret manager.
    pub fn to_base64(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(STANDARD.encode(self.0.expose()))
    }

    /// The key in environment variable `name`, if it is set.
    pub fn from_env(name: &str) -> Result<Option<Self>> {
        match std::env::var(name) {
            Ok(value) => {
                let value = zeroize::Zeroizing::new(value);
                Self::from_base64(&value).map(Some).map_err(|e| {
                    CryptoError::MasterKey(format!("environment variable {name}: {e}"))
                })
            }
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(CryptoError::MasterKey(format!(
                "environment variable {name} is not valid UTF-8"
            ))),
        }
    }

    /// The key in file `path` (its base64 text form).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                CryptoError::MasterKey(format!("cannot read {}: {e}", path.display()))
            })?);
        Self::from_base64(&text)
            .map_err(|e| CryptoError::MasterKey(format!("{}: {e}", path.display())))
    }

    /// The key in `path`, or a new one written there (mode 0600, created
    /// exclusively so two processes starting together cannot both write).
    pub fn load_or_create(path: &Path) -> Result<(Self, MasterKeySource)> {
        if path.exists() {
            return Ok((
                Self::from_file(path)?,
                MasterKeySource::File(path.to_owned()),
            ));
        }
        let key = Self::generate()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(path).and_then(|mut file| {
            file.write_all(key.to_base64().as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()
        });
        match written {
            Ok(()) => Ok((key, MasterKeySource::Generated(path.to_owned()))),
            // Another process created it between our check and our write.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((
                Self::from_file(path)?,
                MasterKeySource::File(path.to_owned()),
            )),
            Err(e) => Err(CryptoError::MasterKey(format!(
                "cannot create {}: {e}",
                path.display()
            ))),
        }
    }

    pub(crate) fn bytes(&self) -> &KeyBytes {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_base64_of_32_bytes_in_any_common_alphabet() {
        let key = MasterKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let text = key.to_base64();
        let again = MasterKey::from_base64(&format!("  {}\n", text.as_str()));
        assert_eq!(
            again.map(|k| *k.bytes().expose()).ok(),
            Some(*key.bytes().expose())
        );
        let url = URL_SAFE_NO_PAD.encode([0xfb; 32]);
        assert!(MasterKey::from_base64(&url).is_ok());
        assert!(MasterKey::from_base64(&STANDARD.encode([1; 31])).is_err());
        assert!(MasterKey::from_base64("not base64 at all!").is_err());
        assert_eq!(format!("{key:?}"), "MasterKey([redacted])");
    }

    #[test]
    fn load_or_create_writes_a_private_file_once() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let path = dir.path().join("master.key");
        let (first, source) = MasterKey::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(source, MasterKeySource::Generated(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
            assert_eq!(mode.ok(), Some(0o600));
        }
        let (second, source) = MasterKey::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(source, MasterKeySource::File(path));
        assert_eq!(first.bytes().expose(), second.bytes().expose());
    }
}
