//! Single uploads and downloads in-process on the in-memory ports: no server. That S3 holds a
//! browser to what a policy or URL pins is tested against Garage in `tests/it`.

use std::sync::Arc;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use matbakh_app::fakes::{InMemory, InMemoryObjects};
use matbakh_app::uploads::Uploads;
use matbakh_core::audit::AuditAction;
use matbakh_core::clock::FixedClock;
use matbakh_core::ids::{FileId, UserId};
use matbakh_core::labels::{Labels, MAX_METADATA_ENTRIES, MAX_METADATA_VALUE_CHARS, MAX_TAGS_PER_FILE, Visibility};
use matbakh_core::limits::Limits;
use matbakh_core::metadata::{FileDetails, FileRecord, FileStatus};
use matbakh_core::names::DisplayName;
use matbakh_core::types::ContentType;
use serde_json::{Value, json};
use testkit::TestIdp;
use time::OffsetDateTime;
use time::macros::datetime;

use crate::{Api, routes};

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
const QUOTA: u64 = 10 << 20;

struct World {
    repo: Arc<InMemory>,
    objects: Arc<InMemoryObjects>,
    idp: TestIdp,
    api: Api,
}

impl World {
    fn new() -> Self {
        let idp = TestIdp::default();
        let (repo, objects) = (Arc::new(InMemory::new()), Arc::new(InMemoryObjects::new()));
        let uploads = Uploads {
            files: repo.clone(),
            objects: objects.clone(),
            counters: repo.clone(),
            audit: matbakh_app::fakes::trail(repo.clone(), Arc::new(FixedClock(NOW))),
            limits: Limits { user_quota_bytes: QUOTA, ..Limits::default() },
            clock: Arc::new(FixedClock(NOW)),
            delivery: matbakh_app::fakes::delivery(objects.clone(), Arc::new(FixedClock(NOW))),
        };
        World { repo, objects, api: Api { cases: uploads, auth: idp.auth.clone() }, idp }
    }

    async fn call(&self, method: Method, uri: &str, user: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder().method(method).uri(uri).header("authorization", self.idp.bearer(user));
        let body = body.map_or_else(Body::empty, |v| Body::from(v.to_string()));
        testkit::call_router(routes(self.api.clone()), req.body(body).unwrap()).await
    }

    async fn grant(&self, user: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, "/v1/uploads", user, Some(body)).await
    }

    /// A stored file of `owner` in `status`, its object in the bucket when `arrived`.
    fn stored(&self, owner: &str, status: FileStatus, arrived: bool) -> FileId {
        let id = FileId::new(1_772_000_000_000, [status as u8; 10]);
        let mut record = FileRecord::upload(
            id,
            UserId::parse(owner).unwrap(),
            DisplayName::parse("Menü 2026.pdf").unwrap(),
            ContentType::parse("application/pdf").unwrap(),
            NOW,
        );
        (record.size, record.status, record.version_id) = (4096, status, Some("v7".into()));
        if arrived {
            self.objects.insert(record.key.clone());
        }
        self.repo.insert(FileDetails::new(record));
        id
    }

    async fn usage(&self, user: &str) -> matbakh_core::quota::Usage {
        use matbakh_app::ports::UsageRepo;
        self.repo.usage(&UserId::parse(user).unwrap()).await.unwrap()
    }
}

