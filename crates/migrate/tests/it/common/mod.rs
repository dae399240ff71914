//! A legacy tree of real photos on disk, a fresh bucket on the local S3, and the ledger table
//! `scripts/test` created in moto.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use matbakh_core::clock::SystemClock;
use matbakh_core::migration::mapping::{KeyRule, Mapper};
use matbakh_core::migration::{DEFAULT_BATCH_BYTES, DEFAULT_BATCH_FILES, Priority};
use migrate::plan::{CopySettings, PlanOptions, Planned};
use migrate::source::FileSource;
use migrate::{Context, MigrateError};

pub const MIB: u64 = 1024 * 1024;

/// A directory removed when dropped.
pub struct Tree(pub PathBuf);

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Tree {
    pub fn url(&self) -> String {
        format!("file://{}", std::fs::canonicalize(&self.0).unwrap().display())
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

/// `(relative path, corpus file, days before now)`: a legacy tree of real photos, with mtimes.
pub fn tree(files: &[(&str, &str, u64)]) -> Tree {
    let root = std::env::temp_dir().join(format!("legacy-{}", uuid_like()));
    for (rel, corpus, days) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let (_, bytes) = testkit::corpus(corpus);
        std::fs::write(&path, bytes).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400)).unwrap();
    }
    Tree(root)
}

pub fn uuid_like() -> String {
    testkit::unique_user("x").replace("x-", "")
}

/// Eight photos of three users over two years, one of them (16 MB) above a 6 MiB threshold.
pub fn photo_tree() -> Tree {
    tree(&[
        ("users/42/2024/01/dune.jpg", "photos/dune.jpg", 400),
        ("users/42/2024/02/ladybird.jpg", "photos/ladybird.jpg", 380),
        ("users/42/2025/07/Olympus 4mp (ICC).jpg", "photos/olympus-4mp-icc.jpg", 120),
        ("users/7/2025/03/panasonic.jpg", "photos/panasonic-orientation6.jpg", 250),
        ("users/7/2025/03/phone.jpg", "photos/phone-13mp.jpg", 249),
        ("users/7/2025/09/sony.jpg", "photos/sony-18mp-progressive.jpg", 60),
        ("users/99/2025/11/alpha.png", "other/alpha.png", 10),
        ("users/99/2025/11/anim.gif", "other/anim-45-frames.gif", 9),
    ])
}

pub async fn moto() -> SdkConfig {
    testkit::moto_sdk().await
}

pub fn context(sdk: &SdkConfig) -> Context {
    // Pages of 3 rows: every command crosses page boundaries even on a small tree.
    Context::new(sdk, &testkit::env("MIGRATION_TABLE"), Arc::new(SystemClock)).with_page_rows(3).with_files(
        sdk,
        &testkit::env("TABLE_NAME"),
        erasures(),
    )
}

/// The tests' key of the erase pseudonyms.
pub fn erasures() -> matbakh_core::audit::PseudonymKey {
    matbakh_core::audit::PseudonymKey::new(b"the migration tests' erase pseudonym key").unwrap()
}

pub fn s3(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(sdk).force_path_style(true).build())
}

