//! The `board_columns` table. Positions stay dense (0, 1, 2, …) within a project: the
//! functions that insert, move or delete a column shift its neighbours in the same
//! transaction (the unique position is checked at commit).

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::column::{Column, ColumnChanges, DEFAULT_BOARD, NewColumn};

/// Inserts the columns of [`DEFAULT_BOARD`] into a new project.
pub async fn insert_default_board(conn: &mut PgConnection, project: Uuid) -> sqlx::Result<()> {
    for (position, (name, wip_limit, done)) in (0..).zip(DEFAULT_BOARD) {
        sqlx::query!(
            "insert into board_columns (id, project_id, name, position, wip_limit, done)
             values ($1, $2, $3, $4, $5, $6)",
            Uuid::now_v7(),
            project,
            name,
            position,
            wip_limit,
            done,
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Inserts a column (its name trimmed) at `position`, moving the columns from there on
/// one place right.
pub async fn insert_at(
    conn: &mut PgConnection,
    project: Uuid,
    new: &NewColumn,
    position: i32,
) -> sqlx::Result<Column> {
    sqlx::query!(
        "update board_columns set position = position + 1
         where project_id = $1 and position >= $2",
        project,
        position,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query_as!(
        Column,
        "insert into board_columns (id, project_id, name, position, wip_limit, done)
         values ($1, $2, $3, $4, $5, $6) returning id, name, position, wip_limit, done",
        Uuid::now_v7(),
        project,
        new.name.trim(),
        position,
        new.wip_limit,
        new.done,
    )
    .fetch_one(conn)
    .await
}

/// The project's columns in board order.
pub async fn of_project(conn: &mut PgConnection, project: Uuid) -> sqlx::Result<Vec<Column>> {
    sqlx::query_as!(
        Column,
        "select id, name, position, wip_limit, done from board_columns
         where project_id = $1 order by position",
        project,
    )
    .fetch_all(conn)
    .await
}

/// Locks every column of the project (in id order, so concurrent callers cannot
/// deadlock) and counts them: changes to a board's columns take turns.
pub async fn lock_all(conn: &mut PgConnection, project: Uuid) -> sqlx::Result<i32> {
    let ids = sqlx::query_scalar!(
        "select id from board_columns where project_id = $1 order by id for update",
        project,
    )
    .fetch_all(conn)
    .await?;
    Ok(i32::try_from(ids.len()).unwrap_or(i32::MAX))
}

/// A column of the project.
pub async fn find(
    conn: &mut PgConnection,
    project: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Column>> {
    sqlx::query_as!(
        Column,
        "select id, name, position, wip_limit, done from board_columns
         where id = $1 and project_id = $2",
        id,
        project,
    )
    .fetch_optional(conn)
    .await
}

/// A column of the project, locked for the rest of the transaction: moves and creates
/// of tasks into one column take turns, so WIP limits and positions hold.
pub async fn lock(
    conn: &mut PgConnection,
    project: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Column>> {
    sqlx::query_as!(
        Column,
        "select id, name, position, wip_limit, done from board_columns
         where id = $1 and project_id = $2 for update",
        id,
        project,
    )
    .fetch_optional(conn)
    .await
}

/// The project's first column, locked as [`lock`] does.
pub async fn lock_first(conn: &mut PgConnection, project: Uuid) -> sqlx::Result<Option<Column>> {
    sqlx::query_as!(
        Column,
        "select id, name, position, wip_limit, done from board_columns
         where project_id = $1 order by position limit 1 for update",
        project,
    )
    .fetch_optional(conn)
    .await
}

/// Applies `changes` to a column (a name trimmed; a WIP limit absent is kept, `null`
/// clears it) and puts it at `position`, moving the columns between the old and the new
/// place one over.
pub async fn update(
    conn: &mut PgConnection,
    project: Uuid,
    before: &Column,
    changes: &ColumnChanges,
    position: i32,
) -> sqlx::Result<Column> {
    if position != before.position {
        sqlx::query!(
            "update board_columns set position = case
                 when $3::integer > $2::integer and position > $2 and position <= $3
                     then position - 1
                 when $3 < $2 and position >= $3 and position < $2 then position + 1
                 else position end
             where project_id = $1 and id <> $4",
            project,
            before.position,
            position,
            before.id,
        )
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query_as!(
        Column,
        "update board_columns set name = coalesce($2, name), wip_limit = $3,
             done = coalesce($4, done), position = $5
         where id = $1 returning id, name, position, wip_limit, done",
        before.id,
        changes.name.as_deref().map(str::trim),
        changes.wip_limit.unwrap_or(before.wip_limit),
        changes.done,
        position,
    )
    .fetch_one(conn)
    .await
}

/// Whether any task sits in the column.
pub async fn holds_tasks(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists(select 1 from tasks where column_id = $1) as "exists!""#,
        id,
    )
    .fetch_one(conn)
    .await
}

/// Deletes a column, moving the columns after it one place left.
pub async fn delete(conn: &mut PgConnection, project: Uuid, column: &Column) -> sqlx::Result<()> {
    sqlx::query!("delete from board_columns where id = $1", column.id)
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "update board_columns set position = position - 1
         where project_id = $1 and position > $2",
        project,
        column.position,
    )
    .execute(conn)
    .await?;
    Ok(())
}
