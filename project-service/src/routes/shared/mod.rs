//! Read-only share pages: `/shared/tasks/{id}` and `/shared/projects/{id}` for whoever
//! holds a grant url-shortener signed (`common::grant`), no login needed.
//!
//! The grant, not the host or the path, says what may be read: its tenant picks the
//! database, its target must be the path's, and a grant of another tenant arriving on a
//! tenant host (`X-Tenant-Id` from the gateway) is refused. Every refusal looks the same
//! and shows nothing of the task. Pages are plain HTML with one inline stylesheet (allowed
//! by hash in the CSP) and are never cached or indexed; JSON for `Accept: application/json`.
//! A page that shows a task or a board also has one inline script (allowed by hash) that
//! keeps it current: it follows `/api/v1/stream/shared` with the page's own grant and,
//! when the task changes, reads the page again and puts its new `<main>` in place.

mod grant;
mod html;
mod page;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::ApiError;
use common::extract::Query;
use common::grant::SharedTarget;
use common::tenant::TenantCtx;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::AppState;
use crate::domain::share::{ProjectPage, TaskPage};
use crate::tenant::TenantConn;
use grant::{GrantQuery, Refused, authorise};
use html::SharedPage;

/// This resource's routes, at the root (not under `/api/v1`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/shared/tasks/{id}", get(task))
        .route("/shared/projects/{id}", get(project))
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
        async |conn, tenant| page::task(&state, conn, tenant, id).await,
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
        async |conn, _| page::project(conn, id).await,
    )
    .await
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
        Ok(page) => html::live_page(page.title(), &page.body()),
        Err(refused) => refusal(refused, json),
    }
}

/// JSON only when asked for and HTML is not.
fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    accept.contains("application/json") && !accept.contains("text/html")
}

/// The page or problem that says why nothing is shown: the same for every refusal, and
/// a plain "try again" (the cause logged) when the service failed.
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
    html::page(status, title, &html::message(title, text))
}

fn page_json<T: Serialize>(page: &T) -> Response {
    with_page_headers(axum::Json(page).into_response())
}

/// The headers of every share page, HTML or JSON (`common::pages::protect`): never
/// cached, indexed, framed or sniffed, and no referrer (the grant is in the URL).
fn with_page_headers(mut response: Response) -> Response {
    common::pages::protect(response.headers_mut());
    response
}
