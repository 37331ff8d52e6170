//! Starts url-shortener in-process on port 0 with its own database and exchange, and a
//! fake project-service (a small real HTTP server) that serves the JWKS and knows which
//! tasks and projects belong to which tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use common::auth::{Claims, Role, SigningKey};
use common::grant::GrantKey;
use common::testkit::{EventTap, TestDb, TestServer, amqp_url, parse_config, unique};
use secrecy::SecretString;
use serde_json::{Value, json};
use url_shortener::{Config, NAME};
use uuid::Uuid;

pub const GRANT_SECRET: &str = "test-share-grant-secret";
pub const TENANT_URL_TEMPLATE: &str = "https://{slug}.nexus.test";

/// Which tenant each task or project id belongs to, as project-service would know.
#[derive(Clone, Default)]
struct Registry {
    owners: Arc<Mutex<HashMap<Uuid, Uuid>>>,
    jwks: Arc<Mutex<Value>>,
    down: Arc<Mutex<bool>>,
}

/// project-service's `GET /api/v1/tasks/{id}` (or projects): 200 when the id belongs to
/// the tenant of the forwarded `X-Tenant-Id` and a bearer token came along, else 404.
async fn target(State(r): State<Registry>, headers: HeaderMap, Path(id): Path<Uuid>) -> StatusCode {
    if *r.down.lock().unwrap() {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let tenant = headers
        .get("x-tenant-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Uuid>().ok());
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "));
    match (tenant, r.owners.lock().unwrap().get(&id)) {
        (Some(tenant), Some(owner)) if authorized && tenant == *owner => StatusCode::OK,
        _ => StatusCode::NOT_FOUND,
    }
}

pub struct FakeProjects {
    pub server: TestServer,
    registry: Registry,
    pub key: SigningKey,
}

pub async fn fake_projects() -> FakeProjects {
    let registry = Registry::default();
    let key = SigningKey::generate("us-test").unwrap();
    *registry.jwks.lock().unwrap() =
        serde_json::to_value(SigningKey::jwks([&key]).unwrap()).unwrap();
    let router =
        Router::new()
            .route("/api/v1/tasks/{id}", get(target))
            .route("/api/v1/projects/{id}", get(target))
            .route(
                "/.well-known/jwks.json",
                get(|State(r): State<Registry>| async move {
                    axum::Json(r.jwks.lock().unwrap().clone())
                }),
            )
            .with_state(registry.clone());
    FakeProjects {
        server: TestServer::router(router).await,
        registry,
        key,
    }
}

pub struct TestApp {
    pub server: TestServer,
    pub db: TestDb,
    pub projects: FakeProjects,
    pub exchange: String,
    /// Does not follow redirects, so tests see the 302 itself.
    pub client: reqwest::Client,
}

/// A tenant and one of its users.
#[derive(Clone)]
pub struct User {
    pub tenant: Uuid,
    pub slug: String,
    pub id: Uuid,
    pub token: String,
}

/// Settings of a test instance: a fresh database, a unique exchange, the test broker.
pub fn test_args(db: &TestDb) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db.url.clone()),
        ("AMQP_URL", amqp_url()),
        ("EVENTS_EXCHANGE", unique("test.events")),
        ("SHARE_GRANT_SECRET", GRANT_SECRET.to_owned()),
        ("TENANT_URL_TEMPLATE", TENANT_URL_TEMPLATE.to_owned()),
        ("SHORT_URL_BASE", "https://nexus.test".to_owned()),
        ("VISIT_FLUSH_INTERVAL_MS", "50".to_owned()),
    ]
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the service; `overrides` replace test settings (`("AMQP_URL", …)`).
pub async fn spawn_app_with(overrides: &[(&'static str, &str)]) -> TestApp {
    let db = TestDb::create().await;
    let projects = fake_projects().await;
    let (server, exchange) = start(&db, &projects, None, overrides).await;
    TestApp {
        server,
        db,
        projects,
        exchange,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

/// url-shortener on `db` and `projects`, publishing to `exchange` (a new one when
/// `None`); returns it and the exchange it publishes to.
async fn start(
    db: &TestDb,
    projects: &FakeProjects,
    exchange: Option<&str>,
    overrides: &[(&'static str, &str)],
) -> (TestServer, String) {
    let mut args = test_args(db);
    if let Some(exchange) = exchange {
        args.retain(|(k, _)| *k != "EVENTS_EXCHANGE");
        args.push(("EVENTS_EXCHANGE", exchange.to_owned()));
    }
    args.push(("PROJECT_SERVICE_URL", projects.server.base_url.clone()));
    args.push(("JWKS_URL", projects.server.url("/.well-known/jwks.json")));
    let setting = |name: &str| {
        overrides
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .chain(args.iter().cloned())
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .unwrap()
    };
    let exchange = setting("EVENTS_EXCHANGE");
    let config: Config = parse_config(NAME, &args, overrides);
    let server = TestServer::start(|listener, shutdown| {
        url_shortener::run_until(config, listener, shutdown)
    })
    .await;
    (server, exchange)
}

impl TestApp {
    /// A second url-shortener on this one's database, exchange and fake project-service,
    /// with `overrides`.
    pub async fn twin(&self, overrides: &[(&'static str, &str)]) -> TestServer {
        start(&self.db, &self.projects, Some(&self.exchange), overrides)
            .await
            .0
    }

    /// A new tenant with a member.
    pub fn tenant(&self, role: Role) -> User {
        let tenant = Uuid::now_v7();
        let slug = unique("t").replace('_', "-");
        self.user_of(tenant, &slug, role)
    }

    /// Another user of `of`'s tenant.
    pub fn colleague(&self, of: &User, role: Role) -> User {
        self.user_of(of.tenant, &of.slug, role)
    }

    fn user_of(&self, tenant: Uuid, slug: &str, role: Role) -> User {
        let id = Uuid::now_v7();
        let token = self
            .projects
            .key
            .sign(&Claims::new(id, tenant, slug, role))
            .unwrap();
        User {
            tenant,
            slug: slug.to_owned(),
            id,
            token,
        }
    }

    /// A task that exists in `user`'s tenant.
    pub fn task_of(&self, user: &User) -> Uuid {
        let id = Uuid::now_v7();
        self.projects
            .registry
            .owners
            .lock()
            .unwrap()
            .insert(id, user.tenant);
        id
    }

    /// Makes the fake project-service answer 500.
    pub fn break_project_service(&self) {
        *self.projects.registry.down.lock().unwrap() = true;
    }

    /// A request as `user`, with the gateway's tenant headers.
    pub fn call(
        &self,
        user: &User,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.server.url(path))
            .bearer_auth(&user.token)
            .header("x-tenant-id", user.tenant.to_string())
            .header("x-tenant-slug", &user.slug)
    }

    pub async fn send(
        &self,
        user: &User,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self.call(user, method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// Creates a link with `extra` fields to a new task of `user`'s tenant; 201 asserted.
    pub async fn link(&self, user: &User, extra: Value) -> Value {
        let task = self.task_of(user);
        let mut body = json!({"target": {"type": "task", "id": task}});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let resp = self
            .send(user, reqwest::Method::POST, "/api/v1/links", Some(body))
            .await;
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        resp.json().await.unwrap()
    }

    /// `GET /s/{code}` as a browser from `ip`.
    pub async fn open(&self, code: &str, ip: &str) -> reqwest::Response {
        self.client
            .get(self.server.url(&format!("/s/{code}")))
            .header("x-forwarded-for", ip)
            .header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0",
            )
            .header("accept", "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap()
    }

    /// `POST /s/{code}` with the password form from `ip`.
    pub async fn unlock(&self, code: &str, password: &str, ip: &str) -> reqwest::Response {
        self.client
            .post(self.server.url(&format!("/s/{code}")))
            .header("x-forwarded-for", ip)
            .header("accept", "text/html")
            .form(&[("password", password)])
            .send()
            .await
            .unwrap()
    }

    /// The visits of `code` written to the database so far.
    pub async fn visits_written(&self, code: &str) -> i64 {
        url_shortener::db::links::visits_written(&self.db.pool, code)
            .await
            .unwrap()
            .expect("the link exists")
    }

    /// A tap on this instance's exchange, bound to `binding`.
    pub async fn tap(&self, binding: &str) -> EventTap {
        EventTap::new(&self.exchange, binding).await
    }
}

pub fn grant_key() -> GrantKey {
    GrantKey::new(&SecretString::from(GRANT_SECRET.to_owned()))
}

/// The `grant` query parameter of a redirect's `Location`.
pub fn grant_of(location: &str) -> &str {
    location
        .split_once("?grant=")
        .map(|(_, g)| g)
        .unwrap_or_else(|| panic!("no grant in {location}"))
}

pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on {}", resp.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Polls `check` every 50 ms until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
