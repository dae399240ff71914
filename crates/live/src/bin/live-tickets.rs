//! Lambda entry point of `live-tickets`: wiring only. Settings: `CONNECTIONS_TABLE`, `LIVE_URL`,
//! and those of every HTTP function (`AUTH_*` locally).

use std::sync::Arc;

use live::tickets::{Api, Tickets};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    matbakh_lambda::logs::init();
    let auth = Arc::new(matbakh_api::Authenticator::from_env()?);
    let sdk = matbakh_aws::config::load_sdk_config().await;
    let required = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or(format!("{name} is not set"));
    let tickets = Tickets { entry: live::entry(&sdk, &required("CONNECTIONS_TABLE")?), url: required("LIVE_URL")? };
    lambda_http::run(live::tickets::routes(Api { cases: tickets, auth })).await
}
