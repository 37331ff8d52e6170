//! Tasks: numbered per project (`WEB-42`), placed in a column at a dense position, with
//! a priority and optional assignee, labels, due date, estimate and parent task.

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use common::ApiError;
use common::error::FieldError;
use common::extract::{FieldErrors, Validate};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const PRIORITIES: [&str; 4] = ["low", "medium", "high", "urgent"];

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Task {
    pub id: Uuid,
    pub project_id: Uuid,
    pub number: i32,
    /// `<project key>-<number>`, e.g. `WEB-42`.
    pub key: String,
    pub title: String,
    pub description: String,
    pub column_id: Uuid,
    pub position: i32,
    pub priority: String,
    pub assignee_id: Option<Uuid>,
    pub reporter_id: Uuid,
    pub labels: Vec<String>,
    pub due_date: Option<NaiveDate>,
    pub estimate_minutes: Option<i32>,
    pub parent_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl Task {
    /// The answer to a task id that names none.
    pub fn missing() -> ApiError {
        ApiError::NotFound("There is no such task.".into())
    }
}

/// The fields a PATCH can change that differ between `before` and `after` (what
/// `task.updated` names), in the order of [`TaskChanges`].
pub fn changed_fields(before: &Task, after: &Task) -> Vec<&'static str> {
    [
        ("title", before.title != after.title),
        ("description", before.description != after.description),
        ("priority", before.priority != after.priority),
        ("assignee_id", before.assignee_id != after.assignee_id),
        ("labels", before.labels != after.labels),
        ("due_date", before.due_date != after.due_date),
        (
            "estimate_minutes",
            before.estimate_minutes != after.estimate_minutes,
        ),
    ]
    .into_iter()
    .filter_map(|(field, changed)| changed.then_some(field))
    .collect()
}

/// The answer to a create or move into a column that holds its WIP limit of tasks.
pub fn column_full(limit: i32) -> ApiError {
    ApiError::Custom {
        status: StatusCode::CONFLICT,
        kind: "wip-limit",
        title: "Column Full",
        detail: format!("The column holds its WIP limit of {limit} tasks already."),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub priority: Option<String>,
    pub assignee_id: Option<Uuid>,
    #[serde(default)]
    pub labels: Vec<String>,
    pub due_date: Option<NaiveDate>,
    pub estimate_minutes: Option<i32>,
    pub parent_id: Option<Uuid>,
    /// The column to start in (default: the board's first).
    pub column_id: Option<Uuid>,
}

fn check_fields(
    errors: &mut FieldErrors,
    title: Option<&str>,
    priority: Option<&str>,
    labels: Option<&[String]>,
    estimate: Option<i32>,
) {
    if let Some(title) = title {
        errors.check(
            (1..=500).contains(&title.trim().chars().count()),
            "title",
            "must be 1 to 500 characters",
        );
    }
    if let Some(priority) = priority {
        errors.check(
            PRIORITIES.contains(&priority),
            "priority",
            "must be one of low, medium, high, urgent",
        );
    }
    if let Some(labels) = labels {
        errors.check(
            labels.len() <= 20 && labels.iter().all(|l| (1..=50).contains(&l.chars().count())),
            "labels",
            "at most 20 labels of 1 to 50 characters",
        );
    }
    if let Some(estimate) = estimate {
        errors.check(estimate >= 0, "estimate_minutes", "must not be negative");
    }
}

impl Validate for NewTask {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        check_fields(
            &mut errors,
            Some(&self.title),
            self.priority.as_deref(),
            Some(&self.labels),
            self.estimate_minutes,
        );
        errors.check(
            self.description.chars().count() <= 50_000,
            "description",
            "must be at most 50000 characters",
        );
        errors.finish()
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskChanges {
    pub title: Option<String>,
    pub description: Option<String>,
    pub priority: Option<String>,
    /// A user id, or `null` to unassign.
    #[serde(default, with = "serde_with_none")]
    pub assignee_id: Option<Option<Uuid>>,
    pub labels: Option<Vec<String>>,
    pub due_date: Option<NaiveDate>,
    pub estimate_minutes: Option<i32>,
}

/// `Option<Option<T>>` for PATCH: absent → `None`, `null` → `Some(None)`.
mod serde_with_none {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

impl Validate for TaskChanges {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        check_fields(
            &mut errors,
            self.title.as_deref(),
            self.priority.as_deref(),
            self.labels.as_deref(),
            self.estimate_minutes,
        );
        errors.finish()
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Move {
    pub column_id: Uuid,
    /// 0-based; past the end means last.
    pub position: i32,
}

impl Validate for Move {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        errors.check(self.position >= 0, "position", "must not be negative");
        errors.finish()
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TaskFilter {
    pub column_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    pub label: Option<String>,
    pub priority: Option<String>,
    pub parent_id: Option<Uuid>,
    pub due_before: Option<NaiveDate>,
    pub due_after: Option<NaiveDate>,
    /// Words to find in the title or description.
    pub q: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl TaskFilter {
    /// 400 for a priority that is none.
    pub fn check(&self) -> Result<(), ApiError> {
        match &self.priority {
            Some(priority) if !PRIORITIES.contains(&priority.as_str()) => Err(
                ApiError::validation("priority", "must be one of low, medium, high, urgent"),
            ),
            _ => Ok(()),
        }
    }

    /// The task the page starts after (400 for a cursor this API did not give out).
    pub fn after(&self) -> Result<Option<Uuid>, ApiError> {
        self.cursor
            .as_deref()
            .map(|c| {
                Uuid::parse_str(c).map_err(|_| {
                    ApiError::validation("cursor", "is not a cursor this API gave out")
                })
            })
            .transpose()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskPage {
    pub items: Vec<Task>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub total: i64,
    pub done: i64,
}
