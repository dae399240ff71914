//! Every limit with its named default, and how a deployment overrides it.

use std::time::Duration;

use crate::error::CoreError;
use crate::types::ContentType;

const GIB: u64 = 1024 * 1024 * 1024;

/// Storage each user may fill, unless overridden (`USER_QUOTA_BYTES`).
pub const DEFAULT_USER_QUOTA_BYTES: u64 = 10 * GIB;
/// S3's own ceiling for one PUT or POST; larger files go through multipart.
pub const MAX_SINGLE_UPLOAD_BYTES: u64 = 5 * GIB;
/// How long a presigned upload stays usable (`UPLOAD_URL_TTL_SECONDS`).
pub const DEFAULT_UPLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a presigned download stays usable (`DOWNLOAD_URL_TTL_SECONDS`).
pub const DEFAULT_DOWNLOAD_URL_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a PENDING metadata row waits for its object before its reservation lapses
/// (`PENDING_TTL_SECONDS`).
pub const DEFAULT_PENDING_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a presigned part URL stays usable (`PART_URL_TTL_SECONDS`).
pub const DEFAULT_PART_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a multipart session accepts parts (`UPLOAD_SESSION_TTL_SECONDS`). The bucket's
/// lifecycle rule aborts incomplete uploads after one day, so a session never outlives its
/// upload.
pub const DEFAULT_UPLOAD_SESSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How many multipart uploads one user may have open at once, in every mode (REST, Uppy's
/// `signRequest` and Companion modes; `MAX_OPEN_UPLOADS`). Uppy sends 6 at a time by default;
/// an open upload holds S3 parts that no quota counts until it completes or is swept.
pub const DEFAULT_MAX_OPEN_UPLOADS: u64 = 20;

/// How long after its grant ended the sweeper leaves an unfulfilled PENDING row alone, so an
/// upload or event still in flight settles it first (`SWEEP_GRACE_SECONDS`).
pub const DEFAULT_SWEEP_GRACE: Duration = Duration::from_secs(60 * 60);
/// How many expired rows (and sessions) the sweeper takes at a time; a run takes pages until
/// it is caught up or near its timeout (`SWEEP_MAX_ROWS`).
pub const DEFAULT_SWEEP_MAX_ROWS: u64 = 1_000;
/// The most `SWEEP_MAX_ROWS` may be: a page is held in memory and examined before the next.
pub const MAX_SWEEP_ROWS: u64 = 10_000;

/// How long a soft-deleted file can be restored (`RESTORE_WINDOW_DAYS`, in days); the bucket's
/// lifecycle removes its versions after the same time.
pub const DEFAULT_RESTORE_WINDOW: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// How long the presigned variant URLs a listing hands out stay usable when no CDN serves them
/// (`IMAGE_URL_TTL_SECONDS`).
pub const DEFAULT_IMAGE_URL_TTL: Duration = Duration::from_secs(60 * 60);

/// The longest any duration setting may be (ten years): every date computed from one (a row's
/// expiry, a URL's) stays far inside what a date can hold, so none overflows.
pub const MAX_SETTING_DURATION: Duration = Duration::from_secs(3650 * 24 * 60 * 60);

/// The limits one function runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub user_quota_bytes: u64,
    pub upload_url_ttl: Duration,
    pub download_url_ttl: Duration,
    pub share_redirect_ttl: Duration,
    pub pending_ttl: Duration,
    pub part_url_ttl: Duration,
    pub upload_session_ttl: Duration,
    pub max_open_uploads: u64,
    pub sweep_grace: Duration,
    pub sweep_max_rows: u64,
    pub restore_window: Duration,
    pub image_url_ttl: Duration,
    pub audit_retention: Duration,
    /// Per-user budgets of the costly requests ([`crate::throttle`]).
    pub budgets: crate::throttle::Budgets,
    /// How many days a restored copy of an archived file stays readable
    /// ([`crate::archival::DEFAULT_RESTORED_DAYS`]).
    pub restored_days: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            user_quota_bytes: DEFAULT_USER_QUOTA_BYTES,
            upload_url_ttl: DEFAULT_UPLOAD_URL_TTL,
            download_url_ttl: DEFAULT_DOWNLOAD_URL_TTL,
            share_redirect_ttl: crate::shares::DEFAULT_SHARE_REDIRECT_TTL,
            pending_ttl: DEFAULT_PENDING_TTL,
            part_url_ttl: DEFAULT_PART_URL_TTL,
            upload_session_ttl: DEFAULT_UPLOAD_SESSION_TTL,
            max_open_uploads: DEFAULT_MAX_OPEN_UPLOADS,
            sweep_grace: DEFAULT_SWEEP_GRACE,
            sweep_max_rows: DEFAULT_SWEEP_MAX_ROWS,
            restore_window: DEFAULT_RESTORE_WINDOW,
            image_url_ttl: DEFAULT_IMAGE_URL_TTL,
            audit_retention: crate::audit::DEFAULT_AUDIT_RETENTION,
            budgets: crate::throttle::Budgets::default(),
            restored_days: crate::archival::DEFAULT_RESTORED_DAYS,
        }
    }
}

