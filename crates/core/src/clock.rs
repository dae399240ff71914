//! Time is passed in, never read inside a rule, so expiry is tested without sleeping.

use time::OffsetDateTime;

pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock stopped at one instant (tests, and presigning "in the past" against a real S3).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// The start of the window of length `len` that holds `t` (windows counted from the Unix
/// epoch; whole seconds). A link signed as of its window's start is the same for every request
/// in the window, so a browser's cache keeps what it points to.
pub fn window_start(t: OffsetDateTime, len: std::time::Duration) -> OffsetDateTime {
    let len = i64::try_from(len.as_secs()).unwrap_or(i64::MAX).max(1);
    let secs = t.unix_timestamp();
    OffsetDateTime::from_unix_timestamp(secs - secs.rem_euclid(len)).unwrap_or(t)
}

/// The shortest signing window (a setting below it is raised to it).
pub const MIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// The longest signing window: URLs live two windows, and S3 presigns for at most 7 days.
pub const MAX_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600 / 2);

/// The window of URLs handed out at `t`: signed as of its start, valid for two windows, so every
/// request within it gets the same URL (a browser's and a CDN's cache keep working) and a URL
/// works for at least one window. One home for variant, download and image URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningWindow {
    pub start: OffsetDateTime,
    /// The window's length, within [`MIN_WINDOW`]..=[`MAX_WINDOW`].
    pub len: std::time::Duration,
}

impl SigningWindow {
    /// The window of length `len` (clamped) that holds `t`.
    pub fn at(t: OffsetDateTime, len: std::time::Duration) -> SigningWindow {
        let len = len.clamp(MIN_WINDOW, MAX_WINDOW);
        SigningWindow { start: window_start(t, len), len }
    }

    /// How long a URL signed at [`SigningWindow::start`] is valid: two windows.
    pub fn validity(&self) -> std::time::Duration {
        self.len * 2
    }

    /// When such a URL expires.
    pub fn expires(&self) -> OffsetDateTime {
        self.start + self.validity()
    }
}

/// `2026-03-01T12:15:00Z`: what APIs show (whole seconds, UTC).
pub fn iso_seconds(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z")).unwrap_or_default()
}

/// `2026-03-01T12:15:00.123Z`: what is stored. Fixed width, so it sorts as text.
pub fn iso_millis(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_timestamps_sort_as_text() {
        let a = time::macros::datetime!(2026-03-01 12:15:00 UTC);
        let b = a + time::Duration::milliseconds(5);
        let c = a + time::Duration::seconds(1);
        assert_eq!(iso_millis(a), "2026-03-01T12:15:00.000Z");
        assert!(iso_millis(a) < iso_millis(b) && iso_millis(b) < iso_millis(c));
        assert_eq!(iso_seconds(b), "2026-03-01T12:15:00Z");
        assert_eq!(iso_seconds(time::macros::datetime!(2026-03-01 13:15:00 +01:00)), "2026-03-01T12:15:00Z");
    }

    #[test]
    fn windows_start_on_their_boundary_and_hold_every_instant_until_the_next() {
        let hour = std::time::Duration::from_secs(3600);
        let start = time::macros::datetime!(2026-03-01 12:00:00 UTC);
        for t in [start, start + time::Duration::milliseconds(1), start + time::Duration::seconds(3599)] {
            assert_eq!(window_start(t, hour), start, "{t}");
        }
        assert_eq!(window_start(start + time::Duration::seconds(3600), hour), start + time::Duration::hours(1));
        assert_eq!(
            window_start(time::macros::datetime!(1969-12-31 23:30:00 UTC), hour),
            time::macros::datetime!(1969-12-31 23:00:00 UTC)
        );
        let t = time::macros::datetime!(2026-03-01 12:34:56 UTC);
        assert_eq!(window_start(t, std::time::Duration::ZERO), t, "a zero window is one second");
    }

    #[test]
    fn a_signing_window_is_clamped_and_urls_live_two_of_them() {
        let t = time::macros::datetime!(2026-03-01 12:34:56 UTC);
        let w = SigningWindow::at(t, std::time::Duration::from_secs(3600));
        assert_eq!(
            (w.start, w.expires()),
            (time::macros::datetime!(2026-03-01 12:00:00 UTC), w.start + time::Duration::hours(2))
        );
        assert_eq!(SigningWindow::at(t, std::time::Duration::from_secs(1)).len, MIN_WINDOW);
        let long = SigningWindow::at(t, std::time::Duration::from_secs(30 * 24 * 3600));
        assert_eq!(long.validity(), std::time::Duration::from_secs(7 * 24 * 3600), "S3's longest presign");
    }
}
