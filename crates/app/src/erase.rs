//! GDPR erase: everything of one user, in the bucket (and its disaster-recovery replica), the
//! CDN's cache and the metadata store. Every step is idempotent (deleting what is already gone
//! is no error), so a failed erase is safe to retry and a second one finds nothing left.
//!
//! Order: the originals first (nothing can be made from them after), their replica copies, then
//! the CDN's copies of what is about to go, the derived objects, and file by file (a step at a
//! time) each file's variants and public copies before its rows (the objects' keys come from
//! them; an erase that runs out of time keeps what it got through, and its retry starts there),
//! the rest of the user's items last; the erase is then recorded under a keyed pseudonym (DECISIONS 17). Before
//! all that, the user is marked erased under the same pseudonym, and each of their migrated
//! files' legacy paths by its keyed mark: a migration run never copies their legacy files back
//! (`migrate::copy`), and the legacy redirector answers `410` for their old URLs. Last, the
//! migration is told (its queue): what its runs recorded of the user is rewritten to name
//! nobody (`migrate::erased`).
//!
//! Right after the mark, the erase asks for itself again, an hour later
//! ([`matbakh_core::erasure`]): what landed under the user's keys after it read them (an upload
//! through a URL handed out before, a migration copy that checked the mark just before it was
//! written), and whatever a failed erase that nobody retried left, goes in that second pass
//! ([`Erasure::erase_again`], the `eraser` function), which is the same erase and asks for no
//! third. Until it has run, the user's account is closed to new uploads
//! ([`AccountRepo::close`]): with a token that is still valid, or under an id an identity
//! provider gives again, a grant is refused (`409 account_erased`) rather than made and its file
//! deleted by that pass without a word; the second pass reopens it last.

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt, stream};

use matbakh_core::audit::{AuditAction, PseudonymKey, erased_path, pseudonym};
use matbakh_core::cdn;
use matbakh_core::clock::{Clock, iso_millis};
use matbakh_core::erasure::EraseAgain;
use matbakh_core::ids::{FileId, ObjectKey, UserId};
use matbakh_core::limits::Limits;
use time::OffsetDateTime;

use crate::audit::{Access, Client, Trail};
use crate::error::Error;
use crate::ports::{AccountRepo, EraseAgainQueue, MigrationRecords, ObjectErasure};

/// How many requests of one erase are in flight at once (each file's objects are listed by
/// their own prefix, its items read by their own key): an account of many thousand files is
/// erased in the account function's time, and each store sees a handful of requests at once.
pub const ERASE_IN_FLIGHT: usize = 16;

/// How many files an erase takes in one step (their objects, then their rows).
const FILES_PER_STEP: usize = 200;

/// What the erase works with.
#[derive(Clone)]
pub struct Erasure {
    pub accounts: Arc<dyn AccountRepo>,
    pub objects: Arc<dyn ObjectErasure>,
    /// The disaster-recovery replica, where the user's originals are erased too (S3 does not
    /// replicate version-specific deletes). Only originals are replicated.
    pub replica: Option<Arc<dyn ObjectErasure>>,
    /// The files CDN, which caches variants (signed), public copies and transform results
    /// (`/t/*`); its `edge` is where the user's cached files are invalidated (none: nothing is
    /// cached).
    pub delivery: crate::delivery::Delivery,
    /// Keys the pseudonym the erase is recorded under.
    pub pseudonym_key: PseudonymKey,
    /// The migration (its queue), told last: its runs' records of the user are rewritten to
    /// name nobody. None where the stack has no migration.
    pub migration: Option<Arc<dyn MigrationRecords>>,
    /// Where the erase's second pass waits until it is due (and, not yet due, is sent on).
    /// None: no second pass (a stack without the `eraser`, tests of one pass).
    pub again: Option<Arc<dyn EraseAgainQueue>>,
    pub audit: Trail,
    pub limits: Limits,
    pub clock: Arc<dyn Clock>,
}

