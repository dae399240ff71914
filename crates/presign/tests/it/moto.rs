//! The upload and download flow end to end against moto: a real photo goes up with a plain
//! browser-style form POST and comes back byte for byte; quotas, owners and bad input hold.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use http::{Method, StatusCode};
use matbakh_core::clock::FixedClock;
use matbakh_core::ids::{FileId, UserId};
use matbakh_core::limits::Limits;
use matbakh_core::metadata::FileStatus;
use serde_json::{Value, json};
use testkit::{Harness, Options, browser_upload, corpus, http_client, unique_user};

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_real_photo_goes_up_and_comes_back_byte_for_byte() {
    let h = Harness::new(presign::router, Options::default()).await;
    let user = unique_user("alice");
    let (name, photo) = corpus("photos/ladybird.jpg");

    let (status, grant) = h.grant(&user, "Marienkäfer im Gras.jpg", "image/jpeg", photo.len()).await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    let file_id = grant["fileId"].as_str().unwrap();
    let key = grant["key"].as_str().unwrap();
    assert_eq!(key, format!("users/{user}/{file_id}/Marienkäfer im Gras.jpg"));

    // The PENDING row and the quota reservation exist before any byte moved.
    let row = h.state.table.get_file(FileId::parse(file_id).unwrap()).await.unwrap().unwrap();
    assert_eq!(row.status, FileStatus::Pending);
    assert_eq!(row.owner, UserId::parse(&user).unwrap());
    assert_eq!(row.size, photo.len() as u64);
    assert!(row.expires_at.is_some());
    let usage = h.usage(&user).await;
    assert_eq!((usage.charged, usage.reserved), (photo.len() as u64, photo.len() as u64));

    let resp = browser_upload(&grant, &name, photo.clone(), |_| {}).await.unwrap();
    assert!(resp.status().is_success(), "upload answered {}", resp.status());

    let head = h.state.store.client().head_object().bucket(h.state.store.bucket()).key(key).send().await.unwrap();
    assert_eq!(head.content_type(), Some("image/jpeg"));
    assert_eq!(head.content_length(), Some(photo.len() as i64));

    let (status, dl) = h.call(Method::GET, &format!("/v1/files/{file_id}/download"), Some(&h.token(&user)), None).await;
    assert_eq!(status, StatusCode::OK, "{dl}");
    assert_eq!(dl["filename"], "Marienkäfer im Gras.jpg");
    let url = dl["url"].as_str().unwrap();
    let got = http_client().get(url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    let disposition = got.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(disposition.contains("filename*=UTF-8''Marienk%C3%A4fer%20im%20Gras.jpg"), "{disposition}");
    assert_eq!(got.bytes().await.unwrap().as_ref(), photo.as_slice());

    // Range requests work on the same URL, as S3 serves them.
    let part = http_client().get(url).header("range", "bytes=100-199").send().await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &photo[100..200]);

    // ?inline=1 asks the browser to show it instead of saving it.
    let (_, dl) =
        h.call(Method::GET, &format!("/v1/files/{file_id}/download?inline=1"), Some(&h.token(&user)), None).await;
    let got = http_client().get(dl["url"].as_str().unwrap()).send().await.unwrap();
    assert!(got.headers()["content-disposition"].to_str().unwrap().starts_with("inline;"));
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn someone_elses_file_is_indistinguishable_from_a_missing_one() {
    let h = Harness::new(presign::router, Options::default()).await;
    let (alice, mallory) = (unique_user("alice"), unique_user("mallory"));
    let (name, photo) = corpus("photos/panasonic-orientation6.jpg");
    let (_, grant) = h.grant(&alice, &name, "image/jpeg", photo.len()).await;
    assert!(testkit::accepted(&browser_upload(&grant, &name, photo, |_| {}).await));
    let file_id = grant["fileId"].as_str().unwrap();

    let (status, theirs) =
        h.call(Method::GET, &format!("/v1/files/{file_id}/download"), Some(&h.token(&mallory)), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let missing_id = FileId::new(1_700_000_000_000, [9; 10]);
    let (status, missing) =
        h.call(Method::GET, &format!("/v1/files/{missing_id}/download"), Some(&h.token(&mallory)), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(theirs, missing);
    assert_eq!(theirs["error"], "not_found");

    // Malformed ids are just as unknown.
    for id in ["..%2F..%2Fetc", "not-a-uuid", "0000"] {
        let (status, _) = h.call(Method::GET, &format!("/v1/files/{id}/download"), Some(&h.token(&alice)), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
    }
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn without_a_valid_token_nothing_happens() {
    let h = Harness::new(presign::router, Options::default()).await;
    let user = unique_user("anon");
    let body = json!({"filename": "a.jpg", "contentType": "image/jpeg", "size": 10});
    let stranger = matbakh_api::dev_keys::DevKey::generate()
        .unwrap()
        .mint(&user, testkit::ISSUER, testkit::AUDIENCE, 600)
        .unwrap();
    let expired = h.key.mint(&user, testkit::ISSUER, testkit::AUDIENCE, -600).unwrap();
    for token in [None, Some("garbage"), Some(stranger.as_str()), Some(expired.as_str())] {
        let (status, err) = h.call(Method::POST, "/v1/uploads", token, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(err["error"], "unauthorized");
    }
    assert_eq!(h.file_rows(&user).await, 0);
    assert_eq!(h.usage(&user).await.charged, 0);
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn bad_requests_get_a_clear_error_and_change_nothing() {
    let h = Harness::new(presign::router, Options::default()).await;
    let user = unique_user("careless");
    let token = h.token(&user);
    let ok = json!({"filename": "a.jpg", "contentType": "image/jpeg", "size": 10});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(Value, StatusCode, &str, Option<&str>)> = vec![
        (without("filename"), StatusCode::BAD_REQUEST, "invalid_field", Some("filename")),
        (with("filename", json!("\u{200B} ")), StatusCode::BAD_REQUEST, "invalid_field", Some("filename")),
        (with("filename", json!(7)), StatusCode::BAD_REQUEST, "invalid_field", Some("filename")),
        (without("contentType"), StatusCode::BAD_REQUEST, "invalid_field", Some("contentType")),
        (with("contentType", json!("text/html")), StatusCode::UNSUPPORTED_MEDIA_TYPE, "type_not_allowed", None),
        (with("contentType", json!("image/svg+xml")), StatusCode::UNSUPPORTED_MEDIA_TYPE, "type_not_allowed", None),
        (without("size"), StatusCode::BAD_REQUEST, "invalid_field", Some("size")),
        (with("size", json!(-5)), StatusCode::BAD_REQUEST, "invalid_field", Some("size")),
        (with("size", json!("10")), StatusCode::BAD_REQUEST, "invalid_field", Some("size")),
        (with("size", json!(0)), StatusCode::BAD_REQUEST, "invalid_field", Some("size")),
        (with("size", json!(100u64 * 1024 * 1024 + 1)), StatusCode::PAYLOAD_TOO_LARGE, "too_large", None),
        (with("sha256", json!("abc")), StatusCode::BAD_REQUEST, "invalid_field", Some("sha256")),
        (with("owner", json!("someone-else")), StatusCode::BAD_REQUEST, "invalid_field", Some("body")),
        (json!([1, 2]), StatusCode::BAD_REQUEST, "invalid_field", Some("body")),
    ];
    for (body, status, code, field) in cases {
        let (got, err) = h.call(Method::POST, "/v1/uploads", Some(&token), Some(body.clone())).await;
        assert_eq!((got, err["error"].as_str()), (status, Some(code)), "{body} -> {err}");
        assert_eq!(err["field"].as_str(), field, "{body}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // A body that is not JSON at all.
    let req = http::Request::post("/v1/uploads")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::from("{oops"))
        .unwrap();
    let (got, err) = testkit::call_router((h.router)(h.state.clone(), h.auth.clone()), req).await;
    assert_eq!((got, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("body")));

    assert_eq!(h.file_rows(&user).await, 0, "an error path wrote a row");
    assert_eq!(h.usage(&user).await.charged, 0, "an error path moved the quota");

    // An unknown route is a JSON 404 too.
    let (status, err) = h.call(Method::GET, "/v1/nothing-here", Some(&token), None).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn the_quota_is_reserved_up_front_and_never_exceeded() {
    let limits = Limits { user_quota_bytes: 1000, ..Limits::default() };
    let h = Harness::new(presign::router, Options { limits, ..Options::default() }).await;
    let user = unique_user("hoarder");

    let (status, _) = h.grant(&user, "a.png", "image/png", 600).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, err) = h.grant(&user, "b.png", "image/png", 401).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::CONFLICT, Some("quota_exceeded")));
    assert_eq!(h.usage(&user).await.charged, 600, "a refused upload moved the quota");
    assert_eq!(h.file_rows(&user).await, 1, "a refused upload wrote a row");
    let (status, _) = h.grant(&user, "c.png", "image/png", 400).await;
    assert_eq!(status, StatusCode::CREATED, "exactly filling the quota is allowed");
    assert_eq!(h.usage(&user).await.charged, 1000);
    let (status, _) = h.grant(&user, "d.png", "image/png", 1).await;
    assert_eq!(status, StatusCode::CONFLICT, "a full quota takes nothing more");
    // Concurrent requests are serialised by DynamoDB's conditional transaction; moto does
    // not lock its tables, so a race test here would test moto, not this code.
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_download_before_the_upload_arrived_is_refused() {
    let h = Harness::new(presign::router, Options::default()).await;
    let user = unique_user("eager");
    let (_, grant) = h.grant(&user, "later.pdf", "application/pdf", 1234).await;
    let file_id = grant["fileId"].as_str().unwrap();
    let (status, err) =
        h.call(Method::GET, &format!("/v1/files/{file_id}/download"), Some(&h.token(&user)), None).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::CONFLICT, Some("upload_incomplete")));
    let (status, err) =
        h.call(Method::GET, &format!("/v1/files/{file_id}/download?inline=yes"), Some(&h.token(&user)), None).await;
    assert_eq!((status, err["field"].as_str()), (StatusCode::BAD_REQUEST, Some("inline")));
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn grants_expire_when_the_clock_says_so() {
    let now = time::macros::datetime!(2026-03-01 12:00:00 UTC);
    let h = Harness::new(presign::router, Options { clock: Arc::new(FixedClock(now)), ..Options::default() }).await;
    let user = unique_user("timely");
    let (status, grant) = h.grant(&user, "a.jpg", "image/jpeg", 10).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(grant["expiresAt"], "2026-03-01T12:15:00Z");
    let row = h.state.table.get_file(FileId::parse(grant["fileId"].as_str().unwrap()).unwrap()).await.unwrap().unwrap();
    assert_eq!(row.expires_at, Some(now + Limits::default().pending_ttl));
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn the_grants_budget_is_counted_in_the_table_and_forgotten_after_its_window() {
    let mut limits = Limits::default();
    limits.budgets.upload_grants.requests = 2;
    let now = time::macros::datetime!(2026-03-01 12:00:20 UTC);
    let h =
        Harness::new(presign::router, Options { limits, clock: Arc::new(FixedClock(now)), ..Options::default() }).await;
    let user = unique_user("hasty");
    for name in ["a.png", "b.png"] {
        assert_eq!(h.grant(&user, name, "image/png", 10).await.0, StatusCode::CREATED);
    }
    let (status, err) = h.grant(&user, "c.png", "image/png", 10).await;
    assert_eq!((status, err["retryAfter"].as_u64()), (StatusCode::TOO_MANY_REQUESTS, Some(40)), "{err}");
    assert_eq!(h.file_rows(&user).await, 2, "a refused grant wrote a row");
    assert_eq!(h.usage(&user).await.charged, 20, "a refused grant moved the quota");
    // the counter is one item, kept until its window ends (DynamoDB's TTL removes it)
    let item = h
        .dynamo
        .get_item()
        .table_name(&h.table_name)
        .key("pk", AttributeValue::S(format!("USER#{user}")))
        .key("sk", AttributeValue::S(format!("BUDGET#upload-grants#{}", now.unix_timestamp() - 20)))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["requests"], AttributeValue::N("2".into()));
    assert_eq!(item["ttl"], AttributeValue::N((now.unix_timestamp() + 40).to_string()));
}
