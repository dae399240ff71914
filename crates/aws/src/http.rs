//! The platform's HTTP stack: the client every AWS SDK client sends its requests with
//! ([`sdk_http_client`]), the one for other servers ([`Web`]: webhooks, JWKS, the legacy
//! origin), and the TLS connector both share with the migration's legacy source
//! (`migrate::egress`, [`https`]).
//!
//! HTTP/1.1 over hyper-util's pooled client, TLS by rustls on aws-lc with the system's roots:
//! the SDK's own HTTPS client minus HTTP/2 (and proxies, but for the migration CLI's), which none of the
//! services the functions call (S3, DynamoDB, SQS, Secrets Manager, CloudFront, API Gateway's
//! `@connections`) needs, and whose code (h2, hyper's HTTP/2 client, instantiated for each client
//! that used hyper-util, the Lambda runtime's too) was 0.7-0.9 MB of every arm64 bootstrap. The SDK's timeouts
//! and retries work as before: the connect timeout bounds connecting (TCP and TLS), the read
//! timeout the wait for a response's head, and errors are classed as the SDK classes them
//! (timeout, I/O: retried; user; other).

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::error::AwsError;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
pub use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

type BoxError = Box<dyn StdError + Send + Sync>;

/// The TLS settings of every HTTPS client here: rustls on aws-lc, post-quantum key exchange
/// preferred (X25519MLKEM768, as the SDK's client does), with the system's roots, read once per
/// process (reading and parsing them takes about 10 ms in a debug build).
fn tls_config() -> Result<rustls::ClientConfig, String> {
    static TLS: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();
    TLS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if roots.is_empty() {
            return Err("no TLS roots: the system has no CA certificates".to_owned());
        }
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            .map_err(|e| format!("TLS settings: {e}"))
    })
    .clone()
}

/// `tcp` (any resolver) with TLS for `https://` URLs: HTTP/1.1 only, rustls on aws-lc with the
/// system's roots, no proxy; `http://` URLs stay plain. What every HTTP client of the platform
/// connects with.
pub fn https<R>(tcp: TcpConnector<R>) -> Result<HttpsConnector<TcpConnector<R>>, String> {
    tls(tcp_for_https(tcp))
}

fn tcp_for_https<R>(mut tcp: TcpConnector<R>) -> TcpConnector<R> {
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp
}

fn tls<D>(dial: D) -> Result<HttpsConnector<D>, String> {
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config()?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(dial))
}

/// The HTTP client of the SDK configurations ([`crate::config`]); give it to any SDK
/// configuration built elsewhere (`http_client(...)`), since the SDK's own is not linked.
/// Reads the system's TLS roots now, at a function's start (about 3 ms), as the SDK's client
/// does, rather than in the first request that connects.
pub fn sdk_http_client() -> SharedHttpClient {
    sdk_http_client_dialing(Direct(tcp_for_https(TcpConnector::new())))
}

/// [`sdk_http_client`] through the proxy `proxies` names for each `https://` endpoint (a
/// CONNECT tunnel, with the proxy's credentials if its URL has them): for the migration CLI,
/// which operators may run where a proxy is the way out. `Matcher::from_env()` reads
/// `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` as curl does (and as the SDK's own client did).
/// `http://` endpoints (local servers) are reached directly. The functions never call it, so
/// they link none of it.
pub fn sdk_http_client_via(proxies: Matcher) -> SharedHttpClient {
    sdk_http_client_dialing(ViaProxy { tcp: tcp_for_https(TcpConnector::new()), proxies: Arc::new(proxies) })
}

fn sdk_http_client_dialing<D: Dial>(dial: D) -> SharedHttpClient {
    if let Err(why) = tls_config() {
        tracing::warn!(%why, "HTTPS requests will fail");
    }
    SharedHttpClient::new(SdkHttp { dial, pools: Mutex::default() })
}

/// How the SDK's client reaches an endpoint before TLS: TCP to it ([`Direct`]), or a tunnel
/// through a proxy ([`ViaProxy`]).
trait Dial:
    tower_service::Service<http::Uri, Response = Tcp, Error = BoxError, Future = Dialing>
    + Clone
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
}

