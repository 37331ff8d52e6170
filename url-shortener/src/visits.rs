//! Counted visits leave the redirect path at once: the handler pushes them onto a channel
//! and a background flusher writes them in batches. A batch's `url.accessed` events are
//! offered to the broker first, with confirms; then one transaction adds the counts and
//! puts whatever the broker did not confirm into the outbox, for the relay. So a broker
//! outage loses no event, and while the broker is up the events do not pass through
//! PostgreSQL at all (writing them there was a tenth of the redirect's throughput). A
//! failed write is retried with the same batch; on shutdown whatever is pending is
//! written before the process exits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};

use chrono::{DateTime, Utc};
use common::client::{FORWARDED_FOR, TrustedProxies};
use common::events::{Broker, Message, keys};
use rand::RngCore;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Config;
use crate::db;
use crate::domain::visitor::{AgentClass, referrer_host, visitor_digest_on};

/// One successful redirect, as the request left it: header values are shared with the
/// request (no copy on the redirect path), and the address and agent stay in memory only
/// until the flusher hashes them.
pub struct Visit {
    pub code: Arc<str>,
    pub tenant_id: Uuid,
    pub at: DateTime<Utc>,
    pub peer: IpAddr,
    /// Every `X-Forwarded-For` field, as one list; the flusher finds the client in it by
    /// `common::client`'s rule.
    pub forwarded_for: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub referer: Option<HeaderValue>,
}

impl Visit {
    /// Takes what a visit records from the request's headers.
    pub fn new(code: Arc<str>, tenant_id: Uuid, peer: IpAddr, headers: &HeaderMap) -> Self {
        Self {
            code,
            tenant_id,
            at: Utc::now(),
            peer,
            forwarded_for: forwarded_for(headers),
            user_agent: headers.get(header::USER_AGENT).cloned(),
            referer: headers.get(header::REFERER).cloned(),
        }
    }

    /// The same from header values read off the wire (the redirect lane's request head),
    /// made `at` the time the lane read for the request.
    pub fn from_fields(
        code: Arc<str>,
        tenant_id: Uuid,
        peer: IpAddr,
        [forwarded_for, user_agent, referer]: [Option<&[u8]>; 3],
        at: DateTime<Utc>,
    ) -> Self {
        let value = |bytes: Option<&[u8]>| bytes.and_then(|b| HeaderValue::from_bytes(b).ok());
        Self {
            code,
            tenant_id,
            at,
            peer,
            forwarded_for: value(forwarded_for),
            user_agent: value(user_agent),
            referer: value(referer),
        }
    }
}

/// The `X-Forwarded-For` fields as one value: shared with the request when there is one
/// field (the usual case), joined when there are more.
fn forwarded_for(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut fields = headers.get_all(FORWARDED_FOR).iter();
    let first = fields.next()?;
    let rest: Vec<&[u8]> = fields.map(HeaderValue::as_bytes).collect();
    if rest.is_empty() {
        return Some(first.clone());
    }
    let joined = std::iter::once(first.as_bytes())
        .chain(rest)
        .collect::<Vec<_>>()
        .join(&b", "[..]);
    HeaderValue::from_bytes(&joined).ok()
}

fn text(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok())
}

/// Where handlers put visits; cheap to clone.
#[derive(Clone)]
pub struct VisitSink(mpsc::UnboundedSender<Visit>);

impl VisitSink {
    pub fn record(&self, visit: Visit) {
        if self.0.send(visit).is_err() {
            tracing::error!("visit flusher is gone; a visit was not recorded");
        }
    }
}

pub struct Flusher {
    rx: mpsc::UnboundedReceiver<Visit>,
    pool: PgPool,
    broker: Broker,
    /// Set when the broker last failed: until then batches go straight to the outbox,
    /// so an unreachable broker does not hold up every flush for [`PUBLISH_TIMEOUT`].
    broker_paused_until: Option<tokio::time::Instant>,
    interval: Duration,
    batch_size: usize,
    salt: Arc<[u8]>,
    trusted: TrustedProxies,
}

/// How long a flush waits for the broker's confirms before it leaves the batch's events
/// to the outbox (should they arrive after all, the relay's copy is a duplicate, which
/// consumers drop by event id).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after the broker failed a flush the following ones skip it.
const BROKER_PAUSE: Duration = Duration::from_secs(10);

