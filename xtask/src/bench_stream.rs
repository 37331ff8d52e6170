//! Scenario `stream`: the live stream (`GET /api/v1/stream`) held open through the
//! gateway. The seven release binaries run as processes, as in `soak`, with databases,
//! tenant prefix, exchanges and queues of their own ([`crate::bench_soak::Names`], all
//! removed afterwards) and with the limits that would refuse one address's streams raised
//! ([`RAISED`]): every stream comes from 127.0.0.1.
//!
//! 1. **Idle memory**: 5,000 streams of one tenant, spread over 5 members, opened 100 at
//!    a time; the resident memory of the gateway and of notification-service before
//!    (after a warm-up) and with all of them open, per stream. Goal: ≤ 20 KiB per stream
//!    for the two together.
//! 2. **Fan-out**: 20 task moves through the API, 300 ms apart, each a `task.moved` event
//!    every stream must get; the time from just before the move is sent to the frame's
//!    arrival at each client. First to all 5,000 streams (no goal), then, with the last
//!    4,000 closed, to the first 1,000 (goal: p99 ≤ 250 ms), then to 1 stream alone: the
//!    path from the API to a client without the fan-out (no goal).
//!
//! The clients are light on purpose, so the load generator costs less than what it
//! measures: one `TcpStream` each, the HTTP/1.1 request written by hand, the answer's head
//! read, then its chunked body decoded into SSE frames, with no buffer held while a
//! stream is idle.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde::Serialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::bench_redirect::{cpu_ticks, ticks_per_second};
use crate::bench_soak::Names;
use crate::bench_soak_load::{self as load, Client, id, percentile};
use crate::fleet::Fleet;

pub const STREAMS: usize = 5000;
/// Streams the fan-out goal is measured on: the first of the [`STREAMS`].
pub const FANOUT_STREAMS: usize = 1000;
/// Members the streams are spread over, round-robin (the owner and 4 managers).
pub const USERS: usize = 5;
pub const OPEN_CONCURRENCY: usize = 100;
/// Streams opened and closed before the "before" reading, so what every stream needs
/// once (the tenant's pool, the hub's channel, the upstream client) is not counted per
/// stream.
const WARM_UP_STREAMS: usize = 100;
/// Passes that open again the streams refused (each refusal is reported).
const OPEN_RETRIES: usize = 3;
/// Moves per fan-out round, and their spacing.
pub const WRITES: usize = 20;
const WRITE_EVERY: Duration = Duration::from_millis(300);
/// How long deliveries are awaited after a round's last move.
const DELIVERY_WAIT: Duration = Duration::from_secs(10);
const START_SETTLE: Duration = Duration::from_secs(5);
/// Between the last stream opened and the "open" reading (CPU is measured over it too).
const OPEN_SETTLE: Duration = Duration::from_secs(10);
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
pub const PER_STREAM_GOAL_KIB: f64 = 20.0;
pub const P99_GOAL_MS: f64 = 250.0;
const GATEWAY_PORT: u16 = 8080;
const NOTIFICATION_PORT: u16 = 8086;
/// Open files a process needs beyond one per stream (the gateway holds two per stream:
/// the client's and the upstream's).
const FILES_HEADROOM: u64 = 1000;

/// Settings raised for this run, (service, variable, value): every stream and request
/// comes from one address and one tenant, and 1,000 streams a member is far past the
/// per-user limit (8) and 5,000 past the per-tenant one (2,000).
pub const RAISED: [(&str, &str, &str); 4] = [
    ("gateway", "RATE_LIMIT_IP_PER_MIN", "1000000000"),
    ("gateway", "RATE_LIMIT_USER_PER_MIN", "1000000000"),
    ("gateway", "STREAMS_PER_USER", "100000"),
    ("gateway", "STREAMS_PER_TENANT", "100000"),
];

#[derive(Debug, Serialize)]
pub struct StreamReport {
    pub streams: usize,
    pub users: usize,
    pub open_concurrency: usize,
    pub open_seconds: f64,
    /// Refusals while opening, by why: a status, `not an event stream`, `io`,
    /// `timeout`; each refused stream is opened again, up to 3 more passes.
    pub not_opened: BTreeMap<String, u64>,
    /// notification-service's `notification_streams_open` before, with all open, and
    /// after the last 4,000 were closed.
    pub service_streams_open: [f64; 3],
    pub memory: Vec<Memory>,
    /// The gateway's and notification-service's per-stream KiB added up.
    pub together_kib_per_stream: f64,
    pub per_stream_goal_kib: f64,
    pub per_stream_goal_met: bool,
    /// CPU each process used while the streams were open and idle, % of one core.
    pub idle_cpu_percent: BTreeMap<String, f64>,
    pub fanout: Vec<Fanout>,
    pub p99_goal_ms: f64,
    pub p99_goal_met: bool,
    /// `VARIABLE=value (service)` for each setting raised.
    pub raised: Vec<String>,
    /// WARN and ERROR lines in each service's log, and the gateway's 5xx answers.
    pub log_lines: BTreeMap<String, u64>,
    /// Services whose process was gone before the end.
    pub exited: Vec<String>,
}

