//! Share links against moto: a link opened without login downloads the same bytes and counts;
//! an expired, revoked or used-up link is refused (410), a forged one reveals nothing (404);
//! nobody shares or revokes someone else's file or link.

use std::sync::Arc;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use matbakh_core::clock::FixedClock;
use serde_json::{Value, json};
use testkit::{Harness, Options, call_router_raw, corpus, http_client, unique_user};
use time::macros::datetime;

const NOW: time::OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

async fn harness() -> Harness {
    Harness::new(super::router, Options { clock: Arc::new(FixedClock(NOW)), ..Options::default() }).await
}

/// Opens a link as a stranger would: no login. Answers the status, the redirect target and the
/// JSON body (if any).
async fn open_link(state: matbakh_aws::Services, url: &str) -> (StatusCode, Option<String>, Value) {
    let path = url.strip_prefix("https://files.test").unwrap_or(url);
    open(state, Request::builder().method(Method::GET).uri(path).body(Body::empty()).unwrap()).await
}

/// Opens a link as a visitor at `ip` with browser `user_agent`, through API Gateway's context.
async fn open_link_from(
    state: matbakh_aws::Services,
    url: &str,
    ip: &str,
    user_agent: &str,
) -> (StatusCode, Option<String>, Value) {
    let path = url.strip_prefix("https://files.test").unwrap_or(url);
    let ctx = json!({
        "accountId": "123456789012", "apiId": "api", "domainName": "files.test", "domainPrefix": "files",
        "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "01/Mar/2026:12:00:00 +0000",
        "timeEpoch": 0,
        "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": ip, "userAgent": user_agent},
    });
    let mut req =
        Request::builder().method(Method::GET).uri(path).header("user-agent", user_agent).body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(lambda_http::request::RequestContext::ApiGatewayV2(serde_json::from_value(ctx).unwrap()));
    open(state, req).await
}

