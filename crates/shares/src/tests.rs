//! The share links in-process on the in-memory ports: no server. The table's conditional
//! writes and real presigned URLs are tested against moto and Garage in `tests/it`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use matbakh_app::fakes::{InMemory, InMemoryObjects};
use matbakh_app::shares::{Links, Shares};
use matbakh_core::audit::AuditAction;
use matbakh_core::clock::FixedClock;
use matbakh_core::ids::{FileId, UserId};
use matbakh_core::limits::Limits;
use matbakh_core::metadata::{FileDetails, FileRecord, FileStatus};
use matbakh_core::names::DisplayName;
use matbakh_core::shares::ShareKey;
use matbakh_core::types::ContentType;
use serde_json::{Value, json};
use testkit::TestIdp;
use time::OffsetDateTime;
use time::macros::datetime;

use crate::{Api, routes};

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

struct World {
    repo: Arc<InMemory>,
    idp: TestIdp,
}

impl World {
    fn new() -> Self {
        World { repo: Arc::new(InMemory::new()), idp: TestIdp::default() }
    }

    fn api(&self, now: OffsetDateTime) -> Api {
        let objects = Arc::new(InMemoryObjects::new());
        let shares = Shares {
            shares: self.repo.clone(),
            files: self.repo.clone(),
            audit: matbakh_app::fakes::trail(self.repo.clone(), Arc::new(FixedClock(now))),
            limits: Limits::default(),
            clock: Arc::new(FixedClock(now)),
            delivery: matbakh_app::fakes::delivery(objects, Arc::new(FixedClock(now))),
            links: Links {
                key: ShareKey::from_bytes(&[9; 32]).unwrap(),
                public_api_url: Some("https://api.test".into()),
            },
        };
        Api { cases: shares, auth: self.idp.auth.clone() }
    }

    fn file(&self, owner: &str, status: FileStatus) -> FileId {
        let id = FileId::new(1_772_000_000_000 + self.repo.audit_entries().len() as u64, [status as u8; 10]);
        let mut record = FileRecord::upload(
            id,
            UserId::parse(owner).unwrap(),
            DisplayName::parse("menu card.pdf").unwrap(),
            ContentType::parse("application/pdf").unwrap(),
            NOW - Duration::from_secs(3600),
        );
        record.size = 2048;
        record.status = status;
        record.version_id = Some("v1".into());
        let details = FileDetails::new(record);
        self.repo.insert(details);
        id
    }

    async fn call(
        &self,
        now: OffsetDateTime,
        method: Method,
        uri: &str,
        user: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, http::HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(uri).header("user-agent", "visitor-agent");
        if let Some(user) = user {
            req = req.header("authorization", self.idp.bearer(user));
        }
        let body = body.map_or_else(Body::empty, |v| Body::from(v.to_string()));
        let (status, headers, bytes) = testkit::call_router_raw(routes(self.api(now)), req.body(body).unwrap()).await;
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        (status, headers, value)
    }

    async fn share(&self, owner: &str, file: FileId, body: Value) -> (StatusCode, Value) {
        let (status, _, v) =
            self.call(NOW, Method::POST, &format!("/v1/files/{file}/shares"), Some(owner), Some(body)).await;
        (status, v)
    }

    /// A visitor opens the link at `now`: the status and where it redirects.
    async fn open(&self, now: OffsetDateTime, token: &str) -> (StatusCode, Option<String>, Value) {
        let (status, headers, v) = self.call(now, Method::GET, &format!("/v1/shares/{token}"), None, None).await;
        (status, headers.get("location").map(|l| l.to_str().unwrap().to_owned()), v)
    }
}

#[tokio::test]
async fn an_owner_shares_a_ready_file_and_a_visitor_downloads_it_without_login() {
    let w = World::new();
    let file = w.file("alice", FileStatus::Ready);
    let (status, link) = w.share("alice", file, json!({"expiresIn": 3600, "maxDownloads": 2})).await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let token = link["token"].as_str().unwrap();
    assert_eq!(link["url"], format!("https://api.test/v1/shares/{token}"));
    assert_eq!((link["state"].as_str(), link["downloads"].as_u64()), (Some("active"), Some(0)));
    assert_eq!(link["expiresAt"], "2026-03-01T13:00:00Z");

    let (status, location, _) = w.open(NOW, token).await;
    assert_eq!(status, StatusCode::FOUND);
    let redirect_ttl = Limits::default().share_redirect_ttl.as_secs();
    let expected = format!(
        "memory://bucket/users/alice/{file}/menu card.pdf?versionId=v1&signedAt={}&ttl={redirect_ttl}",
        NOW.unix_timestamp()
    );
    assert_eq!(location.as_deref(), Some(expected.as_str()), "exactly the accepted version, briefly");

    // The owner's trail has the visit, under the link's name and without the visitor's address.
    let visit = w.repo.audit_entries().into_iter().find(|e| e.action == AuditAction::ShareDownload).unwrap();
    assert_eq!(
        (visit.user.as_str(), visit.result.as_str(), visit.ip.as_str(), visit.user_agent.as_str()),
        ("alice", "ok", "", "")
    );
    assert!(visit.actor.starts_with("share:"));
    let (_, _, list) = w.call(NOW, Method::GET, "/v1/shares", Some("alice"), None).await;
    assert_eq!(list["shares"][0]["downloads"], 1);
}

