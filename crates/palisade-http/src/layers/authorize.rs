//! The authorization tower layer for Rust services: each route states the
//! action it needs and which resource it touches, and the layer asks
//! [`Authz`] before the handler runs.
//!
//! ```ignore
//! Router::new()
//!     .route("/documents/{id}", get(show))
//!     .route_layer(AuthorizeLayer::new(authz, "document:read", "document/{id}"))
//! ```
//!
//! Mount it with `route_layer`, so it runs after routing and the route's
//! parameters fill the resource template. Who is asking comes from an
//! [`AuthzPrincipal`] your authentication layer puts into the request's
//! extensions: none is a 401, a deny a 403, and an error deciding is never an
//! allow.

use crate::problem::Problem;
use axum::body::Body;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::{Request, Response};
use axum::response::IntoResponse;
use futures_util::future::BoxFuture;
use palisade_authz::{Attributes, Authz};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Who is asking, in which tenant, with what attributes (IP, claims) for
/// binding conditions. Insert it from your authentication layer.
#[derive(Debug, Clone)]
pub struct AuthzPrincipal {
    /// The tenant the request acts in.
    pub tenant: String,
    /// The subject: `user:alice`, `apikey:...`.
    pub subject: String,
    /// What binding conditions may look at.
    pub attributes: Attributes,
}

/// Requires `action` on the resource named by a template.
#[derive(Debug, Clone)]
pub struct AuthorizeLayer {
    authz: Authz,
    action: Arc<str>,
    resource: Arc<str>,
}

impl AuthorizeLayer {
    /// Requires `action` (`document:read`) on `resource`, a template whose
    /// `{name}` parts are the route's parameters (`document/{id}`).
    pub fn new(authz: Authz, action: &str, resource: &str) -> Self {
        Self {
            authz,
            action: action.into(),
            resource: resource.into(),
        }
    }
}

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorize {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`AuthorizeLayer`].
#[derive(Debug, Clone)]
pub struct Authorize<S> {
    inner: S,
    layer: AuthorizeLayer,
}

impl<S> Service<Request<Body>> for Authorize<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let Some(principal) = parts.extensions.get::<AuthzPrincipal>().cloned() else {
                return Ok(Problem::unauthorized().into_response());
            };
            let params = RawPathParams::from_request_parts(&mut parts, &())
                .await
                .ok();
            let Some(resource) = render(&layer.resource, params.as_ref()) else {
                tracing::error!(template = %layer.resource, "resource template names a parameter the route lacks");
                return Ok(Problem::internal().into_response());
            };
            let request = palisade_authz::Request::new(
                &principal.tenant,
                &principal.subject,
                &layer.action,
                &resource,
            )
            .with_attributes(&principal.attributes);
            match layer.authz.cache().check(layer.authz.engine(), &request) {
                Ok(decision) if decision.allowed => {
                    inner.call(Request::from_parts(parts, body)).await
                }
                Ok(_) => Ok(Problem::forbidden("not allowed").into_response()),
                Err(error) => Ok(Problem::from(error).into_response()),
            }
        })
    }
}

/// Fills `{name}` in `template` from the route's parameters; `None` when a
/// name is not one of them.
fn render(template: &str, params: Option<&RawPathParams>) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}')? + open;
        let name = &rest[open + 1..close];
        let value = params?.iter().find(|(key, _)| *key == name)?.1;
        out.push_str(value);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    use palisade_authz::{Binding, DecisionCache, Engine, Grant, PolicySet, PolicyStore, RoleDef};
    use palisade_core::SystemClock;
    use palisade_store::{Database, DatabaseConfig};
    use std::time::Duration;
    use tower::ServiceExt;

    async fn authz() -> (Authz, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::connect(&DatabaseConfig::default(), dir.path())
            .await
            .unwrap();
        db.migrate().await.unwrap();
        let authz = Authz::new(
            Engine::new(SystemClock::shared()),
            PolicyStore::new(db),
            DecisionCache::new(1_000, Duration::from_secs(60)),
        );
        let policy = PolicySet {
            tenant: "acme".into(),
            roles: vec![RoleDef {
                name: "reader".into(),
                inherits: vec![],
                grants: vec![Grant::allow("document:read")],
            }],
            memberships: vec![],
            bindings: vec![Binding::new("b1", "user:alice", "reader").on("document/7")],
        };
        authz.replace(policy).await.unwrap();
        (authz, dir)
    }

    fn app(authz: Authz) -> Router {
        Router::new()
            .route("/documents/{id}", get(|| async { "the document" }))
            .route_layer(AuthorizeLayer::new(authz, "document:read", "document/{id}"))
    }

    async fn status(app: &Router, uri: &str, subject: Option<&str>) -> StatusCode {
        let mut req = Request::get(uri).body(Body::empty()).unwrap();
        if let Some(subject) = subject {
            req.extensions_mut().insert(AuthzPrincipal {
                tenant: "acme".into(),
                subject: subject.into(),
                attributes: Attributes::default(),
            });
        }
        app.clone().oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn allows_denies_and_requires_a_principal() {
        let (authz, _dir) = authz().await;
        let app = app(authz);
        assert_eq!(
            status(&app, "/documents/7", Some("user:alice")).await,
            StatusCode::OK
        );
        assert_eq!(
            status(&app, "/documents/8", Some("user:alice")).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(&app, "/documents/7", Some("user:bob")).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(&app, "/documents/7", None).await,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn renders_templates_from_route_parameters_only() {
        assert_eq!(render("document/*", None).as_deref(), Some("document/*"));
        assert_eq!(render("a/{missing}", None), None);
        assert_eq!(render("a/{unclosed", None), None);
    }
}
