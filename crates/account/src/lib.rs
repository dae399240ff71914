//! `account`: the caller's rights over their data as a whole (GDPR).
//!
//! Triggered by API Gateway (HTTP API, JWT authorizer):
//! - `DELETE /v1/me {"confirm": true}`: erases every object version, variant, transform result
//!   and quarantined copy of the caller, their open uploads, and every item of theirs in the
//!   metadata table (files, tags, search words, shares, sessions, tokens, usage, audit trail),
//!   and reports what it removed; with a disaster-recovery replica (`REPLICA_BUCKET`,
//!   `REPLICA_REGION`), also every version and delete marker of the caller's originals there
//!   (S3 does not replicate version-specific deletes); with the image CDN
//!   (`IMAGES_DISTRIBUTION_ID`), the caller's cached transform results are invalidated there
//!   (one wildcard path, `/results/users/{sub}/*`; with variants on a CDN, `CDN_BASE_URL`,
//!   every variant too: their keys name no user). Idempotent: a retry finishes what a
//!   failed one left; a second erase removes nothing. The erase itself is recorded under a
//!   pseudonym keyed with the stack's secret (`ERASE_PSEUDONYM_SECRET_ID`, DECISIONS 17).
//!
//! - `POST /v1/me/export`: queues an export of all the caller's files and their metadata as
//!   one ZIP (built by the `exporter` function, streamed to S3, never held in memory); answers
//!   202 with the job. While one is pending or running, asking again answers that one.
//! - `GET /v1/me/exports/{exportId}`: the job's state, and when READY a download link
//!   (presigned, [`DOWNLOAD_URL_TTL`](matbakh_core::limits)).
//!
//! Reads and deletes: `users/{sub}/`, `derived/{fileId}/`, `results/users/{sub}/`,
//! `quarantine/users/{sub}/`, `exports/{sub}/` in the bucket; `users/{sub}/` in the replica
//! (the replication rule's filter: only originals are replicated); the caller's items in the
//! table.

use std::sync::Arc;

use aws_config::SdkConfig;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json, Router};
use matbakh_api::audit::{self, Client};
use matbakh_api::body::JsonObject;
use matbakh_api::metrics::{self, Unit};
use matbakh_api::{ApiError, Caller, Services};
use matbakh_app::audit::Access;
use matbakh_app::exports::{ExportView, Exports};
use matbakh_aws::S3Store;
use matbakh_aws::cdn::Cdn;
use matbakh_aws::config::ReplicaSettings;
use matbakh_aws::erase::Erased;
use matbakh_aws::queue::Queue;
use matbakh_core::audit::{AuditAction, PseudonymKey, pseudonym};
use matbakh_core::cdn;
use matbakh_core::ids::{FileId, ObjectKey, UserId};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router(services: Services, erasure: Erasure, exports: Queue) -> Router {
    let exports = services.exports(Arc::new(exports));
    routes(services, erasure, exports)
}

/// The function with the export use cases on any implementation of their ports.
pub fn routes(services: Services, erasure: Erasure, exports: Exports) -> Router {
    let (router, _) = documented().split_for_parts();
    router
        .fallback(|| async { ApiError::not_found("route") })
        .layer(Extension(Arc::new(erasure)))
        .layer(Extension(Arc::new(exports)))
        .with_state(services)
}

/// This function's part of the API's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().split_for_parts().1
}

fn documented() -> OpenApiRouter<Services> {
    OpenApiRouter::new().routes(routes!(erase)).routes(routes!(start_export)).routes(routes!(export_status))
}

/// What an erase needs besides the shared services.
#[derive(Debug, Clone)]
pub struct Erasure {
    /// Keys the pseudonym the erase is recorded under.
    pub pseudonym_key: PseudonymKey,
    /// The disaster-recovery replica, where the caller's originals are erased too.
    pub replica: Option<S3Store>,
    /// The image CDN (`IMAGES_DISTRIBUTION_ID`), where the caller's transform results are
    /// invalidated. None (locally): nothing is cached.
    pub cdn: Option<Cdn>,
}

impl Erasure {
    /// At start, from the environment: the key is the Secrets Manager secret
    /// `ERASE_PSEUDONYM_SECRET_ID` names (the function refuses to start without it); the
    /// replica is `REPLICA_BUCKET` in `REPLICA_REGION` (both empty: none); the image CDN is
    /// `IMAGES_DISTRIBUTION_ID` (empty: none).
    pub async fn from_lookup(sdk: &SdkConfig, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let secret_id = lookup("ERASE_PSEUDONYM_SECRET_ID")
            .filter(|v| !v.is_empty())
            .ok_or("ERASE_PSEUDONYM_SECRET_ID is not set")?;
        let secret = matbakh_aws::secrets::secret_string(sdk, &secret_id).await.map_err(|e| e.to_string())?;
        let pseudonym_key = PseudonymKey::new(secret.as_bytes()).map_err(|e| e.to_string())?;
        let cdn = Cdn::from_lookup(sdk, &lookup);
        let replica = ReplicaSettings::from_lookup(lookup).and_then(|r| r.map(|r| r.store(sdk)).transpose());
        Ok(Erasure { pseudonym_key, replica: replica.map_err(|e| e.to_string())?, cdn })
    }
}

/// Where export jobs go for the exporter: `EXPORT_QUEUE_URL`, read at start (the function
/// refuses to start without it, rather than failing the first export).
pub fn export_queue(sdk: &SdkConfig, lookup: impl Fn(&str) -> Option<String>) -> Result<Queue, String> {
    let url = lookup("EXPORT_QUEUE_URL").filter(|v| !v.is_empty()).ok_or("EXPORT_QUEUE_URL is not set")?;
    Ok(Queue::new(sdk, url))
}

