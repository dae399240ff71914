//! The thumbnailer on real object events (moto): corpus photos uploaded through the API become
//! READY with upright, metadata-free variants; hostile and mislabelled files are quarantined or
//! failed with a reason, without stopping the batch.

use http::StatusCode;
use matbakh_app::process::{Processed, Skip};
use matbakh_core::ids::{FileId, ObjectKey};
use matbakh_core::metadata::FileStatus;
use matbakh_imaging::{DEFAULT_QUALITY, ImageLimits, Quality};
use serde_json::Value;
use testkit::{
    Harness, Options, accepted, browser_upload, corpus, corpus_path, object_created, sqs_batch, unique_user,
};
use thumbnailer::{Imaging, Thumbnailer};

/// rav1e's fastest speed: these tests check what is made, not how small (the benchmark does).
const FAST: Quality = Quality { avif_speed: 10, ..DEFAULT_QUALITY };

async fn setup() -> (Harness, Thumbnailer) {
    let h = Harness::new(presign::router, Options::default()).await;
    let t = with_scanner(&h, None);
    (h, t)
}

fn with_scanner(h: &Harness, scanner: Option<thumbnailer::clamd::Clamd>) -> Thumbnailer {
    let imaging = Imaging::new(ImageLimits::default(), FAST);
    Thumbnailer::new(&h.state, imaging, scanner.map(|c| std::sync::Arc::new(c) as _))
}

/// Uploads `bytes` as `name` declared as `content_type` through the presign API.
async fn upload(h: &Harness, user: &str, name: &str, content_type: &str, bytes: Vec<u8>) -> (String, FileId) {
    let (status, grant) = h.grant(user, name, content_type, bytes.len()).await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    assert!(accepted(&browser_upload(&grant, name, bytes, |_| {}).await));
    let key = grant["key"].as_str().unwrap().to_owned();
    (key.clone(), ObjectKey::file_id_of(&key).unwrap())
}

async fn row(h: &Harness, id: FileId) -> (FileStatus, Value) {
    let item = h.file_item(id).await.unwrap();
    let record = h.state.table.get_file(id).await.unwrap().unwrap();
    let reason = item.get("reason").and_then(|v| v.as_s().ok()).cloned();
    let mut extra = serde_json::json!({ "reason": reason });
    for name in ["width", "height"] {
        extra[name] = item.get(name).and_then(|v| v.as_n().ok()).map(|n| n.parse::<u64>().unwrap()).into();
    }
    extra["variants"] = item.get("variants").and_then(|v| v.as_l().ok()).map(|l| l.len()).into();
    extra["placeholder"] = item.get("placeholder").and_then(|v| v.as_s().ok()).cloned().into();
    (record.status, extra)
}

async fn get(h: &Harness, key: &str) -> Option<(Vec<u8>, Option<String>, Option<String>)> {
    let out = h.state.store.client().get_object().bucket(h.state.store.bucket()).key(key).send().await.ok()?;
    let (ct, cc) = (out.content_type().map(str::to_owned), out.cache_control().map(str::to_owned));
    Some((out.body.collect().await.unwrap().into_bytes().to_vec(), ct, cc))
}

