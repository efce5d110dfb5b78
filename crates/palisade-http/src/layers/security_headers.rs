//! Response security headers with strict, helmet-like defaults, added to every
//! response that does not already carry them.
//!
//! The defaults suit an API that browsers should never render or embed:
//! `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'` means
//! that if a response is ever opened as a page (an error body, a JSON value a
//! browser sniffs as HTML), nothing in it can load or run, and no site can
//! frame it. The Swagger UI under `/docs` is a real page with its own scripts
//! and styles, so it gets its own policy that allows `'self'`.

use crate::protection::ProtectionError;
use axum::http::header::InvalidHeaderValue;
use axum::http::{HeaderName, HeaderValue, Request, Response, header};
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// The path prefix whose responses get [`SecurityHeaders::docs_content_security_policy`].
pub const DOCS_PREFIX: &str = "/docs";

/// `[security_headers]`: each value is sent as is; an empty string turns that
/// header off.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityHeaders {
    /// `Content-Security-Policy` of API responses.
    pub content_security_policy: String,
    /// `Content-Security-Policy` of the Swagger UI under `/docs`, which needs
    /// its own scripts, styles and inline SVG icons.
    pub docs_content_security_policy: String,
    /// `Strict-Transport-Security`: two years, subdomains included. Browsers
    /// ignore it over plain HTTP, so it is safe to send always.
    pub strict_transport_security: String,
    /// `X-Content-Type-Options`: no MIME sniffing of JSON into HTML.
    pub x_content_type_options: String,
    /// `X-Frame-Options`, for browsers older than CSP `frame-ancestors`.
    pub x_frame_options: String,
    /// `Referrer-Policy`: URLs may carry ids; do not leak them.
    pub referrer_policy: String,
    /// `Permissions-Policy`: no powerful features for anything we serve.
    pub permissions_policy: String,
    /// `Cross-Origin-Opener-Policy`: our pages share no window with others.
    pub cross_origin_opener_policy: String,
    /// `Cross-Origin-Resource-Policy`: other origins may not embed our
    /// responses (CORS requests, which are opted into, are unaffected).
    pub cross_origin_resource_policy: String,
    /// `X-Permitted-Cross-Domain-Policies`: no Flash/PDF cross-domain policy files.
    pub x_permitted_cross_domain_policies: String,
}

const CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
const HSTS: &str = "max-age=63072000; includeSubDomains";
const PERMISSIONS: &str = "accelerometer=(), camera=(), geolocation=(), gyroscope=(), \
    magnetometer=(), microphone=(), payment=(), usb=(), interest-cohort=()";

impl Default for SecurityHeaders {
    fn default() -> Self {
        Self {
            content_security_policy: CSP.into(),
            docs_content_security_policy: DOCS_CSP.into(),
            strict_transport_security: HSTS.into(),
            x_content_type_options: "nosniff".into(),
            x_frame_options: "DENY".into(),
            referrer_policy: "no-referrer".into(),
            permissions_policy: PERMISSIONS.into(),
            cross_origin_opener_policy: "same-origin".into(),
            cross_origin_resource_policy: "same-origin".into(),
            x_permitted_cross_domain_policies: "none".into(),
        }
    }
}

/// Every default value, each once.
const STATIC_VALUES: [&str; 9] = [
    CSP,
    DOCS_CSP,
    HSTS,
    PERMISSIONS,
    "nosniff",
    "DENY",
    "no-referrer",
    "same-origin",
    "none",
];

/// A configured value as a header value. A default one is static, so putting
/// it on a response copies a pointer; any other is shared, which costs two
/// atomic operations per response.
fn header_value(text: &str) -> Result<HeaderValue, InvalidHeaderValue> {
    match STATIC_VALUES.iter().find(|known| **known == text) {
        Some(default) => Ok(HeaderValue::from_static(default)),
        None => HeaderValue::from_str(text),
    }
}

/// The headers checked and ready to insert.
#[derive(Debug)]
struct Compiled {
    /// Every header but the CSP.
    common: Vec<(HeaderName, HeaderValue)>,
    csp: Option<HeaderValue>,
    docs_csp: Option<HeaderValue>,
}

/// Tower layer that adds the configured headers to responses lacking them.
/// A handler that sets one of them (its own CSP, say) keeps its value.
#[derive(Debug, Clone)]
pub struct SecurityHeadersLayer {
    headers: Arc<Compiled>,
}

