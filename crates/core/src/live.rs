//! Live updates (issue 20): what the platform tells a user's open browsers (WebSocket) and the
//! app's backend (signed webhooks) when something they see changes.
//!
//! One message shape for both, small JSON with a type and a version:
//!
//! ```json
//! {"type": "file.ready", "version": 1, "id": "3f1c...:0", "at": "2026-12-05T10:00:00.000Z",
//!  "user": "u-1", "data": {"fileId": "...", "status": "READY", "variants": [...]}}
//! ```
//!
//! `id` is the same however often a message is sent again (the webhook's idempotency key, and
//! what a browser drops duplicates by). The events are derived from row changes: every
//! user-visible state change is a write of a row, by whichever function made it, so
//! [`file_events`] and [`export_event`] are the one place that says which write is which event.

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::exports::{ExportJob, ExportState};
use crate::ids::UserId;
use crate::metadata::{FileRecord, FileStatus};
use crate::tokens::Secret;

/// The version of the message shape ([`Message::version`]); raised when a field changes meaning
/// or goes away (added fields keep it).
pub const MESSAGE_VERSION: u32 = 1;
/// An administrator's socket gets a migration run's progress at most once in this many
/// milliseconds (the notifier's batching window collects the run's updates meanwhile).
pub const PROGRESS_INTERVAL_MS: u64 = 1_000;
/// How long a connection's row lives without being renewed (API Gateway closes a WebSocket
/// after two hours whatever happens; the row outlives it briefly and goes by TTL).
pub const CONNECTION_TTL_SECONDS: i64 = 2 * 60 * 60 + 5 * 60;
/// How long a connect ticket (`POST /v1/live/tickets`) can be used, once.
pub const TICKET_TTL_SECONDS: i64 = 30;
/// The subprotocol the WebSocket speaks (a client offers it, the server answers with it).
pub const SUBPROTOCOL: &str = "matbakh.live.v1";
/// The prefix of a subprotocol that carries the caller's token (`bearer.{jwt}`): browsers
/// cannot set an `Authorization` header on a WebSocket.
pub const BEARER_SUBPROTOCOL_PREFIX: &str = "bearer.";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// The upload's bytes arrived and were counted (processing follows).
    #[serde(rename = "upload.settled")]
    UploadSettled,
    /// The file passed its checks; an image's variants are there.
    #[serde(rename = "file.ready")]
    FileReady,
    /// An image that could not be processed (kept, without variants).
    #[serde(rename = "file.failed")]
    FileFailed,
    /// Refused: not what it claimed, not allowed, or infected.
    #[serde(rename = "file.quarantined")]
    FileQuarantined,
    /// Renamed, retagged, made public or private (from any device).
    #[serde(rename = "file.changed")]
    FileChanged,
    /// Deleted (soft) or erased.
    #[serde(rename = "file.deleted")]
    FileDeleted,
    /// Back from the deleted files.
    #[serde(rename = "file.restored")]
    FileRestored,
    /// Its original moved to the archive tier (variants still show; a download needs a restore).
    #[serde(rename = "file.archived")]
    FileArchived,
    /// A restore of its archived original started (`data.restoreExpectedBy` says until when).
    #[serde(rename = "file.restoring")]
    FileRestoring,
    /// A GDPR export can be downloaded.
    #[serde(rename = "export.ready")]
    ExportReady,
    /// A GDPR export could not be made.
    #[serde(rename = "export.failed")]
    ExportFailed,
    /// A migration run's counters (administrators only, never a webhook).
    #[serde(rename = "migration.progress")]
    MigrationProgress,
    /// The user erased their account (GDPR): everything of theirs is gone or going, the files
    /// they had deleted before included; what a receiver kept of theirs must go too. Their
    /// open sockets are closed after it.
    #[serde(rename = "account.erased")]
    AccountErased,
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::UploadSettled,
        Kind::FileReady,
        Kind::FileFailed,
        Kind::FileQuarantined,
        Kind::FileChanged,
        Kind::FileDeleted,
        Kind::FileRestored,
        Kind::FileArchived,
        Kind::FileRestoring,
        Kind::ExportReady,
        Kind::ExportFailed,
        Kind::MigrationProgress,
        Kind::AccountErased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::UploadSettled => "upload.settled",
            Kind::FileReady => "file.ready",
            Kind::FileFailed => "file.failed",
            Kind::FileQuarantined => "file.quarantined",
            Kind::FileChanged => "file.changed",
            Kind::FileDeleted => "file.deleted",
            Kind::FileRestored => "file.restored",
            Kind::FileArchived => "file.archived",
            Kind::FileRestoring => "file.restoring",
            Kind::ExportReady => "export.ready",
            Kind::ExportFailed => "export.failed",
            Kind::MigrationProgress => "migration.progress",
            Kind::AccountErased => "account.erased",
        }
    }

    /// Whether the app's backend hears of it (everything about users' files and exports; the
    /// migration's progress is for the dashboard only).
    pub fn to_webhooks(self) -> bool {
        self != Kind::MigrationProgress
    }
}

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// The file's or export's owner, on every device.
    Owner(UserId),
    /// The administrators' open sockets.
    Admins,
}

