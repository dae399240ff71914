//! GDPR export: a user asks for all their files and metadata as one ZIP; the job is queued
//! for the `exporter`, and its status, once READY, carries a download link of the archive.

use std::sync::Arc;

use matbakh_core::audit::AuditAction;
use matbakh_core::clock::{Clock, iso_seconds};
use matbakh_core::exports::{ExportJob, ExportState, is_export_id};
use matbakh_core::ids::{ObjectKey, UserId};
use matbakh_core::limits::Limits;
use serde::Serialize;
use time::OffsetDateTime;

use crate::audit::{Access, Client, Trail};
use crate::error::Error;
use crate::ports::{Counters, Download, ExportQueue, ExportRepo, ObjectAccess, PortError};

/// What the export use cases work with.
#[derive(Clone)]
pub struct Exports {
    pub exports: Arc<dyn ExportRepo>,
    pub queue: Arc<dyn ExportQueue>,
    /// The exports' budget per user.
    pub counters: Arc<dyn Counters>,
    pub objects: Arc<dyn ObjectAccess>,
    pub audit: Trail,
    pub limits: Limits,
    pub clock: Arc<dyn Clock>,
}

/// A job as its owner sees it; once READY, with a download link of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportView {
    pub export_id: String,
    pub status: &'static str,
    pub created_at: String,
    pub status_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
}

impl Exports {
    async fn view(&self, job: &ExportJob) -> Result<ExportView, Error> {
        let mut v = ExportView {
            export_id: job.id.clone(),
            status: job.state.as_str(),
            created_at: iso_seconds(job.created_at),
            status_url: format!("/v1/me/exports/{}", job.id),
            url: None,
            expires_at: None,
            size: None,
            files: None,
        };
        if let (ExportState::Ready, Some(key)) = (job.state, &job.key) {
            let disposition = format!("attachment; filename=\"matbakh-export-{}.zip\"", job.created_at.date());
            let link = self
                .objects
                .presign_download(&Download {
                    key: &ObjectKey::from_stored(key.clone()),
                    version_id: None,
                    content_type: "application/zip",
                    disposition: &disposition,
                    signed_at: self.clock.now(),
                    ttl: self.limits.download_url_ttl,
                })
                .await?;
            (v.url, v.expires_at) = (Some(link.url), Some(iso_seconds(link.expires_at)));
            (v.size, v.files) = (job.size, job.files);
        }
        Ok(v)
    }

    /// Queues an export of everything of the caller's; while one is pending or running (and
    /// not stale), or one was made within [`matbakh_core::exports::EXPORT_REUSED_FOR`], asking again
    /// answers that one.
    /// A new one replaces the caller's archive before it: one at a time.
    pub async fn start(&self, caller: &UserId, client: &Client) -> Result<ExportView, Error> {
        let now = self.clock.now();
        let latest = self.exports.latest(caller).await?;
        if let Some(job) = latest.as_ref().filter(|j| j.answers_again(now)) {
            return self.view(job).await;
        }
        let kind = matbakh_core::throttle::Costly::Export;
        match crate::throttle::admit(&*self.counters, &self.limits.budgets, now, caller, kind).await {
            Ok(()) => {}
            // The budget's last export may be the one another request (a double click) made
            // since `latest` was read: that one answers (a review: this answered 429).
            Err(over @ Error::TooMany { .. }) => return self.theirs_or(caller, now, over).await,
            Err(e) => return Err(e),
        }
        if let Some(key) = latest.as_ref().and_then(|j| j.key.as_ref()) {
            self.objects.delete_prefix(key).await?;
        }
        let id: [u8; 16] = crate::random::bytes()?;
        let job = ExportJob {
            id: id.iter().map(|b| format!("{b:02x}")).collect(),
            owner: caller.clone(),
            state: ExportState::Pending,
            created_at: now,
            key: None,
            size: None,
            files: None,
        };
        match self.exports.create(&job, latest.as_ref().map(|j| j.id.as_str())).await {
            Ok(()) => {}
            // Another request made one since `latest` was read (two tabs, a double click): both
            // were built before. That one answers this request too.
            Err(PortError::ConditionFailed) => {
                let busy = Error::conflict("busy", "another export was asked for at the same time; try again");
                return self.theirs_or(caller, now, busy).await;
            }
            Err(e) => return Err(e.into()),
        }
        if let Err(e) = self.queue.enqueue(&job).await {
            // Never to be built: FAILED at once, so that asking again queues a new one (review
            // 28: the dead PENDING job answered every request for an hour).
            if let Err(mark) = self.exports.set_state(&job.id, ExportState::Failed, None).await {
                tracing::warn!(export = %job.id, error = %mark, "an export not queued could not be marked FAILED");
            }
            return Err(e.into());
        }
        let access = Access { result: "queued", ..Access::ok(caller, AuditAction::Export, None) };
        self.audit.record(client, access).await?;
        tracing::info!(export = %job.id, "export queued");
        self.view(&job).await
    }

