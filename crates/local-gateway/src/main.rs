//! Runs the local API Gateway stand-in. Settings (environment):
//! `GATEWAY_ADDR` (127.0.0.1:3000), `LAMBDA_ENDPOINT` (http://127.0.0.1:9000), `ROUTES_FILE`,
//! `AUTH_JWKS_FILE`, `AUTH_ISSUER`, `AUTH_AUDIENCE`, `WEB_ORIGINS` (comma-separated).
//! Dev stack only: `WEB_ROOT` and `WEB_CONFIG` (a JSON document) serve the web app at `/`, its
//! Content-Security-Policy allowing S3 at `S3_PUBLIC_ENDPOINT`, else `AWS_ENDPOINT_URL` (what
//! the functions presign for); `DEV_KEY_FILE` (the dev key, PKCS#8), `DEV_USERS`
//! (comma-separated) and `DEV_CLIENT_ID` (`matbakh-web`) switch on the identity provider at
//! `/dev/oidc/*`; `FILES_CDN_BUCKET` serves the files CDN's public copies at `/cdn/p/*` from
//! that bucket at `AWS_ENDPOINT_URL`, signed with `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
//! in `AWS_REGION`, logging its requests as CloudFront does to `CDN_LOGS_BUCKET` under
//! `CDN_LOGS_PREFIX` (`cdn-files/`) when that is set; with `TRANSFORM_KEYS` and `TRANSFORM_SALTS` (the pairs the edge would hold)
//! `/t/*` maps transform URLs as the CloudFront Function does and serves stored results from it;
//! `LEGACY_URL_PREFIX` (`/uploads/`) sends old file URLs to the `legacy-redirect` function;
//! `LIVE_FUNCTION` (`live`) serves the live updates' WebSocket API at `/live` (with `CALL_LOG`,
//! each `@connections` call a function signed is appended there, for `scripts/iam_calls.py`).
//! `IN_PROCESS` (comma-separated: `files-api`, `presign`, `shares`, `multipart`) serves those
//! functions' routes in this process, wired from this process's environment (the functions'
//! environment file), instead of through `LAMBDA_ENDPOINT` (the load benchmark; see
//! `local_gateway::in_process`).

use std::net::SocketAddr;
use std::sync::Arc;

use local_gateway::dev_idp::DevIdp;
use local_gateway::web::WebApp;
use local_gateway::{Gateway, Route, router};
use matbakh_api::auth::JwtVerifier;
use matbakh_api::dev_keys::DevKey;

fn setting(name: &str, default: Option<&str>) -> Result<String, String> {
    std::env::var(name).ok().or(default.map(str::to_owned)).ok_or_else(|| format!("{name} is not set"))
}

/// The stack's credentials (what moto is given): the files CDN signs its reads with them, and
/// the live updates' management API takes calls signed with them only.
fn credentials() -> Result<matbakh_core::sigv4::Credentials, String> {
    Ok(matbakh_core::sigv4::Credentials {
        access_key_id: setting("AWS_ACCESS_KEY_ID", None)?,
        secret_access_key: setting("AWS_SECRET_ACCESS_KEY", None)?,
        session_token: std::env::var("AWS_SESSION_TOKEN").ok(),
    })
}

