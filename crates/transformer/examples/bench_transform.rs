//! The transformer's side of `scripts/bench transform`: the handler in-process over an in-memory
//! store (so no S3 latency is in the numbers), per operation over the given photos.
//! `bench_transform RUNS PHOTO...` prints one JSON line per operation (misses: distinct URLs, each
//! computed), then one for the stored-result path and one for 304 revalidation.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use http::Request;
use tower::ServiceExt;
use transformer::Transformer;
use transformer::memory::MemoryStore;

/// The operations, as imgproxy URL options with their output format; `scripts/bench-images/
/// sharp-transforms.mjs` does the same with sharp.
const OPS: [(&str, &str, &str); 5] = [
    ("fill-300-smart-webp", "rs:fill:300:300/g:sm", "webp"),
    ("width-800-jpeg", "w:800/q:80", "jpg"),
    ("fit-1200-avif", "rs:fit:1200:1200", "avif"),
    ("crop-half-400-webp", "c:0.5:0.5/w:400", "webp"),
    ("width-320-blur-jpeg", "w:320/bl:2", "jpg"),
];

fn percentile(ms: &mut [f64], p: f64) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[((ms.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = args.first().and_then(|r| r.parse().ok()).expect("usage: bench_transform RUNS PHOTO...");
    let store = MemoryStore::default();
    let mut keys = Vec::new();
    for (i, path) in args[1..].iter().enumerate() {
        let key = format!("users/bench/{i}/photo.jpg");
        let version = store.put(&key, std::fs::read(path).expect("readable photo"), Some("image/jpeg"), &[]);
        store.accept(&key, &version);
        keys.push(key);
    }
    let lookup = |name: &str| (name == "TRANSFORM_ALLOW_UNSIGNED").then(|| "true".to_owned());
    let t = Arc::new(Transformer::from_lookup(store, lookup).unwrap());
    let call = |path: String, etag: Option<String>| {
        let t = t.clone();
        async move {
            let mut req = Request::get(path);
            if let Some(e) = etag {
                req = req.header("if-none-match", e);
            }
            let started = Instant::now();
            let resp = transformer::router(t).oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
            let status = resp.status();
            let etag = resp.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
            let _ = axum::body::to_bytes(resp.into_body(), 64 << 20).await.unwrap();
            (started.elapsed().as_secs_f64() * 1000.0, status, etag)
        }
    };
    let (mut hits, mut not_modified) = (Vec::new(), Vec::new());
    for (name, options, ext) in OPS {
        let mut ms = Vec::new();
        for run in 0..runs {
            for key in &keys {
                // A fresh cachebuster per run: every request here is a miss, computed.
                let path = format!("/_/{options}/cb:r{run}/plain/{key}@{ext}");
                let (miss, status, etag) = call(path.clone(), None).await;
                assert_eq!(status, 200, "{path}");
                ms.push(miss);
                let (hit, status, _) = call(path.clone(), None).await;
                assert_eq!(status, 200);
                hits.push(hit);
                let (revalidated, status, _) = call(path, etag).await;
                assert_eq!(status, 304);
                not_modified.push(revalidated);
            }
        }
        let n = ms.len();
        println!(
            r#"{{"op":"{name}","n":{n},"p50_ms":{:.1},"p95_ms":{:.1}}}"#,
            percentile(&mut ms, 0.5),
            percentile(&mut ms, 0.95)
        );
    }
    let n = hits.len();
    println!(
        r#"{{"op":"stored-result","n":{n},"p50_ms":{:.2},"p95_ms":{:.2}}}"#,
        percentile(&mut hits, 0.5),
        percentile(&mut hits, 0.95)
    );
    println!(
        r#"{{"op":"not-modified-304","n":{n},"p50_ms":{:.2},"p95_ms":{:.2}}}"#,
        percentile(&mut not_modified, 0.5),
        percentile(&mut not_modified, 0.95)
    );
}
