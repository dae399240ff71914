//! The public copy of an original keeps no position in any format that can carry one
//! (`core::location::strip_gps`, what publishing writes): a real photo written as PNG, WebP and
//! AVIF with the phone photo's own EXIF block (its GPS directory with it) loses the position
//! and keeps the rest as kamadak-exif reads it, and decodes to the same pixels; a HEIC libheif
//! wrote (what iPhones upload) loses it too.

use matbakh_core::location::{Stripped, strip_gps};
use matbakh_imaging::encode::encode_keeping;
use matbakh_imaging::{DEFAULT_QUALITY, ImageLimits, OutputFormat, load};

/// The phone photo's EXIF block, as its camera wrote it (the TIFF structure of its APP1).
fn phone_exif() -> Vec<u8> {
    let jpeg = crate::common::corpus("photos/phone-13mp.jpg");
    exif::get_exif_attr_from_jpeg(&mut std::io::Cursor::new(&jpeg)).unwrap()
}

/// The public copy of a JPEG original keeps no location (`core::location`, what publishing
/// writes): the phone photo's GPS tags are gone, its orientation, camera and time stay, and it
/// decodes to the same pixels.
/// The public copy of `original` (of `kind`), checked: it had a position (and a camera), it has
/// none, its orientation, camera and time are as before, and its length too.
fn public_copy(kind: &str, original: &[u8]) -> Vec<u8> {
    let before = matbakh_imaging::exif::read(original);
    assert!(before.has_gps && before.camera_make.is_some(), "{kind}: the photo's EXIF is there: {before:?}");
    let mut public = original.to_vec();
    assert_eq!(strip_gps(kind, &mut public), Stripped::Removed, "{kind}");
    let after = matbakh_imaging::exif::read(&public);
    assert!(!after.has_gps && after.gps.is_none(), "{kind}: {after:?}");
    assert_eq!(
        (after.orientation, &after.camera_make, &after.camera_model, &after.taken_at),
        (before.orientation, &before.camera_make, &before.camera_model, &before.taken_at),
        "{kind}"
    );
    assert_eq!(public.len(), original.len(), "{kind}");
    assert_eq!(strip_gps(kind, &mut public.clone()), Stripped::Nothing, "{kind}: nothing left");
    public
}

#[test]
fn a_photos_position_is_taken_out_of_its_public_copy_and_nothing_else() {
    let original = crate::common::corpus("photos/phone-13mp.jpg");
    let public = public_copy("image/jpeg", &original);
    let pixels = |bytes: &[u8]| load(bytes, &ImageLimits::default(), 320).unwrap().pixels.data;
    assert!(pixels(&public) == pixels(&original), "the same image");
    // The head alone (what publishing reads first) tells that the file has a position.
    let mut head = original[..256 << 10].to_vec();
    assert_eq!(strip_gps("image/jpeg", &mut head), Stripped::Removed);
}

#[test]
fn a_photos_position_is_taken_out_of_png_webp_and_avif_originals_and_nothing_else() {
    let exif = phone_exif();
    let photo = load(&crate::common::corpus("photos/ladybird.jpg"), &ImageLimits::default(), 480)
        .unwrap()
        .resized_to(480)
        .unwrap();
    for format in [OutputFormat::Png, OutputFormat::WebP, OutputFormat::Avif] {
        let original = encode_keeping(&photo, format, &DEFAULT_QUALITY, None, Some(exif.clone())).unwrap();
        let public = public_copy(format.content_type(), &original);
        let pixels = |bytes: &[u8]| load(bytes, &ImageLimits::default(), 480).unwrap().pixels.data;
        assert!(pixels(&public) == pixels(&original), "{format:?}: the same image");

        // Without EXIF: nothing to take out, the bytes stay as they are.
        let plain = encode_keeping(&photo, format, &DEFAULT_QUALITY, None, None).unwrap();
        let mut copy = plain.clone();
        assert_eq!(strip_gps(format.content_type(), &mut copy), Stripped::Nothing, "{format:?}");
        assert!(copy == plain, "{format:?}");
    }
}

/// A HEIC from libheif (`tests/fixtures/README.md`): its `Exif` item, in `mdat` after the image,
/// loses the position; the camera and time stay, and no byte outside the EXIF block changes.
#[test]
fn a_heic_photos_position_is_taken_out_of_its_exif_item() {
    let original = crate::common::fixture("phone-gps.heic");
    let public = public_copy("image/heic", &original);
    let changed: Vec<usize> = (0..original.len()).filter(|&i| public[i] != original[i]).collect();
    let exif = phone_exif();
    let at =
        original.windows(exif.len().min(64)).position(|w| w == &exif[..64]).expect("the EXIF block is in the file");
    assert!(changed.iter().all(|&i| (at..at + exif.len()).contains(&i)), "only the EXIF block changes");
}
