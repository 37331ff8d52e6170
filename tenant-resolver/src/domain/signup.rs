//! The signup request, checked in full before anything is created.

use common::FieldError;
use common::extract::{FieldErrors, Validate};
use serde::Deserialize;

use super::{Plan, Slug};

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    /// Subdomain and identity of the organisation: 3–32 of `a-z 0-9 -`.
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub plan: Option<Plan>,
    pub owner: OwnerRequest,
}

/// The organisation's first user, who becomes its owner.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerRequest {
    pub email: String,
    /// 8 to 128 characters.
    pub password: String,
    pub name: String,
}

impl std::fmt::Debug for OwnerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerRequest")
            .field("email", &self.email)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SignupRequest {
    /// The slug, once `validate` has passed.
    pub fn slug(&self) -> Slug {
        Slug::parse(&self.slug).expect("validated before use")
    }
}

fn display_name_ok(name: &str) -> bool {
    let trimmed = name.trim();
    !trimmed.is_empty() && trimmed.chars().count() <= 100 && !trimmed.chars().any(char::is_control)
}

/// A pragmatic check: one `@`, something on each side, no spaces, at most 254 bytes.
/// Whether the address works is proven by mail, not by a regex.
pub fn email_ok(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl Validate for SignupRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        if let Err(message) = Slug::parse(&self.slug) {
            errors.push("slug", message);
        }
        errors
            .check(
                display_name_ok(&self.name),
                "name",
                "must be 1 to 100 characters",
            )
            .check(
                email_ok(&self.owner.email),
                "owner.email",
                "must be an email address",
            )
            .check(
                (8..=128).contains(&self.owner.password.chars().count()),
                "owner.password",
                "must be 8 to 128 characters",
            )
            .check(
                display_name_ok(&self.owner.name),
                "owner.name",
                "must be 1 to 100 characters",
            );
        errors.finish()
    }
}
