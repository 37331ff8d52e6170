//! Requests written and answers read byte by byte, for what a client library would not
//! send (or would mend) on its own.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One answer read off a raw connection: status, headers (lower-case), body de-chunked.
pub struct RawAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one answer from `stream`, keeping what follows it in `buf`.
pub async fn read_answer<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    head: bool,
) -> RawAnswer {
    async fn fill<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) {
        buf.reserve(16 * 1024);
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read_buf(buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "the gateway closed the connection");
    }
    let (status, headers, head_len) = loop {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut fields);
        if let httparse::Status::Complete(len) = res.parse(buf).unwrap() {
            let headers = res
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect::<Vec<_>>();
            break (res.code.unwrap(), headers, len);
        }
        fill(stream, buf).await;
    };
    buf.drain(..head_len);
    let mut answer = RawAnswer {
        status,
        headers,
        body: Vec::new(),
    };
    if head {
        return answer;
    }
    if let Some(length) = answer.header("content-length") {
        let length: usize = length.parse().unwrap();
        while buf.len() < length {
            fill(stream, buf).await;
        }
        answer.body = buf.drain(..length).collect();
    } else {
        assert_eq!(answer.header("transfer-encoding"), Some("chunked"));
        loop {
            let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
                fill(stream, buf).await;
                continue;
            };
            let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap(), 16).unwrap();
            while buf.len() < line_end + 2 + size + 2 {
                fill(stream, buf).await;
            }
            answer
                .body
                .extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
            buf.drain(..line_end + 2 + size + 2);
            if size == 0 {
                break;
            }
        }
    }
    answer
}

/// Whether the server closed `stream` (within 5 s): a read that ends or fails.
pub async fn closed<S: AsyncRead + Unpin>(stream: &mut S) -> bool {
    let mut rest = [0u8; 256];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read(&mut rest)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Sends `request` on a new connection to `addr` and reads one answer (a HEAD's
/// without a body when `head`).
pub async fn send(
    addr: std::net::SocketAddr,
    request: &[u8],
    head: bool,
) -> (TcpStream, RawAnswer) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let answer = read_answer(&mut stream, &mut buf, head).await;
    (stream, answer)
}

/// Sends `head` a line at a time, `gap` apart, on a task of its own (it stops when the
/// server closes), and reads the answer meanwhile: its status, the time from the head's
/// first byte to the answer, and whether the connection then closed.
pub async fn trickle(stream: TcpStream, head: &str, gap: Duration) -> (u16, Duration, bool) {
    let (mut read, mut write) = stream.into_split();
    let lines: Vec<String> = head.split_inclusive("\r\n").map(str::to_owned).collect();
    let started = std::time::Instant::now();
    let writer = tokio::spawn(async move {
        for line in lines {
            if write.write_all(line.as_bytes()).await.is_err() {
                break;
            }
            tokio::time::sleep(gap).await;
        }
        write
    });
    let mut buf = Vec::new();
    let answer = read_answer(&mut read, &mut buf, false).await;
    let took = started.elapsed();
    let closed = closed(&mut read).await;
    writer.abort();
    (answer.status, took, closed)
}