/// One process's resident memory (`VmRSS`, MiB) around the streams.
#[derive(Debug, Serialize)]
pub struct Memory {
    pub process: String,
    pub before_mib: f64,
    pub open_mib: f64,
    pub after_close_mib: f64,
    /// With as many streams open again (freed memory reused, or more taken).
    pub reopened_mib: f64,
    /// (open − before) ÷ streams, KiB.
    pub kib_per_stream: f64,
}

/// One round of moves fanned out to `streams` streams.
#[derive(Debug, Serialize)]
pub struct Fanout {
    pub streams: usize,
    pub writes: usize,
    /// Moves not answered 200, by status (`io`: no answer), and the first one's answer.
    pub writes_failed: BTreeMap<String, u64>,
    pub first_write_failure: Option<String>,
    /// Frames due: streams × moves answered 200.
    pub expected: usize,
    pub received: usize,
    /// Frames missing for each move, in order.
    pub missing_by_write: Vec<usize>,
    /// Streams that ended during the round.
    pub streams_ended: usize,
    /// From just before the move was sent to the frame's arrival, over all deliveries.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The move's own answer (200 from the API).
    pub write_p50_ms: f64,
    /// Median and slowest delivery of each move, in order (ms).
    pub by_write_p50_ms: Vec<f64>,
    pub by_write_max_ms: Vec<f64>,
    /// CPU each process used over the round, % of one core.
    pub cpu_percent: BTreeMap<String, f64>,
}

pub async fn stream_scenario() -> anyhow::Result<StreamReport> {
    let limit = raise_open_files(2 * STREAMS as u64 + FILES_HEADROOM)?;
    let names = Names::new("stream");
    let dir = std::env::temp_dir().join(format!("nexus_bench_{}", names.prefix));
    println!(
        "• starting the seven release binaries (open files {limit}; databases {}*, logs in {})",
        names.prefix,
        dir.display()
    );
    let fleet = Fleet::start_release_with(&dir, |service| names.settings(service, &dir, &RAISED))?;
    let result = run(&fleet, &names).await;
    drop(fleet);
    let result = result.map(|mut report| {
        report.log_lines = log_lines(&dir);
        report
    });
    if let Err(err) = crate::bench_soak::remove(&names).await {
        println!("  (could not remove all the run's broker and MongoDB objects: {err:#})");
    }
    common::testkit::drop_databases_and_roles(&names.prefix);
    match &result {
        Ok(report)
            if report.exited.is_empty()
                && report.not_opened.is_empty()
                && !report
                    .log_lines
                    .keys()
                    .any(|k| k.ends_with("ERROR") || k.ends_with("5xx")) =>
        {
            std::fs::remove_dir_all(&dir).ok();
        }
        _ => println!("  the services' logs are kept in {}", dir.display()),
    }
    result
}

