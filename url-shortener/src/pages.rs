//! The few HTML pages a browser sees on `/s/{code}`: small, no JavaScript, not cacheable,
//! not frameable (`common::pages`'s shell and headers), with nothing from the request
//! echoed but the code (8 alphanumerics by the time it gets here, and escaped anyway).

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use common::pages::{Forms, Style, document, respond};
use maud::{Markup, html};

static STYLE: LazyLock<Style> = LazyLock::new(|| {
    Style::new(
        "body{font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;color:#172b4d;\
margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}\
main{background:#fff;padding:2rem 2.5rem;border-radius:8px;box-shadow:0 1px 4px #0002;\
max-width:24rem;width:100%}h1{font-size:1.3rem;margin:0 0 .75rem}p{margin:.5rem 0}\
.err{color:#ae2a19;font-weight:600}label{display:block;margin:1rem 0 .25rem}\
input{width:100%;box-sizing:border-box;padding:.5rem;font:inherit;border:1px solid #8590a2;\
border-radius:4px}button{margin-top:1rem;padding:.5rem 1.25rem;font:inherit;border:0;\
border-radius:4px;background:#0c66e4;color:#fff;cursor:pointer}",
    )
});

fn page(status: StatusCode, title: &str, body: &Markup) -> Response {
    respond(status, &STYLE, Forms::None, document(title, &STYLE, body))
}

/// `page` with `Retry-After`.
fn page_retrying(status: StatusCode, title: &str, body: &Markup, retry_after: u64) -> Response {
    let mut response = page(status, title, body);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

pub fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Link not found",
        &html! {
            h1 { "Link not found" }
            p { "There is no share link at this address. Check that it was copied completely." }
        },
    )
}

pub fn gone() -> Response {
    page(
        StatusCode::GONE,
        "Link no longer available",
        &html! {
            h1 { "This link is no longer available" }
            p {
                "It has expired, been switched off, or been opened as many times as it \
                 allows. Ask whoever shared it for a new one."
            }
        },
    )
}

pub fn too_many(retry_after: u64) -> Response {
    let minutes = retry_after.div_ceil(60);
    page_retrying(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        &html! {
            h1 { "Too many attempts" }
            p {
                "Too many passwords were tried for this link. Try again in about "
                (minutes) " minute" @if minutes != 1 { "s" } "."
            }
        },
        retry_after,
    )
}

/// 503: every password hashing worker was busy for longer than the queue wait.
pub fn busy(retry_after: u64) -> Response {
    page_retrying(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again in a moment",
        &html! {
            h1 { "Try again in a moment" }
            p {
                "Too many passwords are being checked right now. Go back and send yours \
                 again in a few seconds."
            }
        },
        retry_after,
    )
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
    let status = if wrong {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let body = html! {
        h1 { "This link is protected" }
        p { "Enter the password you were given with the link." }
        @if wrong {
            p.err role="alert" { "That password is not right. Try again." }
        }
        form method="post" action={ "/s/" (code) } {
            label for="password" { "Password" }
            input #password name="password" type="password" required autofocus
                autocomplete="current-password" maxlength="128";
            button type="submit" { "Open" }
        }
    };
    let page = document("Password required", &STYLE, &body);
    respond(status, &STYLE, Forms::SelfAnd(origin(target)), page)
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use axum::response::Response;

    async fn text(page: Response) -> String {
        let body = to_bytes(page.into_body(), usize::MAX).await.unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

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

    #[tokio::test]
    async fn the_form_escapes_what_it_echoes() {
        let page = super::password_form("\"><script>x</script>&", true, "https://a.example/");
        let html = text(page).await;
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("action=\"/s/&quot;&gt;&lt;script&gt;x&lt;/script&gt;&amp;\""),
            "{html}"
        );
        assert!(html.contains("role=\"alert\""), "{html}");
    }

    #[tokio::test]
    async fn every_page_is_the_shared_shell_with_its_headers() {
        for (page, status) in [
            (super::not_found(), 404),
            (super::gone(), 410),
            (super::too_many(61), 429),
            (super::busy(3), 503),
            (
                super::password_form("abcdEFGH", false, "https://a.example/x"),
                200,
            ),
        ] {
            assert_eq!(page.status().as_u16(), status);
            let csp = page.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"));
            assert_eq!(page.headers()["x-frame-options"], "DENY");
            let html = text(page).await;
            assert!(html.starts_with("<!DOCTYPE html>") && !html.contains("<script"));
        }
        assert_eq!(super::too_many(61).headers()["retry-after"], "61");
        assert!(text(super::too_many(61)).await.contains("about 2 minutes."));
        assert!(text(super::too_many(60)).await.contains("about 1 minute."));
    }
}
