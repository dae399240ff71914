//! Legacy path -> target key. Rules: `keep` (the path as it is), `lowercase`, or a template
//! such as the platform layout `users/{user}/{fileId}/{safeName}` (DECISIONS 22). Every key
//! is checked, and collisions (two sources, one key) are found before anything is copied.

use std::collections::{BTreeMap, HashMap};

use crate::error::CoreError;
use crate::ids::{FileId, UserId};
use crate::names::{DisplayName, SafeName};

/// The platform's own layout, the default rule.
pub const PLATFORM_TEMPLATE: &str = "users/{user}/{fileId}/{safeName}";
/// Longest key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// How a source path becomes a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRule {
    Keep,
    Lowercase,
    Template(String),
}

const VARIABLES: &[&str] = &["path", "dir", "name", "safeName", "ext", "owner", "user", "fileId", "yyyy", "mm"];

impl KeyRule {
    /// `keep`, `lowercase`, `platform` or `template:<text with {variables}>`.
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        let rule = match raw {
            "keep" => KeyRule::Keep,
            "lowercase" => KeyRule::Lowercase,
            "platform" => KeyRule::Template(PLATFORM_TEMPLATE.to_owned()),
            t if t.starts_with("template:") => KeyRule::Template(t["template:".len()..].to_owned()),
            _ => {
                return Err(CoreError::invalid(
                    "map",
                    format!("{raw:?}: use keep, lowercase, platform or template:<pattern>"),
                ));
            }
        };
        if let KeyRule::Template(t) = &rule {
            let mut rest = t.as_str();
            while let Some(open) = rest.find('{') {
                let close =
                    rest[open..].find('}').ok_or_else(|| CoreError::invalid("map", format!("unclosed {{ in {t:?}")))?;
                let name = &rest[open + 1..open + close];
                if !VARIABLES.contains(&name) {
                    return Err(CoreError::invalid(
                        "map",
                        format!("unknown variable {{{name}}}; known: {}", VARIABLES.join(", ")),
                    ));
                }
                rest = &rest[open + close + 1..];
            }
        }
        Ok(rule)
    }

    pub fn describe(&self) -> String {
        match self {
            KeyRule::Keep => "keep".into(),
            KeyRule::Lowercase => "lowercase".into(),
            KeyRule::Template(t) => format!("template:{t}"),
        }
    }
}

/// A rule with what it needs: the target prefix, where the legacy owner sits in a path, the
/// legacy owner -> user id table, and the source's identity (for stable file ids).
#[derive(Debug, Clone)]
pub struct Mapper {
    pub rule: KeyRule,
    /// Prepended to every key (from `s3://bucket/prefix`); empty or ending in `/`.
    pub prefix: String,
    /// 1-based segment of the source path that names the legacy owner (`users/<id>/...` -> 2).
    pub owner_segment: usize,
    /// Legacy owner -> platform user id; an owner not listed keeps its legacy id.
    pub owners: HashMap<String, String>,
    /// The source's URL: file ids hash it with the path, so a re-plan maps a file to the
    /// same key and two sources never share ids.
    pub source_id: String,
}

impl Mapper {
    /// The target key of `path` (relative, `/`-separated) modified at `mtime_ms`.
    pub fn key(&self, path: &str, mtime_ms: i64) -> Result<String, CoreError> {
        self.key_for(path, mtime_ms, None)
    }

    /// [`Mapper::key`], with the owner the legacy database names for the file (`{user}` is then
    /// that user id, not the path's owner segment).
    pub fn key_for(&self, path: &str, mtime_ms: i64, owner: Option<&str>) -> Result<String, CoreError> {
        self.key_of(path, mtime_ms, owner, None)
    }

    /// [`Mapper::key_for`] of a later generation of the file: a legacy file rewritten since an
    /// earlier run copied it (a delta plan) gets a new `{fileId}` from `generation` (what
    /// changed: its change token), since the platform keeps one object per key for good
    /// (DECISIONS 28). Rules without `{fileId}` give the same key for every generation.
    pub fn key_of(
        &self,
        path: &str,
        mtime_ms: i64,
        owner: Option<&str>,
        generation: Option<&str>,
    ) -> Result<String, CoreError> {
        let mapped = match &self.rule {
            KeyRule::Keep => path.to_owned(),
            KeyRule::Lowercase => path.to_lowercase(),
            KeyRule::Template(t) => self.fill(t, path, mtime_ms, owner, generation)?,
        };
        let key = format!("{}{}", self.prefix, mapped);
        check_key(&key)?;
        Ok(key)
    }

