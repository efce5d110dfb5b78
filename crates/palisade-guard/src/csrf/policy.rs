//! The CSRF decision: request facts in, a verdict with a stable reason out.
//! The rules are listed in the [module documentation](super).

use super::origin::{normalize_origin, referer_origin};
use super::token::{CsrfTokens, TokenRejection};
use crate::GuardError;
use palisade_core::Clock;
use serde::Serialize;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// What the policy is configured with, besides the token key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrfRules {
    /// Origins allowed to make cross-origin state-changing requests
    /// (`https://admin.example`), beyond the request's own origin.
    pub trusted_origins: Vec<String>,
    /// Whether `Sec-Fetch-Site: same-site` (a sibling subdomain) is allowed.
    pub allow_same_site: bool,
    /// Whether requests carrying `Authorization: Bearer` skip the check.
    pub exempt_bearer: bool,
    /// Longest a double-submit token stays valid; `None` for the session's life.
    pub max_age: Option<Duration>,
}

impl Default for CsrfRules {
    fn default() -> Self {
        Self {
            trusted_origins: Vec::new(),
            allow_same_site: false,
            exempt_bearer: true,
            max_age: Some(Duration::from_secs(12 * 3600)),
        }
    }
}

/// The facts of one request, as the raw header values.
#[derive(Debug, Clone, Copy, Default)]
pub struct CsrfRequest<'a> {
    /// The HTTP method, upper case as sent.
    pub method: &'a str,
    /// `Sec-Fetch-Site`.
    pub sec_fetch_site: Option<&'a str>,
    /// `Origin`.
    pub origin: Option<&'a str>,
    /// `Referer`.
    pub referer: Option<&'a str>,
    /// The origin this request was addressed to (`https://` + `Host`), if known.
    pub request_origin: Option<&'a str>,
    /// Whether an `Authorization: Bearer` header came with the request.
    pub has_bearer: bool,
    /// The session the request belongs to.
    pub session: Option<&'a str>,
    /// The token from the request header.
    pub token_header: Option<&'a str>,
    /// The token from the cookie.
    pub token_cookie: Option<&'a str>,
}

/// Why a request was allowed or rejected: a stable code clients may branch on
/// and operators may count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CsrfReason {
    /// `GET`, `HEAD`, `OPTIONS` or `TRACE`.
    SafeMethod,
    /// A bearer-token request, exempt by configuration.
    BearerExempt,
    /// Fetch Metadata, `Origin` or `Referer` shows the request's own origin.
    SameOrigin,
    /// `Sec-Fetch-Site: none`: the user navigated directly.
    UserInitiated,
    /// `Sec-Fetch-Site: same-site`, allowed by configuration.
    SameSite,
    /// The request came from a configured trusted origin.
    TrustedOrigin,
    /// A matching double-submit token signed for this session.
    ValidToken,
    /// `Sec-Fetch-Site: cross-site` from an untrusted origin.
    CrossSite,
    /// `Sec-Fetch-Site: same-site` while same-site requests are not allowed.
    SameSiteNotAllowed,
    /// A `Sec-Fetch-Site` value no browser sends.
    InvalidFetchMetadata,
    /// `Origin: null`.
    OriginNull,
    /// An `Origin` that is neither the request's own nor trusted.
    OriginMismatch,
    /// A `Referer` whose origin is neither the request's own nor trusted.
    RefererMismatch,
    /// A `Referer` that is not an absolute http(s) URL.
    InvalidReferer,
    /// Header and cookie token missing one of the two, or different.
    TokenMismatch,
    /// A token not signed with this key for this session (or no session).
    InvalidToken,
    /// A correctly signed token older than the maximum age.
    ExpiredToken,
    /// No Fetch Metadata, `Origin`, `Referer` or token: nothing shows where
    /// the request came from.
    MissingHeaders,
}

impl CsrfReason {
    /// The stable snake_case code (`cross_site`, `missing_headers`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SafeMethod => "safe_method",
            Self::BearerExempt => "bearer_exempt",
            Self::SameOrigin => "same_origin",
            Self::UserInitiated => "user_initiated",
            Self::SameSite => "same_site",
            Self::TrustedOrigin => "trusted_origin",
            Self::ValidToken => "valid_token",
            Self::CrossSite => "cross_site",
            Self::SameSiteNotAllowed => "same_site_not_allowed",
            Self::InvalidFetchMetadata => "invalid_fetch_metadata",
            Self::OriginNull => "origin_null",
            Self::OriginMismatch => "origin_mismatch",
            Self::RefererMismatch => "referer_mismatch",
            Self::InvalidReferer => "invalid_referer",
            Self::TokenMismatch => "token_mismatch",
            Self::InvalidToken => "invalid_token",
            Self::ExpiredToken => "expired_token",
            Self::MissingHeaders => "missing_headers",
        }
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsrfVerdict {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Which rule decided.
    pub reason: CsrfReason,
}

