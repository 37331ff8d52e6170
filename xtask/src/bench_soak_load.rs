//! The soak's traffic, all of it through the gateway as clients send it: a tenant with
//! its users and projects (setup), logins many at a time, then mixed API traffic. Every
//! answer is tallied by what it was; an unexpected one (a 503 from a bounded password
//! hasher under overload, a 429, no answer at all) is counted, never fatal. Only the
//! setup stops the run when it fails, since nothing after it would mean anything.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};

/// Every soak account's password.
pub const PASSWORD: &str = "soak benchmark password";
/// The password of the protected share links.
const LINK_PASSWORD: &str = "soak link password";
/// A session logs in again when its token is this old (tokens live 15 minutes).
const TOKEN_RENEW_AFTER: Duration = Duration::from_secs(10 * 60);
/// At most this many created tasks and links are kept to pick from.
const KEEP: usize = 1000;

/// What came back for one kind of request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    pub requests: u64,
    /// Answers with the expected status.
    pub ok: u64,
    /// The others, by status; `io` when no answer came (refused, reset, timed out).
    pub errors: BTreeMap<String, u64>,
}

impl Tally {
    fn record(&mut self, status: Option<u16>, expected: u16) {
        self.requests += 1;
        match status {
            Some(s) if s == expected => self.ok += 1,
            Some(s) => *self.errors.entry(s.to_string()).or_default() += 1,
            None => *self.errors.entry("io".to_owned()).or_default() += 1,
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.ok += other.ok;
        for (status, n) in &other.errors {
            *self.errors.entry(status.clone()).or_default() += n;
        }
    }

    /// `503 ×12, io ×1`, or `—`.
    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "—".to_owned();
        }
        self.errors
            .iter()
            .map(|(status, n)| format!("{status} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// An answer: its status (none if the request failed) and its body as JSON (`null` if
/// it was not).
pub(crate) struct Answer {
    pub(crate) status: Option<u16>,
    pub(crate) json: Value,
}

impl Answer {
    pub(crate) fn expect(self, status: u16, what: &str) -> anyhow::Result<Value> {
        if self.status != Some(status) {
            bail!(
                "{what}: expected {status}, got {:?}: {}",
                self.status,
                self.json
            );
        }
        Ok(self.json)
    }
}

enum Body {
    None,
    Json(Value),
    Form(&'static str, &'static str),
}

/// A client of the gateway on 127.0.0.1:`port`, for `localhost` (signup, short links)
/// and the tenant's host `<slug>.localhost`.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    port: u16,
    tenant: String,
}

impl Client {
    pub fn new(port: u16, slug: &str) -> anyhow::Result<Self> {
        let gateway = SocketAddr::from(([127, 0, 0, 1], port));
        let tenant = format!("{slug}.localhost");
        let http = reqwest::Client::builder()
            .resolve(&tenant, gateway)
            .resolve("localhost", gateway)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self { http, port, tenant })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        host: &str,
        path: &str,
        token: Option<&str>,
        body: Body,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("http://{host}:{}{path}", self.port));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Form(name, value) => request.form(&[(name, value)]),
        };
        match request.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Ok(bytes) => Answer {
                        status: Some(status),
                        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    },
                    Err(_) => Answer {
                        status: None,
                        json: Value::Null,
                    },
                }
            }
            Err(_) => Answer {
                status: None,
                json: Value::Null,
            },
        }
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> Answer {
        let host = self.tenant.clone();
        self.call(reqwest::Method::GET, &host, path, Some(token), Body::None)
            .await
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        let host = self.tenant.clone();
        self.call(
            reqwest::Method::POST,
            &host,
            path,
            Some(token),
            Body::Json(body),
        )
        .await
    }

    pub(crate) async fn login(&self, email: &str) -> Answer {
        let host = self.tenant.clone();
        let body = json!({"email": email, "password": PASSWORD});
        self.call(
            reqwest::Method::POST,
            &host,
            "/api/v1/auth/login",
            None,
            Body::Json(body),
        )
        .await
    }
}

pub(crate) fn id(value: &Value) -> anyhow::Result<String> {
    value["id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no id in {value}"))
}

/// A user of the soak's tenant and the token of its last login.
pub struct Session {
    pub email: String,
    token: Mutex<Option<(String, Instant)>>,
}

