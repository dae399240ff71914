//! The legacy database (issue 19, part 1; DECISIONS 34): a real PostgreSQL (scripts/test starts
//! it, LEGACY_DATABASE_URL) holding `tests/legacy-db/legacy.sql`'s file table in a schema of this
//! test's own, and a legacy tree with the same paths. Plan with `--metadata` -> the rows and
//! files that do not meet are counted, listed and written whole -> run -> verify -> the files'
//! rows in the files table carry the legacy names, upload times, visibility, tags and metadata.
//! Bad input (a database that does not answer, a bad query, a mapping to a missing column) is
//! refused with what is wrong before the plan begins.

use std::collections::HashMap;

use matbakh_core::labels::Visibility;
use matbakh_core::migration::legacy_meta::FieldMap;
use migrate::MigrateError;
use migrate::metadata::{MetadataSource, MismatchKind, load};
use migrate::run::RunOptions;
use migrate::verify::VerifyOptions;

use crate::common::*;

const MAP: &str = "path=file_path,owner=user_id,name=original_name,content_type=mime,uploaded_at=uploaded,\
                   visibility=is_public,metadata.description=description";

/// The legacy file table in a new schema; answers the query that reads it.
async fn legacy_table() -> String {
    let url = testkit::env("LEGACY_DATABASE_URL");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let schema = format!("t{}", uuid_like().replace('-', "_")).to_lowercase();
    let sql = std::fs::read_to_string(format!(
        "{}/../../tests/legacy-db/legacy.sql",
        std::env::var("CARGO_MANIFEST_DIR").unwrap()
    ))
    .unwrap();
    client.batch_execute(&format!("CREATE SCHEMA {schema}; SET search_path TO {schema};\n{sql}")).await.unwrap();
    format!("SELECT * FROM {schema}.uploads ORDER BY id")
}

fn metadata(url: &str, query: &str, map: &str) -> MetadataSource {
    MetadataSource { url: url.to_owned(), query: Some(query.to_owned()), map: FieldMap::parse(map).unwrap() }
}

