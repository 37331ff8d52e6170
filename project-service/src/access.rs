//! Who reads a project: its `visibility` under the one rule of [`common::auth::access`].
//!
//! Every handler under `/api/v1` that reads or writes a project's content asks
//! [`readable`] as soon as it knows the project (a task's handler: once it has looked the
//! task up). A caller who may not read the project gets the 404 its handler gives for a
//! project or task that is not there, never a 403, so a members-only project's existence
//! is not revealed. The project list shows only the projects [`visible`] says.
//! Share pages (their grant decides) and `/internal` routes do not ask.

use common::ApiError;
use common::auth::AuthUser;
use common::auth::access::{VISIBILITIES, may_read_project};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db;

/// `Ok` when `user` may read project `project`; else `missing()`, the handler's answer to
/// a project (or task) that is not there, also when there is no such project.
pub async fn readable(
    conn: &mut PgConnection,
    user: &AuthUser,
    project: Uuid,
    missing: fn() -> ApiError,
) -> Result<(), ApiError> {
    match db::projects::visibility(conn, project, user.user_id).await? {
        Some((visibility, member))
            if may_read_project(|perm| user.has(perm), &visibility, member) =>
        {
            Ok(())
        }
        _ => Err(missing()),
    }
}

/// The visibilities of the projects `user` reads as one of their members (`member`) or
/// as anyone else of the tenant.
pub fn visible(user: &AuthUser, member: bool) -> Vec<&'static str> {
    VISIBILITIES
        .into_iter()
        .filter(|visibility| may_read_project(|perm| user.has(perm), visibility, member))
        .collect()
}
