//! Starts project-service in-process on port 0 with a fake tenant-resolver (a small real
//! HTTP server) that locates tenant databases — real PostgreSQL databases migrated with
//! `migrations/tenant` — and serves the JWKS; and a unique exchange on the test broker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use common::auth::{Claims, Role, SigningKey};
use common::testkit::{TestDb, TestServer, amqp_url, parse_config, postgres_url, unique};
use project_service::{Config, NAME};
use serde_json::{Value, json};
use sqlx::migrate::Migrator;
use uuid::Uuid;

pub static TENANT_MIGRATOR: Migrator = sqlx::migrate!("../migrations/tenant");

/// A tenant's members: (user id, name).
type Members = Vec<(Uuid, String)>;

#[derive(Clone, Default)]
struct Registry {
    databases: Arc<Mutex<HashMap<Uuid, String>>>,
    jwks: Arc<Mutex<Value>>,
    project_limit: Arc<Mutex<Option<i64>>>,
    storage_limit: Arc<Mutex<Option<i64>>>,
    /// tenant → its members (id, name), as user-service would know them.
    members: Arc<Mutex<HashMap<Uuid, Members>>>,
}

#[derive(serde::Deserialize)]
struct Ids {
    ids: String,
    tenant_id: Option<Uuid>,
}

/// user-service's `GET /internal/users?ids&tenant_id`.
async fn users(
    State(r): State<Registry>,
    axum::extract::Query(q): axum::extract::Query<Ids>,
) -> impl IntoResponse {
    let members = r.members.lock().unwrap();
    let wanted: Vec<Uuid> = q.ids.split(',').filter_map(|s| s.parse().ok()).collect();
    let found: Vec<Value> = members
        .iter()
        .filter(|(tenant, _)| q.tenant_id.is_none_or(|t| t == **tenant))
        .flat_map(|(_, users)| users.iter())
        .filter(|(id, _)| wanted.contains(id))
        .map(|(id, name)| json!({"id": id, "name": name, "email": format!("{name}@test")}))
        .collect();
    axum::Json(found)
}

pub struct Resolver {
    pub server: TestServer,
    registry: Registry,
    pub key: SigningKey,
}

async fn database(State(r): State<Registry>, Path(id): Path<Uuid>) -> impl IntoResponse {
    let url = url::Url::parse(&postgres_url()).expect("postgres url");
    match r.databases.lock().unwrap().get(&id) {
        Some(name) => axum::Json(json!({
            "tenant_id": id, "host": url.host_str().unwrap_or("127.0.0.1"),
            "port": url.port().unwrap_or(5432), "database": name,
            "username": if url.username().is_empty() { "postgres" } else { url.username() },
            "password": url.password().unwrap_or(""), "schema_version": 2,
        }))
        .into_response(),
        None => (StatusCode::NOT_FOUND, "no").into_response(),
    }
}

pub async fn fake_resolver() -> Resolver {
    let registry = Registry::default();
    let key = SigningKey::generate("ps-test").unwrap();
    *registry.jwks.lock().unwrap() =
        serde_json::to_value(SigningKey::jwks([&key]).unwrap()).unwrap();
    let router =
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/internal/tenants/{id}/database", get(database))
        .route("/internal/users", get(users))
        .route(
            "/internal/tenants/by-slug/{slug}",
            get(|State(r): State<Registry>| async move {
                let projects = *r.project_limit.lock().unwrap();
                let storage = *r.storage_limit.lock().unwrap();
                axum::Json(json!({"limits": {"users": null, "projects": projects, "storage_bytes": storage}}))
            }),
        )
            .route(
                "/.well-known/jwks.json",
                get(|State(r): State<Registry>| async move {
                    axum::Json(r.jwks.lock().unwrap().clone())
                }),
            )
            .with_state(registry.clone());
    Resolver {
        server: TestServer::router(router).await,
        registry,
        key,
    }
}

impl Resolver {
    /// Makes `user` a member of `tenant` (for mentions).
    pub fn add_member(&self, tenant: Uuid, user: Uuid, name: &str) {
        self.registry
            .members
            .lock()
            .unwrap()
            .entry(tenant)
            .or_default()
            .push((user, name.to_owned()));
    }

    /// Sets the plan's storage limit (bytes) every tenant gets.
    pub fn limit_storage(&self, limit: Option<i64>) {
        *self.registry.storage_limit.lock().unwrap() = limit;
    }

    /// Sets the plan's project limit every tenant gets.
    pub fn limit_projects(&self, limit: Option<i64>) {
        *self.registry.project_limit.lock().unwrap() = limit;
    }
}

pub fn test_args(resolver: &Resolver) -> Vec<(&'static str, String)> {
    vec![
        ("TENANT_RESOLVER_URL", resolver.server.base_url.clone()),
        ("JWKS_URL", resolver.server.url("/.well-known/jwks.json")),
        ("USER_SERVICE_URL", resolver.server.base_url.clone()),
        ("AMQP_URL", amqp_url()),
        ("EVENTS_EXCHANGE", unique("test.events")),
        ("SHARE_GRANT_SECRET", SHARE_SECRET.to_owned()),
        (
            "ATTACHMENTS_DIR",
            std::env::temp_dir()
                .join(unique("nexus-attachments"))
                .display()
                .to_string(),
        ),
    ]
}

