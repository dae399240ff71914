//! EXIF: the orientation the pipeline must apply, and the summary the metadata keeps.
//!
//! Parsed with `kamadak-exif`, which reads the orientation whether it is stored as a 16-bit or
//! a 32-bit value (`panasonic-orientation6.jpg` uses the latter; some readers miss it). GPS is
//! only ever reported as present, never copied: variants carry no metadata at all.

use exif::{In, Tag, Value};

/// What a photo's EXIF says that the platform keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExifSummary {
    /// 1 to 8 as EXIF defines it; 1 when absent or invalid.
    pub orientation: u8,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    pub lens: Option<String>,
    /// `DateTimeOriginal` as written (`2019:07:14 16:03:12`), local time of the camera.
    pub taken_at: Option<String>,
    /// Whether the file carries GPS coordinates (they are never stored or copied).
    pub has_gps: bool,
}

fn text(exif: &exif::Exif, tag: Tag) -> Option<String> {
    match &exif.get_field(tag, In::PRIMARY)?.value {
        Value::Ascii(parts) => {
            let s = String::from_utf8_lossy(parts.first()?)
                .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_owned();
            (!s.is_empty()).then(|| s.chars().take(128).collect())
        }
        _ => None,
    }
}

/// Reads the EXIF of a JPEG, PNG or WebP file; a file without (or with broken) EXIF gives the
/// defaults: a broken tag must not fail an otherwise good photo.
pub fn read(bytes: &[u8]) -> ExifSummary {
    let Ok(exif) = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(bytes)) else {
        return ExifSummary { orientation: 1, ..ExifSummary::default() };
    };
    let orientation = exif
        .get_field(Tag::Orientation, In::PRIMARY)
        .and_then(|f| match &f.value {
            // Some cameras write it as a signed 32-bit value (`panasonic-orientation6.jpg`).
            Value::SLong(v) => v.first().and_then(|o| u32::try_from(*o).ok()),
            other => other.get_uint(0),
        })
        .filter(|o| (1..=8).contains(o))
        .unwrap_or(1) as u8;
    ExifSummary {
        orientation,
        camera_make: text(&exif, Tag::Make),
        camera_model: text(&exif, Tag::Model),
        lens: text(&exif, Tag::LensModel),
        taken_at: text(&exif, Tag::DateTimeOriginal),
        has_gps: exif.fields().any(|f| f.ifd_num == In::PRIMARY && f.tag.context() == exif::Context::Gps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_exif_means_upright_and_nothing_known() {
        let s = read(b"\xFF\xD8\xFF\xD9");
        assert_eq!(s, ExifSummary { orientation: 1, ..ExifSummary::default() });
        assert_eq!(read(b"").orientation, 1);
    }
}