/// What the run measures, in the processes it reads.
struct Processes {
    gateway: u32,
    notifications: u32,
    all: Vec<(&'static str, u32)>,
}

impl Processes {
    /// The gateway, notification-service and this process (the load generator).
    fn measured(&self) -> [(&'static str, u32); 3] {
        [
            ("gateway", self.gateway),
            ("notification-service", self.notifications),
            ("load generator (xtask)", std::process::id()),
        ]
    }

    fn rss_mib(&self) -> anyhow::Result<[f64; 3]> {
        let read = |pid| crate::bench_footprint::memory(pid).map(|(rss, _)| rss);
        let [g, n, x] = self.measured();
        Ok([read(g.1)?, read(n.1)?, read(x.1)?])
    }

    /// CPU ticks of the measured processes, to compare before and after.
    fn ticks(&self) -> anyhow::Result<[u64; 3]> {
        let [g, n, x] = self.measured();
        Ok([cpu_ticks(g.1)?, cpu_ticks(n.1)?, cpu_ticks(x.1)?])
    }

    fn cpu_percent(
        &self,
        before: [u64; 3],
        since: Instant,
    ) -> anyhow::Result<BTreeMap<String, f64>> {
        let (after, wall, tick) = (self.ticks()?, since.elapsed(), ticks_per_second()?);
        Ok(self
            .measured()
            .iter()
            .zip(before.iter().zip(after))
            .map(|((name, _), (b, a))| {
                let seconds = (a - b) as f64 / tick;
                ((*name).to_owned(), 100.0 * seconds / wall.as_secs_f64())
            })
            .collect())
    }

    fn exited(&self) -> Vec<String> {
        self.all
            .iter()
            .filter(|(_, pid)| crate::bench_footprint::memory(*pid).is_err())
            .map(|(name, _)| (*name).to_owned())
            .collect()
    }
}

/// What the setup made: tokens of the members, and two sets of tasks to move, each with
/// the column they move to.
struct World {
    client: Client,
    host: String,
    owner: String,
    tokens: Vec<String>,
    to_column: String,
    tasks: Vec<String>,
}

async fn setup(slug: &str) -> anyhow::Result<World> {
    let client = Client::new(GATEWAY_PORT, slug)?;
    let owner = load::sign_up(&client, slug).await?;
    let mut tokens = vec![owner.clone()];
    for i in 1..USERS {
        let email = format!("member{i}@{slug}.bench");
        load::add_manager(&client, &owner, &email).await?;
        let login = client.login(&email).await.expect(200, "a member's login")?;
        tokens.push(
            login["access_token"]
                .as_str()
                .context("no access token")?
                .to_owned(),
        );
    }
    let project = id(&client
        .post(
            "/api/v1/projects",
            &owner,
            json!({"key": "ST", "name": "Stream"}),
        )
        .await
        .expect(201, "creating the project")?)?;
    let mut tasks = Vec::new();
    for n in 0..3 * WRITES {
        let task = client
            .post(
                &format!("/api/v1/projects/{project}/tasks"),
                &owner,
                json!({"title": format!("moved task {n}")}),
            )
            .await
            .expect(201, "creating a task")?;
        tasks.push(id(&task)?);
    }
    let board = client
        .get(&format!("/api/v1/projects/{project}/board"), &owner)
        .await
        .expect(200, "reading the board")?;
    // The tasks start in the first column; the target must take all of them (no WIP limit).
    let to_column = board["columns"]
        .as_array()
        .and_then(|columns| columns.iter().skip(1).find(|c| c["wip_limit"].is_null()))
        .context("a board without a second column free of a WIP limit")
        .and_then(id)?;
    Ok(World {
        client,
        host: format!("{slug}.localhost:{GATEWAY_PORT}"),
        owner,
        tokens,
        to_column,
        tasks,
    })
}

async fn run(fleet: &Fleet, names: &Names) -> anyhow::Result<StreamReport> {
    tokio::time::sleep(START_SETTLE).await;
    let pid = |name: &str| {
        fleet
            .children
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c.id())
            .with_context(|| format!("no {name} in the fleet"))
    };
    let processes = Processes {
        gateway: pid("gateway")?,
        notifications: pid("notification-service")?,
        all: fleet.children.iter().map(|(n, c)| (*n, c.id())).collect(),
    };
    println!(
        "• setup: tenant {}, {USERS} members, {} tasks",
        names.slug,
        3 * WRITES
    );
    let world = setup(&names.slug).await?;
    let wanted: Arc<HashMap<String, usize>> = Arc::new(
        world
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i))
            .collect(),
    );

    println!("• warm-up: {WARM_UP_STREAMS} streams opened and closed");
    let (warm, _, _) = open_streams(&world, WARM_UP_STREAMS, &wanted).await;
    close(warm);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let streams_before = streams_open().await;
    let before = processes.rss_mib()?;

    println!("• opening {STREAMS} streams, {OPEN_CONCURRENCY} at a time");
    let started = Instant::now();
    let (mut streams, mut not_opened, first_refusal) = open_streams(&world, STREAMS, &wanted).await;
    for _ in 0..OPEN_RETRIES {
        if streams.len() == STREAMS {
            break;
        }
        let (more, refused, _) = open_streams(&world, STREAMS - streams.len(), &wanted).await;
        streams.extend(more);
        for (why, n) in refused {
            *not_opened.entry(why).or_insert(0) += n;
        }
    }
    let open_seconds = started.elapsed().as_secs_f64();
    println!(
        "  {} open in {open_seconds:.1} s; refused on the way (and opened again): {}",
        streams.len(),
        tally_text(&not_opened)
    );
    if let Some(refusal) = first_refusal {
        println!("  first refusal: {refusal}");
    }
    ensure!(
        streams.len() >= FANOUT_STREAMS,
        "only {} streams opened",
        streams.len()
    );
    let (ticks, since) = (processes.ticks()?, Instant::now());
    tokio::time::sleep(OPEN_SETTLE).await;
    let idle_cpu_percent = processes.cpu_percent(ticks, since)?;
    let open = processes.rss_mib()?;
    let streams_all_open = streams_open().await;
    let open_count = streams.len();

    println!("• fan-out: {WRITES} moves, one every {WRITE_EVERY:?}, to {open_count} streams");
    let all = fan_out(&world, &world.tasks[..WRITES], 0, &streams, &processes).await?;
    print_round(&all);

    let streams_after_close = close_to(&mut streams, FANOUT_STREAMS).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_close = processes.rss_mib()?;
    println!("• fan-out: {WRITES} moves, one every {WRITE_EVERY:?}, to {FANOUT_STREAMS} streams");
    let tasks = &world.tasks[WRITES..2 * WRITES];
    let goal = fan_out(&world, tasks, WRITES, &streams, &processes).await?;
    print_round(&goal);

    close_to(&mut streams, 1).await;
    println!("• fan-out: {WRITES} moves, one every {WRITE_EVERY:?}, to 1 stream (the path alone)");
    let tasks = &world.tasks[2 * WRITES..];
    let single = fan_out(&world, tasks, 2 * WRITES, &streams, &processes).await?;
    print_round(&single);

    println!("• opening {} streams again", open_count - streams.len());
    let (more, _, _) = open_streams(&world, open_count - streams.len(), &wanted).await;
    streams.extend(more);
    tokio::time::sleep(OPEN_SETTLE).await;
    let reopened = processes.rss_mib()?;
    println!("  {} open", streams.len());
    close(streams);

    let memory: Vec<Memory> = processes
        .measured()
        .iter()
        .enumerate()
        .map(|(i, (name, _))| Memory {
            process: (*name).to_owned(),
            before_mib: before[i],
            open_mib: open[i],
            after_close_mib: after_close[i],
            reopened_mib: reopened[i],
            kib_per_stream: (open[i] - before[i]) * 1024.0 / open_count as f64,
        })
        .collect();
    let together = memory[0].kib_per_stream + memory[1].kib_per_stream;
    Ok(StreamReport {
        streams: open_count,
        users: USERS,
        open_concurrency: OPEN_CONCURRENCY,
        open_seconds,
        not_opened,
        service_streams_open: [streams_before, streams_all_open, streams_after_close],
        memory,
        together_kib_per_stream: together,
        per_stream_goal_kib: PER_STREAM_GOAL_KIB,
        per_stream_goal_met: open_count == STREAMS && together <= PER_STREAM_GOAL_KIB,
        idle_cpu_percent,
        p99_goal_ms: P99_GOAL_MS,
        p99_goal_met: goal.received == goal.expected
            && goal.expected > 0
            && goal.p99_ms <= P99_GOAL_MS,
        fanout: vec![all, goal, single],
        raised: RAISED
            .iter()
            .map(|(service, var, value)| format!("{var}={value} ({service})"))
            .collect(),
        log_lines: BTreeMap::new(),
        exited: processes.exited(),
    })
}

