//! The indexer settles uploads from real object events: the sizes and quotas the API granted
//! become the bytes that arrived, and what breaks its grant is removed.

use http::StatusCode;
use matbakh_core::ids::{FileId, ObjectKey, Sha256};
use matbakh_core::limits::Limits;
use matbakh_core::metadata::FileStatus;
use serde_json::json;
use testkit::{
    Harness, Options, accepted, browser_upload, corpus, object_created as created, sqs_batch as event, unique_user,
};

/// Asks for a single upload through the sign route (declared size: reserved; without: a policy
/// range, nothing reserved) and posts `bytes` with it.
async fn upload(h: &Harness, user: &str, name: &str, declared: Option<usize>, bytes: Vec<u8>) -> String {
    let (key, grant) = sign_put(h, user, name, declared).await;
    // moto does not enforce the policy's size range; the indexer has to.
    assert!(accepted(&browser_upload(&grant, name, bytes, |_| {}).await));
    key
}

/// A single upload's grant through the sign route: the key and `{upload: {url, fields}}`.
async fn sign_put(h: &Harness, user: &str, name: &str, declared: Option<usize>) -> (String, serde_json::Value) {
    let mut req = json!({"method": "PUT", "key": format!("r-{name}"), "contentType": "image/jpeg"});
    if let Some(size) = declared {
        req["size"] = json!(size);
    }
    let (status, signed) = testkit::call_router(
        multipart::router(h.state.clone(), h.auth.clone()),
        http::Request::post("/v1/uploads/sign")
            .header("authorization", format!("Bearer {}", h.token(user)))
            .body(axum_body(&req.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let grant = json!({"upload": {"url": signed["url"], "fields": signed["fields"]}});
    (signed["key"].as_str().unwrap().to_owned(), grant)
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
#[ignore = "needs the local AWS stack: scripts/test runs it"]
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
#[ignore = "needs the local AWS stack: scripts/test runs it"]
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
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn an_upload_past_its_grant_is_removed_and_quarantined() {
    let (name, photo) = corpus("photos/ladybird.jpg");
    // The quota leaves room for less than the photo: the policy range says so, moto ignores it.
    let limits = Limits { user_quota_bytes: photo.len() as u64 / 2, ..Limits::default() };
    let h = Harness::new(multipart::router, Options { limits, ..Options::default() }).await;
    let user = unique_user("greedy");
    let key = upload(&h, &user, &name, None, photo.clone()).await;
    let response = indexer::handle(&ix(&h), event(&[("m1", created(&key, photo.len()))])).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        h.state.store.head_version(&ObjectKey::from_stored(key.clone())).await.unwrap(),
        None,
        "the object stayed"
    );
    let row = h.state.table.get_file(file_id(&key)).await.unwrap().unwrap();
    assert_eq!(row.status, FileStatus::Quarantined);
    assert_eq!(h.usage(&user).await.charged, 0);
    // A redelivery finds nothing left to do.
    let response = indexer::handle(&ix(&h), event(&[("m1", created(&key, photo.len()))])).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.usage(&user).await.charged, 0);
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
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
#[ignore = "needs the local AWS stack: scripts/test runs it"]
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
#[ignore = "needs the local AWS stack: scripts/test runs it"]
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

/// A soft delete keeps the bytes counted while the versions stay restorable (security review
/// 16.6: else delete/restore cycles park unlimited data); the purge gives them back and takes
/// the variants.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn deleted_bytes_count_until_purged_and_the_purge_takes_the_variants() {
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
    h.state.store.delete_version(&ObjectKey::from_stored(key.clone()), None).await.unwrap();
    let response = indexer::handle(&ix(&h), event(&[("r1", removed(&key, "ObjectRemoved:DeleteMarkerCreated"))])).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.state.table.get_file(id).await.unwrap().unwrap().status, FileStatus::Deleted);
    let held = h.usage(&user).await;
    assert_eq!((held.charged, held.deleted), (photo.len() as u64, photo.len() as u64), "restorable bytes still count");
    assert!(h.state.store.head_version(&variant).await.unwrap().is_some(), "variants stay while restorable");

    // The retention window ends: the versions go for good, and the variants with them.
    h.state.store.delete_prefix(&key).await.unwrap();
    indexer::handle(&ix(&h), event(&[("r2", removed(&key, "ObjectRemoved:Delete"))])).await;
    assert!(h.state.store.head_version(&variant).await.unwrap().is_none());
    let purged = h.usage(&user).await;
    assert_eq!((purged.charged, purged.deleted), (0, 0), "the purge gave the bytes back");
    // A redelivery gives nothing back twice.
    indexer::handle(&ix(&h), event(&[("r2", removed(&key, "LifecycleExpiration:Delete"))])).await;
    assert_eq!(h.usage(&user).await, purged);
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn removing_a_quarantined_file_is_a_system_move_not_a_delete() {
    let h = Harness::new(presign::router, Options::default()).await;
    let user = unique_user("moved");
    let (name, photo) = corpus("photos/dune.jpg");
    let key = presigned(&h, &user, &name, photo.clone()).await;
    let id = file_id(&key);
    assert!(h.state.table.quarantine(id, "declared image/jpeg, but the bytes are a test").await.unwrap());
    h.state.store.delete_version(&ObjectKey::from_stored(key.clone()), None).await.unwrap();
    indexer::handle(&ix(&h), event(&[("r", removed(&key, "ObjectRemoved:Delete"))])).await;
    let row = h.state.table.get_file(id).await.unwrap().unwrap();
    assert_eq!(row.status, FileStatus::Quarantined);
    assert_eq!(h.usage(&user).await.charged, 0);
}

/// Transform results made from an original leave when it changes (a new version) or goes, so the
/// CDN's S3-first origin never serves them for other bytes; other originals' results stay.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
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

/// Every version (not delete marker) the bucket holds at exactly `key`.
async fn versions(h: &Harness, key: &str) -> Vec<String> {
    let out = h.state.store.client().list_object_versions().bucket(h.state.store.bucket()).prefix(key).send().await;
    out.unwrap()
        .versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .map(|v| v.version_id().unwrap_or("null").to_owned())
        .collect()
}

/// The SHA-256 of what the owner's download link (`GET /v1/files/{fileId}/download`) serves.
async fn downloaded(h: &Harness, user: &str, key: &str) -> Sha256 {
    let req = http::Request::get(format!("/v1/files/{}/download", file_id(key)))
        .header("authorization", format!("Bearer {}", h.token(user)))
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, link) = testkit::call_router(presign::router(h.state.clone(), h.auth.clone()), req).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let resp = testkit::http_client().get(link["url"].as_str().unwrap()).send().await.unwrap();
    assert!(resp.status().is_success());
    Sha256::of(&resp.bytes().await.unwrap())
}

/// Security review 16.1: a POST policy without a size allows 1 byte up to the free quota and
/// stays valid for its whole lifetime. Posted again after the first file was settled, the
/// second object must never be served, counted or kept.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_replayed_upload_policy_is_removed_and_never_served() {
    let h = Harness::new(multipart::router, Options::default()).await;
    let user = unique_user("replay");
    let (name, small) = corpus("photos/ladybird.jpg");
    let (_, large) = corpus("photos/phone-13mp.jpg");
    assert!(large.len() > 2 * small.len());
    let (key, grant) = sign_put(&h, &user, &name, None).await;
    assert!(accepted(&browser_upload(&grant, &name, small.clone(), |_| {}).await));
    assert!(indexer::handle(&ix(&h), event(&[("1", created(&key, small.len()))])).await.batch_item_failures.is_empty());
    let settled = h.usage(&user).await;
    assert_eq!(settled.charged, small.len() as u64);
    let first = versions(&h, &key).await;
    assert_eq!(first.len(), 1);

    // The same fields again, with other bytes: S3 takes them (the policy is still valid).
    assert!(accepted(&browser_upload(&grant, &name, large.clone(), |_| {}).await));
    assert_eq!(versions(&h, &key).await.len(), 2, "the replay reached the bucket");
    let response = indexer::handle(&ix(&h), event(&[("2", created(&key, large.len()))])).await;
    assert!(response.batch_item_failures.is_empty());

    assert_eq!(versions(&h, &key).await, first, "only the accepted version stays");
    assert_eq!(h.usage(&user).await, settled, "the quota did not move");
    let row = h.state.table.get_file(file_id(&key)).await.unwrap().unwrap();
    assert_eq!((row.size, row.version_id.as_ref()), (small.len() as u64, first.first()));
    assert_eq!(downloaded(&h, &user, &key).await, Sha256::of(&small), "the download serves the accepted bytes");
}

