//! A board's columns: ordered by a dense position (0, 1, 2, …), optionally holding at
//! most a WIP limit of tasks, and some of them meaning "done".

use common::ApiError;
use common::error::FieldError;
use common::extract::{FieldErrors, Validate};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The columns every new project's board starts with: (name, WIP limit, done).
pub const DEFAULT_BOARD: [(&str, Option<i32>, bool); 3] = [
    ("To do", None, false),
    ("In progress", Some(5), false),
    ("Done", None, true),
];

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Column {
    pub id: Uuid,
    pub name: String,
    pub position: i32,
    pub wip_limit: Option<i32>,
    pub done: bool,
}

impl Column {
    /// The answer to a column id that names none of the project's.
    pub fn missing() -> ApiError {
        ApiError::NotFound("There is no such column in this project.".into())
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewColumn {
    pub name: String,
    pub wip_limit: Option<i32>,
    #[serde(default)]
    pub done: bool,
    /// 0-based; default and past the end: last.
    pub position: Option<i32>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnChanges {
    pub name: Option<String>,
    /// A limit, or `null` for none.
    #[serde(default, deserialize_with = "some")]
    pub wip_limit: Option<Option<i32>>,
    pub done: Option<bool>,
    /// Moves the column to this 0-based position.
    pub position: Option<i32>,
}

fn some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i32>>, D::Error> {
    Option::<i32>::deserialize(d).map(Some)
}

fn check(errors: &mut FieldErrors, name: Option<&str>, wip: Option<i32>, position: Option<i32>) {
    if let Some(name) = name {
        errors.check(
            (1..=100).contains(&name.trim().chars().count()),
            "name",
            "must be 1 to 100 characters",
        );
    }
    if let Some(wip) = wip {
        errors.check(wip > 0, "wip_limit", "must be at least 1");
    }
    if let Some(position) = position {
        errors.check(position >= 0, "position", "must not be negative");
    }
}

impl Validate for NewColumn {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        check(&mut errors, Some(&self.name), self.wip_limit, self.position);
        errors.finish()
    }
}

impl Validate for ColumnChanges {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        check(
            &mut errors,
            self.name.as_deref(),
            self.wip_limit.flatten(),
            self.position,
        );
        errors.finish()
    }
}
