//! Benchmark client: one file through the multipart API the way a browser would drive it
//! (create, sign parts 100 at a time, PUT up to `IN_FLIGHT` parts at once straight to S3,
//! complete). The function runs in-process; S3 is whatever `scripts/bench` points it at.
//!
//!   cargo run --release -p multipart --example bench_upload -- FILE [IN_FLIGHT]
//!
//! Prints one JSON line: bytes, parts, seconds, MiB/s.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use http::Request;
use matbakh_api::Authenticator;
use matbakh_api::auth::JwtVerifier;
use matbakh_api::dev_keys::DevKey;
use matbakh_aws::Services;
use matbakh_aws::{FileTable, S3Store};
use matbakh_core::clock::SystemClock;
use matbakh_core::limits::Limits;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(router: &axum::Router, token: &str, method: &str, uri: &str, body: Value) -> Value {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .expect("request");
    let resp = router.clone().oneshot(req).await.expect("router");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.expect("body");
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {uri}: {status} {value}");
    value
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().expect("usage: bench_upload FILE [IN_FLIGHT]");
    let in_flight: usize = args.get(1).map_or(8, |n| n.parse().expect("IN_FLIGHT"));
    let bytes = Arc::new(std::fs::read(path).expect("read FILE"));

    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set (run scripts/bench)"));
    let moto = matbakh_aws::config::load_sdk_config().await;
    let s3 = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(env("BENCH_S3_ENDPOINT"))
        .region(aws_config::Region::new(env("BENCH_S3_REGION")))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            env("BENCH_S3_ACCESS_KEY_ID"),
            env("BENCH_S3_SECRET_ACCESS_KEY"),
            None,
            None,
            "bench",
        ))
        .http_client(matbakh_aws::http::sdk_http_client())
        .load()
        .await;
    let key = DevKey::generate().expect("key");
    let services = Services {
        store: S3Store::new(&s3, env("BENCH_S3_BUCKET"), None).expect("store"),
        table: FileTable::new(&moto, env("TABLE_NAME")),
        limits: Limits { user_quota_bytes: u64::MAX / 2, ..Limits::default() },
        clock: Arc::new(SystemClock),
        files_cdn: None,
        files_edge: None,
        admins: Arc::default(),
        copy_later: None,
    };
    let auth = Arc::new(Authenticator::Jwks(JwtVerifier::new(&key.jwks(), "bench", "bench").expect("verifier")));
    let router = multipart::router(services, auth);
    let user = format!("bench-{}", std::process::id());
    let token = key.mint(&user, "bench", "bench", 3600).expect("token");
    let client = reqwest::Client::builder().no_proxy().build().expect("client");

    let started = Instant::now();
    // Like `aws s3 cp`, every byte is checksummed: CRC64NVME per part (signed into its URL, so
    // S3 checks it on arrival) and for the whole object (checked at completion).
    let crc = |b: &[u8]| {
        use base64::Engine;
        let v = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, b);
        base64::engine::general_purpose::STANDARD.encode(v.to_be_bytes())
    };
    let body = json!({"filename": "bench.mp4", "contentType": "video/mp4", "size": bytes.len(),
                      "checksum": {"algorithm": "CRC64NVME", "value": crc(&bytes)}});
    let session = call(&router, &token, "POST", "/v1/uploads/multipart", body).await;
    let id = session["uploadId"].as_str().expect("uploadId").to_owned();
    let part_size = session["partSize"].as_u64().expect("partSize") as usize;
    let part_count = session["partCount"].as_u64().expect("partCount");
    let mut urls = Vec::new();
    for chunk in (1..=part_count as usize).collect::<Vec<_>>().chunks(100) {
        let checksums: serde_json::Map<String, serde_json::Value> = chunk
            .iter()
            .map(|&n| (n.to_string(), json!(crc(&bytes[(n - 1) * part_size..(n * part_size).min(bytes.len())]))))
            .collect();
        let body = json!({"partNumbers": chunk, "checksums": checksums});
        let signed = call(&router, &token, "POST", &format!("/v1/uploads/{id}/parts"), body).await;
        urls.extend(signed["parts"].as_array().expect("parts").iter().map(|p| {
            let n = p["partNumber"].as_u64().expect("n") as usize;
            let header = p["headers"]["x-amz-checksum-crc64nvme"].as_str().expect("checksum header").to_owned();
            (n, p["url"].as_str().expect("url").to_owned(), header)
        }));
    }
    let semaphore = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut tasks = tokio::task::JoinSet::new();
    for (n, url, checksum) in urls {
        let (client, bytes, permit) =
            (client.clone(), bytes.clone(), semaphore.clone().acquire_owned().await.expect("permit"));
        tasks.spawn(async move {
            let part = bytes[(n - 1) * part_size..(n * part_size).min(bytes.len())].to_vec();
            let resp =
                client.put(url).header("x-amz-checksum-crc64nvme", checksum).body(part).send().await.expect("PUT");
            assert!(resp.status().is_success(), "part {n}: {}", resp.status());
            drop(permit);
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("part task");
    }
    call(&router, &token, "POST", &format!("/v1/uploads/{id}/complete"), json!({})).await;
    let seconds = started.elapsed().as_secs_f64();
    let mib = bytes.len() as f64 / (1024.0 * 1024.0);
    println!(
        "{}",
        json!({"bytes": bytes.len(), "parts": part_count, "inFlight": in_flight, "seconds": seconds, "mibPerSecond": mib / seconds})
    );
}
