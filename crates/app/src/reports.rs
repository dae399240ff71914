//! The storage and cost report ([`matbakh_core::report`]): every object version of the bucket
//! counted once, streamed from the source into a tally (constant memory), kept as JSON for the
//! admin page.

use std::sync::Arc;

use matbakh_core::clock::Clock;
use matbakh_core::report::{Prices, Report, Tally};

use crate::error::Error;
use crate::ports::{InventorySource, PortError, ReportStore};

/// What reporting works with.
#[derive(Clone)]
pub struct Reporting {
    pub source: Arc<dyn InventorySource>,
    pub store: Arc<dyn ReportStore>,
    /// The deployment region's prices.
    pub prices: Prices,
    pub clock: Arc<dyn Clock>,
}

impl Reporting {
    /// Counts the bucket and keeps the report (as today's and as the latest).
    pub async fn run(&self) -> Result<Report, Error> {
        let now = self.clock.now();
        let prices = self.prices;
        let mut tally = Tally::default();
        let source = self.source.scan(&mut |row| tally.add(&row, now, &prices)).await?;
        let report = tally.finish(now, source, &prices);
        let json = serde_json::to_vec(&report).map_err(|e| PortError::Failed(format!("report: {e}")))?;
        self.store.save(&report.generated_at[..10], json).await?;
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
    use crate::fakes::{InMemoryInventory, InMemoryReports};
    use matbakh_core::clock::FixedClock;
    use matbakh_core::report::InventoryRow;
    use time::macros::datetime;

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
            prices: Prices::for_region("eu-central-1"),
            clock: Arc::new(FixedClock(now)),
        };
        assert_eq!(reporting.latest().await.unwrap(), None);
        let report = reporting.run().await.unwrap();
        assert_eq!((report.total.objects, report.total.bytes, report.source.as_str()), (2, 15, "memory"));
        let latest: serde_json::Value = serde_json::from_slice(&reporting.latest().await.unwrap().unwrap()).unwrap();
        assert_eq!(latest["generatedAt"], "2026-12-05T03:00:00Z");
        assert_eq!(reports.days(), ["2026-12-05"]);
    }
}
