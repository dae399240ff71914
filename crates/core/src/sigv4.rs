//! AWS Signature Version 4 primitives: the signing key and the scope strings.
//!
//! The SDK signs our presigned GETs; S3's POST policies it does not sign, so that
//! signature (HMAC over the Base64 policy) is made here.

use aws_lc_rs::hmac;
use time::OffsetDateTime;
use time::macros::format_description;

/// Credentials to sign with.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

/// `yyyymmdd` of `t` (UTC).
pub fn short_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(format_description!("[year][month][day]")).unwrap_or_default()
}

/// `yyyymmddThhmmssZ` of `t` (UTC), as in `x-amz-date`.
pub fn amz_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(format_description!("[year][month][day]T[hour][minute][second]Z")).unwrap_or_default()
}

/// The derived key: HMAC chain over date, region, service and `aws4_request`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// Hex HMAC-SHA256 of `string_to_sign` under a derived key.
pub fn sign(signing_key: &[u8], string_to_sign: &str) -> String {
    hex::encode(hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

/// RFC 3986 unreserved characters stay; everything else is percent-encoded (SigV4's rule).
const SIGV4_ESCAPES: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn uri_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SIGV4_ESCAPES).to_string()
}

/// A request to presign: `base` is scheme and host (`https://bucket.s3.eu-central-1.amazonaws.com`),
/// `path` the unencoded object path (`/bucket/key` path-style, `/key` virtual-hosted).
#[derive(Debug, Clone)]
pub struct PresignRequest<'a> {
    pub method: &'a str,
    pub base: &'a str,
    pub path: &'a str,
    /// Operation parameters (`uploads`, `uploadId`, `partNumber`, ...); `""` for a bare flag.
    pub query: Vec<(&'a str, String)>,
    /// Headers besides `host` the request must carry with exactly these values (lowercase
    /// names): `content-length`, `x-amz-checksum-crc32c`, ... They are signed as headers, not
    /// hoisted into the query string, where S3 would ignore a checksum.
    pub headers: Vec<(&'a str, String)>,
    pub region: &'a str,
    pub now: OffsetDateTime,
    pub expires_in_secs: u64,
}

/// A SigV4 query-string presigned URL for S3 with an unsigned payload, signing `host` and
/// `req.headers`.
pub fn presign_url(req: &PresignRequest<'_>, creds: &Credentials) -> String {
    let host = req.base.split_once("://").map_or(req.base, |(_, rest)| rest).trim_end_matches('/');
    let mut headers: Vec<(String, String)> =
        req.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned())).collect();
    headers.push(("host".into(), host.to_owned()));
    headers.sort();
    let signed_headers = headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let date = short_date(req.now);
    let amz_date = amz_date(req.now);
    let scope = format!("{date}/{}/s3/aws4_request", req.region);
    let mut query: Vec<(String, String)> = req.query.iter().map(|(k, v)| (uri_encode(k), uri_encode(v))).collect();
    query.push(("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()));
    query.push(("X-Amz-Credential".into(), uri_encode(&format!("{}/{scope}", creds.access_key_id))));
    query.push(("X-Amz-Date".into(), amz_date.clone()));
    query.push(("X-Amz-Expires".into(), req.expires_in_secs.to_string()));
    if let Some(token) = &creds.session_token {
        query.push(("X-Amz-Security-Token".into(), uri_encode(token)));
    }
    query.push(("X-Amz-SignedHeaders".into(), uri_encode(&signed_headers)));
    query.sort();
    let canonical_query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let canonical_path = req.path.split('/').map(uri_encode).collect::<Vec<_>>().join("/");
    let canonical_request = format!(
        "{}\n{canonical_path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\nUNSIGNED-PAYLOAD",
        req.method
    );
    let hashed = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical_request.as_bytes()));
    let string_to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashed}");
    let signature = sign(&signing_key(&creds.secret_access_key, &date, req.region, "s3"), &string_to_sign);
    format!("{}{canonical_path}?{canonical_query}&X-Amz-Signature={signature}", req.base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of AWS's "Deriving the signing key" documentation.
    #[test]
    fn signing_key_matches_the_documented_example() {
        let key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam");
        assert_eq!(hex::encode(key), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
    }

    /// The worked example of AWS's "Authenticating Requests: Using Query Parameters" page.
    #[test]
    fn presigned_url_matches_the_documented_example() {
        let creds = Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let req = PresignRequest {
            method: "GET",
            base: "https://examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            query: vec![],
            headers: vec![],
            region: "us-east-1",
            now: time::macros::datetime!(2013-05-24 00:00:00 UTC),
            expires_in_secs: 86400,
        };
        let url = presign_url(&req, &creds);
        assert!(
            url.ends_with("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"),
            "{url}"
        );
        assert!(url.starts_with("https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&"));
    }

    #[test]
    fn dates_are_formatted_in_utc() {
        let t = time::macros::datetime!(2015-12-29 23:30:05 -01:00);
        assert_eq!(short_date(t), "20151230");
        assert_eq!(amz_date(t), "20151230T003005Z");
    }
}
