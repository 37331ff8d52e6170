//! Attachments (`tasks.write` to upload, `tasks.read` to read): files on tasks, uploaded
//! as multipart, kept on disk by tenant and content hash ([`crate::storage`]), and
//! downloaded as files, never rendered inline.

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::Problem;
use common::events::keys;
use common::extract::Json;
use serde_json::json;
use uuid::Uuid;

use crate::AppState;
use crate::access;
use crate::db::{self, locks, locks::Lock};
use crate::domain::activity::Change;
use crate::domain::attachment::Attachment;
use crate::domain::task::Task;
use crate::storage::{self, Received};
use crate::tenant::{Tenant, TenantTx};

/// This resource's routes, under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/tasks/{id}/attachments",
            // The upload counts its bytes itself (`ATTACHMENT_MAX_BYTES`).
            post(upload).get(list).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/tasks/{id}/attachments/{attachment_id}",
            get(download).delete(remove),
        )
}

/// Uploads a file to a task (`tasks.write`): multipart form, part `file`.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/attachments", tag = "attachments",
    request_body(content_type = "multipart/form-data", description = "A form with a part named `file`."),
    responses((status = 201, body = Attachment), (status = 400, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem, description = "plan storage limit"),
              (status = 413, body = Problem)))]
pub async fn upload(
    State(state): State<AppState>,
    user: AuthUser,
    Path(task): Path<Uuid>,
    form: Multipart,
) -> Result<(StatusCode, Json<Attachment>), ApiError> {
    let tenant = Tenant::allow(&state, &user, Perm::TasksWrite)?;
    let storage_limit = crate::upstream::plan_limits(&state, &user.tenant_slug)
        .await?
        .storage_bytes;
    {
        let mut conn = tenant.connect().await?;
        let project = db::tasks::project_of(&mut conn, task)
            .await?
            .ok_or_else(Task::missing)?;
        access::readable(&mut conn, &user, project, Task::missing).await?;
    }
    // Received outside any transaction: a slow upload holds no database connection.
    let dir = storage::tenant_dir(&state, user.tenant_id);
    let received = storage::receive(form, &dir, state.config.attachment_max_bytes).await?;
    let stored = async {
        let tx = tenant.begin().await?;
        store(&state, &user, tx, task, &received, storage_limit).await
    }
    .await;
    // After a successful store the temporary file has been renamed away.
    tokio::fs::remove_file(&received.temp).await.ok();
    Ok((StatusCode::CREATED, Json(stored?)))
}

/// Moves the received file into place and records it, under the tenant's attachment
/// lock; refuses a new content past the plan's storage limit.
async fn store(
    state: &AppState,
    user: &AuthUser,
    mut tx: TenantTx<'_>,
    task: Uuid,
    received: &Received,
    storage_limit: Option<i64>,
) -> Result<Attachment, ApiError> {
    locks::take(&mut tx, Lock::Attachments).await?;
    let project = db::tasks::project_of(&mut tx, task)
        .await?
        .ok_or_else(Task::missing)?;
    access::readable(&mut tx, user, project, Task::missing).await?;
    let size = i64::try_from(received.size).unwrap_or(i64::MAX);
    let known = db::attachments::has_content(&mut tx, &received.sha256).await?;
    if let Some(limit) = storage_limit.filter(|_| !known) {
        let used = db::attachments::stored_bytes(&mut tx).await?;
        if used.saturating_add(size) > limit {
            return Err(ApiError::plan_limit(format!(
                "The plan stores {limit} bytes of attachments and {used} are in use; \
                 delete some or upgrade to upload this one ({size} bytes)."
            )));
        }
    }
    let path = storage::stored_path(state, user.tenant_id, &received.sha256);
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(storage::io_error)?;
    }
    tokio::fs::rename(&received.temp, &path)
        .await
        .map_err(storage::io_error)?;
    let new = db::attachments::NewRow {
        task,
        project,
        uploader: user.user_id,
        file_name: &received.file_name,
        content_type: &received.content_type,
        size_bytes: size,
        sha256: &received.sha256,
    };
    let attachment = db::attachments::insert(&mut tx, new).await?;
    tx.record(Change::task(project, task, "attachment.added").after(&attachment))
        .await?;
    tx.emit(
        keys::TASK_ATTACHMENT_ADDED,
        json!({"task_id": task, "project_id": project, "attachment_id": attachment.id,
               "size_bytes": size, "content_type": attachment.content_type}),
    )
    .await?;
    tx.commit().await?;
    Ok(attachment)
}

