//! CloudFront's standard access logs (legacy logging to S3), the one home of their format: the
//! reporter reads them for the CDN transfer of the storage report, and the local stack's CDN
//! writes them so the same report has something to read locally.
//!
//! A log file is gzipped text: `#Version: 1.0`, a `#Fields:` line naming the columns, then one
//! tab-separated line per request, `-` for an empty field. Its key is
//! `{prefix}{distributionId}.{YYYY-MM-DD-HH}.{unique}.gz`, the hour being that of the requests
//! it holds (CloudFront may deliver late, but names the file by the requests' hour).

use time::{Date, OffsetDateTime};

/// The 33 fields of a standard log line, in CloudFront's order.
pub const FIELDS: [&str; 33] = [
    "date",
    "time",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs(Host)",
    "cs-uri-stem",
    "sc-status",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs-uri-query",
    "cs(Cookie)",
    "x-edge-result-type",
    "x-edge-request-id",
    "x-host-header",
    "cs-protocol",
    "cs-bytes",
    "time-taken",
    "x-forwarded-for",
    "ssl-protocol",
    "ssl-cipher",
    "x-edge-response-result-type",
    "cs-protocol-version",
    "fle-status",
    "fle-encrypted-fields",
    "c-port",
    "time-to-first-byte",
    "x-edge-detailed-result-type",
    "sc-content-type",
    "sc-content-len",
    "sc-range-start",
    "sc-range-end",
];

/// What the report takes from one logged request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The path as requested, percent-decoded, without the leading `/`.
    pub path: String,
    /// Bytes sent to the viewer (headers included), what CloudFront bills as transfer out.
    pub bytes: u64,
    pub status: u16,
    /// Served from the edge's cache (`Hit`, `RefreshHit`).
    pub hit: bool,
}

/// Where the report's fields are in a file's lines, as its `#Fields:` line names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    bytes: usize,
    path: usize,
    status: usize,
    result: Option<usize>,
}

impl Columns {
    /// The columns of a `#Fields: date time ...` line; `None` for any other line, or one
    /// without the fields the report needs.
    pub fn of(line: &str) -> Option<Columns> {
        let names: Vec<&str> = line.strip_prefix("#Fields:")?.split_whitespace().collect();
        let at = |name: &str| names.iter().position(|n| *n == name);
        Some(Columns {
            bytes: at("sc-bytes")?,
            path: at("cs-uri-stem")?,
            status: at("sc-status")?,
            result: at("x-edge-result-type"),
        })
    }

    /// The request on a data line; `None` for a line too short to hold the fields.
    pub fn request(&self, line: &str) -> Option<Request> {
        let fields: Vec<&str> = line.split('\t').collect();
        let path = fields.get(self.path)?;
        let path = percent_encoding::percent_decode_str(path.trim_start_matches('/')).decode_utf8_lossy().into_owned();
        Some(Request {
            path,
            bytes: fields.get(self.bytes)?.parse().unwrap_or(0),
            status: fields.get(self.status)?.parse().unwrap_or(0),
            hit: self.result.and_then(|i| fields.get(i)).is_some_and(|r| matches!(*r, "Hit" | "RefreshHit")),
        })
    }
}

/// The columns of CloudFront's current format.
pub fn standard_columns() -> Columns {
    let at = |name: &str| FIELDS.iter().position(|n| *n == name).unwrap_or(0);
    Columns {
        bytes: at("sc-bytes"),
        path: at("cs-uri-stem"),
        status: at("sc-status"),
        result: Some(at("x-edge-result-type")),
    }
}

/// The two header lines every log file starts with.
pub fn header() -> String {
    format!("#Version: 1.0\n#Fields: {}\n", FIELDS.join(" "))
}

/// One request as the local stack's CDN logs it.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub at: OffsetDateTime,
    pub method: &'a str,
    pub host: &'a str,
    /// As requested (percent-encoded), with its leading `/`.
    pub path: &'a str,
    pub status: u16,
    pub bytes: u64,
    /// `Hit`, `Miss`, `Error`.
    pub result: &'a str,
    pub content_type: &'a str,
    pub millis: u64,
}

/// `entry` as a log line (with its newline), the fields it does not know as `-`.
pub fn line(entry: &Entry) -> String {
    let at = entry.at.to_offset(time::UtcOffset::UTC);
    let clean = |s: &str| if s.is_empty() { String::from("-") } else { s.replace(['\t', '\n', ' '], "%20") };
    let known = |name: &str| -> String {
        match name {
            "date" => at.date().to_string(),
            "time" => format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second()),
            "x-edge-location" => "LOCAL".into(),
            "sc-bytes" => entry.bytes.to_string(),
            "cs-method" => entry.method.into(),
            "cs(Host)" | "x-host-header" => clean(entry.host),
            "cs-uri-stem" => clean(entry.path),
            "sc-status" => entry.status.to_string(),
            "x-edge-result-type" | "x-edge-response-result-type" | "x-edge-detailed-result-type" => entry.result.into(),
            "cs-protocol" => "http".into(),
            "time-taken" => format!("{:.3}", entry.millis as f64 / 1000.0),
            "cs-protocol-version" => "HTTP/1.1".into(),
            "sc-content-type" => clean(entry.content_type),
            _ => "-".into(),
        }
    };
    let mut line = FIELDS.iter().map(|f| known(f)).collect::<Vec<_>>().join("\t");
    line.push('\n');
    line
}

