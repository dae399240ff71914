//! Multipart uploads: how a declared size is cut into parts, and the ids S3 hands out.
//!
//! S3's rules: every part but the last is 5 MiB to 5 GiB, at most 10,000 parts, and the
//! whole object at most 5 TiB. The server picks the part size, so it can sign each part URL
//! with its exact length and no part carries more than planned.

use std::fmt;

use crate::error::CoreError;

const MIB: u64 = 1024 * 1024;

/// S3's smallest part (except the last).
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// S3's largest part.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
/// S3's largest part number.
pub const MAX_PARTS: u32 = 10_000;
/// The part size used unless the file is so large that 10,000 parts would not hold it:
/// small enough that a lost part is cheap to resend, large enough to keep request counts low.
pub const DEFAULT_PART_SIZE: u64 = 8 * MIB;
/// How many part URLs one request may ask for.
pub const MAX_PARTS_PER_SIGN_REQUEST: usize = 100;

/// A part number, 1 to 10,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartNumber(u32);

impl PartNumber {
    pub fn new(n: u64) -> Result<Self, CoreError> {
        match u32::try_from(n) {
            Ok(n) if (1..=MAX_PARTS).contains(&n) => Ok(PartNumber(n)),
            _ => Err(CoreError::invalid("partNumbers", format!("{n} is not a part number (1 to {MAX_PARTS})"))),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for PartNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An upload id as S3 issued it. Opaque, but bounded and free of characters that would let
/// it escape a URL path segment or a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    pub const MAX_LEN: usize = 1024;

    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        let ok = |c: char| c.is_ascii_alphanumeric() || "-_.~+=".contains(c);
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.chars().all(ok) {
            return Err(CoreError::invalid("uploadId", "is not an upload id"));
        }
        Ok(UploadId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// S3's largest CopyObject: a larger object is copied in parts (UploadPartCopy).
pub const SINGLE_COPY_MAX_BYTES: u64 = MAX_PART_SIZE;
/// Objects above this are copied in parts, [`COPY_PARTS_IN_FLIGHT`] at a time, rather than in
/// one CopyObject, which copies at one stream's pace (S3's limit above). How long either takes
/// on AWS is not measured (no account here): a judgement, and the size above which a public
/// original's URL waits until its copy is seen (`delivery::public_original_may_be_missing`).
pub const COPY_IN_PARTS_ABOVE: u64 = 1024 * MIB;
/// The part size of a copy in parts, grown where 10,000 parts would not hold the object.
pub const COPY_PART_SIZE: u64 = 256 * MIB;
/// How many parts of one copy are copied at once.
pub const COPY_PARTS_IN_FLIGHT: usize = 8;

/// Byte ranges `(offset, len)` of the parts of a `size`-byte object, in order.
pub fn part_ranges(size: u64, part_size: u64) -> Vec<(u64, u64)> {
    let part_size = part_size.max(1);
    (0..size.div_ceil(part_size)).map(|i| (i * part_size, part_size.min(size - i * part_size))).collect()
}

/// The part size for a `size`-byte object: `preferred`, grown so the object needs at most
/// S3's [`MAX_PARTS`], and never below its [`MIN_PART_SIZE`].
pub fn part_size_for(size: u64, preferred: u64) -> u64 {
    preferred.max(size.div_ceil(u64::from(MAX_PARTS))).max(MIN_PART_SIZE)
}

/// How a file of `size` bytes is cut into parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    pub size: u64,
    pub part_size: u64,
    pub part_count: u32,
}

impl PartPlan {
    /// The plan for `size` bytes: [`DEFAULT_PART_SIZE`] parts, or larger (whole MiB) ones when
    /// that would need more than 10,000.
    pub fn for_size(size: u64) -> Result<Self, CoreError> {
        if size == 0 {
            return Err(CoreError::invalid("size", "must be at least 1 byte"));
        }
        let needed = size.div_ceil(u64::from(MAX_PARTS)).div_ceil(MIB) * MIB;
        let part_size = needed.max(DEFAULT_PART_SIZE);
        if part_size > MAX_PART_SIZE {
            return Err(CoreError::invalid("size", "is larger than S3 can store in one object"));
        }
        let part_count =
            u32::try_from(size.div_ceil(part_size)).map_err(|_| CoreError::invalid("size", "is too large"))?;
        Ok(PartPlan { size, part_size, part_count })
    }

    /// The exact length of part `n`, or an error if the plan has no such part.
    pub fn part_len(&self, n: PartNumber) -> Result<u64, CoreError> {
        if n.get() > self.part_count {
            return Err(CoreError::invalid(
                "partNumbers",
                format!("this upload has {} parts; there is no part {n}", self.part_count),
            ));
        }
        let start = u64::from(n.get() - 1) * self.part_size;
        Ok(self.part_size.min(self.size - start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_object_exactly_within_s3s_limits() {
        let mib = 1024 * 1024;
        assert_eq!(part_ranges(20 * mib, 8 * mib), vec![(0, 8 * mib), (8 * mib, 8 * mib), (16 * mib, 4 * mib)]);
        assert_eq!(part_ranges(0, 8 * mib), vec![]);
        // A 200 GiB object needs parts over 8 MiB to stay within 10,000.
        let size = 200 * 1024 * mib;
        let part = part_size_for(size, 8 * mib);
        assert!(part_ranges(size, part).len() <= 10_000);
        assert_eq!(part_size_for(10 * mib, 1), 5 * mib, "never below S3's 5 MiB minimum");
        // A copy in parts of the largest object S3 stores: parts S3 accepts, all of it.
        let size = 5 * 1024 * 1024 * mib;
        let parts = part_ranges(size, part_size_for(size, COPY_PART_SIZE));
        assert!(parts.len() <= MAX_PARTS as usize && parts.iter().all(|&(_, len)| len <= MAX_PART_SIZE));
        assert_eq!(parts.iter().map(|&(_, len)| len).sum::<u64>(), size);
        // A 20 GiB video: 80 parts of 256 MiB.
        assert_eq!(part_ranges(20 << 30, part_size_for(20 << 30, COPY_PART_SIZE)).len(), 80);
    }

    #[test]
    fn plans_cover_the_size_exactly_within_s3_rules() {
        for size in [
            1,
            MIN_PART_SIZE,
            DEFAULT_PART_SIZE,
            DEFAULT_PART_SIZE + 1,
            24 * MIB + 3,
            1 << 30,
            80 * (1 << 30),
            5 * (1u64 << 40),
        ] {
            let plan = PartPlan::for_size(size).unwrap();
            assert!(plan.part_count >= 1 && plan.part_count <= MAX_PARTS, "{size}");
            assert!(plan.part_size >= MIN_PART_SIZE && plan.part_size <= MAX_PART_SIZE, "{size}");
            let total: u64 =
                (1..=plan.part_count).map(|n| plan.part_len(PartNumber::new(n.into()).unwrap()).unwrap()).sum();
            assert_eq!(total, size);
            let last = plan.part_len(PartNumber::new(plan.part_count.into()).unwrap()).unwrap();
            assert!(last >= 1 && last <= plan.part_size);
        }
        assert_eq!(PartPlan::for_size(24 * MIB + 3).unwrap().part_count, 4);
        assert_eq!(PartPlan::for_size(80 * (1 << 30)).unwrap().part_size, 9 * MIB);
    }

    #[test]
    fn impossible_sizes_and_parts_are_refused() {
        assert!(PartPlan::for_size(0).is_err());
        assert!(PartPlan::for_size(u64::MAX).is_err());
        let plan = PartPlan::for_size(20 * MIB).unwrap();
        assert!(plan.part_len(PartNumber::new(4).unwrap()).is_err());
        for bad in [0, 10_001, u64::MAX] {
            assert!(matches!(PartNumber::new(bad), Err(CoreError::Invalid { field: "partNumbers", .. })));
        }
    }

    #[test]
    fn upload_ids_cannot_escape_a_path() {
        assert!(UploadId::parse("VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA").is_ok());
        for bad in ["", "a/b", "../x", "a b", "a%2Fb", "a?b", &"x".repeat(1025)] {
            assert!(UploadId::parse(bad).is_err(), "{bad}");
        }
    }
}

/// Where a multipart session is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// Parts may be signed and uploaded.
    Open,
    /// The server completed the upload; `etag` is the object's.
    Completed { etag: String },
    /// Aborted by its owner or for breaking a limit; its reservation is released.
    Aborted,
}

impl SessionState {
    pub fn name(&self) -> &'static str {
        match self {
            SessionState::Open => "OPEN",
            SessionState::Completed { .. } => "COMPLETED",
            SessionState::Aborted => "ABORTED",
        }
    }
}

/// What bounds a session's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionLimit {
    /// The size was declared; the server cut it into parts and signs each part's length.
    Planned(PartPlan),
    /// Uploads under an upload token (Uppy's Companion mode) declare no size: the client picks
    /// its part sizes and the total is checked against this allowance at completion.
    Allowance(u64),
}

/// A multipart upload the server owns: who may continue it, where it goes, how it is cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    pub upload_id: UploadId,
    pub file_id: crate::ids::FileId,
    pub owner: crate::ids::UserId,
    pub key: crate::ids::ObjectKey,
    pub filename: crate::names::DisplayName,
    pub content_type: crate::types::ContentType,
    pub limit: SessionLimit,
    /// The checksum S3 keeps for the object, if the client asked for one at creation.
    pub integrity: Option<crate::checksum::Integrity>,
    /// The digest of the upload token the session was started with, if any.
    pub token: Option<String>,
    pub created_at: time::OffsetDateTime,
    /// After this, no more parts are signed; S3's lifecycle rule aborts the upload.
    pub expires_at: time::OffsetDateTime,
    pub state: SessionState,
}

impl UploadSession {
    /// A new open session of `record`'s upload `upload_id`, cut as `limit`, open from the
    /// record's creation until `expires_at`; no checksum and no token (set them after).
    pub fn open(
        record: &crate::metadata::FileRecord,
        upload_id: UploadId,
        limit: SessionLimit,
        expires_at: time::OffsetDateTime,
    ) -> Self {
        UploadSession {
            upload_id,
            file_id: record.file_id,
            owner: record.owner.clone(),
            key: record.key.clone(),
            filename: record.filename.clone(),
            content_type: record.content_type,
            limit,
            integrity: None,
            token: None,
            created_at: record.created_at,
            expires_at,
            state: SessionState::Open,
        }
    }

    /// Bytes of quota reserved when the session started (released if it is aborted).
    /// Allowance sessions reserve nothing up front; they are charged at completion.
    pub fn reserved_bytes(&self) -> u64 {
        match self.limit {
            SessionLimit::Planned(plan) => plan.size,
            SessionLimit::Allowance(_) => 0,
        }
    }
}

/// One part S3 holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    pub number: PartNumber,
    pub size: u64,
    pub etag: String,
    /// The part's checksum (Base64), when the upload keeps one.
    pub checksum: Option<String>,
}

/// What the parts S3 holds mean for completing the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Every planned part is there and the sizes add up: complete with these parts.
    Ready(Vec<UploadedPart>),
    /// Parts are missing; nothing is wrong yet.
    Missing(Vec<PartNumber>),
    /// More bytes than declared, or a part of the wrong size: the upload must be aborted.
    Oversize { received: u64 },
    /// A part before the last is under S3's [`MIN_PART_SIZE`]: S3 would refuse to complete
    /// (`EntityTooSmall`). Nothing is wrong for good: the part can be sent again.
    Undersized(PartNumber),
}