/// A new bucket on moto, versioned or not.
pub async fn bucket(sdk: &SdkConfig, versioned: bool) -> String {
    let id = uuid_like();
    let name = format!("mig-{}", &id[id.len() - 24..]).to_lowercase();
    let client = s3(sdk);
    let region = sdk.region().unwrap().to_string();
    let mut create = client.create_bucket().bucket(&name);
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    create.send().await.unwrap();
    if versioned {
        client
            .put_bucket_versioning()
            .bucket(&name)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    name
}

/// Every version and delete marker under `prefix`: (key, version id, latest, delete marker).
pub async fn snapshot(sdk: &SdkConfig, bucket: &str, prefix: &str) -> BTreeSet<(String, String, bool, bool)> {
    let out = s3(sdk).list_object_versions().bucket(bucket).prefix(prefix).max_keys(1000).send().await.unwrap();
    assert_ne!(out.is_truncated(), Some(true), "snapshot of more than 1000 versions");
    let mut set = BTreeSet::new();
    for v in out.versions() {
        set.insert((
            v.key().unwrap().to_owned(),
            v.version_id().unwrap().to_owned(),
            v.is_latest().unwrap_or(false),
            false,
        ));
    }
    for m in out.delete_markers() {
        set.insert((
            m.key().unwrap().to_owned(),
            m.version_id().unwrap().to_owned(),
            m.is_latest().unwrap_or(false),
            true,
        ));
    }
    set
}

pub fn options(target: &str, rule: &str, owners: HashMap<String, String>, source: &str) -> PlanOptions {
    let (_, prefix) = migrate::parse_target(target).unwrap();
    PlanOptions {
        target: target.to_owned(),
        mapper: Mapper {
            rule: KeyRule::parse(rule).unwrap(),
            prefix,
            owner_segment: 2,
            owners,
            source_id: source.to_owned(),
        },
        priority: Priority::Newest,
        batch_files: DEFAULT_BATCH_FILES,
        batch_bytes: DEFAULT_BATCH_BYTES,
        // 6 MiB: the 16 MB photo goes as multipart in 5 MiB parts (S3's minimum).
        copy: CopySettings { multipart_threshold: 6 * MIB, part_size: 5 * MIB, ..CopySettings::default() },
        transfers: 4,
        hash_parallelism: 2,
        // Steps of 3 files: the plan's chunking is crossed even on a small tree.
        chunk_files: 3,
        // A few records a run: the plan's sorts spill and merge even on a small tree.
        sort_bytes: 256,
        dry_run: false,
        manifest_out: None,
        metadata: None,
        since: None,
    }
}

pub async fn plan(ctx: &Context, tree: &Tree, opts: &PlanOptions) -> Result<Planned, MigrateError> {
    let source = Arc::new(FileSource::new(&tree.0)?);
    migrate::plan::plan(ctx, source, opts).await
}

pub fn source(tree: &Tree) -> Arc<dyn migrate::source::Source> {
    Arc::new(FileSource::new(&tree.0).unwrap())
}

pub fn quiet() -> migrate::run::Events {
    Arc::new(|_| {})
}

pub fn read_all(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Every ledger row of the run.
pub async fn all_rows(ctx: &migrate::Context, run: &str) -> Vec<matbakh_aws::ledger::LedgerRow> {
    ctx.ledger.rows(&matbakh_core::migration::RunId::parse(run).unwrap()).await.unwrap()
}

/// A user who erases their account: the photo tree's `users/7/` files are theirs (and
/// `user-42` has `users/42/`).
pub struct ErasedUser {
    pub id: String,
    pub owners: HashMap<String, String>,
}

impl ErasedUser {
    /// Their files' legacy paths in [`photo_tree`].
    pub const PATHS: [&str; 3] =
        ["users/7/2025/03/panasonic.jpg", "users/7/2025/03/phone.jpg", "users/7/2025/09/sony.jpg"];

    pub fn new() -> Self {
        let id = testkit::unique_user("erased");
        let owners = HashMap::from([("42".to_owned(), "user-42".to_owned()), ("7".to_owned(), id.clone())]);
        ErasedUser { id, owners }
    }

    /// Their keyed pseudonym.
    pub fn stand_in(&self) -> matbakh_core::ids::UserId {
        matbakh_core::audit::pseudonym(&erasures(), &matbakh_core::ids::UserId::parse(&self.id).unwrap())
    }

    /// What the account's erase writes first: the mark under their pseudonym, and the marks of
    /// `paths` (their migrated files').
    pub async fn mark(&self, sdk: &SdkConfig, paths: &[&str]) {
        let marks: Vec<String> = paths.iter().map(|p| matbakh_core::audit::erased_path(&erasures(), p)).collect();
        let files = matbakh_aws::FileTable::new(sdk, testkit::env("TABLE_NAME"));
        files.mark_erased(&self.stand_in(), &marks, "2026-12-06T00:00:00.000Z").await.unwrap();
    }

    /// Whether `text` names them or one of their legacy paths.
    pub fn named_in(&self, text: &str) -> bool {
        text.contains(&self.id) || text.contains("users/7/")
    }
}
