//! A legacy web server as the source (`http-list://` with a list of URLs): a small HTTP server
//! here answers HEAD (size, Last-Modified) and ranged GETs with real photos, or redirects; the
//! ledger and the target are on moto. The server is on 127.0.0.1, so the tests that copy allow
//! private addresses, and the one that proves the refusal does not.

use crate::common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use matbakh_core::migration::{FailureReason, RunId};
use migrate::egress::{HttpPolicy, MAX_SAME_ORIGIN_REDIRECTS, Redirects};
use migrate::plan::PlanOptions;
use migrate::run::RunOptions;
use migrate::verify::VerifyOptions;
use tokio::io::AsyncWriteExt;

type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

const LAST_MODIFIED: &str = "Sun, 14 Jul 2019 10:30:00 GMT";

/// No redirects; the local server's address allowed.
const LOCAL: HttpPolicy = HttpPolicy { redirects: Redirects::None, allow_private_addresses: true };

/// Plan options for `source` into `target` with the `keep` rule, reading with `http`.
fn http_options(target: &str, source: &str, http: HttpPolicy) -> PlanOptions {
    let mut o = options(target, "keep", HashMap::new(), source);
    o.copy.http = http;
    o
}

/// A legacy web server: files by path, redirects by path (to a `Location`), and how many
/// requests it was sent; `keep_alive`: a connection serves one request after another (else it
/// is closed after each answer).
#[derive(Clone, Default)]
struct Legacy {
    files: Files,
    redirects: Arc<Mutex<HashMap<String, String>>>,
    requests: Arc<AtomicUsize>,
    keep_alive: bool,
}

impl Legacy {
    fn serving(files: &[(&str, Vec<u8>)]) -> Self {
        let legacy = Legacy::default();
        legacy.files.lock().unwrap().extend(files.iter().map(|(p, b)| (p.to_string(), b.clone())));
        legacy
    }

    fn redirect(&self, path: &str, location: &str) {
        self.redirects.lock().unwrap().insert(path.to_owned(), location.to_owned());
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The answer to `method` of `path` (with `range`): head and body.
    fn answer(&self, method: &str, path: &str, range: Option<(usize, usize)>) -> (String, Vec<u8>) {
        let connection = if self.keep_alive { "keep-alive" } else { "close" };
        let redirect = self.redirects.lock().unwrap().get(path).cloned();
        if let Some(location) = redirect {
            let head = format!(
                "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: {connection}\r\n\r\n"
            );
            return (head, Vec::new());
        }
        let body = self.files.lock().unwrap().get(path).cloned();
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
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nlast-modified: {LAST_MODIFIED}\r\n{extra}connection: {connection}\r\n\r\n",
            body.len()
        );
        (head, if method == "HEAD" { Vec::new() } else { body })
    }
}

/// Serves `files` by path on 127.0.0.1; answers its address.
async fn legacy_server(files: Files) -> String {
    serve(Legacy { files, ..Legacy::default() }).await
}

