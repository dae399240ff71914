//! The rule of a delta plan (`migrate plan --since RUN`, issue 19 part 5): what the runs before
//! recorded of a legacy file, against what the source lists now, decides whether the file is
//! read again. A cutover's last sync runs while the legacy system is frozen, so only what
//! changed is read, hashed and copied.

use serde::{Deserialize, Serialize};

/// What the newest run of the chain recorded of a legacy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    pub key: String,
    pub size: u64,
    pub mtime_ms: i64,
    /// The change token listed then (inode and change time, an ETag); empty when none was.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub change: String,
    pub sha256: String,
    /// The run copied it: S3 holds these bytes under `key`.
    pub copied: bool,
    /// The run that copied the bytes.
    pub run: String,
}

/// What a delta plan does with a listed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Listed as it was when copied (size, modification time and change token): not read.
    Unchanged,
    /// Listed otherwise, or copied before change tokens were recorded: read and hashed again,
    /// and copied only when its bytes differ ([`Known::sha256`]), under the key of a new
    /// generation ([`generation`]).
    Changed,
    /// The chain never copied it (it failed, or its run was not finished): copied under the
    /// key it was given.
    Uncopied,
    /// No run of the chain listed it.
    New,
}

/// The verdict on a file listed with `size`, `mtime_ms` and `change`.
///
/// A rewrite that keeps size and modification time still changes the token (a file's change
/// time, an S3 or HTTP ETag), so it is caught; without a token on both sides nothing proves a
/// file unchanged, and it is read again.
pub fn verdict(known: Option<&Known>, size: u64, mtime_ms: i64, change: &str) -> Verdict {
    match known {
        None => Verdict::New,
        Some(k) if !k.copied => Verdict::Uncopied,
        Some(k) if k.size == size && k.mtime_ms == mtime_ms && !change.is_empty() && k.change == change => {
            Verdict::Unchanged
        }
        Some(_) => Verdict::Changed,
    }
}

/// The generation a changed file's new key is made from: its change token, or its size and
/// modification time where the source has none.
pub fn generation(size: u64, mtime_ms: i64, change: &str) -> String {
    if change.is_empty() { format!("{size}:{mtime_ms}") } else { change.to_owned() }
}

/// Whether the bytes read now are the ones the chain copied (a `touch`, a `chmod`, a copy
/// over itself): such a file is not copied again.
pub fn same_bytes(known: &Known, size: u64, sha256: &str) -> bool {
    known.copied && known.size == size && !sha256.is_empty() && known.sha256 == sha256
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Known {
        Known {
            key: "users/u1/a.jpg".into(),
            size: 10,
            mtime_ms: 1_000,
            change: "12:1700000000000000000".into(),
            sha256: "ab".repeat(32),
            copied: true,
            run: "r20261205t000000-00000001".into(),
        }
    }

    #[test]
    fn a_file_listed_as_copied_is_not_read() {
        assert_eq!(verdict(Some(&known()), 10, 1_000, "12:1700000000000000000"), Verdict::Unchanged);
    }

    #[test]
    fn a_rewrite_keeping_size_and_mtime_is_caught_by_its_token() {
        assert_eq!(verdict(Some(&known()), 10, 1_000, "12:1700000000500000000"), Verdict::Changed);
        // Another inode: a file replaced by a rename.
        assert_eq!(verdict(Some(&known()), 10, 1_000, "13:1700000000000000000"), Verdict::Changed);
    }

    #[test]
    fn size_or_mtime_differing_is_a_change() {
        assert_eq!(verdict(Some(&known()), 11, 1_000, "12:1700000000000000000"), Verdict::Changed);
        assert_eq!(verdict(Some(&known()), 10, 1_001, "12:1700000000000000000"), Verdict::Changed);
    }

    #[test]
    fn without_a_token_nothing_proves_a_file_unchanged() {
        let mut old = known();
        old.change.clear();
        assert_eq!(verdict(Some(&old), 10, 1_000, "12:1700000000000000000"), Verdict::Changed);
        assert_eq!(verdict(Some(&old), 10, 1_000, ""), Verdict::Changed);
        assert_eq!(verdict(Some(&known()), 10, 1_000, ""), Verdict::Changed);
    }

    #[test]
    fn uncopied_and_new_files_are_copied() {
        let mut failed = known();
        failed.copied = false;
        assert_eq!(verdict(Some(&failed), 10, 1_000, "12:1700000000000000000"), Verdict::Uncopied);
        assert_eq!(verdict(None, 10, 1_000, "12:1700000000000000000"), Verdict::New);
    }

    #[test]
    fn a_generation_is_the_token_or_size_and_mtime() {
        assert_eq!(generation(10, 1_000, "12:17"), "12:17");
        assert_eq!(generation(10, 1_000, ""), "10:1000");
    }

    #[test]
    fn same_bytes_needs_the_copied_hash() {
        let k = known();
        assert!(same_bytes(&k, 10, &"ab".repeat(32)));
        assert!(!same_bytes(&k, 10, &"cd".repeat(32)));
        assert!(!same_bytes(&k, 11, &"ab".repeat(32)));
        assert!(!same_bytes(&k, 10, ""));
        let mut failed = k.clone();
        failed.copied = false;
        assert!(!same_bytes(&failed, 10, &"ab".repeat(32)));
    }
}
