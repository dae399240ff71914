//! Files made to hurt the pipeline (review 22): each is refused by `inspect`, the cheap header
//! check every caller runs before a pixel is decoded, and real files of the same shape still pass.

use image::ImageEncoder;
use matbakh_imaging::{
    DEFAULT_QUALITY, ImageError, ImageLimits, MAX_ICC_BYTES, MAX_VARIANT_HEIGHT, Pixels, inspect, load, render,
    widths_for,
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

/// RGB pixels as a JPEG.
fn jpeg(p: &Pixels) -> Vec<u8> {
    assert_eq!(p.channels, 3);
    let image = turbojpeg::Image {
        pixels: p.data.as_slice(),
        width: p.width as usize,
        pitch: 3 * p.width as usize,
        height: p.height as usize,
        format: turbojpeg::PixelFormat::RGB,
    };
    turbojpeg::compress(image, 80, turbojpeg::Subsamp::Sub2x2).unwrap().to_vec()
}

/// The corpus `photo` scaled (or stretched) to `width` x `height`.
fn photo(photo: &str, width: u32, height: u32) -> Pixels {
    let source = load(&crate::common::corpus(photo), &ImageLimits::default(), width).unwrap().pixels;
    source.resize(width, height).unwrap()
}

/// A long screenshot of real photos: `photo` scaled to `width` and stacked `times` over, as a
/// JPEG.
fn stacked(name: &str, width: u32, times: u32) -> Vec<u8> {
    let source = load(&crate::common::corpus(name), &ImageLimits::default(), width).unwrap().pixels;
    let one = photo(name, width, source.height * width / source.width);
    jpeg(&Pixels { height: one.height * times, data: one.data.repeat(times as usize), ..one })
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

/// A RIFF chunk: its kind, length and data, padded to an even length.
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = kind.to_vec();
    c.extend((data.len() as u32).to_le_bytes());
    c.extend(data);
    if data.len() % 2 == 1 {
        c.push(0);
    }
    c
}

fn le24(n: u32) -> [u8; 3] {
    let b = n.to_le_bytes();
    [b[0], b[1], b[2]]
}

/// A WebP file of `chunks`.
fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
    let body = chunks.concat();
    let mut out = b"RIFF".to_vec();
    out.extend((body.len() as u32 + 4).to_le_bytes());
    out.extend(b"WEBP");
    out.extend(body);
    out
}

/// The extended format's header chunk: `flags` and a `width` x `height` canvas.
fn vp8x(flags: u8, width: u32, height: u32) -> Vec<u8> {
    let mut d = vec![flags, 0, 0, 0];
    d.extend(le24(width - 1));
    d.extend(le24(height - 1));
    chunk(b"VP8X", &d)
}

/// A real photo (scaled to `width` px) as a lossy WebP bitstream: its `VP8 ` chunk and size.
fn photo_bitstream(width: u32) -> (Vec<u8>, u32, u32) {
    let source = load(&crate::common::corpus("photos/panasonic-orientation6.jpg"), &ImageLimits::default(), width)
        .unwrap()
        .pixels;
    let p = source.resize(width, source.height * width / source.width).unwrap();
    let webp = matbakh_imaging::encode::encode(&p, matbakh_imaging::OutputFormat::WebP, &DEFAULT_QUALITY).unwrap();
    assert_eq!(&webp[12..16], b"VP8 ", "a simple-format file");
    (webp[12..].to_vec(), p.width, p.height)
}

/// The extended format's canvas was the size checked, and the decoder allocated what the
/// bitstream inside said (up to 16,383 px a side: 400 MB of planes for a file declaring one
/// pixel). A bitstream whose size is not its canvas's (or its frame's) is refused.
#[test]
fn a_webp_whose_bitstream_is_larger_than_its_canvas_is_refused() {
    let (photo, w, h) = photo_bitstream(200);
    let honest = riff(&[vp8x(0, w, h), photo.clone()]);
    assert_eq!(inspect(&honest, &ImageLimits::default()).unwrap().width, w);
    let lying = riff(&[vp8x(0, 1, 1), photo]);
    let e = inspect(&lying, &ImageLimits::default()).unwrap_err();
    assert!(matches!(&e, ImageError::Malformed(why) if why.contains("canvas")), "{e:?}");
}