/// Serves `legacy` on 127.0.0.1; answers its address.
async fn serve(legacy: Legacy) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let legacy = legacy.clone();
            tokio::spawn(async move {
                while let Some(testkit::RequestHead { method, path, range }) =
                    testkit::read_request_head(&mut stream).await
                {
                    legacy.requests.fetch_add(1, Ordering::SeqCst);
                    let (head, body) = legacy.answer(&method, &path, range);
                    let sent = stream.write_all(head.as_bytes()).await.is_ok() && stream.write_all(&body).await.is_ok();
                    if !sent || !legacy.keep_alive {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
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

    let source = migrate::source::open(&url, &sdk, LOCAL).unwrap();
    let planned = migrate::plan::plan(&ctx, source.clone(), &http_options(&format!("s3://{target}/web"), &url, LOCAL))
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
        migrate::source::open(&url, &sdk, LOCAL).unwrap(),
        &http_options(&format!("s3://{target}/x"), &url, LOCAL),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("users/9/missing.jpg: 404"), "{err}");
}

/// A list file naming `urls`, and its `http-list://` source URL.
fn url_list(urls: &[String]) -> (Tree, String) {
    let dir = tree(&[]);
    std::fs::create_dir_all(&dir.0).unwrap();
    let list = dir.path("urls.txt");
    std::fs::write(&list, urls.join("\n")).unwrap();
    let url = format!("http-list://{}", list.display());
    (dir, url)
}

fn photo(name: &str) -> Vec<u8> {
    testkit::corpus(&format!("photos/{name}")).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn redirects_are_not_followed_by_default() {
    let sdk = moto().await;
    let ctx = context(&sdk);
    let target = bucket(&sdk, true).await;
    // An internal service the legacy server points at (on another port, as a metadata service
    // or an intranet host would be), holding the same bytes the plan saw.
    let internal = Legacy::serving(&[("/latest/a.jpg", photo("dune.jpg")), ("/latest/b.jpg", photo("ladybird.jpg"))]);
    let internal_host = serve(internal.clone()).await;
    let legacy = Legacy::serving(&[
        ("/users/1/a.jpg", photo("dune.jpg")),
        ("/users/1/b.jpg", photo("ladybird.jpg")),
        ("/moved/b.jpg", photo("ladybird.jpg")),
    ]);
    let host = serve(legacy.clone()).await;

    // A URL that redirects elsewhere is refused by the plan, which names it and the redirect.
    legacy.redirect("/users/9/meta.jpg", &format!("http://{internal_host}/latest/a.jpg"));
    let (_list, url) = url_list(&[format!("http://{host}/users/9/meta.jpg")]);
    let err = migrate::plan::plan(
        &ctx,
        migrate::source::open(&url, &sdk, LOCAL).unwrap(),
        &http_options(&format!("s3://{target}/x"), &url, LOCAL),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("users/9/meta.jpg: redirects to"), "{err}");
    assert!(err.to_string().contains("--follow-redirects"), "{err}");

    // Redirects that appear after the plan fail their files, with the reason; nothing is copied.
    let (_list, url) = url_list(&[format!("http://{host}/users/1/a.jpg"), format!("http://{host}/users/1/b.jpg")]);
    let source = migrate::source::open(&url, &sdk, LOCAL).unwrap();
    let planned = migrate::plan::plan(&ctx, source.clone(), &http_options(&format!("s3://{target}/web"), &url, LOCAL))
        .await
        .unwrap();
    let run = planned.run.unwrap();
    legacy.redirect("/users/1/a.jpg", &format!("http://{internal_host}/latest/a.jpg"));
    legacy.redirect("/users/1/b.jpg", &format!("http://{host}/moved/b.jpg"));
    let done = migrate::run::run(&ctx, &run, source, &RunOptions::default(), quiet()).await.unwrap();
    assert_eq!((done.copied, done.failed), (0, 2), "{done:?}");
    let (_, rows) = migrate::report::report(&ctx, &run).await.unwrap();
    for row in &rows {
        assert_eq!(row.reason, Some(FailureReason::SourceUnreadable), "{row:?}");
        let message = row.message.as_deref().unwrap_or_default();
        assert!(message.contains("redirects to http://") && message.contains("--follow-redirects"), "{message}");
    }
    assert_eq!(internal.requests(), 0, "the internal service was reached");
    assert!(snapshot(&sdk, &target, "web/").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_host_that_resolves_to_a_private_address_is_refused() {
    let sdk = moto().await;
    let ctx = context(&sdk);
    let target = bucket(&sdk, true).await;
    let legacy = Legacy::serving(&[("/users/1/a.jpg", photo("dune.jpg"))]);
    let host = serve(legacy.clone()).await;
    let port = host.rsplit_once(':').unwrap().1;
    // A name that resolves to loopback, and loopback written as addresses.
    for url in [
        format!("http://localhost:{port}/users/1/a.jpg"),
        format!("http://{host}/users/1/a.jpg"),
        format!("http://[::ffff:127.0.0.1]:{port}/users/1/a.jpg"),
    ] {
        let (_list, source_url) = url_list(std::slice::from_ref(&url));
        let strict = HttpPolicy::default();
        let source = migrate::source::open(&source_url, &sdk, strict).unwrap();
        let err =
            migrate::plan::plan(&ctx, source.clone(), &http_options(&format!("s3://{target}/x"), &source_url, strict))
                .await
                .unwrap_err();
        assert!(err.to_string().contains("loopback") && err.to_string().contains("--allow-private-addresses"), "{err}");
        // Reads are refused alike (a worker of a run planned elsewhere).
        let read = source.read(url.strip_prefix("http://").unwrap(), 0, 10).await.unwrap_err();
        assert!(read.to_string().contains("loopback"), "{read}");
    }
    assert_eq!(legacy.requests(), 0, "the server was reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn same_origin_redirects_are_followed_and_others_refused() {
    let sdk = moto().await;
    let ctx = context(&sdk);
    let target = bucket(&sdk, true).await;
    let same_origin = HttpPolicy { redirects: Redirects::SameOrigin, allow_private_addresses: true };
    let other = Legacy::serving(&[("/users/1/b.jpg", photo("ladybird.jpg"))]);
    let other_host = serve(other.clone()).await;
    let legacy = Legacy::serving(&[
        ("/users/1/a.jpg", photo("dune.jpg")),
        ("/users/1/b.jpg", photo("ladybird.jpg")),
        ("/users/1/c.jpg", photo("phone-13mp.jpg")),
        ("/new/a.jpg", photo("dune.jpg")),
    ]);
    let host = serve(legacy.clone()).await;
    let port = host.rsplit_once(':').unwrap().1;

    // The plan follows a redirect to the same scheme, host and port; one to another port, to
    // another name of the same machine, or a chain longer than the limit fails, named.
    legacy.redirect("/users/2/a.jpg", "/new/a.jpg");
    legacy.redirect("/users/2/b.jpg", &format!("http://{other_host}/users/1/b.jpg"));
    legacy.redirect("/users/2/c.jpg", &format!("http://localhost:{port}/users/1/c.jpg"));
    legacy.redirect("/users/2/loop.jpg", "/users/2/loop.jpg");
    let urls: Vec<String> = ["a", "b", "c", "loop"].iter().map(|n| format!("http://{host}/users/2/{n}.jpg")).collect();
    let (_list, url) = url_list(&urls);
    let err = migrate::plan::plan(
        &ctx,
        migrate::source::open(&url, &sdk, same_origin).unwrap(),
        &http_options(&format!("s3://{target}/x"), &url, same_origin),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(!err.contains("users/2/a.jpg"), "{err}");
    for (name, to) in [
        ("b", format!("http://{other_host}/users/1/b.jpg")),
        ("c", format!("http://localhost:{port}/users/1/c.jpg")),
        ("loop", format!("http://{host}/users/2/loop.jpg")),
    ] {
        assert!(err.contains(&format!("users/2/{name}.jpg: redirects to {to}, not followed")), "{err}");
    }
    assert!(err.contains(&format!("at most {MAX_SAME_ORIGIN_REDIRECTS}")), "{err}");

    // At copy time alike: planned while served directly, then redirected.
    let (_list, url) = url_list(&[format!("http://{host}/users/1/a.jpg"), format!("http://{host}/users/1/b.jpg")]);
    let source = migrate::source::open(&url, &sdk, same_origin).unwrap();
    let planned =
        migrate::plan::plan(&ctx, source.clone(), &http_options(&format!("s3://{target}/web"), &url, same_origin))
            .await
            .unwrap();
    let run = planned.run.unwrap();
    legacy.redirect("/users/1/a.jpg", &format!("http://{host}/new/a.jpg"));
    legacy.redirect("/users/1/b.jpg", &format!("http://{other_host}/users/1/b.jpg"));
    let done = migrate::run::run(&ctx, &run, source, &RunOptions::default(), quiet()).await.unwrap();
    assert_eq!((done.copied, done.failed), (1, 1), "{done:?}");
    let (_, rows) = migrate::report::report(&ctx, &run).await.unwrap();
    let b = rows.iter().find(|r| r.entry.source.ends_with("users/1/b.jpg")).unwrap();
    assert_eq!(b.reason, Some(FailureReason::SourceUnreadable), "{b:?}");
    assert!(b.message.as_deref().unwrap_or_default().contains(&format!("redirects to http://{other_host}/")), "{b:?}");
    let copied = s3(&sdk).get_object().bucket(&target).key(format!("web/{host}/users/1/a.jpg")).send().await.unwrap();
    assert_eq!(copied.body.collect().await.unwrap().into_bytes().to_vec(), photo("dune.jpg"));
    assert_eq!(other.requests(), 0, "the other port was reached");
}

/// A migration worker handles one message after another, each asking for the run's source:
/// it is opened once an instance (`Context::source`), so every message reads through one
/// client and its pool of connections to the legacy server (not a new client, connection and
/// TLS handshake a message); another HTTP policy is another source. (Whether hyper hands the
/// next request the idle connection or opens another depends on when its pool task runs:
/// what is asserted is the one source.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_messages_read_through_one_source_an_instance() {
    let legacy = Legacy {
        keep_alive: true,
        ..Legacy::serving(&[("/users/1/a.jpg", photo("dune.jpg")), ("/users/1/b.jpg", photo("ladybird.jpg"))])
    };
    let host = serve(legacy.clone()).await;
    let (_list, url) = url_list(&[format!("http://{host}/users/1/a.jpg"), format!("http://{host}/users/1/b.jpg")]);
    let sdk = aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
    let ctx = migrate::Context::new(&sdk, "ledger", Arc::new(matbakh_core::clock::SystemClock));
    let first = ctx.source(&url, &sdk, LOCAL).unwrap();
    for (n, name) in ["a.jpg", "b.jpg", "a.jpg"].into_iter().enumerate() {
        // One message's reads.
        let source = ctx.source(&url, &sdk, LOCAL).unwrap();
        assert!(Arc::ptr_eq(&first, &source), "message {n} opened the source again");
        let head = source.read(&format!("{host}/users/1/{name}"), 0, 16).await.unwrap();
        assert_eq!(head, photo(if name == "a.jpg" { "dune.jpg" } else { "ladybird.jpg" })[..16]);
    }
    assert_eq!(legacy.requests(), 3);
    let following = HttpPolicy { redirects: Redirects::SameOrigin, ..LOCAL };
    assert!(!Arc::ptr_eq(&first, &ctx.source(&url, &sdk, following).unwrap()));
}