fn dimensions(content_type: &str, bytes: &[u8]) -> (u32, u32) {
    match content_type {
        "image/jpeg" => {
            let h = turbojpeg::read_header(bytes).unwrap();
            (h.width as u32, h.height as u32)
        }
        "image/webp" => {
            let i = image::load_from_memory(bytes).unwrap();
            (i.width(), i.height())
        }
        "image/avif" => {
            let at = bytes.windows(4).position(|w| w == b"ispe").unwrap() + 8;
            let n = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
            (n(at), n(at + 4))
        }
        other => panic!("unexpected variant type {other}"),
    }
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn corpus_photos_become_ready_with_upright_metadata_free_variants() {
    let (h, t) = setup().await;
    let user = unique_user("photos");
    let photos = [
        ("phone-13mp.jpg", (3120, 4208), vec![320, 640, 1280, 1920]),
        ("panasonic-orientation6.jpg", (428, 640), vec![320]),
        ("dune.jpg", (1680, 1050), vec![320, 640, 1280]),
        ("olympus-4mp-icc.jpg", (2560, 1600), vec![320, 640, 1280, 1920]),
    ];
    let mut uploaded = Vec::new();
    for (name, _, _) in &photos {
        let (_, bytes) = corpus(&format!("photos/{name}"));
        uploaded.push(upload(&h, &user, name, "image/jpeg", bytes).await);
    }
    let batch: Vec<(String, String)> =
        uploaded.iter().enumerate().map(|(i, (key, _))| (format!("m{i}"), object_created(key, 0))).collect();
    let batch: Vec<(&str, String)> = batch.iter().map(|(id, body)| (id.as_str(), body.clone())).collect();
    let response = thumbnailer::handle(&t, sqs_batch(&batch)).await;
    assert!(response.batch_item_failures.is_empty());

    for ((name, (w, hgt), widths), (_, id)) in photos.iter().zip(&uploaded) {
        let (status, info) = row(&h, *id).await;
        assert_eq!(status, FileStatus::Ready, "{name}: {info}");
        assert_eq!((info["width"].as_u64(), info["height"].as_u64()), (Some(*w), Some(*hgt)), "{name}");
        assert_eq!(info["variants"].as_u64(), Some(widths.len() as u64 * 3), "{name}");
        assert!(info["placeholder"].as_str().is_some_and(|p| p.len() > 10), "{name}");
        for width in widths {
            let expected_h = ((*hgt * u64::from(*width) + *w / 2) / *w) as u32;
            for (ext, ct) in [("avif", "image/avif"), ("webp", "image/webp"), ("jpg", "image/jpeg")] {
                let key = format!("derived/{id}/{width}.{ext}");
                let (bytes, content_type, cache) = get(&h, &key).await.unwrap_or_else(|| panic!("{name}: no {key}"));
                assert_eq!(content_type.as_deref(), Some(ct), "{key}");
                assert_eq!(cache.as_deref(), Some("public, max-age=31536000, immutable"), "{key}");
                assert_eq!(dimensions(ct, &bytes), (*width, expected_h), "{name} {key}");
                let exif = matbakh_imaging::exif::read(&bytes);
                assert!(!exif.has_gps && exif.camera_make.is_none(), "{key} carries metadata");
            }
        }
    }
    // The portrait photo (EXIF orientation 6) is portrait in its variants.
    let (_, panasonic) = &uploaded[1];
    let (bytes, _, _) = get(&h, &format!("derived/{panasonic}/320.jpg")).await.unwrap();
    assert_eq!(dimensions("image/jpeg", &bytes), (320, 479));

    // A redelivery changes nothing.
    let again = thumbnailer::handle(&t, sqs_batch(&batch[..1])).await;
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(thumbnailer::process(&t, &uploaded[0].0).await.unwrap(), Processed::Skipped(Skip::AlreadyProcessed));
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn hostile_and_mislabelled_files_are_refused_with_a_reason_and_the_batch_goes_on() {
    let (h, t) = setup().await;
    let user = unique_user("hostile");
    let files = [
        ("hostile/bomb-header-64250x64250.jpg", "image/jpeg"),
        ("hostile/cve-2015-4491.bmp", "image/jpeg"),
        ("hostile/truncated.jpg", "image/jpeg"),
        ("hostile/bomb-22500x33300-progressive.jpg", "image/jpeg"),
        ("photos/ladybird.jpg", "application/pdf"),
        ("photos/ladybird.jpg", "image/jpeg"),
    ];
    let mut uploaded = Vec::new();
    for (rel, ct) in files {
        let (name, bytes) = corpus(rel);
        let name = if ct == "application/pdf" { "invoice.pdf".to_owned() } else { name.replace(".bmp", ".jpg") };
        uploaded.push((upload(&h, &user, &name, ct, bytes.clone()).await, bytes.len() as u64));
    }
    let mut batch: Vec<(String, String)> =
        uploaded.iter().enumerate().map(|(i, ((key, _), _))| (format!("m{i}"), object_created(key, 0))).collect();
    batch.insert(2, ("garbage".into(), "not an event".into()));
    let batch: Vec<(&str, String)> = batch.iter().map(|(id, body)| (id.as_str(), body.clone())).collect();
    let response = thumbnailer::handle(&t, sqs_batch(&batch)).await;
    // Only the message nothing can be done with comes back; the files' fates are on their rows.
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["garbage"]);

    let expect = [
        (FileStatus::Quarantined, "64250x64250 pixels"),
        (FileStatus::Quarantined, "BMP image"),
        (FileStatus::Failed, "truncated"),
        (FileStatus::Quarantined, "22500x33300 pixels"),
        (FileStatus::Quarantined, "declared application/pdf, but the bytes are image/jpeg"),
        (FileStatus::Ready, ""),
    ];
    for ((((key, id), _), (status, reason)), (rel, _)) in uploaded.iter().zip(expect).zip(files) {
        let (got, info) = row(&h, *id).await;
        assert_eq!(got, status, "{rel}: {info}");
        assert!(info["reason"].as_str().unwrap_or_default().contains(reason), "{rel}: {info}");
        let original = get(&h, key).await;
        let moved = get(&h, &format!("quarantine/{key}")).await;
        if status == FileStatus::Quarantined {
            assert!(original.is_none(), "{rel}: the original stayed in the user's space");
            assert!(moved.is_some(), "{rel}: nothing in quarantine/");
        } else {
            assert!(original.is_some() && moved.is_none(), "{rel}");
        }
    }
    // Quarantined files leave the owner's usage; the failed and the good one still count.
    let kept: u64 =
        uploaded.iter().zip(expect).filter(|(_, (s, _))| *s != FileStatus::Quarantined).map(|((_, n), _)| *n).sum();
    assert_eq!(h.usage(&user).await.charged, kept);
}

/// moto's SQS through its JSON protocol (no SDK crate just for a test).
async fn sqs(action: &str, body: Value) -> Value {
    let endpoint = testkit::env("AWS_ENDPOINT_URL");
    // moto reads the region from the credential scope; it does not check the signature.
    let scope = format!("Credential=test/20260101/{}/sqs/aws4_request", testkit::env("AWS_REGION"));
    let resp = testkit::http_client()
        .post(&endpoint)
        .header("authorization", format!("AWS4-HMAC-SHA256 {scope}, SignedHeaders=host, Signature=0"))
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", format!("AmazonSQS.{action}"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{action}: {}", resp.status());
    resp.json().await.unwrap()
}

