//! The dashboard's routes against moto: only administrators get in; pause, resume and abort
//! change the run item as the CLI does; resume hands the run to the workers again.

use std::collections::BTreeSet;
use std::sync::Arc;

use http::{Method, Request, StatusCode};
use matbakh_api::auth::{Authenticator, JwtVerifier};
use matbakh_api::dev_keys::DevKey;
use matbakh_aws::ledger::{Counters, Delta, Ledger, RunRecord};
use matbakh_aws::queue::Queue;
use matbakh_core::clock::SystemClock;
use matbakh_core::migration::eta::Tally;
use matbakh_core::migration::{FailureReason, RunId, RunState};
use migration_api::{Admin, parse_admins, router};
use serde_json::Value;
use testkit::{AUDIENCE, ISSUER, call_router, env, moto_sdk};

struct Fixture {
    admin: Admin,
    key: DevKey,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

async fn fixture() -> Fixture {
    let sdk = moto_sdk().await;
    let key = DevKey::generate().unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let name = format!("dashboard-{}", uuid::Uuid::now_v7().simple());
    let queue_url = sqs.create_queue().queue_name(name).send().await.unwrap().queue_url.unwrap();
    let admin = Admin {
        auth: Arc::new(Authenticator::Jwks(JwtVerifier::new(&key.jwks(), ISSUER, AUDIENCE).unwrap())),
        ledger: Ledger::new(&sdk, env("MIGRATION_TABLE")),
        files: matbakh_aws::table::FileTable::new(&sdk, env("TABLE_NAME")),
        queue: Some(Queue::new(&sdk, &queue_url)),
        reports: Some(matbakh_aws::report::ReportBucket::new(&sdk, testkit::fresh_bucket("reports").await.1)),
        admins: Arc::new(BTreeSet::from(["ops-admin".to_owned()])),
        clock: Arc::new(SystemClock),
    };
    Fixture { admin, key, sqs, queue_url }
}

impl Fixture {
    async fn call(&self, method: Method, uri: &str, sub: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(sub) = sub {
            req = req.header("authorization", format!("Bearer {}", self.key.mint(sub, ISSUER, AUDIENCE, 600).unwrap()));
        }
        call_router(router(self.admin.clone()), req.body(axum::body::Body::empty()).unwrap()).await
    }

    /// A run half copied: 2 of 4 files, one failed for a changed source (2 s of copying).
    async fn run(&self) -> RunId {
        let r = testkit::rand32();
        let id = RunId::new(time::OffsetDateTime::now_utc(), u32::from_le_bytes([r[0], r[1], r[2], r[3]]));
        let mut copied = Tally::default();
        copied.add(1000, 50.0);
        copied.add(3000, 50.0);
        let record = RunRecord {
            id: id.clone(),
            state: RunState::Running,
            source: "file:///legacy".into(),
            target: "s3://bucket".into(),
            rule: "keep".into(),
            created_at: "2026-11-28T07:00:00.000Z".into(),
            total_files: 4,
            total_bytes: 8000,
            manifest_key: format!("migration/{id}/manifest.jsonl"),
            settings: "{}".into(),
            counters: Counters::default(),
            started_at: None,
            updated_at: None,
            verification: None,
            since: None,
            late_copies: 0,
            late_copies_seen: 0,
        };
        self.admin.ledger.create_run(&record).await.unwrap();
        // What workers report as they go.
        let delta = Delta {
            copied,
            failed_files: 1,
            retries: 2,
            active_ms: 2000,
            failures: [(FailureReason::SourceChanged, 1)].into(),
        };
        self.admin.ledger.add(&id, &delta, "2026-11-28T07:00:02.000Z").await.unwrap();
        id
    }

    async fn state(&self, id: &RunId) -> RunState {
        self.admin.ledger.get_run(id).await.unwrap().unwrap().state
    }

