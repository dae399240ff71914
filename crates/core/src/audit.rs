//! The audit trail's vocabulary: what was done to a file, and how long a record is kept.

use std::time::Duration;

use aws_lc_rs::hmac;

use crate::error::CoreError;
use crate::ids::{FileId, UserId};
use time::OffsetDateTime;

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
    /// The owner asked to archive a file, or to restore an archived one.
    Archive,
    Unarchive,
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
            AuditAction::Archive => "archive",
            AuditAction::Unarchive => "unarchive",
        }
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The smallest key accepted for erase pseudonyms (the stack's generated secret has 64
/// characters).
pub const MIN_PSEUDONYM_KEY_BYTES: usize = 32;

/// The stack's secret that keys the erase pseudonyms (`ERASE_PSEUDONYM_SECRET_ID`): without
/// it, nobody who has a user id can compute the pseudonym and find the user's erase record.
#[derive(Clone)]
pub struct PseudonymKey(hmac::Key);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

impl PseudonymKey {
    /// From the secret's bytes as stored; at least [`MIN_PSEUDONYM_KEY_BYTES`].
    pub fn new(secret: &[u8]) -> Result<Self, CoreError> {
        if secret.len() < MIN_PSEUDONYM_KEY_BYTES {
            return Err(CoreError::invalid(
                "ERASE_PSEUDONYM_SECRET_ID",
                format!("needs at least {MIN_PSEUDONYM_KEY_BYTES} bytes, has {}", secret.len()),
            ));
        }
        Ok(PseudonymKey(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }
}

/// The stand-in for an erased user in the records kept after the erase (DECISIONS 17):
/// `erased:` and 32 hex digits of HMAC-SHA256(key, id). The same user gives the same pseudonym
/// under one key (a repeated erase lands in one trail); nobody gets the id back from it, and
/// without the key nobody can tell whose it is.
pub fn pseudonym(key: &PseudonymKey, user: &UserId) -> UserId {
    let tag = hmac::sign(&key.0, user.as_str().as_bytes());
    UserId::from_trusted(format!("{ERASED_MARK_PREFIX}{}", hex::encode(&tag.as_ref()[..16])))
}

/// The mark of an erased user's legacy path (`shop/42/menu.jpg`), which their erase leaves where
/// their legacy mappings were, so that the legacy redirector answers `410` for it instead of
/// reading the legacy store: `erased:` and 32 hex digits of HMAC-SHA256(key, a label and the
/// path), keyed as [`pseudonym`] is and never equal to a user's pseudonym.
pub fn erased_path(key: &PseudonymKey, path: &str) -> String {
    let tag = hmac::sign(&key.0, format!("legacy path\0{path}").as_bytes());
    format!("{ERASED_MARK_PREFIX}{}", hex::encode(&tag.as_ref()[..16]))
}

/// How a pseudonym or a path mark begins.
pub const ERASED_MARK_PREFIX: &str = "erased:";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Sha256;

    #[test]
    fn an_erased_paths_mark_is_keyed_and_never_a_users_pseudonym() {
        let path = "users/alice-123/2019/07/dune.jpg";
        assert_eq!(erased_path(&key(1), path), erased_path(&key(1), path));
        assert_ne!(erased_path(&key(1), path), erased_path(&key(2), path));
        assert_ne!(erased_path(&key(1), path), erased_path(&key(1), "users/alice-123/2019/07/dune.jpeg"));
        assert!(!erased_path(&key(1), path).contains("alice"));
        let id = UserId::parse("alice-123").unwrap();
        assert_ne!(erased_path(&key(1), id.as_str()), pseudonym(&key(1), &id).to_string());
        assert!(!erased_path(&key(1), path).contains(&Sha256::of(path.as_bytes()).to_hex()[..32]));
    }

    fn key(byte: u8) -> PseudonymKey {
        PseudonymKey::new(&[byte; MIN_PSEUDONYM_KEY_BYTES]).unwrap()
    }

    #[test]
    fn pseudonyms_are_stable_distinct_and_hide_the_id() {
        let (a, b) = (UserId::parse("alice-123").unwrap(), UserId::parse("bob-456").unwrap());
        assert_eq!(pseudonym(&key(1), &a), pseudonym(&key(1), &a));
        assert_ne!(pseudonym(&key(1), &a), pseudonym(&key(1), &b));
        assert!(pseudonym(&key(1), &a).as_str().starts_with("erased:"));
        assert_eq!(pseudonym(&key(1), &a).as_str().len(), "erased:".len() + 32);
        assert!(!pseudonym(&key(1), &a).as_str().contains("alice"));
    }

    #[test]
    fn the_pseudonym_changes_with_the_key() {
        let a = UserId::parse("alice-123").unwrap();
        assert_ne!(pseudonym(&key(1), &a), pseudonym(&key(2), &a));
    }

    #[test]
    fn the_pseudonym_is_no_unkeyed_hash_of_the_id() {
        let a = UserId::parse("alice-123").unwrap();
        let stand_in = pseudonym(&key(1), &a);
        for unkeyed in [format!("matbakh-files erased user\0{a}"), a.to_string()] {
            let digest = Sha256::of(unkeyed.as_bytes()).to_hex();
            assert!(!stand_in.as_str().contains(&digest[..32]), "anyone with the id computes {stand_in}");
        }
    }

    #[test]
    fn a_short_key_is_refused_and_a_key_never_printed() {
        let short = PseudonymKey::new(&[7; MIN_PSEUDONYM_KEY_BYTES - 1]).unwrap_err();
        assert!(short.to_string().starts_with("ERASE_PSEUDONYM_SECRET_ID: needs at least 32 bytes"), "{short}");
        assert_eq!(format!("{:?}", key(1)), "PseudonymKey(..)");
    }
}

/// One access, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Whose trail it is in (the file's owner).
    pub user: UserId,
    pub action: AuditAction,
    /// Who acted: `owner`, or `share:{id}` for a download through a link.
    pub actor: String,
    pub file_id: Option<FileId>,
    /// `ok`, or why it was refused.
    pub result: String,
    pub ip: String,
    pub user_agent: String,
    pub at: OffsetDateTime,
}

/// A record as the trail shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditRecord {
    pub at: String,
    pub action: String,
    pub actor: String,
    pub file_id: Option<String>,
    pub result: String,
    pub ip: String,
    pub user_agent: String,
}

impl AuditRecord {
    /// The record as its owner is shown it (the trail's page, the export's `audit.json`): never
    /// where a share link's visitor came from (records from before that was no longer stored
    /// hold it).
    pub fn shown(&self) -> serde_json::Value {
        let shown = self.action != AuditAction::ShareDownload.as_str();
        serde_json::json!({
            "at": self.at,
            "action": self.action,
            "actor": self.actor,
            "fileId": self.file_id,
            "result": self.result,
            "ip": shown.then_some(&self.ip),
            "userAgent": shown.then_some(&self.user_agent),
        })
    }
}
