//! The variant pipeline over photos, for `scripts/bench images` (one process per run, like
//! the sharp side):
//!
//!     bench_variants GROUP RUNS AVIF_QUALITY OUT_DIR FILE...
//!
//! GROUP is `webp-jpeg`, `avif` or `all`. For each file: RUNS renders of every width in that group
//! (decode included), then one JSON line with the median wall milliseconds. The 640 px AVIF of
//! each file is written to OUT_DIR for the SSIM comparison. A last line gives the process's CPU
//! seconds.
//!
//!     bench_variants calibrate - AVIF_QUALITY OUT_DIR FILE...
//!
//! only writes each file's 640 px AVIF at that quality, and the pixels it encoded as PNG (the
//! SSIM calibration measures each encoder against its own input).

use std::time::Instant;

use matbakh_imaging::{DEFAULT_QUALITY, ImageLimits, OutputFormat, Quality, render_formats};

fn cpu_seconds() -> f64 {
    // utime + stime from /proc/self/stat, in clock ticks (100 per second on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: bench_variants webp-jpeg|avif RUNS AVIF_QUALITY OUT_DIR FILE...");
        std::process::exit(2);
    }
    if args[1] == "calibrate" {
        let quality = Quality { avif: args[3].parse().expect("AVIF_QUALITY is a number"), ..DEFAULT_QUALITY };
        for path in &args[5..] {
            let bytes = std::fs::read(path).expect("readable file");
            let source = matbakh_imaging::load(&bytes, &ImageLimits::default(), 640).expect("loads");
            let h = (u64::from(source.height) * 640 + u64::from(source.width) / 2) / u64::from(source.width);
            let small = source.pixels.resize(640, h as u32).expect("resizes");
            let avif = matbakh_imaging::encode::encode(&small, OutputFormat::Avif, &quality).expect("encodes");
            let name = std::path::Path::new(path).file_name().unwrap_or_default().to_string_lossy().into_owned();
            let dir = std::path::Path::new(&args[4]);
            std::fs::write(dir.join(format!("{name}.640.avif")), avif).expect("writes");
            // The pixels before encoding: what the AVIF is measured against.
            let kind = if small.has_alpha() { image::ExtendedColorType::Rgba8 } else { image::ExtendedColorType::Rgb8 };
            image::save_buffer_with_format(
                dir.join(format!("{name}.640.ref.png")),
                &small.data,
                small.width,
                small.height,
                kind,
                image::ImageFormat::Png,
            )
            .expect("writes the reference");
        }
        return;
    }
    let formats: &[OutputFormat] = match args[1].as_str() {
        "webp-jpeg" => &[OutputFormat::WebP, OutputFormat::Jpeg],
        "avif" => &[OutputFormat::Avif],
        "all" => &OutputFormat::ALL,
        other => {
            eprintln!("unknown group {other}");
            std::process::exit(2);
        }
    };
    let runs: usize = args[2].parse().expect("RUNS is a number");
    let quality = Quality { avif: args[3].parse().expect("AVIF_QUALITY is a number"), ..DEFAULT_QUALITY };
    let out = std::path::PathBuf::from(&args[4]);
    for path in &args[5..] {
        let bytes = std::fs::read(path).expect("readable file");
        let mut times = Vec::with_capacity(runs);
        let mut last = None;
        for _ in 0..runs {
            let started = Instant::now();
            let rendered = render_formats(&bytes, &ImageLimits::default(), &quality, formats).expect("renders");
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            last = Some(rendered);
        }
        times.sort_by(f64::total_cmp);
        let name = std::path::Path::new(path).file_name().unwrap_or_default().to_string_lossy().into_owned();
        if let Some(r) = last
            && let Some(v) = r.variants.iter().find(|v| v.width == 640 && v.format == OutputFormat::Avif)
        {
            std::fs::write(out.join(format!("{name}.640.avif")), &v.bytes).expect("writable out dir");
        }
        println!("{{\"file\": \"{name}\", \"median_ms\": {:.1}, \"runs\": {runs}}}", times[times.len() / 2]);
    }
    println!("{{\"cpu_seconds\": {:.2}}}", cpu_seconds());
}