/// The sink handlers use and the flusher to spawn.
pub fn channel(pool: PgPool, broker: Broker, config: &Config) -> (VisitSink, Flusher) {
    let (tx, rx) = mpsc::unbounded_channel();
    let salt = config.visitor_hash_salt.as_ref().map_or_else(
        || {
            let mut salt = vec![0; 32];
            rand::thread_rng().fill_bytes(&mut salt);
            salt
        },
        |s| s.expose_secret().as_bytes().to_vec(),
    );
    let salt: Arc<[u8]> = salt.into();
    let flusher = Flusher {
        rx,
        pool,
        broker,
        broker_paused_until: None,
        interval: Duration::from_millis(config.visit_flush_interval_ms.max(1)),
        batch_size: config.visit_batch_size.max(1),
        salt,
        trusted: config.server.trusted_proxies.clone(),
    };
    (VisitSink(tx), flusher)
}

impl Flusher {
    /// Runs until every sink is dropped (the server has stopped) and all is written.
    ///
    /// After the first visit of a batch it sleeps for one interval and then takes what has
    /// gathered, rather than waiting on the channel: a waiting receiver is woken by every
    /// send, which on the redirect path cost a task wake and a timer per visit. Once
    /// `shutdown` is cancelled it no longer waits: what is pending is written at once.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(self.batch_size.min(4096));
        loop {
            if self.rx.recv_many(&mut batch, self.batch_size).await == 0 {
                break;
            }
            if batch.len() < self.batch_size {
                tokio::select! {
                    () = tokio::time::sleep(self.interval) => {}
                    () = shutdown.cancelled() => {}
                }
                while batch.len() < self.batch_size {
                    match self.rx.try_recv() {
                        Ok(visit) => batch.push(visit),
                        Err(_) => break,
                    }
                }
            }
            self.write(&mut batch).await;
        }
        tracing::info!("visit flusher stopped");
    }

    /// Writes `batch`, retrying with backoff until it is written. Hashing visitors and
    /// encoding their events (milliseconds for a full batch) runs on a blocking thread, so
    /// the redirects on the async threads are not held up meanwhile.
    async fn write(&mut self, batch: &mut Vec<Visit>) {
        let visits = std::mem::take(batch);
        let salt = Arc::clone(&self.salt);
        let trusted = self.trusted.clone();
        let (counts, messages, count) =
            match tokio::task::spawn_blocking(move || prepare(&salt, &trusted, visits)).await {
                Ok((prepared, emptied)) => {
                    *batch = emptied;
                    prepared
                }
                Err(err) => {
                    tracing::error!(error = %err, "preparing visits failed; they are lost");
                    return;
                }
            };
        let confirmed = self.publish(&messages).await;
        let unconfirmed: Vec<&Message> = messages
            .iter()
            .zip(&confirmed)
            .filter(|(_, ok)| !**ok)
            .map(|(message, _)| message)
            .collect();
        metrics::counter!("visit_event_messages_total", "via" => "broker")
            .increment((messages.len() - unconfirmed.len()) as u64);
        metrics::counter!("visit_event_messages_total", "via" => "outbox")
            .increment(unconfirmed.len() as u64);
        let mut backoff = Duration::from_millis(100);
        loop {
            match db::visits::record(&self.pool, &counts, &unconfirmed).await {
                Ok(()) => {
                    tracing::debug!(visits = count, "visits written");
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %err, visits = count, "writing visits failed; will retry");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Offers `messages` to the broker; whether each was confirmed. None is while the
    /// broker is paused after a failure, or when it does not confirm within
    /// [`PUBLISH_TIMEOUT`].
    async fn publish(&mut self, messages: &[Message]) -> Vec<bool> {
        let now = tokio::time::Instant::now();
        if messages.is_empty() || self.broker_paused_until.is_some_and(|until| now < until) {
            return vec![false; messages.len()];
        }
        let confirmed =
            match tokio::time::timeout(PUBLISH_TIMEOUT, self.broker.publish_messages(messages))
                .await
            {
                Ok(Ok(confirmed)) => confirmed,
                Ok(Err(err)) => {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        "publishing visits failed; they go to the outbox"
                    );
                    vec![false; messages.len()]
                }
                Err(_) => {
                    tracing::warn!(
                        "the broker did not confirm visits in time; they go to the outbox"
                    );
                    vec![false; messages.len()]
                }
            };
        self.broker_paused_until = confirmed.iter().any(|ok| !ok).then(|| now + BROKER_PAUSE);
        confirmed
    }
}

/// A batch's counts per code, its `url.accessed` events encoded as batch messages (each
/// with its own id), and how many visits it holds. The visits are dropped here (off the
/// async threads) and the emptied vector is handed back, so the flusher gathers the next
/// batch into the same memory instead of regrowing a new one.
fn prepare(salt: &[u8], trusted: &TrustedProxies, mut batch: Vec<Visit>) -> (Prepared, Vec<Visit>) {
    let prepared = encode(salt, trusted, &batch);
    batch.clear();
    (prepared, batch)
}

/// `ip` written into `buf` (no allocation per visit).
fn ip_text(ip: IpAddr, buf: &mut [u8; 45]) -> &str {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    write!(cursor, "{ip}").expect("an address fits in 45 bytes");
    let len = usize::try_from(cursor.position()).expect("small");
    std::str::from_utf8(&buf[..len]).expect("an address is ASCII")
}

/// What a batch becomes: counts per code, messages, and how many visits they hold.
type Prepared = (Vec<(String, i64)>, Vec<Message>, usize);

fn encode(salt: &[u8], trusted: &TrustedProxies, batch: &[Visit]) -> Prepared {
    let mut counts: HashMap<&str, i64> = HashMap::new();
    // Agents repeat (a batch holds few distinct ones), and classing one scans for every
    // bot marker; the day's text changes once a day.
    let mut classes: HashMap<&str, AgentClass> = HashMap::new();
    let mut address = [0u8; 45];
    let mut day = (chrono::NaiveDate::MIN, String::new());
    let mut messages = Vec::new();
    let made = Utc::now();
    for chunk in batch.chunks(db::visits::EVENTS_PER_MESSAGE) {
        // Sized for the whole message at once (an event is about 300 bytes), so the
        // buffer is not regrown and copied along the way.
        let mut json = Vec::with_capacity(chunk.len() * 320);
        json.push(b'[');
        for visit in chunk {
            *counts.entry(&visit.code).or_default() += 1;
            let user_agent = text(visit.user_agent.as_ref()).unwrap_or_default();
            let class = *classes
                .entry(user_agent)
                .or_insert_with(|| AgentClass::of(user_agent));
            let date = visit.at.date_naive();
            if day.0 != date {
                day = (date, date.to_string());
            }
            let client = trusted.client(
                visit.peer,
                visit.forwarded_for.as_ref().map(HeaderValue::as_bytes),
            );
            let ip = ip_text(client, &mut address);
            if json.len() > 1 {
                json.push(b',');
            }
            write_accessed(
                &mut json,
                visit,
                &day.1,
                text(visit.referer.as_ref())
                    .and_then(referrer_host)
                    .as_deref(),
                class,
                &visitor_digest_on(salt, &day.1, ip, user_agent),
            );
        }
        json.push(b']');
        messages.push(Message {
            id: Uuid::now_v7(),
            routing_key: keys::URL_ACCESSED.to_owned(),
            body: json,
            request_id: None,
            at: made,
        });
    }
    let counts = counts.into_iter().map(|(c, n)| (c.to_owned(), n)).collect();
    (counts, messages, batch.len())
}

/// Appends one `url.accessed` envelope (`common::events::Envelope`, field for field, with
/// `data` of code, referrer_host, agent_class, visitor_hash) to `out` as JSON.
///
/// Written by hand rather than through serde: serde_json scans every string for
/// characters to escape, and here nearly every byte is a UUID, a timestamp, base62 or hex
/// made by this service. That scan was a fifth of the visit pipeline's time. Strings that
/// come from outside (the referrer's host; a code, which is base62 but checked anyway) go
/// through serde_json's escaping whenever they hold anything that needs it.
/// `day` is the visit's UTC date as `YYYY-MM-DD`.
fn write_accessed(
    out: &mut Vec<u8>,
    visit: &Visit,
    day: &str,
    referrer_host: Option<&str>,
    class: AgentClass,
    visitor_digest: &[u8; 8],
) {
    let mut ids = [0; uuid::fmt::Hyphenated::LENGTH];
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(
        common::events::uuid_v7_at(visit.at)
            .hyphenated()
            .encode_lower(&mut ids)
            .as_bytes(),
    );
    out.extend_from_slice(b"\",\"type\":\"");
    out.extend_from_slice(keys::URL_ACCESSED.as_bytes());
    // The envelope's version, written as a literal; a new version fails the build here.
    const _: () = assert!(common::events::ENVELOPE_VERSION == 1);
    out.extend_from_slice(b"\",\"version\":1,\"tenant_id\":\"");
    out.extend_from_slice(
        visit
            .tenant_id
            .hyphenated()
            .encode_lower(&mut ids)
            .as_bytes(),
    );
    out.extend_from_slice(b"\",\"occurred_at\":");
    write_time(out, visit.at, day);
    out.extend_from_slice(b",\"actor_id\":null,\"data\":{\"code\":");
    write_str(out, &visit.code);
    out.extend_from_slice(b",\"referrer_host\":");
    match referrer_host {
        Some(host) => write_str(out, host),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"agent_class\":\"");
    out.extend_from_slice(class.as_str().as_bytes());
    out.extend_from_slice(b"\",\"visitor_hash\":\"");
    let mut hash = [0; 16];
    hex::encode_to_slice(visitor_digest, &mut hash).expect("16 hex digits for 8 bytes");
    out.extend_from_slice(&hash);
    out.extend_from_slice(b"\"}}");
}

/// `s` as a JSON string: as it is when nothing in it needs escaping, else by serde_json.
fn write_str(out: &mut Vec<u8>, s: &str) {
    // Without an early exit, so the check runs over whole words at a time.
    let plain = s.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(out, s).expect("a string encodes");
    }
}

