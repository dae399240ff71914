//! Upload tokens: short-lived, revocable capabilities that let an uploader without an
//! `Authorization` header (Uppy's Companion mode) upload for one user, within a byte
//! allowance and a list of types.
//!
//! The token is 32 random bytes, Base64url. Only its SHA-256 is stored and logged, so the
//! table and the logs never hold a usable token.

use std::time::Duration;

use base64::Engine as _;

use crate::error::CoreError;
use crate::ids::Sha256;

/// How long an upload token works (`UPLOAD_TOKEN_TTL_SECONDS`).
pub const DEFAULT_UPLOAD_TOKEN_TTL: Duration = Duration::from_secs(60 * 60);
/// The allowance of a token minted without `maxBytes`.
pub const DEFAULT_UPLOAD_TOKEN_MAX_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// Longest lifetime a caller may ask for.
pub const MAX_UPLOAD_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// A bearer secret as the platform hands them out: 32 random bytes in Base64url (43
/// characters), stored and logged only as its SHA-256. Upload tokens and connect tickets
/// (`live::Ticket`) are made of it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn from_random(bytes: [u8; 32]) -> Self {
        Secret(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Exactly 43 Base64url characters of 32 bytes; `None` for anything else.
    pub(crate) fn parse(raw: &str) -> Option<Self> {
        if raw.len() != 43 {
            return None;
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw).ok()?;
        (bytes.len() == 32).then(|| Secret(raw.to_owned()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Hex SHA-256: what is stored and logged instead.
    pub(crate) fn digest(&self) -> String {
        Sha256::of(self.0.as_bytes()).to_hex()
    }
}

/// A token as the uploader presents it.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadToken(Secret);

impl std::fmt::Debug for UploadToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UploadToken({})", &self.digest()[..12])
    }
}

impl UploadToken {
    /// A new token from 32 random bytes.
    pub fn from_random(bytes: [u8; 32]) -> Self {
        UploadToken(Secret::from_random(bytes))
    }

    /// Parses a presented token: exactly 43 Base64url characters.
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        Secret::parse(raw).map(UploadToken).ok_or_else(|| CoreError::invalid("token", "is not an upload token"))
    }

    /// The secret itself: only for handing to the uploader, never for storing or logging.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// What is stored and logged instead of the token (hex SHA-256).
    pub fn digest(&self) -> String {
        self.0.digest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_never_show_themselves() {
        let t = UploadToken::from_random([7; 32]);
        assert_eq!(t.expose().len(), 43);
        assert_eq!(UploadToken::parse(t.expose()).unwrap(), t);
        let shown = format!("{t:?}");
        assert!(!shown.contains(t.expose()) && shown.contains(&t.digest()[..12]));
        assert_ne!(t.digest(), UploadToken::from_random([8; 32]).digest());
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}=", &t.expose()[..42]),
            "../../../../../../../../../../../../../../etc",
        ] {
            assert!(UploadToken::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_type_listed_twice_is_refused() {
        use crate::types::ContentType;
        let [jpeg, png] = ["image/jpeg", "image/png"].map(|t| ContentType::parse(t).unwrap());
        assert!(check_distinct_types(&[]).is_ok());
        assert!(check_distinct_types(&[jpeg, png]).is_ok());
        let again = ContentType::parse("IMAGE/JPEG; q=1").unwrap();
        let err = check_distinct_types(&[jpeg, png, again]).unwrap_err();
        assert!(matches!(err, CoreError::Invalid { field: "types", .. }), "{err}");
    }
}

/// What a token allows, as stored (under the token's digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub digest: String,
    pub owner: crate::ids::UserId,
    /// Bytes the token may upload in all.
    pub max_bytes: u64,
    /// Bytes completed uploads have charged to it.
    pub used_bytes: u64,
    /// Content types it may upload; empty means every allowed type.
    pub types: Vec<crate::types::ContentType>,
    pub expires_at: time::OffsetDateTime,
    pub revoked: bool,
    /// The visibility, tags and metadata of every file uploaded with it.
    pub labels: crate::labels::Labels,
}

impl TokenGrant {
    /// Whether the token may be used at `now`.
    pub fn usable(&self, now: time::OffsetDateTime) -> bool {
        !self.revoked && now < self.expires_at
    }

    pub fn remaining(&self) -> u64 {
        self.max_bytes.saturating_sub(self.used_bytes)
    }

    /// Checks a content type against the token's list.
    pub fn check_type(&self, content_type: crate::types::ContentType) -> Result<(), CoreError> {
        if self.types.is_empty() || self.types.contains(&content_type) {
            Ok(())
        } else {
            Err(CoreError::TypeNotAllowed(content_type.as_str().to_owned()))
        }
    }
}

/// Refuses a token's list of types that names a type twice (also in another spelling, such as
/// `image/JPEG`): refused rather than folded, so the caller learns that its list was wrong.
pub fn check_distinct_types(types: &[crate::types::ContentType]) -> Result<(), CoreError> {
    match types.iter().enumerate().find(|(i, t)| types[..*i].contains(t)) {
        Some((_, t)) => Err(CoreError::invalid("types", format!("lists {} more than once", t.as_str()))),
        None => Ok(()),
    }
}
