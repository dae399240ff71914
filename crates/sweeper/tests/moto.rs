//! The sweeper against moto: uploads that never arrived give their quota back once their grant
//! has lapsed (plus the grace period); arrived and fresh uploads are left alone.

use std::sync::Arc;

use http::{Method, StatusCode};
use matbakh_app::sweep::SweepReport;
use matbakh_aws::Services;
use matbakh_core::clock::FixedClock;
use matbakh_core::ids::FileId;
use matbakh_core::multipart::UploadId;
use serde_json::json;
use sweeper::sweep;
use testkit::{Harness, Options, browser_upload, corpus, http_client, unique_user, xml_value};
use time::{Duration, OffsetDateTime};

fn at(t: OffsetDateTime) -> Arc<FixedClock> {
    Arc::new(FixedClock(t))
}

fn as_of(h: &Harness, t: OffsetDateTime) -> Services {
    Services { clock: at(t), ..h.state.clone() }
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn lapsed_uploads_give_their_quota_back_and_nothing_else_moves() {
    let now = OffsetDateTime::now_utc();
    let then = now - Duration::days(3);
    let single = Harness::new(presign::router, Options { clock: at(then), ..Options::default() }).await;
    let table = Some(single.table_name.clone());
    let multi = Harness::new(multipart::router, Options { clock: at(then), table, ..Options::default() }).await;
    let user = unique_user("lapsed");
    let t = multi.token(&user);
    let (name, photo) = corpus("photos/ladybird.jpg");

    // Three days ago: a single upload granted and never sent,
    let (status, never) = single.grant(&user, "never.jpg", "image/jpeg", photo.len()).await;
    assert_eq!(status, StatusCode::CREATED, "{never}");
    // one sent, whose event was never processed,
    let (_, arrived) = single.grant(&user, "arrived.jpg", "image/jpeg", photo.len()).await;
    let sent = browser_upload(&arrived, &name, photo.clone(), |_| {}).await.unwrap();
    assert!(sent.status().is_success());
    // and a multipart upload with one part of three sent, never completed.
    let body = json!({"filename": "clip.mov", "contentType": "video/quicktime", "size": 20 << 20});
    let (status, session) = multi.call(Method::POST, "/v1/uploads/multipart", Some(&t), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let upload_id = session["uploadId"].as_str().unwrap().to_owned();
    let (_, signed) = multi
        .call(Method::POST, &format!("/v1/uploads/{upload_id}/parts"), Some(&t), Some(json!({"partNumbers": [1]})))
        .await;
    let part = vec![7u8; 8 << 20];
    let put = http_client().put(signed["parts"][0]["url"].as_str().unwrap()).body(part).send().await.unwrap();
    assert!(put.status().is_success());
    // Today: a fresh grant, still valid.
    let fresh_h =
        Harness::new(presign::router, Options { table: Some(single.table_name.clone()), ..Options::default() }).await;
    let (_, fresh) = fresh_h.grant(&user, "fresh.jpg", "image/jpeg", 1000).await;
    let all = 2 * photo.len() as u64 + (20 << 20) + 1000;
    assert_eq!(single.usage(&user).await.charged, all);

    // Within the grace period after the grants lapsed, nothing is touched.
    let lapse = then + single.state.limits.pending_ttl;
    let early = sweep(&as_of(&single, lapse + Duration::minutes(30)), None).await.unwrap();
    assert_eq!(early, SweepReport::default());

    let report = sweep(&as_of(&single, now), None).await.unwrap();
    let released = photo.len() as u64 + (20 << 20);
    assert_eq!(
        report,
        SweepReport {
            examined: 3,
            released: 2,
            released_bytes: released,
            awaiting_event: 1,
            sessions_ended: 0,
            failed: 0
        }
    );

    let usage = single.usage(&user).await;
    assert_eq!((usage.charged, usage.reserved), (all - released, all - released));
    let row = |g: &serde_json::Value| FileId::parse(g["fileId"].as_str().unwrap()).unwrap();
    let table = &single.state.table;
    assert!(table.get_file(row(&never)).await.unwrap().is_none(), "the unsent upload's row stayed");
    assert!(table.get_file(row(&session)).await.unwrap().is_none(), "the multipart row stayed");
    assert!(table.get_file(row(&arrived)).await.unwrap().is_some(), "the arrived upload lost its row");
    assert!(table.get_file(row(&fresh)).await.unwrap().is_some(), "the fresh upload lost its row");
    // The S3 upload is gone and the session says so; the owner no longer sees it as unfinished.
    let key = matbakh_core::ids::ObjectKey::from_stored(session["key"].as_str().unwrap().to_owned());
    let id = UploadId::parse(&upload_id).unwrap();
    assert_eq!(single.state.store.list_parts(&key, &id).await.unwrap(), None);
    let (_, shown) = multi.call(Method::GET, &format!("/v1/uploads/{upload_id}"), Some(&t), None).await;
    assert_eq!(shown["state"], "ABORTED");

    // A second run (or two at once) finds nothing more to give back.
    let again = sweep(&as_of(&single, now), None).await.unwrap();
    assert_eq!(
        again,
        SweepReport { examined: 1, released: 0, released_bytes: 0, awaiting_event: 1, sessions_ended: 0, failed: 0 }
    );
    assert_eq!(single.usage(&user).await.charged, all - released);
}

/// A run pages through the status index after the last row it was given (the cursor is that
/// row's keys in the index), so rows it must leave to the indexer hold up none behind them:
/// pages of two over five lapsed grants give each row once, in the order of one page of all.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn lapsed_rows_page_after_the_last_row_given() {
    let now = OffsetDateTime::now_utc();
    let h = Harness::new(presign::router, Options { clock: at(now - Duration::days(3)), ..Options::default() }).await;
    let user = unique_user("pages");
    for n in 0..5 {
        let (status, grant) = h.grant(&user, &format!("never-{n}.jpg"), "image/jpeg", 1000).await;
        assert_eq!(status, StatusCode::CREATED, "{grant}");
    }
    let table = &h.state.table;
    let (all, none) = table.expired_pending(now, 100, None).await.unwrap();
    assert_eq!((all.len(), none), (5, None));

    let (mut paged, mut sizes, mut after) = (Vec::new(), Vec::new(), None);
    loop {
        let (page, next) = table.expired_pending(now, 2, after.as_ref()).await.unwrap();
        sizes.push(page.len());
        paged.extend(page.into_iter().map(|row| row.file_id));
        match next {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    assert_eq!(paged, all.iter().map(|row| row.file_id).collect::<Vec<_>>());
    assert_eq!(sizes, [2, 2, 1]);
}

/// Security review 16.6: sessions of Uppy's signRequest and Companion modes expire and are swept
/// like REST ones: their S3 uploads (and the parts they hold) are aborted, the sessions end, and a
/// part is no longer signed for them.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn lapsed_sessions_of_every_mode_are_aborted() {
    let now = OffsetDateTime::now_utc();
    let then = now - Duration::days(3);
    let h = Harness::new(multipart::router, Options { clock: at(then), ..Options::default() }).await;
    let user = unique_user("sessions");
    let t = h.token(&user);
    let part = vec![7u8; 8 << 20];

    // signRequest: created, bound by its first part, never completed.
    let size = 9 << 20;
    let (status, created) = h
        .call(Method::POST, "/v1/uploads/sign", Some(&t), Some(json!({"method": "POST", "key": "a.jpg", "size": size})))
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let resp = http_client().post(created["url"].as_str().unwrap()).send().await.unwrap();
    let signed_id = xml_value(&resp.text().await.unwrap(), "UploadId");
    let signed_key = created["key"].as_str().unwrap().to_owned();
    let sign_part = json!({"method": "PUT", "key": signed_key, "uploadId": signed_id, "partNumber": 1});
    let (status, url) = h.call(Method::POST, "/v1/uploads/sign", Some(&t), Some(sign_part.clone())).await;
    assert_eq!(status, StatusCode::OK, "{url}");
    let put = http_client().put(url["url"].as_str().unwrap()).body(part.clone()).send().await.unwrap();
    assert!(put.status().is_success());

    // Companion: created with a token, one part sent, never completed.
    let (_, minted) = h.call(Method::POST, "/v1/upload-tokens", Some(&t), Some(json!({}))).await;
    let endpoint = minted["endpoint"].as_str().unwrap().to_owned();
    let body = json!({"filename": "b.jpg", "type": "image/jpeg", "metadata": {}});
    let (status, companion) = h.call(Method::POST, &format!("{endpoint}/s3/multipart"), None, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{companion}");
    let (companion_id, companion_key) =
        (companion["uploadId"].as_str().unwrap().to_owned(), companion["key"].as_str().unwrap().to_owned());
    let q = format!("key={}", companion_key.replace('/', "%2F"));
    let (status, url) = h.call(Method::GET, &format!("{endpoint}/s3/multipart/{companion_id}/1?{q}"), None, None).await;
    assert_eq!(status, StatusCode::OK, "{url}");
    let put = http_client().put(url["url"].as_str().unwrap()).body(part).send().await.unwrap();
    assert!(put.status().is_success());

    sweep(&as_of(&h, now), None).await.unwrap();

    let store = &h.state.store;
    for (key, id) in [(&signed_key, &signed_id), (&companion_key, &companion_id)] {
        let (key, id) = (matbakh_core::ids::ObjectKey::from_stored(key.clone()), UploadId::parse(id).unwrap());
        assert_eq!(store.list_parts(&key, &id).await.unwrap(), None, "{key} still holds its parts");
        let session = h.state.table.get_session(&id).await.unwrap().unwrap();
        assert_eq!(session.state, matbakh_core::multipart::SessionState::Aborted, "{key}");
    }
    assert_eq!(h.usage(&user).await.charged, 0, "the signRequest reservation stayed");
    let later =
        Harness::new(multipart::router, Options { table: Some(h.table_name.clone()), ..Options::default() }).await;
    let (status, _) = later.call(Method::POST, "/v1/uploads/sign", Some(&later.token(&user)), Some(sign_part)).await;
    assert!(status.is_client_error(), "{status}");
}

/// The sweeper gives a lapsed planned upload back in two steps: the reservation and the row
/// (one transaction), then its session (closed ABORTED). Its owner's abort landing between the
/// two (milliseconds a sweep, longer if the close fails) found the session still open and
/// released the reservation a second time (its row's delete succeeded on the missing row): the
/// owner's usage went below what they store, room for as much again. Now an abort of a session
/// that reserved bytes needs its row; the sweep's second step closes the session.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn an_abort_between_the_sweeps_two_steps_gives_nothing_back_twice() {
    let now = OffsetDateTime::now_utc();
    let h = Harness::new(multipart::router, Options { clock: at(now - Duration::days(3)), ..Options::default() }).await;
    let user = unique_user("race");
    let t = h.token(&user);
    let body = json!({"filename": "clip.mov", "contentType": "video/quicktime", "size": 20 << 20});
    let (status, session) = h.call(Method::POST, "/v1/uploads/multipart", Some(&t), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let id = session["uploadId"].as_str().unwrap().to_owned();
    assert_eq!(h.usage(&user).await.charged, 20 << 20);

    // The sweep's first step, and its second not yet: the session still says OPEN.
    let table = &h.state.table;
    let (lapsed, _) = table.expired_pending(now, 100, None).await.unwrap();
    let row = lapsed.iter().find(|r| r.owner.as_str() == user).unwrap();
    assert!(table.release_pending(row).await.unwrap());
    let key = [
        ("pk".to_owned(), testkit::AttributeValue::S(format!("UPLOAD#{id}"))),
        ("sk".to_owned(), testkit::AttributeValue::S("SESSION".into())),
    ];
    h.dynamo
        .update_item()
        .table_name(&h.table_name)
        .set_key(Some(key.into_iter().collect()))
        .update_expression("SET #s = :open")
        .expression_attribute_names("#s", "state")
        .expression_attribute_values(":open", testkit::AttributeValue::S("OPEN".into()))
        .send()
        .await
        .unwrap();
    // The counters as stored (`Usage` reads a negative count as none).
    let charged = || async {
        let key = matbakh_aws::table::usage_key(&matbakh_core::ids::UserId::parse(&user).unwrap());
        let item = h.dynamo.get_item().table_name(&h.table_name).set_key(Some(key));
        let item = item.send().await.unwrap().item.unwrap();
        item["charged"].as_n().unwrap().clone()
    };
    assert_eq!(charged().await, "0");

    let (status, answer) = h.call(Method::DELETE, &format!("/v1/uploads/{id}"), Some(&t), None).await;
    assert!(status.is_success(), "{status} {answer}");
    assert_eq!(charged().await, "0", "released once");
}
