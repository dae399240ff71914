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

/// The indexer with the default settings.
fn ix(h: &Harness) -> indexer::Indexer {
    indexer::Indexer::new(h.state.clone(), |_| None).unwrap()
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
        let response = indexer::handle(&ix(&h), event(&[("m1", created(&key, photo.len()))])).await;
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
    let response = indexer::handle(&ix(&h), event(&[("m1", created(&key, photo.len()))])).await;
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
    let response = indexer::handle(&ix(&h), event(&[("m1", created(&key, photo.len()))])).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.state.store.head_version(&key).await.unwrap(), None, "the object stayed");
    let row = h.state.table.get_file(file_id(&key)).await.unwrap().unwrap();
    assert_eq!(row.status, FileStatus::Quarantined);
    assert_eq!(h.usage(&user).await.charged, 0);
    // A redelivery finds nothing left to do.
    let response = indexer::handle(&ix(&h), event(&[("m1", created(&key, photo.len()))])).await;
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
    let response = indexer::handle(&ix(&h), batch).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["bad"]);
    assert_eq!(h.usage(&user).await.reserved, 0, "the good record in the same batch was settled");
}

/// A single upload through the presign API (declared size, reserved) of `bytes` as `name`.
async fn presigned(h: &Harness, user: &str, name: &str, bytes: Vec<u8>) -> String {
    let (status, grant) = h.grant(user, name, "image/jpeg", bytes.len()).await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    assert!(accepted(&browser_upload(&grant, name, bytes, |_| {}).await));
    grant["key"].as_str().unwrap().to_owned()
}

async fn attr(h: &Harness, key: &str, name: &str) -> Option<testkit::AttributeValue> {
    h.file_item(file_id(key)).await?.get(name).cloned()
}

#[tokio::test]
async fn content_is_hashed_once_with_exif_tokens_and_duplicates() {
    let h = Harness::new(presign::router, Options::default()).await;
    let (alice, bob) = (unique_user("exif"), unique_user("other"));
    let (_, phone) = corpus("photos/phone-13mp.jpg");
    let first = presigned(&h, &alice, "Urlaub Straße 1.jpg", phone.clone()).await;
    let again = presigned(&h, &alice, "copy of it.jpg", phone.clone()).await;
    let bobs = presigned(&h, &bob, "same bytes.jpg", phone.clone()).await;
    for (i, key) in [&first, &again, &bobs].into_iter().enumerate() {
        let response = indexer::handle(&ix(&h), event(&[("m", created(key, phone.len()))])).await;
        assert!(response.batch_item_failures.is_empty(), "{i}");
    }
    let row = h.state.table.get_file(file_id(&first)).await.unwrap().unwrap();
    assert_eq!(row.sha256, Some(matbakh_core::ids::Sha256::of(&phone)));
    let exif = attr(&h, &first, "exif").await.unwrap();
    let exif = exif.as_m().unwrap();
    assert!(exif["cameraMake"].as_s().is_ok_and(|m| !m.is_empty()), "{exif:?}");
    assert_eq!(exif["hadGps"].as_bool().ok(), Some(&true));
    assert!(!exif.contains_key("location"), "a position stored without the setting: {exif:?}");
    let tokens = attr(&h, &first, "tokens").await.unwrap();
    let mut tokens = tokens.as_ss().unwrap().clone();
    tokens.sort();
    assert_eq!(tokens, ["1", "jpg", "strasse", "urlaub"]);
    // The words are in the owner's search index: a prefix finds the file, for her only.
    let search = |q: &str| matbakh_core::listing::ListQuery::parse(&[("q".to_owned(), q.to_owned())]).unwrap();
    let owner = matbakh_core::ids::UserId::parse(&alice).unwrap();
    let (found, _) = h.state.table.list_files(&owner, &search("STRAS")).await.unwrap();
    assert_eq!(found.iter().map(|d| d.record.file_id).collect::<Vec<_>>(), [file_id(&first)]);
    let bob_id = matbakh_core::ids::UserId::parse(&bob).unwrap();
    assert!(h.state.table.list_files(&bob_id, &search("urlaub")).await.unwrap().0.is_empty());
    assert_eq!(attr(&h, &first, "sniffedType").await.unwrap().as_s().unwrap(), "image/jpeg");
    // Alice's second copy points at her first; Bob's identical bytes are his own business.
    assert_eq!(attr(&h, &first, "duplicateOf").await, None);
    let dup = attr(&h, &again, "duplicateOf").await.unwrap();
    assert_eq!(dup.as_s().unwrap(), &file_id(&first).to_string());
    assert_eq!(attr(&h, &bobs, "duplicateOf").await, None);
    // An older event never overwrites what a newer one wrote.
    let facts = matbakh_core::metadata::ContentFacts {
        sha256: matbakh_core::ids::Sha256::of(b"stale"),
        etag: None,
        version_id: None,
        sniffed_type: None,
        exif: None,
        tokens: vec![],
        duplicate_of: None,
    };
    let id = file_id(&first);
    assert!(h.state.table.record_content(id, &facts, Some("t:2026-11-28T10:00:00.000Z")).await.unwrap());
    assert!(!h.state.table.record_content(id, &facts, Some("t:2026-11-28T09:59:59.999Z")).await.unwrap());
}

