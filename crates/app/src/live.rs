//! Live updates (issue 20): a change of a file or an export becomes messages
//! ([`matbakh_core::live`]) for its owner's open sockets and, through the [`Outbox`] (the webhook
//! queue), for the app's backend; sockets open with a one-time ticket or a token and are
//! remembered per user.
//!
//! Webhooks come first and must be queued (a failure fails the change, which is then seen
//! again: at least once, with the same ids). A push to one socket that fails is counted and not
//! retried: retrying the change would send everything again to every other socket and hold up
//! the stream behind it, and a browser catches up whenever its socket opens again (it reloads
//! what it shows). A socket API Gateway reports gone is forgotten. An erased account's sockets
//! are told `account.erased` and then closed (their tokens may live on for hours).

use std::sync::Arc;
use std::time::Duration;

use matbakh_core::clock::Clock;
use matbakh_core::exports::ExportJob;
use matbakh_core::ids::UserId;
use matbakh_core::live::{
    Audience, CONNECTION_TTL_SECONDS, Kind, Message, TICKET_TTL_SECONDS, Ticket, export_event, file_events,
};
use matbakh_core::metadata::FileDetails;
use serde_json::json;

use crate::delivery::Delivery;
use crate::error::Error;
use crate::ports::{Connection, Connections, Outbox, Push, Pushed};

/// What the notifier logs when a file row's write did not raise its revision.
pub const REVISION_NOT_RAISED: &str = "a file row was written without raising its revision";

/// A change, as a row write shows it (one at a time, briefly: its size does not matter).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Change {
    /// A file's row before and after (`None`: not there).
    File { old: Option<FileDetails>, new: Option<FileDetails> },
    /// An export job's row before (if any) and after.
    Export { old: Option<ExportJob>, new: ExportJob },
    /// A user's account closed by a GDPR erase (its usage item took `closedAt`), at
    /// `erased_at` (RFC 3339).
    AccountErased { user: UserId, erased_at: String },
}

impl Change {
    /// Whose change it is: the file's or the export's owner.
    pub fn owner(&self) -> Option<&UserId> {
        match self {
            Change::File { old, new } => new.as_ref().or(old.as_ref()).map(|d| &d.record.owner),
            Change::Export { new, .. } => Some(&new.owner),
            Change::AccountErased { user, .. } => Some(user),
        }
    }
}

/// What telling did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Told {
    /// Messages told.
    pub messages: usize,
    /// Messages queued for the webhooks.
    pub webhooks: usize,
    /// Messages sent to sockets.
    pub pushed: usize,
    /// Sockets found closed, and forgotten.
    pub gone: usize,
    /// Pushes that failed otherwise (not retried).
    pub failed: usize,
    /// Sockets closed (an erased account's).
    pub closed: usize,
}

impl std::ops::AddAssign for Told {
    fn add_assign(&mut self, o: Told) {
        self.messages += o.messages;
        self.webhooks += o.webhooks;
        self.pushed += o.pushed;
        self.gone += o.gone;
        self.failed += o.failed;
        self.closed += o.closed;
    }
}

#[derive(Clone)]
pub struct Live {
    pub connections: Arc<dyn Connections>,
    pub push: Arc<dyn Push>,
    /// The webhook queue, where the deployment has an endpoint.
    pub outbox: Option<Arc<dyn Outbox>>,
    /// Makes the files' views (variant URLs) as the files API does.
    pub delivery: Delivery,
    pub restore_window: Duration,
    /// Who administers the deployment now (`ADMIN_USERS`): a socket opened as an
    /// administrator's gets their messages only while its user still is one (an authorization
    /// sweep: one removed kept them for the socket's two hours).
    pub admins: Arc<std::collections::BTreeSet<String>>,
}

