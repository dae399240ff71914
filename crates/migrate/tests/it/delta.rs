//! The cutover's last sync (issue 19, part 5): `plan --since RUN` reads and copies only what
//! changed since the run (and the runs it was a delta of) copied, and catches a rewrite that
//! keeps size and modification time. Against moto, through `scripts/test`.

use crate::common;

use std::collections::{BTreeSet, HashMap};

use crate::ctime::*;
use common::*;
use matbakh_core::migration::{ManifestEntry, RunId, RunState};
use migrate::MigrateError;
use migrate::run::RunOptions;
use migrate::verify::VerifyOptions;

async fn manifest(sdk: &aws_config::SdkConfig, bucket: &str, run: &str) -> Vec<ManifestEntry> {
    let out = s3(sdk).get_object().bucket(bucket).key(format!("migration/{run}/manifest.jsonl")).send().await.unwrap();
    let text = String::from_utf8(out.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

async fn body(sdk: &aws_config::SdkConfig, bucket: &str, key: &str) -> Vec<u8> {
    let out = s3(sdk).get_object().bucket(bucket).key(key).send().await.unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

fn with_since(o: &migrate::plan::PlanOptions, run: &RunId) -> migrate::plan::PlanOptions {
    let mut o = o.clone();
    o.since = Some(run.clone());
    o
}

async fn run_and_verify(ctx: &migrate::Context, t: &Tree, run: &str) {
    let opts = RunOptions { transfers: 4, ..RunOptions::default() };
    let summary = migrate::run::run(ctx, run, source(t), &opts, quiet()).await.unwrap();
    assert_eq!((summary.state, summary.failed), (RunState::Done, 0), "{summary:?}");
    let v = migrate::verify::verify(ctx, run, &VerifyOptions::default()).await.unwrap();
    assert!(v.passed(), "{v:?}");
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_delta_plan_copies_exactly_what_changed_and_chains() {
    let sdk = moto().await;
    let ctx = context(&sdk);
    let bucket = bucket(&sdk, true).await;
    // The owner's id is unique to this test: the legacy mappings are keyed by path.
    let u = uuid_like();
    let p = |rest: &str| format!("users/{u}/{rest}");
    let t = tree(&[
        (&p("2024/dune.jpg"), "photos/dune.jpg", 400),
        (&p("2024/ladybird.jpg"), "photos/ladybird.jpg", 380),
        (&p("2025/olympus.jpg"), "photos/olympus-4mp-icc.jpg", 120),
        (&p("2025/phone.jpg"), "photos/phone-13mp.jpg", 249),
        (&p("2025/alpha.png"), "other/alpha.png", 10),
        (&p("2025/anim.gif"), "other/anim-45-frames.gif", 9),
    ]);
    let target = format!("s3://{bucket}");
    let o = options(&target, "platform", HashMap::new(), &t.url());
    let first = plan(&ctx, &t, &o).await.unwrap().run.unwrap();
    run_and_verify(&ctx, &t, &first).await;
    let before: HashMap<String, ManifestEntry> =
        manifest(&sdk, &bucket, &first).await.into_iter().map(|e| (e.source.clone(), e)).collect();

    let originals: HashMap<String, Vec<u8>> = before.keys().map(|p| (p.clone(), read_all(&t.path(p)))).collect();
    // While the legacy system is frozen for the cutover, what changed since: a rewrite that
    // keeps size and modification time, an append, a new file, a chmod (same bytes), a delete.
    rewrite_keeping_size_and_mtime(&t.path(&p("2024/dune.jpg")));
    let phone = t.path(&p("2025/phone.jpg"));
    let mut appended = read_all(&phone);
    appended.extend_from_slice(b"appended by the legacy app");
    std::fs::write(&phone, &appended).unwrap();
    std::fs::create_dir_all(t.path(&p("2026"))).unwrap();
    std::fs::write(t.path(&p("2026/new.jpg")), testkit::corpus("photos/panasonic-orientation6.jpg").1).unwrap();
    let alpha = t.path(&p("2025/alpha.png"));
    after_a_ctime_tick(&alpha);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&alpha, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::remove_file(t.path(&p("2025/anim.gif"))).unwrap();

    let first_id = RunId::parse(&first).unwrap();
    // A dry run counts what it would read, and writes nothing.
    let mut dry = with_since(&o, &first_id);
    dry.dry_run = true;
    let counted = plan(&ctx, &t, &dry).await.unwrap();
    assert!(counted.run.is_none());
    let d = counted.delta.unwrap();
    assert_eq!((d.unchanged, d.changed, d.new, d.gone), (2, 3, 1, 1), "{d:?}");

    let delta = with_since(&o, &first_id);
    let planned = plan(&ctx, &t, &delta).await.unwrap();
    let second = planned.run.clone().unwrap();
    let d = planned.delta.clone().unwrap();
    assert_eq!((d.since.as_str(), d.chain), (first.as_str(), 1));
    assert_eq!(
        (d.unchanged, d.same_bytes, d.changed, d.new, d.uncopied, d.gone),
        (2, 1, 2, 1, 0, 1),
        "ladybird and olympus not read; alpha read, same bytes; dune and phone changed; new.jpg new; anim.gif gone: {d:?}"
    );
    assert_eq!(d.gone_listed, [p("2025/anim.gif")]);
    let (entries, carried): (Vec<ManifestEntry>, Vec<ManifestEntry>) =
        manifest(&sdk, &bucket, &second).await.into_iter().partition(|e| e.copied_by.is_none());
    let copied: BTreeSet<&str> = entries.iter().map(|e| e.source.as_str()).collect();
    assert_eq!(
        copied,
        BTreeSet::from([p("2024/dune.jpg").as_str(), p("2025/phone.jpg").as_str(), p("2026/new.jpg").as_str()])
    );
    // The chmodded file is recorded with its new listing, under the key the first run wrote,
    // as copied by it: nothing to copy, and a cutover compares with what the source lists now.
    assert_eq!(carried.len(), 1);
    let alpha_entry = &carried[0];
    assert_eq!(alpha_entry.source, p("2025/alpha.png"));
    assert_eq!(alpha_entry.key, before[&alpha_entry.source].key);
    assert_ne!(alpha_entry.change, before[&alpha_entry.source].change);
    assert_eq!(alpha_entry.copied_by.as_deref(), Some(first.as_str()));
    assert_eq!(planned.files, 4);
    for e in &entries {
        if let Some(old) = before.get(&e.source) {
            // A changed file gets a file id (so a key) of its own: the platform keeps one
            // object per key for good (DECISIONS 28), and caches of the old one stay right.
            assert_ne!(e.key, old.key, "{}", e.source);
            assert_ne!(e.sha256, old.sha256, "{}", e.source);
            assert_eq!(e.supersedes.as_deref(), Some(old.key.as_str()), "{}", e.source);
        } else {
            assert_eq!(e.supersedes, None);
        }
    }
    assert_eq!(ctx.run(&second).await.unwrap().since.as_ref(), Some(&first_id));

    run_and_verify(&ctx, &t, &second).await;
    for e in &entries {
        assert_eq!(body(&sdk, &bucket, &e.key).await, read_all(&t.path(&e.source)), "{}", e.source);
    }
    // The earlier copies of the changed files are hidden behind a delete marker (the platform's
    // soft delete of those files: restorable by their owner for the restore window).
    for e in entries.iter().filter(|e| e.supersedes.is_some()) {
        let old = e.supersedes.as_deref().unwrap();
        let latest: Vec<_> = snapshot(&sdk, &bucket, old).await.into_iter().filter(|v| v.2).collect();
        assert!(latest.len() == 1 && latest[0].3, "{old}: {latest:?}");
    }
    // The old URLs now lead to the new copies.
    let files = &ctx.files.as_ref().unwrap().table;
    for e in &entries {
        let mapping = files.legacy_file(&e.source).await.unwrap().expect("mapped");
        assert_eq!((mapping.key.as_str(), mapping.run.as_str()), (e.key.as_str(), second.as_str()));
    }

    // A delta of the delta: the chain speaks for every file (the changed and the chmodded
    // ones by the newest run); nothing changed, so nothing is read or copied.
    let second_id = RunId::parse(&second).unwrap();
    let third = plan(&ctx, &t, &with_since(&o, &second_id)).await.unwrap();
    let d = third.delta.unwrap();
    assert_eq!((d.chain, d.unchanged, d.same_bytes, d.changed, d.new, d.gone), (2, 6, 0, 0, 0, 1), "{d:?}");
    assert_eq!(third.files, 0);
    let third = third.run.unwrap();
    run_and_verify(&ctx, &t, &third).await;

    // A cutover of the whole owner's tree holds: the newest run holding each file verified it.
    let cut = migrate::cutover::cutover(
        &ctx,
        source(&t),
        &migrate::cutover::CutoverOptions {
            prefix: matbakh_core::migration::LegacyPrefix::parse(&format!("users/{u}")).unwrap(),
            to: matbakh_core::migration::Switch::Platform,
            dry_run: true,
            force_reason: None,
            invalidate: None,
        },
    )
    .await
    .unwrap();
    assert_eq!((cut.verified_files, cut.blocking_files), (6, 0), "{:?}", cut.blocking);

    // What the indexer made of both runs' objects: every file settled (counted in the owner's
    // usage), and one of the earlier copies DELETED by its marker's event (the other's event
    // not taken yet).
    let id = |key: &str| matbakh_core::ids::ObjectKey::file_id_of(key).unwrap();
    for e in before.values().chain(&entries) {
        files.settle_upload(id(&e.key), &e.key, e.size, u64::MAX).await.unwrap();
    }
    // The hidden one had failed processing (a broken photo): a rollback must not make it
    // READY, as an owner's restore would not (it would be served and published).
    let hidden = entries.iter().find_map(|e| e.supersedes.as_deref()).unwrap();
    assert!(files.mark_failed(id(hidden), "broken").await.unwrap());
    assert!(files.mark_deleted(id(hidden), None).await.unwrap());
    let owner = matbakh_core::ids::UserId::parse(&u).unwrap();
    let first_bytes: u64 = before.values().map(|e| e.size).sum();
    let usage = files.usage(&owner).await.unwrap();
    assert_eq!(usage.charged, first_bytes + entries.iter().map(|e| e.size).sum::<u64>());

    // A run a live delta counts on is not rolled back (review 26: the third's unchanged files
    // are the copies the first two wrote; rolled back under it, they were gone while the third,
    // verified, spoke for them in a cutover): the newest first, then.
    for older in [&first, &second] {
        let e = migrate::rollback::rollback(&ctx, older, &Default::default()).await.unwrap_err();
        assert!(matches!(e, MigrateError::Usage(_)) && e.to_string().contains(third.as_str()), "{e}");
    }
    let rolled = migrate::rollback::rollback(&ctx, &third, &Default::default()).await.unwrap();
    assert_eq!((rolled.removed.len(), rolled.files_retired), (0, 0), "the third wrote nothing: {rolled:?}");

    // A rollback of the delta puts the earlier copies back and removes the new ones: their
    // rows too, and the old URLs lead to the earlier copies again.
    let rolled = migrate::rollback::rollback(&ctx, &second, &Default::default()).await.unwrap();
    assert_eq!(rolled.removed.len(), 3 + 2, "3 copies, 2 markers: {:?}", rolled.removed);
    assert_eq!((rolled.files_retired, rolled.files_restored), (3, 1));
    for e in &entries {
        let current = s3(&sdk).head_object().bucket(&bucket).key(&e.key).send().await.is_ok();
        assert!(!current, "{}", e.key);
        assert!(files.file_details(id(&e.key)).await.unwrap().is_none(), "{}", e.key);
        let mapping = files.legacy_file(&e.source).await.unwrap();
        if let Some(old) = &e.supersedes {
            assert_eq!(body(&sdk, &bucket, old).await, originals[&e.source], "{old}");
            // The one its marker's event had made DELETED is back as it was, FAILED; the other
            // never left.
            let row = files.file_details(id(old)).await.unwrap().unwrap().record;
            assert_ne!(row.status, matbakh_core::metadata::FileStatus::Deleted, "{old}");
            if old == hidden {
                assert_eq!(row.status, matbakh_core::metadata::FileStatus::Failed, "{old}");
            }
            let mapping = mapping.expect("mapped");
            assert_eq!((mapping.key.as_str(), mapping.run.as_str()), (old.as_str(), first.as_str()));
        } else {
            assert_eq!(mapping, None, "{}", e.source);
        }
    }
    let usage = files.usage(&owner).await.unwrap();
    assert_eq!((usage.charged, usage.reserved, usage.deleted), (first_bytes, 0, 0));
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_delta_of_an_unfinished_run_or_another_rule_is_refused_writing_nothing() {
    let sdk = moto().await;
    let ctx = context(&sdk);
    let bucket = bucket(&sdk, true).await;
    let t = tree(&[("users/7/a.jpg", "photos/dune.jpg", 3)]);
    let target = format!("s3://{bucket}");
    let o = options(&target, "keep", HashMap::new(), &t.url());
    let planned = plan(&ctx, &t, &o).await.unwrap().run.unwrap();
    let planned_id = RunId::parse(&planned).unwrap();

    let usage = |r: Result<migrate::plan::Planned, MigrateError>| match r {
        Err(e @ MigrateError::Usage(_)) => e.to_string(),
        other => panic!("expected a usage error, got {other:?}"),
    };
    let err = usage(plan(&ctx, &t, &with_since(&o, &planned_id)).await);
    assert!(err.contains("planned; run it to the end"), "{err}");
    let missing = RunId::parse("r20200101t000000-00000000").unwrap();
    let err = usage(plan(&ctx, &t, &with_since(&o, &missing)).await);
    assert!(err.contains("there is no run"), "{err}");
    run_and_verify(&ctx, &t, &planned).await;
    let other_rule = options(&target, "lowercase", HashMap::new(), &t.url());
    let err = usage(plan(&ctx, &t, &with_since(&other_rule, &planned_id)).await);
    assert!(err.contains("key rule keep"), "{err}");
    let other_target = options(&format!("s3://{bucket}/elsewhere"), "keep", HashMap::new(), &t.url());
    let err = usage(plan(&ctx, &t, &with_since(&other_target, &planned_id)).await);
    assert!(err.contains("target"), "{err}");
    let deltas = ctx.ledger.list_runs().await.unwrap().into_iter().filter(|r| r.since.as_ref() == Some(&planned_id));
    assert_eq!(deltas.count(), 0, "no run was written");
}
