//! Recording accesses: who, what, when, from where, with what result; a record in the
//! owner's trail (DynamoDB, kept `AUDIT_RETENTION_DAYS`) and a structured log line
//! (target `audit`). A record that cannot be written fails the request: an access is never
//! granted unrecorded.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use http::request::Parts;
use lambda_http::request::RequestContext;
use matbakh_aws::audit::AuditEntry;
use matbakh_core::audit::AuditAction;
use matbakh_core::ids::{FileId, UserId};

use crate::{ApiError, Services};

/// Longest user agent kept in a record.
pub const MAX_USER_AGENT_CHARS: usize = 256;

/// Where a request came from: API Gateway's view of the source IP (never a client-supplied
/// header) and the user agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub ip: String,
    pub user_agent: String,
}

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
        Ok(Client { ip: ip.unwrap_or_else(|| "unknown".into()), user_agent })
    }
}

/// One access to record.
pub struct Access<'a> {
    /// Whose trail: the file's owner.
    pub owner: &'a UserId,
    pub action: AuditAction,
    pub file_id: Option<FileId>,
    /// `None`: the owner acted; else who did (`share:{id}`).
    pub actor: Option<String>,
    pub result: &'a str,
}

impl<'a> Access<'a> {
    /// The owner acted on `file_id` (or on their account) and it succeeded: most accesses.
    pub fn ok(owner: &'a UserId, action: AuditAction, file_id: Option<FileId>) -> Self {
        Access { owner, action, file_id, actor: None, result: "ok" }
    }
}

/// Writes the record and the log line. A visitor's use of a share link keeps their address
/// and user agent in the log only (abuse handling), never in the owner's trail.
pub async fn record(st: &Services, client: &Client, access: Access<'_>) -> Result<(), ApiError> {
    let (ip, user_agent) = if access.action == AuditAction::ShareDownload {
        Default::default()
    } else {
        (client.ip.clone(), client.user_agent.clone())
    };
    let entry = AuditEntry {
        user: access.owner.clone(),
        action: access.action,
        actor: access.actor.unwrap_or_else(|| "owner".into()),
        file_id: access.file_id,
        result: access.result.to_owned(),
        ip,
        user_agent,
        at: st.clock.now(),
    };
    tracing::info!(
        target: "audit",
        user = %entry.user,
        action = %entry.action,
        actor = %entry.actor,
        file_id = ?entry.file_id.map(|f| f.to_string()),
        result = %entry.result,
        ip = %client.ip,
        user_agent = %client.user_agent,
        "access"
    );
    let nonce = u64::from_be_bytes(crate::random_bytes()?);
    st.table.put_audit(&entry, st.limits.audit_retention, nonce).await?;
    Ok(())
}