impl<D> Dial for D where
    D: tower_service::Service<http::Uri, Response = Tcp, Error = BoxError, Future = Dialing>
        + Clone
        + Send
        + Sync
        + std::fmt::Debug
        + 'static
{
}

type Tcp = TokioIo<tokio::net::TcpStream>;
type Dialing = Pin<Box<dyn Future<Output = Result<Tcp, BoxError>> + Send>>;

#[derive(Debug, Clone)]
struct Direct(TcpConnector);

impl tower_service::Service<http::Uri> for Direct {
    type Response = Tcp;
    type Error = BoxError;
    type Future = Dialing;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Dialing {
        let connecting = self.0.call(uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

#[derive(Debug, Clone)]
struct ViaProxy {
    tcp: TcpConnector,
    proxies: Arc<Matcher>,
}

impl tower_service::Service<http::Uri> for ViaProxy {
    type Response = Tcp;
    type Error = BoxError;
    type Future = Dialing;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Dialing {
        let proxy = (uri.scheme() == Some(&http::uri::Scheme::HTTPS)).then(|| self.proxies.intercept(&uri)).flatten();
        match proxy {
            None => Direct(self.tcp.clone()).call(uri),
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), self.tcp.clone());
                if let Some(credentials) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(credentials.clone());
                }
                let tunnelling = tunnel.call(uri);
                Box::pin(async move { tunnelling.await.map_err(Into::into) })
            }
        }
    }
}

/// One connection pool per distinct pair of timeouts the SDK asks for (in practice one per
/// process), as the SDK's client keeps them.
#[derive(Debug)]
struct SdkHttp<D> {
    dial: D,
    pools: Mutex<Vec<(Timeouts, SharedHttpConnector)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timeouts {
    connect: Option<Duration>,
    read: Option<Duration>,
}

impl<D: Dial> HttpClient for SdkHttp<D> {
    fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        let timeouts = Timeouts { connect: settings.connect_timeout(), read: settings.read_timeout() };
        let mut pools = self.pools.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, pool)) = pools.iter().find(|(t, _)| *t == timeouts) {
            return pool.clone();
        }
        let pool = SharedHttpConnector::new(Pool::new(timeouts, self.dial.clone()));
        pools.push((timeouts, pool.clone()));
        pool
    }
}

/// A pooled client and its read timeout; `Err` (said on every request) when the system has no
/// TLS roots.
#[derive(Debug)]
struct Pool<D> {
    client: Result<Client<Timed<HttpsConnector<D>>, SdkBody>, String>,
    read_timeout: Option<Duration>,
}

impl<D: Dial> Pool<D> {
    fn new(timeouts: Timeouts, dial: D) -> Self {
        let client = tls(dial).map(|https| {
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .build(Timed { inner: https, timeout: timeouts.connect })
        });
        Pool { client, read_timeout: timeouts.read }
    }
}

impl<D: Dial> HttpConnector for Pool<D> {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = match &self.client {
            Ok(client) => client,
            Err(why) => return HttpConnectorFuture::ready(Err(ConnectorError::other(why.clone().into(), None))),
        };
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let response = client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                None => response.await,
                Some(limit) => match tokio::time::timeout(limit, response).await {
                    Ok(response) => response,
                    Err(_) => return Err(ConnectorError::timeout(TimedOut::Read(limit).into())),
                },
            };
            let response = response.map_err(classify)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Which wait ran out: the source of a connector error, which [`classify`] finds in the chain
/// (the SDK sees only the [`ConnectorError`], never this).
#[derive(Debug, thiserror::Error)]
enum TimedOut {
    #[error("no connection within {0:?} (the SDK's connect timeout)")]
    Connect(Duration),
    #[error("no response within {0:?} (the SDK's read timeout)")]
    Read(Duration),
}

/// As the SDK classes a failed request: a connect timeout is a timeout; not reaching the server
/// (DNS, refused, reset, TLS) and a connection that closed are I/O, both retried; a message cut
/// short is transient; a request hyper refused to send is the caller's; anything else "other".
fn classify(e: hyper_util::client::legacy::Error) -> ConnectorError {
    class_of(&e)(e.into())
}

