//! The HTTP/1.1 edge rules every listener keeps (RFC 9112), written once for hyper's
//! path and the lanes' own loops.
//!
//! - **Host** (§3.2): an HTTP/1.1 request without `Host`, any request with more than one,
//!   or one whose value is not `host[:port]` is 400 (problem+json, `connection: close`).
//!   An absolute-form target (`GET http://acme.localhost/x HTTP/1.1`) names the host
//!   itself: a `Host` beside it must say the same, else 400; without one (HTTP/1.0) the
//!   target's authority becomes the `Host` the router sees. [`check_host`] does this for
//!   every request hyper parses (HTTP/1.x and h2c, where `:authority` plays the target's
//!   part), before the router; the lanes serve only origin-form requests with exactly
//!   one `Host` that [`is_valid_host`] accepts and hand everything else to hyper, so one
//!   function decides for both.
//! - **Head size**: a head over `MAX_HEAD_BYTES` is 431. hyper's
//!   `http1::Builder::max_header_size` counts the whole head (request line and fields) and
//!   answers 431 itself; the lanes hand a longer head to hyper before answering anything.
//! - **Head time**: a head not complete within `HEADER_READ_TIMEOUT_SECS` of its first
//!   byte is 408 and the connection closes. hyper's own `header_read_timeout` starts when
//!   it starts waiting for a head (so it would also cut idle keep-alive connections) and
//!   closes without an answer; [`watch`] gives hyper a timer whose head clock starts at
//!   the head's first byte (idle time before it is the idle timeout's, or nobody's) and
//!   writes the 408 itself when that clock ran out. The lanes keep the same clock in
//!   `lane::Deadlines`.

use std::time::Duration;

use axum::http::{HeaderValue, Request, Response, Version, header};
use axum::response::IntoResponse;

use crate::ApiError;

pub(crate) mod watch;

/// A listener's head limits (from [`crate::config::ServerArgs`]).
#[derive(Debug, Clone, Copy)]
pub struct Edge {
    /// The largest request head, request line and fields, in bytes.
    pub max_head: usize,
    /// How long a head may take from its first byte to its end.
    pub head_timeout: Duration,
    /// How long a connection may wait for the first byte of its next request (`None`:
    /// as long as it likes).
    pub idle: Option<Duration>,
}

impl Edge {
    /// The same limits with another idle timeout.
    #[must_use]
    pub fn with_idle(self, idle: Option<Duration>) -> Self {
        Self { idle, ..self }
    }
}

/// The 408 a connection gets when its head took too long; it closes after it.
pub const TIMED_OUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\n\
content-type: application/problem+json\r\n\
connection: close\r\n\
content-length: 123\r\n\r\n\
{\"type\":\"/docs/problems#request-timeout\",\"title\":\"Request Timeout\",\"status\":408,\
\"detail\":\"The request head took too long.\"}";

/// Whether a `Host` value is `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): a
/// registered name (letters, digits, `-._~`, sub-delimiters, `%HH`), an IPv4 address or a
/// bracketed IP literal, and an optional all-digit port. Empty is allowed (a target
/// without an authority).
pub fn is_valid_host(value: &[u8]) -> bool {
    let (host, port) = if let Some(literal) = value.strip_prefix(b"[") {
        let Some(end) = literal.iter().position(|b| *b == b']') else {
            return false;
        };
        let (inside, rest) = (&literal[..end], &literal[end + 1..]);
        if inside.is_empty()
            || !inside
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b":.-_~!$&'()*+,;=".contains(b))
        {
            return false;
        }
        match rest {
            [] => return true,
            [b':', port @ ..] => (&b""[..], port),
            _ => return false,
        }
    } else {
        match value.iter().rposition(|b| *b == b':') {
            Some(colon) => (&value[..colon], &value[colon + 1..]),
            None => (value, &b""[..]),
        }
    };
    port.iter().all(u8::is_ascii_digit) && is_reg_name(host)
}