impl Live {
    /// The messages `change` is. `source` names the change (a stream record's id: the same
    /// change makes the same message ids), `at` when it was made.
    pub async fn messages(&self, source: &str, at: &str, change: &Change) -> Result<Vec<(Audience, Message)>, Error> {
        match change {
            Change::File { old, new } => {
                let kinds = file_events(old.as_ref().map(|d| &d.record), new.as_ref().map(|d| &d.record));
                let Some(shown) = new.as_ref().or(old.as_ref()).filter(|_| !kinds.is_empty()) else {
                    return Ok(vec![]);
                };
                let owner = &shown.record.owner;
                if let (Some(o), Some(n)) = (old, new)
                    && n.revision <= o.revision
                {
                    // Every write raises it (`schema::FileRowUpdate` in the adapters): one that
                    // did not is a bug, and receivers would take its news for stale. The smoke
                    // test fails on this line in the notifier's log.
                    tracing::error!(file = %shown.record.file_id, old = o.revision, new = n.revision, "{REVISION_NOT_RAISED}");
                }
                let data = match new {
                    Some(d) => serde_json::to_value(self.delivery.view(d, self.restore_window).await?)
                        .map_err(|e| Error::Port(crate::PortError::Failed(e.to_string())))?,
                    // Removed: the last of its revisions.
                    None => json!({
                        "fileId": shown.record.file_id.to_string(),
                        "status": "ERASED",
                        "revision": shown.revision + 1,
                    }),
                };
                Ok(kinds
                    .into_iter()
                    .enumerate()
                    .map(|(n, kind)| {
                        let m = Message::new(kind, source, n, at.to_owned(), Some(owner), data.clone());
                        (Audience::Owner(owner.clone()), m)
                    })
                    .collect())
            }
            Change::Export { old, new } => Ok(export_event(old.as_ref(), new)
                .map(|kind| {
                    let data = json!({
                        "exportId": new.id,
                        "status": new.state.as_str(),
                        "statusUrl": format!("/v1/me/exports/{}", new.id),
                        "size": new.size,
                        "files": new.files,
                    });
                    (
                        Audience::Owner(new.owner.clone()),
                        Message::new(kind, source, 0, at.to_owned(), Some(&new.owner), data),
                    )
                })
                .into_iter()
                .collect()),
            Change::AccountErased { user, erased_at } => {
                let data = json!({ "erasedAt": erased_at });
                let m = Message::new(Kind::AccountErased, source, 0, at.to_owned(), Some(user), data);
                Ok(vec![(Audience::Owner(user.clone()), m)])
            }
        }
    }

    /// Tells `messages` to their audiences: queued for the webhooks first, then pushed to
    /// every open socket of each audience.
    pub async fn tell(&self, messages: &[(Audience, Message)]) -> Result<Told, Error> {
        let mut told = Told { messages: messages.len(), ..Told::default() };
        if let Some(outbox) = &self.outbox {
            let bodies: Vec<String> =
                messages.iter().filter(|(_, m)| m.kind.to_webhooks()).map(|(_, m)| m.to_json()).collect();
            if !bodies.is_empty() {
                outbox.enqueue(&bodies).await?;
                told.webhooks = bodies.len();
            }
        }
        // A change's messages go to one audience, mostly: its sockets are looked up once.
        let mut known: Vec<(&Audience, Vec<Connection>)> = Vec::new();
        for (audience, message) in messages {
            let at = match known.iter().position(|(a, _)| *a == audience) {
                Some(at) => at,
                None => {
                    let sockets = match audience {
                        Audience::Owner(user) => self.connections.of_user(user).await?,
                        Audience::Admins => {
                            let sockets = self.connections.of_admins().await?;
                            sockets.into_iter().filter(|c| self.admins.contains(c.user.as_str())).collect()
                        }
                    };
                    known.push((audience, sockets));
                    known.len() - 1
                }
            };
            let body = message.to_json();
            let mut gone = Vec::new();
            for socket in &known[at].1 {
                match self.push.push(&socket.id, body.as_bytes()).await {
                    Ok(Pushed::Sent) => told.pushed += 1,
                    Ok(Pushed::Gone) => {
                        self.connections.close(socket).await?;
                        told.gone += 1;
                        gone.push(socket.id.clone());
                    }
                    Err(e) => {
                        tracing::warn!(connection = %socket.id, kind = message.kind.as_str(), error = %e, "not pushed");
                        told.failed += 1;
                    }
                }
            }
            known[at].1.retain(|s| !gone.contains(&s.id));
            if message.kind == Kind::AccountErased {
                // Told, then closed: a token outlives the erase by hours, the socket must not.
                for socket in std::mem::take(&mut known[at].1) {
                    self.push.disconnect(&socket.id).await?;
                    self.connections.close(&socket).await?;
                    told.closed += 1;
                }
            }
        }
        Ok(told)
    }
}

/// Opening and closing sockets: who may (one-time tickets), and which are open.
#[derive(Clone)]
pub struct Entry {
    pub connections: Arc<dyn Connections>,
    pub clock: Arc<dyn Clock>,
}