/// Security review 16.1, with a declared size: other bytes of the same size through the same
/// policy (after the first file was checked) are removed; the row keeps the first file's facts
/// and every read names the accepted version.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn same_size_bytes_posted_again_do_not_replace_a_checked_file() {
    let h = Harness::new(multipart::router, Options::default()).await;
    let user = unique_user("swap");
    let (name, photo) = corpus("photos/ladybird.jpg");
    let (key, grant) = sign_put(&h, &user, &name, Some(photo.len())).await;
    assert!(accepted(&browser_upload(&grant, &name, photo.clone(), |_| {}).await));
    indexer::handle(&ix(&h), event(&[("1", created(&key, photo.len()))])).await;
    let sha = h.state.table.get_file(file_id(&key)).await.unwrap().unwrap().sha256;
    assert_eq!(sha, Some(matbakh_core::ids::Sha256::of(&photo)));

    let mut page = b"<html><script>alert(document.cookie)</script>".to_vec();
    page.resize(photo.len(), b' ');
    assert!(accepted(&browser_upload(&grant, &name, page.clone(), |_| {}).await));
    // Even read before the indexer saw the replay, a download names the accepted version.
    assert_eq!(downloaded(&h, &user, &key).await, Sha256::of(&photo));
    indexer::handle(&ix(&h), event(&[("2", created(&key, page.len()))])).await;
    assert_eq!(versions(&h, &key).await.len(), 1);
    let row = h.state.table.get_file(file_id(&key)).await.unwrap().unwrap();
    assert_eq!(row.sha256, sha, "the row still describes the checked bytes");
    assert_eq!(downloaded(&h, &user, &key).await, Sha256::of(&photo));
    assert_eq!(h.usage(&user).await.charged, photo.len() as u64);
}

