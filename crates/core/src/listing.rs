//! What `GET /v1/files` may ask: the query string parsed into a [`ListQuery`] (a tag is a
//! [`crate::labels::Tag`]), and the opaque paging cursor ([`Cursor`]).

use std::collections::BTreeSet;

use crate::CoreError;
use crate::labels::Tag;
use crate::metadata::FileStatus;
use crate::names::search_tokens;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Files a page holds unless the caller asks for fewer.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The most files a page holds.
pub const MAX_PAGE_SIZE: u32 = 200;
/// Words in a search.
pub const MAX_QUERY_WORDS: usize = 5;

/// Whether every word of a search starts one of the name's words.
pub fn name_matches(name: &str, words: &[String]) -> bool {
    let tokens = search_tokens(name);
    words.iter().all(|w| tokens.iter().any(|t| t.starts_with(w.as_str())))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Upload time.
    Date,
    /// Display name, folded.
    Name,
    Size,
}

/// A page request for the caller's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: u32,
    pub cursor: Option<Cursor>,
    pub sort: SortBy,
    /// Newest, last name or largest first (the default for date and size; names go A to Z).
    pub descending: bool,
    /// An exact type (`image/png`) or a family (`image/`).
    pub content_type: Option<String>,
    /// Which statuses to show; by default every status but `DELETED`.
    pub status: Option<FileStatus>,
    pub tag: Option<Tag>,
    /// Uploaded at or after / before.
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// Search words (folded); each must start a word of the name.
    pub words: Vec<String>,
}

/// A first page, newest first, of every status but `DELETED`.
impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            limit: DEFAULT_PAGE_SIZE,
            cursor: None,
            sort: SortBy::Date,
            descending: true,
            content_type: None,
            status: None,
            tag: None,
            from: None,
            to: None,
            words: Vec::new(),
        }
    }
}

impl ListQuery {
    /// From the query string's pairs; an unknown or repeated parameter is refused (a typo
    /// should not silently widen a listing).
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, CoreError> {
        let mut q = ListQuery::default();
        let mut seen = BTreeSet::new();
        let mut order = None;
        for (k, v) in pairs {
            if !seen.insert(k.as_str()) {
                return Err(CoreError::invalid("query", format!("{k} is given twice")));
            }
            match k.as_str() {
                "limit" => {
                    q.limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                        .ok_or_else(|| CoreError::invalid("limit", format!("use 1 to {MAX_PAGE_SIZE}")))?;
                }
                "cursor" => q.cursor = Some(Cursor::decode(v)?),
                "sort" => {
                    q.sort = match v.as_str() {
                        "date" => SortBy::Date,
                        "name" => SortBy::Name,
                        "size" => SortBy::Size,
                        _ => return Err(CoreError::invalid("sort", "use date, name or size")),
                    }
                }
                "order" => {
                    order = Some(match v.as_str() {
                        "asc" => false,
                        "desc" => true,
                        _ => return Err(CoreError::invalid("order", "use asc or desc")),
                    })
                }
                "contentType" => {
                    let ok = v.len() <= 100
                        && v.split_once('/').is_some_and(|(a, b)| {
                            !a.is_empty()
                                && a.chars().chain(b.chars()).all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                        });
                    if !ok {
                        return Err(CoreError::invalid("contentType", "use a type (image/png) or a family (image/)"));
                    }
                    q.content_type = Some(v.to_ascii_lowercase());
                }
                "status" => {
                    q.status = Some(v.to_ascii_uppercase().parse::<FileStatus>().map_err(|_| {
                        CoreError::invalid(
                            "status",
                            "use pending, ready, quarantined, failed, deleted, archived or restoring",
                        )
                    })?)
                }
                "tag" => q.tag = Some(Tag::parse(v)?),
                "from" => q.from = Some(date(v, "from")?),
                "to" => q.to = Some(date(v, "to")?),
                "q" => {
                    q.words = search_tokens(v);
                    if q.words.is_empty() || q.words.len() > MAX_QUERY_WORDS {
                        return Err(CoreError::invalid("q", format!("search for 1 to {MAX_QUERY_WORDS} words")));
                    }
                }
                _ => return Err(CoreError::invalid("query", format!("{k} is not a parameter of this listing"))),
            }
        }
        q.descending = order.unwrap_or(q.sort != SortBy::Name);
        if let (Some(from), Some(to)) = (q.from, q.to)
            && from > to
        {
            return Err(CoreError::invalid("from", "is after to"));
        }
        let index_choices = usize::from(q.tag.is_some()) + usize::from(!q.words.is_empty());
        if index_choices > 1 || (index_choices == 1 && q.sort != SortBy::Date) {
            return Err(CoreError::invalid(
                "query",
                "tag and q each list by date and do not combine with each other or another sort",
            ));
        }
        Ok(q)
    }

