//! The sweep on the in-memory ports: no server. Its conditional writes against DynamoDB and
//! the aborts against S3 are tested on moto in `tests/moto.rs`.

use std::sync::Arc;
use std::time::Duration;

use matbakh_app::fakes::{InMemory, InMemoryObjects};
use matbakh_app::ports::{FileGrants, UsageRepo};
use matbakh_app::sweep::{SWEEP_ATTEMPTS, SweepReport, Sweeper};
use matbakh_core::clock::FixedClock;
use matbakh_core::ids::{FileId, UserId};
use matbakh_core::limits::Limits;
use matbakh_core::metadata::FileRecord;
use matbakh_core::multipart::{PartPlan, SessionLimit, SessionState, UploadId, UploadSession};
use matbakh_core::names::DisplayName;
use matbakh_core::quota::Usage;
use matbakh_core::types::ContentType;
use time::OffsetDateTime;
use time::macros::datetime;

const GRANTED: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
const QUOTA: u64 = 1 << 30;

/// Alice's `n`th upload of `size` bytes, granted at [`GRANTED`].
fn upload(n: u8, size: u64) -> FileRecord {
    let id = FileId::new(1_772_366_400_000 + u64::from(n), [n; 10]);
    let mut record = FileRecord::upload(
        id,
        UserId::parse("alice").unwrap(),
        DisplayName::parse(&format!("video-{n}.mp4")).unwrap(),
        ContentType::parse("video/mp4").unwrap(),
        GRANTED,
    );
    record.size = size;
    record.expires_at = Some(GRANTED + Limits::default().pending_ttl);
    record
}

struct World {
    repo: Arc<InMemory>,
    objects: Arc<InMemoryObjects>,
}

impl World {
    fn new() -> Self {
        World { repo: Arc::new(InMemory::new()), objects: Arc::new(InMemoryObjects::new()) }
    }

    /// The sweep as it runs `after` the grants end.
    async fn sweep(&self, after: Duration) -> SweepReport {
        self.sweep_with(after, Limits::default(), None).await
    }

    /// The sweep as it runs `after` the grants end, with `limits`, stopping at `deadline` (the
    /// time since the grants ended).
    async fn sweep_with(&self, after: Duration, limits: Limits, deadline: Option<Duration>) -> SweepReport {
        let grant_ends = GRANTED + Limits::default().pending_ttl;
        let sweeper = Sweeper {
            uploads: self.repo.clone(),
            objects: self.objects.clone(),
            limits,
            clock: Arc::new(FixedClock(grant_ends + after)),
        };
        sweeper.sweep(deadline.map(|d| grant_ends + d)).await.unwrap()
    }

    /// A granted upload of `size` bytes (its PENDING row and reservation), `n`th of alice's.
    async fn granted(&self, n: u8, size: u64) -> FileRecord {
        let record = upload(n, size);
        self.repo.reserve(&record, QUOTA).await.unwrap();
        record
    }

    /// An open multipart session of `record`'s upload, ending when the grant does.
    fn session(&self, record: &FileRecord, id: &str) -> UploadId {
        let upload_id = UploadId::parse(id).unwrap();
        let limit = SessionLimit::Planned(PartPlan::for_size(record.size).unwrap());
        let expires_at = GRANTED + Limits::default().pending_ttl;
        self.repo.insert_session(UploadSession::open(record, upload_id.clone(), limit, expires_at));
        upload_id
    }

    async fn usage(&self) -> Usage {
        self.repo.usage(&UserId::parse("alice").unwrap()).await.unwrap()
    }
}

#[tokio::test]
async fn an_upload_that_never_arrived_gives_its_bytes_and_its_place_back_after_the_grace() {
    let w = World::new();
    let single = w.granted(1, 5_000).await;
    let multi = w.granted(2, 20 << 20).await;
    let upload = w.session(&multi, "upload-2");
    assert_eq!((w.usage().await.reserved, w.usage().await.open_uploads), (5_000 + (20 << 20), 1));

    let grace = Limits::default().sweep_grace;
    assert_eq!(w.sweep(grace - Duration::from_secs(60)).await, SweepReport::default(), "not before the grace");
    let report = w.sweep(grace + Duration::from_secs(60)).await;
    let expected = SweepReport {
        examined: 2,
        released: 2,
        released_bytes: 5_000 + (20 << 20),
        awaiting_event: 0,
        sessions_ended: 0,
        failed: 0,
    };
    assert_eq!(report, expected);
    assert_eq!(w.usage().await, Usage::default(), "bytes and the open-upload place are back");
    assert_eq!(w.objects.aborted(), std::slice::from_ref(&upload), "nobody can complete it any more");
    assert_eq!(w.repo.session(&upload).unwrap().state, SessionState::Aborted);
    assert!(w.repo.get(single.file_id).is_none() && w.repo.get(multi.file_id).is_none());
    assert_eq!(w.sweep(grace * 2).await, SweepReport::default(), "a second run finds nothing");
}

#[tokio::test]
async fn an_upload_whose_object_is_there_is_left_to_the_indexer() {
    let w = World::new();
    let arrived = w.granted(3, 7_000).await;
    w.objects.insert(arrived.key.clone());
    let report = w.sweep(Limits::default().sweep_grace * 2).await;
    assert_eq!((report.examined, report.released, report.awaiting_event), (1, 0, 1));
    assert_eq!(w.usage().await.reserved, 7_000, "still reserved: the event will settle it");
    assert!(w.repo.get(arrived.file_id).is_some());
}

