//! Palisade's HTTP surface: the `/v1` API, health and metrics endpoints, the
//! OpenAPI document, and the tower layers that wrap them. The only crate that
//! speaks HTTP; it calls the domain crates' plain Rust APIs.

pub mod auth;
pub mod client_ip;
mod errors;
pub mod json;
pub mod layers;
pub mod openapi;
pub mod problem;
pub mod protection;
pub mod routes;
pub mod server;
pub mod state;

pub use auth::Caller;
pub use layers::bearer::{BearerAuthLayer, VerifiedClaims};
pub use openapi::{api_router, openapi_document};
pub use problem::Problem;
pub use protection::RequestProtection;
pub use server::serve;
pub use state::{AppState, HttpSettings};
