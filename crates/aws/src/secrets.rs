//! Secrets Manager: a secret the stack generated (never in the repository or the function's
//! environment), read once when a function starts.

use aws_config::SdkConfig;

use crate::error::AwsError;

/// The text of secret `id` (its name or ARN), as stored.
pub async fn secret_string(sdk: &SdkConfig, id: &str) -> Result<String, AwsError> {
    let out = aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("GetSecretValue", e))?;
    out.secret_string.ok_or_else(|| AwsError::Config(format!("secret {id} holds no text")))
}
