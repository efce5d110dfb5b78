//! CSRF protection for Rust services: a tower layer that runs
//! [`CsrfPolicy`](palisade_guard::csrf::CsrfPolicy) on every request and
//! answers 403 with a problem document naming the reason, plus the
//! `Set-Cookie` value of the double-submit token cookie.
//!
//! The token cookie is deliberately **not** `HttpOnly`: the double-submit
//! pattern works because the page's own script reads the cookie and echoes it
//! in the `X-CSRF-Token` header, which a script on another site cannot do.
//! What keeps the cookie safe is the rest: the `__Host-` prefix (only this
//! exact host over HTTPS may set it, so a sibling subdomain cannot plant one),
//! `Secure`, `Path=/` and `SameSite=Strict` (not sent on cross-site requests at
//! all). Because the token is signed for the session, reading it grants
//! nothing beyond what the session's own page already has.

use crate::problem::Problem;
use crate::protection::ProtectionError;
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, REFERER};
use axum::http::{HeaderMap, HeaderName, Request, Response, StatusCode};
use axum::response::IntoResponse;
use futures_util::future::Either;
use palisade_core::SharedClock;
use palisade_guard::csrf::{CsrfPolicy, CsrfReason, CsrfRequest, CsrfRules, CsrfVerdict};
use serde::Deserialize;
use std::future::{Ready, ready};
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

/// `SameSite` of the token cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// Never sent on cross-site requests. The default.
    #[default]
    Strict,
    /// Sent on top-level cross-site navigations (following a link).
    Lax,
    /// Always sent (the cookie is `Secure` in every case).
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "Strict",
            Self::Lax => "Lax",
            Self::None => "None",
        }
    }
}

/// `[csrf]`: cookie and header names and the policy's rules.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsrfSettings {
    /// The token cookie. The `__Host-` prefix binds it to this host over HTTPS.
    pub cookie_name: String,
    /// The request header carrying the token.
    pub header_name: String,
    /// The cookie holding the session identifier the token is bound to.
    pub session_cookie: String,
    /// `SameSite` of the token cookie.
    pub same_site: SameSite,
    /// Origins allowed to make cross-origin state-changing requests.
    pub trusted_origins: Vec<String>,
    /// Whether `Sec-Fetch-Site: same-site` requests are allowed.
    pub allow_same_site: bool,
    /// Whether bearer-token requests skip the check (they cannot be forged
    /// by a browser).
    pub exempt_bearer: bool,
    /// Token lifetime in seconds; 0 for no limit beyond the session's.
    pub max_age_secs: u64,
    /// Scheme of the request's own origin when the request line does not say
    /// (behind a TLS-terminating proxy it never does).
    pub request_scheme: String,
}

impl Default for CsrfSettings {
    fn default() -> Self {
        let rules = CsrfRules::default();
        Self {
            cookie_name: "__Host-csrf".into(),
            header_name: "x-csrf-token".into(),
            session_cookie: "session".into(),
            same_site: SameSite::Strict,
            trusted_origins: rules.trusted_origins,
            allow_same_site: rules.allow_same_site,
            exempt_bearer: rules.exempt_bearer,
            max_age_secs: rules.max_age.map_or(0, |d| d.as_secs()),
            request_scheme: "https".into(),
        }
    }
}

impl CsrfSettings {
    /// The policy rules these settings describe.
    pub fn rules(&self) -> CsrfRules {
        CsrfRules {
            trusted_origins: self.trusted_origins.clone(),
            allow_same_site: self.allow_same_site,
            exempt_bearer: self.exempt_bearer,
            max_age: (self.max_age_secs > 0).then(|| Duration::from_secs(self.max_age_secs)),
        }
    }

    /// Checks names and the scheme; errors name the key.
    pub fn validate(&self) -> Result<(), ProtectionError> {
        let invalid = |key: &str, reason: &str| ProtectionError::Invalid {
            key: format!("csrf.{key}"),
            reason: reason.into(),
        };
        for (key, name) in [
            ("cookie_name", &self.cookie_name),
            ("session_cookie", &self.session_cookie),
        ] {
            if !is_cookie_name(name) {
                return Err(invalid(
                    key,
                    "not a cookie name (letters, digits, - _ . only)",
                ));
            }
        }
        if HeaderName::from_str(&self.header_name).is_err() {
            return Err(invalid("header_name", "not a header name"));
        }
        if !matches!(self.request_scheme.as_str(), "http" | "https") {
            return Err(invalid("request_scheme", "must be \"http\" or \"https\""));
        }
        Ok(())
    }

