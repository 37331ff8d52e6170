//! The pages' content, read from the grant's tenant database: the task with its
//! subtasks and comments (authors and assignee by name), or the project's board.

use std::collections::HashMap;

use sqlx::PgConnection;
use uuid::Uuid;

use super::grant::Refused;
use crate::AppState;
use crate::db;
use crate::domain::comment::{Comment, render};
use crate::domain::share::{Progress, ProjectPage, SharedColumn, SharedComment, TaskPage};

/// Display names of tenant members; a page still renders (with "a member") when
/// user-service cannot say.
async fn names(state: &AppState, tenant: Uuid, ids: &[Uuid]) -> HashMap<Uuid, String> {
    crate::upstream::members(state, tenant, ids, "Member names")
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.id, m.name))
        .collect()
}

/// The task page of task `id` of `tenant`; [`Refused::Gone`] when it has been deleted.
pub async fn task(
    state: &AppState,
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> Result<TaskPage, Refused> {
    let mut task = db::shared::task(conn, id).await?.ok_or(Refused::Gone)?;
    let subtasks = db::shared::subtasks(conn, id).await?;
    let found = db::comments::of_task(conn, id).await?;
    let mut people: Vec<Uuid> = found.iter().map(|c| c.author_id).collect();
    people.extend(task.assignee_id);
    people.sort();
    people.dedup();
    let names = names(state, tenant, &people).await;
    let name_of = |id: Uuid| {
        names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| "a member".to_owned())
    };
    task.assignee = task.assignee_id.map(name_of);
    // Replies right after the comment they answer.
    let mut ordered: Vec<&Comment> = found.iter().filter(|c| c.parent_id.is_none()).collect();
    ordered = ordered
        .into_iter()
        .flat_map(|top| {
            std::iter::once(top).chain(found.iter().filter(move |c| c.parent_id == Some(top.id)))
        })
        .collect();
    let comments = ordered
        .into_iter()
        .map(|c| SharedComment {
            author: name_of(c.author_id),
            created_at: c.created_at,
            reply: c.parent_id.is_some(),
            html: render(&c.body),
        })
        .collect();
    Ok(TaskPage {
        description_html: render(&task.description),
        progress: Progress {
            done: subtasks.iter().filter(|s| s.done).count(),
            total: subtasks.len(),
        },
        task,
        subtasks,
        comments,
    })
}

/// The board page of project `id`; [`Refused::Gone`] when it has been deleted.
pub async fn project(conn: &mut PgConnection, id: Uuid) -> Result<ProjectPage, Refused> {
    let project = db::projects::find(conn, id).await?.ok_or(Refused::Gone)?;
    let columns = db::columns::of_project(conn, id).await?;
    let mut cards = db::shared::cards(conn, id).await?;
    Ok(ProjectPage {
        key: project.key,
        name: project.name,
        description_html: render(&project.description),
        columns: columns
            .into_iter()
            .map(|column| SharedColumn {
                name: column.name,
                done: column.done,
                tasks: cards
                    .extract_if(.., |(of, _)| *of == column.id)
                    .map(|(_, card)| card)
                    .collect(),
            })
            .collect(),
    })
}