/// What an erase removed (a second erase reports zeros).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Object versions and delete markers of the user's originals.
    pub object_versions: usize,
    /// Variants (every version), transform results, quarantined copies and exports.
    pub derived_objects: usize,
    /// Object versions and delete markers of the user's originals in the replica.
    pub replica_versions: usize,
    pub uploads_aborted: usize,
    pub files: usize,
    /// Every item of the metadata store that held the user's data.
    pub items: usize,
}

/// The bucket prefixes that hold a user's objects besides their files' variants: originals,
/// transform results, quarantined copies, exports.
pub fn user_prefixes(user: &str) -> [String; 4] {
    [
        format!("users/{user}/"),
        format!("results/users/{user}/"),
        format!("quarantine/users/{user}/"),
        format!("exports/{user}/"),
    ]
}

/// What the second pass did with its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Again {
    /// Not due yet: sent on to wait this much longer.
    Waiting(std::time::Duration),
    /// Due: erased what had landed since the first pass.
    Erased(Erased),
}

impl Erasure {
    /// Erases everything of `owner`'s and reports what it removed. The second pass is asked for
    /// before anything is deleted (right after the erased mark): an erase that fails halfway
    /// and is never retried is finished by it. A failure to ask fails the erase before it
    /// deletes anything (its retry asks again).
    pub async fn erase(&self, owner: &UserId) -> Result<Erased, Error> {
        self.erase_everything(owner, self.clock.now(), true).await
    }

    /// The second pass: once `job` is due, the same erase again (recorded as one, telling the
    /// migration again), asking for no third; before, the message is sent on to wait.
    pub async fn erase_again(&self, job: &EraseAgain) -> Result<Again, Error> {
        if let Some(wait) = job.wait(self.clock.now()) {
            let again = self.again.as_ref().ok_or_else(|| {
                Error::Port(crate::ports::PortError::Failed(
                    "an erase-again message arrived early, and there is no queue to send it on".into(),
                ))
            })?;
            again.send_later(job, wait).await?;
            return Ok(Again::Waiting(wait));
        }
        let erased = self.erase_everything(&job.user, job.erased_at(), false).await?;
        if erased.files + erased.object_versions + erased.derived_objects + erased.items > 0 {
            tracing::warn!(
                files = erased.files,
                objects = erased.object_versions,
                "the second pass found what landed after the erase"
            );
        }
        Ok(Again::Erased(erased))
    }

