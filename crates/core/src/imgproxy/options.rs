//! Processing options: imgproxy's names, aliases and argument rules, applied in URL order (a
//! later option overrides an earlier one), and their canonical form.

use std::collections::HashMap;

use super::UrlError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeType {
    Fit,
    Fill,
    FillDown,
    Force,
    Auto,
}

impl ResizeType {
    fn parse(s: &str) -> Result<ResizeType, UrlError> {
        Ok(match s {
            "fit" => ResizeType::Fit,
            "fill" => ResizeType::Fill,
            "fill-down" => ResizeType::FillDown,
            "force" => ResizeType::Force,
            "auto" => ResizeType::Auto,
            other => return Err(bad("resizing_type", format!("{other:?} is not fit, fill, fill-down, force or auto"))),
        })
    }

    fn name(self) -> &'static str {
        match self {
            ResizeType::Fit => "fit",
            ResizeType::Fill => "fill",
            ResizeType::FillDown => "fill-down",
            ResizeType::Force => "force",
            ResizeType::Auto => "auto",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GravityKind {
    North,
    South,
    East,
    West,
    NorthEast,
    NorthWest,
    SouthEast,
    SouthWest,
    Center,
    /// `sm`: the most detailed region.
    Smart,
    /// `fp:x:y`: the centre of the result at (x, y), each 0..1 of the image.
    FocusPoint,
}

const COMPASS: [(&str, GravityKind); 9] = [
    ("no", GravityKind::North),
    ("so", GravityKind::South),
    ("ea", GravityKind::East),
    ("we", GravityKind::West),
    ("noea", GravityKind::NorthEast),
    ("nowe", GravityKind::NorthWest),
    ("soea", GravityKind::SouthEast),
    ("sowe", GravityKind::SouthWest),
    ("ce", GravityKind::Center),
];

impl GravityKind {
    fn compass(s: &str) -> Option<GravityKind> {
        COMPASS.iter().find(|(name, _)| *name == s).map(|(_, k)| *k)
    }

    fn name(self) -> &'static str {
        match self {
            GravityKind::Smart => "sm",
            GravityKind::FocusPoint => "fp",
            other => COMPASS.iter().find(|(_, k)| *k == other).map_or("ce", |(name, _)| name),
        }
    }
}

/// Where a crop (or watermark) sits: a compass point with offsets (|v| >= 1: pixels; < 1: a
/// fraction of the image), smart, or a focus point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gravity {
    pub kind: GravityKind,
    pub x: f64,
    pub y: f64,
}

impl Default for Gravity {
    fn default() -> Self {
        Gravity { kind: GravityKind::Center, x: 0.0, y: 0.0 }
    }
}

impl Gravity {
    fn parse(option: &'static str, args: &[&str]) -> Result<Gravity, UrlError> {
        let Some((kind, rest)) = args.split_first() else { return Err(bad(option, "no gravity type".into())) };
        match *kind {
            "sm" if rest.is_empty() => Ok(Gravity { kind: GravityKind::Smart, x: 0.0, y: 0.0 }),
            "sm" => Err(bad(option, "smart gravity takes no offsets".into())),
            "fp" => match rest {
                [x, y] => {
                    let (x, y) = (number(option, x)?, number(option, y)?);
                    if !(0.0..=1.0).contains(&x) || !(0.0..=1.0).contains(&y) {
                        return Err(bad(option, "a focus point is two numbers from 0 to 1".into()));
                    }
                    Ok(Gravity { kind: GravityKind::FocusPoint, x, y })
                }
                _ => Err(bad(option, "fp takes x and y".into())),
            },
            compass => {
                let kind = GravityKind::compass(compass)
                    .ok_or_else(|| bad(option, format!("{compass:?} is not a gravity type")))?;
                if rest.len() > 2 {
                    return Err(bad(option, "at most two offsets".into()));
                }
                let offset = |i: usize| rest.get(i).filter(|v| !v.is_empty()).map_or(Ok(0.0), |v| number(option, v));
                Ok(Gravity { kind, x: offset(0)?, y: offset(1)? })
            }
        }
    }

