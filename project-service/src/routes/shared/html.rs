//! The share pages as HTML: `maud` templates in `common::pages`' shell, so every value is
//! escaped unless it is marked as already-safe HTML (the sanitised Markdown of
//! descriptions and comments, from ammonia). The seam to the rest of the share routes is
//! [`SharedPage`] (a page's title and body) and [`page`] (the document, its CSP and
//! headers).

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::Response;
use common::pages::{Forms, Style, document, respond};
use maud::{Markup, PreEscaped, html};
use serde::Serialize;

use crate::domain::share::{ProjectPage, TaskPage};

/// A page as HTML (title and body) or JSON.
pub trait SharedPage: Serialize {
    fn title(&self) -> &str;
    fn body(&self) -> Markup;
}

impl SharedPage for TaskPage {
    fn title(&self) -> &str {
        &self.task.title
    }

    fn body(&self) -> Markup {
        task_html(self)
    }
}

impl SharedPage for ProjectPage {
    fn title(&self) -> &str {
        &self.name
    }

    fn body(&self) -> Markup {
        project_html(self)
    }
}

/// A page that only says something: a heading and a line.
pub fn message(title: &str, text: &str) -> Markup {
    html! {
        h1 { (title) }
        p.muted { (text) }
    }
}

static STYLE: LazyLock<Style> = LazyLock::new(|| {
    Style::new(
        "body{font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;\
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
margin:.4rem 0}footer{margin-top:2rem;font-size:.8rem;color:#57606a}",
    )
});

/// What keeps a shown task or board current: the page's grant opens the share stream,
/// and each change there reads the page again (same origin, same grant) and swaps in its
/// new `<main>`. Nothing in it comes from the page's data.
const LIVE_JS: &str = "(()=>{const g=new URLSearchParams(location.search).get('grant');\
if(!g||!window.EventSource)return;\
const s=new EventSource('/api/v1/stream/shared?grant='+encodeURIComponent(g));\
let busy=false,again=false;\
const load=async()=>{if(busy){again=true;return}busy=true;\
try{const r=await fetch(location.href,{headers:{Accept:'text/html'}});\
if(r.ok){const d=new DOMParser().parseFromString(await r.text(),'text/html');\
const m=d.querySelector('main');if(m)document.querySelector('main').replaceWith(m)}}\
finally{busy=false;if(again){again=false;load()}}};\
for(const e of['task.created','task.updated','task.moved','task.status_changed',\
'task.assigned','task.deleted','task.comment_added','reset'])s.addEventListener(e,load);})();";

/// [`STYLE`] and [`LIVE_JS`]: the pages that show a task or a board.
static LIVE: LazyLock<Style> = LazyLock::new(|| Style::new(STYLE.css()).with_script(LIVE_JS));

/// The page answer: `body` in the shared document with the share footer, a CSP that
/// allows exactly [`STYLE`] and no forms, and the headers every page carries.
pub fn page(status: StatusCode, title: &str, body: &Markup) -> Response {
    framed(status, &STYLE, title, body)
}

/// A task's or a board's page: [`page`], kept current by [`LIVE_JS`].
pub fn live_page(title: &str, body: &Markup) -> Response {
    framed(StatusCode::OK, &LIVE, title, body)
}

fn framed(status: StatusCode, style: &Style, title: &str, body: &Markup) -> Response {
    let body = html! {
        (body)
        footer { "Shared read-only from Nexus." }
    };
    respond(status, style, Forms::None, document(title, style, &body))
}

fn task_html(page: &TaskPage) -> Markup {
    let task = &page.task;
    let percent = page.progress.done * 100 / page.progress.total.max(1);
    html! {
        p.key { (task.project) " · " (task.key) }
        h1 { (task.title) }
        dl {
            dt { "Status" }
            dd { span.pill.done[task.done] { (task.status) } }
            dt { "Priority" }
            dd { span class={ "pill " (task.priority) } { (task.priority) } }
            dt { "Assignee" }
            dd { (task.assignee.as_deref().unwrap_or("Unassigned")) }
            dt { "Due" }
            dd {
                @match task.due_date {
                    Some(due) => (due),
                    None => "No due date",
                }
            }
        }
        @if !task.description.trim().is_empty() {
            h2 { "Description" }
            (PreEscaped(&page.description_html))
        }
        @if !page.subtasks.is_empty() {
            h2 { "Subtasks · " (page.progress.done) " of " (page.progress.total) " done" }
            progress max=(page.progress.total) value=(page.progress.done) { (percent) "%" }
            ul {
                @for sub in &page.subtasks {
                    li {
                        span.key { (sub.key) } " " (sub.title) " "
                        span.pill.done[sub.done] { (sub.status) }
                    }
                }
            }
        }
        @if !page.comments.is_empty() {
            h2 { "Comments · " (page.comments.len()) }
            @for comment in &page.comments {
                div.comment.reply[comment.reply] {
                    p.muted {
                        (comment.author) " · "
                        (comment.created_at.format("%Y-%m-%d %H:%M UTC"))
                    }
                    (PreEscaped(&comment.html))
                }
            }
        }
    }
}

fn project_html(page: &ProjectPage) -> Markup {
    html! {
        p.key { (page.key) }
        h1 { (page.name) }
        (PreEscaped(&page.description_html))
        div.cols {
            @for column in &page.columns {
                section.col {
                    h2 { (column.name) " · " (column.tasks.len()) }
                    @for card in &column.tasks {
                        div.card {
                            span.key { (card.key) } " " (card.title) " "
                            span class={ "pill " (card.priority) } { (card.priority) }
                        }
                    }
                }
            }
        }
    }
}
