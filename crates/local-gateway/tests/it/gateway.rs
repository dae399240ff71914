//! The gateway in front of a stand-in Lambda invoke API: it authorizes like API Gateway,
//! passes only verified claims on, and answers CORS for the web origin.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use http::{Request, StatusCode};
use local_gateway::{Gateway, Route, router};
use matbakh_api::dev_keys::DevKey;
use serde_json::{Value, json};
use tower::ServiceExt;

type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// A Lambda invoke API that records each event and answers like `presign` would.
async fn fake_lambda() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route(
            "/2015-03-31/functions/{name}/invocations",
            axum::routing::post(
                |State(seen): State<Seen>, Path(name): Path<String>, axum::Json(event): axum::Json<Value>| async move {
                    seen.lock().unwrap().push((name.clone(), event.clone()));
                    if name == "broken" {
                        return axum::Json(json!({"errorType": "Panic", "errorMessage": "boom"}));
                    }
                    let sub = event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"].clone();
                    axum::Json(json!({
                        "statusCode": 201,
                        "headers": {"content-type": "application/json", "x-fn": name},
                        "body": json!({"sub": sub, "path": event["rawPath"]}).to_string(),
                        "isBase64Encoded": false
                    }))
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

async fn gateway(key: &DevKey) -> (Router, Seen) {
    let (endpoint, seen) = fake_lambda().await;
    let route = |m: &str, p: &str, f: &str, auth: &str| Route {
        method: m.into(),
        path: p.into(),
        function: f.into(),
        auth: auth.into(),
    };
    let gw = Gateway {
        routes: vec![
            route("POST", "/v1/uploads", "presign", "JWT"),
            route("GET", "/v1/shares/{token}", "presign", "NONE"),
            route("GET", "/v1/broken", "broken", "JWT"),
        ],
        lambda_endpoint: endpoint,
        web_origins: vec!["http://127.0.0.1:3000".into()],
        legacy_prefix: Some("/uploads/".into()),
        ..crate::bare(key)
    };
    (router(Arc::new(gw)), seen)
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, headers, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() })
}

#[tokio::test]
async fn guarded_routes_need_a_valid_token_and_pass_only_its_claims() {
    let key = DevKey::generate().unwrap();
    let (app, seen) = gateway(&key).await;

    let bad = [
        None,
        Some("Bearer nope".to_owned()),
        Some(format!("Bearer {}", DevKey::generate().unwrap().mint("alice", "iss", "aud", 60).unwrap())),
    ];
    for auth in bad {
        let mut req = Request::post("/v1/uploads");
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let (status, headers, body) = send(&app, req.body(Body::from("{}")).unwrap()).await;
        assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!({"message": "Unauthorized"})), "{auth:?}");
        assert_eq!(headers["www-authenticate"], "Bearer");
    }
    assert!(seen.lock().unwrap().is_empty(), "an unauthorized request reached the function");

    let token = key.mint("alice", "iss", "aud", 60).unwrap();
    let req = Request::post("/v1/uploads")
        .header("authorization", format!("Bearer {token}"))
        .header("x-user-id", "bob")
        .body(Body::from(r#"{"sub": "bob"}"#))
        .unwrap();
    let (status, headers, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["x-fn"], "presign");
    assert_eq!(body, json!({"sub": "alice", "path": "/v1/uploads"}));
    let (name, event) = seen.lock().unwrap()[0].clone();
    assert_eq!(name, "presign");
    assert_eq!(event["routeKey"], "POST /v1/uploads");
    assert_eq!(event["body"], r#"{"sub": "bob"}"#);
}

#[tokio::test]
async fn open_routes_carry_no_identity_even_with_a_token() {
    let key = DevKey::generate().unwrap();
    let (app, seen) = gateway(&key).await;
    let req = Request::get("/v1/shares/abc").body(Body::empty()).unwrap();
    let (status, _, body) = send(&app, req).await;
    assert_eq!((status, &body["sub"]), (StatusCode::CREATED, &Value::Null));
    assert_eq!(seen.lock().unwrap()[0].1["pathParameters"]["token"], "abc");
}

#[tokio::test]
async fn unknown_routes_and_failed_functions_answer_like_api_gateway() {
    let key = DevKey::generate().unwrap();
    let (app, _) = gateway(&key).await;
    let (status, _, body) = send(&app, Request::get("/v1/nothing").body(Body::empty()).unwrap()).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"message": "Not Found"})));
    let token = key.mint("alice", "iss", "aud", 60).unwrap();
    let req =
        Request::get("/v1/broken").header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap();
    let (status, _, body) = send(&app, req).await;
    assert_eq!((status, body), (StatusCode::INTERNAL_SERVER_ERROR, json!({"message": "Internal Server Error"})));
}

