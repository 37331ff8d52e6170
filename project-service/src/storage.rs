//! Attachment files on disk. The name a client sends is metadata only: a file lives at
//! `<ATTACHMENTS_DIR>/<tenant id>/<hash[..2]>/<hash>`, so no name can reach a path.
//! Identical files of a tenant are stored once; every write of a tenant's attachment
//! rows and files happens under [`Lock::Attachments`], so a delete never removes a file
//! an upload has just referenced, and two uploads cannot both take the last of the
//! plan's storage.

use std::path::{Path, PathBuf};

use axum::extract::Multipart;
use axum::http::StatusCode;
use common::ApiError;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::AppState;
use crate::db::{self, locks, locks::Lock};

/// The tenant's folder: its files by hash, and `tmp/` for uploads on their way in.
pub fn tenant_dir(state: &AppState, tenant: Uuid) -> PathBuf {
    state.config.attachments_dir.join(tenant.to_string())
}

/// Where the file with content `sha256` is kept.
pub fn stored_path(state: &AppState, tenant: Uuid, sha256: &str) -> PathBuf {
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
pub fn clean_type(raw: Option<&str>) -> String {
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

/// The upload's bytes, hashed on their way to a temporary file.
pub struct Received {
    pub temp: PathBuf,
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
}

/// Streams the form's `file` part to `<tenant dir>/tmp/`, refusing it past `max` bytes.
pub async fn receive(mut form: Multipart, dir: &Path, max: u64) -> Result<Received, ApiError> {
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

pub fn io_error(err: std::io::Error) -> ApiError {
    ApiError::Internal(anyhow::Error::new(err).context("attachment storage"))
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
    locks::take(conn, Lock::Attachments).await?;
    let still_used = db::attachments::still_used(conn, hashes).await?;
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
}
