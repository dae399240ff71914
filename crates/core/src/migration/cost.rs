//! What a dry-run plan prints: requests, storage and an assumed duration. Prices are list
//! prices of eu-central-1 (Frankfurt), S3 Standard and DynamoDB on-demand, 2025; they are
//! named here so a reviewer can check them and a different region can be priced.

/// S3 Standard PUT, COPY, POST, LIST requests, USD per 1,000.
pub const S3_PUT_USD_PER_1000: f64 = 0.0054;
/// S3 Standard storage, first 50 TB, USD per GB-month.
pub const S3_STANDARD_USD_PER_GB_MONTH: f64 = 0.0245;
/// DynamoDB on-demand write request units, USD per million.
pub const DYNAMODB_WRITE_USD_PER_MILLION: f64 = 0.7625;
/// Assumed for the duration estimate before anything was measured: one request's fixed
/// cost per file (ms, per transfer slot) and the bandwidth of the whole run (MiB/s).
pub const ASSUMED_PER_FILE_MS: f64 = 30.0;
pub const ASSUMED_MIB_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub files: u64,
    pub bytes: u64,
    pub s3_requests: u64,
    pub ledger_writes: u64,
    pub usd_requests: f64,
    pub usd_storage_per_month: f64,
    pub seconds: f64,
}

/// The estimate for files copied with `transfers` at once, those from `threshold` bytes on as
/// multipart uploads of `part_size` parts; made one file at a time (a plan streams its files).
#[derive(Debug, Clone, Copy)]
pub struct Estimator {
    threshold: u64,
    part_size: u64,
    files: u64,
    bytes: u64,
    s3_requests: u64,
}

impl Estimator {
    pub fn new(threshold: u64, part_size: u64) -> Self {
        Estimator { threshold, part_size, files: 0, bytes: 0, s3_requests: 0 }
    }

    pub fn add(&mut self, size: u64) {
        self.files += 1;
        self.bytes += size;
        self.s3_requests += if size >= self.threshold {
            2 + super::part_ranges(size, super::part_size_for(size, self.part_size)).len() as u64
        } else {
            1
        };
    }

    pub fn finish(&self, transfers: usize) -> Estimate {
        let (files, bytes, s3_requests) = (self.files, self.bytes, self.s3_requests);
        // One write at plan, one when copied; rows are under 1 KB. Plus the manifest's PUT.
        let ledger_writes = files * 2;
        let gb = bytes as f64 / 1e9;
        let usd_requests = (s3_requests + 1) as f64 / 1000.0 * S3_PUT_USD_PER_1000
            + ledger_writes as f64 / 1e6 * DYNAMODB_WRITE_USD_PER_MILLION;
        let seconds = files as f64 * ASSUMED_PER_FILE_MS / 1000.0 / transfers.max(1) as f64
            + bytes as f64 / (1024.0 * 1024.0) / ASSUMED_MIB_PER_SECOND;
        Estimate {
            files,
            bytes,
            s3_requests: s3_requests + 1,
            ledger_writes,
            usd_requests,
            usd_storage_per_month: gb * S3_STANDARD_USD_PER_GB_MONTH,
            seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(sizes: &[u64], transfers: usize, threshold: u64, part_size: u64) -> Estimate {
        let mut e = Estimator::new(threshold, part_size);
        sizes.iter().for_each(|&s| e.add(s));
        e.finish(transfers)
    }

    #[test]
    fn requests_count_parts_of_large_files_and_prices_follow() {
        let mib = 1024 * 1024;
        // Two small files, one 20 MiB file in 8 MiB parts (create + 3 parts + complete).
        let e = estimate(&[1000, 2000, 20 * mib], 16, 16 * mib, 8 * mib);
        assert_eq!(e.s3_requests, 1 + 1 + 5 + 1);
        assert_eq!(e.ledger_writes, 6);
        assert_eq!(e.bytes, 3000 + 20 * mib);
        let expected = 8.0 / 1000.0 * S3_PUT_USD_PER_1000 + 6.0 / 1e6 * DYNAMODB_WRITE_USD_PER_MILLION;
        assert!((e.usd_requests - expected).abs() < 1e-12);
        // 1 TB costs 24.5 USD a month.
        let tb = estimate(&[1_000_000_000_000], 1, u64::MAX, 8 * mib);
        assert!((tb.usd_storage_per_month - 1000.0 * S3_STANDARD_USD_PER_GB_MONTH).abs() < 1e-9);
    }
}
