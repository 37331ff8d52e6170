//! Outgoing webhooks end to end: real receivers on loopback (small axum servers) get what
//! the fleet's events give them, signed as the Standard Webhooks specification says
//! (checked here by an implementation of its own), retried on the schedule with the same
//! `webhook-id`, through restarts, without a slow receiver holding up a fast one; the
//! SSRF guard refuses inside addresses at creation, and redirects are never followed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::testkit::TestServer;
use e2e::{Fleet, Session};
use hmac::{Hmac, Mac};
use reqwest::{Client, Method};
use serde_json::{Value, json};
use sha2::Sha256;

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Hit {
    at: Instant,
    headers: HeaderMap,
    body: String,
}

impl Hit {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header: {:?}", self.headers))
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// How a receiver answers one request.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    delay: Duration,
}

impl Reply {
    fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    fn with(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

#[derive(Default)]
struct Log {
    hits: Vec<Hit>,
    /// Answers in order; then `otherwise`.
    script: VecDeque<Reply>,
    otherwise: Option<Reply>,
    answered: usize,
}

/// A webhook receiver on loopback that records what it gets and answers as scripted
/// (204 when the script is out).
struct Receiver {
    log: Arc<Mutex<Log>>,
    server: TestServer,
}

async fn answer(
    State(log): State<Arc<Mutex<Log>>>,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    let reply = {
        let mut log = log.lock().unwrap();
        log.hits.push(Hit {
            at: Instant::now(),
            headers,
            body,
        });
        log.script
            .pop_front()
            .or_else(|| log.otherwise.clone())
            .unwrap_or_else(|| Reply::status(204))
    };
    tokio::time::sleep(reply.delay).await;
    log.lock().unwrap().answered += 1;
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), "ok").into_response();
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("a header value"));
    }
    response
}

impl Receiver {
    async fn start() -> Self {
        let log = Arc::new(Mutex::new(Log::default()));
        let router = axum::Router::new()
            .route("/hooks", axum::routing::post(answer))
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .with_state(Arc::clone(&log));
        Self {
            log,
            server: TestServer::router(router).await,
        }
    }

    fn url(&self) -> String {
        self.server.url("/hooks")
    }

    fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.log.lock().unwrap().script.extend(replies);
    }

    fn otherwise(&self, reply: Reply) {
        self.log.lock().unwrap().otherwise = Some(reply);
    }

    fn hits(&self) -> Vec<Hit> {
        self.log.lock().unwrap().hits.clone()
    }

    fn answered(&self) -> usize {
        self.log.lock().unwrap().answered
    }

    /// Waits (bounded) until `n` requests came, and returns them.
    async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Hit> {
        let deadline = Instant::now() + limit;
        loop {
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} requests came within {limit:?}: {hits:#?}",
                hits.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The specification's verification, written here from its text: the signed content is
/// `id.timestamp.body`, the key the base64 after `whsec_`, the header a space-separated
/// list of `v1,<base64 HMAC-SHA256>`; a timestamp more than 5 minutes away is refused.
fn verify(secret: &str, hit: &Hit) -> Result<(), String> {
    let id = hit.header("webhook-id");
    let timestamp: i64 = hit
        .header("webhook-timestamp")
        .parse()
        .map_err(|_| "a timestamp that is not a number".to_owned())?;
    if (chrono::Utc::now().timestamp() - timestamp).abs() > 300 {
        return Err(format!("timestamp {timestamp} is out of tolerance"));
    }
    let key = BASE64
        .decode(
            secret
                .strip_prefix("whsec_")
                .ok_or("a secret without whsec_")?,
        )
        .map_err(|e| e.to_string())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{}", hit.body).as_bytes());
    let expected = mac.finalize().into_bytes();
    let matched = hit
        .header("webhook-signature")
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| BASE64.decode(s).ok())
        .any(|sig| sig[..] == expected[..]);
    if matched {
        Ok(())
    } else {
        Err(format!(
            "no signature matches: {}",
            hit.header("webhook-signature")
        ))
    }
}

struct World {
    fleet: Fleet,
    http: Client,
    owner: Session,
}

impl World {
    async fn start(overrides: &[(&str, &str)]) -> Self {
        let fleet = Fleet::start_configured(&[], overrides).await;
        let http = fleet.client(&["acme"]);
        fleet.signup(&http, "acme", "olive@acme.test").await;
        let owner = fleet.login(&http, "acme", "olive@acme.test").await;
        Self { fleet, http, owner }
    }

    async fn expect(
        &self,
        who: &Session,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        self.fleet
            .expect(&self.http, who, method, path, body, status)
            .await
    }

    /// A webhook of the owner's to `url` for `events`: (its id, its secret).
    async fn webhook(&self, url: &str, events: &[&str]) -> (String, String) {
        let made = self
            .expect(
                &self.owner,
                Method::POST,
                "/api/v1/webhooks",
                Some(json!({"url": url, "events": events, "description": "tests"})),
                201,
            )
            .await;
        (
            made["id"].as_str().unwrap().to_owned(),
            made["secret"].as_str().unwrap().to_owned(),
        )
    }

    async fn project(&self) -> String {
        self.fleet
            .create(
                &self.http,
                &self.owner,
                "/api/v1/projects",
                json!({"key": "WEB", "name": "Web"}),
            )
            .await
    }

    async fn task(&self, project: &str, title: &str) -> String {
        self.fleet
            .create(
                &self.http,
                &self.owner,
                &format!("/api/v1/projects/{project}/tasks"),
                json!({"title": title}),
            )
            .await
    }

    async fn deliveries(&self, webhook: &str) -> Vec<Value> {
        self.expect(
            &self.owner,
            Method::GET,
            &format!("/api/v1/webhooks/{webhook}/deliveries"),
            None,
            200,
        )
        .await["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits (bounded) until `webhook`'s delivery log satisfies `done`.
    async fn deliveries_until(&self, webhook: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let items = self.deliveries(webhook).await;
            if done(&items) {
                return items;
            }
            assert!(Instant::now() < deadline, "delivery log: {items:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (bounded) until `webhook` is disabled: why it was.
    async fn disabled(&self, webhook: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self.webhook_state(webhook).await;
            if state["enabled"] == false {
                return state["disabled_reason"].as_str().unwrap_or("").to_owned();
            }
            assert!(Instant::now() < deadline, "not disabled: {state}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn webhook_state(&self, webhook: &str) -> Value {
        self.expect(
            &self.owner,
            Method::GET,
            &format!("/api/v1/webhooks/{webhook}"),
            None,
            200,
        )
        .await
    }
}

#[tokio::test]
async fn deliveries_are_signed_as_the_specification_says_also_during_a_rotation() {
    let w = World::start(&[]).await;
    let receiver = Receiver::start().await;
    let (hook, first_secret) = w.webhook(&receiver.url(), &["task.*"]).await;
    assert!(first_secret.starts_with("whsec_"));
    // The secret is shown once: never in a read.
    let shown = w.webhook_state(&hook).await;
    assert!(shown.get("secret").is_none(), "{shown}");
    assert_eq!(shown["events"], json!(["task.*"]));

    let project = w.project().await;
    let task = w.task(&project, "Ship it").await;
    let hits = receiver.wait_for(1, Duration::from_secs(30)).await;
    let created = &hits[0];
    verify(&first_secret, created).expect("the first secret verifies");
    assert_eq!(created.header("content-type"), "application/json");
    assert!(created.header("webhook-id").starts_with("msg_"));
    let body = created.json();
    assert_eq!(body["type"], "task.created");
    assert_eq!(body["data"]["task_id"], json!(task));
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    // project.created was not asked for: only the task's event came.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.hits().len(), 1);

    // A rotation: both secrets sign for 24 hours.
    let rotated = w
        .expect(
            &w.owner,
            Method::POST,
            &format!("/api/v1/webhooks/{hook}/rotate-secret"),
            None,
            200,
        )
        .await;
    let second_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(second_secret, first_secret);
    w.task(&project, "During the rotation").await;
    let during = receiver.wait_for(2, Duration::from_secs(30)).await[1].clone();
    assert_eq!(during.header("webhook-signature").split(' ').count(), 2);
    verify(&second_secret, &during).expect("the new secret verifies");
    verify(&first_secret, &during).expect("the old secret still verifies");

    // A second rotation ends the first secret's overlap: after it, only the two newest sign.
    let third_secret = w
        .expect(
            &w.owner,
            Method::POST,
            &format!("/api/v1/webhooks/{hook}/rotate-secret"),
            None,
            200,
        )
        .await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    w.task(&project, "After the rotation").await;
    let after = receiver.wait_for(3, Duration::from_secs(30)).await[2].clone();
    verify(&third_secret, &after).expect("the newest secret verifies");
    verify(&second_secret, &after).expect("the one before still verifies");
    assert!(
        verify(&first_secret, &after).is_err(),
        "the first secret no longer signs"
    );
    // A body changed on the way fails verification.
    let mut tampered = after.clone();
    tampered.body.push(' ');
    assert!(verify(&third_secret, &tampered).is_err());

    // A ping, whatever events the endpoint asked for.
    w.expect(
        &w.owner,
        Method::POST,
        &format!("/api/v1/webhooks/{hook}/test"),
        None,
        202,
    )
    .await;
    let ping = receiver.wait_for(4, Duration::from_secs(30)).await[3].clone();
    assert_eq!(ping.json()["type"], "ping");
    verify(&third_secret, &ping).expect("the ping verifies");

    // Slack's format: `text` and `blocks`, signed the same way.
    let slack = Receiver::start().await;
    let made = w
        .expect(
            &w.owner,
            Method::POST,
            "/api/v1/webhooks",
            Some(json!({"url": slack.url(), "events": ["task.created"], "format": "slack"})),
            201,
        )
        .await;
    w.task(&project, "For Slack").await;
    let message = slack.wait_for(1, Duration::from_secs(30)).await[0].clone();
    verify(made["secret"].as_str().unwrap(), &message).expect("slack's message verifies");
    let text = message.json()["text"].as_str().unwrap().to_owned();
    assert!(text.starts_with("Task created: WEB-"), "{text}");
    assert_eq!(message.json()["blocks"][0]["text"]["text"], json!(text));

    // What is wrong with a new endpoint is named, and nothing is made.
    let refused = w
        .expect(
            &w.owner,
            Method::POST,
            "/api/v1/webhooks",
            Some(json!({"url": receiver.url(), "events": ["tasks.*"]})),
            400,
        )
        .await;
    assert_eq!(refused["errors"][0]["field"], "events[0]");
    let listed = w
        .expect(&w.owner, Method::GET, "/api/v1/webhooks", None, 200)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn failures_are_retried_with_the_same_id_retry_after_is_honoured_and_410_disables() {
    // 1.8 s without a success disables an endpoint.
    let w = World::start(&[("WEBHOOK_DISABLE_AFTER_HOURS", "0.0005")]).await;
    let admin = w
        .fleet
        .join(&w.http, &w.owner, "ada@acme.test", "admin")
        .await;
    let flaky = Receiver::start().await;
    flaky.script([Reply::status(500), Reply::status(502)]);
    let (flaky_hook, flaky_secret) = w.webhook(&flaky.url(), &["task.created"]).await;
    let project = w.project().await;
    w.task(&project, "Flaky").await;
    let hits = flaky.wait_for(3, Duration::from_secs(30)).await;
    let ids: Vec<&str> = hits.iter().map(|h| h.header("webhook-id")).collect();
    assert_eq!(
        ids, [ids[0]; 3],
        "one message, the same id on every attempt"
    );
    for hit in &hits {
        verify(&flaky_secret, hit).expect("every attempt is signed");
    }
    // The schedule at a thousandth: 5 ms, then 300 ms (±10 %).
    let second_wait = hits[2].at - hits[1].at;
    assert!(
        second_wait >= Duration::from_millis(250),
        "the second retry waited {second_wait:?}"
    );
    let log = w
        .deliveries_until(&flaky_hook, |d| {
            d.first().is_some_and(|d| d["status"] == "succeeded")
        })
        .await;
    let codes: Vec<&Value> = log[0]["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(codes, [&json!(500), &json!(502), &json!(204)]);
    assert_eq!(log[0]["webhook_id"], json!(ids[0]));
    // What the receiver said is kept (a 204 says nothing).
    assert_eq!(log[0]["attempt_log"][0]["response"], "ok");
    assert_eq!(log[0]["attempt_log"][2]["response"], "");

    // 429 with Retry-After: 2 waits two seconds, not the schedule's 5 ms.
    let throttled = Receiver::start().await;
    throttled.script([Reply::status(429).with("retry-after", "2")]);
    w.webhook(&throttled.url(), &["task.created"]).await;
    w.task(&project, "Throttled").await;
    let hits = throttled.wait_for(2, Duration::from_secs(30)).await;
    let waited = hits[1].at - hits[0].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "Retry-After: 2 was honoured: {waited:?}"
    );

    // A redirect is a failure, never followed.
    let elsewhere = Receiver::start().await;
    let redirecting = Receiver::start().await;
    redirecting.otherwise(Reply::status(302).with("location", &elsewhere.url()));
    let (redirect_hook, _) = w.webhook(&redirecting.url(), &["task.created"]).await;
    w.task(&project, "Redirected").await;
    redirecting.wait_for(2, Duration::from_secs(30)).await;
    let log = w.deliveries(&redirect_hook).await;
    assert_eq!(log[0]["attempt_log"][0]["status_code"], 302);
    assert!(elsewhere.hits().is_empty(), "the redirect was not followed");

    // 410 disables the endpoint at once; failing for 1.8 s disables the redirecting one.
    let gone = Receiver::start().await;
    gone.otherwise(Reply::status(410));
    let (gone_hook, _) = w.webhook(&gone.url(), &["task.created"]).await;
    w.task(&project, "Gone").await;
    gone.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(w.disabled(&gone_hook).await, "gone", "410 disables at once");
    assert_eq!(
        w.disabled(&redirect_hook).await,
        "failing",
        "an endpoint failing for 1.8 s is disabled"
    );
    w.task(&project, "After it was disabled").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gone.hits().len(), 1, "a disabled endpoint gets nothing");

    // Those who manage webhooks (owner, admin) are told, in the inbox.
    for who in [&w.owner, &admin] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let inbox = w
                .expect(
                    who,
                    Method::GET,
                    "/api/v1/notifications?kind=webhook_disabled",
                    None,
                    200,
                )
                .await;
            if inbox["items"].as_array().unwrap().len() == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "{inbox:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Turned back on, a recover replays what failed; a delivery can be sent again by hand.
    gone.otherwise(Reply::status(200));
    w.expect(
        &w.owner,
        Method::POST,
        &format!("/api/v1/webhooks/{gone_hook}/recover"),
        Some(json!({"since": "2000-01-01T00:00:00Z"})),
        409,
    )
    .await;
    let on = w
        .expect(
            &w.owner,
            Method::PATCH,
            &format!("/api/v1/webhooks/{gone_hook}"),
            Some(json!({"enabled": true})),
            200,
        )
        .await;
    assert!(on["disabled_reason"].is_null());
    let recovered = w
        .expect(
            &w.owner,
            Method::POST,
            &format!("/api/v1/webhooks/{gone_hook}/recover"),
            Some(json!({"since": "2000-01-01T00:00:00Z"})),
            202,
        )
        .await;
    assert_eq!(recovered["requeued"], 1);
    let replayed = gone.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(
        replayed[1].header("webhook-id"),
        replayed[0].header("webhook-id")
    );
    let log = w
        .deliveries_until(&gone_hook, |d| {
            d.first().is_some_and(|d| d["status"] == "succeeded")
        })
        .await;
    let delivery = log[0]["id"].as_str().unwrap();
    w.expect(
        &w.owner,
        Method::POST,
        &format!("/api/v1/webhooks/{gone_hook}/deliveries/{delivery}/retry"),
        None,
        202,
    )
    .await;
    gone.wait_for(3, Duration::from_secs(30)).await;
    let failed_only = w
        .expect(
            &w.owner,
            Method::GET,
            &format!("/api/v1/webhooks/{gone_hook}/deliveries?status=failed"),
            None,
            200,
        )
        .await;
    assert!(failed_only["items"].as_array().unwrap().is_empty());
    w.expect(
        &w.owner,
        Method::GET,
        &format!("/api/v1/webhooks/{gone_hook}/deliveries?status=lost"),
        None,
        400,
    )
    .await;
}

#[tokio::test]
async fn a_restart_in_the_middle_of_the_retries_loses_nothing() {
    // Waits of 50 ms, then 3 s: time to restart between the second and third attempts.
    let mut w = World::start(&[("WEBHOOK_RETRY_SCALE", "0.01")]).await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(503), Reply::status(503)]);
    let (hook, secret) = w.webhook(&receiver.url(), &["task.created"]).await;
    let project = w.project().await;
    w.task(&project, "Through a restart").await;
    let first_two = receiver.wait_for(2, Duration::from_secs(30)).await;
    w.fleet.restart_notification_service().await;
    let hits = receiver.wait_for(3, Duration::from_secs(30)).await;
    assert_eq!(
        hits[2].header("webhook-id"),
        first_two[0].header("webhook-id")
    );
    verify(&secret, &hits[2]).expect("signed after the restart");
    let log = w
        .deliveries_until(&hook, |d| {
            d.first().is_some_and(|d| d["status"] == "succeeded")
        })
        .await;
    assert_eq!(log.len(), 1, "one delivery: {log:#?}");
    assert_eq!(log[0]["attempts"], 3);
}

#[tokio::test]
async fn a_slow_receiver_does_not_delay_a_fast_one() {
    let w = World::start(&[]).await;
    let (slow, fast) = (Receiver::start().await, Receiver::start().await);
    slow.otherwise(Reply {
        status: 204,
        headers: Vec::new(),
        delay: Duration::from_secs(6),
    });
    w.webhook(&slow.url(), &["task.created"]).await;
    w.webhook(&fast.url(), &["task.created"]).await;
    let project = w.project().await;
    let tasks = 24;
    for n in 0..tasks {
        w.task(&project, &format!("task {n}")).await;
    }
    fast.wait_for(tasks, Duration::from_secs(30)).await;
    assert_eq!(
        slow.answered(),
        0,
        "every fast delivery arrived while the slow receiver had answered nothing"
    );
    assert!(!slow.hits().is_empty(), "the slow receiver was being tried");
}

#[tokio::test]
async fn the_ssrf_guard_refuses_inside_addresses_in_every_spelling() {
    let w = World::start(&[("WEBHOOK_ALLOWED_NETWORKS", "")]).await;
    for url in [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://2130706433/hook",
        "http://0177.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://0.0.0.0/hook",
        "ftp://example.com/hook",
        "https://user:secret@example.com/hook",
    ] {
        let refused = w
            .expect(
                &w.owner,
                Method::POST,
                "/api/v1/webhooks",
                Some(json!({"url": url, "events": ["*"]})),
                422,
            )
            .await;
        assert_eq!(
            refused["type"], "/docs/problems#webhook-url-refused",
            "{url}: {refused}"
        );
    }
    let listed = w
        .expect(&w.owner, Method::GET, "/api/v1/webhooks", None, 200)
        .await;
    assert_eq!(listed, json!([]), "nothing was made");
}
