//! Who is calling: access-token claims, roles and their permissions, token verification
//! against user-service's JWKS, and the `AuthUser` extractor handlers use.

pub mod access;
mod keys;
pub mod revocations;
mod roles;
mod verify;

pub use keys::SigningKey;
pub use roles::{Perm, Role};
pub use verify::{AuthError, JwtVerifier};

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::{header, request::Parts};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::telemetry::TENANT_ID_HEADER;

/// `iss` of every Nexus access token.
pub const ISSUER: &str = "nexus";
/// `aud` of every Nexus access token.
pub const AUDIENCE: &str = "nexus-api";
/// Lifetime of an access token.
pub const ACCESS_TOKEN_TTL_SECS: i64 = 15 * 60;

/// The claims of an access token, as the design contract fixes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: Uuid,
    /// Tenant id the token is valid for.
    pub tid: Uuid,
    /// Tenant slug (for display and URLs; `tid` is what is checked).
    pub tslug: String,
    pub role: Role,
    /// Permission names; unknown names (from a newer user-service) are kept and ignored.
    pub perms: Vec<String>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
}

impl Claims {
    /// Claims for a fresh access token of `user` in `tenant`, with the role's permissions.
    pub fn new(user: Uuid, tenant: Uuid, tenant_slug: &str, role: Role) -> Self {
        let now = chrono::Utc::now().timestamp();
        Self {
            sub: user,
            tid: tenant,
            tslug: tenant_slug.to_owned(),
            role,
            perms: role
                .permissions()
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp: now + ACCESS_TOKEN_TTL_SECS,
            nbf: Some(now),
            jti: Uuid::now_v7().to_string(),
        }
    }
}

/// The verified caller of a request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub tenant_slug: String,
    pub role: Role,
    pub claims: Claims,
}

impl AuthUser {
    pub fn has(&self, perm: Perm) -> bool {
        self.claims.perms.iter().any(|p| p == perm.as_str())
    }

    /// `Ok` when the token grants `perm`, else a 403 problem naming it.
    pub fn require(&self, perm: Perm) -> Result<(), ApiError> {
        if self.has(perm) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "This action needs the `{}` permission, which the role `{}` does not have.",
                perm.as_str(),
                self.role.as_str()
            )))
        }
    }
}

/// Verifies the bearer token with the state's [`JwtVerifier`]. When the gateway has set
/// `X-Tenant-Id`, the token's `tid` must equal it (defence in depth against a token of
/// one tenant used on another's host). The result is cached in the request's extensions.
impl<S> FromRequestParts<S> for AuthUser
where
    Arc<JwtVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<Self>() {
            return Ok(user.clone());
        }
        let token = bearer_of(parts)
            .ok_or_else(|| ApiError::Unauthorized("A bearer access token is required.".into()))?;
        let verifier = Arc::<JwtVerifier>::from_ref(state);
        let claims = verifier.verify(token).await.map_err(ApiError::from)?;
        if let Some(host_tenant) = parts.headers.get(TENANT_ID_HEADER) {
            let matches = host_tenant
                .to_str()
                .ok()
                .and_then(|v| Uuid::parse_str(v).ok())
                .is_some_and(|id| id == claims.tid);
            if !matches {
                return Err(ApiError::Forbidden(
                    "This token belongs to another organisation.".into(),
                ));
            }
        }
        let user = Self {
            user_id: claims.sub,
            tenant_id: claims.tid,
            tenant_slug: claims.tslug.clone(),
            role: claims.role,
            claims,
        };
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

/// The bearer token of a request's `Authorization` field, by [`bearer_token`].
pub fn bearer_of(parts: &Parts) -> Option<&str> {
    bearer_token(parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// The token of an `Authorization` value `Bearer <token>`: the one parser for access
/// tokens (services and the gateway) and the internal token alike.
///
/// RFC 9110 §11.4 with RFC 6750 §2.1, strictly: the scheme `Bearer` in any letter case
/// (auth schemes are case-insensitive, RFC 9110 §11.1), one or more spaces, then a
/// token68 (letters, digits, `- . _ ~ + /`, `=` only as trailing padding) and nothing
/// else. Whitespace around the whole value is not part of it (RFC 9110 §5.5). Anything
/// else is no token: another scheme, a missing or empty token, spaces or commas inside it
/// (no auth-params, no second credential).
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let value = authorization.trim_matches([' ', '\t']);
    let (scheme, rest) = value.split_once(' ')?;
    let token = rest.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && is_token68(token)).then_some(token)
}

/// Whether `text` is a token68 (RFC 9110 §11.2), the syntax of a bearer token.
pub fn is_token68(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::{bearer_token, is_token68};

    #[test]
    fn a_bearer_token_is_the_scheme_in_any_case_spaces_and_a_token68() {
        let jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2ln-_";
        for value in [
            format!("Bearer {jwt}"),
            format!("bearer {jwt}"),
            format!("BEARER  {jwt}"),
            format!(" Bearer {jwt}\t"),
        ] {
            assert_eq!(bearer_token(&value), Some(jwt), "{value:?}");
        }
        assert_eq!(bearer_token("Bearer abc+/="), Some("abc+/="));
    }

    #[test]
    fn anything_else_is_no_bearer_token() {
        for value in [
            "",
            "Bearer",
            "Bearer ",
            "Bearer  ",
            "Basic dXNlcjpwYXNz",
            "Bearerabc",
            "Bearer\tabc",
            "Bearer a b",
            "Bearer a,b",
            "Bearer abc, Basic xyz",
            "Bearer realm=\"x\"",
            "Bearer =abc",
            "Bearer a=b",
            "Bearer ===",
            "Bearer é",
        ] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
        assert!(is_token68("nexus-dev-internal-token"));
        assert!(!is_token68("has space"));
    }
}
