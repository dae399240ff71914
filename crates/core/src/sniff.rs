//! What a file really is, from its first bytes (magic numbers), whatever it was declared as.
//!
//! The declared type decided the upload's limits; once the object exists, these bytes decide
//! whether it may stay (DECISIONS 11): a type off the allow-list, or one that contradicts the
//! declaration, is quarantined.

use crate::types::ContentType;

/// How many leading bytes [`sniff`] looks at (enough for an ISO-BMFF `ftyp` box with its
/// compatible brands, and an EBML header with its doc type).
pub const SNIFF_LEN: usize = 4096;

/// What the leading bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A type on the allow-list.
    Allowed(ContentType),
    /// Something recognisable that is not allowed (`"BMP image"`, `"HTML document"`, ...).
    Refused(&'static str),
    /// Nothing recognisable.
    Unknown,
}

impl Sniffed {
    /// A short description for a quarantine reason.
    pub fn describe(&self) -> &'static str {
        match self {
            Sniffed::Allowed(t) => t.as_str(),
            Sniffed::Refused(what) => what,
            Sniffed::Unknown => "unrecognised bytes",
        }
    }
}

fn allowed(mime: &str) -> Sniffed {
    ContentType::parse(mime).map(Sniffed::Allowed).unwrap_or(Sniffed::Unknown)
}

/// Identifies `head` (the first [`SNIFF_LEN`] bytes or fewer) by its magic numbers.
pub fn sniff(head: &[u8]) -> Sniffed {
    let starts = |magic: &[u8]| head.starts_with(magic);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        return allowed("image/jpeg");
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return allowed("image/png");
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return allowed("image/gif");
    }
    if starts(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        return allowed("image/webp");
    }
    if starts(b"%PDF-") {
        return allowed("application/pdf");
    }
    if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
        return allowed("application/zip");
    }
    if starts(&[0x1A, 0x45, 0xDF, 0xA3]) {
        // EBML: WebM declares its doc type in the header; other Matroska files are not allowed.
        return if find(head, b"webm") { allowed("video/webm") } else { Sniffed::Refused("Matroska video") };
    }
    if head.get(4..8) == Some(b"ftyp") {
        return sniff_ftyp(head);
    }
    if starts(b"BM") && head.len() >= 26 {
        return Sniffed::Refused("BMP image");
    }
    if starts(b"II*\0") || starts(b"MM\0*") {
        return Sniffed::Refused("TIFF image");
    }
    if starts(b"MZ") {
        return Sniffed::Refused("Windows executable");
    }
    if starts(b"\x7fELF") {
        return Sniffed::Refused("ELF executable");
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(512)]).trim_start().to_ascii_lowercase();
    if text.starts_with("<!doctype html") || text.starts_with("<html") || text.starts_with("<script") {
        return Sniffed::Refused("HTML document");
    }
    if text.starts_with("<svg") || (text.starts_with("<?xml") && text.contains("<svg")) {
        return Sniffed::Refused("SVG image");
    }
    Sniffed::Unknown
}

