//! What the presigned URLs allow, proved against Garage, an S3 that enforces signatures and
//! POST policies (moto enforces neither). Every rejection is checked twice: S3 refuses the
//! request, and no object appears.

use std::sync::Arc;

use http::{Method, StatusCode};
use matbakh_core::clock::FixedClock;
use matbakh_core::ids::{ObjectKey, Sha256};
use serde_json::{Value, json};
use testkit::{Harness, Options, accepted, browser_upload, corpus, http_client, refused, unique_user};

async fn garage(clock: Option<time::OffsetDateTime>) -> Harness {
    let mut opts = Options { s3_on_garage: true, ..Options::default() };
    if let Some(t) = clock {
        opts.clock = Arc::new(FixedClock(t));
    }
    Harness::new(presign::router, opts).await
}

async fn exists(h: &Harness, key: &str) -> bool {
    h.state.store.object_size(&ObjectKey::from_stored(key.to_owned())).await.unwrap().is_some()
}

async fn photo_grant(h: &Harness, sha256: Option<String>) -> (Value, Vec<u8>) {
    let user = unique_user("sec");
    let (name, photo) = corpus("photos/panasonic-orientation6.jpg");
    let mut body = json!({"filename": name, "contentType": "image/jpeg", "size": photo.len()});
    if let Some(s) = sha256 {
        body["sha256"] = json!(s);
    }
    let (status, grant) = h.call(Method::POST, "/v1/uploads", Some(&h.token(&user)), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    (grant, photo)
}

/// Uploads with the grant (after `tweak`) and checks S3 refused it and stored nothing.
async fn assert_refused(
    h: &Harness,
    grant: &Value,
    bytes: Vec<u8>,
    tweak: impl FnOnce(&mut serde_json::Map<String, Value>),
) {
    let resp = browser_upload(grant, "p.jpg", bytes, tweak).await;
    assert!(refused(&resp), "S3 accepted it: {resp:?}");
    assert!(!exists(h, grant["key"].as_str().unwrap()).await, "S3 refused it but stored it");
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn the_exact_upload_the_policy_describes_is_accepted() {
    let h = garage(None).await;
    let (grant, photo) = photo_grant(&h, None).await;
    let resp = browser_upload(&grant, "p.jpg", photo.clone(), |_| {}).await;
    assert!(accepted(&resp), "{resp:?}");
    assert!(exists(&h, grant["key"].as_str().unwrap()).await);
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn one_byte_more_than_declared_is_rejected() {
    let h = garage(None).await;
    let (grant, mut photo) = photo_grant(&h, None).await;
    photo.push(0);
    assert_refused(&h, &grant, photo, |_| {}).await;
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn one_byte_less_than_declared_is_rejected() {
    let h = garage(None).await;
    let (grant, mut photo) = photo_grant(&h, None).await;
    photo.pop();
    assert_refused(&h, &grant, photo, |_| {}).await;
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn another_content_type_is_rejected() {
    let h = garage(None).await;
    let (grant, photo) = photo_grant(&h, None).await;
    assert_refused(&h, &grant, photo, |f| {
        f.insert("Content-Type".into(), json!("text/html"));
    })
    .await;
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_key_outside_the_pinned_one_is_rejected() {
    let h = garage(None).await;
    let (grant, photo) = photo_grant(&h, None).await;
    let victim = format!("users/{}/x/overwrite.jpg", unique_user("victim"));
    assert_refused(&h, &grant, photo, |f| {
        f.insert("key".into(), json!(victim));
    })
    .await;
    assert!(!exists(&h, &victim).await);
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn an_expired_policy_is_rejected() {
    // Signed "an hour ago" with the default 15-minute lifetime.
    let past = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let h = garage(Some(past)).await;
    let (grant, photo) = photo_grant(&h, None).await;
    assert_refused(&h, &grant, photo, |_| {}).await;
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_tampered_signature_or_policy_is_rejected() {
    let h = garage(None).await;
    let (grant, photo) = photo_grant(&h, None).await;
    let sig = grant["upload"]["fields"]["x-amz-signature"].as_str().unwrap().to_owned();
    let flipped = format!("{}{}", if sig.starts_with('0') { '1' } else { '0' }, &sig[1..]);
    assert_refused(&h, &grant, photo.clone(), |f| {
        f.insert("x-amz-signature".into(), json!(flipped));
    })
    .await;

    // A policy rewritten to allow any size, with the original signature.
    let policy = grant["upload"]["fields"]["policy"].as_str().unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = String::from_utf8(b64.decode(policy).unwrap()).unwrap();
    let loose = text
        .replace(&format!("[\"content-length-range\",{0},{0}]", photo.len()), "[\"content-length-range\",0,999999999]");
    assert_ne!(loose, text);
    let mut bigger = photo;
    bigger.extend_from_slice(b"appended");
    assert_refused(&h, &grant, bigger, |f| {
        f.insert("policy".into(), json!(b64.encode(loose)));
    })
    .await;
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_declared_sha256_is_verified_by_s3() {
    let h = garage(None).await;
    let (_, photo) = corpus("photos/panasonic-orientation6.jpg");
    let right = Sha256::of(&photo).to_hex();

    let (grant, photo) = photo_grant(&h, Some(Sha256::of(b"other bytes").to_hex())).await;
    assert_refused(&h, &grant, photo, |_| {}).await;

    let (grant, photo) = photo_grant(&h, Some(right)).await;
    let resp = browser_upload(&grant, "p.jpg", photo, |_| {}).await;
    assert!(accepted(&resp), "{resp:?}");
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn download_urls_are_enforced_too() {
    let h = garage(None).await;
    let user = unique_user("dl");
    let (name, photo) = corpus("photos/panasonic-orientation6.jpg");
    let (_, grant) = h.grant(&user, &name, "image/jpeg", photo.len()).await;
    assert!(accepted(&browser_upload(&grant, &name, photo.clone(), |_| {}).await));
    let path = format!("/v1/files/{}/download", grant["fileId"].as_str().unwrap());

    let (status, dl) = h.call(Method::GET, &path, Some(&h.token(&user)), None).await;
    assert_eq!(status, StatusCode::OK, "{dl}");
    let url = dl["url"].as_str().unwrap().to_owned();
    let ok = http_client().get(&url).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.bytes().await.unwrap().as_ref(), photo.as_slice());

    let at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if &url[at..at + 1] == "0" { "1" } else { "0" };
    let tampered = format!("{}{flipped}{}", &url[..at], &url[at + 1..]);
    assert_eq!(http_client().get(&tampered).send().await.unwrap().status(), 403);
    let other_key = url.replacen(&format!("/{name}?"), "/other.jpg?", 1);
    assert_ne!(other_key, url);
    assert_eq!(http_client().get(&other_key).send().await.unwrap().status(), 403);

    // The same grant, issued by a function whose clock is an hour behind: already expired.
    let past = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let opts = Options {
        s3_on_garage: true,
        clock: Arc::new(FixedClock(past)),
        table: Some(h.table_name.clone()),
        ..Options::default()
    };
    let late = Harness::new(presign::router, opts).await;
    let (status, dl) = late.call(Method::GET, &path, Some(&late.token(&user)), None).await;
    assert_eq!(status, StatusCode::OK);
    let expired = http_client().get(dl["url"].as_str().unwrap()).send().await.unwrap();
    // AWS answers 403 "Request has expired", Garage 400 "Date is too old" (X-Amz-Date plus
    // X-Amz-Expires is in the past).
    let status = expired.status();
    let body = expired.text().await.unwrap().to_lowercase();
    assert!(status.is_client_error() && (body.contains("expired") || body.contains("too old")), "{status}: {body}");
}
