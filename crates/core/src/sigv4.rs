//! AWS Signature Version 4 primitives: the signing key and the scope strings.
//!
//! The SDK signs our presigned GETs; S3's POST policies it does not sign, so that
//! signature (HMAC over the Base64 policy) is made here. The local stack checks the header
//! signatures the SDK puts on calls it receives in API Gateway's place ([`verify`]).

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

/// The `x-amz-date` format: `yyyymmddThhmmssZ`.
const AMZ_DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// `yyyymmddThhmmssZ` of `t` (UTC), as in `x-amz-date`.
pub fn amz_date(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC).format(AMZ_DATE).unwrap_or_default()
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

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

/// A canonical request's path: each segment encoded (again, for a path as it was sent).
fn canonical_path(path: &str) -> String {
    path.split('/').map(uri_encode).collect::<Vec<_>>().join("/")
}

/// The hex signature of `canonical_request`, made at `amz_date` in the scope `date/region/service`
/// with `secret`.
fn request_signature(canonical_request: &str, amz_date: &str, scope: (&str, &str, &str), secret: &str) -> String {
    let (date, region, service) = scope;
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    sign(&signing_key(secret, date, region, service), &string_to_sign)
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
    let canonical_path = canonical_path(req.path);
    let canonical_request = format!(
        "{}\n{canonical_path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\nUNSIGNED-PAYLOAD",
        req.method
    );
    let signature =
        request_signature(&canonical_request, &amz_date, (&date, req.region, "s3"), &creds.secret_access_key);
    format!("{}{canonical_path}?{canonical_query}&X-Amz-Signature={signature}", req.base.trim_end_matches('/'))
}

/// How far a signed request's `x-amz-date` may be from the receiver's clock, as AWS allows.
pub const SIGNATURE_CLOCK_SKEW: time::Duration = time::Duration::minutes(15);