/// An ISO base media file: the major brand and the compatible brands say which kind.
fn sniff_ftyp(head: &[u8]) -> Sniffed {
    let size = head.get(0..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).unwrap_or(0);
    let end = size.clamp(8, head.len());
    let brands: Vec<&[u8]> = head
        .get(8..end)
        .unwrap_or_default()
        .chunks_exact(4)
        .enumerate()
        .filter(|(i, _)| *i != 1) // the minor version, not a brand
        .map(|(_, b)| b)
        .collect();
    let has = |wanted: &[&[u8]]| brands.iter().any(|b| wanted.contains(b));
    if has(&[b"avif", b"avis"]) {
        allowed("image/avif")
    } else if has(&[b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"]) {
        allowed("image/heic")
    } else if has(&[b"mif1", b"msf1"]) {
        allowed("image/heif")
    } else if has(&[b"qt  "]) {
        allowed("video/quicktime")
    } else if has(&[b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"dash", b"mmp4"])
    {
        allowed("video/mp4")
    } else if has(&[b"M4A ", b"M4B "]) {
        Sniffed::Refused("MPEG-4 audio")
    } else {
        Sniffed::Refused("ISO media of an unknown brand")
    }
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Whether bytes sniffed as `actual` may carry the declared type: the same type, or one that
/// clients routinely confuse with it (HEIC and HEIF; MP4 and QuickTime share one container).
pub fn agrees(declared: ContentType, actual: ContentType) -> bool {
    let family = |t: ContentType| match t.as_str() {
        "image/heic" | "image/heif" => "heif",
        "video/mp4" | "video/quicktime" => "isobmff-video",
        other => other,
    };
    family(declared) == family(actual)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mime(head: &[u8]) -> &'static str {
        sniff(head).describe()
    }

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(((16 + 4 * compatible.len()) as u32).to_be_bytes());
        b.extend(b"ftyp");
        b.extend(major);
        b.extend([0, 0, 0, 0]);
        for c in compatible {
            b.extend(*c);
        }
        b
    }

    #[test]
    fn allowed_types_are_recognised_by_their_magic() {
        assert_eq!(mime(b"\xFF\xD8\xFF\xE1rest"), "image/jpeg");
        assert_eq!(mime(b"\x89PNG\r\n\x1a\n...."), "image/png");
        assert_eq!(mime(b"GIF89a...."), "image/gif");
        assert_eq!(mime(b"RIFF\0\0\0\0WEBPVP8 "), "image/webp");
        assert_eq!(mime(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(mime(b"PK\x03\x04...."), "application/zip");
        assert_eq!(mime(b"\x1A\x45\xDF\xA3\x9f\x42\x82\x84webm"), "video/webm");
        assert_eq!(mime(&ftyp(b"avif", &[b"mif1", b"miaf"])), "image/avif");
        assert_eq!(mime(&ftyp(b"mif1", &[b"mif1", b"heic"])), "image/heic");
        assert_eq!(mime(&ftyp(b"qt  ", &[b"qt  "])), "video/quicktime");
        assert_eq!(mime(&ftyp(b"isom", &[b"isom", b"avc1"])), "video/mp4");
    }

    #[test]
    fn look_alikes_and_unknowns_are_named() {
        assert_eq!(mime(b"BM\x52\0\0\0\0\0\0\0\x1a\0\0\0\x0c\0\0\0\x01\0\0\0\x01\0\x01\0"), "BMP image");
        assert_eq!(mime(b"  <!DOCTYPE html><html>"), "HTML document");
        assert_eq!(mime(b"<?xml version=\"1.0\"?><svg xmlns="), "SVG image");
        assert_eq!(mime(b"MZ\x90\0"), "Windows executable");
        assert_eq!(mime(&ftyp(b"M4A ", &[b"M4A "])), "MPEG-4 audio");
        assert_eq!(mime(b"\x1A\x45\xDF\xA3\x9f\x42\x82\x88matroska"), "Matroska video");
        assert_eq!(sniff(b"hello"), Sniffed::Unknown);
        assert_eq!(sniff(b""), Sniffed::Unknown);
        // A truncated ftyp box does not read past the end.
        assert!(matches!(sniff(b"\xff\xff\xff\xffftypav"), Sniffed::Refused(_)));
    }

    #[test]
    fn declarations_agree_within_a_container_family_only() {
        let t = |m| ContentType::parse(m).unwrap();
        assert!(agrees(t("image/jpeg"), t("image/jpeg")));
        assert!(agrees(t("image/heif"), t("image/heic")));
        assert!(agrees(t("video/quicktime"), t("video/mp4")));
        assert!(!agrees(t("image/png"), t("image/jpeg")));
        assert!(!agrees(t("image/jpeg"), t("application/pdf")));
    }
}
