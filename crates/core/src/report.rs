//! The storage and cost report: what the bucket holds, by user, content type, storage class and
//! age, what it costs a month, and what would make it cheaper.
//!
//! Its input is one row per object version, in the shape of an S3 Inventory report
//! ([`InventoryRow`]); the reporter reads them from the bucket's daily inventory in AWS, or
//! by listing the bucket where no inventory exists (locally). Rows are added one at a time to
//! a [`Tally`], so a bucket of any size is reported in bounded memory: one entry per user (the
//! report lists only the largest [`TOP_USERS`]) and, to count each file's variants as its
//! owner's, one small entry per file, at most [`ATTRIBUTED_FILES_MAX`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use time::{Date, OffsetDateTime};

use crate::cdn_log;
use crate::clock::iso_seconds;
use crate::ids::{FileId, ObjectKey};
use crate::types::ContentType;

/// How many users the report lists by name (the rest are summed as `others`).
pub const TOP_USERS: usize = 20;
/// How many files a report remembers to count their variants as their owners': measured, about
/// 70 bytes a file in the map, 100 MB a million files at the peak of its last growth, so at most
/// about 200 MB of the reporter's 512. Past it, variants of files it did not remember are
/// counted as no one's (`unattributedVariants`).
pub const ATTRIBUTED_FILES_MAX: usize = 2_000_000;
/// How many orphaned variants' prefixes (`derived/{fileId}/`) a report names, the first by key.
pub const ORPHANS_LISTED: usize = 20;
/// Age from which an original counts as untouched for the archive recommendation (days).
pub const UNTOUCHED_DAYS: i64 = 180;
/// How many days of CDN access logs the transfer part reads: today so far and the days before.
pub const TRANSFER_DAYS: u32 = 7;
/// Below this share of requests served from the edge's cache, the report recommends looking
/// at the CDN's caching (the plan's TR-2 asks for 80%), once there are enough requests to tell.
pub const LOW_HIT_RATE: f64 = 0.8;
const HIT_RATE_MIN_REQUESTS: u64 = 1000;
/// Days in an average month, to turn a window's transfer into a monthly cost.
const DAYS_PER_MONTH: f64 = 30.44;

/// One object version, as an S3 Inventory row has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryRow {
    pub key: String,
    pub size: u64,
    pub last_modified: OffsetDateTime,
    /// `STANDARD`, `INTELLIGENT_TIERING`, `GLACIER`, ...
    pub storage_class: String,
    /// The current version (else a noncurrent one: kept for restores).
    pub is_latest: bool,
    pub is_delete_marker: bool,
}

/// What an object is, by where the platform keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// `users/{sub}/{fileId}/{name}`: a user's file.
    Original,
    /// `derived/`: responsive variants.
    Variant,
    /// `p/`: public copies for the files CDN.
    PublicCopy,
    /// `results/`: cached transforms.
    Result,
    /// `exports/`: GDPR export archives.
    Export,
    /// `quarantine/`: refused uploads, kept for a while.
    Quarantine,
    /// `t/`: image transforms (CDN paths only; their results are stored as [`Kind::Result`]).
    Transform,
    /// Anything else (inventory and report files).
    Other,
}

impl Kind {
    /// The kind of `key`, and its owner where the key names one.
    pub fn of(key: &str) -> (Kind, Option<&str>) {
        let mut parts = key.splitn(3, '/');
        let (top, second) = (parts.next().unwrap_or(""), parts.next());
        match top {
            "users" => (Kind::Original, second),
            "derived" => (Kind::Variant, None),
            "p" => (Kind::PublicCopy, None),
            "results" => (Kind::Result, None),
            "exports" => (Kind::Export, second),
            "quarantine" => (Kind::Quarantine, None),
            "t" => (Kind::Transform, None),
            _ => (Kind::Other, None),
        }
    }
}

/// The age bands of the report, by days since the version was written.
pub const AGE_BANDS: [(&str, i64); 5] =
    [("<30d", 30), ("30-90d", 90), ("90-180d", 180), ("180-365d", 365), (">365d", i64::MAX)];

fn age_band(days: i64) -> &'static str {
    AGE_BANDS.iter().find(|(_, below)| days < *below).map_or(">365d", |(name, _)| name)
}

/// Objects and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Count {
    pub objects: u64,
    pub bytes: u64,
}

impl Count {
    fn add(&mut self, bytes: u64) {
        self.objects += 1;
        self.bytes += bytes;
    }

    fn merge(&mut self, other: Count) {
        self.objects += other.objects;
        self.bytes += other.bytes;
    }
}

/// The first [`TOP_USERS`] of `sorted`, then `others` with the rest folded into it by `fold`
/// (left out when nothing was folded).
fn top_then_others<T>(mut sorted: Vec<T>, mut others: T, fold: impl Fn(&mut T, &T)) -> Vec<T> {
    let rest = sorted.split_off(TOP_USERS.min(sorted.len()));
    for u in &rest {
        fold(&mut others, u);
    }
    if !rest.is_empty() {
        sorted.push(others);
    }
    sorted
}

/// `part` of `whole` (0 to 1) to three decimals; 0 of nothing.
fn thousandths(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { (part as f64 / whole as f64 * 1000.0).round() / 1000.0 }
}

/// One user's share.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserUsage {
    pub user: String,
    /// Current originals.
    pub files: Count,
    /// Noncurrent versions and delete-marker-hidden files: deleted, kept for restores.
    pub deleted_kept: Count,
    /// What the platform made of their files: responsive variants and cached transforms.
    pub derived: Count,
}

