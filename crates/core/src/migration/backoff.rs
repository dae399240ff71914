//! Retry delays: exponential backoff with full jitter (a random delay between zero and the
//! exponential cap), so workers that failed together do not retry together.

use std::time::Duration;

use super::SplitMix64;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

/// 100 ms doubling up to 20 s, [`super::DEFAULT_MAX_ATTEMPTS`] attempts: about two minutes of
/// retrying at worst, enough to ride out an S3 endpoint restart.
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
        Some(Duration::from_millis(rng.below(ms + 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_jittered_below_a_doubling_cap_and_stop_after_the_last_attempt() {
        let b = Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(1), max_attempts: 6 };
        let mut rng = SplitMix64::new(7);
        for attempts in 1..6u32 {
            let cap = Duration::from_millis(100 * (1 << (attempts - 1))).min(Duration::from_secs(1));
            let delays: Vec<_> = (0..200).map(|_| b.delay(attempts, &mut rng).unwrap()).collect();
            assert!(delays.iter().all(|d| *d <= cap));
            // Jitter spreads them: not all equal, and some in the lower half.
            assert!(delays.iter().any(|d| *d < cap / 2) && delays.iter().any(|d| *d > cap / 2));
        }
        assert_eq!(b.delay(6, &mut rng), None);
    }
}
