//! `/openapi.json` on the gateway: one document for the whole public API, merged from
//! the services' own documents (their `/internal` and operational paths left out),
//! cached for a minute. A service that does not answer is left out until it does.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value};
use utoipa::OpenApi;

use crate::AppState;
use crate::routes::Upstream;

const OPS: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/openapi.json"];

pub type DocsCache = moka::future::Cache<(), Arc<Value>>;

pub fn cache() -> DocsCache {
    moka::future::Cache::builder()
        .time_to_live(Duration::from_secs(60))
        .build()
}

pub async fn merged(State(state): State<Arc<AppState>>) -> Json<Value> {
    let doc = state.docs.get_with((), build(&state)).await;
    Json(doc.as_ref().clone())
}

async fn build(state: &AppState) -> Arc<Value> {
    let mut own = crate::ApiDoc::openapi();
    own.merge(common::server::ops_doc());
    let mut doc = serde_json::to_value(own).unwrap_or_default();
    doc["info"]["description"] =
        Value::from("The Nexus API: every public route, merged from the services' documents.");
    let fetches = Upstream::ALL.map(|upstream| async move {
        let response = state
            .upstreams
            .send(upstream, |client, base| {
                client
                    .get(format!("{base}/openapi.json"))
                    .timeout(Duration::from_secs(2))
            })
            .await
            .ok()?;
        response.json::<Value>().await.ok()
    });
    for service in futures::future::join_all(fetches)
        .await
        .into_iter()
        .flatten()
    {
        merge_into(&mut doc, &service);
    }
    Arc::new(doc)
}

/// Adds `service`'s public paths and its component schemas to `doc`.
pub fn merge_into(doc: &mut Value, service: &Value) {
    if let Some(paths) = service["paths"].as_object() {
        let target = object(&mut doc["paths"]);
        for (path, item) in paths {
            if !path.starts_with("/internal") && !OPS.contains(&path.as_str()) {
                target.insert(path.clone(), item.clone());
            }
        }
    }
    if let Some(schemas) = service["components"]["schemas"].as_object() {
        let target = object(&mut doc["components"]["schemas"]);
        for (name, schema) in schemas {
            target.entry(name.clone()).or_insert_with(|| schema.clone());
        }
    }
}

fn object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    value.as_object_mut().expect("just made an object")
}

/// The bundled Swagger UI (npm `swagger-ui-dist`, Apache-2.0, see `assets/swagger-ui/`):
/// served by the gateway itself, no CDN.
pub const SWAGGER_UI_VERSION: &str = "5.35.0";

const VIEWER_HTML: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Nexus API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"#;

const VIEWER_INIT: &str = r##"window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
};
"##;

/// The viewer's page and assets. The page may run only the gateway's own scripts.
pub fn viewer() -> axum::Router {
    use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
    use axum::routing::get;

    fn asset(content_type: &'static str, body: &'static [u8]) -> axum::routing::MethodRouter {
        get(move || async move {
            (
                [
                    (CONTENT_TYPE, content_type),
                    (CACHE_CONTROL, "public, max-age=86400"),
                ],
                body,
            )
        })
    }
    axum::Router::new()
        .route(
            "/docs",
            get(|| async {
                (
                    [
                        (CONTENT_TYPE, "text/html; charset=utf-8"),
                        (
                            CONTENT_SECURITY_POLICY,
                            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
                        ),
                    ],
                    VIEWER_HTML,
                )
            }),
        )
        .route(
            "/docs/swagger-ui-bundle.js",
            asset(
                "text/javascript; charset=utf-8",
                include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js"),
            ),
        )
        .route(
            "/docs/swagger-ui.css",
            asset(
                "text/css; charset=utf-8",
                include_bytes!("../assets/swagger-ui/swagger-ui.css"),
            ),
        )
        .route(
            "/docs/init.js",
            asset("text/javascript; charset=utf-8", VIEWER_INIT.as_bytes()),
        )
}
