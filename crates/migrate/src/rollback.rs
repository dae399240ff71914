//! `migrate rollback`: puts the target back exactly as it was before the run, with the
//! ledger and S3 versioning. Each version the run created is deleted for good, so whatever
//! was current before (an older version, a delete marker, or nothing) is current again.
//! Rows the ledger does not show as copied (a killed or aborted run) are looked up in the
//! key's history: a version carrying this run's id in its metadata is removed too.
//!
//! The files table goes back too (with `Context::files`): the file row of each of the run's
//! keys (whichever run registered it) is removed, unless the copy current there is another
//! run's (a run of the same path again wrote the key this run registered and never wrote),
//! with its search items and whatever it still counts in its owner's usage, and what
//! was made of the file (variants, public copies, transform results) is deleted; the legacy
//! mapping the run wrote points at the earlier copy again, or goes. An earlier copy the run
//! retired is made READY before its marker goes (the indexer's `removal` would otherwise take
//! the marker's removal for a purge). What anyone reaches of a file without a signed URL (its
//! public copies, the transform results of its image URLs, which never expire for a public file)
//! goes at the end, after the files CDN (`RollbackOptions::invalidate`) was asked to forget it:
//! if that request fails, they stay, and running the rollback again finds them and asks again.

use futures_util::{StreamExt, TryStreamExt, stream};
use matbakh_aws::FileTable;
use matbakh_aws::cdn::Cdn;
use matbakh_aws::ledger::{LedgerRow, RunRecord};
use matbakh_aws::transfer::{Target, Version};
use matbakh_core::ids::ObjectKey;
use matbakh_core::imgproxy::result_prefix;
use matbakh_core::migration::{Control, FailureReason, RUN_METADATA_KEY, RowStatus, RunId, RunState};
use serde::Serialize;

use crate::copy::{Copy, Outcome, file_record, updated_row};
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
    /// File rows of the run removed from the files table (dry: rows the run registered).
    pub files_retired: u64,
    /// Earlier copies made current again whose rows were DELETED (dry: to make current).
    pub files_restored: u64,
    /// Files gone whose public copies or transform results were removed.
    pub files_unpublished: u64,
    /// The paths the files CDN was asked to forget (none without `--invalidate`).
    pub invalidated: Vec<String>,
    /// Copies that landed after the rollback began, noted by Lambda workers since it began:
    /// run it again for them (see [`note_if_rolled_back`]).
    pub late_copies_pending: u64,
}

/// How a rollback runs.
#[derive(Default)]
pub struct RollbackOptions {
    /// Say what would be undone; change nothing.
    pub dry_run: bool,
    /// The files CDN (the stack's `FilesDistributionId`): asked to forget the public copies and
    /// transform results of the files the rollback takes away, before they are deleted.
    pub invalidate: Option<Cdn>,
    /// Roll back a run in the user layout without the files table (`ctx.files` unset): its
    /// objects go, its file rows, search items and legacy mappings stay (a later rollback with
    /// the table takes them). Without it such a rollback is refused before anything changes.
    pub keep_file_rows: bool,
}

/// What one row's rollback did in the files table.
#[derive(Default)]
struct Undone {
    retired: bool,
    restored: bool,
    /// The key of a file that went whose public copies or transform results are still stored:
    /// they go once the CDN was told ([`unpublish`]).
    published: Option<ObjectKey>,
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

/// Whether `key` has a current object once the run's `marker` on it is gone: the marker is the
/// latest version and an object is under it (the copy the run retired); with no marker left to
/// remove (a rollback run before without the files table removed it), whether one is current.
async fn current_after(target: &Target, key: &str, marker: Option<&str>) -> Result<bool, MigrateError> {
    let versions = target.versions(key).await?;
    let latest = versions.iter().find(|v| v.is_latest);
    Ok(match marker {
        Some(marker) => latest.is_some_and(|v| v.version_id == marker) && versions.iter().any(|v| !v.delete_marker),
        None => latest.is_some_and(|v| !v.delete_marker),
    })
}

/// The object version of a key (whose `versions` these are) current once the versions
/// `removed` are gone: the latest entry, if it stays and is no marker; else the newest object
/// version that stays (S3 makes the newest remaining entry current; the listing does not order
/// objects against markers, so a marker between them, which would hide it, is not seen: only a
/// dry run asks with versions to remove).
fn current_object<'a>(versions: &'a [Version], removed: &[&str]) -> Option<&'a Version> {
    let stays = |v: &&Version| !removed.contains(&v.version_id.as_str());
    match versions.iter().find(|v| v.is_latest).filter(stays) {
        Some(latest) => Some(latest).filter(|v| !v.delete_marker),
        None => versions.iter().filter(stays).find(|v| !v.delete_marker),
    }
}

