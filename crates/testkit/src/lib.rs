//! Test harness for the HTTP functions: their routers wired to the local servers
//! `scripts/test` starts (moto for DynamoDB and S3, Garage for the S3 that enforces
//! signatures), a key pair standing in for the identity provider, real corpus files, and a
//! browser-style form upload.

pub mod logs;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use axum::body::Body;
use http::{Method, Request, StatusCode};
use matbakh_api::Authenticator;
use matbakh_api::auth::JwtVerifier;
use matbakh_api::dev_keys::DevKey;
use matbakh_aws::Services;
use matbakh_aws::{FileTable, S3Store};
use matbakh_core::clock::{Clock, SystemClock};
use matbakh_core::limits::Limits;
use serde_json::Value;
use tower::ServiceExt;

pub use aws_sdk_dynamodb::types::AttributeValue;

pub const ISSUER: &str = "https://auth.matbakh.local";
pub const AUDIENCE: &str = "matbakh-files";

/// A P-256 key made for the tests (`openssl genpkey -algorithm EC -pkeyopt
/// ec_paramgen_curve:P-256`) that sign files-CDN URLs; it signs nothing anywhere else.
pub const CDN_TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg7dXjFdmG2Oab7+XZ
OLJlkfotlWRgXEXUhD6mkD2cjM+hRANCAAQUeoHXvd3dqTHITcnQcekD8UVWUn1t
yBlfGaV+fUIvygMKy3Hdfum0Uky8sOwe+1sTMli9qWub5GCXAU/dGGSp
-----END PRIVATE KEY-----";

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run these tests through scripts/test, which starts moto and Garage")
    })
}

/// Where `rel` is in the shared image corpus (`MATBAKH_CORPUS`, else `../shared/corpus` beside
/// the repository).
pub fn corpus_path(rel: &str) -> PathBuf {
    // The crate folder cargo runs the test in (every crate sits at crates/<name>, as this one
    // does); the folder testkit was compiled in only when run without cargo. A target folder
    // shared by two checkouts may hold a testkit compiled in the other one.
    let crate_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let root =
        std::env::var("MATBAKH_CORPUS").map(PathBuf::from).unwrap_or_else(|_| crate_dir.join("../../../shared/corpus"));
    root.join(rel)
}

/// A file from the shared image corpus ([`corpus_path`]): its name and bytes.
pub fn corpus(rel: &str) -> (String, Vec<u8>) {
    let path = corpus_path(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path.file_name().unwrap().to_string_lossy().into_owned(), bytes)
}

/// `jpeg` with an EXIF block (APP1, right after SOI) holding only a GPS position
/// ([`gps_exif`]). The corpus photo with GPS tags (`phone-13mp.jpg`) has a direction but no
/// position.
pub fn with_gps_position(jpeg: &[u8], latitude: f64, longitude: f64) -> Vec<u8> {
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(gps_exif(latitude, longitude));
    let len = u16::try_from(app1.len() + 2).unwrap();
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend(len.to_be_bytes());
    out.extend(app1);
    out.extend(&jpeg[2..]);
    out
}

/// An EXIF block (its TIFF structure) holding only a GPS position, as a phone writes it:
/// degrees, minutes and seconds as rationals, hemispheres as letters.
pub fn gps_exif(latitude: f64, longitude: f64) -> Vec<u8> {
    fn dms(v: f64) -> [(u32, u32); 3] {
        let v = v.abs();
        let (d, m) = (v.trunc(), (v.fract() * 60.0).trunc());
        let s = ((v - d - m / 60.0) * 3600.0 * 1000.0).round();
        [(d as u32, 1), (m as u32, 1), (s as u32, 1000)]
    }
    let mut t = Vec::new();
    let (u16le, u32le) =
        (|t: &mut Vec<u8>, v: u16| t.extend(v.to_le_bytes()), |t: &mut Vec<u8>, v: u32| t.extend(v.to_le_bytes()));
    t.extend(b"II*\0");
    u32le(&mut t, 8);
    // IFD0 at 8: one entry, GPSInfo (0x8825, LONG) -> the GPS IFD at 26.
    u16le(&mut t, 1);
    for v in [0x8825u16, 4] {
        u16le(&mut t, v);
    }
    u32le(&mut t, 1);
    u32le(&mut t, 26);
    u32le(&mut t, 0);
    // GPS IFD at 26: four entries (12 bytes each) + next-IFD; the rationals follow at 26+2+48+4.
    let data = 26 + 2 + 4 * 12 + 4;
    u16le(&mut t, 4);
    let lat_ref = if latitude < 0.0 { b'S' } else { b'N' };
    let lon_ref = if longitude < 0.0 { b'W' } else { b'E' };
    for (tag, letter, offset) in
        [(1u16, lat_ref, None), (2, 0, Some(data)), (3, lon_ref, None), (4, 0, Some(data + 24))]
    {
        u16le(&mut t, tag);
        match offset {
            None => {
                u16le(&mut t, 2); // ASCII
                u32le(&mut t, 2);
                t.extend([letter, 0, 0, 0]);
            }
            Some(at) => {
                u16le(&mut t, 5); // RATIONAL
                u32le(&mut t, 3);
                u32le(&mut t, at);
            }
        }
    }
    u32le(&mut t, 0);
    for (n, d) in dms(latitude).into_iter().chain(dms(longitude)) {
        u32le(&mut t, n);
        u32le(&mut t, d);
    }
    t
}