    /// The erase made at `erased_at` (the first pass's time, in both passes); `ask_again`: the
    /// first pass, which asks for the second.
    async fn erase_everything(
        &self,
        owner: &UserId,
        erased_at: OffsetDateTime,
        ask_again: bool,
    ) -> Result<Erased, Error> {
        let mut erased = Erased::default();
        // First, for good (a failed erase's retry finds the mappings gone): no migration run
        // brings the user's files back, and their old URLs answer 410, not the legacy store.
        let stand_in = pseudonym(&self.pseudonym_key, owner);
        let legacy = self.accounts.legacy_paths(owner).await?;
        let marks: Vec<String> = legacy.iter().map(|p| erased_path(&self.pseudonym_key, p)).collect();
        self.accounts.mark_erased(&stand_in, &marks, &iso_millis(erased_at)).await?;
        let second_pass = match (ask_again, &self.again) {
            (true, Some(again)) => {
                let job = EraseAgain::after(owner.clone(), erased_at);
                again.send_later(&job, job.wait(erased_at).unwrap_or_default()).await?;
                true
            }
            _ => false,
        };
        // No new upload until the second pass has run: what one would store now, that pass
        // would delete without a word (the user's token is still valid; an identity provider
        // may give a new account the same id).
        let counters = self.accounts.close(owner, erased_at.unix_timestamp()).await?;
        // Read after the mark: a migration's copy registered until then is among them.
        let files = self.accounts.file_ids(owner).await?;
        let [originals, results, quarantined, exports] = user_prefixes(owner.as_str());
        let mut aborted = self.objects.abort_uploads_under(&originals).await?;
        // An export being written when the erase came: its parts hold the user's files.
        aborted.extend(self.objects.abort_uploads_under(&exports).await?);
        erased.uploads_aborted = aborted.len();
        erased.object_versions = self.objects.delete_prefix(&originals).await?;
        // The replica next (its originals are found by prefix, like the bucket's).
        if let Some(replica) = &self.replica {
            erased.replica_versions = replica.delete_prefix(&originals).await?;
        }
        // Then file by file, a step of them at a time: the CDN's copies of what the step holds
        // (invalidated before they go), their variants and public copies (the keys come from
        // the rows), then their rows. An erase that runs out of time keeps what it got through,
        // so its retry (or the second pass) starts where it stopped. Once every object is gone,
        // the CDN is asked again (`invalidate_after`).
        let mut cached = self.cached(owner, &results).await?;
        let mut invalidated = Vec::new();
        let mut shared = Some([results, quarantined, exports]);
        let steps: Vec<&[FileId]> = if files.is_empty() { vec![&[]] } else { files.chunks(FILES_PER_STEP).collect() };
        let last = steps.len() - 1;
        for (n, step) in steps.into_iter().enumerate() {
            invalidated.extend(self.invalidate_cached(&mut cached, step).await?);
            for prefix in shared.take().into_iter().flatten() {
                erased.derived_objects += self.objects.delete_prefix(&prefix).await?;
            }
            let prefixes: Vec<String> =
                step.iter().flat_map(|f| [ObjectKey::derived_prefix(*f), ObjectKey::public_prefix(*f)]).collect();
            erased.derived_objects += stream::iter(prefixes)
                .map(|prefix| async move { self.objects.delete_prefix(&prefix).await })
                .buffer_unordered(ERASE_IN_FLIGHT)
                .try_fold(0, |sum, deleted| async move { Ok(sum + deleted) })
                .await?;
            if n == last {
                // Once every object is gone, before the last rows go: a retry after a failure
                // here finds those rows, and asks again.
                let originals_went = erased.object_versions > 0;
                self.invalidate_after(owner, std::mem::take(&mut invalidated), !files.is_empty(), originals_went)
                    .await?;
            }
            erased.items += self.accounts.erase_files(step).await?;
        }
        erased.files = files.len();
        erased.items += self.accounts.erase(owner, &aborted).await? + usize::from(counters);

        let result = format!(
            "ok: {} files, {} object versions, {} in the replica, {} derived objects, {} items",
            erased.files, erased.object_versions, erased.replica_versions, erased.derived_objects, erased.items
        );
        // Under the pseudonym, without the caller's address and browser (review 24: personal
        // data the record kept a year; DECISIONS 17 keeps the record with no personal data).
        let access = Access { result: &result, ..Access::ok(&stand_in, AuditAction::Erase, None) };
        let by = if ask_again { "" } else { "eraser (an erase's second pass)" };
        self.audit.record(&Client { ip: String::new(), user_agent: by.into() }, access).await?;
        // Last: the migration finds the user by the marks written first (a failure here fails
        // the erase, whose retry sends it again).
        if let Some(migration) = &self.migration {
            migration.user_erased().await?;
        }
        if !second_pass && !self.accounts.reopen(owner, erased_at.unix_timestamp()).await? {
            tracing::info!("the account stays closed: a later erase closed it again (its second pass reopens it)");
        }
        tracing::info!(files = erased.files, items = erased.items, "account erased");
        Ok(erased)
    }

    /// What the files CDN may cache of the user's (security review 16.4): their transform
    /// results (one wildcard path of their own), if the bucket holds any, and every variant and
    /// every public copy (their keys name no user, and a wildcard a file would soon pass the 15
    /// invalidations CloudFront has in progress at once), asked for when a step finds one.
    async fn cached(&self, owner: &UserId, results: &str) -> Result<Cached, Error> {
        if self.delivery.edge.is_none() {
            return Ok(Cached::default());
        }
        let results = match self.objects.holds_any(results).await? {
            true => vec![cdn::user_results(owner)],
            false => Vec::new(),
        };
        let wildcards = match &self.delivery.cdn {
            Some(files_cdn) => vec![
                (ObjectKey::derived_prefix as FilePrefix, cdn::all_variants(files_cdn.base_url())),
                (ObjectKey::public_prefix, cdn::all_public_copies()),
            ],
            None => Vec::new(),
        };
        Ok(Cached { results, wildcards })
    }