impl Limits {
    /// Defaults, overridden by whichever settings `lookup` knows (the environment, in Lambda).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CoreError> {
        let number = |name: &'static str| -> Result<Option<u64>, CoreError> {
            lookup(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| CoreError::invalid(name, format!("{v:?} is not a whole number")))
                })
                .transpose()
        };
        let at_most = |name: &'static str, secs: Option<u64>| -> Result<Option<Duration>, CoreError> {
            match secs {
                Some(s) if s <= MAX_SETTING_DURATION.as_secs() => Ok(Some(Duration::from_secs(s))),
                Some(_) => Err(CoreError::invalid(name, "is more than ten years")),
                None => Ok(None),
            }
        };
        let seconds = |name: &'static str, default: Duration| -> Result<Duration, CoreError> {
            Ok(at_most(name, number(name)?)?.unwrap_or(default))
        };
        let days = |name: &'static str, default: Duration| -> Result<Duration, CoreError> {
            let secs = number(name)?.map(|d| d.saturating_mul(24 * 60 * 60));
            Ok(at_most(name, secs)?.unwrap_or(default))
        };
        let d = Limits::default();
        let limits = Limits {
            user_quota_bytes: number("USER_QUOTA_BYTES")?.unwrap_or(d.user_quota_bytes),
            upload_url_ttl: seconds("UPLOAD_URL_TTL_SECONDS", d.upload_url_ttl)?,
            download_url_ttl: seconds("DOWNLOAD_URL_TTL_SECONDS", d.download_url_ttl)?,
            share_redirect_ttl: seconds("SHARE_REDIRECT_TTL_SECONDS", d.share_redirect_ttl)?,
            pending_ttl: seconds("PENDING_TTL_SECONDS", d.pending_ttl)?,
            part_url_ttl: seconds("PART_URL_TTL_SECONDS", d.part_url_ttl)?,
            upload_session_ttl: seconds("UPLOAD_SESSION_TTL_SECONDS", d.upload_session_ttl)?,
            max_open_uploads: number("MAX_OPEN_UPLOADS")?.unwrap_or(d.max_open_uploads),
            sweep_grace: seconds("SWEEP_GRACE_SECONDS", d.sweep_grace)?,
            // A page of none would never fill (the row pass read the whole index unbounded) and
            // DynamoDB refuses a query limit of 0 (every session pass failed): review 27.
            sweep_max_rows: match number("SWEEP_MAX_ROWS")? {
                Some(rows @ 1..=MAX_SWEEP_ROWS) => rows,
                Some(_) => {
                    return Err(CoreError::invalid("SWEEP_MAX_ROWS", format!("must be 1 to {MAX_SWEEP_ROWS} rows")));
                }
                None => d.sweep_max_rows,
            },
            restore_window: days("RESTORE_WINDOW_DAYS", d.restore_window)?,
            image_url_ttl: seconds("IMAGE_URL_TTL_SECONDS", d.image_url_ttl)?,
            audit_retention: days("AUDIT_RETENTION_DAYS", d.audit_retention)?,
            budgets: crate::throttle::Budgets::from_lookup(&lookup)?,
            restored_days: match number("RESTORED_DAYS")? {
                Some(days @ 1..=30) => days as u32,
                Some(_) => return Err(CoreError::invalid("RESTORED_DAYS", "must be 1 to 30 days")),
                None => d.restored_days,
            },
        };
        // A PENDING row must outlive every way its upload can still land (review 25): released
        // before, its object would arrive with no row and be counted against no quota.
        let usable = limits.upload_url_ttl.max(limits.upload_session_ttl);
        if limits.pending_ttl < usable {
            return Err(CoreError::invalid(
                "PENDING_TTL_SECONDS",
                format!(
                    "{} s is shorter than an upload URL or session stays usable ({} s): a row would be released while its upload may still land",
                    limits.pending_ttl.as_secs(),
                    usable.as_secs()
                ),
            ));
        }
        Ok(limits)
    }

    /// Checks a declared size for a multipart upload of `content_type`.
    pub fn check_multipart_upload(&self, content_type: ContentType, size: u64) -> Result<(), CoreError> {
        check_size(content_type, size, content_type.max_bytes())
    }

    /// Checks a declared size for a single (non-multipart) upload of `content_type`.
    pub fn check_single_upload(&self, content_type: ContentType, size: u64) -> Result<(), CoreError> {
        check_size(content_type, size, content_type.max_bytes().min(MAX_SINGLE_UPLOAD_BYTES))
    }
}

