//! The storage and cost report ([`matbakh_core::report`]): every object version of the bucket
//! counted once, streamed from the source into a tally (constant memory), kept as JSON for the
//! admin page. Where the CDNs' access logs are configured, the last [`TRANSFER_DAYS`] days of them
//! (today so far included) give the report's transfer part.

use std::sync::Arc;

use matbakh_core::clock::Clock;
#[cfg(doc)]
use matbakh_core::report::TRANSFER_DAYS;
use matbakh_core::report::{Prices, Report, Tally, TransferTally};

use crate::error::Error;
use crate::ports::{InventorySource, PortError, ReportStore, TransferSource};

/// What reporting works with.
#[derive(Clone)]
pub struct Reporting {
    pub source: Arc<dyn InventorySource>,
    pub store: Arc<dyn ReportStore>,
    /// The CDNs' access logs, where configured, and how many days of them to read.
    pub transfer: Option<(Arc<dyn TransferSource>, u32)>,
    /// The deployment region's prices.
    pub prices: Prices,
    pub clock: Arc<dyn Clock>,
}

impl Reporting {
    /// Counts the bucket and keeps the report: as the latest, and naming nobody as today's
    /// ([`Report::naming_nobody`]).
    pub async fn run(&self) -> Result<Report, Error> {
        let now = self.clock.now();
        let prices = self.prices;
        let mut tally = Tally::default();
        let source = self.source.scan(&mut |row| tally.add(&row, now, &prices)).await?;
        let mut report = tally.finish(now, source, &prices);
        if let Some((logs, days)) = &self.transfer {
            let today = now.date();
            let window: Vec<time::Date> =
                (0..i64::from((*days).max(1))).rev().map(|d| today - time::Duration::days(d)).collect();
            let mut transfer = TransferTally::default();
            let files = logs.scan(&window, &mut |cdn, request| transfer.add(cdn, &request)).await?;
            let transfer = transfer.finish(window[0], now, files, &prices);
            report.recommendations.extend(transfer.recommendations());
            report.transfer = Some(transfer);
        }
        let json = |r: &Report| serde_json::to_vec(r).map_err(|e| PortError::Failed(format!("report: {e}")));
        self.store.save(&report.generated_at[..10], json(&report.naming_nobody())?, json(&report)?).await?;
        tracing::info!(
            source,
            objects = report.total.objects,
            bytes = report.total.bytes,
            users = report.user_count,
            "report made"
        );
        Ok(report)
    }

    /// The latest report as JSON, if one was made.
    pub async fn latest(&self) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.store.latest().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{InMemoryInventory, InMemoryReports, InMemoryTransfer};
    use matbakh_core::cdn_log::Request;
    use matbakh_core::clock::FixedClock;
    use matbakh_core::report::InventoryRow;
    use time::macros::{date, datetime};

    #[tokio::test]
    async fn a_run_counts_every_row_and_keeps_the_report_as_the_latest() {
        let now = datetime!(2026-12-05 03:00 UTC);
        let row = |key: &str, size| InventoryRow {
            key: String::from(key),
            size,
            last_modified: datetime!(2026-01-01 00:00 UTC),
            storage_class: "STANDARD".into(),
            is_latest: true,
            is_delete_marker: false,
        };
        let reports = Arc::new(InMemoryReports::default());
        let reporting = Reporting {
            source: Arc::new(InMemoryInventory(vec![row("users/a/f/x.jpg", 10), row("derived/f/w320.webp", 5)])),
            store: reports.clone(),
            transfer: None,
            prices: Prices::for_region("eu-central-1"),
            clock: Arc::new(FixedClock(now)),
        };
        assert_eq!(reporting.latest().await.unwrap(), None);
        let report = reporting.run().await.unwrap();
        assert_eq!((report.total.objects, report.total.bytes, report.source.as_str()), (2, 15, "memory"));
        let latest: serde_json::Value = serde_json::from_slice(&reporting.latest().await.unwrap().unwrap()).unwrap();
        assert_eq!(latest["generatedAt"], "2026-12-05T03:00:00Z");
        assert_eq!(reports.days(), ["2026-12-05"]);
        // The latest names the users; the day's report, kept for good, names nobody.
        assert_eq!(latest["users"][0]["user"], "a");
        let kept: serde_json::Value = serde_json::from_slice(&reports.of("2026-12-05").unwrap()).unwrap();
        assert_eq!(kept["users"], serde_json::json!([]));
        assert_eq!(
            (kept["total"].clone(), kept["userCount"].clone()),
            (latest["total"].clone(), latest["userCount"].clone())
        );
        assert_eq!(latest["transfer"], serde_json::Value::Null, "no logs configured");
    }

    #[tokio::test]
    async fn the_cdn_logs_of_the_last_days_and_today_so_far_give_the_transfer() {
        let now = datetime!(2026-12-05 06:00 UTC);
        let sent = |bytes| Request { path: "p/f/menu.webp".into(), bytes, status: 200, hit: true };
        let logs = InMemoryTransfer(vec![
            (date!(2026 - 11 - 28), "files", sent(1)), // 7 days ago: before the window
            (date!(2026 - 11 - 29), "files", sent(10)),
            (date!(2026 - 12 - 04), "web", sent(100)),
            (date!(2026 - 12 - 05), "files", sent(1000)), // today so far
        ]);
        let reporting = Reporting {
            source: Arc::new(InMemoryInventory(vec![])),
            store: Arc::new(InMemoryReports::default()),
            transfer: Some((Arc::new(logs), 7)),
            prices: Prices::for_region("eu-central-1"),
            clock: Arc::new(FixedClock(now)),
        };
        let transfer = reporting.run().await.unwrap().transfer.unwrap();
        assert_eq!((transfer.from.as_str(), transfer.to.as_str(), transfer.days), ("2026-11-29", "2026-12-05", 7));
        assert_eq!((transfer.total.objects, transfer.total.bytes, transfer.log_files), (3, 1110, 3));
        assert_eq!(transfer.by_distribution["web"].bytes, 100);
    }
}
