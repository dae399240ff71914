//! `migrate run` killed with SIGKILL at seeded random points, then run again: every file ends
//! up copied exactly once (one version per key), the ledger agrees with the bucket, and
//! `verify --deep` passes. Runs the real binary against moto, through `scripts/test`.

use crate::common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use matbakh_core::migration::{RowStatus, SplitMix64};
use migrate::verify::VerifyOptions;

fn migrate_run(run: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_migrate"));
    c.args(["--json", "run", run, "--transfers", "4"]).stdout(Stdio::piped()).stderr(Stdio::null());
    c
}

/// Starts `migrate run` and kills it (SIGKILL) once it reported `k` more copies.
fn run_and_kill(run: &str, k: usize) -> usize {
    let mut child = migrate_run(run).spawn().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut copied = 0;
    for line in lines {
        let line = line.unwrap();
        if line.contains(r#""event":"copied""#) {
            copied += 1;
            if copied == k {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    copied
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_run_killed_at_random_points_and_rerun_copies_every_file_exactly_once() {
    let sdk = moto().await;
    let ctx = context(&sdk);
    let bucket = bucket(&sdk, true).await;
    let photos = ["photos/ladybird.jpg", "photos/panasonic-orientation6.jpg", "photos/dune.jpg", "other/alpha.png"];
    let mut files: Vec<(String, &str, u64)> = (0..36)
        .map(|i| (format!("users/{}/2025/{:02}/img-{i}.bin", i % 5, i % 12 + 1), photos[i % 4], i as u64))
        .collect();
    files.push(("users/9/2025/12/sony.jpg".into(), "photos/sony-18mp-progressive.jpg", 0));
    let spec: Vec<(&str, &str, u64)> = files.iter().map(|(p, c, d)| (p.as_str(), *c, *d)).collect();
    let t = tree(&spec);
    let planned = plan(&ctx, &t, &options(&format!("s3://{bucket}"), "keep", HashMap::new(), &t.url())).await.unwrap();
    let run = planned.run.unwrap();
    let total = planned.files as usize;

    let mut rng = SplitMix64::new(0x5eed);
    let mut reported = 0;
    for _ in 0..3 {
        let left = total - reported;
        let k = 1 + rng.below((left / 3).max(1) as u64) as usize;
        reported += run_and_kill(&run, k);
    }
    let done = migrate_run(&run).status().unwrap();
    assert!(done.success());

    let v = migrate::verify::verify(&ctx, &run, &VerifyOptions { deep: true, ..Default::default() }).await.unwrap();
    assert!(v.passed(), "{v:?}");
    assert_eq!(v.checked as usize, total);
    let rows = ctx.ledger.rows(&matbakh_core::migration::RunId::parse(&run).unwrap()).await.unwrap();
    let versions = snapshot(&sdk, &bucket, "users/").await;
    for r in &rows {
        assert_eq!(r.status, RowStatus::Copied);
        let of_key: Vec<_> = versions.iter().filter(|(k, _, _, _)| *k == r.entry.key).collect();
        assert_eq!(of_key.len(), 1, "{} has {} versions", r.entry.key, of_key.len());
        assert_eq!(Some(&of_key[0].1), r.version_id.as_ref(), "{}", r.entry.key);
    }
    let status = migrate::control::status(&ctx, &run).await.unwrap();
    assert_eq!(status.copied_files as usize, total, "the counters agree with the ledger");
}

#[test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
fn bad_input_gets_a_clear_message_a_usage_exit_code_and_changes_nothing() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_migrate")).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, err, _) = run(&["plan", "--source", "/no/such/tree", "--target", "s3://bucket"]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("migrate: source /no/such/tree:"), "{err}");
    let (code, err, _) = run(&["plan", "--source", "ftp://legacy", "--target", "s3://bucket"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("use file:///path, s3://bucket/prefix or https-list"), "{err}");
    // Copies S3 refuses (a single PUT or a part over 5 GiB), or a worker could not hold in
    // memory, are refused before anything is listed or written (review 22, migration 4).
    let tree = std::env::temp_dir();
    let tree = tree.to_str().unwrap();
    for (flag, size) in [("--multipart-threshold", "6GiB"), ("--part-size", "6GiB"), ("--part-size", "1MiB")] {
        let (code, err, _) = run(&["plan", "--source", tree, "--target", "s3://bucket", flag, size]);
        assert_eq!(code, Some(2), "{flag} {size}: {err}");
        assert!(err.contains(flag.trim_start_matches('-')), "{flag} {size}: {err}");
    }
    // Limits that would stop a run for good or overflow a date (review 26: a rate of 0 waited
    // 1e307 seconds, which panicked inside a worker and left the run RUNNING) are refused by
    // the parser, before anything is read.
    for (args, named) in [
        (&["run", "r-any", "--rate", "0"][..], "--rate"),
        (&["run", "r-any", "--rate=-1"], "--rate"),
        (&["run", "r-any", "--rate", "NaN"], "--rate"),
        (&["run", "r-any", "--rate", "inf"], "--rate"),
        (&["run", "r-any", "--bandwidth", "0"], "--bandwidth"),
        (&["run", "r-any", "--transfers", "0"], "--transfers"),
        (&["decommission-check", "--source", tree, "--quiet-days", "5000000"], "--quiet-days"),
    ] {
        let (code, err, _) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?}: {err}");
    }
    let (code, err, _) = run(&["status", "r-no-such-run"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("there is no run r-no-such-run"), "{err}");
    let (code, _, out) = run(&["--json", "pause", "NOT A RUN"]);
    assert_eq!(code, Some(2));
    assert!(out.contains(r#""error""#) && out.contains("is not a run id"), "{out}");
    let (code, err, _) = run(&["run"]);
    assert_eq!(code, Some(2), "clap's own usage error");
    assert!(err.contains("<RUN>"), "{err}");
    // With a files table but no erase key, nothing starts: it could copy back an erased user's files.
    let out = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["--files-table", "files", "status", "r-no-such-run"])
        .env_remove("ERASE_PSEUDONYM_SECRET_ID")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("set --erase-secret-id or ERASE_PSEUDONYM_SECRET_ID"), "{err}");
}
