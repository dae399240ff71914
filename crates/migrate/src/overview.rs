//! `migrate report --all --html FILE` (issue 19, part 6): every run on one page people read:
//! runs with files, bytes, failures by reason and verification; throughput over time and bytes
//! by type as inline SVG; the cutover state per prefix; a storage cost estimate. One file, no
//! external asset (it opens from a mail attachment or an S3 console).
//!
//! The ledger is read a page of rows at a time; what is kept is per minute and per type, not
//! per file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use matbakh_aws::ledger::{Cutover, LegacyServedDay, Verification};
use matbakh_core::migration::RowStatus;
use matbakh_core::migration::cost::Estimator;

use crate::control::human_bytes as bytes;
use crate::report::{Counts, Report};
use crate::{Context, MigrateError};

/// What the page shows.
#[derive(Debug, Clone)]
pub struct Overview {
    pub generated_at: String,
    pub runs: Vec<(Report, Option<Verification>)>,
    /// Bytes copied per minute (`2026-12-05T07:01`), all runs together.
    pub per_minute: BTreeMap<String, u64>,
    /// Bytes planned per content type.
    pub by_type: BTreeMap<String, u64>,
    pub cutovers: Vec<Cutover>,
    /// Per legacy source (of the runs and switches), the legacy redirector's answers per day.
    pub legacy_served: BTreeMap<String, Vec<LegacyServedDay>>,
    /// S3 Standard storage of everything planned, USD a month (the plan's price table).
    pub usd_per_month: f64,
}

