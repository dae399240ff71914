//! `migrate plan --metadata`: the legacy file table (issue 19, part 1; DECISIONS 34), from
//! PostgreSQL (`postgres://user@host:port/db`, the rows of `--metadata-query`, read through a
//! cursor a page at a time), a CSV file with a header line, or JSON lines. Every reader hands
//! rows of text to [`matbakh_core::migration::legacy_meta`], which maps and validates them.
//!
//! The rows are held by path while the tree is listed (a few hundred bytes a row, like the
//! owners table); each file takes its row's metadata, and what does not meet is counted and
//! listed: rows without a file, files without a row, rows that do not validate (with why).
//! Everything is read before the plan writes anything: an unreachable database, a bad query or a
//! mapping to a missing column stops it with nothing written.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use matbakh_core::migration::legacy_meta::{FieldMap, LegacyMeta, Row};
use serde::{Deserialize, Serialize};

use crate::MigrateError;

/// The query when `--metadata-query` names none.
pub const DEFAULT_QUERY: &str = "SELECT * FROM files";
/// Rows fetched from the database's cursor at a time.
pub const FETCH_ROWS: usize = 1000;
/// How long connecting to the legacy database may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Mismatches of each kind the plan's answer lists (all are counted, and all are written to
/// the run's `metadata-mismatches.jsonl`).
pub const LISTED: usize = 20;

/// Why a row and a file did not meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
    RowWithoutFile,
    FileWithoutRow,
    InvalidRow,
}

