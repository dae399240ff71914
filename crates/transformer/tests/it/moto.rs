//! The transformer in-process against moto's S3 and DynamoDB: signed URLs become images of the
//! sizes imgproxy gives, in the format `Accept` allows; results are stored and served again,
//! revalidated with ETags, recomputed when a source outside `users/` changes; a user's file is
//! read at the version its row accepted, never another one put on its key; bad URLs and hostile
//! sources get JSON errors.

use std::sync::Arc;

use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use matbakh_aws::S3Store;
use matbakh_core::ids::ObjectKey;
use matbakh_core::imgproxy::SigningKeys;
use matbakh_imaging::{ImageLimits, inspect};
use testkit::{call_router_raw, corpus, env, moto_sdk, unique_user};
use transformer::{Platform, Transformer};

const KEY: &str = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881";
const SALT: &str = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5";

async fn store() -> S3Store {
    S3Store::new(&moto_sdk().await, env("BUCKET_NAME"), Some(&env("AWS_ENDPOINT_URL"))).unwrap()
}

/// The bucket and the file rows, as the function gets them from `BUCKET_NAME` and `TABLE_NAME`.
async fn platform() -> Platform {
    Platform::from_lookup(&moto_sdk().await, |k| std::env::var(k).ok()).unwrap()
}

/// The settings: the test key pair plus `extra`.
fn signed_settings(extra: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let extra: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name: &str| match name {
        "TRANSFORM_KEYS" => Some(KEY.to_owned()),
        "TRANSFORM_SALTS" => Some(SALT.to_owned()),
        other => extra.iter().find(|(k, _)| k == other).map(|(_, v)| v.clone()),
    }
}

async fn transformer(extra: &[(&str, &str)]) -> Arc<Transformer> {
    Arc::new(Transformer::from_lookup(platform().await, signed_settings(extra)).unwrap())
}

/// A corpus file stored as a user's upload leaves it (READY, its version accepted); its key.
async fn source(rel: &str) -> String {
    settled(rel).await.0
}

fn signed(path: &str) -> String {
    let keys = SigningKeys::from_hex(KEY, SALT).unwrap();
    format!("/{}{path}", keys.sign(path).unwrap())
}

