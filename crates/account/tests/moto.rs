//! GDPR erase against moto: after `DELETE /v1/me`, nothing of the user is left in the bucket
//! (no version, no marker, no upload), in the disaster-recovery replica or in the table (no
//! item mentions them), someone else's data is untouched, and a second erase removes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use account::EraseSettings;
use http::{Method, StatusCode};
use matbakh_api::Authenticator;
use matbakh_aws::S3Store;
use matbakh_aws::config::ReplicaSettings;
use matbakh_core::audit::AuditEntry;
use matbakh_core::audit::{AuditAction, PseudonymKey, erased_path, pseudonym};
use matbakh_core::exports::{ExportJob, ExportState};
use matbakh_core::ids::{FileId, ObjectKey, UserId};
use matbakh_core::labels::Tag;
use matbakh_core::shares::Share;
use matbakh_core::shares::ShareId;
use matbakh_core::tokens::TokenGrant;
use serde_json::{Value, json};
use testkit::{AttributeValue, Harness, Options, corpus, unique_user};
use time::macros::datetime;

const AT: time::OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
/// The tests' stand-in for the stack's generated secret.
const PSEUDONYM_SECRET: &[u8] = b"account tests: the erase pseudonym key";
/// The replica's region: another EU region than the bucket's (`AWS_REGION`, eu-central-1).
const REPLICA_REGION: &str = "eu-west-1";

fn erasure(replica: Option<&S3Store>) -> EraseSettings {
    EraseSettings {
        pseudonym_key: PseudonymKey::new(PSEUDONYM_SECRET).unwrap(),
        replica: replica.cloned(),
        migration: None,
        again: None,
    }
}

/// The function as deployed without a replica.
fn app(services: matbakh_aws::Services, auth: Arc<Authenticator>) -> axum::Router {
    account::router(services, auth, erasure(None), testkit::export_queue())
}

/// `DELETE /v1/me` by `user`, on an instance whose erase reaches `replica`.
async fn erase_with(h: &Harness, user: &str, replica: &S3Store) -> (StatusCode, Value) {
    erase_on(h, user, erasure(Some(replica))).await
}

/// `DELETE /v1/me` by `user`, on an instance with `erasure`.
async fn erase_on(h: &Harness, user: &str, erasure: EraseSettings) -> (StatusCode, Value) {
    let req = http::Request::builder()
        .method(Method::DELETE)
        .uri("/v1/me")
        .header("authorization", format!("Bearer {}", h.token(user)))
        .body(axum::body::Body::from(json!({"confirm": true}).to_string()))
        .unwrap();
    testkit::call_router(account::router(h.state.clone(), h.auth.clone(), erasure, testkit::export_queue()), req).await
}

/// Everything a user accumulates: files (one with an older version, one soft-deleted),
/// variants, a transform result, a quarantined copy, tags and words, a share, an open
/// upload, an upload token, usage, a request budget's counter, audit records.
async fn a_full_account(h: &Harness, user: &str) -> Vec<FileId> {
    let owner = UserId::parse(user).unwrap();
    let (name, photo) = corpus("photos/ladybird.jpg");
    let kept = h.stored_file(user, &name, "image/jpeg", photo.clone(), AT).await;
    let gone = h.stored_file(user, "old plan.pdf", "application/pdf", b"%PDF-1.4 old".to_vec(), AT).await;
    let (t, store, s3) = (&h.state.table, &h.state.store, h.state.store.client());
    let bucket = store.bucket();
    let kept_row = t.file_details(kept).await.unwrap().unwrap();
    // An older version under the same key, and a soft delete (a marker over a version).
    s3.put_object().bucket(bucket).key(kept_row.record.key.as_str()).body(photo.into()).send().await.unwrap();
    let gone_key = t.get_file(gone).await.unwrap().unwrap().key;
    store.delete_version(&gone_key, None).await.unwrap();
    t.mark_deleted(gone, None).await.unwrap();
    store
        .put_derived(&ObjectKey::from_stored(format!("derived/{kept}/320.webp")), b"variant".to_vec(), "image/webp")
        .await
        .unwrap();
    let result_key = format!("results/{}/e1/rt:fit,w:100.webp", kept_row.record.key);
    s3.put_object().bucket(bucket).key(&result_key).body(b"result".to_vec().into()).send().await.unwrap();
    let quarantined = format!("quarantine/users/{user}/{kept}/evil.exe");
    s3.put_object().bucket(bucket).key(&quarantined).body(b"MZ".to_vec().into()).send().await.unwrap();
    let mut tagged = kept_row.record.clone();
    tagged.labels.tags = [Tag::parse("family").unwrap()].into();
    assert!(t.update_file(&kept_row, &tagged).await.unwrap());
    let share = Share {
        id: ShareId::from_random(testkit::rand32()[..16].try_into().unwrap()),
        file_id: kept,
        owner: owner.clone(),
        created_at: AT,
        expires_at: AT + time::Duration::days(1),
        max_downloads: None,
        downloads: 0,
        revoked: false,
    };
    t.put_share(&share).await.unwrap();
    s3.create_multipart_upload().bucket(bucket).key(format!("users/{user}/upload/big.bin")).send().await.unwrap();
    // An upload session that ended (aborted): it keeps the owner, key and file name until its TTL.
    let mut never_arrived = kept_row.record.clone();
    never_arrived.file_id = FileId::new(1_772_000_000_000, testkit::rand32()[..10].try_into().unwrap());
    let ended = matbakh_core::multipart::UploadSession::open(
        &never_arrived,
        matbakh_core::multipart::UploadId::parse(&format!(
            "ended-{:x}",
            u128::from_be_bytes(testkit::rand32()[..16].try_into().unwrap())
        ))
        .unwrap(),
        matbakh_core::multipart::SessionLimit::Allowance(1 << 20),
        AT + time::Duration::hours(1),
    );
    t.put_session(&ended, 20).await.unwrap();
    assert!(t.abort_session(&ended).await.unwrap());
    let grant = TokenGrant {
        digest: format!("{:x}", u128::from_be_bytes(testkit::rand32()[..16].try_into().unwrap())),
        owner: owner.clone(),
        max_bytes: 1 << 20,
        used_bytes: 0,
        types: Vec::new(),
        expires_at: AT + time::Duration::hours(1),
        revoked: false,
        labels: Default::default(),
    };
    t.put_token(&grant).await.unwrap();
    let entry = AuditEntry {
        user: owner.clone(),
        action: AuditAction::Download,
        actor: "owner".into(),
        file_id: Some(kept),
        result: "ok".into(),
        ip: "203.0.113.7".into(),
        user_agent: "test".into(),
        at: AT,
    };
    t.put_audit(&entry, std::time::Duration::from_secs(3600), 1).await.unwrap();
    // A request budget's counter (an export this hour), and the export: its job and the item
    // naming the owner's newest.
    assert!(t.take_request(&owner, "export#1772362800", 5, AT + time::Duration::hours(1)).await.unwrap());
    let job = ExportJob {
        id: format!("export-of-{user}"),
        owner: owner.clone(),
        state: ExportState::Failed,
        created_at: AT,
        key: None,
        size: None,
        files: None,
    };
    t.put_export(&job, None).await.unwrap();
    // A migrated file's legacy path (its mapping item names the user and the file).
    let legacy = format!("shop/{user}/ladybird.jpg");
    assert!(!t.register_migrated(&kept_row.record, "r20261205t000000-00000002", &legacy).await.unwrap());
    assert!(t.legacy_file(&legacy).await.unwrap().is_some());
    vec![kept, gone]
}

