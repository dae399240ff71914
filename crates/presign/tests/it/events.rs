//! The sample API Gateway events in `events/` (also used with `cargo lambda invoke`) go
//! through the router as Lambda would deliver them, with identity from the authorizer.

use std::sync::Arc;

use http::StatusCode;
use matbakh_api::Authenticator;
use testkit::{Harness, Options, call_router};

fn event(name: &str) -> lambda_http::Request {
    let path = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    lambda_http::request::from_str(&text).unwrap()
}

async fn call(h: &Harness, req: lambda_http::Request) -> (StatusCode, serde_json::Value) {
    let (parts, body) = req.into_parts();
    let req = http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()));
    call_router(presign::router(h.state.clone(), Arc::new(Authenticator::Authorizer)), req).await
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn sample_upload_event_is_granted_to_the_authorizers_subject() {
    let h = Harness::new(presign::router, Options::default()).await;
    let (status, grant) = call(&h, event("presign-create-upload.json")).await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    assert!(grant["key"].as_str().unwrap().starts_with("users/demo-user/"));
    assert_eq!(grant["upload"]["fields"]["Content-Type"], "image/jpeg");
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn sample_download_event_for_an_unknown_file_is_a_json_404() {
    let h = Harness::new(presign::router, Options::default()).await;
    let (status, err) = call(&h, event("presign-download.json")).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn sample_event_without_authorizer_claims_is_401() {
    let h = Harness::new(presign::router, Options::default()).await;
    let (status, _) = call(&h, event("presign-create-upload-unauthenticated.json")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
