//! Does the target of a new link exist in the caller's tenant? project-service answers,
//! asked with the caller's own credentials (their `Authorization` and the gateway's
//! tenant headers), so a link can only point at what its creator may read.

use std::time::Duration;

use axum::http::HeaderMap;
use common::ApiError;
use common::tenant::TENANT_SLUG_HEADER;
use reqwest::StatusCode;

use crate::domain::Target;

const FORWARDED: [&str; 3] = [
    "authorization",
    common::telemetry::TENANT_ID_HEADER,
    TENANT_SLUG_HEADER,
];

/// `Ok` when project-service shows the target to the caller; 422 when it does not
/// exist there (or the caller may not see it); 503 when project-service cannot say.
pub async fn check_exists(
    http: &reqwest::Client,
    project_service_url: &str,
    headers: &HeaderMap,
    target: Target,
) -> Result<(), ApiError> {
    let url = format!(
        "{}{}",
        project_service_url.trim_end_matches('/'),
        target.api_path()
    );
    let mut request = http.get(&url).timeout(Duration::from_secs(5));
    for name in FORWARDED {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value.clone());
        }
    }
    if let Some(id) = common::telemetry::current_request_id() {
        request = request.header(common::telemetry::REQUEST_ID_HEADER, id);
    }
    let unavailable = |detail: String| {
        tracing::warn!(url, detail, "project-service could not check a link target");
        ApiError::Unavailable {
            retry_after: 5,
            detail: "Cannot check the link's target right now; try again shortly.".into(),
        }
    };
    match request.send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) if matches!(resp.status(), StatusCode::NOT_FOUND | StatusCode::FORBIDDEN) => {
            Err(ApiError::Custom {
                status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                kind: "unknown-target",
                title: "Unknown Target",
                detail: format!(
                    "There is no {} {} in your organisation that you can see.",
                    target.kind.as_str(),
                    target.id
                ),
            })
        }
        Ok(resp) => Err(unavailable(format!("status {}", resp.status()))),
        Err(err) => Err(unavailable(err.to_string())),
    }
}
