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
