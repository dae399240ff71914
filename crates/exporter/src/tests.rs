//! The exporter on the in-memory ports: a delivery that fails comes back after its delay, the
//! last one marks the job FAILED.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use matbakh_app::fakes::{InMemory, InMemoryObjects};
use matbakh_app::ports::{ExportRepo, PortResult};
use matbakh_core::clock::FixedClock;
use matbakh_core::exports::{ExportJob, ExportState};
use matbakh_core::ids::{FileId, UserId};
use matbakh_core::limits::Limits;
use matbakh_core::metadata::{FileDetails, FileRecord, FileStatus};
use matbakh_core::names::DisplayName;
use matbakh_core::types::ContentType;
use time::macros::datetime;

use super::*;

#[derive(Default)]
struct Delays(Mutex<Vec<(String, i32)>>);

#[async_trait]
impl Redelivery for Delays {
    async fn after(&self, receipt_handle: &str, seconds: i32) -> PortResult<()> {
        self.0.lock().unwrap().push((receipt_handle.to_owned(), seconds));
        Ok(())
    }
}

/// Review 28: a failed delivery waited out the queue's visibility timeout (90 minutes) before
/// its next try, and the job's FAILED came 6 hours late.
#[tokio::test]
async fn a_failed_delivery_comes_back_after_its_delay_and_the_last_marks_the_job_failed() {
    let now = datetime!(2026-03-01 12:00 UTC);
    let (repo, objects) = (Arc::new(InMemory::new()), Arc::new(InMemoryObjects::new()));
    let archiver = Archiver {
        exports: repo.clone(),
        files: repo.clone(),
        objects: objects.clone(),
        audit: matbakh_app::fakes::trail(repo.clone(), Arc::new(FixedClock(now))),
        limits: Limits::default(),
        clock: Arc::new(FixedClock(now)),
    };
    let owner = UserId::parse("alice").unwrap();
    let (name, pdf) = (DisplayName::parse("menu.pdf").unwrap(), ContentType::parse("application/pdf").unwrap());
    let mut record = FileRecord::upload(FileId::new(1_772_000_000_000, [1; 10]), owner.clone(), name, pdf, now);
    record.version_id = Some(objects.put_bytes(&record.key, b"%PDF-menu".to_vec()));
    record.status = FileStatus::Ready;
    repo.insert(FileDetails::new(record));
    let job = ExportJob {
        id: "exp1".into(),
        owner,
        state: ExportState::Pending,
        created_at: now,
        key: None,
        size: None,
        files: None,
    };
    repo.create(&job, None).await.unwrap();
    let delays = Delays::default();
    let delivery = |n| testkit::sqs_batch_delivered(&[("m1", r#"{"exportId":"exp1"}"#.to_owned())], n);
    // Out of time before its file: every delivery fails.
    for n in 1..EXPORT_MAX_RECEIVES {
        assert_eq!(handle(&archiver, &delays, delivery(n), Some(now)).await.batch_item_failures.len(), 1);
    }
    let seen: Vec<i32> = delays.0.lock().unwrap().iter().map(|(receipt, s)| (assert_eq!(receipt, "r"), *s).1).collect();
    assert_eq!(seen, EXPORT_RETRY_SECONDS);
    assert_eq!(repo.get_export(&job.id).unwrap().state, ExportState::Running);

    let last = handle(&archiver, &delays, delivery(EXPORT_MAX_RECEIVES), Some(now)).await;
    assert_eq!(last.batch_item_failures.len(), 1, "to the DLQ, whose alarm tells operations");
    assert_eq!(delays.0.lock().unwrap().len(), EXPORT_RETRY_SECONDS.len(), "no delay for the last");
    assert_eq!(repo.get_export(&job.id).unwrap().state, ExportState::Failed);
}
