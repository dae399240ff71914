//! Processing options: imgproxy's names, aliases and argument rules, applied in URL order (a
//! later option overrides an earlier one), and their canonical form.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

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

    pub(super) fn name(self) -> &'static str {
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

    pub(super) fn name(self) -> &'static str {
        match self {
            GravityKind::Smart => "sm",
            GravityKind::FocusPoint => "fp",
            other => COMPASS.iter().find(|(_, k)| *k == other).map_or("ce", |(name, _)| name),
        }
    }
}

/// Where a crop, an extension or a watermark sits: a compass point with offsets (|v| >= 1:
/// pixels; < 1: a fraction of the image), smart (crops only), or a focus point.
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
    /// `smart`: whether `sm` is one of the types (crops: yes; extending: no).
    fn parse(option: &'static str, args: &[&str], smart: bool) -> Result<Gravity, UrlError> {
        let Some((kind, rest)) = args.split_first() else { return Err(bad(option, "no gravity type".into())) };
        match *kind {
            "sm" if !smart => Err(bad(option, "smart gravity is for crops only".into())),
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
            "obj" | "objw" => Err(UrlError::NotAvailable { option, reason: PRO }),
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

    pub(super) fn canonical(&self) -> String {
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

/// An sRGB colour (`bg`, `t`): `rrggbb`, `rgb` or `r:g:b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub [u8; 3]);

impl Rgb {
    pub const WHITE: Rgb = Rgb([255, 255, 255]);

    /// Three or six hex digits (imgproxy's `RGBFromHex`).
    fn hex(option: &'static str, s: &str) -> Result<Rgb, UrlError> {
        let digit = |i: usize| u8::from_str_radix(&s[i..=i], 16);
        let pair = |i: usize| u8::from_str_radix(&s[i..i + 2], 16);
        let ok = s.bytes().all(|b| b.is_ascii_hexdigit());
        let rgb = match s.len() {
            3 if ok => [digit(0), digit(1), digit(2)].map(|d| d.map(|d| d * 17)),
            6 if ok => [pair(0), pair(2), pair(4)],
            _ => return Err(bad(option, format!("{s:?} is not a hex colour (rgb or rrggbb)"))),
        };
        match rgb {
            [Ok(r), Ok(g), Ok(b)] => Ok(Rgb([r, g, b])),
            _ => Err(bad(option, format!("{s:?} is not a hex colour (rgb or rrggbb)"))),
        }
    }

    pub(super) fn canonical(self) -> String {
        hex::encode(self.0)
    }
}

/// `trim`: cut away a border of (nearly) one colour before anything else.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trim {
    /// How far a pixel may differ from the border colour and still be border.
    pub threshold: f64,
    /// `None`: the colour of the top-left pixel.
    pub color: Option<Rgb>,
    /// Cut the same amount from the left and the right (the smaller of the two).
    pub equal_hor: bool,
    pub equal_ver: bool,
}

/// Which options a URL may name and what they mean: imgproxy's open-source edition. Its paid
/// edition's options are refused naming themselves (never taken for unknown).
const PRO: &str = "an option of imgproxy Pro, not of the open-source edition this transformer follows";
/// imgproxy refuses these unless `IMGPROXY_ALLOW_SECURITY_OPTIONS` is set; so does this one (the
/// limits are the deployment's).
const SECURITY: &str = "a security option: the limits are the deployment's, never the URL's";
const PRO_OPTIONS: &[&str] = &[
    "adjust",
    "a",
    "brightness",
    "br",
    "contrast",
    "co",
    "saturation",
    "sa",
    "monochrome",
    "mc",
    "duotone",
    "dt",
    "autoquality",
    "aq",
    "avif_options",
    "avifo",
    "background_alpha",
    "bga",
    "blur_areas",
    "ba",
    "blur_detections",
    "bd",
    "bypass_cache",
    "bc",
    "cache_tags",
    "ct",
    "color_profile",
    "cp",
    "icc",
    "crop_aspect_ratio",
    "crop_ar",
    "car",
    "crop_objects",
    "c_obj",
    "colorize",
    "col",
    "disable_animation",
    "da",
    "dpi",
    "draw_detections",
    "dd",
    "fallback_image_url",
    "fiu",
    "gradient",
    "gr",
    "hashsum",
    "hs",
    "jpeg_options",
    "jpgo",
    "page",
    "pg",
    "pages",
    "pgs",
    "png_options",
    "pngo",
    "progressive_blur",
    "pbl",
    "resizing_algorithm",
    "ra",
    "style",
    "stl",
    "unsharp_masking",
    "ush",
    "watermark_url",
    "wmu",
    "watermark_text",
    "wmt",
    "watermark_size",
    "wms",
    "webp_options",
    "webpo",
    "watermark_rotate",
    "wm_rot",
    "wmr",
    "watermark_shadow",
    "wmsh",
    "video_thumbnail_second",
    "vts",
    "video_thumbnail_keyframes",
    "vtk",
    "video_thumbnail_tile",
    "vtt",
    "video_thumbnail_animation",
    "vta",
];
const SECURITY_OPTIONS: &[&str] = &[
    "max_src_resolution",
    "msr",
    "max_src_file_size",
    "msfs",
    "max_animation_frames",
    "maf",
    "max_animation_frame_resolution",
    "mafr",
    "max_result_dimension",
    "mrd",
];

/// Output formats this transformer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    Jpeg,
    Png,
    WebP,
    Avif,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Jpeg, Format::Png, Format::WebP, Format::Avif];

    /// A format name (`jpg`, `jpeg`, `png`, `webp`, `avif`); `auto` is handled by the caller.
    pub fn parse(s: &str) -> Result<Format, UrlError> {
        Format::named(s).ok_or_else(|| bad("format", format!("{s:?} is not jpg, png, webp, avif or auto")))
    }

    fn named(s: &str) -> Option<Format> {
        Some(match s {
            "jpg" | "jpeg" => Format::Jpeg,
            "png" => Format::Png,
            "webp" => Format::WebP,
            "avif" => Format::Avif,
            _ => return None,
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

/// A source format `skp` may name: the output formats and GIF (read, never written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SourceFormat {
    Jpeg,
    Png,
    WebP,
    Avif,
    Gif,
}

impl SourceFormat {
    fn parse(option: &'static str, s: &str) -> Result<SourceFormat, UrlError> {
        Ok(match Format::named(s) {
            Some(Format::Jpeg) => SourceFormat::Jpeg,
            Some(Format::Png) => SourceFormat::Png,
            Some(Format::WebP) => SourceFormat::WebP,
            Some(Format::Avif) => SourceFormat::Avif,
            None if s == "gif" => SourceFormat::Gif,
            None => return Err(bad(option, format!("{s:?} is not jpg, png, webp, avif or gif"))),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Jpeg => "jpg",
            SourceFormat::Png => "png",
            SourceFormat::WebP => "webp",
            SourceFormat::Avif => "avif",
            SourceFormat::Gif => "gif",
        }
    }

    /// The output format of the same name, if this transformer writes it.
    pub fn output(self) -> Option<Format> {
        Format::named(self.name())
    }
}

/// Everything a URL asks for. Defaults are imgproxy's.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub resizing_type: ResizeType,
    /// 0: from the aspect ratio (or unchanged, for `force`).
    pub width: u32,
    pub height: u32,
    /// `mw`/`mh`: the result is at least this large (enlarging if need be).
    pub min_width: u32,
    pub min_height: u32,
    /// `z`: multiplies the size after everything else (1: none).
    pub zoom: (f64, f64),
    pub enlarge: bool,
    /// `ex`: a result smaller than the requested size is extended to it (transparent, or the
    /// background), placed by this gravity.
    pub extend: Option<Gravity>,
    /// `exar`: extended to the requested aspect ratio instead.
    pub extend_aspect_ratio: Option<Gravity>,
    pub dpr: f64,
    pub gravity: Gravity,
    pub crop: Option<Crop>,
    pub trim: Option<Trim>,
    /// `pd`: top, right, bottom, left, in CSS pixels (times dpr).
    pub padding: [u32; 4],
    /// `rot`: 0, 90, 180 or 270, clockwise, after the EXIF orientation.
    pub rotate: u16,
    /// `fl`: horizontal, vertical.
    pub flip: (bool, bool),
    /// `bg`: transparency is flattened onto it (formats without alpha use white without it).
    pub background: Option<Rgb>,
    /// 1..100; 0: the format's default.
    pub quality: u8,
    /// `fq`: per output format, where `quality` is 0.
    pub format_quality: Vec<(Format, u8)>,
    /// `mb`: the quality is lowered until the result fits (0: no limit).
    pub max_bytes: u64,
    /// `None`: negotiated from `Accept` (no extension, or `f:auto`).
    pub format: Option<Format>,
    /// Gaussian blur sigma; 0: none; at most [`MAX_BLUR_SIGMA`].
    pub blur: f64,
    /// Sharpen sigma; 0: none; at most [`MAX_SHARPEN_SIGMA`].
    pub sharpen: f64,
    /// `pix`: the size of the blocks (1: none); at most [`MAX_PIXELATE`].
    pub pixelate: u32,
    pub auto_rotate: bool,
    /// `kcr`: the source's EXIF copyright (only it) is written into every result.
    pub keep_copyright: bool,
    /// `scp`: `false` keeps the source's ICC profile in the result instead of converting to sRGB.
    pub strip_color_profile: bool,
    /// `skp`: sources of these formats are answered as they are when the URL names no other
    /// output format.
    pub skip_processing: Vec<SourceFormat>,
    /// `raw`: the source as it is, unprocessed.
    pub raw: bool,
    /// `fn`: the name in `Content-Disposition` (the extension is the result's).
    pub filename: Option<String>,
    /// `att`: `Content-Disposition: attachment`.
    pub return_attachment: bool,
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
            min_width: 0,
            min_height: 0,
            zoom: (1.0, 1.0),
            enlarge: false,
            extend: None,
            extend_aspect_ratio: None,
            dpr: 1.0,
            gravity: Gravity::default(),
            crop: None,
            trim: None,
            padding: [0; 4],
            rotate: 0,
            flip: (false, false),
            background: None,
            quality: 0,
            format_quality: Vec::new(),
            max_bytes: 0,
            format: None,
            blur: 0.0,
            sharpen: 0.0,
            pixelate: 1,
            auto_rotate: true,
            keep_copyright: true,
            strip_color_profile: true,
            skip_processing: Vec::new(),
            raw: false,
            filename: None,
            return_attachment: false,
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
/// Largest `pix` block, and largest `pd` side and `mw`/`mh` (pixels): larger ones only make
/// results the output limit refuses anyway. The CloudFront Function holds the same caps.
pub const MAX_PIXELATE: u32 = 4096;
pub const MAX_PADDING: u32 = 4096;
/// Largest `z` factor, for the same reason.
pub const MAX_ZOOM: f64 = 100.0;
/// Longest `fn` (bytes, once decoded).
pub const MAX_FILENAME_BYTES: usize = 255;
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

fn positive(option: &'static str, s: &str, max: f64) -> Result<f64, UrlError> {
    at_most(option, s, max).and_then(|v| if v > 0.0 { Ok(v) } else { Err(bad(option, "must be above 0".into())) })
}

fn size(option: &'static str, s: &str) -> Result<u32, UrlError> {
    s.parse::<u32>()
        .ok()
        .filter(|_| decimal(s, false, false))
        .ok_or_else(|| bad(option, format!("{s:?} is not a whole number of pixels")))
}

fn capped(option: &'static str, s: &str, max: u32) -> Result<u32, UrlError> {
    size(option, s).and_then(|v| if v <= max { Ok(v) } else { Err(bad(option, format!("at most {max}"))) })
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

fn quality(option: &'static str, s: &str) -> Result<u8, UrlError> {
    let q = size(option, s)?;
    u8::try_from(q).ok().filter(|q| *q <= 100).ok_or_else(|| bad(option, "0 to 100".into()))
}

/// The shortest text that reads back as the same number (`2`, `0.5`): the same in Rust and JS.
pub(super) fn num(v: f64) -> String {
    format!("{v}")
}

impl Options {
    /// Whether the URL expires: `exp` after the epoch (imgproxy takes `exp:0` and earlier as
    /// none, and so does the edge).
    pub fn expiring(&self) -> bool {
        self.expires.is_some_and(|at| at > 0)
    }

    /// Applies one `name:arg:arg` segment.
    pub fn apply(&mut self, segment: &str, presets: &Presets) -> Result<(), UrlError> {
        let mut parts = segment.split(':');
        let name = parts.next().unwrap_or_default();
        let args: Vec<&str> = parts.collect();
        match name {
            "resize" | "rs" => {
                if args.len() > 8 {
                    return Err(bad("resize", "at most type:width:height:enlarge:extend:gravity".into()));
                }
                self.meta_size("resize", args.first().copied(), args.get(1..).unwrap_or_default())?;
            }
            "size" | "s" => {
                if args.len() > 7 {
                    return Err(bad("size", "at most width:height:enlarge:extend:gravity".into()));
                }
                self.meta_size("size", None, &args)?;
            }
            "resizing_type" | "rt" => self.resizing_type = ResizeType::parse(one("resizing_type", &args)?)?,
            "width" | "w" => self.width = size("width", one("width", &args)?)?,
            "height" | "h" => self.height = size("height", one("height", &args)?)?,
            "min-width" | "mw" => self.min_width = capped("min-width", one("min-width", &args)?, MAX_PADDING)?,
            "min-height" | "mh" => self.min_height = capped("min-height", one("min-height", &args)?, MAX_PADDING)?,
            "zoom" | "z" => {
                let x = positive("zoom", args.first().copied().unwrap_or_default(), MAX_ZOOM)?;
                self.zoom = match args.len() {
                    1 => (x, x),
                    2 => (x, positive("zoom", args[1], MAX_ZOOM)?),
                    _ => return Err(bad("zoom", "takes x[:y]".into())),
                };
            }
            "enlarge" | "el" => self.enlarge = boolean("enlarge", one("enlarge", &args)?)?,
            "extend" | "ex" => self.extend = extend("extend", &args)?,
            "extend_aspect_ratio" | "extend_ar" | "exar" => {
                self.extend_aspect_ratio = extend("extend_aspect_ratio", &args)?;
            }
            "dpr" => {
                let dpr = number("dpr", one("dpr", &args)?)?;
                if dpr <= 0.0 {
                    return Err(bad("dpr", "must be above 0".into()));
                }
                self.dpr = dpr;
            }
            "gravity" | "g" => self.gravity = Gravity::parse("gravity", &args, true)?,
            "crop" | "c" => {
                let (w, rest) = args.split_first().ok_or_else(|| bad("crop", "needs a width".into()))?;
                let width = non_negative("crop", w)?;
                let height = rest.first().filter(|h| !h.is_empty()).map_or(Ok(0.0), |h| non_negative("crop", h))?;
                let gravity = if rest.len() > 1 { Some(Gravity::parse("crop", &rest[1..], true)?) } else { None };
                self.crop = Some(Crop { width, height, gravity });
            }
            "trim" | "t" => self.trim = trim(&args)?,
            "padding" | "pd" => self.padding = padding(&args, self.padding)?,
            "auto_rotate" | "ar" => self.auto_rotate = boolean("auto_rotate", one("auto_rotate", &args)?)?,
            "rotate" | "rot" => {
                let s = one("rotate", &args)?;
                let angle = s.parse::<i64>().ok().filter(|_| decimal(s, true, false) && s.len() <= 10);
                let angle = angle.ok_or_else(|| bad("rotate", format!("{s:?} is not a whole number of degrees")))?;
                if angle % 90 != 0 {
                    return Err(bad("rotate", "the angle must be a multiple of 90".into()));
                }
                self.rotate = angle.rem_euclid(360) as u16;
            }
            "flip" | "fl" => {
                if args.is_empty() || args.len() > 2 {
                    return Err(bad("flip", "takes horizontal[:vertical]".into()));
                }
                let field = |i: usize| args.get(i).copied().filter(|v| !v.is_empty());
                if let Some(h) = field(0) {
                    self.flip.0 = boolean("flip", h)?;
                }
                if let Some(v) = field(1) {
                    self.flip.1 = boolean("flip", v)?;
                }
            }
            "background" | "bg" => {
                self.background = match args.as_slice() {
                    [""] => None,
                    [hex] => Some(Rgb::hex("background", hex)?),
                    [r, g, b] => {
                        let c = |s: &str| capped("background", s, 255).map(|v| v as u8);
                        Some(Rgb([c(r)?, c(g)?, c(b)?]))
                    }
                    _ => return Err(bad("background", "takes rrggbb or r:g:b".into())),
                }
            }
            "quality" | "q" => self.quality = quality("quality", one("quality", &args)?)?,
            "format_quality" | "fq" => {
                if args.is_empty() || !args.len().is_multiple_of(2) {
                    return Err(bad("format_quality", "takes format:quality pairs".into()));
                }
                for pair in args.chunks(2) {
                    let format = Format::named(pair[0])
                        .ok_or_else(|| bad("format_quality", format!("{:?} is not jpg, png, webp or avif", pair[0])))?;
                    let q = quality("format_quality", pair[1])?;
                    self.format_quality.retain(|(f, _)| *f != format);
                    self.format_quality.push((format, q));
                }
            }
            "max_bytes" | "mb" => {
                let s = one("max_bytes", &args)?;
                self.max_bytes = u64::from(size("max_bytes", s)?);
            }
            "format" | "f" | "ext" => {
                self.format = match one("format", &args)? {
                    "auto" => None,
                    other => Some(Format::parse(other)?),
                }
            }
            "blur" | "bl" => self.blur = at_most("blur", one("blur", &args)?, MAX_BLUR_SIGMA)?,
            "sharpen" | "sh" => self.sharpen = at_most("sharpen", one("sharpen", &args)?, MAX_SHARPEN_SIGMA)?,
            "pixelate" | "pix" => self.pixelate = capped("pixelate", one("pixelate", &args)?, MAX_PIXELATE)?,
            // `sm:1` is what results always are (no metadata but `kcr`'s copyright); `sm:0` would
            // republish a photo's location and camera serials.
            "strip_metadata" | "sm" => {
                if !boolean("strip_metadata", one("strip_metadata", &args)?)? {
                    return Err(UrlError::NotAvailable {
                        option: "strip_metadata",
                        reason: "results never carry the source's metadata (location, camera serials)",
                    });
                }
            }
            "keep_copyright" | "kcr" => self.keep_copyright = boolean("keep_copyright", one("keep_copyright", &args)?)?,
            "strip_color_profile" | "scp" => {
                self.strip_color_profile = boolean("strip_color_profile", one("strip_color_profile", &args)?)?;
            }
            "enforce_thumbnail" | "eth" => {
                if boolean("enforce_thumbnail", one("enforce_thumbnail", &args)?)? {
                    return Err(UrlError::NotAvailable {
                        option: "enforce_thumbnail",
                        reason: "the decoders read a source's primary image only, never an embedded thumbnail",
                    });
                }
            }
            "preserve_hdr" | "ph" => {
                if boolean("preserve_hdr", one("preserve_hdr", &args)?)? {
                    return Err(UrlError::NotAvailable {
                        option: "preserve_hdr",
                        reason: "results are 8 bits per channel: there is no HDR to keep",
                    });
                }
            }
            "skip_processing" | "skp" | "sp" => {
                if args.is_empty() || args.iter().any(|a| a.is_empty()) {
                    return Err(bad("skip_processing", "names one or more formats".into()));
                }
                for a in &args {
                    let f = SourceFormat::parse("skip_processing", a)?;
                    if !self.skip_processing.contains(&f) {
                        self.skip_processing.push(f);
                    }
                }
                self.skip_processing.sort_unstable();
            }
            "raw" => self.raw = boolean("raw", one("raw", &args)?)?,
            "filename" | "fn" => self.filename = filename(&args)?,
            "return_attachment" | "att" => {
                self.return_attachment = boolean("return_attachment", one("return_attachment", &args)?)?;
            }
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
            other => {
                if let Some(option) = PRO_OPTIONS.iter().find(|o| **o == other) {
                    return Err(UrlError::NotAvailable { option, reason: PRO });
                }
                if let Some(option) = SECURITY_OPTIONS.iter().find(|o| **o == other) {
                    return Err(UrlError::NotAvailable { option, reason: SECURITY });
                }
                return Err(UrlError::UnknownOption(other.to_owned()));
            }
        }
        Ok(())
    }

    /// `rs` and `s`: positional fields, an empty one keeps its value; the extend flag's gravity
    /// takes the rest.
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
        if field(3).is_some() {
            self.extend = extend("extend", &rest[3..])?;
        }
        Ok(())
    }
}

/// `ex`/`exar`: `enabled[:gravity...]`; the gravity is a compass point or a focus point.
fn extend(option: &'static str, args: &[&str]) -> Result<Option<Gravity>, UrlError> {
    let Some((on, gravity)) = args.split_first() else { return Err(bad(option, "takes 1/0[:gravity]".into())) };
    if args.len() > 4 {
        return Err(bad(option, "takes 1/0[:gravity[:x[:y]]]".into()));
    }
    let on = boolean(option, on)?;
    let gravity = if gravity.is_empty() { Gravity::default() } else { Gravity::parse(option, gravity, false)? };
    Ok(on.then_some(gravity))
}

/// `t:threshold[:colour[:equal_hor[:equal_ver]]]`; an empty threshold turns trimming off.
fn trim(args: &[&str]) -> Result<Option<Trim>, UrlError> {
    const O: &str = "trim";
    if args.is_empty() || args.len() > 4 {
        return Err(bad(O, "takes threshold[:colour[:equal_hor[:equal_ver]]]".into()));
    }
    let field = |i: usize| args.get(i).copied().filter(|v| !v.is_empty());
    let Some(threshold) = field(0) else { return Ok(None) };
    Ok(Some(Trim {
        threshold: number(O, threshold)?,
        color: field(1).map(|c| Rgb::hex(O, c)).transpose()?,
        equal_hor: field(2).map(|b| boolean(O, b)).transpose()?.unwrap_or(false),
        equal_ver: field(3).map(|b| boolean(O, b)).transpose()?.unwrap_or(false),
    }))
}

/// `pd:top[:right[:bottom[:left]]]` as CSS: right defaults to top, bottom to top, left to right;
/// an empty first field keeps the top.
fn padding(args: &[&str], before: [u32; 4]) -> Result<[u32; 4], UrlError> {
    const O: &str = "padding";
    if args.is_empty() || args.len() > 4 {
        return Err(bad(O, "takes top[:right[:bottom[:left]]]".into()));
    }
    let field = |i: usize| args.get(i).copied().filter(|v| !v.is_empty()).map(|v| capped(O, v, MAX_PADDING));
    let top = field(0).transpose()?.unwrap_or(before[0]);
    let right = field(1).transpose()?.unwrap_or(top);
    let bottom = field(2).transpose()?.unwrap_or(top);
    let left = field(3).transpose()?.unwrap_or(right);
    Ok([top, right, bottom, left])
}

/// `fn:name[:encoded]`: percent-escaped, or URL-safe base64 when `encoded`; empty means none.
fn filename(args: &[&str]) -> Result<Option<String>, UrlError> {
    const O: &str = "filename";
    if args.is_empty() || args.len() > 2 {
        return Err(bad(O, "takes name[:encoded]".into()));
    }
    let encoded = args.get(1).filter(|v| !v.is_empty()).map(|v| boolean(O, v)).transpose()?.unwrap_or(false);
    let bytes = if encoded {
        URL_SAFE_NO_PAD.decode(args[0].trim_end_matches('=')).map_err(|_| bad(O, "not URL-safe base64".into()))?
    } else {
        if !escapes_are_whole(args[0]) {
            return Err(bad(O, "a % that is not an escape (write %25)".into()));
        }
        percent_encoding::percent_decode_str(args[0]).collect()
    };
    let name = String::from_utf8(bytes).map_err(|_| bad(O, "not UTF-8".into()))?;
    if name.len() > MAX_FILENAME_BYTES {
        return Err(bad(O, format!("at most {MAX_FILENAME_BYTES} bytes")));
    }
    if name.chars().any(char::is_control) {
        return Err(bad(O, "no control characters".into()));
    }
    Ok((!name.is_empty()).then_some(name))
}

/// Every `%` starts an escape of two hex digits (JavaScript's decodeURIComponent refuses the rest).
pub(super) fn escapes_are_whole(s: &str) -> bool {
    s.split('%').skip(1).all(|p| p.len() >= 2 && p.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit))
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