/// Security review 16.1 through signRequest multipart: the presigned CreateMultipartUpload URL
/// posted again makes a new upload on the same key; once the key's object arrived, no part of
/// that upload is signed, so nothing can complete it.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_replayed_create_multipart_url_cannot_write_a_settled_key() {
    let h = Harness::new(multipart::router, Options::default()).await;
    let user = unique_user("mp-replay");
    let (_, photo) = corpus("photos/ladybird.jpg");
    let token = h.token(&user);
    let sign = |req: serde_json::Value| h.call(http::Method::POST, "/v1/uploads/sign", Some(&token), Some(req));
    let (status, created_url) = sign(json!({"method": "POST", "key": "a.jpg", "size": photo.len()})).await;
    assert_eq!(status, StatusCode::OK, "{created_url}");
    let key = created_url["key"].as_str().unwrap().to_owned();
    let client = testkit::http_client();
    let create = || async {
        let xml = client.post(created_url["url"].as_str().unwrap()).send().await.unwrap().text().await.unwrap();
        testkit::xml_value(&xml, "UploadId")
    };
    let upload_id = create().await;
    let part = json!({"method": "PUT", "key": key, "uploadId": upload_id, "partNumber": 1});
    let (_, part_url) = sign(part).await;
    let put = client.put(part_url["url"].as_str().unwrap()).body(photo.clone()).send().await.unwrap();
    let etag = put.headers()["etag"].to_str().unwrap().to_owned();
    // While the first upload is under way, a second one on the key is not bound either.
    let second = create().await;
    let (status, _) = sign(json!({"method": "PUT", "key": key, "uploadId": second, "partNumber": 1})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, done) = sign(json!({"method": "POST", "key": key, "uploadId": upload_id})).await;
    let body = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    );
    assert!(client.post(done["url"].as_str().unwrap()).body(body).send().await.unwrap().status().is_success());
    indexer::handle(&ix(&h), event(&[("1", created(&key, photo.len()))])).await;
    // Settling ended the session: its open-upload place is free again.
    assert_eq!(h.usage(&user).await.open_uploads, 0);
    assert_eq!(h.usage(&user).await.charged, photo.len() as u64);

    let replayed = create().await;
    assert_ne!(replayed, upload_id, "S3 took the replayed create");
    let (status, refused) = sign(json!({"method": "PUT", "key": key, "uploadId": replayed, "partNumber": 1})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"], "upload_settled");
    assert_eq!(versions(&h, &key).await.len(), 1);
}