fn check_size(content_type: ContentType, size: u64, limit: u64) -> Result<(), CoreError> {
    if size == 0 {
        return Err(CoreError::invalid("size", "must be at least 1 byte"));
    }
    if size > limit {
        return Err(CoreError::TooLarge { size, limit, content_type: content_type.as_str().to_owned() });
    }
    Ok(())
}

/// The setting `name` from `lookup`, parsed, or `default` when it is absent; a value that does
/// not parse is an error naming the setting.
pub fn setting<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> Result<T, String> {
    match lookup(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| format!("{name}: {v:?} is not a valid value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::MAX_IMAGE_BYTES;

    #[test]
    fn settings_override_defaults_and_bad_values_are_named() {
        let l = Limits::from_lookup(|k| (k == "USER_QUOTA_BYTES").then(|| "1000".to_owned())).unwrap();
        assert_eq!(l.user_quota_bytes, 1000);
        assert_eq!(l.upload_url_ttl, DEFAULT_UPLOAD_URL_TTL);
        let err = Limits::from_lookup(|k| (k == "PENDING_TTL_SECONDS").then(|| "soon".to_owned())).unwrap_err();
        assert!(matches!(err, CoreError::Invalid { field: "PENDING_TTL_SECONDS", .. }));
    }

    /// Review 25: a huge value overflowed `now + ttl` (a panic at the first request), and a
    /// PENDING row that expired before its upload URL let the sweeper release it while the
    /// upload could still land.
    #[test]
    fn durations_past_ten_years_and_rows_outlived_by_their_uploads_are_refused() {
        let one = |name: &'static str, value: &'static str| {
            Limits::from_lookup(move |k| (k == name).then(|| value.to_owned()))
        };
        for (name, value) in [
            ("UPLOAD_URL_TTL_SECONDS", "18446744073709551615"),
            ("RESTORE_WINDOW_DAYS", "3651"),
            ("AUDIT_RETENTION_DAYS", "9999999999999999"),
        ] {
            let err = one(name, value).unwrap_err();
            assert!(matches!(err, CoreError::Invalid { field, .. } if field == name), "{name}: {err:?}");
        }
        assert_eq!(one("RESTORE_WINDOW_DAYS", "3650").unwrap().restore_window, MAX_SETTING_DURATION);
        let err = one("PENDING_TTL_SECONDS", "600").unwrap_err();
        assert!(matches!(err, CoreError::Invalid { field: "PENDING_TTL_SECONDS", .. }), "{err:?}");
        assert!(one("PENDING_TTL_SECONDS", "86400").is_ok(), "as long as a session: enough");
        // Review 27: a sweep page of no rows, or of more than the sweep holds.
        for rows in ["0", "10001"] {
            let err = one("SWEEP_MAX_ROWS", rows).unwrap_err();
            assert!(matches!(err, CoreError::Invalid { field: "SWEEP_MAX_ROWS", .. }), "{rows}: {err:?}");
        }
        assert_eq!(one("SWEEP_MAX_ROWS", "1").unwrap().sweep_max_rows, 1);
    }

    #[test]
    fn sizes_are_checked_per_type_and_against_the_single_upload_ceiling() {
        let l = Limits::default();
        let jpeg = ContentType::parse("image/jpeg").unwrap();
        let mp4 = ContentType::parse("video/mp4").unwrap();
        assert!(l.check_single_upload(jpeg, 1).is_ok());
        assert!(l.check_single_upload(jpeg, MAX_IMAGE_BYTES).is_ok());
        assert!(matches!(
            l.check_single_upload(jpeg, MAX_IMAGE_BYTES + 1),
            Err(CoreError::TooLarge { limit: MAX_IMAGE_BYTES, .. })
        ));
        assert!(matches!(l.check_single_upload(jpeg, 0), Err(CoreError::Invalid { field: "size", .. })));
        assert!(matches!(
            l.check_single_upload(mp4, MAX_SINGLE_UPLOAD_BYTES + 1),
            Err(CoreError::TooLarge { limit: MAX_SINGLE_UPLOAD_BYTES, .. })
        ));
        // multipart lifts the single-request ceiling, not the per-type limit
        assert!(l.check_multipart_upload(mp4, MAX_SINGLE_UPLOAD_BYTES + 1).is_ok());
        assert!(matches!(l.check_multipart_upload(jpeg, MAX_IMAGE_BYTES + 1), Err(CoreError::TooLarge { .. })));
        assert!(l.check_multipart_upload(jpeg, 0).is_err());
    }
}
