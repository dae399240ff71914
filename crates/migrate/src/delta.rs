//! `migrate plan --since RUN`, the cutover's last sync (issue 19, part 5): the runs before
//! (RUN, the run it was a delta of, and so on: the chain) are the baseline, and the source's
//! listing is joined with it by path. What the chain copied and the source lists unchanged
//! (size, modification time, change token) is neither read nor copied again; the rest goes to
//! the plan ([`matbakh_core::migration::delta`] decides).
//!
//! Memory: the chain's rows and the listing meet in one external sort (records by path), so a
//! delta plan holds no more than a full one's sorts.

use matbakh_aws::ledger::RunRecord;
use matbakh_aws::transfer::Target;
use matbakh_core::migration::delta::Known;
use matbakh_core::migration::{RowStatus, RunId, RunState};
use serde::{Deserialize, Serialize};

use crate::extsort::{ExtSort, Sorted};
use crate::rows::Rows;
use crate::source::SourceFile;
use crate::{Context, MigrateError};

/// A chain longer than this is refused (each link is a manifest or a ledger read): plan a
/// full run instead.
pub const MAX_CHAIN: usize = 200;
/// At most this many files gone from the source are listed (all are counted).
pub const LISTED: usize = 20;

/// The runs a delta plan compares the source with, newest first: `since`, the run it was a
/// delta of, and so on. Every run must come from the same source to the same target by the
/// same rule; `since` must be over (done, aborted or rolled back), not planned or copying.
pub async fn chain(
    ctx: &Context,
    since: &RunId,
    source: &str,
    target: &str,
    rule: &str,
) -> Result<Vec<RunRecord>, MigrateError> {
    let mut out: Vec<RunRecord> = Vec::new();
    let mut next = Some(since.clone());
    while let Some(id) = next {
        if out.len() >= MAX_CHAIN {
            return Err(MigrateError::Usage(format!(
                "--since {since}: a chain of more than {MAX_CHAIN} delta runs; plan a full run instead"
            )));
        }
        let record = ctx
            .ledger
            .get_run(&id)
            .await?
            .ok_or_else(|| MigrateError::Usage(format!("--since {since}: there is no run {id}")))?;
        let differs = |what: &str, theirs: &str, ours: &str| {
            MigrateError::Usage(format!(
                "--since {since}: run {id} was planned with {what} {theirs}, this plan has {ours}; a delta compares like with like"
            ))
        };
        if record.source != source {
            return Err(differs("source", &record.source, source));
        }
        if record.target != target {
            return Err(differs("target", &record.target, target));
        }
        if record.rule != rule {
            return Err(differs("key rule", &record.rule, rule));
        }
        if out.is_empty() && matches!(record.state, RunState::Planned | RunState::Running | RunState::Paused) {
            return Err(MigrateError::Usage(format!(
                "--since {since}: the run is {}; run it to the end (or abort it) first",
                record.state.as_str().to_lowercase()
            )));
        }
        next = record.since.clone();
        out.push(record);
    }
    Ok(out)
}

/// A listed file as the join carries it.
#[derive(Serialize, Deserialize)]
struct Listed {
    size: u64,
    mtime_ms: i64,
    #[serde(default)]
    change: String,
}

/// The listing's tag: after every run of the chain.
const LISTED_TAG: u8 = u8::MAX;

/// The chain's rows and the listing, by path.
pub struct Join {
    sort: ExtSort,
}

/// One path: what the newest run of the chain recorded of it, and how the source lists it now.
pub struct Met {
    pub path: String,
    pub known: Option<Known>,
    pub listed: Option<SourceFile>,
}

impl Join {
    pub fn new(budget: usize) -> Self {
        Join { sort: ExtSort::new("delta", budget) }
    }

    fn push(&mut self, path: &str, tag: u8, value: &impl Serialize) -> Result<(), MigrateError> {
        let mut r = Vec::with_capacity(path.len() + 96);
        r.extend_from_slice(path.as_bytes());
        r.push(0);
        r.push(tag);
        serde_json::to_writer(&mut r, value).map_err(|e| MigrateError::Check(format!("delta record: {e}")))?;
        self.sort.push(r)
    }

    /// What each run of `chain` (newest first) recorded: from its manifest when the run copied
    /// every file it planned (one object), else from its ledger (each row's status). A rolled
    /// back run holds nothing.
    pub async fn add_chain(&mut self, ctx: &Context, target: &Target, chain: &[RunRecord]) -> Result<(), MigrateError> {
        for (depth, record) in chain.iter().enumerate() {
            if record.state.rolled_back() {
                continue;
            }
            // The newest run sorts last before the listing, so it speaks for a path.
            let tag = u8::try_from(MAX_CHAIN - depth).unwrap_or(0);
            let all_copied = record.counters.copied.files == record.total_files && record.counters.failed_files == 0;
            let mut rows =
                if all_copied { Rows::manifest(ctx, target, record).await? } else { Rows::ledger(&record.id) };
            while let Some(page) = rows.next_page(ctx).await? {
                // An erased user's rows name no path (`erased`): nothing to compare, nothing gone.
                for row in page.into_iter().filter(|r| !r.entry.is_erased()) {
                    let copied = all_copied || row.status == RowStatus::Copied;
                    let e = row.entry;
                    let known = Known {
                        key: e.key,
                        size: e.size,
                        mtime_ms: e.mtime_ms,
                        change: e.change,
                        sha256: e.sha256,
                        copied: copied && !e.crc64nvme.is_empty(),
                        run: e.copied_by.unwrap_or_else(|| record.id.to_string()),
                    };
                    self.push(&e.source, tag, &known)?;
                }
            }
        }
        Ok(())
    }

