//! The files CDN's transform path behind a real cache: `scripts/bench cdn` (issue 18 §6).
//!
//! `bench_cdn VARNISHD WORKDIR REQUESTS PHOTO...` starts, in one process:
//! - the origin: the transformer's router over an in-memory store holding [`SOURCES`] files (the
//!   photos, each under many keys), as the `/t/*` behaviour's origin group reaches it (the
//!   result key as path, the signed path in `x-transform-path`; stored results answer at once);
//! - Varnish (`VARNISHD`, Debian's), configured like the template's `TransformCachePolicy`: the
//!   key is the path after the edge mapping plus the Accept class, the TTL at most a day;
//! - the edge mapping of the CloudFront Function, done by the Rust canonicaliser it is held equal
//!   to (`core::imgproxy`, shared vectors): signature check, result key, Accept class.
//!
//! Then it replays `REQUESTS` image views twice, each time another sequence of the same mix:
//! Zipf popularity (s = 1) over the sources, the widths a card's `srcset` offers as browsers pick
//! them, the browsers' format support. Each view is a signed transform URL as
//! `POST /v1/files/{id}/image-urls` makes it (the `card` preset, an explicit format). The first
//! replay starts from an empty cache (`cold`); the second is the one measured (`after_warm_up`:
//! the cache as the first left it, as a CDN is after a day of traffic). Then the second's views
//! with a URL that changes every time, as per-request presigned S3 URLs would be. It prints one
//! JSON line: hits, origin requests per 1,000 views, p50/p95 at the proxy for each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Request, StatusCode};
use matbakh_core::cdn::edge_path;
use matbakh_core::imgproxy::{Format, OutputChoice, Presets, SigningKeys, SourcePolicy, TransformUrl, signed_url};
use tower::ServiceExt;
use transformer::Transformer;
use transformer::memory::MemoryStore;

/// Distinct images in the mix (each a file of its own, so each its own cache entries).
const SOURCES: usize = 1000;
/// The card preset (template default `ImagePresets`) at the widths its `srcset` offers, with how
/// often browsers pick each (a 260 px card: 1x desktops 320, 2x phones and laptops 640, 3x
/// phones 960).
const WIDTHS: [(u32, f64); 3] = [(320, 0.40), (640, 0.45), (960, 0.15)];
/// Browsers by the first `<source>` they take, and the Accept header they send with it.
const BROWSERS: [(Format, &str, f64); 3] = [
    (Format::Avif, "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", 0.80),
    (Format::WebP, "image/webp,*/*", 0.15),
    (Format::Jpeg, "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5", 0.05),
];
const KEY: &str = "62656e63682d6b6579"; // "bench-key"
const SALT: &str = "62656e63682d73616c74";
/// The `card` preset (`rt:fill/w:400/h:300/g:sm`) as image-urls scales it to a width.
const PRESET: &str = "rt:fill/g:sm";
/// Views in flight at once.
const CONCURRENCY: usize = 8;

/// xorshift64*: a fixed, seeded sequence (the same mix every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<T: Copy>(&mut self, weighted: &[(T, f64)]) -> T {
        let mut r = self.next();
        for (v, w) in weighted {
            if r < *w {
                return *v;
            }
            r -= w;
        }
        weighted[weighted.len() - 1].0
    }
}

struct View {
    /// The signed transform path (what follows `/t`).
    path: String,
    accept: &'static str,
}

fn percentile(ms: &mut [f64], p: f64) -> f64 {
    if ms.is_empty() {
        return f64::NAN;
    }
    ms.sort_by(f64::total_cmp);
    ms[((ms.len() as f64 - 1.0) * p).round() as usize]
}

/// The views: Zipf over the sources, a width and a browser each (`seed` picks the sequence).
fn views(n: usize, keys: &SigningKeys, seed: u64) -> Vec<View> {
    let harmonic: f64 = (1..=SOURCES).map(|k| 1.0 / k as f64).sum();
    let popularity: Vec<(usize, f64)> = (1..=SOURCES).map(|k| (k - 1, 1.0 / k as f64 / harmonic)).collect();
    let widths: Vec<(u32, f64)> = WIDTHS.to_vec();
    let browsers: Vec<(usize, f64)> = BROWSERS.iter().enumerate().map(|(i, b)| (i, b.2)).collect();
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let source = rng.pick(&popularity);
            let width = rng.pick(&widths);
            let (format, accept, _) = BROWSERS[rng.pick(&browsers)];
            let mut options = matbakh_core::imgproxy::Options::default();
            for segment in PRESET.split('/') {
                options.apply(segment, &Presets::default()).expect("the preset parses");
            }
            options.apply(&format!("w:{width}"), &Presets::default()).expect("a width");
            options.apply(&format!("h:{}", width * 3 / 4), &Presets::default()).expect("a height");
            let key = format!("users/bench/{}/photo.jpg", file_id(source));
            let path = signed_url("", keys, &options, &key, format).expect("a signed URL");
            View { path, accept }
        })
        .collect()
}

