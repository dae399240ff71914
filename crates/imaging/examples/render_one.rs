//! Times each stage of the pipeline for one file: `cargo run -p matbakh-imaging --example render_one FILE`.

use std::time::Instant;

use matbakh_imaging::{DEFAULT_QUALITY, ImageLimits, OutputFormat, encode, load, widths_for};

fn main() {
    let path = std::env::args().nth(1).expect("usage: render_one FILE");
    let bytes = std::fs::read(&path).expect("readable file");
    let t = Instant::now();
    let source = match load(&bytes, &ImageLimits::default(), 1920) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    println!("decode {:?} -> {:?}: {:?}", (source.width, source.height), source.pixels, t.elapsed());
    for w in widths_for(source.width, source.height) {
        let h = (u64::from(source.height) * u64::from(w) / u64::from(source.width)) as u32;
        let t = Instant::now();
        let sized = source.pixels.resize(w, h).expect("resize");
        let resize = t.elapsed();
        let mut line = format!("{w}x{h}: resize {resize:?}");
        for f in OutputFormat::ALL {
            let t = Instant::now();
            let out = encode::encode(&sized, f, &DEFAULT_QUALITY).expect("encode");
            line += &format!(", {f:?} {:?} ({} B)", t.elapsed(), out.len());
        }
        println!("{line}");
    }
}