async fn open(state: matbakh_aws::Services, req: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let (status, headers, body) =
        call_router_raw(super::router(state, std::sync::Arc::new(matbakh_api::Authenticator::Authorizer)), req).await;
    let location = headers.get("location").map(|v| v.to_str().unwrap().to_owned());
    if status == StatusCode::FOUND {
        assert_eq!(headers["cache-control"], "no-store");
    }
    (status, location, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn share(h: &Harness, user: &str, file: &str, body: Value) -> (StatusCode, Value) {
    h.call(Method::POST, &format!("/v1/files/{file}/shares"), Some(&h.token(user)), Some(body)).await
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_link_downloads_the_same_bytes_counts_and_stops_when_used_up() {
    let h = harness().await;
    let alice = unique_user("alice");
    let (name, photo) = corpus("photos/ladybird.jpg");
    let id = h.stored_file(&alice, &name, "image/jpeg", photo.clone(), NOW).await.to_string();

    let (status, link) = share(&h, &alice, &id, json!({"expiresIn": 3600, "maxDownloads": 2})).await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with("https://files.test/v1/shares/"), "{url}");
    assert_eq!((link["expiresAt"].as_str(), link["state"].as_str()), (Some("2026-03-01T13:00:00Z"), Some("active")));

    for n in 1..=2 {
        let (status, location, body) = open_link(h.state.clone(), url).await;
        assert_eq!(status, StatusCode::FOUND, "download {n}: {body}");
        let got = http_client().get(location.unwrap()).send().await.unwrap();
        assert_eq!(got.status(), 200);
        assert!(got.headers()["content-disposition"].to_str().unwrap().contains("ladybird.jpg"));
        assert_eq!(got.bytes().await.unwrap().as_ref(), photo.as_slice(), "download {n}");
    }
    let (status, _, body) = open_link(h.state.clone(), url).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::GONE, Some("share_used_up")));

    let (_, listed) = h.call(Method::GET, "/v1/shares", Some(&h.token(&alice)), None).await;
    let mine = &listed["shares"][0];
    assert_eq!((mine["downloads"].as_u64(), mine["state"].as_str()), (Some(2), Some("used_up")));
    assert_eq!(mine["url"], url, "the owner's list shows the same link");

    // Alice's trail holds the link and every use of it, by whom (the link), with the outcome.
    let owner = matbakh_core::ids::UserId::parse(&alice).unwrap();
    let (records, _) = h.state.table.audit_page(&owner, 50, None).await.unwrap();
    let mut seen: Vec<(&str, &str)> = records.iter().map(|r| (r.action.as_str(), r.result.as_str())).collect();
    seen.sort();
    assert_eq!(
        seen,
        [("share_create", "ok"), ("share_download", "ok"), ("share_download", "ok"), ("share_download", "used_up")]
    );
    let share_id = link["token"].as_str().map(|t| super::links().key.open(t).unwrap().0).unwrap();
    assert!(records.iter().filter(|r| r.action == "share_download").all(|r| r.actor == format!("share:{share_id}")));
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn revoked_expired_forged_and_deleted_links_are_refused() {
    let h = harness().await;
    let (alice, mallory) = (unique_user("alice"), unique_user("mallory"));
    let id = h.stored_file(&alice, "plan.pdf", "application/pdf", b"%PDF-1.7 a plan".to_vec(), NOW).await;
    let id = id.to_string();
    let make =
        || async { share(&h, &alice, &id, json!({"expiresIn": 600})).await.1["url"].as_str().unwrap().to_owned() };

    // Revoked: at once, only by its owner, twice is fine.
    let url = make().await;
    let token = url.rsplit('/').next().unwrap().to_owned();
    let (status, _) = h.call(Method::DELETE, &format!("/v1/shares/{token}"), Some(&h.token(&mallory)), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "someone else's link");
    assert_eq!(open_link(h.state.clone(), &url).await.0, StatusCode::FOUND, "still works");
    for _ in 0..2 {
        let (status, _) = h.call(Method::DELETE, &format!("/v1/shares/{token}"), Some(&h.token(&alice)), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let (status, _, body) = open_link(h.state.clone(), &url).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::GONE, Some("share_revoked")));

    // Expired: the clock moves past the link's end (no sleeping).
    let url = make().await;
    let later =
        matbakh_aws::Services { clock: Arc::new(FixedClock(NOW + time::Duration::seconds(600))), ..h.state.clone() };
    let (status, _, body) = open_link(later, &url).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::GONE, Some("share_expired")));

    // Forged or altered tokens, or one signed with another key: 404, nothing revealed.
    let mut altered = url.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let other_key = matbakh_core::shares::ShareKey::from_bytes(&testkit::rand32()).unwrap();
    let foreign = format!(
        "/v1/shares/{}",
        other_key.token(&matbakh_core::shares::ShareId::from_random([1; 16]), NOW + time::Duration::hours(1))
    );
    for bad in [altered.as_str(), "/v1/shares/nonsense", foreign.as_str()] {
        let (status, location, body) = open_link(h.state.clone(), bad).await;
        assert_eq!((status, location), (StatusCode::NOT_FOUND, None), "{bad}");
        assert_eq!(body["error"], "not_found", "{bad}: {body}");
    }

    // A deleted file's link stops working and spends no download.
    let url = make().await;
    h.state.table.mark_deleted(matbakh_core::ids::FileId::parse(&id).unwrap(), None).await.unwrap();
    let (status, _, body) = open_link(h.state.clone(), &url).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::GONE, Some("file_gone")));
    let (_, listed) = h.call(Method::GET, "/v1/shares", Some(&h.token(&alice)), None).await;
    // Every link here was made at the same (fixed) instant, so the list's order does not tell
    // them apart: find this one by its URL.
    let this = listed["shares"].as_array().unwrap().iter().find(|x| x["url"] == url.as_str());
    assert_eq!(this.map(|x| &x["downloads"]), Some(&json!(0)), "{listed}");
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn nobody_shares_someone_elses_file_and_bad_terms_are_refused() {
    let h = harness().await;
    let (alice, mallory) = (unique_user("alice"), unique_user("mallory"));
    let id = h.stored_file(&alice, "a.png", "image/png", vec![1, 2, 3], NOW).await.to_string();
    let (status, body) = share(&h, &mallory, &id, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let missing = matbakh_core::ids::FileId::new(1_700_000_000_000, [9; 10]);
    assert_eq!(share(&h, &mallory, &missing.to_string(), json!({})).await, (status, body));
    let (_, theirs) = h.call(Method::GET, "/v1/shares", Some(&h.token(&mallory)), None).await;
    assert_eq!(theirs["shares"], json!([]));

    for terms in
        [json!({"expiresIn": 10}), json!({"expiresIn": 100_000_000}), json!({"maxDownloads": 0}), json!({"owner": "x"})]
    {
        let (status, body) = share(&h, &alice, &id, terms.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{terms}: {body}");
    }
    let (_, none) = h.call(Method::GET, "/v1/shares", Some(&h.token(&alice)), None).await;
    assert_eq!(none["shares"], json!([]), "a refused request made no link");
    // Default terms: a week, unlimited.
    let (status, link) = h.call(Method::POST, &format!("/v1/files/{id}/shares"), Some(&h.token(&alice)), None).await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    assert_eq!((link["expiresAt"].as_str(), &link["maxDownloads"]), (Some("2026-03-08T12:00:00Z"), &Value::Null));
    let (status, _) = h.call(Method::POST, &format!("/v1/files/{id}/shares"), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Each redirect is a presigned GET valid for one minute only (not the five of a download), so
/// a revoked link's last redirects stop working within a minute (S3 enforcing it: `tests/it/garage.rs`).
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_links_redirect_is_presigned_for_a_minute_only() {
    let h = harness().await;
    let alice = unique_user("alice");
    let id = h.stored_file(&alice, "menu.pdf", "application/pdf", b"%PDF-1.7 menu".to_vec(), NOW).await.to_string();
    let (_, link) = share(&h, &alice, &id, json!({})).await;
    let (status, location, body) = open_link(h.state.clone(), link["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::FOUND, "{body}");
    let location = location.unwrap();
    assert!(location.contains("X-Amz-Date=20260301T120000Z") && location.contains("X-Amz-Expires=60&"), "{location}");
}

/// The owner learns how often a link was used and with what outcome, never who opened it: the
/// visitor's address and browser are in neither the link's view nor the owner's trail (the
/// server's log keeps them, for abuse handling).
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn the_owner_sees_a_links_use_counted_not_the_visitors_address() {
    let h = harness().await;
    let alice = unique_user("alice");
    let id = h.stored_file(&alice, "menu.pdf", "application/pdf", b"%PDF-1.7 menu".to_vec(), NOW).await.to_string();
    let (_, link) = share(&h, &alice, &id, json!({"maxDownloads": 1})).await;
    let url = link["url"].as_str().unwrap();
    for expected in [StatusCode::FOUND, StatusCode::GONE] {
        let (status, _, body) = open_link_from(h.state.clone(), url, "198.51.100.23", "visitor-browser/1.0").await;
        assert_eq!(status, expected, "{body}");
    }

    let (_, listed) = h.call(Method::GET, "/v1/shares", Some(&h.token(&alice)), None).await;
    assert_eq!(listed["shares"][0]["downloads"], 1, "{listed}");
    let owner = matbakh_core::ids::UserId::parse(&alice).unwrap();
    let (records, _) = h.state.table.audit_page(&owner, 50, None).await.unwrap();
    let uses: Vec<_> = records.iter().filter(|r| r.action == "share_download").collect();
    let mut outcomes: Vec<&str> = uses.iter().map(|r| r.result.as_str()).collect();
    outcomes.sort();
    assert_eq!(outcomes, ["ok", "used_up"]);
    for (shown, what) in [(format!("{listed}"), "the owner's list"), (format!("{records:?}"), "the owner's trail")] {
        assert!(
            !shown.contains("198.51.100.23") && !shown.contains("visitor-browser"),
            "{what} shows the visitor: {shown}"
        );
    }
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn the_signing_key_is_read_from_secrets_manager_at_start() {
    let sdk = testkit::moto_sdk().await;
    let name = unique_user("share-key");
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    sm.create_secret().name(&name).secret_string(key).send().await.unwrap();
    let settings = |id: String| {
        move |k: &str| match k {
            "SHARE_SIGNING_SECRET_ID" => Some(id.clone()),
            "PUBLIC_API_URL" => Some("https://api.test/".into()),
            _ => None,
        }
    };
    let links = shares::links_from_env(&sdk, settings(name)).await.unwrap();
    assert_eq!(links.public_api_url.as_deref(), Some("https://api.test"));
    let expected = matbakh_core::shares::ShareKey::parse(key).unwrap();
    let id = matbakh_core::shares::ShareId::parse("00112233445566778899aabbccddeeff").unwrap();
    let token = links.key.token(&id, NOW);
    assert_eq!(expected.open(&token).unwrap().0, id, "the secret's key signs");
    let missing = shares::links_from_env(&sdk, settings("no-such-secret".into())).await.unwrap_err();
    assert!(missing.contains("SHARE_SIGNING_SECRET_ID no-such-secret"), "{missing}");
}