/// Whether the object of `key` current once `removed` are gone is a copy another run wrote
/// (its metadata names that run): the file is there, and its row is that copy's.
async fn another_runs_copy(target: &Target, key: &str, run: &RunId, removed: &[&str]) -> Result<bool, MigrateError> {
    let versions = target.versions(key).await?;
    let Some(current) = current_object(&versions, removed) else { return Ok(false) };
    let head = target.head(key, Some(&current.version_id)).await?;
    let writer = head.as_ref().and_then(|h| h.metadata.get(RUN_METADATA_KEY));
    Ok(writer.is_some_and(|w| w.as_str() != run.as_str()))
}

/// Undoes `row` of `run`: the earlier copy's row first (READY before its marker goes), then
/// `versions`, then the run's file row, what was made of the file, and its legacy mapping.
async fn undo(
    target: &Target,
    files: Option<&FileTable>,
    run: &RunId,
    row: &LedgerRow,
    versions: &[(String, String)],
    dry_run: bool,
) -> Result<Undone, MigrateError> {
    let mut undone = Undone::default();
    let earlier = row.entry.supersedes.as_deref().and_then(|old| Some((old, ObjectKey::file_id_of(old)?)));
    if let (Some(files), Some((old, old_id))) = (files, earlier)
        && current_after(target, old, row.retired_version.as_deref()).await?
    {
        undone.restored = if dry_run {
            files
                .file_details(old_id)
                .await?
                .is_some_and(|d| d.record.status == matbakh_core::metadata::FileStatus::Deleted)
        } else {
            files.restore_superseded(old_id, old).await?
        };
    }
    if dry_run {
        if let (Some(files), Some(id)) = (files, ObjectKey::file_id_of(&row.entry.key)) {
            let ours: Vec<&str> =
                versions.iter().filter(|(key, _)| *key == row.entry.key).map(|(_, v)| v.as_str()).collect();
            undone.retired = files.migration_run_of(id).await?.is_some()
                && !another_runs_copy(target, &row.entry.key, run, &ours).await?;
        }
        return Ok(undone);
    }
    for (key, v) in versions {
        target.delete_version(key, v).await?;
    }
    let (Some(files), Some(id)) = (files, ObjectKey::file_id_of(&row.entry.key)) else { return Ok(undone) };
    // A copy another run wrote keeps the row (a run of the same path again, after this one
    // registered it and never wrote it); else the row goes, whichever run registered it: it
    // was made for a copy no longer there.
    undone.retired = !another_runs_copy(target, &row.entry.key, run, &[]).await?
        && files.retire_migrated(id, &row.entry.key).await?;
    // Retired now, or by an attempt cut short after it: what was made of the file goes too. A
    // row that stays is another run's copy's.
    let gone = undone.retired || files.file_details(id).await?.is_none();
    if gone {
        // Variants: the CDN serves them only to a signed URL, which only the row gave out.
        target.delete_prefix(&ObjectKey::derived_prefix(id)).await?;
        if target.holds_any(&ObjectKey::public_prefix(id)).await?
            || target.holds_any(&result_prefix(&row.entry.key)).await?
        {
            undone.published = Some(ObjectKey::from_stored(row.entry.key.clone()));
        }
    }
    // Back to the copy that is current again: the retired one, or that other run's file.
    let back = if gone { earlier.map(|(_, old_id)| old_id) } else { Some(id) };
    files.unmap_legacy(&row.entry.source, run.as_str(), back).await?;
    Ok(undone)
}