/// notification-service's own count of open streams (`notification_streams_open`); NaN
/// when it cannot be read.
async fn streams_open() -> f64 {
    let url = format!("http://127.0.0.1:{NOTIFICATION_PORT}/metrics");
    let Ok(answer) = reqwest::get(&url).await else {
        return f64::NAN;
    };
    let text = answer.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("notification_streams_open "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// One open stream: the task reading it, and what it saw.
struct Stream {
    reader: tokio::task::JoinHandle<()>,
    seen: Arc<Seen>,
}

/// When each wanted task's `task.moved` frame arrived on a stream (by the task's index),
/// and whether the stream has ended.
struct Seen {
    arrivals: Mutex<Vec<Option<Instant>>>,
    ended: Mutex<Option<String>>,
}

/// Closes the streams past the first `keep` and waits (up to [`DELIVERY_WAIT`]) until
/// notification-service counts `keep` open: the count it reached.
async fn close_to(streams: &mut Vec<Stream>, keep: usize) -> f64 {
    println!("• closing all streams but {keep}");
    close(streams.split_off(keep.min(streams.len())));
    let closed_at = Instant::now();
    let mut open = streams_open().await;
    while open > keep as f64 && closed_at.elapsed() < DELIVERY_WAIT {
        tokio::time::sleep(Duration::from_millis(500)).await;
        open = streams_open().await;
    }
    open
}

fn close(streams: Vec<Stream>) {
    for stream in streams {
        stream.reader.abort();
    }
}

/// Opens `n` streams, [`OPEN_CONCURRENCY`] at a time, round-robin over the members: the
/// streams opened (in order), the others by why, and the first refusal in words.
async fn open_streams(
    world: &World,
    n: usize,
    wanted: &Arc<HashMap<String, usize>>,
) -> (Vec<Stream>, BTreeMap<String, u64>, Option<String>) {
    let next = Arc::new(AtomicUsize::new(0));
    let opened = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let refused = Arc::new(Mutex::new((BTreeMap::new(), None)));
    let mut workers = Vec::new();
    for _ in 0..OPEN_CONCURRENCY.min(n) {
        let (next, opened, refused, wanted) = (
            Arc::clone(&next),
            Arc::clone(&opened),
            Arc::clone(&refused),
            Arc::clone(wanted),
        );
        let (host, tokens) = (world.host.clone(), world.tokens.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let token = &tokens[i % tokens.len()];
                match open_one(&host, token, &wanted).await {
                    Ok(stream) => opened.lock().expect("opened lock").push((i, stream)),
                    Err((kind, detail)) => {
                        let mut refused = refused.lock().expect("refused lock");
                        *refused.0.entry(kind).or_insert(0) += 1;
                        refused.1.get_or_insert(detail);
                    }
                }
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    let mut opened = std::mem::take(&mut *opened.lock().expect("opened lock"));
    opened.sort_by_key(|(i, _)| *i);
    let (not_opened, first) = std::mem::take(&mut *refused.lock().expect("refused lock"));
    (
        opened.into_iter().map(|(_, s)| s).collect(),
        not_opened,
        first,
    )
}

/// Opens one stream and starts its reader; a refusal as (kind, detail).
async fn open_one(
    host: &str,
    token: &str,
    wanted: &Arc<HashMap<String, usize>>,
) -> Result<Stream, (String, String)> {
    let opening = async {
        let mut tcp = TcpStream::connect(("127.0.0.1", GATEWAY_PORT)).await?;
        tcp.set_nodelay(true)?;
        let request = format!(
            "GET /api/v1/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
             Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await?;
        let mut buffer = Vec::with_capacity(1024);
        let end = loop {
            tcp.readable().await?;
            let mut chunk = [0u8; 2048];
            match tcp.try_read(&mut chunk) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            if buffer.len() > 64 * 1024 {
                return Err(std::io::Error::other("an answer head over 64 KiB"));
            }
        };
        Ok::<_, std::io::Error>((tcp, buffer, end))
    };
    let (tcp, buffer, end) = match tokio::time::timeout(OPEN_TIMEOUT, opening).await {
        Err(_) => return Err(("timeout".to_owned(), "no answer head in time".to_owned())),
        Ok(Err(e)) => return Err(("io".to_owned(), e.to_string())),
        Ok(Ok(opened)) => opened,
    };
    let head = Head::parse(&String::from_utf8_lossy(&buffer[..end]));
    let body = &buffer[end + 4..];
    if head.status != Some(200) {
        let status = head
            .status
            .map_or("no status".to_owned(), |s| s.to_string());
        let detail = format!("{status}: {}", String::from_utf8_lossy(body));
        return Err((status, detail));
    }
    if !head.content_type.starts_with("text/event-stream") {
        return Err((
            "not an event stream".to_owned(),
            format!("content-type {:?}", head.content_type),
        ));
    }
    let seen = Arc::new(Seen {
        arrivals: Mutex::new(vec![None; wanted.len()]),
        ended: Mutex::new(None),
    });
    let mut frames = Frames::new(head.chunked);
    let (reader_seen, wanted) = (Arc::clone(&seen), Arc::clone(wanted));
    let first = body.to_vec();
    let reader = tokio::spawn(async move {
        let seen = reader_seen;
        frames.push(&first, Instant::now(), &seen, &wanted);
        drop(first);
        let why = loop {
            if let Err(e) = tcp.readable().await {
                break e.to_string();
            }
            // No buffer is held while the stream waits.
            let mut chunk = [0u8; 4096];
            match tcp.try_read(&mut chunk) {
                Ok(0) => break "closed by the gateway".to_owned(),
                Ok(n) => frames.push(&chunk[..n], Instant::now(), &seen, &wanted),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => break e.to_string(),
            }
        };
        *seen.ended.lock().expect("ended lock") = Some(why);
    });
    Ok(Stream { reader, seen })
}

/// What the bench needs of an answer's head.
#[derive(Debug, PartialEq)]
struct Head {
    status: Option<u16>,
    content_type: String,
    chunked: bool,
}

impl Head {
    fn parse(head: &str) -> Self {
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok());
        let (mut content_type, mut chunked) = (String::new(), false);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-type") {
                content_type = value.to_ascii_lowercase();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
        Self {
            status,
            content_type,
            chunked,
        }
    }
}

/// Where a chunked body's decoder is.
#[derive(Debug, PartialEq)]
enum Chunk {
    /// Reading a size line (what it has so far).
    Size(Vec<u8>),
    /// In a chunk's data, this many bytes to go.
    Data(usize),
    /// Skipping to the end of the line after a chunk's data.
    DataEnd,
    /// Past the last chunk.
    Done,
}

/// An answer body read as SSE: the chunked coding taken off (when there is one), then
/// lines (ending in CRLF, LF or CR) gathered into frames.
struct Frames {
    chunk: Option<Chunk>,
    line: Vec<u8>,
    after_cr: bool,
    event: String,
    data: String,
}

impl Frames {
    fn new(chunked: bool) -> Self {
        Self {
            chunk: chunked.then(|| Chunk::Size(Vec::new())),
            line: Vec::new(),
            after_cr: false,
            event: String::new(),
            data: String::new(),
        }
    }

    /// Takes bytes read at `at`, noting the arrival of each wanted `task.moved` frame
    /// they complete.
    fn push(&mut self, bytes: &[u8], at: Instant, seen: &Seen, wanted: &HashMap<String, usize>) {
        self.feed(bytes, &mut |event, data| {
            if event != "task.moved" {
                return;
            }
            let Some(task) = data
                .split_once("\"task_id\":\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(task, _)| task)
            else {
                return;
            };
            if let Some(&i) = wanted.get(task) {
                seen.arrivals.lock().expect("arrivals lock")[i].get_or_insert(at);
            }
        });
    }

    /// Calls `frame(event, data)` for each frame `bytes` complete.
    fn feed(&mut self, bytes: &[u8], frame: &mut impl FnMut(&str, &str)) {
        let Some(chunk) = self.chunk.as_mut() else {
            return self.lines(bytes, frame);
        };
        let mut decoded = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match chunk {
                Chunk::Size(line) => {
                    if bytes[i] == b'\n' {
                        let text = String::from_utf8_lossy(line);
                        let size = text.split(';').next().unwrap_or("").trim();
                        *chunk = match usize::from_str_radix(size, 16) {
                            Ok(0) | Err(_) => Chunk::Done,
                            Ok(n) => Chunk::Data(n),
                        };
                    } else {
                        line.push(bytes[i]);
                    }
                    i += 1;
                }
                Chunk::Data(left) => {
                    let take = (*left).min(bytes.len() - i);
                    decoded.extend_from_slice(&bytes[i..i + take]);
                    i += take;
                    *left -= take;
                    if *left == 0 {
                        *chunk = Chunk::DataEnd;
                    }
                }
                Chunk::DataEnd => {
                    if bytes[i] == b'\n' {
                        *chunk = Chunk::Size(Vec::new());
                    }
                    i += 1;
                }
                Chunk::Done => break,
            }
        }
        self.lines(&decoded, frame);
    }

    fn lines(&mut self, bytes: &[u8], frame: &mut impl FnMut(&str, &str)) {
        for &b in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, b == b'\r');
            match b {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    let line = std::mem::take(&mut self.line);
                    self.end_line(&String::from_utf8_lossy(&line), frame);
                    self.line = line;
                    self.line.clear();
                }
                _ => self.line.push(b),
            }
        }
    }

    fn end_line(&mut self, line: &str, frame: &mut impl FnMut(&str, &str)) {
        if line.is_empty() {
            if !self.event.is_empty() || !self.data.is_empty() {
                let event = if self.event.is_empty() {
                    "message"
                } else {
                    &self.event
                };
                frame(event, &self.data);
            }
            self.event.clear();
            self.data.clear();
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value);
            }
            _ => {}
        }
    }
}

