//! The file source stays beneath its root: symbolic links are neither listed nor followed, also
//! when one is swapped in between the plan's listing and the copy (ledger and target on moto);
//! and it tells every rewrite of a file by its change token.

use crate::common;

use std::collections::HashMap;
use std::os::unix::fs::symlink;

use crate::ctime::*;
use common::*;
use matbakh_core::migration::FailureReason;
use migrate::run::RunOptions;

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_symlink_swapped_in_between_listing_and_copying_is_refused() {
    let sdk = moto().await;
    let ctx = context(&sdk);
    let bucket = bucket(&sdk, true).await;
    let t = tree(&[
        ("users/1/a.jpg", "photos/dune.jpg", 3),
        ("users/2/b.jpg", "photos/ladybird.jpg", 2),
        ("users/3/c.jpg", "photos/phone-13mp.jpg", 1),
    ]);
    // Outside the root, the same bytes: only the path tells them apart.
    let outside = tree(&[("secret/a.jpg", "photos/dune.jpg", 3), ("secret/b.jpg", "photos/ladybird.jpg", 2)]);
    // Links present at listing time are not listed.
    std::fs::create_dir_all(t.path("users/4")).unwrap();
    symlink(outside.path("secret/a.jpg"), t.path("users/4/link.jpg")).unwrap();
    symlink(outside.path("secret"), t.path("users/5")).unwrap();
    let planned =
        plan(&ctx, &t, &options(&format!("s3://{bucket}/web"), "keep", HashMap::new(), &t.url())).await.unwrap();
    assert_eq!(planned.files, 3, "{planned:?}");
    let run = planned.run.unwrap();

    // After the plan, a file and a directory become links out of the root.
    std::fs::remove_file(t.path("users/1/a.jpg")).unwrap();
    symlink(outside.path("secret/a.jpg"), t.path("users/1/a.jpg")).unwrap();
    std::fs::remove_dir_all(t.path("users/2")).unwrap();
    symlink(outside.path("secret"), t.path("users/2")).unwrap();

    let done = migrate::run::run(&ctx, &run, source(&t), &RunOptions::default(), quiet()).await.unwrap();
    assert_eq!((done.copied, done.failed), (1, 2), "{done:?}");
    let (_, rows) = migrate::report::report(&ctx, &run).await.unwrap();
    for name in ["users/1/a.jpg", "users/2/b.jpg"] {
        let row = rows.iter().find(|r| r.entry.source == name).unwrap();
        assert_eq!(row.reason, Some(FailureReason::SourceUnreadable), "{row:?}");
        let message = row.message.as_deref().unwrap_or_default();
        assert!(message.contains(name) && message.contains("symbolic link"), "{message}");
    }
    let keys: Vec<String> = snapshot(&sdk, &bucket, "web/").await.into_iter().map(|v| v.0).collect();
    assert_eq!(keys, ["web/users/3/c.jpg"]);
    // The plan's read (the digest) refuses alike.
    let err = source(&t).digest("users/2/b.jpg").await.unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
}

/// What the file source lists of `t`, by path.
async fn listed(t: &Tree) -> HashMap<String, migrate::source::SourceFile> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    source(t).list(tx).await.unwrap();
    let mut out = HashMap::new();
    while let Some(f) = rx.recv().await {
        out.insert(f.path.clone(), f);
    }
    out
}

/// The change token (inode and change time) catches what size and modification time cannot: a
/// rewrite of the same length with the old time set back (issue 19, part 5).
#[tokio::test]
async fn a_rewrite_that_keeps_size_and_time_changes_the_token() {
    let t = tree(&[("users/1/a.jpg", "photos/dune.jpg", 3), ("users/1/b.jpg", "photos/ladybird.jpg", 2)]);
    let before = listed(&t).await;
    let path = t.path("users/1/a.jpg");
    rewrite_keeping_size_and_mtime(&path);
    let after = listed(&t).await;
    let (a0, a1) = (&before["users/1/a.jpg"], &after["users/1/a.jpg"]);
    assert_eq!((a0.size, a0.mtime_ms), (a1.size, a1.mtime_ms), "size and time cannot tell");
    assert_ne!(a0.change, a1.change, "the token does");
    assert!(!a0.change.is_empty());
    assert_eq!(before["users/1/b.jpg"].change, after["users/1/b.jpg"].change, "an untouched file keeps it");
}
