//! What a share page shows (`/shared/tasks/{id}`, `/shared/projects/{id}`): a task with
//! its subtasks and comments, or a project's board. Only what is safe to show to whoever
//! holds the link: names instead of user ids, markdown rendered and sanitised.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SharedTask {
    pub key: String,
    pub title: String,
    /// Markdown, as written.
    pub description: String,
    /// The name of the board column it is in.
    pub status: String,
    pub done: bool,
    pub priority: String,
    #[serde(skip)]
    pub assignee_id: Option<Uuid>,
    pub assignee: Option<String>,
    pub due_date: Option<NaiveDate>,
    pub project: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SharedSubtask {
    pub key: String,
    pub title: String,
    pub status: String,
    pub done: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SharedComment {
    pub author: String,
    pub created_at: DateTime<Utc>,
    pub reply: bool,
    /// The comment's markdown rendered and sanitised.
    pub html: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskPage {
    pub task: SharedTask,
    /// `description` rendered and sanitised.
    pub description_html: String,
    pub subtasks: Vec<SharedSubtask>,
    pub progress: Progress,
    pub comments: Vec<SharedComment>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectPage {
    pub key: String,
    pub name: String,
    pub description_html: String,
    pub columns: Vec<SharedColumn>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SharedColumn {
    pub name: String,
    pub done: bool,
    pub tasks: Vec<SharedCard>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SharedCard {
    pub key: String,
    pub title: String,
    pub priority: String,
}