/// Moves `tasks` (their indexes in the stream's arrivals start at `first`) one by one,
/// [`WRITE_EVERY`] apart, and reads when each of `streams` got each move's frame.
async fn fan_out(
    world: &World,
    tasks: &[String],
    first: usize,
    streams: &[Stream],
    processes: &Processes,
) -> anyhow::Result<Fanout> {
    let (ticks, since) = (processes.ticks()?, Instant::now());
    let ended_before = ended(streams);
    let mut sent: Vec<Option<Instant>> = Vec::new();
    let (mut writes_failed, mut write_ms) = (BTreeMap::new(), Vec::new());
    let mut first_write_failure = None;
    let start = tokio::time::Instant::now();
    for (k, task) in tasks.iter().enumerate() {
        tokio::time::sleep_until(start + WRITE_EVERY * k as u32).await;
        let t0 = Instant::now();
        let answer = world
            .client
            .post(
                &format!("/api/v1/tasks/{task}/move"),
                &world.owner,
                json!({"column_id": world.to_column, "position": 0}),
            )
            .await;
        if answer.status == Some(200) {
            write_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            sent.push(Some(t0));
        } else {
            let status = answer.status.map_or("io".to_owned(), |s| s.to_string());
            first_write_failure.get_or_insert_with(|| format!("{status}: {}", answer.json));
            *writes_failed.entry(status).or_insert(0) += 1;
            sent.push(None);
        }
    }
    let due = sent.iter().flatten().count() * streams.len();
    let deadline = Instant::now() + DELIVERY_WAIT;
    while arrived(streams, first, &sent) < due && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu_percent = processes.cpu_percent(ticks, since)?;
    let mut by_write = vec![Vec::with_capacity(streams.len()); tasks.len()];
    let mut missing_by_write = vec![0; tasks.len()];
    for stream in streams {
        let arrivals = stream.seen.arrivals.lock().expect("arrivals lock");
        for (k, t0) in sent.iter().enumerate() {
            let Some(t0) = t0 else { continue };
            match arrivals[first + k] {
                Some(at) => by_write[k].push(at.duration_since(*t0).as_secs_f64() * 1000.0),
                None => missing_by_write[k] += 1,
            }
        }
    }
    for write in &mut by_write {
        write.sort_by(f64::total_cmp);
    }
    let mut latencies: Vec<f64> = by_write.iter().flatten().copied().collect();
    latencies.sort_by(f64::total_cmp);
    write_ms.sort_by(f64::total_cmp);
    Ok(Fanout {
        streams: streams.len(),
        writes: tasks.len(),
        writes_failed,
        first_write_failure,
        expected: due,
        received: latencies.len(),
        missing_by_write,
        streams_ended: ended(streams) - ended_before,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().copied().unwrap_or(f64::NAN),
        write_p50_ms: percentile(&write_ms, 50.0),
        by_write_p50_ms: by_write.iter().map(|w| percentile(w, 50.0)).collect(),
        by_write_max_ms: by_write
            .iter()
            .map(|w| w.last().copied().unwrap_or(f64::NAN))
            .collect(),
        cpu_percent,
    })
}

