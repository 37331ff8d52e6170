//! Starts tenant-resolver in-process on port 0 with its own registry database, its own
//! tenant name prefix (so tenants of parallel tests never meet), and a small fake
//! user-service that records owner requests and serves a JWKS.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use common::auth::{Claims, Role, SigningKey};
use common::testkit::{
    TestDb, TestServer, amqp_url, drop_databases_and_roles, parse_config, postgres_url, unique,
};
use serde_json::{Value, json};
use tenant_resolver::{AppState, Config, NAME};
use uuid::Uuid;

pub const INTERNAL_TOKEN: &str = "test-internal-token";

/// How the fake user-service answers owner requests.
#[derive(Clone, Copy)]
#[repr(u8)]
pub enum OwnerMode {
    Create = 0,
    Fail = 1,
    RefusePassword = 2,
}

/// An owner the fake made: (tenant id, user id).
pub type Owner = (Uuid, Uuid);

#[derive(Clone, Default)]
struct FakeState {
    mode: Arc<AtomicU8>,
    owners: Arc<Mutex<Vec<(Uuid, Value)>>>,
    made: Arc<Mutex<Vec<Owner>>>,
    undone: Arc<Mutex<Vec<Owner>>>,
    jwks: Arc<Mutex<Value>>,
}

pub struct FakeUsers {
    pub server: TestServer,
    state: FakeState,
    pub key: SigningKey,
}

impl FakeUsers {
    pub async fn start() -> Self {
        let key = SigningKey::generate("test-key").expect("key");
        let state = FakeState::default();
        *state.jwks.lock().unwrap() =
            serde_json::to_value(SigningKey::jwks([&key]).unwrap()).unwrap();
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/.well-known/jwks.json",
                get(|State(s): State<FakeState>| async move {
                    axum::Json(s.jwks.lock().unwrap().clone())
                }),
            )
            .route("/internal/tenants/{id}/owner", post(create_owner))
            .route(
                "/internal/tenants/{id}/owner/{user_id}",
                delete(
                    |State(s): State<FakeState>, Path((tenant, user)): Path<(Uuid, Uuid)>| async move {
                        s.undone.lock().unwrap().push((tenant, user));
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .with_state(state.clone());
        Self {
            server: TestServer::router(router).await,
            state,
            key,
        }
    }

    pub fn set_mode(&self, mode: OwnerMode) {
        self.state.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Owner requests received: (tenant id, body).
    pub fn owners(&self) -> Vec<(Uuid, Value)> {
        self.state.owners.lock().unwrap().clone()
    }

    /// Owners made, and those undone since.
    pub fn made_and_undone(&self) -> (Vec<Owner>, Vec<Owner>) {
        (
            self.state.made.lock().unwrap().clone(),
            self.state.undone.lock().unwrap().clone(),
        )
    }

    /// An access token of `role` in the tenant.
    pub fn token(&self, tenant: Uuid, slug: &str, role: Role) -> String {
        self.key
            .sign(&Claims::new(Uuid::now_v7(), tenant, slug, role))
            .unwrap()
    }
}

async fn create_owner(
    State(s): State<FakeState>,
    Path(tenant): Path<Uuid>,
    headers: axum::http::HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> impl IntoResponse {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {INTERNAL_TOKEN}"))
    {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({}))).into_response();
    }
    match s.mode.load(Ordering::SeqCst) {
        1 => (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({}))).into_response(),
        2 => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"status": 400, "detail": "weak", "errors": [{"field": "password", "message": "is too common"}]})),
        )
            .into_response(),
        _ => {
            s.owners.lock().unwrap().push((tenant, body));
            let user = Uuid::now_v7();
            s.made.lock().unwrap().push((tenant, user));
            (StatusCode::CREATED, axum::Json(json!({"user_id": user}))).into_response()
        }
    }
}

pub struct TestApp {
    pub server: TestServer,
    pub db: TestDb,
    pub users: FakeUsers,
    pub prefix: String,
    pub exchange: String,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.stop();
        drop_databases_and_roles(&self.prefix);
    }
}

/// Settings of a test instance.
pub fn test_args(
    db: &TestDb,
    users: &FakeUsers,
    prefix: &str,
    exchange: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db.url.clone()),
        ("AMQP_URL", amqp_url()),
        ("EVENTS_EXCHANGE", exchange.to_owned()),
        ("TENANT_CLUSTERS", format!("main={}", postgres_url())),
        ("TENANT_DB_PREFIX", prefix.to_owned()),
        ("USER_SERVICE_URL", users.server.base_url.clone()),
        ("JWKS_URL", users.server.url("/.well-known/jwks.json")),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
    ]
}

/// A unique tenant name prefix like `t1a2b3c4d_`.
pub fn unique_prefix() -> String {
    format!("{}_", unique("t").replace('_', ""))
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[(&'static str, &str)]) -> TestApp {
    let db = TestDb::create().await;
    let users = FakeUsers::start().await;
    let prefix = unique_prefix();
    let exchange = unique("test.events");
    let config: Config = parse_config(NAME, &test_args(&db, &users, &prefix, &exchange), overrides);
    let server = TestServer::start(|listener, shutdown| {
        tenant_resolver::run_until(config, listener, shutdown)
    })
    .await;
    TestApp {
        server,
        db,
        users,
        prefix,
        exchange,
    }
}

impl TestApp {
    /// The service's state on the same registry, for calling the library directly.
    pub async fn state(&self) -> AppState {
        let config: Config = parse_config(
            NAME,
            &test_args(&self.db, &self.users, &self.prefix, &self.exchange),
            &[],
        );
        AppState::build(config).await.expect("state")
    }

    pub async fn signup(&self, body: &Value) -> reqwest::Response {
        self.server
            .client
            .post(self.server.url("/api/v1/tenants"))
            .json(body)
            .send()
            .await
            .expect("signup request")
    }

    /// Signs up `slug` and returns the created tenant's JSON.
    pub async fn create_tenant(&self, slug: &str) -> Value {
        let resp = self.signup(&signup_body(slug)).await;
        assert_eq!(
            resp.status(),
            201,
            "signup of {slug}: {}",
            resp.text().await.unwrap_or_default()
        );
        resp.json().await.expect("tenant JSON")
    }

    pub fn internal(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.server
            .client
            .request(method, self.server.url(path))
            .bearer_auth(INTERNAL_TOKEN)
    }

    /// Names of this test's databases (without the template) on the cluster.
    pub async fn databases(&self) -> Vec<String> {
        sqlx::query_scalar!(
            "select datname from pg_database
             where left(datname, length($1)) = $1 and datname <> $1 || 'template' order by 1",
            self.prefix,
        )
        .fetch_all(&self.db.pool)
        .await
        .unwrap()
    }

    /// Names of this test's roles (without the template owner).
    pub async fn roles(&self) -> Vec<String> {
        sqlx::query_scalar!(
            r#"select rolname as "rolname!" from pg_roles
               where left(rolname, length($1)) = $1 and rolname <> $1 || 'template_owner'
               order by 1"#,
            self.prefix,
        )
        .fetch_all(&self.db.pool)
        .await
        .unwrap()
    }

    pub async fn registry_count(&self) -> i64 {
        sqlx::query_scalar!(r#"select count(*) as "count!" from tenants"#)
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }
}

pub fn signup_body(slug: &str) -> Value {
    json!({
        "slug": slug,
        "name": format!("{slug} Inc."),
        "owner": {"email": format!("owner@{slug}.example"), "password": "correct horse battery", "name": "Olive Owner"}
    })
}