/// A user id no other test uses.
/// 32 fresh random bytes (a test's signing key).
pub fn rand32() -> [u8; 32] {
    matbakh_app::random::bytes().unwrap()
}

pub fn unique_user(tag: &str) -> String {
    format!("{tag}-{}", uuid::Uuid::now_v7().simple())
}

pub async fn moto_sdk() -> SdkConfig {
    env("AWS_ENDPOINT_URL");
    matbakh_aws::config::load_sdk_config().await
}

/// A new versioned bucket of the test's own in moto (named after `tag`), and an S3 client
/// for it: for tests that read a whole bucket, which the shared one is not.
pub async fn fresh_bucket(tag: &str) -> (aws_sdk_s3::Client, String) {
    use aws_sdk_s3::types::{BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration};
    let sdk = moto_sdk().await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    let name = unique_user(tag).to_lowercase();
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "eu-central-1".into());
    let here =
        CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::from(region.as_str()));
    s3.create_bucket().bucket(&name).create_bucket_configuration(here.build()).send().await.unwrap();
    let versioning = aws_sdk_s3::types::VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled);
    s3.put_bucket_versioning().bucket(&name).versioning_configuration(versioning.build()).send().await.unwrap();
    (s3, name)
}

pub async fn garage_sdk() -> SdkConfig {
    let creds = aws_sdk_s3::config::Credentials::new(
        env("GARAGE_ACCESS_KEY_ID"),
        env("GARAGE_SECRET_ACCESS_KEY"),
        None,
        None,
        "garage",
    );
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(env("GARAGE_ENDPOINT"))
        .region(Region::new(env("GARAGE_REGION")))
        .credentials_provider(creds)
        .http_client(matbakh_aws::http::sdk_http_client())
        .load()
        .await
}

/// Moto's SDK configuration built without awaiting, for what a router needs besides the
/// services (a `fn(Services, ..) -> Router` cannot await).
pub fn moto_sdk_now() -> SdkConfig {
    let creds = aws_sdk_s3::config::Credentials::new(
        env("AWS_ACCESS_KEY_ID"),
        env("AWS_SECRET_ACCESS_KEY"),
        None,
        None,
        "moto",
    );
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(env("AWS_ENDPOINT_URL"))
        .region(Region::new(env("AWS_REGION")))
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(creds))
        .http_client(matbakh_aws::http::sdk_http_client())
        .build()
}

/// The export queue `scripts/test` created in moto (`EXPORT_QUEUE_URL`).
pub fn export_queue() -> matbakh_aws::queue::Queue {
    matbakh_aws::queue::Queue::new(&moto_sdk_now(), env("EXPORT_QUEUE_URL"))
}

/// The identity provider of in-process tests: the tokens it mints pass its authenticator
/// (issuer [`ISSUER`], audience [`AUDIENCE`]), others do not.
pub struct TestIdp {
    key: DevKey,
    pub auth: Arc<Authenticator>,
}

impl Default for TestIdp {
    fn default() -> Self {
        let key = DevKey::generate().unwrap();
        let auth = Arc::new(Authenticator::Jwks(JwtVerifier::new(&key.jwks(), ISSUER, AUDIENCE).unwrap()));
        TestIdp { key, auth }
    }
}

