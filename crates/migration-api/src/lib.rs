//! `migration-api`: the migration dashboard's view of the runs the `migrate` CLI writes.
//!
//! Triggered by API Gateway (HTTP API, JWT authorizer), for administrators only (the subjects
//! in `ADMIN_USERS`; anyone else gets 403 on every route, before anything is read):
//! - `GET /v1/admin/migrations`: every run, newest first, with progress, rate, ETA and
//!   failures by reason (the same numbers as `migrate status`).
//! - `GET /v1/admin/migrations/{runId}`: one run.
//! - `POST /v1/admin/migrations/{runId}/{action}` with `pause`, `resume` or `abort`: the same
//!   state change as the CLI's command (a conditional write, so two admins cannot interleave).
//!   `resume` also asks the migration workers to send the run's pending files again (one
//!   `enqueue` message; paused workers dropped theirs).
//!
//! - `GET /v1/admin/reports/latest`: the latest storage and cost report the `reporter` wrote
//!   (`REPORTS_BUCKET`), as JSON; 404 before the first.
//!
//! - `GET /v1/legacy?path=...`: the file a legacy path was migrated to (issue 19: old URLs),
//!   with its current status; 404 when it was not.
//!
//! Reads and writes: the run items of the migration table; sends to the migration queue; reads
//! the legacy mappings and file rows of the files table (`GetItem`).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Json, Router};
use matbakh_api::auth::{AuthState, Authenticator};
use matbakh_api::{ApiError, Caller};
use matbakh_aws::AwsError;
use matbakh_aws::ledger::Ledger;
use matbakh_aws::queue::Queue;
use matbakh_aws::report::ReportBucket;
use matbakh_aws::table::FileTable;
use matbakh_core::clock::{Clock, SystemClock, iso_millis};
use matbakh_core::migration::{Control, RunId, RunState};
use migrate::control::status_of;
use migrate::work::Work;
use serde_json::{Value, json};

/// What the routes need.
#[derive(Clone)]
pub struct Admin {
    pub auth: Arc<Authenticator>,
    pub ledger: Ledger,
    /// The files table: legacy path mappings and file rows (`TABLE_NAME`).
    pub files: FileTable,
    /// The migration queue `resume` sends the run's `enqueue` message to.
    pub queue: Option<Queue>,
    /// Where the reporter keeps its reports (`REPORTS_BUCKET`).
    pub reports: Option<ReportBucket>,
    /// Subjects allowed here (`ADMIN_USERS`, comma-separated; empty: nobody).
    pub admins: Arc<BTreeSet<String>>,
    pub clock: Arc<dyn Clock>,
}

impl AuthState for Admin {
    fn authenticator(&self) -> &Authenticator {
        &self.auth
    }
}

pub use matbakh_api::auth::parse_admins;

impl Admin {
    /// Settings: `MIGRATION_TABLE`, `TABLE_NAME`, `MIGRATION_QUEUE_URL`, `ADMIN_USERS`, and the
    /// authenticator's (`AUTH_JWKS_FILE`... locally; the authorizer's claims when deployed).
    pub fn from_env(sdk: &aws_config::SdkConfig, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let table = lookup("MIGRATION_TABLE").ok_or("MIGRATION_TABLE is not set")?;
        let files = lookup("TABLE_NAME").ok_or("TABLE_NAME is not set")?;
        Ok(Admin {
            auth: Arc::new(Authenticator::from_lookup(&lookup)?),
            ledger: Ledger::new(sdk, table),
            files: FileTable::new(sdk, files),
            queue: lookup("MIGRATION_QUEUE_URL").filter(|u| !u.is_empty()).map(|u| Queue::new(sdk, u)),
            reports: lookup("REPORTS_BUCKET").filter(|b| !b.is_empty()).map(|b| ReportBucket::new(sdk, b)),
            admins: Arc::new(parse_admins(&lookup("ADMIN_USERS").unwrap_or_default())),
            clock: Arc::new(SystemClock),
        })
    }
}

