//! `migrate rollback`: puts the target back exactly as it was before the run, with the
//! ledger and S3 versioning. Each version the run created is deleted for good, so whatever
//! was current before (an older version, a delete marker, or nothing) is current again.
//! Rows the ledger does not show as copied (a killed or aborted run) are looked up in the
//! key's history: a version carrying this run's id in its metadata is removed too.

use matbakh_aws::ledger::LedgerRow;
use matbakh_aws::transfer::Target;
use matbakh_core::migration::{Control, RUN_METADATA_KEY, RowStatus, RunId, RunState};
use serde::Serialize;

use crate::rows::{Rows, Tally};
use crate::{Context, MigrateError};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolledBack {
    pub run: String,
    pub dry_run: bool,
    /// `key@version` removed (or, dry, to remove).
    pub removed: Vec<String>,
    pub rows: u64,
}

/// The versions of `row.key` this run wrote.
async fn written_by(target: &Target, run: &RunId, row: &LedgerRow) -> Result<Vec<String>, MigrateError> {
    if row.status == RowStatus::Copied
        && let Some(v) = &row.version_id
    {
        return Ok(vec![v.clone()]);
    }
    let mut ours = Vec::new();
    for v in target.versions(&row.entry.key).await? {
        if v.delete_marker || row.entry.prior.as_ref().and_then(|p| p.version_id.as_ref()) == Some(&v.version_id) {
            continue;
        }
        if let Some(h) = target.head(&row.entry.key, Some(&v.version_id)).await?
            && h.metadata.get(RUN_METADATA_KEY).map(String::as_str) == Some(run.as_str())
        {
            ours.push(v.version_id);
        }
    }
    Ok(ours)
}

pub async fn rollback(ctx: &Context, id: &str, dry_run: bool) -> Result<RolledBack, MigrateError> {
    let record = ctx.run(id).await?;
    // Checked before anything is touched: a running run would keep writing.
    record.state.apply(Control::RollBack).map_err(|e| MigrateError::Usage(e.to_string()))?;
    let (target, _) = ctx.target(&record.target)?;
    if !target.versioning_enabled().await? {
        return Err(MigrateError::Usage(format!(
            "bucket {} is not versioned: an exact rollback needs S3 versioning (the run's writes cannot be told apart from what they replaced); nothing was changed",
            target.bucket()
        )));
    }
    // Before any row: no worker takes the run's work from now on (a message of a DONE run that
    // comes back, a paused run resumed), so nothing is copied again behind the rollback.
    if !dry_run {
        ctx.ledger.control(&record.id, Control::RollBack, &ctx.now()).await?;
    }
    let mut rows = Rows::open(ctx, &target, &record).await?;
    let (mut removed, mut total) = (Vec::new(), 0u64);
    while let Some(page) = rows.next_page(ctx).await? {
        total += page.len() as u64;
        let mut reset = Vec::new();
        for chunk in page.chunks(16) {
            let mut tasks = tokio::task::JoinSet::new();
            // An erased user's rows stay as their erase left them: nothing of theirs to undo,
            // nothing to copy again.
            for row in chunk.iter().filter(|r| !r.is_erased()).cloned() {
                let (target, run) = (target.clone(), record.id.clone());
                tasks.spawn(async move {
                    let mut versions: Vec<(String, String)> = written_by(&target, &run, &row)
                        .await?
                        .into_iter()
                        .map(|v| (row.entry.key.clone(), v))
                        .collect();
                    // The marker that hid the file's earlier copy: removed, that copy is current again.
                    if let (Some(old), Some(marker)) = (&row.entry.supersedes, &row.retired_version) {
                        versions.push((old.clone(), marker.clone()));
                    }
                    if !dry_run {
                        for (key, v) in &versions {
                            target.delete_version(key, v).await?;
                        }
                    }
                    Ok::<_, MigrateError>((row, versions))
                });
            }
            while let Some(done) = tasks.join_next().await {
                let (row, versions) = done.map_err(|e| MigrateError::Check(format!("rollback task: {e}")))??;
                removed.extend(versions.iter().map(|(key, v)| format!("{key}@{v}")));
                if row.status != RowStatus::Pending || !versions.is_empty() {
                    let mut next = row.clone();
                    next.status = RowStatus::Pending;
                    next.version_id = None;
                    next.retired_version = None;
                    next.reason = None;
                    next.message = Some("rolled back".into());
                    next.updated_at = ctx.now();
                    reset.push(next);
                }
            }
        }
        if !dry_run {
            ctx.ledger.put_rows(&record.id, &reset).await?;
        }
    }
    removed.sort();
    if !dry_run {
        // The counters as the rows now say.
        Tally::take(ctx, &target, &record).await?;
        let state = ctx.ledger.control(&record.id, Control::Finish, &ctx.now()).await?;
        debug_assert_eq!(state, RunState::RolledBack);
    }
    Ok(RolledBack { run: record.id.to_string(), dry_run, removed, rows: total })
}
