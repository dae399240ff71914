//! `account`: the caller's rights over their data as a whole (GDPR).
//!
//! Triggered by API Gateway (HTTP API, JWT authorizer):
//! - `DELETE /v1/me {"confirm": true}`: erases every object version, variant, transform result
//!   and quarantined copy of the caller, their open uploads, and every item of theirs in the
//!   metadata table (files, tags, search words, shares, sessions, tokens, usage, audit trail),
//!   and reports what it removed; with a disaster-recovery replica (`REPLICA_BUCKET`,
//!   `REPLICA_REGION`), also every version and delete marker of the caller's originals there
//!   (S3 does not replicate version-specific deletes); with the files CDN
//!   (`FILES_DISTRIBUTION_ID`), the caller's cached transform results are invalidated there
//!   (one wildcard path, `/results/users/{sub}/*`), every variant and every public copy too
//!   (`/derived/*`, `/p/*`: their keys name no user). Idempotent: a retry finishes what a
//!   failed one left; a second erase removes nothing. The erase itself is recorded under a
//!   pseudonym keyed with the stack's secret (`ERASE_PSEUDONYM_SECRET_ID`, DECISIONS 17).
//!   Before it deletes anything it leaves its second pass in the erase-again queue
//!   (`ERASE_AGAIN_QUEUE_URL`): the `eraser` runs it an hour later, for what landed after the
//!   erase read the user's keys (`matbakh_core::erasure`).
//!
//! - `POST /v1/me/export`: queues an export of all the caller's files and their metadata as
//!   one ZIP (built by the `exporter` function, streamed to S3, never held in memory); answers
//!   202 with the job. While one is pending or running, asking again answers that one.
//! - `GET /v1/me/exports/{exportId}`: the job's state, and when READY a download link
//!   (presigned, [`DOWNLOAD_URL_TTL`](matbakh_core::limits)).
//!
//! Each handler decodes the request, calls a use case ([`matbakh_app::erase`],
//! [`matbakh_app::exports`]) and encodes its answer; [`router`] runs them on the deployment's
//! table and bucket, [`routes`] on any implementation of the ports.
//!
//! Reads and deletes: `users/{sub}/`, `derived/{fileId}/`, `results/users/{sub}/`,
//! `quarantine/users/{sub}/`, `exports/{sub}/` in the bucket; `users/{sub}/` in the replica
//! (the replication rule's filter: only originals are replicated); the caller's items in the
//! table. Sends to: the export queue, the migration queue (`{"kind":"redact"}`), the
//! erase-again queue (the second pass, naming the caller).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Json, Router};
use matbakh_api::audit::Client;
use matbakh_api::body::JsonObject;
use matbakh_api::{ApiError, Authenticator, Caller};
use matbakh_app::erase::Erasure;
use matbakh_app::exports::{ExportView, Exports};
use matbakh_aws::Services;
pub use matbakh_aws::config::EraseSettings;
use matbakh_aws::queue::Queue;
use matbakh_lambda::metrics::{self, Unit};
use serde_json::{Value, json};

pub use matbakh_app::erase::user_prefixes;

/// The use cases of the caller's account as a whole.
#[derive(Clone)]
pub struct Account {
    pub erasure: Erasure,
    pub exports: Exports,
}

/// What the handlers use: the use cases and who may call them.
pub type Api = matbakh_api::Api<Account>;

/// The function on the deployment's table, bucket, replica, CDN and export queue.
pub fn router(services: Services, auth: Arc<Authenticator>, settings: EraseSettings, exports: Queue) -> Router {
    let account = Account { erasure: services.erasure(settings), exports: services.exports(Arc::new(exports)) };
    routes(Api { cases: account, auth })
}

/// The function on any implementation of the ports (in memory, in tests).
pub fn routes(api: Api) -> Router {
    matbakh_api::openapi::serve(served(), api)
}

/// This function's part of the API's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    matbakh_api::openapi::part(documented())
}

matbakh_api::routes!(Api; erase, start_export, export_status);

/// Erases everything of the caller's
///
/// Every object version, variant, transform result and quarantined copy, open uploads, and
/// every item of theirs in the table (and in the disaster-recovery replica), then reports what
/// it removed. Idempotent: a retry finishes what a failed one left.
#[utoipa::path(delete, path = "/v1/me", operation_id = "erase_account", tag = "account",
    request_body(content = Value, description = "`{confirm: true}`"),
    responses(
        (status = 200, description = "What was removed"),
        (status = 400, description = "`confirm` is missing"),
        (status = 401, description = "No valid token"),
    ))]
#[tracing::instrument(name = "erase_account", skip_all, fields(user = %caller.user))]
async fn erase(State(api): State<Api>, caller: Caller, body: Bytes) -> Result<Json<Value>, ApiError> {
    let req = JsonObject::parse(&body, &["confirm"])?;
    if req.opt_bool("confirm")? != Some(true) {
        return Err(ApiError::bad_field("confirm", "confirm: send {\"confirm\": true} to erase everything of yours"));
    }
    let erased = api.cases.erasure.erase(&caller.user).await?;
    metrics::emit("erase_account", &[("AccountsErased", 1, Unit::Count)]);
    Ok(Json(json!({ "erased": {
        "objectVersions": erased.object_versions,
        "replicaVersions": erased.replica_versions,
        "derivedObjects": erased.derived_objects,
        "uploadsAborted": erased.uploads_aborted,
        "files": erased.files,
        "items": erased.items,
    }})))
}

/// Exports all the caller's files
///
/// Queues one ZIP of every file and its metadata (`metadata.json`); while one is pending or
/// running, asking again answers that one.
#[utoipa::path(post, path = "/v1/me/export", operation_id = "start_export", tag = "account",
    responses(
        (status = 202, description = "The export job"),
        (status = 401, description = "No valid token"),
        (status = 409, description = "`busy`: another export was asked for at the same moment and is not to be answered (try again)"),
        (status = 429, description = "`rate_limited`: over the caller's budget of exports (`Retry-After` says when to retry)"),
    ))]
#[tracing::instrument(name = "start_export", skip_all, fields(user = %caller.user))]
async fn start_export(
    State(api): State<Api>,
    caller: Caller,
    client: Client,
) -> Result<(StatusCode, Json<ExportView>), ApiError> {
    Ok((StatusCode::ACCEPTED, Json(api.cases.exports.start(&caller.user, &client.0).await?)))
}

/// An export job of the caller's
///
/// Its state, and when `READY` a download link.
#[utoipa::path(get, path = "/v1/me/exports/{exportId}", operation_id = "export_status", tag = "account",
    params(("exportId" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such export of the caller's"),
    ))]
#[tracing::instrument(name = "export_status", skip_all, fields(user = %caller.user))]
async fn export_status(
    State(api): State<Api>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ExportView>, ApiError> {
    Ok(Json(api.cases.exports.status(&caller.user, &id).await?))
}

#[cfg(test)]
mod erase_tests;