    /// The export another request of the caller's made since `start` read the newest, if it
    /// answers again; `otherwise` if there is none.
    async fn theirs_or(&self, caller: &UserId, now: OffsetDateTime, otherwise: Error) -> Result<ExportView, Error> {
        match self.exports.latest(caller).await?.filter(|j| j.answers_again(now)) {
            Some(job) => self.view(&job).await,
            None => Err(otherwise),
        }
    }

    /// One of the caller's jobs; anything else (someone else's, or not an id) is not found.
    pub async fn status(&self, caller: &UserId, id: &str) -> Result<ExportView, Error> {
        let job = if is_export_id(id) { self.exports.get(id).await? } else { None };
        let job = job.filter(|j| j.owner == *caller).ok_or(Error::NotFound("export"))?;
        self.view(&job).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use matbakh_core::clock::FixedClock;
    use matbakh_core::exports::EXPORT_STALE_AFTER;
    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::*;
    use crate::fakes::{InMemory, InMemoryObjects, InMemoryQueue};

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    struct World {
        repo: Arc<InMemory>,
        queue: Arc<InMemoryQueue>,
        objects: Arc<InMemoryObjects>,
    }

    impl World {
        fn at(&self, now: OffsetDateTime) -> Exports {
            Exports {
                exports: self.repo.clone(),
                queue: self.queue.clone(),
                counters: self.repo.clone(),
                objects: self.objects.clone(),
                audit: crate::fakes::trail(self.repo.clone(), Arc::new(FixedClock(now))),
                limits: Limits::default(),
                clock: Arc::new(FixedClock(now)),
            }
        }
    }

    fn world() -> World {
        World {
            repo: Arc::new(InMemory::new()),
            queue: Arc::new(InMemoryQueue::new()),
            objects: Arc::new(InMemoryObjects::new()),
        }
    }

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    fn client() -> Client {
        Client { ip: "192.0.2.1".into(), user_agent: "tests".into() }
    }

    #[tokio::test]
    async fn asking_again_while_one_runs_answers_that_one_and_queues_nothing_more() {
        let w = world();
        let first = w.at(NOW).start(&user("alice"), &client()).await.unwrap();
        assert_eq!((first.status, first.url.as_deref()), ("PENDING", None));
        assert_eq!(first.status_url, format!("/v1/me/exports/{}", first.export_id));
        let again = w.at(NOW + Duration::from_secs(600)).start(&user("alice"), &client()).await.unwrap();
        assert_eq!(again.export_id, first.export_id);
        assert_eq!(w.queue.sent(), std::slice::from_ref(&first.export_id));
        let recorded: Vec<String> = w.repo.audit_entries().iter().map(|e| e.result.clone()).collect();
        assert_eq!(recorded, ["queued"]);

        // A job that never finished is taken for dead after a while: asking starts a new one.
        let later = NOW + EXPORT_STALE_AFTER;
        let fresh = w.at(later).start(&user("alice"), &client()).await.unwrap();
        assert_ne!(fresh.export_id, first.export_id);
        assert_eq!(w.queue.sent().len(), 2);
    }

    /// The repository as a request saw it that read the newest export before another request
    /// made one: its first `latest` answers none.
    struct ReadBefore(Arc<InMemory>, std::sync::atomic::AtomicBool);

    #[async_trait::async_trait]
    impl ExportRepo for ReadBefore {
        async fn create(&self, job: &ExportJob, replacing: Option<&str>) -> crate::ports::PortResult<()> {
            self.0.create(job, replacing).await
        }
        async fn get(&self, id: &str) -> crate::ports::PortResult<Option<ExportJob>> {
            ExportRepo::get(&*self.0, id).await
        }
        async fn latest(&self, owner: &UserId) -> crate::ports::PortResult<Option<ExportJob>> {
            if self.1.swap(true, std::sync::atomic::Ordering::SeqCst) { self.0.latest(owner).await } else { Ok(None) }
        }
        async fn set_state(
            &self,
            id: &str,
            state: ExportState,
            archive: Option<&crate::ports::Archive>,
        ) -> crate::ports::PortResult<()> {
            self.0.set_state(id, state, archive).await
        }
    }

    /// Two requests at once (two tabs, a double click) that both read that there was no export
    /// yet make one between them, and the later answers it (found in session 26: each made
    /// one, and both were built).
    #[tokio::test]
    async fn two_requests_at_once_make_one_export() {
        let w = world();
        let first = w.at(NOW).start(&user("alice"), &client()).await.unwrap();
        let mut late = w.at(NOW);
        late.exports = Arc::new(ReadBefore(w.repo.clone(), Default::default()));
        let second = late.start(&user("alice"), &client()).await.unwrap();
        assert_eq!(second.export_id, first.export_id);
        assert_eq!(w.queue.sent(), std::slice::from_ref(&first.export_id), "one built");
    }

    /// At the budget's edge: of two requests at once, the one that finds the budget spent by
    /// the other answers the other's export, not 429.
    #[tokio::test]
    async fn a_double_click_at_the_budgets_edge_answers_the_export_made() {
        let w = world();
        for n in 0..matbakh_core::throttle::DEFAULT_EXPORTS_PER_HOUR - 1 {
            let job = w.at(NOW + Duration::from_secs(n)).start(&user("alice"), &client()).await.unwrap();
            let mut stored = w.repo.get_export(&job.export_id).unwrap();
            stored.state = ExportState::Failed;
            w.repo.set_export(stored);
        }
        let at = NOW + Duration::from_secs(30);
        let first = w.at(at).start(&user("alice"), &client()).await.unwrap();
        let mut late = w.at(at);
        late.exports = Arc::new(ReadBefore(w.repo.clone(), Default::default()));
        let second = late.start(&user("alice"), &client()).await.unwrap();
        assert_eq!(second.export_id, first.export_id);
    }

    struct QueueDown;

    #[async_trait::async_trait]
    impl ExportQueue for QueueDown {
        async fn enqueue(&self, _job: &ExportJob) -> crate::ports::PortResult<()> {
            Err(crate::PortError::Unavailable { operation: "SendMessage", message: "throttled".into() })
        }
    }

    /// Review 28: a job whose message could not be sent stayed PENDING, and asking again
    /// answered it (never to be built) for an hour.
    #[tokio::test]
    async fn a_job_that_could_not_be_queued_is_failed_and_asking_again_queues_a_new_one() {
        let w = world();
        let mut down = w.at(NOW);
        down.queue = Arc::new(QueueDown);
        assert!(down.start(&user("alice"), &client()).await.unwrap_err().is_retryable());
        let dead = w.repo.latest(&user("alice")).await.unwrap().unwrap();
        assert_eq!(dead.state, ExportState::Failed);

        let again = w.at(NOW + Duration::from_secs(60)).start(&user("alice"), &client()).await.unwrap();
        assert_ne!(again.export_id, dead.id);
        assert_eq!(w.queue.sent(), std::slice::from_ref(&again.export_id));
    }

    /// Security review 20: each archive is the whole account, kept 7 days outside the quota; a
    /// user starting one an hour (the budget allows 5) kept a hundred copies. Now a READY one
    /// answers for a day, and a new one replaces it.
    #[tokio::test]
    async fn a_ready_archive_answers_for_a_day_and_a_new_one_replaces_it() {
        let w = world();
        let first = w.at(NOW).start(&user("alice"), &client()).await.unwrap();
        let key = ObjectKey::from_stored(format!("exports/alice/{}.zip", first.export_id));
        w.objects.insert(key.clone());
        let mut stored = w.repo.get_export(&first.export_id).unwrap();
        (stored.state, stored.key, stored.size, stored.files) =
            (ExportState::Ready, Some(key.as_str().to_owned()), Some(4096), Some(3));
        w.repo.set_export(stored);

        let again = w.at(NOW + Duration::from_secs(3600)).start(&user("alice"), &client()).await.unwrap();
        assert_eq!((again.export_id.as_str(), again.status), (first.export_id.as_str(), "READY"));
        assert!(again.url.is_some());
        assert_eq!(w.queue.sent().len(), 1, "nothing built again");

        let tomorrow = NOW + matbakh_core::exports::EXPORT_REUSED_FOR;
        let fresh = w.at(tomorrow).start(&user("alice"), &client()).await.unwrap();
        assert_ne!(fresh.export_id, first.export_id);
        assert_eq!(w.queue.sent().len(), 2);
        assert!(w.objects.size(&key).await.unwrap().is_none(), "the archive before it is gone");
    }

    #[tokio::test]
    async fn a_ready_job_links_its_archive_and_nobody_else_sees_it() {
        let w = world();
        let job = w.at(NOW).start(&user("alice"), &client()).await.unwrap();
        let mut stored = w.repo.get_export(&job.export_id).unwrap();
        stored.state = ExportState::Ready;
        (stored.key, stored.size, stored.files) =
            (Some(format!("exports/alice/{}.zip", job.export_id)), Some(4096), Some(3));
        w.repo.set_export(stored);

        let ready = w.at(NOW).status(&user("alice"), &job.export_id).await.unwrap();
        let url = ready.url.unwrap();
        assert!(url.starts_with(&format!("memory://bucket/exports/alice/{}.zip", job.export_id)), "{url}");
        assert_eq!((ready.status, ready.size, ready.files), ("READY", Some(4096), Some(3)));
        let ttl = Limits::default().download_url_ttl;
        assert_eq!(ready.expires_at, Some(iso_seconds(NOW + ttl)));
        for (who, id) in [("mallory", job.export_id.as_str()), ("alice", "../../etc"), ("alice", &"0".repeat(32))] {
            let err = w.at(NOW).status(&user(who), id).await.unwrap_err();
            assert!(matches!(err, Error::NotFound("export")), "{who} {id}: {err}");
        }
    }

    #[tokio::test]
    async fn exports_over_the_hours_budget_are_refused_and_queue_nothing() {
        let w = world();
        // Failed ones (a READY one would be answered again: below).
        let finish = |id: &str| {
            let mut stored = w.repo.get_export(id).unwrap();
            stored.state = ExportState::Failed;
            w.repo.set_export(stored);
        };
        for n in 0..matbakh_core::throttle::DEFAULT_EXPORTS_PER_HOUR {
            let job = w.at(NOW + Duration::from_secs(n)).start(&user("alice"), &client()).await.unwrap();
            finish(&job.export_id);
        }
        let refused = w.at(NOW + Duration::from_secs(60)).start(&user("alice"), &client()).await.unwrap_err();
        match refused {
            // NOW is on a whole hour: the budget comes back at the next one
            Error::TooMany { retry_after, .. } => assert_eq!(retry_after, Duration::from_secs(59 * 60)),
            e => panic!("{e:?}"),
        }
        assert_eq!(w.queue.sent().len() as u64, matbakh_core::throttle::DEFAULT_EXPORTS_PER_HOUR);
        w.at(NOW + Duration::from_secs(3600)).start(&user("alice"), &client()).await.unwrap();
        w.at(NOW).start(&user("bob"), &client()).await.unwrap();
    }
}
