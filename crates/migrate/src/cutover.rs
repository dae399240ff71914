//! `migrate cutover`: the switch, per legacy prefix, between the legacy store and the platform
//! (issue 19, part 3), recorded in the migration table with an audit entry.
//!
//! To the platform only when every legacy file under the prefix is migrated and verified: the
//! source is listed, and each file must have a copied row, as a platform file
//! (`users/{sub}/{fileId}/{name}`: an archive's copy migrates nothing), in the newest run that
//! holds it, that run's last full `verify` passed after the row was copied, and the file must
//! not have changed since (size, modification time and the change token the plan recorded).
//! Otherwise the switch
//! is refused, listing what blocks it, unless `--force` with a reason (recorded). Back to the
//! legacy store at any time (`--to legacy`), for a prefix that was switched before. `--dry-run`
//! checks and writes nothing.
//! `decommission_check` asks the same of the whole tree, and that all of it is switched.
//!
//! Memory: the rows of the runs under the prefix are held by path while the source is listed
//! (a few hundred bytes a file); the listing itself streams.

use std::collections::HashMap;
use std::sync::Arc;

use matbakh_aws::cdn::Cdn;
use matbakh_aws::ledger::{Cutover, LedgerRow, RunRecord};
use matbakh_core::ids::ObjectKey;
use matbakh_core::migration::redirect::Switches;
use matbakh_core::migration::{LegacyPrefix, RowStatus, Switch};
use serde::Serialize;

use crate::source::{Source, SourceFile};
use crate::{Context, MigrateError};

/// At most this many blocking files are listed (all are counted).
pub const LISTED: usize = 20;

pub struct CutoverOptions {
    pub prefix: LegacyPrefix,
    pub to: Switch,
    pub dry_run: bool,
    /// `--force --reason`: switch to the platform despite blocking files.
    pub force_reason: Option<String>,
    /// The legacy CDN (`--invalidate`) and the old URLs' prefix there: what it cached of the
    /// prefix (redirects, read-through bytes) is invalidated once the switch is recorded.
    pub invalidate: Option<(Cdn, String)>,
}

/// The legacy CDN's paths of the old URLs under `prefix`: `/uploads/shop/42/*`.
pub fn old_urls(url_prefix: &str, prefix: &LegacyPrefix) -> String {
    let dir = matbakh_core::cdn::edge_path(prefix.as_str().trim_end_matches('/'));
    format!("{}{dir}/*", url_prefix.trim_end_matches('/'))
}

/// A legacy file that keeps its prefix on the legacy store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocking {
    pub path: String,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CutoverReport {
    pub source: String,
    pub prefix: String,
    pub to: Switch,
    pub verified_files: u64,
    /// Files of users who erased their account: they block nothing (never migrated, or removed
    /// by the erase; their old URLs answer `410`).
    pub erased_files: u64,
    pub blocking_files: u64,
    /// The first [`LISTED`] of them.
    pub blocking: Vec<Blocking>,
    /// Whether the switch was written (not on a dry run).
    pub recorded: bool,
    /// The legacy CDN's invalidation of the prefix's old URLs, if asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalidation: Option<String>,
}

/// What the newest run holding a legacy file says of it.
struct Migrated {
    status: RowStatus,
    size: u64,
    mtime_ms: i64,
    /// The source's change token when the run listed it (empty for runs planned before it).
    change: String,
    /// The run's last full verification passed after this row was copied.
    verified: bool,
}

/// The rows under `prefix` of every run of `source` that was not rolled back whose keys are
/// the platform's files (`users/{sub}/{fileId}/{name}`, what the platform serves and old URLs
/// lead to); the newest run holding a path speaks for it. A copy under another key (an
/// `archive-legacy` run's, a `keep` rule's) is nobody's file: it migrates nothing.
async fn migrated(
    ctx: &Context,
    source: &str,
    holds: &(dyn Fn(&str) -> bool + Sync),
) -> Result<HashMap<String, Migrated>, MigrateError> {
    let mut runs: Vec<RunRecord> =
        ctx.ledger.list_runs().await?.into_iter().filter(|r| r.source == source && !r.state.rolled_back()).collect();
    runs.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    let mut out = HashMap::new();
    for run in &runs {
        let verified_at = run.verification.as_ref().filter(|v| v.passed).map(|v| v.at.clone());
        let mut rows = crate::rows::Rows::ledger(&run.id);
        while let Some(page) = rows.next_page(ctx).await? {
            let platform_file = |r: &LedgerRow| ObjectKey::file_id_of(&r.entry.key).is_some();
            for row in page.into_iter().filter(|r| holds(&r.entry.source) && platform_file(r)) {
                let verified = verified_at.as_deref().is_some_and(|at| row.updated_at.as_str() <= at);
                out.entry(row.entry.source.clone()).or_insert(Migrated {
                    status: row.status,
                    size: row.entry.size,
                    mtime_ms: row.entry.mtime_ms,
                    change: row.entry.change.clone(),
                    verified,
                });
            }
        }
    }
    Ok(out)
}