impl CsrfVerdict {
    fn allow(reason: CsrfReason) -> Self {
        Self {
            allowed: true,
            reason,
        }
    }

    fn reject(reason: CsrfReason) -> Self {
        Self {
            allowed: false,
            reason,
        }
    }
}

/// Decides whether state-changing requests may proceed; also issues the tokens
/// it accepts. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct CsrfPolicy {
    tokens: CsrfTokens,
    trusted_origins: Vec<String>,
    allow_same_site: bool,
    exempt_bearer: bool,
    max_age: Option<Duration>,
}

impl CsrfPolicy {
    /// A policy; fails naming `trusted_origins` if one is not a
    /// `scheme://host[:port]` origin (`*` included: trust is never a wildcard).
    pub fn new(tokens: CsrfTokens, rules: CsrfRules) -> Result<Self, GuardError> {
        let trusted_origins = rules
            .trusted_origins
            .iter()
            .map(|o| {
                normalize_origin(o).ok_or_else(|| {
                    GuardError::invalid(
                        "trusted_origins",
                        format!("{o:?} is not an origin (scheme://host[:port], no path)"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            tokens,
            trusted_origins,
            allow_same_site: rules.allow_same_site,
            exempt_bearer: rules.exempt_bearer,
            max_age: rules.max_age,
        })
    }

    /// The token issuer, to hand out tokens this policy accepts.
    pub fn tokens(&self) -> &CsrfTokens {
        &self.tokens
    }

    /// The token lifetime, for the cookie's `Max-Age`.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// The verdict for one request.
    pub fn check(&self, req: &CsrfRequest<'_>, clock: &dyn Clock) -> CsrfVerdict {
        use CsrfReason as R;
        if matches!(req.method, "GET" | "HEAD" | "OPTIONS" | "TRACE") {
            return CsrfVerdict::allow(R::SafeMethod);
        }
        if self.exempt_bearer && req.has_bearer {
            return CsrfVerdict::allow(R::BearerExempt);
        }
        if let Some(site) = req.sec_fetch_site {
            return match site.trim().to_ascii_lowercase().as_str() {
                "same-origin" => CsrfVerdict::allow(R::SameOrigin),
                "none" => CsrfVerdict::allow(R::UserInitiated),
                "same-site" if self.allow_same_site => CsrfVerdict::allow(R::SameSite),
                "same-site" if self.is_trusted(req.origin) => CsrfVerdict::allow(R::TrustedOrigin),
                "same-site" => CsrfVerdict::reject(R::SameSiteNotAllowed),
                "cross-site" if self.is_trusted(req.origin) => CsrfVerdict::allow(R::TrustedOrigin),
                "cross-site" => CsrfVerdict::reject(R::CrossSite),
                _ => CsrfVerdict::reject(R::InvalidFetchMetadata),
            };
        }
        if let Some(origin) = req.origin {
            if origin.trim() == "null" {
                return CsrfVerdict::reject(R::OriginNull);
            }
            return match normalize_origin(origin.trim()) {
                Some(o) => self.judge_origin(&o, req.request_origin, R::OriginMismatch),
                None => CsrfVerdict::reject(R::OriginMismatch),
            };
        }
        if let Some(referer) = req.referer {
            return match referer_origin(referer.trim()) {
                Some(o) => self.judge_origin(&o, req.request_origin, R::RefererMismatch),
                None => CsrfVerdict::reject(R::InvalidReferer),
            };
        }
        self.check_token(req, clock)
    }

    fn judge_origin(&self, origin: &str, own: Option<&str>, mismatch: CsrfReason) -> CsrfVerdict {
        let own = own.and_then(normalize_origin);
        if own.as_deref() == Some(origin) {
            CsrfVerdict::allow(CsrfReason::SameOrigin)
        } else if self.trusted_origins.iter().any(|t| t == origin) {
            CsrfVerdict::allow(CsrfReason::TrustedOrigin)
        } else {
            CsrfVerdict::reject(mismatch)
        }
    }

    fn is_trusted(&self, origin: Option<&str>) -> bool {
        origin
            .and_then(|o| normalize_origin(o.trim()))
            .is_some_and(|o| self.trusted_origins.contains(&o))
    }

    fn check_token(&self, req: &CsrfRequest<'_>, clock: &dyn Clock) -> CsrfVerdict {
        let (header, cookie) = match (non_empty(req.token_header), non_empty(req.token_cookie)) {
            (None, None) => return CsrfVerdict::reject(CsrfReason::MissingHeaders),
            (Some(h), Some(c)) => (h, c),
            _ => return CsrfVerdict::reject(CsrfReason::TokenMismatch),
        };
        // Constant time, although both halves come from the client: the cookie
        // is the victim's secret when the header is the attacker's guess.
        if !bool::from(header.as_bytes().ct_eq(cookie.as_bytes())) {
            return CsrfVerdict::reject(CsrfReason::TokenMismatch);
        }
        let Some(session) = non_empty(req.session) else {
            return CsrfVerdict::reject(CsrfReason::InvalidToken);
        };
        match self.tokens.verify(header, session, self.max_age, clock) {
            Ok(()) => CsrfVerdict::allow(CsrfReason::ValidToken),
            Err(TokenRejection::Expired) => CsrfVerdict::reject(CsrfReason::ExpiredToken),
            Err(TokenRejection::Invalid) => CsrfVerdict::reject(CsrfReason::InvalidToken),
        }
    }
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::ManualClock;

    const OWN: &str = "https://app.example";

    fn policy(rules: CsrfRules) -> CsrfPolicy {
        let tokens = CsrfTokens::new(&[9u8; 32]).unwrap_or_else(|e| panic!("{e}"));
        CsrfPolicy::new(tokens, rules).unwrap_or_else(|e| panic!("{e}"))
    }

    fn default_policy() -> CsrfPolicy {
        policy(CsrfRules {
            trusted_origins: vec!["https://admin.example".into()],
            ..CsrfRules::default()
        })
    }

    fn post() -> CsrfRequest<'static> {
        CsrfRequest {
            method: "POST",
            request_origin: Some(OWN),
            ..CsrfRequest::default()
        }
    }

    fn verdict(p: &CsrfPolicy, req: CsrfRequest<'_>) -> (bool, &'static str) {
        let v = p.check(&req, &ManualClock::new());
        (v.allowed, v.reason.as_str())
    }

    #[test]
    fn safe_methods_are_allowed_whatever_the_headers() {
        let p = default_policy();
        for method in ["GET", "HEAD", "OPTIONS", "TRACE"] {
            let req = CsrfRequest {
                method,
                sec_fetch_site: Some("cross-site"),
                ..post()
            };
            assert_eq!(verdict(&p, req), (true, "safe_method"));
        }
    }

    #[test]
    fn rejects_a_cross_site_post() {
        let req = CsrfRequest {
            sec_fetch_site: Some("cross-site"),
            origin: Some("https://evil.example"),
            ..post()
        };
        assert_eq!(verdict(&default_policy(), req), (false, "cross_site"));
    }

    #[test]
    fn allows_same_origin_and_user_initiated_requests() {
        let p = default_policy();
        let same = CsrfRequest {
            sec_fetch_site: Some("same-origin"),
            ..post()
        };
        assert_eq!(verdict(&p, same), (true, "same_origin"));
        let none = CsrfRequest {
            sec_fetch_site: Some("none"),
            ..post()
        };
        assert_eq!(verdict(&p, none), (true, "user_initiated"));
    }

    #[test]
    fn allows_cross_site_from_a_trusted_origin_only() {
        let p = default_policy();
        let trusted = CsrfRequest {
            sec_fetch_site: Some("cross-site"),
            origin: Some("https://ADMIN.example:443"),
            ..post()
        };
        assert_eq!(verdict(&p, trusted), (true, "trusted_origin"));
    }

    #[test]
    fn same_site_needs_configuration() {
        let req = CsrfRequest {
            sec_fetch_site: Some("same-site"),
            origin: Some("https://blog.app.example"),
            ..post()
        };
        assert_eq!(
            verdict(&default_policy(), req),
            (false, "same_site_not_allowed")
        );
        let lenient = policy(CsrfRules {
            allow_same_site: true,
            ..CsrfRules::default()
        });
        assert_eq!(verdict(&lenient, req), (true, "same_site"));
    }

    #[test]
    fn rejects_unknown_fetch_metadata() {
        let req = CsrfRequest {
            sec_fetch_site: Some("sideways"),
            ..post()
        };
        assert_eq!(
            verdict(&default_policy(), req),
            (false, "invalid_fetch_metadata")
        );
    }

    #[test]
    fn fetch_metadata_decides_even_when_a_token_is_valid() {
        let p = default_policy();
        let clock = ManualClock::new();
        let token = p.tokens().issue("s", &clock).unwrap_or_default();
        let req = CsrfRequest {
            sec_fetch_site: Some("cross-site"),
            session: Some("s"),
            token_header: Some(&token),
            token_cookie: Some(&token),
            ..post()
        };
        assert_eq!(p.check(&req, &clock).reason, CsrfReason::CrossSite);
    }

    #[test]
    fn bearer_requests_are_exempt_only_when_configured() {
        let req = CsrfRequest {
            has_bearer: true,
            sec_fetch_site: Some("cross-site"),
            ..post()
        };
        assert_eq!(verdict(&default_policy(), req), (true, "bearer_exempt"));
        let strict = policy(CsrfRules {
            exempt_bearer: false,
            ..CsrfRules::default()
        });
        assert_eq!(verdict(&strict, req), (false, "cross_site"));
    }

    #[test]
    fn without_fetch_metadata_the_origin_decides() {
        let p = default_policy();
        let cases = [
            ("https://app.example", (true, "same_origin")),
            ("https://app.example:443", (true, "same_origin")),
            ("https://admin.example", (true, "trusted_origin")),
            ("https://evil.example", (false, "origin_mismatch")),
            ("http://app.example", (false, "origin_mismatch")),
            ("null", (false, "origin_null")),
            ("garbage", (false, "origin_mismatch")),
        ];
        for (origin, expected) in cases {
            let req = CsrfRequest {
                origin: Some(origin),
                referer: Some("https://app.example/form"),
                ..post()
            };
            assert_eq!(verdict(&p, req), expected, "{origin}");
        }
    }

    #[test]
    fn without_origin_the_referer_decides() {
        let p = default_policy();
        let cases = [
            ("https://app.example/form?x=1", (true, "same_origin")),
            ("https://admin.example/", (true, "trusted_origin")),
            (
                "https://evil.example/app.example",
                (false, "referer_mismatch"),
            ),
            ("/relative", (false, "invalid_referer")),
        ];
        for (referer, expected) in cases {
            let req = CsrfRequest {
                referer: Some(referer),
                ..post()
            };
            assert_eq!(verdict(&p, req), expected, "{referer}");
        }
    }

    #[test]
    fn unknown_own_origin_trusts_only_the_list() {
        let req = CsrfRequest {
            origin: Some("https://app.example"),
            request_origin: None,
            ..post()
        };
        assert_eq!(verdict(&default_policy(), req), (false, "origin_mismatch"));
    }

    #[test]
    fn with_no_headers_a_valid_double_submit_token_is_required() {
        let p = default_policy();
        let clock = ManualClock::new();
        let token = p.tokens().issue("s1", &clock).unwrap_or_default();
        let other = p.tokens().issue("s1", &clock).unwrap_or_default();
        let check = |session, header, cookie| {
            p.check(
                &CsrfRequest {
                    session,
                    token_header: header,
                    token_cookie: cookie,
                    ..post()
                },
                &clock,
            )
            .reason
            .as_str()
        };
        let t = Some(token.as_str());
        assert_eq!(check(Some("s1"), t, t), "valid_token");
        assert_eq!(check(Some("s2"), t, t), "invalid_token");
        assert_eq!(check(None, t, t), "invalid_token");
        assert_eq!(check(Some("s1"), t, None), "token_mismatch");
        assert_eq!(check(Some("s1"), None, t), "token_mismatch");
        assert_eq!(check(Some("s1"), t, Some(&other)), "token_mismatch");
        assert_eq!(check(Some("s1"), None, None), "missing_headers");
        assert_eq!(check(Some("s1"), Some(""), Some(" ")), "missing_headers");
    }

    #[test]
    fn an_expired_token_is_rejected_as_expired() {
        let p = policy(CsrfRules {
            max_age: Some(Duration::from_secs(60)),
            ..CsrfRules::default()
        });
        let clock = ManualClock::new();
        let token = p.tokens().issue("s", &clock).unwrap_or_default();
        clock.advance(Duration::from_secs(61));
        let req = CsrfRequest {
            session: Some("s"),
            token_header: Some(&token),
            token_cookie: Some(&token),
            ..post()
        };
        assert_eq!(p.check(&req, &clock).reason, CsrfReason::ExpiredToken);
    }

    #[test]
    fn rejects_malformed_or_wildcard_trusted_origins() {
        for bad in ["*", "https://app.example/", "app.example"] {
            let tokens = CsrfTokens::new(&[9u8; 32]).unwrap_or_else(|e| panic!("{e}"));
            let err = CsrfPolicy::new(
                tokens,
                CsrfRules {
                    trusted_origins: vec![bad.into()],
                    ..CsrfRules::default()
                },
            )
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
            assert!(err.starts_with("trusted_origins"), "{bad}: {err}");
        }
    }
}
