//! What the share pages read beyond the resources' own queries: a task with its
//! column's name and project's name, its subtasks, and a board's cards.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::share::{SharedCard, SharedSubtask, SharedTask};

/// A task as its share page shows it (the assignee's name still to be filled in).
pub async fn task(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<SharedTask>> {
    sqlx::query_as!(
        SharedTask,
        r#"select p.key || '-' || t.number as "key!", t.title, t.description,
                  c.name as status, c.done, t.priority, t.assignee_id,
                  null::text as assignee, t.due_date, p.name as project
           from tasks t join projects p on p.id = t.project_id
                join board_columns c on c.id = t.column_id
           where t.id = $1"#,
        id,
    )
    .fetch_optional(conn)
    .await
}

/// A task's subtasks, by number.
pub async fn subtasks(conn: &mut PgConnection, parent: Uuid) -> sqlx::Result<Vec<SharedSubtask>> {
    sqlx::query_as!(
        SharedSubtask,
        r#"select p.key || '-' || t.number as "key!", t.title, c.name as status, c.done
           from tasks t join projects p on p.id = t.project_id
                join board_columns c on c.id = t.column_id
           where t.parent_id = $1 order by t.number"#,
        parent,
    )
    .fetch_all(conn)
    .await
}

/// A project's top-level tasks as board cards, each with its column, by position.
pub async fn cards(
    conn: &mut PgConnection,
    project: Uuid,
) -> sqlx::Result<Vec<(Uuid, SharedCard)>> {
    let rows = sqlx::query!(
        r#"select t.column_id, p.key || '-' || t.number as "key!", t.title, t.priority
           from tasks t join projects p on p.id = t.project_id
           where t.project_id = $1 and t.parent_id is null order by t.position"#,
        project,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let card = SharedCard {
                key: r.key,
                title: r.title,
                priority: r.priority,
            };
            (r.column_id, card)
        })
        .collect())
}