/// The indexer with the CDN `cdn` (security review 16.4).
fn ix_with_cdn(h: &Harness, cdn: &matbakh_aws::cdn::Cdn) -> indexer::Indexer {
    let mut ix = ix(h);
    ix.services.files_edge = Some(cdn.clone());
    ix
}

/// A transform result made from `key`, stored where the transformer stores it.
async fn put_result(h: &Harness, key: &str) -> String {
    let result = format!("results/{key}/e1/rt:fill,w:300.webp");
    let s3 = h.state.store.client();
    s3.put_object().bucket(h.state.store.bucket()).key(&result).body(b"x".to_vec().into()).send().await.unwrap();
    result
}

/// A sub with a character the edge encodes (Auth0's `|`), and how the edge spells it.
fn edge_user(tag: &str) -> (String, String) {
    let user = format!("auth0|{}", unique_user(tag));
    let spelled = user.replace('|', "%7C");
    (user, spelled)
}

/// Security review 16.4: an overwritten original's results are invalidated at the CDN,
/// one wildcard for the file as the edge spells it; a file without results, or a redelivery
/// that finds them gone, invalidates nothing.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn an_overwrite_invalidates_the_files_results_at_the_edge() {
    let h = Harness::new(presign::router, Options::default()).await;
    let cdn = testkit::distribution().await;
    let (user, sub) = edge_user("edge-overwrite");
    let (_, photo) = corpus("photos/ladybird.jpg");
    let key = presigned(&h, &user, "Straße (1).jpg", photo.clone()).await;
    let response = indexer::handle(&ix_with_cdn(&h, &cdn), event(&[("c1", created(&key, photo.len()))])).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(testkit::invalidations(&cdn).await.is_empty(), "a new file has no results to invalidate");

    let result = put_result(&h, &key).await;
    for _ in 0..2 {
        let response = indexer::handle(&ix_with_cdn(&h, &cdn), event(&[("c2", created(&key, photo.len()))])).await;
        assert!(response.batch_item_failures.is_empty());
        assert!(!h.state.store.holds_any(&result).await.unwrap());
        let want = [[format!("/results/users/{sub}/{}/*", file_id(&key))]];
        assert_eq!(testkit::invalidations(&cdn).await, want, "once, and not again on a redelivery");
    }
}

