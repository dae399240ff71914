//! In-process mode (DECISIONS 37): some functions' axum routers served in the gateway's own
//! process, instead of through `cargo lambda watch`.
//!
//! `cargo lambda watch` runs one request per function at a time, so under load it measures its
//! own queue. With `IN_PROCESS=files-api,presign,shares,multipart` the gateway builds those
//! functions' routers once at start, wired from the environment exactly as their `main`s wire
//! them (`files_api::from_env`, ...), and calls them for their routes. Everything else stays
//! the same: the route is matched, the authorizer verifies the token, and the API Gateway v2
//! event is built as before; it is then turned into the request the function sees by the same
//! conversion `lambda_http::run` applies in Lambda (request context with the authorizer's
//! claims, path and query parameters), and the router's answer goes back as it is. The
//! functions therefore trust the authorizer's claims, as deployed
//! ([`Authenticator::Authorizer`]), and never the token itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use http::StatusCode;
use matbakh_api::Authenticator;
use serde_json::Value;
use tower::ServiceExt;

/// The functions that can run in the gateway's process.
pub const FUNCTIONS: [&str; 4] = ["files-api", "presign", "shares", "multipart"];

/// The routers of `functions` (a comma-separated list, `IN_PROCESS`), by function name, each
/// wired from this process's environment (the functions' environment file).
pub async fn routers(functions: &str) -> Result<BTreeMap<String, Router>, String> {
    let mut routers = BTreeMap::new();
    for name in functions.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let auth = Arc::new(Authenticator::Authorizer);
        let router = match name {
            "files-api" => files_api::from_env(auth).await,
            "presign" => presign::from_env(auth).await,
            "shares" => shares::from_env(auth).await,
            "multipart" => multipart::from_env(auth).await,
            _ => return Err(format!("IN_PROCESS: {name} cannot run in the gateway (only {})", FUNCTIONS.join(", "))),
        };
        routers.insert(name.to_owned(), router.map_err(|e| format!("IN_PROCESS: {name}: {e}"))?);
    }
    Ok(routers)
}

/// `router`'s answer to `event` (a request's API Gateway v2 event), as Lambda would run it.
pub async fn call(router: &Router, event: &Value) -> Response {
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(request) => request,
        Err(e) => {
            tracing::error!(error = %e, "the event is not an API Gateway request");
            return crate::message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
    };
    match router.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