fn class_of(e: &(dyn StdError + 'static)) -> fn(BoxError) -> ConnectorError {
    let causes = || std::iter::successors(Some(e), |c| (*c).source());
    if causes().any(|c| c.is::<TimedOut>()) {
        return ConnectorError::timeout;
    }
    if let Some(h) = causes().find_map(|c| c.downcast_ref::<hyper::Error>()) {
        if h.is_timeout() {
            return ConnectorError::timeout;
        }
        if h.is_user() {
            return ConnectorError::user;
        }
        if h.is_incomplete_message() {
            return |e| ConnectorError::other(e, Some(aws_smithy_types::retry::ErrorKind::TransientError));
        }
        if h.is_closed() || h.is_canceled() {
            return ConnectorError::io;
        }
    }
    let connect =
        causes().find_map(|c| c.downcast_ref::<hyper_util::client::legacy::Error>()).is_some_and(|h| h.is_connect());
    if connect || causes().any(|c| c.is::<std::io::Error>()) {
        return ConnectorError::io;
    }
    |e| ConnectorError::other(e, None)
}

/// A connector whose connecting (TCP and TLS) gives up after the SDK's connect timeout.
#[derive(Debug, Clone)]
struct Timed<C> {
    inner: C,
    timeout: Option<Duration>,
}

type Connected = MaybeHttpsStream<Tcp>;

impl<D: Dial> tower_service::Service<http::Uri> for Timed<HttpsConnector<D>> {
    type Response = Connected;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Connected, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match timeout {
                None => connecting.await,
                Some(limit) => tokio::time::timeout(limit, connecting).await.map_err(|_| TimedOut::Connect(limit))?,
            }
        })
    }
}

/// What a [`Web`] exchange reads of the answer's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// Nothing (the status and headers are the answer). A body of up to [`IGNORED_BODY_MAX`] is
    /// read and dropped within the exchange's time, so its connection serves the next exchange;
    /// a longer or slower one is dropped with its connection.
    Ignore,
    /// All of it, up to this many bytes ([`AwsError::TooLarge`] beyond).
    UpTo(u64),
}

/// The most of an ignored body ([`BodyLimit::Ignore`]) read to keep its connection: 64 KiB.
pub const IGNORED_BODY_MAX: usize = 64 * 1024;

/// An answer from a [`Web`] exchange.
#[derive(Debug)]
pub struct WebAnswer {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    /// Empty for [`BodyLimit::Ignore`] and for HEAD.
    pub body: bytes::Bytes,
}

/// The platform's client for what is not AWS (a webhook's POST, an issuer's JWKS, the legacy
/// origin): the HTTP stack and TLS settings of the SDK's client ([`sdk_http_client`]), no
/// redirects followed (hyper follows none), no proxies, and one time limit for the whole
/// exchange, body included.
#[derive(Debug, Clone)]
pub struct Web {
    client: Client<HttpsConnector<TcpConnector>, http_body_util::Full<bytes::Bytes>>,
    limit: Duration,
}

impl Web {
    /// A client whose exchanges take at most `limit` each. `Err` when the system has no TLS roots.
    pub fn new(limit: Duration) -> Result<Self, String> {
        let mut tcp = TcpConnector::new();
        tcp.set_connect_timeout(Some(limit));
        let https = https(tcp)?;
        Ok(Web { client: Client::builder(TokioExecutor::new()).pool_timer(TokioTimer::new()).build(https), limit })
    }