impl TestIdp {
    /// An `Authorization` header value for `user`, valid ten minutes.
    pub fn bearer(&self, user: &str) -> String {
        format!("Bearer {}", self.key.mint(user, ISSUER, AUDIENCE, 600).unwrap())
    }
}

/// One function instance as Lambda would run it, with a key pair standing in for the
/// identity provider.
pub struct Harness {
    pub state: Services,
    /// Who callers are: the harness's own key pair.
    pub auth: Arc<Authenticator>,
    pub router: fn(Services, Arc<Authenticator>) -> axum::Router,
    pub key: DevKey,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub table_name: String,
}

pub struct Options {
    pub s3_on_garage: bool,
    pub limits: Limits,
    pub clock: Arc<dyn Clock>,
    /// Share another harness's table (two function instances, one database) instead of a
    /// private one.
    pub table: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options { s3_on_garage: false, limits: Limits::default(), clock: Arc::new(SystemClock), table: None }
    }
}

impl Harness {
    /// `router` is the function under test (`presign::router`, ...).
    pub async fn new(router: fn(Services, Arc<Authenticator>) -> axum::Router, opts: Options) -> Self {
        let moto = moto_sdk().await;
        let store = if opts.s3_on_garage {
            S3Store::new(&garage_sdk().await, env("GARAGE_BUCKET"), None).unwrap()
        } else {
            S3Store::new(&moto, env("BUCKET_NAME"), Some(&env("AWS_ENDPOINT_URL"))).unwrap()
        };
        let key = DevKey::generate().unwrap();
        let verifier = JwtVerifier::new(&key.jwks(), ISSUER, AUDIENCE).unwrap();
        let table_name = match opts.table {
            Some(shared) => shared,
            None => private_table(&moto).await,
        };
        let state = Services {
            store,
            table: FileTable::new(&moto, &table_name),
            limits: opts.limits,
            clock: opts.clock,
            files_cdn: None,
            files_edge: None,
            admins: Arc::default(),
            copy_later: None,
        };
        let auth = Arc::new(Authenticator::Jwks(verifier));
        Harness { state, auth, router, key, dynamo: aws_sdk_dynamodb::Client::new(&moto), table_name }
    }

    pub fn token(&self, sub: &str) -> String {
        self.key.mint(sub, ISSUER, AUDIENCE, 600).unwrap()
    }

