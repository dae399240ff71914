//! The files API against moto (DynamoDB with its indexes, a versioned bucket): listing order,
//! paging, sorts, filters, search and tags; rename; soft delete and restore with usage; and
//! that nobody reaches someone else's file on any route.

use std::sync::Arc;

use http::{Method, StatusCode};
use matbakh_core::clock::FixedClock;
use matbakh_core::ids::{FileId, ObjectKey, UserId};
use matbakh_core::limits::Limits;
use matbakh_core::metadata::{FileRecord, FileStatus, Ready};
use matbakh_core::names::{DisplayName, SafeName};
use matbakh_core::types::ContentType;
use serde_json::{Value, json};
use testkit::{Harness, Options, unique_user};
use time::OffsetDateTime;
use time::macros::datetime;

const QUOTA: u64 = 1 << 30;

/// The function as deployed, signing image URLs with a test pair.
fn app(services: matbakh_aws::Services, auth: std::sync::Arc<matbakh_api::Authenticator>) -> axum::Router {
    let keys = matbakh_core::imgproxy::SigningKeys::from_hex("6b6579", "73616c74").unwrap();
    let signer = matbakh_app::images::Signer {
        base_url: "https://files.test/t".into(),
        keys: std::sync::Arc::new(keys),
        presets: Default::default(),
    };
    files_api::router(services, auth, signer)
}

