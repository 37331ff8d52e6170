//! HTML pages: one shell, one set of headers, and templates that escape by default.
//!
//! Pages are written with [`maud`]'s `html!` (each service that renders pages depends on
//! `maud` itself, as the macro's expansion names it): checked when the crate compiles, with every
//! interpolated value escaped (`&`, `<`, `>`, `"`; attributes are always double-quoted,
//! so `'` needs nothing) unless it is wrapped in
//! [`PreEscaped`], which only already-safe HTML gets (a sanitiser's output). There is no
//! hand-written escaping anywhere else.
//!
//! Every page is the same document ([`document`]): doctype, language, charset, viewport,
//! `noindex`, a title ending in "· Nexus", one inline stylesheet and the body in `<main>`;
//! nothing loaded from elsewhere, and no script unless the page updates itself live (the
//! share pages: [`Style::with_script`], one inline script after `<main>`). Its answer
//! ([`respond`]) carries a CSP that allows exactly that stylesheet (and that script) by
//! its hash and nothing else (no images, frames, or forms unless the page posts one; a
//! page with a script may connect to its own origin only), and [`protect`]'s headers:
//! never cached, never framed, no referrer, not sniffed, not indexed.

use std::fmt::Write as _;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

/// A page's stylesheet, inlined and allowed in the CSP by its SHA-256 (no
/// `'unsafe-inline'`). Make it once (a `LazyLock` static) and share it.
pub struct Style {
    css: &'static str,
    /// `'sha256-…'`, the CSP source that allows exactly this stylesheet.
    source: String,
    /// The page's one script and its CSP source, if it has one.
    script: Option<(&'static str, String)>,
}

/// `'sha256-…'` of an inline stylesheet or script.
fn source_of(text: &str) -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text));
    format!("'sha256-{hash}'")
}

impl Style {
    pub fn new(css: &'static str) -> Self {
        Self {
            css,
            source: source_of(css),
            script: None,
        }
    }

    /// The same pages with one inline script (after `<main>`), allowed by its hash; it may
    /// connect (fetch, EventSource) to the page's own origin only.
    pub fn with_script(mut self, js: &'static str) -> Self {
        self.script = Some((js, source_of(js)));
        self
    }

    pub fn css(&self) -> &'static str {
        self.css
    }

    /// The CSP source of this stylesheet: `'sha256-…'`.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The whole document of a page titled `title` (shown as "`title` · Nexus"), styled with
/// `style`, with `body` inside `<main>`.
pub fn document(title: &str, style: &Style, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) " · Nexus" }
                style { (PreEscaped(style.css())) }
            }
            body {
                main { (body) }
                @if let Some((js, _)) = &style.script {
                    script { (PreEscaped(*js)) }
                }
            }
        }
    }
}

/// Where a page's forms may post: nowhere (`'none'`), or here and the origins listed
/// (the password form's answer redirects to the tenant's host, and `form-action` governs
/// the whole redirect chain of a submission).
#[derive(Debug, Clone, Copy)]
pub enum Forms<'a> {
    None,
    SelfAnd(&'a str),
}

/// The page's `Content-Security-Policy`: its own stylesheet, the forms it may post, and
/// nothing else.
pub fn csp(style: &Style, forms: Forms<'_>) -> String {
    let mut policy = format!("default-src 'none'; style-src {}; ", style.source());
    if let Some((_, script)) = &style.script {
        let _ = write!(policy, "script-src {script}; connect-src 'self'; ");
    }
    policy.push_str("base-uri 'none'; form-action ");
    match forms {
        Forms::None => policy.push_str("'none'"),
        Forms::SelfAnd(origins) => {
            let _ = write!(policy, "'self' {}", origins.trim());
        }
    }
    policy.push_str("; frame-ancestors 'none'");
    policy
}

/// A page as the answer: `status`, the document, its CSP and [`protect`]'s headers.
pub fn respond(status: StatusCode, style: &Style, forms: Forms<'_>, page: Markup) -> Response {
    let mut response = (status, page).into_response();
    let headers = response.headers_mut();
    let policy = HeaderValue::from_str(&csp(style, forms)).unwrap_or_else(|_| {
        // An origin that is no header value: no forms then.
        HeaderValue::from_str(&csp(style, Forms::None)).expect("a CSP of ASCII")
    });
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    protect(headers);
    response
}

/// The headers of every page, and of the JSON or problem a page's address answers
/// instead: not cached (`no-store`), not framed, no `Referer` (tokens and grants travel
/// in page URLs), no type sniffing, not indexed.
pub fn protect(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    static STYLE: std::sync::LazyLock<Style> = std::sync::LazyLock::new(|| Style::new("p{a:b}"));

    #[test]
    fn every_value_is_escaped_and_only_pre_escaped_html_is_not() {
        let hostile = r#"<script>alert('x')</script> & "quoted""#;
        let page = document(
            hostile,
            &STYLE,
            &html! { p title=(hostile) { (hostile) } (PreEscaped("<b>kept</b>")) },
        )
        .into_string();
        assert!(!page.contains("<script>"), "{page}");
        let escaped = "&lt;script&gt;alert('x')&lt;/script&gt; &amp; &quot;quoted&quot;";
        assert!(
            page.contains(&format!("<title>{escaped} · Nexus</title>")),
            "{page}"
        );
        assert!(
            page.contains(&format!("<p title=\"{escaped}\">{escaped}</p>")),
            "{page}"
        );
        assert!(page.contains("<b>kept</b>"));
        assert!(
            page.starts_with("<!DOCTYPE html><html lang=\"en\">"),
            "{page}"
        );
        assert!(page.contains("<style>p{a:b}</style>"));
    }

    #[test]
    fn the_csp_allows_the_pages_own_stylesheet_and_the_forms_it_names() {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest("p{a:b}"));
        assert_eq!(
            csp(&STYLE, Forms::None),
            format!(
                "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; \
                 form-action 'none'; frame-ancestors 'none'"
            )
        );
        assert!(
            csp(&STYLE, Forms::SelfAnd("https://acme.example.com"))
                .contains("form-action 'self' https://acme.example.com;")
        );
        let live = Style::new("p{a:b}").with_script("go()");
        let policy = csp(&live, Forms::None);
        assert!(
            policy.contains(&format!(
                "script-src 'sha256-{}'; connect-src 'self';",
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest("go()"))
            )),
            "{policy}"
        );
        assert!(!csp(&STYLE, Forms::None).contains("script-src"));
        let page = document("t", &live, &html! { p { "x" } }).into_string();
        assert!(
            page.ends_with("</main><script>go()</script></body></html>"),
            "{page}"
        );
        let page = respond(StatusCode::GONE, &STYLE, Forms::None, html! { p { "x" } });
        assert_eq!(page.status(), StatusCode::GONE);
        let headers = page.headers();
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert!(
            !headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("unsafe-inline")
        );
    }
}