pub fn router(admin: Admin) -> Router {
    matbakh_api::openapi::serve(served(), admin)
}

/// This function's part of the API's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    matbakh_api::openapi::part(documented())
}

matbakh_api::routes!(Admin; runs, run, control, legacy, latest_report);

/// The caller if they are an administrator, else 403.
fn admin_only(st: &Admin, caller: &Caller) -> Result<(), ApiError> {
    if st.admins.contains(caller.user.as_str()) {
        Ok(())
    } else {
        tracing::warn!(user = %caller.user, "not an administrator: admin routes refused");
        Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "only administrators see this"))
    }
}

/// The latest storage and cost report (administrators)
///
/// What the bucket holds by user, content type, storage class and age, its monthly cost at
/// the dated price table, and recommendations; written daily by the `reporter` function.
#[utoipa::path(get, path = "/v1/admin/reports/latest", operation_id = "latest_report", tag = "migration-api",
    responses(
        (status = 200, description = "The report (`core::report::Report`)"),
        (status = 401, description = "No valid token"),
        (status = 403, description = "Not an administrator"),
        (status = 404, description = "No report made yet"),
    ))]
#[tracing::instrument(name = "latest_report", skip_all, fields(user = %caller.user))]
async fn latest_report(State(st): State<Admin>, caller: Caller) -> Result<Json<Value>, ApiError> {
    use matbakh_app::ports::ReportStore;
    admin_only(&st, &caller)?;
    let Some(reports) = &st.reports else { return Err(ApiError::not_found("report")) };
    let json = reports.latest().await?.ok_or_else(|| ApiError::not_found("report"))?;
    let mut report = serde_json::from_slice(&json).map_err(|e| ApiError::internal(&e))?;
    // It names users until the next report replaces it (a day or two): not one erased since.
    let mut gone = BTreeSet::new();
    for user in matbakh_core::report::named_users(&report) {
        let Ok(id) = matbakh_core::ids::UserId::parse(&user) else { continue };
        if !st.files.account_open(&id).await? {
            gone.insert(user);
        }
    }
    matbakh_core::report::unname(&mut report, &gone);
    Ok(Json(report))
}

fn run_id(raw: &str) -> Result<RunId, ApiError> {
    RunId::parse(raw).map_err(|_| ApiError::not_found("run"))
}

/// Every migration run (administrators)
///
/// Newest first, with progress, rate, ETA and failures by reason (as `migrate status`).
#[utoipa::path(get, path = "/v1/admin/migrations", operation_id = "migration_runs", tag = "migration-api",
    responses(
        (status = 200, description = "`{runs: [Run]}`"),
        (status = 401, description = "No valid token"),
        (status = 403, description = "Not an administrator"),
    ))]
#[tracing::instrument(name = "migration_runs", skip_all, fields(user = %caller.user))]
async fn runs(State(st): State<Admin>, caller: Caller) -> Result<Json<Value>, ApiError> {
    admin_only(&st, &caller)?;
    let runs: Vec<_> = st.ledger.list_runs().await?.iter().map(status_of).collect();
    Ok(Json(json!({ "runs": runs })))
}

/// One migration run (administrators)
#[utoipa::path(get, path = "/v1/admin/migrations/{runId}", operation_id = "migration_run", tag = "migration-api",
    params(("runId" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run"),
        (status = 401, description = "No valid token"),
        (status = 403, description = "Not an administrator"),
        (status = 404, description = "No such run"),
    ))]
#[tracing::instrument(name = "migration_run", skip_all, fields(user = %caller.user, run = %raw))]
async fn run(State(st): State<Admin>, caller: Caller, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    admin_only(&st, &caller)?;
    let record = st.ledger.get_run(&run_id(&raw)?).await?.ok_or_else(|| ApiError::not_found("run"))?;
    Ok(Json(json!(status_of(&record))))
}