#[tokio::test]
#[ignore = "needs the local AWS stack and PostgreSQL: scripts/test runs it"]
async fn legacy_rows_from_postgres_reach_the_files_and_what_does_not_meet_is_reported() {
    let sdk = moto().await;
    let ctx = context(&sdk);
    let bucket = bucket(&sdk, true).await;
    let query = legacy_table().await;
    // The table's paths: three with valid rows, menu.png with an invalid one, extra.png with none.
    let t = tree(&[
        ("users/demo-user/2019/07/dune.jpg", "photos/dune.jpg", 30),
        ("users/demo-user/2019/07/ladybird.jpg", "photos/ladybird.jpg", 30),
        ("users/demo-user/2021/02/sony-18mp-progressive.jpg", "photos/olympus-4mp-icc.jpg", 20),
        ("users/demo-user/2023/03/menu.png", "other/alpha.png", 10),
        ("users/demo-user/2023/03/extra.png", "other/alpha.png", 5),
    ]);
    let rows = std::sync::Arc::new(load(&metadata(&testkit::env("LEGACY_DATABASE_URL"), &query, MAP)).await.unwrap());
    assert_eq!(rows.rows, 5);
    let mut o = options(&format!("s3://{bucket}"), "platform", HashMap::new(), &t.url());
    o.metadata = Some(rows);

    // A dry run shows the same counts and writes nothing.
    o.dry_run = true;
    let dry = plan(&ctx, &t, &o).await.unwrap();
    assert!(dry.run.is_none());
    let m = dry.metadata.unwrap();
    assert_eq!((m.matched_files, m.invalid_rows, m.rows_without_file, m.files_without_row), (3, 1, 1, 1), "{m:?}");

    o.dry_run = false;
    let planned = plan(&ctx, &t, &o).await.unwrap();
    let m = planned.metadata.clone().unwrap();
    assert_eq!((m.rows, m.matched_files, m.invalid_rows, m.rows_without_file, m.files_without_row), (5, 3, 1, 1, 1));
    assert_eq!(m.source, testkit::env("LEGACY_DATABASE_URL"));
    let listed: Vec<(MismatchKind, &str)> =
        m.listed.iter().map(|l| (l.kind, l.path.as_deref().unwrap_or(""))).collect();
    assert!(listed.contains(&(MismatchKind::FileWithoutRow, "users/demo-user/2023/03/extra.png")), "{listed:?}");
    assert!(listed.contains(&(MismatchKind::RowWithoutFile, "users/demo-user/2020/01/deleted-long-ago.jpg")));
    let invalid = m.listed.iter().find(|l| l.kind == MismatchKind::InvalidRow).unwrap();
    assert_eq!((invalid.path.as_deref(), invalid.row), (Some("users/demo-user/2023/03/menu.png"), Some(5)));
    assert!(invalid.why.as_deref().unwrap().starts_with("owner \"Demo User\""), "{invalid:?}");
    // Every mismatch, whole, next to the manifest.
    let key = m.mismatches_key.unwrap();
    let all = s3(&sdk).get_object().bucket(&bucket).key(&key).send().await.unwrap();
    let text = String::from_utf8(all.body.collect().await.unwrap().to_vec()).unwrap();
    assert_eq!(text.lines().count(), 3);

    let run = planned.run.unwrap();
    let ro = RunOptions { transfers: 4, state_refresh: std::time::Duration::ZERO, ..RunOptions::default() };
    migrate::run::run(&ctx, &run, source(&t), &ro, quiet()).await.unwrap();
    assert!(migrate::verify::verify(&ctx, &run, &VerifyOptions::default()).await.unwrap().passed());
    // The run's report lists them again (read back from the bucket).
    let (report, _) = migrate::report::report(&ctx, &run).await.unwrap();
    let again = report.legacy_metadata.clone().unwrap();
    assert_eq!(
        (again.matched_files, again.invalid_rows, again.rows_without_file, again.files_without_row),
        (3, 1, 1, 1)
    );
    let text = migrate::report::human(&report);
    assert!(text.contains("invalid row: users/demo-user/2023/03/menu.png (row 5): owner \"Demo User\""), "{text}");

    // The files' rows carry the legacy row's metadata; the others what their path gives.
    let files = &ctx.files.as_ref().unwrap().table;
    let row_of = |path: &'static str| async move {
        let mapping = files.legacy_file(path).await.unwrap().unwrap();
        files.get_file(mapping.file_id).await.unwrap().unwrap()
    };
    let dune = row_of("users/demo-user/2019/07/dune.jpg").await;
    assert_eq!(dune.owner.as_str(), "demo-user");
    assert_eq!(dune.filename.as_str(), "Dunes at Sylt.jpg");
    assert_eq!(dune.labels.visibility, Visibility::Public);
    let tags: Vec<&str> = dune.labels.tags.iter().map(|t| t.as_str()).collect();
    assert_eq!(tags, ["beach", "summer-2019"]);
    assert_eq!(dune.labels.metadata.as_map()["description"], "The view from the terrace");
    assert_eq!(dune.created_at.unix_timestamp(), 1_563_093_000, "uploaded 2019-07-14 10:30 +02");
    assert!(dune.key.as_str().ends_with("/dune.jpg"), "the key keeps the file's own name: {}", dune.key.as_str());
    let ladybird = row_of("users/demo-user/2019/07/ladybird.jpg").await;
    assert_eq!((ladybird.filename.as_str(), ladybird.labels.visibility), ("Garden ladybird.jpg", Visibility::Private));
    let menu = row_of("users/demo-user/2023/03/menu.png").await;
    assert_eq!(
        (menu.filename.as_str(), menu.labels.visibility),
        ("menu.png", Visibility::Private),
        "invalid row: no metadata"
    );
    assert!(menu.labels.tags.is_empty());
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test runs it"]
async fn a_database_that_cannot_be_read_stops_the_plan_saying_why() {
    let url = testkit::env("LEGACY_DATABASE_URL");
    let query = legacy_table().await;
    let refused = |e: MigrateError| match e {
        MigrateError::Usage(m) | MigrateError::Rule(matbakh_core::CoreError::Invalid { message: m, .. }) => m,
        other => panic!("not a usage error: {other}"),
    };
    // Nobody listens on a port just closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e =
        load(&metadata(&format!("postgres://legacy:secret@127.0.0.1:{closed}/legacy"), &query, MAP)).await.unwrap_err();
    let m = refused(e);
    assert!(m.contains("cannot connect") && !m.contains("secret"), "{m}");
    let e = load(&metadata(&url, "SELEC file_path FROM nowhere", MAP)).await.unwrap_err();
    assert!(refused(e).contains("the query fails: syntax error"));
    let e = load(&metadata(&url, "SELECT * FROM no_such_table", MAP)).await.unwrap_err();
    assert!(refused(e).contains("relation \"no_such_table\" does not exist"));
    let e = load(&metadata(&url, &query, "path=file_path,name=filename")).await.unwrap_err();
    let m = refused(e);
    assert!(m.contains("column \"filename\" is not in the legacy rows (they have: id, file_path, user_id"), "{m}");
}
