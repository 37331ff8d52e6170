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

/// Who of `users` is told nothing of `project`: `(user, None)` for a member removed
/// from the tenant or the project, `(user, Some(kind))` for one who keeps `kind` out of
/// their inbox.
pub async fn left_out(
    conn: &mut PgConnection,
    users: &[Uuid],
    project: Uuid,
) -> sqlx::Result<Vec<(Uuid, Option<String>)>> {
    let rows = sqlx::query!(
        r#"select user_id as "user_id!", null::text as "kind?" from notification_exclusions
            where user_id = any($1) and scope in ($2, '00000000-0000-0000-0000-000000000000')
           union all
           select user_id, kind from notification_preferences
            where user_id = any($1) and not in_app"#,
        users,
        project,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.user_id, r.kind)).collect())
}