async fn uploaded(h: &Harness, user: &str, name: &str, content_type: &str, size: usize, at: OffsetDateTime) -> String {
    let bytes = (0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
    h.stored_file(user, name, content_type, bytes, at).await.to_string()
}

async fn get(h: &Harness, user: &str, uri: &str) -> (StatusCode, Value) {
    h.call(Method::GET, uri, Some(&h.token(user)), None).await
}

/// Calls the function as `user`, with other settings (a smaller quota, a later clock).
async fn call_as(
    h: &Harness,
    state: matbakh_aws::Services,
    method: Method,
    uri: &str,
    user: &str,
) -> (StatusCode, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {}", h.token(user)))
        .body(axum::body::Body::empty())
        .unwrap();
    testkit::call_router(app(state, h.auth.clone()), req).await
}

fn names(v: &Value) -> Vec<String> {
    v["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect()
}

/// Every page of a listing, following the cursor.
async fn all_pages(h: &Harness, user: &str, uri: &str) -> (Vec<String>, usize) {
    let (mut out, mut pages, mut cursor): (Vec<String>, usize, Option<String>) = (Vec::new(), 0, None);
    loop {
        let sep = if uri.contains('?') { '&' } else { '?' };
        let page_uri = match &cursor {
            Some(c) => format!("{uri}{sep}cursor={c}"),
            None => uri.to_owned(),
        };
        let (status, page) = get(h, user, &page_uri).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        out.extend(names(&page));
        pages += 1;
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (out, pages),
        }
    }
}

struct Tree {
    h: Harness,
    alice: String,
    bob: String,
    ids: Vec<String>,
}

/// Alice's seven files (names, types, sizes and dates all different) and Bob's two.
async fn tree() -> Tree {
    let h = Harness::new(app, Options::default()).await;
    let (alice, bob) = (unique_user("alice"), unique_user("bob"));
    let mut ids = Vec::new();
    for (name, ct, size, at) in [
        ("Été à Marseille.jpg", "image/jpeg", 3000, datetime!(2024-07-14 10:00 UTC)),
        ("breakfast.png", "image/png", 1200, datetime!(2024-09-01 08:00 UTC)),
        ("Invoice 2024-11.pdf", "application/pdf", 800, datetime!(2024-11-30 18:00 UTC)),
        ("zebra.webp", "image/webp", 5000, datetime!(2025-01-05 12:00 UTC)),
        ("Apfelkuchen.jpg", "image/jpeg", 4000, datetime!(2025-03-02 16:00 UTC)),
        ("مطبخ.jpg", "image/jpeg", 2500, datetime!(2025-05-20 09:00 UTC)),
        ("clip.mp4", "video/mp4", 6000, datetime!(2025-06-01 20:00 UTC)),
    ] {
        ids.push(uploaded(&h, &alice, name, ct, size, at).await);
    }
    for (name, at) in
        [("bob-marseille.jpg", datetime!(2025-02-01 10:00 UTC)), ("bob.png", datetime!(2024-08-01 10:00 UTC))]
    {
        uploaded(&h, &bob, name, "image/jpeg", 100, at).await;
    }
    Tree { h, alice, bob, ids }
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_users_files_list_newest_first_in_pages_by_name_size_type_and_date() {
    let Tree { h, alice, bob, .. } = tree().await;
    let newest_first = [
        "clip.mp4",
        "مطبخ.jpg",
        "Apfelkuchen.jpg",
        "zebra.webp",
        "Invoice 2024-11.pdf",
        "breakfast.png",
        "Été à Marseille.jpg",
    ];
    let (status, page) = get(&h, &alice, "/v1/files").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(names(&page), newest_first);
    assert!(page["nextCursor"].is_null());
    let first = &page["files"][0];
    assert_eq!(
        (first["contentType"].as_str(), first["size"].as_u64(), first["status"].as_str()),
        (Some("video/mp4"), Some(6000), Some("READY"))
    );
    assert_eq!(first["createdAt"], "2025-06-01T20:00:00Z");

    // Pages of 3 follow each other without gaps or repeats.
    let (paged, pages) = all_pages(&h, &alice, "/v1/files?limit=3").await;
    assert_eq!((paged, pages), (newest_first.map(String::from).to_vec(), 3));
    let (oldest, _) = all_pages(&h, &alice, "/v1/files?limit=2&order=asc").await;
    assert_eq!(oldest, newest_first.iter().rev().map(|s| s.to_string()).collect::<Vec<_>>());

    // By name (folded: accents and case do not move a file), A to Z; by size, largest first.
    let (by_name, _) = all_pages(&h, &alice, "/v1/files?sort=name&limit=4").await;
    assert_eq!(
        by_name,
        [
            "Apfelkuchen.jpg",
            "breakfast.png",
            "clip.mp4",
            "Été à Marseille.jpg",
            "Invoice 2024-11.pdf",
            "zebra.webp",
            "مطبخ.jpg"
        ]
    );
    let (by_size, _) = all_pages(&h, &alice, "/v1/files?sort=size&limit=5").await;
    assert_eq!(by_size[..3], ["clip.mp4", "zebra.webp", "Apfelkuchen.jpg"]);
    let (smallest, _) = all_pages(&h, &alice, "/v1/files?sort=size&order=asc&limit=5").await;
    assert_eq!(smallest[..2], ["Invoice 2024-11.pdf", "breakfast.png"]);

    // Filters: a type family, an exact type, a date range (to is exclusive), in pages too.
    let (images, _) = all_pages(&h, &alice, "/v1/files?contentType=image/&limit=2").await;
    assert_eq!(images, ["مطبخ.jpg", "Apfelkuchen.jpg", "zebra.webp", "breakfast.png", "Été à Marseille.jpg"]);
    let (pdfs, _) = all_pages(&h, &alice, "/v1/files?contentType=application/pdf").await;
    assert_eq!(pdfs, ["Invoice 2024-11.pdf"]);
    let (in_2024, _) = all_pages(&h, &alice, "/v1/files?from=2024-09-01&to=2025-01-05T12:00:00Z").await;
    assert_eq!(in_2024, ["Invoice 2024-11.pdf", "breakfast.png"]);

    // Bob sees only his own, and Alice's cursor in Bob's hands moves only within his listing.
    let (_, bobs) = get(&h, &bob, "/v1/files").await;
    assert_eq!(names(&bobs), ["bob-marseille.jpg", "bob.png"]);
    let (_, alice_page) = get(&h, &alice, "/v1/files?limit=1").await;
    let cursor = alice_page["nextCursor"].as_str().unwrap();
    let (status, with_hers) = get(&h, &bob, &format!("/v1/files?cursor={cursor}")).await;
    assert_eq!(status, StatusCode::OK, "{with_hers}");
    assert!(names(&with_hers).iter().all(|n| n.starts_with("bob")), "{with_hers}");

    // Nonsense is a 400 with a JSON body, never a wider listing.
    for bad in [
        "/v1/files?limit=0",
        "/v1/files?limit=1000",
        "/v1/files?sort=colour",
        "/v1/files?status=lost",
        "/v1/files?from=yesterday",
        "/v1/files?owner=someone",
        "/v1/files?cursor=not-a-cursor",
        "/v1/files?q=a&tag=b",
    ] {
        let (status, body) = get(&h, &alice, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string() && body["message"].is_string(), "{bad}: {body}");
    }
    let (status, body) = get(&h, &alice, &format!("/v1/files?sort=name&cursor={cursor}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a date cursor in a name listing: {body}");
    let (status, _) = h.call(Method::GET, "/v1/files", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn search_finds_word_prefixes_and_tags_list_what_carries_them() {
    let Tree { h, alice, ids, .. } = tree().await;
    let search = |q: &str| format!("/v1/files?q={q}");
    for (q, want) in [
        ("ete", vec!["Été à Marseille.jpg"]),
        ("MARS", vec!["Été à Marseille.jpg"]),
        ("marseille%20%C3%A9t%C3%A9", vec!["Été à Marseille.jpg"]),
        ("apfel", vec!["Apfelkuchen.jpg"]),
        ("%D9%85%D8%B7%D8%A8%D8%AE", vec!["مطبخ.jpg"]),
        ("2024", vec!["Invoice 2024-11.pdf"]),
        ("jpg", vec!["مطبخ.jpg", "Apfelkuchen.jpg", "Été à Marseille.jpg"]),
        ("hiver", vec![]),
        ("arseille", vec![]),
    ] {
        let (status, page) = get(&h, &alice, &search(q)).await;
        assert_eq!(status, StatusCode::OK, "{q}: {page}");
        assert_eq!(names(&page), want, "q={q}");
    }
    // Another user's words never answer.
    let (_, none) = get(&h, &alice, &search("bob")).await;
    assert!(names(&none).is_empty());

    // Rename: the old words stop finding it, the new ones do, and the name sort follows.
    let summer = &ids[0];
    let (status, renamed) = h
        .call(
            Method::PATCH,
            &format!("/v1/files/{summer}"),
            Some(&h.token(&alice)),
            Some(json!({"name": "Winter in Berlin.jpg"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Winter in Berlin.jpg");
    assert!(names(&get(&h, &alice, &search("ete")).await.1).is_empty());
    assert_eq!(names(&get(&h, &alice, &search("berl")).await.1), ["Winter in Berlin.jpg"]);
    let (by_name, _) = all_pages(&h, &alice, "/v1/files?sort=name").await;
    assert_eq!(
        by_name,
        [
            "Apfelkuchen.jpg",
            "breakfast.png",
            "clip.mp4",
            "Invoice 2024-11.pdf",
            "Winter in Berlin.jpg",
            "zebra.webp",
            "مطبخ.jpg"
        ]
    );

    // Tags: added folded, listed by tag newest first, removed again.
    let apple = &ids[4];
    for id in [summer, apple] {
        let (status, tagged) = h
            .call(
                Method::PATCH,
                &format!("/v1/files/{id}"),
                Some(&h.token(&alice)),
                Some(json!({"addTags": ["Holiday", "family"]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{tagged}");
        assert_eq!(tagged["tags"], json!(["family", "holiday"]));
    }
    assert_eq!(names(&get(&h, &alice, "/v1/files?tag=HOLIDAY").await.1), ["Apfelkuchen.jpg", "Winter in Berlin.jpg"]);
    assert_eq!(names(&get(&h, &alice, "/v1/files?tag=holiday&limit=1").await.1), ["Apfelkuchen.jpg"]);
    let (_, untagged) = h
        .call(
            Method::PATCH,
            &format!("/v1/files/{apple}"),
            Some(&h.token(&alice)),
            Some(json!({"removeTags": ["holiday"]})),
        )
        .await;
    assert_eq!(untagged["tags"], json!(["family"]));
    assert_eq!(names(&get(&h, &alice, "/v1/files?tag=holiday").await.1), ["Winter in Berlin.jpg"]);
    assert_eq!(names(&get(&h, &alice, "/v1/files?tag=family").await.1), ["Apfelkuchen.jpg", "Winter in Berlin.jpg"]);

    // Bad changes are refused whole: the file is as it was.
    let too_many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    for body in [
        json!({"addTags": too_many}),
        json!({"addTags": ["two words"]}),
        json!({"addTags": [7]}),
        json!({"name": ""}),
        json!({"name": "ok.jpg", "owner": "someone"}),
        json!({}),
    ] {
        let (status, answer) =
            h.call(Method::PATCH, &format!("/v1/files/{apple}"), Some(&h.token(&alice)), Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    let (_, apple_now) = get(&h, &alice, &format!("/v1/files/{apple}")).await;
    assert_eq!((apple_now["name"].as_str(), &apple_now["tags"]), (Some("Apfelkuchen.jpg"), &json!(["family"])));
}

/// The adapter's side of labels: tags given at upload are searchable once the file is
/// indexed, visibility and metadata round-trip through DynamoDB, and a change keeps the tag
/// index in step.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn labels_given_at_upload_are_stored_searchable_and_changeable() {
    use matbakh_core::labels::{CustomMetadata, Labels, Tag, Visibility};
    let h = Harness::new(app, Options::default()).await;
    let alice = unique_user("alice");
    let tags = [Tag::parse("menu").unwrap()];
    let labels = Labels::new(Visibility::Public, &tags, CustomMetadata::parse([("price", "12.50")]).unwrap()).unwrap();
    let at = datetime!(2026-03-01 12:00 UTC);
    let id = h.stored_labelled_file(&alice, "dish.jpg", "image/jpeg", vec![0xFF, 0xD8, 0xFF, 0xE0], at, labels).await;
    h.stored_file(&alice, "other.jpg", "image/jpeg", vec![0xFF, 0xD8, 0xFF, 0xE0], at).await;

    let (status, page) = get(&h, &alice, "/v1/files?tag=menu").await;
    assert_eq!((status, names(&page)), (StatusCode::OK, vec!["dish.jpg".to_owned()]), "{page}");
    let listed = &page["files"][0];
    assert_eq!((listed["visibility"].as_str(), &listed["metadata"]), (Some("public"), &json!({"price": "12.50"})));
    let (_, other) = get(&h, &alice, "/v1/files?q=other").await;
    assert_eq!(
        (other["files"][0]["visibility"].as_str(), &other["files"][0]["metadata"]),
        (Some("private"), &json!({}))
    );

    let change = json!({"removeTags": ["menu"], "visibility": "private", "metadata": {"lang": "ar"}});
    let (status, file) = h.call(Method::PATCH, &format!("/v1/files/{id}"), Some(&h.token(&alice)), Some(change)).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    assert!(names(&get(&h, &alice, "/v1/files?tag=menu").await.1).is_empty());
    let (_, file) = get(&h, &alice, &format!("/v1/files/{id}")).await;
    assert_eq!((file["visibility"].as_str(), &file["metadata"]), (Some("private"), &json!({"lang": "ar"})));
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn nobody_reaches_someone_elses_file_on_any_route() {
    let Tree { h, alice, ids, .. } = tree().await;
    let mallory = unique_user("mallory");
    let id = &ids[1];
    let missing = FileId::new(1_700_000_000_000, [9; 10]).to_string();
    let tries: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/v1/files/{id}"), None),
        (Method::PATCH, format!("/v1/files/{id}"), Some(json!({"name": "mine.png", "addTags": ["stolen"]}))),
        (Method::DELETE, format!("/v1/files/{id}"), None),
        (Method::POST, format!("/v1/files/{id}/restore"), None),
    ];
    for (method, uri, body) in tries {
        let (status, answer) = h.call(method.clone(), &uri, Some(&h.token(&mallory)), body.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}: {answer}");
        // The same answer as for a file that does not exist.
        let (status_missing, answer_missing) =
            h.call(method.clone(), &uri.replace(id.as_str(), &missing), Some(&h.token(&mallory)), body).await;
        assert_eq!((status_missing, &answer_missing), (status, &answer), "{method} {uri}");
    }
    let (_, mine) = get(&h, &mallory, "/v1/files?q=breakfast").await;
    assert!(names(&mine).is_empty());
    // Alice's file is untouched: name, tags, status, its object current.
    let (_, file) = get(&h, &alice, &format!("/v1/files/{id}")).await;
    assert_eq!(
        (file["name"].as_str(), &file["tags"], file["status"].as_str()),
        (Some("breakfast.png"), &json!([]), Some("READY"))
    );
    let row = h.state.table.get_file(FileId::parse(id).unwrap()).await.unwrap().unwrap();
    assert!(h.state.store.head_object(&row.key, None).await.unwrap().is_some());
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn delete_hides_a_file_and_restore_brings_it_back_within_the_window() {
    let now = datetime!(2026-03-01 12:00 UTC);
    let h = Harness::new(app, Options { clock: Arc::new(FixedClock(now)), ..Options::default() }).await;
    let alice = unique_user("alice");
    let id = uploaded(&h, &alice, "keep me.png", "image/png", 4096, datetime!(2026-02-01 10:00 UTC)).await;
    let other = uploaded(&h, &alice, "other.png", "image/png", 1000, datetime!(2026-02-02 10:00 UTC)).await;
    let row = h.state.table.get_file(FileId::parse(&id).unwrap()).await.unwrap().unwrap();
    let original = h.state.store.get_object(&row.key, None).await.unwrap().unwrap().0;
    let (_, usage) = get(&h, &alice, "/v1/me/usage").await;
    assert_eq!(
        usage,
        json!({"bytesUsed": 5096, "bytesReserved": 0, "bytesDeleted": 0, "openUploads": 0, "quotaBytes": Limits::default().user_quota_bytes, "files": 2})
    );

    let (status, deleted) = h.call(Method::DELETE, &format!("/v1/files/{id}"), Some(&h.token(&alice)), None).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["status"], "DELETED");
    assert_eq!(deleted["restorableUntil"], "2026-03-31T12:00:00Z");
    assert!(h.state.store.head_object(&row.key, None).await.unwrap().is_none(), "a delete marker hides it");
    assert!(h.state.store.current_delete_marker(&row.key).await.unwrap().is_some());
    assert_eq!(names(&get(&h, &alice, "/v1/files").await.1), ["other.png"]);
    assert_eq!(names(&get(&h, &alice, "/v1/files?status=deleted").await.1), ["keep me.png"]);
    // Restorable bytes are still stored, so they still count (security review 16.6).
    let (_, usage) = get(&h, &alice, "/v1/me/usage").await;
    assert_eq!(
        (usage["bytesUsed"].as_u64(), usage["bytesDeleted"].as_u64(), usage["files"].as_u64()),
        (Some(5096), Some(4096), Some(1))
    );
    // A retried DELETE changes nothing.
    let (status, again) = h.call(Method::DELETE, &format!("/v1/files/{id}"), Some(&h.token(&alice)), None).await;
    assert_eq!((status, again["status"].as_str()), (StatusCode::OK, Some("DELETED")));
    assert_eq!(get(&h, &alice, "/v1/me/usage").await, (StatusCode::OK, usage));
    let (status, _) =
        h.call(Method::PATCH, &format!("/v1/files/{id}"), Some(&h.token(&alice)), Some(json!({"name": "x.png"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "a deleted file is restored before it changes");

    // Restore needs no room in the quota: the bytes never left it.
    let tight =
        matbakh_aws::Services { limits: Limits { user_quota_bytes: 5096, ..Limits::default() }, ..h.state.clone() };
    let (status, restored) = call_as(&h, tight, Method::POST, &format!("/v1/files/{id}/restore"), &alice).await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(restored["status"], "READY");
    assert!(restored.get("deletedAt").is_none());
    assert_eq!(h.state.store.get_object(&row.key, None).await.unwrap().unwrap().0, original);
    let (_, usage) = get(&h, &alice, "/v1/me/usage").await;
    assert_eq!((usage["bytesUsed"].as_u64(), usage["bytesDeleted"].as_u64()), (Some(5096), Some(0)));
    assert_eq!(names(&get(&h, &alice, "/v1/files").await.1), ["other.png", "keep me.png"]);
    let (status, _) = h.call(Method::POST, &format!("/v1/files/{id}/restore"), Some(&h.token(&alice)), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "restoring a live file");

    // After the window, a deleted file stays deleted.
    let (status, _) = h.call(Method::DELETE, &format!("/v1/files/{other}"), Some(&h.token(&alice)), None).await;
    assert_eq!(status, StatusCode::OK);
    let later = matbakh_aws::Services {
        clock: Arc::new(FixedClock(now + Limits::default().restore_window)),
        ..h.state.clone()
    };
    let (status, gone) = call_as(&h, later, Method::POST, &format!("/v1/files/{other}/restore"), &alice).await;
    assert_eq!(status, StatusCode::GONE, "{gone}");
    assert_eq!(gone["error"], "restore_window_passed");
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn one_file_shows_its_variants_placeholder_and_exif() {
    use matbakh_core::metadata::{ContentFacts, ExifFacts, ImageInfo, VariantInfo};
    let h = Harness::new(app, Options::default()).await;
    let alice = unique_user("alice");
    let (name, photo) = testkit::corpus("photos/ladybird.jpg");
    let owner = UserId::parse(&alice).unwrap();
    let id = FileId::new(1_767_000_000_000, [5; 10]);
    let filename = DisplayName::parse(&name).unwrap();
    let record = FileRecord {
        file_id: id,
        key: ObjectKey::original(&owner, id, &SafeName::from_display(&filename)),
        owner,
        filename,
        content_type: ContentType::parse("image/jpeg").unwrap(),
        size: photo.len() as u64,
        sha256: None,
        status: FileStatus::Pending,
        created_at: datetime!(2026-01-01 10:00 UTC),
        expires_at: None,
        version_id: None,
        labels: Default::default(),
    };
    let t = &h.state.table;
    t.reserve_upload(&record, QUOTA).await.unwrap();
    // What the thumbnailer and the indexer would have written (their own tests make them).
    let variant_key = format!("derived/{id}/w320.webp");
    let variant_bytes = b"RIFF....WEBPVP8 a variant".to_vec();
    h.state
        .store
        .put_derived(&ObjectKey::from_stored(variant_key.clone()), variant_bytes.clone(), "image/webp")
        .await
        .unwrap();
    let image = ImageInfo {
        width: 1600,
        height: 1067,
        frames: 1,
        placeholder: "1QcSHQRnh493V4dIh4eXh1h4kJUI".into(),
        variants: vec![VariantInfo {
            width: 320,
            height: 213,
            content_type: "image/webp".into(),
            key: ObjectKey::from_stored(variant_key),
        }],
    };
    assert!(t.mark_ready(id, &Ready { image: Some(&image), ..Ready::default() }).await.unwrap());
    let facts = ContentFacts {
        sha256: matbakh_core::ids::Sha256::of(&photo),
        etag: None,
        sniffed_type: Some("image/jpeg".into()),
        exif: Some(ExifFacts {
            camera_make: Some("Panasonic".into()),
            camera_model: Some("DMC-G3".into()),
            lens: None,
            taken_at: Some("2012-06-03T14:21:07".into()),
            orientation: 1,
            had_gps: false,
            location: None,
        }),
        tokens: Vec::new(),
        duplicate_of: None,
    };
    assert!(t.record_content(id, &facts, None).await.unwrap());

    let (status, file) = get(&h, &alice, &format!("/v1/files/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    assert_eq!((file["width"].as_u64(), file["height"].as_u64()), (Some(1600), Some(1067)));
    assert_eq!(file["placeholder"], "1QcSHQRnh493V4dIh4eXh1h4kJUI");
    assert_eq!(file["exif"]["cameraModel"], "DMC-G3");
    assert_eq!(file["exif"]["takenAt"], "2012-06-03T14:21:07");
    assert!(file["exif"].get("location").is_none());
    let variant = &file["variants"][0];
    assert_eq!((variant["width"].as_u64(), variant["contentType"].as_str()), (Some(320), Some("image/webp")));
    let got = testkit::http_client().get(variant["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), variant_bytes.as_slice());
    // The listing carries the same view.
    let (_, page) = get(&h, &alice, "/v1/files").await;
    assert_eq!(page["files"][0]["variants"][0]["width"], 320);

    // Within one URL window (IMAGE_URL_TTL, an hour) every request gets the same variant URL,
    // so the browser's cache keeps the image; the next window signs a new one, good for as long.
    let hour = datetime!(2026-03-01 12:00 UTC);
    let url_at = |t: OffsetDateTime| variant_url_at(&h, id, &alice, t);
    let first = url_at(hour + time::Duration::seconds(1)).await;
    assert_eq!(url_at(hour + time::Duration::minutes(59)).await, first);
    assert!(first.contains("X-Amz-Date=20260301T120000Z") && first.contains("X-Amz-Expires=7200"), "{first}");
    let next = url_at(hour + time::Duration::minutes(61)).await;
    assert_ne!(next, first);
    assert!(next.contains("X-Amz-Date=20260301T130000Z"), "{next}");
}

async fn variant_url_at(h: &Harness, id: FileId, user: &str, t: OffsetDateTime) -> String {
    let state = matbakh_aws::Services { clock: Arc::new(FixedClock(t)), ..h.state.clone() };
    let (status, file) = call_as(h, state, Method::GET, &format!("/v1/files/{id}"), user).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    file["variants"][0]["url"].as_str().unwrap().to_owned()
}

/// Calls as `user` through API Gateway's context (source IP) with a user agent.
async fn call_from(
    h: &Harness,
    at: OffsetDateTime,
    method: Method,
    uri: &str,
    user: &str,
    ip: &str,
) -> (StatusCode, Value) {
    let ctx = json!({
        "accountId": "123456789012", "apiId": "api", "domainName": "files.test", "domainPrefix": "files",
        "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "01/Mar/2026:12:00:00 +0000",
        "timeEpoch": 0,
        "http": {"method": method.as_str(), "path": uri, "protocol": "HTTP/1.1", "sourceIp": ip, "userAgent": "matbakh-test/1.0"},
    });
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {}", h.token(user)))
        .header("user-agent", "matbakh-test/1.0")
        .body(axum::body::Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(lambda_http::request::RequestContext::ApiGatewayV2(serde_json::from_value(ctx).unwrap()));
    let state = matbakh_aws::Services { clock: Arc::new(FixedClock(at)), ..h.state.clone() };
    testkit::call_router(app(state, h.auth.clone()), req).await
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn every_change_is_in_the_owners_audit_trail_with_where_it_came_from() {
    let now = datetime!(2026-03-01 12:00 UTC);
    let h = Harness::new(app, Options { clock: Arc::new(FixedClock(now)), ..Options::default() }).await;
    let (alice, mallory) = (unique_user("alice"), unique_user("mallory"));
    let id = uploaded(&h, &alice, "notes.pdf", "application/pdf", 100, datetime!(2026-02-01 10:00 UTC)).await;
    for (minute, method, uri) in
        [(1, Method::DELETE, format!("/v1/files/{id}")), (2, Method::POST, format!("/v1/files/{id}/restore"))]
    {
        let at = now + time::Duration::minutes(minute);
        let (status, body) = call_from(&h, at, method, &uri, &alice, "203.0.113.7").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let later =
        matbakh_aws::Services { clock: Arc::new(FixedClock(now + time::Duration::minutes(3))), ..h.state.clone() };
    let req = http::Request::builder()
        .method(Method::PATCH)
        .uri(format!("/v1/files/{id}"))
        .header("authorization", format!("Bearer {}", h.token(&alice)))
        .body(axum::body::Body::from(json!({"addTags": ["work"]}).to_string()))
        .unwrap();
    assert_eq!(testkit::call_router(app(later, h.auth.clone()), req).await.0, StatusCode::OK);
    // Mallory's attempt changes nothing and is not in Alice's trail.
    let (status, _) = call_from(&h, now, Method::DELETE, &format!("/v1/files/{id}"), &mallory, "198.51.100.9").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, page) = get(&h, &alice, "/v1/me/audit?limit=2").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let records = page["records"].as_array().unwrap();
    let actions: Vec<&str> = records.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["update", "restore"], "newest first");
    assert_eq!(records[1]["ip"], "203.0.113.7");
    assert_eq!(records[1]["userAgent"], "matbakh-test/1.0");
    assert_eq!((records[1]["fileId"].as_str(), records[1]["result"].as_str()), (Some(id.as_str()), Some("ok")));
    assert_eq!(records[0]["ip"], "unknown", "no gateway context: no address is made up");
    let cursor = page["nextCursor"].as_str().unwrap();
    let (_, rest) = get(&h, &alice, &format!("/v1/me/audit?cursor={cursor}")).await;
    let rest: Vec<&str> = rest["records"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(rest, ["delete"]);
    let (_, theirs) = get(&h, &mallory, "/v1/me/audit").await;
    assert_eq!(theirs["records"], json!([]), "a refused change is no access to record");
    for bad in ["/v1/me/audit?limit=0", "/v1/me/audit?cursor=%25%25", "/v1/me/audit?user=someone"] {
        assert_eq!(get(&h, &alice, bad).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }

    // Each record expires with the retention (DynamoDB TTL).
    let out = h
        .dynamo
        .query()
        .table_name(&h.table_name)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", testkit::AttributeValue::S(format!("AUDIT#{alice}")))
        .send()
        .await
        .unwrap();
    assert_eq!(out.items().len(), 3);
    for i in out.items() {
        let at =
            OffsetDateTime::parse(i["at"].as_s().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
        let ttl = i["ttl"].as_n().unwrap().parse::<i64>().unwrap();
        assert_eq!(ttl, (at + Limits::default().audit_retention).unix_timestamp());
    }
}

/// A link's use is in the owner's trail with its outcome, never with the visitor's address or
/// browser, also for a record written before those stopped being stored.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn the_trail_shows_no_visitors_address_for_a_links_use() {
    let now = datetime!(2026-03-01 12:00 UTC);
    let h = Harness::new(app, Options { clock: Arc::new(FixedClock(now)), ..Options::default() }).await;
    let alice = unique_user("alice");
    let id = uploaded(&h, &alice, "menu.pdf", "application/pdf", 100, datetime!(2026-02-01 10:00 UTC)).await;
    let (status, body) = call_from(&h, now, Method::DELETE, &format!("/v1/files/{id}"), &alice, "203.0.113.7").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let visit = matbakh_core::audit::AuditEntry {
        user: UserId::parse(&alice).unwrap(),
        action: matbakh_core::audit::AuditAction::ShareDownload,
        actor: "share:00112233445566778899aabbccddeeff".into(),
        file_id: Some(FileId::parse(&id).unwrap()),
        result: "ok".into(),
        ip: "198.51.100.23".into(),
        user_agent: "visitor-browser/1.0".into(),
        at: now - time::Duration::minutes(1),
    };
    h.state.table.put_audit(&visit, Limits::default().audit_retention, 1).await.unwrap();

    let (status, page) = get(&h, &alice, "/v1/me/audit").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let records = page["records"].as_array().unwrap();
    let seen: Vec<_> =
        records.iter().map(|r| (r["action"].as_str().unwrap(), &r["result"], &r["ip"], &r["userAgent"])).collect();
    assert_eq!(
        seen,
        [
            ("delete", &json!("ok"), &json!("203.0.113.7"), &json!("matbakh-test/1.0")),
            ("share_download", &json!("ok"), &Value::Null, &Value::Null),
        ]
    );
}

/// Review 22 (images): the public copy of a JPEG original kept its EXIF GPS position (variants
/// carry no metadata, and the row only `hadGps`), so a public phone photo told anyone where it
/// was taken. The copy is written without it now (the same length: nothing else moves); a JPEG
/// without a position is copied as it is. Session 23: so are PNG, WebP and AVIF originals
/// (HEIC's items are AVIF's), and one whose metadata cannot be walked gets no public copy.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_public_originals_copy_keeps_no_gps_position() {
    use matbakh_core::delivery::ServedAs;
    use matbakh_core::location::{Stripped, strip_gps};
    use matbakh_imaging::{DEFAULT_QUALITY, ImageLimits, OutputFormat, encode::encode_keeping};
    let h = Harness::new(app, Options::default()).await;
    let user = unique_user("where");
    let (_, phone) = testkit::corpus("photos/phone-13mp.jpg");
    let (_, ladybird) = testkit::corpus("photos/ladybird.jpg");
    let tagged = testkit::with_gps_position(&ladybird, -33.856_784, 151.215_297);
    let photo = matbakh_imaging::load(&ladybird, &ImageLimits::default(), 400).unwrap().resized_to(400).unwrap();
    let position = testkit::gps_exif(-33.856_784, 151.215_297);
    let encoded = |format, exif| encode_keeping(&photo, format, &DEFAULT_QUALITY, None, exif).unwrap();
    let mut files = vec![
        ("phone.jpg", phone, true),
        ("tagged.jpg", tagged, true),
        ("ladybird.jpg", ladybird.clone(), false),
        ("plain.png", encoded(OutputFormat::Png, None), false),
    ];
    for (name, format) in
        [("tagged.png", OutputFormat::Png), ("tagged.webp", OutputFormat::WebP), ("tagged.avif", OutputFormat::Avif)]
    {
        files.push((name, encoded(format, Some(position.clone())), true));
    }
    let (s3, bucket) = (h.state.store.client(), h.state.store.bucket());
    for (n, (name, bytes, had_position)) in files.into_iter().enumerate() {
        let kind = matbakh_core::types::ContentType::from_file_name(name).unwrap().as_str();
        assert_eq!(matbakh_imaging::exif::read(&bytes).has_gps, had_position, "{name}");
        let served = ServedAs { content_type: kind.into(), cache_control: "public, max-age=60", disposition: None };
        let id = FileId::new(1_772_366_400_000 + n as u64, [n as u8 + 1; 10]);
        let from = ObjectKey::from_stored(format!("users/{user}/{id}/{name}"));
        s3.put_object().bucket(bucket).key(from.as_str()).body(bytes.clone().into()).send().await.unwrap();
        let to = from.public_copy().unwrap();
        h.state.store.publish(&from, None, &to, &served).await.unwrap();
        let got = s3.get_object().bucket(bucket).key(to.as_str()).send().await.unwrap();
        assert_eq!(got.content_type(), Some(kind), "{name}");
        assert_eq!(got.cache_control(), Some("public, max-age=60"), "{name}");
        let copy = got.body.collect().await.unwrap().to_vec();
        assert_eq!(copy.len(), bytes.len(), "{name}");
        assert_eq!(strip_gps(kind, &mut copy.clone()), Stripped::Nothing, "{name}: a position is left");
        assert!(!matbakh_imaging::exif::read(&copy).has_gps, "{name}: a position is left");
        assert_eq!(copy == bytes, !had_position, "{name}: copied as it is only without a position");
    }

    // A PNG whose chunks do not add up: whether it holds a position is unknown, so no copy.
    let mut broken = encoded(OutputFormat::Png, Some(position));
    broken.truncate(broken.len() - 20);
    let from = ObjectKey::from_stored(format!("users/{user}/{}/broken.png", FileId::new(1_772_366_500_000, [9; 10])));
    s3.put_object().bucket(bucket).key(from.as_str()).body(broken.into()).send().await.unwrap();
    let to = from.public_copy().unwrap();
    let served = ServedAs { content_type: "image/png".into(), cache_control: "public, max-age=60", disposition: None };
    h.state.store.publish(&from, None, &to, &served).await.unwrap();
    assert_eq!(h.state.store.object_size(&to).await.unwrap(), None, "no public copy");
}

/// Live messages and webhooks can arrive out of order (a retried delivery comes late), so each
/// carries its file's revision (review 28): on DynamoDB, every write of a row raises it, a new
/// row starts at the writer's clock in milliseconds (a row written anew under a removed one's
/// id continues above it), and a write its condition refused changes nothing.
#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn every_write_of_a_file_row_raises_its_revision() {
    use matbakh_core::archival::Archival;
    use matbakh_core::ids::Sha256;
    use matbakh_core::metadata::ContentFacts;

    let h = Harness::new(app, Options::default()).await;
    let (t, quota) = (&h.state.table, Limits::default().user_quota_bytes);
    let alice = unique_user("alice");
    let revision = |id: FileId| async move { t.file_details(id).await.unwrap().unwrap().revision };
    let mut seen = Vec::new();
    let mut step = |what: &'static str, r: u64| {
        assert!(seen.last().is_none_or(|(_, last)| r > *last), "{what} did not raise it: {seen:?} then {r}");
        seen.push((what, r));
    };

    let before = OffsetDateTime::now_utc();
    let record = FileRecord {
        size: 3,
        expires_at: Some(before + time::Duration::hours(1)),
        ..FileRecord::upload(
            FileId::new(1_765_000_000_000, [7; 10]),
            UserId::parse(&alice).unwrap(),
            DisplayName::parse("menu.png").unwrap(),
            ContentType::parse("image/png").unwrap(),
            before,
        )
    };
    let id = record.file_id;
    t.reserve_upload(&record, quota).await.unwrap();
    let first = revision(id).await;
    let ms = |at: OffsetDateTime| (at.unix_timestamp_nanos() / 1_000_000) as u64;
    assert!((ms(before)..=ms(OffsetDateTime::now_utc())).contains(&first), "{first} is not the clock's ms");
    step("written", first);
    t.pin_version(id, record.key.as_str(), "v1").await.unwrap();
    step("pinned", revision(id).await);
    t.settle_upload(id, record.key.as_str(), 3, quota).await.unwrap();
    step("settled", revision(id).await);
    let facts = ContentFacts {
        sha256: Sha256::of(b"abc"),
        etag: None,
        sniffed_type: Some("image/png".into()),
        exif: None,
        tokens: vec!["menu".into()],
        duplicate_of: None,
    };
    assert!(t.record_content(id, &facts, None).await.unwrap());
    step("indexed", revision(id).await);
    assert!(t.give_up(id, "given up").await.unwrap());
    step("given up", revision(id).await);
    assert!(t.reopen(id).await.unwrap());
    step("reopened", revision(id).await);
    assert!(t.mark_ready(id, &Ready::default()).await.unwrap());
    step("ready", revision(id).await);
    let refused = revision(id).await;
    assert!(!t.mark_ready(id, &Ready::default()).await.unwrap(), "READY already");
    assert!(!t.mark_failed(id, "late").await.unwrap(), "not PENDING");
    assert_eq!(revision(id).await, refused, "a refused write changes nothing");

    // An owner's change made from a read taken before processing wrote again (here the
    // thumbnailer's pin of the same version) still lands: owner changes are checked against
    // owner changes (`edits`), not every write (the reviewed diff made such a PATCH fail all
    // its attempts in the seconds after an upload). Another made from the same read does not.
    let read = t.file_details(id).await.unwrap().unwrap();
    t.pin_version(id, record.key.as_str(), "v1").await.unwrap();
    step("pinned again", revision(id).await);
    let tagged = |tag: &str| FileRecord {
        labels: matbakh_core::labels::Labels {
            tags: [matbakh_core::labels::Tag::parse(tag).unwrap()].into(),
            ..read.record.labels.clone()
        },
        ..read.record.clone()
    };
    assert!(t.update_file(&read, &tagged("menu")).await.unwrap());
    step("tagged", revision(id).await);
    assert!(!t.update_file(&read, &tagged("lunch")).await.unwrap(), "made from the same read");

    let uri = format!("/v1/files/{id}");
    let (status, renamed) =
        h.call(Method::PATCH, &uri, Some(&h.token(&alice)), Some(json!({"name": "dinner.png"}))).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    step("renamed", renamed["revision"].as_u64().unwrap());
    let archival = Archival { requested_at: Some(before), ..Archival::default() };
    assert!(t.set_archival(id, &[FileStatus::Ready], FileStatus::Ready, &archival).await.unwrap());
    step("archive asked", revision(id).await);
    let (status, deleted) = h.call(Method::DELETE, &uri, Some(&h.token(&alice)), None).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    let deleted = revision(id).await;
    step("deleted", deleted);
    let (status, restored) = h.call(Method::POST, &format!("{uri}/restore"), Some(&h.token(&alice)), None).await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    step("restored", restored["revision"].as_u64().unwrap());
    assert!(t.quarantine(id, "refused").await.unwrap());
    step("quarantined", revision(id).await);

    // A file deleted and purged: the purge of its held bytes is a write too.
    let other = FileId::parse(&uploaded(&h, &alice, "old.png", "image/png", 10, before).await).unwrap();
    let r = revision(other).await;
    assert!(t.mark_deleted(other, None).await.unwrap());
    let deleted = revision(other).await;
    assert!(deleted > r);
    assert!(t.purge_deleted(other).await.unwrap());
    assert!(revision(other).await > deleted);
}
