//! What part URLs allow, proved against Garage, which enforces signatures (moto does not).

use http::{Method, StatusCode};
use serde_json::json;
use testkit::{Harness, Options, corpus, http_client, refused, unique_user};

async fn garage() -> Harness {
    Harness::new(multipart::router, Options { s3_on_garage: true, ..Options::default() }).await
}

async fn signed_parts(h: &Harness, user: &str, size: usize, parts: &[u64]) -> (serde_json::Value, serde_json::Value) {
    let body = json!({"filename": "clip.mp4", "contentType": "video/mp4", "size": size});
    let (status, session) = h.call(Method::POST, "/v1/uploads/multipart", Some(&h.token(user)), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let id = session["uploadId"].as_str().unwrap();
    let (status, signed) = h
        .call(
            Method::POST,
            &format!("/v1/uploads/{id}/parts"),
            Some(&h.token(user)),
            Some(json!({"partNumbers": parts})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    (session, signed)
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_part_carries_exactly_the_signed_length() {
    let h = garage().await;
    let user = unique_user("gp");
    let photo = corpus("photos/sony-18mp-progressive.jpg").1;
    let (session, signed) = signed_parts(&h, &user, 12 << 20, &[1, 2]).await;
    let part = |n: usize| signed["parts"][n - 1].clone();
    let len = |n: usize| part(n)["size"].as_u64().unwrap() as usize;

    // The URL signs the length (X-Amz-SignedHeaders=content-length;host).
    assert!(part(1)["url"].as_str().unwrap().contains("X-Amz-SignedHeaders=content-length%3Bhost"));
    // More bytes than signed: refused (or the connection closed on it), nothing stored.
    let more = http_client().put(part(1)["url"].as_str().unwrap()).body(photo[..len(1) + 1].to_vec()).send().await;
    assert!(refused(&more), "{more:?}");
    // Fewer bytes than signed: refused too.
    let fewer = http_client().put(part(2)["url"].as_str().unwrap()).body(photo[..len(2) - 1].to_vec()).send().await;
    assert!(refused(&fewer), "{fewer:?}");
    // A URL for part 2 does not upload part 1.
    let url2 = part(2)["url"].as_str().unwrap().replace("partNumber=2", "partNumber=1");
    let swapped = http_client().put(url2).body(photo[..len(2)].to_vec()).send().await;
    assert!(refused(&swapped), "{swapped:?}");

    let id = session["uploadId"].as_str().unwrap();
    let (_, shown) = h.call(Method::GET, &format!("/v1/uploads/{id}"), Some(&h.token(&user)), None).await;
    assert_eq!(shown["parts"], json!([]), "a refused part was stored");

    // The exact bytes go through, and the upload completes to the same bytes.
    for n in [1, 2] {
        let start = (n - 1) * len(1);
        let ok = http_client()
            .put(part(n)["url"].as_str().unwrap())
            .body(photo[start..start + len(n)].to_vec())
            .send()
            .await
            .unwrap();
        assert!(ok.status().is_success(), "part {n}: {}", ok.status());
    }
    let (status, done) = h.call(Method::POST, &format!("/v1/uploads/{id}/complete"), Some(&h.token(&user)), None).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let key = session["key"].as_str().unwrap();
    let out = h.state.store.client().get_object().bucket(h.state.store.bucket()).key(key).send().await.unwrap();
    assert_eq!(out.body.collect().await.unwrap().into_bytes().as_ref(), &photo[..12 << 20]);
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn an_expired_part_url_is_refused() {
    let past = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let opts = Options {
        s3_on_garage: true,
        clock: std::sync::Arc::new(matbakh_core::clock::FixedClock(past)),
        ..Options::default()
    };
    let h = Harness::new(multipart::router, opts).await;
    let user = unique_user("late");
    let (_, signed) = signed_parts(&h, &user, 6 << 20, &[1]).await;
    let photo = corpus("photos/sony-18mp-progressive.jpg").1;
    let resp =
        http_client().put(signed["parts"][0]["url"].as_str().unwrap()).body(photo[..6 << 20].to_vec()).send().await;
    assert!(refused(&resp), "{resp:?}");
}

/// S3's Base64 of a CRC64NVME (big-endian bytes), as a client computes it.
fn crc64nvme(bytes: &[u8]) -> String {
    use base64::Engine;
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, bytes);
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

async fn create_with_checksum(h: &Harness, user: &str, size: usize, full: &str) -> serde_json::Value {
    let body = json!({
        "filename": "clip.mp4", "contentType": "video/mp4", "size": size,
        "checksum": {"algorithm": "CRC64NVME", "value": full},
    });
    let (status, session) = h.call(Method::POST, "/v1/uploads/multipart", Some(&h.token(user)), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    assert_eq!(session["checksum"]["algorithm"], "CRC64NVME");
    session
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn part_checksums_are_signed_headers_that_s3_checks() {
    let h = garage().await;
    let user = unique_user("ck");
    let photo = corpus("photos/sony-18mp-progressive.jpg").1;
    let data = &photo[..12 << 20];
    let session = create_with_checksum(&h, &user, data.len(), &crc64nvme(data)).await;
    let id = session["uploadId"].as_str().unwrap();
    let part_size = session["partSize"].as_u64().unwrap() as usize;
    let chunk = |n: usize| &data[(n - 1) * part_size..(n * part_size).min(data.len())];
    let checksums = json!({"1": crc64nvme(chunk(1)), "2": crc64nvme(chunk(2))});
    let (status, signed) = h
        .call(
            Method::POST,
            &format!("/v1/uploads/{id}/parts"),
            Some(&h.token(&user)),
            Some(json!({"partNumbers": [1, 2], "checksums": checksums})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let url = |n: usize| signed["parts"][n - 1]["url"].as_str().unwrap().to_owned();
    let header = |n: usize| signed["parts"][n - 1]["headers"]["x-amz-checksum-crc64nvme"].as_str().unwrap().to_owned();
    // Signed as a header, not hoisted into the query string where S3 would ignore it.
    assert!(url(1).contains("X-Amz-SignedHeaders=content-length%3Bhost%3Bx-amz-checksum-crc64nvme"), "{}", url(1));
    assert!(!url(1).contains("x-amz-checksum-crc64nvme="));
    assert_eq!(header(1), crc64nvme(chunk(1)));

    // Without the header the signature does not match.
    let bare = http_client().put(url(1)).body(chunk(1).to_vec()).send().await;
    assert!(refused(&bare), "{bare:?}");
    // Same length, one byte changed: S3 computes another checksum and refuses the part.
    let mut flipped = chunk(1).to_vec();
    flipped[4096] ^= 0x01;
    let corrupt = http_client().put(url(1)).header("x-amz-checksum-crc64nvme", header(1)).body(flipped).send().await;
    assert!(refused(&corrupt), "{corrupt:?}");
    let (_, shown) = h.call(Method::GET, &format!("/v1/uploads/{id}"), Some(&h.token(&user)), None).await;
    assert_eq!(shown["parts"], json!([]), "a refused part was stored");

    for n in [1, 2] {
        let ok = http_client()
            .put(url(n))
            .header("x-amz-checksum-crc64nvme", header(n))
            .body(chunk(n).to_vec())
            .send()
            .await
            .unwrap();
        assert!(ok.status().is_success(), "part {n}: {}", ok.status());
    }
    let (status, done) = h.call(Method::POST, &format!("/v1/uploads/{id}/complete"), Some(&h.token(&user)), None).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let head = h
        .state
        .store
        .client()
        .head_object()
        .bucket(h.state.store.bucket())
        .key(session["key"].as_str().unwrap())
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_crc64_nvme(), Some(crc64nvme(data).as_str()), "S3 keeps the full-object checksum");
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_wrong_full_object_checksum_stops_completion_and_stores_nothing() {
    let h = garage().await;
    let user = unique_user("ckbad");
    let photo = corpus("photos/sony-18mp-progressive.jpg").1;
    let data = &photo[..6 << 20];
    // The client declares the checksum of other bytes.
    let session = create_with_checksum(&h, &user, data.len(), &crc64nvme(&photo[1..(6 << 20) + 1])).await;
    let id = session["uploadId"].as_str().unwrap();
    // Each part is intact (its own checksum matches); only the declared whole is wrong.
    let body = json!({"partNumbers": [1], "checksums": {"1": crc64nvme(data)}});
    let (_, signed) = h.call(Method::POST, &format!("/v1/uploads/{id}/parts"), Some(&h.token(&user)), Some(body)).await;
    let part = &signed["parts"][0];
    let put = http_client()
        .put(part["url"].as_str().unwrap())
        .header("x-amz-checksum-crc64nvme", part["headers"]["x-amz-checksum-crc64nvme"].as_str().unwrap())
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());

    let (status, err) = h.call(Method::POST, &format!("/v1/uploads/{id}/complete"), Some(&h.token(&user)), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"], "checksum_mismatch");
    let key = session["key"].as_str().unwrap();
    let head = h.state.store.client().head_object().bucket(h.state.store.bucket()).key(key).send().await;
    assert!(head.is_err(), "an object was stored under {key}");
    // The upload is still open: the client may abort it (and gets its reservation back).
    let (status, _) = h.call(Method::DELETE, &format!("/v1/uploads/{id}"), Some(&h.token(&user)), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// A copy in parts (UploadPartCopy, as objects above S3's CopyObject limit are copied) against
/// Garage, which checks ranges and part sizes as S3 does.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_large_object_is_copied_in_parts() {
    let h = garage().await;
    testkit::assert_copies_in_parts(&h.state.store, &unique_user("gcp"), &super::moto::big_file(), false).await;
}