    /// The `Set-Cookie` value that stores `token`: `Path=/; Secure;
    /// SameSite=Strict` by default, `Max-Age` from `max_age_secs`, never
    /// `HttpOnly` or `Domain` (see the module documentation).
    pub fn token_cookie(&self, token: &str) -> String {
        let mut cookie = format!(
            "{}={token}; Path=/; Secure; SameSite={}",
            self.cookie_name,
            self.same_site.as_str()
        );
        if self.max_age_secs > 0 {
            cookie.push_str(&format!("; Max-Age={}", self.max_age_secs));
        }
        cookie
    }
}

fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The settings a request needs, parsed once.
#[derive(Debug)]
struct Prepared {
    header: HeaderName,
    cookie_name: String,
    session_cookie: String,
    scheme: String,
}

/// Tower layer running the CSRF policy before the inner service.
#[derive(Debug, Clone)]
pub struct CsrfLayer {
    policy: Arc<CsrfPolicy>,
    prepared: Arc<Prepared>,
    clock: SharedClock,
}

impl CsrfLayer {
    /// A layer enforcing `policy`, reading names from `settings`.
    pub fn new(
        policy: Arc<CsrfPolicy>,
        settings: &CsrfSettings,
        clock: SharedClock,
    ) -> Result<Self, ProtectionError> {
        settings.validate()?;
        let header =
            HeaderName::from_str(&settings.header_name).map_err(|_| ProtectionError::Invalid {
                key: "csrf.header_name".into(),
                reason: "not a header name".into(),
            })?;
        Ok(Self {
            policy,
            prepared: Arc::new(Prepared {
                header,
                cookie_name: settings.cookie_name.clone(),
                session_cookie: settings.session_cookie.clone(),
                scheme: settings.request_scheme.clone(),
            }),
            clock,
        })
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = Csrf<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Csrf {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`CsrfLayer`]. An allowed request reaches the inner service
/// with its [`CsrfVerdict`] in the extensions.
#[derive(Debug, Clone)]
pub struct Csrf<S> {
    inner: S,
    layer: CsrfLayer,
}

impl<S, B> Service<Request<B>> for Csrf<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let verdict = verdict(&self.layer, &req);
        if verdict.allowed {
            req.extensions_mut().insert(verdict);
            Either::Right(self.inner.call(req))
        } else {
            tracing::info!(
                reason = verdict.reason.as_str(),
                "CSRF check refused a request"
            );
            Either::Left(ready(Ok(rejection(verdict.reason).into_response())))
        }
    }
}

fn verdict<B>(layer: &CsrfLayer, req: &Request<B>) -> CsrfVerdict {
    let headers = req.headers();
    let p = &layer.prepared;
    let host = header(headers, &HOST).or_else(|| req.uri().authority().map(|a| a.as_str()));
    let scheme = req.uri().scheme_str().unwrap_or(&p.scheme);
    let own = host.map(|h| format!("{scheme}://{h}"));
    let facts = CsrfRequest {
        method: req.method().as_str(),
        sec_fetch_site: header(headers, &HeaderName::from_static("sec-fetch-site")),
        origin: header(headers, &ORIGIN),
        referer: header(headers, &REFERER),
        request_origin: own.as_deref(),
        has_bearer: header(headers, &AUTHORIZATION).is_some_and(is_bearer),
        session: cookie(headers, &p.session_cookie),
        token_header: header(headers, &p.header),
        token_cookie: cookie(headers, &p.cookie_name),
    };
    layer.policy.check(&facts, layer.clock.as_ref())
}

fn header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_bearer(value: &str) -> bool {
    value.split_once(' ').is_some_and(|(scheme, token)| {
        scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()
    })
}

/// The first cookie called `name` across all `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .find_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

/// The 403 problem for a refused request; the detail starts with the reason code.
pub fn rejection(reason: CsrfReason) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "csrf", "Cross-site request refused").detail(format!(
        "{}: {}",
        reason.as_str(),
        explain(reason)
    ))
}