#[tokio::test]
async fn a_gps_position_is_kept_only_where_the_deployment_opts_in() {
    let h = Harness::new(presign::router, Options::default()).await;
    let user = unique_user("gps");
    let (_, photo) = corpus("photos/ladybird.jpg");
    // Sydney Opera House, south and east: both signs matter.
    let tagged = testkit::with_gps_position(&photo, -33.856_784, 151.215_297);
    let default = presigned(&h, &user, "kept private.jpg", tagged.clone()).await;
    let opted_in = presigned(&h, &user, "on the map.jpg", tagged.clone()).await;
    indexer::handle(&ix(&h), event(&[("a", created(&default, tagged.len()))])).await;
    let map = indexer::Indexer::new(h.state.clone(), |name| (name == "STORE_GPS_LOCATION").then(|| "true".into()));
    indexer::handle(&map.unwrap(), event(&[("b", created(&opted_in, tagged.len()))])).await;

    let exif = attr(&h, &default, "exif").await.unwrap();
    let exif = exif.as_m().unwrap();
    assert_eq!(exif["hadGps"].as_bool().ok(), Some(&true));
    assert!(!exif.contains_key("location"), "{exif:?}");

    let exif = attr(&h, &opted_in, "exif").await.unwrap();
    let exif = exif.as_m().unwrap();
    let at = exif["location"].as_m().unwrap();
    let deg = |k: &str| at[k].as_n().unwrap().parse::<f64>().unwrap();
    assert!((deg("lat") + 33.856_784).abs() < 1e-6 && (deg("lon") - 151.215_297).abs() < 1e-6, "{at:?}");

    let bad = indexer::Indexer::new(h.state.clone(), |_| Some("yes".into()));
    assert!(bad.is_err_and(|e| e.contains("STORE_GPS_LOCATION")));
}

fn removed(key: &str, name: &str) -> String {
    let s3 = json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": name,
        "eventTime": "2026-11-28T12:00:00.000Z",
        "s3": {"bucket": {"name": "b"}, "object": {"key": key.replace('/', "%2F").replace(' ', "+")}}}]});
    json!({"Type": "Notification", "Message": s3.to_string()}).to_string()
}

