//! What an uploader says of a file besides its bytes: who may read it ([`Visibility`]), its
//! tags ([`Tag`], folded like search words) and their own key/values ([`CustomMetadata`]).
//! Each is parsed once at the edge, with named limits, and refused with the field's name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::CoreError;
use crate::names::fold;

/// Tags one file may carry.
pub const MAX_TAGS_PER_FILE: usize = 20;
/// Characters in a tag.
pub const MAX_TAG_CHARS: usize = 40;
/// A tag: 1 to [`MAX_TAG_CHARS`] letters, digits, `-` or `_`, stored folded (lower case, no
/// accents), so `Été` and `ete` are one tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(String);

impl Tag {
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        let folded = fold(raw.trim());
        if folded.is_empty() || folded.chars().count() > MAX_TAG_CHARS {
            return Err(CoreError::invalid("tags", format!("{raw:?}: a tag has 1 to {MAX_TAG_CHARS} characters")));
        }
        if !folded.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_') {
            return Err(CoreError::invalid("tags", format!("{raw:?}: use letters, digits, - and _")));
        }
        Ok(Tag(folded))
    }

    /// Trusts a tag read back from our own table.
    pub fn from_stored(raw: String) -> Self {
        Tag(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A file's tags after adding `add` and removing `remove` (removal wins); refused above
/// [`MAX_TAGS_PER_FILE`].
pub fn retag(current: &BTreeSet<Tag>, add: &[Tag], remove: &[Tag]) -> Result<BTreeSet<Tag>, CoreError> {
    let mut next = current.clone();
    next.extend(add.iter().cloned());
    for t in remove {
        next.remove(t);
    }
    if next.len() > MAX_TAGS_PER_FILE {
        return Err(CoreError::invalid("tags", format!("a file carries at most {MAX_TAGS_PER_FILE} tags")));
    }
    Ok(next)
}

/// What an uploader says of a file when asking to upload it (`visibility`, `tags`,
/// `metadata`; each optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    pub visibility: Visibility,
    pub tags: BTreeSet<Tag>,
    pub metadata: CustomMetadata,
}

impl Labels {
    /// `tags` as given, refused above [`MAX_TAGS_PER_FILE`].
    pub fn new(visibility: Visibility, tags: &[Tag], metadata: CustomMetadata) -> Result<Self, CoreError> {
        Ok(Labels { visibility, tags: retag(&BTreeSet::new(), tags, &[])?, metadata })
    }
}

/// Key/value pairs one file may carry (`metadata`).
pub const MAX_METADATA_ENTRIES: usize = 20;
/// Characters in a metadata key.
pub const MAX_METADATA_KEY_CHARS: usize = 40;
/// Characters in a metadata value.
pub const MAX_METADATA_VALUE_CHARS: usize = 256;

/// Who may read a file: its owner only (the default), or anyone who has its CDN URL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Visibility {
    #[default]
    Private,
    Public,
}