/// Animation frames of a WebP were never counted (the walk read a chunk's name as its
/// length), so `MAX_ANIMATION_FRAMES` never applied to WebP, nor was the frame count recorded.
#[test]
fn an_animated_webps_frames_are_counted() {
    let (photo, w, h) = photo_bitstream(64);
    let frame = |x: u32| {
        let mut d = Vec::new();
        d.extend(le24(x / 2));
        d.extend(le24(0));
        d.extend(le24(w - 1));
        d.extend(le24(h - 1));
        d.extend(le24(100));
        d.push(0);
        d.extend(&photo);
        chunk(b"ANMF", &d)
    };
    let anim = chunk(b"ANIM", &[0, 0, 0, 0, 0, 0]);
    let three = riff(&[vp8x(0x02, 3 * w, h), anim, frame(0), frame(w), frame(2 * w)]);
    let limits = ImageLimits::default();
    assert_eq!(inspect(&three, &limits).unwrap().frames, 3);
    let e = inspect(&three, &ImageLimits { max_frames: 2, ..limits }).unwrap_err();
    assert!(matches!(e, ImageError::TooManyFrames { frames: 3, limit: 2 }), "{e:?}");
}

/// A crop's offset and height were scaled by the decode's horizontal ratio: a JPEG decoded at
/// 1/8 scale rounds its width up (9 px to 2, 8,000 to 1,000), so a crop from the bottom of a
/// narrow, tall image was placed past the last row and the transformer panicked (500), or cut
/// the wrong rows. Each axis now scales by its own ratio.
#[test]
fn a_crop_of_a_narrow_tall_image_cuts_the_rows_asked_for() {
    use matbakh_core::imgproxy::{Format as Out, Options, OutputChoice, Presets};
    // A real photo's rows, each one colour across (so the decode's uneven columns do not matter).
    let column = photo("photos/phone-13mp.jpg", 1, 8000);
    let rows: Vec<u8> = column.data.chunks(3).flat_map(|rgb| rgb.repeat(9)).collect();
    let bytes = jpeg(&Pixels { width: 9, data: rows, ..column });
    let mut o = Options::default();
    let presets = Presets::parse("").unwrap();
    for segment in ["c:0:100:so", "h:1"] {
        o.apply(segment, &presets).unwrap();
    }
    let pipeline = matbakh_imaging::transform::Pipeline {
        limits: &ImageLimits::default(),
        max_side: 4096,
        quality: &DEFAULT_QUALITY,
        watermark: None,
    };
    let t = matbakh_imaging::transform::run(&bytes, &o, OutputChoice::Explicit(Out::Png), &pipeline).unwrap();
    assert_eq!(t.height, 1);
    // Its colour is the bottom 100 rows' mean.
    let got = image::load_from_memory(&t.bytes).unwrap().to_rgb8();
    let full = load(&bytes, &ImageLimits::default(), 9).unwrap().pixels;
    assert_eq!((full.width, full.height), (9, 8000));
    let bottom = &full.data[(7900 * 9 * 3) as usize..];
    for c in 0..3 {
        let mean = bottom.iter().skip(c).step_by(3).map(|&v| f64::from(v)).sum::<f64>() / (bottom.len() / 3) as f64;
        let mean_got = got.pixels().map(|p| f64::from(p[c])).sum::<f64>() / f64::from(got.width());
        assert!((mean - mean_got).abs() < 16.0, "channel {c}: {mean_got:.0}, the bottom rows {mean:.0}");
    }
}