    async fn messages(&self) -> Vec<Value> {
        let out =
            self.sqs.receive_message().queue_url(&self.queue_url).max_number_of_messages(10).send().await.unwrap();
        out.messages().iter().map(|m| serde_json::from_str(m.body().unwrap()).unwrap()).collect()
    }
}

#[test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
fn admins_are_a_comma_separated_list() {
    assert_eq!(parse_admins(" a, b,,c "), BTreeSet::from(["a".into(), "b".into(), "c".into()]));
    assert!(parse_admins("").is_empty());
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn only_administrators_reach_any_route_and_nothing_changes_for_others() {
    let f = fixture().await;
    let id = f.run().await;
    let routes = [
        (Method::GET, "/v1/admin/migrations".to_owned()),
        (Method::GET, format!("/v1/admin/migrations/{id}")),
        (Method::POST, format!("/v1/admin/migrations/{id}/pause")),
        (Method::POST, format!("/v1/admin/migrations/{id}/resume")),
        (Method::POST, format!("/v1/admin/migrations/{id}/abort")),
    ];
    for (method, uri) in &routes {
        let (status, body) = f.call(method.clone(), uri, Some("demo-user")).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{method} {uri}");
        let (status, _) = f.call(method.clone(), uri, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
    assert_eq!(f.state(&id).await, RunState::Running);
    assert!(f.messages().await.is_empty());
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn the_dashboard_shows_progress_rate_eta_and_failures() {
    let f = fixture().await;
    let id = f.run().await;
    let (status, body) = f.call(Method::GET, "/v1/admin/migrations", Some("ops-admin")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let run = body["runs"].as_array().unwrap().iter().find(|r| r["run"] == id.as_str()).expect("the run is listed");
    assert_eq!((run["copiedFiles"].as_u64(), run["totalFiles"].as_u64()), (Some(2), Some(4)));
    assert_eq!((run["copiedBytes"].as_u64(), run["totalBytes"].as_u64()), (Some(4000), Some(8000)));
    assert_eq!(run["bytesPerSecond"].as_f64(), Some(2000.0));
    assert_eq!(run["failures"]["source_changed"].as_i64(), Some(1));
    assert!(run["etaSeconds"].as_f64().is_some_and(|e| e > 0.0), "{run}");

    let (status, one) = f.call(Method::GET, &format!("/v1/admin/migrations/{id}"), Some("ops-admin")).await;
    assert_eq!((status, &one), (StatusCode::OK, run));
    for uri in ["/v1/admin/migrations/r-missing", "/v1/admin/migrations/NOT%20A%20RUN"] {
        let (status, body) = f.call(Method::GET, uri, Some("ops-admin")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
    }
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn pause_resume_and_abort_change_the_run_as_the_cli_does() {
    let f = fixture().await;
    let id = f.run().await;
    let control = |action: &str| format!("/v1/admin/migrations/{id}/{action}");

    // Resuming a run that runs hands nothing out (review 26: its whole backlog was queued a
    // second time, and its counters recounted under the workers).
    let (status, body) = f.call(Method::POST, &control("resume"), Some("ops-admin")).await;
    assert_eq!(
        (status, body["state"].as_str(), body["enqueued"].as_bool()),
        (StatusCode::OK, Some("RUNNING"), Some(false)),
        "{body}"
    );
    assert!(f.messages().await.is_empty());

    // Pausing twice is harmless; nothing is sent to the workers.
    for _ in 0..2 {
        let (status, body) = f.call(Method::POST, &control("pause"), Some("ops-admin")).await;
        assert_eq!((status, body["state"].as_str()), (StatusCode::OK, Some("PAUSED")), "{body}");
    }
    assert_eq!(f.state(&id).await, RunState::Paused);
    assert!(f.messages().await.is_empty());

    // Resume: running again, and one message asks the workers to send the pending files.
    let (status, body) = f.call(Method::POST, &control("resume"), Some("ops-admin")).await;
    assert_eq!(
        (status, body["state"].as_str(), body["enqueued"].as_bool()),
        (StatusCode::OK, Some("RUNNING"), Some(true))
    );
    assert_eq!(f.state(&id).await, RunState::Running);
    let sent = f.messages().await;
    assert_eq!(sent, vec![serde_json::json!({"kind": "enqueue", "run": id.as_str()})]);

    // Abort is final: a resume afterwards is refused with 409 and changes nothing.
    let (status, body) = f.call(Method::POST, &control("abort"), Some("ops-admin")).await;
    assert_eq!((status, body["state"].as_str()), (StatusCode::OK, Some("ABORTED")));
    let (status, body) = f.call(Method::POST, &control("resume"), Some("ops-admin")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::CONFLICT, Some("invalid_state")), "{body}");
    assert_eq!(f.state(&id).await, RunState::Aborted);
    assert!(f.messages().await.is_empty());

    let (status, _) = f.call(Method::POST, &control("explode"), Some("ops-admin")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = f.call(Method::POST, "/v1/admin/migrations/r-missing/pause", Some("ops-admin")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// `GET /v1/legacy?path=`: the file a legacy path became, with its current status (admins
/// only); 404 for a path never migrated, 400 without one.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_legacy_path_names_the_file_it_became() {
    let f = fixture().await;
    // A new id every run: the row of a fixed one would outlive the test in a reused moto.
    let r = testkit::rand32();
    let id = matbakh_core::ids::FileId::new(1_700_000_000_000, r[..10].try_into().unwrap());
    let user = testkit::unique_user("legacy");
    let legacy = format!("shop/{user}/menu card.jpg");
    let entry = matbakh_core::migration::ManifestEntry {
        seq: 0,
        source: legacy.clone(),
        key: format!("users/{user}/{id}/menu card.jpg"),
        size: 10,
        mtime_ms: 1_700_000_000_000,
        change: String::new(),
        content_type: "image/jpeg".into(),
        crc64nvme: String::new(),
        sha256: String::new(),
        priority: 0,
        batch: 0,
        prior: None,
        legacy: None,
        copied_by: None,
        supersedes: None,
    };
    let record = migrate::copy::file_record(&entry).unwrap();
    assert!(f.admin.files.register_migrated(&record, "r20261205t000000-00000001", &legacy).await.unwrap());
    let uri = |p: &str| format!("/v1/legacy?path={}", p.replace(' ', "%20"));
    let (status, body) = f.call(Method::GET, &uri(&legacy), Some("ops-admin")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["fileId"].as_str(), body["status"].as_str()), (Some(id.to_string().as_str()), Some("PENDING")));
    assert_eq!(body["key"], entry.key.as_str());
    let (status, _) = f.call(Method::GET, &uri(&format!("/{legacy}")), Some("ops-admin")).await;
    assert_eq!(status, StatusCode::OK, "a leading slash is the same path");
    let (status, body) = f.call(Method::GET, &uri("shop/nobody/x.jpg"), Some("ops-admin")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (status, body) = f.call(Method::GET, "/v1/legacy", Some("ops-admin")).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("path")));
    let (status, _) = f.call(Method::GET, &uri(&legacy), Some("demo-user")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn the_latest_report_is_for_administrators_and_missing_until_made() {
    use matbakh_app::ports::ReportStore;
    let f = fixture().await;
    let (status, _) = f.call(Method::GET, "/v1/admin/reports/latest", Some("ops-admin")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no report made yet");
    let report = serde_json::json!({"generatedAt": "2026-12-05T03:00:00Z", "total": {"objects": 3, "bytes": 42}});
    let store = f.admin.reports.clone().unwrap();
    store.save("2026-12-05", Vec::new(), report.to_string().into_bytes()).await.unwrap();
    let (status, got) = f.call(Method::GET, "/v1/admin/reports/latest", Some("ops-admin")).await;
    assert_eq!((status, got), (StatusCode::OK, report));

    // It names users until the next report replaces it: not one whose account an erase closed
    // (or ended) since; an open account's id shows.
    let (open, closed) = (testkit::unique_user("open"), testkit::unique_user("closed"));
    let file = |user: &str| {
        let id = matbakh_core::ids::UserId::parse(user).unwrap();
        matbakh_core::metadata::FileRecord {
            size: 10,
            ..matbakh_core::metadata::FileRecord::upload(
                matbakh_core::ids::FileId::new(1_765_000_000_000, [user.len() as u8; 10]),
                id,
                matbakh_core::names::DisplayName::parse("a.pdf").unwrap(),
                matbakh_core::types::ContentType::parse("application/pdf").unwrap(),
                time::OffsetDateTime::now_utc(),
            )
        }
    };
    f.admin.files.reserve_upload(&file(&open), 1 << 30).await.unwrap();
    let closed_id = matbakh_core::ids::UserId::parse(&closed).unwrap();
    f.admin.files.close_account(&closed_id, 1_765_000_000).await.unwrap();
    let named = serde_json::json!({
        "generatedAt": "2026-12-06T03:00:00Z",
        "users": [{"user": open}, {"user": closed}, {"user": "never-here"}, {"user": "others"}],
        "transfer": {"users": [{"user": closed}]},
    });
    store.save("2026-12-06", Vec::new(), named.to_string().into_bytes()).await.unwrap();
    let (status, got) = f.call(Method::GET, "/v1/admin/reports/latest", Some("ops-admin")).await;
    assert_eq!(status, StatusCode::OK);
    let erased = matbakh_core::report::ERASED_USER;
    let users: Vec<&str> = got["users"].as_array().unwrap().iter().map(|u| u["user"].as_str().unwrap()).collect();
    assert_eq!(users, [open.as_str(), erased, erased, "others"]);
    assert_eq!(got["transfer"]["users"][0]["user"], erased);
    for who in [Some("someone"), None] {
        let (status, _) = f.call(Method::GET, "/v1/admin/reports/latest", who).await;
        assert!(matches!(status, StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED), "{who:?}: {status}");
    }
}
