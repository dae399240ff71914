//! imgproxy-compatible transform URLs (issue 4), pure: the path is split into signature,
//! processing options and source; options are parsed with imgproxy's names and aliases, presets
//! expanded, and the result reduced to one canonical form, so that equivalent URLs (option
//! order, aliases, defaults spelled out or not) name one cached result (DECISIONS 18).
//!
//! Every processing option of imgproxy's open-source edition is read (v4's list: sizes, zoom,
//! minimum sizes, extend and extend to an aspect ratio with gravity, crop, trim, padding,
//! rotation, flips, background, blur, sharpen, pixelate, watermark, quality per format,
//! `max_bytes`, `skip_processing`, `raw`, `filename`, `return_attachment`, the metadata
//! options); an option of imgproxy Pro (`br`, `ra`, `wmu`, ...) or a security option
//! (`msr`, ..., refused by imgproxy too unless allowed) is a 400 `unsupported_option` naming it.
//!
//! Where this differs from imgproxy on purpose: a bad option is 400 (imgproxy: 404), an expired
//! URL 403 (imgproxy: 404), `f:auto` (or no format) negotiates from `Accept`, `sm:0` and `ph:1`
//! are refused (results never carry the source's location or camera metadata, and are 8-bit),
//! numbers are plain decimals (no `+`, exponent or bare `.`), `bl`, `sh`, `pix`, `pd`, `mw`,
//! `mh` and `z` are capped, and `fn` becomes an RFC 6266 header with the result's extension. The CloudFront Function in `template.yaml`
//! parses the same grammar and refuses what this refuses, with the same status and reason
//! (`tests/imgproxy/result-keys.json` holds both sides to it; DECISIONS 29).

mod canonical;
mod options;
mod signature;

pub use options::{
    Crop, Format, Gravity, GravityKind, MAX_BLUR_SIGMA, MAX_FILENAME_BYTES, MAX_PADDING, MAX_PIXELATE,
    MAX_SHARPEN_SIGMA, MAX_ZOOM, Options, Presets, ResizeType, Rgb, SourceFormat, Trim, Watermark,
};
pub use signature::SigningKeys;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::ids::ObjectKey;

/// Names the encoders and pipeline (`imaging::transform`) in result keys: change it whenever the
/// same URL would give different bytes, so a deploy never serves results of the old code as new.
/// The CloudFront Function (`edge/transform-request.js`) and the local gateway use it too.
pub const ENCODER_VERSION: &str = "e2";

/// S3's longest key: a URL whose result key (with the longest extension, `legacy`) is longer is
/// refused (400), at the edge too.
pub const MAX_RESULT_KEY_BYTES: usize = 1024;

/// Largest side of a transform result (`TRANSFORM_MAX_OUTPUT_SIDE`): the transformer refuses
/// larger ones, and image URLs are never made wider.
pub const DEFAULT_MAX_OUTPUT_SIDE: u32 = 4096;

/// Why a transform URL was refused; [`UrlError::status`] is the HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the signature does not match this URL")]
    BadSignature,
    #[error("the URL expired at {0} (unix seconds)")]
    Expired(i64),
    #[error("unknown processing option {0:?}")]
    UnknownOption(String),
    #[error("{option} is not available: {reason}")]
    NotAvailable { option: &'static str, reason: &'static str },
    #[error("bad argument for {option}: {reason}")]
    BadArgument { option: &'static str, reason: String },
    #[error("unknown preset {0:?}")]
    UnknownPreset(String),
    #[error("malformed URL: {0}")]
    Malformed(String),
    #[error("source not allowed: {0}")]
    ForbiddenSource(String),
}

impl UrlError {
    /// 403 for signatures, expiry and sources outside the allow-list; 400 for the rest.
    pub fn status(&self) -> u16 {
        match self {
            UrlError::BadSignature | UrlError::Expired(_) | UrlError::ForbiddenSource(_) => 403,
            _ => 400,
        }
    }

    /// A short machine-readable reason (`X-Error-Reason`, the JSON body's `error`).
    pub fn code(&self) -> &'static str {
        match self {
            UrlError::BadSignature => "bad_signature",
            UrlError::Expired(_) => "expired",
            UrlError::UnknownOption(_) => "unknown_option",
            UrlError::NotAvailable { .. } => "unsupported_option",
            UrlError::BadArgument { .. } => "bad_argument",
            UrlError::UnknownPreset(_) => "unknown_preset",
            UrlError::Malformed(_) => "malformed_url",
            UrlError::ForbiddenSource(_) => "forbidden_source",
        }
    }
}

/// Where transform sources may come from: a bucket and key prefixes within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePolicy {
    /// The bucket a plain key refers to.
    pub default_bucket: String,
    /// `(bucket, key prefix)` pairs a source must fall under.
    pub allowed: Vec<(String, String)>,
}

