//! Asks user-service to create a new tenant's owner, or to undo that for a signup that
//! failed (internal API, see `docs/DESIGN.md`).

use std::time::Duration;

use common::FieldError;
use common::internal::InternalToken;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::OwnerRequest;

#[derive(Clone)]
pub struct UserService {
    http: reqwest::Client,
    base_url: String,
    token: InternalToken,
}

#[derive(Serialize)]
struct CreateOwner<'a> {
    tenant_slug: &'a str,
    email: &'a str,
    password: &'a str,
    name: &'a str,
}

#[derive(Deserialize)]
struct Created {
    user_id: Uuid,
}

#[derive(Deserialize, Default)]
struct ProblemBody {
    #[serde(default)]
    detail: String,
    #[serde(default)]
    errors: Vec<FieldError>,
}

#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    /// user-service refused the owner's details (its own rules): the client's to fix.
    #[error("the owner was refused: {detail}")]
    Refused {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// user-service could not be reached or failed.
    #[error("user-service is unavailable: {0}")]
    Unavailable(String),
}

impl UserService {
    pub fn new(http: reqwest::Client, base_url: &str, token: InternalToken) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// `POST /internal/tenants/{id}/owner`; returns the owner's user id.
    pub async fn create_owner(
        &self,
        tenant_id: Uuid,
        tenant_slug: &str,
        owner: &OwnerRequest,
    ) -> Result<Uuid, OwnerError> {
        let response = self
            .http
            .post(format!(
                "{}/internal/tenants/{tenant_id}/owner",
                self.base_url
            ))
            .header(reqwest::header::AUTHORIZATION, self.token.bearer())
            .timeout(Duration::from_secs(10))
            .json(&CreateOwner {
                tenant_slug,
                email: &owner.email,
                password: &owner.password,
                name: &owner.name,
            })
            .send()
            .await
            .map_err(|e| OwnerError::Unavailable(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json::<Created>()
                .await
                .map(|c| c.user_id)
                .map_err(|e| OwnerError::Unavailable(format!("unexpected answer: {e}")));
        }
        if status.is_client_error()
            && status != reqwest::StatusCode::UNAUTHORIZED
            && status != reqwest::StatusCode::NOT_FOUND
        {
            let problem: ProblemBody = response.json().await.unwrap_or_default();
            let errors = problem
                .errors
                .into_iter()
                .map(|e| {
                    FieldError::new(
                        format!("owner.{}", e.field.trim_start_matches("owner.")),
                        e.message,
                    )
                })
                .collect();
            return Err(OwnerError::Refused {
                detail: problem.detail,
                errors,
            });
        }
        Err(OwnerError::Unavailable(format!("answered {status}")))
    }

    /// `DELETE /internal/tenants/{id}/owner/{user_id}`: undoes [`Self::create_owner`]
    /// for a signup that failed after it (already undone counts as done).
    pub async fn remove_owner(&self, tenant_id: Uuid, user_id: Uuid) -> anyhow::Result<()> {
        let status = self
            .http
            .delete(format!(
                "{}/internal/tenants/{tenant_id}/owner/{user_id}",
                self.base_url
            ))
            .header(reqwest::header::AUTHORIZATION, self.token.bearer())
            .timeout(Duration::from_secs(10))
            .send()
            .await?
            .status();
        anyhow::ensure!(
            status.is_success() || status == reqwest::StatusCode::NOT_FOUND,
            "user-service answered {status}"
        );
        Ok(())
    }
}