impl MismatchKind {
    pub fn describe(self) -> &'static str {
        match self {
            MismatchKind::FileWithoutRow => "file without a row",
            MismatchKind::RowWithoutFile => "row without a file",
            MismatchKind::InvalidRow => "invalid row",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mismatch {
    pub kind: MismatchKind,
    /// The legacy path (none for a row without one).
    pub path: Option<String>,
    /// The row's number in the result (1-based; a CSV file's header line is not a row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

#[derive(Debug)]
struct Entry {
    row: u64,
    meta: Result<LegacyMeta, String>,
    /// The owner the row (or every row claiming the path) names, valid or not the rest.
    owner: Option<String>,
    matched: AtomicBool,
}

/// The legacy rows, by path.
#[derive(Debug)]
pub struct LegacyRows {
    /// Where they came from (a database URL without its password).
    pub source: String,
    pub rows: u64,
    by_path: HashMap<String, Entry>,
    /// Rows without a path (they can meet no file).
    pathless: Vec<Mismatch>,
}

impl LegacyRows {
    fn new(source: String) -> Self {
        LegacyRows { source, rows: 0, by_path: HashMap::new(), pathless: Vec::new() }
    }

    fn add(&mut self, row: Row) {
        self.rows += 1;
        let n = self.rows;
        let Some(path) = row.path else {
            self.pathless.push(Mismatch {
                kind: MismatchKind::InvalidRow,
                path: None,
                row: Some(n),
                why: row.meta.err(),
            });
            return;
        };
        match self.by_path.get_mut(&path) {
            // Two rows claim one file: neither is trusted.
            Some(first) => {
                let why = format!("rows {} and {n} have this path", first.row);
                first.meta = Err(why.clone());
                if first.owner != row.owner {
                    first.owner = None;
                }
                self.pathless.push(Mismatch {
                    kind: MismatchKind::InvalidRow,
                    path: Some(path),
                    row: Some(n),
                    why: Some(why),
                });
            }
            None => {
                let entry = Entry { row: n, meta: row.meta, owner: row.owner, matched: AtomicBool::new(false) };
                self.by_path.insert(path, entry);
            }
        }
    }

    /// The row of the file at `path`, marking it met: its metadata, or why it has none (no row,
    /// or a row that does not validate).
    pub fn meet(&self, path: &str) -> Result<&LegacyMeta, Mismatch> {
        match self.by_path.get(path) {
            Some(e) => {
                e.matched.store(true, Ordering::Relaxed);
                e.meta.as_ref().map_err(|why| Mismatch {
                    kind: MismatchKind::InvalidRow,
                    path: Some(path.to_owned()),
                    row: Some(e.row),
                    why: Some(why.clone()),
                })
            }
            None => {
                Err(Mismatch { kind: MismatchKind::FileWithoutRow, path: Some(path.to_owned()), row: None, why: None })
            }
        }
    }

    /// The owner a file's row names (for the key rule's `{user}`), even if another of its
    /// fields does not validate; none if rows claiming the path name different owners.
    pub fn owner(&self, path: &str) -> Option<&str> {
        self.by_path.get(path)?.owner.as_deref()
    }

    /// Rows that never met a file, and rows without a path or sharing one, by row number.
    pub fn unmet(&self) -> Vec<Mismatch> {
        let mut out: Vec<Mismatch> = self
            .by_path
            .iter()
            .filter(|(_, e)| !e.matched.load(Ordering::Relaxed))
            .map(|(path, e)| Mismatch {
                kind: MismatchKind::RowWithoutFile,
                path: Some(path.clone()),
                row: Some(e.row),
                why: e.meta.as_ref().err().cloned(),
            })
            .chain(self.pathless.iter().cloned())
            .collect();
        out.sort_by_key(|m| m.row);
        out
    }
}

/// What met and what did not, as the plan reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataReport {
    /// Where the rows came from, and how many there were (known at plan time only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(default)]
    pub rows: u64,
    /// Files that took their row's metadata.
    pub matched_files: u64,
    pub files_without_row: u64,
    pub rows_without_file: u64,
    /// Rows that do not validate (or share a path, or have none); their files, if any, are
    /// migrated without legacy metadata.
    pub invalid_rows: u64,
    /// The first [`LISTED`] of each kind.
    pub listed: Vec<Mismatch>,
    /// Every mismatch, one JSON object a line (in the target bucket, next to the manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatches_key: Option<String>,
}

impl MetadataReport {
    pub fn new(source: &str, rows: u64) -> Self {
        MetadataReport { source: source.to_owned(), rows, ..Default::default() }
    }

    /// Counts `m` (listing it if fewer than [`LISTED`] of its kind are).
    pub fn count(&mut self, m: &Mismatch) {
        let n = match m.kind {
            MismatchKind::FileWithoutRow => &mut self.files_without_row,
            MismatchKind::RowWithoutFile => &mut self.rows_without_file,
            MismatchKind::InvalidRow => &mut self.invalid_rows,
        };
        *n += 1;
        if self.listed.iter().filter(|l| l.kind == m.kind).count() < LISTED {
            self.listed.push(m.clone());
        }
    }
}

/// `--metadata`, `--metadata-query`, `--metadata-map`.
#[derive(Debug, Clone)]
pub struct MetadataSource {
    pub url: String,
    pub query: Option<String>,
    pub map: FieldMap,
}

/// Reads every legacy row (see the module comment).
pub async fn load(src: &MetadataSource) -> Result<LegacyRows, MigrateError> {
    let url = src.url.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return postgres(url, src.query.as_deref().unwrap_or(DEFAULT_QUERY), &src.map).await;
    }
    if src.query.is_some() {
        return Err(MigrateError::Usage("--metadata-query is for a database (postgres://...)".into()));
    }
    let path = url.strip_prefix("file://").unwrap_or(url);
    let text = || std::fs::read(path).map_err(|e| MigrateError::Usage(format!("--metadata {path}: {e}")));
    if path.ends_with(".csv") {
        csv_rows(path, &text()?, &src.map)
    } else if path.ends_with(".jsonl") || path.ends_with(".ndjson") {
        json_rows(path, &text()?, &src.map)
    } else {
        Err(MigrateError::Usage(format!(
            "--metadata {url:?}: expected postgres://..., a .csv file (with a header line) or a .jsonl file"
        )))
    }
}

/// The URL without its password, for reports: the one in its user part, and any query
/// parameter naming one (tokio-postgres takes every option as a query parameter,
/// `?password=...` too).
fn redacted(url: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &base[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &base[..scheme + 3], &base[at + 1..])
        }
        _ => base.to_owned(),
    };
    let kept: Vec<&str> = query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty() && !p.split('=').next().unwrap_or_default().to_ascii_lowercase().contains("password"))
        .collect();
    match kept.is_empty() {
        true => base,
        false => format!("{base}?{}", kept.join("&")),
    }
}