    /// Calls the router in-process, as `lambda_http` would.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => Body::from(v.to_string()),
            None => Body::empty(),
        };
        call_router((self.router)(self.state.clone(), self.auth.clone()), req.body(body).unwrap()).await
    }

    /// The caller asks for an upload grant.
    pub async fn grant(&self, user: &str, filename: &str, content_type: &str, size: usize) -> (StatusCode, Value) {
        let body = serde_json::json!({"filename": filename, "contentType": content_type, "size": size});
        self.call(Method::POST, "/v1/uploads", Some(&self.token(user)), Some(body)).await
    }

    /// How many file rows the user has (GSI1), read straight from DynamoDB.
    pub async fn file_rows(&self, user: &str) -> usize {
        let out = self
            .dynamo
            .query()
            .table_name(&self.table_name)
            .index_name("gsi1-user-files")
            .key_condition_expression("gsi1pk = :u")
            .expression_attribute_values(":u", aws_sdk_dynamodb::types::AttributeValue::S(format!("USER#{user}")))
            .send()
            .await
            .unwrap();
        out.count as usize
    }

    /// A file row as stored, every attribute (read consistently).
    pub async fn file_item(
        &self,
        id: matbakh_core::ids::FileId,
    ) -> Option<std::collections::HashMap<String, AttributeValue>> {
        self.dynamo
            .get_item()
            .table_name(&self.table_name)
            .set_key(Some(matbakh_aws::table::file_key(id)))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    /// A file as an upload leaves it: granted, its bytes in the bucket, settled, READY (no
    /// variants), its name's words indexed. Answers its id.
    pub async fn stored_file(
        &self,
        user: &str,
        name: &str,
        content_type: &str,
        bytes: Vec<u8>,
        at: time::OffsetDateTime,
    ) -> matbakh_core::ids::FileId {
        let labels = matbakh_core::labels::Labels::default();
        self.stored_labelled_file(user, name, content_type, bytes, at, labels).await
    }

    /// [`Self::stored_file`] uploaded with `labels` (visibility, tags, metadata).
    pub async fn stored_labelled_file(
        &self,
        user: &str,
        name: &str,
        content_type: &str,
        bytes: Vec<u8>,
        at: time::OffsetDateTime,
        labels: matbakh_core::labels::Labels,
    ) -> matbakh_core::ids::FileId {
        use matbakh_core::ids::{FileId, ObjectKey, UserId};
        use matbakh_core::metadata::{FileRecord, FileStatus};
        use matbakh_core::names::{DisplayName, SafeName};
        let owner = UserId::parse(user).unwrap();
        let ms = (at.unix_timestamp_nanos() / 1_000_000) as u64;
        let id = FileId::new(ms, matbakh_app::random::bytes().unwrap());
        let filename = DisplayName::parse(name).unwrap();
        let record = FileRecord {
            file_id: id,
            key: ObjectKey::original(&owner, id, &SafeName::from_display(&filename)),
            owner,
            filename,
            content_type: matbakh_core::types::ContentType::parse(content_type).unwrap(),
            size: bytes.len() as u64,
            sha256: None,
            status: FileStatus::Pending,
            created_at: at,
            expires_at: Some(at + Duration::from_secs(86_400)),
            version_id: None,
            labels,
        };
        let (t, quota) = (&self.state.table, self.state.limits.user_quota_bytes);
        t.reserve_upload(&record, quota).await.unwrap();
        let s3 = self.state.store.client();
        s3.put_object()
            .bucket(self.state.store.bucket())
            .key(record.key.as_str())
            .body(bytes.into())
            .send()
            .await
            .unwrap();
        t.settle_upload(id, record.key.as_str(), record.size, quota).await.unwrap();
        assert!(t.mark_ready(id, &matbakh_core::metadata::Ready::default()).await.unwrap());
        t.index_search(&record).await.unwrap();
        id
    }

    pub async fn usage(&self, user: &str) -> matbakh_core::quota::Usage {
        self.state.table.usage(&matbakh_core::ids::UserId::parse(user).unwrap()).await.unwrap()
    }
}

/// A table of its own for one test, shaped like the one `scripts/test` created from the
/// template. moto restores a whole table from a snapshot when a transaction fails, which
/// would undo other tests' writes to a shared table.
async fn private_table(moto: &SdkConfig) -> String {
    use aws_sdk_dynamodb::types::{BillingMode, GlobalSecondaryIndex};
    let client = aws_sdk_dynamodb::Client::new(moto);
    let shape = env("TABLE_NAME");
    let desc = client.describe_table().table_name(&shape).send().await.unwrap().table.unwrap();
    let name = format!("{shape}-{}", uuid::Uuid::now_v7().simple());
    let indexes = desc
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            GlobalSecondaryIndex::builder()
                .index_name(g.index_name().unwrap())
                .set_key_schema(Some(g.key_schema().to_vec()))
                .set_projection(g.projection().cloned())
                .build()
                .unwrap()
        })
        .collect();
    client
        .create_table()
        .table_name(&name)
        .set_attribute_definitions(Some(desc.attribute_definitions().to_vec()))
        .set_key_schema(Some(desc.key_schema().to_vec()))
        .set_global_secondary_indexes(Some(indexes))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    name
}

/// One HTTP/1.1 request's head as the tests' small servers read it (the legacy web servers of
/// the migration's tests): its method, path and `Range: bytes=a-b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    pub range: Option<(usize, usize)>,
}

/// Reads one request head from `stream`; `None` if the connection ends before it is whole.
pub async fn read_request_head(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Option<RequestHead> {
    use tokio::io::AsyncReadExt;
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request).to_string();
    let mut words = text.split_whitespace();
    let (method, path) = (words.next().unwrap_or("").to_owned(), words.next().unwrap_or("").to_owned());
    let range = text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let (a, b) =
            name.eq_ignore_ascii_case("range").then_some(value.trim().strip_prefix("bytes=")?.split_once('-')?)?;
        Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?))
    });
    Some(RequestHead { method, path, range })
}

