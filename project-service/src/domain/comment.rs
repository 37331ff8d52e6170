//! Comments on tasks: markdown kept as written and rendered to sanitised HTML when
//! shown, replies one level deep, and the members each one mentions as `@<user id>`.

use chrono::{DateTime, Utc};
use common::ApiError;
use common::error::FieldError;
use common::extract::{FieldErrors, Validate};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Comment {
    pub id: Uuid,
    pub task_id: Uuid,
    pub author_id: Uuid,
    /// The comment this one answers (replies are one level deep).
    pub parent_id: Option<Uuid>,
    /// Markdown, as written.
    pub body: String,
    /// Members mentioned as `@<user id>`.
    pub mentions: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub edited: bool,
}

impl Comment {
    /// The answer to a comment id that names none of the task's.
    pub fn missing() -> ApiError {
        ApiError::NotFound("There is no such comment.".into())
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Shown {
    #[serde(flatten)]
    pub comment: Comment,
    /// `body` rendered to HTML with anything unsafe removed (no scripts, no handlers).
    pub html: String,
}

impl From<Comment> for Shown {
    fn from(comment: Comment) -> Self {
        let html = render(&comment.body);
        Self { comment, html }
    }
}

/// Markdown to HTML that is safe to put in a page: raw HTML in the text is escaped,
/// and the result goes through ammonia's allow-list.
pub fn render(markdown: &str) -> String {
    let mut options = pulldown_cmark::Options::empty();
    options.insert(pulldown_cmark::Options::ENABLE_STRIKETHROUGH);
    options.insert(pulldown_cmark::Options::ENABLE_TABLES);
    let events = pulldown_cmark::Parser::new_ext(markdown, options).map(|event| match event {
        pulldown_cmark::Event::Html(html) | pulldown_cmark::Event::InlineHtml(html) => {
            pulldown_cmark::Event::Text(html)
        }
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&html)
        .to_string()
}

/// The user ids written as `@<uuid>` in `body` (at most 50, each once).
pub fn mentioned(body: &str) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = body
        .split('@')
        .skip(1)
        .filter_map(|rest| rest.get(..36).and_then(|s| Uuid::parse_str(s).ok()))
        .collect();
    ids.sort();
    ids.dedup();
    ids.truncate(50);
    ids
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    /// Markdown; mention a member with `@<their user id>`.
    pub body: String,
    /// Answer this comment (a top-level comment of the same task).
    pub parent_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentChanges {
    pub body: String,
}

fn check_body(body: &str) -> Result<(), Vec<FieldError>> {
    let mut errors = FieldErrors::new();
    errors.check(
        (1..=20_000).contains(&body.trim().chars().count()),
        "body",
        "must be 1 to 20000 characters",
    );
    errors.finish()
}

impl Validate for NewComment {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        check_body(&self.body)
    }
}

impl Validate for CommentChanges {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        check_body(&self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::{mentioned, render};

    #[test]
    fn rendering_escapes_scripts_and_keeps_markdown() {
        let html = render(
            "**hi** <script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)>",
        );
        assert!(html.contains("<strong>hi</strong>"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "shown as text: {html}");
    }

    #[test]
    fn mentions_are_user_ids_after_an_at_sign() {
        let a = uuid::Uuid::now_v7();
        let b = uuid::Uuid::now_v7();
        let found = mentioned(&format!(
            "ping @{a} and @{b}, again @{a}; mail me@example.com @nobody"
        ));
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(found, want);
    }
}
