//! The three upload modes in-process on the in-memory ports: no server. That S3 holds a
//! browser to what a signed part URL pins, and the adapters' transactions, are tested against
//! Garage and moto in `tests/it`.

use std::sync::Arc;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use matbakh_app::fakes::{InMemory, InMemoryObjects};
use matbakh_app::multipart::Multipart;
use matbakh_app::ports::UsageRepo;
use matbakh_core::audit::AuditAction;
use matbakh_core::clock::FixedClock;
use matbakh_core::ids::{FileId, UserId};
use matbakh_core::limits::Limits;
use matbakh_core::metadata::FileStatus;
use matbakh_core::multipart::{DEFAULT_PART_SIZE, SessionState, UploadId};
use matbakh_core::quota::Usage;
use serde_json::{Value, json};
use testkit::TestIdp;
use time::OffsetDateTime;
use time::macros::datetime;

use crate::{Api, routes};

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
const QUOTA: u64 = 100 << 20;
const OPEN_UPLOADS: u64 = 2;
/// Two parts: one of 8 MiB and one of 1 MiB.
const SIZE: u64 = DEFAULT_PART_SIZE + (1 << 20);

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
        let cases = Multipart {
            files: repo.clone(),
            counters: repo.clone(),
            uploads: repo.clone(),
            tokens: repo.clone(),
            usage: repo.clone(),
            objects: objects.clone(),
            audit: matbakh_app::fakes::trail(repo.clone(), Arc::new(FixedClock(NOW))),
            limits: Limits { user_quota_bytes: QUOTA, max_open_uploads: OPEN_UPLOADS, ..Limits::default() },
            clock: Arc::new(FixedClock(NOW)),
        };
        World { repo, objects, api: Api { cases, auth: idp.auth.clone() }, idp }
    }

    /// A request as `user` (`None`: no login, as Uppy's Companion mode sends them).
    async fn call(&self, method: Method, uri: &str, user: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(user) = user {
            req = req.header("authorization", self.idp.bearer(user));
        }
        let body = body.map_or_else(Body::empty, |v| Body::from(v.to_string()));
        testkit::call_router(routes(self.api.clone()), req.body(body).unwrap()).await
    }

    async fn start(&self, user: &str, size: u64) -> (StatusCode, Value) {
        let body = json!({"filename": "menu.pdf", "contentType": "application/pdf", "size": size});
        self.call(Method::POST, "/v1/uploads/multipart", Some(user), Some(body)).await
    }

    /// Alice's upload token of `max_bytes` and a multipart session started with it, as Uppy's
    /// Companion mode starts one: the token's endpoint, the upload id and the key.
    async fn token_session(&self, max_bytes: u64) -> (String, UploadId, String) {
        let mint = json!({"maxBytes": max_bytes});
        let (_, minted) = self.call(Method::POST, "/v1/upload-tokens", Some("alice"), Some(mint)).await;
        let endpoint = minted["endpoint"].as_str().unwrap().to_owned();
        let body = json!({"filename": "dish.jpg", "type": "image/jpeg"});
        let (_, started) = self.call(Method::POST, &format!("{endpoint}/s3/multipart"), None, Some(body)).await;
        (endpoint, upload_id(&started), started["key"].as_str().unwrap().to_owned())
    }

    async fn usage(&self, user: &str) -> Usage {
        self.repo.usage(&UserId::parse(user).unwrap()).await.unwrap()
    }

    fn file(&self, session: &Value) -> Option<matbakh_core::metadata::FileRecord> {
        let id = FileId::parse(session["fileId"].as_str().unwrap()).unwrap();
        self.repo.get(id).map(|d| d.record)
    }
}