async fn get(t: &Arc<Transformer>, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    call_router_raw(transformer::router(t.clone()), req.body(Body::empty()).unwrap()).await
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Type and size, read back from the bytes.
fn shape(bytes: &[u8]) -> (matbakh_imaging::Format, u32, u32) {
    let p = inspect(bytes, &ImageLimits::default()).unwrap();
    (p.format, p.width, p.height)
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn signed_urls_give_imgproxys_sizes_in_the_accepted_format() {
    use matbakh_imaging::Format as F;
    let t = transformer(&[]).await;
    let dune = source("photos/dune.jpg").await; // 1680x1050
    let url = signed(&format!("/rs:fill:300:200/g:sm/plain/{dune}"));
    for (accept, format, ct) in [
        ("image/avif,image/webp,*/*", F::Avif, "image/avif"),
        ("image/webp,*/*", F::WebP, "image/webp"),
        ("*/*", F::Jpeg, "image/jpeg"),
    ] {
        let (status, h, body) = get(&t, &url, &[("accept", accept)]).await;
        assert_eq!(status, StatusCode::OK, "{accept}: {}", String::from_utf8_lossy(&body));
        assert_eq!((header(&h, "content-type"), shape(&body)), (ct, (format, 300, 200)), "{accept}");
        assert_eq!(header(&h, "vary"), "Accept");
        assert_eq!(header(&h, "cache-control"), "public, max-age=31536000, immutable");
    }
    // Explicit formats win over Accept; fit keeps the aspect; dpr doubles (never past the source).
    for (path, want) in [
        (format!("/rs:fit:300:300/plain/{dune}@webp"), (F::WebP, 300, 188)),
        (format!("/w:400/dpr:2/f:jpg/plain/{dune}"), (F::Jpeg, 800, 500)),
        (format!("/w:1000/dpr:3/f:jpg/plain/{dune}"), (F::Jpeg, 1680, 1050)),
        (format!("/c:0.5:0.5/rs:force:100:100/f:png/plain/{dune}"), (F::Png, 100, 100)),
    ] {
        let (status, _, body) = get(&t, &signed(&path), &[("accept", "image/avif")]).await;
        assert_eq!((status, shape(&body)), (StatusCode::OK, want), "{path}");
    }
    // The portrait photo stands up, and nothing of the camera's metadata comes along.
    let pana = source("photos/panasonic-orientation6.jpg").await;
    let (_, _, body) = get(&t, &signed(&format!("/w:200/plain/{pana}@jpg")), &[]).await;
    assert_eq!(shape(&body), (F::Jpeg, 200, 299));
    let phone = source("photos/phone-13mp.jpg").await;
    let (_, _, body) = get(&t, &signed(&format!("/w:320/plain/{phone}@jpg")), &[]).await;
    let exif = matbakh_imaging::exif::read(&body);
    assert!(!exif.has_gps && exif.camera_make.is_none(), "metadata leaked: {exif:?}");
    // Transparency: PNG for a browser that takes neither modern format.
    let alpha = source("other/alpha.png").await;
    let (_, h, body) = get(&t, &signed(&format!("/w:100/plain/{alpha}")), &[("accept", "image/png,*/*")]).await;
    assert_eq!((header(&h, "content-type"), shape(&body).0), ("image/png", F::Png));
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn results_are_stored_revalidated_and_recomputed_when_the_source_changes() {
    let t = transformer(&[("TRANSFORM_SOURCE_PREFIXES", "users/,public/")]).await;
    let key = source("photos/ladybird.jpg").await;
    let url = signed(&format!("/rs:fill:200:200/plain/{key}"));
    let webp = [("accept", "image/webp")];
    let (s1, h1, b1) = get(&t, &url, &webp).await;
    assert_eq!((s1, header(&h1, "x-result")), (StatusCode::OK, "computed"));
    let etag = header(&h1, "etag").to_owned();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    let (s2, h2, b2) = get(&t, &url, &webp).await;
    assert_eq!((s2, header(&h2, "x-result"), header(&h2, "etag")), (StatusCode::OK, "stored", etag.as_str()));
    assert_eq!(b1, b2);
    // An equivalent URL (aliases, defaults spelled out, other order) is the same result.
    let same = signed(&format!("/resizing_type:fill/h:200/width:200/dpr:1/g:ce:0:0/plain/{key}"));
    let (_, h3, _) = get(&t, &same, &webp).await;
    assert_eq!((header(&h3, "x-result"), header(&h3, "etag")), ("stored", etag.as_str()));
    let (s4, h4, b4) = get(&t, &url, &[("accept", "image/webp"), ("if-none-match", &etag)]).await;
    assert_eq!(
        (s4, b4.len(), header(&h4, "etag"), header(&h4, "vary")),
        (StatusCode::NOT_MODIFIED, 0, etag.as_str(), "Accept")
    );

    // A source outside `users/` has no file row: when it is overwritten, a new ETag, a new
    // result, the old validator no longer matches. (A user's file never changes: a second
    // version on its key is never read, `a_second_version_put_on_a_settled_key_is_never_transformed`.)
    let public = format!("public/{}/ladybird.jpg", unique_user("t"));
    put_version(&public, corpus("photos/ladybird.jpg").1).await;
    let url = signed(&format!("/rs:fill:200:200/plain/{public}"));
    let (_, h6, b6) = get(&t, &url, &webp).await;
    let etag = header(&h6, "etag").to_owned();
    assert_eq!((header(&h6, "x-result"), &b6), ("computed", &b1));
    put_version(&public, corpus("photos/dune.jpg").1).await;
    let (s5, h5, b5) = get(&t, &url, &[("accept", "image/webp"), ("if-none-match", &etag)]).await;
    assert_eq!((s5, header(&h5, "x-result")), (StatusCode::OK, "computed"));
    assert_ne!(header(&h5, "etag"), etag);
    assert_ne!(b5, b1);
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_result_too_large_for_a_lambda_response_is_a_redirect_not_a_413() {
    let t = transformer(&[("TRANSFORM_MAX_INLINE_BYTES", "20000")]).await;
    let key = source("photos/dune.jpg").await;
    let url = signed(&format!("/w:1600/q:95/plain/{key}@png"));
    for round in ["computed", "stored"] {
        let (status, h, body) = get(&t, &url, &[]).await;
        assert_eq!((status, body.len()), (StatusCode::TEMPORARY_REDIRECT, 0), "{round}");
        assert_eq!(header(&h, "cache-control"), "no-store");
        let location = header(&h, "location").to_owned();
        let fetched = reqwest::get(&location).await.unwrap();
        assert_eq!(fetched.status(), 200, "{round}: {location}");
        let bytes = fetched.bytes().await.unwrap();
        assert!(bytes.len() > 20000);
        assert_eq!(shape(&bytes), (matbakh_imaging::Format::Png, 1600, 1000));
    }
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn bad_urls_and_hostile_sources_get_json_errors_that_are_not_cached() {
    let t = transformer(&[]).await;
    let key = source("photos/ladybird.jpg").await;
    let bomb = source("hostile/bomb-header-64250x64250.jpg").await;
    let truncated = source("hostile/truncated.jpg").await;
    let good = signed(&format!("/w:100/plain/{key}"));
    let cases = [
        (good.replace("w:100", "w:101"), 403, "bad_signature"),
        (format!("/unsigned/w:100/plain/{key}"), 403, "bad_signature"),
        (signed(&format!("/w:100/exp:1000/plain/{key}")), 403, "expired"),
        (signed(&format!("/w:100/explode:1/plain/{key}")), 400, "unknown_option"),
        (signed(&format!("/w:big/plain/{key}")), 400, "bad_argument"),
        (signed("/w:100/plain/s3://another-bucket/users/x.jpg"), 403, "forbidden_source"),
        (signed("/w:100/plain/https://example.com/cat.jpg"), 403, "forbidden_source"),
        (signed(&format!("/w:100/plain/{key}/../../secret.jpg")), 403, "forbidden_source"),
        (signed("/w:100/plain/users/nobody/nothing.jpg"), 404, "source_not_found"),
        (signed(&format!("/w:100/dpr:9/plain/{key}")), 422, "over_limit"),
        (signed(&format!("/w:100/plain/{bomb}")), 422, "unprocessable_image"),
        (signed(&format!("/w:100/plain/{truncated}")), 422, "unprocessable_image"),
        (signed(&format!("/w:100000/el:1/plain/{key}")), 422, "unprocessable_image"),
        // No watermark image configured here.
        (signed(&format!("/w:100/wm:0.5/plain/{key}")), 422, "unsupported"),
    ];
    for (uri, status, reason) in cases {
        let (got, h, body) = get(&t, &uri, &[]).await;
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{uri}: not JSON"));
        assert_eq!(
            (got.as_u16(), json["error"].as_str(), header(&h, "x-error-reason")),
            (status, Some(reason), reason),
            "{uri}: {json}"
        );
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(header(&h, "cache-control"), "no-store", "{uri}");
    }
    let (status, _, body) = get(&t, &good, &[]).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn unsigned_urls_only_where_the_deployment_allows_them() {
    let s = platform().await;
    let lookup = |name: &str| (name == "TRANSFORM_ALLOW_UNSIGNED").then(|| "true".to_owned());
    let t = Arc::new(Transformer::from_lookup(s.clone(), lookup).unwrap());
    let key = source("photos/ladybird.jpg").await;
    let (status, _, _) = get(&t, &format!("/insecure/w:50/plain/{key}"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let refused = Transformer::from_lookup(s.clone(), |_| None).err().unwrap();
    assert!(refused.contains("TRANSFORM_KEYS"), "{refused}");
    let both = Transformer::from_lookup(s, signed_settings(&[("TRANSFORM_ALLOW_UNSIGNED", "true")]));
    assert!(both.err().unwrap().contains("pick one"));
}

/// A second pair, as a rotation adds it.
const KEY2: &str = "6753c1ab91a39883f11dfd9b42ef701d2913430b1012bff1c190ad751ac8d02a";
const SALT2: &str = "58de17dd9eb80c84ec0b1a1f418b75e22f7fb40be9f77515057d5be9a839e558";

/// A clock the test moves.
struct TestClock(std::sync::atomic::AtomicI64);

impl matbakh_core::clock::Clock for TestClock {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(self.0.load(std::sync::atomic::Ordering::SeqCst)).unwrap()
    }
}

async fn secrets() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&moto_sdk().await)
}

/// A new secret holding `{"keys", "salts"}`, as the stack's TransformSigningSecret; its name.
async fn signing_secret(keys: &str, salts: &str) -> String {
    let name = unique_user("transform-keys");
    let value = serde_json::json!({"keys": keys, "salts": salts}).to_string();
    secrets().await.create_secret().name(&name).secret_string(value).send().await.unwrap();
    name
}

fn secret_settings(id: &str) -> impl Fn(&str) -> Option<String> + use<> {
    let id = id.to_owned();
    move |name: &str| (name == "TRANSFORM_SECRET_ID").then(|| id.clone())
}

/// Deployed, the pairs come from Secrets Manager (never the environment); a rotation written to
/// the secret reaches a running instance once TRANSFORM_SECRET_REFRESH_SECONDS have passed, and a
/// secret emptied by mistake never turns signature checks off.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn signing_pairs_come_from_secrets_manager_and_rotations_reach_running_instances() {
    let id = signing_secret(KEY, SALT).await;
    let clock = Arc::new(TestClock(1_800_000_000.into()));
    let mut t = Transformer::from_secret(platform().await, moto_sdk().await, secret_settings(&id)).await.unwrap();
    t.clock = clock.clone();
    let t = Arc::new(t);
    let key = source("photos/ladybird.jpg").await;
    let path = format!("/w:60/plain/{key}@webp");
    let second = SigningKeys::from_hex(KEY2, SALT2).unwrap();
    let by_second = format!("/{}{path}", second.sign(&path).unwrap());
    assert_eq!(get(&t, &signed(&path), &[]).await.0, StatusCode::OK);
    assert_eq!(get(&t, &by_second, &[]).await.0, StatusCode::FORBIDDEN);

    let rotated = serde_json::json!({"keys": format!("{KEY2},{KEY}"), "salts": format!("{SALT2},{SALT}")});
    secrets().await.put_secret_value().secret_id(&id).secret_string(rotated.to_string()).send().await.unwrap();
    let refresh = transformer::DEFAULT_SECRET_REFRESH.as_secs() as i64;
    clock.0.fetch_add(refresh - 1, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get(&t, &by_second, &[]).await.0, StatusCode::FORBIDDEN, "read again only after the refresh time");
    clock.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get(&t, &by_second, &[]).await.0, StatusCode::OK);
    assert_eq!(get(&t, &signed(&path), &[]).await.0, StatusCode::OK, "the old pair still works");

    let emptied = serde_json::json!({"keys": "", "salts": ""}).to_string();
    secrets().await.put_secret_value().secret_id(&id).secret_string(emptied).send().await.unwrap();
    clock.0.fetch_add(refresh, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get(&t, &format!("/insecure{path}"), &[]).await.0, StatusCode::FORBIDDEN, "never unsigned");
    assert_eq!(get(&t, &by_second, &[]).await.0, StatusCode::OK, "the last pairs stay");
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_missing_bad_or_doubled_signing_configuration_stops_the_transformer_at_start() {
    let sdk = moto_sdk().await;
    type Env = Box<dyn Fn(&str) -> Option<String>>;
    let start = |env: Env| {
        let sdk = sdk.clone();
        async move { Transformer::from_secret(platform().await, sdk, env).await.err().unwrap() }
    };
    let missing = unique_user("no-such-secret");
    assert!(start(Box::new(secret_settings(&missing))).await.contains(&missing));
    for (keys, salts, why) in [("zz", "00", "not hex"), ("", "", "no key/salt pair"), (KEY, "", "pair up")] {
        let id = signing_secret(keys, salts).await;
        let e = start(Box::new(secret_settings(&id))).await;
        assert!(e.contains(why), "{e}");
    }
    let id = signing_secret(KEY, SALT).await;
    secrets().await.put_secret_value().secret_id(&id).secret_string("not json").send().await.unwrap();
    assert!(start(Box::new(secret_settings(&id))).await.contains("not JSON"));
    let id = signing_secret(KEY, SALT).await;
    for (name, value) in
        [("TRANSFORM_KEYS", KEY), ("TRANSFORM_ALLOW_UNSIGNED", "true"), ("TRANSFORM_PRESETS", "thumb=w:100")]
    {
        let (id, value) = (id.clone(), value.to_owned());
        let env = move |n: &str| if n == name { Some(value.clone()) } else { secret_settings(&id)(n) };
        let e = start(Box::new(env)).await;
        assert!(e.contains("pick one") || e.contains("presets work only unsigned"), "{name}: {e}");
    }
    // The environment's own keys never mix with a secret, and presets need unsigned URLs.
    let e = Transformer::from_lookup(platform().await, secret_settings(&id)).err().unwrap();
    assert!(e.contains("Secrets Manager"), "{e}");
    let e = Transformer::from_lookup(platform().await, signed_settings(&[("TRANSFORM_PRESETS", "thumb=w:100")]));
    assert!(e.err().unwrap().contains("presets work only unsigned"));
}

/// URLs built and signed by imgproxy's official Node client (`@imgproxy/imgproxy-node` 1.1.0,
/// `tests/imgproxy`): accepted, and the images have the sizes and formats asked for.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn urls_from_imgproxys_own_node_client_are_accepted() {
    use matbakh_imaging::Format as F;
    let t = transformer(&[]).await;
    let dune = source("photos/dune.jpg").await; // 1680x1050
    let cases = serde_json::json!({"key": KEY, "salt": SALT, "cases": [
        {"source": dune, "options": {"resizing_type": "fill", "width": 300, "height": 200, "gravity": {"type": "sm"}, "format": "webp"}},
        {"source": dune, "displayAs": "plain", "options": {"width": 500, "format": "jpg"}},
        {"source": dune, "options": {"resize": {"resizing_type": "fit", "width": 400, "height": 400}, "dpr": 2, "format": "avif"}},
        {"source": dune, "options": {"crop": {"width": 0.5, "height": 0.5, "gravity": {"type": "nowe"}}, "size": {"width": 200, "height": 100}, "resizing_type": "force", "quality": 60, "format": "png"}},
        {"source": format!("s3://{}/{dune}", env("BUCKET_NAME")), "options": {"height": 105, "gravity": {"type": "fp", "x": 0.3, "y": 0.7}, "format": "jpg"}},
        {"source": dune, "options": {"width": 100, "format": "jpg", "cachebuster": "v2", "expires": 4_102_444_800_u64, "blur": 1, "sharpen": 0.5, "strip_metadata": true, "auto_rotate": true}},
    ]});
    let paths = crate::options::client_sign(&cases);
    let want = [
        (F::WebP, 300, 200),
        (F::Jpeg, 500, 313),
        (F::Avif, 800, 500),
        (F::Png, 200, 100),
        (F::Jpeg, 168, 105),
        (F::Jpeg, 100, 63),
    ];
    assert_eq!(paths.len(), want.len());
    for (path, want) in paths.iter().zip(want) {
        let (status, _, body) = get(&t, path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}: {}", String::from_utf8_lossy(&body));
        assert_eq!(shape(&body), want, "{path}");
        // The same URL with one option changed keeps the old signature: refused.
        let tampered = path.replacen("/w:", "/w:1", 1).replacen("/h:", "/h:1", 1);
        if tampered != *path {
            assert_eq!(get(&t, &tampered, &[]).await.0, StatusCode::FORBIDDEN, "{tampered}");
        }
    }
}

/// Behind CloudFront the request path is the result key the CloudFront Function tried in S3;
/// the signed path comes in `x-transform-path` and is checked like any URL.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn behind_cloudfront_the_signed_path_comes_in_a_header() {
    let t = transformer(&[]).await;
    let key = source("photos/ladybird.jpg").await;
    let signed_path = signed(&format!("/w:120/plain/{key}@webp"));
    let from_edge = format!("/results/{key}/e1/w:120.webp");
    let (status, _, body) = get(&t, &from_edge, &[("x-transform-path", &signed_path)]).await;
    assert_eq!((status, shape(&body).1), (StatusCode::OK, 120));
    let forged = signed_path.replace("w:120", "w:121");
    assert_eq!(get(&t, &from_edge, &[("x-transform-path", &forged)]).await.0, StatusCode::FORBIDDEN);
    // Elsewhere the header means nothing: the path is the URL.
    let unsigned = format!("/nosig/w:120/plain/{key}");
    assert_eq!(get(&t, &unsigned, &[("x-transform-path", &signed_path)]).await.0, StatusCode::FORBIDDEN);
}

/// `wm` lays the configured image (here the corpus PNG with transparency) over the result: the
/// corner it names changes, the rest of the picture does not.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_configured_watermark_is_laid_over_the_corner_it_names() {
    let mark = corpus("other/alpha.png").1;
    let t = Transformer::from_lookup(platform().await, signed_settings(&[])).unwrap();
    let t = Arc::new(t.with_watermark(&mark).unwrap());
    let key = source("photos/dune.jpg").await;
    let rgb = |b: &[u8]| image::load_from_memory(b).unwrap().to_rgb8();
    let (s1, _, plain) = get(&t, &signed(&format!("/w:400/plain/{key}@png")), &[]).await;
    let (s2, _, marked) = get(&t, &signed(&format!("/w:400/wm:1:soea:0:0:0.5/plain/{key}@png")), &[]).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{}", String::from_utf8_lossy(&marked));
    let (a, b) = (rgb(&plain), rgb(&marked));
    assert_eq!((b.width(), b.height()), (400, 250));
    // The watermark is 200 px wide (half the result) in the south-east corner, 112 px high.
    let differs = |x0: u32, x1: u32, y0: u32, y1: u32| {
        (x0..x1)
            .flat_map(|x| (y0..y1).map(move |y| (x, y)))
            .filter(|&(x, y)| a.get_pixel(x, y) != b.get_pixel(x, y))
            .count()
    };
    assert_eq!(differs(0, 400, 0, 138) + differs(0, 200, 138, 250), 0, "outside the corner nothing changed");
    assert!(differs(200, 400, 138, 250) > 1000, "the corner carries the watermark");
}

/// A real result too large for a buffered Lambda response (the default 4 MiB limit): the 18 MP
/// photo as a 4096 px PNG is a redirect to the stored result, never a 413.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_large_output_at_the_default_limit_is_redirected() {
    let t = transformer(&[]).await;
    let key = source("photos/sony-18mp-progressive.jpg").await;
    let (status, h, body) = get(&t, &signed(&format!("/w:4096/plain/{key}@png")), &[]).await;
    assert_eq!((status, body.len()), (StatusCode::TEMPORARY_REDIRECT, 0));
    let fetched = reqwest::get(header(&h, "location")).await.unwrap().bytes().await.unwrap();
    assert!(fetched.len() as u64 > transformer::DEFAULT_MAX_INLINE_BYTES, "{} bytes", fetched.len());
    assert_eq!(shape(&fetched).0, matbakh_imaging::Format::Png);
    assert_eq!(shape(&fetched).1, 4096);
}

