//! What the legacy redirector answers for an old URL (issue 19, part 2), as a pure rule: the
//! `legacy-redirect` function gathers the facts (the switches of the legacy prefixes, the
//! mapping of the path and the file it became) and [`answer`] decides.
//!
//! - A file migrated by a run whose last full `verify` passed, under a prefix switched to the
//!   platform: `301` to its new URL: the files CDN's public copy for a public file that is READY,
//!   the app's file page for a private one.
//! - A file deleted or quarantined on the platform since: `410` (the legacy store must not bring
//!   back what its owner deleted or what the scanner refused).
//! - A file of a user who erased their account on the platform: `410` under every switch (the
//!   legacy store may still hold it; [`crate::audit::erased_path`] marks its path).
//! - Anything else (not switched, or rolled back; not migrated; not verified; a public file whose
//!   copy is not made yet): the legacy store's own answer, read through.

use crate::delivery::FilesCdn;
use crate::error::CoreError;
use crate::ids::{FileId, ObjectKey};
use crate::labels::Visibility;
use crate::metadata::FileStatus;
use crate::migration::{LegacyPrefix, Switch, bad_legacy_path};

/// How long the redirector keeps the switches (and a run's verification) before reading them
/// again: a cutover or a rollback reaches every request within this time.
pub const SWITCH_CACHE_SECONDS: u64 = 30;
/// `Cache-Control: max-age` of a `301` (browsers and the CDN): how long a cached redirect can
/// outlive a rollback of its prefix.
pub const REDIRECT_MAX_AGE_SECONDS: u64 = 300;
/// Largest legacy file the redirector reads through and answers itself: a buffered Lambda answer
/// is at most 6 MB, and binary bodies travel base64-encoded (4/3). Larger files get a `302` to
/// the legacy origin.
pub const FALLBACK_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// Where the old domain served the legacy tree: `/uploads/shop/42/menu.jpg` is the legacy file
/// `shop/42/menu.jpg`.
pub const DEFAULT_URL_PREFIX: &str = "/uploads/";
/// `migrate decommission-check`: days without a single read served by the legacy store.
pub const DEFAULT_QUIET_DAYS: u32 = 30;

/// Every recorded switch of one legacy source; the longest prefix holding a path decides it
/// (`shop/` can be on the platform while `shop/42/` was rolled back).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Switches(Vec<(LegacyPrefix, Switch)>);

impl Switches {
    pub fn new(mut switches: Vec<(LegacyPrefix, Switch)>) -> Self {
        switches.sort_by_key(|(p, _)| std::cmp::Reverse(p.as_str().len()));
        Switches(switches)
    }

    /// Where the legacy file at `path` is served from.
    pub fn of(&self, path: &str) -> Switch {
        self.0.iter().find(|(p, _)| p.holds(path)).map_or(Switch::Legacy, |(_, s)| *s)
    }
}

/// What the platform knows of the file a legacy path became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub file_id: FileId,
    /// Its original's key (the public copy's name comes from it).
    pub key: ObjectKey,
    /// `None`: its row is gone (erased, or deleted for good).
    pub status: Option<FileStatus>,
    pub visibility: Visibility,
    /// The run that copied it passed a full `verify`, and was not rolled back.
    pub verified: bool,
    /// Made public, its original may have no public copy to redirect to: one too large to
    /// publish without a GPS position it may hold
    /// ([`crate::location::public_copy_may_be_withheld`]). A large one copied in parts is
    /// redirected to: its copy is missing only until the thumbnailer, asked by the notifier, has
    /// made it (seconds to minutes), or, where an ask was lost, until the file's next change or
    /// an operator asks again (RUNBOOKS); one too large to copy within the thumbnailer's time
    /// stays missing (its DLQ alarm says so).
    pub original_may_be_missing: bool,
}

