//! An erased user in the migration's records (DECISIONS 17). Their erase marks them (and their
//! migrated files' legacy paths) in the files table; here the migration keeps to those marks:
//!
//! - a plan leaves their legacy files out, and a copy fails such a row as `erased` (`plan`,
//!   `copy`); both mark the file's legacy path, so the redirector answers `410` for it and a
//!   cutover does not wait for it;
//! - every row written for such a file names neither them nor the file ([`LedgerRow::erased`]:
//!   the path becomes its keyed mark, the owner their keyed pseudonym);
//! - [`redact`] does the same to what runs recorded *before* the erase: their ledger rows, their
//!   manifests and their metadata mismatches, older object versions of those files removed.
//!   The erase asks for it (a `redact` message to the migration queue, see
//!   `core::migration::REDACT_ERASED_MESSAGE`); `migrate redact` runs it by hand.
//!
//! Every step is idempotent: a line or row kept once is kept, so a retried message finds
//! nothing more to do.

use std::collections::{HashMap, HashSet};

use matbakh_aws::ledger::{LedgerRow, RunRecord};
use matbakh_aws::transfer::Target;
use matbakh_core::migration::{ManifestEntry, RunState};
use serde::Serialize;

use crate::extsort::Scratch;
use crate::plan::JsonLines;
use crate::rows::{Rows, whole_lines};
use crate::{Context, MigrateError, Registry, manifest_key, metadata_mismatches_key};

/// Which target keys belong to users who erased their account (their marks in the files table,
/// under the erase key), asked once per owner.
pub(crate) struct ErasedOwners<'a> {
    registry: Option<&'a Registry>,
    known: HashMap<matbakh_core::ids::UserId, bool>,
}

impl<'a> ErasedOwners<'a> {
    pub(crate) fn new(registry: Option<&'a Registry>) -> Self {
        ErasedOwners { registry, known: HashMap::new() }
    }

    /// Whether `entry`'s file (`users/{owner}/...`) is an erased user's; keys outside the user
    /// layout, or a migration without the files table, are nobody's.
    pub(crate) async fn of(&mut self, entry_key: &str) -> Result<bool, MigrateError> {
        let Some(registry) = self.registry else { return Ok(false) };
        let Some(owner) = matbakh_core::ids::ObjectKey::owner_of(entry_key) else { return Ok(false) };
        if let Some(&erased) = self.known.get(&owner) {
            return Ok(erased);
        }
        let erased = registry.erased(&owner).await?;
        self.known.insert(owner, erased);
        Ok(erased)
    }
}

/// The rows about to be written as their owners' erases require: a row the copy failed as
/// `erased` is kept as [`LedgerRow::erased`] (one home for "no row names an erased user").
pub(crate) fn kept(ctx: &Context, mut rows: Vec<LedgerRow>) -> Vec<LedgerRow> {
    let Some(registry) = ctx.files.as_ref() else { return rows };
    let now = ctx.now();
    for row in rows.iter_mut() {
        if row.reason == Some(matbakh_core::migration::FailureReason::Erased) && !row.is_erased() {
            *row = row.erased(&registry.erasures, &now);
        }
    }
    rows
}

/// What [`redact`] changed in one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Redacted {
    pub run: String,
    /// Ledger rows of erased users' files rewritten now...
    pub rows: u64,
    /// ...and found kept already (an earlier pass, or a copy after the erase).
    pub rows_kept_before: u64,
    /// Manifest lines rewritten.
    pub manifest_lines: u64,
    /// Metadata mismatch lines rewritten.
    pub mismatch_lines: u64,
    /// Earlier versions of the manifest and the mismatches removed (they still named them).
    pub versions_removed: u64,
}

/// Rewrites what `run` (or every run) recorded of users who erased their account since.
pub async fn redact(ctx: &Context, run: Option<&str>) -> Result<Vec<Redacted>, MigrateError> {
    let registry = ctx.files.as_ref().ok_or_else(|| {
        MigrateError::Usage("redact needs the files table (--files-table) and the erase key (--erase-secret-id)".into())
    })?;
    let runs = match run {
        Some(id) => vec![ctx.run(id).await?],
        None => ctx.ledger.list_runs().await?,
    };
    let mut out = Vec::with_capacity(runs.len());
    for record in &runs {
        out.push(redact_run(ctx, registry, record).await?);
    }
    Ok(out)
}

