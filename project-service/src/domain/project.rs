//! Projects: a key their tasks are numbered under (`WEB-42`), a name and a description,
//! archived or active, and who reads them (`visibility`, [`common::auth::access`]).

use chrono::{DateTime, Utc};
use common::ApiError;
use common::auth::access::VISIBILITIES;
use common::error::FieldError;
use common::extract::{FieldErrors, Validate};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Project {
    pub id: Uuid,
    pub key: String,
    pub name: String,
    pub description: String,
    pub archived: bool,
    /// `tenant` (every member of the tenant reads it) or `members` (its project members
    /// and those who manage projects).
    pub visibility: String,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl Project {
    /// The answer to a project id that names none.
    pub fn missing() -> ApiError {
        ApiError::NotFound("There is no such project.".into())
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// 2–10 characters, A–Z and 0–9, starting with a letter (task keys read `KEY-42`).
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `tenant` (the default) or `members`.
    pub visibility: Option<String>,
}

fn check_visibility(errors: &mut FieldErrors, visibility: Option<&str>) {
    errors.check(
        visibility.is_none_or(|v| VISIBILITIES.contains(&v)),
        "visibility",
        "must be tenant or members",
    );
}

fn check_name(errors: &mut FieldErrors, name: &str) {
    errors.check(
        (1..=200).contains(&name.trim().chars().count()),
        "name",
        "must be 1 to 200 characters",
    );
}

impl Validate for NewProject {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let key = self.key.as_bytes();
        errors.check(
            (2..=10).contains(&key.len())
                && key[0].is_ascii_uppercase()
                && key
                    .iter()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
            "key",
            "must be 2 to 10 characters of A-Z and 0-9, starting with a letter",
        );
        check_name(&mut errors, &self.name);
        errors.check(
            self.description.chars().count() <= 10_000,
            "description",
            "must be at most 10000 characters",
        );
        check_visibility(&mut errors, self.visibility.as_deref());
        errors.finish()
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub archived: Option<bool>,
    /// `tenant` or `members`.
    pub visibility: Option<String>,
}

impl Validate for ProjectChanges {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        if let Some(name) = &self.name {
            check_name(&mut errors, name);
        }
        check_visibility(&mut errors, self.visibility.as_deref());
        errors.finish()
    }
}
