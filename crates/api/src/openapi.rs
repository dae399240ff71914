//! The HTTP API's OpenAPI 3.1 document. Each HTTP function documents its routes where it
//! declares them (`#[utoipa::path]` on the handler, listed once in [`routes!`], which gives
//! both the router it serves and the documented one, so a route cannot exist without its
//! description) and exposes them as `openapi()`; [`document`] puts the functions' parts
//! together. The result is checked in
//! as `docs/openapi.json` (a test regenerates it and fails on any difference) and served by
//! `files-api` at `GET /v1/openapi.json`.

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, SecurityRequirement};
use utoipa_axum::router::OpenApiRouter;

use crate::ApiError;

/// A function's routes, from one list of handlers (functions with `#[utoipa::path]`), then,
/// after a `;`, modules with their own list: `routes!(Api; create, show, sign::sign; companion)`.
/// It defines two functions:
///
/// - `served()`, the `axum::Router` the function serves: each handler on the path and methods
///   its `#[utoipa::path]` names;
/// - `documented()`, the same routes with their OpenAPI description (for [`part`]).
///
/// Serving never builds a description: routing through `utoipa_axum::routes!` builds every
/// operation's description at start, only to drop it, and so links the code that builds
/// them into the function. One list keeps the two alike: the in-process tests serve
/// `served()`, the document's test reads `documented()`. A handler's path and methods are read
/// with the rule `utoipa_axum::routes!` reads them with (`@path`): a utoipa-axum without it
/// fails to compile here, it cannot route differently.
#[macro_export]
macro_rules! routes {
    ($state:ty; $( $($handler:ident)::+ ),+ $(; $($part:ident),+)? $(;)?) => {
        /// This function's routes as served (see `matbakh_api::routes!`).
        pub(crate) fn served() -> ::axum::Router<$state> {
            use ::utoipa_axum::PathItemExt as _;
            ::axum::Router::new()
                $( .route(
                    ::utoipa_axum::routes!(@path [path()] of $($handler)::+).as_str(),
                    ::utoipa_axum::routes!(@path [methods()] of $($handler)::+)
                        .iter()
                        .fold(::axum::routing::MethodRouter::new(), |router, method| {
                            router.on(method.to_method_filter(), $($handler)::+)
                        }),
                ) )+
                $($( .merge($part::served()) )+)?
        }

        /// This function's routes with their OpenAPI description (see `matbakh_api::routes!`).
        pub(crate) fn documented() -> ::utoipa_axum::router::OpenApiRouter<$state> {
            ::utoipa_axum::router::OpenApiRouter::new()
                $( .routes(::utoipa_axum::routes!($($handler)::+)) )+
                $($( .merge($part::documented()) )+)?
        }
    };
}

/// A function's router: its routes on `state`, and a JSON `404 not_found` for any other path.
pub fn serve<S: Clone + Send + Sync + 'static>(served: Router<S>, state: S) -> Router {
    served.fallback(|| async { ApiError::not_found("route") }).with_state(state)
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::State;
    use http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    type Calls = &'static str;

    /// One
    #[utoipa::path(get, path = "/v1/things/{id}", responses((status = 200, description = "it")))]
    async fn show(State(s): State<Calls>) -> String {
        format!("{s} show")
    }

    /// Two
    #[utoipa::path(delete, path = "/v1/things/{id}", responses((status = 200, description = "gone")))]
    async fn remove() -> &'static str {
        "remove"
    }

    mod nested {
        /// Three
        #[utoipa::path(post, path = "/v1/things", responses((status = 201, description = "made")))]
        pub async fn create() -> &'static str {
            "create"
        }
    }

    mod part {
        use super::Calls;

        /// Four
        #[utoipa::path(put, path = "/v1/other", responses((status = 200, description = "put")))]
        async fn other() -> &'static str {
            "other"
        }

        crate::routes!(Calls; other);
    }

    crate::routes!(Calls; show, remove, nested::create; part);

    async fn answer(method: Method, path: &str) -> (StatusCode, String) {
        let router = super::serve(served(), "state");
        let response = router.oneshot(Request::builder().method(method).uri(path).body(Body::empty()).unwrap());
        let response = response.await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_served_router_routes_each_handler_where_its_description_says() {
        assert_eq!(answer(Method::GET, "/v1/things/7").await, (StatusCode::OK, "state show".into()));
        assert_eq!(answer(Method::DELETE, "/v1/things/7").await, (StatusCode::OK, "remove".into()));
        assert_eq!(answer(Method::POST, "/v1/things").await, (StatusCode::OK, "create".into()));
        assert_eq!(answer(Method::PUT, "/v1/other").await, (StatusCode::OK, "other".into()));
        // What no description names is not served.
        assert_eq!(answer(Method::POST, "/v1/things/7").await.0, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(answer(Method::GET, "/v1/nothing").await.0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_documented_router_describes_the_same_operations() {
        let doc = super::part(documented());
        let mut operations: Vec<(String, String)> = doc
            .paths
            .paths
            .iter()
            .flat_map(|(path, item)| {
                let item = serde_json::to_value(item).unwrap();
                let methods: Vec<String> = item.as_object().unwrap().keys().cloned().collect();
                methods.into_iter().map(move |m| (m, path.clone()))
            })
            .collect();
        operations.sort();
        let want =
            [("delete", "/v1/things/{id}"), ("get", "/v1/things/{id}"), ("post", "/v1/things"), ("put", "/v1/other")];
        let mut want: Vec<(String, String)> = want.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        want.sort();
        assert_eq!(operations, want);
    }
}
