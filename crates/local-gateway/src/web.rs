//! The web app's files, served at `/` as the CDN serves them when deployed (dev stack only).
//! `/config.json` is the app's settings (where to sign in); everything else is a file under
//! the web root. Paths with `..`, hidden names or no known type answer 404. Every answer
//! carries the app's Content-Security-Policy and security headers, as the CDN's
//! `WebHeadersPolicy` adds them.

use std::path::{Path, PathBuf};

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

pub struct WebApp {
    /// The `web/` folder.
    pub root: PathBuf,
    /// The body of `/config.json`.
    pub config: String,
    /// The `Content-Security-Policy` every file is sent with.
    pub csp: HeaderValue,
}

/// The web app's Content-Security-Policy, the same the web CDN sends (`tests/web/csp.json`
/// holds both to it): code and styles only from the app's own files (no inline script or style,
/// no `eval`); images also from `data:` (ThumbHash placeholders, Uppy's icons), `blob:` (Uppy's
/// thumbnails), S3 and the CDNs (the gateway itself here: `/cdn/`, `/t/`); requests only to the app, the API, S3 and the sign-in provider; no
/// plugins, frames, form posts or `<base>`. `api`, `files` (S3 as browsers reach it) and
/// `sign_in` are origins or `'self'`.
pub fn content_security_policy(api: &str, files: &str, sign_in: &str) -> String {
    let sources = |list: &[&str]| {
        let mut once: Vec<&str> = Vec::new();
        list.iter().filter(|s| !s.is_empty()).for_each(|s| {
            if !once.contains(s) {
                once.push(s)
            }
        });
        once.join(" ")
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src {}; connect-src {}; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'",
        sources(&["'self'", "data:", "blob:", files]),
        sources(&["'self'", api, files, sign_in]),
    )
}

/// The content type of a file the app is made of, by extension; others are not served.
pub fn content_type(path: &Path) -> Option<&'static str> {
    Some(match path.extension()?.to_str()? {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webmanifest" => "application/manifest+json",
        _ => return None,
    })
}

/// The page a URL path shows where the path is not a file: a user's public page `/p/{user}`
/// is `public.html` (deployed, the web CDN's `web-routes` function rewrites it the same way).
pub fn page(url_path: &str) -> &str {
    match url_path.strip_prefix("/p/").map(|rest| rest.trim_end_matches('/')) {
        Some(user) if !user.is_empty() && !user.contains('/') => "/public.html",
        _ => url_path,
    }
}

/// The file under `root` a URL path names (`/` is `index.html`), if it may be served.
pub fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let rel = page(url_path).trim_start_matches('/');
    let rel = if rel.is_empty() || rel.ends_with('/') { format!("{rel}index.html") } else { rel.to_owned() };
    let mut path = root.to_path_buf();
    for seg in rel.split('/') {
        let seg = percent_encoding::percent_decode_str(seg).decode_utf8().ok()?;
        if seg.is_empty() || seg.starts_with('.') || seg.contains(['\\', '\0']) {
            return None;
        }
        path.push(seg.as_ref());
    }
    content_type(&path)?;
    Some(path)
}

impl WebApp {
    /// The app in `root` with its `config`. Locally the API and the sign-in provider are the
    /// gateway itself; `files` is where browsers reach S3 (the local S3 server).
    pub fn new(root: PathBuf, config: String, files: &str) -> Result<Self, String> {
        let csp = HeaderValue::from_str(&content_security_policy("'self'", files, "'self'"))
            .map_err(|_| format!("{files:?} is not an origin"))?;
        Ok(WebApp { root, config, csp })
    }

    pub async fn serve(&self, url_path: &str) -> Option<Response> {
        if url_path == "/config.json" {
            return Some(self.with_type(self.config.clone().into_response(), "application/json"));
        }
        let path = resolve(&self.root, url_path)?;
        let bytes = tokio::fs::read(&path).await.ok()?;
        let mut resp = self.with_type(bytes.into_response(), content_type(&path)?);
        // The app changes under `cargo lambda watch`-style editing: always revalidate.
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Some(resp)
    }

    fn with_type(&self, mut resp: Response, ty: &'static str) -> Response {
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        h.insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        *resp.status_mut() = StatusCode::OK;
        resp
    }
}
