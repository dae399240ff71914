//! The one allow-list of content types, each with its size limit and its magic bytes.
//!
//! The declared type decides the upload's limits; the magic bytes decide, once the object
//! exists, whether the bytes are what was declared (the thumbnailer quarantines them if not).

use crate::error::CoreError;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// What the platform does with a type after upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeClass {
    /// Gets responsive variants.
    Image,
    /// Checked by magic bytes, no variants.
    Document,
    Video,
    Archive,
}

/// One allowed content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedType {
    pub mime: &'static str,
    pub class: TypeClass,
    /// Largest upload accepted for this type, in bytes.
    pub max_bytes: u64,
}

/// Largest image accepted (camera JPEGs and HEICs are far below; 50 MP PNGs are not).
pub const MAX_IMAGE_BYTES: u64 = 100 * MIB;
/// Largest PDF accepted.
pub const MAX_PDF_BYTES: u64 = 200 * MIB;
/// Largest video accepted (through multipart; single uploads stop at S3's 5 GiB).
pub const MAX_VIDEO_BYTES: u64 = 20 * GIB;
/// Largest ZIP archive accepted.
pub const MAX_ARCHIVE_BYTES: u64 = 10 * GIB;

/// The allow-list. Anything not here is refused with 415.
pub const ALLOWED_TYPES: &[AllowedType] = &[
    AllowedType { mime: "image/jpeg", class: TypeClass::Image, max_bytes: MAX_IMAGE_BYTES },
    AllowedType { mime: "image/png", class: TypeClass::Image, max_bytes: MAX_IMAGE_BYTES },
    AllowedType { mime: "image/webp", class: TypeClass::Image, max_bytes: MAX_IMAGE_BYTES },
    AllowedType { mime: "image/gif", class: TypeClass::Image, max_bytes: MAX_IMAGE_BYTES },
    AllowedType { mime: "image/avif", class: TypeClass::Image, max_bytes: MAX_IMAGE_BYTES },
    AllowedType { mime: "image/heic", class: TypeClass::Image, max_bytes: MAX_IMAGE_BYTES },
    AllowedType { mime: "image/heif", class: TypeClass::Image, max_bytes: MAX_IMAGE_BYTES },
    AllowedType { mime: "application/pdf", class: TypeClass::Document, max_bytes: MAX_PDF_BYTES },
    AllowedType { mime: "video/mp4", class: TypeClass::Video, max_bytes: MAX_VIDEO_BYTES },
    AllowedType { mime: "video/quicktime", class: TypeClass::Video, max_bytes: MAX_VIDEO_BYTES },
    AllowedType { mime: "video/webm", class: TypeClass::Video, max_bytes: MAX_VIDEO_BYTES },
    AllowedType { mime: "application/zip", class: TypeClass::Archive, max_bytes: MAX_ARCHIVE_BYTES },
];

/// A content type that is on the allow-list, in its canonical spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentType(&'static AllowedType);

impl ContentType {
    /// Parses a declared `Content-Type`: case and parameters (`; charset=…`) are ignored, the
    /// essence must be on the allow-list.
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        let essence = raw.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if essence.is_empty() {
            return Err(CoreError::invalid("contentType", "must not be empty"));
        }
        ALLOWED_TYPES.iter().find(|t| t.mime == essence).map(ContentType).ok_or(CoreError::TypeNotAllowed(essence))
    }

    pub fn as_str(&self) -> &'static str {
        self.0.mime
    }

    pub fn class(&self) -> TypeClass {
        self.0.class
    }

    pub fn max_bytes(&self) -> u64 {
        self.0.max_bytes
    }

    /// The extension a file of this type is saved under (`jpg`, `pdf`, ...).
    pub fn extension(&self) -> &'static str {
        match self.0.mime {
            "image/jpeg" => "jpg",
            "image/png" => "png",
            "image/webp" => "webp",
            "image/gif" => "gif",
            "image/avif" => "avif",
            "image/heic" => "heic",
            "image/heif" => "heif",
            "application/pdf" => "pdf",
            "video/mp4" => "mp4",
            "video/quicktime" => "mov",
            "video/webm" => "webm",
            _ => "zip",
        }
    }

    /// The allowed type a file name's extension stands for, if any (`photo.JPG` → JPEG).
    pub fn from_file_name(name: &str) -> Option<Self> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        let mime = match ext.as_str() {
            "jpg" | "jpeg" => "image/jpeg",
            "png" => "image/png",
            "webp" => "image/webp",
            "gif" => "image/gif",
            "avif" => "image/avif",
            "heic" => "image/heic",
            "heif" => "image/heif",
            "pdf" => "application/pdf",
            "mp4" | "m4v" => "video/mp4",
            "mov" => "video/quicktime",
            "webm" => "video/webm",
            "zip" => "application/zip",
            _ => return None,
        };
        ContentType::parse(mime).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_an_extension_that_names_it_again() {
        for t in ALLOWED_TYPES {
            let ct = ContentType::parse(t.mime).unwrap();
            assert_eq!(ContentType::from_file_name(&format!("a.{}", ct.extension())), Some(ct), "{}", t.mime);
        }
    }

    #[test]
    fn declared_types_are_normalised_and_checked() {
        assert_eq!(ContentType::parse("IMAGE/JPEG; charset=binary").unwrap().as_str(), "image/jpeg");
        assert_eq!(ContentType::parse("video/quicktime").unwrap().class(), TypeClass::Video);
        assert!(matches!(ContentType::parse("text/html"), Err(CoreError::TypeNotAllowed(t)) if t == "text/html"));
        assert!(matches!(ContentType::parse("image/svg+xml"), Err(CoreError::TypeNotAllowed(_))));
        assert!(matches!(ContentType::parse(" ; x"), Err(CoreError::Invalid { field: "contentType", .. })));
    }

    #[test]
    fn extensions_name_allowed_types_only() {
        assert_eq!(ContentType::from_file_name("IMG_0001.JPG").unwrap().as_str(), "image/jpeg");
        assert_eq!(ContentType::from_file_name("a.b.mov").unwrap().as_str(), "video/quicktime");
        assert!(ContentType::from_file_name("page.html").is_none());
        assert!(ContentType::from_file_name("noext").is_none());
        for t in ALLOWED_TYPES {
            let ext = t.mime.rsplit('/').next().unwrap().replace("quicktime", "mov").replace("jpeg", "jpg");
            assert_eq!(ContentType::from_file_name(&format!("x.{ext}")).map(|c| c.as_str()), Some(t.mime), "{ext}");
        }
    }

    #[test]
    fn every_allowed_type_has_a_limit() {
        for t in ALLOWED_TYPES {
            assert!(t.max_bytes > 0 && t.max_bytes <= MAX_VIDEO_BYTES, "{}", t.mime);
        }
        assert!(
            ContentType::parse("image/png").unwrap().max_bytes() < ContentType::parse("video/mp4").unwrap().max_bytes()
        );
    }
}
