//! The reporter against moto: a bucket listed version by version where no inventory exists,
//! and an S3 Inventory report (manifest + gzipped CSV, as S3 writes them) where one does; the
//! report kept as the latest either way.

use std::io::Write;

use aws_sdk_s3::Client;
use aws_sdk_s3::types::StorageClass;
use matbakh_app::ports::ReportStore;
use matbakh_aws::report::ReportBucket;
use matbakh_core::ids::FileId;
use testkit::{corpus, fresh_bucket, moto_sdk};

async fn put(s3: &Client, bucket: &str, key: &str, bytes: Vec<u8>, class: Option<StorageClass>) {
    s3.put_object().bucket(bucket).key(key).body(bytes.into()).set_storage_class(class).send().await.unwrap();
}

fn settings(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |k| pairs.iter().find(|(name, _)| *name == k).map(|(_, v)| v.clone())
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_listed_bucket_is_reported_by_user_type_class_and_kept_as_the_latest() {
    let sdk = moto_sdk().await;
    let ((s3, files), (_, reports)) = (fresh_bucket("files").await, fresh_bucket("reports").await);
    let (_, photo) = corpus("photos/ladybird.jpg");
    let n = photo.len() as u64;
    let (f1, f2, gone) = (
        FileId::new(1_767_000_000_000, [1; 10]),
        FileId::new(1_767_000_000_000, [2; 10]),
        FileId::new(1_767_000_000_000, [3; 10]),
    );
    put(&s3, &files, &format!("users/alice/{f1}/ladybird.jpg"), photo.clone(), None).await;
    put(&s3, &files, &format!("users/alice/{f1}/ladybird.jpg"), photo.clone(), None).await; // a second version
    put(&s3, &files, &format!("users/bob/{f2}/menu.pdf"), b"%PDF-1.7 menu".to_vec(), Some(StorageClass::Glacier)).await;
    put(&s3, &files, &format!("derived/{f1}/320.webp"), vec![0; 1000], None).await;
    put(&s3, &files, &format!("derived/{gone}/320.webp"), vec![0; 10], None).await; // its file is gone
    s3.delete_object().bucket(&files).key(format!("users/bob/{f2}/menu.pdf")).send().await.unwrap(); // a delete marker

    let reporting = reporter::reporting(
        &sdk,
        settings(vec![
            ("BUCKET_NAME", files.clone()),
            ("REPORTS_BUCKET", reports.clone()),
            ("AWS_REGION", "eu-central-1".into()),
        ]),
    )
    .unwrap();
    let report = reporter::run(&reporting).await.unwrap();
    assert_eq!(report.source, "listing");
    assert_eq!(report.total.objects, 5);
    assert_eq!(report.total.bytes, 2 * n + 13 + 1000 + 10);
    assert_eq!((report.noncurrent_versions, report.delete_markers), (2, 1));
    assert_eq!(report.by_content_type["image/jpeg"].bytes, 2 * n);
    assert_eq!(report.by_storage_class["GLACIER"].bytes, 13);
    let alice = report.users.iter().find(|u| u.user == "alice").unwrap();
    assert_eq!((alice.files.bytes, alice.deleted_kept.bytes, alice.derived.bytes), (n, n, 1000));
    assert_eq!((report.orphan_variants.objects, report.orphan_variants.bytes), (1, 10));
    let bob = report.users.iter().find(|u| u.user == "bob").unwrap();
    assert_eq!(bob.deleted_kept.bytes, 13, "the delete marker hides bob's file: its bytes are kept for restores");

    let latest = ReportBucket::new(&sdk, &reports).latest().await.unwrap().unwrap();
    let latest: serde_json::Value = serde_json::from_slice(&latest).unwrap();
    assert_eq!(latest["total"]["objects"], 5);
    assert_eq!(latest["generatedAt"], report.generated_at);
    let day = format!("reports/{}.json", &report.generated_at[..10]);
    assert!(s3.head_object().bucket(&reports).key(day).send().await.is_ok());
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn an_s3_inventory_is_read_from_its_latest_manifest() {
    let sdk = moto_sdk().await;
    let ((s3, files), (_, logs)) = (fresh_bucket("files").await, fresh_bucket("logs").await);
    let prefix = format!("inventory/{files}/all-versions/");
    // As S3 writes a daily report: gzipped CSV data files and a manifest naming them. An older
    // day's manifest is there too and must not be read.
    let csv = "\"b\",\"users/carol/f9/Men%C3%BC.pdf\",\"v1\",\"true\",\"false\",\"4096\",\"2025-01-01T00:00:00.000Z\",\"STANDARD\"\n\
               \"b\",\"users/carol/f8/film.mp4\",\"v2\",\"true\",\"false\",\"1000000\",\"2026-12-01T00:00:00.000Z\",\"INTELLIGENT_TIERING\"\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(csv.as_bytes()).unwrap();
    let data = format!("{prefix}data/a1.csv.gz");
    put(&s3, &logs, &data, gz.finish().unwrap(), None).await;
    let manifest = |files: &str| {
        serde_json::json!({"sourceBucket": "b", "fileFormat": "CSV",
            "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, StorageClass",
            "files": [{"key": files, "size": 100, "MD5checksum": "x"}]})
        .to_string()
        .into_bytes()
    };
    put(&s3, &logs, &format!("{prefix}2026-12-04T01-00Z/manifest.json"), manifest("missing.csv.gz"), None).await;
    put(&s3, &logs, &format!("{prefix}2026-12-05T01-00Z/manifest.json"), manifest(&data), None).await;

    let reporting = reporter::reporting(
        &sdk,
        settings(vec![
            ("BUCKET_NAME", files.clone()),
            ("REPORTS_BUCKET", logs.clone()),
            ("INVENTORY_BUCKET", logs.clone()),
            ("INVENTORY_PREFIX", prefix.clone()),
        ]),
    )
    .unwrap();
    let report = reporter::run(&reporting).await.unwrap();
    assert_eq!(report.source, "inventory");
    assert_eq!((report.total.objects, report.total.bytes), (2, 1_004_096));
    assert_eq!(report.by_content_type["application/pdf"].bytes, 4096);
    assert_eq!(report.users[0].user, "carol");
    assert_eq!(report.recommendations[0].kind, "archive", "the 2025 PDF is untouched for 180 days");
}

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn the_cdns_access_logs_of_the_last_seven_days_give_the_transfer() {
    use matbakh_core::cdn_log::{Entry, file_key, header, line};
    let sdk = moto_sdk().await;
    let ((s3, files), (_, logs)) = (fresh_bucket("files").await, fresh_bucket("logs").await);
    let now = time::OffsetDateTime::now_utc();
    let yesterday = now - time::Duration::days(1);
    let entry = |path, bytes, result| Entry {
        at: yesterday,
        method: "GET",
        host: "d111111abcdef8.cloudfront.net",
        path,
        status: 200,
        bytes,
        result,
        content_type: "image/webp",
        millis: 3,
    };
    // The files CDN: two files for yesterday's hour (one with CloudFront's 33 fields, one
    // written with fewer fields, read by its own #Fields line), one of 10 days ago (out of
    // the window); the web CDN: one file; another distribution's file under the same prefix.
    let full = format!(
        "{}{}{}",
        header(),
        line(&entry("/users/dave/f1/Men%C3%BC.jpg", 2_000_000, "Miss")),
        line(&entry("/p/f2/menu.webp", 30_000, "Hit"))
    );
    let short = format!(
        "#Version: 1.0\n#Fields: date cs-uri-stem sc-status sc-bytes x-edge-result-type\n{}\t/t/sig/rs:fit:320/plain/x.jpg\t200\t5000\tHit\n",
        yesterday.date()
    );
    put(&s3, &logs, &file_key("cdn-files/E2ABC", yesterday, "a1"), gzip(&full), None).await;
    put(&s3, &logs, &file_key("cdn-files/E2ABC", yesterday, "a2"), gzip(&short), None).await;
    let old = now - time::Duration::days(7); // the day before the window
    put(&s3, &logs, &file_key("cdn-files/E2ABC", old, "a3"), gzip(&full), None).await;
    put(&s3, &logs, &file_key("cdn-files/E9OTHER", yesterday, "a4"), gzip(&full), None).await;
    let web = format!("{}{}", header(), line(&Entry { path: "/index.html", ..entry("", 700, "RefreshHit") }));
    put(&s3, &logs, &file_key("cdn-web/E3DEF", yesterday, "b1"), gzip(&web), None).await;

    let reporting = reporter::reporting(
        &sdk,
        settings(vec![
            ("BUCKET_NAME", files.clone()),
            ("REPORTS_BUCKET", logs.clone()),
            ("CDN_LOGS", "files=cdn-files/E2ABC,web=cdn-web/E3DEF".into()),
        ]),
    )
    .unwrap();
    let transfer = reporter::run(&reporting).await.unwrap().transfer.expect("CDN_LOGS is set");
    assert_eq!((transfer.days, transfer.log_files), (7, 3));
    assert_eq!(transfer.to, now.date().to_string());
    assert_eq!((transfer.total.objects, transfer.total.bytes), (4, 2_035_700));
    assert_eq!(transfer.by_distribution["files"].bytes, 2_035_000);
    assert_eq!(transfer.by_distribution["web"].objects, 1);
    assert_eq!(transfer.hit_rate, 0.75);
    assert_eq!(transfer.users[0].user, "dave");
    assert_eq!(transfer.users[0].sent.bytes, 2_000_000);
    let latest = ReportBucket::new(&sdk, &logs).latest().await.unwrap().unwrap();
    let latest: serde_json::Value = serde_json::from_slice(&latest).unwrap();
    assert_eq!(latest["transfer"]["byKind"]["transform"]["bytes"], 5000);
}
