//! EXIF: the orientation the pipeline must apply, and the summary the metadata keeps.
//!
//! Parsed with `kamadak-exif`, which reads the orientation whether it is stored as a 16-bit or
//! a 32-bit value (`panasonic-orientation6.jpg` uses the latter; some readers miss it). The GPS
//! position is read so that a deployment that opts in can keep it; variants never carry any
//! metadata at all, transform results only the copyright (imgproxy's `keep_copyright`).

use exif::{In, Tag, Value};

/// Where a photo was taken, in decimal degrees (WGS 84; north and east positive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpsPosition {
    pub latitude: f64,
    pub longitude: f64,
}

/// What a photo's EXIF says that the platform may keep.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExifSummary {
    /// 1 to 8 as EXIF defines it; 1 when absent or invalid.
    pub orientation: u8,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    pub lens: Option<String>,
    /// `DateTimeOriginal` as written (`2019:07:14 16:03:12`), local time of the camera.
    pub taken_at: Option<String>,
    /// Whether the file carries GPS tags.
    pub has_gps: bool,
    /// The position those tags give, when they are complete and in range. Stored only where the
    /// deployment allows it (the indexer's `STORE_GPS_LOCATION`), never copied into a variant.
    pub gps: Option<GpsPosition>,
    /// The `Copyright` tag: what imgproxy's `keep_copyright` carries into a result.
    pub copyright: Option<String>,
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
        gps: gps(&exif),
        copyright: text(&exif, Tag::Copyright),
    }
}

/// Degrees, minutes, seconds (three rationals) and the hemisphere letter that makes it negative.
fn coordinate(exif: &exif::Exif, value: Tag, hemisphere: Tag, negative: u8, limit: f64) -> Option<f64> {
    let Value::Rational(dms) = &exif.get_field(value, In::PRIMARY)?.value else { return None };
    if dms.len() != 3 || dms.iter().any(|r| r.denom == 0) {
        return None;
    }
    let degrees = dms[0].to_f64() + dms[1].to_f64() / 60.0 + dms[2].to_f64() / 3600.0;
    let sign = match &exif.get_field(hemisphere, In::PRIMARY)?.value {
        Value::Ascii(parts) => match parts.first()?.first()? {
            c if *c == negative => -1.0,
            _ => 1.0,
        },
        _ => return None,
    };
    (degrees <= limit).then_some(sign * degrees)
}

fn gps(exif: &exif::Exif) -> Option<GpsPosition> {
    Some(GpsPosition {
        latitude: coordinate(exif, Tag::GPSLatitude, Tag::GPSLatitudeRef, b'S', 90.0)?,
        longitude: coordinate(exif, Tag::GPSLongitude, Tag::GPSLongitudeRef, b'W', 180.0)?,
    })
}

/// A minimal EXIF block (TIFF, big-endian) holding only `copyright`: what a result keeps of its
/// source's metadata under `kcr` (imgproxy's `keep_copyright`). `None` if it cannot be written.
pub fn copyright_block(copyright: &str) -> Option<Vec<u8>> {
    let field = exif::Field {
        tag: Tag::Copyright,
        ifd_num: In::PRIMARY,
        value: Value::Ascii(vec![copyright.as_bytes().to_vec()]),
    };
    let mut writer = exif::experimental::Writer::new();
    writer.push_field(&field);
    let mut out = std::io::Cursor::new(Vec::new());
    writer.write(&mut out, false).ok()?;
    Some(out.into_inner())
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