    /// Whether a row passes the filters the index did not apply.
    pub fn keeps(&self, status: FileStatus, content_type: &str, created: OffsetDateTime, name: &str) -> bool {
        let status_ok = match self.status {
            Some(s) => s == status,
            None => status != FileStatus::Deleted,
        };
        let type_ok = match &self.content_type {
            Some(t) if t.ends_with('/') => content_type.starts_with(t.as_str()),
            Some(t) => content_type == t,
            None => true,
        };
        let date_ok = self.from.is_none_or(|f| created >= f) && self.to.is_none_or(|t| created < t);
        status_ok && type_ok && date_ok && name_matches(name, &self.words)
    }
}

/// `2024-05-01` (midnight UTC) or an RFC 3339 time.
fn date(raw: &str, field: &'static str) -> Result<OffsetDateTime, CoreError> {
    if let Ok(t) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(t);
    }
    let day = time::Date::parse(raw, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| CoreError::invalid(field, "use a date (2024-05-01) or an RFC 3339 time"))?;
    Ok(day.midnight().assume_utc())
}

/// Where the next page starts: the last item's keys in the index that served the page. The
/// partition is never in it (it comes from the caller), so a cursor moves only within the
/// caller's own listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Which listing gave it (`date`, `name`, `size`, `tag`, `words`): a cursor only continues
    /// its own listing.
    pub kind: String,
    /// The table's `pk` and `sk` of the last item, and its sort key in the index.
    pub pk: String,
    pub sk: String,
    pub index_sk: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}\n{}\n{}\n{}", self.kind, self.pk, self.sk, self.index_sk))
    }

    pub fn decode(raw: &str) -> Result<Self, CoreError> {
        let bad = || CoreError::invalid("cursor", "is not a cursor this listing gave out");
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = text.splitn(4, '\n');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(kind), Some(pk), Some(sk), Some(i)) if pk.starts_with("FILE#") && i.len() <= 1024 => {
                Ok(Cursor { kind: kind.to_owned(), pk: pk.to_owned(), sk: sk.to_owned(), index_sk: i.to_owned() })
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<ListQuery, CoreError> {
        ListQuery::parse(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>())
    }

    #[test]
    fn search_words_start_words_of_the_name() {
        let words = |q: &str| search_tokens(q);
        assert!(name_matches("Été à Marseille.jpg", &words("ete MARS")));
        assert!(!name_matches("Été à Marseille.jpg", &words("hiver")));
        assert!(!name_matches("summer.jpg", &words("ummer")), "prefixes of words, not substrings");
        assert!(name_matches("مَطْبَخ.jpg", &words("مطبخ")));
    }

    #[test]
    fn queries_parse_with_named_defaults_and_refuse_nonsense() {
        let d = q(&[]).unwrap();
        assert_eq!((d.limit, d.sort, d.descending, d.status), (DEFAULT_PAGE_SIZE, SortBy::Date, true, None));
        assert!(!q(&[("sort", "name")]).unwrap().descending, "names go A to Z");
        assert!(q(&[("sort", "size"), ("order", "asc")]).is_ok_and(|x| !x.descending));
        assert_eq!(q(&[("status", "deleted")]).unwrap().status, Some(FileStatus::Deleted));
        assert_eq!(q(&[("from", "2024-05-01")]).unwrap().from, Some(time::macros::datetime!(2024-05-01 0:00 UTC)));
        for bad in [
            vec![("limit", "0")],
            vec![("limit", "201")],
            vec![("sort", "color")],
            vec![("status", "gone")],
            vec![("contentType", "image")],
            vec![("from", "yesterday")],
            vec![("from", "2024-06-01"), ("to", "2024-05-01")],
            vec![("q", "   ")],
            vec![("tag", "a"), ("q", "b")],
            vec![("q", "b"), ("sort", "size")],
            vec![("cursor", "!!")],
            vec![("owner", "someone-else")],
            vec![("limit", "5"), ("limit", "6")],
        ] {
            assert!(q(&bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn filters_hide_deleted_files_unless_asked() {
        let t = time::macros::datetime!(2024-05-02 10:00 UTC);
        let all = q(&[]).unwrap();
        assert!(all.keeps(FileStatus::Ready, "image/png", t, "a.png"));
        assert!(!all.keeps(FileStatus::Deleted, "image/png", t, "a.png"));
        assert!(q(&[("status", "deleted")]).unwrap().keeps(FileStatus::Deleted, "image/png", t, "a.png"));
        let images = q(&[("contentType", "image/")]).unwrap();
        assert!(images.keeps(FileStatus::Ready, "image/jpeg", t, "a.jpg"));
        assert!(!images.keeps(FileStatus::Ready, "application/pdf", t, "a.pdf"));
        let may = q(&[("from", "2024-05-01"), ("to", "2024-05-02")]).unwrap();
        assert!(!may.keeps(FileStatus::Ready, "image/png", t, "a.png"), "to is exclusive");
    }

    #[test]
    fn cursors_round_trip_and_forged_ones_are_refused() {
        let c = Cursor { kind: "date".into(), pk: "FILE#x".into(), sk: "FILE".into(), index_sk: "2024#x".into() };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        let forged = URL_SAFE_NO_PAD.encode("date\nUSER#other\nUSAGE\nx");
        assert!(Cursor::decode(&forged).is_err());
    }
}
