//! Files made to hurt the pipeline (review 22): each is refused by `inspect`, the cheap header
//! check every caller runs before a pixel is decoded, and real files of the same shape still pass.

use image::ImageEncoder;
use matbakh_imaging::{
    DEFAULT_QUALITY, ImageError, ImageLimits, MAX_ICC_BYTES, MAX_VARIANT_HEIGHT, inspect, load, render, widths_for,
};

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

/// A long screenshot of real photos: `photo` scaled to `width` and stacked `times` over, as a
/// JPEG.
fn stacked(photo: &str, width: u32, times: u32) -> Vec<u8> {
    let source = load(&crate::common::corpus(photo), &ImageLimits::default(), width).unwrap().pixels;
    let one = source.resize(width, source.height * width / source.width).unwrap();
    assert_eq!(one.channels, 3);
    let pixels = one.data.repeat(times as usize);
    let image = turbojpeg::Image {
        pixels: pixels.as_slice(),
        width: width as usize,
        pitch: 3 * width as usize,
        height: (one.height * times) as usize,
        format: turbojpeg::PixelFormat::RGB,
    };
    turbojpeg::compress(image, 80, turbojpeg::Subsamp::Sub2x2).unwrap().to_vec()
}

/// Variants were limited in width only: a 1920 x 17,000 image (under the pixel limit) had every
/// width encoded as AVIF, 79 MP in all (a photo of as many pixels needs about 4), and then
/// failed anyway, WebP taking no side over 16,383 px. A variant is now no taller than
/// `MAX_VARIANT_HEIGHT`: the widths whose height fits, or one as wide as fits.
#[test]
fn a_tall_image_gets_variants_no_taller_than_the_limit() {
    let tall = stacked("photos/phone-13mp.jpg", 1920, 7);
    let probe = inspect(&tall, &ImageLimits::default()).unwrap();
    assert!(probe.height > 16_383, "{} px: taller than WebP takes", probe.height);
    let rendered = render(&tall, &ImageLimits::default(), &DEFAULT_QUALITY).unwrap();
    assert!(!rendered.variants.is_empty());
    for v in &rendered.variants {
        assert!(v.height <= MAX_VARIANT_HEIGHT, "{}x{} {:?}", v.width, v.height, v.format);
    }
    assert_eq!(widths_for(1920, probe.height), [320]);
    assert_eq!(widths_for(1920, 1080), [320, 640, 1280, 1920], "a photo keeps every width");
    assert_eq!(widths_for(100, 100_000), [4], "one variant, as wide as fits");
}
