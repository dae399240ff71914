//! The file source stays beneath its root: symbolic links are neither listed nor followed, also
//! when one is swapped in between the plan's listing and the copy. Ledger and target on moto.

use crate::common;

use std::collections::HashMap;
use std::os::unix::fs::symlink;

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