/// Security review 16.4: a delete (a delete marker) invalidates the file's results at the
/// edge; when the variants go for good (the retention window ended), their paths at the files
/// CDN are invalidated too.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_deleted_file_is_invalidated_at_the_edge_and_its_variants_when_they_go() {
    let mut h = Harness::new(presign::router, Options::default()).await;
    let cdn = testkit::distribution().await;
    // one CDN for the results, the variants and the public copies, as deployed
    h.state.files_cdn = Some(matbakh_core::delivery::FilesCdn::new("https://cdn.files.test/media", None));
    h.state.files_edge = Some(cdn.clone());
    let ix = ix_with_cdn(&h, &cdn);
    let (user, sub) = edge_user("edge-delete");
    let (name, photo) = corpus("photos/ladybird.jpg");
    let key = presigned(&h, &user, &name, photo.clone()).await;
    indexer::handle(&ix, event(&[("c", created(&key, photo.len()))])).await;
    let id = file_id(&key);
    let variant = matbakh_core::ids::ObjectKey::variant(id, 320, "webp");
    h.state.store.put_derived(&variant, b"fake".to_vec(), "image/webp").await.unwrap();
    put_result(&h, &key).await;

    h.state.store.delete_version(&ObjectKey::from_stored(key.clone()), None).await.unwrap();
    let response = indexer::handle(&ix, event(&[("d", removed(&key, "ObjectRemoved:DeleteMarkerCreated"))])).await;
    assert!(response.batch_item_failures.is_empty());
    let results = format!("/results/users/{sub}/{id}/*");
    assert_eq!(testkit::invalidations(&cdn).await, [[results.clone()]], "variants stay while restorable");

    h.state.store.delete_prefix(&key).await.unwrap();
    let response = indexer::handle(&ix, event(&[("p", removed(&key, "ObjectRemoved:Delete"))])).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(h.state.store.head_version(&variant).await.unwrap().is_none());
    let variants = format!("/media/derived/{id}/*");
    assert_eq!(testkit::invalidations(&cdn).await, [[results], [variants]]);
}

/// Security review 16.4: an invalidation that fails fails the record, and the results stay in
/// the bucket until it succeeds, so the redelivered record finds them and invalidates.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_failed_invalidation_comes_back_with_its_record() {
    let h = Harness::new(presign::router, Options::default()).await;
    let (user, sub) = edge_user("edge-retry");
    let (name, photo) = corpus("photos/ladybird.jpg");
    let key = presigned(&h, &user, &name, photo.clone()).await;
    indexer::handle(&ix(&h), event(&[("c", created(&key, photo.len()))])).await;
    let result = put_result(&h, &key).await;
    h.state.store.delete_version(&ObjectKey::from_stored(key.clone()), None).await.unwrap();

    let unreachable = matbakh_aws::cdn::Cdn::new(&testkit::moto_sdk().await, "ENOSUCHDISTRIBUTION");
    let delete = || event(&[("d", removed(&key, "ObjectRemoved:DeleteMarkerCreated"))]);
    let response = indexer::handle(&ix_with_cdn(&h, &unreachable), delete()).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["d"], "the record comes back");
    assert!(h.state.store.holds_any(&result).await.unwrap(), "the results wait for the invalidation");

    let cdn = testkit::distribution().await;
    let response = indexer::handle(&ix_with_cdn(&h, &cdn), delete()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(testkit::invalidations(&cdn).await, [[format!("/results/users/{sub}/{}/*", file_id(&key))]]);
    assert!(!h.state.store.holds_any(&result).await.unwrap());
    assert_eq!(h.state.table.get_file(file_id(&key)).await.unwrap().unwrap().status, FileStatus::Deleted);
}

/// An S3 event about the archive tier for `key` (moto sends none of these: the test plays S3).
fn archive_event(key: &str, name: &str, restored_until: Option<&str>) -> String {
    let mut record = json!({"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": name,
        "eventTime": "2026-12-05T12:00:00.000Z",
        "s3": {"bucket": {"name": "b"}, "object": {"key": key.replace('/', "%2F").replace(' ', "+")}}});
    if let Some(until) = restored_until {
        record["glacierEventData"] = json!({"restoreEventData": {
            "lifecycleRestorationExpiryTime": until, "lifecycleRestoreStorageClass": "GLACIER"}});
    }
    let s3 = json!({ "Records": [record] });
    json!({"Type": "Notification", "Message": s3.to_string()}).to_string()
}

