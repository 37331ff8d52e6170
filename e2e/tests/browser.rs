//! A real browser (Debian's headless Chromium, driven through chromedriver over
//! WebDriver) opens a protected share link through the gateway, gets the password wrong
//! and then right, and lands on the read-only task page, which then follows the task live
//! (a status changed through the API shows without a reload); it also loads `/docs` and the
//! analytics dashboard. Each page is saved as a PNG under `target/e2e-artifacts/`, and
//! the browser's console must stay free of errors.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::Fleet;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    profile: PathBuf,
}

impl Driver {
    fn start() -> Self {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: install Debian's {package} package \
                 (`cargo xtask test` installs chromium and chromium-driver when absent)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = std::env::temp_dir().join(common::testkit::unique("nexus-chromium"));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile,
        }
    }

    async fn browser(&self) -> Client {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1200,1000",
                    format!("--user-data-dir={}", self.profile.display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session through chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        std::fs::remove_dir_all(&self.profile).ok();
    }
}

/// chromedriver's own endpoints: the browser console, and Chrome DevTools commands.
#[derive(Debug)]
enum Chrome {
    ConsoleLog,
    Cdp(&'static str, Value),
}

impl WebDriverCompatibleCommand for Chrome {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.unwrap_or_default();
        base_url.join(&match self {
            Self::ConsoleLog => format!("session/{session}/se/log"),
            Self::Cdp(..) => format!("session/{session}/goog/cdp/execute"),
        })
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = match self {
            Self::ConsoleLog => json!({"type": "browser"}),
            Self::Cdp(cmd, params) => json!({"cmd": cmd, "params": params}),
        };
        (http::Method::POST, Some(body.to_string()))
    }
}

/// Console messages of level SEVERE since the last call (a missing favicon aside).
async fn console_errors(browser: &Client) -> Vec<String> {
    let log = browser
        .issue_cmd(Chrome::ConsoleLog)
        .await
        .expect("reading the browser console");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["level"] == "SEVERE")
        .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
        .filter(|message| !message.contains("favicon.ico"))
        .collect()
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-artifacts");
    std::fs::create_dir_all(&dir).expect("creating target/e2e-artifacts");
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    std::fs::write(artifacts().join(name), png).expect("saving the screenshot");
}

async fn text_of(browser: &Client, css: &str) -> String {
    let found = browser
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await;
    match found {
        Ok(element) => element.text().await.expect("element text"),
        Err(err) => panic!(
            "no {css} on {:?}: {err}\n{}",
            browser.current_url().await,
            browser.source().await.unwrap_or_default()
        ),
    }
}

/// A task shared by a protected link.
struct Shared {
    token: String,
    short_url: String,
    task: String,
    project: String,
}