impl Session {
    fn new(email: String) -> Self {
        Self {
            email,
            token: Mutex::new(None),
        }
    }

    fn keep(&self, answer: &Answer) {
        if let Some(token) = answer.json["access_token"].as_str() {
            *self.token.lock().expect("session lock") = Some((token.to_owned(), Instant::now()));
        }
    }

    /// The session's token, logging in again first (counted in `relogins`) when it has
    /// none or it is about to expire.
    async fn token(&self, client: &Client, relogins: &mut Tally) -> Option<String> {
        let current = self.token.lock().expect("session lock").clone();
        match current {
            Some((token, at)) if at.elapsed() < TOKEN_RENEW_AFTER => Some(token),
            _ => {
                let answer = client.login(&self.email).await;
                relogins.record(answer.status, 200);
                self.keep(&answer);
                answer.json["access_token"].as_str().map(str::to_owned)
            }
        }
    }
}

/// A project whose board is read and whose tasks move between its columns; its size
/// stays the same all along.
pub struct Board {
    project: String,
    columns: Vec<String>,
    tasks: Vec<String>,
}

/// What the setup made: the owner, the users, the projects, a few links.
pub struct World {
    client: Client,
    pub sessions: Vec<Session>,
    boards: Vec<Board>,
    /// Where new tasks go (never read as a board, so board answers keep their size).
    inbox: String,
    tasks: Mutex<Vec<String>>,
    open_links: Mutex<Vec<String>>,
    protected_links: Mutex<Vec<String>>,
    /// The setup's links, whose figures are read: analytics knows a link once its first
    /// event has arrived, and answers 404 for a link made a moment ago.
    setup_links: Vec<String>,
}

/// Tasks on each board (the `tasks` scenario's board read has 20 too).
const BOARD_TASKS: usize = 20;
const BOARD_KEYS: [&str; 4] = ["BA", "BB", "BC", "BD"];

/// Signs up tenant `slug` (professional plan: room for 200 users), invites `users`
/// managers who accept (each acceptance hashes a password: `concurrency` at a time),
/// makes the boards and the inbox, and a few share links.
pub async fn setup(
    client: Client,
    slug: &str,
    users: usize,
    concurrency: usize,
) -> anyhow::Result<World> {
    let owner = sign_up(&client, slug).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let mut joins = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, owner, next, slug) = (
            client.clone(),
            owner.clone(),
            Arc::clone(&next),
            slug.to_owned(),
        );
        joins.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= users {
                    return anyhow::Ok(());
                }
                add_manager(&client, &owner, &format!("user{i:04}@{slug}.bench")).await?;
            }
        }));
    }
    for join in joins {
        join.await??;
    }
    let sessions = (0..users)
        .map(|i| Session::new(format!("user{i:04}@{slug}.bench")))
        .collect();

    let project = |key: &'static str| {
        let (client, owner) = (client.clone(), owner.clone());
        async move {
            id(&client
                .post(
                    "/api/v1/projects",
                    &owner,
                    json!({"key": key, "name": format!("Soak {key}")}),
                )
                .await
                .expect(201, &format!("creating project {key}"))?)
        }
    };
    let mut boards = Vec::new();
    let mut all_tasks = Vec::new();
    for key in BOARD_KEYS {
        let pid = project(key).await?;
        let mut tasks = Vec::new();
        for n in 0..BOARD_TASKS {
            let task = client
                .post(
                    &format!("/api/v1/projects/{pid}/tasks"),
                    &owner,
                    json!({"title": format!("{key} task {n}")}),
                )
                .await
                .expect(201, "creating a board task")?;
            tasks.push(id(&task)?);
        }
        let board = client
            .get(&format!("/api/v1/projects/{pid}/board"), &owner)
            .await
            .expect(200, "reading a board")?;
        let columns = board["columns"]
            .as_array()
            .context("a board without columns")?
            .iter()
            .map(id)
            .collect::<anyhow::Result<Vec<_>>>()?;
        all_tasks.extend(tasks.iter().cloned());
        boards.push(Board {
            project: pid,
            columns,
            tasks,
        });
    }
    let inbox = project("INBOX").await?;
    let (mut open_links, mut protected_links) = (Vec::new(), Vec::new());
    for (i, task) in all_tasks.iter().take(6).enumerate() {
        let protected = i % 3 == 2;
        let code = create_link(&client, &owner, task, protected)
            .await
            .expect(201, "creating a share link")?["code"]
            .as_str()
            .context("a link without a code")?
            .to_owned();
        if protected {
            protected_links.push(code);
        } else {
            open_links.push(code);
        }
    }
    let setup_links = open_links.iter().chain(&protected_links).cloned().collect();
    Ok(World {
        client,
        sessions,
        boards,
        inbox,
        setup_links,
        tasks: Mutex::new(all_tasks),
        open_links: Mutex::new(open_links),
        protected_links: Mutex::new(protected_links),
    })
}