fn upload_id(session: &Value) -> UploadId {
    UploadId::parse(session["uploadId"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_planned_upload_signs_each_part_for_its_length_and_completes_from_what_s3_holds() {
    let w = World::new();
    let (status, session) = w.start("alice", SIZE).await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    assert_eq!((session["partSize"].as_u64(), session["partCount"].as_u64()), (Some(DEFAULT_PART_SIZE), Some(2)));
    let row = w.file(&session).unwrap();
    assert_eq!((row.status, row.size), (FileStatus::Pending, SIZE));
    let u = w.usage("alice").await;
    assert_eq!((u.charged, u.reserved, u.open_uploads), (SIZE, SIZE, 1));

    let id = upload_id(&session);
    let uri = format!("/v1/uploads/{id}/parts");
    let (status, signed) = w.call(Method::POST, &uri, Some("alice"), Some(json!({"partNumbers": [1, 2]}))).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let lengths: Vec<&str> =
        signed["parts"].as_array().unwrap().iter().map(|p| p["headers"]["content-length"].as_str().unwrap()).collect();
    assert_eq!(lengths, [DEFAULT_PART_SIZE.to_string(), (1u64 << 20).to_string()]);
    assert!(signed["parts"][1]["url"].as_str().unwrap().contains("content-length=1048576"), "{signed}");
    let (status, _) = w.call(Method::POST, &uri, Some("alice"), Some(json!({"partNumbers": [3]}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a part beyond the plan");

    // One part arrived: completing now is refused and changes nothing.
    w.objects.receive_part(&id, 1, DEFAULT_PART_SIZE);
    let complete = format!("/v1/uploads/{id}/complete");
    let (status, answer) = w.call(Method::POST, &complete, Some("alice"), None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("parts_missing")), "{answer}");
    w.objects.receive_part(&id, 2, 1 << 20);
    let (status, done) = w.call(Method::POST, &complete, Some("alice"), None).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["fileId"], session["fileId"]);
    assert_eq!(w.repo.session(&id).map(|x| x.state.name()), Some("COMPLETED"));
    assert_eq!(w.usage("alice").await.open_uploads, 0);
    // Idempotent: the same answer again.
    let (status, again) = w.call(Method::POST, &complete, Some("alice"), None).await;
    assert_eq!((status, &again), (StatusCode::OK, &done));
    let audit: Vec<AuditAction> = w.repo.audit_entries().iter().map(|e| e.action).collect();
    assert_eq!(audit, [AuditAction::Upload]);
}

#[tokio::test]
async fn someone_elses_upload_answers_like_a_missing_one_and_stays_as_it_was() {
    let w = World::new();
    let (_, session) = w.start("alice", SIZE).await;
    let id = upload_id(&session);
    let attempts = [
        (Method::GET, format!("/v1/uploads/{id}"), None),
        (Method::POST, format!("/v1/uploads/{id}/parts"), Some(json!({"partNumbers": [1]}))),
        (Method::POST, format!("/v1/uploads/{id}/complete"), None),
        (Method::DELETE, format!("/v1/uploads/{id}"), None),
    ];
    for (method, uri, body) in attempts {
        let (status, answer) = w.call(method.clone(), &uri, Some("mallory"), body).await;
        assert_eq!(
            (status, answer["message"].as_str()),
            (StatusCode::NOT_FOUND, Some("no such upload")),
            "{method} {uri}"
        );
    }
    let (status, list) = w.call(Method::GET, "/v1/uploads", Some("mallory"), None).await;
    assert_eq!((status, list["uploads"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));
    assert_eq!(w.repo.session(&id).map(|x| x.state), Some(SessionState::Open));
    assert_eq!(w.objects.open_uploads(), [id]);
    assert_eq!(w.usage("alice").await.reserved, SIZE);
}

#[tokio::test]
async fn parts_larger_than_planned_abort_the_upload_and_give_its_reservation_back() {
    let w = World::new();
    let (_, session) = w.start("alice", SIZE).await;
    let id = upload_id(&session);
    w.objects.receive_part(&id, 1, DEFAULT_PART_SIZE);
    w.objects.receive_part(&id, 2, 2 << 20);
    let (status, answer) = w.call(Method::POST, &format!("/v1/uploads/{id}/complete"), Some("alice"), None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("upload_oversize")));
    assert_eq!(w.objects.aborted(), std::slice::from_ref(&id));
    assert_eq!(w.repo.session(&id).map(|x| x.state), Some(SessionState::Aborted));
    assert!(w.file(&session).is_none(), "the PENDING row is gone");
    assert_eq!(w.usage("alice").await, Usage::default());
}

#[tokio::test]
async fn open_uploads_are_capped_across_the_rest_and_token_modes_and_a_refusal_leaves_nothing() {
    let w = World::new();
    for _ in 0..OPEN_UPLOADS {
        assert_eq!(w.start("alice", SIZE).await.0, StatusCode::CREATED);
    }
    let (status, answer) = w.start("alice", SIZE).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_open_uploads")));
    let (_, minted) = w.call(Method::POST, "/v1/upload-tokens", Some("alice"), None).await;
    let endpoint = minted["endpoint"].as_str().unwrap();
    let body = json!({"filename": "menu.pdf", "type": "application/pdf"});
    let (status, _) = w.call(Method::POST, &format!("{endpoint}/s3/multipart"), None, Some(body)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // The refused S3 uploads were aborted: only the two sessions' remain.
    assert_eq!(w.objects.open_uploads().len(), 2);
    assert_eq!(w.objects.aborted().len(), 2);
    let u = w.usage("alice").await;
    assert_eq!((u.open_uploads, u.reserved), (2, 2 * SIZE));
}

#[tokio::test]
async fn upload_grants_share_one_budget_across_every_mode_and_a_refusal_opens_nothing() {
    let mut w = World::new();
    w.api.cases.limits.budgets.upload_grants.requests = 2;
    assert_eq!(w.start("alice", SIZE).await.0, StatusCode::CREATED);
    let (_, minted) = w.call(Method::POST, "/v1/upload-tokens", Some("alice"), None).await;
    let endpoint = minted["endpoint"].as_str().unwrap();
    let body = json!({"filename": "menu.pdf", "type": "application/pdf"});
    let multipart = format!("{endpoint}/s3/multipart");
    assert_eq!(w.call(Method::POST, &multipart, None, Some(body.clone())).await.0, StatusCode::OK);
    // the budget is spent: REST, Uppy's token modes and signRequest mode are all refused
    let (status, answer) = w.start("alice", SIZE).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")));
    assert!(answer["retryAfter"].as_u64().is_some_and(|s| (1..=60).contains(&s)), "{answer}");
    let (status, _) = w.call(Method::POST, &multipart, None, Some(body)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let params = format!("{endpoint}/s3/params?filename=menu.pdf&type=application/pdf");
    assert_eq!(w.call(Method::GET, &params, None, None).await.0, StatusCode::TOO_MANY_REQUESTS);
    let sign = json!({"method": "POST", "key": "menu.pdf", "contentType": "application/pdf", "size": SIZE});
    let (status, _) = w.call(Method::POST, "/v1/uploads/sign", Some("alice"), Some(sign)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // nothing was opened or reserved for the refusals
    assert_eq!(w.objects.open_uploads().len(), 2);
    let u = w.usage("alice").await;
    assert_eq!((u.open_uploads, u.reserved), (2, SIZE));
    assert_eq!(w.start("bob", SIZE).await.0, StatusCode::CREATED);
}

/// Security review 21 (uploads 2): a token's upload was charged (its row written, the quota and
/// the token's allowance taken) before S3 completed it. Parts under S3's 5 MiB minimum made S3
/// refuse (`EntityTooSmall`; so did any failure at S3), the caller got a 500, and every retry a
/// 409: the charge stayed for good with a row nobody could complete, delete or sweep. Now parts
/// too small are refused before anything is counted, and a completion S3 failed is asked again
/// on its reservation (which the sweeper gives back if the object never comes).
#[tokio::test]
async fn a_token_upload_s3_refused_to_complete_can_be_completed_again_and_small_parts_count_nothing() {
    let w = World::new();
    let (endpoint, id, key) = w.token_session(64 << 20).await;
    let complete = format!("{endpoint}/s3/multipart/{id}/complete?key={key}");

    w.objects.receive_part(&id, 1, 1);
    w.objects.receive_part(&id, 2, 1);
    let (status, answer) = w.call(Method::POST, &complete, None, None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("part_too_small")), "{answer}");
    let u = w.usage("alice").await;
    assert_eq!((u.charged, u.reserved), (0, 0), "nothing counted");

    // Part 1 sent again, as large as S3 wants it; S3 then fails the first completion.
    w.objects.receive_part(&id, 1, 5 << 20);
    w.objects.fail_next_completion();
    let (status, _) = w.call(Method::POST, &complete, None, None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let held = (5 << 20) + 1;
    assert_eq!(w.usage("alice").await.reserved, held, "the reservation stands (the sweeper's to give back)");
    let (status, done) = w.call(Method::POST, &complete, None, None).await;
    assert_eq!(status, StatusCode::OK, "asked again, it completes: {done}");
    let u = w.usage("alice").await;
    assert_eq!((u.charged, u.reserved, u.open_uploads), (held, held, 0), "counted once");
    assert_eq!(w.objects.open_uploads().len(), 0);
}

/// Review 25: a token upload's completion reserves its row before S3 completes it. Aborted
/// after S3 refused (the link's holder sends DELETE, or asks again with parts over the
/// allowance), the row went and what it reserved stayed counted for good: whoever held the link
/// could lock the owner's quota and the token's allowance. Now the abort gives back what the row
/// held, the token's share too.
#[tokio::test]
async fn aborting_a_token_upload_s3_refused_to_complete_gives_back_what_its_completion_reserved() {
    let w = World::new();
    let held = (5 << 20) + 1;
    let (endpoint, id, key) = w.token_session(held).await;
    for refusal in ["abort", "a retry over the allowance"] {
        let (id, key) = if refusal == "abort" {
            (id.clone(), key.clone())
        } else {
            let body = json!({"filename": "dish.jpg", "type": "image/jpeg"});
            let (_, started) = w.call(Method::POST, &format!("{endpoint}/s3/multipart"), None, Some(body)).await;
            (upload_id(&started), started["key"].as_str().unwrap().to_owned())
        };
        w.objects.receive_part(&id, 1, 5 << 20);
        w.objects.receive_part(&id, 2, 1);
        w.objects.fail_next_completion();
        let complete = format!("{endpoint}/s3/multipart/{id}/complete?key={key}");
        let (status, _) = w.call(Method::POST, &complete, None, None).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(w.usage("alice").await.reserved, held, "{refusal}: the completion's reservation stands");
        let (status, answer) = if refusal == "abort" {
            w.call(Method::DELETE, &format!("{endpoint}/s3/multipart/{id}?key={key}"), None, None).await
        } else {
            w.objects.receive_part(&id, 3, 1);
            w.call(Method::POST, &complete, None, None).await
        };
        assert!(status.is_success() || status == StatusCode::PAYLOAD_TOO_LARGE, "{refusal}: {status} {answer}");
        let u = w.usage("alice").await;
        assert_eq!((u.charged, u.reserved, u.open_uploads), (0, 0, 0), "{refusal}: given back");
    }
    // The token's allowance is whole again: an upload of all of it completes.
    let body = json!({"filename": "dish.jpg", "type": "image/jpeg"});
    let (_, started) = w.call(Method::POST, &format!("{endpoint}/s3/multipart"), None, Some(body)).await;
    let (id, key) = (upload_id(&started), started["key"].as_str().unwrap().to_owned());
    w.objects.receive_part(&id, 1, 5 << 20);
    w.objects.receive_part(&id, 2, 1);
    let (status, done) =
        w.call(Method::POST, &format!("{endpoint}/s3/multipart/{id}/complete?key={key}"), None, None).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(w.usage("alice").await.charged, held);
}

/// Security review 21 (uploads 4): a token's part URLs carry no length (Uppy sends none), and
/// any part number was signed, so one session's parts could hold terabytes, counted nowhere
/// until it expired. Now only parts a completion within the allowance could use are signed, and
/// none once the parts S3 holds add up to it.
#[tokio::test]
async fn a_token_upload_signs_no_part_beyond_what_its_allowance_can_hold() {
    let w = World::new();
    let (endpoint, id, key) = w.token_session(11 << 20).await;
    let part = |n: u32| format!("{endpoint}/s3/multipart/{id}/{n}?key={key}");

    let (status, answer) = w.call(Method::GET, &part(4), None, None).await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some("partNumber")), "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("at most 3 parts"), "{answer}");
    assert_eq!(w.call(Method::GET, &part(3), None, None).await.0, StatusCode::OK);
    w.objects.receive_part(&id, 1, 5 << 20);
    w.objects.receive_part(&id, 2, 6 << 20);
    let (status, answer) = w.call(Method::GET, &part(3), None, None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("upload_full")), "{answer}");
    assert_eq!(w.call(Method::GET, &part(2), None, None).await.0, StatusCode::OK, "a part sent again counts once");
}

#[tokio::test]
async fn a_token_upload_is_charged_at_completion_within_the_token_and_a_revoked_token_opens_nothing() {
    let w = World::new();
    let (status, minted) =
        w.call(Method::POST, "/v1/upload-tokens", Some("alice"), Some(json!({"maxBytes": 3 << 20}))).await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    let endpoint = minted["endpoint"].as_str().unwrap().to_owned();
    let body = json!({"filename": "dish.jpg", "type": "image/jpeg"});
    let (status, started) = w.call(Method::POST, &format!("{endpoint}/s3/multipart"), None, Some(body.clone())).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let (id, key) = (upload_id(&started), started["key"].as_str().unwrap().to_owned());
    assert!(key.starts_with("users/alice/"), "{key}");
    let (status, part) = w.call(Method::GET, &format!("{endpoint}/s3/multipart/{id}/1?key={key}"), None, None).await;
    assert_eq!(status, StatusCode::OK, "{part}");
    assert!(!part["url"].as_str().unwrap().contains("content-length"), "Companion parts have no length: {part}");
    let (status, _) =
        w.call(Method::GET, &format!("{endpoint}/s3/multipart/{id}/1?key=users/alice/other"), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another key");

    w.objects.receive_part(&id, 1, 2 << 20);
    let complete = format!("{endpoint}/s3/multipart/{id}/complete?key={key}");
    let (status, done) = w.call(Method::POST, &complete, None, None).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let u = w.usage("alice").await;
    assert_eq!((u.charged, u.reserved, u.open_uploads), (2 << 20, 2 << 20, 0), "reserved until its event settles it");

    // The token has 1 MiB left: 2 MiB more are refused and aborted, nothing charged.
    let (_, second) = w.call(Method::POST, &format!("{endpoint}/s3/multipart"), None, Some(body.clone())).await;
    let (id2, key2) = (upload_id(&second), second["key"].as_str().unwrap().to_owned());
    w.objects.receive_part(&id2, 1, 2 << 20);
    let (status, answer) =
        w.call(Method::POST, &format!("{endpoint}/s3/multipart/{id2}/complete?key={key2}"), None, None).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("upload_oversize")),
        "{answer}"
    );
    assert_eq!(w.usage("alice").await.charged, 2 << 20);
    assert_eq!(w.objects.aborted(), [id2]);

    let token = minted["token"].as_str().unwrap();
    let (status, _) = w.call(Method::DELETE, &format!("/v1/upload-tokens/{token}"), Some("mallory"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "only its owner revokes a token");
    let (status, _) = w.call(Method::DELETE, &format!("/v1/upload-tokens/{token}"), Some("alice"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = w.call(Method::POST, &format!("{endpoint}/s3/multipart"), None, Some(body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(w.objects.open_uploads().len(), 0);
}

#[tokio::test]
async fn sign_request_mode_picks_the_key_and_signs_parts_only_of_its_own_bound_uploads() {
    let w = World::new();
    let create = json!({"method": "POST", "key": "0f8fad5b-d9cb-469f-a165-70867728950e-menu.pdf", "contentType": "application/pdf", "size": SIZE});
    let (status, signed) = w.call(Method::POST, "/v1/uploads/sign", Some("alice"), Some(create)).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let key = signed["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("users/alice/") && key.ends_with("/menu.pdf"), "{key}");
    assert!(signed["url"].as_str().unwrap().contains("uploads&content-type=application/pdf&method=POST"), "{signed}");
    assert_eq!(signed["headers"], json!({"content-type": "application/pdf"}), "the type to send, signed");
    assert_eq!(w.usage("alice").await.reserved, SIZE);

    // The client posted the signed CreateMultipartUpload: S3 gave it an upload id.
    let id = {
        use matbakh_app::ports::ObjectUploads;
        let key = matbakh_core::ids::ObjectKey::from_stored(key.clone());
        w.objects
            .create_multipart(&key, matbakh_core::types::ContentType::parse("application/pdf").unwrap(), None)
            .await
            .unwrap()
    };
    let part = |user: &'static str, key: String| {
        let body = json!({"method": "PUT", "key": key, "uploadId": id.as_str(), "partNumber": 2});
        w.call(Method::POST, "/v1/uploads/sign", Some(user), Some(body))
    };
    let (status, _) = part("mallory", key.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "someone else's key");
    assert_eq!(w.usage("mallory").await.open_uploads, 0);
    let (status, signed) = part("alice", key.clone()).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert!(signed["url"].as_str().unwrap().contains("content-length=1048576"), "{signed}");
    assert_eq!(w.repo.session(&id).map(|x| x.state), Some(SessionState::Open), "bound on first use");
    assert_eq!(w.usage("alice").await.open_uploads, 1);
    let (status, _) = part("alice", format!("{key}.other")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another key with this upload id");
}

/// Every mode takes the file's visibility, tags and metadata: REST and signRequest from the
/// request, Companion from the upload token (every file sent with it).
#[tokio::test]
async fn every_upload_mode_carries_its_labels_onto_the_row() {
    let w = World::new();
    let labels = json!({"visibility": "public", "tags": ["menu"], "metadata": {"course": "starter"}});
    let expect = |row: matbakh_core::metadata::FileRecord| {
        let l = row.labels;
        assert_eq!(l.visibility, matbakh_core::labels::Visibility::Public);
        assert_eq!(l.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["menu"]);
        assert_eq!(l.metadata.iter().collect::<Vec<_>>(), [("course", "starter")]);
    };
    let mut rest = json!({"filename": "menu.pdf", "contentType": "application/pdf", "size": SIZE});
    rest.as_object_mut().unwrap().extend(labels.as_object().unwrap().clone());
    let (status, session) = w.call(Method::POST, "/v1/uploads/multipart", Some("alice"), Some(rest)).await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    expect(w.file(&session).unwrap());

    let mut sign = json!({"method": "POST", "key": "menu.pdf", "contentType": "application/pdf", "size": SIZE});
    sign.as_object_mut().unwrap().extend(labels.as_object().unwrap().clone());
    let (status, signed) = w.call(Method::POST, "/v1/uploads/sign", Some("alice"), Some(sign)).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let id = matbakh_core::ids::ObjectKey::file_id_of(signed["key"].as_str().unwrap()).unwrap();
    expect(w.repo.get(id).unwrap().record);

    let (status, minted) = w.call(Method::POST, "/v1/upload-tokens", Some("alice"), Some(labels)).await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    let endpoint = minted["endpoint"].as_str().unwrap();
    let params = format!("{endpoint}/s3/params?filename=dish.jpg&type=image/jpeg");
    let (status, post) = w.call(Method::GET, &params, None, None).await;
    assert_eq!(status, StatusCode::OK, "{post}");
    let key = post["fields"]["key"].as_str().unwrap();
    expect(w.repo.get(matbakh_core::ids::ObjectKey::file_id_of(key).unwrap()).unwrap().record);

    let bad = json!({"tags": ["no spaces"]});
    let (status, answer) = w.call(Method::POST, "/v1/upload-tokens", Some("alice"), Some(bad)).await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some("tags")), "{answer}");
}

#[tokio::test]
async fn an_unsized_sign_request_put_is_refused_when_the_quota_has_no_room() {
    let w = World::new();
    let (status, _) = w.start("alice", QUOTA).await;
    assert_eq!(status, StatusCode::CREATED);
    let body = json!({"method": "PUT", "key": "menu.pdf"});
    let (status, answer) = w.call(Method::POST, "/v1/uploads/sign", Some("alice"), Some(body)).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("quota_exceeded")), "{answer}");
    assert_eq!(w.usage("alice").await.charged, QUOTA);
}

/// Review 25: an unsized sign-mode PUT reserves nothing, so it made no usage update and never
/// met the erase's closed account: granted during an erase (the token still valid), its file
/// was deleted by the second pass without a word. Now it is refused as every grant is.
#[tokio::test]
async fn an_unsized_sign_request_put_is_refused_while_the_account_is_being_erased() {
    use matbakh_app::ports::AccountRepo;
    let w = World::new();
    w.repo.close(&UserId::parse("alice").unwrap(), NOW.unix_timestamp()).await.unwrap();
    let body = json!({"method": "PUT", "key": "menu.pdf"});
    let (status, answer) = w.call(Method::POST, "/v1/uploads/sign", Some("alice"), Some(body.clone())).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("account_erased")), "{answer}");
    assert!(w.repo.file_ids(&UserId::parse("alice").unwrap()).await.unwrap().is_empty(), "no row");
    let (status, _) = w.call(Method::POST, "/v1/uploads/sign", Some("bob"), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "another account is open");
}

/// The attack (security review, 2026-12-06): start a planned upload (its size reserved), send
/// its parts and complete it at S3 directly (a presigned Complete URL from sign mode), then,
/// before the bucket event is settled, abort it here. S3 answers `NoSuchUpload` to the abort
/// of a completed upload, which counted as aborted: the reservation was released and the row
/// deleted, and the object stayed under the user's prefix for good, counted against no quota.
/// Now an abort that finds the object at its key refuses (`409 upload_finished`) and changes
/// nothing: the event settles it as any completed upload.
#[tokio::test]
async fn an_upload_completed_at_s3_cannot_be_aborted_to_store_bytes_beyond_the_quota() {
    use matbakh_app::ports::ObjectUploads;
    let w = World::new();
    let (_, session) = w.start("alice", SIZE).await;
    let id = upload_id(&session);
    let key = matbakh_core::ids::ObjectKey::from_stored(w.file(&session).unwrap().key.as_str().to_owned());
    w.objects.receive_part(&id, 1, DEFAULT_PART_SIZE);
    w.objects.receive_part(&id, 2, 1 << 20);
    let parts = w.objects.list_parts(&key, &id).await.unwrap().unwrap();
    w.objects.complete_multipart(&key, &id, &parts, None).await.unwrap();

    let (status, answer) = w.call(Method::DELETE, &format!("/v1/uploads/{id}"), Some("alice"), None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("upload_finished")), "{answer}");
    let u = w.usage("alice").await;
    assert_eq!((u.charged, u.reserved), (SIZE, SIZE), "the reservation stays until the object is settled");
    assert!(w.file(&session).is_some(), "the row stays");
    assert_eq!(w.repo.session(&id).map(|x| x.state), Some(SessionState::Open));
}

/// The attack (security review, 2026-12-06): an upload token's session is charged to the
/// token and the quota only when it is completed through the token's endpoint. Its owner asked
/// sign mode, with their login, for a presigned Complete URL of it, completed it at S3
/// directly, and the object (any size: Companion parts have no length) was never charged. Now
/// sign mode answers for no upload-token session, as for someone else's.
#[tokio::test]
async fn sign_mode_signs_nothing_for_an_upload_tokens_session() {
    let w = World::new();
    let (_, minted) =
        w.call(Method::POST, "/v1/upload-tokens", Some("alice"), Some(json!({"maxBytes": 3 << 20}))).await;
    let endpoint = minted["endpoint"].as_str().unwrap().to_owned();
    let body = json!({"filename": "dish.jpg", "type": "image/jpeg"});
    let (_, started) = w.call(Method::POST, &format!("{endpoint}/s3/multipart"), None, Some(body)).await;
    let (id, key) = (upload_id(&started), started["key"].as_str().unwrap().to_owned());
    for method in ["POST", "GET", "DELETE"] {
        let req = json!({"method": method, "key": key, "uploadId": id.as_str()});
        let (status, answer) = w.call(Method::POST, "/v1/uploads/sign", Some("alice"), Some(req)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}: {answer}");
    }
    assert_eq!(w.repo.session(&id).map(|x| x.state), Some(SessionState::Open));
}