    pub fn add_listed(&mut self, f: &SourceFile) -> Result<(), MigrateError> {
        let listed = Listed { size: f.size, mtime_ms: f.mtime_ms, change: f.change.clone() };
        self.push(&f.path, LISTED_TAG, &listed)
    }

    /// Every path, in path order, with what the chain knew of it and its listing.
    pub fn paths(self) -> Result<Paths, MigrateError> {
        Ok(Paths { sorted: self.sort.sorted()?.peekable() })
    }
}

/// The joined paths ([`Join::paths`]).
pub struct Paths {
    sorted: std::iter::Peekable<Sorted>,
}

fn split(record: &[u8]) -> Result<(&str, u8, &[u8]), MigrateError> {
    let bad = || MigrateError::Check("a delta scratch record is damaged".into());
    let nul = record.iter().position(|b| *b == 0).ok_or_else(bad)?;
    let path = std::str::from_utf8(&record[..nul]).map_err(|_| bad())?;
    let tag = *record.get(nul + 1).ok_or_else(bad)?;
    Ok((path, tag, &record[nul + 2..]))
}

impl Iterator for Paths {
    type Item = Result<Met, MigrateError>;

    fn next(&mut self) -> Option<Self::Item> {
        let first = match self.sorted.next()? {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let mut met = Met { path: String::new(), known: None, listed: None };
        let take = |record: &[u8], met: &mut Met| -> Result<(), MigrateError> {
            let (path, tag, json) = split(record)?;
            let bad = |e: serde_json::Error| MigrateError::Check(format!("a delta scratch record: {e}"));
            met.path = path.to_owned();
            if tag == LISTED_TAG {
                let l: Listed = serde_json::from_slice(json).map_err(bad)?;
                met.listed =
                    Some(SourceFile { path: path.to_owned(), size: l.size, mtime_ms: l.mtime_ms, change: l.change });
            } else {
                met.known = Some(serde_json::from_slice(json).map_err(bad)?);
            }
            Ok(())
        };
        if let Err(e) = take(&first, &mut met) {
            return Some(Err(e));
        }
        loop {
            let same = match self.sorted.peek() {
                Some(Ok(next)) => split(next).map(|(p, _, _)| p == met.path).unwrap_or(false),
                Some(Err(_)) => true,
                None => false,
            };
            if !same {
                return Some(Ok(met));
            }
            match self.sorted.next() {
                Some(Ok(next)) => {
                    if let Err(e) = take(&next, &mut met) {
                        return Some(Err(e));
                    }
                }
                Some(Err(e)) => return Some(Err(e)),
                None => return Some(Ok(met)),
            }
        }
    }
}

/// What a delta plan found, besides the files it plans.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaReport {
    /// The run compared with, and how many runs its chain has.
    pub since: String,
    pub chain: usize,
    /// Listed as copied: not read.
    pub unchanged: u64,
    /// Listed otherwise, read, and the same bytes as copied (a touch, a chmod): not copied.
    pub same_bytes: u64,
    /// Read, and other bytes: copied under a key of their own.
    pub changed: u64,
    /// Never copied by the chain (failed before): copied.
    pub uncopied: u64,
    /// Not in the chain: copied.
    pub new: u64,
    /// Copied by the chain, no longer listed by the source (nothing is deleted for them).
    pub gone: u64,
    /// The first [`LISTED`] of them.
    pub gone_listed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(key: &str, size: u64) -> Known {
        Known {
            key: key.into(),
            size,
            mtime_ms: 1,
            change: "1:1".into(),
            sha256: "aa".into(),
            copied: true,
            run: "r20261205t000000-00000001".into(),
        }
    }

    fn file(path: &str, size: u64) -> SourceFile {
        SourceFile { path: path.into(), size, mtime_ms: 1, change: "1:1".into() }
    }

    #[test]
    fn the_newest_run_speaks_for_a_path_and_the_listing_meets_it() {
        // Spill often, so the join is read back from many runs.
        let mut join = Join { sort: ExtSort::new("delta-test", 64) };
        join.push("a/b", u8::try_from(MAX_CHAIN - 1).unwrap(), &known("old", 1)).unwrap();
        join.push("a/b", u8::try_from(MAX_CHAIN).unwrap(), &known("newest", 2)).unwrap();
        join.add_listed(&file("a/b", 2)).unwrap();
        join.add_listed(&file("a", 5)).unwrap();
        join.push("a/c", u8::try_from(MAX_CHAIN).unwrap(), &known("gone", 3)).unwrap();
        join.add_listed(&file("a/b/c", 7)).unwrap();
        let met: Vec<Met> = join.paths().unwrap().map(Result::unwrap).collect();
        let paths: Vec<&str> = met.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(paths, ["a", "a/b", "a/b/c", "a/c"]);
        assert!(met[0].known.is_none() && met[0].listed.as_ref().unwrap().size == 5);
        assert_eq!(met[1].known.as_ref().unwrap().key, "newest");
        assert_eq!(met[1].listed, Some(file("a/b", 2)));
        assert!(met[2].known.is_none());
        assert_eq!(met[3].known.as_ref().unwrap().key, "gone");
        assert!(met[3].listed.is_none());
    }
}
