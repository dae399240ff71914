//! The audit trail's vocabulary: what was done to a file, and how long a record is kept.

use std::time::Duration;

use crate::ids::{Sha256, UserId};

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

/// The one-way stand-in for an erased user in the records kept after the erase (DECISIONS
/// 17): `erased:` and 32 hex digits of a SHA-256 of the id. The same user gives the same
/// pseudonym (a repeated erase lands in one trail); nobody gets the id back from it.
pub fn pseudonym(user: &UserId) -> UserId {
    let digest = Sha256::of(format!("matbakh-files erased user\0{user}").as_bytes()).to_hex();
    UserId::from_trusted(format!("erased:{}", &digest[..32]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_distinct_and_hide_the_id() {
        let (a, b) = (UserId::parse("alice-123").unwrap(), UserId::parse("bob-456").unwrap());
        assert_eq!(pseudonym(&a), pseudonym(&a));
        assert_ne!(pseudonym(&a), pseudonym(&b));
        assert!(pseudonym(&a).as_str().starts_with("erased:"));
        assert!(!pseudonym(&a).as_str().contains("alice"));
    }
}
