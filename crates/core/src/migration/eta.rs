//! Progress and ETA that account for the size mix: each transfer's time is modelled as a
//! fixed per-file cost plus a per-byte cost (least squares over the files done so far), and
//! the remaining files and bytes are priced with that model, divided by how many transfers
//! run at once on average. A run of many small files and a few large ones is then not
//! predicted from its average file.

/// Running sums of what was copied: enough for the model, and additive, so every worker
/// adds its share (DynamoDB `ADD`) and any reader can compute the ETA.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    pub files: u64,
    pub bytes: u64,
    /// Sum of transfer times, milliseconds.
    pub ms: f64,
    /// Sums over files of size in KiB (x), x^2 and x * ms.
    pub kib: f64,
    pub kib2: f64,
    pub kib_ms: f64,
}

impl Tally {
    pub fn add(&mut self, size: u64, ms: f64) {
        let x = size as f64 / 1024.0;
        self.files += 1;
        self.bytes += size;
        self.ms += ms;
        self.kib += x;
        self.kib2 += x * x;
        self.kib_ms += x * ms;
    }

    pub fn merge(&mut self, other: &Tally) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.ms += other.ms;
        self.kib += other.kib;
        self.kib2 += other.kib2;
        self.kib_ms += other.kib_ms;
    }

    /// `(per_file_ms, per_kib_ms)`: the fitted cost of one transfer, never negative.
    pub fn model(&self) -> Option<(f64, f64)> {
        if self.files == 0 || self.ms <= 0.0 {
            return None;
        }
        let n = self.files as f64;
        let per_byte_only = || if self.kib > 0.0 { (0.0, self.ms / self.kib) } else { (self.ms / n, 0.0) };
        let det = n * self.kib2 - self.kib * self.kib;
        if self.files < 3 || det <= 1e-9 * n * self.kib2.max(1.0) {
            return Some(per_byte_only());
        }
        let b = (n * self.kib_ms - self.kib * self.ms) / det;
        let a = (self.ms - b * self.kib) / n;
        Some(match (a >= 0.0, b >= 0.0) {
            (true, true) => (a, b),
            (false, _) => per_byte_only(),
            (true, false) => (self.ms / n, 0.0),
        })
    }
}

/// Seconds left for `files_left` files of `bytes_left` bytes, given what `done` took and the
/// wall time `elapsed_s` the run has been copying; `None` until something was copied.
pub fn eta_seconds(done: &Tally, elapsed_s: f64, files_left: u64, bytes_left: u64) -> Option<f64> {
    if files_left == 0 {
        return Some(0.0);
    }
    let (per_file, per_kib) = done.model()?;
    if elapsed_s <= 0.0 {
        return None;
    }
    // Average number of transfers in flight: busy time over wall time.
    let concurrency = (done.ms / 1000.0 / elapsed_s).max(1e-3);
    let work_ms = files_left as f64 * per_file + bytes_left as f64 / 1024.0 * per_kib;
    Some(work_ms / 1000.0 / concurrency)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_recovers_a_per_file_and_a_per_byte_cost() {
        let mut t = Tally::default();
        // 20 ms per file + 1 ms per MiB.
        for size in [10_240u64, 204_800, 1 << 20, 5 << 20, 50 << 20] {
            t.add(size, 20.0 + size as f64 / 1_048_576.0);
        }
        let (a, b) = t.model().unwrap();
        assert!((a - 20.0).abs() < 1e-6, "{a}");
        assert!((b * 1024.0 - 1.0).abs() < 1e-9, "{b}");
    }

    #[test]
    fn the_eta_prices_the_remaining_size_mix_not_the_average_file() {
        let mut t = Tally::default();
        for size in [10_240u64, 204_800, 1 << 20, 5 << 20, 50 << 20] {
            t.add(size, 20.0 + size as f64 / 1_048_576.0);
        }
        // 4 transfers in flight on average: busy time is 4x the wall time.
        let elapsed = t.ms / 1000.0 / 4.0;
        let many_small = eta_seconds(&t, elapsed, 1000, 1000 * 10_240).unwrap();
        let few_large = eta_seconds(&t, elapsed, 10, 10 * (500 << 20)).unwrap();
        // 1000 x (20 + 0.01) ms / 4 = 5.0 s; 10 x (20 + 500) ms / 4 = 1.3 s.
        assert!((many_small - 5.0024).abs() < 0.01, "{many_small}");
        assert!((few_large - 1.3).abs() < 0.01, "{few_large}");
        // Same bytes in both cases, very different answers: the average file would not see it.
        assert!(many_small > 3.0 * few_large);
        assert_eq!(eta_seconds(&t, elapsed, 0, 0), Some(0.0));
        assert_eq!(eta_seconds(&Tally::default(), 1.0, 5, 5), None);
    }

    #[test]
    fn one_size_only_falls_back_to_a_rate_and_merges_add_up() {
        let mut a = Tally::default();
        a.add(1 << 20, 10.0);
        a.add(1 << 20, 10.0);
        let (per_file, per_kib) = a.model().unwrap();
        assert_eq!(per_file, 0.0);
        assert!((per_kib * 1024.0 - 10.0).abs() < 1e-9);
        let mut b = Tally::default();
        b.merge(&a);
        b.merge(&a);
        assert_eq!((b.files, b.bytes), (4, 4 << 20));
    }
}