/// Why `file` blocks a cutover, if it does.
fn blocks(file: &SourceFile, migrated: Option<&Migrated>) -> Option<String> {
    let Some(m) = migrated else { return Some("not migrated".into()) };
    if m.status != RowStatus::Copied {
        return Some(format!("not copied ({})", m.status.as_str()));
    }
    // A rewrite that keeps the size and sets the time back still changes the token.
    let token_changed = !m.change.is_empty() && m.change != file.change;
    if (m.size, m.mtime_ms) != (file.size, file.mtime_ms) || token_changed {
        return Some("changed since it was copied (plan and run it again)".into());
    }
    (!m.verified).then(|| "copied, not verified since (run migrate verify)".into())
}

/// Whether `path` is the legacy path of a user who erased their account; never without the
/// files table.
async fn erased(ctx: &Context, path: &str) -> Result<bool, MigrateError> {
    let Some(registry) = ctx.files.as_ref() else { return Ok(false) };
    Ok(registry.path_erased(path).await?)
}

/// The legacy files `holds` selects, each checked against the runs (see the module comment).
struct Checked {
    seen: u64,
    /// Of those, the ones `switches` serve from the platform (an erased user's are neither).
    switched: u64,
    verified: u64,
    /// Files of users who erased their account: gone for good, their old URLs answer `410`.
    erased: u64,
    blocking_files: u64,
    /// The first [`LISTED`], by path.
    blocking: Vec<Blocking>,
}

async fn check(
    ctx: &Context,
    source: &Arc<dyn Source>,
    holds: &(dyn Fn(&str) -> bool + Sync),
    switches: &Switches,
) -> Result<Checked, MigrateError> {
    let migrated = migrated(ctx, source.url(), holds).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<SourceFile>(4096);
    let lister = {
        let source = source.clone();
        tokio::spawn(async move { source.list(tx).await })
    };
    let mut c = Checked { seen: 0, switched: 0, verified: 0, erased: 0, blocking_files: 0, blocking: Vec::new() };
    while let Some(file) = rx.recv().await {
        if !holds(&file.path) {
            continue;
        }
        c.seen += 1;
        let why = blocks(&file, migrated.get(&file.path));
        // Gone for good, wherever its prefix is served from.
        if why.is_some() && erased(ctx, &file.path).await? {
            c.erased += 1;
            continue;
        }
        // The longest switched prefix holding it decides, as in the redirector (review 26: any
        // prefix switched to the platform counted, though a longer one went back to legacy).
        c.switched += u64::from(switches.of(&file.path) == Switch::Platform);
        match why {
            Some(why) => {
                c.blocking_files += 1;
                if c.blocking.len() < LISTED {
                    c.blocking.push(Blocking { path: file.path, why });
                }
            }
            None => c.verified += 1,
        }
    }
    lister.await.map_err(|e| MigrateError::Source(format!("listing: {e}")))??;
    c.blocking.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(c)
}

/// Whether the legacy store can go (issue 19, part 4), as far as the ledger can tell.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decommission {
    pub source: String,
    pub files: u64,
    /// Files left out on purpose (`--exclude`), each with its reason: they block nothing.
    pub excluded_files: u64,
    pub verified_files: u64,
    /// Files of users who erased their account: they block nothing.
    pub erased_files: u64,
    pub blocking_files: u64,
    /// The first [`LISTED`] files not migrated and verified, by path.
    pub blocking: Vec<Blocking>,
    /// Files under no prefix switched to the platform: their URLs still need the legacy store.
    pub unswitched_files: u64,
    /// The prefixes switched to the platform.
    pub switched: Vec<String>,
    /// The days looked back for requests the legacy store served (`--quiet-days`).
    pub quiet_days: u32,
    /// Requests to old URLs the legacy redirector counted in those days: answered by the legacy
    /// store (read through or sent there), and moved to the platform.
    pub legacy_reads: u64,
    pub redirects: u64,
    /// The last request the legacy store served (ever), and its path.
    pub last_legacy_read: Option<(String, String)>,
    /// The redirector never counted a request for this source: nothing shows that the old URLs
    /// go through it, so nothing shows that the legacy store is no longer read.
    pub never_counted: bool,
    /// Nothing above blocks.
    pub ready: bool,
}

