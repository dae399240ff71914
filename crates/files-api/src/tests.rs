//! The files API in-process on the in-memory ports: no server. What DynamoDB and S3 add
//! (indexes, conditions, versions) is tested against moto in `tests/moto.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use matbakh_app::delivery::Delivery;
use matbakh_app::fakes::{InMemory, InMemoryCdn, InMemoryObjects};
use matbakh_app::files::Files;
use matbakh_app::images::{Images, Signer};
use matbakh_app::ports::{Download, ObjectAccess, PortResult, SignedUrl, Upload};
use matbakh_core::audit::AuditAction;
use matbakh_core::clock::FixedClock;
use matbakh_core::delivery::{CdnSigner, FilesCdn, ORIGINAL_CACHE_CONTROL, VARIANT_CACHE_CONTROL};
use matbakh_core::ids::{FileId, ObjectKey, UserId};
use matbakh_core::imgproxy::{Presets, SigningKeys};
use matbakh_core::limits::Limits;
use matbakh_core::metadata::{FileDetails, FileRecord, FileStatus, ImageInfo, VariantInfo};
use matbakh_core::names::DisplayName;
use matbakh_core::post_policy::PresignedPost;
use matbakh_core::types::ContentType;
use serde_json::{Value, json};
use testkit::TestIdp;
use time::OffsetDateTime;
use time::macros::datetime;

use crate::{Api, Cases, routes};

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
/// The administrator of these tests' deployment (`ADMIN_USERS`).
const ADMIN: &str = "ops-admin";

/// Image URLs signed with a test pair for `https://files.test/t`, one preset.
fn signer() -> Signer {
    let keys = SigningKeys::from_hex("6b6579", "73616c74").unwrap();
    let presets = Presets::parse("card=rt:fill/w:400/h:300/g:sm").unwrap();
    Signer { base_url: "https://files.test/t".into(), keys: Arc::new(keys), presets }
}

struct World {
    repo: Arc<InMemory>,
    objects: Arc<InMemoryObjects>,
    idp: TestIdp,
    /// The files CDN, when this world has one, and the invalidations asked of it.
    cdn: Option<FilesCdn>,
    files_edge: Arc<InMemoryCdn>,
    /// The limits the function runs with (the defaults unless a test lowers one).
    limits: Limits,
}

impl World {
    fn new() -> Self {
        World {
            repo: Arc::new(InMemory::new()),
            objects: Arc::new(InMemoryObjects::new()),
            idp: TestIdp::default(),
            cdn: None,
            files_edge: Arc::new(InMemoryCdn::new()),
            limits: Limits::default(),
        }
    }

    /// A world whose files CDN is `https://files.test`, signing with the test key.
    fn with_cdn() -> Self {
        let signer = CdnSigner::from_pem("KTESTKEY", testkit::CDN_TEST_KEY).unwrap();
        World { cdn: Some(FilesCdn::new("https://files.test", Some(signer))), ..World::new() }
    }

    /// The function as deployed, on this world's ports, at `now`.
    fn api(&self, now: OffsetDateTime) -> Api {
        let files = Files {
            files: self.repo.clone(),
            usage: self.repo.clone(),
            counters: self.repo.clone(),
            audit: matbakh_app::fakes::trail(self.repo.clone(), Arc::new(FixedClock(now))),
            objects: self.objects.clone(),
            limits: self.limits.clone(),
            clock: Arc::new(FixedClock(now)),
            delivery: Delivery {
                cdn: self.cdn.clone(),
                edge: Some(self.files_edge.clone()),
                ..matbakh_app::fakes::delivery(self.objects.clone(), Arc::new(FixedClock(now)))
            },
            admins: Arc::new(BTreeSet::from([ADMIN.to_owned()])),
        };
        let images = Images {
            files: self.repo.clone(),
            counters: self.repo.clone(),
            signer: signer(),
            limits: self.limits.clone(),
            clock: Arc::new(FixedClock(now)),
        };
        Api { cases: Cases { files, images }, auth: self.idp.auth.clone() }
    }

    /// A READY file of `owner`, uploaded `minutes` before [`NOW`], with one variant if an image.
    fn file(&self, owner: &str, name: &str, content_type: &str, minutes: i64) -> FileId {
        let at = NOW - Duration::from_secs(60 * minutes as u64);
        let ms = u64::try_from(at.unix_timestamp() * 1000).unwrap();
        let id = FileId::new(ms, [name.len() as u8; 10]);
        let mut record = FileRecord::upload(
            id,
            UserId::parse(owner).unwrap(),
            DisplayName::parse(name).unwrap(),
            ContentType::parse(content_type).unwrap(),
            at,
        );
        record.size = 1000 + name.len() as u64;
        record.status = FileStatus::Ready;
        let image = content_type.starts_with("image/").then(|| ImageInfo {
            width: 1600,
            height: 1200,
            frames: 1,
            placeholder: "3OcRJYB4d3h/iIeHeEh3eIhw+j2w".into(),
            variants: [(320, "webp"), (160, "webp"), (320, "jpg")]
                .map(|(width, ext)| VariantInfo {
                    width,
                    height: width * 3 / 4,
                    content_type: if ext == "jpg" { "image/jpeg" } else { "image/webp" }.into(),
                    key: ObjectKey::variant(id, width, ext),
                })
                .to_vec(),
        });
        self.objects.put_bytes(&record.key, name.as_bytes().to_vec());
        for v in image.iter().flat_map(|i| &i.variants) {
            self.objects.put_bytes(&v.key, v.key.as_str().as_bytes().to_vec());
        }
        self.repo.insert(FileDetails { image, ..FileDetails::new(record) });
        id
    }

    async fn call(
        &self,
        now: OffsetDateTime,
        method: Method,
        uri: &str,
        user: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri).header("user-agent", "tests");
        if let Some(user) = user {
            req = req.header("authorization", self.idp.bearer(user));
        }
        let body = body.map_or_else(Body::empty, |v| Body::from(v.to_string()));
        testkit::call_router(routes(self.api(now)), req.body(body).unwrap()).await
    }

    async fn get(&self, uri: &str, user: &str) -> (StatusCode, Value) {
        self.call(NOW, Method::GET, uri, Some(user), None).await
    }

    fn status(&self, id: FileId) -> FileStatus {
        self.repo.get(id).unwrap().record.status
    }

    /// Pins the file's current object version as its accepted one, as settling does: its key
    /// and that version.
    /// A READY image of `owner`'s, made public by its owner (`PATCH`): its id and URI.
    async fn public_file(&self, owner: &str, name: &str) -> (FileId, String) {
        let id = self.file(owner, name, "image/jpeg", 1);
        let uri = format!("/v1/files/{id}");
        let (status, _) = self.call(NOW, Method::PATCH, &uri, Some(owner), Some(json!({"visibility": "public"}))).await;
        assert_eq!(status, StatusCode::OK);
        (id, uri)
    }

    /// S3's lifecycle moved `id`'s (pinned) original to Glacier and the indexer heard of it.
    async fn archived_by_s3(&self, id: FileId) -> (ObjectKey, String) {
        let (key, version) = self.pin_version(id).await;
        self.objects.transition(&key, &version, "GLACIER");
        assert!(self.api(NOW).cases.files.transitioned(id, Some(&version)).await.unwrap());
        (key, version)
    }

    /// S3 made the restored copy of an archived original and said so: whether the row changed.
    async fn restored_by_s3(&self, id: FileId, (key, version): &(ObjectKey, String)) -> bool {
        self.objects.restored(key, version);
        self.api(NOW).cases.files.restore_completed(id, Some(version), None).await.unwrap()
    }

    async fn pin_version(&self, id: FileId) -> (ObjectKey, String) {
        use matbakh_app::ports::ObjectLifecycle;
        let mut d = self.repo.get(id).unwrap();
        let key = d.record.key.clone();
        let version = self.objects.head(&key, None).await.unwrap().unwrap().version_id.unwrap();
        d.record.version_id = Some(version.clone());
        self.repo.insert(d);
        (key, version)
    }
}

