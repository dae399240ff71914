//! The HTTP API's OpenAPI 3.1 document. Each HTTP function documents its routes where it
//! declares them (`#[utoipa::path]` on the handler, registered through
//! `utoipa_axum::routes!`, so a route cannot exist without its description) and exposes them
//! as `openapi()`; [`document`] puts the functions' parts together. The result is checked in
//! as `docs/openapi.json` (a test regenerates it and fails on any difference) and served by
//! `files-api` at `GET /v1/openapi.json`.

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, SecurityRequirement};
use utoipa_axum::router::OpenApiRouter;

use crate::ApiError;

/// A function's router: its documented routes on `state`, and a JSON `404 not_found` for
/// any other path.
pub fn serve<S: Clone + Send + Sync + 'static>(documented: OpenApiRouter<S>, state: S) -> Router {
    let (router, _) = documented.split_for_parts();
    router.fallback(|| async { ApiError::not_found("route") }).with_state(state)
}

/// A function's part of the API's OpenAPI document.
pub fn part<S: Clone + Send + Sync + 'static>(documented: OpenApiRouter<S>) -> OpenApi {
    documented.split_for_parts().1
}

/// The security scheme every route uses unless it says `security(())`: the app's JWT.
pub const BEARER: &str = "bearer";

/// The document of the whole HTTP API, from each function's part.
pub fn document(parts: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    let info = InfoBuilder::new()
        .title("matbakh-files")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The file platform of matbakh.app: uploads (single, multipart, Uppy), the caller's files, \
             shares, account export and erase, and the migration's administration. Errors answer \
             `{error, message, field?}` with a stable `error` code.",
        ))
        .build();
    let bearer = SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some("The app's ID token (issuer and audience as deployed)"))
            .build(),
    );
    let mut doc = OpenApiBuilder::new()
        .info(info)
        .components(Some(ComponentsBuilder::new().security_scheme(BEARER, bearer).build()))
        .security(Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]))
        .build();
    for part in parts {
        doc.merge(part);
    }
    doc
}