/// `attempt` (a row's [`undo`]), tried again (up to [`UNDO_TRIES`] times) after a transient
/// failure: every step of it can be taken twice.
async fn with_retries<F, Fut>(key: &str, mut attempt: F) -> Result<Undone, MigrateError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Undone, MigrateError>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if e.is_retryable() && tries < UNDO_TRIES => {
                tracing::warn!(error = %e, key, tries, "rollback of a row failed; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(200 << tries)).await;
                tries += 1;
            }
            done => return done,
        }
    }
}

/// How many times a row's rollback is tried before the command fails (and is run again).
const UNDO_TRIES: u32 = 3;

/// Public copies and results deleted at once, in [`unpublish`].
const UNPUBLISH_IN_FLIGHT: usize = 16;

/// Asks `cdn` to forget what anyone reached of the files `keys` without a signed URL, then
/// deletes it; answers the paths asked. A failed request deletes nothing, so the next run of
/// the rollback finds the files again.
async fn unpublish(
    target: &Target,
    cdn: Option<&Cdn>,
    run: &RunId,
    keys: &[ObjectKey],
    now: &str,
) -> Result<Vec<String>, MigrateError> {
    let paths = match cdn {
        Some(_) => matbakh_core::cdn::gone_files(keys),
        None => Vec::new(),
    };
    if let (Some(cdn), false) = (cdn, paths.is_empty()) {
        let reference = format!("rollback-{run}-{now}");
        let invalidation = cdn.invalidate(&paths, &reference).await.map_err(|e| {
            MigrateError::Check(format!(
                "run {run}: {} file(s) rolled back had public copies or transform results, but the files CDN was not asked to forget them ({e}); they are kept until it is: run the rollback again",
                keys.len()
            ))
        })?;
        tracing::info!(invalidation, ?paths, "the files CDN asked to forget the rolled-back files");
    }
    stream::iter(keys)
        .map(|key| delete_published(target, key))
        .buffer_unordered(UNPUBLISH_IN_FLIGHT)
        .try_collect::<()>()
        .await?;
    Ok(paths)
}

/// Deletes what anyone reached of the file at `key` without a signed URL: its public copies
/// and its transform results.
async fn delete_published(target: &Target, key: &ObjectKey) -> Result<(), MigrateError> {
    let id = ObjectKey::file_id_of(key.as_str()).ok_or_else(|| MigrateError::Check(format!("{key}: no file id")))?;
    target.delete_prefix(&ObjectKey::public_prefix(id)).await?;
    target.delete_prefix(&result_prefix(key.as_str())).await?;
    Ok(())
}

/// The runs not rolled back that count on `run`'s copies: delta runs whose chain (`since`, the
/// run that one was a delta of, and so on) reaches it. Their rows of files unchanged since
/// name the copies `run` wrote (review 26: rolled back under them, those files were gone while
/// the delta, verified, still spoke for them).
async fn dependents(ctx: &Context, run: &RunId) -> Result<Vec<String>, MigrateError> {
    let runs = ctx.ledger.list_runs().await?;
    let since: std::collections::HashMap<&str, &str> =
        runs.iter().filter_map(|r| Some((r.id.as_str(), r.since.as_ref()?.as_str()))).collect();
    let reaches = |from: &str| {
        let mut next = since.get(from).copied();
        for _ in 0..=crate::delta::MAX_CHAIN {
            match next {
                Some(id) if id == run.as_str() => return true,
                Some(id) => next = since.get(id).copied(),
                None => return false,
            }
        }
        false
    };
    Ok(runs.iter().filter(|r| !r.state.rolled_back() && reaches(r.id.as_str())).map(|r| r.id.to_string()).collect())
}

