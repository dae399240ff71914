//! The pipeline on the real corpus (`../shared/corpus`): photos become upright, metadata-free
//! variants of the right sizes; hostile files are refused with a reason before decoding.

use crate::common;
use common::corpus;
use matbakh_imaging::{
    DEFAULT_QUALITY, Disposition, ImageError, ImageLimits, OutputFormat, Quality, Rendered, exif, inspect, load, render,
};

/// Width and height a variant really has, read back from its bytes (our own header reader,
/// which knows every output format).
fn dimensions(v: &matbakh_imaging::Variant) -> (u32, u32) {
    let p = inspect(&v.bytes, &ImageLimits::default()).unwrap();
    (p.width, p.height)
}

/// The default settings but rav1e's fastest speed: these tests check shapes and metadata, not
/// compression (the benchmark measures that), and debug builds are slow enough.
const FAST: Quality = Quality { avif_speed: 10, ..DEFAULT_QUALITY };

fn rendered(rel: &str) -> Rendered {
    render(&corpus(rel), &ImageLimits::default(), &FAST).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn assert_variants(r: &Rendered, widths: &[u32]) {
    let made: Vec<u32> = r.variants.iter().map(|v| v.width).collect();
    let want: Vec<u32> = widths.iter().flat_map(|w| [*w; 3]).collect();
    assert_eq!(made, want);
    for v in &r.variants {
        let expected_h =
            ((u64::from(r.height) * u64::from(v.width) + u64::from(r.width) / 2) / u64::from(r.width)) as u32;
        assert_eq!(dimensions(v), (v.width, expected_h), "{v:?}");
        // No metadata at all: no EXIF block, so no GPS, camera or date.
        assert_eq!(exif::read(&v.bytes), exif::ExifSummary { orientation: 1, ..Default::default() }, "{v:?}");
        assert!(!v.bytes.windows(4).any(|w| w == b"Exif"), "{v:?} carries EXIF");
    }
}

#[test]
fn every_photo_becomes_upright_variants_without_metadata() {
    let sony = rendered("photos/sony-18mp-progressive.jpg");
    assert_eq!((sony.width, sony.height), (5640, 3172));
    assert_variants(&sony, &[320, 640, 1280, 1920]);

    let phone = rendered("photos/phone-13mp.jpg");
    assert!(phone.exif.has_gps, "the source carries GPS (else this test proves nothing)");
    assert_variants(&phone, &[320, 640, 1280, 1920]);

    for rel in ["photos/ladybird.jpg", "photos/olympus-4mp-icc.jpg"] {
        let r = rendered(rel);
        assert_eq!((r.width, r.height), (2560, 1600), "{rel}");
        assert_variants(&r, &[320, 640, 1280, 1920]);
        assert!(!r.placeholder.is_empty());
    }
    // 1680 wide: no 1920 variant (never upscaled).
    let dune = rendered("photos/dune.jpg");
    assert_eq!((dune.width, dune.height), (1680, 1050));
    assert_variants(&dune, &[320, 640, 1280]);
}

#[test]
fn exif_orientation_6_in_a_32_bit_tag_turns_the_photo_portrait() {
    let bytes = corpus("photos/panasonic-orientation6.jpg");
    let stored = inspect(&bytes, &ImageLimits::default()).unwrap();
    assert_eq!((stored.width, stored.height), (640, 428));
    let r = rendered("photos/panasonic-orientation6.jpg");
    assert_eq!(r.exif.orientation, 6);
    assert_eq!((r.width, r.height), (428, 640));
    assert_variants(&r, &[320]);
    assert_eq!(dimensions(&r.variants[0]), (320, 479));
}

#[test]
fn icc_profiles_are_read_and_converted() {
    for rel in ["photos/olympus-4mp-icc.jpg", "other/icc-profile.jpeg"] {
        let p = inspect(&corpus(rel), &ImageLimits::default()).unwrap();
        assert!(p.icc.as_ref().is_some_and(|icc| icc.len() > 128), "{rel}: no ICC profile found");
        rendered(rel);
    }
    rendered("other/icc-profile.png");
}

#[test]
fn transparency_survives_in_webp_and_avif_and_is_flattened_in_jpeg() {
    let r = rendered("other/alpha.png");
    assert!(r.has_alpha);
    assert_variants(&r, &[320, 640, 1280, 1920]);
    let webp = r.variants.iter().find(|v| v.format == OutputFormat::WebP).unwrap();
    let decoded = image::load_from_memory(&webp.bytes).unwrap();
    assert!(decoded.color().has_alpha());
    assert!(decoded.to_rgba8().pixels().any(|p| p[3] < 255), "the WebP lost its transparency");
}

#[test]
fn an_animation_is_counted_and_its_first_frame_used() {
    let r = rendered("other/anim-45-frames.gif");
    assert_eq!((r.frames, r.width, r.height), (45, 660, 666));
    assert_variants(&r, &[320, 640]);
    let few = ImageLimits { max_frames: 10, ..ImageLimits::default() };
    let err = inspect(&corpus("other/anim-45-frames.gif"), &few).unwrap_err();
    assert_eq!(err, ImageError::TooManyFrames { frames: 45, limit: 10 });
}

#[test]
fn hostile_files_are_refused_with_a_reason_before_decoding() {
    let limits = ImageLimits::default();
    let cases = [
        ("hostile/bomb-header-64250x64250.jpg", Disposition::Quarantine, "64250x64250"),
        ("hostile/bomb-22500x33300-progressive.jpg", Disposition::Quarantine, "22500x33300"),
        ("hostile/cve-2015-4491.bmp", Disposition::Quarantine, "BMP image"),
        ("hostile/truncated.jpg", Disposition::Fail, "truncated"),
    ];
    for (rel, disposition, reason) in cases {
        let bytes = corpus(rel);
        // The header check alone refuses it: no decoder ever sees these pixels.
        let err = inspect(&bytes, &limits).unwrap_err();
        assert_eq!(err.disposition(), disposition, "{rel}: {err}");
        assert!(err.to_string().contains(reason), "{rel}: {err}");
        assert_eq!(render(&bytes, &limits, &FAST).unwrap_err(), err, "{rel}");
    }
}

#[test]
fn jpeg_is_decoded_at_the_smallest_scale_that_covers_the_widest_variant() {
    let bytes = corpus("photos/sony-18mp-progressive.jpg");
    let source = load(&bytes, &ImageLimits::default(), 1920).unwrap();
    // 5640 wide: 3/8 gives 2115 >= 1920; 2/8 would give 1410.
    assert_eq!((source.pixels.width, source.pixels.height), (2115, 1190));
    assert_eq!((source.width, source.height), (5640, 3172));
}

/// The transform converts a profile to sRGB after cutting and resizing (fewer pixels): the colours
/// match the convert-then-resize pipeline.
#[test]
fn transforms_convert_colour_profiles_after_resizing() {
    use matbakh_core::imgproxy::{Format as Out, Options, OutputChoice};
    let mean_diff = |a: &[u8], b: &[u8]| {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>() / a.len() as f64
    };
    for rel in ["photos/olympus-4mp-icc.jpg", "other/icc-profile.jpeg"] {
        let bytes = corpus(rel);
        let o = Options { width: 200, ..Options::default() };
        let pipeline = matbakh_imaging::transform::Pipeline {
            limits: &ImageLimits::default(),
            max_side: 4096,
            quality: &FAST,
            watermark: None,
        };
        let t = matbakh_imaging::transform::run(&bytes, &o, OutputChoice::Explicit(Out::Png), &pipeline).unwrap();
        let got = image::load_from_memory(&t.bytes).unwrap().to_rgb8().into_raw();
        // Never enlarged: a 48 px source stays 48 px.
        let converted = load(&bytes, &ImageLimits::default(), 200).unwrap().resized_to(t.width).unwrap();
        assert_eq!((t.width, t.height), (converted.width, converted.height), "{rel}");
        let near = mean_diff(&got, &converted.data);
        // Neither corpus profile moves a pixel (littlecms agrees: mean difference 0.0), so this
        // cannot yet show that converting matters; a wide-gamut (Display P3) photo would.
        assert!(near < 1.5, "{rel}: {near:.2} from the converted pixels");
    }
}