/// Why a request goes to the legacy store, for the logs and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackReason {
    NotSwitched,
    NotMigrated,
    NotVerified,
    /// Public, but its public copy is not made yet (still being processed).
    NotReady,
    /// Public, but its original may have no public copy (`Migrated::original_may_be_missing`):
    /// a redirect could lead to a `403`; the legacy store serves it until it is decommissioned.
    NoPublicCopy,
}

impl FallbackReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::NotSwitched => "not_switched",
            FallbackReason::NotMigrated => "not_migrated",
            FallbackReason::NotVerified => "not_verified",
            FallbackReason::NotReady => "not_ready",
            FallbackReason::NoPublicCopy => "no_public_copy",
        }
    }

    /// The `Cache-Control` of a legacy answer read through for this reason, whatever the legacy
    /// origin asked (`public, max-age=31536000` is usual for uploads, and the legacy CDN obeys
    /// it): a cached copy may outlive what happens on the platform since (an erase, a delete, a
    /// quarantine: the redirector answers `410` then) by [`REDIRECT_MAX_AGE_SECONDS`] at most,
    /// a file on its way (not verified, not ready) is not cached at all, and an origin's own
    /// `no-store`, `no-cache` or `private` stays.
    pub fn cache_control(self, origin: Option<&str>) -> String {
        let stricter = origin.filter(|o| {
            o.split(',').any(|d| matches!(d.trim().to_ascii_lowercase().as_str(), "no-store" | "no-cache" | "private"))
        });
        match (self, stricter) {
            (FallbackReason::NotVerified | FallbackReason::NotReady, _) => "no-store".into(),
            (_, Some(origin)) => origin.to_owned(),
            _ => format!("public, max-age={REDIRECT_MAX_AGE_SECONDS}"),
        }
    }
}

/// The redirector's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `301` to this URL.
    Redirect(String),
    /// `410`: deleted or quarantined on the platform.
    Gone,
    /// The legacy store's answer.
    Fallback(FallbackReason),
}

/// What one request to the redirector was answered with, as counted per day (the migration
/// table's `LEGACY#SERVED` items; `migrate decommission-check` and `migrate report` read them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// `301` to the platform.
    Redirect,
    /// `410`.
    Gone,
    /// Read from the legacy store (whatever it answered, a `404` too), `bytes` passed on.
    Fallback { bytes: u64 },
    /// `302` to the legacy store: too large to pass on.
    LargeRedirect,
}

impl Served {
    /// The counter it adds to.
    pub fn counter(self) -> &'static str {
        match self {
            Served::Redirect => "redirects",
            Served::Gone => "gone",
            Served::Fallback { .. } => "fallbacks",
            Served::LargeRedirect => "largeRedirects",
        }
    }

    /// Whether the legacy store served it (what decommissioning waits to stop).
    pub fn by_legacy_store(self) -> bool {
        matches!(self, Served::Fallback { .. } | Served::LargeRedirect)
    }
}

/// Where the platform serves a migrated file: the files CDN (public copies) and the app.
#[derive(Debug, Clone)]
pub struct NewHome {
    pub cdn: FilesCdn,
    /// The web app's base URL; a private file's page is `{app}/#file/{fileId}`.
    pub app_url: String,
}

impl NewHome {
    /// The page of a file in the app (it asks its owner to sign in).
    pub fn file_page(&self, file: FileId) -> String {
        format!("{}/#file/{file}", self.app_url.trim_end_matches('/'))
    }
}

/// The answer for the legacy file at `path` (see the module comment); `erased`: its path is
/// marked as an erased user's.
pub fn answer(path: &str, switches: &Switches, erased: bool, migrated: Option<&Migrated>, home: &NewHome) -> Answer {
    if erased {
        return Answer::Gone;
    }
    if switches.of(path) != Switch::Platform {
        return Answer::Fallback(FallbackReason::NotSwitched);
    }
    let Some(m) = migrated else { return Answer::Fallback(FallbackReason::NotMigrated) };
    if !m.verified {
        return Answer::Fallback(FallbackReason::NotVerified);
    }
    match (m.status, m.visibility) {
        (None | Some(FileStatus::Deleted | FileStatus::Quarantined), _) => Answer::Gone,
        (Some(FileStatus::Ready), Visibility::Public) if m.original_may_be_missing => {
            Answer::Fallback(FallbackReason::NoPublicCopy)
        }
        (Some(FileStatus::Ready), Visibility::Public) => match home.cdn.public_url(&m.key) {
            Some(url) => Answer::Redirect(url),
            None => Answer::Fallback(FallbackReason::NotReady),
        },
        (Some(_), Visibility::Public) => Answer::Fallback(FallbackReason::NotReady),
        (Some(_), Visibility::Private) => Answer::Redirect(home.file_page(m.file_id)),
    }
}

