//! Attachments: files on tasks, uploaded as multipart, kept on disk by tenant and
//! content hash, and downloaded as files (never rendered inline).
//!
//! The name a client sends is metadata only: a file lives at
//! `<ATTACHMENTS_DIR>/<tenant id>/<hash[..2]>/<hash>`, so no name can reach a path.
//! Identical files of a tenant are stored once; every write of a tenant's attachment
//! rows and files happens under one advisory lock, so a delete never removes a file an
//! upload has just referenced, and two uploads cannot both take the last of the plan's
//! storage.

use std::path::{Path as FsPath, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use common::ApiError;
use common::auth::{AuthUser, Perm};
use common::error::Problem;
use common::events::keys;
use common::extract::Json;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::project_of;
use crate::AppState;
use crate::domain::activity::Change;
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

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Attachment {
    pub id: Uuid,
    pub task_id: Uuid,
    pub uploader_id: Uuid,
    /// The name it was uploaded with (shown and offered on download, never a path).
    pub file_name: String,
    /// The media type the uploader declared (`application/octet-stream` if unusable).
    pub content_type: String,
    pub size_bytes: i64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    pub created_at: DateTime<Utc>,
}

const ATTACHMENT: &str = "select id, task_id, uploader_id, file_name, content_type, size_bytes, \
                          sha256, created_at from attachments";

/// Serialises a tenant's attachment writes (rows and files) within its database.
const LOCK: &str = "select pg_advisory_xact_lock(7001)";

fn tenant_dir(state: &AppState, tenant: Uuid) -> PathBuf {
    state.config.attachments_dir.join(tenant.to_string())
}

fn stored_path(state: &AppState, tenant: Uuid, sha256: &str) -> PathBuf {
    tenant_dir(state, tenant).join(&sha256[..2]).join(sha256)
}

/// What is kept of a client's file name: no control characters, trimmed, at most 255
/// characters; `file` when nothing is left.
fn clean_name(raw: Option<&str>) -> String {
    let name: String = raw
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(255)
        .collect();
    if name.is_empty() {
        "file".to_owned()
    } else {
        name
    }
}

/// A declared media type if it is a plain `type/subtype` token pair, else octet-stream.
fn clean_type(raw: Option<&str>) -> String {
    let essence = raw
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 60
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    match essence.split_once('/') {
        Some((kind, sub)) if token(kind) && token(sub) => essence,
        _ => "application/octet-stream".to_owned(),
    }
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

/// The upload's bytes, hashed on their way to a temporary file.
struct Received {
    temp: PathBuf,
    file_name: String,
    content_type: String,
    size: u64,
    sha256: String,
}

/// Streams the form's `file` part to `<tenant dir>/tmp/`, refusing it past `max` bytes.
async fn receive(mut form: Multipart, dir: &FsPath, max: u64) -> Result<Received, ApiError> {
    let bad = |e: axum::extract::multipart::MultipartError| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(max),
        _ => ApiError::BadRequest(format!("The form could not be read: {}", e.body_text())),
    };
    // One part, named `file`: nothing else is read, so nothing else can be unbounded
    // (the route lifts the service's body limit and counts the file's bytes itself).
    let mut field = match form.next_field().await.map_err(bad)? {
        Some(field) if field.name() == Some("file") => field,
        _ => {
            return Err(ApiError::validation(
                "file",
                "is required: send one form part named file",
            ));
        }
    };
    let tmp = dir.join("tmp");
    tokio::fs::create_dir_all(&tmp).await.map_err(io_error)?;
    let temp = tmp.join(Uuid::now_v7().to_string());
    let file_name = clean_name(field.file_name());
    let content_type = clean_type(field.content_type());
    let result = async {
        let mut out = tokio::fs::File::create(&temp).await.map_err(io_error)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            size += chunk.len() as u64;
            if size > max {
                return Err(too_large(max));
            }
            hasher.update(&chunk);
            out.write_all(&chunk).await.map_err(io_error)?;
        }
        out.sync_all().await.map_err(io_error)?;
        Ok((size, format!("{:x}", hasher.finalize())))
    }
    .await;
    match result {
        Ok((size, sha256)) => Ok(Received {
            temp,
            file_name,
            content_type,
            size,
            sha256,
        }),
        Err(err) => {
            tokio::fs::remove_file(&temp).await.ok();
            Err(err)
        }
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::Custom {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        kind: "too-large",
        title: "Attachment too large",
        detail: format!("Attachments may be at most {max} bytes."),
    }
}

fn io_error(err: std::io::Error) -> ApiError {
    ApiError::Internal(anyhow::Error::new(err).context("attachment storage"))
}

/// Bytes of attachment content the tenant stores (each distinct file once).
async fn stored_bytes(conn: &mut PgConnection) -> Result<i64, ApiError> {
    Ok(sqlx::query_scalar(
        "select coalesce(sum(size_bytes), 0)::bigint from
             (select distinct on (sha256) size_bytes from attachments) files",
    )
    .fetch_one(conn)
    .await?)
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
    project_of(&mut *tenant.connect().await?, task).await?;
    let dir = tenant_dir(&state, user.tenant_id);
    let received = receive(form, &dir, state.config.attachment_max_bytes).await?;
    let stored = async {
        let tx = tenant.begin().await?;
        store(&state, &user, tx, task, &received, storage_limit).await
    }
    .await;
    // After a successful store the temporary file has been renamed away.
    tokio::fs::remove_file(&received.temp).await.ok();
    Ok((StatusCode::CREATED, Json(stored?)))
}

async fn store(
    state: &AppState,
    user: &AuthUser,
    mut tx: TenantTx<'_>,
    task: Uuid,
    received: &Received,
    storage_limit: Option<i64>,
) -> Result<Attachment, ApiError> {
    sqlx::query(LOCK).execute(&mut *tx).await?;
    let project = project_of(&mut tx, task).await?;
    let size = i64::try_from(received.size).unwrap_or(i64::MAX);
    let known: bool =
        sqlx::query_scalar("select exists(select 1 from attachments where sha256 = $1)")
            .bind(&received.sha256)
            .fetch_one(&mut *tx)
            .await?;
    if let Some(limit) = storage_limit.filter(|_| !known) {
        let used = stored_bytes(&mut tx).await?;
        if used.saturating_add(size) > limit {
            return Err(ApiError::plan_limit(format!(
                "The plan stores {limit} bytes of attachments and {used} are in use; \
                 delete some or upgrade to upload this one ({size} bytes)."
            )));
        }
    }
    let path = stored_path(state, user.tenant_id, &received.sha256);
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(io_error)?;
    }
    tokio::fs::rename(&received.temp, &path)
        .await
        .map_err(io_error)?;
    let attachment: Attachment = sqlx::query_as(
        "insert into attachments (id, task_id, project_id, uploader_id, file_name, content_type,
                                  size_bytes, sha256)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         returning id, task_id, uploader_id, file_name, content_type, size_bytes, sha256, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(task)
    .bind(project)
    .bind(user.user_id)
    .bind(&received.file_name)
    .bind(&received.content_type)
    .bind(size)
    .bind(&received.sha256)
    .fetch_one(&mut *tx)
    .await?;
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
    project_of(&mut conn, task).await?;
    Ok(Json(
        sqlx::query_as(&format!(
            "{ATTACHMENT} where task_id = $1 order by id limit 1000"
        ))
        .bind(task)
        .fetch_all(&mut *conn)
        .await?,
    ))
}