fn is_reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while i < host.len() {
        match host[i] {
            b'%' => {
                let hex = host.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
                continue;
            }
            b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// The Host rules for a request hyper parsed: `Err` is the answer (400). For an
/// absolute-form target (or HTTP/2's `:authority`) without a `Host`, the authority is
/// written into `Host`, so the router reads the host in one place.
#[allow(clippy::result_large_err)]
pub fn check_host<B>(req: &mut Request<B>) -> Result<(), Response<axum::body::Body>> {
    let http1 = req.version() <= Version::HTTP_11;
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(refuse(http1, "A request may carry only one Host field."));
    }
    if let Some(host) = host
        && !is_valid_host(host.as_bytes())
    {
        return Err(refuse(http1, "The Host field is not a host name and port."));
    }
    let uri = req.uri();
    let Some(authority) = uri.authority() else {
        return if host.is_none() && req.version() == Version::HTTP_11 {
            Err(refuse(
                http1,
                "An HTTP/1.1 request must carry a Host field.",
            ))
        } else {
            Ok(())
        };
    };
    // Absolute-form (HTTP/1.x) or `:authority` (HTTP/2): its host is the request's.
    if http1 && !matches!(uri.scheme_str(), Some("http" | "https")) && uri.scheme().is_some() {
        return Err(refuse(http1, "Only http and https targets are served."));
    }
    let authority = authority.as_str();
    if authority.contains('@') || !is_valid_host(authority.as_bytes()) {
        return Err(refuse(
            http1,
            "The target's authority is not a host name and port.",
        ));
    }
    match host {
        Some(host) if !host.as_bytes().eq_ignore_ascii_case(authority.as_bytes()) => Err(refuse(
            http1,
            "The Host field names another host than the request target.",
        )),
        Some(_) => Ok(()),
        None if req.version() == Version::HTTP_11 => Err(refuse(
            http1,
            "An HTTP/1.1 request must carry a Host field.",
        )),
        None => {
            let value = HeaderValue::from_str(authority).expect("a valid authority");
            req.headers_mut().insert(header::HOST, value);
            Ok(())
        }
    }
}

/// A 400 problem that closes an HTTP/1.x connection (the request broke the protocol).
fn refuse(http1: bool, detail: &str) -> Response<axum::body::Body> {
    let mut response = ApiError::BadRequest(detail.to_owned()).into_response();
    if http1 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_408_says_its_own_length() {
        let text = std::str::from_utf8(TIMED_OUT).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }

    #[test]
    fn host_values_are_host_and_port() {
        for good in [
            &b"acme.localhost"[..],
            b"acme.localhost:8080",
            b"127.0.0.1:80",
            b"[::1]:8080",
            b"[::1]",
            b"",
            b"xn--bcher-kva.example",
            b"a%20b",
            b"host:",
        ] {
            assert!(is_valid_host(good), "{}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b"a b"[..],
            b"a/b",
            b"a@b",
            b"a:b:c",
            b"a:8o",
            b"[::1",
            b"[::1]x",
            b"a%2",
            b"a\tb",
            b"\xc3\xa9",
            b"a?b",
        ] {
            assert!(!is_valid_host(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    fn request(version: Version, target: &str, hosts: &[&str]) -> Request<()> {
        let mut req = Request::builder().version(version).uri(target);
        for host in hosts {
            req = req.header(header::HOST, *host);
        }
        req.body(()).unwrap()
    }

    #[test]
    fn the_host_rules_of_rfc_9112() {
        use Version as V;
        let status = |version, target, hosts: &[&str]| {
            let mut req = request(version, target, hosts);
            match check_host(&mut req) {
                Ok(()) => req.headers().get(header::HOST).map_or_else(
                    || "ok, no host".to_owned(),
                    |h| format!("ok {}", h.to_str().unwrap()),
                ),
                Err(refused) => refused.status().as_str().to_owned(),
            }
        };
        assert_eq!(status(V::HTTP_11, "/x", &["a"]), "ok a");
        assert_eq!(status(V::HTTP_11, "/x", &[]), "400");
        assert_eq!(status(V::HTTP_11, "/x", &["a", "a"]), "400");
        assert_eq!(status(V::HTTP_10, "/x", &["a", "b"]), "400");
        assert_eq!(status(V::HTTP_10, "/x", &[]), "ok, no host");
        assert_eq!(status(V::HTTP_11, "/x", &["a b"]), "400");
        assert_eq!(
            status(V::HTTP_11, "http://Acme.localhost/x", &["acme.LOCALHOST"]),
            "ok acme.LOCALHOST"
        );
        assert_eq!(status(V::HTTP_11, "http://acme.localhost/x", &["b"]), "400");
        assert_eq!(status(V::HTTP_11, "http://acme.localhost/x", &[]), "400");
        assert_eq!(
            status(V::HTTP_10, "http://acme.localhost:8080/x", &[]),
            "ok acme.localhost:8080"
        );
        assert_eq!(status(V::HTTP_11, "http://u@a/x", &["u@a"]), "400");
        assert_eq!(status(V::HTTP_11, "ftp://a/x", &["a"]), "400");
        assert_eq!(status(V::HTTP_2, "http://a/x", &[]), "ok a");
        assert_eq!(status(V::HTTP_2, "http://a/x", &["b"]), "400");
        assert_eq!(status(V::HTTP_2, "/x", &[]), "ok, no host");
    }
}
