//! Errors as HTTP answers: a status and a JSON body `{error, message, field?}`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use matbakh_app::PortError;
use matbakh_aws::AwsError;
use matbakh_core::CoreError;
use serde_json::json;

/// An error answer. `code` is stable for programs, `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<&'static str>,
    /// Seconds after which the same request may be admitted (`Retry-After`, with a `429`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), field: None, retry_after: None }
    }

    pub fn bad_field(field: &'static str, message: impl Into<String>) -> Self {
        ApiError { field: Some(field), ..Self::new(StatusCode::BAD_REQUEST, "invalid_field", message) }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no such {what}"))
    }

    /// Over a budget ([`matbakh_core::throttle`]): `429`, with `Retry-After` and the same
    /// number as `retryAfter` in the body.
    pub fn too_many(message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        ApiError {
            retry_after: Some(retry_after.as_secs().max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }

    /// A failure on our side. The detail goes to the log, never to the caller.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "something went wrong on our side")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        match self.retry_after {
            Some(seconds) => {
                body["retryAfter"] = json!(seconds);
                (self.status, [(http::header::RETRY_AFTER, seconds.to_string())], Json(body)).into_response()
            }
            None => (self.status, Json(body)).into_response(),
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let message = e.to_string();
        match e {
            CoreError::Invalid { field, .. } => ApiError::bad_field(field, message),
            CoreError::TypeNotAllowed(_) => {
                ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "type_not_allowed", message)
            }
            CoreError::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message),
            CoreError::QuotaExceeded { .. } => ApiError::new(StatusCode::CONFLICT, "quota_exceeded", message),
        }
    }
}

impl From<PortError> for ApiError {
    fn from(e: PortError) -> Self {
        match e {
            PortError::QuotaExceeded => {
                ApiError::new(StatusCode::CONFLICT, "quota_exceeded", "this upload would exceed your storage quota")
            }
            PortError::TooManyOpenUploads => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_open_uploads",
                "you have as many unfinished uploads as allowed; complete or abort one first",
            ),
            PortError::AccountErased => ApiError::new(
                StatusCode::CONFLICT,
                "account_erased",
                "this account was erased; it takes new uploads and exports again once the erase has finished (about an hour after it)",
            ),
            PortError::AlreadyExists => ApiError::new(StatusCode::CONFLICT, "conflict", "the resource already exists"),
            PortError::Invalid(message) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message),
            // S3 moved the original to the archive class before the row knew (its event is late).
            PortError::NotRestored => ApiError::new(
                StatusCode::CONFLICT,
                "archived",
                "this file is archived; restore it with POST /v1/files/{fileId}/unarchive, then try again",
            ),
            PortError::ChecksumMismatch(detail) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "checksum_mismatch",
                format!(
                    "the uploaded bytes do not match the declared checksum ({detail}); re-upload the parts or abort"
                ),
            ),
            e @ PortError::Unavailable { .. } => {
                tracing::warn!(error = %e, "dependency unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "please try again shortly")
            }
            e @ (PortError::ConditionFailed | PortError::Failed(_)) => ApiError::internal(&e),
        }
    }
}

/// The adapters' errors answer as the port errors they are.
impl From<AwsError> for ApiError {
    fn from(e: AwsError) -> Self {
        PortError::from(e).into()
    }
}

impl From<matbakh_app::Error> for ApiError {
    fn from(e: matbakh_app::Error) -> Self {
        use matbakh_app::Error;
        match e {
            Error::NotFound(what) => ApiError::not_found(what),
            Error::BadField { field, message } => ApiError::bad_field(field, message),
            Error::Forbidden { code, message } => ApiError::new(StatusCode::FORBIDDEN, code, message),
            Error::Conflict { code, message } => ApiError::new(StatusCode::CONFLICT, code, message),
            Error::Gone { code, message } => ApiError::new(StatusCode::GONE, code, message),
            Error::TooLarge { code, message } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, code, message),
            Error::Unauthorized(message) => ApiError::unauthorized(message),
            Error::TooMany { message, retry_after } => ApiError::too_many(message, retry_after),
            Error::Rule(e) => e.into(),
            Error::Port(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(e: ApiError) -> (StatusCode, serde_json::Value) {
        let resp = e.into_response();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn core_errors_map_to_their_statuses() {
        let cases = [
            (CoreError::invalid("size", "bad"), StatusCode::BAD_REQUEST, "invalid_field"),
            (CoreError::TypeNotAllowed("text/html".into()), StatusCode::UNSUPPORTED_MEDIA_TYPE, "type_not_allowed"),
            (
                CoreError::TooLarge { size: 2, limit: 1, content_type: "image/png".into() },
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
            ),
            (CoreError::QuotaExceeded { requested: 2, available: 1 }, StatusCode::CONFLICT, "quota_exceeded"),
        ];
        for (err, status, code) in cases {
            let api = ApiError::from(err);
            assert_eq!((api.status, api.code), (status, code));
        }
    }

    #[test]
    fn aws_errors_hide_their_detail() {
        let secret = "arn:aws:dynamodb:eu-central-1:123456789012:table/x";
        let e = ApiError::from(AwsError::Service { operation: "GetItem", message: secret.into(), retryable: false });
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("arn:"));
        let e = ApiError::from(AwsError::Service { operation: "GetItem", message: secret.into(), retryable: true });
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ApiError::from(AwsError::QuotaExceeded).status, StatusCode::CONFLICT);
    }

    #[tokio::test]
    async fn body_is_json_with_code_message_and_field() {
        let (status, body) = body_of(ApiError::bad_field("size", "size: must be a whole number")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({"error": "invalid_field", "message": "size: must be a whole number", "field": "size"}));
        let (_, body) = body_of(ApiError::not_found("file")).await;
        assert!(body.get("field").is_none());
        assert!(body.get("retryAfter").is_none());
    }

    #[tokio::test]
    async fn over_budget_says_when_to_come_back() {
        let e = ApiError::from(matbakh_app::Error::TooMany {
            message: "slow down".into(),
            retry_after: std::time::Duration::from_secs(18),
        });
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[http::header::RETRY_AFTER], "18");
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body, json!({"error": "rate_limited", "message": "slow down", "retryAfter": 18}));
    }
}