/// The key of a log file for the requests of `hour`'s hour, at `place`: the distribution's
/// logging prefix and its id (`cdn-files/E2ABC`), as CloudFront names its files.
pub fn file_key(place: &str, hour: OffsetDateTime, unique: &str) -> String {
    let hour = hour.to_offset(time::UtcOffset::UTC);
    format!("{place}.{}-{:02}.{unique}.gz", hour.date(), hour.hour())
}

/// The key prefix of every log file at `place` (as in [`file_key`]) for the requests of `day`.
pub fn day_prefix(place: &str, day: Date) -> String {
    format!("{place}.{day}-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    /// Two lines as CloudFront's documentation shows them (33 fields).
    const AWS_SAMPLE: &str = "#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end\n\
2019-12-04\t21:02:31\tLAX1\t392\t192.0.2.100\tGET\td111111abcdef8.cloudfront.net\t/index.html\t200\t-\tMozilla/5.0\t-\t-\tHit\tSOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==\td111111abcdef8.cloudfront.net\thttps\t23\t0.001\t-\tTLSv1.2\tECDHE-RSA-AES128-GCM-SHA256\tHit\tHTTP/2.0\t-\t-\t11040\t0.001\tHit\ttext/html\t78\t-\t-\n\
2019-12-04\t21:02:31\tLAX1\t4567\t192.0.2.200\tGET\td111111abcdef8.cloudfront.net\t/users/u-1/f/Men%C3%BC.jpg\t200\t-\tMozilla/5.0\t-\t-\tMiss\tk6WGMNkEzR5BEM_SaF47gjtX9zBDO2m349OY2an0QPEaUum1ZOLrow==\td111111abcdef8.cloudfront.net\thttps\t23\t0.000\t-\tTLSv1.2\tECDHE-RSA-AES128-GCM-SHA256\tMiss\tHTTP/2.0\t-\t-\t11040\t0.000\tMiss\timage/jpeg\t4096\t-\t-\n";

    #[test]
    fn cloudfronts_own_lines_give_path_bytes_status_and_cache_result() {
        let mut lines = AWS_SAMPLE.lines();
        assert_eq!(Columns::of(lines.next().unwrap()), None, "#Version is not the fields line");
        let columns = Columns::of(lines.next().unwrap()).unwrap();
        assert_eq!(columns, standard_columns());
        let first = columns.request(lines.next().unwrap()).unwrap();
        assert_eq!(first, Request { path: "index.html".into(), bytes: 392, status: 200, hit: true });
        let second = columns.request(lines.next().unwrap()).unwrap();
        assert_eq!((second.path.as_str(), second.bytes, second.hit), ("users/u-1/f/Menü.jpg", 4567, false));
        assert_eq!(columns.request("2019-12-04\t21:02:31"), None);
    }

    #[test]
    fn a_file_with_fewer_fields_is_read_by_its_own_fields_line() {
        let columns = Columns::of("#Fields: date cs-uri-stem sc-status sc-bytes").unwrap();
        let r = columns.request("2019-12-04\t/p/f/a.webp\t304\t120").unwrap();
        assert_eq!((r.path.as_str(), r.status, r.bytes, r.hit), ("p/f/a.webp", 304, 120, false));
        assert_eq!(Columns::of("#Fields: date time"), None, "no bytes, no report");
    }

    #[test]
    fn what_the_local_cdn_writes_reads_back_the_same() {
        let at = datetime!(2026-12-05 17:04:09 UTC);
        let entry = Entry {
            at,
            method: "GET",
            host: "localhost:3000",
            path: "/p/f-1/Men%C3%BC%20card.jpg",
            status: 200,
            bytes: 12345,
            result: "Miss",
            content_type: "image/jpeg",
            millis: 12,
        };
        let text = format!("{}{}", header(), line(&entry));
        let columns = text.lines().find_map(Columns::of).unwrap();
        let data = text.lines().last().unwrap();
        assert_eq!(data.split('\t').count(), 33);
        assert!(data.starts_with("2026-12-05\t17:04:09\tLOCAL\t12345\t"));
        let r = columns.request(data).unwrap();
        assert_eq!(r, Request { path: "p/f-1/Menü card.jpg".into(), bytes: 12345, status: 200, hit: false });
        assert_eq!(file_key("cdn-files/E1", at, "ab12"), "cdn-files/E1.2026-12-05-17.ab12.gz");
        assert!(file_key("cdn-files/E1", at, "x").starts_with(&day_prefix("cdn-files/E1", date!(2026 - 12 - 05))));
    }
}
