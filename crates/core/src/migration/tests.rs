use std::collections::HashMap;

use super::mapping::{KeyRule, Mapper, check_key, collisions};
use super::*;

fn entry(source: &str, size: u64, mtime_ms: i64) -> ManifestEntry {
    ManifestEntry {
        seq: 0,
        source: source.into(),
        key: source.into(),
        size,
        mtime_ms,
        change: String::new(),
        content_type: "image/jpeg".into(),
        crc64nvme: "AAAAAAAAAAA=".into(),
        sha256: "00".repeat(32),
        priority: 0,
        batch: 0,
        prior: None,
        legacy: None,
        copied_by: None,
        supersedes: None,
    }
}

fn mapper(rule: &str) -> Mapper {
    Mapper {
        rule: KeyRule::parse(rule).unwrap(),
        prefix: String::new(),
        owner_segment: 2,
        owners: HashMap::from([("42".to_owned(), "user-42".to_owned())]),
        source_id: "file:///legacy".into(),
    }
}

#[test]
fn run_ids_sort_by_creation_and_parse_back() {
    let a = RunId::new(time::macros::datetime!(2026-11-28 07:00:00 UTC), 0xffff_ffff);
    let b = RunId::new(time::macros::datetime!(2026-11-28 07:00:01 UTC), 0);
    assert_eq!(a.as_str(), "r20261128t070000-ffffffff");
    assert!(a < b);
    assert_eq!(RunId::parse(a.as_str()).unwrap(), a);
    for bad in ["", "R1", "a/b", "run 1", &"x".repeat(65)] {
        assert!(RunId::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn run_states_follow_pause_resume_abort() {
    use Control::*;
    let running = RunState::Planned.apply(Start).unwrap();
    assert_eq!(running, RunState::Running);
    let paused = running.apply(Pause).unwrap();
    assert!(!paused.takes_work());
    assert!(paused.apply(Start).is_err(), "a paused run starts only after resume");
    assert_eq!(paused.apply(Pause).unwrap(), RunState::Paused, "pausing twice is harmless");
    assert_eq!(paused.apply(Resume).unwrap(), RunState::Running);
    let aborted = running.apply(Abort).unwrap();
    for c in [Start, Pause, Resume, Finish] {
        assert!(aborted.apply(c).is_err(), "{c:?} after abort");
    }
    assert_eq!(aborted.apply(Abort).unwrap(), RunState::Aborted);
    assert_eq!(running.apply(Finish).unwrap(), RunState::Done);
    assert_eq!(paused.apply(Finish).unwrap(), RunState::Paused, "a paused run is not done");
    assert!(running.apply(RollBack).is_err(), "a running run is not rolled back under its workers");
    // A rollback: first no worker takes the run's work (a DONE run's message coming back, a
    // paused run resumed), then every row is undone, then it is over.
    let rolling = aborted.apply(RollBack).unwrap();
    assert_eq!(rolling, RunState::RollingBack);
    assert!(!rolling.takes_work() && rolling.rolled_back());
    for c in [Start, Pause, Resume, Abort] {
        assert!(rolling.apply(c).is_err(), "{c:?} while rolling back");
    }
    assert_eq!(rolling.apply(RollBack).unwrap(), RunState::RollingBack, "a rollback run again carries on");
    let rolled = rolling.apply(Finish).unwrap();
    assert_eq!(rolled, RunState::RolledBack);
    assert!(rolled.apply(Start).is_err() && rolled.apply(Resume).is_err());
    assert_eq!(paused.apply(RollBack).unwrap(), RunState::RollingBack);
    assert_eq!(RunState::Done.apply(RollBack).unwrap(), RunState::RollingBack);
    for s in [
        RunState::Planned,
        RunState::Running,
        RunState::Paused,
        RunState::Aborted,
        RunState::Done,
        RunState::RollingBack,
        RunState::RolledBack,
    ] {
        assert_eq!(RunState::parse(s.as_str()).unwrap(), s);
    }
}

#[test]
fn plan_orders_by_priority_and_packs_batches() {
    let mib = 1024 * 1024;
    // What `plan` does with its sorted stream: order by the key, then place each in turn.
    let order_and_batch = |entries: &mut Vec<ManifestEntry>, priority: Priority, files: usize, bytes: u64| {
        entries.sort_by_key(|e| priority.order_key(&e.source, e.mtime_ms, e.size));
        let mut batcher = Batcher::new(files, bytes);
        entries.iter_mut().for_each(|e| batcher.place(e));
    };
    let mut entries = vec![entry("a", 10, 1), entry("b", 70 * mib, 3), entry("c", 10, 2), entry("d", 30 * mib, 4)];
    order_and_batch(&mut entries, Priority::Newest, 2, 64 * mib);
    let order: Vec<_> = entries.iter().map(|e| (e.source.as_str(), e.seq, e.batch)).collect();
    // Newest first; d (30 MiB) and b (70 MiB) cannot share a 64 MiB batch; c and a can.
    assert_eq!(order, vec![("d", 0, 0), ("b", 1, 1), ("c", 2, 2), ("a", 3, 2)]);
    order_and_batch(&mut entries, Priority::Smallest, 100, 64 * mib);
    assert_eq!(entries.iter().map(|e| e.source.as_str()).collect::<Vec<_>>(), ["a", "c", "d", "b"]);
    assert_eq!(Priority::parse("oldest").unwrap(), Priority::Oldest);
    assert!(Priority::parse("random").is_err());
}

#[test]
fn key_rules_keep_lowercase_and_fill_the_platform_template() {
    let mtime = 1_700_000_000_000; // 2023-11-14
    assert_eq!(mapper("keep").key("users/42/2023/a.JPG", mtime).unwrap(), "users/42/2023/a.JPG");
    assert_eq!(mapper("lowercase").key("users/42/2023/a.JPG", mtime).unwrap(), "users/42/2023/a.jpg");
    let m = mapper("platform");
    let key = m.key("users/42/2023/Holiday: day 1.JPG", mtime).unwrap();
    let id = m.file_id("users/42/2023/Holiday: day 1.JPG", mtime);
    assert_eq!(key, format!("users/user-42/{id}/Holiday_ day 1.JPG"));
    // Stable across plans, different for another path or another source.
    assert_eq!(m.file_id("users/42/2023/Holiday: day 1.JPG", mtime), id);
    assert_ne!(m.file_id("users/42/2023/other.jpg", mtime), id);
    let mut other = mapper("platform");
    other.source_id = "s3://legacy".into();
    assert_ne!(other.file_id("users/42/2023/Holiday: day 1.JPG", mtime), id);
    // A later generation of the file (rewritten since a run copied it) gets a key of its own
    // under {fileId}, the same under rules without it.
    let path = "users/42/2023/Holiday: day 1.JPG";
    let next = m.key_of(path, mtime, None, Some("7:1700000000123")).unwrap();
    assert_ne!(next, key);
    assert_eq!(
        next,
        format!("users/user-42/{}/Holiday_ day 1.JPG", m.file_id_of(path, mtime, Some("7:1700000000123")))
    );
    assert_ne!(m.key_of(path, mtime, None, Some("7:1700000000999")).unwrap(), next);
    assert_eq!(mapper("keep").key_of(path, mtime, None, Some("7:1")).unwrap(), path);
    // An owner not in the table keeps the legacy id; the date variables use the mtime.
    let t = mapper("template:archive/{owner}/{yyyy}/{mm}/{name}");
    assert_eq!(t.key("users/7/x/y.png", mtime).unwrap(), "archive/7/2023/11/y.png");
    let mut prefixed = mapper("keep");
    prefixed.prefix = "legacy/".into();
    assert_eq!(prefixed.key("a/b.txt", mtime).unwrap(), "legacy/a/b.txt");
}

#[test]
fn bad_rules_and_keys_are_refused_with_the_reason() {
    for bad in ["", "copy", "template:{nope}/{name}", "template:{name"] {
        assert!(KeyRule::parse(bad).is_err(), "{bad:?}");
    }
    // A path without the owner segment, an owner that is no user id.
    assert!(mapper("platform").key("top.jpg", 0).is_err());
    assert!(mapper("platform").key("users/bad owner/x.jpg", 0).is_err());
    for bad in ["", "/abs", "a//b", "a/../b", "a/./b", "tab\there", &"k".repeat(1025)] {
        assert!(check_key(bad).is_err(), "{bad:?}");
    }
    // `template:{dir}` of a file at the top makes an empty key.
    assert!(mapper("template:{dir}").key("top.jpg", 0).is_err());
}

#[test]
fn collisions_name_every_source_of_a_shared_key() {
    let m = mapper("lowercase");
    let sources = ["Photos/A.jpg", "photos/a.jpg", "photos/b.jpg", "PHOTOS/A.JPG"];
    let keys: Vec<String> = sources.iter().map(|s| m.key(s, 0).unwrap()).collect();
    let found = collisions(sources.iter().copied().zip(keys.iter().map(String::as_str)));
    assert_eq!(
        found,
        vec![(
            "photos/a.jpg".to_owned(),
            vec!["PHOTOS/A.JPG".to_owned(), "Photos/A.jpg".to_owned(), "photos/a.jpg".to_owned()]
        )]
    );
    assert!(collisions([("a", "x"), ("b", "y")]).is_empty());
}

#[test]
fn failure_reasons_round_trip_and_only_transient_ones_retry() {
    for r in FailureReason::ALL {
        assert_eq!(FailureReason::parse(r.as_str()).unwrap(), r);
    }
    assert!(FailureReason::RetriesExhausted.retryable());
    assert!(!FailureReason::SourceChanged.retryable());
    assert!(!FailureReason::TargetChanged.retryable());
}

#[test]
fn samples_are_distinct_sorted_and_seeded() {
    let a = SplitMix64::new(42).sample(1000, 10);
    assert_eq!(a, SplitMix64::new(42).sample(1000, 10));
    assert_ne!(a, SplitMix64::new(43).sample(1000, 10));
    assert!(a.windows(2).all(|w| w[0] < w[1]) && a.len() == 10 && a[9] < 1000);
    assert_eq!(SplitMix64::new(1).sample(3, 10), vec![0, 1, 2]);
}

#[test]
fn manifest_lines_round_trip_as_camel_case_json() {
    let mut e = entry("users/42/a.jpg", 5, 7);
    e.prior = Some(Prior { etag: "\"abc\"".into(), version_id: Some("v1".into()) });
    let line = serde_json::to_string(&e).unwrap();
    assert!(
        line.contains("\"mtimeMs\":7") && line.contains("\"contentType\"") && line.contains("\"versionId\":\"v1\"")
    );
    assert_eq!(serde_json::from_str::<ManifestEntry>(&line).unwrap(), e);
}

#[test]
fn an_erased_owners_line_names_neither_them_nor_the_file_and_still_adds_up() {
    let key = crate::audit::PseudonymKey::new(&[7; crate::audit::MIN_PSEUDONYM_KEY_BYTES]).unwrap();
    let mut line = entry("shop/alice-legacy-7/passport.jpg", 4096, 1_700_000_000_000);
    line.seq = 12;
    line.key = "users/alice-123/0190a0b0-0000-7000-8000-000000000001/passport.jpg".into();
    line.change = "ino:77".into();
    line.prior = Some(Prior { etag: "\"e\"".into(), version_id: Some("v1".into()) });
    line.supersedes = Some("users/alice-123/0190a0b0-0000-7000-8000-000000000000/passport.jpg".into());
    line.copied_by = Some("r20261128t070000-00000001".into());
    line.legacy = Some(legacy_meta::LegacyMeta {
        owner: Some("alice-legacy-7".into()),
        name: Some("passport.jpg".into()),
        tags: vec!["private".into()],
        ..Default::default()
    });
    assert_eq!(line.owner().map(|o| o.to_string()), Some("alice-123".to_owned()));

    let kept = line.erased(&key);
    let json = serde_json::to_string(&kept).unwrap();
    for named in ["alice", "passport", "shop/", "ino:77", "0190a0b0", "private"] {
        assert!(!json.contains(named), "{named} is still in {json}");
    }
    let stand_in = crate::audit::pseudonym(&key, &UserId::parse("alice-123").unwrap());
    assert_eq!(kept.key, format!("users/{stand_in}/"));
    assert_eq!(kept.source, crate::audit::erased_path(&key, "shop/alice-legacy-7/passport.jpg"));
    assert_eq!(
        (kept.seq, kept.size, kept.mtime_ms, &kept.crc64nvme, &kept.sha256, &kept.copied_by),
        (12, 4096, 1_700_000_000_000, &line.crc64nvme, &line.sha256, &line.copied_by)
    );
    assert!(kept.is_erased() && !line.is_erased());
    // Kept once is kept: a second pass (a retried redaction) changes nothing.
    assert_eq!(kept.erased(&key), kept);
    // A path that merely looks like a mark is not taken for one.
    let mut odd = entry("erased:looks-like-a-mark.jpg", 1, 0);
    odd.key = "users/bob/0190a0b0-0000-7000-8000-000000000002/x.jpg".into();
    assert!(!odd.is_erased());
}
