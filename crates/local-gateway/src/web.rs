//! The web app's files, served at `/` as the CDN serves them when deployed (dev stack only).
//! `/config.json` is the app's settings (where to sign in); everything else is a file under
//! the web root. Paths with `..`, hidden names or no known type answer 404.

use std::path::{Path, PathBuf};

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

pub struct WebApp {
    /// The `web/` folder.
    pub root: PathBuf,
    /// The body of `/config.json`.
    pub config: String,
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

/// The file under `root` a URL path names (`/` is `index.html`), if it may be served.
pub fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let rel = url_path.trim_start_matches('/');
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
    pub async fn serve(&self, url_path: &str) -> Option<Response> {
        if url_path == "/config.json" {
            return Some(with_type(self.config.clone().into_response(), "application/json"));
        }
        let path = resolve(&self.root, url_path)?;
        let bytes = tokio::fs::read(&path).await.ok()?;
        let mut resp = with_type(bytes.into_response(), content_type(&path)?);
        // The app changes under `cargo lambda watch`-style editing: always revalidate.
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Some(resp)
    }
}

fn with_type(mut resp: Response, ty: &'static str) -> Response {
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
    resp.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    *resp.status_mut() = StatusCode::OK;
    resp
}
