//! In-process mode: a route of a function served in the gateway's process answers what the
//! function's router answers called directly, after the gateway's authorizer, with the request
//! context (the caller's claims, the source IP) the function would get in Lambda.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use local_gateway::{Gateway, Route, router};
use matbakh_api::auth::JwtVerifier;
use matbakh_api::dev_keys::DevKey;
use matbakh_api::{Api, Authenticator};
use matbakh_app::fakes::{InMemory, InMemoryObjects};
use matbakh_app::uploads::Uploads;
use matbakh_core::clock::FixedClock;
use matbakh_core::ids::{FileId, UserId};
use matbakh_core::limits::Limits;
use matbakh_core::metadata::{FileDetails, FileRecord, FileStatus};
use matbakh_core::names::DisplayName;
use matbakh_core::types::ContentType;
use time::macros::datetime;
use tower::ServiceExt;

/// `presign` on in-memory ports holding one READY file of alice's, with `auth`.
fn presign(repo: &Arc<InMemory>, objects: &Arc<InMemoryObjects>, auth: Authenticator) -> Router {
    let clock = Arc::new(FixedClock(datetime!(2026-03-01 12:00 UTC)));
    let uploads = Uploads {
        files: repo.clone(),
        objects: objects.clone(),
        counters: repo.clone(),
        audit: matbakh_app::fakes::trail(repo.clone(), clock.clone()),
        limits: Limits::default(),
        clock: clock.clone(),
        delivery: matbakh_app::fakes::delivery(objects.clone(), clock),
    };
    presign::routes(Api { cases: uploads, auth: Arc::new(auth) })
}

async fn send(app: &Router, uri: &str, bearer: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::get(uri);
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let resp = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec())
}

#[tokio::test]
async fn a_route_in_process_answers_as_the_functions_router_does() {
    let key = DevKey::generate().unwrap();
    let (repo, objects) = (Arc::new(InMemory::new()), Arc::new(InMemoryObjects::new()));
    let id = FileId::new(1_772_000_000_000, [7; 10]);
    let mut record = FileRecord::upload(
        id,
        UserId::parse("alice").unwrap(),
        DisplayName::parse("Menü 2026.pdf").unwrap(),
        ContentType::parse("application/pdf").unwrap(),
        datetime!(2026-03-01 11:00 UTC),
    );
    (record.size, record.status, record.version_id) = (4096, FileStatus::Ready, Some("v7".into()));
    objects.insert(record.key.clone());
    repo.insert(FileDetails::new(record));

    // The function as a caller with a token of its own would reach it: it verifies the token.
    let verifying = Authenticator::Jwks(JwtVerifier::new(&key.jwks(), "iss", "aud").unwrap());
    let direct = presign(&repo, &objects, verifying);
    // Behind the gateway, as deployed: the authorizer verifies, the function trusts its claims.
    let gw = Gateway {
        routes: vec![Route {
            method: "GET".into(),
            path: "/v1/files/{fileId}/download".into(),
            function: "presign".into(),
            auth: "JWT".into(),
        }],
        in_process: BTreeMap::from([("presign".to_owned(), presign(&repo, &objects, Authenticator::Authorizer))]),
        ..crate::bare(&key)
    };
    let gateway = router(Arc::new(gw));

    let token = key.mint("alice", "iss", "aud", 60).unwrap();
    let uri = format!("/v1/files/{id}/download?inline=1");
    let (status, headers, body) = send(&direct, &uri, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(send(&gateway, &uri, Some(&token)).await, (status, headers, body));

    // Someone else's file, and no token: the function's 404, and the authorizer's 401.
    let mallory = key.mint("mallory", "iss", "aud", 60).unwrap();
    let (status, headers, body) = send(&direct, &uri, Some(&mallory)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(send(&gateway, &uri, Some(&mallory)).await, (status, headers, body));
    assert_eq!(send(&gateway, &uri, None).await.0, StatusCode::UNAUTHORIZED);

    // The function saw the gateway's request context: the caller's source IP reached its trail.
    let trail: Vec<(String, String, String)> =
        repo.audit_entries().iter().map(|e| (e.user.to_string(), e.result.clone(), e.ip.clone())).collect();
    let entry = |user: &str, result: &str, ip: &str| (user.to_owned(), result.to_owned(), ip.to_owned());
    assert_eq!(
        trail,
        [
            entry("alice", "ok", "unknown"),
            entry("alice", "ok", "127.0.0.1"),
            entry("mallory", "not_found", "unknown"),
            entry("mallory", "not_found", "127.0.0.1"),
        ]
    );
}