fn explain(reason: CsrfReason) -> &'static str {
    use CsrfReason as R;
    match reason {
        R::CrossSite => "the browser reports the request came from another site",
        R::SameSiteNotAllowed => "requests from sibling sites are not allowed",
        R::InvalidFetchMetadata => "Sec-Fetch-Site has a value no browser sends",
        R::OriginNull => "Origin: null is not trusted",
        R::OriginMismatch => "the Origin is neither this site nor a trusted one",
        R::RefererMismatch => "the Referer is neither this site nor a trusted one",
        R::InvalidReferer => "the Referer is not an absolute http(s) URL",
        R::TokenMismatch => "the CSRF header and cookie tokens are missing or differ",
        R::InvalidToken => "the CSRF token is not valid for this session",
        R::ExpiredToken => "the CSRF token has expired; fetch a new one",
        R::MissingHeaders => {
            "nothing shows where the request came from: send Origin, or the CSRF token in both header and cookie"
        }
        _ => "allowed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::ManualClock;
    use palisade_guard::csrf::CsrfTokens;
    use tower::ServiceExt;

    fn layer() -> (CsrfLayer, Arc<CsrfPolicy>) {
        let tokens = CsrfTokens::new(&[5u8; 32]).unwrap_or_else(|e| panic!("{e}"));
        let settings = CsrfSettings::default();
        let policy =
            Arc::new(CsrfPolicy::new(tokens, settings.rules()).unwrap_or_else(|e| panic!("{e}")));
        let layer = CsrfLayer::new(policy.clone(), &settings, Arc::new(ManualClock::new()))
            .unwrap_or_else(|e| panic!("{e}"));
        (layer, policy)
    }

    async fn send(layer: &CsrfLayer, req: Request<Body>) -> (StatusCode, String) {
        let service = layer.layer(tower::service_fn(|_req: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        }));
        let response = match service.oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        (status, body)
    }

    fn post(headers: &[(&str, &str)]) -> Request<Body> {
        let mut builder = Request::post("/transfer").header("host", "app.example");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).unwrap_or_default()
    }

    #[tokio::test]
    async fn refuses_a_cross_site_post_with_a_problem_naming_the_reason() {
        let (layer, _) = layer();
        let (status, body) = send(&layer, post(&[("sec-fetch-site", "cross-site")])).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("\"detail\":\"cross_site:"), "{body}");
        assert!(body.contains("problems/csrf"), "{body}");
    }

    #[tokio::test]
    async fn lets_same_origin_posts_through() {
        let (layer, _) = layer();
        let (status, _) = send(&layer, post(&[("origin", "https://app.example")])).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = send(&layer, post(&[("origin", "https://evil.example")])).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn checks_the_double_submit_token_from_header_and_cookies() {
        let (layer, policy) = layer();
        let clock = ManualClock::new();
        let token = policy.tokens().issue("sess-1", &clock).unwrap_or_default();
        let cookies = format!("session=sess-1; __Host-csrf={token}");
        let (ok, _) = send(
            &layer,
            post(&[("cookie", &cookies), ("x-csrf-token", &token)]),
        )
        .await;
        assert_eq!(ok, StatusCode::OK);
        let other = format!("session=sess-2; __Host-csrf={token}");
        let (replayed, body) = send(
            &layer,
            post(&[("cookie", &other), ("x-csrf-token", &token)]),
        )
        .await;
        assert_eq!(replayed, StatusCode::FORBIDDEN);
        assert!(body.contains("invalid_token"), "{body}");
        let (missing, body) = send(&layer, post(&[])).await;
        assert_eq!(missing, StatusCode::FORBIDDEN);
        assert!(body.contains("missing_headers"), "{body}");
    }

    #[tokio::test]
    async fn bearer_requests_and_safe_methods_pass() {
        let (layer, _) = layer();
        let (s, _) = send(
            &layer,
            post(&[
                ("authorization", "Bearer abc"),
                ("sec-fetch-site", "cross-site"),
            ]),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let get = Request::get("/").body(Body::empty()).unwrap_or_default();
        assert_eq!(send(&layer, get).await.0, StatusCode::OK);
    }

    #[test]
    fn the_token_cookie_is_host_prefixed_secure_strict_and_readable_by_script() {
        let cookie = CsrfSettings::default().token_cookie("abc");
        assert_eq!(
            cookie,
            "__Host-csrf=abc; Path=/; Secure; SameSite=Strict; Max-Age=43200"
        );
        assert!(!cookie.contains("HttpOnly"));
        assert!(!cookie.contains("Domain"));
    }

    #[test]
    fn invalid_names_are_rejected_naming_the_key() {
        let bad = CsrfSettings {
            cookie_name: "a b".into(),
            ..CsrfSettings::default()
        };
        assert_eq!(
            bad.validate().map_err(|e| e.key().to_owned()),
            Err("csrf.cookie_name".into())
        );
        let bad = CsrfSettings {
            request_scheme: "ftp".into(),
            ..CsrfSettings::default()
        };
        assert_eq!(
            bad.validate().map_err(|e| e.key().to_owned()),
            Err("csrf.request_scheme".into())
        );
    }
}