    /// Invalidates, in one request, what of `cached` the erase is about to delete with `files`
    /// (and answers those paths): each path once an erase, after the originals (nothing can be
    /// made again) and before the deletes, so the retry after a failed invalidation finds them
    /// and tries again. Only what the bucket still holds, so an erase of nothing invalidates
    /// nothing.
    async fn invalidate_cached(&self, cached: &mut Cached, files: &[FileId]) -> Result<Vec<String>, Error> {
        let Some(edge) = &self.delivery.edge else { return Ok(Vec::new()) };
        let mut paths = std::mem::take(&mut cached.results);
        let mut unseen = Vec::new();
        for (prefix, path) in std::mem::take(&mut cached.wildcards) {
            match self.holds_any(files.iter().map(|f| prefix(*f)).collect()).await? {
                true => paths.push(path),
                false => unseen.push((prefix, path)),
            }
        }
        if !paths.is_empty() {
            self.ask(&**edge, &paths, "before").await?;
        }
        cached.wildcards = unseen;
        Ok(paths)
    }

    /// Asks the files CDN to forget, once every object is deleted, what the erase invalidated
    /// before its deletes (review 24: between the first step's request and a later step's
    /// deletes, a request for one of those files filled the cache again from the bucket, a
    /// public copy for a year), with the user's originals (cached for signed download URLs)
    /// when it deleted any. An erase that found files (rows) but nothing of theirs to
    /// invalidate may be the retry of one that died after its deletes: it asks for every path
    /// the user's files may be cached under (the variants' and public copies' are every
    /// file's: a flush of the CDN, rare as erases are).
    async fn invalidate_after(
        &self,
        owner: &UserId,
        invalidated: Vec<String>,
        had_files: bool,
        originals_went: bool,
    ) -> Result<(), Error> {
        let Some(edge) = &self.delivery.edge else { return Ok(()) };
        let files_cdn = self.delivery.cdn.as_ref().map(|c| c.base_url());
        let mut paths = invalidated;
        if paths.is_empty() && had_files {
            paths.push(cdn::user_results(owner));
            if let Some(base) = files_cdn {
                paths.extend([cdn::all_variants(base), cdn::all_public_copies()]);
            }
        }
        if let Some(base) = files_cdn
            && (originals_went || !paths.is_empty())
        {
            paths.push(cdn::user_originals(base, owner));
        }
        if paths.is_empty() {
            return Ok(());
        }
        self.ask(&**edge, &paths, "after").await
    }

    /// One invalidation of `paths` at `edge` (`when`: a part of its reference, unique per
    /// request of one erase).
    async fn ask(&self, edge: &dyn crate::ports::EdgeCache, paths: &[String], when: &str) -> Result<(), Error> {
        let reference = format!("erase-{}-{when}", self.clock.now().unix_timestamp_nanos());
        let invalidation = edge.invalidate(paths, &reference).await?;
        tracing::info!(invalidation, paths = paths.len(), "the user's cached files invalidated at a CDN");
        Ok(())
    }

    /// Whether anything is stored under any of `prefixes`, [`ERASE_IN_FLIGHT`] asked at a
    /// time; the first found ends the search.
    async fn holds_any(&self, prefixes: Vec<String>) -> Result<bool, Error> {
        let mut checks = stream::iter(prefixes)
            .map(|prefix| async move { self.objects.holds_any(&prefix).await })
            .buffer_unordered(ERASE_IN_FLIGHT);
        while let Some(held) = checks.next().await {
            if held? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The files CDN's paths an erase has yet to invalidate ([`Erasure::invalidate_cached`]).
#[derive(Default)]
struct Cached {
    /// The user's transform results' path, until asked for.
    results: Vec<String>,
    /// The paths of every variant and every public copy, each with the prefix of a file's
    /// objects it caches, until a step finds one of those.
    wildcards: Vec<(FilePrefix, String)>,
}

/// Where a file's objects of one kind are (its variants', its public copies').
type FilePrefix = fn(FileId) -> String;