/// One message, as sent on a socket and POSTed to a webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    #[serde(rename = "type")]
    pub kind: Kind,
    pub version: u32,
    pub id: String,
    /// When the change was made (RFC 3339, milliseconds).
    pub at: String,
    /// The user the event is about (absent for administrators' messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub data: serde_json::Value,
}

impl Message {
    /// The message with id `{source}:{n}`: `source` names the change it comes from (a stream
    /// record's id), `n` which of its events it is; so a change delivered again makes the same
    /// ids.
    pub fn new(kind: Kind, source: &str, n: usize, at: String, user: Option<&UserId>, data: serde_json::Value) -> Self {
        Message {
            kind,
            version: MESSAGE_VERSION,
            id: format!("{source}:{n}"),
            at,
            user: user.map(ToString::to_string),
            data,
        }
    }

    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and a JSON value always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A one-time connect ticket (`POST /v1/live/tickets`, then `?ticket=` on the socket's URL): 32
/// random bytes in Base64url, stored only as its SHA-256, usable once within
/// [`TICKET_TTL_SECONDS`].
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket(Secret);

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ticket({})", &self.digest()[..12])
    }
}

impl Ticket {
    pub fn from_random(bytes: [u8; 32]) -> Self {
        Ticket(Secret::from_random(bytes))
    }

    /// A presented ticket: exactly 43 Base64url characters.
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        Secret::parse(raw).map(Ticket).ok_or_else(|| CoreError::invalid("ticket", "is not a connect ticket"))
    }

    /// The ticket itself, for its holder only.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// What is stored instead of the ticket (hex SHA-256).
    pub fn digest(&self) -> String {
        self.0.digest()
    }
}

/// The events a write of a file row is, in order: `old` and `new` are the row before and after
/// (`None`: it did not exist, or was removed).
pub fn file_events(old: Option<&FileRecord>, new: Option<&FileRecord>) -> Vec<Kind> {
    use FileStatus::*;
    let status_event = |status: FileStatus| match status {
        Ready => Some(Kind::FileReady),
        Failed => Some(Kind::FileFailed),
        Quarantined => Some(Kind::FileQuarantined),
        Deleted => Some(Kind::FileDeleted),
        Archived => Some(Kind::FileArchived),
        Restoring => Some(Kind::FileRestoring),
        Pending => None,
    };
    match (old, new) {
        (None, None) => vec![],
        // Erased, purged or swept: news only if the file was still to be seen.
        (Some(o), None) => match o.status {
            Pending | Deleted => vec![],
            _ => vec![Kind::FileDeleted],
        },
        // A new row: a grant (the uploader knows) or a file that arrives whole (a migration).
        (None, Some(n)) => status_event(n.status).filter(|k| *k != Kind::FileDeleted).into_iter().collect(),
        (Some(o), Some(n)) => {
            let mut out = Vec::new();
            if o.status == Pending && o.expires_at.is_some() && n.expires_at.is_none() {
                out.push(Kind::UploadSettled);
            }
            if o.status != n.status {
                let event = match (o.status, n.status) {
                    (Deleted, _) => Some(Kind::FileRestored),
                    // Processed again (a FAILED file whose processing was given up, redriven):
                    // no longer what it was told to be.
                    (_, Pending) => Some(Kind::FileChanged),
                    (_, status) => status_event(status),
                };
                out.extend(event);
            } else if n.status != Pending && (o.filename != n.filename || o.labels != n.labels) {
                out.push(Kind::FileChanged);
            }
            out
        }
    }
}

