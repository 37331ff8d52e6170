//! Service-to-service calls: `/internal/...` endpoints require
//! `Authorization: Bearer <INTERNAL_TOKEN>`, and the gateway never routes them.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The internal token a service accepts, as state handlers can extract.
#[derive(Clone)]
pub struct InternalToken(pub Arc<SecretString>);

impl InternalToken {
    pub fn new(token: SecretString) -> Self {
        Self(Arc::new(token))
    }

    /// Compares in constant time, so the token cannot be guessed byte by byte.
    pub fn matches(&self, presented: &str) -> bool {
        let expected = self.0.expose_secret().as_bytes();
        expected.ct_eq(presented.as_bytes()).into()
    }

    /// The header value for calling another service's internal endpoints.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0.expose_secret())
    }
}

/// Proof that the caller is another Nexus service. Reject: 401 problem.
#[derive(Debug, Clone, Copy)]
pub struct InternalCaller;

impl<S> FromRequestParts<S> for InternalCaller
where
    InternalToken: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = InternalToken::from_ref(state);
        let presented = crate::auth::bearer_of(parts).unwrap_or_default();
        if token.matches(presented) {
            Ok(Self)
        } else {
            Err(ApiError::Unauthorized(
                "Internal endpoints need the internal service token.".into(),
            ))
        }
    }
}

/// user-service's `GET /internal/users?ids=…&tenant_id=…`: which of `ids` are active
/// members of `tenant`, in whatever shape `T` reads of `{id, name, email}`.
pub async fn members<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    user_service_url: &str,
    token: &InternalToken,
    tenant: uuid::Uuid,
    ids: &[uuid::Uuid],
) -> reqwest::Result<Vec<T>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = ids
        .iter()
        .map(uuid::Uuid::to_string)
        .collect::<Vec<_>>()
        .join(",");
    http.get(format!(
        "{}/internal/users",
        user_service_url.trim_end_matches('/')
    ))
    .query(&[("ids", list), ("tenant_id", tenant.to_string())])
    .header(reqwest::header::AUTHORIZATION, token.bearer())
    .send()
    .await?
    .error_for_status()?
    .json()
    .await
}

/// user-service's `GET /internal/tenants/{tenant}/users?permission=…`: the active members
/// of `tenant` whose role grants `permission`, in whatever shape `T` reads of
/// `{id, name, email}`.
pub async fn holders<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    user_service_url: &str,
    token: &InternalToken,
    tenant: uuid::Uuid,
    permission: crate::auth::Perm,
) -> reqwest::Result<Vec<T>> {
    http.get(format!(
        "{}/internal/tenants/{tenant}/users",
        user_service_url.trim_end_matches('/')
    ))
    .query(&[("permission", permission.as_str())])
    .header(reqwest::header::AUTHORIZATION, token.bearer())
    .send()
    .await?
    .error_for_status()?
    .json()
    .await
}

/// tenant-resolver's `GET /internal/tenants`, page by page: every active tenant's id.
pub async fn active_tenants(
    http: &reqwest::Client,
    tenant_resolver_url: &str,
    token: &InternalToken,
) -> reqwest::Result<Vec<uuid::Uuid>> {
    #[derive(serde::Deserialize)]
    struct Page {
        items: Vec<uuid::Uuid>,
        next: Option<uuid::Uuid>,
    }
    let url = format!(
        "{}/internal/tenants",
        tenant_resolver_url.trim_end_matches('/')
    );
    let mut all = Vec::new();
    let mut after: Option<uuid::Uuid> = None;
    loop {
        let mut request = http
            .get(&url)
            .query(&[("limit", "1000")])
            .header(reqwest::header::AUTHORIZATION, token.bearer());
        if let Some(after) = after {
            request = request.query(&[("after", after.to_string())]);
        }
        let page: Page = request.send().await?.error_for_status()?.json().await?;
        all.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(all),
        }
    }
}
