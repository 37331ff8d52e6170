//! Members told nothing more (`notification_exclusions`): removed from the tenant (scope
//! the nil UUID) or from a project (scope the project).

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::fanout::LeftOut;

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

/// Who of `users` is told nothing of which of `projects`, and who keeps which kinds out
/// of their inbox: every such row, for [`LeftOut::keeps`] to read.
pub async fn left_out(
    conn: &mut PgConnection,
    users: &[Uuid],
    projects: &[Uuid],
) -> sqlx::Result<LeftOut> {
    let rows = sqlx::query!(
        r#"select user_id as "user_id!", scope as "scope?", null::text as "kind?"
             from notification_exclusions
            where user_id = any($1)
              and (scope = any($2) or scope = '00000000-0000-0000-0000-000000000000')
           union all
           select user_id, null::uuid, kind from notification_preferences
            where user_id = any($1) and not in_app"#,
        users,
        projects,
    )
    .fetch_all(conn)
    .await?;
    let mut left_out = LeftOut::default();
    for row in rows {
        match (row.scope, row.kind) {
            (Some(scope), _) => left_out.removed.push((row.user_id, scope)),
            (None, Some(kind)) => left_out.hidden.push((row.user_id, kind)),
            (None, None) => {}
        }
    }
    Ok(left_out)
}