/// The archive tier on moto: the owner's request tags the original, S3's move makes the file
/// ARCHIVED (a download is refused, where a URL would fail at S3), a restore makes it
/// RESTORING, S3's copy makes it READY and readable, the copy's end ARCHIVED again. What moto
/// cannot show: the lifecycle moving an object (the test copies it to GLACIER in place, as the
/// lifecycle's transition would leave it) and S3's events about it (the test sends them).
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn an_original_goes_to_the_archive_tier_and_back() {
    use matbakh_app::audit::Client;
    use matbakh_core::archival::RestoreTier;
    let h = Harness::new(presign::router, Options::default()).await;
    let user = unique_user("archivist");
    let (name, photo) = corpus("photos/ladybird.jpg");
    let at = time::OffsetDateTime::now_utc();
    let id = h.stored_file(&user, &name, "image/jpeg", photo.clone(), at).await;
    let row = h.state.table.get_file(id).await.unwrap().unwrap();
    let (key, owner) = (row.key.as_str().to_owned(), row.owner.clone());
    let (s3, bucket) = (h.state.store.client(), h.state.store.bucket());
    let client = Client { ip: "192.0.2.1".into(), user_agent: "tests".into() };
    let download = format!("/v1/files/{id}/download");

    // The owner asks: the original carries the tags the lifecycle rules filter on.
    let files = h.state.files();
    files.archive(&owner, &client, id).await.unwrap();
    let tags = s3.get_object_tagging().bucket(bucket).key(&key).send().await.unwrap();
    let mut tags: Vec<(&str, &str)> = tags.tag_set().iter().map(|t| (t.key(), t.value())).collect();
    tags.sort();
    assert_eq!(tags, [("archive", "now"), ("type-class", "image")]);

    // The lifecycle's move (played by the test), then S3's event: ARCHIVED.
    let copy = s3.copy_object().bucket(bucket).key(&key).copy_source(format!("{bucket}/{key}"));
    copy.storage_class(aws_sdk_s3::types::StorageClass::Glacier).send().await.unwrap();
    let refused = s3.get_object().bucket(bucket).key(&key).send().await.unwrap_err();
    assert_eq!(refused.into_service_error().meta().code(), Some("InvalidObjectState"), "a URL would fail now");
    let response = indexer::handle(&ix(&h), event(&[("t", archive_event(&key, "LifecycleTransition", None))])).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.state.table.get_file(id).await.unwrap().unwrap().status, FileStatus::Archived);
    let (status, answer) = h.call(http::Method::GET, &download, Some(&h.token(&user)), None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("archived")), "{answer}");

    // The owner restores: S3 (moto) takes the request, the row is RESTORING.
    let view = files.unarchive(&owner, &client, id, RestoreTier::Expedited).await.unwrap();
    assert_eq!(view.status(), "RESTORING");
    let details = h.state.table.file_details(id).await.unwrap().unwrap();
    assert_eq!(details.archival.restore.map(|(tier, _)| tier), Some(RestoreTier::Expedited));

    // S3's copy is there: READY, and the download's URL brings the photograph.
    let until = "2026-12-12T00:00:00.000Z";
    let done = archive_event(&key, "ObjectRestore:Completed", Some(until));
    assert!(indexer::handle(&ix(&h), event(&[("c", done)])).await.batch_item_failures.is_empty());
    let details = h.state.table.file_details(id).await.unwrap().unwrap();
    assert_eq!(details.record.status, FileStatus::Ready);
    assert_eq!(details.archival.restored_until, Some(time::macros::datetime!(2026-12-12 00:00 UTC)));
    let (status, link) = h.call(http::Method::GET, &download, Some(&h.token(&user)), None).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let got = testkit::http_client().get(link["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), photo.as_slice());

    // The copy lapses: ARCHIVED again.
    let lapsed = archive_event(&key, "ObjectRestore:Delete", None);
    assert!(indexer::handle(&ix(&h), event(&[("d", lapsed)])).await.batch_item_failures.is_empty());
    assert_eq!(h.state.table.get_file(id).await.unwrap().unwrap().status, FileStatus::Archived);
}