/// `legacy_path,reason` lines (a reason is required): files that need not be migrated.
pub fn exclusions(text: &str) -> Result<HashMap<String, String>, MigrateError> {
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let (path, reason) = line
            .split_once(',')
            .map(|(p, r)| (p.trim().trim_start_matches('/'), r.trim()))
            .filter(|(p, r)| !p.is_empty() && !r.is_empty())
            .ok_or_else(|| MigrateError::Usage(format!("exclusions line {}: expected legacy_path,reason", i + 1)))?;
        out.insert(path.to_owned(), reason.to_owned());
    }
    Ok(out)
}

/// Every legacy file of `source` migrated and verified, and under a prefix switched to the
/// platform, or excluded with a reason; and no request served by the legacy store in the last
/// `quiet_days` days (the legacy redirector's counts): what decommissioning the legacy store asks.
pub async fn decommission_check(
    ctx: &Context,
    source: Arc<dyn Source>,
    excluded: &HashMap<String, String>,
    quiet_days: u32,
) -> Result<Decommission, MigrateError> {
    let url = source.url().to_owned();
    let served = ctx.ledger.legacy_served(&url).await?;
    let since = ctx.clock.now() - time::Duration::days(i64::from(quiet_days));
    let since = matbakh_core::clock::iso_millis(since);
    let recent: Vec<_> = served.iter().filter(|d| d.day.as_str() >= &since[..10]).collect();
    let last_legacy_read = served
        .iter()
        .rev()
        .find_map(|d| Some((d.last_legacy_at.clone()?, d.last_legacy_path.clone().unwrap_or_default())));
    let mine: Vec<(LegacyPrefix, Switch)> = ctx
        .ledger
        .cutovers()
        .await?
        .into_iter()
        .filter(|c| c.source == url)
        .filter_map(|c| Some((LegacyPrefix::parse(&c.prefix).ok()?, c.to)))
        .collect();
    let switched: Vec<LegacyPrefix> =
        mine.iter().filter(|(_, to)| *to == Switch::Platform).map(|(p, _)| p.clone()).collect();
    let switches = Switches::new(mine);
    let all = check(ctx, &source, &|path: &str| !excluded.contains_key(path), &switches).await?;
    if all.seen == 0 && excluded.is_empty() {
        return Err(MigrateError::Usage(format!("{url} lists no file")));
    }
    let unswitched = all.seen - all.erased - all.switched;
    Ok(Decommission {
        source: url,
        files: all.seen + excluded.len() as u64,
        excluded_files: excluded.len() as u64,
        verified_files: all.verified,
        erased_files: all.erased,
        blocking_files: all.blocking_files,
        blocking: all.blocking,
        unswitched_files: unswitched,
        switched: switched.iter().map(|p| p.as_str().to_owned()).collect(),
        quiet_days,
        legacy_reads: recent.iter().map(|d| d.by_legacy_store()).sum(),
        redirects: recent.iter().map(|d| d.redirects).sum(),
        last_legacy_read,
        never_counted: served.is_empty(),
        ready: all.blocking_files == 0
            && unswitched == 0
            && !served.is_empty()
            && recent.iter().all(|d| d.by_legacy_store() == 0),
    })
}

/// Checks and (unless a dry run, or refused) records the switch of `opts.prefix` of `source`.
pub async fn cutover(
    ctx: &Context,
    source: Arc<dyn Source>,
    opts: &CutoverOptions,
) -> Result<CutoverReport, MigrateError> {
    let url = source.url().to_owned();
    let prefix = &opts.prefix;
    let previous = ctx.ledger.cutover(&url, prefix).await?;
    if opts.force_reason.as_deref().is_some_and(|r| r.trim().is_empty()) {
        return Err(MigrateError::Usage("--force needs a reason (--reason \"...\")".into()));
    }
    let (mut verified, mut erased_files, mut blocking_files, mut blocking) = (0u64, 0u64, 0u64, Vec::new());
    match opts.to {
        Switch::Legacy => {
            if previous.is_none() {
                return Err(MigrateError::Usage(format!(
                    "{} of {url} was never switched to the platform: nothing to roll back",
                    prefix.as_str()
                )));
            }
        }
        Switch::Platform => {
            let checked = check(ctx, &source, &|path: &str| prefix.holds(path), &Switches::default()).await?;
            if checked.seen == 0 {
                return Err(MigrateError::Usage(format!("{url} has no file under {}", prefix.as_str())));
            }
            (verified, erased_files, blocking_files, blocking) =
                (checked.verified, checked.erased, checked.blocking_files, checked.blocking);
        }
    }
    let mut report = CutoverReport {
        source: url.clone(),
        prefix: prefix.as_str().to_owned(),
        to: opts.to,
        verified_files: verified,
        erased_files,
        blocking_files,
        blocking,
        recorded: false,
        invalidation: None,
    };
    if blocking_files > 0 && opts.force_reason.is_none() {
        return Err(MigrateError::Check(refusal(&report)));
    }
    if !opts.dry_run {
        let forced_reason = opts.force_reason.clone().filter(|_| blocking_files > 0);
        let c = Cutover {
            source: url,
            prefix: report.prefix.clone(),
            to: opts.to,
            at: ctx.now(),
            verified_files: verified,
            blocking_files,
            forced_reason,
        };
        ctx.ledger.record_cutover(&c).await?;
        report.recorded = true;
        if let Some((cdn, url_prefix)) = &opts.invalidate {
            let path = old_urls(url_prefix, prefix);
            let reference = format!("cutover-{}-{}", c.at, prefix.as_str());
            cdn.invalidate(std::slice::from_ref(&path), &reference).await.map_err(|e| {
                MigrateError::Check(format!(
                    "{} of {} was switched to {}, but {path} was not invalidated at the legacy CDN ({e}): its cached answers expire within {} s, or run the cutover again",
                    prefix.as_str(),
                    c.source,
                    c.to.as_str(),
                    matbakh_core::migration::redirect::REDIRECT_MAX_AGE_SECONDS
                ))
            })?;
            report.invalidation = Some(path);
        }
    }
    Ok(report)
}

