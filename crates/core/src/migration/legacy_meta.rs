//! Legacy metadata (issue 19, part 1; DECISIONS 34): a row of the legacy file table, read from
//! PostgreSQL, CSV or JSON lines, mapped onto the platform's fields and validated here, once for
//! every reader.
//!
//! The fields: `path` (the legacy path, relative to the tree's root: the join with the files;
//! required), `owner` (a platform user id), `name` (the original file name), `uploaded_at`,
//! `content_type` (used only where the bytes say nothing: the magic bytes decide), `visibility`
//! (`public`/`private`, or a boolean), `tags` (a PostgreSQL array, a JSON array, or a comma- or
//! space-separated text) and `metadata.<key>` (a custom key/value). Each is read from the column
//! of the same name unless `--metadata-map field=column,...` names another; a mapped column the
//! result does not have is refused before any row is read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::ids::UserId;
use crate::labels::{CustomMetadata, MAX_TAGS_PER_FILE, Tag, Visibility};
use crate::names::DisplayName;
use crate::types::ContentType;

/// What a legacy row gives a file, validated (every value parses as the platform's type).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Path,
    Owner,
    Name,
    UploadedAt,
    ContentType,
    Visibility,
    Tags,
    Metadata(String),
}

const STANDARD: [(&str, Field); 7] = [
    ("path", Field::Path),
    ("owner", Field::Owner),
    ("name", Field::Name),
    ("uploaded_at", Field::UploadedAt),
    ("content_type", Field::ContentType),
    ("visibility", Field::Visibility),
    ("tags", Field::Tags),
];

fn field(name: &str) -> Result<Field, CoreError> {
    if let Some(key) = name.strip_prefix("metadata.") {
        CustomMetadata::parse([(key, "x")])?;
        return Ok(Field::Metadata(key.to_owned()));
    }
    STANDARD.iter().find(|(n, _)| *n == name).map(|(_, f)| f.clone()).ok_or_else(|| {
        CoreError::invalid(
            "metadata-map",
            format!(
                "{name:?} is not a field: path, owner, name, uploaded_at, content_type, visibility, tags or metadata.<key>"
            ),
        )
    })
}

/// `--metadata-map`: which column each field is read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldMap(Vec<(Field, String)>);

impl FieldMap {
    /// `field=column,...` (empty: every field from the column of its name).
    pub fn parse(spec: &str) -> Result<FieldMap, CoreError> {
        let mut pairs: Vec<(Field, String)> = Vec::new();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (f, column) = pair
                .split_once('=')
                .map(|(f, c)| (f.trim(), c.trim()))
                .filter(|(f, c)| !f.is_empty() && !c.is_empty())
                .ok_or_else(|| CoreError::invalid("metadata-map", format!("{pair:?} is not field=column")))?;
            let f = field(f)?;
            if pairs.iter().any(|(g, _)| *g == f) {
                return Err(CoreError::invalid("metadata-map", format!("{pair:?}: that field is mapped twice")));
            }
            pairs.push((f, column.to_owned()));
        }
        Ok(FieldMap(pairs))
    }

    /// The column index of each field in a result with `columns`; refuses a mapped column the
    /// result does not have, and a result without the path's column.
    pub fn resolve(&self, columns: &[String]) -> Result<Resolved, CoreError> {
        let index = |c: &str| columns.iter().position(|have| have == c);
        let mut out = Vec::new();
        for (f, column) in &self.0 {
            let i = index(column).ok_or_else(|| {
                CoreError::invalid(
                    "metadata-map",
                    format!("column {column:?} is not in the legacy rows (they have: {})", columns.join(", ")),
                )
            })?;
            out.push((f.clone(), i));
        }
        for (name, f) in &STANDARD {
            if !self.0.iter().any(|(g, _)| g == f)
                && let Some(i) = index(name)
            {
                out.push((f.clone(), i));
            }
        }
        for (i, column) in columns.iter().enumerate() {
            if let Some(key) = column.strip_prefix("metadata.")
                && !out.iter().any(|(f, _)| *f == Field::Metadata(key.to_owned()))
            {
                out.push((field(column)?, i));
            }
        }
        let path = out.iter().find(|(f, _)| *f == Field::Path).map(|(_, i)| *i).ok_or_else(|| {
            CoreError::invalid(
                "metadata-map",
                format!("no column gives the legacy path (path=COLUMN); the rows have: {}", columns.join(", ")),
            )
        })?;
        Ok(Resolved { path, fields: out })
    }
}

/// A field map against one result's columns.
#[derive(Debug, Clone)]
pub struct Resolved {
    path: usize,
    fields: Vec<(Field, usize)>,
}

