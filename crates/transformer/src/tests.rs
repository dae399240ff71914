//! The transformer in-process on its in-memory store: signatures, the accepted version of a
//! user's file, stored results and revalidation, with corpus photos and no servers
//! (`tests/it/moto.rs` covers the same on S3 and the files table, and much more).

use std::sync::Arc;

use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use matbakh_core::ids::ObjectKey;
use matbakh_core::imgproxy::SigningKeys;
use testkit::{call_router_raw, corpus};

use crate::memory::MemoryStore;
use crate::{Store, Transformer, router};

/// A test key pair (hex), as `TRANSFORM_KEYS`/`TRANSFORM_SALTS` would hold it.
const KEY: &str = "3b1f0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2";
const SALT: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn transformer(store: MemoryStore) -> Arc<Transformer<MemoryStore>> {
    let env = |name: &str| match name {
        "TRANSFORM_KEYS" => Some(KEY.to_owned()),
        "TRANSFORM_SALTS" => Some(SALT.to_owned()),
        _ => None,
    };
    Arc::new(Transformer::from_lookup(store, env).unwrap())
}

fn signed(path: &str) -> String {
    format!("/{}{path}", SigningKeys::from_hex(KEY, SALT).unwrap().sign(path).unwrap())
}

async fn get(
    t: &Arc<Transformer<MemoryStore>>,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    call_router_raw(router(t.clone()), req.body(Body::empty()).unwrap()).await
}

/// A user's photo, settled: its first version accepted. Answers its key.
fn settled_photo(store: &MemoryStore, rel: &str) -> String {
    let key = format!("users/alice/01JABCDEFGHJKMNPQRSTVWXYZ0/{}", rel.rsplit('/').next().unwrap());
    let version = store.put(&key, corpus(rel).1, Some("image/jpeg"), &[]);
    store.accept(&key, &version);
    key
}

#[tokio::test]
async fn a_signed_url_is_computed_once_then_served_stored_and_revalidated() {
    let store = MemoryStore::default();
    let key = settled_photo(&store, "photos/ladybird.jpg");
    let t = transformer(store);
    let uri = signed(&format!("/rs:fill:200:100/plain/{key}@webp"));
    let (status, headers, body) = get(&t, &uri, &[]).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        (headers["content-type"].to_str().unwrap(), headers["x-result"].to_str().unwrap()),
        ("image/webp", "computed")
    );
    let img = image::load_from_memory(&body).unwrap();
    assert_eq!((img.width(), img.height()), (200, 100));
    assert_eq!(t.store.keys_under("results/").len(), 1);

    let (status, again, stored) = get(&t, &uri, &[]).await;
    assert_eq!((status, again["x-result"].to_str().unwrap()), (StatusCode::OK, "stored"));
    assert_eq!((stored, &again["etag"]), (body, &headers["etag"]));
    let etag = headers["etag"].to_str().unwrap();
    let (status, _, empty) = get(&t, &uri, &[("if-none-match", etag)]).await;
    assert_eq!((status, empty.len()), (StatusCode::NOT_MODIFIED, 0));
}

#[tokio::test]
async fn a_bad_signature_or_a_source_outside_the_allow_list_is_refused_and_nothing_is_stored() {
    let store = MemoryStore::default();
    let key = settled_photo(&store, "photos/ladybird.jpg");
    store.put("private/keys.jpg", corpus("photos/ladybird.jpg").1, Some("image/jpeg"), &[]);
    let t = transformer(store);
    let path = format!("/w:100/plain/{key}");
    let forged = format!("/{}{path}", SigningKeys::from_hex(SALT, KEY).unwrap().sign(&path).unwrap());
    let (status, headers, _) = get(&t, &forged, &[]).await;
    assert_eq!((status, headers["x-error-reason"].to_str().unwrap()), (StatusCode::FORBIDDEN, "bad_signature"));
    let (status, _, _) = get(&t, &signed("/w:100/plain/private/keys.jpg"), &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(t.store.keys_under("results/").is_empty());
}

/// DECISIONS 28: a key holds one accepted object. Bytes written to it later (a replayed upload
/// URL) are never transformed, and a file not yet accepted has nothing to transform.
#[tokio::test]
async fn only_the_accepted_version_of_a_users_file_is_read() {
    let store = MemoryStore::default();
    let key = settled_photo(&store, "photos/ladybird.jpg");
    // A portrait photo written over the landscape one after it was accepted.
    store.put(&key, corpus("photos/panasonic-orientation6.jpg").1, Some("image/jpeg"), &[]);
    let pending = "users/alice/01JABCDEFGHJKMNPQRSTVWXYZ1/pending.jpg";
    store.put(pending, corpus("photos/ladybird.jpg").1, Some("image/jpeg"), &[]);
    let t = transformer(store);

    let (status, _, body) = get(&t, &signed(&format!("/w:300/plain/{key}@png")), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let img = image::load_from_memory(&body).unwrap();
    assert!(img.width() > img.height(), "the accepted landscape photo: {}x{}", img.width(), img.height());
    let (status, headers, _) = get(&t, &signed(&format!("/w:300/plain/{pending}@png")), &[]).await;
    assert_eq!((status, headers["x-error-reason"].to_str().unwrap()), (StatusCode::NOT_FOUND, "source_not_found"));
}

/// The attack (security review, 2026-12-06): a public file's image URLs never expire; its
/// owner makes it private; whoever kept a URL asked the transformer, which made the result
/// again from the READY file. Now a URL without an expiry reads only a public file (the
/// file's own private URLs expire and still work); going private also removes the stored
/// results (`files-api` tests).
#[tokio::test]
async fn a_url_that_never_expires_reads_only_a_public_file() {
    let store = MemoryStore::default();
    let key = settled_photo(&store, "photos/ladybird.jpg");
    let version = store.head(&ObjectKey::from_stored(key.clone()), None).await.unwrap().unwrap().version_id.unwrap();
    store.accept_private(&key, &version);
    let t = transformer(store);
    let (status, headers, _) = get(&t, &signed(&format!("/w:100/plain/{key}@webp")), &[]).await;
    assert_eq!((status, headers["x-error-reason"].to_str().unwrap()), (StatusCode::NOT_FOUND, "source_not_found"));
    assert!(t.store.keys_under("results/").is_empty(), "nothing stored");
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let (status, _, _) = get(&t, &signed(&format!("/w:100/exp:{exp}/plain/{key}@webp")), &[]).await;
    assert_eq!(status, StatusCode::OK, "a private file's own (expiring) URL");
    // Security review 20 (edge 1): that result is stored where the never-expiring URL does not
    // look (the edge serves a stored result by its key alone, before the transformer is asked).
    let stored = t.store.keys_under("results/");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].ends_with(",exp.webp"), "{stored:?}");
}
