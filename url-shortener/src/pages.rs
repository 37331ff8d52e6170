//! The few HTML pages a browser sees on `/s/{code}`: small, styled inline, no JavaScript,
//! not cacheable, not frameable, and with nothing from the request echoed but the code
//! (which is 8 alphanumerics by the time it gets here).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;color:#172b4d;\
margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}\
main{background:#fff;padding:2rem 2.5rem;border-radius:8px;box-shadow:0 1px 4px #0002;\
max-width:24rem;width:100%}h1{font-size:1.3rem;margin:0 0 .75rem}p{margin:.5rem 0}\
.err{color:#ae2a19;font-weight:600}label{display:block;margin:1rem 0 .25rem}\
input{width:100%;box-sizing:border-box;padding:.5rem;font:inherit;border:1px solid #8590a2;\
border-radius:4px}button{margin-top:1rem;padding:.5rem 1.25rem;font:inherit;border:0;\
border-radius:4px;background:#0c66e4;color:#fff;cursor:pointer}";

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    page_posting_to(status, title, body, "")
}

/// A page whose form may post here and follow the answer's redirect to `origin`: the
/// CSP's `form-action` governs the whole redirect chain of a submission, so the password
/// form must name the tenant's host its 303 leads to.
fn page_posting_to(status: StatusCode, title: &str, body: &str, origin: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><title>{title} · Nexus</title>\
<style>{STYLE}</style></head><body><main>{body}</main></body></html>"
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {origin}; \
         frame-ancestors 'none'"
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp).unwrap_or_else(|_| {
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                 frame-ancestors 'none'",
            )
        }),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

pub fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Link not found",
        "<h1>Link not found</h1><p>There is no share link at this address. Check that it was \
         copied completely.</p>",
    )
}

pub fn gone() -> Response {
    page(
        StatusCode::GONE,
        "Link no longer available",
        "<h1>This link is no longer available</h1><p>It has expired, been switched off, or \
         been opened as many times as it allows. Ask whoever shared it for a new one.</p>",
    )
}

pub fn too_many(retry_after: u64) -> Response {
    let minutes = retry_after.div_ceil(60);
    let mut response = page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        &format!(
            "<h1>Too many attempts</h1><p>Too many passwords were tried for this link. Try \
             again in about {minutes} minute{}.</p>",
            if minutes == 1 { "" } else { "s" }
        ),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// 503: every password hashing worker was busy for longer than the queue wait.
pub fn busy(retry_after: u64) -> Response {
    let mut response = page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again in a moment",
        "<h1>Try again in a moment</h1><p>Too many passwords are being checked right now. \
         Go back and send yours again in a few seconds.</p>",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// `scheme://host[:port]` of `url`.
fn origin(url: &str) -> &str {
    let host = url.find("://").map_or(0, |i| i + 3);
    url[host..]
        .find(['/', '?'])
        .map_or(url, |end| &url[..host + end])
}

/// The password form, posting back to the same address; `wrong` adds the error line.
/// `target` is where a right password leads (its origin is allowed as a form action).
pub fn password_form(code: &str, wrong: bool, target: &str) -> Response {
    let (status, error) = if wrong {
        (
            StatusCode::UNAUTHORIZED,
            "<p class=\"err\" role=\"alert\">That password is not right. Try again.</p>",
        )
    } else {
        (StatusCode::OK, "")
    };
    page_posting_to(
        status,
        "Password required",
        &format!(
            "<h1>This link is protected</h1><p>Enter the password you were given with the \
             link.</p>{error}<form method=\"post\" action=\"/s/{code}\">\
             <label for=\"password\">Password</label>\
             <input id=\"password\" name=\"password\" type=\"password\" required autofocus \
             autocomplete=\"current-password\" maxlength=\"128\">\
             <button type=\"submit\">Open</button></form>"
        ),
        origin(target),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_origin_is_scheme_host_and_port() {
        assert_eq!(
            super::origin("http://acme.localhost:8080/shared/tasks/1?grant="),
            "http://acme.localhost:8080"
        );
        assert_eq!(
            super::origin("https://acme.example.com?x"),
            "https://acme.example.com"
        );
        assert_eq!(
            super::origin("https://acme.example.com"),
            "https://acme.example.com"
        );
    }
}