#[tokio::test]
async fn lists_only_the_callers_files_newest_first_in_pages_with_windowed_variant_urls() {
    let w = World::new();
    let old = w.file("alice", "menu.pdf", "application/pdf", 30);
    let new = w.file("alice", "dish.jpg", "image/jpeg", 10);
    w.file("bob", "bobs.jpg", "image/jpeg", 5);

    let (status, page) = w.get("/v1/files?limit=1", "alice").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let files = page["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["fileId"], new.to_string());
    assert_eq!(files[0]["name"], "dish.jpg");
    assert_eq!(files[0]["status"], "READY");
    assert_eq!(files[0]["width"], 1600);
    // A presigned URL, signed at the start of the image-URL window and valid for two windows.
    let window = Limits::default().image_url_ttl;
    let start = matbakh_core::clock::window_start(NOW, window);
    let url = files[0]["variants"][0]["url"].as_str().unwrap();
    let expected = format!("?signedAt={}&ttl={}", start.unix_timestamp(), (window * 2).as_secs());
    assert!(url.starts_with(&format!("memory://bucket/derived/{new}/320.webp")) && url.ends_with(&expected), "{url}");
    // A ready srcset per type, narrowest first.
    let url_of = |i: usize| files[0]["variants"][i]["url"].as_str().unwrap().to_owned();
    assert_eq!(files[0]["srcset"]["image/webp"], format!("{} 160w, {} 320w", url_of(1), url_of(0)));
    assert_eq!(files[0]["srcset"]["image/jpeg"], format!("{} 320w", url_of(2)));

    let cursor = page["nextCursor"].as_str().expect("a second page");
    let (_, second) = w.get(&format!("/v1/files?limit=1&cursor={cursor}"), "alice").await;
    let ids: Vec<&str> = second["files"].as_array().unwrap().iter().map(|f| f["fileId"].as_str().unwrap()).collect();
    assert_eq!(ids, [old.to_string()]);
    assert!(second["nextCursor"].is_null());
    assert!(second["files"][0].get("variants").is_none(), "a PDF has no variants");
}

#[tokio::test]
async fn someone_elses_file_answers_like_a_missing_one_on_every_route_and_stays_as_it_was() {
    let w = World::new();
    let bobs = w.file("bob", "private.jpg", "image/jpeg", 5);
    let missing = FileId::new(1, [7; 10]);
    for id in [bobs.to_string(), missing.to_string(), "not-an-id".to_owned()] {
        let routes = [
            (Method::GET, format!("/v1/files/{id}"), None),
            (Method::PATCH, format!("/v1/files/{id}"), Some(json!({"name": "mine.jpg"}))),
            (Method::DELETE, format!("/v1/files/{id}"), None),
            (Method::POST, format!("/v1/files/{id}/restore"), None),
        ];
        for (method, uri, body) in routes {
            let (status, answer) = w.call(NOW, method.clone(), &uri, Some("mallory"), body).await;
            assert_eq!(
                (status, &answer),
                (StatusCode::NOT_FOUND, &json!({"error": "not_found", "message": "no such file"})),
                "{method} {uri}"
            );
        }
    }
    let after = w.repo.get(bobs).unwrap();
    assert_eq!((after.record.status, after.record.filename.as_str()), (FileStatus::Ready, "private.jpg"));
    assert!(w.objects.visible(&after.record.key));
    assert!(w.repo.audit_entries().is_empty());
}

#[tokio::test]
async fn without_a_valid_token_nothing_is_answered() {
    let w = World::new();
    w.file("alice", "dish.jpg", "image/jpeg", 1);
    let (status, body) = w.call(NOW, Method::GET, "/v1/files", None, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
}

#[tokio::test]
async fn rename_and_retag_show_in_the_answer_and_are_audited() {
    let w = World::new();
    let id = w.file("alice", "dish.jpg", "image/jpeg", 1);
    let uri = format!("/v1/files/{id}");
    let (status, file) = w
        .call(
            NOW,
            Method::PATCH,
            &uri,
            Some("alice"),
            Some(json!({"name": "Hummus.jpg", "addTags": ["Mezzé", "menu"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{file}");
    assert_eq!(file["name"], "Hummus.jpg");
    assert_eq!(file["tags"], json!(["menu", "mezze"]));
    let (_, file) = w.call(NOW, Method::PATCH, &uri, Some("alice"), Some(json!({"removeTags": ["menu"]}))).await;
    assert_eq!(file["tags"], json!(["mezze"]));
    let actions: Vec<AuditAction> = w.repo.audit_entries().iter().map(|e| e.action).collect();
    assert_eq!(actions, [AuditAction::Update, AuditAction::Update]);
    assert_eq!(w.repo.audit_entries()[0].user_agent, "tests");
}

#[tokio::test]
async fn visibility_and_metadata_change_show_in_the_listing_and_tag_search() {
    let w = World::new();
    let id = w.file("alice", "dish.jpg", "image/jpeg", 1);
    let uri = format!("/v1/files/{id}");
    let (_, file) = w.get(&uri, "alice").await;
    assert_eq!((file["visibility"].as_str(), &file["metadata"]), (Some("private"), &json!({})));

    let change = json!({"visibility": "public", "metadata": {"price": "12.50"}, "addTags": ["menu"]});
    let (status, file) = w.call(NOW, Method::PATCH, &uri, Some("alice"), Some(change)).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    assert_eq!((file["visibility"].as_str(), &file["metadata"]), (Some("public"), &json!({"price": "12.50"})));
    let (_, page) = w.get("/v1/files?tag=menu", "alice").await;
    let listed = &page["files"][0];
    assert_eq!(
        (listed["fileId"].as_str(), listed["visibility"].as_str()),
        (Some(id.to_string().as_str()), Some("public"))
    );
    assert_eq!(listed["metadata"], json!({"price": "12.50"}));

    // Metadata is replaced as a whole; the rest stays.
    let (_, file) = w.call(NOW, Method::PATCH, &uri, Some("alice"), Some(json!({"metadata": {}}))).await;
    assert_eq!(
        (file["visibility"].as_str(), &file["metadata"], &file["tags"]),
        (Some("public"), &json!({}), &json!(["menu"]))
    );
    let (_, file) = w.call(NOW, Method::PATCH, &uri, Some("alice"), Some(json!({"visibility": "private"}))).await;
    assert_eq!(file["visibility"], "private");
}

#[tokio::test]
async fn a_public_file_is_served_from_its_copies_and_going_private_takes_them_away_at_once() {
    let w = World::with_cdn();
    let id = w.file("alice", "dish.jpg", "image/jpeg", 1);
    let uri = format!("/v1/files/{id}");
    let public = ObjectKey::public_prefix(id);

    // Private: CDN URLs signed for the key's path, no public copy, no stable URL.
    let (_, file) = w.get(&uri, "alice").await;
    assert!(file.get("publicUrl").is_none(), "{file}");
    let signed = file["variants"][0]["url"].as_str().unwrap();
    assert!(signed.starts_with(&format!("https://files.test/derived/{id}/")), "{signed}");
    assert!(signed.contains("&Signature=") && signed.ends_with("&Key-Pair-Id=KTESTKEY"), "{signed}");
    assert!(w.objects.keys_under(&public).is_empty());

    // Public: the original and every variant copied with the headers the CDN serves.
    let (status, file) = w.call(NOW, Method::PATCH, &uri, Some("alice"), Some(json!({"visibility": "public"}))).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    assert_eq!(file["publicUrl"], format!("https://files.test/p/{id}/original/dish.jpg"));
    let urls: Vec<&str> = file["variants"].as_array().unwrap().iter().map(|v| v["url"].as_str().unwrap()).collect();
    let want: Vec<String> =
        ["320.webp", "160.webp", "320.jpg"].map(|v| format!("https://files.test/p/{id}/{v}")).into();
    assert_eq!(urls, want, "stable, unsigned");
    assert_eq!(w.objects.keys_under(&public).len(), 4);
    let original = ObjectKey::from_stored(format!("p/{id}/original/dish.jpg"));
    assert_eq!(w.objects.bytes(&original).unwrap(), b"dish.jpg");
    let served = w.objects.served_as(&original).unwrap();
    assert_eq!((served.content_type.as_str(), served.cache_control), ("image/jpeg", ORIGINAL_CACHE_CONTROL));
    assert!(served.disposition.unwrap().starts_with("inline; filename=\"dish.jpg\""));
    let variant = w.objects.served_as(&ObjectKey::from_stored(format!("p/{id}/320.webp"))).unwrap();
    assert_eq!((variant.content_type.as_str(), variant.cache_control), ("image/webp", VARIANT_CACHE_CONTROL));
    assert!(w.files_edge.invalidations().is_empty(), "nothing was cached while it was private");

    // Deleted: the copies go and the CDN forgets them; restored: they are back.
    let (status, deleted) = w.call(NOW, Method::DELETE, &uri, Some("alice"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(w.objects.keys_under(&public).is_empty());
    let shown = deleted["variants"][0]["url"].as_str().unwrap();
    assert!(!shown.contains("/p/") && deleted.get("publicUrl").is_none(), "no URL of a copy that is gone: {deleted}");
    assert_eq!(w.files_edge.invalidations(), [vec![format!("/p/{id}/*")]]);
    let (status, _) = w.call(NOW, Method::POST, &format!("{uri}/restore"), Some("alice"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(w.objects.keys_under(&public).len(), 4);

    // Private again: the copies are gone before the answer, and the CDN is told.
    let (_, file) = w.call(NOW, Method::PATCH, &uri, Some("alice"), Some(json!({"visibility": "private"}))).await;
    assert_eq!(file["visibility"], "private");
    assert!(file.get("publicUrl").is_none());
    assert!(w.objects.keys_under(&public).is_empty());
    assert_eq!(w.files_edge.invalidations().len(), 2);
    assert!(file["variants"][0]["url"].as_str().unwrap().contains("/derived/"));
}

/// The bucket as the files use cases see it, with a test's hand in one of its calls: what
/// happens elsewhere at that moment.
struct Meddled {
    objects: Arc<InMemoryObjects>,
    hand: Hand,
    /// The hand acts once (the first call it watches).
    done: std::sync::atomic::AtomicBool,
}

enum Hand {
    /// `size` answers only once this many lookups wait at once: a listing that looks its
    /// files up one at a time never gets an answer.
    SizeTogether(tokio::sync::Barrier),
    /// A transform result lands right after the first purge of results: a request of the
    /// file's never-expiring image URLs that the transformer answered while the file was going
    /// private (it still read public).
    ResultAfterPurge,
    /// The file's owner makes it private (as `PATCH` does: the row, then its public copies
    /// gone) just before the first public copy is written: a restore that completes meanwhile
    /// copies from the row it read before.
    PrivateBeforeCopy { repo: Arc<InMemory>, file: FileId },
    /// The owner deletes the file just as its original is tagged for the archive tier.
    DeletedAtTagging { repo: Arc<InMemory>, file: FileId },
}

impl Meddled {
    fn new(objects: &Arc<InMemoryObjects>, hand: Hand) -> Arc<Self> {
        Arc::new(Meddled { objects: objects.clone(), hand, done: Default::default() })
    }

    /// Whether this is the hand's first time.
    fn first(&self) -> bool {
        !self.done.swap(true, std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl ObjectAccess for Meddled {
    async fn presign_download(&self, d: &Download<'_>) -> PortResult<SignedUrl> {
        self.objects.presign_download(d).await
    }

    async fn presign_post(&self, u: &Upload<'_>) -> PortResult<PresignedPost> {
        self.objects.presign_post(u).await
    }

    async fn size(&self, key: &ObjectKey) -> PortResult<Option<u64>> {
        if let Hand::SizeTogether(together) = &self.hand {
            together.wait().await;
        }
        self.objects.size(key).await
    }

    async fn presign_get(&self, key: &ObjectKey, signed_at: OffsetDateTime, ttl: Duration) -> PortResult<String> {
        self.objects.presign_get(key, signed_at, ttl).await
    }

    async fn delete_prefix(&self, prefix: &str) -> PortResult<usize> {
        let deleted = self.objects.delete_prefix(prefix).await?;
        if matches!(self.hand, Hand::ResultAfterPurge) && prefix.starts_with("results/") && self.first() {
            self.objects.insert(ObjectKey::from_stored(format!("{prefix}e2/w:640.webp")));
        }
        Ok(deleted)
    }
}

#[async_trait::async_trait]
impl matbakh_app::ports::ObjectLifecycle for Meddled {
    async fn head(&self, key: &ObjectKey, version: Option<&str>) -> PortResult<Option<matbakh_app::ports::Head>> {
        self.objects.head(key, version).await
    }

    async fn publish(
        &self,
        from: &ObjectKey,
        version: Option<&str>,
        to: &ObjectKey,
        served: &matbakh_core::delivery::ServedAs,
    ) -> PortResult<()> {
        if let Hand::PrivateBeforeCopy { repo, file } = &self.hand
            && self.first()
        {
            let mut d = repo.get(*file).unwrap();
            d.record.labels.visibility = matbakh_core::labels::Visibility::Private;
            repo.insert(d);
            self.objects.delete_prefix(&ObjectKey::public_prefix(*file)).await?;
        }
        self.objects.publish(from, version, to, served).await
    }

    async fn hide(&self, key: &ObjectKey) -> PortResult<()> {
        self.objects.hide(key).await
    }

    async fn unhide(&self, key: &ObjectKey) -> PortResult<()> {
        self.objects.unhide(key).await
    }

    async fn set_tags(&self, key: &ObjectKey, version: Option<&str>, tags: &[(&str, &str)]) -> PortResult<()> {
        if let Hand::DeletedAtTagging { repo, file } = &self.hand
            && self.first()
        {
            let mut d = repo.get(*file).unwrap();
            d.record.status = FileStatus::Deleted;
            repo.insert(d);
        }
        self.objects.set_tags(key, version, tags).await
    }

    async fn restore(
        &self,
        key: &ObjectKey,
        version: Option<&str>,
        tier: matbakh_core::archival::RestoreTier,
        days: u32,
    ) -> PortResult<()> {
        self.objects.restore(key, version, tier, days).await
    }
}

/// An archived public file's entry asks the bucket whether its public copy is there; a page
/// asks for its files at once, not one after the other, and keeps their order.
#[tokio::test]
async fn a_page_looks_up_its_archived_public_files_at_once() {
    let w = World::with_cdn();
    let ids: Vec<FileId> =
        (0..3).map(|i| w.file("alice", &format!("old-menu-{i}.jpg"), "image/jpeg", 10 + i)).collect();
    for id in &ids {
        let patch = json!({"visibility": "public"});
        let (status, _) = w.call(NOW, Method::PATCH, &format!("/v1/files/{id}"), Some("alice"), Some(patch)).await;
        assert_eq!(status, StatusCode::OK);
        let mut row = w.repo.get(*id).unwrap();
        row.record.status = FileStatus::Archived;
        w.repo.insert(row);
    }
    let mut api = w.api(NOW);
    api.cases.files.delivery.objects =
        Meddled::new(&w.objects, Hand::SizeTogether(tokio::sync::Barrier::new(ids.len())));
    let req = Request::get("/v1/files").header("authorization", w.idp.bearer("alice")).body(Body::empty()).unwrap();
    // The bound only turns a listing that waits forever into a failure, it synchronises nothing.
    let answer = tokio::time::timeout(Duration::from_secs(10), testkit::call_router(routes(api), req)).await;
    let (status, page) = answer.expect("the page looked its archived files up one at a time");
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed: Vec<(String, String)> = page["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["fileId"].as_str().unwrap().to_owned(), f["publicUrl"].as_str().unwrap_or_default().to_owned()))
        .collect();
    let want: Vec<(String, String)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.to_string(), format!("https://files.test/p/{id}/original/old-menu-{i}.jpg")))
        .collect();
    assert_eq!(listed, want, "newest first is oldest id last: {page}");
}

/// A JPEG original too large to rewrite without its GPS position gets no public copy (the S3
/// adapter's `publish`, `core::location`): its public URL is handed out only while the copy is
/// there, as an archived file's, never a URL that answers 403.
#[tokio::test]
async fn a_public_url_is_handed_out_only_while_a_large_jpegs_copy_is_there() {
    let w = World::with_cdn();
    let id = w.file("alice", "huge.jpg", "image/jpeg", 3);
    let mut row = w.repo.get(id).unwrap();
    row.record.size = matbakh_core::location::REWRITE_MAX_BYTES + 1;
    w.repo.insert(row);
    let (status, shown) = w
        .call(NOW, Method::PATCH, &format!("/v1/files/{id}"), Some("alice"), Some(json!({"visibility": "public"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["publicUrl"], format!("https://files.test/p/{id}/original/huge.jpg"), "copied: {shown}");
    // Withheld (it had a position): no URL.
    w.objects.delete_prefix(&ObjectKey::public_prefix(id)).await.unwrap();
    let (_, shown) = w.call(NOW, Method::GET, &format!("/v1/files/{id}"), Some("alice"), None).await;
    assert_eq!(shown["publicUrl"], Value::Null, "{shown}");
}

/// A public original copied in parts (a video of 6 GiB, over S3's one-CopyObject limit) could
/// outlast the request that makes it public: it is not copied here (the notifier asks the
/// thumbnailer for it once the row says public), the answer is at once, and its URL is shown
/// once its copy is there (none that would answer 403). A small one is copied in the request.
#[tokio::test]
async fn an_original_copied_in_parts_is_not_copied_in_the_request_and_shown_once_there() {
    let w = World::with_cdn();
    let id = w.file("alice", "long-take.mp4", "video/mp4", 3);
    let mut row = w.repo.get(id).unwrap();
    row.record.size = 6 << 30;
    let public_copy = row.record.key.public_copy().unwrap();
    w.repo.insert(row);
    let (status, shown) = w
        .call(NOW, Method::PATCH, &format!("/v1/files/{id}"), Some("alice"), Some(json!({"visibility": "public"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!((&shown["visibility"], &shown["publicUrl"]), (&json!("public"), &Value::Null), "{shown}");
    assert!(w.objects.keys_under(&ObjectKey::public_prefix(id)).is_empty(), "copied in the request");
    // The thumbnailer copied it.
    w.objects.put(&public_copy, 6 << 30);
    let (_, shown) = w.call(NOW, Method::GET, &format!("/v1/files/{id}"), Some("alice"), None).await;
    assert_eq!(shown["publicUrl"], format!("https://files.test/p/{id}/original/long-take.mp4"), "{shown}");

    let small = w.file("alice", "short-take.mp4", "video/mp4", 2);
    let (status, shown) = w
        .call(NOW, Method::PATCH, &format!("/v1/files/{small}"), Some("alice"), Some(json!({"visibility": "public"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["publicUrl"], format!("https://files.test/p/{small}/original/short-take.mp4"), "{shown}");
}

#[tokio::test]
async fn a_public_page_lists_only_public_stored_files_with_stable_urls_and_needs_no_login() {
    let w = World::with_cdn();
    let shown = w.file("alice", "menu.jpg", "image/jpeg", 3);
    let private = w.file("alice", "kitchen-notes.jpg", "image/jpeg", 2);
    let pending = w.file("alice", "new-dish.jpg", "image/jpeg", 1);
    let theirs = w.file("bob", "bobs-dish.jpg", "image/jpeg", 1);
    // An archived public file: its public copies stay in the standard class, still served.
    let archived = w.file("alice", "old-menu.jpg", "image/jpeg", 4);
    for id in [shown, pending, theirs, archived] {
        let owner = if id == theirs { "bob" } else { "alice" };
        let (status, _) = w
            .call(NOW, Method::PATCH, &format!("/v1/files/{id}"), Some(owner), Some(json!({"visibility": "public"})))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    for (id, status) in [(pending, FileStatus::Pending), (archived, FileStatus::Archived)] {
        let mut row = w.repo.get(id).unwrap();
        row.record.status = status;
        w.repo.insert(row);
    }

    let (status, page) = w.call(NOW, Method::GET, "/v1/public/alice/files", None, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let files = page["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "the public READY file and the public archived one: {page}");
    assert_eq!(files[1]["url"], format!("https://files.test/p/{archived}/original/old-menu.jpg"));
    let f = &files[0];
    assert_eq!((f["fileId"].as_str(), f["name"].as_str()), (Some(shown.to_string().as_str()), Some("menu.jpg")));
    assert_eq!(f["url"], format!("https://files.test/p/{shown}/original/menu.jpg"));
    let urls = f["variants"].as_array().unwrap().iter().map(|v| v["url"].as_str().unwrap().to_owned());
    assert!(urls.clone().all(|u| u.starts_with(&format!("https://files.test/p/{shown}/")) && !u.contains('?')));
    assert!(f["srcset"]["image/webp"].as_str().unwrap().contains(&format!("/p/{shown}/160.webp 160w")));
    for private_field in ["tags", "metadata", "sha256", "exif", "createdAt", "size", "visibility"] {
        assert!(f.get(private_field).is_none(), "{private_field} shown on a public page");
    }
    assert!(!page.to_string().contains(&private.to_string()));

    for (uri, want) in [
        ("/v1/public/alice/files?limit=5", StatusCode::BAD_REQUEST),
        ("/v1/public/..%2Fbob/files", StatusCode::BAD_REQUEST),
        ("/v1/public/alice/files?cursor=nonsense", StatusCode::BAD_REQUEST),
    ] {
        let (status, body) = w.call(NOW, Method::GET, uri, None, None).await;
        assert_eq!(status, want, "{uri}: {body}");
    }
    // Without a CDN nothing has a stable URL: nothing is listed (no signed URL is handed out).
    let bare = World::new();
    let id = bare.file("alice", "menu.jpg", "image/jpeg", 3);
    let (status, _) = bare
        .call(NOW, Method::PATCH, &format!("/v1/files/{id}"), Some("alice"), Some(json!({"visibility": "public"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, page) = bare.call(NOW, Method::GET, "/v1/public/alice/files", None, None).await;
    assert_eq!(page["files"], json!([]));
}

#[tokio::test]
async fn a_bad_change_is_refused_with_its_field_and_changes_nothing() {
    let w = World::new();
    let id = w.file("alice", "dish.jpg", "image/jpeg", 1);
    let uri = format!("/v1/files/{id}");
    let cases = [
        (json!({}), "body"),
        (json!({"name": ""}), "name"),
        (json!({"visibility": "everyone"}), "visibility"),
        (json!({"metadata": {"price": 12}}), "metadata"),
        (json!({"metadata": {"": "x"}}), "metadata"),
        (json!({"addTags": ["no spaces"]}), "addTags"),
        (json!({"addTags": [3]}), "addTags"),
        (json!({"owner": "mallory"}), "body"),
    ];
    for (body, field) in cases {
        let (status, answer) = w.call(NOW, Method::PATCH, &uri, Some("alice"), Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
    }
    let d = w.repo.get(id).unwrap();
    assert_eq!((d.record.filename.as_str(), d.revision, d.edits), ("dish.jpg", 0, 0));
    assert!(w.repo.audit_entries().is_empty());
}

#[tokio::test]
async fn delete_hides_the_object_and_restore_within_the_window_brings_it_back() {
    let w = World::new();
    let id = w.file("alice", "dish.jpg", "image/jpeg", 1);
    let key = w.repo.get(id).unwrap().record.key;
    let uri = format!("/v1/files/{id}");

    let (status, file) = w.call(NOW, Method::DELETE, &uri, Some("alice"), None).await;
    assert_eq!((status, file["status"].as_str()), (StatusCode::OK, Some("DELETED")), "{file}");
    let window = Limits::default().restore_window;
    assert_eq!(file["restorableUntil"], matbakh_core::clock::iso_seconds(NOW + window));
    assert!(!w.objects.visible(&key));
    let (_, usage) = w.get("/v1/me/usage", "alice").await;
    assert_eq!((usage["files"].as_u64(), usage["bytesDeleted"].as_u64()), (Some(0), Some(1008)));
    assert_eq!(w.get("/v1/files", "alice").await.1["files"], json!([]), "a deleted file is not listed");

    // A retry answers the same and records nothing more; a change waits for the restore.
    assert_eq!(w.call(NOW, Method::DELETE, &uri, Some("alice"), None).await.0, StatusCode::OK);
    let (status, answer) = w.call(NOW, Method::PATCH, &uri, Some("alice"), Some(json!({"name": "x.jpg"}))).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("deleted")));

    let later = NOW + window - Duration::from_secs(1);
    let (status, file) = w.call(later, Method::POST, &format!("{uri}/restore"), Some("alice"), None).await;
    assert_eq!((status, file["status"].as_str()), (StatusCode::OK, Some("READY")), "{file}");
    assert!(file.get("deletedAt").is_none());
    assert!(w.objects.visible(&key));
    let (_, usage) = w.get("/v1/me/usage", "alice").await;
    assert_eq!(
        (usage["files"].as_u64(), usage["bytesDeleted"].as_u64(), usage["bytesUsed"].as_u64()),
        (Some(1), Some(0), Some(1008))
    );
    let actions: Vec<AuditAction> = w.repo.audit_entries().iter().map(|e| e.action).collect();
    assert_eq!(actions, [AuditAction::Delete, AuditAction::Restore]);

    let (status, answer) = w.call(NOW, Method::POST, &format!("{uri}/restore"), Some("alice"), None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("not_deleted")));
}

#[tokio::test]
async fn restore_after_the_window_is_gone_and_a_pending_upload_cannot_be_deleted() {
    let w = World::new();
    let id = w.file("alice", "dish.jpg", "image/jpeg", 1);
    let uri = format!("/v1/files/{id}");
    w.call(NOW, Method::DELETE, &uri, Some("alice"), None).await;
    let after = NOW + Limits::default().restore_window;
    let (status, answer) = w.call(after, Method::POST, &format!("{uri}/restore"), Some("alice"), None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::GONE, Some("restore_window_passed")));
    assert_eq!(w.status(id), FileStatus::Deleted);

    let pending = w.file("alice", "big.mov", "video/mp4", 0);
    let mut d = w.repo.get(pending).unwrap();
    d.record.status = FileStatus::Pending;
    w.repo.insert(d);
    let (status, answer) = w.call(NOW, Method::DELETE, &format!("/v1/files/{pending}"), Some("alice"), None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("upload_incomplete")));
    assert_eq!(w.status(pending), FileStatus::Pending);
}

/// Review 25: the thumbnailer may make an upload READY before the indexer settles it (checks
/// its size against the grant and the quota). Deleted in that moment, its settle found it
/// settled by the delete and checked nothing: grants without a size, each up to the room left,
/// stored gigabytes counted nowhere for the restore window (and a restore charged the grant's
/// size). Now a file is deleted only once its upload was checked.
#[tokio::test]
async fn a_file_made_ready_before_its_upload_was_checked_is_deleted_only_once_it_was() {
    let w = World::new();
    let id = w.file("alice", "huge.jpg", "image/jpeg", 0);
    let mut d = w.repo.get(id).unwrap();
    d.record.expires_at = Some(NOW + Duration::from_secs(3600));
    w.repo.insert(d.clone());
    let uri = format!("/v1/files/{id}");
    let (status, answer) = w.call(NOW, Method::DELETE, &uri, Some("alice"), None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("upload_incomplete")), "{answer}");
    assert_eq!(w.status(id), FileStatus::Ready);
    assert!(w.objects.visible(&d.record.key), "nothing hidden");

    // Settled: its grant is done with.
    d.record.expires_at = None;
    w.repo.insert(d);
    let (status, answer) = w.call(NOW, Method::DELETE, &uri, Some("alice"), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(w.status(id), FileStatus::Deleted);
}

#[tokio::test]
async fn the_audit_trail_pages_newest_first_and_refuses_a_bad_limit() {
    let w = World::new();
    let a = w.file("alice", "a.jpg", "image/jpeg", 3);
    let b = w.file("alice", "bb.jpg", "image/jpeg", 2);
    for id in [a, b] {
        w.call(NOW, Method::PATCH, &format!("/v1/files/{id}"), Some("alice"), Some(json!({"addTags": ["x"]}))).await;
    }
    let (_, page) = w.get("/v1/me/audit?limit=1", "alice").await;
    assert_eq!(page["records"][0]["fileId"], b.to_string());
    let cursor = page["nextCursor"].as_str().unwrap();
    let (_, page) = w.get(&format!("/v1/me/audit?limit=1&cursor={cursor}"), "alice").await;
    assert_eq!(page["records"][0]["fileId"], a.to_string());
    assert!(page["nextCursor"].is_null());
    let (status, answer) = w.get("/v1/me/audit?limit=0", "alice").await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some("limit")));
    assert_eq!(w.get("/v1/me/audit", "bob").await.1["records"], json!([]));
}

#[tokio::test]
async fn image_urls_are_signed_for_the_owners_images_only() {
    let w = World::new();
    let photo = w.file("alice", "dish.jpg", "image/jpeg", 1);
    let pdf = w.file("alice", "menu.pdf", "application/pdf", 2);
    let uri = format!("/v1/files/{photo}/image-urls");
    let body = json!({"presets": ["card"], "widths": [320, 800], "format": "webp"});
    let (status, got) = w.call(NOW, Method::POST, &uri, Some("alice"), Some(body.clone())).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let set = &got["images"][0];
    assert_eq!((set["preset"].as_str(), set["format"].as_str()), (Some("card"), Some("webp")));
    let urls = set["urls"].as_array().unwrap();
    assert_eq!(urls.iter().map(|u| u["width"].as_u64().unwrap()).collect::<Vec<_>>(), [320, 800]);
    let first = urls[0]["url"].as_str().unwrap();
    assert!(first.starts_with("https://files.test/t/") && first.contains("/rt:fill/w:320/h:240/g:sm/"), "{first}");
    assert!(first.contains("/exp:"), "a private file's URLs expire: {first}");
    assert_eq!(set["srcset"], format!("{first} 320w, {} 800w", urls[1]["url"].as_str().unwrap()));
    assert!(got["expiresAt"].is_string());

    for (user, uri, body, status) in [
        ("mallory", uri.clone(), body.clone(), StatusCode::NOT_FOUND),
        ("alice", format!("/v1/files/{pdf}/image-urls"), json!({}), StatusCode::CONFLICT),
        ("alice", uri.clone(), json!({"presets": ["poster"]}), StatusCode::BAD_REQUEST),
        ("alice", uri.clone(), json!({"format": "tiff"}), StatusCode::BAD_REQUEST),
        ("alice", uri.clone(), json!({"widths": [-1]}), StatusCode::BAD_REQUEST),
    ] {
        let (got, answer) = w.call(NOW, Method::POST, &uri, Some(user), Some(body.clone())).await;
        assert_eq!(got, status, "{user} {body}: {answer}");
    }
}

#[tokio::test]
async fn image_urls_over_the_users_budget_answer_429_until_the_window_turns() {
    let mut w = World::new();
    w.limits.budgets.image_urls.requests = 3;
    let photo = w.file("alice", "dish.jpg", "image/jpeg", 1);
    let uri = format!("/v1/files/{photo}/image-urls");
    for _ in 0..3 {
        assert_eq!(w.call(NOW, Method::POST, &uri, Some("alice"), Some(json!({}))).await.0, StatusCode::OK);
    }
    let (status, answer) = w.call(NOW, Method::POST, &uri, Some("alice"), Some(json!({}))).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")));
    let wait = answer["retryAfter"].as_u64().unwrap();
    assert!((1..=60).contains(&wait), "{answer}");
    let later = NOW + Duration::from_secs(wait);
    assert_eq!(w.call(later, Method::POST, &uri, Some("alice"), Some(json!({}))).await.0, StatusCode::OK);
}

/// Security review 20: restores cost money (S3 bills each; an Expedited one about $0.01, two
/// hundred times a Standard one), and a free account could ask for one of each of thousands of
/// archived files, again every week as the restored copies lapse. Each user has a budget a day,
/// a small one for Expedited; over it: `429` with `Retry-After`, S3 not asked, the file still
/// ARCHIVED. A request that asks S3 nothing (a file restoring already) counts nothing.
#[tokio::test]
async fn restores_over_the_users_daily_budget_answer_429_and_ask_s3_nothing() {
    let mut w = World::new();
    (w.limits.budgets.restores.requests, w.limits.budgets.expedited_restores.requests) = (3, 2);
    let mut ids = Vec::new();
    for minutes in 1..=4 {
        let id = w.file("alice", "dish.jpg", "image/jpeg", minutes);
        let (key, version) = w.pin_version(id).await;
        w.objects.transition(&key, &version, "GLACIER");
        assert!(w.api(NOW).cases.files.transitioned(id, Some(&version)).await.unwrap());
        ids.push(id);
    }
    let w = &w;
    let unarchive = |id: &FileId, tier: &str| {
        let uri = format!("/v1/files/{id}/unarchive");
        let body = json!({ "tier": tier });
        async move { w.call(NOW, Method::POST, &uri, Some("alice"), Some(body)).await }
    };
    for id in &ids[..2] {
        assert_eq!(unarchive(id, "Expedited").await.0, StatusCode::ACCEPTED);
    }
    assert_eq!(unarchive(&ids[0], "Expedited").await.0, StatusCode::ACCEPTED, "restoring already: counts nothing");
    let (status, answer) = unarchive(&ids[2], "Expedited").await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")), "{answer}");
    assert!(answer["retryAfter"].as_u64().unwrap() <= 24 * 3600, "{answer}");
    assert_eq!(unarchive(&ids[2], "Standard").await.0, StatusCode::ACCEPTED, "the day's third restore");
    assert_eq!(unarchive(&ids[3], "Bulk").await.0, StatusCode::TOO_MANY_REQUESTS, "a fourth, in any tier");
    assert_eq!(w.objects.restores().len(), 3, "S3 was asked three times");
    let row = w.repo.get(ids[3]).unwrap();
    assert_eq!(row.record.status, FileStatus::Archived);
    // Bob's budget is his own.
    let bobs = w.file("bob", "soup.jpg", "image/jpeg", 1);
    let (key, version) = w.pin_version(bobs).await;
    w.objects.transition(&key, &version, "GLACIER");
    assert!(w.api(NOW).cases.files.transitioned(bobs, Some(&version)).await.unwrap());
    let uri = format!("/v1/files/{bobs}/unarchive");
    let (status, _) = w.call(NOW, Method::POST, &uri, Some("bob"), Some(json!({"tier": "Expedited"}))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

/// `GET /v1/me` tells the caller who they are and whether they administer the deployment; it
/// needs a login.
#[tokio::test]
async fn me_says_who_the_caller_is_and_whether_they_are_an_administrator() {
    let w = World::new();
    let (status, me) = w.get("/v1/me", "alice").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me, json!({"userId": "alice", "admin": false}));
    let (status, me) = w.get("/v1/me", ADMIN).await;
    assert_eq!((status, me), (StatusCode::OK, json!({"userId": ADMIN, "admin": true})));
    assert_eq!(w.call(NOW, Method::GET, "/v1/me", None, None).await.0, StatusCode::UNAUTHORIZED);
}

/// An administrator (`ADMIN_USERS`) archives and restores anyone's file, and the owner's trail
/// says who did; to anyone else another's file stays missing, and an administrator gets no
/// other route to it.
#[tokio::test]
async fn an_administrator_archives_and_restores_someone_elses_file_and_the_owner_sees_who() {
    let w = World::new();
    let id = w.file("alice", "dish.jpg", "image/jpeg", 1);
    let (key, version) = w.pin_version(id).await;
    let archive = format!("/v1/files/{id}/archive");
    assert_eq!(w.call(NOW, Method::POST, &archive, Some("mallory"), None).await.0, StatusCode::NOT_FOUND);
    let (status, file) = w.call(NOW, Method::POST, &archive, Some(ADMIN), None).await;
    assert_eq!((status, file["fileId"].as_str()), (StatusCode::ACCEPTED, Some(id.to_string().as_str())), "{file}");
    assert!(file["archive"]["requestedAt"].is_string(), "{file}");
    assert_eq!(w.get(&format!("/v1/files/{id}"), ADMIN).await.0, StatusCode::NOT_FOUND, "no other route opens");
    // Security review 20: nor does this one show the administrator the file (its name, metadata,
    // EXIF, variants' URLs): only where it stands. Asking again is in the owner's trail too.
    let shown: Vec<&String> = file.as_object().unwrap().keys().collect();
    assert_eq!(shown, ["archive", "fileId", "status"], "{file}");
    let (status, again) = w.call(NOW, Method::POST, &archive, Some(ADMIN), None).await;
    assert_eq!((status, again["status"].as_str(), again.get("name")), (StatusCode::ACCEPTED, Some("READY"), None));

    w.objects.transition(&key, &version, "GLACIER");
    assert!(w.api(NOW).cases.files.transitioned(id, Some(&version)).await.unwrap());
    let unarchive = format!("/v1/files/{id}/unarchive");
    let (status, _) = w.call(NOW, Method::POST, &unarchive, Some("mallory"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, file) = w.call(NOW, Method::POST, &unarchive, Some(ADMIN), Some(json!({"tier": "Bulk"}))).await;
    assert_eq!((status, file["status"].as_str()), (StatusCode::ACCEPTED, Some("RESTORING")), "{file}");
    assert!(file.get("variants").is_none() && file.get("name").is_none(), "{file}");

    let acts: Vec<(String, AuditAction, String)> = w
        .repo
        .audit_entries()
        .into_iter()
        .filter(|e| matches!(e.action, AuditAction::Archive | AuditAction::Unarchive))
        .map(|e| (e.user.to_string(), e.action, e.actor))
        .collect();
    let by_admin = format!("admin:{ADMIN}");
    assert_eq!(
        acts,
        [
            ("alice".into(), AuditAction::Archive, by_admin.clone()),
            ("alice".into(), AuditAction::Archive, by_admin.clone()),
            ("alice".into(), AuditAction::Unarchive, by_admin)
        ]
    );
}

/// An administrator's archive request that tagged the original but found the row changed
/// (here deleted meanwhile) answered `409 busy` without a word in the owner's trail (an
/// authorization sweep): the tag is set, so the trail says who asked.
#[tokio::test]
async fn an_administrators_archive_that_found_the_file_changed_is_in_the_owners_trail() {
    let w = World::new();
    let id = w.file("alice", "dish.jpg", "image/jpeg", 1);
    w.pin_version(id).await;
    let mut api = w.api(NOW);
    api.cases.files.objects = Meddled::new(&w.objects, Hand::DeletedAtTagging { repo: w.repo.clone(), file: id });
    let req = Request::post(format!("/v1/files/{id}/archive")).header("authorization", w.idp.bearer(ADMIN));
    let (status, body) = testkit::call_router(routes(api), req.body(Body::empty()).unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::CONFLICT, Some("busy")), "{body}");
    let acts: Vec<(String, String, String)> = w
        .repo
        .audit_entries()
        .into_iter()
        .filter(|e| e.action == AuditAction::Archive)
        .map(|e| (e.user.to_string(), e.actor, e.result))
        .collect();
    assert_eq!(acts, [("alice".to_owned(), format!("admin:{ADMIN}"), "busy".to_owned())]);
}

#[tokio::test]
async fn an_archived_file_keeps_its_variants_refuses_its_bytes_and_comes_back_by_restore() {
    let w = World::new();
    let id = w.file("alice", "dish.jpg", "image/jpeg", 1);
    let (key, version) = w.pin_version(id).await;
    let files = w.api(NOW).cases.files;

    // Asked: tagged for the lifecycle, still READY until S3 moves it.
    let uri = format!("/v1/files/{id}/archive");
    let (status, file) = w.call(NOW, Method::POST, &uri, Some("alice"), None).await;
    assert_eq!((status, file["status"].as_str()), (StatusCode::ACCEPTED, Some("READY")), "{file}");
    assert!(file["archive"]["requestedAt"].is_string(), "{file}");
    let tags = w.objects.tags(&key, &version);
    assert_eq!(tags, [("type-class".into(), "image".into()), ("archive".into(), "now".into())]);
    assert_eq!(w.call(NOW, Method::POST, &uri, Some("mallory"), None).await.0, StatusCode::NOT_FOUND);
    let (status, _) = w.call(NOW, Method::POST, &format!("/v1/files/{id}/unarchive"), Some("alice"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "not archived yet");

    // S3 reports a move to Intelligent-Tiering (readable as before), a stray version's move,
    // then the lifecycle's move of the accepted version to Glacier: only the last counts.
    w.objects.transition(&key, &version, "INTELLIGENT_TIERING");
    assert!(!files.transitioned(id, Some(&version)).await.unwrap());
    assert!(!files.transitioned(id, Some("stray")).await.unwrap());
    w.objects.transition(&key, &version, "GLACIER");
    assert!(files.transitioned(id, Some(&version)).await.unwrap());
    assert_eq!(w.status(id), FileStatus::Archived);

    // Variants still show; the original's bytes are refused with how to get them back.
    let (_, shown) = w.get(&format!("/v1/files/{id}"), "alice").await;
    assert_eq!(shown["status"], "ARCHIVED");
    assert_eq!(shown["variants"].as_array().map(Vec::len), Some(3), "{shown}");
    let (status, refused) =
        w.call(NOW, Method::POST, &format!("/v1/files/{id}/image-urls"), Some("alice"), Some(json!({}))).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::CONFLICT, Some("archived")));
    assert!(refused["message"].as_str().unwrap().contains("/unarchive"), "{refused}");

    // Restore: a bad tier changes nothing; Expedited is promised within 5 minutes.
    let unarchive = format!("/v1/files/{id}/unarchive");
    let (status, bad) = w.call(NOW, Method::POST, &unarchive, Some("alice"), Some(json!({"tier": "fast"}))).await;
    assert_eq!((status, bad["field"].as_str()), (StatusCode::BAD_REQUEST, Some("tier")));
    assert!(w.objects.restores().is_empty());
    let body = json!({"tier": "Expedited"});
    let (status, file) = w.call(NOW, Method::POST, &unarchive, Some("alice"), Some(body.clone())).await;
    assert_eq!((status, file["status"].as_str()), (StatusCode::ACCEPTED, Some("RESTORING")), "{file}");
    assert_eq!(file["archive"]["restoreTier"], "Expedited");
    let by = NOW + Duration::from_secs(5 * 60);
    assert_eq!(file["archive"]["restoreExpectedBy"], matbakh_core::clock::iso_seconds(by));
    let (_, again) = w.call(NOW, Method::POST, &unarchive, Some("alice"), Some(body)).await;
    assert_eq!(again["status"], "RESTORING");
    let restores = w.objects.restores();
    assert_eq!(restores.len(), 1, "asking again starts no second restore");
    assert_eq!((restores[0].1.as_str(), restores[0].3), (version.as_str(), 7));
    let (status, refused) =
        w.call(NOW, Method::POST, &format!("/v1/files/{id}/image-urls"), Some("alice"), Some(json!({}))).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::CONFLICT, Some("restoring")));

    // S3's copy is there: READY until it lapses, then ARCHIVED again.
    let until = NOW + Duration::from_secs(7 * 24 * 3600);
    assert!(files.restore_completed(id, Some(&version), Some(until)).await.unwrap());
    let (_, file) = w.get(&format!("/v1/files/{id}"), "alice").await;
    assert_eq!(file["status"], "READY");
    assert_eq!(file["archive"]["restoredUntil"], matbakh_core::clock::iso_seconds(until));
    let (status, _) =
        w.call(NOW, Method::POST, &format!("/v1/files/{id}/image-urls"), Some("alice"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(files.restore_expired(id, Some(&version)).await.unwrap());
    assert_eq!(w.status(id), FileStatus::Archived);

    // Deleted and brought back within the window, it is still archived.
    assert_eq!(w.call(NOW, Method::DELETE, &format!("/v1/files/{id}"), Some("alice"), None).await.0, StatusCode::OK);
    let (status, file) = w.call(NOW, Method::POST, &format!("/v1/files/{id}/restore"), Some("alice"), None).await;
    assert_eq!((status, file["status"].as_str()), (StatusCode::OK, Some("ARCHIVED")), "{file}");
    let trail: Vec<AuditAction> = w.repo.audit_entries().iter().map(|e| e.action).collect();
    assert!(trail.contains(&AuditAction::Archive) && trail.contains(&AuditAction::Unarchive), "{trail:?}");
}

#[tokio::test]
async fn a_public_file_deleted_while_archived_is_served_again_its_original_once_restored() {
    let w = World::with_cdn();
    let (id, uri) = w.public_file("alice", "menu.jpg").await;
    let public = ObjectKey::public_prefix(id);
    let original = ObjectKey::from_stored(format!("p/{id}/original/menu.jpg"));
    assert_eq!(w.objects.keys_under(&public).len(), 4, "the original and 3 variants");

    // Archived, deleted (every copy goes), brought back: the variants are served again, the
    // original cannot be copied out of the archive (the fake refuses as S3 does).
    let archived = w.archived_by_s3(id).await;
    assert_eq!(w.call(NOW, Method::DELETE, &uri, Some("alice"), None).await.0, StatusCode::OK);
    assert!(w.objects.keys_under(&public).is_empty());
    let (status, file) = w.call(NOW, Method::POST, &format!("{uri}/restore"), Some("alice"), None).await;
    assert_eq!((status, file["status"].as_str()), (StatusCode::OK, Some("ARCHIVED")), "{file}");
    let copies = w.objects.keys_under(&public);
    assert_eq!(copies.len(), 3, "the variants: {copies:?}");
    assert!(!copies.contains(&original));

    // Restored: READY, and the original's public copy is back.
    let body = json!({"tier": "Standard"});
    let (status, _) = w.call(NOW, Method::POST, &format!("{uri}/unarchive"), Some("alice"), Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(w.restored_by_s3(id, &archived).await);
    assert_eq!(w.status(id), FileStatus::Ready);
    assert_eq!(w.objects.keys_under(&public).len(), 4);
    assert!(w.objects.served_as(&original).is_some());
    // A second event of the same restore changes nothing.
    assert!(!w.restored_by_s3(id, &archived).await);
}

/// A public archived file whose restore completes while its owner makes it private: the
/// restore wrote the public copies from the row it read before, and they stayed, served
/// unsigned, for a private file. Now it reads the row again after and takes them down.
#[tokio::test]
async fn a_restore_completing_while_the_file_goes_private_leaves_no_public_copy() {
    use matbakh_app::ports::ObjectLifecycle;
    let w = World::with_cdn();
    let (id, uri) = w.public_file("alice", "menu.jpg").await;
    let (key, version) = w.archived_by_s3(id).await;
    let body = json!({"tier": "Standard"});
    let (status, _) = w.call(NOW, Method::POST, &format!("{uri}/unarchive"), Some("alice"), Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    w.objects.restored(&key, &version);
    assert!(w.objects.head(&key, Some(&version)).await.unwrap().is_some());

    let mut api = w.api(NOW);
    api.cases.files.objects = Meddled::new(&w.objects, Hand::PrivateBeforeCopy { repo: w.repo.clone(), file: id });
    assert!(api.cases.files.restore_completed(id, Some(&version), None).await.unwrap());
    assert_eq!(w.repo.get(id).unwrap().record.labels.visibility, matbakh_core::labels::Visibility::Private);
    let left = w.objects.keys_under(&ObjectKey::public_prefix(id));
    assert!(left.is_empty(), "public copies of a private file: {left:?}");
    assert!(w.files_edge.invalidations().concat().contains(&format!("/p/{id}/*")));
}

/// Review 28: an update or a restore of a public file copies it public again; its owner making
/// it private meanwhile (another tab: the row, then the copies it finds) found none yet to take
/// away, and the copies landing after stayed, served unsigned, for a private file.
#[tokio::test]
async fn an_update_or_restore_copying_while_the_file_goes_private_leaves_no_public_copy() {
    for restore in [false, true] {
        let w = World::with_cdn();
        let (id, uri) = w.public_file("alice", "menu.jpg").await;
        if restore {
            assert_eq!(w.call(NOW, Method::DELETE, &uri, Some("alice"), None).await.0, StatusCode::OK);
        }
        let mut api = w.api(NOW);
        api.cases.files.objects = Meddled::new(&w.objects, Hand::PrivateBeforeCopy { repo: w.repo.clone(), file: id });
        let req = if restore {
            Request::post(format!("{uri}/restore")).header("authorization", w.idp.bearer("alice")).body(Body::empty())
        } else {
            Request::patch(&uri)
                .header("authorization", w.idp.bearer("alice"))
                .header("content-type", "application/json")
                .body(Body::from(json!({"addTags": ["dinner"]}).to_string()))
        };
        let (status, file) = testkit::call_router(routes(api), req.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{file}");
        assert_eq!(w.repo.get(id).unwrap().record.labels.visibility, matbakh_core::labels::Visibility::Private);
        let left = w.objects.keys_under(&ObjectKey::public_prefix(id));
        assert!(left.is_empty(), "restore {restore}: public copies of a private file: {left:?}");
    }
}

#[tokio::test]
async fn an_archived_file_made_public_shows_its_variants_now_and_its_original_once_restored() {
    let w = World::with_cdn();
    let id = w.file("alice", "menu.jpg", "image/jpeg", 1);
    let archived = w.archived_by_s3(id).await;

    let uri = format!("/v1/files/{id}");
    let (status, file) = w.call(NOW, Method::PATCH, &uri, Some("alice"), Some(json!({"visibility": "public"}))).await;
    assert_eq!((status, file["status"].as_str()), (StatusCode::OK, Some("ARCHIVED")), "{file}");
    let public = ObjectKey::public_prefix(id);
    let original = ObjectKey::from_stored(format!("p/{id}/original/menu.jpg"));
    let copies = w.objects.keys_under(&public);
    assert_eq!(copies.len(), 3, "the variants: {copies:?}");
    assert!(!copies.contains(&original));
    // No URL to the missing copy: not to its owner, not on the public page, which shows the
    // file by its variants meanwhile.
    assert!(file.get("publicUrl").is_none(), "{file}");
    let (status, page) = w.call(NOW, Method::GET, "/v1/public/alice/files", None, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let shown = &page["files"][0];
    assert_eq!(shown["fileId"], id.to_string(), "{page}");
    assert!(shown.get("url").is_none(), "{page}");
    assert_eq!(shown["variants"].as_array().map(Vec::len), Some(3), "{page}");

    assert!(w.restored_by_s3(id, &archived).await);
    assert!(w.objects.keys_under(&public).contains(&original));
    let url = format!("https://files.test/p/{id}/original/menu.jpg");
    assert_eq!(w.get(&uri, "alice").await.1["publicUrl"], url);
    let (_, page) = w.call(NOW, Method::GET, "/v1/public/alice/files", None, None).await;
    assert_eq!(page["files"][0]["url"], url, "{page}");
}

/// The attack (security review, 2026-12-06): a public file's image URLs never expire (they go
/// into pages); the edge serves a stored result by the URL's signature alone. After its owner
/// made it private, whoever kept a URL still got the image, from the stored results (and the
/// transformer made missing ones again). Now going private removes the results made from the
/// file and the CDN forgets them, with its public copies, in one invalidation (the transformer
/// refuses such a URL for a private file: `transformer` tests).
#[tokio::test]
async fn a_public_files_image_urls_serve_nothing_once_it_is_private() {
    let w = World::with_cdn();
    let (id, uri) = w.public_file("alice", "dish.jpg").await;
    let (status, got) = w.call(NOW, Method::POST, &format!("{uri}/image-urls"), Some("alice"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert!(got["expiresAt"].is_null(), "a public file's URLs never expire: {got}");
    // What the URLs were asked for: results stored under the original's key.
    let key = w.repo.get(id).unwrap().record.key;
    let result = ObjectKey::from_stored(format!("results/{key}/e1/rt:fill,w:320.webp"));
    w.objects.insert(result);
    let results = matbakh_core::imgproxy::result_prefix(key.as_str());
    assert_eq!(w.objects.keys_under(&results).len(), 1);

    let (status, _) = w.call(NOW, Method::PATCH, &uri, Some("alice"), Some(json!({"visibility": "private"}))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(w.objects.keys_under(&results).is_empty(), "the results made while it was public are gone");
    let forgotten = w.files_edge.invalidations().concat();
    let file_results = matbakh_core::cdn::file_results(key.as_str()).unwrap();
    assert!(forgotten.contains(&file_results) && forgotten.contains(&format!("/p/{id}/*")), "{forgotten:?}");
}

/// The milliseconds between purging a file's results and the row saying private: a request of
/// its never-expiring URLs then made a result again, which the edge would serve for good. The
/// results are purged again once the row says private (and the CDN told only if one came).
#[tokio::test]
async fn a_result_stored_while_the_file_goes_private_goes_too() {
    let w = World::with_cdn();
    let (id, uri) = w.public_file("alice", "dish.jpg").await;
    let mut api = w.api(NOW);
    api.cases.files.delivery.objects = Meddled::new(&w.objects, Hand::ResultAfterPurge);
    let req = Request::patch(&uri)
        .header("authorization", w.idp.bearer("alice"))
        .header("content-type", "application/json")
        .body(Body::from(json!({"visibility": "private"}).to_string()))
        .unwrap();
    let (status, file) = testkit::call_router(routes(api), req).await;
    assert_eq!((status, file["visibility"].as_str()), (StatusCode::OK, Some("private")), "{file}");
    let key = w.repo.get(id).unwrap().record.key;
    let results = matbakh_core::imgproxy::result_prefix(key.as_str());
    assert!(w.objects.keys_under(&results).is_empty(), "{:?}", w.objects.keys_under(&results));
    let file_results = matbakh_core::cdn::file_results(key.as_str()).unwrap();
    let told: Vec<Vec<String>> = w.files_edge.invalidations();
    assert_eq!(told.iter().filter(|paths| paths.contains(&file_results)).count(), 2, "{told:?}");
}

/// A file whose image failed (a truncated photo) is never served as one: deleted and restored,
/// it was READY (the restore knew no other status), published when public, and the transformer
/// and image URLs took it. The restore now brings back the status the delete took it from.
#[tokio::test]
async fn a_failed_file_deleted_and_restored_is_failed_again_and_not_published() {
    let w = World::with_cdn();
    let id = w.file("alice", "torn.jpg", "image/jpeg", 1);
    let mut failed = w.repo.get(id).unwrap();
    (failed.record.status, failed.image, failed.record.labels.visibility) =
        (FileStatus::Failed, None, matbakh_core::labels::Visibility::Public);
    w.repo.insert(failed);
    let uri = format!("/v1/files/{id}");
    let (status, _) = w.call(NOW, Method::DELETE, &uri, Some("alice"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, restored) = w.call(NOW, Method::POST, &format!("{uri}/restore"), Some("alice"), None).await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(restored["status"], "FAILED", "{restored}");
    assert!(w.objects.keys_under(&ObjectKey::public_prefix(id)).is_empty(), "not published");
    let (status, _) = w.call(NOW, Method::POST, &format!("{uri}/image-urls"), Some("alice"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

/// The files table as a PATCH meets it when the thumbnailer's READY (with its variants) lands
/// between the PATCH's read and its write.
struct ReadyMeanwhile(Arc<InMemory>, ImageInfo);

#[async_trait::async_trait]
impl matbakh_app::ports::FileLookup for ReadyMeanwhile {
    async fn details(&self, id: FileId) -> PortResult<Option<FileDetails>> {
        self.0.details(id).await
    }
}

#[async_trait::async_trait]
impl matbakh_app::ports::FileCatalog for ReadyMeanwhile {
    async fn list(
        &self,
        owner: &UserId,
        q: &matbakh_core::listing::ListQuery,
    ) -> PortResult<(Vec<FileDetails>, Option<matbakh_core::listing::Cursor>)> {
        self.0.list(owner, q).await
    }
    async fn count_live(&self, owner: &UserId) -> PortResult<u64> {
        self.0.count_live(owner).await
    }
    async fn update(&self, before: &FileDetails, after: &FileRecord) -> PortResult<bool> {
        use matbakh_app::ports::FileRepo;
        let ready = matbakh_core::metadata::Ready { image: Some(&self.1), ..Default::default() };
        assert!(self.0.mark_ready(before.record.file_id, &ready).await.unwrap());
        self.0.update(before, after).await
    }
    async fn soft_delete(&self, id: FileId, at: OffsetDateTime, from: FileStatus) -> PortResult<()> {
        self.0.soft_delete(id, at, from).await
    }
    async fn restore(&self, record: &FileRecord, quota: u64) -> PortResult<bool> {
        self.0.restore(record, quota).await
    }
    async fn set_archival(
        &self,
        id: FileId,
        from: &[FileStatus],
        to: FileStatus,
        archival: &matbakh_core::archival::Archival,
    ) -> PortResult<bool> {
        self.0.set_archival(id, from, to, archival).await
    }
}

/// A file made public right after its upload, as the thumbnailer makes it READY: the READY
/// lands between the PATCH's read (no variants yet) and its write. The public copies are made
/// from the row as it is after the write (a review: made from the read, there were none).
#[tokio::test]
async fn a_file_made_public_as_it_becomes_ready_gets_its_public_copies() {
    let w = World::with_cdn();
    let id = w.file("alice", "dish.jpg", "image/jpeg", 1);
    let ready = w.repo.get(id).unwrap();
    // As it was before processing: PENDING, no variants (their objects are written already).
    w.repo.insert(FileDetails::new(FileRecord { status: FileStatus::Pending, ..ready.record.clone() }));
    let mut api = w.api(NOW);
    api.cases.files.files = Arc::new(ReadyMeanwhile(w.repo.clone(), ready.image.clone().unwrap()));
    let req = Request::builder()
        .method(Method::PATCH)
        .uri(format!("/v1/files/{id}"))
        .header("user-agent", "tests")
        .header("authorization", w.idp.bearer("alice"))
        .body(Body::from(json!({"visibility": "public"}).to_string()))
        .unwrap();
    let (status, answer) = testkit::call_router(routes(api), req).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!((answer["status"].as_str(), answer["visibility"].as_str()), (Some("READY"), Some("public")));
    let copies = w.objects.keys_under(&ObjectKey::public_prefix(id));
    assert_eq!(copies.len(), 4, "three variants and the original: {copies:?}");
}
