//! The users' journeys through the gateway, with every service real: two organisations
//! sign up, people join, plan and do work, share it, read their analytics, and never see
//! each other's data.

use std::time::Duration;

use e2e::{Fleet, Session};
use reqwest::{Client, Method, Response};
use serde_json::{Value, json};

struct Journey {
    fleet: Fleet,
    http: Client,
}

impl Journey {
    async fn send(
        &self,
        who: &Session,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        self.fleet.send(&self.http, who, method, path, body).await
    }

    /// Sends and expects `status`, returning the JSON body (or `null`).
    async fn expect(
        &self,
        who: &Session,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        self.fleet
            .expect(&self.http, who, method, path, body, status)
            .await
    }

    async fn signup(&self, slug: &str, email: &str) {
        self.fleet.signup(&self.http, slug, email).await;
    }

    async fn login(&self, slug: &str, email: &str) -> Session {
        self.fleet.login(&self.http, slug, email).await
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

/// Waits (bounded) until `check` holds for acme's analytics overview.
async fn overview_until(j: &Journey, who: &Session, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let overview = j
            .expect(who, Method::GET, "/api/v1/analytics/overview", None, 200)
            .await;
        if check(&overview["totals"]) {
            return overview;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the analytics pipeline did not catch up: {}",
            overview["totals"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn two_organisations_work_share_and_measure_without_ever_meeting() {
    let fleet = Fleet::start().await;
    let http = fleet.client(&["acme", "globex"]);
    let j = Journey { fleet, http };

    // 1. Two organisations sign up.
    j.signup("acme", "olive@acme.test").await;
    j.signup("globex", "hank@globex.test").await;

    // 2. Acme's owner logs in and invites a member, who joins and logs in.
    let owner = j.login("acme", "olive@acme.test").await;
    let member = j
        .fleet
        .join(&j.http, &owner, "bluto@acme.test", "member")
        .await;
    let me = j
        .expect(&member, Method::GET, "/api/v1/users/me", None, 200)
        .await;
    let member_id = id(&me);

    // 3. A project, a review column with a WIP limit of 1, tasks and a subtask.
    let project = j
        .expect(
            &owner,
            Method::POST,
            "/api/v1/projects",
            Some(json!({"key": "WEB", "name": "Website"})),
            201,
        )
        .await;
    let pid = id(&project);
    let review = j
        .expect(
            &owner,
            Method::POST,
            &format!("/api/v1/projects/{pid}/columns"),
            Some(json!({"name": "Review", "wip_limit": 1, "position": 2})),
            201,
        )
        .await;
    let mut tasks = Vec::new();
    for title in ["Launch page", "Pricing page", "Blog"] {
        let task = j
            .expect(
                &member,
                Method::POST,
                &format!("/api/v1/projects/{pid}/tasks"),
                Some(json!({"title": title})),
                201,
            )
            .await;
        tasks.push(id(&task));
    }
    let subtask = j
        .expect(
            &member,
            Method::POST,
            &format!("/api/v1/projects/{pid}/tasks"),
            Some(json!({"title": "Hero image", "parent_id": tasks[0]})),
            201,
        )
        .await;
    let board = j
        .expect(
            &owner,
            Method::GET,
            &format!("/api/v1/projects/{pid}/board"),
            None,
            200,
        )
        .await;
    let done = board["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["done"] == true)
        .map(id)
        .unwrap();

    // Into review (WIP 1): the first fits, the second is refused, then both end done.
    let move_to = |column: &str| Some(json!({"column_id": column, "position": 0}));
    let review_id = id(&review);
    j.expect(
        &member,
        Method::POST,
        &format!("/api/v1/tasks/{}/move", tasks[0]),
        move_to(&review_id),
        200,
    )
    .await;
    let full = j
        .send(
            &member,
            Method::POST,
            &format!("/api/v1/tasks/{}/move", tasks[1]),
            move_to(&review_id),
        )
        .await;
    assert_eq!(full.status(), 409, "the WIP limit holds");
    for task in [&tasks[0], &tasks[1]] {
        j.expect(
            &member,
            Method::POST,
            &format!("/api/v1/tasks/{task}/move"),
            move_to(&done),
            200,
        )
        .await;
    }

    // A comment mentioning the member, a work log, an attachment.
    let comment = j
        .expect(
            &owner,
            Method::POST,
            &format!("/api/v1/tasks/{}/comments", tasks[0]),
            Some(json!({"body": format!("Nice work @{member_id} <script>x</script>")})),
            201,
        )
        .await;
    assert_eq!(comment["mentions"], json!([member_id]));
    let worklog = j
        .expect(
            &member,
            Method::POST,
            &format!("/api/v1/tasks/{}/worklogs", tasks[0]),
            Some(json!({"minutes": 45, "note": "hero"})),
            201,
        )
        .await;
    let (content_type, body) = e2e::file_form("notes.txt", b"launch notes");
    let uploaded = j
        .http
        .post(j.fleet.url(
            &member.host,
            &format!("/api/v1/tasks/{}/attachments", tasks[0]),
        ))
        .bearer_auth(&member.token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201, "{}", uploaded.text().await.unwrap());
    let attachment: Value = uploaded.json().await.unwrap();

    // 4. A share link with a password and an expiry, opened without any token.
    let link = j
        .expect(
            &owner,
            Method::POST,
            "/api/v1/links",
            Some(
                json!({"target": {"type": "task", "id": tasks[0]}, "ttl": 3600,
                        "password": "open sesame"}),
            ),
            201,
        )
        .await;
    let code = link["code"].as_str().unwrap().to_owned();
    let short_url = link["short_url"].as_str().unwrap().to_owned();
    assert_eq!(short_url, j.fleet.url("localhost", &format!("/s/{code}")));
    let form = j.http.get(&short_url).send().await.unwrap();
    assert_eq!(form.status(), 200);
    assert!(
        form.text().await.unwrap().contains("<form"),
        "a password form"
    );
    let redirect = j
        .http
        .post(&short_url)
        .form(&[("password", "open sesame")])
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 303, "{}", redirect.text().await.unwrap());
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&j.fleet.url(
            "acme.localhost",
            &format!("/shared/tasks/{}?grant=", tasks[0])
        )),
        "{location}"
    );
    let page = j.http.get(&location).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Launch page") && html.contains("Hero image"),
        "{html}"
    );
    let main = html.split("</main>").next().unwrap_or_default();
    assert!(
        html.contains("&lt;script&gt;") && !main.contains("<script"),
        "{html}"
    );
    // The same grant on globex's host shows nothing.
    let elsewhere = location.replace("acme.localhost", "globex.localhost");
    assert_eq!(j.http.get(&elsewhere).send().await.unwrap().status(), 403);

    // 5. Analytics: exactly the journey's numbers for acme, none for globex.
    let overview = overview_until(&j, &owner, |t| {
        t["tasks_created"] == 4
            && t["tasks_completed"] == 2
            && t["link_clicks"] == 1
            && t["minutes_logged"] == 45
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = j
        .expect(&owner, Method::GET, "/api/v1/analytics/overview", None, 200)
        .await;
    assert_eq!(again["totals"], overview["totals"], "nothing counted twice");
    let hank = j.login("globex", "hank@globex.test").await;
    let theirs = j
        .expect(&hank, Method::GET, "/api/v1/analytics/overview", None, 200)
        .await;
    for metric in [
        "tasks_created",
        "tasks_completed",
        "link_clicks",
        "minutes_logged",
    ] {
        assert_eq!(
            theirs["totals"][metric], 0,
            "globex sees none of acme's {metric}"
        );
    }

    // 6. Every acme resource with globex's token: on acme's host 403, on globex's 404.
    let tid = &tasks[0];
    let paths = [
        format!("/api/v1/projects/{pid}"),
        format!("/api/v1/projects/{pid}/board"),
        format!("/api/v1/projects/{pid}/members"),
        format!("/api/v1/projects/{pid}/activity"),
        format!("/api/v1/projects/{pid}/time"),
        format!("/api/v1/tasks/{tid}"),
        format!("/api/v1/tasks/{}", id(&subtask)),
        format!("/api/v1/tasks/{tid}/comments"),
        format!("/api/v1/tasks/{tid}/worklogs"),
        format!("/api/v1/tasks/{tid}/attachments"),
        format!("/api/v1/tasks/{tid}/attachments/{}", id(&attachment)),
        format!("/api/v1/tasks/{tid}/time"),
        format!("/api/v1/links/{code}"),
        format!("/api/v1/users/{member_id}"),
        format!("/api/v1/analytics/links/{code}"),
    ];
    let on_acme = hank.on("acme");
    for path in &paths {
        let cross_host = j.send(&on_acme, Method::GET, path, None).await;
        assert_eq!(
            cross_host.status(),
            403,
            "globex's token on acme's host: {path}"
        );
        let own_host = j.send(&hank, Method::GET, path, None).await;
        let status = own_host.status().as_u16();
        let text = own_host.text().await.unwrap();
        assert!(
            status == 404
                || (path.contains("/analytics/links/")
                    && status == 200
                    && !text.contains("\"clicks\":1")),
            "acme's id on globex's host gave {status}: {path}: {text}"
        );
        assert!(
            !text.contains("Launch page") && !text.contains("bluto@acme.test"),
            "{path}: {text}"
        );
    }
    for (method, path) in [
        (Method::DELETE, format!("/api/v1/tasks/{tid}")),
        (
            Method::DELETE,
            format!("/api/v1/tasks/{tid}/worklogs/{}", id(&worklog)),
        ),
        (
            Method::DELETE,
            format!("/api/v1/tasks/{tid}/comments/{}", id(&comment)),
        ),
        (Method::DELETE, format!("/api/v1/links/{code}")),
        (Method::DELETE, format!("/api/v1/projects/{pid}")),
    ] {
        let resp = j.send(&hank, method.clone(), &path, None).await;
        assert_eq!(resp.status(), 404, "{method} {path} from globex");
    }
    // Acme's data is all still there.
    let task = j
        .expect(
            &owner,
            Method::GET,
            &format!("/api/v1/tasks/{tid}"),
            None,
            200,
        )
        .await;
    assert_eq!(task["title"], "Launch page");
    j.expect(
        &owner,
        Method::GET,
        &format!("/api/v1/links/{code}"),
        None,
        200,
    )
    .await;
}
