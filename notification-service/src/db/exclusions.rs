//! Members told nothing more (`notification_exclusions`): removed from the tenant (scope
//! the nil UUID) or from a project (scope the project).

use sqlx::PgConnection;
use uuid::Uuid;

/// Stops notifications to `user` within `scope`.
pub async fn add(conn: &mut PgConnection, user: Uuid, scope: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into notification_exclusions (user_id, scope) values ($1, $2)
         on conflict do nothing",
        user,
        scope,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Lets `user` be told again within `scope`.
pub async fn remove(conn: &mut PgConnection, user: Uuid, scope: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "delete from notification_exclusions where user_id = $1 and scope = $2",
        user,
        scope,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Which of `users` are excluded from the tenant or from `project`.
pub async fn among(
    conn: &mut PgConnection,
    users: &[Uuid],
    project: Uuid,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "select user_id from notification_exclusions
          where user_id = any($1) and scope in ($2, '00000000-0000-0000-0000-000000000000')",
        users,
        project,
    )
    .fetch_all(conn)
    .await
}