/// The bucket prefixes that hold a user's objects besides their files' variants.
pub fn user_prefixes(user: &str) -> [String; 4] {
    [
        format!("users/{user}/"),
        format!("results/users/{user}/"),
        format!("quarantine/users/{user}/"),
        format!("exports/{user}/"),
    ]
}

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
async fn erase(
    State(st): State<Services>,
    Extension(erasure): Extension<Arc<Erasure>>,
    caller: Caller,
    client: Client,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = JsonObject::parse(&body, &["confirm"])?;
    if req.opt_bool("confirm")? != Some(true) {
        return Err(ApiError::bad_field("confirm", "confirm: send {\"confirm\": true} to erase everything of yours"));
    }
    let owner = &caller.user;
    let mut erased = Erased::default();
    let files = st.table.all_file_ids(owner).await?;
    // Objects first: their keys come from the rows, which go last.
    let [originals, results, quarantined, exports] = user_prefixes(owner.as_str());
    let aborted = st.store.abort_uploads_under(&originals).await?;
    erased.uploads_aborted = aborted.len();
    erased.object_versions = st.store.delete_prefix(&originals).await?;
    if let Some(edge) = &erasure.cdn {
        invalidate_cached(&st, edge, owner, &results, &files).await?;
    }
    for prefix in [results, quarantined, exports] {
        erased.derived_objects += st.store.delete_prefix(&prefix).await?;
    }
    for f in &files {
        erased.derived_objects += st.store.delete_prefix(&ObjectKey::derived_prefix(*f)).await?;
    }
    // Then the replica, before the rows: a retry after a failure here still finds everything.
    // Only originals are replicated (template.yaml's replication filter is `users/`).
    if let Some(replica) = &erasure.replica {
        erased.replica_versions = replica.delete_prefix(&originals).await?;
    }
    erased.files = files.len();
    erased.items = st.table.erase_items(owner, &files, &aborted).await?;

    let report = json!({
        "objectVersions": erased.object_versions,
        "replicaVersions": erased.replica_versions,
        "derivedObjects": erased.derived_objects,
        "uploadsAborted": erased.uploads_aborted,
        "files": erased.files,
        "items": erased.items,
    });
    let stand_in = pseudonym(&erasure.pseudonym_key, owner);
    let result = format!(
        "ok: {} files, {} object versions, {} in the replica, {} derived objects, {} items",
        erased.files, erased.object_versions, erased.replica_versions, erased.derived_objects, erased.items
    );
    let access = Access { result: &result, ..Access::ok(&stand_in, AuditAction::Erase, None) };
    audit::record(&st, &client, access).await?;
    tracing::info!(files = erased.files, items = erased.items, "account erased");
    metrics::emit("erase_account", &[("AccountsErased", 1, Unit::Count)]);
    Ok(Json(json!({ "erased": report })))
}

/// Invalidates the image CDN's copies of what the erase is about to delete (security review
/// 16.4): the user's transform results (one wildcard path) and, when a CDN serves variants
/// (`CDN_BASE_URL`), every variant (their keys name no user, and a wildcard a file would soon
/// pass the 15 CloudFront has in progress at once). Only what the bucket still holds, so an
/// erase of nothing invalidates nothing; after the originals (nothing can be made again) and
/// before these deletes, so the retry after a failed invalidation finds them and tries again.
async fn invalidate_cached(
    st: &Services,
    edge: &Cdn,
    owner: &UserId,
    results: &str,
    files: &[FileId],
) -> Result<(), ApiError> {
    let mut paths = Vec::new();
    if st.store.holds_any(results).await? {
        paths.push(cdn::user_results(owner));
    }
    if let Some(base) = st.cdn_base_url.as_deref() {
        for file in files {
            if st.store.holds_any(&ObjectKey::derived_prefix(*file)).await? {
                paths.push(cdn::all_variants(base));
                break;
            }
        }
    }
    if !paths.is_empty() {
        let reference = format!("erase-{}", st.clock.now().unix_timestamp_nanos());
        let invalidation = edge.invalidate(&paths, &reference).await?;
        tracing::info!(invalidation, "the user's cached images invalidated at the CDN");
    }
    Ok(())
}

/// Exports all the caller's files
///
/// Queues one ZIP of every file and its metadata (`metadata.json`); while one is pending or
/// running, asking again answers that one.
#[utoipa::path(post, path = "/v1/me/export", operation_id = "start_export", tag = "account",
    responses((status = 202, description = "The export job"), (status = 401, description = "No valid token")))]
#[tracing::instrument(name = "start_export", skip_all, fields(user = %caller.user))]
async fn start_export(
    Extension(exports): Extension<Arc<Exports>>,
    caller: Caller,
    client: Client,
) -> Result<(StatusCode, Json<ExportView>), ApiError> {
    Ok((StatusCode::ACCEPTED, Json(exports.start(&caller.user, &client.0).await?)))
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
    Extension(exports): Extension<Arc<Exports>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ExportView>, ApiError> {
    Ok(Json(exports.status(&caller.user, &id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_export_queue_the_function_stops_at_start() {
        let sdk = SdkConfig::builder().build();
        let missing = export_queue(&sdk, |_| None).expect_err("no queue");
        assert!(missing.contains("EXPORT_QUEUE_URL"), "{missing}");
        assert!(export_queue(&sdk, |_| Some(String::new())).is_err(), "an empty setting is none");
        let queue = export_queue(&sdk, |_| Some("http://127.0.0.1:5599/123/exports".into())).expect("a queue");
        assert_eq!(queue.url(), "http://127.0.0.1:5599/123/exports");
    }
}