impl SecurityHeadersLayer {
    /// Validates every value once, so serving never fails on a header; the
    /// error names the configuration key.
    pub fn new(config: &SecurityHeaders) -> Result<Self, ProtectionError> {
        let value =
            |key: &'static str, text: &str| -> Result<Option<HeaderValue>, ProtectionError> {
                let text = text.trim();
                if text.is_empty() {
                    return Ok(None);
                }
                header_value(text)
                    .map(Some)
                    .map_err(|_| ProtectionError::Invalid {
                        key: format!("security_headers.{key}"),
                        reason: "not a valid header value (control characters or non-ASCII)".into(),
                    })
            };
        let entries: [(&'static str, HeaderName, &str); 8] = [
            (
                "strict_transport_security",
                header::STRICT_TRANSPORT_SECURITY,
                &config.strict_transport_security,
            ),
            (
                "x_content_type_options",
                header::X_CONTENT_TYPE_OPTIONS,
                &config.x_content_type_options,
            ),
            (
                "x_frame_options",
                header::X_FRAME_OPTIONS,
                &config.x_frame_options,
            ),
            (
                "referrer_policy",
                header::REFERRER_POLICY,
                &config.referrer_policy,
            ),
            (
                "permissions_policy",
                HeaderName::from_static("permissions-policy"),
                &config.permissions_policy,
            ),
            (
                "cross_origin_opener_policy",
                HeaderName::from_static("cross-origin-opener-policy"),
                &config.cross_origin_opener_policy,
            ),
            (
                "cross_origin_resource_policy",
                HeaderName::from_static("cross-origin-resource-policy"),
                &config.cross_origin_resource_policy,
            ),
            (
                "x_permitted_cross_domain_policies",
                HeaderName::from_static("x-permitted-cross-domain-policies"),
                &config.x_permitted_cross_domain_policies,
            ),
        ];
        let mut common = Vec::with_capacity(entries.len());
        for (key, name, text) in entries {
            if let Some(v) = value(key, text)? {
                common.push((name, v));
            }
        }
        Ok(Self {
            headers: Arc::new(Compiled {
                common,
                csp: value("content_security_policy", &config.content_security_policy)?,
                docs_csp: value(
                    "docs_content_security_policy",
                    &config.docs_content_security_policy,
                )?,
            }),
        })
    }
}

impl Default for SecurityHeadersLayer {
    fn default() -> Self {
        // The defaults are constants checked by a test; an invalid one is a
        // bug caught before release, and the fallback is no headers at all.
        Self::new(&SecurityHeaders::default()).unwrap_or_else(|_| Self {
            headers: Arc::new(Compiled {
                common: Vec::new(),
                csp: None,
                docs_csp: None,
            }),
        })
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeadersService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeadersService {
            inner,
            headers: self.headers.clone(),
        }
    }
}

/// The service of [`SecurityHeadersLayer`].
#[derive(Debug, Clone)]
pub struct SecurityHeadersService<S> {
    inner: S,
    headers: Arc<Compiled>,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for SecurityHeadersService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = SecurityHeadersFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let path = req.uri().path();
        let docs = path == DOCS_PREFIX || path.starts_with("/docs/");
        SecurityHeadersFuture {
            inner: self.inner.call(req),
            headers: self.headers.clone(),
            docs,
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`SecurityHeadersService`].
    #[derive(Debug)]
    pub struct SecurityHeadersFuture<F> {
        #[pin]
        inner: F,
        headers: Arc<Compiled>,
        docs: bool,
    }
}