    fn canonical(&self) -> String {
        match self.kind {
            GravityKind::Smart => "sm".into(),
            GravityKind::FocusPoint => format!("fp:{}:{}", num(self.x), num(self.y)),
            k => format!("{}:{}:{}", k.name(), num(self.x), num(self.y)),
        }
    }
}

/// `crop`: a region cut from the source before resizing (0: the whole side; < 1: a fraction).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crop {
    pub width: f64,
    pub height: f64,
    /// `None`: the `gravity` option's.
    pub gravity: Option<Gravity>,
}

/// A configured watermark image laid over the result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Watermark {
    /// 0..1; 0 means no watermark.
    pub opacity: f64,
    /// `None`: tiled (`re`).
    pub position: Option<GravityKind>,
    pub x: f64,
    pub y: f64,
    /// Of the result's width; 0 keeps the watermark's own size.
    pub scale: f64,
}

/// Output formats this transformer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Jpeg,
    Png,
    WebP,
    Avif,
}

impl Format {
    /// A format name (`jpg`, `jpeg`, `png`, `webp`, `avif`); `auto` is handled by the caller.
    pub fn parse(s: &str) -> Result<Format, UrlError> {
        Ok(match s {
            "jpg" | "jpeg" => Format::Jpeg,
            "png" => Format::Png,
            "webp" => Format::WebP,
            "avif" => Format::Avif,
            other => return Err(bad("format", format!("{other:?} is not jpg, png, webp, avif or auto"))),
        })
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::WebP => "webp",
            Format::Avif => "avif",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::WebP => "image/webp",
            Format::Avif => "image/avif",
        }
    }
}

/// Everything a URL asks for. Defaults are imgproxy's.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub resizing_type: ResizeType,
    /// 0: from the aspect ratio (or unchanged, for `force`).
    pub width: u32,
    pub height: u32,
    pub enlarge: bool,
    pub dpr: f64,
    pub gravity: Gravity,
    pub crop: Option<Crop>,
    /// 1..100; 0: the format's default.
    pub quality: u8,
    /// `None`: negotiated from `Accept` (no extension, or `f:auto`).
    pub format: Option<Format>,
    /// Gaussian blur sigma; 0: none; at most [`MAX_BLUR_SIGMA`].
    pub blur: f64,
    /// Sharpen sigma; 0: none; at most [`MAX_SHARPEN_SIGMA`].
    pub sharpen: f64,
    pub auto_rotate: bool,
    /// Accepted for compatibility: results never carry metadata.
    pub strip_metadata: bool,
    pub watermark: Option<Watermark>,
    /// Unix seconds after which the URL is refused.
    pub expires: Option<i64>,
    pub cachebuster: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            resizing_type: ResizeType::Fit,
            width: 0,
            height: 0,
            enlarge: false,
            dpr: 1.0,
            gravity: Gravity::default(),
            crop: None,
            quality: 0,
            format: None,
            blur: 0.0,
            sharpen: 0.0,
            auto_rotate: true,
            strip_metadata: true,
            watermark: None,
            expires: None,
            cachebuster: String::new(),
        }
    }
}

fn bad(option: &'static str, reason: String) -> UrlError {
    UrlError::BadArgument { option, reason }
}

/// Strongest blur (`bl`, a Gaussian sigma) a URL may ask for: its cost grows with the sigma, and
/// beyond this every result is a flat colour anyway. The CloudFront Function holds the same cap.
pub const MAX_BLUR_SIGMA: f64 = 100.0;
/// Strongest sharpen (`sh`, the unsharp mask's sigma): beyond this it draws halos, not detail.
/// The CloudFront Function holds the same cap.
pub const MAX_SHARPEN_SIGMA: f64 = 10.0;
/// Largest `exp` magnitude: 2^53 - 1, the largest integer the CloudFront Function's numbers hold.
const MAX_EXPIRES: i64 = (1 << 53) - 1;

/// `digits` or `-digits` (with `signed`), optionally `.digits`: the one number grammar both this
/// parser and the CloudFront Function accept (no `+`, exponent, `inf`, or bare `.5` / `1.`).
fn decimal(s: &str, signed: bool, fraction: bool) -> bool {
    let s = if signed { s.strip_prefix('-').unwrap_or(s) } else { s };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('.') {
        Some((int, frac)) => fraction && digits(int) && digits(frac),
        None => digits(s),
    }
}

