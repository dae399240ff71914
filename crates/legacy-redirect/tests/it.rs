//! The redirector in-process, over an in-memory migration state and a real legacy origin (a
//! static file server on a free port serving a corpus photo): what each old URL answers, and
//! that a switch (or a rollback) reaches requests within the switch cache, no later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use http::{Method, Request, StatusCode, header};
use legacy_redirect::adapters::HttpOrigin;
use legacy_redirect::{Migrations, RedirectError, Redirector, RunOf, Settings, router};
use matbakh_aws::table::LegacyMapping;
use matbakh_core::clock::Clock;
use matbakh_core::delivery::FilesCdn;
use matbakh_core::ids::{FileId, UserId};
use matbakh_core::labels::Visibility;
use matbakh_core::metadata::{FileRecord, FileStatus};
use matbakh_core::migration::redirect::{NewHome, SWITCH_CACHE_SECONDS, Served, Switches};
use matbakh_core::migration::{LegacyPrefix, Switch};
use matbakh_core::names::DisplayName;
use matbakh_core::types::ContentType;
use time::OffsetDateTime;

const RUN: &str = "r20261205t000000-00000001";
/// A run of another legacy source (a trial from a staging copy of the same tree).
const STAGING_RUN: &str = "r20261205t000000-00000002";

#[derive(Default)]
struct State {
    switches: Vec<(LegacyPrefix, Switch)>,
    mappings: HashMap<String, LegacyMapping>,
    /// Legacy paths of users who erased their accounts.
    erased: std::collections::HashSet<String>,
    files: HashMap<FileId, FileRecord>,
    verified: bool,
    counted: Vec<(Served, String)>,
    switch_reads: usize,
}

#[derive(Default)]
struct Memory(Mutex<State>);

#[async_trait]
impl Migrations for Memory {
    async fn switches(&self, source: &str) -> Result<Switches, RedirectError> {
        assert_eq!(source, "file:///srv/legacy");
        let mut s = self.0.lock().unwrap();
        s.switch_reads += 1;
        Ok(Switches::new(s.switches.clone()))
    }
    async fn mapping(&self, path: &str) -> Result<Option<LegacyMapping>, RedirectError> {
        Ok(self.0.lock().unwrap().mappings.get(path).cloned())
    }
    async fn erased(&self, path: &str) -> Result<bool, RedirectError> {
        Ok(self.0.lock().unwrap().erased.contains(path))
    }
    async fn file(&self, id: FileId) -> Result<Option<FileRecord>, RedirectError> {
        Ok(self.0.lock().unwrap().files.get(&id).cloned())
    }
    async fn run(&self, run: &str) -> Result<Option<RunOf>, RedirectError> {
        // RUN copied this redirector's source; STAGING_RUN a staging copy of the same tree.
        let source = match run {
            RUN => "file:///srv/legacy",
            STAGING_RUN => "file:///srv/staging-copy",
            _ => return Ok(None),
        };
        Ok(Some(RunOf { source: source.into(), verified: self.0.lock().unwrap().verified }))
    }
    async fn count(&self, source: &str, _at: &str, served: Served, path: &str) -> Result<(), RedirectError> {
        assert_eq!(source, "file:///srv/legacy");
        self.0.lock().unwrap().counted.push((served, path.to_owned()));
        Ok(())
    }
}

/// A clock the test moves.
struct Manual(Mutex<OffsetDateTime>);