    /// Sends `request` and reads its answer as `body` says, all within the client's limit.
    pub async fn send(&self, request: http::Request<bytes::Bytes>, body: BodyLimit) -> Result<WebAnswer, AwsError> {
        let url = request.uri().to_string();
        let head = request.method() == http::Method::HEAD;
        let request = request.map(http_body_util::Full::new);
        let deadline = tokio::time::Instant::now() + self.limit;
        let exchange = async {
            let failed = |e: &dyn StdError| AwsError::Unanswered(format!("{url}: {}", DisplayErrorContext(e)));
            let response = self.client.request(request).await.map_err(|e| failed(&e))?;
            let (parts, incoming) = response.into_parts();
            let limit = match body {
                BodyLimit::UpTo(limit) if !head => limit,
                _ => {
                    if !head {
                        ignore(incoming, deadline).await;
                    }
                    return Ok(WebAnswer { status: parts.status, headers: parts.headers, body: bytes::Bytes::new() });
                }
            };
            let bytes = up_to(incoming, limit).await.map_err(|e| match e {
                Short::Over => AwsError::TooLarge { url: url.clone(), limit },
                Short::Failed(e) => failed(e.as_ref()),
            })?;
            Ok(WebAnswer { status: parts.status, headers: parts.headers, body: bytes })
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or_else(|_| Err(AwsError::Unanswered(format!("{url}: no answer within {:?}", self.limit))))
    }
}

/// Reads and drops an ignored body while it is short and comes before `deadline` (then hyper
/// keeps its connection for the next exchange); else drops it unread, and its connection with it.
async fn ignore(body: hyper::body::Incoming, deadline: tokio::time::Instant) {
    let _ = tokio::time::timeout_at(deadline, up_to(body, IGNORED_BODY_MAX as u64)).await;
}

/// Why [`up_to`] gave no body.
enum Short {
    /// It is longer than allowed.
    Over,
    /// Reading it failed.
    Failed(BoxError),
}

/// The whole body, if it is at most `max` bytes: refused by its Content-Length before it is
/// read (hyper gives the length as the body's size hint), any other once it passes `max`.
async fn up_to(body: hyper::body::Incoming, max: u64) -> Result<bytes::Bytes, Short> {
    if hyper::body::Body::size_hint(&body).lower() > max {
        return Err(Short::Over);
    }
    let limited = http_body_util::Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX));
    match http_body_util::BodyExt::collect(limited).await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Short::Over),
        Err(e) => Err(Short::Failed(e)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_sdk_s3::config::{Credentials, Region, retry::RetryConfig, timeout::TimeoutConfig};
    use aws_sdk_s3::error::SdkError;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-amz-request-id: test\r\n\r\n";

    /// A server on a free port; each connection is handed to `serve` with its number (from 0).
    /// Answers the port and how many connections it took.
    pub(crate) async fn server<F, Fut>(serve: F) -> (u16, Arc<AtomicUsize>)
    where
        F: Fn(TcpStream, usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let taken = Arc::new(AtomicUsize::new(0));
        let count = taken.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, n));
            }
        });
        (port, taken)
    }

    /// Reads one request head (the test requests have no body); `false` at the end of the stream.
    async fn read_head(stream: &mut TcpStream) -> bool {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    }

    fn s3(endpoint: &str, timeouts: TimeoutConfig, attempts: u32) -> aws_sdk_s3::Client {
        s3_with(sdk_http_client(), endpoint, timeouts, attempts)
    }

    fn s3_with(http: SharedHttpClient, endpoint: &str, timeouts: TimeoutConfig, attempts: u32) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .credentials_provider(Credentials::new("key", "secret", None, None, "test"))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .http_client(http)
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(attempts))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// A client of `endpoint` through the proxies `proxies` names (one attempt).
    fn s3_via(proxies: Matcher, endpoint: String) -> aws_sdk_s3::Client {
        s3_with(sdk_http_client_via(proxies), &endpoint, connect_within(Duration::from_secs(5)), 1)
    }

    /// A server that speaks no TLS: it reads a little of what comes and hangs up. Answers its
    /// port and how many connections reached it.
    async fn no_tls() -> (u16, Arc<AtomicUsize>) {
        server(|mut stream, _| async move {
            let _ = stream.read(&mut [0u8; 64]).await;
        })
        .await
    }

    fn connect_within(limit: Duration) -> TimeoutConfig {
        TimeoutConfig::builder().connect_timeout(limit).build()
    }

    async fn head(
        client: &aws_sdk_s3::Client,
    ) -> Result<(), SdkError<aws_sdk_s3::operation::head_object::HeadObjectError>> {
        client.head_object().bucket("b").key("k").send().await.map(|_| ())
    }

    #[tokio::test]
    async fn requests_are_answered_over_one_kept_connection() {
        let (port, connections) = server(|mut stream, _| async move {
            while read_head(&mut stream).await {
                stream.write_all(OK).await.unwrap();
            }
        })
        .await;
        let client = s3(&format!("http://127.0.0.1:{port}"), connect_within(Duration::from_secs(5)), 1);
        for _ in 0..3 {
            head(&client).await.expect("answered");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1, "the pool kept the connection");
    }

    #[tokio::test]
    async fn a_server_that_never_finishes_the_tls_handshake_times_out_connecting() {
        let (port, _) = server(|stream, _| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(stream);
        })
        .await;
        let client = s3(&format!("https://127.0.0.1:{port}"), connect_within(Duration::from_millis(200)), 1);
        let started = std::time::Instant::now();
        let Err(SdkError::DispatchFailure(failure)) = head(&client).await else { panic!("not a dispatch failure") };
        assert!(failure.is_timeout(), "{failure:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "gave up after {:?}", started.elapsed());
    }

    /// A client of the plain-HTTP server on `port` that waits 200 ms for an answer (one attempt).
    fn reading_within_200ms(port: u16) -> aws_sdk_s3::Client {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_millis(200))
            .build();
        s3(&format!("http://127.0.0.1:{port}"), timeouts, 1)
    }

    #[tokio::test]
    async fn a_response_that_never_comes_times_out_reading() {
        let (port, _) = server(|mut stream, _| async move {
            read_head(&mut stream).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        })
        .await;
        let client = reading_within_200ms(port);
        let Err(SdkError::DispatchFailure(failure)) = head(&client).await else { panic!("not a dispatch failure") };
        assert!(failure.is_timeout(), "{failure:?}");
    }

    /// After a read timeout the connection is not reused: the answer that comes late on it must
    /// never be taken for the next request's (S3 would then hand one caller another's object).
    #[tokio::test]
    async fn a_connection_whose_answer_timed_out_is_not_reused() {
        let timed_out = Arc::new(tokio::sync::Notify::new());
        let (late_tx, late_rx) = tokio::sync::oneshot::channel::<()>();
        let late_tx = Arc::new(Mutex::new(Some(late_tx)));
        let go = timed_out.clone();
        let (port, connections) = server(move |mut stream, n| {
            let (go, late_tx) = (go.clone(), late_tx.clone());
            async move {
                if n == 0 && read_head(&mut stream).await {
                    go.notified().await;
                    let late = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nx-amz-request-id: late\r\n\r\n";
                    let _ = stream.write_all(late).await;
                    let _ = stream.flush().await;
                    if let Some(tx) = late_tx.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                }
                while read_head(&mut stream).await {
                    if stream.write_all(OK).await.is_err() {
                        return;
                    }
                }
            }
        })
        .await;
        let client = reading_within_200ms(port);
        let Err(SdkError::DispatchFailure(failure)) = head(&client).await else { panic!("not a dispatch failure") };
        assert!(failure.is_timeout(), "{failure:?}");
        timed_out.notify_one();
        late_rx.await.expect("the late answer was written");
        head(&client).await.expect("the next request gets its own answer, not the late one");
        assert_eq!(connections.load(Ordering::SeqCst), 2, "a new connection for the next request");
    }

    #[tokio::test]
    async fn a_refused_connection_is_io_and_retried() {
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let client = s3(&format!("http://127.0.0.1:{port}"), connect_within(Duration::from_secs(5)), 1);
        let Err(SdkError::DispatchFailure(failure)) = head(&client).await else { panic!("not a dispatch failure") };
        assert!(failure.is_io(), "{failure:?}");
    }

    #[tokio::test]
    async fn an_answer_cut_short_is_retried_on_a_new_connection() {
        let (port, connections) = server(|mut stream, n| async move {
            if read_head(&mut stream).await {
                let answer: &[u8] = if n == 0 { b"HTTP/1.1 200 OK\r\ncontent-le" } else { OK };
                stream.write_all(answer).await.unwrap();
            }
        })
        .await;
        let client = s3(&format!("http://127.0.0.1:{port}"), connect_within(Duration::from_secs(5)), 3);
        head(&client).await.expect("the second attempt is answered");
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    /// What hyper-util refuses before sending (here: no host) is neither I/O nor a timeout, so
    /// the SDK does not retry it; the SDK's own client classes it the same way.
    #[test]
    fn a_request_that_cannot_be_sent_is_not_retried() {
        let pool = Pool::new(Timeouts { connect: None, read: None }, Direct(TcpConnector::new()));
        let request = http::Request::builder().uri("/no-host").body(SdkBody::empty()).unwrap();
        let request = HttpRequest::try_from(request).unwrap();
        let failure = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(pool.call(request))
            .expect_err("no host to send to");
        assert!(failure.is_other() && failure.as_other().is_none(), "{failure:?}");
    }

    fn web() -> Web {
        Web::new(Duration::from_secs(5)).unwrap()
    }

    fn get(url: String) -> http::Request<bytes::Bytes> {
        http::Request::get(url).body(bytes::Bytes::new()).unwrap()
    }

    /// A server answering every request on a connection with `answer`.
    async fn answering(answer: &'static [u8]) -> u16 {
        server(move |mut stream, _| async move {
            while read_head(&mut stream).await {
                if stream.write_all(answer).await.is_err() {
                    return;
                }
            }
        })
        .await
        .0
    }

    #[tokio::test]
    async fn web_reads_an_answer_and_follows_no_redirect() {
        let port = answering(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-test: 1\r\n\r\nhello").await;
        let answer = web().send(get(format!("http://127.0.0.1:{port}/a")), BodyLimit::UpTo(5)).await.unwrap();
        assert_eq!((answer.status.as_u16(), &answer.body[..]), (200, &b"hello"[..]));
        assert_eq!(answer.headers["x-test"], "1");

        let port = answering(b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:1/\r\ncontent-length: 0\r\n\r\n").await;
        let answer = web().send(get(format!("http://127.0.0.1:{port}/a")), BodyLimit::Ignore).await.unwrap();
        assert_eq!(answer.status.as_u16(), 302, "the redirect is the answer");
    }

    /// A webhook's receiver answers with a body nobody reads: it is read and dropped, so the next
    /// delivery goes over the same connection (no new TLS handshake); a body too long to be worth
    /// reading is dropped with its connection, and its status is still the answer.
    #[tokio::test]
    async fn web_reuses_the_connection_of_an_answer_whose_body_it_ignores() {
        let (port, connections) = server(|mut stream, _| async move {
            while read_head(&mut stream).await {
                if stream.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok").await.is_err() {
                    return;
                }
            }
        })
        .await;
        let web = web();
        for _ in 0..3 {
            let answer = web.send(get(format!("http://127.0.0.1:{port}/hook")), BodyLimit::Ignore).await.unwrap();
            assert_eq!((answer.status.as_u16(), answer.body.len()), (202, 0));
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1, "one kept connection");

        // The body comes after the head was answered.
        let answered = Arc::new(tokio::sync::Notify::new());
        let go = answered.clone();
        let (port, connections) = server(move |mut stream, _| {
            let go = go.clone();
            async move {
                while read_head(&mut stream).await {
                    let _ = stream.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n").await;
                    let _ = stream.flush().await;
                    go.notified().await;
                    if stream.write_all(b"ok").await.is_err() {
                        return;
                    }
                }
            }
        })
        .await;
        for _ in 0..3 {
            let sending = web.send(get(format!("http://127.0.0.1:{port}/hook")), BodyLimit::Ignore);
            let (answer, ()) = tokio::join!(sending, async { answered.notify_one() });
            assert_eq!(answer.unwrap().status.as_u16(), 202);
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1, "one kept connection, late body");

        let endless = b"HTTP/1.1 200 OK\r\ncontent-length: 100000000\r\n\r\nhello";
        let port = answering(endless).await;
        let answer = web.send(get(format!("http://127.0.0.1:{port}/hook")), BodyLimit::Ignore).await.unwrap();
        assert_eq!(answer.status.as_u16(), 200);
    }

    #[tokio::test]
    async fn web_refuses_a_body_over_its_limit_by_length_or_as_it_comes() {
        // Refused by its length, before the body, which would never end here.
        let port = answering(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\nhel").await;
        let err = web().send(get(format!("http://127.0.0.1:{port}/a")), BodyLimit::UpTo(5)).await.unwrap_err();
        assert!(matches!(err, AwsError::TooLarge { limit: 5, .. }), "{err}");

        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
        let port = answering(chunked).await;
        let err = web().send(get(format!("http://127.0.0.1:{port}/a")), BodyLimit::UpTo(5)).await.unwrap_err();
        assert!(matches!(err, AwsError::TooLarge { limit: 5, .. }), "{err}");
        let whole = web().send(get(format!("http://127.0.0.1:{port}/a")), BodyLimit::UpTo(6)).await.unwrap();
        assert_eq!(&whole.body[..], b"abcdef");
    }

    #[tokio::test]
    async fn web_gives_up_at_its_limit_body_included() {
        let (port, _) = server(|mut stream, _| async move {
            read_head(&mut stream).await;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhel").await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        })
        .await;
        let web = Web::new(Duration::from_millis(300)).unwrap();
        let err = web.send(get(format!("http://127.0.0.1:{port}/a")), BodyLimit::UpTo(100)).await.unwrap_err();
        assert!(err.to_string().contains("no answer within 300ms"), "{err}");
    }

    #[tokio::test]
    async fn web_names_the_url_and_the_cause_when_nothing_answers() {
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let err = web().send(get(format!("http://127.0.0.1:{port}/jwks")), BodyLimit::UpTo(100)).await.unwrap_err();
        let said = err.to_string();
        assert!(said.contains(&format!("127.0.0.1:{port}/jwks")) && said.to_lowercase().contains("refused"), "{said}");
    }

    /// A proxy that records each request head it gets and then tunnels to what a CONNECT names.
    async fn proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let heads = seen.clone();
        let (port, _) = server(move |mut stream, _| {
            let heads = heads.clone();
            async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                heads.lock().unwrap().push(head.clone());
                let Some(target) = head.strip_prefix("CONNECT ").and_then(|r| r.split_whitespace().next()) else {
                    return;
                };
                let Ok(mut upstream) = TcpStream::connect(target).await else { return };
                let _ = stream.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
                let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
            }
        })
        .await;
        (port, seen)
    }

    #[tokio::test]
    async fn https_endpoints_are_reached_through_the_proxy_named_with_its_credentials() {
        let (proxy_port, seen) = proxy().await;
        // The endpoint speaks no TLS: the handshake through the tunnel fails, after the proxy
        // was asked for it.
        let (endpoint_port, _) = no_tls().await;
        let proxies = Matcher::builder().https(format!("http://ops:s3cret@127.0.0.1:{proxy_port}")).build();
        let client = s3_via(proxies, format!("https://127.0.0.1:{endpoint_port}"));
        head(&client).await.expect_err("no TLS at the endpoint");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].starts_with(&format!("CONNECT 127.0.0.1:{endpoint_port} HTTP/1.1\r\n")), "{}", seen[0]);
        assert!(seen[0].contains("Proxy-Authorization: Basic b3BzOnMzY3JldA==\r\n"), "{}", seen[0]);
    }

    #[tokio::test]
    async fn no_proxy_hosts_and_plain_http_endpoints_are_reached_directly() {
        let (proxy_port, seen) = proxy().await;
        let (silent, reached) = no_tls().await;
        let excluded = Matcher::builder().https(format!("http://127.0.0.1:{proxy_port}")).no("127.0.0.1").build();
        let client = s3_via(excluded, format!("https://127.0.0.1:{silent}"));
        head(&client).await.expect_err("no TLS at the endpoint");
        assert_eq!(reached.load(Ordering::SeqCst), 1, "reached directly");

        let plain = answering(OK).await;
        let all = Matcher::builder().all(format!("http://127.0.0.1:{proxy_port}")).build();
        let client = s3_via(all, format!("http://127.0.0.1:{plain}"));
        head(&client).await.expect("answered directly");
        assert!(seen.lock().unwrap().is_empty(), "{:?}", seen.lock().unwrap());
    }
}
