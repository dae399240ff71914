//! Where the HTTP source may connect: redirects are not followed unless the run allows those
//! to the same origin (a few hops), and loopback, link-local, private and other non-public
//! addresses are refused unless the run allows them. Names are checked where they are
//! resolved, and the connection goes only to the addresses checked, so a name cannot answer
//! differently between the check and the connection; addresses written in a URL are checked
//! before the request.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{LOCATION, RANGE};
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::MigrateError;
use crate::source::ReadError;

/// Redirects one request follows with `--follow-redirects same-origin`.
pub const MAX_SAME_ORIGIN_REDIRECTS: usize = 5;

/// Which redirects the HTTP source follows (`--follow-redirects`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Redirects {
    /// None: a redirect fails the file.
    #[default]
    None,
    /// To the same scheme, host and port, at most [`MAX_SAME_ORIGIN_REDIRECTS`] hops.
    SameOrigin,
}

impl Redirects {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "none" => Ok(Redirects::None),
            "same-origin" => Ok(Redirects::SameOrigin),
            other => Err(format!("{other:?} is not a redirect policy: use none or same-origin")),
        }
    }

    /// What is followed, for the message of a redirect that was not.
    fn rule(self) -> String {
        match self {
            Redirects::None => {
                "redirects are not followed; --follow-redirects same-origin follows those to the same scheme, host and port"
                    .into()
            }
            Redirects::SameOrigin => format!(
                "--follow-redirects same-origin follows at most {MAX_SAME_ORIGIN_REDIRECTS} redirects, to the same scheme, host and port"
            ),
        }
    }
}

/// How the HTTP source reaches the legacy server; stored with the run's copy settings, so
/// every worker of the run connects alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpPolicy {
    pub redirects: Redirects,
    /// `--allow-private-addresses`: connect to loopback, link-local and private addresses too.
    pub allow_private_addresses: bool,
}

/// Non-public IPv4 ranges (RFC 6890 and successors) and what they are.
const V4_RANGES: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "unspecified (\"this network\")"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "shared (carrier-grade NAT)"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignment"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4 relay"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(255, 255, 255, 255), 32, "broadcast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
];

/// Non-public IPv6 ranges, first match wins (IPv4 embedded in `::ffff:0:0/96`, `64:ff9b::/96`
/// and `2002::/16` is judged as IPv4 before these).
const V6_RANGES: &[(Ipv6Addr, u8, &str)] = &[
    (Ipv6Addr::UNSPECIFIED, 128, "unspecified"),
    (Ipv6Addr::LOCALHOST, 128, "loopback"),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96, "IPv4-compatible (deprecated)"),
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, "local-use NAT64"),
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64, "discard-only"),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32, "documentation"),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23, "IETF protocol assignment"),
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20, "documentation"),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, "unique local (ULA)"),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "site-local (deprecated)"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

/// What kind of non-public address `ip` is (`"loopback"`, `"private"`, ...), or `None` for a
/// public one. IPv4 carried in IPv6 (mapped, NAT64, 6to4) is judged as the IPv4 it reaches.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => V4_RANGES
            .iter()
            .find(|(net, len, _)| (v4.to_bits() ^ net.to_bits()).checked_shr(32 - u32::from(*len)) == Some(0))
            .map(|(_, _, kind)| *kind),
        IpAddr::V6(v6) => {
            let embedded = match v6.segments() {
                [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] | [0x2002, hi, lo, ..] => {
                    Some(Ipv4Addr::from_bits((u32::from(hi) << 16) | u32::from(lo)))
                }
                _ => None,
            };
            if let Some(v4) = embedded {
                return non_public(IpAddr::V4(v4));
            }
            V6_RANGES
                .iter()
                .find(|(net, len, _)| (v6.to_bits() ^ net.to_bits()).checked_shr(128 - u32::from(*len)) == Some(0))
                .map(|(_, _, kind)| *kind)
        }
    }
}

/// Why a connection to `ip` (resolved from the name `host`, or written as an address) is
/// refused.
fn refusal(host: Option<&str>, ip: IpAddr) -> Option<String> {
    let kind = non_public(ip)?;
    let what = match host {
        Some(host) => format!("{host} resolves to {ip}, a {kind} address"),
        None => format!("{ip} is a {kind} address"),
    };
    Some(format!("{what}; not connected to (--allow-private-addresses allows it)"))
}

