//! Every error a client can provoke is an RFC 9457 problem, and says what is wrong.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use common::ApiError;
use common::FieldError;
use common::extract::{FieldErrors, Query, ValidJson, Validate};
use common::readiness::Readiness;
use common::server::Service;
use common::testkit::{TestServer, assert_json_endpoints_reject_malformed_bodies, expect_problem};
use serde::Deserialize;
use utoipa::OpenApi;

use crate::helpers::server_args;

#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct Signup {
    slug: String,
    owner: Owner,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct Owner {
    email: String,
}

impl Validate for Signup {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        errors.check(
            (3..=32).contains(&self.slug.len()),
            "slug",
            "must be 3 to 32 characters",
        );
        errors.check(
            self.owner.email.contains('@'),
            "owner.email",
            "must be an email address",
        );
        errors.finish()
    }
}

#[utoipa::path(post, path = "/signup", request_body = Signup, responses((status = 201)))]
async fn signup(ValidJson(_body): ValidJson<Signup>) -> StatusCode {
    StatusCode::CREATED
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Page {
    limit: u32,
}

async fn list(Query(_page): Query<Page>) -> StatusCode {
    StatusCode::OK
}

async fn failing() -> Result<(), ApiError> {
    Err(anyhow::anyhow!("relation \"secret_table\" does not exist").into())
}

async fn panicking() -> StatusCode {
    panic!("handler bug")
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "late"
}

#[derive(OpenApi)]
#[openapi(paths(signup))]
struct Doc;

async fn app() -> TestServer {
    let api = Router::new()
        .route("/signup", post(signup))
        .route("/list", get(list))
        .route("/failing", get(failing))
        .route("/panicking", get(panicking))
        .route("/slow", get(slow));
    let service = Service {
        name: "errors-test",
        readiness: Readiness::new(),
        openapi: Doc::openapi(),
    };
    TestServer::router(common::server::app(service, api, &server_args())).await
}

async fn post_json(app: &TestServer, body: &str) -> reqwest::Response {
    app.client
        .post(app.url("/signup"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let app = app().await;
    let body = expect_problem(post_json(&app, "{\"slug\": ").await, 400).await;
    assert!(
        body["detail"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );
}

#[tokio::test]
async fn trailing_garbage_after_json_is_a_400_problem() {
    let app = app().await;
    let resp = post_json(&app, r#"{"slug":"acme","owner":{"email":"a@b.c"}} x"#).await;
    expect_problem(resp, 400).await;
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_a_400_problem_naming_the_field() {
    let app = app().await;
    let body = expect_problem(
        post_json(&app, r#"{"slug":"acme","owner":{"email":42}}"#).await,
        400,
    )
    .await;
    assert_eq!(body["type"], "/docs/problems#validation", "{body}");
    assert_eq!(body["errors"][0]["field"], "owner.email", "{body}");
}

#[tokio::test]
async fn a_missing_field_is_a_400_problem() {
    let app = app().await;
    let body = expect_problem(post_json(&app, r#"{"slug":"acme"}"#).await, 400).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("owner"),
        "{body}"
    );
}

#[tokio::test]
async fn failed_validation_rules_are_all_listed() {
    let app = app().await;
    let resp = post_json(&app, r#"{"slug":"a","owner":{"email":"nope"}}"#).await;
    let body = expect_problem(resp, 400).await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["slug", "owner.email"]);
}

#[tokio::test]
async fn valid_json_reaches_the_handler() {
    let app = app().await;
    let resp = post_json(&app, r#"{"slug":"acme","owner":{"email":"a@b.c"}}"#).await;
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_a_415_problem() {
    let app = app().await;
    let resp = app
        .client
        .post(app.url("/signup"))
        .header("content-type", "text/plain")
        .body(r#"{"slug":"acme","owner":{"email":"a@b.c"}}"#)
        .send()
        .await
        .unwrap();
    expect_problem(resp, 415).await;
}

#[tokio::test]
async fn an_oversized_body_is_a_413_problem() {
    let app = app().await;
    let big = format!(
        r#"{{"slug":"{}","owner":{{"email":"a@b.c"}}}}"#,
        "a".repeat(10_000)
    );
    expect_problem(post_json(&app, &big).await, 413).await;
}

#[tokio::test]
async fn a_bad_query_parameter_is_a_400_problem() {
    let app = app().await;
    let resp = app
        .client
        .get(app.url("/list?limit=many"))
        .send()
        .await
        .unwrap();
    let body = expect_problem(resp, 400).await;
    assert!(body["detail"].as_str().unwrap().contains("limit"), "{body}");
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems() {
    let app = app().await;
    expect_problem(
        app.client.get(app.url("/nowhere")).send().await.unwrap(),
        404,
    )
    .await;
    let resp = app.client.delete(app.url("/signup")).send().await.unwrap();
    assert!(resp.headers().contains_key("allow"));
    expect_problem(resp, 405).await;
}

#[tokio::test]
async fn server_faults_say_nothing_internal() {
    let app = app().await;
    let resp = app.client.get(app.url("/failing")).send().await.unwrap();
    let body = expect_problem(resp, 500).await;
    assert!(!body.to_string().contains("secret_table"), "{body}");
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_problem_and_the_server_lives_on() {
    let app = app().await;
    expect_problem(
        app.client.get(app.url("/panicking")).send().await.unwrap(),
        500,
    )
    .await;
    let resp = post_json(&app, r#"{"slug":"acme","owner":{"email":"a@b.c"}}"#).await;
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn a_request_over_the_time_limit_is_a_503_problem() {
    let app = app().await;
    expect_problem(app.client.get(app.url("/slow")).send().await.unwrap(), 503).await;
}

#[tokio::test]
async fn a_plain_incoming_request_id_is_kept_and_quoted_in_problems() {
    let app = app().await;
    let resp = app
        .client
        .get(app.url("/nowhere"))
        .header("x-request-id", "client-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "client-abc.123");
    let body = expect_problem(resp, 404).await;
    assert_eq!(body["request_id"], "client-abc.123");
}

#[tokio::test]
async fn an_unsafe_incoming_request_id_is_replaced() {
    let app = app().await;
    let resp = app
        .client
        .get(app.url("/nowhere"))
        .header("x-request-id", "evil\"id with spaces")
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "replaced by a UUID, got {id}"
    );
    let body = expect_problem(resp, 404).await;
    assert_eq!(body["request_id"], id);
}

#[tokio::test]
async fn the_spec_driven_probe_covers_every_json_operation() {
    let app = app().await;
    let probed = assert_json_endpoints_reject_malformed_bodies(&app, &Default::default()).await;
    assert_eq!(probed, 1, "the one JSON operation of the document");
}
