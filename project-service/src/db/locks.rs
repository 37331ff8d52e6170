//! Named transaction-scoped advisory locks, for the writes of a tenant database that must
//! take turns where there is no row to lock. Each lock is a pair of `hashtext` values,
//! its scope and its key, so locks are told apart by name rather than by a number
//! someone has to remember; two names that happened to hash alike would only make
//! their writes take turns, never let two through at once. Held until the
//! transaction ends.

use sqlx::PgConnection;
use uuid::Uuid;

/// What takes turns.
#[derive(Debug, Clone, Copy)]
pub enum Lock {
    /// Creating projects: the count of active projects against the plan's limit holds
    /// while the new one is written.
    ProjectCreates,
    /// Every write of attachment rows and files: the plan's storage limit and the
    /// last-reference check before a file is removed hold under concurrency.
    Attachments,
    /// One user's timer: starts and stops of it.
    Timer(Uuid),
}

impl Lock {
    fn name(self) -> (&'static str, String) {
        match self {
            Self::ProjectCreates => ("projects.create", String::new()),
            Self::Attachments => ("attachments", String::new()),
            Self::Timer(user) => ("timers", user.to_string()),
        }
    }
}

/// Waits for `lock` and holds it until the transaction ends.
pub async fn take(conn: &mut PgConnection, lock: Lock) -> sqlx::Result<()> {
    let (scope, key) = lock.name();
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtext($1), hashtext($2))",
        scope,
        key,
    )
    .execute(conn)
    .await?;
    Ok(())
}