// ---- One accepted object per key (DECISIONS 28, security review 16.1) ----

/// Pins the accepted version as the indexer and the thumbnailer do.
async fn settler(table: &matbakh_aws::table::FileTable) -> matbakh_app::settle::Settler {
    let (uploads, objects) = (std::sync::Arc::new(table.clone()), std::sync::Arc::new(store().await));
    let delivery = matbakh_app::fakes::delivery(objects.clone(), std::sync::Arc::new(matbakh_core::clock::SystemClock));
    matbakh_app::settle::Settler { uploads, objects, delivery, limits: matbakh_core::limits::Limits::default() }
}

async fn files() -> matbakh_aws::table::FileTable {
    matbakh_aws::table::FileTable::new(&moto_sdk().await, env("TABLE_NAME"))
}

/// A new file's PENDING row at `users/{sub}/{fileId}/{name}`, as an upload grant writes it;
/// answers its id and key.
async fn granted(name: &str, size: usize) -> (matbakh_core::ids::FileId, String) {
    use matbakh_core::ids::{ObjectKey, UserId};
    use matbakh_core::metadata::{FileRecord, FileStatus};
    use matbakh_core::names::{DisplayName, SafeName};
    let (now, id) = (time::OffsetDateTime::now_utc(), new_file_id());
    let (owner, filename) = (UserId::parse(&unique_user("t")).unwrap(), DisplayName::parse(name).unwrap());
    let record = FileRecord {
        file_id: id,
        key: ObjectKey::original(&owner, id, &SafeName::from_display(&filename)),
        owner,
        filename,
        content_type: matbakh_core::types::ContentType::parse("image/jpeg").unwrap(),
        size: size as u64,
        sha256: None,
        status: FileStatus::Pending,
        created_at: now,
        expires_at: Some(now + time::Duration::days(1)),
        version_id: None,
        // Public: the tests sign URLs without an expiry, which only a public file's are.
        labels: matbakh_core::labels::Labels {
            visibility: matbakh_core::labels::Visibility::Public,
            ..Default::default()
        },
    };
    files().await.reserve_upload(&record, QUOTA).await.unwrap();
    (id, record.key.as_str().to_owned())
}

