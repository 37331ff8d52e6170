//! The `projects` table.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::project::{NewProject, Project, ProjectChanges};

/// Inserts a project (its name trimmed; visible to the tenant unless `new` says
/// otherwise). A taken key violates `projects_key_key`.
pub async fn insert(
    conn: &mut PgConnection,
    new: &NewProject,
    created_by: Uuid,
) -> sqlx::Result<Project> {
    sqlx::query_as!(
        Project,
        "insert into projects (id, key, name, description, created_by, visibility)
         values ($1, $2, $3, $4, $5, coalesce($6, 'tenant'))
         returning id, key, name, description, archived, visibility, created_by, created_at,
                   updated_at, version",
        Uuid::now_v7(),
        new.key,
        new.name.trim(),
        new.description,
        created_by,
        new.visibility,
    )
    .fetch_one(conn)
    .await
}

/// How many projects are not archived (what the plan's `projects` limit counts).
pub async fn count_active(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"select count(*) as "count!" from projects where not archived"#)
        .fetch_one(conn)
        .await
}

/// The newest 500 projects `user` reads, archived ones too: those whose visibility is
/// one of `as_member` where `user` is a project member, else one of `as_other`.
pub async fn list_readable(
    conn: &mut PgConnection,
    user: Uuid,
    as_member: &[&str],
    as_other: &[&str],
) -> sqlx::Result<Vec<Project>> {
    sqlx::query_as!(
        Project,
        "select id, key, name, description, archived, visibility, created_by, created_at,
                updated_at, version
         from projects p
         where visibility = any(case
             when exists(select 1 from project_members m
                         where m.project_id = p.id and m.user_id = $1) then $2::text[]
             else $3::text[] end)
         order by id desc limit 500",
        user,
        as_member as &[&str],
        as_other as &[&str],
    )
    .fetch_all(conn)
    .await
}

/// A project's visibility and whether `user` is one of its members; `None` when there is
/// no such project.
pub async fn visibility(
    conn: &mut PgConnection,
    id: Uuid,
    user: Uuid,
) -> sqlx::Result<Option<(String, bool)>> {
    let found = sqlx::query!(
        r#"select visibility,
                  exists(select 1 from project_members m
                         where m.project_id = p.id and m.user_id = $2) as "member!"
           from projects p where id = $1"#,
        id,
        user,
    )
    .fetch_optional(conn)
    .await?;
    Ok(found.map(|p| (p.visibility, p.member)))
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Project>> {
    sqlx::query_as!(
        Project,
        "select id, key, name, description, archived, visibility, created_by, created_at,
                updated_at, version
         from projects where id = $1",
        id,
    )
    .fetch_optional(conn)
    .await
}

/// The project, locked for the rest of the transaction.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Project>> {
    sqlx::query_as!(
        Project,
        "select id, key, name, description, archived, visibility, created_by, created_at,
                updated_at, version
         from projects where id = $1 for update",
        id,
    )
    .fetch_optional(conn)
    .await
}

/// Applies the fields `changes` carries (the name trimmed) and counts a new version.
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    changes: &ProjectChanges,
) -> sqlx::Result<Project> {
    sqlx::query_as!(
        Project,
        "update projects set name = coalesce($2, name), description = coalesce($3, description),
             archived = coalesce($4, archived), visibility = coalesce($5, visibility),
             updated_at = now(), version = version + 1
         where id = $1
         returning id, key, name, description, archived, visibility, created_by, created_at,
                   updated_at, version",
        id,
        changes.name.as_deref().map(str::trim),
        changes.description,
        changes.archived,
        changes.visibility,
    )
    .fetch_one(conn)
    .await
}

/// Deletes the project; its board, tasks, comments, time and activity go with it.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("delete from projects where id = $1", id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes the project's next task number; the project's row stays locked until the
/// transaction ends, so numbers are handed out in turn. `None` for a project that is not
/// there or is archived.
pub async fn take_task_number(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar!(
        r#"update projects set next_task_number = next_task_number + 1
           where id = $1 and not archived returning next_task_number - 1 as "number!""#,
        id,
    )
    .fetch_optional(conn)
    .await
}