/// Refuses a URL whose host is written as a non-public address (those are not resolved, so
/// the resolver never sees them). The URL standard has already read every spelling of an
/// address (`2130706433`, `0x7f.1`) as one, so any other host is a name.
pub fn check_url(url: &Url, policy: &HttpPolicy) -> Result<(), String> {
    let Some(host) = url.host_str() else { return Ok(()) };
    let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() else { return Ok(()) };
    match refusal(None, ip) {
        Some(why) if !policy.allow_private_addresses => Err(why),
        _ => Ok(()),
    }
}

/// How long a request may take, its body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long connecting to the legacy server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves names as the system does; with `public_only`, refuses a name if any of its
/// addresses is not public. The connection is made only to the addresses this answers.
#[derive(Clone)]
struct Resolver {
    public_only: bool,
}

type Resolving = Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, BoxError>> + Send>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Resolving {
        let public_only = self.public_only;
        Box::pin(async move {
            let host = name.as_str();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
            if let Some(why) = addrs.iter().find_map(|a| refusal(Some(host), a.ip())).filter(|_| public_only) {
                return Err(Box::new(ReadError::Unreadable(why)) as BoxError);
            }
            Ok(addrs.into_iter())
        })
    }
}

/// An answer of the legacy server.
pub type Response = http::Response<hyper::body::Incoming>;

/// The HTTP client of a run's [`HttpPolicy`]: TLS on the system's roots, names resolved and
/// checked once ([`Resolver`]), redirects followed only as the policy says. It ignores proxies
/// from the environment: a proxy would resolve the names itself, where they cannot be checked.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector<Resolver>>, Empty<Bytes>>,
    policy: HttpPolicy,
}

impl HttpClient {
    pub fn new(policy: &HttpPolicy) -> Result<Self, MigrateError> {
        let mut http = HttpConnector::new_with_resolver(Resolver { public_only: !policy.allow_private_addresses });
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = matbakh_aws::http::https(http).map_err(|e| MigrateError::Usage(format!("HTTP client: {e}")))?;
        Ok(HttpClient { client: Client::builder(TokioExecutor::new()).build(https), policy: *policy })
    }

    /// Sends `method` to `url` (with a `Range` of `range`: offset and length), following
    /// redirects as the policy allows. A redirect it does not follow, or an address it may not
    /// connect to, is [`ReadError::Unreadable`] naming why (for `path`).
    pub async fn send(
        &self,
        method: &Method,
        path: &str,
        url: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Response, ReadError> {
        let unreadable = |why: String| ReadError::Unreadable(format!("{path}: {why}"));
        let mut url = Url::parse(url).map_err(|e| unreadable(e.to_string()))?;
        let origin = url.origin();
        let mut followed = 0;
        loop {
            check_url(&url, &self.policy).map_err(unreadable)?;
            let mut request = Request::builder().method(method.clone()).uri(url.as_str());
            if let Some((offset, len)) = range {
                request = request.header(RANGE, format!("bytes={offset}-{}", offset + len - 1));
            }
            let request = request.body(Empty::new()).map_err(|e| unreadable(e.to_string()))?;
            let response = self.client.request(request).await.map_err(|e| request_error(path, &e))?;
            if !response.status().is_redirection() {
                return Ok(response);
            }
            let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok());
            let next = location.and_then(|l| url.join(l).ok());
            match next {
                Some(next)
                    if self.policy.redirects == Redirects::SameOrigin
                        && followed < MAX_SAME_ORIGIN_REDIRECTS
                        && next.origin() == origin =>
                {
                    followed += 1;
                    url = next;
                }
                _ => {
                    let to = match (next, location) {
                        (Some(next), _) => next.to_string(),
                        (None, Some(l)) => l.to_owned(),
                        (None, None) => "nowhere (no Location)".to_owned(),
                    };
                    return Err(unreadable(format!(
                        "redirects to {to}, not followed ({})",
                        self.policy.redirects.rule()
                    )));
                }
            }
        }
    }
}

/// Reads a response's body, handing each chunk to `take`.
pub async fn each_chunk(path: &str, response: Response, mut take: impl FnMut(&[u8])) -> Result<(), ReadError> {
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Transient(format!("{path}: {e}")))?;
        if let Some(data) = frame.data_ref() {
            take(data);
        }
    }
    Ok(())
}