/// The legacy path an old URL's path names: `url_path` without `url_prefix`, percent-decoded;
/// refused when it is not under the prefix, or has an empty, `.` or `..` segment or a control
/// character (no legacy store serves those as files).
pub fn legacy_path(url_path: &str, url_prefix: &str) -> Result<String, CoreError> {
    let bad = |why: &str| CoreError::invalid("path", format!("{url_path:?} {why}"));
    let rest = url_path.strip_prefix(url_prefix).ok_or_else(|| bad(&format!("is not under {url_prefix}")))?;
    let path = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .map_err(|_| bad("is not UTF-8 once decoded"))?
        .into_owned();
    match bad_legacy_path(&path) {
        Some(why) => Err(bad(why)),
        None => Ok(path),
    }
}

#[cfg(test)]
mod tests {
    /// Security review 20 (migration 2): a legacy answer is cached 5 minutes at most, whatever
    /// the origin asked, so an erased user's old URL answers `410` from the CDN too.
    #[test]
    fn a_legacy_answer_is_cached_briefly_whatever_the_origin_asked() {
        let year = Some("public, max-age=31536000, immutable");
        for reason in [FallbackReason::NotSwitched, FallbackReason::NotMigrated] {
            assert_eq!(reason.cache_control(year), "public, max-age=300");
            assert_eq!(reason.cache_control(None), "public, max-age=300");
            assert_eq!(reason.cache_control(Some("private, max-age=60")), "private, max-age=60");
            assert_eq!(reason.cache_control(Some("No-Store")), "No-Store");
        }
        for reason in [FallbackReason::NotVerified, FallbackReason::NotReady] {
            assert_eq!(reason.cache_control(year), "no-store");
        }
    }

    use super::*;
    use crate::ids::UserId;

    fn home() -> NewHome {
        NewHome { cdn: FilesCdn::new("https://files.example/", None), app_url: "https://app.example/".into() }
    }

    fn file(status: Option<FileStatus>, visibility: Visibility, verified: bool) -> Migrated {
        let id = FileId::parse("0190f5a0-0000-7000-8000-000000000001").unwrap();
        let owner = UserId::parse("alice").unwrap();
        let key = ObjectKey::original(
            &owner,
            id,
            &crate::names::SafeName::from_display(&crate::names::DisplayName::parse("menu card.jpg").unwrap()),
        );
        Migrated { file_id: id, key, status, visibility, verified, original_may_be_missing: false }
    }

    fn switched(pairs: &[(&str, Switch)]) -> Switches {
        Switches::new(pairs.iter().map(|(p, s)| (LegacyPrefix::parse(p).unwrap(), *s)).collect())
    }

    #[test]
    fn the_longest_switched_prefix_decides() {
        let s = switched(&[("shop", Switch::Platform), ("shop/42", Switch::Legacy)]);
        assert_eq!(s.of("shop/7/a.jpg"), Switch::Platform);
        assert_eq!(s.of("shop/42/a.jpg"), Switch::Legacy);
        assert_eq!(s.of("shop/420/a.jpg"), Switch::Platform);
        assert_eq!(s.of("blog/a.jpg"), Switch::Legacy);
        assert_eq!(Switches::default().of("shop/a.jpg"), Switch::Legacy);
    }

