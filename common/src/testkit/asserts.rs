//! Assertions every service's tests share: problem responses, the operational routes,
//! counters in `/metrics`, malformed bodies.

use super::TestServer;

/// The sum of the counter `name`'s samples in `/metrics` text whose labels include every
/// `(label, value)` of `labels` (0 when there is none).
pub fn counter_total(metrics: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    metrics
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(label, value)| line.contains(&format!("{label}=\"{value}\"")))
        })
        .map(|line| {
            let value = line.rsplit(' ').next().unwrap_or_default();
            value
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{name} is not a counter: {line}"))
        })
        .sum()
}

/// Asserts `resp` is an RFC 9457 problem with `status`, and returns its body.
pub async fn expect_problem(resp: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(
        resp.status().as_u16(),
        status,
        "unexpected status for {}",
        resp.url()
    );
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        content_type,
        crate::error::PROBLEM_JSON,
        "problem media type"
    );
    let body: serde_json::Value = resp.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status, "problem status field: {body}");
    for field in ["type", "title", "detail", "request_id"] {
        assert!(body[field].is_string(), "problem lacks `{field}`: {body}");
    }
    body
}

/// For every operation of the service's OpenAPI document that takes a JSON body, sends
/// a malformed body and asserts a 400 problem+json comes back (not text, not 5xx).
/// `headers` carry what gets a request past authentication (a bearer token, tenant
/// headers), so the body parser is what answers. Returns how many operations were probed.
pub async fn assert_json_endpoints_reject_malformed_bodies(
    server: &TestServer,
    headers: &reqwest::header::HeaderMap,
) -> usize {
    let spec = openapi(server).await;
    let mut probed = 0;
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            if op["requestBody"]["content"]["application/json"].is_null() {
                continue;
            }
            let path = fill_path_params(path);
            let method =
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("HTTP method");
            let resp = server
                .client
                .request(method.clone(), server.url(&path))
                .headers(headers.clone())
                .header("content-type", "application/json")
                .body("{,")
                .send()
                .await
                .expect("request");
            let status = resp.status().as_u16();
            assert_eq!(status, 400, "{method} {path}: malformed JSON got {status}");
            let body = expect_problem(resp, 400).await;
            assert!(
                body["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("not valid JSON"),
                "{method} {path}: {body}"
            );
            probed += 1;
        }
    }
    probed
}

fn fill_path_params(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                uuid::Uuid::now_v7().to_string()
            } else {
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Asserts the operational routes every service serves: `/healthz`, `/readyz` = 200
/// with each of `dependencies` "ok", `/metrics` with this service's request counters,
/// and an OpenAPI document titled with the service's name that lists the ops routes.
pub async fn assert_ops_routes(server: &TestServer, service: &str, dependencies: &[&str]) {
    let health = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200, "healthz");

    let (status, report) = readyz(server).await;
    assert_eq!(status, 200, "readyz: {report}");
    for dependency in dependencies {
        assert_eq!(report["checks"][dependency], "ok", "{dependency}: {report}");
    }
    assert_eq!(
        report["checks"].as_object().map(serde_json::Map::len),
        Some(dependencies.len()),
        "exactly these dependencies are checked: {report}"
    );

    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    let text = metrics.text().await.expect("metrics text");
    let label = format!("service=\"{service}\"");
    assert!(
        text.lines()
            .any(|l| l.starts_with("http_requests_total") && l.contains(&label)),
        "no request counter labelled {label} in:\n{text}"
    );

    let spec = openapi(server).await;
    assert_eq!(spec["info"]["title"], service);
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{spec}"
    );
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the document"
        );
    }
}

/// The service's `/openapi.json`.
async fn openapi(server: &TestServer) -> serde_json::Value {
    server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("openapi.json")
        .json()
        .await
        .expect("openapi.json is JSON")
}

/// `/readyz`'s status and report.
async fn readyz(server: &TestServer) -> (u16, serde_json::Value) {
    let ready = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    let status = ready.status().as_u16();
    (status, ready.json().await.expect("readyz JSON"))
}

/// Asserts `/readyz` answers 503 with `dependency` down.
pub async fn assert_not_ready_because(server: &TestServer, dependency: &str) {
    let (status, report) = readyz(server).await;
    assert_eq!(status, 503, "readyz: {report}");
    assert_eq!(report["checks"][dependency], "down", "{report}");
}