/// One legacy row read: its path (if it has one) and what it gives the file, or why it cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub path: Option<String>,
    pub meta: Result<LegacyMeta, String>,
    /// The owner field, when it is a valid user id on its own: a row that does not validate
    /// for another field still says whose file it is (the key rule's `{user}`).
    pub owner: Option<String>,
}

impl Resolved {
    /// The row whose values (as text; `None` for SQL NULL) are `values`, in column order.
    pub fn row(&self, values: &[Option<&str>]) -> Row {
        let get = |i: usize| values.get(i).copied().flatten().map(str::trim).filter(|v| !v.is_empty());
        let path = get(self.path).map(|p| p.trim_start_matches('/').to_owned());
        let meta = match &path {
            None => Err("no path".to_owned()),
            Some(_) => self.meta(&get),
        };
        let owner = self
            .fields
            .iter()
            .find(|(f, _)| matches!(f, Field::Owner))
            .and_then(|(_, i)| UserId::parse(get(*i)?).ok())
            .map(|u| u.to_string());
        Row { path, meta, owner }
    }

    fn meta<'a>(&self, get: &dyn Fn(usize) -> Option<&'a str>) -> Result<LegacyMeta, String> {
        let mut m = LegacyMeta::default();
        for (f, i) in &self.fields {
            let Some(v) = get(*i) else { continue };
            match f {
                Field::Path => {}
                Field::Owner => m.owner = Some(UserId::parse(v).map_err(|e| format!("owner {v:?}: {e}"))?.to_string()),
                Field::Name => {
                    m.name = Some(DisplayName::parse(v).map_err(|e| format!("name {v:?}: {e}"))?.as_str().to_owned())
                }
                Field::UploadedAt => m.uploaded_at_ms = Some(timestamp_ms(v)?),
                Field::ContentType => {
                    m.content_type =
                        Some(ContentType::parse(v).map_err(|e| format!("content type {v:?}: {e}"))?.as_str().to_owned())
                }
                Field::Visibility => m.public = Some(public(v)?),
                Field::Tags => {
                    let mut tags = Vec::new();
                    for t in tag_list(v) {
                        let tag = Tag::parse(&t).map_err(|e| format!("tag {t:?}: {e}"))?;
                        if !tags.contains(&tag.as_str().to_owned()) {
                            tags.push(tag.as_str().to_owned());
                        }
                    }
                    if tags.len() > MAX_TAGS_PER_FILE {
                        return Err(format!("{} tags: at most {MAX_TAGS_PER_FILE}", tags.len()));
                    }
                    m.tags = tags;
                }
                Field::Metadata(key) => {
                    m.metadata.insert(key.clone(), v.to_owned());
                }
            }
        }
        CustomMetadata::parse(m.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(|e| format!("metadata: {e}"))?;
        Ok(m)
    }
}

fn public(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "t" | "true" | "1" | "yes" => Ok(true),
        "f" | "false" | "0" | "no" => Ok(false),
        other => Visibility::parse(other)
            .map(|vis| vis == Visibility::Public)
            .map_err(|_| format!("visibility {v:?} is not public, private or a boolean")),
    }
}

/// A PostgreSQL array (`{a,"b c"}`), a JSON array (`["a","b"]`), or text separated by commas
/// (or, without any, spaces).
fn tag_list(v: &str) -> Vec<String> {
    let v = v.trim();
    if v.starts_with('[')
        && let Ok(list) = serde_json::from_str::<Vec<String>>(v)
    {
        return list;
    }
    let inner = v.strip_prefix('{').and_then(|s| s.strip_suffix('}')).unwrap_or(v);
    let sep = if inner.contains(',') { ',' } else { ' ' };
    inner.split(sep).map(|t| t.trim().trim_matches('"').to_owned()).filter(|t| !t.is_empty()).collect()
}

