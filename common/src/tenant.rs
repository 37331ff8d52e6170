//! The tenant a request is for, as the gateway resolved it from the Host.
//!
//! The gateway strips any client-sent `X-Tenant-*` headers and sets `X-Tenant-Id` and
//! `X-Tenant-Slug` itself. Public tenant routes (login, accept-invite) use [`TenantCtx`];
//! authenticated ones use `AuthUser`, which also checks the token's `tid` against it.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use uuid::Uuid;

use crate::error::ApiError;
use crate::telemetry::TENANT_ID_HEADER;

pub const TENANT_SLUG_HEADER: &str = "x-tenant-slug";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantCtx {
    pub id: Uuid,
    pub slug: String,
}

/// `Option<TenantCtx>`: `None` when the request did not come through a tenant host.
impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for TenantCtx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Self as FromRequestParts<S>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TenantCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let id = header(TENANT_ID_HEADER).and_then(|v| Uuid::parse_str(v).ok());
        let slug = header(TENANT_SLUG_HEADER).filter(|s| !s.is_empty());
        match (id, slug) {
            (Some(id), Some(slug)) => Ok(Self {
                id,
                slug: slug.to_owned(),
            }),
            _ => Err(ApiError::NotFound(
                "This endpoint is served on an organisation's own host (https://<slug>.<domain>)."
                    .into(),
            )),
        }
    }
}
