//! Read-only share pages: `/shared/tasks/{id}` and `/shared/projects/{id}` for whoever
//! holds a grant url-shortener signed (`common::grant`), no login needed.
//!
//! The grant, not the host or the path, says what may be read: its tenant picks the
//! database, its target must be the path's, and a grant of another tenant arriving on a
//! tenant host (`X-Tenant-Id` from the gateway) is refused. Every refusal looks the same
//! and shows nothing of the task. Pages are plain HTML with one inline stylesheet (allowed
//! by hash in the CSP), no scripts, and are never cached or indexed; JSON for
//! `Accept: application/json`.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use common::ApiError;
use common::extract::Query;
use common::grant::{ShareGrant, SharedTarget};
use common::tenant::TenantCtx;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::AppState;
use crate::db;
use crate::domain::comment::{self as comments, render};
use crate::tenant::TenantConn;

/// This resource's routes, at the root (not under `/api/v1`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/shared/tasks/{id}", get(task))
        .route("/shared/projects/{id}", get(project))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct GrantQuery {
    /// The grant url-shortener put in the link's redirect.
    grant: Option<String>,
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SharedTask {
    pub key: String,
    pub title: String,
    /// Markdown, as written.
    pub description: String,
    /// The name of the board column it is in.
    pub status: String,
    pub done: bool,
    pub priority: String,
    #[serde(skip)]
    pub assignee_id: Option<Uuid>,
    pub assignee: Option<String>,
    pub due_date: Option<NaiveDate>,
    pub project: String,
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SharedSubtask {
    pub key: String,
    pub title: String,
    pub status: String,
    pub done: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SharedComment {
    pub author: String,
    pub created_at: DateTime<Utc>,
    pub reply: bool,
    /// The comment's markdown rendered and sanitised.
    pub html: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskPage {
    pub task: SharedTask,
    /// `description` rendered and sanitised.
    pub description_html: String,
    pub subtasks: Vec<SharedSubtask>,
    pub progress: Progress,
    pub comments: Vec<SharedComment>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectPage {
    pub key: String,
    pub name: String,
    pub description_html: String,
    pub columns: Vec<SharedColumn>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SharedColumn {
    pub name: String,
    pub done: bool,
    pub tasks: Vec<SharedCard>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SharedCard {
    pub key: String,
    pub title: String,
    pub priority: String,
}

/// Why a share page shows nothing. Said the same way whatever the reason.
enum Refused {
    Invalid,
    Gone,
    Failed(ApiError),
}

impl From<ApiError> for Refused {
    fn from(err: ApiError) -> Self {
        Self::Failed(err)
    }
}

impl From<sqlx::Error> for Refused {
    fn from(err: sqlx::Error) -> Self {
        Self::Failed(err.into())
    }
}

/// The read-only page of a shared task.
#[utoipa::path(get, path = "/shared/tasks/{id}", tag = "share pages", params(GrantQuery),
    responses((status = 200, body = TaskPage, description = "HTML, or JSON for Accept: application/json"),
              (status = 403, description = "no valid grant for this task")))]
pub async fn task(
    State(state): State<AppState>,
    tenant: Option<TenantCtx>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Query(query): Query<GrantQuery>,
) -> Response {
    let target = SharedTarget::Task(id);
    show(
        &state,
        tenant.as_ref(),
        &headers,
        query.grant.as_deref(),
        target,
        async |conn, tenant| load_task(&state, conn, tenant, id).await,
    )
    .await
}

/// The read-only board of a shared project.
#[utoipa::path(get, path = "/shared/projects/{id}", tag = "share pages", params(GrantQuery),
    responses((status = 200, body = ProjectPage, description = "HTML, or JSON for Accept: application/json"),
              (status = 403, description = "no valid grant for this project")))]
pub async fn project(
    State(state): State<AppState>,
    tenant: Option<TenantCtx>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Query(query): Query<GrantQuery>,
) -> Response {
    let target = SharedTarget::Project(id);
    show(
        &state,
        tenant.as_ref(),
        &headers,
        query.grant.as_deref(),
        target,
        async |conn, _| load_project(conn, id).await,
    )
    .await
}

/// A page as HTML (title and body) or JSON.
trait SharedPage: Serialize {
    fn title(&self) -> &str;
    fn body_html(&self) -> String;
}

impl SharedPage for TaskPage {
    fn title(&self) -> &str {
        &self.task.title
    }

    fn body_html(&self) -> String {
        task_html(self)
    }
}

impl SharedPage for ProjectPage {
    fn title(&self) -> &str {
        &self.name
    }

    fn body_html(&self) -> String {
        project_html(self)
    }
}

/// Checks the grant for `target`, loads the page from the grant's tenant database with
/// `load(connection, tenant id)`, and answers it as the client asked.
async fn show<P: SharedPage>(
    state: &AppState,
    host_tenant: Option<&TenantCtx>,
    headers: &HeaderMap,
    grant: Option<&str>,
    target: SharedTarget,
    load: impl AsyncFnOnce(&mut PgConnection, Uuid) -> Result<P, Refused>,
) -> Response {
    let json = wants_json(headers);
    let result = async {
        let grant = authorise(state, host_tenant, grant, target)?;
        let mut conn = TenantConn::open(state, grant.tenant_id).await?;
        load(&mut conn, grant.tenant_id).await
    }
    .await;
    match result {
        Ok(page) if json => page_json(&page),
        Ok(page) => html(StatusCode::OK, page.title(), &page.body_html()),
        Err(refused) => refusal(refused, json),
    }
}

/// The grant, if it verifies, is for `target`, and belongs to the host's tenant.
fn authorise(
    state: &AppState,
    host_tenant: Option<&TenantCtx>,
    grant: Option<&str>,
    target: SharedTarget,
) -> Result<ShareGrant, Refused> {
    let grant = state
        .grants
        .verify(grant.unwrap_or_default(), Utc::now().timestamp())
        .map_err(|err| {
            tracing::info!(reason = %err, "share grant refused");
            Refused::Invalid
        })?;
    let same_tenant = host_tenant.is_none_or(|t| t.id == grant.tenant_id);
    if grant.target != target || !same_tenant {
        tracing::info!("share grant for another target or tenant refused");
        return Err(Refused::Invalid);
    }
    Ok(grant)
}

fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    accept.contains("application/json") && !accept.contains("text/html")
}

/// Display names of tenant members; a page still renders (with "a member") when
/// user-service cannot say.
async fn names(state: &AppState, tenant: Uuid, ids: &[Uuid]) -> HashMap<Uuid, String> {
    crate::upstream::members(state, tenant, ids, "Member names")
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.id, m.name))
        .collect()
}