impl<F, ResB, E> Future for SecurityHeadersFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.inner.poll(cx) {
            Poll::Ready(Ok(response)) => response,
            other => return other,
        };
        let headers = response.headers_mut();
        // Room for all at once: growing the map rehashes it.
        headers.reserve(this.headers.common.len() + 1);
        for (name, value) in &this.headers.common {
            headers.entry(name).or_insert_with(|| value.clone());
        }
        let csp = if *this.docs {
            &this.headers.docs_csp
        } else {
            &this.headers.csp
        };
        if let Some(csp) = csp {
            headers
                .entry(header::CONTENT_SECURITY_POLICY)
                .or_insert_with(|| csp.clone());
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    async fn respond(
        layer: SecurityHeadersLayer,
        path: &str,
        preset: Option<(&'static str, &'static str)>,
    ) -> Response<Body> {
        let service = layer.layer(tower::service_fn(move |_req: Request<Body>| async move {
            let mut response = Response::new(Body::empty());
            if let Some((name, value)) = preset {
                response
                    .headers_mut()
                    .insert(name, HeaderValue::from_static(value));
            }
            Ok::<_, std::convert::Infallible>(response)
        }));
        let request = Request::builder()
            .uri(path)
            .body(Body::empty())
            .unwrap_or_default();
        match service.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    fn get<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
        response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn the_defaults_are_valid_header_values() {
        assert!(SecurityHeadersLayer::new(&SecurityHeaders::default()).is_ok());
    }

    #[tokio::test]
    async fn adds_strict_defaults() {
        let response = respond(SecurityHeadersLayer::default(), "/v1/whoami", None).await;
        assert_eq!(
            get(&response, "content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'")
        );
        assert_eq!(
            get(&response, "strict-transport-security"),
            Some("max-age=63072000; includeSubDomains")
        );
        assert_eq!(get(&response, "x-content-type-options"), Some("nosniff"));
        assert_eq!(get(&response, "x-frame-options"), Some("DENY"));
        assert_eq!(get(&response, "referrer-policy"), Some("no-referrer"));
        assert!(get(&response, "permissions-policy").is_some_and(|v| v.contains("camera=()")));
        assert_eq!(
            get(&response, "cross-origin-opener-policy"),
            Some("same-origin")
        );
        assert_eq!(
            get(&response, "cross-origin-resource-policy"),
            Some("same-origin")
        );
        assert_eq!(
            get(&response, "x-permitted-cross-domain-policies"),
            Some("none")
        );
    }

    #[test]
    fn every_default_value_is_static() {
        let d = SecurityHeaders::default();
        for value in [
            &d.content_security_policy,
            &d.docs_content_security_policy,
            &d.strict_transport_security,
            &d.x_content_type_options,
            &d.x_frame_options,
            &d.referrer_policy,
            &d.permissions_policy,
            &d.cross_origin_opener_policy,
            &d.cross_origin_resource_policy,
            &d.x_permitted_cross_domain_policies,
        ] {
            assert!(STATIC_VALUES.contains(&value.as_str()), "{value}");
        }
    }

    #[test]
    fn default_and_custom_values_become_the_same_header_values() {
        let defaults = SecurityHeaders::default();
        let value = header_value(&defaults.permissions_policy).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            value.to_str().ok(),
            Some(defaults.permissions_policy.as_str())
        );
        let custom = header_value("max-age=300").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(custom.to_str().ok(), Some("max-age=300"));
        assert!(header_value("bad\nvalue").is_err());
    }

    #[tokio::test]
    async fn keeps_a_header_the_handler_set() {
        let response = respond(
            SecurityHeadersLayer::default(),
            "/v1/x",
            Some(("content-security-policy", "default-src 'self'")),
        )
        .await;
        assert_eq!(
            get(&response, "content-security-policy"),
            Some("default-src 'self'")
        );
    }

    #[tokio::test]
    async fn docs_get_a_policy_that_allows_their_own_scripts() {
        for path in ["/docs", "/docs/", "/docs/swagger-ui.js"] {
            let response = respond(SecurityHeadersLayer::default(), path, None).await;
            let csp = get(&response, "content-security-policy").unwrap_or_default();
            assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        }
        let response = respond(SecurityHeadersLayer::default(), "/docsearch", None).await;
        assert_eq!(
            get(&response, "content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'")
        );
    }

    #[tokio::test]
    async fn an_empty_value_turns_a_header_off() {
        let config = SecurityHeaders {
            x_frame_options: String::new(),
            content_security_policy: " ".into(),
            ..SecurityHeaders::default()
        };
        let layer = SecurityHeadersLayer::new(&config).unwrap_or_default();
        let response = respond(layer, "/", None).await;
        assert_eq!(get(&response, "x-frame-options"), None);
        assert_eq!(get(&response, "content-security-policy"), None);
        assert_eq!(get(&response, "x-content-type-options"), Some("nosniff"));
    }

    #[test]
    fn an_invalid_value_names_its_key() {
        let config = SecurityHeaders {
            referrer_policy: "no-referrer\n".into(),
            permissions_policy: "camera=()\u{7f}".into(),
            ..SecurityHeaders::default()
        };
        let err = SecurityHeadersLayer::new(&config).map(|_| ()).unwrap_err();
        assert!(
            err.to_string()
                .contains("security_headers.permissions_policy"),
            "{err}"
        );
    }
}