/// Signs up tenant `slug` on the professional plan (room for 200 users) with the owner
/// `owner@<slug>.bench`, and logs the owner in: the owner's access token.
pub(crate) async fn sign_up(client: &Client, slug: &str) -> anyhow::Result<String> {
    let owner_email = format!("owner@{slug}.bench");
    let signup = client
        .call(
            reqwest::Method::POST,
            "localhost",
            "/api/v1/tenants",
            None,
            Body::Json(json!({"slug": slug, "name": slug, "plan": "professional",
                "owner": {"email": owner_email, "password": PASSWORD, "name": "Owner"}})),
        )
        .await;
    signup.expect(201, "signing up the tenant")?;
    Ok(client
        .login(&owner_email)
        .await
        .expect(200, "the owner's login")?["access_token"]
        .as_str()
        .context("no access token")?
        .to_owned())
}

/// Invites `email` as a manager, who accepts with [`PASSWORD`] (which hashes it).
pub(crate) async fn add_manager(client: &Client, owner: &str, email: &str) -> anyhow::Result<()> {
    let invite = client
        .post(
            "/api/v1/invites",
            owner,
            json!({"email": email, "role": "manager"}),
        )
        .await
        .expect(201, &format!("inviting {email}"))?;
    let host = client.tenant.clone();
    client
        .call(
            reqwest::Method::POST,
            &host,
            "/api/v1/auth/accept-invite",
            None,
            Body::Json(json!({"token": invite["token"], "name": email, "password": PASSWORD})),
        )
        .await
        .expect(200, &format!("{email} accepting the invite"))?;
    Ok(())
}

async fn create_link(client: &Client, token: &str, task: &str, protected: bool) -> Answer {
    let mut body = json!({"target": {"type": "task", "id": task}, "ttl": 86_400});
    if protected {
        body["password"] = json!(LINK_PASSWORD);
    }
    client.post("/api/v1/links", token, body).await
}

#[derive(Debug, Serialize)]
pub struct LoginReport {
    pub logins: usize,
    pub concurrency: usize,
    pub users: usize,
    pub seconds: f64,
    /// Successful logins per second.
    pub ok_per_s: f64,
    /// Latency of the answered logins (any status).
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub tally: Tally,
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `total` logins, `concurrency` at a time, spread round-robin over the users; each
/// successful one's token is kept for the mixed traffic.
pub async fn logins(world: &Arc<World>, total: usize, concurrency: usize) -> LoginReport {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut joins = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (world, next) = (Arc::clone(world), Arc::clone(&next));
        joins.push(tokio::spawn(async move {
            let (mut tally, mut latencies) = (Tally::default(), Vec::new());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return (tally, latencies);
                }
                let session = &world.sessions[i % world.sessions.len()];
                let sent = Instant::now();
                let answer = world.client.login(&session.email).await;
                if answer.status.is_some() {
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                }
                tally.record(answer.status, 200);
                session.keep(&answer);
            }
        }));
    }
    let (mut tally, mut latencies) = (Tally::default(), Vec::new());
    for join in joins {
        if let Ok((t, l)) = join.await {
            tally.merge(&t);
            latencies.extend(l);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    LoginReport {
        logins: total,
        concurrency,
        users: world.sessions.len(),
        seconds,
        ok_per_s: tally.ok as f64 / seconds,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        tally,
    }
}

/// The mixed traffic's requests and how often each is picked (out of their sum).
#[derive(Debug, Clone, Copy)]
enum Op {
    ReadTask,
    ReadBoard,
    CreateTask,
    MoveTask,
    Comment,
    CreateLink,
    CreateProtectedLink,
    OpenLink,
    OpenProtectedLink,
    ReadAnalytics,
}

const MIX: [(Op, u32); 10] = [
    (Op::ReadTask, 8),
    (Op::ReadBoard, 6),
    (Op::CreateTask, 6),
    (Op::MoveTask, 4),
    (Op::Comment, 4),
    (Op::CreateLink, 2),
    (Op::CreateProtectedLink, 1),
    (Op::OpenLink, 4),
    (Op::OpenProtectedLink, 1),
    (Op::ReadAnalytics, 4),
];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::ReadTask => "task read",
            Op::ReadBoard => "board read",
            Op::CreateTask => "task create",
            Op::MoveTask => "task move",
            Op::Comment => "comment",
            Op::CreateLink => "share link create",
            Op::CreateProtectedLink => "protected link create",
            Op::OpenLink => "redirect /s/{code}",
            Op::OpenProtectedLink => "protected /s/{code}: form + password",
            Op::ReadAnalytics => "analytics read",
        }
    }
}

