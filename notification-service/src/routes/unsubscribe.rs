//! The unsubscribe link of every mail (RFC 8058): `GET` shows what the link stops and a
//! button to confirm, and changes nothing (mail scanners open links); `POST` (the button,
//! or a mail client's one-click `List-Unsubscribe=One-Click`) turns email off for the
//! kinds the mail was about, for the member the link was made for. No login: the signed
//! token is the permission, and it can do nothing else. Served on any host (links point
//! at `PUBLIC_URL`); on a tenant host the token must be that tenant's.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use common::ApiError;
use common::extract::Query;
use common::pages::{Forms, Style, document, respond};
use common::tenant::TenantCtx;
use maud::{Markup, html};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::db;
use crate::domain::notification::Kind;
use crate::domain::preference::Email;
use crate::domain::unsubscribe::Unsubscribe;

static STYLE: LazyLock<Style> = LazyLock::new(|| {
    Style::new(
        "body{font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;color:#172b4d;margin:0;\
display:flex;min-height:100vh;align-items:center;justify-content:center}\
main{background:#fff;padding:2rem 2.5rem;border-radius:8px;box-shadow:0 1px 4px #0002;\
max-width:26rem;width:100%}h1{font-size:1.3rem;margin:0 0 .75rem}p{margin:.5rem 0}\
button{margin-top:1rem;padding:.5rem 1.25rem;font:inherit;border:0;border-radius:4px;\
background:#0c66e4;color:#fff;cursor:pointer}",
    )
});

/// This resource's routes, under `/api/v1/notifications`.
pub fn router() -> Router<AppState> {
    Router::new().route("/unsubscribe", get(confirm).post(unsubscribe))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// The signed token of the mail's link.
    pub token: Option<String>,
}

/// A page naming what the link stops, with a button that does it. Changes nothing.
#[utoipa::path(get, path = "/api/v1/notifications/unsubscribe", tag = "notifications",
    params(TokenQuery),
    responses((status = 200, content_type = "text/html", description = "the confirmation page"),
              (status = 400, content_type = "text/html", description = "not a valid link")))]
pub async fn confirm(
    State(state): State<AppState>,
    tenant: Option<TenantCtx>,
    Query(query): Query<TokenQuery>,
) -> Response {
    let Some(what) = opened(&state, tenant.as_ref(), query.token.as_deref()) else {
        return invalid();
    };
    let token = query.token.unwrap_or_default();
    page(
        StatusCode::OK,
        "Stop these emails?",
        Forms::SelfAnd(""),
        &html! {
            h1 { "Stop these emails?" }
            p { "You will get no more email about " (labels(&what.kinds)) ". They still show in your Nexus inbox." }
            form method="post" action={ "?token=" (token) } {
                button type="submit" { "Stop these emails" }
            }
        },
    )
}

/// Turns email off for the kinds the link names (RFC 8058 one-click, or the page's
/// button); answers a page saying so. Doing it twice changes nothing more.
#[utoipa::path(post, path = "/api/v1/notifications/unsubscribe", tag = "notifications",
    params(TokenQuery),
    responses((status = 200, content_type = "text/html", description = "email is off for those kinds"),
              (status = 400, content_type = "text/html", description = "not a valid link")))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    tenant: Option<TenantCtx>,
    Query(query): Query<TokenQuery>,
) -> Result<Response, ApiError> {
    let Some(what) = opened(&state, tenant.as_ref(), query.token.as_deref()) else {
        return Ok(invalid());
    };
    let mut conn = match state.databases.connect(what.tenant_id).await {
        Ok(conn) => conn,
        Err(ApiError::NotFound(_)) => return Ok(invalid()),
        Err(err) => return Err(err),
    };
    let current = db::preferences::of(&mut conn, what.user_id).await?;
    for mut choice in current.into_iter().filter(|c| what.kinds.contains(&c.kind)) {
        choice.email = Email::Off;
        db::preferences::put(&mut conn, what.user_id, &choice).await?;
    }
    metrics::counter!("notification_unsubscribes_total").increment(1);
    Ok(page(
        StatusCode::OK,
        "You will get no more of these emails",
        Forms::None,
        &html! {
            h1 { "Done" }
            p { "You will get no more email about " (labels(&what.kinds)) "." }
            p { "Change it back any time in your notification settings." }
        },
    ))
}

/// The token's content, if Nexus signed it and (on a tenant host) it is that tenant's.
fn opened(
    state: &AppState,
    tenant: Option<&TenantCtx>,
    token: Option<&str>,
) -> Option<Unsubscribe> {
    let what = state.mailer.unsubscribe_key().open(token?)?;
    tenant
        .is_none_or(|t| t.id == what.tenant_id)
        .then_some(what)
}

fn invalid() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Not a valid link",
        Forms::None,
        &html! {
            h1 { "This link is not valid" }
            p { "Use the link of the email itself, or change which emails you get in your notification settings." }
        },
    )
}

fn page(status: StatusCode, title: &str, forms: Forms<'_>, body: &Markup) -> Response {
    respond(status, &STYLE, forms, document(title, &STYLE, body))
}

fn labels(kinds: &[Kind]) -> String {
    let names: Vec<&str> = kinds
        .iter()
        .map(|k| match k {
            Kind::TaskAssigned => "tasks assigned to you",
            Kind::TaskStatusChanged => "tasks that move",
            Kind::CommentAdded => "new comments",
            Kind::Mentioned => "mentions",
            Kind::Invited => "projects you are added to",
            Kind::WebhookDisabled => "webhooks that are turned off",
        })
        .collect();
    match names.as_slice() {
        [] => "nothing".to_owned(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
