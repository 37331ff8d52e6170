//! Reading a request head on the lane: what the edge looks at, whether the lane may
//! serve it at all, and how the client would like answers compressed.

use std::io;

use common::telemetry::REQUEST_ID_HEADER;

use super::MAX_BUFFERED_BODY;

/// What is in the buffer so far.
pub(super) enum Inspected<'b> {
    Partial,
    /// A head of `head_len` bytes the lane may serve (its body follows it).
    Complete {
        head_len: usize,
        facts: Facts<'b>,
    },
    /// Not for the lane (see the module's documentation).
    Foreign,
}

/// Parses the head at the start of `buf` into `req`. A head longer than `max_head`
/// (whole, or still partial at that length) is not the lane's: hyper answers it 431.
pub(super) fn inspect<'b>(
    req: &mut httparse::Request<'_, 'b>,
    buf: &'b [u8],
    max_head: usize,
) -> Inspected<'b> {
    if buf.is_empty() {
        return Inspected::Partial;
    }
    match req.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) if head_len <= max_head => match facts(req) {
            Some(facts) => Inspected::Complete { head_len, facts },
            None => Inspected::Foreign,
        },
        Ok(httparse::Status::Partial) if buf.len() < max_head => Inspected::Partial,
        Ok(_) | Err(_) => Inspected::Foreign,
    }
}

/// The lane's head reader as the fuzzer drives it: any bytes, a verdict, no panic.
#[doc(hidden)]
pub fn fuzz_head(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; super::MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match inspect(&mut req, bytes, 16 * 1024) {
        Inspected::Complete { head_len, facts } => {
            assert!(head_len <= bytes.len() && facts.content_length <= MAX_BUFFERED_BODY);
            assert!(facts.target.starts_with('/') && !facts.host.contains(['\r', '\n']));
            Some((head_len, facts.content_length))
        }
        Inspected::Partial | Inspected::Foreign => None,
    }
}

/// The fields of a lane request the edge looks at.
pub(super) struct Facts<'a> {
    pub(super) method: &'a str,
    pub(super) target: &'a str,
    pub(super) path: &'a str,
    pub(super) host: &'a str,
    pub(super) authorization: Option<&'a str>,
    pub(super) request_id: Option<&'a [u8]>,
    pub(super) content_length: usize,
    /// The client asked for the connection to end after this request.
    pub(super) close: bool,
    /// How the client would like answers compressed.
    pub(super) coding: Option<Coding>,
    /// A cross-origin request: CORS is the router's.
    pub(super) origin: bool,
}

/// The request's facts if the lane may serve it, else `None`.
fn facts<'a>(req: &httparse::Request<'_, 'a>) -> Option<Facts<'a>> {
    if req.version != Some(1) {
        return None;
    }
    let method = req.method?;
    if matches!(method, "CONNECT" | "OPTIONS" | "TRACE" | "PRI") {
        return None;
    }
    let target = req.path.filter(|t| t.starts_with('/'))?;
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let (mut host, mut content_length) = (None, None);
    let (mut authorization, mut request_id, mut close) = (None, None, false);
    let (mut coding, mut origin) = (None, false);
    for header in req.headers.iter() {
        let name = header.name;
        let value = header.value;
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() || !common::edge::is_valid_host(value) {
                return None;
            }
            host = Some(std::str::from_utf8(value).ok()?);
        } else if name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() || value.is_empty() || !value.iter().all(u8::is_ascii_digit)
            {
                return None;
            }
            content_length = Some(std::str::from_utf8(value).ok()?.parse::<usize>().ok()?);
        } else if name.eq_ignore_ascii_case("authorization") {
            // A second one is for the general path to judge, as it reads them.
            if authorization.is_some() {
                return None;
            }
            authorization = Some(std::str::from_utf8(value).ok()?);
        } else if name.eq_ignore_ascii_case(REQUEST_ID_HEADER) {
            request_id = Some(value);
        } else if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if !value.eq_ignore_ascii_case(b"keep-alive") {
                return None;
            }
        } else if name.eq_ignore_ascii_case("accept-encoding") {
            coding = preferred_coding(value);
        } else if name.eq_ignore_ascii_case("origin") {
            origin = true;
        } else if ["transfer-encoding", "upgrade", "expect", "http2-settings"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            return None;
        }
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BUFFERED_BODY {
        return None;
    }
    Some(Facts {
        method,
        target,
        path,
        host: host?,
        authorization,
        request_id,
        content_length,
        close,
        coding,
        origin,
    })
}

/// A content coding the lane compresses answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Coding {
    Gzip,
    Br,
}