async fn load_task(
    state: &AppState,
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> Result<TaskPage, Refused> {
    let mut task: SharedTask = sqlx::query_as(
        "select p.key || '-' || t.number as key, t.title, t.description, c.name as status, c.done,
                t.priority, t.assignee_id, null::text as assignee, t.due_date, p.name as project
         from tasks t join projects p on p.id = t.project_id
              join board_columns c on c.id = t.column_id
         where t.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Refused::Gone)?;
    let subtasks: Vec<SharedSubtask> = sqlx::query_as(
        "select p.key || '-' || t.number as key, t.title, c.name as status, c.done
         from tasks t join projects p on p.id = t.project_id
              join board_columns c on c.id = t.column_id
         where t.parent_id = $1 order by t.number",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let found = db::comments::of_task(conn, id).await?;
    let mut people: Vec<Uuid> = found.iter().map(|c| c.author_id).collect();
    people.extend(task.assignee_id);
    people.sort();
    people.dedup();
    let names = names(state, tenant, &people).await;
    let name_of = |id: Uuid| {
        names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| "a member".to_owned())
    };
    task.assignee = task.assignee_id.map(name_of);
    // Replies right after the comment they answer.
    let mut ordered: Vec<&comments::Comment> =
        found.iter().filter(|c| c.parent_id.is_none()).collect();
    ordered = ordered
        .into_iter()
        .flat_map(|top| {
            std::iter::once(top).chain(found.iter().filter(move |c| c.parent_id == Some(top.id)))
        })
        .collect();
    let comments = ordered
        .into_iter()
        .map(|c| SharedComment {
            author: name_of(c.author_id),
            created_at: c.created_at,
            reply: c.parent_id.is_some(),
            html: render(&c.body),
        })
        .collect();
    Ok(TaskPage {
        description_html: render(&task.description),
        progress: Progress {
            done: subtasks.iter().filter(|s| s.done).count(),
            total: subtasks.len(),
        },
        task,
        subtasks,
        comments,
    })
}

async fn load_project(conn: &mut PgConnection, id: Uuid) -> Result<ProjectPage, Refused> {
    let (key, name, description): (String, String, String) =
        sqlx::query_as("select key, name, description from projects where id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(Refused::Gone)?;
    let columns: Vec<(Uuid, String, bool)> = sqlx::query_as(
        "select id, name, done from board_columns where project_id = $1 order by position",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let cards: Vec<(Uuid, String, String, String)> = sqlx::query_as(
        "select t.column_id, p.key || '-' || t.number, t.title, t.priority
         from tasks t join projects p on p.id = t.project_id
         where t.project_id = $1 and t.parent_id is null order by t.position",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(ProjectPage {
        key,
        name,
        description_html: render(&description),
        columns: columns
            .into_iter()
            .map(|(column, name, done)| SharedColumn {
                name,
                done,
                tasks: cards
                    .iter()
                    .filter(|c| c.0 == column)
                    .map(|(_, key, title, priority)| SharedCard {
                        key: key.clone(),
                        title: title.clone(),
                        priority: priority.clone(),
                    })
                    .collect(),
            })
            .collect(),
    })
}

fn refusal(refused: Refused, json: bool) -> Response {
    let (status, title, text) = match refused {
        Refused::Failed(err) if err.status().is_server_error() => {
            if json {
                return err.into_response();
            }
            tracing::error!(error = %err, "share page failed");
            (
                err.status(),
                "Try again in a moment",
                "The page cannot be shown right now.",
            )
        }
        Refused::Gone => (
            StatusCode::NOT_FOUND,
            "No longer here",
            "What this link shared has been deleted.",
        ),
        Refused::Invalid | Refused::Failed(_) => (
            StatusCode::FORBIDDEN,
            "This link is not valid",
            "It may have expired or been changed. Ask whoever sent it for a new one.",
        ),
    };
    if json {
        let err = ApiError::Custom {
            status,
            kind: if status == StatusCode::NOT_FOUND {
                "not-found"
            } else {
                "share-refused"
            },
            title,
            detail: text.to_owned(),
        };
        return with_page_headers(err.into_response());
    }
    html(
        status,
        title,
        &format!(
            "<h1>{}</h1><p class=\"muted\">{}</p>",
            esc(title),
            esc(text)
        ),
    )
}

fn page_json<T: Serialize>(page: &T) -> Response {
    with_page_headers(axum::Json(page).into_response())
}

/// Text for HTML content and quoted attributes. (ammonia's `clean_text` escapes spaces
/// and more, which makes pages hard to read and search.)
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;\
color:#1f2328;background:#f6f8fa;margin:0;padding:2rem 1rem}\
main{max-width:46rem;margin:0 auto;background:#fff;border:1px solid #d0d7de;\
border-radius:12px;padding:1.5rem 2rem}\
h1{font-size:1.5rem;margin:.2rem 0 1rem}h2{font-size:1.05rem;margin:1.5rem 0 .5rem}\
.muted{color:#57606a}.key{font:600 .85rem ui-monospace,monospace;color:#57606a}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:0}\
dt{color:#57606a}dd{margin:0}\
.pill{display:inline-block;padding:0 .5rem;border-radius:999px;background:#eaeef2;\
font-size:.85rem}.done{background:#dafbe1}.urgent,.high{background:#ffebe9}\
ul{padding-left:1.2rem}li{margin:.2rem 0}\
progress{width:100%;accent-color:#2da44e}\
.comment{border-top:1px solid #eaeef2;padding:.6rem 0}.reply{margin-left:1.5rem}\
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(12rem,1fr));gap:1rem}\
.col{background:#f6f8fa;border-radius:8px;padding:.6rem}\
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.4rem .6rem;\
margin:.4rem 0}footer{margin-top:2rem;font-size:.8rem;color:#57606a}";

/// The CSP allows exactly [`STYLE`] and nothing else: no scripts, images, frames, forms.
static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE));
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    ))
    .expect("a CSP of ASCII")
});