async fn run() -> Result<(), String> {
    let addr: SocketAddr =
        setting("GATEWAY_ADDR", Some("127.0.0.1:3000"))?.parse().map_err(|e| format!("GATEWAY_ADDR: {e}"))?;
    let routes_file = setting("ROUTES_FILE", None)?;
    let routes: Vec<Route> =
        serde_json::from_str(&std::fs::read_to_string(&routes_file).map_err(|e| format!("{routes_file}: {e}"))?)
            .map_err(|e| format!("{routes_file}: {e}"))?;
    let jwks_file = setting("AUTH_JWKS_FILE", None)?;
    let jwks = std::fs::read_to_string(&jwks_file).map_err(|e| format!("{jwks_file}: {e}"))?;
    let verifier = JwtVerifier::new(&jwks, &setting("AUTH_ISSUER", None)?, &setting("AUTH_AUDIENCE", None)?)?;
    let gateway = Gateway {
        routes,
        verifier,
        lambda_endpoint: setting("LAMBDA_ENDPOINT", Some("http://127.0.0.1:9000"))?,
        web_origins: setting("WEB_ORIGINS", Some("http://127.0.0.1:3000,http://localhost:3000"))?
            .split(',')
            .map(|s| s.trim().to_owned())
            .collect(),
        client: reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?,
        web: match std::env::var("WEB_ROOT") {
            Ok(root) => {
                let s3 = setting("S3_PUBLIC_ENDPOINT", None).or_else(|_| setting("AWS_ENDPOINT_URL", None))?;
                let files = reqwest::Url::parse(&s3).map_err(|e| format!("{s3}: {e}"))?.origin().ascii_serialization();
                Some(WebApp::new(root.into(), setting("WEB_CONFIG", Some("{}"))?, &files)?)
            }
            Err(_) => None,
        },
        idp: match std::env::var("DEV_KEY_FILE") {
            Ok(path) => {
                let der = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
                Some(DevIdp::new(
                    DevKey::from_pkcs8(&der)?,
                    setting("AUTH_ISSUER", None)?,
                    setting("AUTH_AUDIENCE", None)?,
                    setting("DEV_CLIENT_ID", Some("matbakh-web"))?,
                    setting("DEV_USERS", Some("demo-user"))?.split(',').map(|s| s.trim().to_owned()).collect(),
                ))
            }
            Err(_) => None,
        },
        transforms: match (std::env::var("TRANSFORM_KEYS"), std::env::var("TRANSFORM_SALTS")) {
            (Ok(keys), Ok(salts)) => Some(local_gateway::transforms::EdgeMapping {
                keys: matbakh_core::imgproxy::SigningKeys::from_hex(&keys, &salts)
                    .map_err(|e| format!("TRANSFORM_KEYS/TRANSFORM_SALTS: {e}"))?,
                bucket: setting("FILES_CDN_BUCKET", None)?,
            }),
            _ => None,
        },
        legacy_prefix: std::env::var("LEGACY_URL_PREFIX").ok().filter(|p| p.starts_with('/') && p.ends_with('/')),
        live: match std::env::var("LIVE_FUNCTION") {
            Ok(f) => Some(Arc::new(
                local_gateway::live::LiveApi::new(f, credentials()?)
                    .with_call_log(std::env::var_os("CALL_LOG").map(std::path::PathBuf::from)),
            )),
            Err(_) => None,
        },
        in_process: local_gateway::in_process::routers(&setting("IN_PROCESS", Some(""))?).await?,
        files_cdn: match std::env::var("FILES_CDN_BUCKET") {
            Ok(bucket) => Some(local_gateway::cdn::FilesCdn {
                endpoint: setting("AWS_ENDPOINT_URL", None)?,
                bucket,
                region: setting("AWS_REGION", None)?,
                credentials: credentials()?,
                access_log: std::env::var("CDN_LOGS_BUCKET").ok().map(|logs| {
                    local_gateway::cdn::AccessLog::new(
                        logs,
                        setting("CDN_LOGS_PREFIX", Some("cdn-files/")).unwrap_or_default(),
                    )
                }),
            }),
            Err(_) => None,
        },
    };
    let gateway = Arc::new(gateway);
    if gateway.files_cdn.as_ref().is_some_and(|c| c.access_log.is_some()) {
        let gw = gateway.clone();
        tokio::spawn(async move {
            let mut every =
                tokio::time::interval(std::time::Duration::from_secs(local_gateway::cdn::LOG_FLUSH_SECONDS));
            loop {
                every.tick().await;
                if let Some(cdn) = &gw.files_cdn {
                    cdn.flush_log(&gw.client).await;
                }
            }
        });
    }
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("{addr}: {e}"))?;
    tracing::info!(%addr, "local gateway listening");
    let served = axum::serve(listener, router(gateway.clone()).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string());
    if let Some(cdn) = &gateway.files_cdn {
        cdn.flush_log(&gateway.client).await;
    }
    served
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    matbakh_lambda::logs::init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("local-gateway: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
