//! notification-service end to end: changes made through the gateway reach the right
//! people's inboxes (and nobody else's), once per event, and the inbox can be read,
//! marked, snoozed and archived.

use std::time::Duration;

use common::events::{Broker, Envelope, keys};
use e2e::{Fleet, Session};
use reqwest::{Client, Method};
use serde_json::{Value, json};

struct World {
    fleet: Fleet,
    http: Client,
}

impl World {
    async fn expect(
        &self,
        who: &Session,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let mut request = self
            .http
            .request(method.clone(), self.fleet.url(&who.host, path))
            .bearer_auth(&who.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let resp = request.send().await.expect("request through the gateway");
        let got = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(got, status, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn me(&self, who: &Session) -> String {
        id(&self
            .expect(who, Method::GET, "/api/v1/users/me", None, 200)
            .await)
    }

    /// `who`'s inbox (all of it: unread and read, not archived).
    async fn inbox(&self, who: &Session) -> Vec<Value> {
        self.expect(
            who,
            Method::GET,
            "/api/v1/notifications?limit=100",
            None,
            200,
        )
        .await["items"]
            .as_array()
            .expect("items")
            .clone()
    }

    /// Waits (bounded) until `who`'s inbox holds `n` notifications, and returns it.
    async fn inbox_of(&self, who: &Session, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let items = self.inbox(who).await;
            if items.len() >= n {
                assert_eq!(
                    items.len(),
                    n,
                    "more notifications than expected: {items:#?}"
                );
                return items;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} notifications arrived: {items:#?}",
                items.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

fn kinds(items: &[Value]) -> Vec<&str> {
    items.iter().map(|n| n["kind"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn the_right_people_are_told_once_and_the_actor_never() {
    let fleet = Fleet::start().await;
    let http = fleet.client(&["acme"]);
    fleet.signup(&http, "acme", "olive@acme.test").await;
    let owner = fleet.login(&http, "acme", "olive@acme.test").await;
    let bob = fleet.join(&http, &owner, "bob@acme.test", "member").await;
    let carol = fleet.join(&http, &owner, "carol@acme.test", "member").await;
    let dan = fleet.join(&http, &owner, "dan@acme.test", "member").await;
    let eve = fleet.join(&http, &owner, "eve@acme.test", "member").await;
    let w = World { fleet, http };
    let (bob_id, carol_id, eve_id) = (w.me(&bob).await, w.me(&carol).await, w.me(&eve).await);

    let project = id(&w
        .expect(
            &owner,
            Method::POST,
            "/api/v1/projects",
            Some(json!({"key": "WEB", "name": "Web"})),
            201,
        )
        .await);
    let task = w
        .expect(
            &owner,
            Method::POST,
            &format!("/api/v1/projects/{project}/tasks"),
            Some(json!({"title": "Ship it"})),
            201,
        )
        .await;
    let task_id = id(&task);

    // Assigning the task to Bob tells Bob, once; the owner (the actor) nothing.
    w.expect(
        &owner,
        Method::PATCH,
        &format!("/api/v1/tasks/{task_id}"),
        Some(json!({"assignee_id": bob_id})),
        200,
    )
    .await;
    let bobs = w.inbox_of(&bob, 1).await;
    assert_eq!(kinds(&bobs), ["task_assigned"]);
    assert_eq!(bobs[0]["task"]["key"], "WEB-1");
    assert_eq!(bobs[0]["task"]["title"], "Ship it");
    assert_eq!(bobs[0]["project_id"], project);
    assert!(bobs[0]["read_at"].is_null());

    // The same event delivered twice still gives one notification.
    let tenant = w
        .expect(&owner, Method::GET, "/api/v1/tenant", None, 200)
        .await;
    let tenant_id: uuid::Uuid = tenant["id"].as_str().unwrap().parse().unwrap();
    let owner_id: uuid::Uuid = w.me(&owner).await.parse().unwrap();
    let broker = Broker::new(
        secrecy::SecretString::from(common::testkit::amqp_url()),
        &w.fleet.exchange,
        "e2e",
    );
    let to_carol = Envelope::new(
        keys::TASK_ASSIGNED,
        tenant_id,
        Some(owner_id),
        json!({"task_id": task_id, "project_id": project, "from": bob_id, "to": carol_id}),
    );
    let confirmed = broker
        .publish_confirmed(&[(to_carol.clone(), None), (to_carol, None)])
        .await
        .expect("publishing");
    assert_eq!(confirmed, [true, true]);

    // Dan watches; Carol is mentioned in Bob's comment.
    w.expect(
        &dan,
        Method::PUT,
        &format!("/api/v1/notifications/subscriptions/tasks/{task_id}"),
        None,
        204,
    )
    .await;
    w.expect(
        &bob,
        Method::POST,
        &format!("/api/v1/tasks/{task_id}/comments"),
        Some(json!({"body": format!("@{carol_id} can you look?")})),
        201,
    )
    .await;
    let carols = w.inbox_of(&carol, 2).await;
    assert_eq!(
        kinds(&carols),
        ["mentioned", "task_assigned"],
        "{carols:#?}"
    );
    assert_eq!(
        carols[0]["body"].as_str().unwrap(),
        format!("@{carol_id} can you look?")
    );
    assert_eq!(kinds(&w.inbox_of(&dan, 1).await), ["comment_added"]);
    assert_eq!(kinds(&w.inbox_of(&owner, 1).await), ["comment_added"]);
    assert_eq!(
        kinds(&w.inbox(&bob).await),
        ["task_assigned"],
        "the commenter is not told"
    );

    // Dan unwatches; Eve, a project member, watches and is then removed from the project.
    w.expect(
        &dan,
        Method::DELETE,
        &format!("/api/v1/notifications/subscriptions/tasks/{task_id}"),
        None,
        204,
    )
    .await;
    w.expect(
        &owner,
        Method::PUT,
        &format!("/api/v1/projects/{project}/members/{eve_id}"),
        Some(json!({"role": "member"})),
        201,
    )
    .await;
    w.expect(
        &eve,
        Method::PUT,
        &format!("/api/v1/notifications/subscriptions/tasks/{task_id}"),
        None,
        204,
    )
    .await;
    w.expect(
        &owner,
        Method::DELETE,
        &format!("/api/v1/projects/{project}/members/{eve_id}"),
        None,
        204,
    )
    .await;
    w.expect(
        &owner,
        Method::POST,
        &format!("/api/v1/tasks/{task_id}/comments"),
        Some(json!({"body": "Done soon"})),
        201,
    )
    .await;
    // Bob (assignee and commenter) is told; once he is, the same event has been handled
    // for everyone, in order after the watches and the removal.
    assert_eq!(
        kinds(&w.inbox_of(&bob, 2).await),
        ["comment_added", "task_assigned"]
    );
    assert_eq!(
        w.inbox(&dan).await.len(),
        1,
        "an unwatched task tells nothing more"
    );
    assert!(
        w.inbox(&eve).await.is_empty(),
        "a removed member is told nothing"
    );
    assert_eq!(
        w.inbox(&carol).await.len(),
        2,
        "someone only mentioned once does not follow the task"
    );

    // A move to another column tells the subscribers which column.
    let board = w
        .expect(
            &owner,
            Method::GET,
            &format!("/api/v1/projects/{project}/board"),
            None,
            200,
        )
        .await;
    let column = &board["columns"][1];
    let moved = json!({"column_id": column["id"], "position": 0});
    let path = format!("/api/v1/tasks/{task_id}/move");
    w.expect(&owner, Method::POST, &path, Some(moved), 200)
        .await;
    let bobs = w.inbox_of(&bob, 3).await;
    assert_eq!(bobs[0]["kind"], "task_status_changed");
    let title = format!("WEB-1 moved to {}", column["name"].as_str().unwrap());
    assert_eq!(bobs[0]["title"], title);
    assert_eq!(w.inbox(&dan).await.len(), 1);
    assert!(w.inbox(&eve).await.is_empty());
    assert_eq!(w.inbox(&carol).await.len(), 2);
}

#[tokio::test]
async fn the_inbox_counts_reads_snoozes_and_archives() {
    let fleet = Fleet::start().await;
    let http = fleet.client(&["acme"]);
    fleet.signup(&http, "acme", "olive@acme.test").await;
    let owner = fleet.login(&http, "acme", "olive@acme.test").await;
    let bob = fleet.join(&http, &owner, "bob@acme.test", "member").await;
    let w = World { fleet, http };
    let bob_id = w.me(&bob).await;
    let project = id(&w
        .expect(
            &owner,
            Method::POST,
            "/api/v1/projects",
            Some(json!({"key": "OPS", "name": "Ops"})),
            201,
        )
        .await);
    for title in ["one", "two", "three"] {
        w.expect(
            &owner,
            Method::POST,
            &format!("/api/v1/projects/{project}/tasks"),
            Some(json!({"title": title, "assignee_id": bob_id})),
            201,
        )
        .await;
    }
    let items = w.inbox_of(&bob, 3).await;
    let [newest, middle, oldest] = [id(&items[0]), id(&items[1]), id(&items[2])];
    assert_eq!(items[2]["task"]["title"], "one", "newest first");
    let count = |v: Value| v["unread_count"].as_i64().unwrap();
    let unread = || {
        w.expect(
            &bob,
            Method::GET,
            "/api/v1/notifications/unread-count",
            None,
            200,
        )
    };
    assert_eq!(count(unread().await), 3);

    let read = w
        .expect(
            &bob,
            Method::POST,
            &format!("/api/v1/notifications/{oldest}/read"),
            None,
            200,
        )
        .await;
    assert!(read["read_at"].is_string());
    assert_eq!(count(unread().await), 2);
    let only_unread = w
        .expect(
            &bob,
            Method::GET,
            "/api/v1/notifications?unread=true",
            None,
            200,
        )
        .await;
    assert_eq!(only_unread["items"].as_array().unwrap().len(), 2);
    assert_eq!(count(only_unread), 2);
    w.expect(
        &bob,
        Method::POST,
        &format!("/api/v1/notifications/{oldest}/unread"),
        None,
        200,
    )
    .await;
    assert_eq!(count(unread().await), 3);

    // Pages: two, then the rest.
    let page = w
        .expect(
            &bob,
            Method::GET,
            "/api/v1/notifications?limit=2",
            None,
            200,
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let rest = w
        .expect(
            &bob,
            Method::GET,
            &format!("/api/v1/notifications?limit=2&cursor={cursor}"),
            None,
            200,
        )
        .await;
    assert_eq!(id(&rest["items"][0]), oldest);
    assert!(rest["next_cursor"].is_null());

    // Snoozed: hidden (and not counted) until its time; a time in the past is refused.
    let until = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    w.expect(
        &bob,
        Method::POST,
        &format!("/api/v1/notifications/{middle}/snooze"),
        Some(json!({"until": until})),
        200,
    )
    .await;
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let refused = w
        .expect(
            &bob,
            Method::POST,
            &format!("/api/v1/notifications/{newest}/snooze"),
            Some(json!({"until": past})),
            400,
        )
        .await;
    assert_eq!(refused["errors"][0]["field"], "until");
    let shown: Vec<String> = w.inbox(&bob).await.iter().map(id).collect();
    assert_eq!(shown, [newest.clone(), oldest.clone()]);
    assert_eq!(count(unread().await), 2);

    // Archived: out of the inbox, in the archive.
    w.expect(
        &bob,
        Method::POST,
        &format!("/api/v1/notifications/{newest}/archive"),
        None,
        200,
    )
    .await;
    let shown: Vec<String> = w.inbox(&bob).await.iter().map(id).collect();
    assert_eq!(shown, std::slice::from_ref(&oldest));
    let archive = w
        .expect(
            &bob,
            Method::GET,
            "/api/v1/notifications?archived=true",
            None,
            200,
        )
        .await;
    assert_eq!(id(&archive["items"][0]), newest);

    // Read all: the unread count drops to nothing; someone else's notification is not there.
    let done = w
        .expect(
            &bob,
            Method::POST,
            "/api/v1/notifications/read-all",
            None,
            200,
        )
        .await;
    assert_eq!(done["updated"], 3);
    assert_eq!(count(unread().await), 0);
    w.expect(
        &owner,
        Method::POST,
        &format!("/api/v1/notifications/{oldest}/read"),
        None,
        404,
    )
    .await;
    let bad = w
        .expect(
            &bob,
            Method::GET,
            "/api/v1/notifications?kind=nope",
            None,
            400,
        )
        .await;
    assert!(bad["detail"].as_str().unwrap().contains("nope"));

    // Preferences: every kind has one; a kind kept out of the inbox is not stored.
    let prefs = "/api/v1/notifications/preferences";
    let shown = w.expect(&bob, Method::GET, prefs, None, 200).await;
    assert_eq!(shown["kinds"].as_array().unwrap().len(), 4);
    assert_eq!(
        shown["kinds"][0],
        json!({"kind": "task_assigned", "in_app": true, "email": "instant"})
    );
    let off = json!({"kinds": [{"kind": "task_assigned", "in_app": false}]});
    let changed = w.expect(&bob, Method::PUT, prefs, Some(off), 200).await;
    assert_eq!(
        changed["kinds"][0],
        json!({"kind": "task_assigned", "in_app": false, "email": "instant"})
    );
    for wrong in [
        json!({"kinds": [{"kind": "nope"}]}),
        json!({"kinds": [{"kind": "mentioned", "email": "weekly"}]}),
    ] {
        w.expect(&bob, Method::PUT, prefs, Some(wrong), 400).await;
    }
    assert_eq!(w.expect(&bob, Method::GET, prefs, None, 200).await, changed);
    let tasks = format!("/api/v1/projects/{project}/tasks");
    let four = json!({"title": "four", "assignee_id": bob_id});
    w.expect(&owner, Method::POST, &tasks, Some(four), 201)
        .await;
    let five = w
        .expect(
            &owner,
            Method::POST,
            &tasks,
            Some(json!({"title": "five"})),
            201,
        )
        .await;
    let five = id(&five);
    let watch = format!("/api/v1/notifications/subscriptions/tasks/{five}");
    w.expect(&bob, Method::PUT, &watch, None, 204).await;
    let comment = json!({"body": "after the change"});
    let comments = format!("/api/v1/tasks/{five}/comments");
    w.expect(&owner, Method::POST, &comments, Some(comment), 201)
        .await;
    // The comment came after the assignment, so once it is in, the assignment was handled.
    let items = w.inbox_of(&bob, 2).await;
    assert_eq!(kinds(&items), ["comment_added", "task_assigned"]);
    assert_eq!(items[0]["task"]["title"], "five");
    assert_eq!(items[1]["task"]["title"], "one", "nothing for task four");
}