/// Frames of the sent moves that have arrived, over all streams.
fn arrived(streams: &[Stream], first: usize, sent: &[Option<Instant>]) -> usize {
    streams
        .iter()
        .map(|s| {
            let arrivals = s.seen.arrivals.lock().expect("arrivals lock");
            sent.iter()
                .enumerate()
                .filter(|(k, t0)| t0.is_some() && arrivals[first + k].is_some())
                .count()
        })
        .sum()
}

fn ended(streams: &[Stream]) -> usize {
    streams
        .iter()
        .filter(|s| s.seen.ended.lock().expect("ended lock").is_some())
        .count()
}

/// Raises this process's soft limit of open files to its hard limit, which the fleet's
/// processes, started after, inherit; fails when the hard limit is below `needed`. With
/// prlimit(1), as `fleet` signals with kill(1): std has no rlimit call, and the
/// workspace forbids unsafe code.
fn raise_open_files(needed: u64) -> anyhow::Result<u64> {
    let (soft, hard) = open_files_limit()?;
    if hard < needed {
        bail!(
            "this run holds {STREAMS} streams, about {needed} open files in the gateway, but \
             the hard limit of open files is {hard}: raise it (`ulimit -Hn {needed}` as root, \
             or `nofile` in /etc/security/limits.conf) and run again"
        );
    }
    if soft < hard {
        crate::bench_gateway::ensure_command("prlimit", "util-linux")?;
        let limit = if hard == u64::MAX {
            "unlimited".to_owned()
        } else {
            hard.to_string()
        };
        let status = std::process::Command::new("prlimit")
            .arg(format!("--pid={}", std::process::id()))
            .arg(format!("--nofile={limit}:{limit}"))
            .status()
            .context("running prlimit")?;
        ensure!(
            status.success(),
            "prlimit could not raise the open files limit"
        );
        let (soft, _) = open_files_limit()?;
        ensure!(
            soft == hard,
            "the open files limit is still {soft} after prlimit"
        );
    }
    Ok(hard)
}