/// Why a part of an allowance session (an upload token's: its parts have no signed length) is
/// not signed: no completion within the allowance could use it, or the parts already sent hold
/// the whole allowance. Without these, a session's parts could hold any number of bytes,
/// counted nowhere until the session expires (security review 21).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartRefusal {
    /// Past the most parts `max` bytes can have (all but the last at least [`MIN_PART_SIZE`]).
    BeyondAllowance { most: u32 },
    /// The other parts S3 holds already add up to the allowance.
    AllowanceHeld { held: u64 },
}

/// Whether part `part` of a session of at most `max` bytes may be signed, the other parts S3
/// holds adding up to `held` bytes.
pub fn admit_part(max: u64, part: PartNumber, held: u64) -> Result<(), PartRefusal> {
    let most = u32::try_from(max / MIN_PART_SIZE + 1).unwrap_or(MAX_PARTS).min(MAX_PARTS);
    if part.get() > most {
        return Err(PartRefusal::BeyondAllowance { most });
    }
    if held >= max {
        return Err(PartRefusal::AllowanceHeld { held });
    }
    Ok(())
}

/// Checks the parts S3 reports against the session's limit (the server's check before
/// completing).
pub fn check_parts(limit: &SessionLimit, parts: &[UploadedPart]) -> Completion {
    match limit {
        SessionLimit::Planned(plan) => check_planned(plan, parts),
        SessionLimit::Allowance(max) => check_allowance(*max, parts),
    }
}