#[tokio::test]
async fn deletes_give_the_bytes_back_and_a_permanent_one_takes_the_variants() {
    let h = Harness::new(presign::router, Options::default()).await;
    let user = unique_user("deleter");
    let (name, photo) = corpus("photos/ladybird.jpg");
    let key = presigned(&h, &user, &name, photo.clone()).await;
    indexer::handle(&ix(&h), event(&[("c", created(&key, photo.len()))])).await;
    assert_eq!(h.usage(&user).await.charged, photo.len() as u64);
    let id = file_id(&key);
    let variant = matbakh_core::ids::ObjectKey::variant(id, 320, "webp");
    h.state.store.put_derived(&variant, b"fake".to_vec(), "image/webp").await.unwrap();

    // A delete event while the object is still there (e.g. an older version removed): nothing.
    indexer::handle(&ix(&h), event(&[("r0", removed(&key, "ObjectRemoved:Delete"))])).await;
    assert_eq!(h.state.table.get_file(id).await.unwrap().unwrap().status, FileStatus::Pending);

    // The owner deletes it: a delete marker on the versioned bucket.
    h.state.store.delete_version(&key, None).await.unwrap();
    let response = indexer::handle(&ix(&h), event(&[("r1", removed(&key, "ObjectRemoved:DeleteMarkerCreated"))])).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.state.table.get_file(id).await.unwrap().unwrap().status, FileStatus::Deleted);
    assert_eq!(h.usage(&user).await.charged, 0, "the bytes were not given back");
    assert!(h.state.store.head_version(variant.as_str()).await.unwrap().is_some(), "variants stay while restorable");

    // The retention window ends: the versions go for good, and the variants with them.
    indexer::handle(&ix(&h), event(&[("r2", removed(&key, "ObjectRemoved:Delete"))])).await;
    assert!(h.state.store.head_version(variant.as_str()).await.unwrap().is_none());
    assert_eq!(h.usage(&user).await.charged, 0, "given back twice");
}

#[tokio::test]
async fn removing_a_quarantined_file_is_a_system_move_not_a_delete() {
    let h = Harness::new(presign::router, Options::default()).await;
    let user = unique_user("moved");
    let (name, photo) = corpus("photos/dune.jpg");
    let key = presigned(&h, &user, &name, photo.clone()).await;
    let id = file_id(&key);
    assert!(h.state.table.quarantine(id, "declared image/jpeg, but the bytes are a test").await.unwrap());
    h.state.store.delete_version(&key, None).await.unwrap();
    indexer::handle(&ix(&h), event(&[("r", removed(&key, "ObjectRemoved:Delete"))])).await;
    let row = h.state.table.get_file(id).await.unwrap().unwrap();
    assert_eq!(row.status, FileStatus::Quarantined);
    assert_eq!(h.usage(&user).await.charged, 0);
}

/// Transform results made from an original leave when it changes (a new version) or goes, so the
/// CDN's S3-first origin never serves them for other bytes; other originals' results stay.
#[tokio::test]
async fn a_changed_or_deleted_original_takes_its_transform_results_along() {
    let h = Harness::new(presign::router, Options::default()).await;
    let user = unique_user("results");
    let (_, photo) = corpus("photos/ladybird.jpg");
    let key = presigned(&h, &user, "a.jpg", photo.clone()).await;
    let other = presigned(&h, &user, "b.jpg", photo.clone()).await;
    let s3 = h.state.store.client();
    let bucket = h.state.store.bucket();
    let result = |k: &str, name: &str| format!("results/{k}/e1/{name}");
    let put = |k: String| async move {
        s3.put_object().bucket(bucket).key(k).body(b"x".to_vec().into()).send().await.unwrap()
    };
    let exists = |k: String| async move { s3.head_object().bucket(bucket).key(k).send().await.is_ok() };
    for k in [result(&key, "w:100.webp"), result(&key, "_.avif"), result(&other, "w:100.webp")] {
        put(k).await;
    }
    // A new version of the original arrives (an overwrite).
    indexer::handle(&ix(&h), event(&[("c", created(&key, photo.len()))])).await;
    assert!(!exists(result(&key, "w:100.webp")).await && !exists(result(&key, "_.avif")).await);
    assert!(exists(result(&other, "w:100.webp")).await, "another original's results stay");
    // Made again, then the original is deleted (a delete marker): gone again.
    put(result(&key, "w:100.webp")).await;
    indexer::handle(&ix(&h), event(&[("d", removed(&key, "ObjectRemoved:DeleteMarkerCreated"))])).await;
    assert!(!exists(result(&key, "w:100.webp")).await);
}
