//! Time tracking: work logs on tasks (with the day the work was done), one running
//! timer per user, and totals over tasks, subtasks and projects.

use chrono::{DateTime, NaiveDate, Utc};
use common::ApiError;
use common::error::FieldError;
use common::extract::{FieldErrors, Validate};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkLog {
    pub id: Uuid,
    pub task_id: Uuid,
    pub project_id: Uuid,
    pub user_id: Uuid,
    pub minutes: i32,
    /// The day the work was done (not when it was logged).
    pub worked_on: NaiveDate,
    pub note: String,
    pub created_at: DateTime<Utc>,
}

impl WorkLog {
    /// The answer to a work log id that names none of the task's.
    pub fn missing() -> ApiError {
        ApiError::NotFound("There is no such work log.".into())
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkLog {
    /// 1 to 1440.
    pub minutes: i32,
    /// Default: today (UTC).
    pub worked_on: Option<NaiveDate>,
    #[serde(default)]
    pub note: String,
}

impl Validate for NewWorkLog {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        errors.check(
            (1..=1440).contains(&self.minutes),
            "minutes",
            "must be 1 to 1440",
        );
        errors.check(
            self.note.chars().count() <= 2000,
            "note",
            "must be at most 2000 characters",
        );
        errors.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Timer {
    pub task_id: Uuid,
    pub started_at: DateTime<Utc>,
}

impl Timer {
    /// The whole minutes it has run (at least one, at most a day), as it is logged.
    pub fn minutes(&self, now: DateTime<Utc>) -> i32 {
        let elapsed = (now - self.started_at).num_seconds().max(0);
        i32::try_from((elapsed + 30) / 60)
            .unwrap_or(1440)
            .clamp(1, 1440)
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TimerStarted {
    pub timer: Timer,
    /// The work log of the timer this start stopped, if one was running.
    pub stopped: Option<WorkLog>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskTime {
    /// Logged on the task itself.
    pub minutes: i64,
    /// The task and all its subtasks.
    pub total_minutes: i64,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// First day, inclusive.
    pub from: Option<NaiveDate>,
    /// Last day, inclusive.
    pub to: Option<NaiveDate>,
    pub user_id: Option<Uuid>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Minutes {
    pub id: Uuid,
    pub minutes: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectTime {
    pub total_minutes: i64,
    /// Per user (`id` is the user).
    pub by_user: Vec<Minutes>,
    /// Per task (`id` is the task), its own logs only.
    pub by_task: Vec<Minutes>,
}

/// One line of the CSV export.
#[derive(Debug)]
pub struct ExportRow {
    pub worked_on: NaiveDate,
    /// The task's key, `WEB-42`.
    pub task: String,
    pub user_id: Uuid,
    pub minutes: i32,
    pub note: String,
    pub logged_at: DateTime<Utc>,
}
