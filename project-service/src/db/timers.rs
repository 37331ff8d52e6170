//! The `timers` table: at most one running timer per user. Starts and stops of one
//! user's timer take turns under [`super::locks::Lock::Timer`].

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::time::Timer;

/// Starts `user`'s timer on `task` (none may be running).
pub async fn start(conn: &mut PgConnection, user: Uuid, task: Uuid) -> sqlx::Result<Timer> {
    sqlx::query_as!(
        Timer,
        "insert into timers (user_id, task_id) values ($1, $2) returning task_id, started_at",
        user,
        task,
    )
    .fetch_one(conn)
    .await
}

/// Removes `user`'s running timer, answering it; `None` when none runs.
pub async fn take(conn: &mut PgConnection, user: Uuid) -> sqlx::Result<Option<Timer>> {
    sqlx::query_as!(
        Timer,
        "delete from timers where user_id = $1 returning task_id, started_at",
        user,
    )
    .fetch_optional(conn)
    .await
}

/// Whether `user`'s timer runs on `task`.
pub async fn runs_on(conn: &mut PgConnection, user: Uuid, task: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists(select 1 from timers where user_id = $1 and task_id = $2) as "exists!""#,
        user,
        task,
    )
    .fetch_one(conn)
    .await
}
