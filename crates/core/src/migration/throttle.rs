//! A token bucket for the bandwidth limit (tokens are bytes) and the request-rate limit
//! (tokens are requests). Time comes in as seconds on a monotonic clock, so it is tested
//! without sleeping. A request larger than the burst is allowed and paid for by waiting.

#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: f64,
}

impl TokenBucket {
    /// `rate` tokens per second, at most `burst` saved up; starts full at time `now`.
    pub fn new(rate: f64, burst: f64, now: f64) -> Self {
        let burst = burst.max(1.0);
        TokenBucket { rate: rate.max(f64::MIN_POSITIVE), burst, tokens: burst, last: now }
    }

    /// Takes `n` tokens at `now` and answers how many seconds the caller must wait before
    /// using them (0 if they were there).
    pub fn take(&mut self, n: f64, now: f64) -> f64 {
        if now > self.last {
            self.tokens = (self.tokens + (now - self.last) * self.rate).min(self.burst);
            self.last = now;
        }
        self.tokens -= n;
        if self.tokens >= 0.0 { 0.0 } else { -self.tokens / self.rate }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_pays_out_its_burst_then_meters_the_rate() {
        let mut b = TokenBucket::new(100.0, 50.0, 0.0);
        assert_eq!(b.take(50.0, 0.0), 0.0);
        // Empty: 10 more tokens need 0.1 s.
        assert!((b.take(10.0, 0.0) - 0.1).abs() < 1e-9);
        // After waiting that, the debt is paid; one second later 100 more are free.
        assert_eq!(b.take(0.0, 0.1), 0.0);
        assert_eq!(b.take(50.0, 1.1), 0.0);
    }

    #[test]
    fn the_long_run_rate_is_the_configured_rate() {
        let mut b = TokenBucket::new(1_000_000.0, 1_000_000.0, 0.0);
        let mut now = 0.0;
        for _ in 0..1000 {
            now += b.take(100_000.0, now);
        }
        // 100 MB through a 1 MB/s bucket with a 1 MB burst: 99 s.
        assert!((now - 99.0).abs() < 1e-6, "{now}");
    }
}