/// A decimal number whose shortest form needs no exponent (0, or 1e-6 <= |v| < 1e21), so that its
/// canonical text is the same here and in JavaScript; `-0` is 0.
fn number(option: &'static str, s: &str) -> Result<f64, UrlError> {
    let v = s.parse::<f64>().ok().filter(|_| decimal(s, true, true)).map(|v| v + 0.0);
    v.filter(|v| *v == 0.0 || (1e-6..1e21).contains(&v.abs()))
        .ok_or_else(|| bad(option, format!("{s:?} is not a decimal number (digits, optional - and .digits)")))
}

fn at_most(option: &'static str, s: &str, max: f64) -> Result<f64, UrlError> {
    non_negative(option, s).and_then(|v| if v <= max { Ok(v) } else { Err(bad(option, format!("at most {max}"))) })
}

fn non_negative(option: &'static str, s: &str) -> Result<f64, UrlError> {
    number(option, s).and_then(|v| if v >= 0.0 { Ok(v) } else { Err(bad(option, "must not be negative".into())) })
}

fn size(option: &'static str, s: &str) -> Result<u32, UrlError> {
    s.parse::<u32>()
        .ok()
        .filter(|_| decimal(s, false, false))
        .ok_or_else(|| bad(option, format!("{s:?} is not a whole number of pixels")))
}

fn boolean(option: &'static str, s: &str) -> Result<bool, UrlError> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(bad(option, format!("{other:?} is not 1/t/true or 0/f/false"))),
    }
}

