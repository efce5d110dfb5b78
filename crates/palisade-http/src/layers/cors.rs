//! CORS from an explicit allow list (`[cors]`). Off unless origins are listed:
//! Palisade's API is called by servers, and a browser app must be named to be
//! let in. `*` is accepted only alone and never with credentials, since a
//! wildcard with cookies would let every site act as the signed-in user.

use crate::protection::ProtectionError;
use axum::http::{HeaderName, HeaderValue, Method};
use palisade_guard::csrf::normalize_origin;
use serde::Deserialize;
use std::str::FromStr;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// `[cors]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsSettings {
    /// Origins allowed to call from a browser (`https://app.example`). Empty:
    /// CORS is off and browsers enforce the same-origin policy.
    pub allowed_origins: Vec<String>,
    /// Methods allowed in cross-origin requests.
    pub allowed_methods: Vec<String>,
    /// Request headers allowed in cross-origin requests.
    pub allowed_headers: Vec<String>,
    /// Response headers a browser script may read.
    pub expose_headers: Vec<String>,
    /// Whether cookies and `Authorization` may come along (`Access-Control-Allow-Credentials`).
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer, in seconds.
    pub max_age_secs: u64,
}

impl Default for CorsSettings {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allowed_methods: ["GET", "POST", "PUT", "PATCH", "DELETE"]
                .map(String::from)
                .to_vec(),
            allowed_headers: [
                "authorization",
                "content-type",
                "idempotency-key",
                "x-request-id",
                "x-csrf-token",
            ]
            .map(String::from)
            .to_vec(),
            expose_headers: [
                "x-request-id",
                "retry-after",
                "ratelimit",
                "ratelimit-policy",
            ]
            .map(String::from)
            .to_vec(),
            allow_credentials: false,
            max_age_secs: 600,
        }
    }
}

impl CorsSettings {
    /// The layer, or `None` when no origin is listed. Fails on `*` with
    /// credentials, `*` among other origins, a malformed origin, method or header.
    pub fn layer(&self) -> Result<Option<CorsLayer>, ProtectionError> {
        if self.allowed_origins.is_empty() {
            return Ok(None);
        }
        let wildcard = self.allowed_origins.iter().any(|o| o.trim() == "*");
        if wildcard && self.allow_credentials {
            return Err(ProtectionError::CorsWildcardWithCredentials);
        }
        let origin = if wildcard {
            if self.allowed_origins.len() > 1 {
                return Err(ProtectionError::Invalid {
                    key: "cors.allowed_origins".into(),
                    reason: "\"*\" must be the only entry".into(),
                });
            }
            AllowOrigin::any()
        } else {
            let origins = self
                .allowed_origins
                .iter()
                .map(|o| {
                    // Browsers send the serialized form; compare against that.
                    normalize_origin(o.trim())
                        .and_then(|n| HeaderValue::from_str(&n).ok())
                        .ok_or_else(|| ProtectionError::CorsOrigin(o.clone()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            AllowOrigin::list(origins)
        };
        let methods = self
            .allowed_methods
            .iter()
            .map(|m| {
                Method::from_str(m.trim()).map_err(|_| ProtectionError::Invalid {
                    key: "cors.allowed_methods".into(),
                    reason: format!("{m:?} is not an HTTP method"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let headers = |key: &'static str, list: &[String]| {
            list.iter()
                .map(|h| {
                    HeaderName::from_str(h.trim()).map_err(|_| ProtectionError::Invalid {
                        key: format!("cors.{key}"),
                        reason: format!("{h:?} is not a header name"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Some(
            CorsLayer::new()
                .allow_origin(origin)
                .allow_methods(methods)
                .allow_headers(headers("allowed_headers", &self.allowed_headers)?)
                .expose_headers(headers("expose_headers", &self.expose_headers)?)
                .allow_credentials(self.allow_credentials)
                .max_age(Duration::from_secs(self.max_age_secs)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(origins: &[&str], credentials: bool) -> CorsSettings {
        CorsSettings {
            allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
            allow_credentials: credentials,
            ..CorsSettings::default()
        }
    }

    #[test]
    fn off_without_origins() {
        assert!(matches!(CorsSettings::default().layer(), Ok(None)));
    }

    #[test]
    fn rejects_a_wildcard_with_credentials() {
        assert!(matches!(
            with(&["*"], true).layer(),
            Err(ProtectionError::CorsWildcardWithCredentials)
        ));
        assert!(matches!(with(&["*"], false).layer(), Ok(Some(_))));
        assert!(with(&["*", "https://a.example"], false).layer().is_err());
    }

    #[test]
    fn rejects_malformed_origins_by_name() {
        for bad in [
            "app.example",
            "https://app.example/",
            "null",
            "https://*.example",
        ] {
            match with(&["https://ok.example", bad], true).layer() {
                Err(ProtectionError::CorsOrigin(o)) => assert_eq!(o, bad),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_bad_methods_and_headers_naming_the_key() {
        let bad_method = CorsSettings {
            allowed_methods: vec!["GE T".into()],
            ..with(&["https://a.example"], false)
        };
        let err = bad_method.layer().map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("cors.allowed_methods"), "{err}");
        let bad_header = CorsSettings {
            expose_headers: vec!["x y".into()],
            ..with(&["https://a.example"], false)
        };
        let err = bad_header.layer().map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("cors.expose_headers"), "{err}");
    }
}