#[tokio::test]
async fn an_expired_session_without_a_row_is_aborted_and_ended_as_what_became_of_it() {
    let w = World::new();
    // Companion-mode sessions: no PENDING row, only the session and its open-upload place.
    let (gone, came) = (upload(4, 1 << 20), upload(5, 1 << 20));
    let (lost, done) = (w.session(&gone, "upload-4"), w.session(&came, "upload-5"));
    w.objects.insert(came.key.clone());
    let report = w.sweep(Limits::default().sweep_grace * 2).await;
    assert_eq!((report.examined, report.sessions_ended), (0, 2));
    assert_eq!(w.repo.session(&lost).unwrap().state, SessionState::Aborted);
    assert!(matches!(w.repo.session(&done).unwrap().state, SessionState::Completed { .. }));
    assert_eq!(w.usage().await.open_uploads, 0);
    assert_eq!(w.objects.aborted().len(), 2);
}

/// Review 27: the first row whose step failed ended the run (every hour, while it failed):
/// the rows and sessions after it waited, and the releases in flight were cut short. A failure
/// that may pass is tried again; one that does not is counted and left, and the rest go on.
#[tokio::test]
async fn a_row_that_fails_is_left_for_the_next_run_and_the_others_go_on() {
    let w = World::new();
    let (flaky, broken) = (w.granted(1, 1_000).await, w.granted(2, 2_000).await);
    let after = w.granted(3, 3_000).await;
    let companion = upload(4, 1 << 20);
    let session = w.session(&companion, "upload-4");
    w.objects.fail_heads(&flaky.key, SWEEP_ATTEMPTS - 1, true);
    w.objects.fail_heads(&broken.key, 1, false);
    w.objects.fail_heads(&companion.key, SWEEP_ATTEMPTS, true);

    let report = w.sweep(Limits::default().sweep_grace * 2).await;
    assert_eq!((report.examined, report.released, report.released_bytes), (3, 2, 1_000 + 3_000));
    assert_eq!((report.failed, report.sessions_ended), (2, 0), "the broken row and the session that kept failing");
    assert!(w.repo.get(flaky.file_id).is_none() && w.repo.get(after.file_id).is_none());
    assert_eq!(w.usage().await.reserved, 2_000, "only the broken row's bytes are still held");
    assert_eq!(w.repo.session(&session).unwrap().state, SessionState::Open);

    // The next run finds them working again.
    let report = w.sweep(Limits::default().sweep_grace * 2).await;
    assert_eq!((report.released, report.sessions_ended, report.failed), (1, 1, 0));
    assert_eq!(w.usage().await, Usage::default());
}

/// Security review 21 (uploads 3): a run took one page (`SWEEP_MAX_ROWS`, oldest first), so a
/// user granting uploads as fast as the budget allows and never sending them (300 a minute)
/// kept every other user's abandoned reservations waiting behind theirs for days. A run now
/// takes pages until it is caught up or its deadline passes.
#[tokio::test]
async fn a_run_takes_pages_until_it_is_caught_up_or_out_of_time() {
    let w = World::new();
    for n in 1..=7 {
        w.granted(n, 1_000).await;
    }
    let after = Limits::default().sweep_grace * 2;
    let pages_of_two = Limits { sweep_max_rows: 2, ..Limits::default() };
    let late = w.sweep_with(after, pages_of_two.clone(), Some(after)).await;
    assert_eq!(late, SweepReport::default(), "past its deadline it takes no page");
    let report = w.sweep_with(after, pages_of_two, Some(after * 2)).await;
    assert_eq!((report.examined, report.released, report.released_bytes), (7, 7, 7_000), "four pages in one run");
    assert_eq!(w.usage().await.reserved, 0);
}

/// Rows whose objects are there but whose events are late (or in the DLQ) stay at the head of
/// the expired rows until the indexer settles them. A run used to ask for the first page again
/// after each page, so a full page of them ended it, and every abandoned reservation behind
/// them waited for the DLQ to be redriven; a run now goes on after the last row it was given.
#[tokio::test]
async fn a_page_of_rows_awaiting_their_events_does_not_hold_up_the_rows_behind_it() {
    let w = World::new();
    for n in 1..=7 {
        let r = w.granted(n, 1_000).await;
        if n <= 4 {
            w.objects.insert(r.key.clone());
        }
    }
    let after = Limits::default().sweep_grace * 2;
    let pages_of_two = Limits { sweep_max_rows: 2, ..Limits::default() };
    let report = w.sweep_with(after, pages_of_two.clone(), None).await;
    assert_eq!((report.examined, report.awaiting_event), (7, 4));
    assert_eq!((report.released, report.released_bytes), (3, 3_000), "the three behind them are released");
    assert_eq!(w.usage().await.reserved, 4_000, "the four whose objects are there stay reserved");
    let again = w.sweep_with(after, pages_of_two, None).await;
    assert_eq!((again.examined, again.released, again.awaiting_event), (4, 0, 4), "the next run looks at them again");
}
