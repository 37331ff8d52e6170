//! The `project_members` table.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::member::Member;

/// The project's members, earliest first.
pub async fn of_project(conn: &mut PgConnection, project: Uuid) -> sqlx::Result<Vec<Member>> {
    sqlx::query_as!(
        Member,
        "select user_id, role, added_at from project_members
         where project_id = $1 order by added_at",
        project,
    )
    .fetch_all(conn)
    .await
}

/// A member's role, locked for the rest of the transaction; `None` for a non-member.
pub async fn lock_role(
    conn: &mut PgConnection,
    project: Uuid,
    user: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "select role from project_members where project_id = $1 and user_id = $2 for update",
        project,
        user,
    )
    .fetch_optional(conn)
    .await
}

/// Adds `user` with `role`, or gives a member `role`.
pub async fn put(
    conn: &mut PgConnection,
    project: Uuid,
    user: Uuid,
    role: &str,
) -> sqlx::Result<Member> {
    sqlx::query_as!(
        Member,
        "insert into project_members (project_id, user_id, role) values ($1, $2, $3)
         on conflict (project_id, user_id) do update set role = excluded.role
         returning user_id, role, added_at",
        project,
        user,
        role,
    )
    .fetch_one(conn)
    .await
}

/// Removes a member, answering the role they had; `None` for a non-member.
pub async fn delete(
    conn: &mut PgConnection,
    project: Uuid,
    user: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "delete from project_members where project_id = $1 and user_id = $2 returning role",
        project,
        user,
    )
    .fetch_optional(conn)
    .await
}
