//! The archive tier: originals nobody has touched for a while move to S3 Glacier Flexible
//! Retrieval, where storing costs a fraction and reading needs a restore first.
//!
//! How a file gets there: the bucket's lifecycle moves an original `ARCHIVE_AFTER_DAYS` after
//! its upload (per type class, by the `type-class` tag the indexer puts on each accepted
//! original), or at its next run when the owner asked (`POST /v1/files/{id}/archive` tags it
//! `archive=now`). No copy is made, so the accepted version stays the accepted version
//! (DECISIONS 28). S3 says when it moved (`LifecycleTransition`): the row becomes `ARCHIVED`.
//!
//! Getting it back: `POST /v1/files/{id}/unarchive {tier}` asks S3 for a restored copy
//! ([`RestoreTier`]); the row is `RESTORING` with the time the tier promises, and `READY` when
//! S3 says the copy is there (`ObjectRestore:Completed`), for [`DEFAULT_RESTORED_DAYS`]; when
//! the copy lapses (`ObjectRestore:Delete`) it is `ARCHIVED` again. Variants and public copies
//! never move, so galleries keep showing archived pictures; downloads, shares, image URLs and
//! exports of an archived original answer `409 archived` with how to restore it.

use std::time::Duration;

use time::OffsetDateTime;

use crate::error::CoreError;
use crate::types::TypeClass;

/// Days after upload before an original moves to the archive class, unless its type class has
/// its own (`ARCHIVE_AFTER_DAYS`; template parameter `ArchiveAfterDays`).
pub const DEFAULT_ARCHIVE_AFTER_DAYS: u32 = 365;
/// Videos are the bulk of the bytes and are rarely watched again after a few months
/// (`ArchiveVideosAfterDays`).
pub const DEFAULT_ARCHIVE_VIDEOS_AFTER_DAYS: u32 = 180;
/// How long a restored copy stays readable before S3 removes it again (`RESTORED_DAYS`).
pub const DEFAULT_RESTORED_DAYS: u32 = 7;

/// The object tag that names an original's type class, which the lifecycle rules filter on.
pub const TYPE_CLASS_TAG: &str = "type-class";
/// The object tag (value [`ARCHIVE_NOW_VALUE`]) of an original its owner asked to archive.
pub const ARCHIVE_TAG: &str = "archive";
pub const ARCHIVE_NOW_VALUE: &str = "now";

/// The value of [`TYPE_CLASS_TAG`] for a type class.
pub fn type_class_tag(class: TypeClass) -> &'static str {
    match class {
        TypeClass::Image => "image",
        TypeClass::Video => "video",
        TypeClass::Document => "document",
        TypeClass::Archive => "archive",
    }
}

/// Whether an object of S3 storage class `class` must be restored before it can be read.
/// (Glacier Instant Retrieval reads like Standard; Intelligent-Tiering's archive tiers are not
/// used by this bucket.)
pub fn needs_restore(storage_class: Option<&str>) -> bool {
    matches!(storage_class, Some("GLACIER" | "DEEP_ARCHIVE"))
}

/// How fast (and at what price) S3 restores an archived object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreTier {
    /// Minutes; the most expensive. Glacier Flexible Retrieval only.
    Expedited,
    /// Hours; the default.
    Standard,
    /// Many hours; the cheapest.
    Bulk,
}

impl RestoreTier {
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        match raw {
            "Expedited" | "expedited" => Ok(RestoreTier::Expedited),
            "Standard" | "standard" => Ok(RestoreTier::Standard),
            "Bulk" | "bulk" => Ok(RestoreTier::Bulk),
            _ => Err(CoreError::invalid("tier", "must be Expedited, Standard or Bulk")),
        }
    }

    /// As S3's RestoreObject spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreTier::Expedited => "Expedited",
            RestoreTier::Standard => "Standard",
            RestoreTier::Bulk => "Bulk",
        }
    }

    /// The longest S3 says a restore of `storage_class` takes in this tier (Glacier Flexible
    /// Retrieval: 1-5 minutes, 3-5 hours, 5-12 hours; Deep Archive: -, 12 hours, 48 hours), or
    /// an error for a tier the class does not offer.
    pub fn expected_within(self, storage_class: &str) -> Result<Duration, CoreError> {
        const MINUTE: u64 = 60;
        const HOUR: u64 = 60 * MINUTE;
        let secs = match (storage_class, self) {
            ("DEEP_ARCHIVE", RestoreTier::Expedited) => {
                return Err(CoreError::invalid("tier", "Deep Archive offers Standard and Bulk restores only"));
            }
            ("DEEP_ARCHIVE", RestoreTier::Standard) => 12 * HOUR,
            ("DEEP_ARCHIVE", RestoreTier::Bulk) => 48 * HOUR,
            (_, RestoreTier::Expedited) => 5 * MINUTE,
            (_, RestoreTier::Standard) => 5 * HOUR,
            (_, RestoreTier::Bulk) => 12 * HOUR,
        };
        Ok(Duration::from_secs(secs))
    }
}

/// Where a file stands with the archive tier (all `None`: it never went there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Archival {
    /// When its owner asked to archive it; the bucket's lifecycle moves it at its next run.
    pub requested_at: Option<OffsetDateTime>,
    /// When S3 moved it to the archive class.
    pub archived_at: Option<OffsetDateTime>,
    /// The restore under way: its tier and by when S3 promises the copy.
    pub restore: Option<(RestoreTier, OffsetDateTime)>,
    /// Until when the restored copy can be read (then it is `ARCHIVED` again).
    pub restored_until: Option<OffsetDateTime>,
}

impl Archival {
    /// Whether its original lies in the archive class with no restored copy to read at `now`
    /// (whatever its row's status: a file deleted while archived stays there too).
    pub fn unreadable_at(&self, now: OffsetDateTime) -> bool {
        self.archived_at.is_some() && self.restored_until.is_none_or(|until| until <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_parse_and_promise_what_s3_does() {
        assert_eq!(RestoreTier::parse("Bulk").unwrap(), RestoreTier::Bulk);
        assert_eq!(RestoreTier::parse("expedited").unwrap(), RestoreTier::Expedited);
        assert!(matches!(RestoreTier::parse("fast"), Err(CoreError::Invalid { field: "tier", .. })));
        let minutes = |d: Duration| d.as_secs() / 60;
        assert_eq!(minutes(RestoreTier::Expedited.expected_within("GLACIER").unwrap()), 5);
        assert_eq!(minutes(RestoreTier::Standard.expected_within("GLACIER").unwrap()), 5 * 60);
        assert_eq!(minutes(RestoreTier::Bulk.expected_within("DEEP_ARCHIVE").unwrap()), 48 * 60);
        assert!(RestoreTier::Expedited.expected_within("DEEP_ARCHIVE").is_err());
    }

    #[test]
    fn only_the_glacier_classes_need_a_restore() {
        assert!(needs_restore(Some("GLACIER")) && needs_restore(Some("DEEP_ARCHIVE")));
        for class in [None, Some("STANDARD"), Some("GLACIER_IR"), Some("STANDARD_IA")] {
            assert!(!needs_restore(class), "{class:?}");
        }
    }
}
