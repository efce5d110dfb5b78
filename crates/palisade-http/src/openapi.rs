//! The router and its OpenAPI 3.1 document, generated from the handlers themselves
//! so an endpoint missing from the document cannot exist.

use crate::auth;
use crate::layers::rate_limit::RateLimitLayer;
use crate::layers::timeout::RequestTimeoutLayer;
use crate::layers::{idempotency, problems, telemetry};
use crate::problem::Problem;
use crate::routes::crypto;
use crate::routes::csrf;
use crate::routes::inspect;
use crate::routes::threats;
use crate::routes::{
    api_keys, audit, audit_export, audit_stream, authz, health, passwords, ratelimit, tokens,
};
use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

#[derive(OpenApi)]
#[openapi(
    info(title = "Palisade", description = "Authentication, authorization, tamper-evident audit, encryption and request protection for backend services."),
    modifiers(&BearerApiKey),
    components(schemas(Problem)),
    paths(audit::tile),
    tags(
        (name = "health", description = "Probes and metrics"),
        (name = "api-keys", description = "API keys of Palisade's own API"),
        (name = "audit", description = "The tamper-evident audit log"),
        (name = "csrf", description = "CSRF tokens and verdicts for services in other languages"),
        (name = "auth", description = "Password hashing and verification"),
        (name = "authz", description = "Authorization decisions, explanations and policy"),
        (name = "ratelimit", description = "Rate-limit checks and rules"),
        (name = "guard", description = "Request inspection: SQL injection, XSS, path traversal, command injection"),
        (name = "threats", description = "Security events, blocks and incidents of threat detection"),
        (name = "crypto", description = "Envelope and field-level encryption, blind indexes, key rotation and crypto-shredding"),
    )
)]
struct ApiDoc;

struct BearerApiKey;

impl Modify for BearerApiKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn routers(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (v1, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(api_keys::create, api_keys::list))
        .routes(routes!(api_keys::revoke))
        .routes(routes!(api_keys::whoami))
        .routes(routes!(audit::append, audit::query))
        .routes(routes!(audit::event))
        .routes(routes!(audit::checkpoint))
        .routes(routes!(audit::key))
        .routes(routes!(audit::inclusion))
        .routes(routes!(audit::consistency))
        .routes(routes!(audit::leaf))
        .routes(routes!(audit_stream::stream))
        .routes(routes!(audit_stream::websocket))
        .routes(routes!(audit_export::export))
        .routes(routes!(csrf::issue_token))
        .routes(routes!(csrf::verify))
        .routes(routes!(passwords::hash))
        .routes(routes!(passwords::verify))
        .routes(routes!(crypto::encrypt))
        .routes(routes!(crypto::decrypt))
        .routes(routes!(crypto::fields_encrypt))
        .routes(routes!(crypto::fields_decrypt))
        .routes(routes!(crypto::blind_index))
        .routes(routes!(crypto::list_keys))
        .routes(routes!(crypto::rotate_key))
        .routes(routes!(crypto::shred_subject))
        .routes(routes!(crypto::start_rewrap))
        .routes(routes!(crypto::rewrap_job))
        .routes(routes!(tokens::issue))
        .routes(routes!(tokens::verify))
        .routes(routes!(tokens::refresh))
        .routes(routes!(tokens::revoke))
        .routes(routes!(
            tokens::list_signing_keys,
            tokens::rotate_signing_key
        ))
        .routes(routes!(authz::check))
        .routes(routes!(authz::check_batch))
        .routes(routes!(authz::explain))
        .routes(routes!(authz::policy))
        .routes(routes!(authz::put_role, authz::delete_role))
        .routes(routes!(authz::create_binding))
        .routes(routes!(authz::delete_binding))
        .routes(routes!(authz::add_membership, authz::remove_membership))
        .routes(routes!(authz::import_casbin))
        .routes(routes!(authz::subject_permissions))
        .routes(routes!(ratelimit::check))
        .routes(routes!(inspect::inspect))
        .routes(routes!(ratelimit::list_rules))
        .routes(routes!(
            ratelimit::get_rule,
            ratelimit::put_rule,
            ratelimit::delete_rule
        ))
        .routes(routes!(threats::report_events))
        .routes(routes!(
            threats::create_block,
            threats::delete_block,
            threats::list_blocks
        ))
        .routes(routes!(threats::list_incidents))
        .split_for_parts();
    // The tile index is a multi-segment path (x001/x234/067), which the OpenAPI
    // router cannot express as one parameter; it is documented on `audit::tile`.
    let v1 = v1.route(
        "/v1/audit/tile/{level}/{*index}",
        axum::routing::get(audit::tile),
    );
    let principal_block = state
        .threats()
        .ok()
        .cloned()
        .map(crate::layers::threat_block::ThreatBlockLayer::principals);
    // One stack, outermost first, applied in one `.layer`: axum boxes each
    // `.layer` of every route separately, and clones every box per request.
    // Authenticate first, then blocks of the caller's API key (the address
    // was checked outside), then rate limits (which may count by API key or
    // tenant), then idempotency (which needs the caller to scope its records).
    let v1 = v1.layer(
        ServiceBuilder::new()
            .layer(auth::AuthenticateLayer::new(state.clone()))
            .layer(tower::util::option_layer(principal_block))
            .layer(RateLimitLayer::new(
                state.ratelimit.clone(),
                state.settings.rate_limit_headers,
            ))
            .layer(idempotency::IdempotencyLayer::new(state.clone())),
    );
    let (root, root_api) = OpenApiRouter::new()
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::health))
        .routes(routes!(health::metrics))
        .routes(routes!(tokens::jwks))
        .split_for_parts();
    api.merge(root_api);
    (root.merge(v1), api)
}