async fn find(conn: &mut PgConnection, task: Uuid, id: Uuid) -> Result<Attachment, ApiError> {
    sqlx::query_as(&format!("{ATTACHMENT} where id = $1 and task_id = $2"))
        .bind(id)
        .bind(task)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::NotFound("There is no such attachment.".into()))
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
        find(&mut conn, task, id).await?
    };
    let path = stored_path(&state, user.tenant_id, &attachment.sha256);
    let file = tokio::fs::File::open(&path).await.map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            tracing::error!(path = %path.display(), "an attachment's file is missing");
        }
        io_error(err)
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
    sqlx::query(LOCK).execute(&mut *tx).await?;
    let project = project_of(&mut tx, task).await?;
    let attachment = find(&mut tx, task, id).await?;
    if attachment.uploader_id != user.user_id {
        user.require(Perm::TasksManage)?;
    }
    sqlx::query("delete from attachments where id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.record(Change::task(project, task, "attachment.deleted").before(&attachment))
        .await?;
    forget_unreferenced(&state, user.tenant_id, &mut tx, &[attachment.sha256]).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes the files of `hashes` that no attachment refers to any more. Runs inside the
/// deleting transaction, under the tenant's attachment lock.
pub async fn forget_unreferenced(
    state: &AppState,
    tenant: Uuid,
    conn: &mut PgConnection,
    hashes: &[String],
) -> Result<(), ApiError> {
    if hashes.is_empty() {
        return Ok(());
    }
    sqlx::query(LOCK).execute(&mut *conn).await?;
    let still_used: Vec<String> =
        sqlx::query_scalar("select distinct sha256 from attachments where sha256 = any($1)")
            .bind(hashes)
            .fetch_all(&mut *conn)
            .await?;
    for sha in hashes.iter().filter(|h| !still_used.contains(h)) {
        match tokio::fs::remove_file(stored_path(state, tenant, sha)).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(io_error(err)),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_no_control_characters_and_are_never_empty() {
        assert_eq!(clean_name(Some(" a\u{0}b\n.txt ")), "ab.txt");
        assert_eq!(clean_name(Some("\r\n")), "file");
        assert_eq!(clean_name(None), "file");
        assert_eq!(clean_name(Some(&"x".repeat(300))).len(), 255);
    }

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
