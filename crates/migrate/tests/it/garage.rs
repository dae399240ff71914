//! The migration against Garage, an S3 that checks checksums (moto stores them but never
//! refuses a wrong one), with the ledger on moto: S3 itself refuses bytes that do not match
//! the CRC64NVME sent with them, single and multipart, and a whole run verifies there. (The S3
//! server restarting mid-run is `restart.rs`, on s3s-fs.)

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;

use common::*;
use matbakh_aws::AwsError;
use matbakh_aws::transfer::{Target, WriteCondition};
use matbakh_core::clock::SystemClock;
use matbakh_core::migration::RunState;
use migrate::MigrateError;
use migrate::run::RunOptions;
use migrate::verify::VerifyOptions;

fn crc(bytes: &[u8]) -> String {
    migrate::crc64_base64(crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, bytes))
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn s3_refuses_bytes_that_do_not_match_their_crc64nvme_and_stores_nothing() {
    let garage = testkit::garage_sdk().await;
    let target = Target::new(&garage, testkit::env("GARAGE_BUCKET"), false);
    let prefix = format!("crc-{}/", uuid_like());
    let (_, photo) = testkit::corpus("photos/ladybird.jpg");
    let (_, other) = testkit::corpus("photos/dune.jpg");

    let key = format!("{prefix}single.jpg");
    let err =
        target.put(&key, photo.clone(), &crc(&other), "image/jpeg", &[], &WriteCondition::Absent).await.unwrap_err();
    assert!(matches!(err, AwsError::ChecksumMismatch(_)), "{err:?}");
    assert!(target.head(&key, None).await.unwrap().is_none());
    target.put(&key, photo.clone(), &crc(&photo), "image/jpeg", &[], &WriteCondition::Absent).await.unwrap();
    let head = target.head(&key, None).await.unwrap().unwrap();
    assert_eq!((head.size, head.crc64nvme), (photo.len() as u64, Some(crc(&photo))));
    // (Garage 2.5 ignores `If-None-Match: *` on PUT, so conditional writes are tested on moto.)

    // Multipart: intact parts, a wrong whole-object value: completion refused, nothing stored.
    let (_, big) = testkit::corpus("photos/sony-18mp-progressive.jpg");
    let key = format!("{prefix}multi.jpg");
    let upload = target.create_multipart(&key, "image/jpeg", &[]).await.unwrap();
    let mut parts = Vec::new();
    for (i, chunk) in big.chunks(5 * 1024 * 1024).enumerate() {
        parts.push(target.upload_part(&key, &upload, i as i32 + 1, chunk.to_vec(), &crc(chunk)).await.unwrap());
    }
    let bad = target.complete_multipart(&key, &upload, &parts, &crc(&photo), &WriteCondition::Absent).await;
    assert!(bad.is_err(), "{bad:?}");
    assert!(target.head(&key, None).await.unwrap().is_none());
    target.complete_multipart(&key, &upload, &parts, &crc(&big), &WriteCondition::Absent).await.unwrap();
    assert_eq!(target.head(&key, None).await.unwrap().unwrap().crc64nvme, Some(crc(&big)));
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_run_to_an_enforcing_s3_verifies_and_rollback_refuses_without_versioning() {
    let moto = moto().await;
    let garage = testkit::garage_sdk().await;
    let ctx = migrate::Context::split(&moto, &garage, &testkit::env("MIGRATION_TABLE"), Arc::new(SystemClock));
    let t = photo_tree();
    let target = format!("s3://{}/run-{}", testkit::env("GARAGE_BUCKET"), uuid_like());
    let run = plan(&ctx, &t, &options(&target, "platform", HashMap::new(), &t.url())).await.unwrap().run.unwrap();
    let summary =
        migrate::run::run(&ctx, &run, source(&t), &RunOptions { transfers: 4, ..Default::default() }, quiet())
            .await
            .unwrap();
    assert_eq!((summary.state, summary.copied, summary.failed), (RunState::Done, 8, 0));
    let v = migrate::verify::verify(&ctx, &run, &VerifyOptions { deep: true, ..Default::default() }).await.unwrap();
    assert!(v.passed() && v.checked == 8, "{v:?}");
    let err = migrate::rollback::rollback(&ctx, &run, &Default::default()).await.unwrap_err();
    assert!(matches!(&err, MigrateError::Usage(m) if m.contains("not versioned")), "{err:?}");
    assert!(migrate::verify::verify(&ctx, &run, &VerifyOptions::default()).await.unwrap().passed());
}
