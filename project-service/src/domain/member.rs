//! A project's members and their project role.

use chrono::{DateTime, Utc};
use common::error::FieldError;
use common::extract::{FieldErrors, Validate};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The project roles.
const ROLES: [&str; 3] = ["lead", "member", "viewer"];

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    pub role: String,
    pub added_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRole {
    /// `lead`, `member` or `viewer`.
    pub role: String,
}

impl Validate for MemberRole {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        errors.check(
            ROLES.contains(&self.role.as_str()),
            "role",
            "must be one of lead, member, viewer",
        );
        errors.finish()
    }
}
