//! The `notification_preferences` table: the choices members made (the rest are the
//! kinds' defaults).

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::notification::Kind;
use crate::domain::preference::{Email, Preference};

/// `user`'s choice for every kind, defaults where they made none.
pub async fn of(conn: &mut PgConnection, user: Uuid) -> sqlx::Result<Vec<Preference>> {
    let rows = sqlx::query!(
        "select kind, in_app, email from notification_preferences where user_id = $1",
        user,
    )
    .fetch_all(conn)
    .await?;
    Ok(Kind::ALL
        .into_iter()
        .map(|kind| {
            rows.iter()
                .find(|r| r.kind == kind.as_str())
                .and_then(|r| {
                    Some(Preference {
                        kind,
                        in_app: r.in_app,
                        email: Email::parse(&r.email)?,
                    })
                })
                .unwrap_or_else(|| Preference::default_for(kind))
        })
        .collect())
}

/// Saves `user`'s choice for one kind.
pub async fn put(conn: &mut PgConnection, user: Uuid, choice: &Preference) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into notification_preferences (user_id, kind, in_app, email)
         values ($1, $2, $3, $4)
         on conflict (user_id, kind)
         do update set in_app = excluded.in_app, email = excluded.email, updated_at = now()",
        user,
        choice.kind.as_str(),
        choice.in_app,
        choice.email.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(())
}