/// Signs up acme, and returns the owner's token and a protected link to a task that has
/// a comment trying to inject a script.
async fn shared_task(fleet: &Fleet) -> Shared {
    let http = fleet.client(&["acme"]);
    fleet.signup(&http, "acme", "olive@acme.test").await;
    let token = fleet.login(&http, "acme", "olive@acme.test").await.token;
    let post = |path: &str, body: Value| {
        http.post(fleet.url("acme.localhost", path))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let project: Value = post("/api/v1/projects", json!({"key": "WEB", "name": "Website"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let task: Value = post(
        &format!("/api/v1/projects/{}/tasks", project["id"].as_str().unwrap()),
        json!({"title": "Ship the browser test", "description": "Seen in **Chromium**"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let tid = task["id"].as_str().unwrap();
    let commented = post(
        &format!("/api/v1/tasks/{tid}/comments"),
        json!({"body": "<script>document.title='owned'</script> looks good"}),
    )
    .await
    .unwrap();
    assert_eq!(commented.status(), 201);
    let link: Value = post(
        "/api/v1/links",
        json!({"target": {"type": "task", "id": tid}, "ttl": 3600, "password": "open sesame"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    Shared {
        short_url: link["short_url"].as_str().unwrap().to_owned(),
        task: tid.to_owned(),
        project: project["id"].as_str().unwrap().to_owned(),
        token,
    }
}

#[tokio::test]
async fn a_browser_opens_a_protected_share_link_and_renders_the_docs_and_the_dashboard() {
    let fleet = Fleet::start().await;
    let shared = shared_task(&fleet).await;
    let (token, short_url) = (shared.token.clone(), shared.short_url.clone());
    let driver = Driver::start();
    let browser = driver.browser().await;

    browser.goto(&short_url).await.unwrap();
    let form = text_of(&browser, "form").await;
    assert!(form.contains("Open"), "{form}");
    screenshot(&browser, "01-password-form.png").await;

    let password = browser.find(Locator::Css("input#password")).await.unwrap();
    password.send_keys("not it").await.unwrap();
    browser
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let error = text_of(&browser, "[role=alert]").await;
    assert!(error.contains("not right"), "{error}");
    screenshot(&browser, "02-wrong-password.png").await;
    // The form comes back as a 401, which Chromium reports; nothing else may appear.
    let errors = console_errors(&browser).await;
    assert!(
        errors.iter().all(|e| e.contains("status of 401")),
        "the password form: {errors:?}"
    );

    let password = browser.find(Locator::Css("input#password")).await.unwrap();
    password.send_keys("open sesame").await.unwrap();
    browser
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let url = loop {
        let url = browser.current_url().await.unwrap();
        if url.path().starts_with("/shared/tasks/") {
            break url;
        }
        assert!(Instant::now() < deadline, "still at {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(url.host_str(), Some("acme.localhost"));
    assert_eq!(text_of(&browser, "h1").await, "Ship the browser test");
    let page = browser.source().await.unwrap();
    assert!(page.contains("<strong>Chromium</strong>"), "{page}");
    assert_ne!(
        browser.title().await.unwrap(),
        "owned",
        "the comment's script did not run"
    );
    assert!(text_of(&browser, ".comment").await.contains("<script>"));
    screenshot(&browser, "03-shared-task.png").await;
    assert_eq!(
        console_errors(&browser).await,
        Vec::<String>::new(),
        "share pages"
    );

    // The page follows the task live: its status changed through the API shows within
    // two seconds, without a reload (a mark left on the page survives).
    browser
        .execute("window.nexusMark = 'still here'; return true;", vec![])
        .await
        .unwrap();
    assert_eq!(text_of(&browser, "dd .pill").await, "To do");
    // The stream is open before the change is made (the page opens it as it loads).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let http = fleet.client(&["acme"]);
    let board: Value = http
        .get(fleet.url(
            "acme.localhost",
            &format!("/api/v1/projects/{}/board", shared.project),
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let done = board["columns"][2]["id"].as_str().unwrap().to_owned();
    let moved = http
        .post(fleet.url(
            "acme.localhost",
            &format!("/api/v1/tasks/{}/move", shared.task),
        ))
        .bearer_auth(&token)
        .json(&json!({"column_id": done, "position": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);
    let changed = Instant::now();
    loop {
        // Read in one step: the page swaps its <main> when it updates, which would leave
        // an element found a moment before stale.
        let status = browser
            .execute(
                "const p = document.querySelector('dd .pill'); return p ? p.textContent : null;",
                vec![],
            )
            .await
            .unwrap();
        if status == json!("Done") {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(2),
            "the page still says {status:?} two seconds after the change"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mark = browser
        .execute("return window.nexusMark || null;", vec![])
        .await
        .unwrap();
    assert_eq!(mark, json!("still here"), "the page was not reloaded");
    screenshot(&browser, "03b-shared-task-live.png").await;
    assert_eq!(
        console_errors(&browser).await,
        Vec::<String>::new(),
        "the live share page"
    );

    browser
        .goto(&fleet.url("localhost", "/docs"))
        .await
        .unwrap();
    let docs_title = text_of(&browser, ".swagger-ui .info .title").await;
    assert!(!docs_title.is_empty());
    let operations = browser
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(".opblock"))
        .await;
    assert!(operations.is_ok(), "Swagger UI lists the operations");
    screenshot(&browser, "04-docs.png").await;
    assert_eq!(
        console_errors(&browser).await,
        Vec::<String>::new(),
        "/docs"
    );

    // The dashboard wants the bearer token, which a browser only sends if told to.
    browser
        .issue_cmd(Chrome::Cdp("Network.enable", json!({})))
        .await
        .unwrap();
    browser
        .issue_cmd(Chrome::Cdp(
            "Network.setExtraHTTPHeaders",
            json!({"headers": {"Authorization": format!("Bearer {token}")}}),
        ))
        .await
        .unwrap();
    browser
        .goto(&fleet.url("acme.localhost", "/api/v1/analytics/dashboard"))
        .await
        .unwrap();
    let heading = text_of(&browser, "h1").await;
    assert!(!heading.is_empty());
    let charts = browser.find_all(Locator::Css("svg")).await.unwrap();
    assert!(!charts.is_empty(), "the dashboard draws its charts");
    screenshot(&browser, "05-dashboard.png").await;
    assert_eq!(
        console_errors(&browser).await,
        Vec::<String>::new(),
        "dashboard"
    );

    browser.close().await.ok();
}