impl UserUsage {
    /// Everything of theirs the bucket holds.
    fn bytes(&self) -> u64 {
        self.files.bytes + self.deleted_kept.bytes + self.derived.bytes
    }
}

/// S3 list prices per GB-month by storage class, and CloudFront's per GB out, for one region.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Prices {
    pub region: &'static str,
    /// The day the prices were read off AWS's price pages.
    pub as_of: &'static str,
    pub standard: f64,
    /// Intelligent-Tiering's frequent access tier (its infrequent tiers are cheaper; the
    /// report does not know which tier an object is in, so it counts the frequent price).
    pub intelligent_tiering: f64,
    pub standard_ia: f64,
    pub glacier_ir: f64,
    pub glacier: f64,
    pub deep_archive: f64,
    pub cloudfront_out: f64,
}

/// The price table, dated (USD, first tier; check <https://aws.amazon.com/s3/pricing/> before
/// relying on a figure). The reporter picks the deployment's region (`PRICE_REGION`).
pub const PRICES: [Prices; 3] = [
    Prices {
        region: "eu-central-1",
        as_of: "2026-11-01",
        standard: 0.0245,
        intelligent_tiering: 0.0245,
        standard_ia: 0.0135,
        glacier_ir: 0.005,
        glacier: 0.0045,
        deep_archive: 0.0018,
        cloudfront_out: 0.085,
    },
    Prices {
        region: "eu-west-1",
        as_of: "2026-11-01",
        standard: 0.023,
        intelligent_tiering: 0.023,
        standard_ia: 0.0125,
        glacier_ir: 0.004,
        glacier: 0.0036,
        deep_archive: 0.00099,
        cloudfront_out: 0.085,
    },
    Prices {
        region: "us-east-1",
        as_of: "2026-11-01",
        standard: 0.023,
        intelligent_tiering: 0.023,
        standard_ia: 0.0125,
        glacier_ir: 0.004,
        glacier: 0.0036,
        deep_archive: 0.00099,
        cloudfront_out: 0.085,
    },
];

impl Prices {
    /// The table's prices for `region`, or the first region's (said so in the report).
    pub fn for_region(region: &str) -> Prices {
        PRICES.iter().find(|p| p.region == region).copied().unwrap_or(PRICES[0])
    }

    /// USD per GB-month of `class`.
    pub fn per_gb(&self, class: &str) -> f64 {
        match class {
            "INTELLIGENT_TIERING" => self.intelligent_tiering,
            "STANDARD_IA" | "ONEZONE_IA" => self.standard_ia,
            "GLACIER_IR" => self.glacier_ir,
            "GLACIER" => self.glacier,
            "DEEP_ARCHIVE" => self.deep_archive,
            _ => self.standard,
        }
    }
}

const GB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Adds rows up, one at a time.
#[derive(Debug, Default)]
pub struct Tally {
    total: Count,
    by_kind: BTreeMap<Kind, Count>,
    by_type: BTreeMap<String, Count>,
    by_class: BTreeMap<String, Count>,
    by_age: BTreeMap<&'static str, Count>,
    users: Vec<UserUsage>,
    user_index: HashMap<String, u32>,
    /// What the tally knows of each file: whose it is, or its variants waiting for the original
    /// (where rows come sorted by key, every file's: `derived/` sorts before `users/`).
    files: HashMap<FileId, Remembered>,
    /// How many files `files` holds at most.
    files_max: FileLimit,
    /// Variants no file in the bucket has: their id is not one, or no original of it came.
    orphans: Count,
    /// The first [`ORPHANS_LISTED`] prefixes of those, by key.
    orphan_prefixes: BTreeSet<String>,
    /// Variants not counted as anyone's because `files` was full.
    unattributed: Count,
    /// An original was not remembered (`files` was full): a variant still waiting at the end
    /// may be its, so it is not called an orphan.
    forgot: bool,
    deleted_kept: Count,
    noncurrent_versions: u64,
    delete_markers: u64,
    /// Current originals older than [`UNTOUCHED_DAYS`] in a class that is not archived yet.
    untouched: Count,
    untouched_cost: f64,
    monthly_cost: f64,
}

/// How many files a [`Tally`] remembers: [`ATTRIBUTED_FILES_MAX`] unless a test says fewer.
#[derive(Debug, Clone, Copy)]
struct FileLimit(usize);

impl Default for FileLimit {
    fn default() -> Self {
        FileLimit(ATTRIBUTED_FILES_MAX)
    }
}

/// What a [`Tally`] remembers of a file (32 bytes with its id).
#[derive(Debug, Clone, Copy)]
enum Remembered {
    /// Its original came: whose it is (in [`Tally::users`]).
    Owner(u32),
    /// Its variants came, its original not (yet).
    Waiting { objects: u32, bytes: u64 },
}

impl Tally {
    /// A tally that remembers at most `files_max` files to count variants as their owners'.
    pub fn remembering(files_max: usize) -> Self {
        Tally { files_max: FileLimit(files_max), ..Tally::default() }
    }

    /// `owner`'s place in `users`.
    fn user(&mut self, owner: &str) -> usize {
        if let Some(&i) = self.user_index.get(owner) {
            return i as usize;
        }
        self.users.push(UserUsage { user: owner.to_owned(), ..Default::default() });
        let i = self.users.len() - 1;
        self.user_index.insert(owner.to_owned(), i as u32);
        i
    }