fn check_allowance(max: u64, parts: &[UploadedPart]) -> Completion {
    let received: u64 = parts.iter().map(|p| p.size).sum();
    if received > max {
        return Completion::Oversize { received };
    }
    let mut ready = parts.to_vec();
    ready.sort_by_key(|p| p.number);
    let last = ready.last().map_or(0, |p| p.number.get());
    let missing: Vec<PartNumber> = (1..=last.max(1))
        .filter_map(|n| PartNumber::new(n.into()).ok())
        .filter(|n| !ready.iter().any(|p| p.number == *n))
        .collect();
    if !missing.is_empty() {
        return Completion::Missing(missing);
    }
    match ready.iter().rev().skip(1).find(|p| p.size < MIN_PART_SIZE) {
        Some(small) => Completion::Undersized(small.number),
        None => Completion::Ready(ready),
    }
}

fn check_planned(plan: &PartPlan, parts: &[UploadedPart]) -> Completion {
    let received: u64 = parts.iter().map(|p| p.size).sum();
    let wrong_size = parts.iter().any(|p| !plan.part_len(p.number).is_ok_and(|len| len == p.size));
    if received > plan.size || wrong_size {
        return Completion::Oversize { received };
    }
    let missing: Vec<PartNumber> = (1..=plan.part_count)
        .filter_map(|n| PartNumber::new(n.into()).ok())
        .filter(|n| !parts.iter().any(|p| p.number == *n))
        .collect();
    if missing.is_empty() {
        let mut ready = parts.to_vec();
        ready.sort_by_key(|p| p.number);
        Completion::Ready(ready)
    } else {
        Completion::Missing(missing)
    }
}