/// A request as received, signed in its `Authorization` header (`AWS4-HMAC-SHA256`), as the
/// SDK signs calls to services other than S3.
#[derive(Debug, Clone)]
pub struct Received<'a> {
    pub method: &'a str,
    /// The path as it came (percent-encoded as sent).
    pub path: &'a str,
    /// The query string as it came, without `?`.
    pub query: &'a str,
    /// Every header, names in any case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl<'a> Received<'a> {
    fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The `Authorization` header's `Credential`, `SignedHeaders` and `Signature`.
    fn authorization(&self) -> Result<(&'a str, &'a str, &'a str), Refused> {
        let refused = |why: &str| Refused(why.to_owned());
        let auth = self.header("authorization").ok_or_else(|| refused("no Authorization header"))?;
        let fields =
            auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| refused("not an AWS4-HMAC-SHA256 signature"))?;
        let field = |name: &str| fields.split(',').map(str::trim).find_map(|f| f.strip_prefix(name)?.strip_prefix('='));
        match (field("Credential"), field("SignedHeaders"), field("Signature")) {
            (Some(c), Some(h), Some(s)) => Ok((c, h, s)),
            _ => Err(refused("the Authorization header lacks Credential, SignedHeaders or Signature")),
        }
    }

    /// The access key id the request says it was signed with (before [`verify`] says whether
    /// it was).
    pub fn key_id(&self) -> Option<&'a str> {
        self.authorization().ok()?.0.split('/').next()
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Checks `req`'s header signature: made with `creds`' key for `service`, dated within
/// [`SIGNATURE_CLOCK_SKEW`] of `now`, over the method, path, query, the headers it names
/// (`host` among them) and the body's SHA-256 (the canonical request of a service other than
/// S3: each path segment encoded again).
pub fn verify(req: &Received<'_>, creds: &Credentials, service: &str, now: OffsetDateTime) -> Result<(), Refused> {
    let refused = |why: &str| Refused(why.to_owned());
    let (credential, signed, signature) = req.authorization()?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, scope_service, "aws4_request"] = scope[..] else {
        return Err(refused("a malformed credential scope"));
    };
    if key_id != creds.access_key_id || scope_service != service {
        return Err(refused("signed with another key or for another service"));
    }
    let at = req.header("x-amz-date").ok_or_else(|| refused("no x-amz-date"))?;
    let parsed =
        time::PrimitiveDateTime::parse(at, AMZ_DATE).map_err(|_| refused("a malformed x-amz-date"))?.assume_utc();
    if !at.starts_with(date) || (parsed - now).abs() > SIGNATURE_CLOCK_SKEW {
        return Err(refused("the signature's date is not now"));
    }
    if let Some(token) = &creds.session_token
        && req.header("x-amz-security-token") != Some(token.as_str())
    {
        return Err(refused("no or another session token"));
    }
    let names: Vec<&str> = signed.split(';').collect();
    if !names.contains(&"host") || names.windows(2).any(|w| w[0] >= w[1]) {
        return Err(refused("the signed headers must include host, in order"));
    }
    let mut canonical_headers = String::new();
    for name in &names {
        let value = req.header(name).ok_or_else(|| Refused(format!("the signed header {name} is missing")))?;
        canonical_headers.push_str(&format!("{name}:{}\n", value.split_whitespace().collect::<Vec<_>>().join(" ")));
    }
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let mut query: Vec<(String, String)> = req
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (uri_encode(&decode(k)), uri_encode(&decode(v))))
        .collect();
    query.sort();
    let canonical_query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let canonical_request = format!(
        "{}\n{}\n{canonical_query}\n{canonical_headers}\n{signed}\n{}",
        req.method,
        canonical_path(req.path),
        sha256_hex(req.body)
    );
    let expected = request_signature(&canonical_request, at, (date, region, service), &creds.secret_access_key);
    aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), signature.as_bytes())
        .map_err(|_| refused("the signature does not match"))
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

    /// AWS's SigV4 test suite, `get-vanilla` and `post-x-www-form-urlencoded`: the documented
    /// signatures verify; any change to what was signed, a stale date, another key or service
    /// does not.
    #[test]
    fn header_signatures_of_the_documented_examples_verify_and_nothing_else_does() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let now = time::macros::datetime!(2015-08-30 12:40:00 UTC);
        let auth = |signed: &str, sig: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders={signed}, Signature={sig}"
            )
        };
        let get = vec![
            ("Host".to_owned(), "example.amazonaws.com".to_owned()),
            ("X-Amz-Date".to_owned(), "20150830T123600Z".to_owned()),
            (
                "Authorization".to_owned(),
                auth("host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
            ),
        ];
        let req = Received { method: "GET", path: "/", query: "", headers: &get, body: b"" };
        assert_eq!(verify(&req, &creds, "service", now), Ok(()));

        let post = vec![
            ("Content-Type".to_owned(), "application/x-www-form-urlencoded".to_owned()),
            ("Host".to_owned(), "example.amazonaws.com".to_owned()),
            ("X-Amz-Date".to_owned(), "20150830T123600Z".to_owned()),
            (
                "Authorization".to_owned(),
                auth(
                    "content-type;host;x-amz-date",
                    "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
                ),
            ),
        ];
        let posted = Received { method: "POST", path: "/", query: "", headers: &post, body: b"Param1=value1" };
        assert_eq!(verify(&posted, &creds, "service", now), Ok(()));

        let refused = |r: &Received<'_>, c: &Credentials, service: &str, now| verify(r, c, service, now).is_err();
        assert!(refused(&Received { body: b"Param1=value2", ..posted.clone() }, &creds, "service", now));
        assert!(refused(&Received { path: "/other", ..req.clone() }, &creds, "service", now));
        assert!(refused(&Received { query: "a=b", ..req.clone() }, &creds, "service", now));
        assert!(refused(&Received { method: "DELETE", ..req.clone() }, &creds, "service", now));
        assert!(refused(&req, &creds, "execute-api", now));
        assert!(refused(&req, &creds, "service", now + time::Duration::minutes(20)));
        let other = Credentials { secret_access_key: "another".into(), ..creds.clone() };
        assert!(refused(&req, &other, "service", now));
        let unsigned: Vec<(String, String)> = get.iter().filter(|(n, _)| n != "Authorization").cloned().collect();
        assert!(refused(&Received { headers: &unsigned, ..req.clone() }, &creds, "service", now));
        let moved: Vec<(String, String)> = get
            .iter()
            .map(|(n, v)| if n == "Host" { (n.clone(), "elsewhere".to_owned()) } else { (n.clone(), v.clone()) })
            .collect();
        assert!(refused(&Received { headers: &moved, ..req }, &creds, "service", now));
    }
}