    #[test]
    fn only_verified_files_under_a_switched_prefix_leave_the_legacy_store() {
        let on = switched(&[("shop", Switch::Platform)]);
        let public = file(Some(FileStatus::Ready), Visibility::Public, true);
        let p = "shop/a.jpg";
        assert_eq!(
            answer(p, &on, false, Some(&public), &home()),
            Answer::Redirect(format!("https://files.example/p/{}/original/menu%20card.jpg", public.file_id))
        );
        let private = file(Some(FileStatus::Ready), Visibility::Private, true);
        assert_eq!(
            answer(p, &on, false, Some(&private), &home()),
            Answer::Redirect(format!("https://app.example/#file/{}", private.file_id))
        );
        // A private file still processing (or whose image failed) has its page all the same.
        let failed = file(Some(FileStatus::Failed), Visibility::Private, true);
        assert!(matches!(answer(p, &on, false, Some(&failed), &home()), Answer::Redirect(_)));
        let rolled_back = switched(&[("shop", Switch::Legacy)]);
        assert_eq!(
            answer(p, &rolled_back, false, Some(&public), &home()),
            Answer::Fallback(FallbackReason::NotSwitched)
        );
        assert_eq!(answer(p, &on, false, None, &home()), Answer::Fallback(FallbackReason::NotMigrated));
        let unverified = file(Some(FileStatus::Ready), Visibility::Public, false);
        assert_eq!(answer(p, &on, false, Some(&unverified), &home()), Answer::Fallback(FallbackReason::NotVerified));
        let processing = file(Some(FileStatus::Pending), Visibility::Public, true);
        assert_eq!(answer(p, &on, false, Some(&processing), &home()), Answer::Fallback(FallbackReason::NotReady));
        // Never a redirect to a copy that may not exist (a photo with a GPS position too large
        // to rewrite without it); made private, its page as any other's.
        let uncopied = Migrated { original_may_be_missing: true, ..public.clone() };
        assert_eq!(answer(p, &on, false, Some(&uncopied), &home()), Answer::Fallback(FallbackReason::NoPublicCopy));
        let uncopied_private = Migrated { visibility: Visibility::Private, ..uncopied };
        assert!(matches!(answer(p, &on, false, Some(&uncopied_private), &home()), Answer::Redirect(_)));
    }

    #[test]
    fn deleted_erased_and_quarantined_files_are_gone_not_read_from_the_legacy_store() {
        let on = switched(&[("shop", Switch::Platform)]);
        for status in [None, Some(FileStatus::Deleted), Some(FileStatus::Quarantined)] {
            let f = file(status, Visibility::Public, true);
            assert_eq!(answer("shop/a.jpg", &on, false, Some(&f), &home()), Answer::Gone, "{status:?}");
        }
    }

    #[test]
    fn an_erased_users_file_is_gone_under_every_switch_migrated_or_not() {
        let ready = file(Some(FileStatus::Ready), Visibility::Public, true);
        for switches in [switched(&[]), switched(&[("shop", Switch::Legacy)]), switched(&[("shop", Switch::Platform)])]
        {
            for migrated in [None, Some(&ready)] {
                assert_eq!(answer("shop/a.jpg", &switches, true, migrated, &home()), Answer::Gone, "{switches:?}");
            }
        }
    }

    #[test]
    fn old_url_paths_become_legacy_paths() {
        assert_eq!(legacy_path("/uploads/shop/42/menu%20card.jpg", "/uploads/").unwrap(), "shop/42/menu card.jpg");
        assert_eq!(legacy_path("/uploads/caf%C3%A9.jpg", "/uploads/").unwrap(), "café.jpg");
        for bad in [
            "/other/a.jpg",
            "/uploads/",
            "/uploads/a//b.jpg",
            "/uploads/a/../b.jpg",
            "/uploads/%2e%2e/b",
            "/uploads/a%0Ab.jpg",
            "/uploads/%FF.jpg",
            "/uploads/a/",
        ] {
            assert!(legacy_path(bad, "/uploads/").is_err(), "{bad}");
        }
    }
}