/// The event a write of an export job is, if any: it became READY or FAILED.
pub fn export_event(old: Option<&ExportJob>, new: &ExportJob) -> Option<Kind> {
    if old.is_some_and(|o| o.state == new.state) {
        return None;
    }
    match new.state {
        ExportState::Ready => Some(Kind::ExportReady),
        ExportState::Failed => Some(Kind::ExportFailed),
        ExportState::Pending | ExportState::Running => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::FileId;
    use crate::labels::{Labels, Visibility};
    use crate::names::DisplayName;
    use crate::types::ContentType;

    fn row(status: FileStatus) -> FileRecord {
        let mut r = FileRecord::upload(
            FileId::new(1_700_000_000_000, [1; 10]),
            UserId::parse("u-1").unwrap(),
            DisplayName::parse("menu.jpg").unwrap(),
            ContentType::parse("image/jpeg").unwrap(),
            time::macros::datetime!(2026-12-05 10:00 UTC),
        );
        r.status = status;
        r.expires_at = (status == FileStatus::Pending).then_some(time::macros::datetime!(2026-12-05 11:00 UTC));
        r
    }

    fn settled(mut r: FileRecord) -> FileRecord {
        r.expires_at = None;
        r
    }

    #[test]
    fn an_upload_settles_then_becomes_ready() {
        let pending = row(FileStatus::Pending);
        assert_eq!(file_events(None, Some(&pending)), vec![], "the grant: the uploader knows");
        let arrived = settled(pending.clone());
        assert_eq!(file_events(Some(&pending), Some(&arrived)), vec![Kind::UploadSettled]);
        let ready = row(FileStatus::Ready);
        assert_eq!(file_events(Some(&arrived), Some(&ready)), vec![Kind::FileReady]);
        // Settled and refused in one write.
        assert_eq!(
            file_events(Some(&pending), Some(&row(FileStatus::Quarantined))),
            vec![Kind::UploadSettled, Kind::FileQuarantined]
        );
        assert_eq!(file_events(Some(&arrived), Some(&row(FileStatus::Failed))), vec![Kind::FileFailed]);
        // Given up on, then processed again once its event is redriven: told both times.
        let given_up = settled(row(FileStatus::Failed));
        let reopened = settled(row(FileStatus::Pending));
        assert_eq!(file_events(Some(&given_up), Some(&reopened)), vec![Kind::FileChanged]);
        assert_eq!(file_events(Some(&reopened), Some(&settled(ready))), vec![Kind::FileReady]);
    }

    #[test]
    fn owner_changes_deletes_and_restores() {
        let ready = row(FileStatus::Ready);
        let mut renamed = ready.clone();
        renamed.filename = DisplayName::parse("dinner.jpg").unwrap();
        assert_eq!(file_events(Some(&ready), Some(&renamed)), vec![Kind::FileChanged]);
        let mut public = ready.clone();
        public.labels = Labels { visibility: Visibility::Public, ..Labels::default() };
        assert_eq!(file_events(Some(&ready), Some(&public)), vec![Kind::FileChanged]);
        let mut internal = ready.clone();
        internal.version_id = Some("v2".into());
        assert_eq!(file_events(Some(&ready), Some(&internal)), vec![], "nothing a user sees changed");

        let deleted = row(FileStatus::Deleted);
        assert_eq!(file_events(Some(&ready), Some(&deleted)), vec![Kind::FileDeleted]);
        assert_eq!(file_events(Some(&deleted), Some(&ready)), vec![Kind::FileRestored]);
        assert_eq!(file_events(Some(&deleted), None), vec![], "purging a deleted file is no news");
        assert_eq!(file_events(Some(&ready), None), vec![Kind::FileDeleted], "erased");
        assert_eq!(file_events(Some(&row(FileStatus::Pending)), None), vec![], "a lapsed grant");
        assert_eq!(file_events(None, Some(&ready)), vec![Kind::FileReady], "a migrated file arrives whole");
    }

    #[test]
    fn exports_tell_when_they_end() {
        let job = |state| ExportJob {
            id: "e1".into(),
            owner: UserId::parse("u-1").unwrap(),
            state,
            created_at: time::macros::datetime!(2026-12-05 10:00 UTC),
            key: None,
            size: None,
            files: None,
        };
        assert_eq!(export_event(None, &job(ExportState::Pending)), None);
        assert_eq!(export_event(Some(&job(ExportState::Running)), &job(ExportState::Ready)), Some(Kind::ExportReady));
        assert_eq!(export_event(Some(&job(ExportState::Ready)), &job(ExportState::Ready)), None, "no news twice");
        assert_eq!(export_event(Some(&job(ExportState::Running)), &job(ExportState::Failed)), Some(Kind::ExportFailed));
    }

    #[test]
    fn messages_are_small_json_with_type_version_and_a_stable_id() {
        let user = UserId::parse("u-1").unwrap();
        let m = Message::new(
            Kind::FileReady,
            "rec-9",
            1,
            "2026-12-05T10:00:00.000Z".into(),
            Some(&user),
            serde_json::json!({"fileId": "f"}),
        );
        let json: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(json["type"], "file.ready");
        assert_eq!(json["version"], MESSAGE_VERSION);
        assert_eq!(json["id"], "rec-9:1");
        assert_eq!(json["user"], "u-1");
        assert_eq!(serde_json::from_value::<Message>(json).unwrap(), m);
        for kind in Kind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert!(!Kind::MigrationProgress.to_webhooks() && Kind::FileDeleted.to_webhooks());
    }

    #[test]
    fn tickets_parse_and_never_show_themselves() {
        let t = Ticket::from_random([9; 32]);
        assert_eq!(Ticket::parse(t.expose()).unwrap(), t);
        assert!(!format!("{t:?}").contains(t.expose()));
        assert_eq!(t.digest().len(), 64);
        for bad in ["", "short", &format!("{}=", t.expose()), &"!".repeat(43)] {
            assert!(Ticket::parse(bad).is_err(), "{bad:?}");
        }
    }
}