#[tokio::test]
async fn a_grant_pins_key_type_and_size_and_reserves_the_size() {
    let w = World::new();
    let sha = "a".repeat(64);
    let (status, grant) = w
        .grant("alice", json!({"filename": "dish.jpg", "contentType": "image/jpeg", "size": 5000, "sha256": sha}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    let id = FileId::parse(grant["fileId"].as_str().unwrap()).unwrap();
    let fields = &grant["upload"]["fields"];
    assert_eq!(fields["key"], format!("users/alice/{id}/dish.jpg"));
    assert_eq!(grant["key"], fields["key"]);
    assert_eq!(
        (fields["Content-Type"].as_str(), fields["x-size-range"].as_str()),
        (Some("image/jpeg"), Some("5000-5000"))
    );
    assert_eq!(fields["x-amz-checksum-sha256"], sha);
    let ttl = Limits::default().upload_url_ttl;
    assert_eq!(grant["expiresAt"], matbakh_core::clock::iso_seconds(NOW + ttl));

    let row = w.repo.get(id).unwrap().record;
    assert_eq!(
        (row.status, row.size, row.expires_at),
        (FileStatus::Pending, 5000, Some(NOW + Limits::default().pending_ttl))
    );
    let u = w.usage("alice").await;
    assert_eq!((u.charged, u.reserved), (5000, 5000));
    let audit: Vec<AuditAction> = w.repo.audit_entries().iter().map(|e| e.action).collect();
    assert_eq!(audit, [AuditAction::Upload]);
}

#[tokio::test]
async fn a_refused_grant_writes_nothing() {
    let w = World::new();
    let cases = [
        (
            json!({"filename": "big.pdf", "contentType": "application/pdf", "size": QUOTA + 1}),
            StatusCode::CONFLICT,
            "quota_exceeded",
        ),
        (
            json!({"filename": "x.html", "contentType": "text/html", "size": 10}),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "type_not_allowed",
        ),
        (
            json!({"filename": "x.jpg", "contentType": "image/jpeg", "size": 1u64 << 40}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            json!({"filename": "x.jpg", "contentType": "image/jpeg", "size": 10, "sha256": "zz"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (json!({"filename": "", "contentType": "image/jpeg", "size": 10}), StatusCode::BAD_REQUEST, "invalid_field"),
        (
            json!({"filename": "x.jpg", "contentType": "image/jpeg", "size": -1}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = w.grant("alice", body.clone()).await;
        assert_eq!((got, answer["error"].as_str()), (status, Some(code)), "{body}: {answer}");
    }
    assert_eq!(w.usage("alice").await, Default::default());
    assert!(w.repo.audit_entries().is_empty());
}

#[tokio::test]
async fn grants_over_the_users_budget_answer_429_with_retry_after_and_write_nothing() {
    let mut w = World::new();
    w.api.cases.limits.budgets.upload_grants.requests = 2;
    let body = json!({"filename": "dish.jpg", "contentType": "image/jpeg", "size": 5000});
    for _ in 0..2 {
        assert_eq!(w.grant("alice", body.clone()).await.0, StatusCode::CREATED);
    }
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/uploads")
        .header("authorization", w.idp.bearer("alice"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, headers, bytes) = testkit::call_router_raw(routes(w.api.clone()), req).await;
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(answer["error"], "rate_limited");
    // NOW is on a whole minute: the window turns in 60 s
    assert_eq!(headers[http::header::RETRY_AFTER], "60");
    assert_eq!(answer["retryAfter"], 60);
    // the refused grant reserved nothing and left no trail entry
    let u = w.usage("alice").await;
    assert_eq!((u.charged, u.reserved), (10_000, 10_000));
    assert_eq!(w.repo.audit_entries().len(), 2);
    // another user's budget is their own
    assert_eq!(w.grant("bob", body).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn an_upload_carries_its_visibility_tags_and_metadata_onto_the_row() {
    let w = World::new();
    let body = json!({
        "filename": "dish.jpg", "contentType": "image/jpeg", "size": 5000,
        "visibility": "public", "tags": ["Menü", "dinner", "dinner"], "metadata": {"price": "12.50", "lang": "ar"},
    });
    let (status, grant) = w.grant("alice", body).await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    let id = FileId::parse(grant["fileId"].as_str().unwrap()).unwrap();
    let labels = w.repo.get(id).unwrap().record.labels;
    assert_eq!(labels.visibility, Visibility::Public);
    assert_eq!(labels.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["dinner", "menu"]);
    assert_eq!(labels.metadata.iter().collect::<Vec<_>>(), [("lang", "ar"), ("price", "12.50")]);

    // Without any: private, no tags, no metadata.
    let (_, plain) = w.grant("alice", json!({"filename": "a.pdf", "contentType": "application/pdf", "size": 9})).await;
    let plain = w.repo.get(FileId::parse(plain["fileId"].as_str().unwrap()).unwrap()).unwrap().record.labels;
    assert_eq!(plain, Labels::default());
}

#[tokio::test]
async fn bad_labels_are_refused_naming_the_field_and_write_nothing() {
    let w = World::new();
    let base = json!({"filename": "dish.jpg", "contentType": "image/jpeg", "size": 5000});
    let many_tags: Vec<String> = (0..=MAX_TAGS_PER_FILE).map(|i| format!("t{i}")).collect();
    let many_pairs: serde_json::Map<String, Value> =
        (0..=MAX_METADATA_ENTRIES).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        ("visibility", json!("everyone")),
        ("visibility", json!(true)),
        ("tags", json!(many_tags)),
        ("tags", json!(["two words"])),
        ("tags", json!([7])),
        ("tags", json!("menu")),
        ("metadata", json!({"price tag": "12"})),
        ("metadata", json!({"price": 12})),
        ("metadata", json!({"note": "x".repeat(MAX_METADATA_VALUE_CHARS + 1)})),
        ("metadata", json!(many_pairs)),
        ("metadata", json!(["price"])),
    ];
    for (field, value) in cases {
        let mut body = base.clone();
        body[field] = value.clone();
        let (status, answer) = w.grant("alice", body).await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{field}={value}: {answer}"
        );
    }
    assert_eq!(w.usage("alice").await, Default::default());
    assert!(w.repo.audit_entries().is_empty());
}

#[tokio::test]
async fn the_owner_downloads_the_accepted_version_and_nobody_else_learns_the_file_exists() {
    let w = World::new();
    let id = w.stored("alice", FileStatus::Ready, true);
    let (status, link) = w.call(Method::GET, &format!("/v1/files/{id}/download"), "alice", None).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("memory://bucket/users/alice/{id}/")) && url.contains("versionId=v7"), "{url}");
    assert_eq!((link["filename"].as_str(), link["size"].as_u64()), (Some("Menü 2026.pdf"), Some(4096)));

    let (status, answer) = w.call(Method::GET, &format!("/v1/files/{id}/download"), "mallory", None).await;
    assert_eq!((status, answer["message"].as_str()), (StatusCode::NOT_FOUND, Some("no such file")));
    let attempts: Vec<(String, String)> =
        w.repo.audit_entries().iter().map(|e| (e.user.to_string(), e.result.clone())).collect();
    assert_eq!(attempts, [("alice".into(), "ok".into()), ("mallory".into(), "not_found".into())]);
    let (status, answer) = w.call(Method::GET, &format!("/v1/files/{id}/download?inline=yes"), "alice", None).await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some("inline")));
}

#[tokio::test]
async fn a_quarantined_or_unarrived_file_is_not_downloaded() {
    let w = World::new();
    let quarantined = w.stored("alice", FileStatus::Quarantined, true);
    let (status, answer) = w.call(Method::GET, &format!("/v1/files/{quarantined}/download"), "alice", None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::FORBIDDEN, Some("quarantined")));
    let pending = w.stored("alice", FileStatus::Pending, false);
    let (status, answer) = w.call(Method::GET, &format!("/v1/files/{pending}/download"), "alice", None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("upload_incomplete")));
}

#[tokio::test]
async fn an_archived_file_answers_409_with_how_to_restore_never_a_url() {
    let w = World::new();
    for (status, code) in [(FileStatus::Archived, "archived"), (FileStatus::Restoring, "restoring")] {
        let id = w.stored("alice", status, true);
        let (got, answer) = w.call(Method::GET, &format!("/v1/files/{id}/download"), "alice", None).await;
        assert_eq!((got, answer["error"].as_str()), (StatusCode::CONFLICT, Some(code)), "{answer}");
        assert!(answer.get("url").is_none());
    }
    let id = w.stored("alice", FileStatus::Archived, true);
    let (_, answer) = w.call(Method::GET, &format!("/v1/files/{id}/download"), "alice", None).await;
    assert!(answer["message"].as_str().unwrap().contains(&format!("/v1/files/{id}/unarchive")), "{answer}");
}