    fn fill(
        &self,
        template: &str,
        path: &str,
        mtime_ms: i64,
        user: Option<&str>,
        generation: Option<&str>,
    ) -> Result<String, CoreError> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
        let owner = || -> Result<&str, CoreError> {
            path.split('/').nth(self.owner_segment.saturating_sub(1)).filter(|_| self.owner_segment > 0).ok_or_else(
                || {
                    CoreError::invalid(
                        "map",
                        format!("{path:?} has no segment {} naming its owner", self.owner_segment),
                    )
                },
            )
        };
        let mut out = String::with_capacity(template.len() + path.len());
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = open + rest[open..].find('}').unwrap_or(rest.len() - open);
            let value = match &rest[open + 1..close] {
                "path" => path.to_owned(),
                "dir" => dir.to_owned(),
                "name" => name.to_owned(),
                "ext" => ext.clone(),
                "safeName" => SafeName::from_display(&DisplayName::from_stored(name.to_owned())).as_str().to_owned(),
                "owner" => owner()?.to_owned(),
                "user" => {
                    let user = match user {
                        Some(user) => user,
                        None => {
                            let legacy = owner()?;
                            self.owners.get(legacy).map(String::as_str).unwrap_or(legacy)
                        }
                    };
                    UserId::parse(user)
                        .map_err(|_| {
                            CoreError::invalid("map", format!("owner {user:?} of {path:?} is not a valid user id"))
                        })?
                        .as_str()
                        .to_owned()
                }
                "fileId" => self.file_id_of(path, mtime_ms, generation).to_string(),
                "yyyy" | "mm" => {
                    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(mtime_ms) * 1_000_000)
                        .map_err(|_| CoreError::invalid("map", format!("{path:?} has an impossible mtime")))?;
                    if &rest[open + 1..close] == "yyyy" {
                        format!("{:04}", t.year())
                    } else {
                        format!("{:02}", u8::from(t.month()))
                    }
                }
                other => return Err(CoreError::invalid("map", format!("unknown variable {{{other}}}"))),
            };
            out.push_str(&value);
            rest = rest.get(close + 1..).unwrap_or("");
        }
        out.push_str(rest);
        Ok(out)
    }

    /// A UUIDv7 from the file's mtime and a hash of source and path: stable across re-plans,
    /// ordered like the legacy files' dates (a gallery sorted by id shows them in time order).
    pub fn file_id(&self, path: &str, mtime_ms: i64) -> FileId {
        self.file_id_of(path, mtime_ms, None)
    }

    /// [`Mapper::file_id`] of a later generation of the file (see [`Mapper::key_of`]).
    pub fn file_id_of(&self, path: &str, mtime_ms: i64, generation: Option<&str>) -> FileId {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(self.source_id.as_bytes());
        ctx.update(&[0]);
        ctx.update(path.as_bytes());
        if let Some(generation) = generation {
            ctx.update(&[0]);
            ctx.update(generation.as_bytes());
        }
        let digest = ctx.finish();
        let mut random = [0u8; 10];
        random.copy_from_slice(&digest.as_ref()[..10]);
        FileId::new(u64::try_from(mtime_ms).unwrap_or(0), random)
    }
}

/// A key S3 and the platform accept: 1..=1024 bytes, no empty, `.` or `..` segment, no control
/// characters, no leading `/`.
pub fn check_key(key: &str) -> Result<(), CoreError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(CoreError::invalid("key", format!("{key:?} must be 1 to {MAX_KEY_BYTES} bytes")));
    }
    if key.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(CoreError::invalid("key", format!("{key:?} has an empty, . or .. segment")));
    }
    if key.chars().any(char::is_control) {
        return Err(CoreError::invalid("key", format!("{key:?} contains a control character")));
    }
    Ok(())
}

/// Keys that more than one source maps to, with their sources (sorted), in key order.
pub fn collisions<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<(String, Vec<String>)> {
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (source, key) in pairs {
        by_key.entry(key).or_default().push(source);
    }
    by_key
        .into_iter()
        .filter(|(_, sources)| sources.len() > 1)
        .map(|(k, mut s)| {
            s.sort_unstable();
            (k.to_owned(), s.into_iter().map(str::to_owned).collect())
        })
        .collect()
}
