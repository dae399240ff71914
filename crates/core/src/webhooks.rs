//! Signed webhooks to the app's backend (issue 20, DECISIONS 36), in the Standard Webhooks
//! scheme, so receivers can verify with an existing library (`standardwebhooks` on PyPI and
//! npm, or the README's dozen lines):
//!
//! - `webhook-id`: the message's id, the same on every attempt (the receiver's idempotency key);
//! - `webhook-timestamp`: Unix seconds of this attempt;
//! - `webhook-signature`: `v1,<Base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, several
//!   space-separated while an endpoint's secret is rotated (old and new both sign).
//!
//! Secrets are `whsec_` + Base64 of 24 to 64 random bytes. Pure: signing and verification, no
//! clock and no I/O (the caller passes the time).

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::CoreError;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// What a secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";
/// A secret's key length, in bytes: at least 24 (192 bits), at most 64 (SHA-256's block).
pub const MIN_SECRET_BYTES: usize = 24;
pub const MAX_SECRET_BYTES: usize = 64;
/// How far a delivery's timestamp may lie from the receiver's clock, either way: older is a
/// replay, newer a forgery or a broken clock (the scheme's recommended 5 minutes).
pub const TOLERANCE_SECONDS: i64 = 300;
/// The signature scheme's version.
const VERSION: &str = "v1";
/// Attempts a delivery gets before it waits in the dead-letter queue (the webhook queue's
/// `maxReceiveCount`).
pub const MAX_ATTEMPTS: u32 = 8;
/// Seconds before the attempt after the n-th failed one (n = 1, 2, ...; the last repeats):
/// about 3.5 hours from the first attempt to the last, within SQS's 12-hour visibility limit.
pub const RETRY_DELAYS_SECONDS: [i32; 7] = [5, 30, 120, 600, 1800, 3600, 7200];
/// How long one attempt may take (connect, send, the receiver's answer).
pub const ATTEMPT_TIMEOUT_SECONDS: u64 = 10;

/// The wait before the next attempt, after `failed` attempts failed (1 after the first).
pub fn retry_delay(failed: u32) -> i32 {
    delay_after(&RETRY_DELAYS_SECONDS, failed)
}

/// The wait after `failed` failed attempts in `schedule` (its last entry repeats; 0 if empty).
pub fn delay_after(schedule: &[i32], failed: u32) -> i32 {
    let i = usize::try_from(failed.max(1) - 1).unwrap_or(usize::MAX);
    schedule.get(i).or(schedule.last()).copied().unwrap_or(0)
}

/// Whether the receiver took the delivery: any 2xx. Anything else (a 4xx included: a
/// misconfigured receiver is fixed and then catches up) is tried again.
pub fn accepted(status: u16) -> bool {
    (200..300).contains(&status)
}

/// What a message id may be: 1 to 128 visible ASCII characters, no space (it goes in a header
/// and into the signed content, and it is the receiver's idempotency key).
pub fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// An endpoint's signing secret. Its bytes are never printed.
#[derive(Clone)]
pub struct WebhookSecret(hmac::Key, usize);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecret({} bytes, redacted)", self.1)
    }
}

impl WebhookSecret {
    /// `whsec_<Base64>` (the prefix may be left out), 24 to 64 bytes once decoded.
    pub fn parse(raw: &str) -> Result<WebhookSecret, CoreError> {
        let encoded = raw.trim().strip_prefix(SECRET_PREFIX).unwrap_or(raw.trim());
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| CoreError::invalid("secret", "a webhook secret is whsec_ followed by Base64"))?;
        WebhookSecret::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<WebhookSecret, CoreError> {
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
            return Err(CoreError::invalid(
                "secret",
                format!(
                    "a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, this one {}",
                    bytes.len()
                ),
            ));
        }
        Ok(WebhookSecret(hmac::Key::new(hmac::HMAC_SHA256, bytes), bytes.len()))
    }

    /// The text form of a secret made of `bytes` (`whsec_...`), to hand to the receiver.
    pub fn encode(bytes: &[u8]) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
    }
}

/// The three headers of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
}

impl Signed {
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            (HEADER_ID, self.id.clone()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_SIGNATURE, self.signature.clone()),
        ]
    }
}

fn content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(id.len() + 24 + body.len());
    c.extend_from_slice(id.as_bytes());
    c.push(b'.');
    c.extend_from_slice(timestamp.to_string().as_bytes());
    c.push(b'.');
    c.extend_from_slice(body);
    c
}

