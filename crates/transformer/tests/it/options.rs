//! imgproxy's open-source options, each in a URL built and signed by imgproxy's official Node
//! client (`tests/imgproxy/sign.mjs`), served by the transformer in-process (its in-memory store:
//! no AWS needed), and its effect checked on the output's pixels, size or headers: rotation
//! swaps the sides, padding adds the background colour, trim removes a uniform border,
//! `max_bytes` output fits, `filename`/`att` set `Content-Disposition`, and so on.

use std::sync::Arc;

use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use matbakh_imaging::{ImageLimits, inspect};
use serde_json::{Value, json};
use testkit::{call_router_raw, corpus};
use transformer::Transformer;
use transformer::memory::MemoryStore;

const KEY: &str = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881";
const SALT: &str = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5";

fn transformer(store: MemoryStore) -> Arc<Transformer<MemoryStore>> {
    let env = |name: &str| match name {
        "TRANSFORM_KEYS" => Some(KEY.to_owned()),
        "TRANSFORM_SALTS" => Some(SALT.to_owned()),
        _ => None,
    };
    Arc::new(Transformer::from_lookup(store, env).unwrap())
}

/// `bytes` stored as a user's settled file named `name`; its key.
fn settled(store: &MemoryStore, name: &str, bytes: Vec<u8>, content_type: &str) -> String {
    let key = format!("users/alice/01JABCDEFGHJKMNPQRSTVWXYZ0/{name}");
    let version = store.put(&key, bytes, Some(content_type), &[]);
    store.accept(&key, &version);
    key
}

/// The paths imgproxy's Node client builds and signs for `cases` (`[source, options]`).
fn client_paths(cases: &[(&str, Value)]) -> Vec<String> {
    let cases: Vec<Value> = cases.iter().map(|(s, o)| json!({"source": s, "options": o})).collect();
    client_sign(&json!({"key": KEY, "salt": SALT, "cases": cases}))
}