/// `at` in RFC 3339 with nanoseconds (`"2026-12-02T05:43:03.123456789Z"`), as chrono's
/// serde writes it; `day` is its date, already written.
fn write_time(out: &mut Vec<u8>, at: DateTime<Utc>, day: &str) {
    use chrono::Timelike;
    let nanos = at.timestamp_subsec_nanos();
    if day.len() != 10 || nanos >= 1_000_000_000 {
        // Years past 9999 and leap seconds: chrono's own format.
        serde_json::to_writer(out, &at).expect("a time encodes");
        return;
    }
    let seconds = at.num_seconds_from_midnight();
    out.push(b'"');
    out.extend_from_slice(day.as_bytes());
    out.push(b'T');
    for (n, width, then) in [
        (seconds / 3600, 2, b':'),
        (seconds / 60 % 60, 2, b':'),
        (seconds % 60, 2, b'.'),
        (nanos, 9, b'Z'),
    ] {
        let mut buf = [b'0'; 9];
        let mut n = n;
        for slot in buf[..width].iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
        }
        out.extend_from_slice(&buf[..width]);
        out.push(then);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use common::events::Envelope;

    use super::*;

    fn visit(code: &Arc<str>, peer: &str, headers: &[(&'static str, &str)]) -> Visit {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        Visit::new(
            Arc::clone(code),
            Uuid::now_v7(),
            peer.parse().unwrap(),
            &map,
        )
    }

    /// The hand-written event is the envelope serde would write, whatever the strings
    /// hold and whenever the visit was: the same fields and values once decoded.
    #[test]
    fn a_written_event_decodes_as_the_envelope_serde_writes() {
        #[derive(serde::Serialize)]
        struct Accessed<'a> {
            code: &'a str,
            referrer_host: Option<&'a str>,
            agent_class: &'static str,
            visitor_hash: String,
        }
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let times = [
            (0, 0, 0, 0),
            (5, 43, 3, 5),
            (23, 59, 59, 999_999_999),
            // A leap second, which chrono keeps as nanoseconds past 1e9.
            (23, 59, 59, 1_500_000_000),
        ];
        let hosts = [None, Some("chat.example.org"), Some("a\tb\"c\\d\u{e9}")];
        for ((h, m, sec, nanos), host) in times.into_iter().zip(hosts.into_iter().cycle()) {
            let at = day.and_hms_nano_opt(h, m, sec, nanos).unwrap().and_utc();
            let mut visit = visit(&Arc::from("aB3dE6gH"), "10.0.0.1", &[]);
            visit.at = at;
            let digest = [0xab, 0, 1, 2, 3, 4, 5, 0xff];
            let mut written = Vec::new();
            let day_text = day.to_string();
            write_accessed(
                &mut written,
                &visit,
                &day_text,
                host,
                AgentClass::Bot,
                &digest,
            );
            let written: Envelope = serde_json::from_slice(&written)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&written)));
            let expected = Envelope::at(
                at,
                keys::URL_ACCESSED,
                visit.tenant_id,
                None,
                Accessed {
                    code: "aB3dE6gH",
                    referrer_host: host,
                    agent_class: "bot",
                    visitor_hash: hex::encode(digest),
                },
            );
            let mut expected: Envelope =
                serde_json::from_str(&serde_json::to_string(&expected).unwrap()).unwrap();
            // Ids are random past their time: the same time, then the rest compared.
            let millis = |id: Uuid| id.get_timestamp().map(|t| t.to_unix());
            assert_eq!(millis(written.id), millis(expected.id));
            assert_eq!(written.id.get_version_num(), 7);
            expected.id = written.id;
            assert_eq!(written, expected);
        }
    }

    /// The events as a consumer reads them: envelopes with the contract's fields, the
    /// visit's time, their own ids, and the client (not the gateway) in the hash.
    #[test]
    fn a_batch_encodes_one_contract_envelope_per_visit() {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("aaaaaaaa"), Arc::from("bbbbbbbb"));
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
        let batch = vec![
            visit(
                &a,
                "10.0.0.1",
                &[("user-agent", firefox), ("x-forwarded-for", "203.0.113.5")],
            ),
            visit(
                &a,
                "10.0.0.1",
                &[
                    ("user-agent", "curl/8.5"),
                    ("referer", "https://Chat.Example.org/x?y"),
                ],
            ),
            visit(
                &b,
                "10.0.0.1",
                &[("user-agent", firefox), ("x-forwarded-for", "203.0.113.6")],
            ),
            visit(&b, "10.0.0.2", &[("user-agent", firefox)]),
        ];
        let (mut counts, messages, count) = encode(b"salt", &TrustedProxies::default(), &batch);
        counts.sort();
        assert_eq!(counts, [("aaaaaaaa".into(), 2), ("bbbbbbbb".into(), 2)]);
        assert_eq!((count, messages.len()), (4, 1));
        let events: Vec<Envelope> = serde_json::from_slice(&messages[0].body).unwrap();
        assert_eq!(messages[0].routing_key, keys::URL_ACCESSED);
        let ids: std::collections::HashSet<_> = events.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), 4);
        for (event, visit) in events.iter().zip(&batch) {
            assert_eq!(event.kind, keys::URL_ACCESSED);
            assert_eq!(
                (event.tenant_id, event.occurred_at),
                (visit.tenant_id, visit.at)
            );
            let keys: Vec<&String> = event.data.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 4, "{:?}", event.data);
        }
        let field = |i: usize, name: &str| events[i].data[name].clone();
        assert_eq!(field(0, "code"), "aaaaaaaa");
        assert_eq!(field(0, "agent_class"), "browser");
        assert_eq!(field(1, "agent_class"), "bot");
        assert_eq!(field(1, "referrer_host"), "chat.example.org");
        assert!(field(0, "referrer_host").is_null());
        let day = batch[0].at.date_naive();
        let hash = |ip: &str, ua: &str| crate::domain::visitor::visitor_hash(b"salt", day, ip, ua);
        assert_eq!(field(0, "visitor_hash"), hash("203.0.113.5", firefox));
        assert_eq!(field(2, "visitor_hash"), hash("203.0.113.6", firefox));
        // Without a forwarded hop the peer is the visitor, each peer its own.
        assert_eq!(field(3, "visitor_hash"), hash("10.0.0.2", firefox));
        assert_eq!(field(1, "visitor_hash"), hash("10.0.0.1", "curl/8.5"));
    }

    #[test]
    fn the_visitor_is_the_client_by_the_shared_rule() {
        let code: Arc<str> = Arc::from("aaaaaaaa");
        let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
        let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let mut two_fields = HeaderMap::new();
        two_fields.insert("user-agent", HeaderValue::from_static(ua));
        two_fields.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        two_fields.append("x-forwarded-for", HeaderValue::from_static("203.0.113.8"));
        let batch = vec![
            visit(
                &code,
                "198.51.100.9",
                &[("user-agent", ua), ("x-forwarded-for", "203.0.113.5")],
            ),
            visit(
                &code,
                "10.0.0.1",
                &[
                    ("user-agent", ua),
                    ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
                ],
            ),
            Visit::new(
                Arc::clone(&code),
                Uuid::now_v7(),
                "10.0.0.1".parse().unwrap(),
                &two_fields,
            ),
        ];
        let (_, messages, _) = encode(b"salt", &trusted, &batch);
        let events: Vec<Envelope> = serde_json::from_slice(&messages[0].body).unwrap();
        let hash = |i: usize, ip: &str| {
            crate::domain::visitor::visitor_hash(b"salt", batch[i].at.date_naive(), ip, ua)
        };
        let seen = |i: usize| events[i].data["visitor_hash"].clone();
        assert_eq!(
            seen(0),
            hash(0, "198.51.100.9"),
            "an untrusted peer is the visitor"
        );
        assert_eq!(seen(1), hash(1, "203.0.113.7"), "the hop the proxy saw");
        assert_eq!(
            seen(2),
            hash(2, "203.0.113.8"),
            "the last field is the nearest hop"
        );
    }
}
