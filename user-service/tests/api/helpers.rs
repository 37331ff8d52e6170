//! Starts user-service in-process on port 0 with its own database, signing-key folder
//! and exchange, in front of a small fake tenant-resolver that answers plan limits.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use common::testkit::{TestDb, TestServer, amqp_url, parse_config, unique};
use serde_json::{Value, json};
use user_service::{Config, NAME};
use uuid::Uuid;

pub const INTERNAL_TOKEN: &str = "test-internal-token";
pub const PASSWORD: &str = "correct horse battery";

/// tenant-resolver's lookup, with a user limit the test sets (negative: unlimited).
pub struct FakeResolver {
    pub server: TestServer,
    pub user_limit: Arc<AtomicI64>,
}

impl FakeResolver {
    pub async fn start() -> Self {
        let user_limit = Arc::new(AtomicI64::new(-1));
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/internal/tenants/by-slug/{slug}",
                get(|State(limit): State<Arc<AtomicI64>>, Path(slug): Path<String>| async move {
                    let users = limit.load(Ordering::SeqCst);
                    axum::Json(json!({
                        "id": Uuid::now_v7(), "slug": slug, "name": slug, "plan": "free", "status": "active",
                        "limits": {"users": if users < 0 { Value::Null } else { json!(users) }, "projects": null, "storage_bytes": null}
                    }))
                }),
            )
            .with_state(Arc::clone(&user_limit));
        Self {
            server: TestServer::router(router).await,
            user_limit,
        }
    }
}

/// A tenant as the gateway would present it.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
}

impl Tenant {
    pub fn new(slug: &str) -> Self {
        Self {
            id: Uuid::now_v7(),
            slug: slug.to_owned(),
        }
    }
}

pub struct TestApp {
    pub server: TestServer,
    pub db: TestDb,
    pub resolver: FakeResolver,
    pub keys_dir: PathBuf,
    pub exchange: String,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.keys_dir).ok();
    }
}

pub fn test_args(
    db: &TestDb,
    resolver: &FakeResolver,
    keys_dir: &std::path::Path,
    exchange: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db.url.clone()),
        ("AMQP_URL", amqp_url()),
        ("EVENTS_EXCHANGE", exchange.to_owned()),
        ("SIGNING_KEYS_DIR", keys_dir.display().to_string()),
        ("TENANT_RESOLVER_URL", resolver.server.base_url.clone()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("REFRESH_GRACE_SECS", "2".to_owned()),
    ]
}

pub fn keys_dir() -> PathBuf {
    std::env::temp_dir().join(unique("nexus_keys"))
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[(&'static str, &str)]) -> TestApp {
    let db = TestDb::create().await;
    let resolver = FakeResolver::start().await;
    let keys_dir = keys_dir();
    let exchange = unique("test.events");
    let mut args = test_args(&db, &resolver, &keys_dir, &exchange);
    for (k, v) in overrides {
        if !args.iter().any(|(name, _)| name == k) {
            args.push((k, (*v).to_owned()));
        }
    }
    let config: Config = parse_config(NAME, &args, overrides);
    let server =
        TestServer::start(|listener, shutdown| user_service::run_until(config, listener, shutdown))
            .await;
    TestApp {
        server,
        db,
        resolver,
        keys_dir,
        exchange,
    }
}

impl TestApp {
    /// A request on the tenant's host, as the gateway forwards it.
    pub fn on(
        &self,
        tenant: &Tenant,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.server
            .client
            .request(method, self.server.url(path))
            .header("x-tenant-id", tenant.id.to_string())
            .header("x-tenant-slug", &tenant.slug)
    }

    /// Makes `email` the owner of `tenant` (as tenant-resolver does at signup).
    pub async fn create_owner(&self, tenant: &Tenant, email: &str) -> reqwest::Response {
        self.server
            .client
            .post(self.server.url(&format!("/internal/tenants/{}/owner", tenant.id)))
            .bearer_auth(INTERNAL_TOKEN)
            .json(&json!({"tenant_slug": tenant.slug, "email": email, "password": PASSWORD, "name": "Olive Owner"}))
            .send()
            .await
            .unwrap()
    }

    pub async fn owner(&self, tenant: &Tenant, email: &str) -> Uuid {
        let resp = self.create_owner(tenant, email).await;
        assert_eq!(
            resp.status(),
            201,
            "{}",
            resp.text().await.unwrap_or_default()
        );
        let body: Value = resp.json().await.unwrap();
        body["user_id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn login_from(
        &self,
        tenant: &Tenant,
        email: &str,
        password: &str,
        ip: &str,
    ) -> reqwest::Response {
        self.on(tenant, reqwest::Method::POST, "/api/v1/auth/login")
            .header("x-forwarded-for", ip)
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// Logs in and returns the token pair.
    pub async fn tokens(&self, tenant: &Tenant, email: &str, password: &str) -> Value {
        let resp = self
            .login_from(tenant, email, password, "203.0.113.1")
            .await;
        assert_eq!(
            resp.status(),
            200,
            "{}",
            resp.text().await.unwrap_or_default()
        );
        resp.json().await.unwrap()
    }

    pub async fn access(&self, tenant: &Tenant, email: &str) -> String {
        self.tokens(tenant, email, PASSWORD).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn refresh(&self, tenant: &Tenant, token: &str) -> reqwest::Response {
        self.on(tenant, reqwest::Method::POST, "/api/v1/auth/refresh")
            .json(&json!({"refresh_token": token}))
            .send()
            .await
            .unwrap()
    }

    /// Invites `email` as `role` and has them accept as a new user; returns their access token.
    pub async fn member(&self, tenant: &Tenant, inviter: &str, email: &str, role: &str) -> String {
        let resp = self
            .on(tenant, reqwest::Method::POST, "/api/v1/invites")
            .bearer_auth(inviter)
            .json(&json!({"email": email, "role": role}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            201,
            "{}",
            resp.text().await.unwrap_or_default()
        );
        let invite: Value = resp.json().await.unwrap();
        let resp = self
            .on(tenant, reqwest::Method::POST, "/api/v1/auth/accept-invite")
            .json(&json!({"token": invite["token"], "name": "Member", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            200,
            "{}",
            resp.text().await.unwrap_or_default()
        );
        let pair: Value = resp.json().await.unwrap();
        pair["access_token"].as_str().unwrap().to_owned()
    }
}