/// Whether a late copy left something to undo: a copied file, or a failed copy, which may have
/// registered its file row and mapping before it failed; an erased user's row stays as the
/// erase left it.
fn undoable(copy: &Copy) -> bool {
    match &copy.outcome {
        Outcome::Copied { .. } => true,
        Outcome::Failed { reason, .. } => *reason != FailureReason::Erased,
    }
}

/// [`undo_if_rolled_back`] for a worker that may not undo (the Lambda function: its role
/// deletes no object version and no file row, by design): a copy that landed after its run
/// began rolling back is noted on the run and passes through, so its row is written as copied,
/// with its version; `migrate status` then asks for the rollback to be run again, which finds
/// that row and undoes it (review 27: the undo needed rights the function does not have, and
/// failed there).
pub async fn note_if_rolled_back(ctx: &Context, copy: Copy, run: &RunId) -> Result<Copy, MigrateError> {
    if undoable(&copy) && ctx.ledger.state(run).await?.is_some_and(|s| s.rolled_back()) {
        ctx.ledger.note_late_copy(run, &ctx.now()).await?;
        tracing::warn!(%run, "a copy landed after its run began rolling back: left for `migrate rollback` run again");
    }
    Ok(copy)
}

/// A worker's `copy` of `row`, looked at once it ended: if the run began rolling back
/// meanwhile (the worker took the file before the pause, and the rollback may have passed its
/// row already), what it wrote (the object, the file row and mapping, which a failed copy may
/// have registered) is undone as the rollback undoes a row, and answered as failed for that
/// reason (review 26); otherwise the copy passes through. Every local worker (`migrate run`;
/// the Lambda worker calls [`note_if_rolled_back`]) asks after each copy, before its row is
/// written: the rollback marks the run before it reads any row, so either it finds the copy's
/// version and file row, or the worker finds the rollback here. Left open:
/// the ledger row of a copy the rollback undid may be written `COPIED` after the rollback reset
/// it (the worker asked just before the mark, and wrote just after the reset); nothing of the
/// file is left, only that row of the rolled-back run says otherwise.
pub async fn undo_if_rolled_back(
    ctx: &Context,
    target: &Target,
    row: &LedgerRow,
    copy: Copy,
    run: &RunId,
) -> Result<Copy, MigrateError> {
    if !undoable(&copy) || !ctx.ledger.state(run).await?.is_some_and(|s| s.rolled_back()) {
        return Ok(copy);
    }
    let landed = updated_row(row, &copy, &ctx.now());
    let mut versions: Vec<(String, String)> =
        written_by(target, run, &landed).await?.into_iter().map(|v| (landed.entry.key.clone(), v)).collect();
    if let (Some(old), Some(marker)) = (&landed.entry.supersedes, &landed.retired_version) {
        versions.push((old.clone(), marker.clone()));
    }
    let files = ctx.files.as_ref().map(|r| r.table.clone());
    let undone =
        with_retries(&landed.entry.key, || undo(target, files.as_ref(), run, &landed, &versions, false)).await?;
    // Made public in the seconds since: its copies go (no CDN asked; the rollback's own
    // request, if any, came before the file was there).
    if let Some(key) = &undone.published {
        delete_published(target, key).await?;
    }
    tracing::warn!(key = %landed.entry.key, "a copy landed after its run began rolling back: undone");
    Ok(Copy {
        outcome: Outcome::Failed {
            reason: FailureReason::RolledBack,
            message: "the run was rolled back while this file was copied; the copy was undone".into(),
        },
        ..copy
    })
}

/// Whether any of the run's files has a row in the files table when copied (the user layout):
/// its manifest read until the first such file.
async fn registers_files(ctx: &Context, target: &Target, record: &RunRecord) -> Result<bool, MigrateError> {
    let mut rows = Rows::manifest(ctx, target, record).await?;
    while let Some(page) = rows.next_page(ctx).await? {
        if page.iter().any(|row| file_record(&row.entry).is_some()) {
            return Ok(true);
        }
    }
    Ok(false)
}