/// Signs message `id`'s `body` for an attempt at `timestamp`, with every secret the endpoint
/// has (one; two while it is rotated).
pub fn sign(secrets: &[WebhookSecret], id: &str, timestamp: i64, body: &[u8]) -> Signed {
    let content = content(id, timestamp, body);
    let signature = secrets
        .iter()
        .map(|s| format!("{VERSION},{}", STANDARD.encode(hmac::sign(&s.0, &content).as_ref())))
        .collect::<Vec<_>>()
        .join(" ");
    Signed { id: id.to_owned(), timestamp, signature }
}

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not Unix seconds")]
    BadTimestamp,
    #[error("the delivery is more than {TOLERANCE_SECONDS} s old (a replay?)")]
    TooOld,
    #[error("the delivery is more than {TOLERANCE_SECONDS} s in the future")]
    TooNew,
    #[error("no signature matches the body")]
    NoMatch,
}

/// Verifies a delivery as a receiver would: the headers (`None` when absent), the raw body,
/// the receiver's clock (Unix seconds) and its secret(s).
pub fn verify(
    secrets: &[WebhookSecret],
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Rejected> {
    let id = id.filter(|v| !v.is_empty()).ok_or(Rejected::MissingHeader(HEADER_ID))?;
    let timestamp = timestamp.filter(|v| !v.is_empty()).ok_or(Rejected::MissingHeader(HEADER_TIMESTAMP))?;
    let signature = signature.filter(|v| !v.is_empty()).ok_or(Rejected::MissingHeader(HEADER_SIGNATURE))?;
    let at: i64 = timestamp.parse().map_err(|_| Rejected::BadTimestamp)?;
    if at < now - TOLERANCE_SECONDS {
        return Err(Rejected::TooOld);
    }
    if at > now + TOLERANCE_SECONDS {
        return Err(Rejected::TooNew);
    }
    let content = content(id, at, body);
    let matches = signature.split(' ').filter_map(|s| s.strip_prefix("v1,")).any(|b64| {
        STANDARD.decode(b64).is_ok_and(|tag| secrets.iter().any(|k| hmac::verify(&k.0, &content, &tag).is_ok()))
    });
    if matches { Ok(()) } else { Err(Rejected::NoMatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors made with the `standardwebhooks` Python library (an independent implementation of
    /// the scheme): `tests/webhooks/vectors.json`, which the receiver snippet's test reads too.
    #[derive(serde::Deserialize)]
    struct Vector {
        secret: String,
        id: String,
        timestamp: i64,
        body: String,
        signature: String,
    }

    fn vectors() -> Vec<Vector> {
        serde_json::from_str(include_str!("../../../tests/webhooks/vectors.json")).unwrap()
    }

    #[test]
    fn signatures_match_an_independent_implementation() {
        let all = vectors();
        assert!(all.len() >= 3);
        for v in all {
            let secret = WebhookSecret::parse(&v.secret).unwrap();
            let signed = sign(std::slice::from_ref(&secret), &v.id, v.timestamp, v.body.as_bytes());
            assert_eq!(signed.signature, v.signature, "{}", v.id);
            let (id, sig) = (Some(v.id.as_str()), Some(v.signature.as_str()));
            let ts = v.timestamp.to_string();
            assert_eq!(verify(&[secret], id, Some(&ts), sig, v.body.as_bytes(), v.timestamp + 10), Ok(()));
        }
    }

    fn secret(fill: u8) -> WebhookSecret {
        WebhookSecret::from_bytes(&[fill; 32]).unwrap()
    }

    #[test]
    fn a_tampered_body_an_old_or_future_timestamp_or_another_secret_fail() {
        let k = secret(7);
        let body = br#"{"type":"file.ready","version":1}"#;
        let s = sign(std::slice::from_ref(&k), "msg_1", 1_800_000_000, body);
        let ts = s.timestamp.to_string();
        let check = |secrets: &[WebhookSecret], body: &[u8], now: i64| {
            verify(secrets, Some(&s.id), Some(&ts), Some(&s.signature), body, now)
        };
        assert_eq!(check(std::slice::from_ref(&k), body, s.timestamp), Ok(()));
        assert_eq!(
            check(std::slice::from_ref(&k), br#"{"type":"file.ready","version":2}"#, s.timestamp),
            Err(Rejected::NoMatch)
        );
        assert_eq!(check(&[secret(8)], body, s.timestamp), Err(Rejected::NoMatch));
        assert_eq!(check(std::slice::from_ref(&k), body, s.timestamp + TOLERANCE_SECONDS), Ok(()));
        assert_eq!(check(std::slice::from_ref(&k), body, s.timestamp + TOLERANCE_SECONDS + 1), Err(Rejected::TooOld));
        assert_eq!(check(std::slice::from_ref(&k), body, s.timestamp - TOLERANCE_SECONDS - 1), Err(Rejected::TooNew));
        // The timestamp is signed: moving it to look fresh breaks the signature.
        let fresh = (s.timestamp + 1000).to_string();
        let moved =
            verify(std::slice::from_ref(&k), Some(&s.id), Some(&fresh), Some(&s.signature), body, s.timestamp + 1000);
        assert_eq!(moved, Err(Rejected::NoMatch));
        // So is the id: a delivery replayed under another id does not verify.
        let other = verify(std::slice::from_ref(&k), Some("msg_2"), Some(&ts), Some(&s.signature), body, s.timestamp);
        assert_eq!(other, Err(Rejected::NoMatch));
    }

    #[test]
    fn missing_or_malformed_headers_are_refused() {
        let k = [secret(7)];
        let s = sign(&k, "msg_1", 1_800_000_000, b"{}");
        let ts = s.timestamp.to_string();
        let now = s.timestamp;
        assert_eq!(
            verify(&k, None, Some(&ts), Some(&s.signature), b"{}", now),
            Err(Rejected::MissingHeader(HEADER_ID))
        );
        assert_eq!(
            verify(&k, Some("msg_1"), None, Some(&s.signature), b"{}", now),
            Err(Rejected::MissingHeader(HEADER_TIMESTAMP))
        );
        assert_eq!(
            verify(&k, Some("msg_1"), Some(&ts), Some(""), b"{}", now),
            Err(Rejected::MissingHeader(HEADER_SIGNATURE))
        );
        assert_eq!(
            verify(&k, Some("msg_1"), Some("soon"), Some(&s.signature), b"{}", now),
            Err(Rejected::BadTimestamp)
        );
        let v2 = s.signature.replace("v1,", "v2,");
        assert_eq!(verify(&k, Some("msg_1"), Some(&ts), Some(&v2), b"{}", now), Err(Rejected::NoMatch));
        assert_eq!(verify(&k, Some("msg_1"), Some(&ts), Some("v1,not base64!"), b"{}", now), Err(Rejected::NoMatch));
    }

    #[test]
    fn while_a_secret_is_rotated_both_sign_and_either_verifies() {
        let (old, new) = (secret(1), secret(2));
        let s = sign(&[old.clone(), new.clone()], "msg_9", 1_800_000_000, b"{}");
        assert_eq!(s.signature.split(' ').count(), 2);
        let ts = s.timestamp.to_string();
        for receiver in [old, new] {
            assert_eq!(verify(&[receiver], Some("msg_9"), Some(&ts), Some(&s.signature), b"{}", s.timestamp), Ok(()));
        }
    }

    #[test]
    fn retries_back_off_and_end_within_the_attempts() {
        assert_eq!((retry_delay(1), retry_delay(2), retry_delay(7), retry_delay(100)), (5, 30, 7200, 7200));
        assert_eq!(retry_delay(0), 5);
        assert_eq!((delay_after(&[1, 2], 1), delay_after(&[1, 2], 9), delay_after(&[], 1)), (1, 2, 0));
        let total: i32 = (1..MAX_ATTEMPTS).map(retry_delay).sum();
        assert!(total < 12 * 3600, "{total} s");
        assert!(RETRY_DELAYS_SECONDS.windows(2).all(|w| w[0] < w[1]));
        assert!(accepted(200) && accepted(204) && !accepted(199) && !accepted(301) && !accepted(410) && !accepted(500));
        assert!(valid_id("msg_2f1e") && !valid_id("") && !valid_id("msg 1") && !valid_id(&"a".repeat(129)));
    }

    #[test]
    fn secrets_are_whsec_base64_of_24_to_64_bytes_and_never_printed() {
        let text = WebhookSecret::encode(&[42; 32]);
        assert!(text.starts_with("whsec_"));
        let k = WebhookSecret::parse(&text).unwrap();
        assert!(!format!("{k:?}").contains(&text[6..]), "{k:?}");
        assert!(WebhookSecret::parse(&text[6..]).is_ok(), "the prefix may be left out");
        assert!(WebhookSecret::parse(&WebhookSecret::encode(&[1; 16])).is_err(), "too short");
        assert!(WebhookSecret::parse(&WebhookSecret::encode(&[1; 65])).is_err(), "too long");
        assert!(WebhookSecret::parse("whsec_***").is_err());
    }
}
