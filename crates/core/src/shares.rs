//! Share links: a signed, expiring token naming one share of one file.
//!
//! The token is Base64url of `share id (16 random bytes) || expiry (Unix seconds, 8 bytes) ||
//! HMAC-SHA256(key, id || expiry) truncated to 16 bytes`. A forged, altered or expired token is
//! refused before anything is read; the share's row (revocation, download count) decides the
//! rest. The row keeps the id and expiry, so the owner's list can show the link again, but
//! without the key neither the table nor the logs can make one.

use std::time::Duration;

use aws_lc_rs::{constant_time, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;

use crate::error::CoreError;
use crate::ids::{FileId, UserId};

/// How long a share link works when the owner does not say (`expiresIn`, seconds).
pub const DEFAULT_SHARE_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The shortest and the longest lifetime an owner may ask for.
pub const MIN_SHARE_TTL: Duration = Duration::from_secs(60);
pub const MAX_SHARE_TTL: Duration = Duration::from_secs(90 * 24 * 60 * 60);
/// The most downloads one link may allow (`maxDownloads`; unlimited when not given).
pub const MAX_SHARE_DOWNLOADS: u64 = 100_000;
/// How long the presigned GET a link redirects to stays usable (`SHARE_REDIRECT_TTL_SECONDS`):
/// also how long a revoked link's last redirects keep working.
pub const DEFAULT_SHARE_REDIRECT_TTL: Duration = Duration::from_secs(60);
/// The smallest signing key accepted (the secret `SHARE_SIGNING_SECRET_ID` names, Base64).
pub const MIN_SHARE_KEY_BYTES: usize = 32;

const ID_BYTES: usize = 16;
const MAC_BYTES: usize = 16;
const TOKEN_BYTES: usize = ID_BYTES + 8 + MAC_BYTES;

/// A share's id: 16 random bytes, hex in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShareId([u8; ID_BYTES]);

impl ShareId {
    pub fn from_random(bytes: [u8; ID_BYTES]) -> Self {
        ShareId(bytes)
    }

    pub fn parse(hex_id: &str) -> Result<Self, CoreError> {
        let bytes = hex::decode(hex_id).map_err(|_| CoreError::invalid("share", "is not a share id"))?;
        Ok(ShareId(bytes.try_into().map_err(|_| CoreError::invalid("share", "is not a share id"))?))
    }
}

impl std::fmt::Display for ShareId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The key share tokens are signed with.
#[derive(Clone)]
pub struct ShareKey(hmac::Key);

impl std::fmt::Debug for ShareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShareKey(..)")
    }
}

