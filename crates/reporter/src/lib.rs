//! `reporter`: the daily storage and cost report ([`matbakh_core::report`]).
//!
//! Triggered by an EventBridge schedule (daily, after S3 delivered the day's inventory). Reads
//! every object version of the files bucket: from its S3 Inventory (`INVENTORY_BUCKET`,
//! `INVENTORY_PREFIX`: the latest daily CSV.gz report, streamed) or, where none exists yet
//! (locally, a new stack's first day), by listing the bucket (`BUCKET_NAME`). Counts them by
//! user, content type, storage class and age, prices them (`PRICE_REGION`, else the region),
//! adds what the CDNs sent over the last `TRANSFER_DAYS` (7) days, today so far included, from their access logs
//! (`CDN_LOGS`: `files=cdn-files/{distributionId},web=...`, in `REPORTS_BUCKET`), recommends
//! what would cost less, and writes the report to `reports/{day}.json` and
//! `reports/latest.json` of `REPORTS_BUCKET`, which `GET /v1/admin/reports/latest` (the
//! `migration-api` function) answers and the web app's admin page draws.
//!
//! Reads: the inventory or the bucket's versions, the CDNs' logs. Writes: the two report objects. Emits the
//! totals as metrics (`StoredBytes`, `StoredObjects`, `MonthlyCostCents`).

use std::sync::Arc;

use matbakh_app::reports::Reporting;
use matbakh_aws::report::{BucketInventory, CdnLogs, ReportBucket};
use matbakh_core::clock::SystemClock;
use matbakh_core::report::{Prices, Report, TRANSFER_DAYS};
use matbakh_lambda::metrics::{self, Unit};

/// Reporting on this deployment's bucket, inventory and reports bucket, from `lookup`'s settings.
pub fn reporting(sdk: &aws_config::SdkConfig, lookup: impl Fn(&str) -> Option<String>) -> Result<Reporting, String> {
    let setting = |name: &str| lookup(name).filter(|v| !v.is_empty());
    let bucket = setting("BUCKET_NAME").ok_or("BUCKET_NAME is not set")?;
    let reports = setting("REPORTS_BUCKET").ok_or("REPORTS_BUCKET is not set")?;
    let inventory = setting("INVENTORY_BUCKET").zip(setting("INVENTORY_PREFIX"));
    // The CDNs' access logs, in the reports bucket (the template's logs bucket).
    let transfer = match setting("CDN_LOGS") {
        Some(cdns) => {
            let days = match setting("TRANSFER_DAYS") {
                Some(d) => d.parse().map_err(|_| format!("TRANSFER_DAYS: {d:?} is not a number of days"))?,
                None => TRANSFER_DAYS,
            };
            Some((Arc::new(CdnLogs::new(sdk, reports.clone(), &cdns)?) as _, days))
        }
        None => None,
    };
    let region = setting("PRICE_REGION").or_else(|| setting("AWS_REGION")).unwrap_or_default();
    Ok(Reporting {
        source: Arc::new(BucketInventory::new(sdk, bucket, inventory)),
        store: Arc::new(ReportBucket::new(sdk, reports)),
        transfer,
        prices: Prices::for_region(&region),
        clock: Arc::new(SystemClock),
    })
}

/// One report, counted as metrics too.
pub async fn run(reporting: &Reporting) -> Result<Report, matbakh_app::Error> {
    let report = reporting.run().await?;
    metrics::emit(
        "report",
        &[
            ("StoredBytes", report.total.bytes, Unit::Bytes),
            ("StoredObjects", report.total.objects, Unit::Count),
            ("MonthlyCostCents", (report.monthly_cost_usd * 100.0).round() as u64, Unit::Count),
        ],
    );
    Ok(report)
}
