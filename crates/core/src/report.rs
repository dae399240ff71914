//! The storage and cost report: what the bucket holds, by user, content type, storage class and
//! age, what it costs a month, and what would make it cheaper.
//!
//! Its input is one row per object version, in the shape of an S3 Inventory report
//! ([`InventoryRow`]); the reporter reads them from the bucket's daily inventory in AWS, or
//! by listing the bucket where no inventory exists (locally). Rows are added one at a time to
//! a [`Tally`], so a bucket of any size is reported in constant memory (the per-user table
//! holds one entry per user, the report only the largest [`TOP_USERS`]).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use time::OffsetDateTime;

use crate::clock::iso_seconds;
use crate::types::ContentType;

/// How many users the report lists by name (the rest are summed as `others`).
pub const TOP_USERS: usize = 20;
/// Age from which an original counts as untouched for the archive recommendation (days).
pub const UNTOUCHED_DAYS: i64 = 180;

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
    users: HashMap<String, UserUsage>,
    deleted_kept: Count,
    noncurrent_versions: u64,
    delete_markers: u64,
    /// Current originals older than [`UNTOUCHED_DAYS`] in a class that is not archived yet.
    untouched: Count,
    untouched_cost: f64,
    monthly_cost: f64,
}

impl Tally {
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
        if kind != Kind::Original {
            return;
        }
        let content_type = ContentType::from_file_name(&row.key).map_or("other", |t| t.as_str());
        self.by_type.entry(content_type.to_owned()).or_default().add(bytes);
        let user = self
            .users
            .entry(owner.unwrap_or("?").to_owned())
            .or_insert_with(|| UserUsage { user: owner.unwrap_or("?").to_owned(), ..Default::default() });
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
    pub fn finish(self, now: OffsetDateTime, source: &str, prices: &Prices) -> Report {
        let mut users: Vec<UserUsage> = self.users.into_values().collect();
        users.sort_by(|a, b| {
            (b.files.bytes + b.deleted_kept.bytes)
                .cmp(&(a.files.bytes + a.deleted_kept.bytes))
                .then(a.user.cmp(&b.user))
        });
        let user_count = users.len() as u64;
        let mut others = UserUsage { user: "others".into(), ..Default::default() };
        for u in users.iter().skip(TOP_USERS) {
            others.files.objects += u.files.objects;
            others.files.bytes += u.files.bytes;
            others.deleted_kept.objects += u.deleted_kept.objects;
            others.deleted_kept.bytes += u.deleted_kept.bytes;
        }
        users.truncate(TOP_USERS);
        if others.files.objects + others.deleted_kept.objects > 0 {
            users.push(others);
        }
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
            variants_share: (share(variants.bytes) * 1000.0).round() / 1000.0,
            transfer: None,
            recommendations,
        }
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
    /// The largest users by bytes (originals and deleted-but-kept), then `others`.
    pub users: Vec<UserUsage>,
    pub user_count: u64,
    pub deleted_kept: Count,
    pub noncurrent_versions: u64,
    pub delete_markers: u64,
    /// Variants' bytes over all bytes (0 to 1).
    pub variants_share: f64,
    /// CDN transfer from the access logs: not read yet (`null`).
    pub transfer: Option<Count>,
    pub recommendations: Vec<Recommendation>,
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
            row("users/alice/f1/menu.jpg", 2 * gib, 400, "STANDARD", true),
            row("users/alice/f2/film.mp4", 4 * gib, 10, "STANDARD", true),
            row("users/alice/f3/old.pdf", gib, 10, "STANDARD", false),
            row("users/bob/f4/cold.jpg", gib, 500, "GLACIER", true),
            row("derived/f1/w320.webp", gib, 5, "STANDARD", true),
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
    fn keys_tell_kind_and_owner() {
        assert_eq!(Kind::of("users/u-1/f/a.jpg"), (Kind::Original, Some("u-1")));
        assert_eq!(Kind::of("exports/u-1/x.zip"), (Kind::Export, Some("u-1")));
        assert_eq!(Kind::of("derived/f/w320.webp").0, Kind::Variant);
        assert_eq!(Kind::of("inventory/manifest.json").0, Kind::Other);
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