/// An object a transform reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceRef {
    pub bucket: String,
    pub key: ObjectKey,
}

/// A parsed, checked transform request.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformUrl {
    pub options: Options,
    pub source: SourceRef,
}

impl TransformUrl {
    /// Parses a request path (`/{signature}/{options...}/{source}`, still percent-encoded, query
    /// removed). `keys` empty means signatures are not checked (local development only: the
    /// caller decides). `now` is unix seconds, for `exp`.
    pub fn parse(
        path: &str,
        keys: &SigningKeys,
        presets: &Presets,
        sources: &SourcePolicy,
        now: i64,
    ) -> Result<TransformUrl, UrlError> {
        let rest = path.strip_prefix('/').ok_or_else(|| UrlError::Malformed("the path must start with /".into()))?;
        let (signature, signed) = match rest.find('/') {
            Some(i) if i > 0 => (&rest[..i], &rest[i..]),
            _ => return Err(UrlError::Malformed("no signature segment".into())),
        };
        if !keys.is_empty() {
            keys.verify(signature, signed)?;
        }
        let segments: Vec<&str> = signed[1..].split('/').collect();
        let first_source = segments
            .iter()
            .position(|s| !s.contains(':'))
            .ok_or_else(|| UrlError::Malformed("no source after the options".into()))?;
        let (option_segments, source_segments) = segments.split_at(first_source);
        let mut options = presets.defaults()?;
        for segment in option_segments {
            options.apply(segment, presets)?;
        }
        let (source, extension) = decode_source(source_segments)?;
        if let Some(ext) = extension {
            options.format = Some(Format::parse(&ext)?);
        }
        if let Some(at) = options.expires
            && at > 0
            && at < now
        {
            return Err(UrlError::Expired(at));
        }
        let source = resolve_source(&source, sources)?;
        let url = TransformUrl { options, source };
        // S3 stores no longer key: such a result could never be stored (nor found at the edge).
        let longest = url.result_key(ENCODER_VERSION, OutputChoice::Negotiated(AcceptClass::Legacy));
        if longest.as_str().len() > MAX_RESULT_KEY_BYTES {
            return Err(malformed("the result key would be longer than S3's 1024 bytes (a shorter fn or cb)"));
        }
        Ok(url)
    }

    /// Where the result for `format` is stored: `results/{source key}/{version}/{canonical}.{ext}`
    /// (DECISIONS 18), with `,exp` after the canonical options for a URL that expires.
    /// `version` names the encoder build, so a new encoder never serves old bytes; every result
    /// of one source shares the prefix `results/{source key}/` (purge on overwrite).
    ///
    /// A URL that never expires (a public file's) and one that does (a private file's, or any
    /// file's asked for by its owner) name different results, though their bytes are the same:
    /// once a file is private, the edge must not find a result made for its owner's expiring
    /// URL under its never-expiring ones (security review 20, edge finding 1).
    pub fn result_key(&self, version: &str, output: OutputChoice) -> ObjectKey {
        let prefix = result_prefix(self.source.key.as_str());
        let expiring = if self.options.expiring() { ",exp" } else { "" };
        ObjectKey::checked(format!(
            "{prefix}{version}/{}{expiring}.{}",
            self.options.canonical(),
            output.key_extension()
        ))
    }
}

/// What a browser accepts, reduced to what changes the answer (the CloudFront Function reduces
/// `Accept` to the same three before the cache key, so the cache is not fragmented).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptClass {
    Avif,
    WebP,
    /// Neither: JPEG, or PNG for an image with alpha.
    Legacy,
}

impl AcceptClass {
    /// AVIF > WebP > the rest, from an `Accept` header (q-values are not weighed, as imgproxy).
    pub fn from_accept(accept: &str) -> AcceptClass {
        if accept.contains("image/avif") {
            AcceptClass::Avif
        } else if accept.contains("image/webp") {
            AcceptClass::WebP
        } else {
            AcceptClass::Legacy
        }
    }
}

/// The output format a request asks for: named by the URL, or left to `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputChoice {
    Explicit(Format),
    Negotiated(AcceptClass),
}

impl OutputChoice {
    pub fn new(url: &TransformUrl, accept: &str) -> OutputChoice {
        match url.options.format {
            Some(f) => OutputChoice::Explicit(f),
            None => OutputChoice::Negotiated(AcceptClass::from_accept(accept)),
        }
    }

