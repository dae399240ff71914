//! Identifiers: parsed once at the edge, trusted everywhere after.

use std::fmt;

use crate::error::CoreError;
use crate::names::SafeName;

/// The caller's identity: the `sub` claim the authorizer vouched for.
///
/// It becomes a key segment, so it is restricted to characters that are safe in an S3 key
/// and in a DynamoDB key: letters, digits and `- _ . : | @ +` (Cognito subs are UUIDs,
/// Auth0 subs look like `auth0|abc`), 1 to 128 characters, and never `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_.:|@+".contains(c);
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(CoreError::invalid("sub", "must be 1 to 128 characters"));
        }
        if !raw.chars().all(ok_char) || raw == "." || raw == ".." {
            return Err(CoreError::invalid("sub", "contains characters not allowed in a user id"));
        }
        Ok(UserId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An id this crate built from allowed characters only.
    pub(crate) fn from_trusted(raw: String) -> Self {
        UserId(raw)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A file's id: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(uuid::Uuid);

impl FileId {
    /// A new id for a file created at `unix_ms` with `random` bits (UUIDv7 layout).
    pub fn new(unix_ms: u64, random: [u8; 10]) -> Self {
        FileId(uuid::Builder::from_unix_timestamp_millis(unix_ms, &random).into_uuid())
    }

    /// Parses the canonical hyphenated lower-case form only, so one file has one spelling.
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        let id = uuid::Uuid::try_parse(raw).map_err(|_| CoreError::invalid("fileId", "is not a file id"))?;
        if id.hyphenated().to_string() != raw || id.get_version_num() != 7 {
            return Err(CoreError::invalid("fileId", "is not a file id"));
        }
        Ok(FileId(id))
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A key in the platform bucket. Only built from parsed parts, so it never holds `..`,
/// an empty segment or a control character.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// `users/{sub}/{fileId}/{safeName}`: where a user's original lives.
    pub fn original(user: &UserId, file: FileId, name: &SafeName) -> Self {
        ObjectKey(format!("users/{user}/{file}/{}", name.as_str()))
    }

    /// The prefix under which every object of `user` lives.
    pub fn user_prefix(user: &UserId) -> String {
        format!("users/{user}/")
    }

    /// Trusts a key read back from our own metadata table (or set in our own configuration).
    pub fn from_stored(raw: String) -> Self {
        ObjectKey(raw)
    }

    /// A key another part of this crate checked or built (a transform's source, its result).
    pub(crate) fn checked(raw: String) -> Self {
        ObjectKey(raw)
    }

    /// The file id in a key of the shape `users/{sub}/{fileId}/{name}`, if it has that shape.
    pub fn file_id_of(key: &str) -> Option<FileId> {
        let mut parts = key.splitn(4, '/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("users"), Some(_), Some(id), Some(name)) if !name.is_empty() => FileId::parse(id).ok(),
            _ => None,
        }
    }

    /// The user in a key of the shape `users/{sub}/...`, if it has that shape.
    pub fn owner_of(key: &str) -> Option<UserId> {
        UserId::parse(key.strip_prefix("users/")?.split('/').next()?).ok()
    }

    /// `derived/{fileId}/`: where the thumbnailer writes a file's variants.
    pub fn derived_prefix(file: FileId) -> String {
        format!("derived/{file}/")
    }

    /// `derived/{fileId}/{width}.{ext}`: one variant.
    pub fn variant(file: FileId, width: u32, extension: &str) -> Self {
        ObjectKey(format!("derived/{file}/{width}.{extension}"))
    }

    /// `p/{fileId}/`: the public copies of a file, which the files CDN serves unsigned
    /// (`/p/{fileId}/...`); they exist only while the file is public.
    pub fn public_prefix(file: FileId) -> String {
        format!("p/{file}/")
    }

    /// The public copy of this original or variant: `users/{sub}/{fileId}/{name}` becomes
    /// `p/{fileId}/original/{name}`, `derived/{fileId}/{width}.{ext}` becomes
    /// `p/{fileId}/{width}.{ext}`. `None` for a key of another shape.
    pub fn public_copy(&self) -> Option<ObjectKey> {
        if let Some(file) = ObjectKey::file_id_of(&self.0) {
            let name = self.0.splitn(4, '/').nth(3)?;
            return Some(ObjectKey(format!("p/{file}/original/{name}")));
        }
        let rest = self.0.strip_prefix("derived/")?;
        let (file, name) = rest.split_once('/')?;
        FileId::parse(file).ok()?;
        (!name.is_empty() && !name.contains('/')).then(|| ObjectKey(format!("p/{rest}")))
    }

    /// `exports/{sub}/{exportId}.zip`: a GDPR export's archive.
    pub fn export_archive(user: &UserId, export_id: &str) -> Self {
        ObjectKey(format!("exports/{user}/{export_id}.zip"))
    }

    /// `quarantine/{original key}`: where a file that is not what it claims is kept, out of
    /// its owner's and the CDN's reach.
    pub fn quarantined(original: &str) -> Self {
        ObjectKey(format!("quarantine/{original}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SHA-256 digest; accepted as 64 hex digits or as standard Base64 (S3's form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256([u8; 32]);

impl Sha256 {
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        use base64::Engine as _;
        let bad = || CoreError::invalid("sha256", "must be 64 hex digits or the Base64 of 32 bytes");
        let bytes = if raw.len() == 64 {
            hex::decode(raw).map_err(|_| bad())?
        } else {
            base64::engine::general_purpose::STANDARD.decode(raw).map_err(|_| bad())?
        };
        let arr: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Ok(Sha256(arr))
    }

    /// A digest computed elsewhere (e.g. incrementally while streaming).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Sha256(bytes)
    }

    pub fn of(bytes: &[u8]) -> Self {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Sha256(out)
    }

    /// The form S3 wants in `x-amz-checksum-sha256`.
    pub fn to_base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The subjects of a comma-separated `ADMIN_USERS` (blanks ignored): the administrators.
pub fn parse_admins(list: &str) -> std::collections::BTreeSet<String> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_of_a_key_is_its_user_segment_in_the_user_layout_only() {
        let owner = |k: &str| ObjectKey::owner_of(k).map(|u| u.to_string());
        assert_eq!(owner("users/alice-123/0190a0b0/x.jpg").as_deref(), Some("alice-123"));
        assert_eq!(owner("users/alice-123/").as_deref(), Some("alice-123"));
        for other in ["derived/0190a0b0/320.webp", "users/", "users/../x", "results/users/alice/x", "alice"] {
            assert_eq!(owner(other), None, "{other}");
        }
    }

    #[test]
    fn user_ids_refuse_path_tricks() {
        for bad in ["", ".", "..", "a/b", "a b", "ä", "a\u{0}b", &"x".repeat(129)] {
            assert!(UserId::parse(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["demo-user", "auth0|abc", "4f1c2d3e-aaaa-bbbb-cccc-123456789012", "a.b@c"] {
            assert_eq!(UserId::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn file_ids_round_trip_and_reject_other_spellings() {
        let id = FileId::new(1_700_000_000_000, [7; 10]);
        let text = id.to_string();
        assert_eq!(FileId::parse(&text).unwrap(), id);
        assert!(FileId::parse(&text.to_uppercase()).is_err());
        assert!(FileId::parse(&text.replace('-', "")).is_err());
        assert!(FileId::parse("../../etc/passwd").is_err());
        // a v4 UUID is not one of ours
        assert!(FileId::parse("9b2f0b7e-3c1a-4d5e-8f60-1a2b3c4d5e6f").is_err());
    }

    #[test]
    fn public_copies_keep_the_name_under_the_file_id_only() {
        let id = FileId::new(1_700_000_000_000, [7; 10]);
        let user = UserId::parse("auth0|abc").unwrap();
        let original = ObjectKey::original(
            &user,
            id,
            &SafeName::from_display(&crate::names::DisplayName::parse("Straße (1).jpg").unwrap()),
        );
        assert_eq!(original.public_copy().unwrap().as_str(), format!("p/{id}/original/Straße (1).jpg"));
        assert_eq!(ObjectKey::variant(id, 640, "webp").public_copy().unwrap().as_str(), format!("p/{id}/640.webp"));
        assert!(original.public_copy().unwrap().as_str().starts_with(&ObjectKey::public_prefix(id)));
        for other in [
            ObjectKey::export_archive(&user, "e1"),
            ObjectKey::quarantined(original.as_str()),
            ObjectKey::from_stored(format!("derived/{id}/")),
            ObjectKey::from_stored("derived/not-an-id/640.webp".into()),
            ObjectKey::from_stored(format!("results/users/u/{id}/a.jpg/e1/w:1.webp")),
        ] {
            assert_eq!(other.public_copy(), None, "{other:?}");
        }
    }

    #[test]
    fn file_ids_sort_by_time() {
        let a = FileId::new(1_000, [255; 10]);
        let b = FileId::new(2_000, [0; 10]);
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn sha256_accepts_hex_and_base64_of_the_same_digest() {
        let d = Sha256::of(b"abc");
        assert_eq!(d.to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(Sha256::parse(&d.to_hex()).unwrap(), d);
        assert_eq!(Sha256::parse(&d.to_base64()).unwrap(), d);
        assert!(Sha256::parse("abc").is_err());
        assert!(Sha256::parse(&"g".repeat(64)).is_err());
    }
}