impl ShareKey {
    /// From the setting's Base64 (standard or URL-safe); at least [`MIN_SHARE_KEY_BYTES`].
    pub fn parse(base64_key: &str) -> Result<Self, CoreError> {
        let raw = base64_key.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .or_else(|_| URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')))
            .map_err(|_| CoreError::invalid("SHARE_SIGNING_SECRET_ID", "the secret is not Base64"))?;
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CoreError> {
        if bytes.len() < MIN_SHARE_KEY_BYTES {
            return Err(CoreError::invalid(
                "SHARE_SIGNING_SECRET_ID",
                format!("needs at least {MIN_SHARE_KEY_BYTES} bytes, has {}", bytes.len()),
            ));
        }
        Ok(ShareKey(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
    }

    fn mac(&self, id: &ShareId, expires: i64) -> [u8; MAC_BYTES] {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(&id.0);
        ctx.update(&expires.to_be_bytes());
        let tag = ctx.sign();
        let mut out = [0u8; MAC_BYTES];
        out.copy_from_slice(&tag.as_ref()[..MAC_BYTES]);
        out
    }

    /// The link token of share `id`, working until `expires_at` (whole seconds).
    pub fn token(&self, id: &ShareId, expires_at: OffsetDateTime) -> String {
        let expires = expires_at.unix_timestamp();
        let mut bytes = Vec::with_capacity(TOKEN_BYTES);
        bytes.extend_from_slice(&id.0);
        bytes.extend_from_slice(&expires.to_be_bytes());
        bytes.extend_from_slice(&self.mac(id, expires));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The share a token names and when it expires, if this key signed it (expired or not).
    pub fn open(&self, token: &str) -> Result<(ShareId, OffsetDateTime), ShareRefusal> {
        if token.len() > 2 * TOKEN_BYTES {
            return Err(ShareRefusal::Unknown);
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| ShareRefusal::Unknown)?;
        if bytes.len() != TOKEN_BYTES {
            return Err(ShareRefusal::Unknown);
        }
        let mut id = [0u8; ID_BYTES];
        id.copy_from_slice(&bytes[..ID_BYTES]);
        let id = ShareId(id);
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&bytes[ID_BYTES..ID_BYTES + 8]);
        let expires = i64::from_be_bytes(exp);
        constant_time::verify_slices_are_equal(&self.mac(&id, expires), &bytes[ID_BYTES + 8..])
            .map_err(|_| ShareRefusal::Unknown)?;
        let at = OffsetDateTime::from_unix_timestamp(expires).map_err(|_| ShareRefusal::Unknown)?;
        Ok((id, at))
    }
}

/// Whether a link that works until `expires_at` has expired at `now` (at the instant itself, it
/// has).
pub fn is_expired(expires_at: OffsetDateTime, now: OffsetDateTime) -> bool {
    now >= expires_at
}

/// A share link as stored: which file, whose, until when, how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub id: ShareId,
    pub file_id: FileId,
    pub owner: UserId,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub max_downloads: Option<u64>,
    pub downloads: u64,
    pub revoked: bool,
}

/// Why a share link does not download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareRefusal {
    /// Not a token this platform signed (or no such share): nothing is revealed.
    Unknown,
    Expired,
    Revoked,
    /// Its download allowance is used up.
    Exhausted,
    /// The file was deleted.
    FileGone,
}

/// What an owner asks for a new link: its lifetime and download allowance, checked.
pub fn share_terms(expires_in: Option<u64>, max_downloads: Option<u64>) -> Result<(Duration, Option<u64>), CoreError> {
    let ttl = expires_in.map(Duration::from_secs).unwrap_or(DEFAULT_SHARE_TTL);
    if !(MIN_SHARE_TTL..=MAX_SHARE_TTL).contains(&ttl) {
        return Err(CoreError::invalid(
            "expiresIn",
            format!("give {} to {} seconds", MIN_SHARE_TTL.as_secs(), MAX_SHARE_TTL.as_secs()),
        ));
    }
    if let Some(n) = max_downloads
        && !(1..=MAX_SHARE_DOWNLOADS).contains(&n)
    {
        return Err(CoreError::invalid("maxDownloads", format!("give 1 to {MAX_SHARE_DOWNLOADS}")));
    }
    Ok((ttl, max_downloads))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn key(byte: u8) -> ShareKey {
        ShareKey::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn tokens_open_with_their_key_until_they_expire() {
        let id = ShareId::from_random([7; 16]);
        let exp = datetime!(2026-03-01 12:00 UTC);
        let token = key(1).token(&id, exp);
        assert_eq!(key(1).open(&token), Ok((id, exp)));
        assert!(!is_expired(exp, exp - time::Duration::seconds(1)));
        assert!(is_expired(exp, exp));
        assert_eq!(key(2).open(&token), Err(ShareRefusal::Unknown), "another key");
        assert_eq!(key(1).token(&id, exp), token, "the owner's list can show the same link again");
    }

    #[test]
    fn altered_or_malformed_tokens_are_unknown() {
        let id = ShareId::from_random([7; 16]);
        let token = key(1).token(&id, datetime!(2026-03-01 12:00 UTC));
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        // A later expiry with the old signature.
        bytes[ID_BYTES + 7] ^= 1;
        assert_eq!(key(1).open(&URL_SAFE_NO_PAD.encode(&bytes)), Err(ShareRefusal::Unknown));
        for raw in ["", "abc", "!!!!", &"A".repeat(54), &"A".repeat(500)] {
            assert_eq!(key(1).open(raw), Err(ShareRefusal::Unknown), "{raw}");
        }
    }

    #[test]
    fn keys_and_terms_have_named_bounds() {
        assert!(ShareKey::parse(&base64::engine::general_purpose::STANDARD.encode([1u8; 16])).is_err());
        assert!(ShareKey::parse(&base64::engine::general_purpose::STANDARD.encode([1u8; 32])).is_ok());
        assert!(ShareKey::parse("not base64 at all!").is_err());
        assert_eq!(share_terms(None, None).unwrap(), (DEFAULT_SHARE_TTL, None));
        assert!(share_terms(Some(59), None).is_err());
        assert!(share_terms(Some(MAX_SHARE_TTL.as_secs() + 1), None).is_err());
        assert!(share_terms(None, Some(0)).is_err());
        assert_eq!(share_terms(Some(3600), Some(3)).unwrap(), (Duration::from_secs(3600), Some(3)));
    }
}