/// A file id for source `i` (the transformer reads the accepted version of `users/*/{id}/...`).
fn file_id(i: usize) -> matbakh_core::ids::FileId {
    matbakh_core::ids::FileId::new(1_700_000_000_000 + i as u64, [7; 10])
}

/// The edge mapping: the result key's path and the Accept class, as the function sets them.
fn edge(view: &View, keys: &SigningKeys, sources: &SourcePolicy) -> (String, &'static str) {
    let url = TransformUrl::parse(&view.path, keys, &Presets::default(), sources, 0).expect("a valid URL");
    let class = if view.accept.contains("image/avif") {
        "image/avif"
    } else if view.accept.contains("image/webp") {
        "image/webp"
    } else {
        "image/jpeg"
    };
    let key = url.result_key(matbakh_imaging::transform::ENCODER_VERSION, OutputChoice::new(&url, class));
    (edge_path(key.as_str()), class)
}

#[derive(Default)]
struct Outcome {
    hits: usize,
    latencies: Vec<f64>,
    hit_latencies: Vec<f64>,
}

async fn replay(
    client: &reqwest::Client,
    varnish: &str,
    views: &[View],
    keys: &SigningKeys,
    sources: &SourcePolicy,
    unique: bool,
) -> Outcome {
    let mapped: Vec<(String, &'static str, String)> = views
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let (path, class) = edge(v, keys, sources);
            // Per-request presigned URLs: every one differs (a signature, a date) and CloudFront
            // must pass the query to S3, so it is part of the cache key.
            let path = if unique { format!("{path}?X-Amz-Signature={i:016x}") } else { path };
            (path, class, v.path.clone())
        })
        .collect();
    let results = Arc::new(std::sync::Mutex::new(vec![(false, 0.0); views.len()]));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mapped = Arc::new(mapped);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (client, results, next, mapped) = (client.clone(), results.clone(), next.clone(), mapped.clone());
        let varnish = varnish.to_owned();
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((path, class, signed)) = mapped.get(i) else { return };
                let started = Instant::now();
                let resp = client
                    .get(format!("{varnish}{path}"))
                    .header("accept", *class)
                    .header("x-transform-path", signed)
                    .send()
                    .await
                    .expect("Varnish answers");
                let hit = resp.headers().get("x-cache").is_some_and(|v| v == "HIT");
                assert_eq!(resp.status(), StatusCode::OK, "{path}");
                let _ = resp.bytes().await.expect("a body");
                results.lock().expect("results")[i] = (hit, started.elapsed().as_secs_f64() * 1000.0);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let results = results.lock().expect("results").clone();
    let mut o = Outcome::default();
    for (hit, ms) in results {
        o.hits += usize::from(hit);
        o.latencies.push(ms);
        if hit {
            o.hit_latencies.push(ms);
        }
    }
    o
}

fn report(name: &str, o: &mut Outcome) -> String {
    let n = o.latencies.len();
    // JSON has no NaN: a percentile of nothing (no hits) is null.
    let ms = |v: f64| if v.is_nan() { "null".to_owned() } else { format!("{v:.2}") };
    format!(
        r#""{name}":{{"views":{n},"hit_ratio":{:.4},"origin_requests_per_1000_views":{:.1},"p50_ms":{},"p95_ms":{},"hit_p50_ms":{},"hit_p95_ms":{}}}"#,
        o.hits as f64 / n as f64,
        (n - o.hits) as f64 * 1000.0 / n as f64,
        ms(percentile(&mut o.latencies, 0.5)),
        ms(percentile(&mut o.latencies, 0.95)),
        ms(percentile(&mut o.hit_latencies, 0.5)),
        ms(percentile(&mut o.hit_latencies, 0.95)),
    )
}

