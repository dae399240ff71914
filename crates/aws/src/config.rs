//! Settings read from the environment, as the SAM template passes them, and the shared
//! AWS SDK configuration built once per process.

use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_types::app_name::AppName;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

use crate::error::AwsError;
use crate::s3::S3Store;

/// Names of the resources a function works on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `BUCKET_NAME`: the platform bucket.
    pub bucket: String,
    /// `TABLE_NAME`: the metadata table.
    pub table: String,
    /// `S3_PUBLIC_ENDPOINT`: where browsers reach S3, when it is not AWS's own endpoint.
    pub s3_public_endpoint: Option<String>,
}

impl Settings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AwsError> {
        let required = |name: &str| {
            lookup(name).filter(|v| !v.is_empty()).ok_or_else(|| AwsError::Config(format!("{name} is not set")))
        };
        Ok(Settings {
            bucket: required("BUCKET_NAME")?,
            table: required("TABLE_NAME")?,
            s3_public_endpoint: lookup("S3_PUBLIC_ENDPOINT")
                .or_else(|| lookup("AWS_ENDPOINT_URL_S3"))
                .or_else(|| lookup("AWS_ENDPOINT_URL"))
                .filter(|v| !v.is_empty()),
        })
    }

    pub fn from_env() -> Result<Self, AwsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// The disaster-recovery replica (template-replica.yaml): `REPLICA_BUCKET` in `REPLICA_REGION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSettings {
    pub bucket: String,
    pub region: String,
}

impl ReplicaSettings {
    /// Both set: the replica; both empty or unset: none; one without the other: an error.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, AwsError> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        match (get("REPLICA_BUCKET"), get("REPLICA_REGION")) {
            (None, None) => Ok(None),
            (Some(bucket), Some(region)) => Ok(Some(ReplicaSettings { bucket, region })),
            _ => Err(AwsError::Config("REPLICA_BUCKET and REPLICA_REGION are set together or not at all".into())),
        }
    }

    /// The replica's bucket, reached like the platform bucket but in the replica's region.
    pub fn store(&self, sdk: &SdkConfig) -> Result<S3Store, AwsError> {
        let sdk = sdk.to_builder().region(Region::new(self.region.clone())).build();
        S3Store::new(&sdk, &self.bucket, None)
    }
}

/// The GDPR erase's settings (the `account` and `eraser` functions), read once at start.
#[derive(Debug, Clone)]
pub struct EraseSettings {
    /// Keys the pseudonym the erase is recorded under.
    pub pseudonym_key: matbakh_core::audit::PseudonymKey,
    /// The disaster-recovery replica, where the user's originals are erased too.
    pub replica: Option<S3Store>,
    /// The migration queue, told of each erase (`migrate::erased`).
    pub migration: Option<crate::queue::Queue>,
    /// The queue the erase's second pass waits in (`core::erasure`).
    pub again: Option<crate::queue::Queue>,
}

impl EraseSettings {
    /// From the environment: the key is the Secrets Manager secret `ERASE_PSEUDONYM_SECRET_ID`
    /// names (the function refuses to start without it); the replica is `REPLICA_BUCKET` in
    /// `REPLICA_REGION` (both empty: none); the migration queue is `MIGRATION_QUEUE_URL` (empty:
    /// a stack without a migration); the second pass's queue is `ERASE_AGAIN_QUEUE_URL` (the
    /// function refuses to start without it: an erase without its second pass could leave a
    /// file that landed just after it). The files CDN (`FILES_DISTRIBUTION_ID`) comes with the
    /// services.
    pub async fn from_lookup(sdk: &SdkConfig, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let secret_id = get("ERASE_PSEUDONYM_SECRET_ID").ok_or("ERASE_PSEUDONYM_SECRET_ID is not set")?;
        let again = get("ERASE_AGAIN_QUEUE_URL").ok_or("ERASE_AGAIN_QUEUE_URL is not set")?;
        let pseudonym_key = crate::secrets::pseudonym_key(sdk, &secret_id).await?;
        let migration = get("MIGRATION_QUEUE_URL").map(|url| crate::queue::Queue::new(sdk, url));
        let replica = ReplicaSettings::from_lookup(&lookup).and_then(|r| r.map(|r| r.store(sdk)).transpose());
        Ok(EraseSettings {
            pseudonym_key,
            replica: replica.map_err(|e| e.to_string())?,
            migration,
            again: Some(crate::queue::Queue::new(sdk, again)),
        })
    }
}