#[cfg(test)]
mod completion_tests {
    use super::*;

    fn part(n: u32, size: u64) -> UploadedPart {
        UploadedPart { number: PartNumber::new(n.into()).unwrap(), size, etag: format!("\"e{n}\""), checksum: None }
    }

    #[test]
    fn complete_only_when_every_part_has_its_planned_size() {
        let plan = PartPlan::for_size(2 * DEFAULT_PART_SIZE + 10).unwrap();
        let full = [part(3, 10), part(1, DEFAULT_PART_SIZE), part(2, DEFAULT_PART_SIZE)];
        match check_parts(&SessionLimit::Planned(plan), &full) {
            Completion::Ready(parts) => assert_eq!(parts.iter().map(|p| p.number.get()).collect::<Vec<_>>(), [1, 2, 3]),
            other => panic!("{other:?}"),
        }
        let planned = SessionLimit::Planned(plan);
        assert_eq!(check_parts(&planned, &full[1..]), Completion::Missing(vec![PartNumber::new(3).unwrap()]));
        assert_eq!(check_parts(&planned, &[part(3, 11)]), Completion::Oversize { received: 11 });
        assert!(matches!(check_parts(&planned, &[part(1, DEFAULT_PART_SIZE - 1)]), Completion::Oversize { .. }));
        assert!(matches!(check_parts(&planned, &[part(4, 1)]), Completion::Oversize { .. }));
    }

    #[test]
    fn allowance_sessions_complete_any_contiguous_parts_within_the_allowance() {
        let limit = SessionLimit::Allowance(11 << 20);
        let five = 5 << 20;
        assert!(matches!(check_parts(&limit, &[part(2, 1), part(1, five)]), Completion::Ready(p) if p.len() == 2));
        assert_eq!(check_parts(&limit, &[part(2, 1)]), Completion::Missing(vec![PartNumber::new(1).unwrap()]));
        assert_eq!(check_parts(&limit, &[]), Completion::Missing(vec![PartNumber::new(1).unwrap()]));
        assert!(matches!(
            check_parts(&limit, &[part(1, five), part(2, five), part(3, five)]),
            Completion::Oversize { .. }
        ));
        // Only the last part may be under S3's minimum (security review 21: S3 refused to
        // complete after the upload was charged).
        assert_eq!(check_parts(&limit, &[part(1, 1), part(2, 1)]), Completion::Undersized(PartNumber::new(1).unwrap()));
        assert_eq!(
            check_parts(&limit, &[part(1, five), part(2, five - 1), part(3, 1)]),
            Completion::Undersized(PartNumber::new(2).unwrap())
        );
        assert!(matches!(check_parts(&limit, &[part(1, 1)]), Completion::Ready(p) if p.len() == 1));
    }

    #[test]
    fn an_allowance_session_signs_only_parts_a_completion_within_it_could_use() {
        let n = |n: u64| PartNumber::new(n).unwrap();
        let eleven = 11 << 20;
        // 11 MiB: at most 5 + 5 + 1, so three parts.
        assert_eq!(admit_part(eleven, n(3), 0), Ok(()));
        assert_eq!(admit_part(eleven, n(4), 0), Err(PartRefusal::BeyondAllowance { most: 3 }));
        assert_eq!(admit_part(eleven, n(1), eleven - 1), Ok(()));
        assert_eq!(admit_part(eleven, n(2), eleven), Err(PartRefusal::AllowanceHeld { held: eleven }));
        assert_eq!(admit_part(1, n(1), 0), Ok(()));
        assert_eq!(admit_part(u64::MAX, n(10_000), 0), Ok(()));
    }
}
