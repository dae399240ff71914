//! Lambda entry point of `legacy-redirect`: wiring only. Settings: `LEGACY_SOURCE` (the source
//! URL `migrate` runs name), `LEGACY_ORIGIN` (the legacy store's web server, read through),
//! `LEGACY_URL_PREFIX` (`/uploads/`), `FILES_CDN_BASE_URL`, `APP_URL` (the web app, for private
//! files' pages), `MIGRATION_TABLE`, `TABLE_NAME`, `ERASE_PSEUDONYM_SECRET_ID` (the key of the
//! erased paths' marks, read once); `SWITCH_CACHE_SECONDS` (30; the dev stack's tests switch and
//! roll back at once with 0).

use std::sync::Arc;

use legacy_redirect::adapters::{AwsMigrations, HttpOrigin};
use legacy_redirect::{Redirector, Settings};
use matbakh_core::delivery::FilesCdn;
use matbakh_core::migration::redirect::NewHome;

fn setting(name: &str) -> Result<String, String> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| format!("{name} is not set"))
}

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    matbakh_lambda::logs::init();
    let sdk = matbakh_aws::config::load_sdk_config().await;
    let home = NewHome { cdn: FilesCdn::new(&setting("FILES_CDN_BASE_URL")?, None), app_url: setting("APP_URL")? };
    let mut settings = Settings::new(setting("LEGACY_SOURCE")?, home);
    if let Ok(prefix) = setting("LEGACY_URL_PREFIX") {
        settings.url_prefix = prefix;
    }
    if let Ok(secs) = setting("SWITCH_CACHE_SECONDS") {
        let secs: u64 = secs.parse().map_err(|e| format!("SWITCH_CACHE_SECONDS={secs}: {e}"))?;
        settings.switch_cache = std::time::Duration::from_secs(secs);
    }
    let migrations = AwsMigrations {
        ledger: matbakh_aws::ledger::Ledger::new(&sdk, setting("MIGRATION_TABLE")?),
        files: matbakh_aws::FileTable::new(&sdk, setting("TABLE_NAME")?),
        erasures: matbakh_aws::secrets::pseudonym_key(&sdk, &setting("ERASE_PSEUDONYM_SECRET_ID")?).await?,
    };
    let origin = HttpOrigin::new(&setting("LEGACY_ORIGIN")?)?;
    let redirector =
        Redirector::new(settings, Arc::new(migrations), Arc::new(origin), Arc::new(matbakh_core::clock::SystemClock));
    lambda_http::run(legacy_redirect::router(Arc::new(redirector))).await
}
