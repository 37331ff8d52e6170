//! Faults the fleet must ride out without losing or duplicating anything it
//! acknowledged. Tests named `serial_…` stop the shared RabbitMQ or restart the shared
//! PostgreSQL, so `cargo xtask test` runs them on their own, one at a time, after
//! everything else.

use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{Fleet, Session};
use futures::StreamExt;
use reqwest::{Client, Method};
use serde_json::{Value, json};

const GENEROUS: [(&str, &str); 2] = [
    ("RATE_LIMIT_USER_PER_MIN", "1000000"),
    ("RATE_LIMIT_IP_PER_MIN", "1000000"),
];

async fn send(
    fleet: &Fleet,
    http: &Client,
    who: &Session,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http
        .request(method, fleet.url(&who.host, path))
        .bearer_auth(&who.token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    match request.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// Runs a command that must succeed (rabbitmqctl, pg_ctlcluster).
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("{program} could not run: {err}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts RabbitMQ's application again however the test ends.
struct BrokerBack;

impl Drop for BrokerBack {
    fn drop(&mut self) {
        run("rabbitmqctl", &["start_app"]);
    }
}

async fn overview(fleet: &Fleet, http: &Client, who: &Session) -> Value {
    send(
        fleet,
        http,
        who,
        Method::GET,
        "/api/v1/analytics/overview",
        None,
    )
    .await
    .1["totals"]
        .clone()
}

async fn setup(fleet: &Fleet, http: &Client) -> (Session, String) {
    fleet.signup(http, "acme", "olive@acme.test").await;
    let owner = fleet.login(http, "acme", "olive@acme.test").await;
    let (status, project) = send(
        fleet,
        http,
        &owner,
        Method::POST,
        "/api/v1/projects",
        Some(json!({"key": "OPS", "name": "Ops"})),
    )
    .await;
    assert_eq!(status, 201, "{project}");
    (owner, project["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn serial_a_broker_outage_loses_and_duplicates_nothing() {
    let fleet = Fleet::start_with(&GENEROUS).await;
    let http = fleet.client(&["acme"]);
    let (owner, project) = setup(&fleet, &http).await;
    let tasks = format!("/api/v1/projects/{project}/tasks");
    let (_, shared) = send(
        &fleet,
        &http,
        &owner,
        Method::POST,
        &tasks,
        Some(json!({"title": "shared"})),
    )
    .await;
    let (status, link) = send(
        &fleet,
        &http,
        &owner,
        Method::POST,
        "/api/v1/links",
        Some(json!({"target": {"type": "task", "id": shared["id"]}, "ttl": 3600})),
    )
    .await;
    assert_eq!(status, 201, "{link}");
    let short_url = link["short_url"].as_str().unwrap().to_owned();

    let back = BrokerBack;
    run("rabbitmqctl", &["stop_app"]);
    let stopped = Instant::now();
    let created: Vec<u16> = futures::stream::iter(0..1000)
        .map(|n| {
            let (fleet, http, owner, tasks) = (&fleet, &http, &owner, &tasks);
            async move {
                send(
                    fleet,
                    http,
                    owner,
                    Method::POST,
                    tasks,
                    Some(json!({"title": format!("t{n}")})),
                )
                .await
                .0
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(
        created.iter().all(|s| *s == 201),
        "every create acknowledged while the broker is down"
    );
    for _ in 0..200 {
        let opened = http.get(&short_url).send().await.unwrap();
        assert_eq!(opened.status(), 302);
    }
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(stopped.elapsed())).await;
    drop(back);

    let deadline = Instant::now() + Duration::from_secs(180);
    let totals = loop {
        let totals = overview(&fleet, &http, &owner).await;
        if totals["tasks_created"] == 1001 && totals["link_clicks"] == 200 {
            break totals;
        }
        assert!(
            Instant::now() < deadline,
            "after the outage analytics holds {totals}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        overview(&fleet, &http, &owner).await,
        totals,
        "nothing arrived twice"
    );
}

#[tokio::test]
async fn serial_postgres_restarts_under_load_and_no_acknowledged_write_is_lost() {
    let fleet = Fleet::start_with(&GENEROUS).await;
    let http = fleet.client(&["acme"]);
    let (owner, project) = setup(&fleet, &http).await;
    let tasks = format!("/api/v1/projects/{project}/tasks");
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("a Debian PostgreSQL cluster")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .expect("a PostgreSQL version");

    let writer = async {
        let started = Instant::now();
        let mut results = Vec::new();
        let mut n = 0;
        while started.elapsed() < Duration::from_secs(25) {
            let at = started.elapsed();
            let (status, task) = send(
                &fleet,
                &http,
                &owner,
                Method::POST,
                &tasks,
                Some(json!({"title": format!("w{n}")})),
            )
            .await;
            results.push((at, status, task["id"].as_str().map(str::to_owned)));
            n += 1;
        }
        results
    };
    let restart = async {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let version = version.clone();
        tokio::task::spawn_blocking(move || {
            run(
                "pg_ctlcluster",
                &["--skip-systemctl-redirect", &version, "main", "restart"],
            );
        })
        .await
        .unwrap();
        Instant::now()
    };
    let start = Instant::now();
    let (results, restarted_at) = tokio::join!(writer, restart);
    let recovered = restarted_at.duration_since(start) + Duration::from_secs(5);

    let late_failures: Vec<_> = results
        .iter()
        .filter(|(at, status, _)| *at > recovered && *status != 201)
        .collect();
    assert!(
        late_failures.is_empty(),
        "5 s after the restart every write succeeds: {late_failures:?}"
    );
    assert!(
        results
            .iter()
            .any(|(at, status, _)| *at > recovered && *status == 201),
        "writes went on after the restart"
    );
    let acknowledged: Vec<&String> = results
        .iter()
        .filter(|(_, status, _)| *status == 201)
        .filter_map(|(_, _, id)| id.as_ref())
        .collect();
    for id in &acknowledged {
        let (status, _) = send(
            &fleet,
            &http,
            &owner,
            Method::GET,
            &format!("/api/v1/tasks/{id}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "acknowledged task {id} is there");
    }
    println!(
        "postgres restart: {} writes, {} acknowledged, {} refused during the restart",
        results.len(),
        acknowledged.len(),
        results.len() - acknowledged.len()
    );
}

#[tokio::test]
async fn with_tenant_resolver_down_known_tenants_work_and_its_breaker_opens_then_closes() {
    let mut fleet =
        Fleet::start_with(&[("BREAKER_FAILURES", "3"), ("BREAKER_COOLDOWN_SECS", "1")]).await;
    let http = fleet.client(&["acme", "globex"]);
    let (owner, _) = setup(&fleet, &http).await;
    assert_eq!(
        send(&fleet, &http, &owner, Method::GET, "/api/v1/projects", None)
            .await
            .0,
        200
    );

    fleet.stop_tenant_resolver().await;
    for _ in 0..20 {
        let (status, body) =
            send(&fleet, &http, &owner, Method::GET, "/api/v1/projects", None).await;
        assert_eq!(status, 200, "a cached tenant keeps working: {body}");
    }
    // A tenant the gateway has not seen cannot be looked up: 503, then the breaker opens.
    let stranger = Session {
        host: "globex.localhost".into(),
        token: owner.token.clone(),
    };
    for _ in 0..5 {
        let (status, _) = send(
            &fleet,
            &http,
            &stranger,
            Method::GET,
            "/api/v1/projects",
            None,
        )
        .await;
        assert_eq!(
            status, 503,
            "an unknown tenant while tenant-resolver is down"
        );
    }
    let ready = http
        .get(fleet.url("localhost", "/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        503,
        "the gateway is not ready without tenant-resolver"
    );
    let metrics = http
        .get(fleet.url("localhost", "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failed_calls = metrics
        .lines()
        .find(|l| {
            l.starts_with(
                "gateway_upstream_requests_total{upstream=\"tenant-resolver\",outcome=\"error\"}",
            )
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<u32>().ok());
    assert_eq!(
        failed_calls,
        Some(3),
        "after BREAKER_FAILURES failed lookups the open breaker made no more calls"
    );

    fleet.restart_tenant_resolver().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let signup = http
            .post(fleet.url("localhost", "/api/v1/tenants"))
            .json(&json!({"slug": "globex", "name": "Globex",
                          "owner": {"email": "hank@globex.test", "password": e2e::PASSWORD, "name": "Hank"}}))
            .send()
            .await
            .unwrap();
        if signup.status() == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the breaker closed again: {}",
            signup.status()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let hank = fleet.login(&http, "globex", "hank@globex.test").await;
    assert_eq!(
        send(&fleet, &http, &hank, Method::GET, "/api/v1/projects", None)
            .await
            .0,
        200
    );
}