#[tokio::test]
async fn a_link_stops_when_used_up_revoked_or_expired_and_says_why() {
    let w = World::new();
    let file = w.file("alice", FileStatus::Ready);
    let token = |v: &Value| v["token"].as_str().unwrap().to_owned();
    let (_, once) = w.share("alice", file, json!({"maxDownloads": 1})).await;
    assert_eq!(w.open(NOW, &token(&once)).await.0, StatusCode::FOUND);
    let (status, location, body) = w.open(NOW, &token(&once)).await;
    assert_eq!((status, location, body["error"].as_str()), (StatusCode::GONE, None, Some("share_used_up")));

    let (_, revoked) = w.share("alice", file, json!({})).await;
    let (status, _, _) =
        w.call(NOW, Method::DELETE, &format!("/v1/shares/{}", token(&revoked)), Some("alice"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(w.open(NOW, &token(&revoked)).await.2["error"], "share_revoked");

    let (_, hour) = w.share("alice", file, json!({"expiresIn": 3600})).await;
    let later = NOW + Duration::from_secs(3600);
    assert_eq!(w.open(later, &token(&hour)).await.2["error"], "share_expired");
    let results: Vec<String> = w
        .repo
        .audit_entries()
        .iter()
        .filter(|e| e.action == AuditAction::ShareDownload)
        .map(|e| e.result.clone())
        .collect();
    assert_eq!(results, ["ok", "used_up", "revoked", "expired"]);
}

#[tokio::test]
async fn a_deleted_files_link_spends_nothing_and_a_forged_one_reveals_nothing() {
    let w = World::new();
    let file = w.file("alice", FileStatus::Ready);
    let (_, link) = w.share("alice", file, json!({"maxDownloads": 5})).await;
    let token = link["token"].as_str().unwrap().to_owned();
    let mut d = w.repo.get(file).unwrap();
    d.record.status = FileStatus::Deleted;
    w.repo.insert(d);
    assert_eq!(w.open(NOW, &token).await.2["error"], "file_gone");
    let (_, _, list) = w.call(NOW, Method::GET, "/v1/shares", Some("alice"), None).await;
    assert_eq!(list["shares"][0]["downloads"], 0, "nothing spent");

    let audited = w.repo.audit_entries().len();
    let mut forged = token.clone();
    forged.replace_range(..1, if forged.starts_with('A') { "B" } else { "A" });
    for t in [forged.as_str(), "not-a-token", ""] {
        let (status, _, body) = w.open(NOW, t).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{t:?}: {body}");
    }
    assert_eq!(w.repo.audit_entries().len(), audited, "an unsigned token names no one's trail");
}

#[tokio::test]
async fn only_the_owner_shares_lists_and_revokes_and_only_stored_files() {
    let w = World::new();
    let file = w.file("alice", FileStatus::Ready);
    let pending = w.file("alice", FileStatus::Pending);
    assert_eq!(w.share("mallory", file, json!({})).await.0, StatusCode::NOT_FOUND);
    let (status, body) = w.share("alice", pending, json!({})).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::CONFLICT, Some("not_shareable")));
    // FAILED because its processing was given up: its bytes were never checked.
    let unchecked = w.file("alice", FileStatus::Failed);
    let mut d = w.repo.get(unchecked).unwrap();
    d.unprocessed = true;
    w.repo.insert(d);
    let (status, body) = w.share("alice", unchecked, json!({})).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::CONFLICT, Some("not_shareable")));
    let (status, body) = w.share("alice", file, json!({"expiresIn": 1})).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("expiresIn")));

    let (_, link) = w.share("alice", file, json!({})).await;
    let uri = format!("/v1/shares/{}", link["token"].as_str().unwrap());
    assert_eq!(w.call(NOW, Method::DELETE, &uri, Some("mallory"), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(w.call(NOW, Method::GET, "/v1/shares", Some("mallory"), None).await.2["shares"], json!([]));
    let (_, _, list) = w.call(NOW, Method::GET, "/v1/shares", Some("alice"), None).await;
    assert_eq!(list["shares"][0]["state"], "active", "mallory's revoke changed nothing");
    assert_eq!(w.call(NOW, Method::GET, "/v1/shares", None, None).await.0, StatusCode::UNAUTHORIZED);
}
