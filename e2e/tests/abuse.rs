//! Abuse at the edge: bodies too large for their route, pages asked too large.

use e2e::Fleet;
use futures::StreamExt;
use serde_json::{Value, json};

#[tokio::test]
async fn bodies_past_their_routes_limit_are_413_and_pages_are_capped_at_200() {
    let fleet = Fleet::start_with(&[("RATE_LIMIT_USER_PER_MIN", "1000000")]).await;
    let http = fleet.client(&["acme"]);
    fleet.signup(&http, "acme", "olive@acme.test").await;
    let owner = fleet.login(&http, "acme", "olive@acme.test").await;
    let post = |path: &str| {
        http.post(fleet.url(&owner.host, path))
            .bearer_auth(&owner.token)
    };
    let project: Value = post("/api/v1/projects")
        .json(&json!({"key": "ABU", "name": "Abuse"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tasks = format!("/api/v1/projects/{}/tasks", project["id"].as_str().unwrap());

    let huge_json = post("/api/v1/projects")
        .json(&json!({"key": "BIG", "name": "x", "description": "x".repeat(2 * 1024 * 1024)}))
        .send()
        .await
        .unwrap();
    assert_eq!(huge_json.status(), 413, "a 2 MiB JSON body");

    let created: Vec<u16> = futures::stream::iter(0..205)
        .map(|n| {
            let request = post(&tasks).json(&json!({"title": format!("t{n}")}));
            async move { request.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(created.iter().all(|s| *s == 201));
    let page: Value = http
        .get(fleet.url(&owner.host, &format!("{tasks}?limit=100000")))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        200,
        "pages stop at 200"
    );
    assert!(page["next_cursor"].is_string(), "and say where to go on");

    let task = page["items"][0]["id"].as_str().unwrap().to_owned();
    let attachments = format!("/api/v1/tasks/{task}/attachments");
    let (content_type, body) = e2e::file_form("two-mib.bin", &vec![b'x'; 2 * 1024 * 1024]);
    let fits = post(&attachments)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        fits.status(),
        201,
        "an upload may pass BODY_LIMIT_BYTES: {}",
        fits.text().await.unwrap()
    );
    let (content_type, body) = e2e::file_form("too-big.bin", &vec![b'x'; 27 * 1024 * 1024]);
    let refused = post(&attachments)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await;
    if let Ok(refused) = refused {
        assert_eq!(refused.status(), 413, "past UPLOAD_LIMIT_BYTES");
    }
    let listed: Value = http
        .get(fleet.url(&owner.host, &attachments))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "only the upload that fits is kept"
    );
}
