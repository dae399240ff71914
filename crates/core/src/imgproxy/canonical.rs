//! The canonical form of [`Options`]: one text per distinct result, so equivalent URLs (option
//! order, aliases, defaults spelled out or not, options that cannot change this result) name
//! one stored result. The CloudFront Function in `template.yaml` computes the same
//! (`tests/imgproxy/result-keys.json`; DECISIONS 18, 29).

use super::options::num;
use super::{Options, ResizeType};

/// `s` as a result key segment holds it: letters, digits and `-_.~` as they are, the rest
/// percent-encoded (the set the edge encodes path segments with).
fn key_text(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, crate::cdn::SEGMENT_ESCAPES).collect()
}

impl Options {
    /// The options as the segments of a URL the platform signs (`rt:fill/w:300/h:200`): the
    /// canonical ones, then `exp`; empty when nothing is asked.
    pub fn path(&self) -> String {
        let canonical = self.canonical();
        let mut segments: Vec<String> =
            if canonical == "_" { Vec::new() } else { canonical.split(',').map(str::to_owned).collect() };
        if let Some(at) = self.expires {
            segments.push(format!("exp:{at}"));
        }
        segments.join("/")
    }

    /// Fixed order (the pipeline's), short names, `,` between options (`_` when nothing is
    /// asked); left out: defaults and what cannot change the result (`exp`, a resizing type or
    /// a crop gravity without a size to cut to, `ex` without a size, `exar` without both,
    /// `fq` under `q`). `raw` keeps only what still applies to the untouched source (the
    /// name, the attachment flag, the cache buster). The output format is not part of it (it
    /// is the result key's extension).
    pub fn canonical(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.raw {
            parts.push("raw:1".into());
        } else {
            self.geometry(&mut parts);
            self.finish(&mut parts);
        }
        if let Some(name) = &self.filename {
            parts.push(format!("fn:{}", key_text(name)));
        }
        if self.return_attachment {
            parts.push("att:1".into());
        }
        if !self.cachebuster.is_empty() {
            parts.push(format!("cb:{}", key_text(&self.cachebuster)));
        }
        if parts.is_empty() { "_".into() } else { parts.join(",") }
    }

    /// Trim, crop, size, rotation, padding: where the pixels come from and how many there are.
    fn geometry(&self, parts: &mut Vec<String>) {
        if let Some(t) = &self.trim {
            let color = t.color.map(|c| c.canonical()).unwrap_or_default();
            parts.push(format!("t:{}:{color}:{}:{}", num(t.threshold), u8::from(t.equal_hor), u8::from(t.equal_ver)));
        }
        if let Some(c) = &self.crop
            && (c.width > 0.0 || c.height > 0.0)
        {
            let g = c.gravity.unwrap_or(self.gravity).canonical();
            parts.push(format!("c:{}:{}:{g}", num(c.width), num(c.height)));
        }
        let sized = self.width > 0 || self.height > 0;
        if sized && self.resizing_type != ResizeType::Fit {
            parts.push(format!("rt:{}", self.resizing_type.name()));
        }
        if self.width > 0 {
            parts.push(format!("w:{}", self.width));
        }
        if self.height > 0 {
            parts.push(format!("h:{}", self.height));
        }
        if self.min_width > 0 {
            parts.push(format!("mw:{}", self.min_width));
        }
        if self.min_height > 0 {
            parts.push(format!("mh:{}", self.min_height));
        }
        if self.zoom != (1.0, 1.0) {
            parts.push(format!("z:{}:{}", num(self.zoom.0), num(self.zoom.1)));
        }
        if self.enlarge {
            parts.push("el:1".into());
        }
        if let Some(g) = self.extend.filter(|_| sized) {
            parts.push(format!("ex:1:{}", g.canonical()));
        }
        if let Some(g) = self.extend_aspect_ratio.filter(|_| self.width > 0 && self.height > 0) {
            parts.push(format!("exar:1:{}", g.canonical()));
        }
        if self.dpr != 1.0 {
            parts.push(format!("dpr:{}", num(self.dpr)));
        }
        // The gravity places the cut of a filling type, and of any type a minimum size made
        // larger than its box (`w:300/mw:600`: 600 x 300 cut to 300 x 300).
        let crops = matches!(self.resizing_type, ResizeType::Fill | ResizeType::FillDown | ResizeType::Auto)
            || self.min_width > 0
            || self.min_height > 0;
        if sized && crops && self.gravity != super::Gravity::default() {
            parts.push(format!("g:{}", self.gravity.canonical()));
        }
        if !self.auto_rotate {
            parts.push("ar:0".into());
        }
        if self.rotate != 0 {
            parts.push(format!("rot:{}", self.rotate));
        }
        if self.flip != (false, false) {
            parts.push(format!("fl:{}:{}", u8::from(self.flip.0), u8::from(self.flip.1)));
        }
        if self.padding != [0; 4] {
            let [t, r, b, l] = self.padding;
            parts.push(format!("pd:{t}:{r}:{b}:{l}"));
        }
    }

    /// Colour, filters, overlay, encoding and what is skipped.
    fn finish(&self, parts: &mut Vec<String>) {
        if let Some(bg) = self.background {
            parts.push(format!("bg:{}", bg.canonical()));
        }
        if self.blur > 0.0 {
            parts.push(format!("bl:{}", num(self.blur)));
        }
        if self.sharpen > 0.0 {
            parts.push(format!("sh:{}", num(self.sharpen)));
        }
        if self.pixelate > 1 {
            parts.push(format!("pix:{}", self.pixelate));
        }
        if let Some(w) = &self.watermark {
            let position = w.position.map_or("re", super::GravityKind::name);
            parts.push(format!("wm:{}:{position}:{}:{}:{}", num(w.opacity), num(w.x), num(w.y), num(w.scale)));
        }
        if self.quality > 0 {
            parts.push(format!("q:{}", self.quality));
        } else if !self.format_quality.is_empty() {
            let mut fq = self.format_quality.clone();
            fq.sort_unstable();
            let pairs: Vec<String> = fq.iter().map(|(f, q)| format!("{}:{q}", f.extension())).collect();
            parts.push(format!("fq:{}", pairs.join(":")));
        }
        if self.max_bytes > 0 {
            parts.push(format!("mb:{}", self.max_bytes));
        }
        if !self.keep_copyright {
            parts.push("kcr:0".into());
        }
        if !self.strip_color_profile {
            parts.push("scp:0".into());
        }
        if !self.skip_processing.is_empty() {
            let names: Vec<&str> = self.skip_processing.iter().map(|f| f.name()).collect();
            parts.push(format!("skp:{}", names.join(":")));
        }
    }
}
