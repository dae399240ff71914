//! The S3 server restarted in the middle of a run (DECISIONS 24): s3s-fs, its data on disk, is
//! killed and started again while the run copies. A gate in front of it cuts every connection
//! when the restart begins and refuses new ones until the new process accepts them, so the
//! client meets the restart at a chosen point (half of the bytes sent) and for exactly as long
//! as the server is down. Needs `S3S_FS_BIN` (scripts/test builds s3s-fs once and sets it).
//!
//! What it found: s3s-fs refuses a conditional PUT whose key exists (an attempt that landed
//! before the cut) with 412 before reading the body, then closes; a client still sending the
//! body sees a reset, never the 412. Before the copy asked whether an earlier attempt landed
//! (`landed` in copy.rs), one run in five here lost a file after eight such resets.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use aws_config::{BehaviorVersion, Region};
use common::*;
use matbakh_core::clock::SystemClock;
use matbakh_core::migration::RunState;
use migrate::run::RunOptions;
use migrate::verify::VerifyOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

const ACCESS_KEY: &str = "restart-test";
const SECRET_KEY: &str = "restart-test-secret";

/// The server process, killed when dropped (also when an assertion fails).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts s3s-fs on `port` with its data in `dir`; its output goes to `log` (appended), which a
/// failed assertion shows.
fn start_s3s(dir: &Path, port: u16, log: &Path) -> Server {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Server(
        Command::new(testkit::env("S3S_FS_BIN"))
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                ACCESS_KEY,
                "--secret-key",
                SECRET_KEY,
            ])
            .arg(dir)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    )
}

/// Waits until something accepts connections on `port` (a readiness check, 10 s at most).
async fn accepting(port: u16) {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("nothing accepts connections on {port}");
}

struct Gate {
    endpoint: String,
    down: Arc<AtomicBool>,
    tripped: Arc<Notify>,
}

/// Forwards to `upstream_port`; once `after_bytes` of requests went through, cuts every
/// connection, refuses new ones until `down` is cleared, and notifies `tripped`.
async fn gate(upstream_port: u16, after_bytes: u64) -> Gate {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (down, tripped) = (Arc::new(AtomicBool::new(false)), Arc::new(Notify::new()));
    let sent = Arc::new(AtomicU64::new(0));
    let live: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
    let (d, t) = (down.clone(), tripped.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else { return };
            if d.load(Ordering::SeqCst) {
                drop(client);
                continue;
            }
            let (sent, down, tripped, live2) = (sent.clone(), d.clone(), t.clone(), live.clone());
            let task = tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await else { return };
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
                            down.store(true, Ordering::SeqCst);
                            tripped.notify_one();
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
                tokio::select! { _ = up => {}, _ = tokio::io::copy(&mut sr, &mut cw) => {} }
            });
            live.lock().unwrap().push(task.abort_handle());
        }
    });
    Gate { endpoint, down, tripped }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn s3_sdk(endpoint: &str) -> aws_config::SdkConfig {
    let creds = aws_sdk_s3::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "restart-test");
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(creds)
        .http_client(matbakh_aws::http::sdk_http_client())
        .load()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn the_s3_server_restarting_mid_run_costs_retries_not_files() {
    let moto = moto().await;
    let t = photo_tree();
    let data: PathBuf = std::env::temp_dir().join(format!("s3s-{}", uuid_like()));
    std::fs::create_dir_all(data.join("legacy-target")).unwrap();
    let log = data.with_extension("log");
    let port = free_port();
    let server = start_s3s(&data, port, &log);
    accepting(port).await;
    let total = dir_size(&t.0);
    let gate = gate(port, total / 2).await;

    // The restart: when the gate trips, kill the server, start it again on the same data, and
    // open the gate once the new process accepts connections. It returns how long the server was
    // down (trip to reopening), which a failed assertion shows beside the retry budget.
    let (down, tripped, data2, log2) = (gate.down.clone(), gate.tripped.clone(), data.clone(), log.clone());
    let restarter = tokio::spawn(async move {
        tripped.notified().await;
        let at = std::time::Instant::now();
        drop(server);
        let mut server = start_s3s(&data2, port, &log2);
        accepting(port).await;
        down.store(false, Ordering::SeqCst);
        let outage = at.elapsed();
        let exited = server.0.try_wait().unwrap();
        (server, outage, exited)
    });

    let through_gate = s3_sdk(&gate.endpoint).await;
    let ctx = migrate::Context::split(&moto, &through_gate, &testkit::env("MIGRATION_TABLE"), Arc::new(SystemClock));
    let run = plan(&ctx, &t, &options("s3://legacy-target/restart", "keep", HashMap::new(), &t.url()))
        .await
        .unwrap()
        .run
        .unwrap();
    let summary =
        migrate::run::run(&ctx, &run, source(&t), &RunOptions { transfers: 4, ..Default::default() }, quiet())
            .await
            .unwrap();
    // Once the run is done the restart is over (or never began): the bound only turns a gate that
    // never tripped into a failure instead of a hang.
    let (server, outage, exited) = tokio::time::timeout(std::time::Duration::from_secs(30), restarter)
        .await
        .expect("the gate never tripped: the run did not send half of its bytes through it")
        .unwrap();
    let (_, rows) = migrate::report::report(&ctx, &run).await.unwrap();
    let failures: Vec<_> =
        rows.iter().filter_map(|r| r.message.as_ref().map(|m| (&r.entry.source, r.reason, m))).collect();
    let context = format!(
        "server down for {outage:?} (a file's {} attempts wait at least 6.35 s), the new server {}; its log:\n{}",
        matbakh_core::migration::DEFAULT_MAX_ATTEMPTS,
        exited.map_or("running".to_string(), |s| format!("exited ({s})")),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(
        (summary.state, summary.copied, summary.failed),
        (RunState::Done, 8, 0),
        "{summary:?} {failures:?}\n{context}"
    );
    assert!(summary.retries > 0, "{summary:?}\n{context}");

    // Read back from the restarted server directly: every file, byte for byte.
    let direct = s3_sdk(&format!("http://127.0.0.1:{port}")).await;
    let check = migrate::Context::split(&moto, &direct, &testkit::env("MIGRATION_TABLE"), Arc::new(SystemClock));
    let v = migrate::verify::verify(&check, &run, &VerifyOptions { deep: true, ..Default::default() }).await.unwrap();
    assert!(v.passed() && v.checked == 8, "{v:?}");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(&log);
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() { dir_size(&e.path()) } else { e.metadata().unwrap().len() }
        })
        .sum()
}
