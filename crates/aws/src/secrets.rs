//! Secrets Manager: a secret the stack generated (never in the repository or the function's
//! environment), read once when a function starts.

use aws_config::SdkConfig;
use matbakh_core::delivery::CdnSigner;
use matbakh_core::imgproxy::SigningKeys;

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

/// The key of the erase pseudonyms (DECISIONS 17), in secret `id` (`ERASE_PSEUDONYM_SECRET_ID`):
/// the account function records erases under it, the migration checks erased users with it.
pub async fn pseudonym_key(sdk: &SdkConfig, id: &str) -> Result<matbakh_core::audit::PseudonymKey, String> {
    let text = secret_string(sdk, id).await.map_err(|e| format!("ERASE_PSEUDONYM_SECRET_ID {id}: {e}"))?;
    matbakh_core::audit::PseudonymKey::new(text.as_bytes()).map_err(|e| e.to_string())
}

/// The transform signing pairs in secret `id`: JSON `{"keys": "hex,...", "salts": "hex,..."}`
/// (as `TRANSFORM_KEYS` and `TRANSFORM_SALTS`), at least one pair. The transformer verifies
/// with them; the files API signs image URLs with the first.
pub async fn transform_keys(sdk: &SdkConfig, id: &str) -> Result<SigningKeys, String> {
    let text = secret_string(sdk, id).await.map_err(|e| format!("TRANSFORM_SECRET_ID {id}: {e}"))?;
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let (Some(keys), Some(salts)) = (json["keys"].as_str(), json["salts"].as_str()) else {
        return Err(format!("TRANSFORM_SECRET_ID {id}: not JSON with \"keys\" and \"salts\""));
    };
    let keys = SigningKeys::from_hex(keys, salts).map_err(|e| format!("TRANSFORM_SECRET_ID {id}: {e}"))?;
    if keys.is_empty() {
        return Err(format!("TRANSFORM_SECRET_ID {id}: no key/salt pair"));
    }
    Ok(keys)
}

/// The files CDN's signing key, for the functions that hand out URLs of private files:
/// `FILES_CDN_KEY_PAIR_ID` (the CloudFront public key's id), and the PEM of slot
/// `FILES_CDN_SIGNING_SLOT` (`A` unless set) in secret `FILES_CDN_SIGNING_SECRET_ID`, JSON
/// `{"A": PEM, "B": PEM}` written by `scripts/cdn-keys` (two slots, so a rotation never changes
/// a key CloudFront trusts in place, DECISIONS 31). `None` where either is unset or the slot
/// holds no key yet: private files then get presigned S3 URLs. A key that is not a P-256 key is
/// an error.
pub async fn cdn_signer(sdk: &SdkConfig, env: impl Fn(&str) -> Option<String>) -> Result<Option<CdnSigner>, String> {
    let set = |k: &str| env(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let (Some(id), Some(secret)) = (set("FILES_CDN_KEY_PAIR_ID"), set("FILES_CDN_SIGNING_SECRET_ID")) else {
        return Ok(None);
    };
    let slot = set("FILES_CDN_SIGNING_SLOT").unwrap_or_else(|| "A".into());
    let text = secret_string(sdk, &secret).await.map_err(|e| format!("FILES_CDN_SIGNING_SECRET_ID {secret}: {e}"))?;
    let Some(pem) = slot_pem(&text, &slot) else {
        tracing::warn!(%slot, "the files CDN's signing secret holds no key in this slot (scripts/cdn-keys create): presigned S3 URLs");
        return Ok(None);
    };
    CdnSigner::from_pem(&id, &pem)
        .map(Some)
        .map_err(|e| format!("FILES_CDN_SIGNING_SECRET_ID {secret} slot {slot}: {e}"))
}

/// The PEM in `slot` of the signing secret's JSON, if it holds one.
fn slot_pem(secret: &str, slot: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(secret).ok()?;
    json.get(slot)?.as_str().filter(|pem| pem.contains("-----BEGIN")).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::slot_pem;

    #[test]
    fn the_active_slot_names_the_key_and_an_empty_one_none() {
        let secret = r#"{"A": "-----BEGIN PRIVATE KEY-----\nA\n-----END PRIVATE KEY-----", "B": ""}"#;
        assert_eq!(slot_pem(secret, "A").as_deref(), Some("-----BEGIN PRIVATE KEY-----\nA\n-----END PRIVATE KEY-----"));
        assert_eq!(slot_pem(secret, "B"), None, "an empty slot");
        assert_eq!(slot_pem(secret, "C"), None, "no such slot");
        assert_eq!(slot_pem("", "A"), None, "a secret as CloudFormation makes it");
        assert_eq!(slot_pem("-----BEGIN PRIVATE KEY-----", "A"), None, "not the slots' JSON");
    }
}