/// Exactly one argument.
fn one<'a>(option: &'static str, args: &[&'a str]) -> Result<&'a str, UrlError> {
    match args {
        [v] if !v.is_empty() => Ok(v),
        _ => Err(bad(option, "takes exactly one argument".into())),
    }
}

/// The shortest text that reads back as the same number (`2`, `0.5`): the same in Rust and JS.
fn num(v: f64) -> String {
    format!("{v}")
}

impl Options {
    /// Applies one `name:arg:arg` segment.
    pub fn apply(&mut self, segment: &str, presets: &Presets) -> Result<(), UrlError> {
        let mut parts = segment.split(':');
        let name = parts.next().unwrap_or_default();
        let args: Vec<&str> = parts.collect();
        match name {
            "resize" | "rs" => {
                if args.len() > 5 {
                    return Err(bad("resize", "at most type:width:height:enlarge:extend".into()));
                }
                self.meta_size("resize", args.first().copied(), args.get(1..).unwrap_or_default())?;
            }
            "size" | "s" => {
                if args.len() > 4 {
                    return Err(bad("size", "at most width:height:enlarge:extend".into()));
                }
                self.meta_size("size", None, &args)?;
            }
            "resizing_type" | "rt" => self.resizing_type = ResizeType::parse(one("resizing_type", &args)?)?,
            "width" | "w" => self.width = size("width", one("width", &args)?)?,
            "height" | "h" => self.height = size("height", one("height", &args)?)?,
            "enlarge" | "el" => self.enlarge = boolean("enlarge", one("enlarge", &args)?)?,
            "extend" | "ex" => extend(args.first().copied().unwrap_or_default())?,
            "dpr" => {
                let dpr = number("dpr", one("dpr", &args)?)?;
                if dpr <= 0.0 {
                    return Err(bad("dpr", "must be above 0".into()));
                }
                self.dpr = dpr;
            }
            "gravity" | "g" => self.gravity = Gravity::parse("gravity", &args)?,
            "crop" | "c" => {
                let (w, rest) = args.split_first().ok_or_else(|| bad("crop", "needs a width".into()))?;
                let h = rest.first().filter(|h| !h.is_empty()).map_or(Ok(0.0), |h| non_negative("crop", h))?;
                let gravity = if rest.len() > 1 { Some(Gravity::parse("crop", &rest[1..])?) } else { None };
                self.crop = Some(Crop { width: non_negative("crop", w)?, height: h, gravity });
            }
            "quality" | "q" => {
                let q = size("quality", one("quality", &args)?)?;
                self.quality =
                    u8::try_from(q).ok().filter(|q| *q <= 100).ok_or_else(|| bad("quality", "0 to 100".into()))?;
            }
            "format" | "f" | "ext" => {
                self.format = match one("format", &args)? {
                    "auto" => None,
                    other => Some(Format::parse(other)?),
                }
            }
            "blur" | "bl" => self.blur = at_most("blur", one("blur", &args)?, MAX_BLUR_SIGMA)?,
            "sharpen" | "sh" => self.sharpen = at_most("sharpen", one("sharpen", &args)?, MAX_SHARPEN_SIGMA)?,
            "auto_rotate" | "ar" => self.auto_rotate = boolean("auto_rotate", one("auto_rotate", &args)?)?,
            "strip_metadata" | "sm" => self.strip_metadata = boolean("strip_metadata", one("strip_metadata", &args)?)?,
            "watermark" | "wm" => self.watermark = watermark(&args)?,
            "preset" | "pr" => {
                if args.is_empty() {
                    return Err(bad("preset", "names at least one preset".into()));
                }
                for name in args {
                    for segment in presets.get(name)? {
                        self.apply(segment, presets)?;
                    }
                }
            }
            "expires" | "exp" => {
                let at = one("expires", &args)?;
                let secs = at.parse::<i64>().ok().filter(|v| decimal(at, true, false) && v.abs() <= MAX_EXPIRES);
                self.expires = Some(secs.ok_or_else(|| bad("expires", format!("{at:?} is not unix seconds")))?);
            }
            "cachebuster" | "cb" => {
                if args.len() != 1 {
                    return Err(bad("cachebuster", "takes exactly one argument".into()));
                }
                self.cachebuster = args[0].to_owned();
            }
            other => return Err(UrlError::UnknownOption(other.to_owned())),
        }
        Ok(())
    }

    /// `rs` and `s`: positional fields, an empty one keeps its value.
    fn meta_size(&mut self, option: &'static str, kind: Option<&str>, rest: &[&str]) -> Result<(), UrlError> {
        if let Some(kind) = kind.filter(|k| !k.is_empty()) {
            self.resizing_type = ResizeType::parse(kind)?;
        }
        let field = |i: usize| rest.get(i).copied().filter(|v| !v.is_empty());
        if let Some(w) = field(0) {
            self.width = size(option, w)?;
        }
        if let Some(h) = field(1) {
            self.height = size(option, h)?;
        }
        if let Some(e) = field(2) {
            self.enlarge = boolean(option, e)?;
        }
        if let Some(x) = field(3) {
            extend(x)?;
        }
        Ok(())
    }

    /// Does the URL resize at all?
    fn resizes(&self) -> bool {
        self.width > 0 || self.height > 0
    }

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

    /// One text per distinct result: fixed order, short names, defaults and options that cannot
    /// change the output left out (`exp`, `sm`, a resizing type or `el` without a size),
    /// joined with `,` (`_` when nothing is asked). The output format is not part of it (it is
    /// the result's extension). A CloudFront Function computes the same (DECISIONS 18).
    pub fn canonical(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(c) = &self.crop
            && (c.width > 0.0 || c.height > 0.0)
        {
            parts.push(format!(
                "c:{}:{}:{}",
                num(c.width),
                num(c.height),
                c.gravity.unwrap_or(self.gravity).canonical()
            ));
        }
        if self.resizes() {
            if self.resizing_type != ResizeType::Fit {
                parts.push(format!("rt:{}", self.resizing_type.name()));
            }
            if self.width > 0 {
                parts.push(format!("w:{}", self.width));
            }
            if self.height > 0 {
                parts.push(format!("h:{}", self.height));
            }
            if self.enlarge {
                parts.push("el:1".into());
            }
            if self.dpr != 1.0 {
                parts.push(format!("dpr:{}", num(self.dpr)));
            }
            let crops = matches!(self.resizing_type, ResizeType::Fill | ResizeType::FillDown | ResizeType::Auto);
            if crops && self.gravity != Gravity::default() {
                parts.push(format!("g:{}", self.gravity.canonical()));
            }
        }
        if self.quality > 0 {
            parts.push(format!("q:{}", self.quality));
        }
        if self.blur > 0.0 {
            parts.push(format!("bl:{}", num(self.blur)));
        }
        if self.sharpen > 0.0 {
            parts.push(format!("sh:{}", num(self.sharpen)));
        }
        if !self.auto_rotate {
            parts.push("ar:0".into());
        }
        if let Some(w) = &self.watermark {
            let position = w.position.map_or("re", GravityKind::name);
            parts.push(format!("wm:{}:{position}:{}:{}:{}", num(w.opacity), num(w.x), num(w.y), num(w.scale)));
        }
        if !self.cachebuster.is_empty() {
            let cb: String = percent_encoding::utf8_percent_encode(&self.cachebuster, KEY_UNSAFE).collect();
            parts.push(format!("cb:{cb}"));
        }
        if parts.is_empty() { "_".into() } else { parts.join(",") }
    }
}

/// Characters kept as they are in an S3 key segment; the rest are percent-encoded.
const KEY_UNSAFE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn extend(arg: &str) -> Result<(), UrlError> {
    if arg.is_empty() || !boolean("extend", arg)? {
        Ok(())
    } else {
        Err(bad("extend", "extending the canvas is not supported".into()))
    }
}

fn watermark(args: &[&str]) -> Result<Option<Watermark>, UrlError> {
    const O: &str = "watermark";
    if args.is_empty() || args.len() > 5 {
        return Err(bad(O, "opacity[:position[:x[:y[:scale]]]]".into()));
    }
    let opacity = number(O, args[0])?;
    if !(0.0..=1.0).contains(&opacity) {
        return Err(bad(O, "opacity is 0 to 1".into()));
    }
    let field = |i: usize| args.get(i).copied().filter(|v| !v.is_empty());
    let position = match field(1) {
        None => Some(GravityKind::Center),
        Some("re") => None,
        Some(p) => Some(GravityKind::compass(p).ok_or_else(|| bad(O, format!("{p:?} is not a position")))?),
    };
    let x = field(2).map_or(Ok(0.0), |v| number(O, v))?;
    let y = field(3).map_or(Ok(0.0), |v| number(O, v))?;
    let scale = field(4).map_or(Ok(0.0), |v| non_negative(O, v))?;
    Ok((opacity > 0.0).then_some(Watermark { opacity, position, x, y, scale }))
}

/// Named option sets (`pr:name`); `default`, if defined, applies to every URL first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presets {
    named: HashMap<String, Vec<String>>,
}