/// The OpenAPI document of the whole API.
pub fn openapi_document(state: &AppState) -> utoipa::openapi::OpenApi {
    routers(state).1
}

/// The complete application: every route, `/openapi.json`, `/docs`, and the layer stack
/// (request id, panic catching, logs and metrics, problem bodies, timeout, body limit,
/// CORS when origins are configured, security headers on every response).
pub fn api_router(state: AppState) -> Router {
    let (routes, api) = routers(&state);
    let settings = state.settings.clone();
    let protection = state.protection.clone();
    let threat_block = state
        .threats()
        .ok()
        .cloned()
        .map(crate::layers::threat_block::ThreatBlockLayer::new);
    routes
        .merge(SwaggerUi::new("/docs").url("/openapi.json", api))
        .fallback(|| async { Problem::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            Problem::for_status(StatusCode::METHOD_NOT_ALLOWED)
        })
        // One stack, outermost first (see the `/v1` stack above).
        .layer(
            ServiceBuilder::new()
                // For the client address of rate limits and audit records.
                .layer(Extension(protection.trusted_proxies))
                // Outermost, so every response carries them: 404s, timeouts, panics.
                .layer(protection.security_headers)
                .layer(telemetry::ObserveLayer::new())
                // Blocked addresses are refused before anything else runs,
                // inside the request log so refusals are still logged and counted.
                .layer(tower::util::option_layer(threat_block))
                // Preflights are answered here, inside the request log and
                // outside authentication, which a browser's preflight never carries.
                .layer(tower::util::option_layer(protection.cors))
                // The panic catcher boxes its body; back to axum's.
                .map_response(IntoResponse::into_response)
                .layer(CatchPanicLayer::custom(
                    |_: Box<dyn std::any::Any + Send>| {
                        tracing::error!("handler panicked");
                        IntoResponse::into_response(Problem::internal())
                    },
                ))
                .layer(problems::ProblemBodiesLayer)
                .layer(RequestTimeoutLayer::new(
                    settings.request_timeout,
                    StatusCode::REQUEST_TIMEOUT,
                ))
                .layer(DefaultBodyLimit::max(settings.max_body_bytes)),
        )
        .with_state(state)
}
