//! Recording accesses: who, what, when, from where, with what result; a record in the
//! owner's trail ([`AuditLog`], kept `AUDIT_RETENTION_DAYS`) and a structured log line
//! (target `audit`). A record that cannot be written fails the use case: an access is never
//! granted unrecorded.

use std::sync::Arc;
use std::time::Duration;

use matbakh_core::audit::{AuditAction, AuditEntry};
use matbakh_core::clock::Clock;
use matbakh_core::ids::{FileId, UserId};

use crate::ports::{AuditLog, PortResult};

/// The trail the use cases write: where records go, how long they are kept
/// (`AUDIT_RETENTION_DAYS`), and the clock that dates them.
#[derive(Clone)]
pub struct Trail {
    pub log: Arc<dyn AuditLog>,
    pub retention: Duration,
    pub clock: Arc<dyn Clock>,
}

/// Where a request came from: the gateway's view of the source IP (never a client-supplied
/// header) and the user agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub ip: String,
    pub user_agent: String,
}

/// One access to record.
pub struct Access<'a> {
    /// Whose trail: the file's owner.
    pub owner: &'a UserId,
    pub action: AuditAction,
    pub file_id: Option<FileId>,
    /// `None`: the owner acted; else who did (`share:{id}`).
    pub actor: Option<String>,
    pub result: &'a str,
}

impl<'a> Access<'a> {
    /// The owner acted on `file_id` (or on their account) and it succeeded: most accesses.
    pub fn ok(owner: &'a UserId, action: AuditAction, file_id: Option<FileId>) -> Self {
        Access { owner, action, file_id, actor: None, result: "ok" }
    }
}

impl Trail {
    /// Writes the record and the log line. A visitor's use of a share link keeps their
    /// address and user agent in the log only (abuse handling), never in the owner's trail.
    pub async fn record(&self, client: &Client, access: Access<'_>) -> PortResult<()> {
        let (ip, user_agent) = if access.action == AuditAction::ShareDownload {
            Default::default()
        } else {
            (client.ip.clone(), client.user_agent.clone())
        };
        let entry = AuditEntry {
            user: access.owner.clone(),
            action: access.action,
            actor: access.actor.unwrap_or_else(|| "owner".into()),
            file_id: access.file_id,
            result: access.result.to_owned(),
            ip,
            user_agent,
            at: self.clock.now(),
        };
        // An erase's record is kept under the user's pseudonym, which its line never prints:
        // the line is logged in the erase's request, whose span names the user, and the two side
        // by side would link them for as long as the logs are kept (review 24).
        let user = if entry.action == AuditAction::Erase {
            "(the pseudonym, not logged)".into()
        } else {
            entry.user.to_string()
        };
        tracing::info!(
            target: "audit",
            %user,
            action = %entry.action,
            actor = %entry.actor,
            file_id = ?entry.file_id.map(|f| f.to_string()),
            result = %entry.result,
            ip = %client.ip,
            user_agent = %client.user_agent,
            "access"
        );
        self.log.append(&entry, self.retention).await
    }
}