impl Visibility {
    /// `private` or `public`; anything else is refused naming `visibility`.
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        match raw {
            "private" => Ok(Visibility::Private),
            "public" => Ok(Visibility::Public),
            _ => Err(CoreError::invalid("visibility", "must be \"private\" or \"public\"")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Public => "public",
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An uploader's own key/values (the plan's task 3.1: a dish's price, a menu's language), shown
/// in listings and the export and never interpreted. At most [`MAX_METADATA_ENTRIES`] pairs;
/// keys of 1 to [`MAX_METADATA_KEY_CHARS`] ASCII letters, digits, `-`, `_` or `.` (a key is a
/// JSON property and a DynamoDB map key, so nothing else); values of at most
/// [`MAX_METADATA_VALUE_CHARS`] characters, no control characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomMetadata(BTreeMap<String, String>);

impl CustomMetadata {
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, CoreError> {
        let bad = |message: String| CoreError::invalid("metadata", message);
        let mut map = BTreeMap::new();
        for (key, value) in pairs {
            let shown: String = key.chars().take(MAX_METADATA_KEY_CHARS).collect();
            if key.is_empty() || key.chars().count() > MAX_METADATA_KEY_CHARS {
                return Err(bad(format!("{shown:?}: a key has 1 to {MAX_METADATA_KEY_CHARS} characters")));
            }
            if !key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
                return Err(bad(format!("{shown:?}: keys use ASCII letters, digits, -, _ and .")));
            }
            if value.chars().count() > MAX_METADATA_VALUE_CHARS {
                return Err(bad(format!("{shown:?}: a value has at most {MAX_METADATA_VALUE_CHARS} characters")));
            }
            if value.chars().any(char::is_control) {
                return Err(bad(format!("{shown:?}: a value has no control characters")));
            }
            map.insert(key.to_owned(), value.to_owned());
        }
        if map.len() > MAX_METADATA_ENTRIES {
            return Err(bad(format!("a file carries at most {MAX_METADATA_ENTRIES} entries")));
        }
        Ok(CustomMetadata(map))
    }

    /// Trusts pairs read back from our own table.
    pub fn from_stored(map: BTreeMap<String, String>) -> Self {
        CustomMetadata(map)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: CoreError) -> &'static str {
        match e {
            CoreError::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tags_are_folded_bounded_and_retagging_is_capped() {
        assert_eq!(Tag::parse(" Été ").unwrap().as_str(), "ete");
        assert!(Tag::parse("two words").is_err());
        assert!(Tag::parse("").is_err());
        assert!(Tag::parse(&"a".repeat(MAX_TAG_CHARS + 1)).is_err());
        let t = |s: &str| Tag::parse(s).unwrap();
        let now = retag(&BTreeSet::new(), &[t("a"), t("b")], &[t("b")]).unwrap();
        assert_eq!(now.into_iter().collect::<Vec<_>>(), vec![t("a")]);
        let many: Vec<Tag> = (0..=MAX_TAGS_PER_FILE).map(|i| t(&format!("t{i}"))).collect();
        assert!(retag(&BTreeSet::new(), &many, &[]).is_err());
    }

    #[test]
    fn visibility_is_private_unless_said_public() {
        assert_eq!(Visibility::default(), Visibility::Private);
        assert_eq!(Visibility::parse("public").unwrap(), Visibility::Public);
        for bad in ["Public", "", "shared", " private"] {
            assert_eq!(field(Visibility::parse(bad).unwrap_err()), "visibility", "{bad:?}");
        }
    }

    #[test]
    fn metadata_keeps_its_limits_and_names_the_field() {
        let ok = CustomMetadata::parse([("price", "12.50 €"), ("lang", "ar"), ("menu.section", "")]).unwrap();
        assert_eq!(ok.iter().collect::<Vec<_>>(), [("lang", "ar"), ("menu.section", ""), ("price", "12.50 €")]);
        let long_key = "k".repeat(MAX_METADATA_KEY_CHARS + 1);
        let long_value = "v".repeat(MAX_METADATA_VALUE_CHARS + 1);
        let max_value = "ü".repeat(MAX_METADATA_VALUE_CHARS);
        assert!(CustomMetadata::parse([("k", max_value.as_str())]).is_ok());
        for bad in [
            vec![("", "x")],
            vec![(long_key.as_str(), "x")],
            vec![("price tag", "x")],
            vec![("préis", "x")],
            vec![("k", long_value.as_str())],
            vec![("k", "line\nbreak")],
        ] {
            assert_eq!(field(CustomMetadata::parse(bad.clone()).unwrap_err()), "metadata", "{bad:?}");
        }
        let keys: Vec<String> = (0..=MAX_METADATA_ENTRIES).map(|i| format!("k{i}")).collect();
        let too_many = CustomMetadata::parse(keys.iter().map(|k| (k.as_str(), "v")));
        assert!(too_many.unwrap_err().to_string().contains(&MAX_METADATA_ENTRIES.to_string()));
    }
}
