//! Who made a request, for the audit trail (`matbakh_app::audit`): API Gateway's view of the
//! source IP (never a client-supplied header) and the user agent.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use http::request::Parts;
use lambda_http::request::RequestContext;

/// Longest user agent kept in a record.
pub const MAX_USER_AGENT_CHARS: usize = 256;

/// The request's [`matbakh_app::audit::Client`], as an extractor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client(pub matbakh_app::audit::Client);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = match parts.extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone(),
            _ => None,
        };
        let user_agent = parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().filter(|c| !c.is_control()).take(MAX_USER_AGENT_CHARS).collect())
            .unwrap_or_default();
        Ok(Client(matbakh_app::audit::Client { ip: ip.unwrap_or_else(|| "unknown".into()), user_agent }))
    }
}