/// The SDK configuration of the functions (and of the local gateway, the tests and the
/// benchmarks), from the environment alone: the region (`AWS_REGION`, else
/// `AWS_DEFAULT_REGION`), the credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`: what Lambda gives a function, and what moto is given locally) and the
/// endpoints (`AWS_ENDPOINT_URL_<SERVICE>`, such as `AWS_ENDPOINT_URL_S3`, else
/// `AWS_ENDPOINT_URL`), with aws-config's defaults for the rest (standard retries, 3 attempts; a
/// 3.1 s connect timeout; the SDK's sleep and clock) and our HTTP client ([`crate::http`]). Not aws-config's default
/// chain (profile files, web identity through STS, ECS, IMDS), which no function uses and which
/// was 0.9 MB of every arm64 bootstrap; nor its other settings from the environment
/// (`AWS_MAX_ATTEMPTS`, `AWS_RETRY_MODE`, `AWS_USE_FIPS_ENDPOINT`...: the template sets none).
/// The migration CLI, run by operators with their profiles, keeps the chain:
/// [`load_sdk_config_chain`].
pub async fn load_sdk_config() -> SdkConfig {
    sdk_config_from_env(|name| std::env::var(name).ok())
}

/// [`load_sdk_config`] from `lookup` (for the region and the endpoints; the credentials are read
/// from the process environment when a request is signed).
pub fn sdk_config_from_env(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> SdkConfig {
    let region = lookup("AWS_REGION").or_else(|| lookup("AWS_DEFAULT_REGION")).filter(|r| !r.is_empty());
    let function = lookup("AWS_LAMBDA_FUNCTION_NAME").filter(|n| !n.is_empty());
    let credentials = match function.clone().filter(|_| lookup(LOCAL_SIGNER_NAMES).as_deref() == Some("1")) {
        Some(function) => SharedCredentialsProvider::new(NamedSigner {
            credentials: SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()),
            function,
        }),
        None => SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()),
    };
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region.map(Region::new))
        .credentials_provider(credentials)
        .http_client(crate::http::sdk_http_client())
        .retry_config(RetryConfig::standard())
        .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_millis(3100)).build());
    // As aws-config: the global one is the configuration's own too (S3Store tells a local S3 by it).
    builder.set_endpoint_url(lookup("AWS_ENDPOINT_URL").filter(|u| !u.is_empty()));
    // Every request names the function that made it (`app/{name}` in its user agent): in
    // CloudTrail, and locally, where `scripts/iam_calls.py` checks each function's calls
    // against its policy in the template (moto checks no IAM).
    builder.set_app_name(function.and_then(|name| AppName::new(name).ok()));
    builder.service_config(EndpointsFromEnv(Box::new(lookup))).build()
}

/// Set to `1` by `scripts/dev` alone (never deployed): each function signs with its name
/// appended to the environment's access key id (`local.presign`). A presigned request carries
/// no user agent of the function's (the browser sends it), so its key is what tells
/// `scripts/iam_calls.py` whose policy must allow it. moto accepts any key.
pub const LOCAL_SIGNER_NAMES: &str = "LOCAL_SIGNER_NAMES";

/// `credentials` with the access key id `{id}.{function}` ([`LOCAL_SIGNER_NAMES`]).
#[derive(Debug)]
struct NamedSigner {
    credentials: SharedCredentialsProvider,
    function: String,
}

impl aws_credential_types::provider::ProvideCredentials for NamedSigner {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            let c = self.credentials.provide_credentials().await?;
            Ok(aws_credential_types::Credentials::new(
                format!("{}.{}", c.access_key_id(), self.function),
                c.secret_access_key(),
                c.session_token().map(str::to_owned),
                c.expiry(),
                "LocalSignerNames",
            ))
        })
    }
}

