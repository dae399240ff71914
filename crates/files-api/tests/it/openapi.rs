//! The HTTP API's OpenAPI document (`docs/openapi.json`) is exactly what the routers describe:
//! every function lists its routes once in `matbakh_api::routes!`, which serves them and
//! describes them, so a route exists only with its description. This test regenerates the document from the routers and fails on any
//! difference (`UPDATE_OPENAPI=1` rewrites the file); `tests/template/test_openapi.py` checks
//! it against the routes the template gives API Gateway. No server needed.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use matbakh_api::Authenticator;
use matbakh_app::fakes::{InMemory, InMemoryObjects};
use matbakh_app::files::Files;
use matbakh_core::clock::SystemClock;
use matbakh_core::limits::Limits;
use serde_json::Value;

/// Where the document is checked in, in the checkout cargo runs the test from (not the one the
/// test was compiled in: a target folder may be shared).
fn checked_in_path() -> String {
    format!("{}/../../docs/openapi.json", std::env::var("CARGO_MANIFEST_DIR").unwrap())
}

fn generated() -> String {
    let doc = matbakh_api::openapi::document([
        presign::openapi(),
        multipart::openapi(),
        files_api::openapi(),
        shares::openapi(),
        account::openapi(),
        migration_api::openapi(),
        live::tickets::openapi(),
    ]);
    doc.to_pretty_json().expect("the document serialises") + "\n"
}

#[test]
fn the_checked_in_document_is_what_the_routers_describe() {
    let json = generated();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(checked_in_path(), &json).unwrap();
    }
    let checked_in = std::fs::read_to_string(checked_in_path()).unwrap();
    assert!(
        checked_in == json,
        "docs/openapi.json is not what the routers describe; regenerate it with\n  \
         UPDATE_OPENAPI=1 cargo test -p files-api --test it openapi"
    );
}

#[test]
fn every_operation_is_described_with_its_function_its_parameters_and_its_answers() {
    let doc: Value = serde_json::from_str(&generated()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        let declared: Vec<&str> =
            path.split('/').filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let at = format!("{method} {path}");
            assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{at}: no summary");
            assert!(op["operationId"].as_str().is_some_and(|s| !s.is_empty()), "{at}: no operationId");
            assert_eq!(op["tags"].as_array().map(Vec::len), Some(1), "{at}: one tag, the function's name");
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{at}: no responses");
            let in_path: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert_eq!(in_path, declared, "{at}: its path parameters, in order");
        }
    }
    // The template routes 42 operations to seven functions; files-api serves this document too.
    assert_eq!(operations, 43);
}

#[tokio::test]
async fn files_api_serves_the_document_without_a_login() {
    let repo = Arc::new(InMemory::new());
    let objects = Arc::new(InMemoryObjects::new());
    let files = Files {
        counters: repo.clone(),
        files: repo.clone(),
        usage: repo.clone(),
        audit: matbakh_app::fakes::trail(repo.clone(), Arc::new(SystemClock)),
        objects: objects.clone(),
        limits: Limits::default(),
        clock: Arc::new(SystemClock),
        delivery: matbakh_app::fakes::delivery(objects, Arc::new(SystemClock)),
        admins: Arc::default(),
    };
    let images = matbakh_app::images::Images {
        files: repo.clone(),
        counters: repo,
        signer: matbakh_app::images::Signer {
            base_url: "https://files.test/t".into(),
            keys: Arc::new(matbakh_core::imgproxy::SigningKeys::from_hex("6b6579", "73616c74").unwrap()),
            presets: Default::default(),
        },
        limits: Limits::default(),
        clock: Arc::new(SystemClock),
    };
    let cases = files_api::Cases { files, images };
    let router = files_api::routes(files_api::Api { cases, auth: Arc::new(Authenticator::Authorizer) });
    let req = Request::get("/v1/openapi.json").body(Body::empty()).unwrap();
    let (status, served) = testkit::call_router(router, req).await;
    assert_eq!(status, StatusCode::OK);
    let checked_in: Value = serde_json::from_str(&std::fs::read_to_string(checked_in_path()).unwrap()).unwrap();
    assert_eq!(served, checked_in);
}
