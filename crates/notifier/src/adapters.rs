//! The `@connections` management API of the WebSocket API ([`ApiPush`]): a message to an open
//! socket, and the answer that it is gone (410).

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use matbakh_app::ports::{PortError, PortResult, Push, Pushed};

pub struct ApiPush {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl ApiPush {
    /// Pushes through `endpoint`: `https://{api}.execute-api.{region}.amazonaws.com/{stage}`
    /// deployed, the local gateway's management URL in the dev stack.
    pub fn new(sdk: &SdkConfig, endpoint: &str) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk).endpoint_url(endpoint).build();
        ApiPush { client: aws_sdk_apigatewaymanagement::Client::from_conf(config) }
    }
}

#[async_trait]
impl Push for ApiPush {
    async fn push(&self, connection: &str, body: &[u8]) -> PortResult<Pushed> {
        let out = self.client.post_to_connection().connection_id(connection).data(Blob::new(body)).send().await;
        match out {
            Ok(_) => Ok(Pushed::Sent),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_gone_exception()) => Ok(Pushed::Gone),
            Err(e) => {
                let message = aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&e).to_string();
                let retryable = e.as_service_error().is_none_or(|s| s.is_limit_exceeded_exception());
                Err(if retryable {
                    PortError::Unavailable { operation: "PostToConnection", message }
                } else {
                    PortError::Failed(format!("PostToConnection failed: {message}"))
                })
            }
        }
    }

    async fn disconnect(&self, connection: &str) -> PortResult<()> {
        match self.client.delete_connection().connection_id(connection).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_gone_exception()) => Ok(()),
            Err(e) => Err(PortError::Unavailable {
                operation: "DeleteConnection",
                message: aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&e).to_string(),
            }),
        }
    }
}