impl Coding {
    pub(super) fn name(self) -> &'static [u8] {
        match self {
            Self::Gzip => b"gzip",
            Self::Br => b"br",
        }
    }
}

/// The client's preferred coding of `Accept-Encoding` among brotli and gzip (highest
/// `q`, brotli on a tie; `q=0` refuses one).
fn preferred_coding(value: &[u8]) -> Option<Coding> {
    let mut best: Option<(Coding, f32)> = None;
    for item in value.split(|b| *b == b',') {
        let mut params = item.split(|b| *b == b';');
        let name = params.next().unwrap_or_default().trim_ascii();
        let coding = if name.eq_ignore_ascii_case(b"br") {
            Coding::Br
        } else if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
            Coding::Gzip
        } else {
            continue;
        };
        let q = params
            .map(<[u8]>::trim_ascii)
            .find_map(|p| p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q=")))
            .map_or(Some(1.0), |q| {
                std::str::from_utf8(q).ok()?.parse::<f32>().ok()
            })
            .unwrap_or(0.0);
        let better = match best {
            None => true,
            Some((held, held_q)) => {
                q > held_q || (q == held_q && coding == Coding::Br && held != Coding::Br)
            }
        };
        if q > 0.0 && better {
            best = Some((coding, q));
        }
    }
    best.map(|(coding, _)| coding)
}

/// Answers worth compressing are JSON or text of at least this many bytes (as the
/// general path's compression layer)...
pub(super) const COMPRESS_MIN: u64 = crate::COMPRESS_MIN_BYTES as u64;
/// ...and, on the lane, of a declared length up to this (read whole, then compressed);
/// longer or unannounced ones pass as they are, which HTTP allows.
pub(super) const COMPRESS_MAX: u64 = 1024 * 1024;

pub(super) fn compress(coding: Coding, body: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Write;
    let mut out = Vec::with_capacity(body.len() / 2 + 64);
    match coding {
        Coding::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            encoder.write_all(body)?;
            out = encoder.finish()?;
        }
        Coding::Br => {
            // Quality 4: brotli's fast end, still well ahead of gzip on JSON.
            let mut encoder = brotli::CompressorWriter::new(&mut out, 4096, 4, 22);
            encoder.write_all(body)?;
            encoder.flush()?;
            drop(encoder);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::MAX_HEADERS;
    #[test]
    fn smuggling_shapes_and_what_the_lane_does_not_do_go_to_the_general_path() {
        let foreign = [
            &b"GET /api/v1/projects HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"[..],
            b"POST /api/v1/projects HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET /api/v1/projects HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET /api/v1/projects HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx",
            b"GET /api/v1/projects HTTP/1.0\r\nHost: a\r\n\r\n",
            b"GET /api/v1/projects HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET /api/v1/projects HTTP/1.1\r\n\r\n",
            b"GET http://a/api/v1/projects HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /api/v1/projects HTTP/1.1\r\nHost: a\r\nContent-Length: 70000\r\n\r\n",
        ];
        let inspected = |bytes: &[u8]| {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match inspect(&mut req, bytes, 16 * 1024) {
                Inspected::Partial => "partial".to_owned(),
                Inspected::Foreign => "foreign".to_owned(),
                Inspected::Complete { head_len, facts } => {
                    format!("{head_len}+{}", facts.content_length)
                }
            }
        };
        for bytes in foreign {
            assert_eq!(
                inspected(bytes),
                "foreign",
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        let plain = b"POST /api/v1/projects HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}";
        assert_eq!(inspected(plain), format!("{}+2", plain.len() - 2));
        assert_eq!(inspected(b"GET /api/v1/pro"), "partial");
        let own = b"GET /metrics HTTP/1.1\r\nHost: a\r\nOrigin: http://b\r\n\r\n";
        assert_eq!(inspected(own), format!("{}+0", own.len()));
    }

    #[test]
    fn the_preferred_coding_follows_q_values_and_refusals() {
        let cases = [
            (&b"gzip"[..], Some(Coding::Gzip)),
            (b"gzip, deflate, br", Some(Coding::Br)),
            (b"br;q=0.5, gzip;q=0.9", Some(Coding::Gzip)),
            (b"br;q=0, gzip", Some(Coding::Gzip)),
            (b"gzip;q=0", None),
            (b"identity", None),
            (b"deflate", None),
            (b"", None),
            (b"GZIP ; Q=0.3 , x-gzip;q=0.2", Some(Coding::Gzip)),
        ];
        for (value, expected) in cases {
            assert_eq!(
                preferred_coding(value),
                expected,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }
}
