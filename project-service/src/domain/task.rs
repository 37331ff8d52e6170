//! Tasks: numbered per project (`WEB-42`), placed in a column at a dense position, with
//! optional assignee, labels, due date, estimate and parent task.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

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
