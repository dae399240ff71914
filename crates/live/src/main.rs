//! Lambda entry point of `live` (the WebSocket API's authorizer and routes): wiring only.
//! Settings: `CONNECTIONS_TABLE`, `AUTH_ISSUER`, `AUTH_AUDIENCE`, `AUTH_JWKS_URL` (optional: the
//! issuer's keys are fetched at start from there, or from the issuer's well-known place, and
//! again when a token names a key not among them) and
//! `ADMIN_USERS`.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    matbakh_lambda::logs::init();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let required = |name: &str| env(name).ok_or(format!("{name} is not set"));
    let sdk = matbakh_aws::config::load_sdk_config().await;
    let issuer = required("AUTH_ISSUER")?;
    let jwks_url = live::jwks_url(&issuer, env("AUTH_JWKS_URL"));
    let sockets = live::Sockets {
        entry: live::entry(&sdk, &required("CONNECTIONS_TABLE")?),
        keys: Arc::new(live::Keys::fetched(&jwks_url, &issuer, &required("AUTH_AUDIENCE")?).await?),
        admins: Arc::new(live::parse_admins(&env("ADMIN_USERS").unwrap_or_default())),
    };
    let sockets = &sockets;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        Ok::<_, lambda_runtime::Error>(live::handle(sockets, event.payload).await)
    }))
    .await
}
