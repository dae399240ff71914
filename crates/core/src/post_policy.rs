//! Presigned POST (browser form upload): the policy that pins exactly one upload, and the
//! form fields that carry it.
//!
//! The policy pins the bucket, the exact key, the exact `Content-Type`, the exact size
//! (`content-length-range` from size to size) and, when the client declared one, the
//! SHA-256 that S3 then verifies on arrival.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ids::{ObjectKey, Sha256};
use crate::sigv4::{self, Credentials};
use crate::types::ContentType;

/// What one upload may be.
#[derive(Debug, Clone)]
pub struct UploadGrant<'a> {
    pub bucket: &'a str,
    pub key: &'a ObjectKey,
    pub content_type: ContentType,
    /// Smallest and largest size S3 accepts (equal when the size was declared).
    pub size: std::ops::RangeInclusive<u64>,
    pub sha256: Option<Sha256>,
    pub region: &'a str,
    pub now: OffsetDateTime,
    pub expires_in: Duration,
}

/// The form a browser posts: `fields` first, then the file as the last part, to `url`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PresignedPost {
    pub url: String,
    pub fields: BTreeMap<String, String>,
    #[serde(skip)]
    pub expires_at: OffsetDateTime,
}

/// Builds the policy and its fields, signed with `creds`; `url` is the bucket's POST URL.
pub fn presign_post(grant: &UploadGrant<'_>, creds: &Credentials, url: String) -> PresignedPost {
    let expires_at = grant.now + grant.expires_in;
    let date = sigv4::short_date(grant.now);
    let credential = format!("{}/{date}/{}/s3/aws4_request", creds.access_key_id, grant.region);

    let mut fields = BTreeMap::new();
    fields.insert("key".to_owned(), grant.key.as_str().to_owned());
    fields.insert("Content-Type".to_owned(), grant.content_type.as_str().to_owned());
    fields.insert("x-amz-algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned());
    fields.insert("x-amz-credential".to_owned(), credential);
    fields.insert("x-amz-date".to_owned(), sigv4::amz_date(grant.now));
    if let Some(token) = &creds.session_token {
        fields.insert("x-amz-security-token".to_owned(), token.clone());
    }
    if let Some(sha) = grant.sha256 {
        // S3 verifies the value only when the algorithm is named too.
        fields.insert("x-amz-checksum-algorithm".to_owned(), "SHA256".to_owned());
        fields.insert("x-amz-checksum-sha256".to_owned(), sha.to_base64());
    }

    let mut conditions = vec![json!({ "bucket": grant.bucket })];
    conditions.extend(fields.iter().map(|(k, v)| json!({ k: v })));
    conditions.push(json!(["content-length-range", grant.size.start(), grant.size.end()]));
    let expiration = expires_at
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default();
    let policy = json!({ "expiration": expiration, "conditions": conditions });
    let policy_b64 = base64::engine::general_purpose::STANDARD.encode(policy.to_string());

    let key = sigv4::signing_key(&creds.secret_access_key, &date, grant.region, "s3");
    fields.insert("x-amz-signature".to_owned(), sigv4::sign(&key, &policy_b64));
    fields.insert("policy".to_owned(), policy_b64);
    PresignedPost { url, fields, expires_at }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{FileId, UserId};
    use crate::names::{DisplayName, SafeName};
    use serde_json::Value;

    fn decode_policy(post: &PresignedPost) -> Value {
        let raw = base64::engine::general_purpose::STANDARD.decode(&post.fields["policy"]).unwrap();
        serde_json::from_slice(&raw).unwrap()
    }

    fn creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_owned),
        }
    }

    fn key() -> ObjectKey {
        let user = UserId::parse("u1").unwrap();
        ObjectKey::original(
            &user,
            FileId::new(1, [1; 10]),
            &SafeName::from_display(&DisplayName::parse("a.jpg").unwrap()),
        )
    }

    #[test]
    fn policy_pins_key_type_size_and_checksum() {
        let key = key();
        let now = time::macros::datetime!(2026-01-02 03:04:05.678 UTC);
        let sha = Sha256::of(b"hello");
        let grant = UploadGrant {
            bucket: "b",
            key: &key,
            content_type: ContentType::parse("image/jpeg").unwrap(),
            size: 1234..=1234,
            sha256: Some(sha),
            region: "eu-central-1",
            now,
            expires_in: Duration::from_secs(900),
        };
        let post = presign_post(&grant, &creds(Some("TOKEN")), "https://b.s3.eu-central-1.amazonaws.com".into());
        let policy = decode_policy(&post);
        assert_eq!(policy["expiration"], "2026-01-02T03:19:05Z");
        let conditions = policy["conditions"].as_array().unwrap();
        let has = |c: Value| conditions.contains(&c);
        assert!(has(json!({"bucket": "b"})));
        assert!(has(json!({"key": key.as_str()})));
        assert!(has(json!({"Content-Type": "image/jpeg"})));
        assert!(has(json!(["content-length-range", 1234, 1234])));
        assert!(has(json!({"x-amz-checksum-sha256": sha.to_base64()})));
        assert!(has(json!({"x-amz-checksum-algorithm": "SHA256"})));
        assert!(has(json!({"x-amz-security-token": "TOKEN"})));
        assert!(has(json!({"x-amz-credential": "AKIAIOSFODNN7EXAMPLE/20260102/eu-central-1/s3/aws4_request"})));
        assert!(has(json!({"x-amz-date": "20260102T030405Z"})));
        // every form field except the signature and the policy itself is pinned by the policy
        for (k, v) in &post.fields {
            if k != "policy" && k != "x-amz-signature" {
                assert!(has(json!({ k: v })), "field {k} not in policy");
            }
        }
        assert_eq!(post.expires_at, now + Duration::from_secs(900));
    }

    #[test]
    fn signature_is_the_hmac_of_the_base64_policy() {
        let key = key();
        let grant = UploadGrant {
            bucket: "b",
            key: &key,
            content_type: ContentType::parse("image/png").unwrap(),
            size: 1..=1,
            sha256: None,
            region: "us-east-1",
            now: time::macros::datetime!(2015-12-29 00:00:00 UTC),
            expires_in: Duration::from_secs(60),
        };
        let post = presign_post(&grant, &creds(None), String::new());
        let k = sigv4::signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20151229", "us-east-1", "s3");
        assert_eq!(post.fields["x-amz-signature"], sigv4::sign(&k, &post.fields["policy"]));
        assert!(!post.fields.contains_key("x-amz-security-token"));
        assert!(!post.fields.contains_key("x-amz-checksum-sha256"));
        // a different secret gives a different signature
        let other = presign_post(&grant, &Credentials { secret_access_key: "x".into(), ..creds(None) }, String::new());
        assert_ne!(other.fields["x-amz-signature"], post.fields["x-amz-signature"]);
    }
}
