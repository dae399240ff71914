//! The indexer settles uploads from real object events: the sizes and quotas the API granted
//! become the bytes that arrived, and what breaks its grant is removed.

use http::StatusCode;
use matbakh_core::ids::FileId;
use matbakh_core::limits::Limits;
use matbakh_core::metadata::FileStatus;
use serde_json::json;
use testkit::{
    Harness, Options, accepted, browser_upload, corpus, object_created as created, sqs_batch as event, unique_user,
};

/// Asks for a single upload through the sign route (declared size: reserved; without: a policy
/// range, nothing reserved) and posts `bytes` with it.
async fn upload(h: &Harness, user: &str, name: &str, declared: Option<usize>, bytes: Vec<u8>) -> String {
    let mut req = json!({"method": "PUT", "key": format!("r-{name}"), "contentType": "image/jpeg"});
    if let Some(size) = declared {
        req["size"] = json!(size);
    }
    let (status, signed) = testkit::call_router(
        multipart::router(h.state.clone()),
        http::Request::post("/v1/uploads/sign")
            .header("authorization", format!("Bearer {}", h.token(user)))
            .body(axum_body(&req.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let grant = json!({"upload": {"url": signed["url"], "fields": signed["fields"]}});
    // moto does not enforce the policy's size range; the indexer has to.
    assert!(accepted(&browser_upload(&grant, name, bytes, |_| {}).await));
    signed["key"].as_str().unwrap().to_owned()
}

fn axum_body(s: &str) -> axum::body::Body {
    axum::body::Body::from(s.to_owned())
}

fn file_id(key: &str) -> FileId {
    indexer::file_id_of(key).unwrap()
}

#[tokio::test]
async fn a_declared_upload_settles_once() {
    let h = Harness::new(multipart::router, Options::default()).await;
    let user = unique_user("settle");
    let (name, photo) = corpus("photos/ladybird.jpg");
    let key = upload(&h, &user, &name, Some(photo.len()), photo.clone()).await;
    let before = h.usage(&user).await;
    assert_eq!((before.charged, before.reserved), (photo.len() as u64, photo.len() as u64));

    for _ in 0..2 {
        let response = indexer::handle(&h.state, event(&[("m1", created(&key, photo.len()))])).await;
        assert!(response.batch_item_failures.is_empty());
        let after = h.usage(&user).await;
        assert_eq!((after.charged, after.reserved), (photo.len() as u64, 0), "settled, and only once");
    }
    let row = h.state.table.get_file(file_id(&key)).await.unwrap().unwrap();
    assert_eq!((row.size, row.expires_at), (photo.len() as u64, None));
}

#[tokio::test]
async fn an_unreserved_upload_is_charged_what_arrived() {
    let h = Harness::new(multipart::router, Options::default()).await;
    let user = unique_user("ranged");
    let (name, photo) = corpus("photos/panasonic-orientation6.jpg");
    let key = upload(&h, &user, &name, None, photo.clone()).await;
    assert_eq!(h.usage(&user).await.charged, 0, "a ranged grant reserves nothing");
    let response = indexer::handle(&h.state, event(&[("m1", created(&key, photo.len()))])).await;
    assert!(response.batch_item_failures.is_empty());
    let usage = h.usage(&user).await;
    assert_eq!((usage.charged, usage.reserved), (photo.len() as u64, 0));
    assert_eq!(h.state.table.get_file(file_id(&key)).await.unwrap().unwrap().size, photo.len() as u64);
}

#[tokio::test]
async fn an_upload_past_its_grant_is_removed_and_quarantined() {
    let (name, photo) = corpus("photos/ladybird.jpg");
    // The quota leaves room for less than the photo: the policy range says so, moto ignores it.
    let limits = Limits { user_quota_bytes: photo.len() as u64 / 2, ..Limits::default() };
    let h = Harness::new(multipart::router, Options { limits, ..Options::default() }).await;
    let user = unique_user("greedy");
    let key = upload(&h, &user, &name, None, photo.clone()).await;
    let response = indexer::handle(&h.state, event(&[("m1", created(&key, photo.len()))])).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.state.store.head_version(&key).await.unwrap(), None, "the object stayed");
    let row = h.state.table.get_file(file_id(&key)).await.unwrap().unwrap();
    assert_eq!(row.status, FileStatus::Quarantined);
    assert_eq!(h.usage(&user).await.charged, 0);
    // A redelivery finds nothing left to do.
    let response = indexer::handle(&h.state, event(&[("m1", created(&key, photo.len()))])).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.usage(&user).await.charged, 0);
}

#[tokio::test]
async fn a_bad_message_is_reported_and_the_rest_of_the_batch_is_done() {
    let h = Harness::new(multipart::router, Options::default()).await;
    let user = unique_user("batch");
    let (name, photo) = corpus("photos/panasonic-orientation6.jpg");
    let key = upload(&h, &user, &name, Some(photo.len()), photo.clone()).await;
    let test_event =
        json!({"Type": "Notification", "Message": json!({"Event": "s3:TestEvent"}).to_string()}).to_string();
    let batch = event(&[("bad", "not json".to_owned()), ("good", created(&key, photo.len())), ("test", test_event)]);
    let response = indexer::handle(&h.state, batch).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["bad"]);
    assert_eq!(h.usage(&user).await.reserved, 0, "the good record in the same batch was settled");
}
