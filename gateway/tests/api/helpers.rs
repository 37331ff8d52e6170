//! Starts the gateway in-process on port 0 in front of one fake upstream that plays all
//! the services: tenant lookups (acme, globex active; frozen suspended), a JWKS, and an
//! echo of whatever reaches it (plus `/slow` and `/fail` paths).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use common::auth::{Claims, Role, SigningKey};
use common::testkit::{TestServer, parse_config};
use gateway::{Config, NAME};
use serde_json::{Value, json};
use uuid::Uuid;

pub const ACME: Uuid = Uuid::from_u128(0xA);
pub const GLOBEX: Uuid = Uuid::from_u128(0xB);

#[derive(Clone, Default)]
pub struct Counters {
    pub lookups: Arc<AtomicUsize>,
    pub echoes: Arc<AtomicUsize>,
}

pub struct Fleet {
    pub server: TestServer,
    pub key: SigningKey,
    pub counters: Counters,
}

async fn lookup(State(c): State<Counters>, Path(slug): Path<String>) -> impl IntoResponse {
    c.lookups.fetch_add(1, Ordering::SeqCst);
    let tenant = |id: Uuid| {
        axum::Json(
            json!({"id": id, "slug": slug, "name": slug, "plan": "free", "status": "active"}),
        )
    };
    match slug.as_str() {
        "acme" => tenant(ACME).into_response(),
        "globex" => tenant(GLOBEX).into_response(),
        "frozen" => (StatusCode::LOCKED, "suspended").into_response(),
        _ => (StatusCode::NOT_FOUND, "no").into_response(),
    }
}

async fn echo(State(c): State<Counters>, req: Request) -> impl IntoResponse {
    c.echoes.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    if path.ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if path.ends_with("/fail") {
        return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
    }
    if path.ends_with("/binary") {
        return (
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            vec![7u8; 4096],
        )
            .into_response();
    }
    if path.ends_with("/big") {
        // Larger than any one read: the body crosses many socket reads on the way.
        return big_body().into_response();
    }
    if path.ends_with("/stream") {
        // No length known up front: hyper sends it chunked.
        let pieces = (0..40).map(|i| Ok::<_, std::io::Error>(format!("piece {i};").into_bytes()));
        return axum::body::Body::from_stream(futures::stream::iter(pieces)).into_response();
    }
    let version = format!("{:?}", req.version());
    // Repeated headers come back as one value joined with ", ".
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .keys()
        .map(|k| {
            let values: Vec<&str> = req
                .headers()
                .get_all(k)
                .iter()
                .map(|v| v.to_str().unwrap_or_default())
                .collect();
            (k.as_str().to_owned(), json!(values.join(", ")))
        })
        .collect();
    let method = req.method().to_string();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    axum::Json(json!({"method": method, "version": version, "path": path, "query": query, "headers": headers, "body_len": body.len()})).into_response()
}

/// What the fake upstream answers on `…/big`: 300,000 bytes of a repeating pattern.
pub fn big_body() -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 251) as u8).collect()
}

impl Fleet {
    pub async fn start() -> Self {
        let key = SigningKey::generate("gw-test").unwrap();
        let jwks = serde_json::to_value(SigningKey::jwks([&key]).unwrap()).unwrap();
        let counters = Counters::default();
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/.well-known/jwks.json",
                get(move || async move { axum::Json(jwks.clone()) }),
            )
            .route("/internal/tenants/by-slug/{slug}", get(lookup))
            .route(
                "/internal/revocations",
                get(|| async { axum::Json(json!({"items": [], "cursor": 0})) }),
            )
            .route(
                "/openapi.json",
                get(|| async {
                    axum::Json(json!({
                        "openapi": "3.1.0",
                        "info": {"title": "fake", "version": "1"},
                        "paths": {
                            "/api/v1/projects": {"get": {"responses": {"200": {"description": "ok"}}}},
                            "/internal/secret": {"get": {"responses": {"200": {"description": "no"}}}},
                            "/healthz": {"get": {"responses": {"200": {"description": "theirs"}}}}
                        },
                        "components": {"schemas": {"Project": {"type": "object"}}}
                    }))
                }),
            )
            .fallback(echo)
            .with_state(counters.clone());
        Self {
            server: TestServer::router(router).await,
            key,
            counters,
        }
    }

    pub fn token(&self, tenant: Uuid, role: Role) -> String {
        self.key
            .sign(&Claims::new(Uuid::now_v7(), tenant, "t", role))
            .unwrap()
    }
}

pub fn test_args(fleet: &Fleet) -> Vec<(&'static str, String)> {
    let base = fleet.server.base_url.clone();
    vec![
        ("TENANT_RESOLVER_URL", base.clone()),
        ("USER_SERVICE_URL", base.clone()),
        ("PROJECT_SERVICE_URL", base.clone()),
        ("URL_SHORTENER_URL", base.clone()),
        ("ANALYTICS_SERVICE_URL", base.clone()),
        ("NOTIFICATION_SERVICE_URL", base),
        ("JWKS_URL", fleet.server.url("/.well-known/jwks.json")),
    ]
}

pub struct TestApp {
    pub server: TestServer,
    pub fleet: Fleet,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[(&'static str, &str)]) -> TestApp {
    let fleet = Fleet::start().await;
    let mut args = test_args(&fleet);
    for (k, v) in overrides {
        if !args.iter().any(|(name, _)| name == k) {
            args.push((k, (*v).to_owned()));
        }
    }
    let config: Config = parse_config(NAME, &args, overrides);
    let server =
        TestServer::start(|listener, shutdown| gateway::run_until(config, listener, shutdown))
            .await;
    TestApp { server, fleet }
}

impl TestApp {
    /// A request to `path` as if sent to `host` (e.g. `acme.localhost`).
    pub fn at(&self, host: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.server
            .client
            .request(method, self.server.url(path))
            .header("host", host)
    }
}
