//! Per-user budgets for the costly requests: upload grants, exports, image URLs and restores
//! from the archive tier.
//!
//! API Gateway's throttling (the template's `ApiThrottleRateLimit`) protects the platform as a
//! whole; it cannot tell one user from another, so one busy client could use up everyone's
//! share. Each costly kind of request therefore has a budget per user: so many requests in a
//! fixed window (a minute, an hour), counted in the table so every Lambda instance sees the
//! same count. A request over budget is refused with `429` and the seconds until the window
//! turns (`Retry-After`), and changes nothing.
//!
//! Fixed windows let a client send up to twice the budget across a window's edge; for limits
//! that protect cost (not fairness to the millisecond) that is the usual trade for one counter
//! write per request.

use std::time::Duration;

use time::OffsetDateTime;

use crate::error::CoreError;

/// Upload grants (a presigned POST or PUT, a multipart session, in every mode) a user may ask
/// for per minute (`UPLOAD_GRANTS_PER_MINUTE`). Uppy asks one per file, 6 files at a time by
/// default: a user dropping a few hundred photos stays well inside it.
pub const DEFAULT_UPLOAD_GRANTS_PER_MINUTE: u64 = 300;
/// Exports (a zip of the whole account) a user may start per hour (`EXPORTS_PER_HOUR`).
pub const DEFAULT_EXPORTS_PER_HOUR: u64 = 5;
/// Image URL sets (`POST /v1/files/{id}/image-urls`) a user may ask for per minute
/// (`IMAGE_URLS_PER_MINUTE`): a gallery page asks one per picture it shows.
pub const DEFAULT_IMAGE_URLS_PER_MINUTE: u64 = 1_200;

/// Restores of archived files a user may ask for per day, in any tier (`RESTORES_PER_DAY`): each
/// is billed by S3 and keeps a second, readable copy for `RESTORED_DAYS`.
pub const DEFAULT_RESTORES_PER_DAY: u64 = 100;
/// Of those, restores in the Expedited tier (`EXPEDITED_RESTORES_PER_DAY`): S3 bills one about
/// $0.01 (plus $0.03 a GB), two hundred times a Standard one; a free account asking for one of
/// each of thousands of archived files every week would cost hundreds of dollars a week.
pub const DEFAULT_EXPEDITED_RESTORES_PER_DAY: u64 = 10;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(60 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A costly kind of request, each with its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Costly {
    UploadGrant,
    Export,
    ImageUrls,
    /// A restore from the archive tier, in any tier.
    Restore,
    /// A restore in the Expedited tier (counted as a [`Costly::Restore`] too).
    ExpeditedRestore,
}

impl Costly {
    /// The name its counters are kept under.
    pub fn as_str(self) -> &'static str {
        match self {
            Costly::UploadGrant => "upload-grants",
            Costly::Export => "exports",
            Costly::ImageUrls => "image-urls",
            Costly::Restore => "restores",
            Costly::ExpeditedRestore => "expedited-restores",
        }
    }
}

/// How many requests of a kind fit in one window; `requests == 0` means no budget applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub requests: u64,
    pub window: Duration,
}

/// The budgets of every costly kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    pub upload_grants: Budget,
    pub exports: Budget,
    pub image_urls: Budget,
    pub restores: Budget,
    pub expedited_restores: Budget,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            upload_grants: Budget { requests: DEFAULT_UPLOAD_GRANTS_PER_MINUTE, window: MINUTE },
            exports: Budget { requests: DEFAULT_EXPORTS_PER_HOUR, window: HOUR },
            image_urls: Budget { requests: DEFAULT_IMAGE_URLS_PER_MINUTE, window: MINUTE },
            restores: Budget { requests: DEFAULT_RESTORES_PER_DAY, window: DAY },
            expedited_restores: Budget { requests: DEFAULT_EXPEDITED_RESTORES_PER_DAY, window: DAY },
        }
    }
}