    /// The result key's extension: the format's, or `legacy` for JPEG-or-PNG (decided by the
    /// image's alpha, which only the transform knows; the stored object carries its type).
    pub fn key_extension(self) -> &'static str {
        match self {
            OutputChoice::Explicit(f) => f.extension(),
            OutputChoice::Negotiated(AcceptClass::Avif) => Format::Avif.extension(),
            OutputChoice::Negotiated(AcceptClass::WebP) => Format::WebP.extension(),
            OutputChoice::Negotiated(AcceptClass::Legacy) => "legacy",
        }
    }

    /// The format for an image with or without alpha.
    pub fn format(self, has_alpha: bool) -> Format {
        match self {
            OutputChoice::Explicit(f) => f,
            OutputChoice::Negotiated(AcceptClass::Avif) => Format::Avif,
            OutputChoice::Negotiated(AcceptClass::WebP) => Format::WebP,
            OutputChoice::Negotiated(AcceptClass::Legacy) if has_alpha => Format::Png,
            OutputChoice::Negotiated(AcceptClass::Legacy) => Format::Jpeg,
        }
    }
}

/// The prefix under which every result of the source `key` is stored.
pub fn result_prefix(key: &str) -> String {
    format!("results/{key}/")
}

fn malformed(why: &str) -> UrlError {
    UrlError::Malformed(why.to_owned())
}

/// A transform URL the platform hands out: `{base}/{signature}/{options}/{source}.{ext}`, the
/// source (a key of the default bucket) in URL-safe base64, signed with the first pair of
/// `keys` (`None` without one). The transformer and the CDN's function read it as any other.
pub fn signed_url(
    base: &str,
    keys: &SigningKeys,
    options: &Options,
    source_key: &str,
    format: Format,
) -> Option<String> {
    let source = URL_SAFE_NO_PAD.encode(source_key);
    let path = match options.path() {
        o if o.is_empty() => format!("/{source}.{}", format.extension()),
        o => format!("/{o}/{source}.{}", format.extension()),
    };
    let signature = keys.sign(&path)?;
    Some(format!("{}/{signature}{path}", base.trim_end_matches('/')))
}

/// The source URL and the extension, from the segments after the options: `plain/{url}@{ext}`
/// (percent-encoded) or `{base64url}.{ext}` (possibly split by `/`).
fn decode_source(segments: &[&str]) -> Result<(String, Option<String>), UrlError> {
    let (url, ext) = if segments.first() == Some(&"plain") {
        let joined = segments[1..].join("/");
        let mut pieces = joined.split('@');
        let url = pieces.next().unwrap_or_default();
        let ext = pieces.next();
        if pieces.next().is_some() {
            return Err(malformed("more than one @extension (escape @ in the source as %40)"));
        }
        // Every % starts an escape (JavaScript's decodeURIComponent, at the edge, refuses the rest).
        if !options::escapes_are_whole(url) {
            return Err(malformed("a % that is not an escape (write %25)"));
        }
        let url = percent_encoding::percent_decode_str(url)
            .decode_utf8()
            .map_err(|_| malformed("the source is not UTF-8 once unescaped"))?
            .into_owned();
        (url, ext.map(str::to_owned))
    } else if segments.first() == Some(&"enc") {
        return Err(malformed("encrypted sources are not supported"));
    } else {
        let joined = segments.concat();
        let mut pieces = joined.split('.');
        let encoded = pieces.next().unwrap_or_default().trim_end_matches('=');
        let ext = pieces.next();
        if pieces.next().is_some() {
            return Err(malformed("more than one .extension after the base64 source"));
        }
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| malformed("the source is not URL-safe base64"))?;
        let url = String::from_utf8(bytes).map_err(|_| malformed("the base64 source is not UTF-8"))?;
        (url, ext.map(str::to_owned))
    };
    if url.is_empty() {
        return Err(malformed("empty source"));
    }
    Ok((url, ext.filter(|e| !e.is_empty())))
}

/// `s3://bucket/key` or a key in the default bucket, checked against the allow-list. Anything
/// else (`http://...`, `file://`, `..` segments) is refused: the transformer fetches nothing
/// but allowed objects (no SSRF).
fn resolve_source(url: &str, policy: &SourcePolicy) -> Result<SourceRef, UrlError> {
    let (bucket, key) = if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').ok_or_else(|| malformed("s3:// source without a key"))?;
        (bucket.to_owned(), key.to_owned())
    } else if url.contains("://") {
        return Err(UrlError::ForbiddenSource("only s3:// sources and keys are fetched".into()));
    } else {
        (policy.default_bucket.clone(), url.to_owned())
    };
    let traverses = key.split('/').any(|part| part == ".." || part == ".") || key.starts_with('/');
    if key.is_empty() || traverses || key.chars().any(char::is_control) {
        return Err(UrlError::ForbiddenSource("the key is not a plain object key".into()));
    }
    let allowed = policy.allowed.iter().any(|(b, prefix)| *b == bucket && key.starts_with(prefix.as_str()));
    if !allowed {
        return Err(UrlError::ForbiddenSource(format!("{bucket} is not an allowed source for this key")));
    }
    Ok(SourceRef { bucket, key: ObjectKey::checked(key) })
}

#[cfg(test)]
mod tests;