/// The origin: every request to the transformer's router, as the origin group's second member
/// (the transformer finds a stored result itself, as the first member, S3, would).
async fn origin(t: Arc<Transformer<MemoryStore>>, req: Request<Body>) -> axum::response::Response {
    let (mut parts, body) = req.into_parts();
    // The query of a presigned URL means nothing to the transformer (S3 would check it).
    if let Some(path) = parts.uri.path().parse().ok().filter(|_| parts.uri.query().is_some()) {
        parts.uri = path;
    }
    transformer::router(t).oneshot(Request::from_parts(parts, body)).await.expect("infallible")
}

fn vcl(origin_port: u16) -> String {
    format!(
        r#"vcl 4.1;
backend origin {{ .host = "127.0.0.1"; .port = "{origin_port}"; .first_byte_timeout = 120s; .between_bytes_timeout = 120s; }}
# The /t/* behaviour's TransformCachePolicy: the edge mapping already made the path the result
# key and Accept one class; both (and the query, if any) are the key; at most a day.
sub vcl_recv {{ return (hash); }}
sub vcl_hash {{ hash_data(req.url); hash_data(req.http.Accept); return (lookup); }}
sub vcl_backend_response {{ if (beresp.ttl > 86400s) {{ set beresp.ttl = 86400s; }} unset beresp.http.Vary; }}
sub vcl_deliver {{ if (obj.hits > 0) {{ set resp.http.X-Cache = "HIT"; }} else {{ set resp.http.X-Cache = "MISS"; }} }}
"#
    )
}

async fn wait_for(addr: &str) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing listens on {addr}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [varnishd, workdir, requests, photos @ ..] = &args[..] else {
        panic!("usage: bench_cdn VARNISHD WORKDIR REQUESTS PHOTO...")
    };
    let requests: usize = requests.parse().expect("REQUESTS is a number");
    let store = MemoryStore::default();
    let bytes: Vec<Vec<u8>> = photos.iter().map(|p| std::fs::read(p).expect("readable photo")).collect();
    for i in 0..SOURCES {
        let key = format!("users/bench/{}/photo.jpg", file_id(i));
        let version = store.put(&key, bytes[i % bytes.len()].clone(), Some("image/jpeg"), &[]);
        store.accept(&key, &version);
    }
    let lookup = |name: &str| match name {
        "TRANSFORM_KEYS" => Some(KEY.to_owned()),
        "TRANSFORM_SALTS" => Some(SALT.to_owned()),
        _ => None,
    };
    let t = Arc::new(Transformer::from_lookup(store, lookup).expect("a transformer"));
    let sources = t.sources.clone();
    let keys = SigningKeys::from_hex(KEY, SALT).expect("keys");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let origin_port = listener.local_addr().expect("bound").port();
    let app = axum::Router::new().fallback({
        let t = t.clone();
        move |req: Request<Body>| origin(t.clone(), req)
    });
    tokio::spawn(async move { axum::serve(listener, app).await.expect("the origin serves") });

    let varnish_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        l.local_addr().expect("bound").port()
    };
    let vcl_file = format!("{workdir}/bench.vcl");
    std::fs::write(&vcl_file, vcl(origin_port)).expect("the VCL written");
    let mut varnish = std::process::Command::new(varnishd)
        .args(["-F", "-n", &format!("{workdir}/varnish"), "-a", &format!("127.0.0.1:{varnish_port}")])
        .args(["-f", &vcl_file, "-s", "malloc,1g", "-p", "thread_pool_min=20", "-p", "default_grace=0"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("varnishd starts");
    wait_for(&format!("127.0.0.1:{varnish_port}")).await;
    let varnish_url = format!("http://127.0.0.1:{varnish_port}");
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(CONCURRENCY).build().expect("a client");

    let started = Instant::now();
    let first = views(requests, &keys, 0x9E37_79B9_7F4A_7C15);
    let mut cold = replay(&client, &varnish_url, &first, &keys, &sources, false).await;
    let views = views(requests, &keys, 0xD1B5_4A32_D192_ED03);
    let mut warm = replay(&client, &varnish_url, &views, &keys, &sources, false).await;
    let took = started.elapsed().as_secs_f64();
    let mut presigned = replay(&client, &varnish_url, &views, &keys, &sources, true).await;
    let _ = varnish.kill();
    let _ = varnish.wait();
    let distinct: std::collections::HashSet<_> = views.iter().map(|v| (&v.path, v.accept)).collect();
    println!(
        "{{{},{},{},\"distinct_urls\":{},\"seconds\":{took:.1}}}",
        report("after_warm_up", &mut warm),
        report("cold", &mut cold),
        report("presigned_per_request", &mut presigned),
        distinct.len()
    );
}