impl Presets {
    /// `name=opt:a/opt:b,other=opt:c` (imgproxy's `IMGPROXY_PRESETS`). Every option is checked
    /// now, so a bad preset stops the function at start, not at a request.
    pub fn parse(spec: &str) -> Result<Presets, String> {
        let mut named = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, options) = entry.split_once('=').ok_or_else(|| format!("preset {entry:?} has no '='"))?;
            let segments: Vec<String> = options.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect();
            if let Some(s) =
                segments.iter().find(|s| !s.contains(':') || s.starts_with("pr:") || s.starts_with("preset:"))
            {
                return Err(format!("preset {name}: {s:?} is not an option (presets cannot name presets)"));
            }
            named.insert(name.trim().to_owned(), segments);
        }
        let presets = Presets { named };
        for (name, segments) in &presets.named {
            let mut o = Options::default();
            for s in segments {
                o.apply(s, &presets).map_err(|e| format!("preset {name}: {e}"))?;
            }
        }
        Ok(presets)
    }

    /// No presets configured (the CloudFront Function knows none: the CDN path refuses `pr:`).
    pub fn is_empty(&self) -> bool {
        self.named.is_empty()
    }

    /// The names of the presets, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.named.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The options preset `name` stands for (on imgproxy's defaults, not the `default` preset).
    pub fn options(&self, name: &str) -> Result<Options, UrlError> {
        let mut o = Options::default();
        for s in self.get(name)? {
            o.apply(s, self)?;
        }
        Ok(o)
    }

    fn get(&self, name: &str) -> Result<&[String], UrlError> {
        self.named.get(name).map(Vec::as_slice).ok_or_else(|| UrlError::UnknownPreset(name.to_owned()))
    }

    /// The options every URL starts from: imgproxy's defaults, then the `default` preset.
    pub fn defaults(&self) -> Result<Options, UrlError> {
        let mut o = Options::default();
        if let Some(segments) = self.named.get("default") {
            for s in segments {
                o.apply(s, self)?;
            }
        }
        Ok(o)
    }
}
