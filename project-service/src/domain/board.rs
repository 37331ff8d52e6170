//! The board view: a project's columns in order, each with its tasks in order.

use serde::Serialize;

use super::column::Column;
use super::project::Project;
use super::task::Task;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BoardColumn {
    #[serde(flatten)]
    pub column: Column,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Board {
    pub project: Project,
    pub columns: Vec<BoardColumn>,
}
