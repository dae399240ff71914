//! The `shares` crate's integration tests, in one test binary (one link, not 2); each
//! module's own comment says what it covers.

mod garage;
mod moto;

/// The links' settings in every test: one key, so a test can open what the function signed.
fn links() -> matbakh_app::shares::Links {
    let key = matbakh_core::shares::ShareKey::from_bytes(&[7u8; 32]).unwrap();
    matbakh_app::shares::Links { key, public_api_url: Some("https://files.test".into()) }
}

/// The function under test, with [`links`].
fn router(services: matbakh_aws::Services, auth: std::sync::Arc<matbakh_api::Authenticator>) -> axum::Router {
    shares::router(services, auth, links())
}

#[tokio::test]
async fn the_function_does_not_start_without_its_signing_key_setting() {
    let sdk = aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
    let missing = shares::links_from_env(&sdk, |_| None).await.unwrap_err();
    assert!(missing.contains("SHARE_SIGNING_SECRET_ID"), "{missing}");
}