/// Calls `router` in-process: status, headers and the body's bytes (up to 64 MiB).
pub async fn call_router_raw(router: axum::Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let resp = router.oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20).await.unwrap();
    (parts.status, parts.headers, bytes.to_vec())
}

pub async fn call_router(router: axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let (status, _, bytes) = call_router_raw(router, req).await;
    let value =
        if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("every answer is JSON") };
    (status, value)
}

/// Posts `bytes` with the grant's form fields, exactly as a browser form would: every field,
/// then the file as the last part. `tweak` may change fields first.
///
/// An S3 that refuses a request early may close the connection before the body is sent;
/// that arrives as an `Err` and counts as a refusal (see [`refused`]).
pub async fn browser_upload(
    grant: &Value,
    filename: &str,
    bytes: Vec<u8>,
    tweak: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Result<reqwest::Response, reqwest::Error> {
    let mut fields = grant["upload"]["fields"].as_object().unwrap().clone();
    tweak(&mut fields);
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in fields {
        form = form.text(k, v.as_str().unwrap().to_owned());
    }
    form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name(filename.to_owned()));
    http_client().post(grant["upload"]["url"].as_str().unwrap()).multipart(form).send().await
}

/// Whether S3 refused an upload: a 4xx answer, or the connection closed on the request.
pub fn refused(outcome: &Result<reqwest::Response, reqwest::Error>) -> bool {
    match outcome {
        Ok(resp) => resp.status().is_client_error(),
        Err(e) => e.is_request() && !e.is_connect(),
    }
}

/// Whether S3 stored an upload.
pub fn accepted(outcome: &Result<reqwest::Response, reqwest::Error>) -> bool {
    outcome.as_ref().is_ok_and(|r| r.status().is_success())
}

/// The text of the first `<tag>` element of an S3 XML answer (`UploadId`, `ETag`, ...).
pub fn xml_value(xml: &str, tag: &str) -> String {
    let start = xml.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>")).unwrap() + start;
    xml[start..end].to_owned()
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().unwrap()
}

/// Messages received from a queue, as Lambda's event source mapping hands them over: id,
/// receipt handle, body and the system attributes asked for (`ApproximateReceiveCount`).
pub fn as_delivered(messages: &[aws_sdk_sqs::types::Message]) -> aws_lambda_events::event::sqs::SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                .collect();
            serde_json::json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "eventSource": "aws:sqs",
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

/// An SQS batch as Lambda delivers it, from `(messageId, body)` pairs.
pub fn sqs_batch(messages: &[(&str, String)]) -> aws_lambda_events::event::sqs::SqsEvent {
    sqs_batch_delivered(messages, 1)
}

/// [`sqs_batch`] of messages SQS has delivered `receives` times (this one included).
pub fn sqs_batch_delivered(messages: &[(&str, String)], receives: u32) -> aws_lambda_events::event::sqs::SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            serde_json::json!({"messageId": id, "receiptHandle": "r", "body": body, "eventSource": "aws:sqs",
                "attributes": {"ApproximateReceiveCount": receives.to_string()}})
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

/// The body of an SQS message carrying an SNS notification of an S3 ObjectCreated event for
/// `key`, in the shape moto sends (no versionId, no sequencer, the key form-encoded).
pub fn object_created(key: &str, size: usize) -> String {
    let encoded: String = key
        .bytes()
        .map(|b| match b {
            b' ' => "+".to_owned(),
            b if b.is_ascii_alphanumeric() || b"-_.".contains(&b) => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect();
    let s3 = serde_json::json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Post",
        "s3": {"bucket": {"name": "b"}, "object": {"key": encoded, "size": size}}}]});
    serde_json::json!({"Type": "Notification", "Message": s3.to_string()}).to_string()
}