/// Pauses, resumes or aborts a run (administrators)
///
/// The same state change as the CLI's command, as a conditional write; `resume` also asks the
/// workers to send the run's pending files again.
#[utoipa::path(post, path = "/v1/admin/migrations/{runId}/{action}", operation_id = "migration_control", tag = "migration-api",
    params(
        ("runId" = String, Path, description = "The run's id"),
        ("action" = String, Path, description = "`pause`, `resume` or `abort`"),
    ),
    responses(
        (status = 200, description = "The run after the change"),
        (status = 401, description = "No valid token"),
        (status = 403, description = "Not an administrator"),
        (status = 404, description = "No such run or action"),
        (status = 409, description = "`invalid_state`: the run cannot change so"),
    ))]
#[tracing::instrument(name = "migration_control", skip_all, fields(user = %caller.user, run = %raw, action = %action))]
async fn control(
    State(st): State<Admin>,
    caller: Caller,
    Path((raw, action)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    admin_only(&st, &caller)?;
    let control = match action.as_str() {
        "pause" => Control::Pause,
        "resume" => Control::Resume,
        "abort" => Control::Abort,
        _ => return Err(ApiError::not_found("action")),
    };
    let id = run_id(&raw)?;
    if st.ledger.get_run(&id).await?.is_none() {
        return Err(ApiError::not_found("run"));
    }
    let (before, state) = st.ledger.change(&id, control, &iso_millis(st.clock.now())).await.map_err(|e| match e {
        AwsError::Config(m) => ApiError::new(StatusCode::CONFLICT, "invalid_state", m),
        e => e.into(),
    })?;
    // Only a paused run that runs again has work to hand out (review 26: a planned run's resume
    // started it through the queue while the answer said PLANNED; a running one's queued its
    // whole backlog a second time).
    let resumed = control == Control::Resume && before == RunState::Paused && state == RunState::Running;
    let queue = st.queue.as_ref().filter(|_| resumed);
    if let Some(queue) = queue {
        let body = serde_json::to_string(&Work::Enqueue { run: id.to_string() }).map_err(|e| ApiError::internal(&e))?;
        queue.send_all(&[body]).await?;
    }
    let enqueued = queue.is_some();
    tracing::info!(user = %caller.user, run = %id, %state, enqueued, "migration control applied");
    Ok(Json(json!({ "run": id.to_string(), "state": state, "enqueued": enqueued })))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LegacyQuery {
    /// The legacy path, relative to the legacy tree's root (`shop/42/menu.jpg`).
    path: Option<String>,
}

/// The file a legacy path was migrated to (administrators)
///
/// The newest run's mapping, with the file's current status; what the legacy redirector and
/// page rewriting need.
#[utoipa::path(get, path = "/v1/legacy", operation_id = "legacy_file", tag = "migration-api",
    params(LegacyQuery),
    responses(
        (status = 200, description = "`{legacyPath, fileId, key, run, status}`"),
        (status = 400, description = "No path"),
        (status = 401, description = "No valid token"),
        (status = 403, description = "Not an administrator"),
        (status = 404, description = "The path was not migrated"),
    ))]
#[tracing::instrument(name = "legacy_file", skip_all, fields(user = %caller.user))]
async fn legacy(
    State(st): State<Admin>,
    caller: Caller,
    axum::extract::Query(q): axum::extract::Query<LegacyQuery>,
) -> Result<Json<Value>, ApiError> {
    admin_only(&st, &caller)?;
    let path = q.path.map(|p| p.trim_start_matches('/').to_owned()).filter(|p| !p.is_empty());
    let path = path.ok_or_else(|| ApiError::bad_field("path", "name the legacy path (?path=shop/42/menu.jpg)"))?;
    let mapping = st.files.legacy_file(&path).await?.ok_or_else(|| ApiError::not_found("legacy path"))?;
    let status = st.files.get_file(mapping.file_id).await?.map(|r| r.status.as_str().to_owned());
    Ok(Json(json!({
        "legacyPath": mapping.legacy_path,
        "fileId": mapping.file_id.to_string(),
        "key": mapping.key,
        "run": mapping.run,
        // `null`: the file was deleted (or erased) since.
        "status": status,
    })))
}