async fn postgres(url: &str, query: &str, map: &FieldMap) -> Result<LegacyRows, MigrateError> {
    let shown = redacted(url);
    let db = |what: &str, e: tokio_postgres::Error| {
        let detail = match (e.as_db_error(), std::error::Error::source(&e)) {
            (Some(db), _) => db.message().to_owned(),
            (None, Some(cause)) => format!("{e}: {cause}"),
            (None, None) => e.to_string(),
        };
        MigrateError::Usage(format!("the legacy database {shown}: {what}: {detail}"))
    };
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|e: tokio_postgres::Error| MigrateError::Usage(format!("--metadata {shown}: {e}")))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    // As psql: a password not in the URL comes from PGPASSWORD (the engineer's shell).
    if config.get_password().is_none()
        && let Ok(password) = std::env::var("PGPASSWORD")
    {
        config.password(password);
    }
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(|e| db("cannot connect", e))?;
    let conn = tokio::spawn(connection);
    // The columns first (and the query checked), before a row is read.
    let statement = client.prepare(query).await.map_err(|e| db("the query fails", e))?;
    let columns: Vec<String> = statement.columns().iter().map(|c| c.name().to_owned()).collect();
    let resolved = map.resolve(&columns)?;
    client.batch_execute("BEGIN READ ONLY").await.map_err(|e| db("BEGIN", e))?;
    client
        .batch_execute(&format!("DECLARE legacy_rows NO SCROLL CURSOR FOR {query}"))
        .await
        .map_err(|e| db("the query fails", e))?;
    let mut rows = LegacyRows::new(shown.clone());
    loop {
        let page = client
            .simple_query(&format!("FETCH {FETCH_ROWS} FROM legacy_rows"))
            .await
            .map_err(|e| db("reading rows", e))?;
        let mut got = 0;
        for message in page {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = message {
                got += 1;
                // A database whose encoding is not UTF-8 (SQL_ASCII) may hand out any bytes:
                // `get` would panic on them (review 26).
                let values: Vec<Option<&str>> = (0..r.len())
                    .map(|i| r.try_get(i))
                    .collect::<Result<_, _>>()
                    .map_err(|e| db("a row holds text that is not UTF-8 (convert it in the query: convert_from)", e))?;
                rows.add(resolved.row(&values));
            }
        }
        if got < FETCH_ROWS {
            break;
        }
    }
    client.batch_execute("ROLLBACK").await.map_err(|e| db("ROLLBACK", e))?;
    drop(client);
    conn.abort();
    Ok(rows)
}

fn csv_rows(path: &str, bytes: &[u8], map: &FieldMap) -> Result<LegacyRows, MigrateError> {
    let bad = |e: csv::Error| MigrateError::Usage(format!("--metadata {path}: {e}"));
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(bytes);
    let columns: Vec<String> = reader.headers().map_err(bad)?.iter().map(|h| h.trim().to_owned()).collect();
    let resolved = map.resolve(&columns)?;
    let mut rows = LegacyRows::new(path.to_owned());
    for record in reader.records() {
        let record = record.map_err(bad)?;
        let values: Vec<Option<&str>> = record.iter().map(Some).collect();
        rows.add(resolved.row(&values));
    }
    Ok(rows)
}