    fn has_room(&self) -> bool {
        self.files.len() < self.files_max.0
    }

    /// A variant (`derived/{fileId}/...`): its owner's if its original came, else it waits for it.
    fn add_variant(&mut self, key: &str, bytes: u64) {
        let id = key.strip_prefix("derived/").and_then(|rest| rest.split('/').next()).unwrap_or_default();
        let Ok(file) = FileId::parse(id) else {
            self.orphans.add(bytes);
            self.note_orphan(format!("derived/{id}/"));
            return;
        };
        let room = self.has_room();
        match self.files.get_mut(&file) {
            Some(Remembered::Owner(owner)) => self.users[*owner as usize].derived.add(bytes),
            Some(Remembered::Waiting { objects, bytes: waiting }) => {
                *objects += 1;
                *waiting += bytes;
            }
            None if room => {
                self.files.insert(file, Remembered::Waiting { objects: 1, bytes });
            }
            None => self.unattributed.add(bytes),
        }
    }

    /// Keeps `prefix` if it is among the first [`ORPHANS_LISTED`] by key.
    fn note_orphan(&mut self, prefix: String) {
        self.orphan_prefixes.insert(prefix);
        if self.orphan_prefixes.len() > ORPHANS_LISTED {
            self.orphan_prefixes.pop_last();
        }
    }

    /// An original of `owner`'s (`users/{sub}/{fileId}/{name}`): its variants count as theirs.
    fn remember(&mut self, key: &str, owner: usize) {
        let Some(file) = ObjectKey::file_id_of(key) else { return };
        match self.files.get(&file).copied() {
            Some(Remembered::Owner(_)) => {}
            Some(Remembered::Waiting { objects, bytes }) => {
                self.users[owner].derived.merge(Count { objects: objects.into(), bytes });
                self.files.insert(file, Remembered::Owner(owner as u32));
            }
            None if self.has_room() => {
                self.files.insert(file, Remembered::Owner(owner as u32));
            }
            None => self.forgot = true,
        }
    }

    /// Counts `row` as of `now` with `prices`.
    pub fn add(&mut self, row: &InventoryRow, now: OffsetDateTime, prices: &Prices) {
        if row.is_delete_marker {
            self.delete_markers += 1;
            return;
        }
        let (kind, owner) = Kind::of(&row.key);
        let bytes = row.size;
        self.total.add(bytes);
        self.by_kind.entry(kind).or_default().add(bytes);
        self.by_class.entry(row.storage_class.clone()).or_default().add(bytes);
        let days = (now - row.last_modified).whole_days().max(0);
        self.by_age.entry(age_band(days)).or_default().add(bytes);
        let cost = bytes as f64 / GB * prices.per_gb(&row.storage_class);
        self.monthly_cost += cost;
        if !row.is_latest {
            self.noncurrent_versions += 1;
        }
        match kind {
            Kind::Original => {}
            Kind::Variant => return self.add_variant(&row.key, bytes),
            Kind::Result => {
                // `results/{source key}/...`: the source's owner, where it is a user's file.
                if let Some(owner) = row.key.strip_prefix("results/users/").and_then(|rest| rest.split('/').next()) {
                    let i = self.user(owner);
                    self.users[i].derived.add(bytes);
                }
                return;
            }
            _ => return,
        }
        let content_type = ContentType::from_file_name(&row.key).map_or("other", |t| t.as_str());
        self.by_type.entry(content_type.to_owned()).or_default().add(bytes);
        let i = self.user(owner.unwrap_or("?"));
        self.remember(&row.key, i);
        let user = &mut self.users[i];
        if row.is_latest {
            user.files.add(bytes);
            let archived = matches!(row.storage_class.as_str(), "GLACIER" | "DEEP_ARCHIVE" | "GLACIER_IR");
            if days >= UNTOUCHED_DAYS && !archived {
                self.untouched.add(bytes);
                self.untouched_cost += cost;
            }
        } else {
            user.deleted_kept.add(bytes);
            self.deleted_kept.add(bytes);
        }
    }