/// Every string in an item (through maps, lists and sets).
fn strings(v: &AttributeValue, out: &mut Vec<String>) {
    match v {
        AttributeValue::S(s) | AttributeValue::N(s) => out.push(s.clone()),
        AttributeValue::Ss(ss) => out.extend(ss.iter().cloned()),
        AttributeValue::L(l) => l.iter().for_each(|x| strings(x, out)),
        AttributeValue::M(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// Items of the table that mention `needle` anywhere, and how many items there are.
async fn items_mentioning(h: &Harness, needles: &[String]) -> (Vec<HashMap<String, AttributeValue>>, usize) {
    let out = h.dynamo.scan().table_name(&h.table_name).send().await.unwrap();
    let items = out.items().to_vec();
    let hits = items
        .iter()
        .filter(|i| {
            let mut all = Vec::new();
            i.values().for_each(|v| strings(v, &mut all));
            all.iter().any(|s| needles.iter().any(|n| s.contains(n.as_str())))
        })
        .cloned()
        .collect();
    (hits, items.len())
}

/// Object versions, delete markers and open uploads under the user's prefixes (the bucket is
/// shared with other tests, so only these prefixes are listed).
async fn objects_of(h: &Harness, user: &str, files: &[FileId]) -> Vec<String> {
    let s3 = h.state.store.client();
    let bucket = h.state.store.bucket();
    let mut prefixes: Vec<String> = account::user_prefixes(user).into_iter().collect();
    prefixes.extend(files.iter().map(|f| ObjectKey::derived_prefix(*f)));
    let mut keys = Vec::new();
    for prefix in prefixes {
        let page = s3.list_object_versions().bucket(bucket).prefix(&prefix).send().await.unwrap();
        assert_ne!(page.is_truncated(), Some(true), "one page holds a user's few objects");
        keys.extend(page.versions().iter().filter_map(|v| v.key().map(str::to_owned)));
        keys.extend(page.delete_markers().iter().filter_map(|m| m.key().map(str::to_owned)));
        let uploads = s3.list_multipart_uploads().bucket(bucket).prefix(&prefix).send().await.unwrap();
        keys.extend(uploads.uploads().iter().filter_map(|u| u.key().map(str::to_owned)));
    }
    keys.sort();
    keys
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn erase_leaves_nothing_of_the_user_and_nothing_else_is_touched() {
    let h = Harness::new(app, Options::default()).await;
    let (alice, bob) = (unique_user("alice"), unique_user("bob"));
    let files = a_full_account(&h, &alice).await;
    let bobs = a_full_account(&h, &bob).await;
    let alice_marks: Vec<String> = std::iter::once(alice.clone()).chain(files.iter().map(|f| f.to_string())).collect();
    let bob_marks: Vec<String> = std::iter::once(bob.clone()).chain(bobs.iter().map(|f| f.to_string())).collect();
    assert_eq!(objects_of(&h, &alice, &files).await.len(), 8, "4 versions and markers, 3 derived, 1 upload");
    let (before, _) = items_mentioning(&h, &alice_marks).await;
    assert!(before.len() >= 10, "{} items", before.len());
    let (bob_before, _) = items_mentioning(&h, &bob_marks).await;
    let bob_objects = objects_of(&h, &bob, &bobs).await;

    // Without an explicit confirmation nothing happens.
    for body in [None, Some(json!({})), Some(json!({"confirm": "yes"})), Some(json!({"confirm": false}))] {
        let (status, answer) = h.call(Method::DELETE, "/v1/me", Some(&h.token(&alice)), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    }
    assert_eq!(items_mentioning(&h, &alice_marks).await.0.len(), before.len());

    let (status, report) =
        h.call(Method::DELETE, "/v1/me", Some(&h.token(&alice)), Some(json!({"confirm": true}))).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let erased = &report["erased"];
    assert_eq!(erased["files"], 2);
    assert_eq!(erased["uploadsAborted"], 1);
    assert_eq!(erased["objectVersions"], 4, "two versions of one file, one of the other and its marker: {report}");
    assert_eq!(erased["derivedObjects"], 3, "{report}");
    assert_eq!(erased["items"].as_u64().unwrap() as usize, before.len(), "{report}");

    assert_eq!(objects_of(&h, &alice, &files).await, Vec::<String>::new());
    let (left, _) = items_mentioning(&h, &alice_marks).await;
    assert!(left.is_empty(), "left in the table: {left:?}");
    // Bob's data is as it was.
    assert_eq!(items_mentioning(&h, &bob_marks).await.0.len(), bob_before.len());
    assert_eq!(objects_of(&h, &bob, &bobs).await, bob_objects);
    // The erase itself is on record, under a pseudonym that does not name Alice.
    let stand_in = pseudonym(&erasure(None).pseudonym_key, &UserId::parse(&alice).unwrap());
    let (trail, _) = h.state.table.audit_page(&stand_in, 10, None).await.unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].action, "erase");
    assert!(trail[0].result.starts_with("ok: 2 files"), "{}", trail[0].result);
    // Marked erased under the same pseudonym, for the migration to check; Bob is not.
    assert!(h.state.table.was_erased(&stand_in).await.unwrap());
    let bobs_stand_in = pseudonym(&erasure(None).pseudonym_key, &UserId::parse(&bob).unwrap());
    assert!(!h.state.table.was_erased(&bobs_stand_in).await.unwrap());
    // And her migrated file's legacy path by its mark: its old URL answers 410 from now on.
    let key = erasure(None).pseudonym_key;
    let mark = |user: &str| erased_path(&key, &format!("shop/{user}/ladybird.jpg"));
    assert!(h.state.table.legacy_path_erased(&mark(&alice)).await.unwrap());
    assert!(!h.state.table.legacy_path_erased(&mark(&bob)).await.unwrap());

    // Again: nothing left to remove, and it says so.
    let (status, again) =
        h.call(Method::DELETE, "/v1/me", Some(&h.token(&alice)), Some(json!({"confirm": true}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        again["erased"],
        json!({"objectVersions": 0, "replicaVersions": 0, "derivedObjects": 0, "uploadsAborted": 0, "files": 0, "items": 0})
    );
}

/// Takes the export queue's message for `export_id` (as Lambda's event source would).
async fn export_message(export_id: &str) -> String {
    let sqs = aws_sdk_sqs::Client::new(&testkit::moto_sdk().await);
    let url = testkit::export_queue().url().to_owned();
    for _ in 0..10 {
        let out =
            sqs.receive_message().queue_url(&url).max_number_of_messages(10).wait_time_seconds(1).send().await.unwrap();
        for m in out.messages() {
            let body = m.body().unwrap_or_default().to_owned();
            if body.contains(export_id) {
                sqs.delete_message().queue_url(&url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
                return body;
            }
        }
    }
    panic!("no message for export {export_id}");
}

/// Every entry of a ZIP as Python's zipfile reads it (an independent reader; `testzip`
/// checks each entry's CRC-32): name -> SHA-256 hex.
fn entries_of(zip: &[u8]) -> HashMap<String, String> {
    let path = std::env::temp_dir().join(format!("export-{}.zip", unique_user("z")));
    std::fs::write(&path, zip).unwrap();
    let script = "import hashlib, json, sys, zipfile\n\
                  z = zipfile.ZipFile(sys.argv[1])\n\
                  assert z.testzip() is None, z.testzip()\n\
                  print(json.dumps({n: hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist()}))";
    let out = std::process::Command::new("python3").arg("-c").arg(script).arg(&path).output().unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn read_entry(zip: &[u8], name: &str) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("export-{}.zip", unique_user("z")));
    std::fs::write(&path, zip).unwrap();
    let script = "import sys, zipfile\nsys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))";
    let out = std::process::Command::new("python3").arg("-c").arg(script).arg(&path).arg(name).output().unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn export_streams_every_stored_file_byte_identical_into_one_zip() {
    let h = Harness::new(app, Options::default()).await;
    let (alice, mallory) = (unique_user("alice"), unique_user("mallory"));
    let (photo_name, photo) = corpus("photos/ladybird.jpg");
    let (_, big) = corpus("photos/sony-18mp-progressive.jpg");
    let photo_id = h.stored_file(&alice, &photo_name, "image/jpeg", photo.clone(), AT).await;
    let big_id = h.stored_file(&alice, "Straße 1.jpg", "image/jpeg", big.clone(), AT + time::Duration::hours(1)).await;
    let gone = h.stored_file(&alice, "gone.pdf", "application/pdf", b"%PDF-1.4".to_vec(), AT).await;
    h.state.table.mark_deleted(gone, None).await.unwrap();
    let download = AuditEntry {
        user: UserId::parse(&alice).unwrap(),
        action: AuditAction::Download,
        actor: alice.clone(),
        file_id: Some(photo_id),
        result: "ok".into(),
        ip: "203.0.113.9".into(),
        user_agent: "browser".into(),
        at: AT,
    };
    h.state.table.put_audit(&download, matbakh_core::limits::Limits::default().audit_retention, 1).await.unwrap();
    let row = h.state.table.file_details(photo_id).await.unwrap().unwrap();
    let mut tagged = row.record.clone();
    tagged.labels.tags = [Tag::parse("garden").unwrap()].into();
    assert!(h.state.table.update_file(&row, &tagged).await.unwrap());

    let (status, job) = h.call(Method::POST, "/v1/me/export", Some(&h.token(&alice)), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["status"], "PENDING");
    let export_id = job["exportId"].as_str().unwrap().to_owned();
    let (status, again) = h.call(Method::POST, "/v1/me/export", Some(&h.token(&alice)), None).await;
    assert_eq!((status, again["exportId"].as_str()), (StatusCode::ACCEPTED, Some(export_id.as_str())), "one at a time");
    // A request that read "no export yet" before the first was made (two tabs at once) makes
    // none: the newest-export item names the first, read consistently.
    let t = &h.state.table;
    let raced =
        ExportJob { id: "0".repeat(32), ..t.latest_export(&UserId::parse(&alice).unwrap()).await.unwrap().unwrap() };
    assert!(matches!(t.put_export(&raced, None).await, Err(matbakh_aws::AwsError::ConditionFailed)));
    assert!(t.get_export(&raced.id).await.unwrap().is_none(), "nothing of it written");
    assert_eq!(t.latest_export(&raced.owner).await.unwrap().unwrap().id, export_id);
    // Carol's newest export's row went before its time (deleted by hand): a new one is made,
    // not refused until the item naming it expires.
    let carol = unique_user("carol");
    let (status, first) = h.call(Method::POST, "/v1/me/export", Some(&h.token(&carol)), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let first_id = first["exportId"].as_str().unwrap();
    let job_key = matbakh_aws::table::export_key(first_id);
    h.dynamo.delete_item().table_name(&h.table_name).set_key(Some(job_key)).send().await.unwrap();
    let (status, second) = h.call(Method::POST, "/v1/me/export", Some(&h.token(&carol)), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    assert_ne!(second["exportId"].as_str(), Some(first_id));
    let status_url = format!("/v1/me/exports/{export_id}");
    assert_eq!(h.call(Method::GET, &status_url, Some(&h.token(&mallory)), None).await.0, StatusCode::NOT_FOUND);

    let body = export_message(&export_id).await;
    let done = exporter::handle(
        &h.state.archiver(),
        &testkit::export_queue(),
        testkit::sqs_batch(&[("m1", body.clone())]),
        None,
    )
    .await;
    assert!(done.batch_item_failures.is_empty());
    let (status, ready) = h.call(Method::GET, &status_url, Some(&h.token(&alice)), None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!((ready["status"].as_str(), ready["files"].as_u64()), (Some("READY"), Some(3)));
    let zip = testkit::http_client().get(ready["url"].as_str().unwrap()).send().await.unwrap();
    let disposition = zip.headers()["content-disposition"].to_str().unwrap().to_owned();
    let created = job["createdAt"].as_str().unwrap();
    assert!(disposition.contains(&format!("matbakh-export-{}.zip", &created[..10])), "{disposition}");
    let zip = zip.bytes().await.unwrap().to_vec();
    assert_eq!(ready["size"].as_u64(), Some(zip.len() as u64));

    let entries = entries_of(&zip);
    let sha = |b: &[u8]| matbakh_core::ids::Sha256::of(b).to_hex();
    let photo_path = format!("files/{photo_id}/ladybird.jpg");
    let big_path = format!("files/{big_id}/Straße 1.jpg");
    let gone_path = format!("files/{gone}/gone.pdf");
    // The deleted file too (its owner may still restore it), at its accepted version; and the
    // audit trail.
    assert_eq!(entries.len(), 5, "{entries:?}");
    assert_eq!(entries[&photo_path], sha(&photo));
    assert_eq!(entries[&big_path], sha(&big));
    assert_eq!(entries[&gone_path], sha(b"%PDF-1.4"));
    let metadata: serde_json::Value = serde_json::from_slice(&read_entry(&zip, "metadata.json")).unwrap();
    let described = metadata["files"].as_array().unwrap();
    assert_eq!(described.len(), 3);
    let by_path = |path: &str| described.iter().find(|d| d["path"] == path).unwrap();
    assert_eq!(by_path(&photo_path)["tags"], json!(["garden"]));
    assert_eq!(by_path(&big_path)["name"], "Straße 1.jpg");
    assert_eq!(by_path(&gone_path)["status"], "DELETED");
    let audit: serde_json::Value = serde_json::from_slice(&read_entry(&zip, "audit.json")).unwrap();
    let records = audit["records"].as_array().unwrap();
    assert!(records.iter().any(|r| r["action"] == "download" && r["ip"] == "203.0.113.9"), "{audit}");

    // A redelivered message of a finished export changes nothing.
    let again =
        exporter::handle(&h.state.archiver(), &testkit::export_queue(), testkit::sqs_batch(&[("m1", body)]), None)
            .await;
    assert!(again.batch_item_failures.is_empty());
    let (_, still) = h.call(Method::GET, &status_url, Some(&h.token(&alice)), None).await;
    assert_eq!(still["size"], ready["size"]);
    // And garbage is reported back for the DLQ, not dropped.
    let poison = exporter::handle(
        &h.state.archiver(),
        &testkit::export_queue(),
        testkit::sqs_batch(&[("m2", "not json".into())]),
        None,
    )
    .await;
    assert_eq!(poison.batch_item_failures.len(), 1);
}

/// An export the exporter cannot finish (here: out of time at once) is delivered again while it
/// has deliveries left, RUNNING; the last one marks it FAILED before its message goes to the DLQ,
/// and asking again starts a new one (before, it stayed RUNNING until stale, an hour).
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn an_export_that_cannot_finish_fails_on_its_last_delivery_and_can_be_asked_again() {
    let h = Harness::new(app, Options::default()).await;
    let bob = unique_user("bob");
    let (name, photo) = corpus("photos/ladybird.jpg");
    h.stored_file(&bob, &name, "image/jpeg", photo, AT).await;
    let (status, job) = h.call(Method::POST, "/v1/me/export", Some(&h.token(&bob)), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let export_id = job["exportId"].as_str().unwrap().to_owned();
    let status_url = format!("/v1/me/exports/{export_id}");
    let body = export_message(&export_id).await;
    let past = Some(time::OffsetDateTime::UNIX_EPOCH);
    let state = || async { h.call(Method::GET, &status_url, Some(&h.token(&bob)), None).await.1["status"].clone() };

    let delivery = |n: u32| testkit::sqs_batch_delivered(&[("m1", body.clone())], n);
    let first = exporter::handle(&h.state.archiver(), &testkit::export_queue(), delivery(1), past).await;
    assert_eq!(first.batch_item_failures.len(), 1);
    assert_eq!(state().await, "RUNNING");
    let last =
        exporter::handle(&h.state.archiver(), &testkit::export_queue(), delivery(exporter::EXPORT_MAX_RECEIVES), past)
            .await;
    assert_eq!(last.batch_item_failures.len(), 1, "still reported: the DLQ's alarm tells operations");
    assert_eq!(state().await, "FAILED");

    let (status, again) = h.call(Method::POST, "/v1/me/export", Some(&h.token(&bob)), None).await;
    assert_eq!((status, again["status"].as_str()), (StatusCode::ACCEPTED, Some("PENDING")), "{again}");
    assert_ne!(again["exportId"].as_str(), Some(export_id.as_str()));
    export_message(again["exportId"].as_str().unwrap()).await;
}

/// The disaster-recovery replica as S3 replication fills it (moto does not replicate): every
/// version and delete marker under `prefix`, oldest first.
async fn replicate(from: &S3Store, to: &S3Store, prefix: &str) {
    let (src, dst) = (from.client(), to.client());
    let page = src.list_object_versions().bucket(from.bucket()).prefix(prefix).send().await.unwrap();
    assert_ne!(page.is_truncated(), Some(true), "one page holds a user's few objects");
    for v in page.versions().iter().rev() {
        let version = src.get_object().bucket(from.bucket()).key(v.key().unwrap()).version_id(v.version_id().unwrap());
        let bytes = version.send().await.unwrap().body.collect().await.unwrap().into_bytes();
        dst.put_object().bucket(to.bucket()).key(v.key().unwrap()).body(bytes.into()).send().await.unwrap();
    }
    for m in page.delete_markers() {
        dst.delete_object().bucket(to.bucket()).key(m.key().unwrap()).send().await.unwrap();
    }
}

/// Object versions and delete markers in `store` under `prefixes`.
async fn versions_under(store: &S3Store, prefixes: &[String]) -> Vec<String> {
    let mut keys = Vec::new();
    for prefix in prefixes {
        let page = store.client().list_object_versions().bucket(store.bucket()).prefix(prefix).send().await.unwrap();
        assert_ne!(page.is_truncated(), Some(true), "one page holds a user's few objects");
        keys.extend(page.versions().iter().map(|v| format!("{} {}", v.key().unwrap(), v.version_id().unwrap())));
        keys.extend(
            page.delete_markers().iter().map(|m| format!("{} {} marker", m.key().unwrap(), m.version_id().unwrap())),
        );
    }
    keys.sort();
    keys
}

/// A bucket in the replica's region, reached as the function reaches it (`REPLICA_BUCKET`,
/// `REPLICA_REGION`); created versioned, as template-replica.yaml makes it, unless `create`
/// is false (a replica the function cannot reach).
async fn replica_bucket(create: bool) -> S3Store {
    use aws_sdk_s3::types::{
        BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, VersioningConfiguration,
    };
    let settings = ReplicaSettings { bucket: format!("replica-{}", unique_user("dr")), region: REPLICA_REGION.into() };
    let store = settings.store(&testkit::moto_sdk().await).unwrap();
    if create {
        let location = CreateBucketConfiguration::builder()
            .location_constraint(BucketLocationConstraint::from(REPLICA_REGION))
            .build();
        store
            .client()
            .create_bucket()
            .bucket(store.bucket())
            .create_bucket_configuration(location)
            .send()
            .await
            .unwrap();
        let versioning = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
        let put = store.client().put_bucket_versioning().bucket(store.bucket()).versioning_configuration(versioning);
        put.send().await.unwrap();
    }
    store
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn erase_removes_the_users_copies_in_the_replica_too() {
    let h = Harness::new(app, Options::default()).await;
    let replica = replica_bucket(true).await;
    let (alice, bob) = (unique_user("alice"), unique_user("bob"));
    let files = a_full_account(&h, &alice).await;
    let bobs = a_full_account(&h, &bob).await;
    // Replication copies what its filter (template.yaml: `users/`) selects.
    for user in [&alice, &bob] {
        replicate(&h.state.store, &replica, &format!("users/{user}/")).await;
    }
    let prefixes = |user: &str, files: &[FileId]| -> Vec<String> {
        let mut all: Vec<String> = account::user_prefixes(user).into_iter().collect();
        all.extend(files.iter().map(|f| ObjectKey::derived_prefix(*f)));
        all
    };
    let (alice_prefixes, bob_prefixes) = (prefixes(&alice, &files), prefixes(&bob, &bobs));
    assert_eq!(versions_under(&replica, &alice_prefixes).await.len(), 4, "3 versions and a marker replicated");
    let bob_primary = versions_under(&h.state.store, &bob_prefixes).await;
    let bob_replica = versions_under(&replica, &bob_prefixes).await;
    assert_eq!(bob_replica.len(), 4);

    // The replica out of reach: the erase fails after the originals, and the rest (the derived
    // objects, the rows) waits for a retry.
    let unreachable = replica_bucket(false).await;
    let (status, failed) = erase_with(&h, &alice, &unreachable).await;
    assert!(status.is_server_error(), "{status} {failed}");
    let originals = [format!("users/{alice}/")];
    assert_eq!(versions_under(&h.state.store, &originals).await, Vec::<String>::new());
    assert_eq!(h.file_rows(&alice).await, 2, "the rows wait for the retry");

    // The retry finishes: the replica's versions and markers, the rows.
    let (status, report) = erase_with(&h, &alice, &replica).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["erased"]["replicaVersions"], 4, "{report}");
    assert_eq!(report["erased"]["files"], 2, "{report}");
    assert_eq!(versions_under(&h.state.store, &alice_prefixes).await, Vec::<String>::new());
    assert_eq!(versions_under(&replica, &alice_prefixes).await, Vec::<String>::new(), "the replica forgot nothing");
    assert_eq!(h.file_rows(&alice).await, 0);
    // Bob's objects, in both buckets, are as they were.
    assert_eq!(versions_under(&h.state.store, &bob_prefixes).await, bob_primary);
    assert_eq!(versions_under(&replica, &bob_prefixes).await, bob_replica);
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn the_pseudonym_key_comes_from_the_stacks_secret_and_the_replica_from_its_settings() {
    let sdk = testkit::moto_sdk().await;
    let name = format!("erase-pseudonym-{}", unique_user("s"));
    let secret: String = testkit::rand32().iter().map(|b| format!("{b:02x}")).collect();
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    secrets.create_secret().name(&name).secret_string(&secret).send().await.unwrap();
    let env = |vars: &'static [(&'static str, &'static str)], secret_id: String| {
        move |k: &str| match k {
            "ERASE_PSEUDONYM_SECRET_ID" => Some(secret_id.clone()),
            "ERASE_AGAIN_QUEUE_URL" => Some("http://127.0.0.1:5050/123456789012/erase-again".to_owned()),
            _ => vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()),
        }
    };
    const REPLICA: [(&str, &str); 2] = [("REPLICA_BUCKET", "dr-files"), ("REPLICA_REGION", REPLICA_REGION)];

    let erasure = EraseSettings::from_lookup(&sdk, env(&REPLICA, name.clone())).await.unwrap();
    let alice = UserId::parse("alice").unwrap();
    let expected = pseudonym(&PseudonymKey::new(secret.as_bytes()).unwrap(), &alice);
    assert_eq!(pseudonym(&erasure.pseudonym_key, &alice), expected);
    assert_eq!(erasure.replica.as_ref().map(S3Store::bucket), Some("dr-files"));
    let without = EraseSettings::from_lookup(&sdk, env(&[], name.clone())).await.unwrap();
    assert!(without.replica.is_none());

    // The function refuses to start without its key, with a half-configured replica, or with
    // a secret too short to be a key.
    let missing = EraseSettings::from_lookup(&sdk, env(&[], String::new())).await.unwrap_err();
    assert!(missing.contains("ERASE_PSEUDONYM_SECRET_ID"), "{missing}");
    // Nor without the queue its second pass waits in.
    let secret_only = |k: &str| (k == "ERASE_PSEUDONYM_SECRET_ID").then(|| name.clone());
    let no_second_pass = EraseSettings::from_lookup(&sdk, secret_only).await.unwrap_err();
    assert!(no_second_pass.contains("ERASE_AGAIN_QUEUE_URL"), "{no_second_pass}");
    assert!(EraseSettings::from_lookup(&sdk, env(&[], format!("{name}-none"))).await.is_err());
    let half = EraseSettings::from_lookup(&sdk, env(&REPLICA[..1], name.clone())).await.unwrap_err();
    assert!(half.contains("REPLICA_REGION"), "{half}");
    let short = format!("{name}-short");
    secrets.create_secret().name(&short).secret_string("too short").send().await.unwrap();
    let weak = EraseSettings::from_lookup(&sdk, env(&[], short)).await.unwrap_err();
    assert!(weak.contains("at least 32 bytes"), "{weak}");
}

/// Security review 16.4: erase invalidates the user's cached transform results at the files CDN
/// (one wildcard, as the edge spells the sub) and, where a CDN serves variants, every variant
/// (their keys name no user), before the deletes and again once they are done (review 24). An
/// invalidation that fails answers 5xx with the results and rows kept, so the retry
/// invalidates; an erase that finds nothing cached invalidates nothing.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn erase_invalidates_the_users_cached_images_at_the_edge() {
    let mut h = Harness::new(app, Options::default()).await;
    let cdn = testkit::distribution().await;
    h.state.files_cdn = Some(matbakh_core::delivery::FilesCdn::new("https://cdn.files.test", None));
    h.state.files_edge = Some(cdn.clone());
    let user = format!("auth0|{}", unique_user("edge"));
    let files = a_full_account(&h, &user).await;
    let [originals, results, ..] = account::user_prefixes(&user);

    let unreachable = matbakh_aws::cdn::Cdn::new(&testkit::moto_sdk().await, "ENOSUCHDISTRIBUTION");
    let reachable = h.state.files_edge.replace(unreachable);
    let (status, failed) = erase_on(&h, &user, erasure(None)).await;
    assert!(status.is_server_error(), "{status} {failed}");
    assert_eq!(versions_under(&h.state.store, &[originals]).await, Vec::<String>::new(), "the originals went first");
    let waiting = versions_under(&h.state.store, std::slice::from_ref(&results)).await;
    assert_eq!(waiting.len(), 1, "the results wait for the retry");
    assert_eq!(h.file_rows(&user).await, files.len(), "the rows wait for the retry");

    h.state.files_edge = reachable;
    let (status, report) = erase_on(&h, &user, erasure(None)).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let sub = user.replace('|', "%7C");
    // One CDN, as deployed: a request before the deletes, the results' path and the
    // variants', and the same again once they are gone, with the user's originals.
    let before = vec![format!("/results/users/{sub}/*"), "/derived/*".to_owned()];
    let want = [before.clone(), [before, vec![format!("/users/{sub}/*")]].concat()];
    assert_eq!(testkit::invalidations(&cdn).await, want);
    assert_eq!(versions_under(&h.state.store, &[results]).await, Vec::<String>::new());
    assert_eq!(h.file_rows(&user).await, 0);

    let (status, report) = erase_on(&h, &user, erasure(None)).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(testkit::invalidations(&cdn).await, want, "nothing cached any more, nothing invalidated again");
}

/// The erase tells the migration through its queue (`MIGRATION_QUEUE_URL`): one message, the
/// one the migration worker reads as "rewrite every run's records of erased users", naming
/// nobody (the worker finds the user by the marks the erase wrote first).
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn the_erase_tells_the_migration_in_a_message_that_names_nobody() {
    let sdk = testkit::moto_sdk().await;
    let h = Harness::new(app, Options::default()).await;
    let alice = unique_user("alice");
    a_full_account(&h, &alice).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let name = format!("migration-{}", unique_user("q"));
    let url = sqs.create_queue().queue_name(&name).send().await.unwrap().queue_url().unwrap().to_owned();
    let secret = format!("erase-pseudonym-{}", unique_user("s"));
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    secrets
        .create_secret()
        .name(&secret)
        .secret_string(String::from_utf8_lossy(PSEUDONYM_SECRET))
        .send()
        .await
        .unwrap();
    let again = sqs.create_queue().queue_name(format!("{name}-again")).send().await.unwrap();
    let again = again.queue_url().unwrap().to_owned();
    let lookup = |k: &str| match k {
        "ERASE_PSEUDONYM_SECRET_ID" => Some(secret.clone()),
        "MIGRATION_QUEUE_URL" => Some(url.clone()),
        "ERASE_AGAIN_QUEUE_URL" => Some(again.clone()),
        _ => None,
    };
    let settings = EraseSettings::from_lookup(&sdk, lookup).await.unwrap();

    let (status, report) = erase_on(&h, &alice, settings).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let received = sqs.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
    let bodies: Vec<&str> = received.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, [matbakh_core::migration::REDACT_ERASED_MESSAGE]);
    assert!(!bodies[0].contains(&alice));
}

/// DECISIONS 17, the erase's second pass on moto: the erase leaves one message in the queue
/// `ERASE_AGAIN_QUEUE_URL` names, delayed (not receivable yet); a file that lands after the
/// erase (here: a migration copy that checked her erased mark just before it was written: row,
/// object, legacy mapping) is still there after the first pass; the `eraser`, given the message
/// an hour later, removes it (object, every version, row, mapping), and before that only sends
/// the message on. Until then her account is closed: the table refuses her upload grants
/// (`AccountErased`, single and multipart, nothing written) and takes Bob's; after the second
/// pass it takes hers again.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn what_lands_after_an_erase_is_gone_after_its_second_pass() {
    use matbakh_core::erasure::EraseAgain;
    const T0: time::OffsetDateTime = datetime!(2026-12-06 18:00 UTC);
    let sdk = testkit::moto_sdk().await;
    let mut h = Harness::new(app, Options::default()).await;
    h.state.clock = Arc::new(matbakh_core::clock::FixedClock(T0));
    let alice = unique_user("alice");
    a_full_account(&h, &alice).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url =
        sqs.create_queue().queue_name(unique_user("erase-again")).send().await.unwrap().queue_url().unwrap().to_owned();
    let secret = format!("erase-pseudonym-{}", unique_user("s"));
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let key = String::from_utf8_lossy(PSEUDONYM_SECRET);
    secrets.create_secret().name(&secret).secret_string(key).send().await.unwrap();
    let lookup = |k: &str| match k {
        "ERASE_PSEUDONYM_SECRET_ID" => Some(secret.clone()),
        "ERASE_AGAIN_QUEUE_URL" => Some(url.clone()),
        _ => None,
    };
    let delayed = || async {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .unwrap();
        let n = attrs
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed).cloned());
        n.unwrap_or_default()
    };

    let (status, report) = erase_on(&h, &alice, EraseSettings::from_lookup(&sdk, lookup).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(delayed().await, "1", "the second pass waits in the queue");
    let now = sqs.receive_message().queue_url(&url).send().await.unwrap();
    assert!(now.messages().is_empty(), "and cannot be received before its delay");

    // A file of hers lands after the first pass read her keys: a migration copy's row, mapping
    // and object.
    let (name, photo) = corpus("photos/dune.jpg");
    let late = pending(&alice, &name, photo.len() as u64);
    assert!(h.state.table.register_migrated(&late, "run-1", "uploads/2019/dune.jpg").await.unwrap());
    let s3 = h.state.store.client();
    s3.put_object().bucket(h.state.store.bucket()).key(late.key.as_str()).body(photo.into()).send().await.unwrap();
    let late = late.file_id;
    let originals = format!("users/{alice}/");
    assert_eq!(h.file_rows(&alice).await, 1);
    assert_eq!(versions_under(&h.state.store, std::slice::from_ref(&originals)).await.len(), 1);

    // Her account takes no upload until the second pass has run; Bob's does.
    let (table, quota) = (&h.state.table, h.state.limits.user_quota_bytes);
    let refused = table.reserve_upload(&pending(&alice, "new.jpg", 4096), quota).await;
    assert!(matches!(refused, Err(matbakh_aws::AwsError::AccountErased)), "{refused:?}");
    let record = pending(&alice, "big.mp4", 20 << 20);
    let session = session_of(&record);
    let refused = table.reserve_multipart(&record, &session, quota, 3).await;
    assert!(matches!(refused, Err(matbakh_aws::AwsError::AccountErased)), "{refused:?}");
    assert_eq!(h.file_rows(&alice).await, 1, "nothing written");
    assert!(table.get_session(&session.upload_id).await.unwrap().is_none());
    // Nor an export (its job, newest-export item and audit record came back after the erase,
    // and an archive of the files being erased was built).
    let (status, answer) = h.call(Method::POST, "/v1/me/export", Some(&h.token(&alice)), None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("account_erased")), "{answer}");
    assert!(table.latest_export(&UserId::parse(&alice).unwrap()).await.unwrap().is_none(), "nothing written");
    // Refused as erased, not as raced, when another request's export is named as well.
    let mut named = matbakh_aws::table::newest_export_key(&UserId::parse(&alice).unwrap());
    named.extend([
        ("exportId".to_owned(), AttributeValue::S("another".into())),
        ("ttl".to_owned(), AttributeValue::N((T0.unix_timestamp() + 86_400).to_string())),
    ]);
    h.dynamo.put_item().table_name(&h.table_name).set_item(Some(named)).send().await.unwrap();
    let job = ExportJob {
        id: "1".repeat(32),
        owner: UserId::parse(&alice).unwrap(),
        state: ExportState::Pending,
        created_at: T0,
        key: None,
        size: None,
        files: None,
    };
    assert!(matches!(table.put_export(&job, None).await, Err(matbakh_aws::AwsError::AccountErased)));
    let bob = unique_user("bob");
    table.reserve_upload(&pending(&bob, "menu.jpg", 4096), quota).await.unwrap();

    let settings = EraseSettings::from_lookup(&sdk, lookup).await.unwrap();
    let eraser_at = |minutes: i64| {
        let mut services = h.state.clone();
        services.clock = Arc::new(matbakh_core::clock::FixedClock(T0 + time::Duration::minutes(minutes)));
        services.erasure(settings.clone())
    };
    let body = EraseAgain::after(UserId::parse(&alice).unwrap(), T0).to_message();
    let event = |body: &str| testkit::sqs_batch(&[("m-1", body.to_owned())]);
    // Early: sent on, nothing erased.
    let early = eraser::handle(&eraser_at(20), event(&body)).await;
    assert!(early.batch_item_failures.is_empty());
    assert_eq!(delayed().await, "2");
    assert_eq!(h.file_rows(&alice).await, 1);

    let due = eraser::handle(&eraser_at(61), event(&body)).await;
    assert!(due.batch_item_failures.is_empty());
    assert_eq!(h.file_rows(&alice).await, 0);
    assert_eq!(versions_under(&h.state.store, &[originals]).await, Vec::<String>::new());
    assert!(h.state.table.get_file(late).await.unwrap().is_none());
    assert!(h.state.table.legacy_paths(&UserId::parse(&alice).unwrap()).await.unwrap().is_empty());
    assert_eq!(delayed().await, "2", "no third pass");
    let (items, _) = items_mentioning(&h, std::slice::from_ref(&alice)).await;
    assert_eq!(items, Vec::new(), "nothing of hers is left, the closed account included");
    table.reserve_upload(&pending(&alice, "new.jpg", 4096), quota).await.unwrap();
}

/// A PENDING upload of `owner`'s, as a grant or a migration registers one.
fn pending(owner: &str, name: &str, size: u64) -> matbakh_core::metadata::FileRecord {
    let owner = UserId::parse(owner).unwrap();
    let id = FileId::new(AT.unix_timestamp() as u64 * 1000, matbakh_app::random::bytes().unwrap());
    let filename = matbakh_core::names::DisplayName::parse(name).unwrap();
    let content_type = if name.ends_with(".mp4") { "video/mp4" } else { "image/jpeg" };
    let content_type = matbakh_core::types::ContentType::parse(content_type).unwrap();
    matbakh_core::metadata::FileRecord {
        size,
        ..matbakh_core::metadata::FileRecord::upload(id, owner, filename, content_type, AT)
    }
}

/// A planned multipart session for `record`.
fn session_of(record: &matbakh_core::metadata::FileRecord) -> matbakh_core::multipart::UploadSession {
    use matbakh_core::multipart::{PartPlan, SessionLimit, UploadId, UploadSession};
    let limit = SessionLimit::Planned(PartPlan::for_size(record.size).unwrap());
    UploadSession::open(record, UploadId::parse("an-s3-upload-id").unwrap(), limit, AT + time::Duration::hours(24))
}