/// Every corpus photo through the real event path: presigned upload → moto's bucket
/// notification → SNS → the thumbnailer's SQS queue → this test as the event source mapping
/// (receive, invoke the handler in-process, delete what it did not report) → READY.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn every_corpus_photo_goes_through_the_real_event_path() {
    let (h, t) = setup().await;
    let user = unique_user("e2e");
    let dir = corpus_path("photos");
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let mut ids = Vec::new();
    for name in &names {
        let (_, bytes) = corpus(&format!("photos/{name}"));
        ids.push((name.clone(), upload(&h, &user, name, "image/jpeg", bytes).await.1));
    }
    let queue = sqs("GetQueueUrl", serde_json::json!({"QueueName": "test-thumbnailerqueue"})).await;
    let queue = queue["QueueUrl"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let mut pending = 0;
        for (_, id) in &ids {
            if h.state.table.get_file(*id).await.unwrap().unwrap().status == FileStatus::Pending {
                pending += 1;
            }
        }
        if pending == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{pending} photos still PENDING");
        // Long poll (the wait is the queue's, not a sleep); other tests' events find no row here.
        let got = sqs(
            "ReceiveMessage",
            serde_json::json!({"QueueUrl": queue, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1}),
        )
        .await;
        let messages = got["Messages"].as_array().cloned().unwrap_or_default();
        let batch: Vec<(String, String)> = messages
            .iter()
            .map(|m| (m["MessageId"].as_str().unwrap().to_owned(), m["Body"].as_str().unwrap().to_owned()))
            .collect();
        let batch: Vec<(&str, String)> = batch.iter().map(|(id, body)| (id.as_str(), body.clone())).collect();
        let response = thumbnailer::handle(&t, sqs_batch(&batch)).await;
        let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        for m in &messages {
            if !failed.contains(&m["MessageId"].as_str().unwrap()) {
                sqs("DeleteMessage", serde_json::json!({"QueueUrl": queue, "ReceiptHandle": m["ReceiptHandle"]})).await;
            }
        }
    }
    for (name, id) in &ids {
        let (status, info) = row(&h, *id).await;
        assert_eq!(status, FileStatus::Ready, "{name}: {info}");
        let (w, hgt) = (info["width"].as_u64().unwrap() as u32, info["height"].as_u64().unwrap() as u32);
        for width in matbakh_imaging::widths_for(w, hgt) {
            let (bytes, _, _) = get(&h, &format!("derived/{id}/{width}.jpg")).await.unwrap();
            let expected = ((u64::from(hgt) * u64::from(width) + u64::from(w) / 2) / u64::from(w)) as u32;
            assert_eq!(dimensions("image/jpeg", &bytes), (width, expected), "{name}");
            assert!(!matbakh_imaging::exif::read(&bytes).has_gps, "{name}: GPS in a variant");
        }
    }
    let portrait = ids.iter().find(|(n, _)| n.starts_with("panasonic")).unwrap().1;
    assert_eq!(row(&h, portrait).await.1["width"].as_u64(), Some(428), "orientation applied");
}

