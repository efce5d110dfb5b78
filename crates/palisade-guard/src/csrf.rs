//! CSRF protection without HTTP types: signed double-submit tokens bound to a
//! session ([`CsrfTokens`]) and the decision whether a state-changing request
//! may proceed ([`CsrfPolicy`]). The tower layer and the `/v1/csrf` endpoints
//! in `palisade-http` feed it header values as plain strings.
//!
//! # The rules, in the order they are applied
//!
//! 1. **Safe methods** (`GET`, `HEAD`, `OPTIONS`, `TRACE`) are allowed
//!    (`safe_method`): they must not change state, so there is nothing to forge.
//! 2. **Bearer requests** are allowed when `exempt_bearer` is set
//!    (`bearer_exempt`): a browser never attaches an `Authorization` header on
//!    its own, so a forged cross-site request cannot carry one. This holds only
//!    if the service then authenticates the request by that header, never by a
//!    cookie that came along with it.
//! 3. **Fetch Metadata** (`Sec-Fetch-Site`), sent by every current browser and
//!    not settable by page scripts, decides when present:
//!    `same-origin` is allowed (`same_origin`); `none` (the user typed the URL
//!    or used a bookmark) is allowed (`user_initiated`); `same-site` is allowed
//!    only if `allow_same_site` is set (`same_site`), since a sibling subdomain
//!    may be less trusted; `cross-site` is rejected (`cross_site`). A
//!    `same-site` or `cross-site` request whose `Origin` is in the trusted list
//!    is allowed (`trusted_origin`). Any other value is rejected
//!    (`invalid_fetch_metadata`): a browser never sends one.
//! 4. **`Origin`**, for browsers without Fetch Metadata: it must be the
//!    request's own origin (`same_origin`) or a trusted one (`trusted_origin`);
//!    `Origin: null` (sandboxed frames, some redirects, `file:` pages) is
//!    rejected (`origin_null`), any other origin too (`origin_mismatch`).
//! 5. **`Referer`**, when there is no `Origin` either: the origin of the
//!    referring URL is held to the same test (`same_origin`,
//!    `trusted_origin`, `referer_mismatch`); a referrer that is not an
//!    absolute http(s) URL is rejected (`invalid_referer`).
//! 6. **Double-submit token**, when none of those headers came (old browsers,
//!    `Referrer-Policy: no-referrer`, non-browser clients holding a session
//!    cookie): the token in the request header must equal the token in the
//!    cookie and carry a valid HMAC for this session (`valid_token`). The cookie
//!    alone proves nothing, since the browser sends it on forged requests too;
//!    the header proves the caller could read it, which only same-origin script
//!    can. Only one of the two present, or two different tokens:
//!    `token_mismatch`; a bad signature, another session's token or no session:
//!    `invalid_token`; older than the maximum age: `expired_token`.
//! 7. **Nothing at all** (no Fetch Metadata, `Origin`, `Referer` or token):
//!    rejected as `missing_headers`. Failing closed is the point: a request
//!    that proves nothing about where it came from is not trusted.
//!
//! Once a header is present it decides; a later rule is never consulted to
//! overturn a rejection, so an attacker cannot win by adding headers.

mod origin;
mod policy;
mod token;

pub use origin::{normalize_origin, referer_origin};
pub use policy::{CsrfPolicy, CsrfReason, CsrfRequest, CsrfRules, CsrfVerdict};
pub use token::{CsrfTokens, MIN_KEY_BYTES, TokenRejection};
