//! Where a list comes from (a file or a URL) and fetching it only when it
//! changed: a file by its modification time and length, a URL by a
//! conditional request (`If-None-Match` / `If-Modified-Since`).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Whether a list allows or blocks what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    /// Addresses never refused by lists or detectors (a manual block still applies).
    Allow,
    /// Addresses refused.
    Block,
}

/// One configured list: a name, a kind and exactly one of `path` and `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListSource {
    /// The name shown in evidence and status (`firehol_level1`, `office`).
    pub name: String,
    /// Allow or block.
    pub kind: ListKind,
    /// A local file, re-read when its modification time or length changes.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// An `http://` or `https://` URL, fetched on every reload with a
    /// conditional request.
    #[serde(default)]
    pub url: Option<String>,
}

impl ListSource {
    /// Checks the name and that exactly one of `path` and `url` is set.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err("name must be 1 to 64 of A-Z a-z 0-9 - _ .".into());
        }
        match (&self.path, &self.url) {
            (Some(_), None) => Ok(()),
            (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(())
            }
            (None, Some(_)) => Err("url must start with http:// or https://".into()),
            _ => Err("give exactly one of path and url".into()),
        }
    }

    /// The path or URL, for status and logs.
    pub fn location(&self) -> String {
        match (&self.path, &self.url) {
            (Some(path), _) => path.display().to_string(),
            (None, Some(url)) => url.clone(),
            (None, None) => String::new(),
        }
    }
}

/// What identifies the version of a source last read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Version {
    modified: Option<SystemTime>,
    len: u64,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// The result of asking a source for its content.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// Same version as last time.
    Unchanged,
    /// New content and its version.
    Changed(Vec<u8>, Version),
}

/// Reads sources, bounded in size and time.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    /// The HTTP client, or why none could be built (URLs then fail to load).
    http: Result<reqwest::Client, String>,
    max_bytes: u64,
}

impl Fetcher {
    /// A fetcher; the HTTP client is only built when `http` is true (some
    /// source is a URL).
    pub(crate) fn new(max_bytes: u64, timeout: Duration, http: bool) -> Self {
        let http = if http {
            // reqwest's rustls needs a process-wide provider; aws-lc-rs is the
            // one provider of the project. An error only means one is set.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            reqwest::Client::builder()
                .timeout(timeout)
                .user_agent(concat!("palisade/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("HTTP client: {e}"))
        } else {
            Err("no list is fetched from a URL".into())
        };
        Self { http, max_bytes }
    }

    /// The content of `source` if it differs from `last`.
    pub(crate) async fn fetch(
        &self,
        source: &ListSource,
        last: Option<&Version>,
    ) -> Result<Fetched, String> {
        match (&source.path, &source.url) {
            (Some(path), _) => self.read_file(path, last).await,
            (None, Some(url)) => self.get(url, last).await,
            (None, None) => Err("no path or url".into()),
        }
    }

    async fn read_file(&self, path: &PathBuf, last: Option<&Version>) -> Result<Fetched, String> {
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let version = Version {
            modified: meta.modified().ok(),
            len: meta.len(),
            ..Version::default()
        };
        if last == Some(&version) && version.modified.is_some() {
            return Ok(Fetched::Unchanged);
        }
        if meta.len() > self.max_bytes {
            return Err(format!(
                "{} is {} bytes, over the limit of {}",
                path.display(),
                meta.len(),
                self.max_bytes
            ));
        }
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // The file may have grown between the two calls.
        if bytes.len() as u64 > self.max_bytes {
            return Err(format!("{} grew over the size limit", path.display()));
        }
        Ok(Fetched::Changed(bytes, version))
    }

    async fn get(&self, url: &str, last: Option<&Version>) -> Result<Fetched, String> {
        let http = self.http.as_ref().map_err(Clone::clone)?;
        let mut request = http.get(url);
        if let Some(last) = last {
            if let Some(etag) = &last.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(modified) = &last.last_modified {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, modified);
            }
        }
        let mut response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        if response.status() == reqwest::StatusCode::NOT_MODIFIED && last.is_some() {
            return Ok(Fetched::Unchanged);
        }
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes)
        {
            return Err(format!(
                "{url}: over the size limit of {} bytes",
                self.max_bytes
            ));
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let version = Version {
            etag: header(reqwest::header::ETAG),
            last_modified: header(reqwest::header::LAST_MODIFIED),
            ..Version::default()
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if (bytes.len() + chunk.len()) as u64 > self.max_bytes {
                return Err(format!(
                    "{url}: over the size limit of {} bytes",
                    self.max_bytes
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched::Changed(bytes, version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(path: Option<&str>, url: Option<&str>) -> ListSource {
        ListSource {
            name: "drop".into(),
            kind: ListKind::Block,
            path: path.map(PathBuf::from),
            url: url.map(str::to_owned),
        }
    }

    #[test]
    fn a_source_has_exactly_one_location_and_a_plain_name() {
        assert!(source(Some("/x"), None).validate().is_ok());
        assert!(
            source(None, Some("https://lists.example/drop.txt"))
                .validate()
                .is_ok()
        );
        assert!(source(None, Some("ftp://x")).validate().is_err());
        assert!(source(None, None).validate().is_err());
        assert!(source(Some("/x"), Some("http://x")).validate().is_err());
        let mut bad = source(Some("/x"), None);
        bad.name = "a b".into();
        assert!(bad.validate().is_err());
    }
}