#[tokio::test]
async fn cors_answers_the_web_origin_only() {
    let key = DevKey::generate().unwrap();
    let (app, seen) = gateway(&key).await;
    let preflight = |origin: &str| {
        Request::options("/v1/uploads")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .body(Body::empty())
            .unwrap()
    };
    let (status, headers, _) = send(&app, preflight("http://127.0.0.1:3000")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers["access-control-allow-origin"], "http://127.0.0.1:3000");
    assert!(headers["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
    let (_, headers, _) = send(&app, preflight("https://evil.example")).await;
    assert!(!headers.contains_key("access-control-allow-origin"));
    assert!(seen.lock().unwrap().is_empty(), "a preflight reached the function");
}

/// The files CDN's origin: the fake bucket at `endpoint`, signed with local credentials.
fn bucket_origin(endpoint: String) -> local_gateway::cdn::FilesCdn {
    local_gateway::cdn::FilesCdn {
        endpoint,
        bucket: "bucket".into(),
        region: "eu-central-1".into(),
        credentials: matbakh_core::sigv4::Credentials {
            access_key_id: "local".into(),
            secret_access_key: "local".into(),
            session_token: None,
        },
        access_log: None,
    }
}

type Written = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A bucket origin that serves one public copy and one private original, recording each path
/// read, and keeping what is written (signed PUTs) by path.
async fn fake_bucket() -> (String, Arc<Mutex<Vec<String>>>, Written) {
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let written: Written = Arc::default();
    let app = Router::new()
        .fallback(|State((asked, written)): State<(Arc<Mutex<Vec<String>>>, Written)>, req: Request<Body>| async move {
            let path = req.uri().path().to_owned();
            let signed = req.uri().query().is_some_and(|q| q.contains("X-Amz-Signature="));
            if !signed {
                asked.lock().unwrap().push(path.clone());
                return http::Response::builder().status(403).body(Body::empty()).unwrap();
            }
            if req.method() == http::Method::PUT {
                let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
                written.lock().unwrap().push((path, body.to_vec()));
                return http::Response::builder().status(200).body(Body::empty()).unwrap();
            }
            asked.lock().unwrap().push(path.clone());
            let found = path == "/bucket/p/f1/320.webp"
                || path == "/bucket/users/alice/f1/dish.jpg"
                || path == "/bucket/results/users/alice/f1/dish.jpg/e2/w%3A320.webp";
            if !found {
                return http::Response::builder().status(404).body(Body::empty()).unwrap();
            }
            http::Response::builder()
                .header("content-type", "image/webp")
                .header("cache-control", "public, max-age=31536000, immutable")
                .header("etag", "\"abc\"")
                .header("x-amz-request-id", "internal")
                .body(Body::from("webp bytes"))
                .unwrap()
        })
        .with_state((asked.clone(), written.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), asked, written)
}

/// The local files CDN reads public copies with their stored headers, and nothing else of the
/// bucket: a private original's key is refused before the bucket is asked, as the deployed
/// bucket policy refuses the CDN everything outside `p/`.
#[tokio::test]
async fn the_local_files_cdn_serves_public_copies_only() {
    let key = DevKey::generate().unwrap();
    let (origin, asked, _) = fake_bucket().await;
    let gw = Gateway { files_cdn: Some(bucket_origin(origin)), ..crate::bare(&key) };
    let app = router(Arc::new(gw));
    let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();

    let resp = app.clone().oneshot(get("/cdn/p/f1/320.webp")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(
        (resp.headers()["content-type"].to_str().unwrap(), resp.headers()["etag"].to_str().unwrap()),
        ("image/webp", "\"abc\"")
    );
    assert!(resp.headers().get("x-amz-request-id").is_none());
    assert_eq!(axum::body::to_bytes(resp.into_body(), 1024).await.unwrap(), "webp bytes");
    // A name the browser sent encoded is the key it names.
    let resp = app.clone().oneshot(get("/cdn/p/f1/%33%32%30.webp")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    for refused in [
        "/cdn/users/alice/f1/dish.jpg",
        "/cdn/p/../users/alice/f1/dish.jpg",
        "/cdn/p/%2E%2E/users/alice/f1/dish.jpg",
        "/cdn/p/x%2F..%2F..%2Fusers/alice/f1/dish.jpg",
        "/cdn/p/f1/gone.webp",
        "/cdn/derived/f1/320.webp",
    ] {
        let (status, headers, body) = send(&app, get(refused)).await;
        assert_eq!((status, body), (StatusCode::FORBIDDEN, json!({"message": "AccessDenied"})), "{refused}");
        assert_eq!(headers["cache-control"], "no-store");
    }
    let (status, _, _) = send(&app, Request::delete("/cdn/p/f1/320.webp").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        *asked.lock().unwrap(),
        ["/bucket/p/f1/320.webp", "/bucket/p/f1/320.webp", "/bucket/p/f1/gone.webp"],
        "only p/ keys were asked for, signed"
    );
}

/// The local files CDN logs what it answers as CloudFront's standard logging does: one gzipped
/// file per hour under the logging prefix of the logs bucket, lines the reporter reads back.
#[tokio::test]
async fn the_local_files_cdn_logs_its_answers_as_cloudfront_does() {
    use matbakh_core::cdn_log::{Columns, Request as Logged};
    use std::io::Read;
    let key = DevKey::generate().unwrap();
    let (origin, _, written) = fake_bucket().await;
    let gw = Arc::new(Gateway {
        files_cdn: Some(local_gateway::cdn::FilesCdn {
            access_log: Some(local_gateway::cdn::AccessLog::new("logs", "cdn-files/")),
            ..bucket_origin(origin)
        }),
        ..crate::bare(&key)
    });
    let app = router(gw.clone());
    let get = |uri: &str| Request::get(uri).header("host", "localhost:3000").body(Body::empty()).unwrap();
    assert_eq!(app.clone().oneshot(get("/cdn/p/f1/320.webp")).await.unwrap().status(), StatusCode::OK);
    let refused = app.clone().oneshot(get("/cdn/users/alice/f1/dish.jpg")).await.unwrap();
    let refused_bytes = axum::body::to_bytes(refused.into_body(), 1024).await.unwrap().len() as u64;
    assert!(written.lock().unwrap().is_empty(), "nothing is written before the flush");

    let cdn = gw.files_cdn.as_ref().unwrap();
    assert_eq!(cdn.flush_log(&gw.client).await, 1);
    let (path, gz) = written.lock().unwrap()[0].clone();
    // Named by the requests' hour (the one before the flush, or the flush's own at an hour's turn).
    let named = |t: time::OffsetDateTime| format!("/logs/cdn-files/.{}-{:02}.", t.date(), t.hour());
    let now = time::OffsetDateTime::now_utc();
    assert!(path.starts_with(&named(now)) || path.starts_with(&named(now - time::Duration::minutes(1))), "{path}");
    assert!(path.ends_with(".gz"), "{path}");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut text).unwrap();
    let columns = text.lines().find_map(Columns::of).expect("a #Fields line");
    let requests: Vec<Logged> =
        text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| columns.request(l)).collect();
    assert_eq!(
        requests,
        [
            Logged { path: "p/f1/320.webp".into(), bytes: 10, status: 200, hit: false },
            Logged { path: "users/alice/f1/dish.jpg".into(), bytes: refused_bytes, status: 403, hit: false },
        ]
    );
    assert_eq!(cdn.flush_log(&gw.client).await, 0, "what was written is not written again");
}

/// `/t/*` as the files CDN serves it (DECISIONS 32): the edge's mapping in Rust refuses what the
/// CloudFront Function refuses before any origin is asked; a stored result comes from the bucket;
/// otherwise the transformer gets the result key as its path and the signed path in
/// `x-transform-path`, with `Accept` reduced as the function reduces it.
#[tokio::test]
async fn transform_urls_are_mapped_at_the_edge_stored_results_first() {
    use matbakh_core::imgproxy::SigningKeys;
    let key = DevKey::generate().unwrap();
    let (origin, asked, _) = fake_bucket().await;
    let (lambda, seen) = fake_lambda().await;
    let keys = SigningKeys::from_hex("aa01", "bb02").unwrap();
    let gw = Gateway {
        lambda_endpoint: lambda,
        files_cdn: Some(bucket_origin(origin)),
        transforms: Some(local_gateway::transforms::EdgeMapping { keys: keys.clone(), bucket: "bucket".into() }),
        ..crate::bare(&key)
    };
    let app = router(Arc::new(gw));
    let signed = |path: &str| format!("/t/{}{path}", keys.sign(path).unwrap());
    let get = |uri: &str, accept: &str| Request::get(uri).header("accept", accept).body(Body::empty()).unwrap();

    // Stored: served from the bucket; no function runs.
    let stored = signed("/w:320/plain/users/alice/f1/dish.jpg");
    let resp = app.clone().oneshot(get(&stored, "image/webp,*/*")).await.unwrap();
    assert_eq!((resp.status(), resp.headers()["x-cache"].to_str().unwrap()), (StatusCode::OK, "stored result"));
    assert!(seen.lock().unwrap().is_empty());

    // Not stored: the transformer, as the origin group's second member.
    let fresh = signed("/rs:fill:300:200/fn:menu/plain/users/alice/f1/dish.jpg");
    let (status, _, body) = send(&app, get(&fresh, "image/avif,image/webp")).await;
    assert_eq!(status, StatusCode::CREATED, "the fake transformer answered");
    assert_eq!(body["path"], "/results/users/alice/f1/dish.jpg/e2/rt%3Afill%2Cw%3A300%2Ch%3A200%2Cfn%3Amenu.avif");
    let (function, event) = seen.lock().unwrap().pop().unwrap();
    assert_eq!(function, "transformer");
    assert_eq!(event["headers"]["x-transform-path"], fresh.strip_prefix("/t").unwrap());
    assert_eq!(event["headers"]["accept"], "image/avif");

    // Refused at the edge, with the transformer's status and reason: no origin asked.
    let before = asked.lock().unwrap().len();
    for (uri, status, reason) in [
        (signed("/w:320/plain/users/alice/f1/dish.jpg").replace("w:320", "w:321"), 403, "bad_signature"),
        (signed("/br:10/plain/users/alice/f1/dish.jpg"), 400, "unsupported_option"),
        (signed("/pr:x/plain/users/alice/f1/dish.jpg"), 400, "unknown_preset"),
        (signed("/w:1/plain/private/x.jpg"), 403, "forbidden_source"),
        (signed("/w:1/exp:1000/plain/users/alice/f1/dish.jpg"), 403, "expired"),
    ] {
        let (got, headers, _) = send(&app, get(&uri, "*/*")).await;
        assert_eq!((got.as_u16(), headers["x-error-reason"].to_str().unwrap()), (status, reason), "{uri}");
        assert_eq!(headers["cache-control"], "no-store");
    }
    assert_eq!(asked.lock().unwrap().len(), before, "refusals reach no origin");
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn old_file_urls_go_to_the_legacy_redirector_without_identity() {
    let key = DevKey::generate().unwrap();
    let (app, seen) = gateway(&key).await;
    let token = key.mint("alice", "iss", "aud", 60).unwrap();
    let req = Request::get("/uploads/shop/42/menu%20card.jpg?v=2")
        .header("authorization", format!("Bearer {token}"))
        .header("if-none-match", "\"v1\"")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(&app, req).await;
    assert_eq!((status, headers["x-fn"].to_str().unwrap()), (StatusCode::CREATED, "legacy-redirect"));
    let (name, event) = seen.lock().unwrap()[0].clone();
    assert_eq!(name, "legacy-redirect");
    assert_eq!(
        (event["rawPath"].as_str(), event["rawQueryString"].as_str()),
        (Some("/uploads/shop/42/menu%20card.jpg"), Some("v=2"))
    );
    assert_eq!(event["headers"]["if-none-match"], "\"v1\"");
    assert!(event["requestContext"].get("authorizer").is_none(), "a function URL has no authorizer");
    // Outside the prefix, nothing reaches it.
    let (status, _, _) = send(&app, Request::get("/upload/a.jpg").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

/// `cargo lambda watch` stops for good when a function has more than 100 invocations waiting: the
/// gateway sends it at most `MAX_INVOCATIONS_AT_ONCE` of one function, the rest wait their turn.
#[tokio::test]
async fn invocations_of_one_function_beyond_the_limit_wait_in_the_gateway() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use tokio::sync::{Semaphore, mpsc};

    /// A function that holds every invocation until the test releases it.
    struct Held {
        in_flight: AtomicUsize,
        most: AtomicUsize,
        arrived: mpsc::UnboundedSender<()>,
        release: Semaphore,
    }
    let (arrived, mut arrivals) = mpsc::unbounded_channel();
    let held = Arc::new(Held { in_flight: 0.into(), most: 0.into(), arrived, release: Semaphore::new(0) });
    let lambda = Router::new()
        .route(
            "/2015-03-31/functions/{name}/invocations",
            axum::routing::post(|State(h): State<Arc<Held>>| async move {
                let now = h.in_flight.fetch_add(1, SeqCst) + 1;
                h.most.fetch_max(now, SeqCst);
                h.arrived.send(()).unwrap();
                h.release.acquire().await.unwrap().forget();
                h.in_flight.fetch_sub(1, SeqCst);
                axum::Json(json!({"statusCode": 200, "body": "done"}))
            }),
        )
        .with_state(held.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, lambda).await.unwrap() });
    let key = DevKey::generate().unwrap();
    let gw = Gateway {
        routes: vec![Route {
            method: "GET".into(),
            path: "/v1/held".into(),
            function: "held".into(),
            auth: "NONE".into(),
        }],
        lambda_endpoint: format!("http://{addr}"),
        ..crate::bare(&key)
    };
    let app = router(Arc::new(gw));

    let limit = local_gateway::MAX_INVOCATIONS_AT_ONCE;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..=limit {
        let app = app.clone();
        requests
            .spawn(async move { app.oneshot(Request::get("/v1/held").body(Body::empty()).unwrap()).await.unwrap() });
    }
    for _ in 0..limit {
        arrivals.recv().await.unwrap();
    }
    // One more arrives only once one of them is answered.
    held.release.add_permits(1);
    arrivals.recv().await.unwrap();
    held.release.add_permits(limit);
    while let Some(resp) = requests.join_next().await {
        assert_eq!(resp.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(held.most.load(SeqCst), limit, "invocations at once");
}