async fn virus_scan(h: &Harness, id: FileId) -> Option<String> {
    h.file_item(id).await.unwrap().get("virusScan").and_then(|v| v.as_s().ok()).cloned()
}

/// With clamd configured (`scripts/test` runs one with test signatures: `scripts/clamd`), every
/// allowed file is scanned first: a match is quarantined under the signature's name, a clean file
/// records it, a file over the scan limit says it was not scanned, and a scanner that cannot be
/// reached leaves the row untouched and the record failed, to be delivered again.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn clamd_scans_every_file_and_a_match_is_quarantined() {
    let (h, _) = setup().await;
    let addr = std::env::var("CLAMD_TEST_ADDR").expect("CLAMD_TEST_ADDR: run through scripts/test");
    let clamd = |addr: &str, max_bytes| thumbnailer::clamd::Clamd {
        addr: addr.to_owned(),
        max_bytes,
        timeout: thumbnailer::clamd::DEFAULT_CLAMD_TIMEOUT,
    };
    let scanning = with_scanner(&h, Some(clamd(&addr, thumbnailer::clamd::DEFAULT_CLAMD_MAX_BYTES)));
    let user = unique_user("clamd");
    let (_, known_bad) = corpus("photos/dune.jpg");
    let (_, clean) = corpus("photos/ladybird.jpg");
    let (bad_key, bad_id) = upload(&h, &user, "holiday.jpg", "image/jpeg", known_bad).await;
    let (clean_key, clean_id) = upload(&h, &user, "ladybird.jpg", "image/jpeg", clean.clone()).await;
    let batch = [("bad", object_created(&bad_key, 0)), ("clean", object_created(&clean_key, 0))];
    let response = thumbnailer::handle(&scanning, sqs_batch(&batch)).await;
    assert!(response.batch_item_failures.is_empty());

    let (status, info) = row(&h, bad_id).await;
    assert_eq!(status, FileStatus::Quarantined, "{info}");
    assert_eq!(info["reason"], "ClamAV found Matbakh.Test.KnownBadPhoto.UNOFFICIAL");
    assert!(get(&h, &bad_key).await.is_none(), "the original left its key");
    assert!(get(&h, &format!("quarantine/{bad_key}")).await.is_some());
    let (status, info) = row(&h, clean_id).await;
    assert_eq!(status, FileStatus::Ready, "{info}");
    assert_eq!(virus_scan(&h, clean_id).await.as_deref(), Some("clean"));

    // Over the scan limit: kept, with the reason it was not scanned.
    let small_limit = with_scanner(&h, Some(clamd(&addr, clean.len() as u64 - 1)));
    let (big_key, big_id) = upload(&h, &user, "big.jpg", "image/jpeg", clean.clone()).await;
    assert!(
        thumbnailer::handle(&small_limit, sqs_batch(&[("big", object_created(&big_key, 0))]))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(row(&h, big_id).await.0, FileStatus::Ready);
    assert!(virus_scan(&h, big_id).await.is_some_and(|s| s.starts_with("not scanned: over CLAMD_MAX_BYTES")));

    // No scanner there: no verdict, no change; the record comes back.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let unreachable = with_scanner(&h, Some(clamd(&closed, thumbnailer::clamd::DEFAULT_CLAMD_MAX_BYTES)));
    let (key, id) = upload(&h, &user, "later.jpg", "image/jpeg", clean).await;
    let response = thumbnailer::handle(&unreachable, sqs_batch(&[("later", object_created(&key, 0))])).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["later"]);
    assert_eq!(row(&h, id).await.0, FileStatus::Pending);
    assert!(get(&h, &key).await.is_some());

    // Its last delivery fails too: FAILED and unprocessed (the table's conditions: settled by
    // the indexer, PENDING), then the DLQ; redriven once clamd is back, it is scanned and READY.
    h.state.settler().settle(id, &ObjectKey::from_stored(key.clone())).await.unwrap();
    let last = testkit::sqs_batch_delivered(&[("later", object_created(&key, 0))], thumbnailer::THUMBNAIL_MAX_RECEIVES);
    assert_eq!(thumbnailer::handle(&unreachable, last).await.batch_item_failures.len(), 1);
    let (status, info) = row(&h, id).await;
    assert_eq!((status, info["reason"].as_str()), (FileStatus::Failed, Some(matbakh_app::process::GAVE_UP)));
    let item = h.file_item(id).await.unwrap();
    assert_eq!(item.get("unprocessed").map(|v| v.as_bool().ok().copied()), Some(Some(true)));
    let redriven = thumbnailer::handle(&scanning, sqs_batch(&[("later", object_created(&key, 0))])).await;
    assert!(redriven.batch_item_failures.is_empty());
    let (status, info) = row(&h, id).await;
    assert_eq!((status, &info["reason"]), (FileStatus::Ready, &Value::Null));
    assert_eq!(virus_scan(&h, id).await.as_deref(), Some("clean"));
    assert!(!h.file_item(id).await.unwrap().contains_key("unprocessed"));
}