impl Budgets {
    /// Defaults, with each count overridden by its setting (`0` switches a budget off).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CoreError> {
        let d = Budgets::default();
        let requests = |name: &'static str, default: Budget| -> Result<Budget, CoreError> {
            let requests = match lookup(name) {
                None => default.requests,
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| CoreError::invalid(name, format!("{v:?} is not a whole number")))?,
            };
            Ok(Budget { requests, ..default })
        };
        Ok(Budgets {
            upload_grants: requests("UPLOAD_GRANTS_PER_MINUTE", d.upload_grants)?,
            exports: requests("EXPORTS_PER_HOUR", d.exports)?,
            image_urls: requests("IMAGE_URLS_PER_MINUTE", d.image_urls)?,
            restores: requests("RESTORES_PER_DAY", d.restores)?,
            expedited_restores: requests("EXPEDITED_RESTORES_PER_DAY", d.expedited_restores)?,
        })
    }

    pub fn of(&self, kind: Costly) -> Budget {
        match kind {
            Costly::UploadGrant => self.upload_grants,
            Costly::Export => self.exports,
            Costly::ImageUrls => self.image_urls,
            Costly::Restore => self.restores,
            Costly::ExpeditedRestore => self.expedited_restores,
        }
    }
}

/// The window `now` falls in: windows start at whole multiples of their length since the
/// epoch, so every instance agrees on them without talking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Unix seconds of its start: the counter's name within the kind.
    pub start: i64,
    pub ends: OffsetDateTime,
}

impl Window {
    pub fn at(now: OffsetDateTime, length: Duration) -> Window {
        let length = length.as_secs().max(1) as i64;
        let start = now.unix_timestamp().div_euclid(length) * length;
        let ends = OffsetDateTime::from_unix_timestamp(start + length).unwrap_or(now);
        Window { start, ends }
    }

    /// Whole seconds from `now` until the window turns, at least 1 (a `Retry-After` of 0 would
    /// invite an immediate retry that is refused again).
    pub fn retry_after(&self, now: OffsetDateTime) -> Duration {
        let left = (self.ends - now).whole_milliseconds().max(0) as u64;
        Duration::from_secs(left.div_ceil(1000).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn windows_are_aligned_and_say_when_to_retry() {
        let now = datetime!(2026-12-05 14:30:42.250 UTC);
        let w = Window::at(now, MINUTE);
        assert_eq!(w.start, datetime!(2026-12-05 14:30:00 UTC).unix_timestamp());
        assert_eq!(w.ends, datetime!(2026-12-05 14:31:00 UTC));
        assert_eq!(w.retry_after(now), Duration::from_secs(18));
        assert_eq!(Window::at(datetime!(2026-12-05 14:30:59.999 UTC), MINUTE), w);
        assert_ne!(Window::at(datetime!(2026-12-05 14:31:00 UTC), MINUTE), w);
        // never 0, even at the very end
        assert_eq!(w.retry_after(datetime!(2026-12-05 14:30:59.999 UTC)), Duration::from_secs(1));
        let h = Window::at(now, HOUR);
        assert_eq!(h.ends, datetime!(2026-12-05 15:00:00 UTC));
        assert_eq!(h.retry_after(now), Duration::from_secs(29 * 60 + 18));
    }

    #[test]
    fn budgets_have_named_defaults_and_settings() {
        let d = Budgets::default();
        assert_eq!(d.of(Costly::UploadGrant), Budget { requests: DEFAULT_UPLOAD_GRANTS_PER_MINUTE, window: MINUTE });
        assert_eq!(d.of(Costly::Export), Budget { requests: DEFAULT_EXPORTS_PER_HOUR, window: HOUR });
        assert_eq!(
            d.of(Costly::ExpeditedRestore),
            Budget { requests: DEFAULT_EXPEDITED_RESTORES_PER_DAY, window: DAY }
        );
        let b = Budgets::from_lookup(|k| (k == "RESTORES_PER_DAY").then(|| "7".to_owned())).unwrap();
        assert_eq!((b.restores.requests, b.expedited_restores), (7, d.expedited_restores));
        let b = Budgets::from_lookup(|k| (k == "EXPORTS_PER_HOUR").then(|| "0".to_owned())).unwrap();
        assert_eq!(b.exports.requests, 0);
        assert_eq!(b.image_urls, d.image_urls);
        let err = Budgets::from_lookup(|k| (k == "IMAGE_URLS_PER_MINUTE").then(|| "many".to_owned())).unwrap_err();
        assert!(matches!(err, CoreError::Invalid { field: "IMAGE_URLS_PER_MINUTE", .. }));
    }
}