/// The share-grant secret test instances run with (url-shortener's side of it).
pub const SHARE_SECRET: &str = "test-share-grant-secret";

pub struct TestApp {
    pub server: TestServer,
    pub resolver: Resolver,
    pub exchange: String,
    /// Where this instance keeps attachment files.
    pub attachments_dir: std::path::PathBuf,
}

/// A tenant with its own migrated database, and a member to act as.
pub struct Tenant {
    pub id: Uuid,
    pub db: Arc<TestDb>,
    pub token: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[(&'static str, &str)]) -> TestApp {
    let resolver = fake_resolver().await;
    let args = test_args(&resolver);
    let exchange = overrides
        .iter()
        .find(|(k, _)| *k == "EVENTS_EXCHANGE")
        .map_or_else(
            || {
                args.iter()
                    .find(|(k, _)| *k == "EVENTS_EXCHANGE")
                    .unwrap()
                    .1
                    .clone()
            },
            |(_, v)| (*v).to_owned(),
        );
    let config: Config = parse_config(NAME, &args, overrides);
    let attachments_dir = config.attachments_dir.clone();
    let server = TestServer::start(|listener, shutdown| {
        project_service::run_until(config, listener, shutdown)
    })
    .await;
    TestApp {
        server,
        resolver,
        exchange,
        attachments_dir,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.attachments_dir).ok();
    }
}

impl TestApp {
    /// A new tenant (database created and migrated) with an owner's token.
    pub async fn tenant(&self) -> Tenant {
        let id = Uuid::now_v7();
        let db = TestDb::migrated(&TENANT_MIGRATOR).await;
        self.resolver
            .registry
            .databases
            .lock()
            .unwrap()
            .insert(id, db.name.clone());
        let token = self.token(id, Role::Owner);
        Tenant {
            id,
            db: Arc::new(db),
            token,
        }
    }

    /// Another user of `tenant`, with `role`.
    pub fn member_of(&self, tenant: &Tenant, role: Role) -> Tenant {
        Tenant {
            id: tenant.id,
            db: Arc::clone(&tenant.db),
            token: self.token(tenant.id, role),
        }
    }

    /// Another user of `tenant`, with `role`, and their user id (to make them a project
    /// member).
    pub fn user_of(&self, tenant: &Tenant, role: Role) -> (Uuid, Tenant) {
        let user = Uuid::now_v7();
        let token = self
            .resolver
            .key
            .sign(&Claims::new(user, tenant.id, "t", role))
            .unwrap();
        let member = Tenant {
            id: tenant.id,
            db: Arc::clone(&tenant.db),
            token,
        };
        (user, member)
    }

    pub fn token(&self, tenant: Uuid, role: Role) -> String {
        self.resolver
            .key
            .sign(&Claims::new(Uuid::now_v7(), tenant, "t", role))
            .unwrap()
    }

    /// A request as `tenant`'s member, through the gateway's headers.
    pub fn call(
        &self,
        tenant: &Tenant,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.server
            .client
            .request(method, self.server.url(path))
            .bearer_auth(&tenant.token)
            .header("x-tenant-id", tenant.id.to_string())
            .header("x-tenant-slug", "t")
    }

    /// `call` with an optional JSON body, sent.
    pub async fn send(
        &self,
        tenant: &Tenant,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self.call(tenant, method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// Uploads `content` to `task` as a multipart form part `file` named `name`.
    pub async fn upload(
        &self,
        tenant: &Tenant,
        task: &str,
        name: &str,
        content_type: &str,
        content: &[u8],
    ) -> reqwest::Response {
        let boundary = "nexus-test-boundary-7MA4YWxkTrZu0gW";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: {content_type}\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.call(
            tenant,
            reqwest::Method::POST,
            &format!("/api/v1/tasks/{task}/attachments"),
        )
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
    }

    pub async fn project(&self, tenant: &Tenant, key: &str) -> Value {
        let resp = self
            .call(tenant, reqwest::Method::POST, "/api/v1/projects")
            .json(&json!({"key": key, "name": format!("Project {key}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        resp.json().await.unwrap()
    }

    pub async fn task(&self, tenant: &Tenant, project: &Value, title: &str) -> Value {
        let resp = self
            .call(
                tenant,
                reqwest::Method::POST,
                &format!("/api/v1/projects/{}/tasks", project["id"].as_str().unwrap()),
            )
            .json(&json!({"title": title}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        resp.json().await.unwrap()
    }

    pub async fn board(&self, tenant: &Tenant, project: &Value) -> Value {
        self.call(
            tenant,
            reqwest::Method::GET,
            &format!("/api/v1/projects/{}/board", project["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
    }
}