/// An AVIF upload (written by libavif: `crates/imaging/tests/fixtures`) gets variants like any
/// photo; a HEIC is checked and kept, without variants, with the reason on its row.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn avif_sources_get_variants_and_heic_is_kept_without() {
    let (h, t) = setup().await;
    let user = unique_user("avif");
    let fixture = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../imaging/tests/fixtures/dune-420-bt709-limited.avif");
    let avif = std::fs::read(fixture).unwrap();
    let (avif_key, avif_id) = upload(&h, &user, "dune.avif", "image/avif", avif).await;
    // The smallest HEIC header: an `ftyp` box with the `heic` brand.
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    let (heic_key, heic_id) = upload(&h, &user, "IMG_0001.HEIC", "image/heic", heic).await;
    let batch = [("a", object_created(&avif_key, 0)), ("h", object_created(&heic_key, 0))];
    assert!(thumbnailer::handle(&t, sqs_batch(&batch)).await.batch_item_failures.is_empty());

    let (status, info) = row(&h, avif_id).await;
    assert_eq!(status, FileStatus::Ready, "{info}");
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64(), info["variants"].as_u64()),
        (Some(320), Some(200), Some(3))
    );
    for (ext, ct) in [("avif", "image/avif"), ("webp", "image/webp"), ("jpg", "image/jpeg")] {
        let (bytes, content_type, _) = get(&h, &format!("derived/{avif_id}/320.{ext}")).await.unwrap();
        assert_eq!((content_type.as_deref(), dimensions(ct, &bytes)), (Some(ct), (320, 200)));
    }
    let (status, info) = row(&h, heic_id).await;
    assert_eq!(status, FileStatus::Ready, "{info}");
    assert_eq!(info["variants"], Value::Null);
    assert!(info["reason"].as_str().is_some_and(|r| r.contains("HEIC")), "{info}");
}