const QUOTA: u64 = 1 << 40;

fn new_file_id() -> matbakh_core::ids::FileId {
    let ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    matbakh_core::ids::FileId::new(ms as u64, matbakh_app::random::bytes().unwrap())
}

/// Puts `bytes` at `key` as a new version; answers its version id.
async fn put_version(key: &str, bytes: Vec<u8>) -> String {
    let s = store().await;
    let out = s.client().put_object().bucket(s.bucket()).key(key).body(bytes.into()).send().await.unwrap();
    out.version_id().expect("the files bucket is versioned").to_owned()
}

/// A corpus file uploaded and settled as the platform settles it: granted, its object arrived
/// and pinned as the accepted version (`accept`, as the indexer does), settled, READY. Answers
/// its key and the pinned version.
async fn settled(rel: &str) -> (String, String) {
    let (name, bytes) = corpus(rel);
    let size = bytes.len();
    let (id, key) = granted(&name, size).await;
    let version = put_version(&key, bytes).await;
    let table = files().await;
    let accepted = settler(&table)
        .await
        .accept(id, &matbakh_core::ids::ObjectKey::from_stored(key.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.version.as_deref(), Some(version.as_str()));
    table.settle_upload(id, &key, size as u64, QUOTA).await.unwrap();
    assert!(table.mark_ready(id, &matbakh_core::metadata::Ready::default()).await.unwrap());
    (key, version)
}

/// The keys of the transform results stored for `key`.
async fn results_of(key: &str) -> Vec<String> {
    let s = store().await;
    let out = s.client().list_objects_v2().bucket(s.bucket()).prefix(format!("results/{key}/")).send().await.unwrap();
    out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
}

/// A presigned upload replayed onto a settled key puts a second version there (the indexer
/// removes it, but not before it arrives, nor if removing fails). The transformer reads the
/// version the file row pinned, never the key's current object: the result is the accepted
/// photo's, is stored as such and served again, and a stored result made from another version
/// of the key is never served.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_second_version_put_on_a_settled_key_is_never_transformed() {
    let t = transformer(&[]).await;
    let (key, pinned) = settled("photos/dune.jpg").await; // 1680x1050
    let (reference, _) = settled("photos/dune.jpg").await;
    let stray = put_version(&key, corpus("photos/panasonic-orientation6.jpg").1).await; // portrait
    assert_ne!(stray, pinned);
    let current = store().await.head_object(&ObjectKey::from_stored(key.clone()), None).await.unwrap().unwrap();
    assert_eq!(current.version_id.as_deref(), Some(stray.as_str()), "the stray is the key's current object");

    let options = "/rs:fit:300:300/plain";
    let (s0, _, want) = get(&t, &signed(&format!("{options}/{reference}@png")), &[]).await;
    assert_eq!((s0, shape(&want)), (StatusCode::OK, (matbakh_imaging::Format::Png, 300, 188)));
    let url = signed(&format!("{options}/{key}@png"));
    let (s1, h1, b1) = get(&t, &url, &[]).await;
    assert_eq!((s1, header(&h1, "x-result")), (StatusCode::OK, "computed"), "{}", String::from_utf8_lossy(&b1));
    assert_eq!(shape(&b1), shape(&want), "made from the pinned photo, not the stray");
    assert_eq!(b1, want);
    let (s2, h2, b2) = get(&t, &url, &[]).await;
    assert_eq!((s2, header(&h2, "x-result"), b2 == want), (StatusCode::OK, "stored", true));

    // A result stored as if made from another version of the key (with the accepted version's
    // ETag, so only its version tells it apart) is not served: it is made again.
    let s = store().await;
    let result_key = results_of(&key).await.remove(0);
    let planted = b"a result made from another version".to_vec();
    let etag = s.head_object(&ObjectKey::from_stored(key.clone()), Some(&pinned)).await.unwrap().unwrap().etag.unwrap();
    s.put_result(
        &ObjectKey::from_stored(result_key.clone()),
        planted,
        "image/png",
        None,
        &[("source-etag", &etag), ("source-version", &stray)],
    )
    .await
    .unwrap();
    let (s3, h3, b3) = get(&t, &url, &[]).await;
    assert_eq!((s3, header(&h3, "x-result"), b3 == want), (StatusCode::OK, "computed", true));
}

