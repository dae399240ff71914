//! What a share link's redirect allows after the link is revoked, proved against Garage, an S3
//! that enforces a presigned URL's expiry (moto does not).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use matbakh_core::clock::FixedClock;
use serde_json::json;
use testkit::{Harness, Options, call_router_raw, http_client, refused, unique_user};

/// Opens a link without login at the state's clock; the redirect's target.
async fn redirect(state: matbakh_aws::Services, url: &str) -> Option<String> {
    let path = url.strip_prefix("https://files.test").unwrap_or(url);
    let req = Request::builder().method(Method::GET).uri(path).body(Body::empty()).unwrap();
    let (status, headers, _) =
        call_router_raw(super::router(state, std::sync::Arc::new(matbakh_api::Authenticator::Authorizer)), req).await;
    (status == StatusCode::FOUND).then(|| headers["location"].to_str().unwrap().to_owned())
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_revoked_links_last_redirect_is_refused_once_its_minute_passed() {
    let now = time::OffsetDateTime::now_utc();
    let at = |t| Arc::new(FixedClock(t));
    let h = Harness::new(super::router, Options { s3_on_garage: true, clock: at(now), ..Options::default() }).await;
    let alice = unique_user("alice");
    let menu = b"%PDF-1.7 the menu".to_vec();
    let id = h.stored_file(&alice, "menu.pdf", "application/pdf", menu.clone(), now).await;
    let (status, link) =
        h.call(Method::POST, &format!("/v1/files/{id}/shares"), Some(&h.token(&alice)), Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let url = link["url"].as_str().unwrap();

    // A redirect handed out just now serves the file (so a refusal below is its expiry).
    let fresh = redirect(h.state.clone(), url).await.unwrap();
    let got = http_client().get(&fresh).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), menu.as_slice());

    // The last redirect before the revocation, handed out a minute and 5 s ago.
    let then = now - Duration::from_secs(65);
    let last = redirect(matbakh_aws::Services { clock: at(then), ..h.state.clone() }, url).await.unwrap();
    let token = url.rsplit('/').next().unwrap();
    let (status, _) = h.call(Method::DELETE, &format!("/v1/shares/{token}"), Some(&h.token(&alice)), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(redirect(h.state.clone(), url).await, None, "the link itself is refused at once");

    let outcome = http_client().get(&last).send().await;
    assert!(refused(&outcome), "S3 still serves the revoked link's last redirect: {outcome:?}");
}
