//! A small `text/event-stream` reader for tests: the frames of a streamed answer, each
//! with its `id:`, `event:` and `data:` (comments and `retry:` are read and skipped).

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};

/// One event of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl Frame {
    /// `data:` as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).expect("an event's data is JSON")
    }

    /// The `seq` its `id:` carries.
    pub fn seq(&self) -> i64 {
        self.id
            .as_deref()
            .and_then(|id| id.parse().ok())
            .expect("a numeric id")
    }
}

/// What waiting for the next frame gave.
#[derive(Debug)]
pub enum Next {
    Frame(Frame),
    /// The server ended the stream.
    Ended,
    /// Nothing within the wait.
    Quiet,
}

pub struct EventStream {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buf: String,
    /// Whether the stream has sent its `retry:`.
    pub retry_seen: bool,
}

impl EventStream {
    /// Reads `response`, which must be a 200 `text/event-stream`.
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200, "a stream opens with 200");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "a stream is text/event-stream, not {content_type}"
        );
        Self {
            body: Box::pin(response.bytes_stream()),
            buf: String::new(),
            retry_seen: false,
        }
    }

    /// The next frame within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if let Some(frame) = self.parse(&block) {
                    return Next::Frame(frame);
                }
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return Next::Quiet,
                Ok(None | Some(Err(_))) => return Next::Ended,
                Ok(Some(Ok(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
            }
        }
    }

    /// The next frame, which must come within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Frame {
        match self.next_within(wait).await {
            Next::Frame(frame) => frame,
            other => panic!("no event within {wait:?}: {other:?}"),
        }
    }

    /// Frames until one of `event` type arrives (within `wait` in all); it and those
    /// before it.
    pub async fn until(&mut self, event: &str, wait: Duration) -> Vec<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut frames = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = match self.next_within(left).await {
                Next::Frame(frame) => frame,
                other => panic!("no `{event}` within {wait:?} ({other:?}); got {frames:#?}"),
            };
            let done = frame.event == event;
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }

    fn parse(&mut self, block: &str) -> Option<Frame> {
        let (mut id, mut event, mut data) = (None, String::from("message"), Vec::new());
        let mut any = false;
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "" => {}
                "retry" => self.retry_seen = true,
                "id" => id = Some(value.to_owned()),
                "event" => {
                    event = value.to_owned();
                    any = true;
                }
                "data" => {
                    data.push(value.to_owned());
                    any = true;
                }
                _ => {}
            }
        }
        any.then(|| Frame {
            id,
            event,
            data: data.join("\n"),
        })
    }
}
