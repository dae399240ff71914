//! What every function shares with the Lambda runtime, and nothing else (no SDK, no HTTP):
//! metrics as Embedded Metric Format log lines ([`metrics`]), the SQS batch loop with one
//! span per record and partial batch failures ([`sqs`]), the log subscriber ([`logs`]), and
//! when work should stop before the invocation's timeout ([`stop_at`]).

pub mod logs;
pub mod metrics;
pub mod sqs;

/// When work that must end before the invocation's timeout should stop: `margin` before the
/// deadline Lambda gives (`Context::deadline`, milliseconds since the epoch), but never more
/// than a quarter of the time left at `now` (an invocation shorter than the margin still gets
/// most of its time). `None` for a deadline already past at `now`, which Lambda never gives
/// (it ends the invocation first) and `cargo lambda watch` gives to the invocations it queued
/// while it compiled the function. The exporter and the sweeper stop starting work there, so
/// they end with a clear answer instead of being killed mid-write.
pub fn stop_at(deadline_ms: u64, now: time::OffsetDateTime, margin: time::Duration) -> Option<time::OffsetDateTime> {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(deadline_ms) * 1_000_000).ok()?;
    (at > now).then(|| at - margin.min((at - now) / 4))
}

#[cfg(test)]
mod stop_at_tests {
    use time::{Duration, OffsetDateTime};

    #[test]
    fn work_stops_the_margin_before_the_deadline_or_a_quarter_of_a_short_invocation_or_never() {
        let deadline_ms = 1_900_000_000_000;
        let deadline = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
        let minute = Duration::seconds(60);
        // 900 s left (the exporter's timeout): a minute before the deadline.
        assert_eq!(super::stop_at(deadline_ms, deadline - Duration::seconds(900), minute), Some(deadline - minute));
        // 30 s left: 7.5 s before it.
        let short = super::stop_at(deadline_ms, deadline - Duration::seconds(30), minute);
        assert_eq!(short, Some(deadline - Duration::milliseconds(7_500)));
        assert_eq!(super::stop_at(deadline_ms, deadline + Duration::seconds(5), minute), None, "already past");
    }
}
