//! Files made to hurt the pipeline (review 22): each is refused by `inspect`, the cheap header
//! check every caller runs before a pixel is decoded, and real files of the same shape still pass.

use image::ImageEncoder;
use matbakh_imaging::{ImageError, ImageLimits, MAX_ICC_BYTES, inspect, load};

/// A 1x1 RGB PNG carrying `icc` as its colour profile (the encoder compresses it).
fn png_with_profile(icc: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = image::codecs::png::PngEncoder::new(&mut out);
    encoder.set_icc_profile(icc).unwrap();
    encoder.write_image(&[200, 100, 50], 1, 1, image::ExtendedColorType::Rgb8).unwrap();
    out
}

/// A PNG's colour profile (iCCP) was inflated with no bound before any limit applied: a few
/// MB of zeros inflating to gigabytes killed the thumbnailer (its whole batch of messages with
/// it, on every delivery) and held the transformer's memory. A profile over the largest one
/// the colour code takes is refused now, before the decoder sees it.
#[test]
fn a_png_whose_colour_profile_inflates_past_the_limit_is_refused() {
    let bomb = png_with_profile(vec![0; 4 * MAX_ICC_BYTES]);
    assert!(bomb.len() < 100 << 10, "{} bytes: a small file", bomb.len());
    let e = inspect(&bomb, &ImageLimits::default()).unwrap_err();
    assert!(matches!(&e, ImageError::Malformed(why) if why.contains("colour profile")), "{e:?}");

    // A profile of a real size still goes through, and is read.
    let fine = png_with_profile(vec![7; 3_000]);
    assert!(inspect(&fine, &ImageLimits::default()).is_ok());
    assert!(load(&fine, &ImageLimits::default(), 1).is_ok());
}
