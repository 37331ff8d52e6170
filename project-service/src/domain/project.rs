//! Projects: a key their tasks are numbered under (`WEB-42`), a name and a description,
//! archived or active.

use chrono::{DateTime, Utc};
use common::ApiError;
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
        errors.finish()
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub archived: Option<bool>,
}

impl Validate for ProjectChanges {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        if let Some(name) = &self.name {
            check_name(&mut errors, name);
        }
        errors.finish()
    }
}