impl Entry {
    /// A one-time ticket that opens one socket for `user` within [`TICKET_TTL_SECONDS`].
    pub async fn ticket(&self, user: &UserId) -> Result<(Ticket, i64), Error> {
        let ticket = Ticket::from_random(crate::random::bytes()?);
        let expires = self.clock.now() + time::Duration::seconds(TICKET_TTL_SECONDS);
        self.connections.issue_ticket(&ticket.digest(), user, expires).await?;
        tracing::info!(user = %user, "connect ticket issued");
        Ok((ticket, TICKET_TTL_SECONDS))
    }

    /// Whose a presented ticket is, using it up; `None` if unknown, used or expired.
    pub async fn redeem(&self, ticket: &Ticket) -> Result<Option<UserId>, Error> {
        Ok(self.connections.redeem_ticket(&ticket.digest(), self.clock.now()).await?)
    }

    /// Remembers an opened socket.
    pub async fn opened(&self, c: &Connection) -> Result<(), Error> {
        let expires = self.clock.now() + time::Duration::seconds(CONNECTION_TTL_SECONDS);
        self.connections.open(c, expires).await?;
        tracing::info!(connection = %c.id, user = %c.user, admin = c.admin, "socket opened");
        Ok(())
    }

    /// Forgets a closed socket.
    pub async fn closed(&self, c: &Connection) -> Result<(), Error> {
        self.connections.close(c).await?;
        tracing::info!(connection = %c.id, user = %c.user, "socket closed");
        Ok(())
    }
}

/// Messages for the administrators' sockets (a migration run's progress): `Kind` and data made
/// by the caller, which knows runs.
pub fn for_admins(kind: Kind, source: &str, at: &str, data: serde_json::Value) -> (Audience, Message) {
    (Audience::Admins, Message::new(kind, source, 0, at.to_owned(), None, data))
}

#[cfg(test)]
mod tests {
    use matbakh_core::clock::FixedClock;
    use matbakh_core::exports::ExportState;
    use matbakh_core::ids::{FileId, ObjectKey};
    use matbakh_core::metadata::{FileRecord, FileStatus, ImageInfo, VariantInfo};
    use matbakh_core::names::DisplayName;
    use matbakh_core::types::ContentType;
    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::*;
    use crate::fakes::{InMemoryLive, InMemoryObjects, delivery};

    const NOW: OffsetDateTime = datetime!(2026-12-05 12:00 UTC);

    fn live(fakes: &Arc<InMemoryLive>, webhooks: bool) -> Live {
        let clock: Arc<dyn Clock> = Arc::new(FixedClock(NOW));
        Live {
            connections: fakes.clone(),
            push: fakes.clone(),
            outbox: webhooks.then(|| fakes.clone() as Arc<dyn Outbox>),
            delivery: delivery(Arc::new(InMemoryObjects::new()), clock),
            restore_window: Duration::from_secs(30 * 86_400),
            admins: Arc::new(["admin".to_owned()].into()),
        }
    }

    fn entry(fakes: &Arc<InMemoryLive>, now: OffsetDateTime) -> Entry {
        Entry { connections: fakes.clone(), clock: Arc::new(FixedClock(now)) }
    }

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    fn socket(id: &str, owner: &str, admin: bool) -> Connection {
        Connection { id: id.into(), user: user(owner), admin }
    }

    fn file(status: FileStatus) -> FileDetails {
        let mut r = FileRecord::upload(
            FileId::new(1_700_000_000_000, [4; 10]),
            user("alice"),
            DisplayName::parse("falafel.jpg").unwrap(),
            ContentType::parse("image/jpeg").unwrap(),
            datetime!(2026-12-05 11:00 UTC),
        );
        r.status = status;
        r.expires_at = (status == FileStatus::Pending).then_some(datetime!(2026-12-05 13:00 UTC));
        let mut d = FileDetails::new(r);
        if status == FileStatus::Ready {
            let key = ObjectKey::from_stored(format!("derived/{}/w320.webp", d.record.file_id));
            d.image = Some(ImageInfo {
                width: 1200,
                height: 800,
                frames: 1,
                placeholder: String::new(),
                variants: vec![VariantInfo { width: 320, height: 213, content_type: "image/webp".into(), key }],
            });
        }
        d
    }

    fn revised(mut d: FileDetails, revision: u64) -> FileDetails {
        d.revision = revision;
        d
    }

