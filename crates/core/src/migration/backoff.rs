//! Retry delays: exponential backoff with "equal jitter" (a random delay between half the
//! exponential step and the whole step), so workers that failed together do not retry together,
//! and yet every retry waits at least half its step: the attempts together always span a known
//! least time (full jitter, a delay from zero, could spend all of them in a fraction of a
//! second, as a CI run under load once showed: one file of a migration lost to an S3 server's
//! restart after 8 attempts in about 5 s).

use std::time::Duration;

use super::SplitMix64;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

/// 100 ms doubling up to 20 s, [`super::DEFAULT_MAX_ATTEMPTS`] (8) attempts: the 7 waits take
/// 6.35 s at least and 12.7 s at most (steps of 0.1 to 6.4 s), long enough to ride out an S3
/// endpoint's restart; a file still failing after that is reported as failed (`migrate report
/// RUN --failures-csv`).
pub const DEFAULT_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(100),
    cap: Duration::from_secs(20),
    max_attempts: super::DEFAULT_MAX_ATTEMPTS,
};

impl Backoff {
    /// The wait before attempt `attempts + 1`, after `attempts` failed ones; `None` when no
    /// attempt is left.
    pub fn delay(&self, attempts: u32, rng: &mut SplitMix64) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let exp = self.base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20)).min(self.cap);
        let ms = exp.as_millis() as u64;
        Some(Duration::from_millis(ms / 2 + rng.below(ms - ms / 2 + 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_jittered_between_half_a_doubling_step_and_the_step_and_stop_after_the_last_attempt() {
        let b = Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(1), max_attempts: 6 };
        let mut rng = SplitMix64::new(7);
        for attempts in 1..6u32 {
            let step = Duration::from_millis(100 * (1 << (attempts - 1))).min(Duration::from_secs(1));
            let delays: Vec<_> = (0..200).map(|_| b.delay(attempts, &mut rng).unwrap()).collect();
            assert!(delays.iter().all(|d| *d >= step / 2 && *d <= step), "{attempts}: {delays:?}");
            // Jitter spreads them over the upper half of the step.
            let quarter = step / 4;
            assert!(delays.iter().any(|d| *d < step / 2 + quarter) && delays.iter().any(|d| *d > step - quarter));
        }
        assert_eq!(b.delay(6, &mut rng), None);
    }

    #[test]
    fn the_default_attempts_always_span_six_to_thirteen_seconds() {
        for seed in 0..50 {
            let mut rng = SplitMix64::new(seed);
            let waited: Duration =
                (1..DEFAULT_BACKOFF.max_attempts).map(|a| DEFAULT_BACKOFF.delay(a, &mut rng).unwrap()).sum();
            assert!(waited >= Duration::from_millis(6350) && waited <= Duration::from_millis(12_700), "{waited:?}");
        }
    }
}