fn json_rows(path: &str, bytes: &[u8], map: &FieldMap) -> Result<LegacyRows, MigrateError> {
    let text = std::str::from_utf8(bytes).map_err(|_| MigrateError::Usage(format!("--metadata {path}: not UTF-8")))?;
    let mut objects = Vec::new();
    let mut columns: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
            .map_err(|e| MigrateError::Usage(format!("--metadata {path} line {}: not a JSON object: {e}", i + 1)))?;
        for k in object.keys() {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
        objects.push(object);
    }
    let resolved = map.resolve(&columns)?;
    let mut rows = LegacyRows::new(path.to_owned());
    for object in &objects {
        let texts: Vec<Option<String>> = columns
            .iter()
            .map(|c| match object.get(c) {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
            })
            .collect();
        let values: Vec<Option<&str>> = texts.iter().map(Option::as_deref).collect();
        rows.add(resolved.row(&values));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(spec: &str) -> FieldMap {
        FieldMap::parse(spec).unwrap()
    }

    #[test]
    fn csv_and_json_lines_give_the_same_rows() {
        let csv = b"file_path,user_id,original_name,tags\nshop/a.jpg,alice,\"Menu, summer.jpg\",\"menu,summer\"\nshop/b.jpg,bob,b.jpg,\n";
        let json = br#"{"file_path": "shop/a.jpg", "user_id": "alice", "original_name": "Menu, summer.jpg", "tags": ["menu", "summer"]}
{"file_path": "shop/b.jpg", "user_id": "bob", "original_name": "b.jpg", "tags": null}
"#;
        let m = map("path=file_path,owner=user_id,name=original_name");
        for rows in [csv_rows("x.csv", csv, &m).unwrap(), json_rows("x.jsonl", json, &m).unwrap()] {
            assert_eq!(rows.rows, 2);
            let a = rows.meet("shop/a.jpg").unwrap();
            assert_eq!((a.owner.as_deref(), a.name.as_deref()), (Some("alice"), Some("Menu, summer.jpg")));
            assert_eq!(a.tags, ["menu", "summer"]);
            assert_eq!(rows.owner("shop/b.jpg"), Some("bob"));
            assert_eq!(rows.unmet().len(), 1, "b.jpg never met");
        }
    }

    /// Review 22 (migration 6): a row that did not validate (one tag too many, a name the
    /// platform refuses) gave no owner at all, and `{user}` fell back to the path's owner
    /// segment: in a tree whose folders name the uploader, the file went to the uploader. The
    /// owner field, valid on its own, still says whose file it is; rows claiming one path for
    /// different owners say nobody's.
    #[test]
    fn a_row_invalid_for_another_field_still_names_its_owner() {
        let many: Vec<String> = (1..=21).map(|n| format!("t{n}")).collect();
        let csv = format!(
            "path,owner,tags\nstaff/a.jpg,client-1,\"{}\"\nstaff/b.jpg,not a user,\nstaff/c.jpg,carol,\nstaff/c.jpg,carol,\nstaff/d.jpg,dave,\nstaff/d.jpg,erin,\n",
            many.join(",")
        );
        let rows = csv_rows("x.csv", csv.as_bytes(), &map("")).unwrap();
        assert!(rows.meet("staff/a.jpg").is_err(), "21 tags");
        assert_eq!(rows.owner("staff/a.jpg"), Some("client-1"));
        assert_eq!(rows.owner("staff/b.jpg"), None, "an owner that is no user id");
        assert_eq!(rows.owner("staff/c.jpg"), Some("carol"), "two rows, one owner");
        assert_eq!(rows.owner("staff/d.jpg"), None, "two rows, two owners");
    }

    #[test]
    fn rows_and_files_that_do_not_meet_are_all_reported() {
        let csv = b"path,owner\na.jpg,alice\nb.jpg,not a user\nc.jpg,carol\nc.jpg,carol\n,dave\n";
        let rows = csv_rows("x.csv", csv, &map("")).unwrap();
        assert!(rows.meet("a.jpg").is_ok());
        let invalid = rows.meet("b.jpg").unwrap_err();
        assert_eq!((invalid.kind, invalid.row), (MismatchKind::InvalidRow, Some(2)));
        assert!(invalid.why.as_deref().unwrap().starts_with("owner"));
        let dup = rows.meet("c.jpg").unwrap_err();
        assert_eq!(dup.why.as_deref(), Some("rows 3 and 4 have this path"));
        let none = rows.meet("z.jpg").unwrap_err();
        assert_eq!((none.kind, none.path.as_deref()), (MismatchKind::FileWithoutRow, Some("z.jpg")));
        let unmet = rows.unmet();
        assert_eq!(
            unmet.iter().map(|m| m.row.unwrap()).collect::<Vec<_>>(),
            [4, 5],
            "the duplicate and the pathless row"
        );
        let mut report = MetadataReport::new("x.csv", rows.rows);
        for m in unmet.iter().chain([&invalid, &dup, &none]) {
            report.count(m);
        }
        assert_eq!((report.invalid_rows, report.files_without_row, report.rows_without_file), (4, 1, 0));
    }

    #[test]
    fn bad_files_and_urls_are_refused_with_what_is_wrong() {
        let e = csv_rows("x.csv", b"path,owner\na.jpg\n", &map("")).unwrap_err();
        assert!(e.to_string().contains("x.csv"), "{e}");
        let e = json_rows("x.jsonl", b"[1, 2]\n", &map("")).unwrap_err();
        assert!(e.to_string().contains("line 1: not a JSON object"), "{e}");
        let e = csv_rows("x.csv", b"path,owner\n", &map("name=original")).unwrap_err();
        assert!(e.to_string().contains("column \"original\" is not in the legacy rows"), "{e}");
        assert_eq!(redacted("postgres://legacy:s3cret@db:5432/shop"), "postgres://legacy@db:5432/shop");
        assert_eq!(redacted("postgres://db/shop"), "postgres://db/shop");
        // Review 22 (migration 5): a password given as a query parameter was printed.
        assert_eq!(
            redacted("postgres://u@db/shop?password=x@y&sslmode=disable"),
            "postgres://u@db/shop?sslmode=disable"
        );
        assert_eq!(redacted("postgres://db/shop?sslmode=require&Password=x"), "postgres://db/shop?sslmode=require");
        assert_eq!(redacted("postgres://db/shop?password=x"), "postgres://db/shop");
        assert_eq!(redacted("postgres://u:p@db/shop?sslpassword=k"), "postgres://u@db/shop");
    }
}