/// xorshift64*: enough to spread picks, and no dependency for it.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        Self(uuid::Uuid::new_v4().as_u64_pair().0 | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
    }

    fn pick(&mut self, list: &Mutex<Vec<String>>) -> Option<String> {
        let list = list.lock().expect("list lock");
        let i = self.below(list.len());
        list.get(i).cloned()
    }

    fn op(&mut self) -> Op {
        let total: u32 = MIX.iter().map(|(_, w)| w).sum();
        let mut at = self.below(total as usize) as u32;
        for (op, weight) in MIX {
            if at < weight {
                return op;
            }
            at -= weight;
        }
        MIX[0].0
    }
}

/// Adds `item` to `list`, replacing a random entry once it holds [`KEEP`].
fn remember(list: &Mutex<Vec<String>>, item: String, rng: &mut Rng) {
    let mut list = list.lock().expect("list lock");
    if list.len() < KEEP {
        list.push(item);
    } else {
        let i = rng.below(list.len());
        list[i] = item;
    }
}

impl World {
    /// One request (two for a protected link) of `op` as a random user, tallied.
    async fn run(&self, op: Op, rng: &mut Rng, tally: &mut Tally, relogins: &mut Tally) {
        let session = &self.sessions[rng.below(self.sessions.len())];
        let Some(token) = session.token(&self.client, relogins).await else {
            return;
        };
        let c = &self.client;
        match op {
            Op::ReadTask => {
                let task = rng_task(self, rng);
                let a = c.get(&format!("/api/v1/tasks/{task}"), &token).await;
                tally.record(a.status, 200);
            }
            Op::ReadBoard => {
                let board = &self.boards[rng.below(self.boards.len())];
                let a = c
                    .get(&format!("/api/v1/projects/{}/board", board.project), &token)
                    .await;
                tally.record(a.status, 200);
            }
            Op::CreateTask => {
                let a = c
                    .post(
                        &format!("/api/v1/projects/{}/tasks", self.inbox),
                        &token,
                        json!({"title": "soak task", "description": "made by the soak"}),
                    )
                    .await;
                tally.record(a.status, 201);
                if let Ok(task) = id(&a.json) {
                    remember(&self.tasks, task, rng);
                }
            }
            Op::MoveTask => {
                let board = &self.boards[rng.below(self.boards.len())];
                let task = &board.tasks[rng.below(board.tasks.len())];
                let column = &board.columns[rng.below(board.columns.len())];
                let a = c
                    .post(
                        &format!("/api/v1/tasks/{task}/move"),
                        &token,
                        json!({"column_id": column, "position": 0}),
                    )
                    .await;
                tally.record(a.status, 200);
            }
            Op::Comment => {
                let task = rng_task(self, rng);
                let a = c
                    .post(
                        &format!("/api/v1/tasks/{task}/comments"),
                        &token,
                        json!({"body": "A soak comment, **with** some markdown."}),
                    )
                    .await;
                tally.record(a.status, 201);
            }
            Op::CreateLink | Op::CreateProtectedLink => {
                let protected = matches!(op, Op::CreateProtectedLink);
                let a = create_link(c, &token, &rng_task(self, rng), protected).await;
                tally.record(a.status, 201);
                if let Some(code) = a.json["code"].as_str() {
                    let list = if protected {
                        &self.protected_links
                    } else {
                        &self.open_links
                    };
                    remember(list, code.to_owned(), rng);
                }
            }
            Op::OpenLink => {
                let Some(code) = rng.pick(&self.open_links) else {
                    return;
                };
                let path = format!("/s/{code}");
                let a = c
                    .call(reqwest::Method::GET, "localhost", &path, None, Body::None)
                    .await;
                tally.record(a.status, 302);
            }
            Op::OpenProtectedLink => {
                let Some(code) = rng.pick(&self.protected_links) else {
                    return;
                };
                let path = format!("/s/{code}");
                let form = c
                    .call(reqwest::Method::GET, "localhost", &path, None, Body::None)
                    .await;
                tally.record(form.status, 200);
                if form.status == Some(200) {
                    let a = c
                        .call(
                            reqwest::Method::POST,
                            "localhost",
                            &path,
                            None,
                            Body::Form("password", LINK_PASSWORD),
                        )
                        .await;
                    tally.record(a.status, 303);
                }
            }
            Op::ReadAnalytics => {
                let path = if rng.below(2) == 0 {
                    let code = &self.setup_links[rng.below(self.setup_links.len())];
                    format!("/api/v1/analytics/links/{code}")
                } else {
                    "/api/v1/analytics/overview".to_owned()
                };
                let a = c.get(&path, &token).await;
                tally.record(a.status, 200);
            }
        }
    }
}