/// A task's attachments, oldest first.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/attachments", tag = "attachments",
    responses((status = 200, body = Vec<Attachment>), (status = 404, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Path(task): Path<Uuid>,
) -> Result<Json<Vec<Attachment>>, ApiError> {
    let mut conn = Tenant::read(&state, &user, Perm::TasksRead).await?;
    let project = db::tasks::project_of(&mut conn, task)
        .await?
        .ok_or_else(Task::missing)?;
    access::readable(&mut conn, &user, project, Task::missing).await?;
    Ok(Json(db::attachments::of_task(&mut conn, task).await?))
}

/// Downloads an attachment as a file: `Content-Disposition: attachment` with its name,
/// `nosniff`, and a sandboxing CSP, so it is never shown inline as a page.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/attachments/{attachment_id}", tag = "attachments",
    responses((status = 200, description = "The file's bytes"), (status = 404, body = Problem)))]
pub async fn download(
    State(state): State<AppState>,
    user: AuthUser,
    Path((task, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    let attachment = {
        let mut conn = Tenant::read(&state, &user, Perm::TasksRead).await?;
        let project = db::tasks::project_of(&mut conn, task)
            .await?
            .ok_or_else(Task::missing)?;
        access::readable(&mut conn, &user, project, Task::missing).await?;
        db::attachments::find(&mut conn, task, id)
            .await?
            .ok_or_else(Attachment::missing)?
    };
    let path = storage::stored_path(&state, user.tenant_id, &attachment.sha256);
    let file = tokio::fs::File::open(&path).await.map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            tracing::error!(path = %path.display(), "an attachment's file is missing");
        }
        storage::io_error(err)
    })?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_str(served_type(&attachment.content_type))
                .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
        ),
        (
            header::CONTENT_LENGTH,
            HeaderValue::from(attachment.size_bytes),
        ),
        (
            header::CONTENT_DISPOSITION,
            content_disposition(&attachment.file_name),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; sandbox"),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        ),
    ];
    Ok((headers, body).into_response())
}

/// Deletes an attachment: your own, or any with `tasks.manage`. Its file goes when no
/// other attachment of the tenant has the same content.
#[utoipa::path(delete, path = "/api/v1/tasks/{id}/attachments/{attachment_id}", tag = "attachments",
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path((task, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let mut tx = Tenant::write(&state, &user, Perm::TasksWrite).await?;
    locks::take(&mut tx, Lock::Attachments).await?;
    let project = db::tasks::project_of(&mut tx, task)
        .await?
        .ok_or_else(Task::missing)?;
    access::readable(&mut tx, &user, project, Task::missing).await?;
    let attachment = db::attachments::find(&mut tx, task, id)
        .await?
        .ok_or_else(Attachment::missing)?;
    if attachment.uploader_id != user.user_id {
        user.require(Perm::TasksManage)?;
    }
    db::attachments::delete(&mut tx, id).await?;
    tx.record(Change::task(project, task, "attachment.deleted").before(&attachment))
        .await?;
    storage::forget_unreferenced(&state, user.tenant_id, &mut tx, &[attachment.sha256]).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The type a download is served as: types a browser would run or render as a
/// document are served as plain bytes.
fn served_type(declared: &str) -> &str {
    let active = declared.contains("html")
        || declared.contains("xml")
        || declared.contains("javascript")
        || declared.contains("ecmascript")
        || declared == "text/css";
    if active {
        "application/octet-stream"
    } else {
        declared
    }
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266) for the last component of
/// `name`, so a browser saves it under its own name and never shows it inline.
fn content_disposition(name: &str) -> HeaderValue {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let base = if base.is_empty() || base == "." || base == ".." {
        "file"
    } else {
        base
    };
    let ascii: String = base
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in base.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::clean_type;

    #[test]
    fn declared_types_are_kept_only_when_well_formed() {
        assert_eq!(clean_type(Some("Image/PNG; q=1")), "image/png");
        assert_eq!(
            clean_type(Some("text/html\r\nx: y")),
            "application/octet-stream"
        );
        assert_eq!(clean_type(Some("nonsense")), "application/octet-stream");
        assert_eq!(served_type("text/html"), "application/octet-stream");
        assert_eq!(served_type("image/svg+xml"), "application/octet-stream");
        assert_eq!(served_type("image/png"), "image/png");
    }

    #[test]
    fn downloads_are_offered_under_the_last_part_of_the_name() {
        let value = content_disposition("../../etc/passwd");
        assert_eq!(
            value.to_str().unwrap(),
            "attachment; filename=\"passwd\"; filename*=UTF-8''passwd"
        );
        let value = content_disposition("rapport \"été\".pdf");
        assert_eq!(
            value.to_str().unwrap(),
            "attachment; filename=\"rapport __t__.pdf\"; \
             filename*=UTF-8''rapport%20%22%C3%A9t%C3%A9%22.pdf"
        );
        assert!(
            content_disposition("..")
                .to_str()
                .unwrap()
                .contains("\"file\"")
        );
    }
}