    /// The report, as of `now`, from `source` (`inventory` or `listing`).
    pub fn finish(mut self, now: OffsetDateTime, source: &str, prices: &Prices) -> Report {
        // Variants still waiting: no original of theirs came (unless one was not remembered).
        let mut orphans = self.orphans;
        let mut unattributed = self.unattributed;
        for (file, remembered) in std::mem::take(&mut self.files) {
            if let Remembered::Waiting { objects, bytes } = remembered {
                let variants = Count { objects: objects.into(), bytes };
                if self.forgot {
                    unattributed.merge(variants);
                } else {
                    orphans.merge(variants);
                    self.note_orphan(ObjectKey::derived_prefix(file));
                }
            }
        }
        let mut users = std::mem::take(&mut self.users);
        users.sort_by(|a, b| b.bytes().cmp(&a.bytes()).then(a.user.cmp(&b.user)));
        let user_count = users.len() as u64;
        let users = top_then_others(users, UserUsage { user: "others".into(), ..Default::default() }, |o, u| {
            o.files.merge(u.files);
            o.deleted_kept.merge(u.deleted_kept);
            o.derived.merge(u.derived);
        });
        let variants = self.by_kind.get(&Kind::Variant).copied().unwrap_or_default();
        let share = |part: u64| if self.total.bytes == 0 { 0.0 } else { part as f64 / self.total.bytes as f64 };
        let mut recommendations = Vec::new();
        let archive_saving = self.untouched_cost - self.untouched.bytes as f64 / GB * prices.glacier;
        if self.untouched.bytes > 0 {
            recommendations.push(Recommendation {
                kind: "archive",
                message: format!(
                    "{:.0}% of the bytes ({}) are originals untouched for {UNTOUCHED_DAYS} days: archiving them saves {}/month",
                    share(self.untouched.bytes) * 100.0,
                    human_bytes(self.untouched.bytes),
                    dollars(archive_saving)
                ),
                monthly_saving_usd: round_cents(archive_saving),
            });
        }
        if self.deleted_kept.bytes > 0 {
            let cost = self.deleted_kept.bytes as f64 / GB * prices.standard;
            recommendations.push(Recommendation {
                kind: "restore-window",
                message: format!(
                    "{} are deleted files kept for restores: halving RestoreWindowDays saves {}/month",
                    human_bytes(self.deleted_kept.bytes),
                    dollars(cost / 2.0)
                ),
                monthly_saving_usd: round_cents(cost / 2.0),
            });
        }
        if orphans.objects > 0 {
            let cost = orphans.bytes as f64 / GB * prices.standard;
            recommendations.push(Recommendation {
                kind: "orphan-variants",
                message: format!(
                    "{} ({}) {} to no file in the bucket (left by a removal that did not finish; orphanVariantPrefixes names where): deleting {} saves {}/month",
                    if orphans.objects == 1 { "1 variant".to_owned() } else { format!("{} variants", orphans.objects) },
                    human_bytes(orphans.bytes),
                    if orphans.objects == 1 { "belongs" } else { "belong" },
                    if orphans.objects == 1 { "it" } else { "them" },
                    dollars(cost)
                ),
                monthly_saving_usd: round_cents(cost),
            });
        }
        Report {
            generated_at: iso_seconds(now),
            source: source.to_owned(),
            prices: *prices,
            total: self.total,
            monthly_cost_usd: round_cents(self.monthly_cost),
            by_kind: self.by_kind,
            by_content_type: self.by_type,
            by_storage_class: self.by_class,
            by_age: AGE_BANDS
                .iter()
                .map(|(band, _)| (*band, self.by_age.get(band).copied().unwrap_or_default()))
                .collect(),
            users,
            user_count,
            deleted_kept: self.deleted_kept,
            noncurrent_versions: self.noncurrent_versions,
            delete_markers: self.delete_markers,
            variants_share: thousandths(variants.bytes, self.total.bytes),
            orphan_variants: orphans,
            orphan_variant_prefixes: std::mem::take(&mut self.orphan_prefixes).into_iter().collect(),
            unattributed_variants: unattributed,
            transfer: None,
            recommendations,
        }
    }
}

/// What the CDNs sent to viewers over the report's window, from their access logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    /// The window's first and last day (UTC, both included; the last is the report's day, so
    /// far: CloudFront delivers a log file within about an hour of its requests).
    pub from: String,
    pub to: String,
    pub days: u32,
    pub log_files: u64,
    /// Requests (`objects`) and bytes sent.
    pub total: Count,
    /// Share of requests served from the edge's cache (0 to 1).
    pub hit_rate: f64,
    /// Requests answered with a 4xx or 5xx.
    pub errors: u64,
    /// The window's bytes at CloudFront's price, as a month (by the time the window covers).
    pub monthly_cost_usd: f64,
    /// By CDN (`files`, `web`).
    pub by_distribution: BTreeMap<String, Count>,
    /// By what was requested (originals, variants, public copies, transforms, ...).
    pub by_kind: BTreeMap<Kind, Count>,
    /// The users whose own files (signed originals, exports) were sent the most, then `others`.
    pub users: Vec<UserTransfer>,
}

/// One user's files sent by the CDN.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserTransfer {
    pub user: String,
    pub sent: Count,
}

/// How many users a [`TransferTally`] attributes transfer to; the rest is `others`. Anyone can
/// put a path in a CDN's logs (a refused request is logged too), so only a request answered
/// 2xx or 3xx for a path naming a well-formed user id counts as that user's, and however many
/// the logs name, the tally's memory stays bounded (security review 20: 100,000 made-up
/// `users/{4 KB}/x` requests had filled the reporter's 512 MB).
pub const TRANSFER_USERS_MAX: usize = 100_000;

/// Adds logged requests up, one at a time (constant memory: at most [`TRANSFER_USERS_MAX`]
/// users).
#[derive(Debug, Default)]
pub struct TransferTally {
    total: Count,
    hits: u64,
    errors: u64,
    by_distribution: BTreeMap<String, Count>,
    by_kind: BTreeMap<Kind, Count>,
    users: HashMap<String, Count>,
    /// Users' transfer past [`TRANSFER_USERS_MAX`] users.
    unattributed: Count,
}

impl TransferTally {
    /// Counts one request logged by the CDN `distribution`.
    pub fn add(&mut self, distribution: &str, request: &cdn_log::Request) {
        let bytes = request.bytes;
        self.total.add(bytes);
        self.hits += u64::from(request.hit);
        self.errors += u64::from(request.status >= 400);
        self.by_distribution.entry(distribution.to_owned()).or_default().add(bytes);
        let (kind, owner) = Kind::of(&request.path);
        self.by_kind.entry(kind).or_default().add(bytes);
        let served = (200..400).contains(&request.status);
        if let Some(owner) = owner.filter(|o| served && crate::ids::UserId::parse(o).is_ok()) {
            if let Some(count) = self.users.get_mut(owner) {
                count.add(bytes);
            } else if self.users.len() < TRANSFER_USERS_MAX {
                self.users.entry(owner.to_owned()).or_default().add(bytes);
            } else {
                self.unattributed.add(bytes);
            }
        }
    }

