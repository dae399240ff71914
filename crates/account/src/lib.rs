//! `account`: the caller's rights over their data as a whole (GDPR).
//!
//! Triggered by API Gateway (HTTP API, JWT authorizer):
//! - `DELETE /v1/me {"confirm": true}`: erases every object version, variant, transform result
//!   and quarantined copy of the caller, their open uploads, and every item of theirs in the
//!   metadata table (files, tags, search words, shares, sessions, tokens, usage, audit trail),
//!   and reports what it removed. Idempotent: a retry finishes what a failed one left; a second
//!   erase removes nothing. The erase itself is recorded under a one-way pseudonym
//!   (DECISIONS 17).
//!
//! Reads and deletes: `users/{sub}/`, `derived/{fileId}/`, `results/users/{sub}/`,
//! `quarantine/users/{sub}/`, `exports/{sub}/` in the bucket; the caller's items in the table.

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::delete;
use axum::{Json, Router};
use matbakh_api::audit::{self, Access, Client};
use matbakh_api::body::JsonObject;
use matbakh_api::metrics::{self, Unit};
use matbakh_api::{ApiError, Caller, Services};
use matbakh_aws::erase::Erased;
use matbakh_core::audit::{AuditAction, pseudonym};
use matbakh_core::ids::ObjectKey;
use serde_json::{Value, json};

pub fn router(services: Services) -> Router {
    Router::new()
        .route("/v1/me", delete(erase))
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(services)
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

#[tracing::instrument(name = "erase_account", skip_all, fields(user = %caller.user))]
async fn erase(
    State(st): State<Services>,
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
    for prefix in [results, quarantined, exports] {
        erased.derived_objects += st.store.delete_prefix(&prefix).await?;
    }
    for f in &files {
        erased.derived_objects += st.store.delete_prefix(&ObjectKey::derived_prefix(*f)).await?;
    }
    let mut uploads: Vec<String> = st.table.upload_ids_of(owner, &files).await?.into_iter().map(|(_, id)| id).collect();
    uploads.extend(aborted);
    erased.files = files.len();
    erased.items = st.table.erase_items(owner, &files, &uploads).await?;

    let report = json!({
        "objectVersions": erased.object_versions,
        "derivedObjects": erased.derived_objects,
        "uploadsAborted": erased.uploads_aborted,
        "files": erased.files,
        "items": erased.items,
    });
    let stand_in = pseudonym(owner);
    let result = format!(
        "ok: {} files, {} object versions, {} derived objects, {} items",
        erased.files, erased.object_versions, erased.derived_objects, erased.items
    );
    let access = Access { owner: &stand_in, action: AuditAction::Erase, file_id: None, actor: None, result: &result };
    audit::record(&st, &client, access).await?;
    tracing::info!(files = erased.files, items = erased.items, "account erased");
    metrics::emit("erase_account", &[("AccountsErased", 1, Unit::Count)]);
    Ok(Json(json!({ "erased": report })))
}