/// A source under `users/` is transformed only when its file row is READY, names that key and
/// has pinned a version: anything else is 404 `source_not_found`, and nothing is stored.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_users_source_without_an_accepted_version_is_not_found_and_nothing_is_stored() {
    let t = transformer(&[]).await;
    let (name, photo) = corpus("photos/ladybird.jpg");
    let table = files().await;
    // No row at all: an object at a file-shaped key nobody was granted.
    let no_row = format!("users/{}/{}/{name}", unique_user("t"), new_file_id());
    put_version(&no_row, photo.clone()).await;
    // Not a file's key at all (no file id in it).
    let not_a_file = format!("users/{}/f/{name}", unique_user("t"));
    put_version(&not_a_file, photo.clone()).await;
    // PENDING: arrived and pinned, not yet settled.
    let (id, pending) = granted(&name, photo.len()).await;
    put_version(&pending, photo.clone()).await;
    settler(&table)
        .await
        .accept(id, &matbakh_core::ids::ObjectKey::from_stored(pending.clone()))
        .await
        .unwrap()
        .unwrap();
    // READY, but no version pinned.
    let (id, unpinned) = granted(&name, photo.len()).await;
    put_version(&unpinned, photo.clone()).await;
    table.settle_upload(id, &unpinned, photo.len() as u64, QUOTA).await.unwrap();
    assert!(table.mark_ready(id, &matbakh_core::metadata::Ready::default()).await.unwrap());
    // QUARANTINED after it was pinned.
    let (quarantined, _) = settled("photos/ladybird.jpg").await;
    let id = matbakh_core::ids::ObjectKey::file_id_of(&quarantined).unwrap();
    assert!(table.quarantine(id, "test").await.unwrap());
    // Another object under a READY, pinned file's prefix: the row names another key.
    let (ready, _) = settled("photos/ladybird.jpg").await;
    let beside = format!("{}/other.jpg", ready.rsplit_once('/').unwrap().0);
    put_version(&beside, photo.clone()).await;

    for key in [&no_row, &not_a_file, &pending, &unpinned, &quarantined, &beside] {
        let (status, h, body) = get(&t, &signed(&format!("/w:100/plain/{key}@webp")), &[]).await;
        assert_eq!(
            (status, header(&h, "x-error-reason"), header(&h, "cache-control")),
            (StatusCode::NOT_FOUND, "source_not_found", "no-store"),
            "{key}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(results_of(key).await, Vec::<String>::new(), "{key}: nothing stored");
    }
    let (status, _, _) = get(&t, &signed(&format!("/w:100/plain/{ready}@webp")), &[]).await;
    assert_eq!((status, results_of(&ready).await.len()), (StatusCode::OK, 1));
}

/// The transformer reads file rows: without `TABLE_NAME` it stops at start, naming it.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn without_the_files_table_the_transformer_stops_at_start() {
    let bucket = env("BUCKET_NAME");
    let e = Platform::from_lookup(&moto_sdk().await, |k| (k == "BUCKET_NAME").then(|| bucket.clone())).unwrap_err();
    assert!(e.contains("TABLE_NAME"), "{e}");
}
