//! A legacy web server as the source (`http-list://` with a list of URLs): a small HTTP server
//! here answers HEAD (size, Last-Modified) and ranged GETs with real photos; the ledger and the
//! target are on moto.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::*;
use matbakh_core::migration::{FailureReason, RunId};
use migrate::run::RunOptions;
use migrate::verify::VerifyOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

const LAST_MODIFIED: &str = "Sun, 14 Jul 2019 10:30:00 GMT";

/// Serves `files` by path on 127.0.0.1; answers its address.
async fn legacy_server(files: Files) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let files = files.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request).to_string();
                let mut words = text.split_whitespace();
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let range = text.lines().find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    let (a, b) = name
                        .eq_ignore_ascii_case("range")
                        .then_some(value.trim().strip_prefix("bytes=")?.split_once('-')?)?;
                    Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?))
                });
                let body = files.lock().unwrap().get(path).cloned();
                let (status, extra, body) = match (body, range) {
                    (None, _) => ("404 Not Found", String::new(), Vec::new()),
                    (Some(b), Some((from, to))) if from < b.len() => {
                        let to = to.min(b.len() - 1);
                        (
                            "206 Partial Content",
                            format!("content-range: bytes {from}-{to}/{}\r\n", b.len()),
                            b[from..=to].to_vec(),
                        )
                    }
                    (Some(_), Some(_)) => ("416 Range Not Satisfiable", String::new(), Vec::new()),
                    (Some(b), None) => ("200 OK", String::new(), b),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nlast-modified: {LAST_MODIFIED}\r\n{extra}connection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                if method != "HEAD" {
                    let _ = stream.write_all(&body).await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_of_urls_on_a_legacy_web_server_is_a_source() {
    let sdk = moto().await;
    let ctx = context(&sdk);
    let target = bucket(&sdk, true).await;
    let photos = [
        ("/users/42/ladybird.jpg", "photos/ladybird.jpg"),
        ("/users/42/dune.jpg", "photos/dune.jpg"),
        ("/users/7/phone.jpg", "photos/phone-13mp.jpg"),
        ("/users/7/alpha.png", "other/alpha.png"),
    ];
    let files: Files =
        Arc::new(Mutex::new(photos.iter().map(|(p, c)| (p.to_string(), testkit::corpus(c).1)).collect()));
    let host = legacy_server(files.clone()).await;
    let dir = tree(&[]);
    std::fs::create_dir_all(&dir.0).unwrap();
    let list = dir.path("urls.txt");
    let lines: Vec<String> = photos.iter().map(|(p, _)| format!("http://{host}{p}")).collect();
    std::fs::write(&list, format!("# legacy photos\n{}\n", lines.join("\n"))).unwrap();
    let url = format!("http-list://{}", list.display());

    let source = migrate::source::open(&url, &sdk).unwrap();
    let planned = migrate::plan::plan(
        &ctx,
        source.clone(),
        &options(&format!("s3://{target}/web"), "keep", HashMap::new(), &url),
    )
    .await
    .unwrap();
    assert_eq!(planned.files, 4);
    let run = planned.run.unwrap();
    let rows = ctx.ledger.rows(&RunId::parse(&run).unwrap()).await.unwrap();
    // The mtime is the server's Last-Modified; the key is the URL's host and path.
    assert!(rows.iter().all(|r| r.entry.mtime_ms == 1_563_100_200_000), "{rows:?}");
    assert!(rows.iter().any(|r| r.entry.key == format!("web/{host}/users/7/alpha.png")));

    // After the plan, one photo changes on the server and another disappears.
    files.lock().unwrap().insert("/users/42/dune.jpg".into(), testkit::corpus("photos/panasonic-orientation6.jpg").1);
    files.lock().unwrap().remove("/users/7/alpha.png");
    let done = migrate::run::run(&ctx, &run, source, &RunOptions::default(), quiet()).await.unwrap();
    assert_eq!((done.copied, done.failed), (2, 2), "{done:?}");
    let (_, rows) = migrate::report::report(&ctx, &run).await.unwrap();
    let reason = |suffix: &str| rows.iter().find(|r| r.entry.source.ends_with(suffix)).unwrap().reason;
    assert_eq!(reason("dune.jpg"), Some(FailureReason::SourceChanged));
    assert_eq!(reason("alpha.png"), Some(FailureReason::SourceUnreadable));
    let copied =
        s3(&sdk).get_object().bucket(&target).key(format!("web/{host}/users/7/phone.jpg")).send().await.unwrap();
    assert_eq!(copied.body.collect().await.unwrap().into_bytes().to_vec(), testkit::corpus("photos/phone-13mp.jpg").1);
    let v = migrate::verify::verify(&ctx, &run, &VerifyOptions { deep: true, ..Default::default() }).await.unwrap();
    assert_eq!((v.checked, v.mismatches.len(), v.not_copied.len()), (2, 0, 2));

    // A URL the server does not know stops the plan, naming it.
    std::fs::write(&list, format!("http://{host}/users/9/missing.jpg\n")).unwrap();
    let err = migrate::plan::plan(
        &ctx,
        migrate::source::open(&url, &sdk).unwrap(),
        &options(&format!("s3://{target}/x"), "keep", HashMap::new(), &url),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("users/9/missing.jpg: 404"), "{err}");
}