/// This process's (soft, hard) limit of open files, from /proc/self/limits.
fn open_files_limit() -> anyhow::Result<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .context("no open files limit in /proc/self/limits")?;
    let value = |v: Option<&str>| -> anyhow::Result<u64> {
        match v.context("a short open files line")? {
            "unlimited" => Ok(u64::MAX),
            v => Ok(v.parse()?),
        }
    };
    let mut fields = line.split_whitespace();
    Ok((value(fields.next())?, value(fields.next())?))
}

/// WARN and ERROR lines in each service's log (`<service> WARN`), and the gateway's
/// answers with a 5xx status (`gateway 5xx`).
fn log_lines(dir: &Path) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for service in crate::services::SERVICES.iter().map(|s| s.name) {
        let Ok(log) = std::fs::read_to_string(dir.join(format!("{service}.log"))) else {
            continue;
        };
        for line in log.lines().map(without_ansi) {
            let mut words = line.split_whitespace();
            if let Some(level @ ("WARN" | "ERROR")) = words.nth(1) {
                *counts.entry(format!("{service} {level}")).or_insert(0) += 1;
            }
            if service == "gateway" && line.split_whitespace().any(|w| w.starts_with("status=5")) {
                *counts.entry("gateway 5xx".to_owned()).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// A log line without its terminal colours.
fn without_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `1 stream`, `1000 streams`.
pub fn streams_text(n: usize) -> String {
    if n == 1 {
        "1 stream".to_owned()
    } else {
        format!("{n} streams")
    }
}

/// `429 ×12, io ×1`, or `—`.
fn tally_text(tally: &BTreeMap<String, u64>) -> String {
    if tally.is_empty() {
        return "—".to_owned();
    }
    tally
        .iter()
        .map(|(kind, n)| format!("{kind} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_round(f: &Fanout) {
    println!(
        "  {} of {} frames in; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; moves not answered 200: {}",
        f.received,
        f.expected,
        f.p50_ms,
        f.p99_ms,
        f.max_ms,
        tally_text(&f.writes_failed)
    );
    let ms = |v: &[f64]| {
        v.iter()
            .map(|ms| format!("{ms:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("  by move, median (ms): {}", ms(&f.by_write_p50_ms));
    println!("  by move, slowest (ms): {}", ms(&f.by_write_max_ms));
}

pub fn print_stream(r: &StreamReport) {
    let mark = |met: bool| if met { "✓" } else { "✗ not met" };
    println!(
        "\nstream: {} streams over {} members, opened {} at a time in {:.1} s; refused on the \
         way: {}; settings raised: {}",
        r.streams,
        r.users,
        r.open_concurrency,
        r.open_seconds,
        tally_text(&r.not_opened),
        r.raised.join(", ")
    );
    let [before, open, after] = r.service_streams_open;
    println!(
        "notification-service's streams open: {before} before, {open} open, {after} after closing"
    );
    println!(
        "\n| process | before | {} open | per stream | after closing all but {FANOUT_STREAMS} | \
         {} open again | idle CPU |",
        r.streams, r.streams
    );
    println!("|---|---|---|---|---|---|---|");
    for m in &r.memory {
        println!(
            "| {} | {:.1} MiB | {:.1} MiB | {:.1} KiB | {:.1} MiB | {:.1} MiB | {:.1} % |",
            m.process,
            m.before_mib,
            m.open_mib,
            m.kib_per_stream,
            m.after_close_mib,
            m.reopened_mib,
            r.idle_cpu_percent
                .get(&m.process)
                .copied()
                .unwrap_or(f64::NAN)
        );
    }
    println!(
        "\ngateway + notification-service: {:.1} KiB per stream (goal ≤ {:.0} KiB) {}",
        r.together_kib_per_stream,
        r.per_stream_goal_kib,
        mark(r.per_stream_goal_met)
    );
    println!(
        "\n| fan-out to | moves | frames in / due | p50 | p99 | max | move answered, p50 | CPU: gateway · notification-service · load generator |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for f in &r.fanout {
        let cpu: Vec<String> = r
            .memory
            .iter()
            .map(|m| f.cpu_percent.get(&m.process).copied().unwrap_or(f64::NAN))
            .map(|p| format!("{p:.0} %"))
            .collect();
        println!(
            "| {} | {} | {} / {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
            streams_text(f.streams),
            f.writes,
            f.received,
            f.expected,
            f.p50_ms,
            f.p99_ms,
            f.max_ms,
            f.write_p50_ms,
            cpu.join(" · ")
        );
        if f.received < f.expected || f.streams_ended > 0 || !f.writes_failed.is_empty() {
            println!(
                "  missing by move: {:?}; streams ended: {}; moves not answered 200: {} {}",
                f.missing_by_write,
                f.streams_ended,
                tally_text(&f.writes_failed),
                f.first_write_failure.as_deref().unwrap_or("")
            );
        }
    }
    if let Some(goal) = r.fanout.iter().find(|f| f.streams == FANOUT_STREAMS) {
        println!(
            "\np99 write to client, {} streams: {:.1} ms (goal ≤ {:.0} ms, every frame in) {}",
            goal.streams,
            goal.p99_ms,
            r.p99_goal_ms,
            mark(r.p99_goal_met)
        );
    }
    if !r.log_lines.is_empty() {
        println!("log lines: {}", tally_text(&r.log_lines));
    }
    if !r.exited.is_empty() {
        println!("gone before the end: {}", r.exited.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(chunked: bool, pieces: &[&[u8]]) -> Vec<(String, String)> {
        let mut frames = Frames::new(chunked);
        let mut got = Vec::new();
        for piece in pieces {
            frames.feed(piece, &mut |e, d| got.push((e.to_owned(), d.to_owned())));
        }
        got
    }

    /// `parts` in the chunked coding, each a chunk.
    fn chunked(parts: &[&str]) -> Vec<u8> {
        let mut body = Vec::new();
        for part in parts.iter().chain([&""]) {
            body.extend_from_slice(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes());
        }
        body
    }

    #[test]
    fn frames_are_read_across_chunks_and_reads() {
        let body = chunked(&[
            "retry: 3000\n:open\n\n",
            "id: 7\nevent: task.moved\ndata: {\"a\"",
            ":1}\n\n",
        ]);
        let whole = frames_of(true, &[&body]);
        assert_eq!(
            whole,
            vec![("task.moved".to_owned(), "{\"a\":1}".to_owned())]
        );
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(frames_of(true, &bytes), whole, "one byte at a time");
    }

    #[test]
    fn lines_may_end_in_cr_lf_or_crlf_and_data_lines_join() {
        let got = frames_of(
            false,
            &[b"data: a\rdata:b\r\n\r\n: keepalive\n\nevent: x\n\n"],
        );
        assert_eq!(
            got,
            vec![
                ("message".to_owned(), "a\nb".to_owned()),
                ("x".to_owned(), String::new())
            ]
        );
    }

    #[test]
    fn a_moved_frame_notes_its_task_once() {
        let wanted = HashMap::from([("t1".to_owned(), 0), ("t2".to_owned(), 1)]);
        let seen = Seen {
            arrivals: Mutex::new(vec![None; 2]),
            ended: Mutex::new(None),
        };
        let mut frames = Frames::new(false);
        let (first, later) = (Instant::now(), Instant::now() + Duration::from_secs(1));
        let frame = b"event: task.moved\ndata: {\"project_id\":\"p\",\"task_id\":\"t2\"}\n\n";
        frames.push(frame, first, &seen, &wanted);
        frames.push(frame, later, &seen, &wanted);
        frames.push(
            b"event: task.updated\ndata: {\"task_id\":\"t1\"}\n\n",
            later,
            &seen,
            &wanted,
        );
        assert_eq!(*seen.arrivals.lock().unwrap(), vec![None, Some(first)]);
    }

    #[test]
    fn the_head_gives_status_type_and_coding() {
        let head = Head::parse(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked",
        );
        assert_eq!(
            head,
            Head {
                status: Some(200),
                content_type: "text/event-stream".to_owned(),
                chunked: true
            }
        );
        assert_eq!(
            Head::parse("HTTP/1.1 429 Too Many Requests").status,
            Some(429)
        );
    }

    #[test]
    fn log_lines_lose_their_colours() {
        assert_eq!(
            without_ansi("\x1b[2m2026\x1b[0m \x1b[33m WARN\x1b[0m x"),
            "2026  WARN x"
        );
    }
}