/// The refusal's text: the count and the first files with their reasons.
pub fn refusal(r: &CutoverReport) -> String {
    format!("{} of {} stays on the legacy store: {}", r.prefix, r.source, blocking_files(r))
}

/// `N file(s) not migrated and verified (M ready)` and the first files with their reasons: why a
/// switch is refused, or what a forced one went past.
pub fn blocking_files(r: &CutoverReport) -> String {
    let listed: Vec<String> = r.blocking.iter().map(|b| format!("{}: {}", b.path, b.why)).collect();
    let more = r.blocking_files.saturating_sub(r.blocking.len() as u64);
    format!(
        "{} file(s) not migrated and verified ({} ready){}:\n  {}",
        r.blocking_files,
        r.verified_files,
        if more > 0 { format!(", the first {} listed", r.blocking.len()) } else { String::new() },
        listed.join("\n  ")
    )
}

/// Every recorded switch.
pub async fn status(ctx: &Context) -> Result<Vec<Cutover>, MigrateError> {
    Ok(ctx.ledger.cutovers().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64, mtime_ms: i64) -> SourceFile {
        SourceFile { path: "shop/42/a.jpg".into(), size, mtime_ms, change: "7:100".into() }
    }

    #[test]
    fn a_file_blocks_until_it_is_copied_unchanged_and_verified() {
        let m = |status, verified| Migrated { status, size: 10, mtime_ms: 5, change: "7:100".into(), verified };
        assert_eq!(blocks(&file(10, 5), None).as_deref(), Some("not migrated"));
        assert_eq!(blocks(&file(10, 5), Some(&m(RowStatus::Failed, false))).as_deref(), Some("not copied (FAILED)"));
        assert!(blocks(&file(11, 5), Some(&m(RowStatus::Copied, true))).unwrap().starts_with("changed"));
        assert!(blocks(&file(10, 6), Some(&m(RowStatus::Copied, true))).unwrap().starts_with("changed"));
        assert!(blocks(&file(10, 5), Some(&m(RowStatus::Copied, false))).unwrap().contains("not verified"));
        assert_eq!(blocks(&file(10, 5), Some(&m(RowStatus::Copied, true))), None);
        // Rewritten with the same size and time: the change token tells.
        let rewritten = SourceFile { change: "7:200".into(), ..file(10, 5) };
        assert!(blocks(&rewritten, Some(&m(RowStatus::Copied, true))).unwrap().starts_with("changed"));
        // A run planned before tokens were recorded compares size and time only.
        let old = Migrated { change: String::new(), ..m(RowStatus::Copied, true) };
        assert_eq!(blocks(&rewritten, Some(&old)), None);
    }

    #[test]
    fn the_old_urls_of_a_prefix_are_one_wildcard_path_spelled_as_browsers_send_it() {
        let p = |s: &str| LegacyPrefix::parse(s).unwrap();
        assert_eq!(old_urls("/uploads/", &p("shop/42")), "/uploads/shop/42/*");
        assert_eq!(old_urls("/files", &p("Menü Karte/2019")), "/files/Men%C3%BC%20Karte/2019/*");
    }

    #[test]
    fn prefixes_are_whole_segments() {
        let p = LegacyPrefix::parse("/shop/42").unwrap();
        assert_eq!(p.as_str(), "shop/42/");
        assert!(p.holds("shop/42/a.jpg") && !p.holds("shop/420/a.jpg") && !p.holds("shop/42"));
        for bad in ["", "/", "a//b", "a/../b", "./a", "a\nb"] {
            assert!(LegacyPrefix::parse(bad).is_err(), "{bad:?}");
        }
    }
}
