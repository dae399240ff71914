//! The migration against Garage, an S3 that checks checksums (moto stores them but never
//! refuses a wrong one), with the ledger on moto: S3 itself refuses bytes that do not match
//! the CRC64NVME sent with them, single and multipart, and a whole run verifies there.

mod common;

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
    let err = migrate::rollback::rollback(&ctx, &run, false).await.unwrap_err();
    assert!(matches!(&err, MigrateError::Usage(m) if m.contains("not versioned")), "{err:?}");
    assert!(migrate::verify::verify(&ctx, &run, &VerifyOptions::default()).await.unwrap().passed());
}

/// A TCP proxy in front of Garage that "restarts" once `after_bytes` of requests went
/// through: every open connection is cut, and the next `refused` connections are closed as
/// soon as they are accepted, as a server does while it comes back.
struct Restarting {
    endpoint: String,
    restarts: Arc<std::sync::atomic::AtomicUsize>,
}

async fn restarting_proxy(upstream: String, after_bytes: u64, refused: usize) -> Restarting {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let sent = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicUsize::new(0));
    let restarts = Arc::new(AtomicUsize::new(0));
    let live: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
    let r = restarts.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else { return };
            if down.load(Ordering::SeqCst) > 0 {
                down.fetch_sub(1, Ordering::SeqCst);
                drop(client);
                continue;
            }
            let (sent, down, live2, restarts, upstream) =
                (sent.clone(), down.clone(), live.clone(), r.clone(), upstream.clone());
            let task = tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = cr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        let before = sent.fetch_add(n as u64, Ordering::SeqCst);
                        if before < after_bytes && before + n as u64 >= after_bytes {
                            // The restart: refuse what comes next, cut every connection.
                            down.store(refused, Ordering::SeqCst);
                            restarts.fetch_add(1, Ordering::SeqCst);
                            for h in live2.lock().unwrap().drain(..) {
                                h.abort();
                            }
                            return;
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down_stream = tokio::io::copy(&mut sr, &mut cw);
                tokio::select! { _ = up => {}, _ = down_stream => {} }
            });
            live.lock().unwrap().push(task.abort_handle());
        }
    });
    Restarting { endpoint, restarts }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_endpoint_restarting_mid_run_costs_retries_not_files() {
    let moto = moto().await;
    let garage = testkit::garage_sdk().await;
    let t = photo_tree();
    let total: u64 = walk_sizes(&t.0);
    let proxy = restarting_proxy(testkit::env("GARAGE_ENDPOINT"), total / 2, 6).await;
    let through_proxy = garage.to_builder().endpoint_url(&proxy.endpoint).build();
    let ctx = migrate::Context::split(&moto, &through_proxy, &testkit::env("MIGRATION_TABLE"), Arc::new(SystemClock));
    let target = format!("s3://{}/restart-{}", testkit::env("GARAGE_BUCKET"), uuid_like());
    let run = plan(&ctx, &t, &options(&target, "keep", HashMap::new(), &t.url())).await.unwrap().run.unwrap();
    let summary =
        migrate::run::run(&ctx, &run, source(&t), &RunOptions { transfers: 4, ..Default::default() }, quiet())
            .await
            .unwrap();
    assert_eq!(proxy.restarts.load(std::sync::atomic::Ordering::SeqCst), 1, "the endpoint restarted mid-run");
    assert_eq!((summary.state, summary.copied, summary.failed), (RunState::Done, 8, 0), "{summary:?}");
    assert!(summary.retries > 0, "{summary:?}");
    let direct = migrate::Context::split(&moto, &garage, &testkit::env("MIGRATION_TABLE"), Arc::new(SystemClock));
    let v = migrate::verify::verify(&direct, &run, &VerifyOptions { deep: true, ..Default::default() }).await.unwrap();
    assert!(v.passed() && v.checked == 8, "{v:?}");
}

fn walk_sizes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() { walk_sizes(&e.path()) } else { e.metadata().unwrap().len() }
        })
        .sum()
}