    /// The transfer from the start of day `from` until `now`, read from `log_files` files.
    pub fn finish(self, from: Date, now: OffsetDateTime, log_files: u64, prices: &Prices) -> Transfer {
        let to = now.date();
        let days = ((to - from).whole_days() + 1).max(1) as u32;
        let covered = ((now - from.midnight().assume_utc()).as_seconds_f64() / 86_400.0).max(1.0 / 24.0);
        let mut users: Vec<UserTransfer> =
            self.users.into_iter().map(|(user, sent)| UserTransfer { user, sent }).collect();
        users.sort_by(|a, b| b.sent.bytes.cmp(&a.sent.bytes).then(a.user.cmp(&b.user)));
        // Transfer past the users the tally keeps is `others`' from the start (there are more
        // users than the top then, so `others` is listed).
        let others = UserTransfer { user: "others".into(), sent: self.unattributed };
        let users = top_then_others(users, others, |o, u| o.sent.merge(u.sent));
        let monthly = self.total.bytes as f64 / GB / covered * DAYS_PER_MONTH * prices.cloudfront_out;
        Transfer {
            from: from.to_string(),
            to: to.to_string(),
            days,
            log_files,
            total: self.total,
            hit_rate: thousandths(self.hits, self.total.objects),
            errors: self.errors,
            monthly_cost_usd: round_cents(monthly),
            by_distribution: self.by_distribution,
            by_kind: self.by_kind,
            users,
        }
    }
}

impl Transfer {
    /// What the transfer suggests: a cache that misses too often.
    pub fn recommendations(&self) -> Vec<Recommendation> {
        let mut out = Vec::new();
        if self.total.objects >= HIT_RATE_MIN_REQUESTS && self.hit_rate < LOW_HIT_RATE {
            out.push(Recommendation {
                kind: "cdn-hit-rate",
                message: format!(
                    "{:.0}% of the CDN's {} requests of the last {} days were served from its cache (target {:.0}%): check the cache policies and the URLs' query strings",
                    self.hit_rate * 100.0,
                    self.total.objects,
                    self.days,
                    LOW_HIT_RATE * 100.0
                ),
                monthly_saving_usd: 0.0,
            });
        }
        out
    }
}

/// What could be cheaper, and by how much.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    pub kind: &'static str,
    pub message: String,
    pub monthly_saving_usd: f64,
}

/// The report the reporter writes and `GET /v1/admin/reports/latest` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub generated_at: String,
    /// `inventory` (S3 Inventory, AWS) or `listing` (the bucket listed, locally).
    pub source: String,
    pub prices: Prices,
    pub total: Count,
    pub monthly_cost_usd: f64,
    pub by_kind: BTreeMap<Kind, Count>,
    pub by_content_type: BTreeMap<String, Count>,
    pub by_storage_class: BTreeMap<String, Count>,
    /// In band order, youngest first.
    pub by_age: Vec<(&'static str, Count)>,
    /// The largest users by bytes (originals, deleted-but-kept, and their variants and cached
    /// transforms), then `others`.
    pub users: Vec<UserUsage>,
    pub user_count: u64,
    pub deleted_kept: Count,
    pub noncurrent_versions: u64,
    pub delete_markers: u64,
    /// Variants' bytes over all bytes (0 to 1).
    pub variants_share: f64,
    /// Variants of no file in the bucket (counted as no user's).
    pub orphan_variants: Count,
    /// Where the first [`ORPHANS_LISTED`] of those are, by key (`derived/{fileId}/`).
    pub orphan_variant_prefixes: Vec<String>,
    /// Variants counted as no user's because the report remembers at most
    /// [`ATTRIBUTED_FILES_MAX`] files (0 below that).
    pub unattributed_variants: Count,
    /// CDN transfer from the access logs (`null` where no logs are configured).
    pub transfer: Option<Transfer>,
    pub recommendations: Vec<Recommendation>,
}

impl Report {
    /// The report as it is kept for its day, for good: the same, without the users' rows (of the
    /// storage and the transfer), which name them. Only the latest report names users, and the
    /// next day's no longer names one who erased their account (security review 20: every day's
    /// report kept the top users' ids for ever, beyond the erase).
    pub fn naming_nobody(&self) -> Report {
        Report {
            users: Vec::new(),
            transfer: self.transfer.clone().map(|t| Transfer { users: Vec::new(), ..t }),
            ..self.clone()
        }
    }
}

/// What a report shows instead of the id of a user whose account is gone (erased, or being).
pub const ERASED_USER: &str = "an erased account";

/// The users a report (as stored: JSON) names in its rows, storage and transfer, `others` not.
pub fn named_users(report: &serde_json::Value) -> std::collections::BTreeSet<String> {
    user_rows(report).filter_map(|row| row["user"].as_str()).filter(|u| *u != "others").map(str::to_owned).collect()
}

