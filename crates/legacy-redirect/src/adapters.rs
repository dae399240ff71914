//! The redirector's ports on AWS (the migration and files tables) and on HTTP (the legacy
//! origin).

use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use http::{HeaderMap, Method, header};
use matbakh_aws::AwsError;
use matbakh_aws::FileTable;
use matbakh_aws::http::{BodyLimit, Web};
use matbakh_aws::ledger::Ledger;
use matbakh_aws::table::LegacyMapping;
use matbakh_core::audit::{PseudonymKey, erased_path};
use matbakh_core::ids::FileId;
use matbakh_core::metadata::FileRecord;
use matbakh_core::migration::redirect::{Served, Switches};
use matbakh_core::migration::{LegacyPrefix, RunId};

use crate::{Fetched, LegacyOrigin, Migrations, RedirectError, RunOf};

/// How long the legacy origin may take to start answering and to send a body.
pub const ORIGIN_TIMEOUT: Duration = Duration::from_secs(20);

/// The viewer's headers passed to the legacy origin: conditional requests and ranges.
const ASKED: [header::HeaderName; 4] =
    [header::RANGE, header::IF_NONE_MATCH, header::IF_MODIFIED_SINCE, header::IF_RANGE];
/// The legacy origin's headers passed back to the viewer.
const ANSWERED: [header::HeaderName; 9] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::ACCEPT_RANGES,
    header::ETAG,
    header::LAST_MODIFIED,
    header::CACHE_CONTROL,
    header::EXPIRES,
    header::CONTENT_DISPOSITION,
];

/// The migration table (switches, runs, counters) and the files table (mappings, rows, erased
/// paths' marks, keyed with `erasures`).
pub struct AwsMigrations {
    pub ledger: Ledger,
    pub files: FileTable,
    pub erasures: PseudonymKey,
}

#[async_trait]
impl Migrations for AwsMigrations {
    async fn switches(&self, source: &str) -> Result<Switches, RedirectError> {
        let all = self.ledger.cutovers().await?;
        Ok(Switches::new(
            all.into_iter()
                .filter(|c| c.source == source)
                .filter_map(|c| Some((LegacyPrefix::parse(&c.prefix).ok()?, c.to)))
                .collect(),
        ))
    }

    async fn mapping(&self, path: &str) -> Result<Option<LegacyMapping>, RedirectError> {
        Ok(self.files.legacy_file(path).await?)
    }

    async fn erased(&self, path: &str) -> Result<bool, RedirectError> {
        Ok(self.files.legacy_path_erased(&erased_path(&self.erasures, path)).await?)
    }

    async fn file(&self, id: FileId) -> Result<Option<FileRecord>, RedirectError> {
        Ok(self.files.get_file(id).await?)
    }

    async fn run(&self, run: &str) -> Result<Option<RunOf>, RedirectError> {
        let Ok(id) = RunId::parse(run) else { return Ok(None) };
        Ok(self.ledger.get_run(&id).await?.map(|r| RunOf {
            verified: !r.state.rolled_back() && r.verification.as_ref().is_some_and(|v| v.passed),
            source: r.source,
        }))
    }

    async fn count(&self, source: &str, at: &str, served: Served, path: &str) -> Result<(), RedirectError> {
        Ok(self.ledger.count_legacy_served(source, at, served, path).await?)
    }
}

/// The legacy store's web server at `base` (`https://legacy-origin.example/uploads`), through
/// the platform's HTTP client (no redirects followed, [`ORIGIN_TIMEOUT`] an exchange).
pub struct HttpOrigin {
    pub client: Web,
    pub base: String,
}

impl HttpOrigin {
    pub fn new(base: &str) -> Result<Self, String> {
        Ok(HttpOrigin { client: Web::new(ORIGIN_TIMEOUT)?, base: base.trim_end_matches('/').to_owned() })
    }
}

#[async_trait]
impl LegacyOrigin for HttpOrigin {
    async fn fetch(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        max_bytes: u64,
    ) -> Result<Fetched, RedirectError> {
        let url = format!("{}/{path_and_query}", self.base);
        let mut req = http::Request::builder().method(method.clone()).uri(&url);
        for name in &ASKED {
            if let Some(v) = headers.get(name) {
                req = req.header(name, v);
            }
        }
        let req = req.body(Bytes::new()).map_err(|e| RedirectError::Origin(format!("{url}: {e}")))?;
        let answer = match self.client.send(req, BodyLimit::UpTo(max_bytes)).await {
            Ok(answer) => answer,
            Err(AwsError::TooLarge { .. }) => return Ok(Fetched::TooLarge { url }),
            Err(e) => return Err(RedirectError::Origin(e.to_string())),
        };
        let mut passed = HeaderMap::new();
        for name in &ANSWERED {
            if let Some(v) = answer.headers.get(name) {
                passed.insert(name, v.clone());
            }
        }
        if *method != Method::HEAD {
            passed.remove(header::CONTENT_LENGTH);
        }
        Ok(Fetched::Answer { status: answer.status, headers: passed, body: answer.body })
    }
}