/// A CloudFront distribution of the test's own in moto (one endpoint for every service there),
/// and the adapter that invalidates its paths.
pub async fn distribution() -> matbakh_aws::cdn::Cdn {
    use aws_sdk_cloudfront::types::{DefaultCacheBehavior, DistributionConfig, Origin, Origins, ViewerProtocolPolicy};
    let sdk = moto_sdk().await;
    let origin = Origin::builder().id("results").domain_name("results.s3.test").build().unwrap();
    let config = DistributionConfig::builder()
        .caller_reference(unique_user("distribution"))
        .comment("test")
        .enabled(true)
        .origins(Origins::builder().quantity(1).items(origin).build().unwrap())
        .default_cache_behavior(
            DefaultCacheBehavior::builder()
                .target_origin_id("results")
                .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let out = aws_sdk_cloudfront::Client::new(&sdk).create_distribution().distribution_config(config).send().await;
    let id = out.unwrap().distribution().unwrap().id().to_owned();
    matbakh_aws::cdn::Cdn::new(&sdk, id)
}

/// The paths of every invalidation of `cdn`'s distribution, oldest first.
pub async fn invalidations(cdn: &matbakh_aws::cdn::Cdn) -> Vec<Vec<String>> {
    let client = aws_sdk_cloudfront::Client::new(&moto_sdk().await);
    let id = cdn.distribution_id();
    let list = client.list_invalidations().distribution_id(id).send().await.unwrap();
    let mut out = Vec::new();
    for summary in list.invalidation_list().map(|l| l.items()).unwrap_or_default() {
        let got = client.get_invalidation().distribution_id(id).id(summary.id()).send().await.unwrap();
        let invalidation = got.invalidation().unwrap();
        let paths = invalidation.invalidation_batch().and_then(|b| b.paths()).map(|p| p.items().to_vec());
        out.push((*invalidation.create_time(), paths.unwrap_or_default()));
    }
    out.sort_by_key(|(at, _)| *at);
    out.into_iter().map(|(_, paths)| paths).collect()
}

/// Copies `bytes`, stored under a key of `user`, through `store` copying in parts of 8 MiB
/// above 8 MiB (`S3Store::copying_in_parts`, as objects above `COPY_IN_PARTS_ABOVE` are): a
/// copy keeping the source's headers (a quarantine move) and a public copy with the served
/// ones (`publish_in_parts`, the thumbnailer's). Each holds exactly the bytes, in parts, and no
/// upload is left open. With `versions`
/// the first copy names the version written (Garage keeps none, and reads a copy source's
/// `?versionId=` as part of its key).
pub async fn assert_copies_in_parts(store: &S3Store, user: &str, bytes: &[u8], versions: bool) {
    use matbakh_core::delivery::ServedAs;
    use matbakh_core::ids::ObjectKey;
    const PART: u64 = 8 << 20;
    let parts = (bytes.len() as u64).div_ceil(PART) as i32;
    assert!(parts > 1, "{} bytes go in one part", bytes.len());
    let store = store.clone().copying_in_parts(PART, PART);
    let (s3, bucket) = (store.client(), store.bucket());
    let id = matbakh_core::ids::FileId::new(1_772_366_400_000, [7; 10]);
    let from = ObjectKey::from_stored(format!("users/{user}/{id}/clip.mp4"));
    let put = s3.put_object().bucket(bucket).key(from.as_str()).content_type("video/mp4").metadata("kind", "clip");
    let version = put.body(bytes.to_vec().into()).send().await.unwrap().version_id.filter(|_| versions);
    let quarantined = ObjectKey::quarantined(from.as_str());
    store.copy_version(&from, version.as_deref(), &quarantined).await.unwrap();
    let public = from.public_copy().unwrap();
    let served = ServedAs {
        content_type: "video/mp4".into(),
        cache_control: "public, max-age=60",
        disposition: Some("attachment; filename=\"clip.mp4\"".into()),
    };
    store.publish_in_parts(&from, None, &public, &served).await.unwrap();

    for to in [&quarantined, &public] {
        let got = s3.get_object().bucket(bucket).key(to.as_str()).send().await.unwrap();
        assert_eq!(got.content_type(), Some("video/mp4"), "{to}");
        if to == &public {
            assert_eq!(got.cache_control(), Some("public, max-age=60"));
            assert_eq!(got.content_disposition(), served.disposition.as_deref());
        } else {
            assert_eq!(got.metadata().and_then(|m| m.get("kind")).map(String::as_str), Some("clip"));
        }
        assert!(got.e_tag().unwrap().ends_with(&format!("-{parts}\"")), "{to}: {:?}", got.e_tag());
        assert!(got.body.collect().await.unwrap().into_bytes() == bytes, "{to}: other bytes");
        let open = s3.list_multipart_uploads().bucket(bucket).prefix(to.as_str()).send().await.unwrap();
        assert!(open.uploads().is_empty(), "{to}: {:?}", open.uploads());
    }
}