/// Reads every run of the ledger.
pub async fn overview(ctx: &Context) -> Result<Overview, MigrateError> {
    let mut runs = Vec::new();
    let (mut per_minute, mut by_type) = (BTreeMap::new(), BTreeMap::new());
    let mut estimate = Estimator::new(
        matbakh_core::migration::DEFAULT_MULTIPART_THRESHOLD,
        matbakh_core::migration::DEFAULT_PART_SIZE,
    );
    for record in ctx.ledger.list_runs().await? {
        let mut counts = Counts::default();
        let mut rows = crate::rows::Rows::ledger(&record.id);
        while let Some(page) = rows.next_page(ctx).await? {
            counts.add(&page);
            for r in &page {
                *by_type.entry(r.entry.content_type.clone()).or_insert(0u64) += r.entry.size;
                estimate.add(r.entry.size);
                if r.status == RowStatus::Copied {
                    let minute: String = r.updated_at.chars().take(16).collect();
                    *per_minute.entry(minute).or_insert(0u64) += r.entry.size;
                }
            }
        }
        let verification = record.verification.clone();
        runs.push((counts.report(&record), verification));
    }
    let cutovers = ctx.ledger.cutovers().await?;
    let mut legacy_served = BTreeMap::new();
    let sources: std::collections::BTreeSet<&str> =
        runs.iter().map(|(r, _)| r.source.as_str()).chain(cutovers.iter().map(|c| c.source.as_str())).collect();
    for source in sources {
        legacy_served.insert(source.to_owned(), ctx.ledger.legacy_served(source).await?);
    }
    Ok(Overview {
        generated_at: ctx.now(),
        runs,
        per_minute,
        by_type,
        cutovers,
        legacy_served,
        usd_per_month: estimate.finish(1).usd_storage_per_month,
    })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Days of the legacy redirector's counts the page lists, newest first.
const LEGACY_DAYS_SHOWN: usize = 30;

const W: f64 = 640.0;
const H: f64 = 200.0;
const PAD: f64 = 40.0;

/// A line of `points` (label, value) over time, axes labelled with the first and last label.
fn line_chart(title: &str, points: &[(String, u64)]) -> String {
    let mut svg = format!(
        "<svg role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\">",
        esc(title)
    );
    let max = points.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1) as f64;
    let step = if points.len() > 1 { (W - 2.0 * PAD) / (points.len() - 1) as f64 } else { 0.0 };
    let xy: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, (_, v))| format!("{:.1},{:.1}", PAD + step * i as f64, H - PAD - (*v as f64 / max) * (H - 2.0 * PAD)))
        .collect();
    let _ = write!(
        svg,
        "<line x1=\"{PAD}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#999\"/><line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{y}\" stroke=\"#999\"/>",
        y = H - PAD,
        x2 = W - PAD
    );
    let _ = write!(
        svg,
        "<polyline class=\"series\" fill=\"none\" stroke=\"#1f6feb\" stroke-width=\"2\" points=\"{}\"/>",
        xy.join(" ")
    );
    for p in &xy {
        let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
        let _ = write!(svg, "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"#1f6feb\"/>");
    }
    let _ = write!(
        svg,
        "<text x=\"{PAD}\" y=\"{}\" font-size=\"11\">{}</text>",
        PAD - 8.0,
        esc(&format!("{} per minute at most", bytes(max)))
    );
    if let (Some((first, _)), Some((last, _))) = (points.first(), points.last()) {
        let _ = write!(svg, "<text x=\"{PAD}\" y=\"{}\" font-size=\"11\">{}</text>", H - PAD + 16.0, esc(first));
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            W - PAD,
            H - PAD + 16.0,
            esc(last)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars of `items` (label, value), largest first.
fn bar_chart(title: &str, items: &[(String, u64)]) -> String {
    let row = 24.0;
    let height = PAD + row * items.len().max(1) as f64;
    let mut svg = format!(
        "<svg role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {W} {height}\" width=\"{W}\" height=\"{height}\">",
        esc(title)
    );
    let max = items.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1) as f64;
    let label = 160.0;
    for (i, (name, v)) in items.iter().enumerate() {
        let y = PAD / 2.0 + row * i as f64;
        let w = (*v as f64 / max) * (W - label - 100.0);
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{:.1}\" font-size=\"12\">{}</text><rect class=\"bar\" x=\"{label}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"16\" fill=\"#2da44e\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            y + 12.0,
            esc(name),
            y,
            label + w + 6.0,
            y + 12.0,
            esc(&bytes(*v as f64))
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The minutes between the first and the last with nothing copied, as zeros (up to a day of
/// them; a longer span is drawn from the busy minutes alone).
fn with_idle_minutes(per_minute: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let parse = |m: &str| {
        time::PrimitiveDateTime::parse(m, time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]"))
            .ok()
    };
    let busy: Vec<(String, u64)> = per_minute.iter().map(|(m, b)| (m.clone(), *b)).collect();
    let (Some(first), Some(last)) = (busy.first().and_then(|(m, _)| parse(m)), busy.last().and_then(|(m, _)| parse(m)))
    else {
        return busy;
    };
    let span = (last - first).whole_minutes();
    if !(0..=1440).contains(&span) {
        return busy;
    }
    (0..=span)
        .map(|i| {
            let t = first + time::Duration::minutes(i);
            let label =
                format!("{:04}-{:02}-{:02}T{:02}:{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute());
            let bytes = per_minute.get(&label).copied().unwrap_or(0);
            (label, bytes)
        })
        .collect()
}

/// The page.
pub fn html(o: &Overview) -> String {
    let total_files: u64 = o.runs.iter().map(|(r, _)| r.files).sum();
    let total_bytes: u64 = o.runs.iter().map(|(r, _)| r.bytes).sum();
    let copied: u64 = o.runs.iter().map(|(r, _)| r.copied_files).sum();
    let failed: u64 = o.runs.iter().map(|(r, _)| r.failed_files).sum();
    let mut failures: BTreeMap<&str, u64> = BTreeMap::new();
    for (r, _) in &o.runs {
        for (reason, n) in &r.failures_by_reason {
            *failures.entry(reason.as_str()).or_default() += n;
        }
    }
    let mut page = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>matbakh-files: migration report</title><style>body{font:14px system-ui,sans-serif;margin:2em;color:#1f2328}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left}td.n{text-align:right}.ok{color:#1a7f37}.bad{color:#cf222e}h2{margin-top:1.6em}</style></head><body>",
    );
    let _ = write!(
        page,
        "<h1>Migration report</h1><p>Generated {}. {} run(s); {} file(s), {} planned; {} copied, {} failed.</p>",
        esc(&o.generated_at),
        o.runs.len(),
        total_files,
        esc(&bytes(total_bytes as f64)),
        copied,
        failed
    );
    page.push_str("<h2>Runs</h2><table><tr><th>run</th><th>state</th><th>source</th><th>files</th><th>copied</th><th>failed</th><th>bytes</th><th>rate</th><th>verification</th></tr>");
    for (r, v) in &o.runs {
        let verification = match v {
            Some(v) if v.passed => format!(
                "<span class=\"ok\">passed</span> {} ({})",
                esc(&v.at),
                if v.deep { "deep" } else { "checksums" }
            ),
            Some(v) => format!("<span class=\"bad\">failed</span> {} ({} problems)", esc(&v.at), v.problems),
            None => "not verified".into(),
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}/s</td><td>{verification}</td></tr>",
            esc(&r.run),
            esc(&r.state),
            esc(&r.source),
            r.files,
            r.copied_files,
            r.failed_files,
            esc(&bytes(r.bytes as f64)),
            esc(&bytes(r.bytes_per_second))
        );
    }
    page.push_str("</table><h2>Failures by reason</h2>");
    if failures.is_empty() {
        page.push_str("<p>None.</p>");
    } else {
        page.push_str("<table><tr><th>reason</th><th>files</th></tr>");
        for (reason, n) in &failures {
            let _ = write!(page, "<tr><td>{}</td><td class=\"n\">{n}</td></tr>", esc(reason));
        }
        page.push_str("</table>");
    }
    page.push_str("<h2>Throughput over time</h2>");
    let points: Vec<(String, u64)> =
        with_idle_minutes(&o.per_minute).into_iter().map(|(m, b)| (m.replace('T', " "), b)).collect();
    page.push_str(&if points.is_empty() {
        "<p>Nothing copied yet.</p>".into()
    } else {
        line_chart("bytes copied per minute", &points)
    });
    page.push_str("<h2>Bytes by type</h2>");
    let mut types: Vec<(String, u64)> = o.by_type.iter().map(|(t, b)| (t.clone(), *b)).collect();
    types.sort_by_key(|t| std::cmp::Reverse(t.1));
    page.push_str(&bar_chart("bytes planned by content type", &types));
    page.push_str("<h2>Cutover</h2>");
    if o.cutovers.is_empty() {
        page.push_str("<p>No prefix switched: the legacy store serves every old URL.</p>");
    } else {
        page.push_str("<table><tr><th>source</th><th>prefix</th><th>served by</th><th>since</th><th>verified</th><th>blocking</th><th>forced</th></tr>");
        for c in &o.cutovers {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&c.source),
                esc(&c.prefix),
                c.to.as_str(),
                esc(&c.at),
                c.verified_files,
                c.blocking_files,
                esc(c.forced_reason.as_deref().unwrap_or(""))
            );
        }
        page.push_str("</table>");
    }
    page.push_str("<h2>Old URLs</h2>");
    let counted: Vec<_> = o.legacy_served.iter().filter(|(_, days)| !days.is_empty()).collect();
    if counted.is_empty() {
        page.push_str("<p>The legacy redirector has counted no request yet.</p>");
    }
    for (source, days) in counted {
        let _ = write!(
            page,
            "<p>{}: the last {} day(s) counted by the legacy redirector.</p><table><tr><th>day</th><th>moved to the platform (301)</th><th>served by the legacy store</th><th>bytes read through</th><th>gone (410)</th><th>last path the legacy store served</th></tr>",
            esc(source),
            days.len().min(LEGACY_DAYS_SHOWN)
        );
        for d in days.iter().rev().take(LEGACY_DAYS_SHOWN) {
            let _ = write!(
                page,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&d.day),
                d.redirects,
                d.by_legacy_store(),
                esc(&bytes(d.fallback_bytes as f64)),
                d.gone,
                esc(d.last_legacy_path.as_deref().unwrap_or(""))
            );
        }
        page.push_str("</table>");
    }
    let _ = write!(
        page,
        "<h2>Cost</h2><p>Storing everything planned in S3 Standard: about ${:.2} a month (the plan's price table).</p></body></html>",
        o.usd_per_month
    );
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use matbakh_core::migration::Switch;

    fn report(run: &str, files: u64, failed: u64) -> Report {
        Report {
            run: run.into(),
            state: "DONE".into(),
            source: "file:///legacy".into(),
            target: "s3://files".into(),
            rule: "platform".into(),
            created_at: "2026-12-05T07:00:00.000Z".into(),
            files,
            bytes: files * 1000,
            copied_files: files - failed,
            copied_bytes: (files - failed) * 1000,
            pending_files: 0,
            failed_files: failed,
            failures_by_reason: if failed > 0 {
                [("source_changed".to_owned(), failed)].into()
            } else {
                BTreeMap::new()
            },
            retries: 0,
            active_seconds: 1.0,
            bytes_per_second: 1000.0,
            rows_with_checksums: files,
            copied_s3_checked: files - failed,
            checksum_coverage: 1.0,
            legacy_metadata: None,
        }
    }

    #[test]
    fn the_page_holds_the_runs_the_charts_and_the_cutovers_and_escapes_what_it_shows() {
        let o = Overview {
            generated_at: "2026-12-05T08:00:00.000Z".into(),
            runs: vec![
                (
                    report("r1", 8, 0),
                    Some(Verification { at: "t1".into(), deep: true, passed: true, checked: 8, problems: 0 }),
                ),
                (report("r2<script>", 4, 2), None),
            ],
            per_minute: [("2026-12-05T07:01".to_owned(), 5000), ("2026-12-05T07:02".to_owned(), 2000)].into(),
            by_type: [("image/jpeg".to_owned(), 9000), ("image/png".to_owned(), 3000)].into(),
            cutovers: vec![Cutover {
                source: "file:///legacy".into(),
                prefix: "shop/42/".into(),
                to: Switch::Platform,
                at: "t2".into(),
                verified_files: 3,
                blocking_files: 0,
                forced_reason: None,
            }],
            legacy_served: [(
                "file:///legacy".to_owned(),
                vec![LegacyServedDay {
                    day: "2026-12-04".into(),
                    redirects: 40,
                    fallbacks: 6,
                    fallback_bytes: 6000,
                    large_redirects: 1,
                    last_legacy_path: Some("blog/<b>.jpg".into()),
                    ..Default::default()
                }],
            )]
            .into(),
            usd_per_month: 0.01,
        };
        let page = html(&o);
        assert!(page.starts_with("<!doctype html>") && page.ends_with("</html>"));
        assert!(!page.contains("<script") && page.contains("r2&lt;script&gt;"), "escaped");
        assert!(
            !page.contains("http://") && !page.contains("https://") && !page.contains(" src="),
            "no external asset"
        );
        assert_eq!(page.matches("<svg").count(), 2, "throughput and types");
        assert_eq!(page.matches("<circle").count(), 2, "a point a minute");
        let gap: BTreeMap<String, u64> =
            [("2026-12-05T07:01".to_owned(), 5), ("2026-12-05T07:04".to_owned(), 2)].into();
        let filled = with_idle_minutes(&gap);
        assert_eq!(filled.iter().map(|(_, b)| *b).collect::<Vec<_>>(), [5, 0, 0, 2], "idle minutes are zeros");
        assert_eq!(page.matches("class=\"bar\"").count(), 2, "a bar a type");
        assert!(page.contains("12 file(s)") && page.contains("2 failed"));
        assert!(page.contains("<span class=\"ok\">passed</span> t1 (deep)") && page.contains("not verified"));
        assert!(page.contains("<td>source_changed</td><td class=\"n\">2</td>"));
        assert!(page.contains("<td>shop/42/</td><td>platform</td>"));
        assert!(
            page.contains(
                "<tr><td>2026-12-04</td><td class=\"n\">40</td><td class=\"n\">7</td><td class=\"n\">5.9 KiB</td>"
            ),
            "legacy requests per day: {page}"
        );
        assert!(page.contains("blog/&lt;b&gt;.jpg"));
        // The busier minute is the higher point (smaller y).
        let ys: Vec<f64> = page
            .split("<circle ")
            .skip(1)
            .map(|c| c.split("cy=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap())
            .collect();
        assert!(ys[0] < ys[1], "{ys:?}");
    }
}