    fn kinds(messages: &[(Audience, Message)]) -> Vec<&'static str> {
        messages.iter().map(|(_, m)| m.kind.as_str()).collect()
    }

    #[tokio::test]
    async fn a_ready_file_reaches_each_of_its_owners_sockets_and_the_webhooks_with_its_variant_urls() {
        let fakes = Arc::new(InMemoryLive::default());
        let live = live(&fakes, true);
        for c in [socket("phone", "alice", false), socket("laptop", "alice", false), socket("bob-1", "bob", false)] {
            entry(&fakes, NOW).opened(&c).await.unwrap();
        }
        let change = Change::File {
            old: Some(revised(file(FileStatus::Pending), 1_764_932_400_000)),
            new: Some(revised(file(FileStatus::Ready), 1_764_932_400_003)),
        };
        let messages = live.messages("rec-1", "2026-12-05T12:00:00.000Z", &change).await.unwrap();
        assert_eq!(kinds(&messages), ["upload.settled", "file.ready"]);
        let told = live.tell(&messages).await.unwrap();
        assert_eq!(told, Told { messages: 2, webhooks: 2, pushed: 4, gone: 0, failed: 0, closed: 0 });
        assert_eq!(*fakes.lookups.lock().unwrap(), 1, "alice's sockets were looked up once for both messages");
        assert!(fakes.pushed_to("bob-1").is_empty(), "nobody else hears of alice's files");

        let on_phone: Vec<Message> =
            fakes.pushed_to("phone").iter().map(|b| serde_json::from_str(b).unwrap()).collect();
        assert_eq!(on_phone.len(), 2);
        let ready = &on_phone[1];
        assert_eq!((ready.kind, ready.id.as_str(), ready.user.as_deref()), (Kind::FileReady, "rec-1:1", Some("alice")));
        assert_eq!(ready.data["status"], "READY");
        assert_eq!(ready.data["revision"], 1_764_932_400_003_u64, "which of the file's changes it tells");
        let url = ready.data["variants"][0]["url"].as_str().unwrap();
        assert!(url.contains("w320.webp"), "a URL the browser can load: {url}");
        // The webhooks get the same documents.
        assert_eq!(fakes.queued(), fakes.pushed_to("laptop"));

        // The same change seen again (a retried stream batch) makes the same ids.
        let again = live.messages("rec-1", "2026-12-05T12:00:00.000Z", &change).await.unwrap();
        assert_eq!(again, messages);
    }

    /// Review 24: an erased user's sockets stayed open (and their tickets usable) until their
    /// TTL, and the app's backend was never told of the account's end (only of the files still
    /// shown). The erase's close of the account is `account.erased`, queued for the webhooks and
    /// pushed to the user's sockets, which are then closed and forgotten.
    #[tokio::test]
    async fn an_erased_accounts_sockets_are_told_then_closed_and_the_backend_is_told() {
        let fakes = Arc::new(InMemoryLive::default());
        let live = live(&fakes, true);
        for c in [socket("phone", "alice", false), socket("laptop", "alice", false), socket("bob-1", "bob", false)] {
            entry(&fakes, NOW).opened(&c).await.unwrap();
        }
        let change = Change::AccountErased { user: user("alice"), erased_at: "2026-12-05T12:00:00.000Z".into() };
        assert_eq!(change.owner(), Some(&user("alice")));
        let messages = live.messages("rec-9", "2026-12-05T12:00:00.100Z", &change).await.unwrap();
        assert_eq!(kinds(&messages), ["account.erased"]);
        let told = live.tell(&messages).await.unwrap();
        assert_eq!(told, Told { messages: 1, webhooks: 1, pushed: 2, gone: 0, failed: 0, closed: 2 });
        let queued: Message = serde_json::from_str(&fakes.queued()[0]).unwrap();
        assert_eq!((queued.kind, queued.user.as_deref()), (Kind::AccountErased, Some("alice")));
        assert_eq!(queued.data, json!({ "erasedAt": "2026-12-05T12:00:00.000Z" }));
        assert_eq!(fakes.pushed_to("phone").len(), 1, "told before it closes");
        let mut closed = fakes.disconnected.lock().unwrap().clone();
        closed.sort();
        assert_eq!(closed, ["laptop", "phone"]);
        assert!(!fakes.is_open("phone") && !fakes.is_open("laptop") && fakes.is_open("bob-1"));
    }

    #[tokio::test]
    async fn gone_sockets_are_forgotten_and_a_failed_push_is_counted_not_retried() {
        let fakes = Arc::new(InMemoryLive::default());
        let live = live(&fakes, false);
        for c in [socket("old", "alice", false), socket("busy", "alice", false), socket("ok", "alice", false)] {
            entry(&fakes, NOW).opened(&c).await.unwrap();
        }
        fakes.gone.lock().unwrap().insert("old".into());
        fakes.failing.lock().unwrap().insert("busy".into());
        let change = Change::File { old: Some(file(FileStatus::Ready)), new: Some(file(FileStatus::Deleted)) };
        let messages = live.messages("rec-2", "t", &change).await.unwrap();
        assert_eq!(kinds(&messages), ["file.deleted"]);
        let told = live.tell(&messages).await.unwrap();
        assert_eq!(told, Told { messages: 1, webhooks: 0, pushed: 1, gone: 1, failed: 1, closed: 0 });
        assert!(!fakes.is_open("old") && fakes.is_open("busy") && fakes.is_open("ok"));
    }

    #[test]
    fn the_smoke_test_looks_for_the_revision_check_in_the_notifiers_log() {
        assert!(include_str!("../../../scripts/dev").contains(REVISION_NOT_RAISED));
    }

    #[tokio::test]
    async fn a_webhook_queue_that_is_down_fails_the_change_before_any_push() {
        let fakes = Arc::new(InMemoryLive::default());
        let live = live(&fakes, true);
        entry(&fakes, NOW).opened(&socket("phone", "alice", false)).await.unwrap();
        *fakes.outbox_down.lock().unwrap() = true;
        let change = Change::File { old: Some(revised(file(FileStatus::Ready), 41)), new: None };
        let messages = live.messages("rec-3", "t", &change).await.unwrap();
        assert_eq!(messages[0].1.data["status"], "ERASED");
        assert_eq!(messages[0].1.data["revision"], 42, "above every revision the file had");
        let err = live.tell(&messages).await.unwrap_err();
        assert!(matches!(err, Error::Port(ref e) if e.is_retryable()), "{err}");
        assert!(fakes.pushed_to("phone").is_empty(), "told again when it is retried: not twice");
    }

    #[tokio::test]
    async fn exports_and_admin_messages() {
        let fakes = Arc::new(InMemoryLive::default());
        let live = live(&fakes, true);
        entry(&fakes, NOW).opened(&socket("a", "alice", false)).await.unwrap();
        entry(&fakes, NOW).opened(&socket("root", "admin", true)).await.unwrap();
        // Opened while its user administered the deployment; no longer in ADMIN_USERS.
        entry(&fakes, NOW).opened(&socket("former", "bob", true)).await.unwrap();
        let job = |state| ExportJob {
            id: "exp1".into(),
            owner: user("alice"),
            state,
            created_at: NOW,
            key: Some("exports/alice/exp1.zip".into()),
            size: Some(10),
            files: Some(2),
        };
        let change = Change::Export { old: Some(job(ExportState::Running)), new: job(ExportState::Ready) };
        let messages = live.messages("rec-4", "t", &change).await.unwrap();
        assert_eq!(kinds(&messages), ["export.ready"]);
        assert_eq!(messages[0].1.data["statusUrl"], "/v1/me/exports/exp1");
        let progress = for_admins(Kind::MigrationProgress, "rec-5", "t", json!({"run": "r1", "copiedFiles": 3}));
        let told = live.tell(&[messages[0].clone(), progress]).await.unwrap();
        assert_eq!(
            told,
            Told { messages: 2, webhooks: 1, pushed: 2, gone: 0, failed: 0, closed: 0 },
            "progress is not a webhook"
        );
        assert_eq!(fakes.pushed_to("root").len(), 1);
        assert!(fakes.pushed_to("former").is_empty(), "no admin message once no longer an administrator");
        assert!(fakes.queued()[0].contains("export.ready"));
    }

    #[tokio::test]
    async fn a_ticket_opens_once_and_not_after_it_expired() {
        let fakes = Arc::new(InMemoryLive::default());
        let (ticket, ttl) = entry(&fakes, NOW).ticket(&user("alice")).await.unwrap();
        assert_eq!(ttl, TICKET_TTL_SECONDS);
        assert!(fakes.tickets.lock().unwrap().keys().all(|k| k != ticket.expose()), "only its digest is kept");
        let at = |t: OffsetDateTime| entry(&fakes, t);
        assert_eq!(at(NOW).redeem(&ticket).await.unwrap(), Some(user("alice")));
        assert_eq!(at(NOW).redeem(&ticket).await.unwrap(), None, "used up");

        let (late, _) = entry(&fakes, NOW).ticket(&user("alice")).await.unwrap();
        let after = NOW + time::Duration::seconds(TICKET_TTL_SECONDS);
        assert_eq!(at(after).redeem(&late).await.unwrap(), None, "expired");
    }
}
