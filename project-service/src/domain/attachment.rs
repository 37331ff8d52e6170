//! Files attached to tasks: the name and type a client declared are metadata only; the
//! bytes are stored by content hash (see [`crate::storage`]).

use chrono::{DateTime, Utc};
use common::ApiError;
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

impl Attachment {
    /// The answer to an attachment id that names none of the task's.
    pub fn missing() -> ApiError {
        ApiError::NotFound("There is no such attachment.".into())
    }
}