fn rng_task(world: &World, rng: &mut Rng) -> String {
    rng.pick(&world.tasks)
        .unwrap_or_else(|| world.boards[0].tasks[0].clone())
}

#[derive(Debug, Serialize)]
pub struct MixedReport {
    pub seconds: f64,
    pub connections: usize,
    pub requests_per_s: f64,
    /// By kind of request, and the logins done again for expiring tokens.
    pub by_kind: BTreeMap<String, Tally>,
    pub total: Tally,
}

/// Mixed traffic under way: `connections` workers, each sending one request after
/// another until [`Mixed::stop`].
pub struct Mixed {
    started: Instant,
    connections: usize,
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<BTreeMap<&'static str, Tally>>>,
}

impl Mixed {
    pub fn start(world: &Arc<World>, connections: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..connections.max(1))
            .map(|_| {
                let (world, stop) = (Arc::clone(world), Arc::clone(&stop));
                tokio::spawn(async move {
                    let mut rng = Rng::new();
                    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
                    let mut relogins = Tally::default();
                    while !stop.load(Ordering::Relaxed) {
                        let op = rng.op();
                        let tally = tallies.entry(op.name()).or_default();
                        world.run(op, &mut rng, tally, &mut relogins).await;
                    }
                    if relogins.requests > 0 {
                        tallies.insert("login again (token missing or expiring)", relogins);
                    }
                    tallies
                })
            })
            .collect();
        Self {
            started: Instant::now(),
            connections,
            stop,
            workers,
        }
    }

    /// Stops the workers once their requests in flight are answered.
    pub async fn stop(self) -> MixedReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut by_kind: BTreeMap<String, Tally> = BTreeMap::new();
        for worker in self.workers {
            if let Ok(tallies) = worker.await {
                for (kind, tally) in tallies {
                    by_kind.entry(kind.to_owned()).or_default().merge(&tally);
                }
            }
        }
        let seconds = self.started.elapsed().as_secs_f64();
        let mut total = Tally::default();
        for tally in by_kind.values() {
            total.merge(tally);
        }
        MixedReport {
            seconds,
            connections: self.connections,
            requests_per_s: total.requests as f64 / seconds,
            by_kind,
            total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_count_the_unexpected_by_status() {
        let mut logins = Tally::default();
        for status in [Some(200), Some(503), Some(200), None, Some(503)] {
            logins.record(status, 200);
        }
        assert_eq!((logins.requests, logins.ok), (5, 2));
        assert_eq!(logins.errors_text(), "503 ×2, io ×1");
        let mut total = Tally::default();
        total.merge(&logins);
        total.merge(&logins);
        assert_eq!(total.errors["503"], 4);
    }

    #[test]
    fn percentiles_are_ranks_of_the_sorted_latencies() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 50.0), 50.0);
        assert_eq!(percentile(&sorted, 99.0), 99.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