/// aws-config's default chain (profiles, SSO, web identity, IMDS...): for the migration CLI,
/// which operators run with their own credentials, and through the proxy the environment names
/// (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`: [`crate::http::sdk_http_client_via`]).
pub async fn load_sdk_config_chain() -> SdkConfig {
    let http = crate::http::sdk_http_client_via(crate::http::Matcher::from_env());
    aws_config::defaults(BehaviorVersion::latest()).http_client(http).load().await
}

/// What each SDK client asks of the environment: its endpoint, `AWS_ENDPOINT_URL_<SERVICE ID>`
/// (upper case, spaces as `_`: `S3`, `DYNAMODB`, `SECRETS_MANAGER`), else `AWS_ENDPOINT_URL`, as
/// aws-config reads them.
struct EndpointsFromEnv(Lookup);

type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

impl std::fmt::Debug for EndpointsFromEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndpointsFromEnv")
    }
}

impl LoadServiceConfig for EndpointsFromEnv {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        let service = key.service_id().to_uppercase().replace(' ', "_");
        let get = |name: &str| (self.0)(name).filter(|v| !v.is_empty());
        get(&format!("{}_{service}", key.env())).or_else(|| get(key.env()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn the_sdk_configuration_comes_from_the_environment() {
        let vars = [
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:3900"),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:4000"),
        ];
        let owned = move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned());
        let sdk = sdk_config_from_env(owned);
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("us-east-1"));
        assert_eq!(sdk.endpoint_url(), Some("http://127.0.0.1:5000"));
        assert!(sdk.credentials_provider().is_some());
        let endpoint = |service: &str| {
            let key = ServiceConfigKey::builder().service_id(service).env("AWS_ENDPOINT_URL").profile("endpoint_url");
            sdk.service_config().unwrap().load_config(key.build().unwrap())
        };
        assert_eq!(endpoint("S3").as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(endpoint("Secrets Manager").as_deref(), Some("http://127.0.0.1:4000"));
        assert_eq!(endpoint("DynamoDB").as_deref(), Some("http://127.0.0.1:5000"));

        let deployed = sdk_config_from_env(|k| (k == "AWS_REGION").then(|| "eu-central-1".to_owned()));
        assert_eq!(deployed.region().map(|r| r.as_ref()), Some("eu-central-1"));
        assert_eq!(deployed.endpoint_url(), None);
        let key = ServiceConfigKey::builder().service_id("S3").env("AWS_ENDPOINT_URL").profile("endpoint_url");
        assert_eq!(deployed.service_config().unwrap().load_config(key.build().unwrap()), None);
    }

    #[tokio::test]
    async fn a_named_signer_appends_the_function_to_the_key_id() {
        use aws_credential_types::provider::ProvideCredentials;
        let credentials = aws_credential_types::Credentials::new("local", "secret", Some("t".into()), None, "test");
        let named =
            NamedSigner { credentials: SharedCredentialsProvider::new(credentials), function: "presign".into() };
        let c = named.provide_credentials().await.unwrap();
        assert_eq!(
            (c.access_key_id(), c.secret_access_key(), c.session_token()),
            ("local.presign", "secret", Some("t"))
        );
    }

    #[test]
    fn a_replica_needs_its_bucket_and_its_region() {
        assert_eq!(ReplicaSettings::from_lookup(lookup(&[])).unwrap(), None);
        assert_eq!(
            ReplicaSettings::from_lookup(lookup(&[("REPLICA_BUCKET", ""), ("REPLICA_REGION", "")])).unwrap(),
            None
        );
        let both = [("REPLICA_BUCKET", "dr-files"), ("REPLICA_REGION", "eu-west-1")];
        let replica = ReplicaSettings { bucket: "dr-files".into(), region: "eu-west-1".into() };
        assert_eq!(ReplicaSettings::from_lookup(lookup(&both)).unwrap(), Some(replica));
        for half in [[both[0]], [both[1]]] {
            let err = ReplicaSettings::from_lookup(lookup(&half)).unwrap_err();
            assert!(matches!(err, AwsError::Config(_)), "{err}");
        }
    }
}