/// `report` with the rows of the users in `gone` naming [`ERASED_USER`] instead: the latest
/// report names users until the next replaces it (a day or two), and an erase is to leave no
/// trace of the user from the moment it is made (their bytes still count in the totals).
pub fn unname(report: &mut serde_json::Value, gone: &std::collections::BTreeSet<String>) {
    let erased = |list: Option<&mut serde_json::Value>| {
        for row in list.and_then(|l| l.as_array_mut()).into_iter().flatten() {
            if row.get("user").and_then(|u| u.as_str()).is_some_and(|u| gone.contains(u)) {
                row["user"] = serde_json::Value::from(ERASED_USER);
            }
        }
    };
    erased(report.get_mut("users"));
    erased(report.get_mut("transfer").and_then(|t| t.get_mut("users")));
}

fn user_rows(report: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    fn rows(v: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
        v.as_array().into_iter().flatten()
    }
    rows(&report["users"]).chain(rows(&report["transfer"]["users"]))
}

/// `$12.34`, or `less than $0.01`.
fn dollars(usd: f64) -> String {
    if usd < 0.005 { "less than $0.01".into() } else { format!("${usd:.2}") }
}

fn round_cents(usd: f64) -> f64 {
    (usd * 100.0).round() / 100.0
}

/// `1.5 GiB`, `312 MiB`, `12 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", units[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-05 00:00 UTC);

    fn row(key: &str, size: u64, days_old: i64, class: &str, latest: bool) -> InventoryRow {
        InventoryRow {
            key: key.into(),
            size,
            last_modified: NOW - time::Duration::days(days_old),
            storage_class: class.into(),
            is_latest: latest,
            is_delete_marker: false,
        }
    }

    #[test]
    fn rows_add_up_by_user_type_class_and_age_with_costs_and_advice() {
        let prices = Prices::for_region("eu-central-1");
        let gib = 1u64 << 30;
        let rows = [
            row(&format!("users/alice/{}/menu.jpg", id(1)), 2 * gib, 400, "STANDARD", true),
            row("users/alice/f2/film.mp4", 4 * gib, 10, "STANDARD", true),
            row("users/alice/f3/old.pdf", gib, 10, "STANDARD", false),
            row("users/bob/f4/cold.jpg", gib, 500, "GLACIER", true),
            row(&format!("derived/{}/320.webp", id(1)), gib, 5, "STANDARD", true),
            InventoryRow { is_delete_marker: true, ..row("users/alice/f3/old.pdf", 0, 1, "STANDARD", true) },
        ];
        let mut tally = Tally::default();
        for r in &rows {
            tally.add(r, NOW, &prices);
        }
        let report = tally.finish(NOW, "listing", &prices);
        assert_eq!(report.total, Count { objects: 5, bytes: 9 * gib });
        assert_eq!((report.delete_markers, report.noncurrent_versions), (1, 1));
        assert_eq!(report.by_content_type["image/jpeg"], Count { objects: 2, bytes: 3 * gib });
        assert_eq!(report.by_content_type["video/mp4"].bytes, 4 * gib);
        assert_eq!(report.by_storage_class["GLACIER"].bytes, gib);
        assert_eq!(report.by_kind[&Kind::Variant].bytes, gib);
        assert_eq!(report.by_age[0], ("<30d", Count { objects: 3, bytes: 6 * gib }));
        assert_eq!(report.by_age[4], (">365d", Count { objects: 2, bytes: 3 * gib }));
        assert_eq!(report.users[0].user, "alice");
        assert_eq!(report.users[0].files.bytes, 6 * gib);
        assert_eq!(report.users[0].deleted_kept.bytes, gib);
        assert_eq!(report.users[0].derived.bytes, gib, "the variant of alice's photo");
        assert_eq!(report.deleted_kept.bytes, gib);
        // 8 GiB standard at 0.0245 and 1 GiB Glacier at 0.0045
        assert_eq!(report.monthly_cost_usd, 0.2);
        // only alice's 400-day-old STANDARD original is untouched and not archived yet
        let archive = &report.recommendations[0];
        assert_eq!(archive.kind, "archive");
        assert_eq!(archive.monthly_saving_usd, 0.04, "{}", archive.message);
        assert!(archive.message.starts_with("22% of the bytes (2.0 GiB)"), "{}", archive.message);
        assert_eq!(report.variants_share, 0.111);
    }

    /// A file id for tests: `n` in a UUID.
    fn id(n: u8) -> String {
        format!("0190a1b2-c3d4-7e5f-8a9b-0000000000{n:02x}")
    }

    fn tally_of(rows: &[InventoryRow], files_max: usize) -> Report {
        let prices = Prices::for_region("eu-central-1");
        let mut tally = Tally::remembering(files_max);
        for r in rows {
            tally.add(r, NOW, &prices);
        }
        tally.finish(NOW, "inventory", &prices)
    }

    #[test]
    fn variants_and_transforms_count_as_their_owners_in_any_order() {
        let kib = 1024;
        let (a, b, gone) = (id(1), id(2), id(3));
        let rows = [
            // Sorted by key, as S3 lists: variants come before their originals...
            row(&format!("derived/{a}/320.webp"), 10 * kib, 1, "STANDARD", true),
            row(&format!("derived/{a}/640.webp"), 20 * kib, 1, "STANDARD", true),
            row(&format!("derived/{gone}/320.webp"), 7 * kib, 1, "STANDARD", true),
            row("derived/not-a-file/320.webp", kib, 1, "STANDARD", true),
            row(&format!("results/users/bob/{b}/b.png/e1/rs:fit:300:0.webp"), 3 * kib, 1, "STANDARD", true),
            row(&format!("users/alice/{a}/a.jpg"), 100 * kib, 1, "STANDARD", true),
            row(&format!("users/alice/{a}/a.jpg"), 90 * kib, 1, "STANDARD", false),
            row(&format!("users/bob/{b}/b.png"), 50 * kib, 1, "STANDARD", true),
            // ... and after them where an inventory's files are not in key order.
            row(&format!("derived/{b}/320.webp"), 5 * kib, 1, "STANDARD", true),
        ];
        let report = tally_of(&rows, ATTRIBUTED_FILES_MAX);
        let user = |name: &str| report.users.iter().find(|u| u.user == name).unwrap().clone();
        assert_eq!(user("alice").derived, Count { objects: 2, bytes: 30 * kib });
        assert_eq!((user("alice").files.bytes, user("alice").deleted_kept.bytes), (100 * kib, 90 * kib));
        assert_eq!(user("bob").derived, Count { objects: 2, bytes: 8 * kib });
        assert_eq!(report.orphan_variants, Count { objects: 2, bytes: 8 * kib });
        assert_eq!(report.orphan_variant_prefixes, [format!("derived/{gone}/"), "derived/not-a-file/".to_owned()]);
        assert_eq!(report.unattributed_variants, Count::default());
        let orphans = report.recommendations.iter().find(|r| r.kind == "orphan-variants").expect("recommended");
        assert!(orphans.message.starts_with("2 variants (8.0 KiB) belong to no file"), "{}", orphans.message);
        let one = tally_of(&rows[2..3], ATTRIBUTED_FILES_MAX);
        assert!(
            one.recommendations[0].message.starts_with("1 variant (7.0 KiB) belongs to no file"),
            "{}",
            one.recommendations[0].message
        );

        // The same rows in the other order give the same report.
        let mut reversed = rows.clone();
        reversed.reverse();
        let again = tally_of(&reversed, ATTRIBUTED_FILES_MAX);
        assert_eq!((again.users, again.orphan_variants), (report.users, report.orphan_variants));
    }

    #[test]
    fn past_its_file_limit_a_report_counts_variants_as_no_ones_and_calls_none_orphans() {
        let (a, b) = (id(1), id(2));
        let rows = [
            row(&format!("users/alice/{a}/a.jpg"), 100, 1, "STANDARD", true),
            row(&format!("users/alice/{b}/b.jpg"), 100, 1, "STANDARD", true),
            row(&format!("derived/{a}/320.webp"), 10, 1, "STANDARD", true),
            row(&format!("derived/{b}/320.webp"), 20, 1, "STANDARD", true),
        ];
        let report = tally_of(&rows, 1);
        assert_eq!(report.users[0].derived, Count { objects: 1, bytes: 10 });
        assert_eq!(report.unattributed_variants, Count { objects: 1, bytes: 20 });
        assert_eq!(report.orphan_variants, Count::default(), "b's original came, but was not remembered");
        assert!(report.orphan_variant_prefixes.is_empty());
        assert!(report.recommendations.iter().all(|r| r.kind != "orphan-variants"));

        // Variants first: the one that found no room is no one's; the one waiting finds its owner.
        let mut variants_first = rows.clone();
        variants_first.rotate_left(2);
        let report = tally_of(&variants_first, 1);
        assert_eq!(report.users[0].derived, Count { objects: 1, bytes: 10 });
        assert_eq!(report.unattributed_variants, Count { objects: 1, bytes: 20 });
    }

    #[test]
    fn the_first_orphans_by_key_are_named() {
        let rows: Vec<InventoryRow> = (0..ORPHANS_LISTED as u8 + 5)
            .rev()
            .map(|n| row(&format!("derived/{}/320.webp", id(n)), 1, 1, "STANDARD", true))
            .collect();
        let report = tally_of(&rows, ATTRIBUTED_FILES_MAX);
        assert_eq!(report.orphan_variants.objects, ORPHANS_LISTED as u64 + 5);
        let expected: Vec<String> = (0..ORPHANS_LISTED as u8).map(|n| format!("derived/{}/", id(n))).collect();
        assert_eq!(report.orphan_variant_prefixes, expected);
    }

    #[test]
    fn only_the_largest_users_are_named() {
        let prices = Prices::for_region("nowhere");
        assert_eq!(prices.region, "eu-central-1");
        let mut tally = Tally::default();
        for i in 0..(TOP_USERS + 5) {
            tally.add(&row(&format!("users/u{i:02}/f/a.png"), 100 + i as u64, 1, "STANDARD", true), NOW, &prices);
        }
        let report = tally.finish(NOW, "listing", &prices);
        assert_eq!(report.user_count, (TOP_USERS + 5) as u64);
        assert_eq!(report.users.len(), TOP_USERS + 1);
        assert_eq!(report.users[0].user, format!("u{:02}", TOP_USERS + 4));
        let others = report.users.last().unwrap();
        assert_eq!((others.user.as_str(), others.files.objects), ("others", 5));
    }

    #[test]
    fn cdn_requests_add_up_by_cdn_kind_and_user_with_a_monthly_cost() {
        let prices = Prices::for_region("eu-central-1");
        let request = |path: &str, bytes, status, hit| cdn_log::Request { path: path.into(), bytes, status, hit };
        let gib = 1u64 << 30;
        let mut tally = TransferTally::default();
        tally.add("files", &request("users/alice/f1/film.mp4", 6 * gib, 200, false));
        tally.add("files", &request("users/alice/f1/film.mp4", 0, 403, false));
        tally.add("files", &request("p/f2/menu.webp", gib, 200, true));
        tally.add("files", &request("t/sig/rs:fit:320/plain/x.jpg", 0, 200, true));
        tally.add("web", &request("index.html", 0, 304, true));
        let from = time::macros::date!(2026 - 11 - 29);
        let transfer = tally.finish(from, datetime!(2026-12-06 00:00 UTC), 3, &prices);
        assert_eq!((transfer.days, transfer.from.as_str(), transfer.to.as_str()), (8, "2026-11-29", "2026-12-06"));
        assert_eq!(transfer.total, Count { objects: 5, bytes: 7 * gib });
        assert_eq!((transfer.hit_rate, transfer.errors), (0.6, 1));
        assert_eq!(transfer.by_distribution["web"].objects, 1);
        assert_eq!(transfer.by_kind[&Kind::Original], Count { objects: 2, bytes: 6 * gib });
        assert_eq!(transfer.by_kind[&Kind::Transform].objects, 1);
        assert_eq!(
            transfer.users,
            vec![UserTransfer { user: "alice".into(), sent: Count { objects: 1, bytes: 6 * gib } }],
            "her refused request is not hers"
        );
        // 7 GiB in 7 days is 30.44 GiB a month at $0.085
        assert_eq!(transfer.monthly_cost_usd, 2.59);
        assert!(transfer.recommendations().is_empty(), "5 requests are too few to judge the cache");

        let mut busy = TransferTally::default();
        for i in 0..2000 {
            busy.add("files", &request("p/f/a.webp", 10, 200, i % 2 == 0));
        }
        let advice = busy.finish(from, datetime!(2026-11-29 12:00 UTC), 1, &prices).recommendations();
        assert_eq!(advice.len(), 1);
        assert!(
            advice[0].message.starts_with("50% of the CDN's 2000 requests of the last 1 days"),
            "{}",
            advice[0].message
        );
        assert_eq!(TransferTally::default().finish(from, datetime!(2026-11-29 00:00 UTC), 0, &prices).hit_rate, 0.0);
    }

    /// Security review 20: anyone could send requests for made-up `users/{x}/...` paths (refused,
    /// but logged) and the reporter kept an entry for each; now only served requests for
    /// well-formed user ids count, for at most [`TRANSFER_USERS_MAX`] users.
    #[test]
    fn made_up_users_in_the_cdn_logs_are_neither_counted_nor_kept() {
        let request = |path: String, status| cdn_log::Request { path, bytes: 10, status, hit: false };
        let mut tally = TransferTally::default();
        for i in 0..1_000 {
            tally.add("web", &request(format!("users/{}{i}/x", "a".repeat(4096)), 200));
            tally.add("web", &request(format!("users/u{i}/x"), 403));
            tally.add("web", &request(format!("users/bad%20id{i}/x"), 200));
        }
        assert!(tally.users.is_empty(), "{} users kept", tally.users.len());
        for i in 0..TRANSFER_USERS_MAX + 3 {
            tally.add("files", &request(format!("users/u{i}/f/a.jpg"), 200));
        }
        tally.add("files", &request("users/u0/f/a.jpg".into(), 304));
        assert_eq!(tally.users.len(), TRANSFER_USERS_MAX);
        let from = time::macros::date!(2026 - 11 - 29);
        let transfer = tally.finish(from, datetime!(2026-12-06 00:00 UTC), 1, &Prices::for_region("eu-central-1"));
        assert_eq!(transfer.users.len(), TOP_USERS + 1);
        assert_eq!(transfer.users[0], UserTransfer { user: "u0".into(), sent: Count { objects: 2, bytes: 20 } });
        let others = transfer.users.last().unwrap();
        assert_eq!(
            (others.user.as_str(), others.sent.objects),
            ("others", (TRANSFER_USERS_MAX + 3 - TOP_USERS) as u64)
        );
    }

    #[test]
    fn keys_tell_kind_and_owner() {
        assert_eq!(Kind::of("users/u-1/f/a.jpg"), (Kind::Original, Some("u-1")));
        assert_eq!(Kind::of("exports/u-1/x.zip"), (Kind::Export, Some("u-1")));
        assert_eq!(Kind::of("derived/f/w320.webp").0, Kind::Variant);
        assert_eq!(Kind::of("inventory/manifest.json").0, Kind::Other);
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn a_gone_users_rows_name_an_erased_account_and_nothing_else_changes() {
        let report = serde_json::json!({
            "users": [{"user": "alice", "files": {"objects": 2}}, {"user": "bob"}, {"user": "others"}],
            "transfer": {"users": [{"user": "alice", "sent": {"bytes": 9}}, {"user": "carol"}]},
            "total": {"bytes": 42},
        });
        let named = named_users(&report);
        assert_eq!(named.iter().map(String::as_str).collect::<Vec<_>>(), ["alice", "bob", "carol"]);
        let mut shown = report.clone();
        unname(&mut shown, &["alice".to_owned()].into());
        assert_eq!(shown["users"][0], serde_json::json!({"user": ERASED_USER, "files": {"objects": 2}}));
        assert_eq!(shown["transfer"]["users"][0]["user"], ERASED_USER);
        assert_eq!(
            (shown["users"][1]["user"].as_str(), shown["total"].clone()),
            (Some("bob"), report["total"].clone())
        );
        // A report without transfer (no CDN logs) or users stays as it was.
        let mut bare = serde_json::json!({"transfer": null, "total": {"bytes": 0}});
        unname(&mut bare, &["alice".to_owned()].into());
        assert_eq!(bare, serde_json::json!({"transfer": null, "total": {"bytes": 0}}));
    }
}