/// RFC 3339, or PostgreSQL's text of a `timestamp[tz]` (`2019-07-14 10:30:00[.123][+02]`, UTC
/// without an offset), or a date.
fn timestamp_ms(v: &str) -> Result<i64, String> {
    use time::format_description::well_known::Rfc3339;
    let bad = || format!("uploaded_at {v:?} is not a timestamp (RFC 3339 or 2019-07-14 10:30:00+02)");
    let mut text = v.replacen(' ', "T", 1);
    if text.len() == 10 {
        text.push_str("T00:00:00");
    }
    // PostgreSQL writes offsets as +02 or +05:30; RFC 3339 wants +02:00, or Z.
    let split = text.rfind(['+', '-']).filter(|i| *i > 10);
    let with_offset = match split {
        Some(i) if text[i..].len() == 3 => format!("{text}:00"),
        Some(_) => text,
        None => format!("{}Z", text.trim_end_matches('Z')),
    };
    let t = time::OffsetDateTime::parse(&with_offset, &Rfc3339).map_err(|_| bad())?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn fields_come_from_their_own_columns_unless_mapped() {
        let r = FieldMap::parse("").unwrap().resolve(&cols(&["path", "owner", "tags", "metadata.dish"])).unwrap();
        let row = r.row(&[Some("/shop/a.jpg"), Some("alice"), Some("{menu,\"summer-2019\"}"), Some("falafel")]);
        assert_eq!(row.path.as_deref(), Some("shop/a.jpg"));
        let m = row.meta.unwrap();
        assert_eq!((m.owner.as_deref(), m.tags.clone()), (Some("alice"), vec!["menu".into(), "summer-2019".into()]));
        assert_eq!(m.metadata["dish"], "falafel");

        let map = FieldMap::parse("path=file_path, owner=user_id, name=original_name, metadata.note=description, visibility=is_public, uploaded_at=created").unwrap();
        let r = map
            .resolve(&cols(&[
                "id",
                "file_path",
                "user_id",
                "original_name",
                "description",
                "is_public",
                "created",
                "owner",
            ]))
            .unwrap();
        let row = r.row(&[
            Some("7"),
            Some("shop/menu card.jpg"),
            Some("bob"),
            Some("Menu card.jpg"),
            Some("our menu"),
            Some("t"),
            Some("2019-07-14 10:30:00+02"),
            Some("not-this-one"),
        ]);
        let m = row.meta.unwrap();
        assert_eq!(m.owner.as_deref(), Some("bob"), "a mapped field ignores the column of its name");
        assert_eq!((m.name.as_deref(), m.public), (Some("Menu card.jpg"), Some(true)));
        assert_eq!(m.metadata["note"], "our menu");
        assert_eq!(m.uploaded_at_ms, Some(1_563_093_000_000));
    }

    #[test]
    fn a_mapping_to_a_missing_column_or_without_a_path_is_refused_before_any_row() {
        let e = FieldMap::parse("name=original").unwrap().resolve(&cols(&["path", "name"])).unwrap_err();
        assert!(e.to_string().contains("column \"original\" is not in the legacy rows (they have: path, name)"), "{e}");
        let e = FieldMap::parse("").unwrap().resolve(&cols(&["file", "owner"])).unwrap_err();
        assert!(e.to_string().contains("no column gives the legacy path"), "{e}");
        for bad in ["name", "=x", "size=bytes", "name=a,name=b", "metadata.=x"] {
            assert!(FieldMap::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rows_that_do_not_validate_say_why() {
        let r = FieldMap::parse("")
            .unwrap()
            .resolve(&cols(&["path", "owner", "uploaded_at", "visibility", "tags"]))
            .unwrap();
        let why = |values: [Option<&str>; 5]| r.row(&values).meta.unwrap_err();
        assert!(why([Some("a.jpg"), Some("no/slash"), None, None, None]).starts_with("owner"));
        assert!(why([Some("a.jpg"), None, Some("last tuesday"), None, None]).starts_with("uploaded_at"));
        assert!(why([Some("a.jpg"), None, None, Some("friends"), None]).starts_with("visibility"));
        let many = (0..21).map(|i| format!("t{i}")).collect::<Vec<_>>().join(",");
        assert!(why([Some("a.jpg"), None, None, None, Some(&many)]).contains("at most 20"));
        assert_eq!(r.row(&[None, Some("alice"), None, None, None]).meta.unwrap_err(), "no path");
        // NULLs and blanks are absent values, not errors.
        let m = r.row(&[Some("a.jpg"), None, Some(" "), None, None]).meta.unwrap();
        assert_eq!(m, LegacyMeta::default());
    }

    #[test]
    fn timestamps_in_the_forms_legacy_databases_write() {
        assert_eq!(timestamp_ms("2019-07-14T08:30:00Z").unwrap(), 1_563_093_000_000);
        assert_eq!(timestamp_ms("2019-07-14 08:30:00").unwrap(), 1_563_093_000_000);
        assert_eq!(timestamp_ms("2019-07-14 10:30:00.250+02").unwrap(), 1_563_093_000_250);
        assert_eq!(timestamp_ms("2019-07-14 14:00:00+05:30").unwrap(), 1_563_093_000_000);
        assert_eq!(timestamp_ms("2019-07-14").unwrap(), 1_563_062_400_000);
        assert!(timestamp_ms("14/07/2019").is_err());
    }
}
