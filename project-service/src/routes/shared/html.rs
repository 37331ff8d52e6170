//! The share pages as HTML: every page's markup, built with `format!` and escaped by hand
//! ([`esc`]), kept in this one module so it can move onto `common`'s templates without
//! touching how a page is loaded or who may see it. The seam is [`SharedPage`] (a page's
//! title and body) and [`page`] (the document around them, with its CSP).

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::share::{ProjectPage, TaskPage};

/// A page as HTML (title and body) or JSON.
pub trait SharedPage: Serialize {
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

/// A page that only says something: a heading and a line.
pub fn message(title: &str, text: &str) -> String {
    format!(
        "<h1>{}</h1><p class=\"muted\">{}</p>",
        esc(title),
        esc(text)
    )
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

/// The document around a page's `body`, with the headers every page carries.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
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
    super::with_page_headers(response)
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