/// A public original over `COPY_IN_PARTS_ABOVE` made public through the files API is not copied
/// in its request (the copy could outlast it): its row's change, as the notifier reads it from
/// the stream, asks this function's queue for the copy; on moto's SQS and S3, that message is
/// the one the thumbnailer copies from, and the file's public URL appears once the copy is there.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_large_original_made_public_is_copied_by_the_thumbnailer() {
    use matbakh_app::audit::Client;
    use matbakh_app::files::Change;
    use matbakh_app::ports::FileLookup;
    use matbakh_core::ids::UserId;
    use matbakh_core::labels::Visibility;
    use testkit::AttributeValue;

    let (h, t) = setup().await;
    let user = unique_user("large");
    let (name, bytes) = corpus("photos/panasonic-orientation6.jpg");
    let (key, id) = upload(&h, &user, &name, "image/jpeg", bytes).await;
    assert!(
        thumbnailer::handle(&t, sqs_batch(&[("m1", object_created(&key, 0))])).await.batch_item_failures.is_empty()
    );
    // The row says 2 GiB (moto would hold the bytes; the rule reads the row's size).
    let size = (2u64 << 30).to_string();
    let set = h.dynamo.update_item().table_name(&h.table_name).set_key(Some(matbakh_aws::table::file_key(id)));
    set.update_expression("SET #size = :size")
        .expression_attribute_names("#size", "size")
        .expression_attribute_values(":size", AttributeValue::N(size))
        .send()
        .await
        .unwrap();

    let sdk = testkit::moto_sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = sqs.create_queue().queue_name(unique_user("copies")).send().await.unwrap();
    let url = queue.queue_url().unwrap().to_owned();
    let cdn = Some(matbakh_core::delivery::FilesCdn::new("https://files.test", None));
    let api = matbakh_aws::Services { files_cdn: cdn.clone(), ..h.state.clone() }.files();
    let row = || async { h.state.table.details(id).await.unwrap().unwrap().record };
    let old = row().await;
    let owner = UserId::parse(&user).unwrap();
    let client = Client { ip: "192.0.2.1".into(), user_agent: "test".into() };
    let public = Change { visibility: Some(Visibility::Public), ..Change::default() };
    let shown = api.update(&owner, &client, id, &public).await.unwrap();
    assert_eq!(shown.public_url, None, "no copy yet");
    let copy = ObjectKey::from_stored(key.clone()).public_copy().unwrap();
    assert!(get(&h, copy.as_str()).await.is_none(), "copied in the request");
    // The notifier's part (`notifier::handle` on the stream record of this change).
    let notifier = matbakh_aws::Services {
        files_cdn: cdn.clone(),
        copy_later: Some(std::sync::Arc::new(matbakh_aws::queue::Queue::new(&sdk, &url))),
        ..h.state.clone()
    }
    .delivery();
    assert!(notifier.ask_for_large_copy(Some(&old), Some(&row().await)).await.unwrap(), "not asked");

    let received = sqs.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
    assert_eq!(received.messages().len(), 1);
    let imaging = Imaging::new(ImageLimits::default(), FAST);
    let copier = Thumbnailer::new(&matbakh_aws::Services { files_cdn: cdn, ..h.state.clone() }, imaging, None);
    let answer = thumbnailer::handle(&copier, testkit::as_delivered(received.messages())).await;
    assert!(answer.batch_item_failures.is_empty());
    let (_, content_type, cache) = get(&h, copy.as_str()).await.expect("the public copy");
    assert_eq!(content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(cache.as_deref(), Some(matbakh_core::delivery::ORIGINAL_CACHE_CONTROL));
    let shown = api.show(&owner, id).await.unwrap();
    assert_eq!(shown.public_url, Some(format!("https://files.test/{copy}")));
}
