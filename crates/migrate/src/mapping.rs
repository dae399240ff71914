//! `migrate mapping RUN --format csv|json|nginx`: which legacy path became which platform file,
//! for rewriting pages and links before (or instead of) redirects (issue 19, part 2). Only the
//! rows the run copied are exported; the ledger is read a page at a time and each line written
//! as it comes, so a run of any size exports in bounded memory.

use std::io::Write;

use matbakh_aws::ledger::LedgerRow;
use matbakh_core::ids::ObjectKey;
use matbakh_core::migration::RowStatus;

use crate::{Context, MigrateError};

/// How the mapping is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `legacy_path,key,file_id` with a header line (RFC 4180 quoting).
    Csv,
    /// One JSON object a line: `{"legacyPath", "key", "fileId"}` (`fileId` null outside `users/`).
    Json,
    /// An nginx `map` from the legacy URL path (`$uri`, decoded) to the file id, for
    /// `if ($matbakh_file) { return 301 https://.../$matbakh_file; }`.
    Nginx,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        match s {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "nginx" => Ok(Format::Nginx),
            other => Err(format!("{other:?} is not csv, json or nginx")),
        }
    }
}

/// What was exported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exported {
    pub lines: u64,
    /// Rows not copied (pending or failed): no mapping yet.
    pub skipped: u64,
    /// Copied rows the format cannot name (an nginx map cannot hold a path with control
    /// characters): left out, never written as another path.
    pub unnamed: u64,
}

/// Writes the mapping of run `id` to `out`. `url_prefix` is put before each legacy path in the
/// nginx map (where the legacy store served its tree, e.g. `/uploads`).
pub async fn export(
    ctx: &Context,
    id: &str,
    format: Format,
    url_prefix: &str,
    out: &mut dyn Write,
) -> Result<Exported, MigrateError> {
    let record = ctx.run(id).await?;
    let io = |e: std::io::Error| MigrateError::Usage(format!("writing the mapping: {e}"));
    let mut done = Exported::default();
    match format {
        Format::Csv => writeln!(out, "legacy_path,key,file_id").map_err(io)?,
        Format::Nginx => writeln!(out, "map $uri $matbakh_file {{\n    default \"\";").map_err(io)?,
        Format::Json => {}
    }
    let mut rows = crate::rows::Rows::ledger(&record.id);
    while let Some(page) = rows.next_page(ctx).await? {
        for row in &page {
            if row.status != RowStatus::Copied {
                done.skipped += 1;
                continue;
            }
            match line(row, format, url_prefix) {
                Some(l) => {
                    out.write_all(l.as_bytes()).map_err(io)?;
                    done.lines += 1;
                }
                None => done.unnamed += 1,
            }
        }
    }
    if format == Format::Nginx {
        writeln!(out, "}}").map_err(io)?;
    }
    Ok(done)
}

/// One row's line, with its newline; `None` for a path the format cannot name.
pub fn line(row: &LedgerRow, format: Format, url_prefix: &str) -> Option<String> {
    let (path, key) = (&row.entry.source, &row.entry.key);
    let id = ObjectKey::file_id_of(key).map(|id| id.to_string());
    match format {
        Format::Csv => {
            let id = id.unwrap_or_default();
            Some(format!("{},{},{}\n", csv_field(path), csv_field(key), id))
        }
        Format::Json => Some(format!("{}\n", serde_json::json!({ "legacyPath": path, "key": key, "fileId": id }))),
        // nginx reads a quoted string with backslash escapes; `$uri` is the decoded path. A
        // control character has no place in a map line: left out, the line would map another
        // path (`a\nb.jpg` as `ab.jpg`: review 26), so the row is not written at all.
        Format::Nginx => {
            let uri = format!("{}/{path}", url_prefix.trim_end_matches('/'));
            if uri.chars().any(char::is_control) {
                return None;
            }
            let quoted: String = uri
                .chars()
                .flat_map(|c| match c {
                    '"' | '\\' | '$' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            Some(format!("    \"{quoted}\" \"{}\";\n", id.unwrap_or_default()))
        }
    }
}

pub(crate) fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matbakh_core::migration::ManifestEntry;

    fn row(source: &str, key: &str) -> LedgerRow {
        let entry = ManifestEntry {
            seq: 1,
            source: source.into(),
            key: key.into(),
            size: 1,
            mtime_ms: 0,
            change: String::new(),
            content_type: "image/jpeg".into(),
            crc64nvme: String::new(),
            sha256: String::new(),
            priority: 0,
            batch: 0,
            prior: None,
            legacy: None,
            copied_by: None,
            supersedes: None,
        };
        LedgerRow { status: RowStatus::Copied, ..LedgerRow::pending(entry, "2026-12-05T00:00:00.000Z") }
    }

    #[test]
    fn each_format_names_the_legacy_path_and_the_file() {
        let id = &matbakh_core::ids::FileId::new(1_700_000_000_000, [7; 10]).to_string();
        let r = row("shop 1/menu, \"new\".jpg", &format!("users/u-1/{id}/menu, new.jpg"));
        assert_eq!(
            line(&r, Format::Csv, "").unwrap(),
            format!("\"shop 1/menu, \"\"new\"\".jpg\",\"users/u-1/{id}/menu, new.jpg\",{id}\n")
        );
        let json: serde_json::Value = serde_json::from_str(&line(&r, Format::Json, "").unwrap()).unwrap();
        assert_eq!(json["legacyPath"], "shop 1/menu, \"new\".jpg");
        assert_eq!(json["fileId"], id.as_str());
        assert_eq!(
            line(&r, Format::Nginx, "/uploads/").unwrap(),
            format!("    \"/uploads/shop 1/menu, \\\"new\\\".jpg\" \"{id}\";\n")
        );
        // A key outside users/ (the keep rule) has no file id.
        let kept = row("a$b.jpg", "legacy/a$b.jpg");
        assert_eq!(line(&kept, Format::Csv, "").unwrap(), "a$b.jpg,legacy/a$b.jpg,\n");
        assert_eq!(line(&kept, Format::Nginx, "").unwrap(), "    \"/a\\$b.jpg\" \"\";\n");
        // Review 26: a control character was dropped, mapping `a\nb.jpg` as `ab.jpg` (another
        // file's old URL); such a row is left out of the nginx map (CSV and JSON quote it).
        let newline = row("shop/a\nb.jpg", &format!("users/u-1/{id}/a b.jpg"));
        assert_eq!(line(&newline, Format::Nginx, "/uploads/"), None);
        assert!(line(&newline, Format::Csv, "").unwrap().starts_with("\"shop/a\nb.jpg\","));
        assert_eq!(Format::parse("xml").unwrap_err(), "\"xml\" is not csv, json or nginx");
    }
}