async fn redact_run(ctx: &Context, registry: &Registry, record: &RunRecord) -> Result<Redacted, MigrateError> {
    let mut done = Redacted { run: record.id.to_string(), ..Redacted::default() };
    let mut owners = ErasedOwners::new(Some(registry));
    // The marks of every erased user's path in the run: few (only theirs), what the files'
    // lines are recognised by below.
    let mut marks = HashSet::new();
    let mut rows = Rows::ledger(&record.id);
    while let Some(page) = rows.next_page(ctx).await? {
        let now = ctx.now();
        let mut rewritten = Vec::new();
        for row in page {
            if row.is_erased() {
                done.rows_kept_before += 1;
                marks.insert(row.entry.source);
            } else if owners.of(&row.entry.key).await? {
                let row = row.erased(&registry.erasures, &now);
                marks.insert(row.entry.source.clone());
                rewritten.push(row);
            }
        }
        // The marks first: once a row no longer names the path, only its mark says it was erased.
        let new_marks: Vec<String> = rewritten.iter().map(|r| r.entry.source.clone()).collect();
        registry.table.mark_paths_erased(&new_marks, &now).await?;
        ctx.ledger.put_rows(&record.id, &rewritten).await?;
        done.rows += rewritten.len() as u64;
    }
    if marks.is_empty() {
        return Ok(done);
    }
    let (target, _) = ctx.target(&record.target)?;
    let (lines, versions) = rewrite_lines(&target, &manifest_key(&record.id), "manifest", |line| {
        let entry: ManifestEntry =
            serde_json::from_str(line).map_err(|e| MigrateError::Check(format!("manifest line: {e}")))?;
        let erased = !entry.is_erased() && marks.contains(&registry.path_mark(&entry.source));
        erased.then(|| serde_json::to_string(&entry.erased(&registry.erasures))).transpose().map_err(json)
    })
    .await?;
    done.manifest_lines = lines;
    done.versions_removed = versions;
    let (lines, versions) =
        rewrite_lines(&target, &metadata_mismatches_key(&record.id), "metadata mismatches", |line| {
            let mut m: crate::metadata::Mismatch =
                serde_json::from_str(line).map_err(|e| MigrateError::Check(format!("mismatch line: {e}")))?;
            let Some(mark) = m.path.as_deref().map(|p| registry.path_mark(p)).filter(|m| marks.contains(m)) else {
                return Ok(None);
            };
            m.path = Some(mark);
            m.why = None;
            Ok(Some(serde_json::to_string(&m).map_err(json)?))
        })
        .await?;
    done.mismatch_lines = lines;
    done.versions_removed += versions;
    // The run's counters as its rows now say (copied files of theirs are failed as `erased`);
    // a running run's workers add to them meanwhile, so its next start recounts instead.
    if done.rows > 0 && record.state != RunState::Running {
        crate::rows::Tally::take(ctx, &target, record).await?;
    }
    tracing::info!(
        run = %record.id, rows = done.rows, manifest_lines = done.manifest_lines,
        mismatch_lines = done.mismatch_lines, "erased users' records rewritten"
    );
    Ok(done)
}

fn json(e: serde_json::Error) -> MigrateError {
    MigrateError::Check(e.to_string())
}

/// Rewrites the JSON-lines object at `key` line by line (`rewrite` answers a line's
/// replacement, or `None` to keep it as it is), streamed through a local file, and removes
/// every earlier version of it: the lines rewritten and the versions removed. Nothing is written
/// when no line changes; earlier versions go even then (a pass that stopped after its write).
async fn rewrite_lines(
    target: &Target,
    key: &str,
    what: &'static str,
    mut rewrite: impl FnMut(&str) -> Result<Option<String>, MigrateError>,
) -> Result<(u64, u64), MigrateError> {
    let Some(mut reader) = target.open(key).await? else { return Ok((0, 0)) };
    let scratch = Scratch::new(what);
    let mut out = JsonLines::create(scratch.0.clone(), what)?;
    let (mut carry, mut changed) = (Vec::new(), 0u64);
    loop {
        let chunk = reader.next_chunk().await?;
        let last = chunk.is_none();
        if let Some(lines) = whole_lines(&mut carry, chunk.as_ref().map(|c| c.as_ref())) {
            let text =
                std::str::from_utf8(&lines).map_err(|_| MigrateError::Check(format!("the {what} is not UTF-8")))?;
            for line in text.lines().filter(|l| !l.is_empty()) {
                match rewrite(line)? {
                    Some(new) => {
                        changed += 1;
                        out.push_line(&new)?;
                    }
                    None => out.push_line(line)?,
                }
            }
        }
        if last {
            break;
        }
    }
    if changed > 0 {
        let (path, crc) = out.finish()?;
        target.put_file(key, &path, &crc, "application/x-ndjson").await?;
    }
    let mut removed = 0;
    for v in target.versions(key).await?.into_iter().filter(|v| !v.is_latest) {
        target.delete_version(key, &v.version_id).await?;
        removed += 1;
    }
    Ok((changed, removed))
}