/// What `tests/imgproxy/sign.mjs` answers for `input` (`{key, salt, cases}`): the paths built
/// and signed by imgproxy's Node client.
pub fn client_sign(input: &Value) -> Vec<String> {
    let script = &format!("{}/../../tests/imgproxy/sign.mjs", std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let mut child = std::process::Command::new("node")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node (scripts/test installs the client)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "sign.mjs failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn get(t: &Arc<Transformer<MemoryStore>>, path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    call_router_raw(transformer::router(t.clone()), Request::get(path).body(Body::empty()).unwrap()).await
}

async fn ok(t: &Arc<Transformer<MemoryStore>>, path: &str) -> (HeaderMap, Vec<u8>) {
    let (status, headers, body) = get(t, path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {}", String::from_utf8_lossy(&body));
    (headers, body)
}

fn size(bytes: &[u8]) -> (u32, u32) {
    let p = inspect(bytes, &ImageLimits::default()).unwrap();
    (p.width, p.height)
}

/// RGBA pixels of a PNG (lossless: what the pipeline made, exactly).
fn rgba(png: &[u8]) -> image::RgbaImage {
    image::load_from_memory_with_format(png, image::ImageFormat::Png).unwrap().to_rgba8()
}

#[tokio::test]
#[ignore = "needs node and imgproxy's client: scripts/test runs it"]
async fn every_open_source_option_has_its_effect() {
    let t = transformer(MemoryStore::default());
    let store = &t.store;
    let dune = settled(store, "dune.jpg", corpus("photos/dune.jpg").1, "image/jpeg"); // 1680x1050
    let png = |o: Value| {
        let mut o = o;
        o["format"] = json!("png");
        o
    };
    let cases = [
        (dune.as_str(), png(json!({"width": 300}))),
        (&dune, png(json!({"width": 300, "rotate": 90}))),
        (&dune, png(json!({"width": 64, "flip": {"horizontal": true}}))),
        (&dune, png(json!({"width": 64}))),
        (&dune, png(json!({"width": 100, "padding": 10, "background": "ff0000"}))),
        (&dune, png(json!({"width": 200, "pixelate": 10}))),
        (&dune, png(json!({"width": 200, "zoom": 0.5}))),
        (&dune, png(json!({"height": 100, "min_width": 300}))),
        (
            &dune,
            png(
                json!({"resize": {"resizing_type": "fit", "width": 300, "height": 300}, "extend": {"extend": true, "gravity": {"type": "no"}}}),
            ),
        ),
        (
            &dune,
            png(
                json!({"resize": {"resizing_type": "fit", "width": 300, "height": 300}, "extend_aspect_ratio": {"extend": true}, "background": "00ff00"}),
            ),
        ),
    ];
    let paths = client_paths(&cases);
    let mut out = Vec::new();
    for p in &paths {
        out.push(ok(&t, p).await.1);
    }
    let [plain, rotated, flipped, unflipped, padded, pixelated, zoomed, min_width, extended, extended_ar] =
        <[Vec<u8>; 10]>::try_from(out).unwrap();
    assert_eq!(size(&plain), (300, 188));
    assert_eq!(size(&rotated), (300, 480), "rotation swaps the sides (1050 x 1680, then 300 wide)");
    let (f, u) = (rgba(&flipped), rgba(&unflipped));
    assert_eq!(f.dimensions(), u.dimensions());
    for y in [0, 10, 39] {
        assert_eq!(f.get_pixel(0, y), u.get_pixel(63, y), "flipped: the left edge is the right one");
    }
    assert_ne!(f, u);
    let p = rgba(&padded);
    assert_eq!(p.dimensions(), (120, 83), "100 x 63 and 10 on every side");
    for (x, y) in [(0, 0), (119, 82), (5, 40), (60, 81)] {
        assert_eq!(p.get_pixel(x, y).0, [255, 0, 0, 255], "padding in the background colour at {x},{y}");
    }
    assert_ne!(p.get_pixel(60, 40).0, [255, 0, 0, 255], "the photo inside");
    let px = rgba(&pixelated);
    for (bx, by) in [(0, 0), (50, 30), (190, 110)] {
        let first = px.get_pixel(bx, by);
        assert!((bx..bx + 10).all(|x| (by..by + 10).all(|y| px.get_pixel(x, y) == first)), "block {bx},{by}");
    }
    assert_eq!(size(&zoomed), (100, 63), "zoom multiplies the size");
    assert_eq!(size(&min_width), (300, 100), "at least 300 wide, cut to the height asked");
    let e = rgba(&extended);
    assert_eq!(e.dimensions(), (300, 300), "extended to the box");
    assert_eq!(
        (e.get_pixel(150, 0).0[3], e.get_pixel(150, 299).0[3]),
        (255, 0),
        "north: photo on top, transparent below"
    );
    let ar = rgba(&extended_ar);
    assert_eq!(ar.dimensions(), (300, 300), "extended to the 1:1 ratio asked");
    assert_eq!(ar.get_pixel(150, 0).0, [0, 255, 0, 255], "centred, the background above");
}

#[tokio::test]
#[ignore = "needs node and imgproxy's client: scripts/test runs it"]
async fn trim_removes_a_uniform_border() {
    let t = transformer(MemoryStore::default());
    let store = &t.store;
    let dune = settled(store, "dune.jpg", corpus("photos/dune.jpg").1, "image/jpeg");
    // A photo with a white frame, made by the transformer itself (padding on white, lossless).
    let framed = client_paths(&[(&dune, json!({"width": 200, "padding": 20, "background": "fff", "format": "png"}))]);
    let framed = ok(&t, &framed[0]).await.1;
    assert_eq!(size(&framed), (240, 165));
    let source = settled(store, "framed.png", framed, "image/png");
    let trimmed = client_paths(&[
        (&source, json!({"trim": {"threshold": 10}, "format": "png"})),
        (&source, json!({"trim": {"threshold": 10, "color": "ffffff"}, "format": "png"})),
    ]);
    for p in trimmed {
        assert_eq!(size(&ok(&t, &p).await.1), (200, 125), "{p}: the frame is gone, the photo whole");
    }
}

#[tokio::test]
#[ignore = "needs node and imgproxy's client: scripts/test runs it"]
async fn encoding_options_quality_per_format_and_max_bytes() {
    let t = transformer(MemoryStore::default());
    let store = &t.store;
    let dune = settled(store, "dune.jpg", corpus("photos/dune.jpg").1, "image/jpeg");
    let paths = client_paths(&[
        (&dune, json!({"width": 800, "format": "jpg", "format_quality": [{"format": "jpg", "quality": 20}]})),
        (&dune, json!({"width": 800, "format": "jpg", "format_quality": [{"format": "jpg", "quality": 90}]})),
        (&dune, json!({"width": 800, "format": "jpg"})),
        (&dune, json!({"width": 800, "format": "jpg", "max_bytes": 20000})),
        (&dune, json!({"width": 800, "format": "webp", "max_bytes": 15000})),
    ]);
    let mut sizes = Vec::new();
    for p in &paths {
        sizes.push(ok(&t, p).await.1.len());
    }
    assert!(sizes[0] < sizes[1], "fq:jpg:20 is smaller than fq:jpg:90: {sizes:?}");
    assert!(sizes[2] > 20_000, "the default quality does not fit 20 kB ({}), so max_bytes had work", sizes[2]);
    assert!(sizes[3] <= 20_000, "mb:20000 fits: {}", sizes[3]);
    assert!(sizes[4] <= 15_000, "mb:15000 fits in WebP too: {}", sizes[4]);
}

#[tokio::test]
#[ignore = "needs node and imgproxy's client: scripts/test runs it"]
async fn names_attachments_raw_skip_and_metadata_options() {
    let t = transformer(MemoryStore::default());
    let store = &t.store;
    let (_, original) = corpus("photos/dune.jpg");
    let dune = settled(store, "dune.jpg", original.clone(), "image/jpeg");
    let (_, icc_photo) = corpus("other/icc-profile.jpeg");
    let icc = settled(store, "icc.jpeg", icc_photo, "image/jpeg");
    let paths = client_paths(&[
        (&dune, json!({"width": 100, "format": "jpg", "filename": {"name": "menu"}})),
        (&dune, json!({"width": 100, "format": "webp", "return_attachment": true})),
        (&dune, json!({"width": 100, "raw": true})),
        (&dune, json!({"width": 100, "skip_processing": ["jpg"]})),
        (&dune, json!({"width": 100, "skip_processing": ["jpg"], "format": "png"})),
        (&dune, json!({"width": 100, "format": "jpg", "enforce_thumbnail": false})),
        (&icc, json!({"width": 8, "format": "jpg", "strip_color_profile": false})),
        (&icc, json!({"width": 8, "format": "jpg"})),
        (&dune, json!({"width": 100, "format": "jpg", "keep_copyright": false})),
        (&icc, json!({"width": 8, "format": "webp", "strip_color_profile": false})),
        (&icc, json!({"width": 8, "format": "png", "strip_color_profile": false})),
        (&icc, json!({"width": 8, "format": "avif", "strip_color_profile": false})),
    ]);
    let (h, _) = ok(&t, &paths[0]).await;
    let disposition = |h: &HeaderMap| h.get("content-disposition").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(disposition(&h).as_deref(), Some("inline; filename=\"menu.jpg\"; filename*=UTF-8''menu.jpg"));
    let (h, _) = ok(&t, &paths[1]).await;
    assert_eq!(disposition(&h).as_deref(), Some("attachment; filename=\"dune.webp\"; filename*=UTF-8''dune.webp"));
    // Served again from the stored result: the header was stored with it.
    let (h, _) = ok(&t, &paths[1]).await;
    assert_eq!((h["x-result"].to_str().unwrap(), disposition(&h).is_some()), ("stored", true));
    for p in &paths[2..4] {
        let (h, body) = ok(&t, p).await;
        assert!(body == original, "{p}: the source as it is");
        assert_eq!(h["content-type"], "image/jpeg");
    }
    let (h, body) = ok(&t, &paths[4]).await;
    assert_eq!(
        (h["content-type"].to_str().unwrap(), size(&body)),
        ("image/png", (100, 63)),
        "another format: processed"
    );
    assert_eq!(size(&ok(&t, &paths[5]).await.1), (100, 63), "eth:0 is the default");
    let has_icc = |b: &[u8]| b.windows(12).any(|w| w == b"ICC_PROFILE\0");
    assert!(has_icc(&ok(&t, &paths[6]).await.1), "scp:0 keeps the profile");
    assert!(!has_icc(&ok(&t, &paths[7]).await.1), "by default the result is converted to sRGB, no profile");
    let (_, plain) = ok(&t, &paths[8]).await;
    assert!(!plain.windows(6).any(|w| w == b"Exif\0\0"), "kcr:0: no EXIF at all");
    let webp = ok(&t, &paths[9]).await.1;
    assert!(
        webp.windows(4).any(|w| w == b"ICCP") && webp.windows(4).any(|w| w == b"VP8X"),
        "WebP keeps it (VP8X, ICCP)"
    );
    assert_eq!(size(&webp), (8, 8), "and stays a WebP that decodes");
    matbakh_imaging::load(&webp, &ImageLimits::default(), 0).expect("a valid WebP");
    let png = ok(&t, &paths[10]).await.1;
    assert!(png.windows(4).any(|w| w == b"iCCP"), "PNG keeps it (iCCP)");
    let avif = ok(&t, &paths[11]).await.1;
    assert!(avif.windows(8).any(|w| w == b"colrprof"), "AVIF keeps it (colr of type prof)");
    assert_eq!(size(&avif), (8, 8), "and stays an AVIF that decodes");
    matbakh_imaging::load(&avif, &ImageLimits::default(), 0).expect("a valid AVIF");
}

/// `kcr` (on by default, as in imgproxy): a source's EXIF copyright reaches JPEG, WebP, PNG and
/// AVIF results, and nothing else of its EXIF (its GPS position least of all).
#[tokio::test]
#[ignore = "needs node and imgproxy's client: scripts/test runs it"]
async fn the_copyright_is_kept_and_nothing_else() {
    let t = transformer(MemoryStore::default());
    let store = &t.store;
    // The phone photo carries GPS; give it a copyright too (an APP1 EXIF segment after SOI).
    let (_, phone) = corpus("photos/phone-13mp.jpg");
    let exif = matbakh_imaging::exif::copyright_block("© Matbakh Kitchen 2026").unwrap();
    let mut with_copyright = phone[..2].to_vec();
    with_copyright.extend_from_slice(&[0xFF, 0xE1]);
    with_copyright.extend_from_slice(&((exif.len() + 8) as u16).to_be_bytes());
    with_copyright.extend_from_slice(b"Exif\0\0");
    with_copyright.extend_from_slice(&exif);
    with_copyright.extend_from_slice(&phone[2..]);
    let source = settled(store, "phone.jpg", with_copyright, "image/jpeg");
    let paths = client_paths(&[
        (&source, json!({"width": 100, "format": "jpg"})),
        (&source, json!({"width": 100, "format": "jpg", "keep_copyright": false})),
        (&source, json!({"width": 100, "format": "webp"})),
        (&source, json!({"width": 100, "format": "png"})),
        (&source, json!({"width": 100, "format": "avif"})),
    ]);
    for path in [&paths[0], &paths[2], &paths[3], &paths[4]] {
        let kept = ok(&t, path).await.1;
        let summary = matbakh_imaging::exif::read(&kept);
        assert_eq!(summary.copyright.as_deref(), Some("© Matbakh Kitchen 2026"), "{path}");
        assert!(!summary.has_gps && summary.camera_model.is_none(), "only the copyright: {summary:?}");
        matbakh_imaging::load(&kept, &ImageLimits::default(), 0).expect("a valid image");
    }
    assert_eq!(matbakh_imaging::exif::read(&ok(&t, &paths[1]).await.1).copyright, None);
}

#[tokio::test]
#[ignore = "needs node and imgproxy's client: scripts/test runs it"]
async fn options_of_imgproxy_pro_are_refused_naming_them() {
    let t = transformer(MemoryStore::default());
    let store = &t.store;
    let dune = settled(store, "dune.jpg", corpus("photos/dune.jpg").1, "image/jpeg");
    let paths = client_paths(&[
        (&dune, json!({"width": 100, "brightness": 10})),
        (&dune, json!({"width": 100, "resizing_algorithm": "lanczos3"})),
        (&dune, json!({"width": 100, "max_src_resolution": 10})),
        (&dune, json!({"width": 100, "preserve_hdr": true})),
        (&dune, json!({"width": 100, "enforce_thumbnail": true})),
    ]);
    for (path, name) in paths.iter().zip(["br", "ra", "msr", "preserve_hdr", "enforce_thumbnail"]) {
        let (status, headers, body) = get(&t, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(headers["x-error-reason"], "unsupported_option");
        let message: Value = serde_json::from_slice(&body).unwrap();
        assert!(message["message"].as_str().unwrap().starts_with(&format!("{name} is not available")), "{message}");
        assert!(store.keys_under("results/").is_empty(), "nothing stored for a refusal");
    }
}