impl Clock for Manual {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

struct Fixture {
    state: Arc<Memory>,
    clock: Arc<Manual>,
    redirector: Arc<Redirector>,
    photo: Vec<u8>,
    origin: String,
}

/// The legacy store's web server: `/uploads/shop/...` from a folder holding a photo (and a
/// large file), with `ETag`/`Last-Modified` and conditional GETs, `404` for anything else. As
/// Java servers do, a `;parameter` after a segment is not part of the path.
async fn legacy_origin(photo: &[u8]) -> String {
    let photo = Arc::new(photo.to_vec());
    let app = axum::Router::new().fallback(move |req: Request<Body>| {
        let photo = photo.clone();
        async move {
            let path: Vec<&str> = req.uri().path().split('/').map(|s| s.split(';').next().unwrap_or("")).collect();
            let path = path.join("/");
            let body = match path.as_str() {
                "/uploads/shop/42/menu%20card.jpg" | "/uploads/shop/7/old.jpg" | "/uploads/blog/a.jpg" => {
                    photo.to_vec()
                }
                "/uploads/shop/7/huge.jpg" => photo.repeat(3),
                _ => return (StatusCode::NOT_FOUND, "Not Found").into_response_parts(),
            };
            if req.headers().get(header::IF_NONE_MATCH).is_some_and(|v| v == "\"v1\"") {
                return (StatusCode::NOT_MODIFIED, "").into_response_parts();
            }
            axum::response::Response::builder()
                .header(header::CONTENT_TYPE, "image/jpeg")
                .header(header::ETAG, "\"v1\"")
                .header(header::LAST_MODIFIED, "Sun, 14 Jul 2019 00:00:00 GMT")
                .header("x-powered-by", "legacy")
                // What a web server usually says of uploads; the legacy CDN would keep it a year.
                .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
                .header(header::EXPIRES, "Thu, 31 Dec 2037 23:55:55 GMT")
                .body(Body::from(body))
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/uploads")
}

trait IntoParts {
    fn into_response_parts(self) -> axum::response::Response;
}

impl<T: axum::response::IntoResponse> IntoParts for T {
    fn into_response_parts(self) -> axum::response::Response {
        self.into_response()
    }
}

fn record(name: &str, visibility: Visibility, status: FileStatus) -> FileRecord {
    let r = testkit::rand32();
    let id = FileId::new(1_772_000_000_000, r[..10].try_into().unwrap());
    let mut r = FileRecord::upload(
        id,
        UserId::parse("alice").unwrap(),
        DisplayName::parse(name).unwrap(),
        ContentType::parse("image/jpeg").unwrap(),
        OffsetDateTime::now_utc(),
    );
    r.status = status;
    r.labels.visibility = visibility;
    r
}

async fn fixture() -> Fixture {
    let (_, photo) = testkit::corpus("photos/ladybird.jpg");
    let origin = legacy_origin(&photo).await;
    let state = Arc::new(Memory::default());
    let clock = Arc::new(Manual(Mutex::new(OffsetDateTime::now_utc())));
    let home = NewHome { cdn: FilesCdn::new("https://files.example", None), app_url: "https://app.example".into() };
    let mut settings = Settings::new("file:///srv/legacy".into(), home);
    // Small enough that the "huge" file (three photos) is beyond it, the photo not.
    settings.fallback_max_bytes = photo.len() as u64 * 2;
    let redirector =
        Arc::new(Redirector::new(settings, state.clone(), Arc::new(HttpOrigin::new(&origin).unwrap()), clock.clone()));
    Fixture { state, clock, redirector, photo, origin }
}

impl Fixture {
    fn migrate(&self, path: &str, file: FileRecord) -> FileId {
        let mut s = self.state.0.lock().unwrap();
        let id = file.file_id;
        s.mappings.insert(
            path.to_owned(),
            LegacyMapping { legacy_path: path.into(), file_id: id, key: file.key.as_str().into(), run: RUN.into() },
        );
        s.files.insert(id, file);
        s.verified = true;
        id
    }

    fn switch(&self, prefix: &str, to: Switch) {
        let mut s = self.state.0.lock().unwrap();
        let prefix = LegacyPrefix::parse(prefix).unwrap();
        s.switches.retain(|(p, _)| *p != prefix);
        s.switches.push((prefix, to));
    }

    fn wait(&self, secs: u64) {
        *self.clock.0.lock().unwrap() += std::time::Duration::from_secs(secs);
    }

    async fn get(&self, uri: &str) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        self.call(Method::GET, uri, &[]).await
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        testkit::call_router_raw(router(self.redirector.clone()), req.body(Body::empty()).unwrap()).await
    }

    fn counted(&self) -> Vec<(Served, String)> {
        self.state.0.lock().unwrap().counted.clone()
    }
}

fn location(h: &http::HeaderMap) -> &str {
    h.get(header::LOCATION).map(|v| v.to_str().unwrap()).unwrap_or("")
}

#[tokio::test]
async fn before_the_cutover_every_old_url_is_the_legacy_stores_answer() {
    let f = fixture().await;
    f.migrate("shop/42/menu card.jpg", record("menu card.jpg", Visibility::Public, FileStatus::Ready));
    let (status, h, body) = f.get("/uploads/shop/42/menu%20card.jpg").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, f.photo, "the legacy bytes, read through");
    assert_eq!(h[header::CONTENT_TYPE], "image/jpeg");
    assert_eq!(h[header::ETAG], "\"v1\"");
    assert_eq!(h[header::LAST_MODIFIED], "Sun, 14 Jul 2019 00:00:00 GMT");
    assert!(h.get("x-powered-by").is_none(), "only content and caching headers pass");
    assert_eq!(h["x-legacy-answer"], "legacy; not_switched");
    // a conditional GET is the origin's to answer
    let (status, _, body) =
        f.call(Method::GET, "/uploads/shop/42/menu%20card.jpg", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!((status, body.len()), (StatusCode::NOT_MODIFIED, 0));
    // an unknown path is the legacy store's 404, not ours
    let (status, _, body) = f.get("/uploads/shop/42/nothing.jpg").await;
    assert_eq!((status, body.as_slice()), (StatusCode::NOT_FOUND, b"Not Found".as_slice()));
    let photo = f.photo.len() as u64;
    assert_eq!(
        f.counted(),
        vec![
            (Served::Fallback { bytes: photo }, "shop/42/menu card.jpg".to_owned()),
            (Served::Fallback { bytes: 0 }, "shop/42/menu card.jpg".to_owned()),
            (Served::Fallback { bytes: 9 }, "shop/42/nothing.jpg".to_owned()),
        ]
    );
}

#[tokio::test]
async fn after_the_cutover_verified_files_move_and_the_rest_is_read_through() {
    let f = fixture().await;
    let public = f.migrate("shop/42/menu card.jpg", record("menu card.jpg", Visibility::Public, FileStatus::Ready));
    let private = f.migrate("shop/7/old.jpg", record("old.jpg", Visibility::Private, FileStatus::Ready));
    f.switch("shop", Switch::Platform);

    let (status, h, body) = f.get("/uploads/shop/42/menu%20card.jpg").await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(location(&h), format!("https://files.example/p/{public}/original/menu%20card.jpg"));
    assert_eq!(h[header::CACHE_CONTROL], "public, max-age=300");
    assert!(body.is_empty());
    let (status, h, _) = f.call(Method::HEAD, "/uploads/shop/7/old.jpg", &[]).await;
    assert_eq!(
        (status, location(&h)),
        (StatusCode::MOVED_PERMANENTLY, format!("https://app.example/#file/{private}").as_str())
    );

    // not migrated, in a switched prefix: still the legacy store's
    let (status, h, body) = f.get("/uploads/shop/42/nothing.jpg").await;
    assert_eq!((status, h["x-legacy-answer"].to_str().unwrap()), (StatusCode::NOT_FOUND, "legacy; not_migrated"));
    assert_eq!(body, b"Not Found");
    // outside the switched prefix: the legacy store's
    f.migrate("blog/a.jpg", record("a.jpg", Visibility::Public, FileStatus::Ready));
    let (status, _, body) = f.get("/uploads/blog/a.jpg").await;
    assert_eq!((status, body == f.photo), (StatusCode::OK, true));
    // too large for a Lambda answer: a 302 to the legacy origin, never cached
    let (status, h, _) = f.get("/uploads/shop/7/huge.jpg").await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(location(&h), format!("{}/shop/7/huge.jpg", f.origin));
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    let served: Vec<Served> = f.counted().into_iter().map(|(s, _)| s).collect();
    assert_eq!(served[..2], [Served::Redirect, Served::Redirect]);
    assert_eq!(served[4], Served::LargeRedirect);
}

#[tokio::test]
async fn an_unverified_run_keeps_its_files_on_the_legacy_store() {
    let f = fixture().await;
    f.migrate("shop/42/menu card.jpg", record("menu card.jpg", Visibility::Public, FileStatus::Ready));
    f.state.0.lock().unwrap().verified = false;
    f.switch("shop", Switch::Platform);
    let (status, h, body) = f.get("/uploads/shop/42/menu%20card.jpg").await;
    assert_eq!(
        (status, h["x-legacy-answer"].to_str().unwrap(), body == f.photo),
        (StatusCode::OK, "legacy; not_verified", true)
    );
    assert_eq!(h[header::CACHE_CONTROL], "no-store", "on its way: not cached");
}

/// Review 26: mappings are keyed by the legacy path alone; a run of another legacy source
/// (a trial from a staging copy, a second site with the same layout) that registered the same
/// path last sent this source's old URL to that run's file, perhaps another owner's.
#[tokio::test]
async fn a_mapping_another_sources_run_wrote_is_not_this_sources_file() {
    let f = fixture().await;
    let id = f.migrate("shop/42/menu card.jpg", record("menu card.jpg", Visibility::Public, FileStatus::Ready));
    f.state.0.lock().unwrap().mappings.get_mut("shop/42/menu card.jpg").unwrap().run = STAGING_RUN.into();
    f.switch("shop", Switch::Platform);
    let (status, h, body) = f.get("/uploads/shop/42/menu%20card.jpg").await;
    assert_eq!(
        (status, h["x-legacy-answer"].to_str().unwrap(), body == f.photo),
        (StatusCode::OK, "legacy; not_migrated", true),
        "the legacy store's own file, not {id}"
    );
}

#[tokio::test]
async fn files_deleted_on_the_platform_are_gone_not_served_from_the_legacy_store() {
    let f = fixture().await;
    let id = f.migrate("shop/42/menu card.jpg", record("menu card.jpg", Visibility::Public, FileStatus::Deleted));
    f.switch("shop", Switch::Platform);
    let (status, _, body) = f.get("/uploads/shop/42/menu%20card.jpg").await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["error"], "gone");
    // erased: the row is gone too
    f.state.0.lock().unwrap().files.remove(&id);
    assert_eq!(f.get("/uploads/shop/42/menu%20card.jpg").await.0, StatusCode::GONE);
}

/// GDPR: once a user erased their account on the platform, their old URLs answer 410 under every
/// switch, migrated or not, and the legacy store (which may still hold the files) is not asked.
#[tokio::test]
async fn an_erased_users_old_urls_are_gone_and_the_legacy_store_is_not_read() {
    let f = fixture().await;
    let erased = "shop/42/menu card.jpg";
    let (status, h, _) = f.get("/uploads/shop/42/menu%20card.jpg").await;
    assert_eq!(status, StatusCode::OK, "served before the erase");
    // ... but for 5 minutes at most (the origin asked for a year): the legacy CDN's copy must
    // not outlive the erase's 410 (security review 20, migration 2).
    assert_eq!(h[header::CACHE_CONTROL], "public, max-age=300");
    assert!(h.get(header::EXPIRES).is_none());
    f.state.0.lock().unwrap().erased.insert(erased.to_owned());
    let (status, h, body) = f.get("/uploads/shop/42/menu%20card.jpg").await;
    assert_eq!((status, h["x-legacy-answer"].to_str().unwrap()), (StatusCode::GONE, "gone"));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["error"], "gone");
    f.migrate(erased, record("menu card.jpg", Visibility::Public, FileStatus::Ready));
    for to in [Switch::Legacy, Switch::Platform] {
        f.switch("shop", to);
        f.wait(SWITCH_CACHE_SECONDS + 1);
        assert_eq!(f.get("/uploads/shop/42/menu%20card.jpg").await.0, StatusCode::GONE, "{to:?}");
    }
    let counted = f.counted();
    assert_eq!(counted[0].0, Served::Fallback { bytes: f.photo.len() as u64 });
    assert!(counted[1..].iter().all(|(served, path)| *served == Served::Gone && path == erased), "{counted:?}");

    // Review 26: another spelling of the same file to the origin (a `;parameter` a Java server
    // drops) is another legacy path to the redirector, which is not erased; the origin was
    // asked with the spelling it was sent and answered with the erased user's photo. It is
    // asked for the path the answer was decided for, one spelling of it.
    f.switch("shop", Switch::Legacy);
    f.wait(SWITCH_CACHE_SECONDS + 1);
    let (status, h, body) = f.get("/uploads/shop/42/menu%20card.jpg;jsessionid=1").await;
    assert_ne!(body, f.photo, "the erased user's photo was served: {status} {h:?}");
    assert_eq!(status, StatusCode::NOT_FOUND, "the origin has no file of that name");
}

#[tokio::test]
async fn a_switch_and_a_rollback_reach_requests_within_the_switch_cache() {
    let f = fixture().await;
    f.migrate("shop/42/menu card.jpg", record("menu card.jpg", Visibility::Public, FileStatus::Ready));
    let url = "/uploads/shop/42/menu%20card.jpg";
    assert_eq!(f.get(url).await.0, StatusCode::OK);
    f.switch("shop/42", Switch::Platform);
    assert_eq!(f.get(url).await.0, StatusCode::OK, "the switches read a moment ago still hold");
    f.wait(SWITCH_CACHE_SECONDS);
    assert_eq!(f.get(url).await.0, StatusCode::MOVED_PERMANENTLY);
    f.switch("shop/42", Switch::Legacy);
    f.wait(SWITCH_CACHE_SECONDS);
    let (status, _, body) = f.get(url).await;
    assert_eq!((status, body == f.photo), (StatusCode::OK, true), "rolled back: read through again");
    assert_eq!(f.state.0.lock().unwrap().switch_reads, 3, "one read per cache period, not per request");
}

#[tokio::test]
async fn bad_old_urls_and_other_methods_get_a_clear_error_and_touch_nothing() {
    let f = fixture().await;
    for bad in ["/uploads/a/../b.jpg", "/uploads/a%00b.jpg", "/elsewhere/a.jpg", "/uploads/"] {
        let (status, h, body) = f.get(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["error"], "bad_path");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
    }
    let (status, _, _) = f.call(Method::POST, "/uploads/shop/7/old.jpg", &[]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(f.counted().is_empty());
}

#[tokio::test]
async fn an_unreachable_legacy_origin_is_a_502_never_a_made_up_404() {
    let f = fixture().await;
    let state = Arc::new(Memory::default());
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let home = NewHome { cdn: FilesCdn::new("https://files.example", None), app_url: "https://app.example".into() };
    let r = Arc::new(Redirector::new(
        Settings::new("file:///srv/legacy".into(), home),
        state.clone(),
        Arc::new(HttpOrigin::new(&format!("http://{closed}/uploads")).unwrap()),
        f.clock.clone(),
    ));
    let req = Request::get("/uploads/shop/7/old.jpg").body(Body::empty()).unwrap();
    let (status, _, body) = testkit::call_router_raw(router(r), req).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["error"], "legacy_origin_unavailable");
    assert!(state.0.lock().unwrap().counted.is_empty());
}