pub async fn rollback(ctx: &Context, id: &str, opts: &RollbackOptions) -> Result<RolledBack, MigrateError> {
    let dry_run = opts.dry_run;
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
    // Before anything changes: no live delta run counts on this run's copies.
    let live = dependents(ctx, &record.id).await?;
    if !live.is_empty() {
        return Err(MigrateError::Usage(format!(
            "run {} is counted on by {}: delta runs whose unchanged files are the copies this run wrote (a cutover trusts the newest run); roll {} back first, newest first; nothing was changed",
            record.id,
            live.join(", "),
            if live.len() == 1 { "it" } else { "them" }
        )));
    }
    // Without the files table, the rows a run in the user layout registered would be left
    // behind its objects (a trash entry, search words and an old URL's mapping for a file no
    // longer there): said before anything changes, unless asked for.
    if ctx.files.is_none() && !opts.keep_file_rows && registers_files(ctx, &target, &record).await? {
        return Err(MigrateError::Usage(format!(
            "run {} copied files in the user layout (users/{{user}}/{{fileId}}/...), whose rows are in the files table: roll it back with --files-table (and --erase-secret-id), or pass --keep-file-rows to take only the objects back; nothing was changed",
            record.id
        )));
    }
    // Before any row: no worker takes the run's work from now on (a message of a DONE run that
    // comes back, a paused run resumed), so nothing is copied again behind the rollback.
    if !dry_run {
        ctx.ledger.control(&record.id, Control::RollBack, &ctx.now()).await?;
    }
    let mut rows = Rows::open(ctx, &target, &record).await?;
    let (mut removed, mut total, mut retired, mut restored) = (Vec::new(), 0u64, 0u64, 0u64);
    let mut published = Vec::new();
    while let Some(page) = rows.next_page(ctx).await? {
        total += page.len() as u64;
        let mut reset = Vec::new();
        for chunk in page.chunks(16) {
            let mut tasks = tokio::task::JoinSet::new();
            // An erased user's rows stay as their erase left them: nothing of theirs to undo,
            // nothing to copy again.
            for row in chunk.iter().filter(|r| !r.is_erased()).cloned() {
                let (target, run) = (target.clone(), record.id.clone());
                let files = ctx.files.as_ref().map(|r| r.table.clone());
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
                    let undone =
                        with_retries(&row.entry.key, || undo(&target, files.as_ref(), &run, &row, &versions, dry_run))
                            .await?;
                    Ok::<_, MigrateError>((row, versions, undone))
                });
            }
            while let Some(done) = tasks.join_next().await {
                let (row, versions, undone) =
                    done.map_err(|e| MigrateError::Check(format!("rollback task: {e}")))??;
                retired += u64::from(undone.retired);
                restored += u64::from(undone.restored);
                published.extend(undone.published);
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
    let invalidated = unpublish(&target, opts.invalidate.as_ref(), &record.id, &published, &ctx.now()).await?;
    if !dry_run {
        // The counters as the rows now say.
        Tally::take(ctx, &target, &record).await?;
        let state = ctx.ledger.control(&record.id, Control::Finish, &ctx.now()).await?;
        debug_assert_eq!(state, RunState::RolledBack);
        // The late copies noted before it began were among its rows (written as copied).
        ctx.ledger.late_copies_seen(&record.id, record.late_copies, &ctx.now()).await?;
    }
    let after = ctx.run(&record.id.to_string()).await?;
    Ok(RolledBack {
        run: record.id.to_string(),
        dry_run,
        removed,
        rows: total,
        files_retired: retired,
        files_restored: restored,
        files_unpublished: published.len() as u64,
        invalidated,
        late_copies_pending: after.late_copies_pending(),
    })
}