fn with_page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{} · Nexus</title>\
         <style>{STYLE}</style></head><body><main>{body}\
         <footer>Shared read-only from Nexus.</footer></main></body></html>",
        esc(title)
    );
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        page,
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, CSP.clone());
    with_page_headers(response)
}

fn task_html(page: &TaskPage) -> String {
    let task = &page.task;
    let mut out = format!(
        "<p class=\"key\">{} · {}</p><h1>{}</h1><dl>\
         <dt>Status</dt><dd><span class=\"pill{}\">{}</span></dd>\
         <dt>Priority</dt><dd><span class=\"pill {}\">{}</span></dd>\
         <dt>Assignee</dt><dd>{}</dd><dt>Due</dt><dd>{}</dd></dl>",
        esc(&task.project),
        esc(&task.key),
        esc(&task.title),
        if task.done { " done" } else { "" },
        esc(&task.status),
        esc(&task.priority),
        esc(&task.priority),
        task.assignee
            .as_deref()
            .map_or_else(|| "Unassigned".to_owned(), esc),
        task.due_date
            .map_or_else(|| "No due date".to_owned(), |d| d.to_string()),
    );
    if !task.description.trim().is_empty() {
        out.push_str(&format!("<h2>Description</h2>{}", page.description_html));
    }
    if !page.subtasks.is_empty() {
        let percent = page.progress.done * 100 / page.progress.total.max(1);
        out.push_str(&format!(
            "<h2>Subtasks · {done} of {total} done</h2>\
             <progress max=\"{total}\" value=\"{done}\">{percent}%</progress><ul>",
            done = page.progress.done,
            total = page.progress.total
        ));
        for sub in &page.subtasks {
            out.push_str(&format!(
                "<li><span class=\"key\">{}</span> {} <span class=\"pill{}\">{}</span></li>",
                esc(&sub.key),
                esc(&sub.title),
                if sub.done { " done" } else { "" },
                esc(&sub.status)
            ));
        }
        out.push_str("</ul>");
    }
    if !page.comments.is_empty() {
        out.push_str(&format!("<h2>Comments · {}</h2>", page.comments.len()));
        for comment in &page.comments {
            out.push_str(&format!(
                "<div class=\"comment{}\"><p class=\"muted\">{} · {}</p>{}</div>",
                if comment.reply { " reply" } else { "" },
                esc(&comment.author),
                comment.created_at.format("%Y-%m-%d %H:%M UTC"),
                comment.html
            ));
        }
    }
    out
}

fn project_html(page: &ProjectPage) -> String {
    let mut out = format!(
        "<p class=\"key\">{}</p><h1>{}</h1>{}<div class=\"cols\">",
        esc(&page.key),
        esc(&page.name),
        page.description_html
    );
    for column in &page.columns {
        out.push_str(&format!(
            "<section class=\"col\"><h2>{} · {}</h2>",
            esc(&column.name),
            column.tasks.len()
        ));
        for card in &column.tasks {
            out.push_str(&format!(
                "<div class=\"card\"><span class=\"key\">{}</span> {} <span class=\"pill {}\">{}</span></div>",
                esc(&card.key),
                esc(&card.title),
                esc(&card.priority),
                esc(&card.priority)
            ));
        }
        out.push_str("</section>");
    }
    out.push_str("</div>");
    out
}
