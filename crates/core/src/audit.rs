//! The audit trail's vocabulary: what was done to a file, and how long a record is kept.

use std::time::Duration;

/// How long an audit record is kept (`AUDIT_RETENTION_DAYS`); DynamoDB's TTL removes it then.
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// Records a page of `GET /v1/me/audit` holds unless the caller asks for fewer, and at most.
pub const DEFAULT_AUDIT_PAGE: u32 = 50;
pub const MAX_AUDIT_PAGE: u32 = 200;

/// An access to a file (or to the account) worth a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Upload,
    Download,
    Update,
    Delete,
    Restore,
    ShareCreate,
    ShareRevoke,
    /// Someone used the owner's share link (recorded in the owner's trail).
    ShareDownload,
    Export,
    Erase,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Upload => "upload",
            AuditAction::Download => "download",
            AuditAction::Update => "update",
            AuditAction::Delete => "delete",
            AuditAction::Restore => "restore",
            AuditAction::ShareCreate => "share_create",
            AuditAction::ShareRevoke => "share_revoke",
            AuditAction::ShareDownload => "share_download",
            AuditAction::Export => "export",
            AuditAction::Erase => "erase",
        }
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
