//! Quota arithmetic for reserve-then-settle (see DECISIONS 12).
//!
//! The usage record keeps `charged` = bytes stored + bytes reserved by open uploads. DynamoDB
//! conditions cannot add, so the check is phrased as one comparison against a ceiling
//! computed here: the reservation succeeds iff `charged <= quota - size`.

use crate::error::CoreError;

/// A user's storage account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Stored plus reserved bytes: what the quota is checked against.
    pub charged: u64,
    /// Bytes reserved by uploads that have not arrived yet.
    pub reserved: u64,
    /// Bytes of soft-deleted files: restorable, so still stored and still counted in
    /// `charged` until their versions are purged (else delete/restore cycles would park
    /// unlimited data outside the quota).
    pub deleted: u64,
    /// Multipart uploads open now, in every mode (at most `MAX_OPEN_UPLOADS`).
    pub open_uploads: u64,
}

/// Why an upload that arrived with `actual` bytes cannot be settled against the `granted`
/// size (its reservation); `None` when it fits. A larger object is refused whatever the quota
/// says: the grant is what the user was charged for and what the policy signed.
pub fn exceeds_grant(granted: u64, actual: u64) -> Option<&'static str> {
    (actual > granted).then_some("larger than the upload was granted")
}

/// The largest `charged` value that still leaves room for `size` more bytes.
pub fn reservation_ceiling(quota: u64, size: u64) -> Result<u64, CoreError> {
    quota.checked_sub(size).ok_or(CoreError::QuotaExceeded { requested: size, available: quota })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arrival_larger_than_its_grant_is_refused_and_one_within_it_fits() {
        assert_eq!(exceeds_grant(100, 101), Some("larger than the upload was granted"));
        assert_eq!(exceeds_grant(100, 100), None);
        assert_eq!(exceeds_grant(100, 0), None);
    }

    #[test]
    fn ceiling_leaves_exactly_room_for_the_upload() {
        assert_eq!(reservation_ceiling(100, 30).unwrap(), 70);
        assert_eq!(reservation_ceiling(100, 100).unwrap(), 0);
        assert!(matches!(
            reservation_ceiling(100, 101),
            Err(CoreError::QuotaExceeded { requested: 101, available: 100 })
        ));
    }
}
