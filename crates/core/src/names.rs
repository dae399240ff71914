//! File names: the user's display name, the safe key segment made from it, and the
//! `Content-Disposition` header that gives the name back on download (RFC 6266).

use unicode_normalization::UnicodeNormalization;

use crate::error::CoreError;
use crate::types::ContentType;

/// Longest display name kept, in bytes of UTF-8.
pub const MAX_DISPLAY_NAME_BYTES: usize = 255;
/// Longest key segment made from a name, in bytes of UTF-8 (the whole key stays well under
/// S3's 1,024 bytes).
pub const MAX_SAFE_NAME_BYTES: usize = 120;
/// The name used when nothing usable is left of the user's.
pub const FALLBACK_NAME: &str = "file";

/// Characters that never survive: controls (C0, C1, DEL) and invisible format characters that
/// can disguise a name (bidi overrides and isolates, zero-width characters, BOM).
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// The name as the user gave it, cleaned for display: NFC, hidden characters removed,
/// trimmed, bounded. Path separators stay (it is only shown, never used as a path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        if raw.len() > 4 * MAX_DISPLAY_NAME_BYTES {
            return Err(CoreError::invalid("filename", "is too long"));
        }
        let cleaned: String = raw.nfc().filter(|c| !is_hidden(*c)).collect();
        let bounded = bound_keeping_extension(cleaned.trim(), MAX_DISPLAY_NAME_BYTES);
        if bounded.is_empty() {
            return Err(CoreError::invalid("filename", "must not be empty"));
        }
        Ok(DisplayName(bounded))
    }

    /// Trusts a name read back from our own metadata table.
    pub fn from_stored(raw: String) -> Self {
        DisplayName(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A name safe as the last segment of an S3 key: no path separators, no `..`, no characters
/// S3 advises against, never empty, at most [`MAX_SAFE_NAME_BYTES`] bytes, extension kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeName(String);

impl SafeName {
    pub fn from_display(name: &DisplayName) -> Self {
        let replaced: String = name
            .as_str()
            .chars()
            .map(|c| {
                let risky = c.is_whitespace() && c != ' '
                    || matches!(
                        c,
                        '/' | '\\'
                            | '{'
                            | '}'
                            | '^'
                            | '%'
                            | '`'
                            | '['
                            | ']'
                            | '"'
                            | '<'
                            | '>'
                            | '~'
                            | '#'
                            | '|'
                            | '?'
                            | '*'
                            | ':'
                            | '\''
                    );
                if risky { '_' } else { c }
            })
            .collect();
        // Leading dots would make hidden files or `..`; trailing dots and spaces are dropped
        // by some download tools; `_` at either end is only left over from replacement.
        // Runs of `_` collapse to one.
        let mut collapsed = String::with_capacity(replaced.len());
        for c in replaced.trim_matches(|c: char| c == '.' || c == ' ' || c == '_').chars() {
            if !(c == '_' && collapsed.ends_with('_')) {
                collapsed.push(c);
            }
        }
        let bounded = bound_keeping_extension(&collapsed, MAX_SAFE_NAME_BYTES);
        let bounded = bounded.trim_matches(|c: char| c == '.' || c == ' ' || c == '_');
        if bounded.is_empty() { SafeName(FALLBACK_NAME.to_owned()) } else { SafeName(bounded.to_owned()) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Shortens `s` to `max` bytes, cutting the stem rather than the extension when the
/// extension is short (at most 10 bytes).
fn bound_keeping_extension(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    match s.rfind('.') {
        Some(dot) if s.len() - dot <= 11 && dot > 0 => {
            let ext = &s[dot..];
            format!("{}{}", truncate_utf8(&s[..dot], max - ext.len()), ext)
        }
        _ => truncate_utf8(s, max).to_owned(),
    }
}

/// Characters RFC 5987 allows unencoded in `filename*` (attr-char).
const ATTR_CHAR_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// What search and tags compare: lower case, compatibility forms and accents (combining
/// marks, Arabic vowel marks among them) removed, `ß` as `ss`.
pub fn fold(s: &str) -> String {
    s.nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect::<String>()
        .replace('ß', "ss")
}

/// The search tokens of a file name (DECISIONS: name search by token prefix, case- and
/// accent-insensitive): [`fold`]ed, split at anything not a letter or digit, each at most 32
/// characters, at most 20 distinct tokens, in order of first appearance.
pub fn search_tokens(name: &str) -> Vec<String> {
    let folded = fold(name);
    let mut tokens: Vec<String> = Vec::new();
    for t in folded.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()) {
        let t: String = t.chars().take(32).collect();
        if !tokens.contains(&t) {
            tokens.push(t);
        }
        if tokens.len() == 20 {
            break;
        }
    }
    tokens
}

/// The name a file of type `ty` is served under: the user's name, with the extension the
/// type has when the name's own says something else (a JPEG named `invoice.html` is served as
/// `invoice.jpg`, never as a page a browser would open). The type is the one the platform
/// checked against the bytes (files whose bytes contradict it are quarantined).
pub fn served_name(name: &DisplayName, ty: ContentType) -> String {
    let name = name.as_str();
    if ContentType::from_file_name(name) == Some(ty) {
        return name.to_owned();
    }
    // A short alphanumeric tail is an extension: it is replaced; anything else is kept whole.
    let stem = match name.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty()
                && (1..=MAX_EXTENSION_CHARS).contains(&ext.len())
                && ext.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            stem
        }
        _ => name,
    };
    format!("{stem}.{}", ty.extension())
}

/// The longest tail after a dot that [`served_name`] takes for an extension.
pub const MAX_EXTENSION_CHARS: usize = 8;

/// `attachment` (or `inline`) with an ASCII fallback `filename` and the exact name in
/// `filename*` (RFC 6266, RFC 5987), so every browser saves it under the user's name, with the
/// extension of the file's checked type ([`served_name`]).
pub fn content_disposition(name: &DisplayName, ty: ContentType, inline: bool) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let name = served_name(name, ty);
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' && c != '/' && c != '%' => c,
            _ => '_',
        })
        .collect();
    let exact = percent_encoding::utf8_percent_encode(&name, ATTR_CHAR_ESCAPES);
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{exact}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_tokens_ignore_case_accents_and_punctuation() {
        assert_eq!(search_tokens("Marienkäfer im Gras.JPG"), ["marienkafer", "im", "gras", "jpg"]);
        assert_eq!(search_tokens("Straße"), search_tokens("STRASSE"));
        assert_eq!(search_tokens("Crème_brûlée (2) - crème.png"), ["creme", "brulee", "2", "png"]);
        // Arabic too; the hamza is a combining mark after decomposition, so it folds away
        // (a query typed with or without it finds the file).
        assert_eq!(search_tokens("فطور-عائلي.jpg"), search_tokens("فطور عايلي JPG"));
        assert_eq!(search_tokens("فطور-عائلي.jpg").len(), 3);
        assert!(search_tokens("...").is_empty());
        assert_eq!(search_tokens(&"a ".repeat(100)).len(), 1);
        assert!(search_tokens(&"x".repeat(100))[0].len() == 32);
    }

    fn safe(raw: &str) -> String {
        SafeName::from_display(&DisplayName::parse(raw).unwrap()).as_str().to_owned()
    }

    #[test]
    fn hostile_names_become_one_harmless_segment() {
        let cases = [
            ("../../etc/passwd", "etc_passwd"),
            ("..", FALLBACK_NAME),
            ("...", FALLBACK_NAME),
            ("/", FALLBACK_NAME),
            ("a/../../b.jpg", "a_.._.._b.jpg"),
            ("C:\\Windows\\system32\\x.dll", "C_Windows_system32_x.dll"),
            ("photo\u{0}.jpg", "photo.jpg"),
            ("evil\u{202E}gpj.exe", "evilgpj.exe"),
            ("tab\tand\nnewline.png", "tabandnewline.png"),
            (".bashrc", "bashrc"),
            ("name. . .", "name"),
            ("100% <cool> #1?.jpg", "100_ _cool_ _1_.jpg"),
            ("  spaced  .png  ", "spaced  .png"),
        ];
        for (raw, want) in cases {
            let got = safe(raw);
            assert_eq!(got, want, "for {raw:?}");
            assert!(!got.contains('/') && !got.contains('\\') && got != ".." && !got.is_empty());
            assert!(!got.chars().any(char::is_control));
        }
    }

    #[test]
    fn names_are_nfc_normalised() {
        // "é" as e + combining acute, and as one code point: one key.
        assert_eq!(safe("cafe\u{301}.jpg"), safe("caf\u{e9}.jpg"));
        assert_eq!(safe("cafe\u{301}.jpg"), "caf\u{e9}.jpg");
    }

    #[test]
    fn empty_or_invisible_names_are_refused() {
        for raw in ["", "   ", "\u{200B}\u{FEFF}", "\u{0}\u{1}"] {
            assert!(matches!(DisplayName::parse(raw), Err(CoreError::Invalid { field: "filename", .. })), "{raw:?}");
        }
    }

    #[test]
    fn long_names_are_bounded_keeping_the_extension() {
        let long = format!("{}.jpeg", "ü".repeat(300));
        let got = safe(&long);
        assert!(got.len() <= MAX_SAFE_NAME_BYTES, "{} bytes", got.len());
        assert!(got.ends_with(".jpeg"));
        let display = DisplayName::parse(&long).unwrap();
        assert!(display.as_str().len() <= MAX_DISPLAY_NAME_BYTES && display.as_str().ends_with(".jpeg"));
        assert!(DisplayName::parse(&"x".repeat(5000)).is_err());
    }

    #[test]
    fn disposition_carries_the_exact_name_and_an_ascii_fallback() {
        let name = DisplayName::parse("Füße \"2024\"/x.jpg").unwrap();
        assert_eq!(
            content_disposition(&name, jpeg(), false),
            "attachment; filename=\"F__e _2024__x.jpg\"; filename*=UTF-8''F%C3%BC%C3%9Fe%20%222024%22%2Fx.jpg"
        );
        let plain = DisplayName::parse("a.pdf").unwrap();
        assert_eq!(
            content_disposition(&plain, ContentType::parse("application/pdf").unwrap(), true),
            "inline; filename=\"a.pdf\"; filename*=UTF-8''a.pdf"
        );
    }

    #[test]
    fn header_injection_is_impossible() {
        let name = DisplayName::parse("a\r\nSet-Cookie: x=1.jpg").unwrap();
        let header = content_disposition(&name, jpeg(), false);
        assert!(!header.contains('\r') && !header.contains('\n'));
    }

    fn jpeg() -> ContentType {
        ContentType::parse("image/jpeg").unwrap()
    }

    #[test]
    fn served_names_carry_the_extension_of_the_checked_type() {
        let served = |name: &str| served_name(&DisplayName::parse(name).unwrap(), jpeg());
        assert_eq!(served("invoice.html"), "invoice.jpg");
        assert_eq!(served("invoice.HTML"), "invoice.jpg");
        assert_eq!(served("photo.JPEG"), "photo.JPEG", "an extension of the same type stays");
        assert_eq!(served("photo.jpg"), "photo.jpg");
        assert_eq!(served("menu.pdf"), "menu.jpg");
        assert_eq!(served("no extension"), "no extension.jpg");
        assert_eq!(served("v1.2 final draft"), "v1.2 final draft.jpg", "a dot inside a name is not an extension");
        assert_eq!(served(".html"), ".html.jpg");
        let header = content_disposition(&DisplayName::parse("invoice.html").unwrap(), jpeg(), false);
        assert!(header.contains("filename=\"invoice.jpg\"") && !header.contains("html"), "{header}");
    }
}