/// The TLS error inside a failed handshake, if it refuses the server's certificate (for another
/// name, expired, from an authority the system does not trust, or none).
fn certificate_refused<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    // The connector wraps the handshake's I/O error in one of its own.
    let mut inner: &(dyn std::error::Error + 'static) = e;
    while let Some(io) = inner.downcast_ref::<std::io::Error>() {
        inner = io.get_ref()?;
    }
    let tls = inner.downcast_ref::<rustls::Error>()?;
    matches!(tls, rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented).then_some(tls)
}

/// `request` (a request and reading its answer), failed as transient if it takes longer than
/// [`REQUEST_TIMEOUT`].
pub async fn within<T>(path: &str, request: impl Future<Output = Result<T, ReadError>>) -> Result<T, ReadError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(done) => done,
        Err(_) => Err(ReadError::Transient(format!("{path}: no answer within {} s", REQUEST_TIMEOUT.as_secs()))),
    }
}

/// A failed request as a read error: a refusal of this module, or of the server's certificate,
/// stays a refusal (another attempt would be refused again); anything else may pass on another
/// attempt.
fn request_error(path: &str, e: &hyper_util::client::legacy::Error) -> ReadError {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(ReadError::Unreadable(why)) = c.downcast_ref::<ReadError>() {
            return ReadError::Unreadable(format!("{path}: {why}"));
        }
        if let Some(why) = certificate_refused(c) {
            return ReadError::Unreadable(format!("{path}: the server's certificate is refused ({why})"));
        }
        cause = c.source();
    }
    ReadError::Transient(format!("{path}: {}", aws_sdk_s3::error::DisplayErrorContext(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(ip: &str) -> Option<&'static str> {
        non_public(ip.parse().unwrap())
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "169.253.255.255",
            "192.167.255.255",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }

    #[test]
    fn loopback_link_local_private_and_reserved_addresses_are_named() {
        for (ip, expected) in [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("0.0.0.0", "unspecified (\"this network\")"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("100.127.255.255", "shared (carrier-grade NAT)"),
            ("169.254.169.254", "link-local"),
            ("192.0.0.170", "IETF protocol assignment"),
            ("198.18.0.1", "benchmarking"),
            ("203.0.113.9", "documentation"),
            ("224.0.0.251", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::127.0.0.1", "IPv4-compatible (deprecated)"),
            ("fd00:ec2::254", "unique local (ULA)"),
            ("fc00::1", "unique local (ULA)"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local (deprecated)"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("64:ff9b:1::1", "local-use NAT64"),
            ("100::1", "discard-only"),
            // IPv4 carried in IPv6 is judged as the IPv4 it reaches.
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:c0a8:101::1", "private"),
        ] {
            assert_eq!(kind(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn addresses_written_in_urls_are_checked_unless_allowed() {
        let strict = HttpPolicy::default();
        let open = HttpPolicy { allow_private_addresses: true, ..strict };
        for url in [
            "http://127.0.0.1:8080/a.jpg",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/a.jpg",
            "http://[::ffff:7f00:1]/a.jpg",
            // Spellings the URL standard reads as 127.0.0.1.
            "http://2130706433/a.jpg",
            "http://0x7f.1/a.jpg",
        ] {
            let url = Url::parse(url).unwrap();
            let err = check_url(&url, &strict).unwrap_err();
            assert!(err.contains(" is a ") && err.contains("--allow-private-addresses"), "{err}");
            assert_eq!(check_url(&url, &open), Ok(()));
        }
        // Names are left to the resolver.
        assert_eq!(check_url(&Url::parse("http://localhost/a.jpg").unwrap(), &strict), Ok(()));
        assert_eq!(check_url(&Url::parse("https://8.8.8.8/a.jpg").unwrap(), &strict), Ok(()));
    }

    #[test]
    fn redirect_policies_parse_and_name_themselves() {
        assert_eq!(Redirects::parse("none"), Ok(Redirects::None));
        assert_eq!(Redirects::parse("same-origin"), Ok(Redirects::SameOrigin));
        for bad in ["", "all", "Same-Origin", "same_origin"] {
            assert!(Redirects::parse(bad).unwrap_err().contains("none or same-origin"), "{bad}");
        }
        let stored =
            serde_json::to_string(&HttpPolicy { redirects: Redirects::SameOrigin, allow_private_addresses: true })
                .unwrap();
        assert_eq!(stored, r#"{"redirects":"same-origin","allowPrivateAddresses":true}"#);
    }
}
