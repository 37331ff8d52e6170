//! The one error type of the HTTP APIs, rendered as RFC 9457 `application/problem+json`.
//!
//! Client mistakes carry a useful `detail`; server faults are logged with their cause and
//! answered with a body that says nothing internal. Every body carries the `request_id`
//! so a user's report can be matched to the log line.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::telemetry::current_request_id;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request, as listed in a validation problem's `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The RFC 9457 body. Also the OpenAPI schema of every error response.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request could not be understood (bad syntax, bad parameter).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 400 with `errors`: some fields are missing, of the wrong type or break a rule.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 401: no credentials, or credentials that do not verify.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 403: authenticated, but not allowed.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404: nothing here (also used instead of 403 where existence must not leak).
    #[error("not found: {0}")]
    NotFound(String),
    /// 409: the request conflicts with the current state (duplicate, limit, WIP).
    #[error("conflict: {0}")]
    Conflict(String),
    /// 412: an `If-Match` precondition failed.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// 429: slow down; `retry_after` seconds until a retry may succeed.
    #[error("too many requests")]
    TooManyRequests { retry_after: u64, detail: String },
    /// 503: a dependency is down; `retry_after` seconds as a hint.
    #[error("service unavailable: {detail}")]
    Unavailable { retry_after: u64, detail: String },
    /// Any other problem with its own status and type (plan limits, WIP limits, …).
    #[error("{title}: {detail}")]
    Custom {
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: String,
    },
    /// 500: our fault. The cause is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(err).context("database"))
    }
}

impl ApiError {
    /// 423 `tenant-suspended`: the organisation exists but is suspended.
    pub fn tenant_suspended() -> Self {
        Self::Custom {
            status: StatusCode::LOCKED,
            kind: "tenant-suspended",
            title: "Organisation Suspended",
            detail: "This organisation is suspended.".into(),
        }
    }

    /// 409 `plan-limit`: the plan allows no more of something; `detail` names it.
    pub fn plan_limit(detail: impl Into<String>) -> Self {
        Self::Custom {
            status: StatusCode::CONFLICT,
            kind: "plan-limit",
            title: "Plan Limit Reached",
            detail: detail.into(),
        }
    }

    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Custom { status, .. } => *status,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem body for this error. Internal errors get a generic detail.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let (kind, detail, errors) = match self {
            Self::BadRequest(d) => ("bad-request", d.clone(), vec![]),
            Self::Validation(errors) => (
                "validation",
                "The request has invalid fields; see `errors`.".to_owned(),
                errors.clone(),
            ),
            Self::Unauthorized(d) => ("unauthorized", d.clone(), vec![]),
            Self::Forbidden(d) => ("forbidden", d.clone(), vec![]),
            Self::NotFound(d) => ("not-found", d.clone(), vec![]),
            Self::Conflict(d) => ("conflict", d.clone(), vec![]),
            Self::PreconditionFailed(d) => ("precondition-failed", d.clone(), vec![]),
            Self::TooManyRequests { detail, .. } => ("rate-limited", detail.clone(), vec![]),
            Self::Unavailable { detail, .. } => ("unavailable", detail.clone(), vec![]),
            Self::Custom { kind, detail, .. } => (*kind, detail.clone(), vec![]),
            Self::Internal(_) => (
                "internal",
                "Something went wrong on our side. It has been logged; quote the request_id when reporting it."
                    .to_owned(),
                vec![],
            ),
        };
        let title = match self {
            Self::Custom { title, .. } => (*title).to_owned(),
            _ => status.canonical_reason().unwrap_or("Error").to_owned(),
        };
        Problem {
            type_: problem_type(kind),
            title,
            status: status.as_u16(),
            detail,
            request_id: current_request_id(),
            errors,
        }
    }
}

/// The `type` URI of a problem kind: a page of the API docs, relative to the API host.
pub fn problem_type(kind: &str) -> String {
    format!("/docs/problems#{kind}")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(err) => tracing::error!(error = format!("{err:#}"), "request failed"),
            err if err.status().is_server_error() => tracing::warn!(error = %err, "request failed"),
            _ => tracing::debug!(error = %self, "request refused"),
        }
        let mut response = problem_response(&self.problem());
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"nexus\""),
                );
            }
            Self::TooManyRequests { retry_after, .. } | Self::Unavailable { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            _ => {}
        }
        response
    }
}

/// Renders a problem body with its status and media type.
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let err = ApiError::from(anyhow::anyhow!("relation \"users\" does not exist"));
        let problem = err.problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("relation"), "{}", problem.detail);
    }

    #[test]
    fn validation_problems_list_their_fields() {
        let err = ApiError::validation("slug", "must be 3 to 32 characters");
        let body = serde_json::to_value(err.problem()).expect("serializes");
        assert_eq!(body["status"], 400);
        assert_eq!(body["type"], "/docs/problems#validation");
        assert_eq!(body["errors"][0]["field"], "slug");
    }
}
