//! notification-service end to end: changes made through the gateway reach the right
//! people's inboxes (and nobody else's), once per event, and the inbox can be read,
//! marked, snoozed and archived; mails reach the test SMTP server at once or as a
//! digest, with a one-click unsubscribe, and a mail that cannot be sent is given up on
//! and recorded.

use std::time::Duration;

use common::events::{Broker, Envelope, keys};
use common::testkit::{Mail, counter_total, mails_to, wait_for_mails};
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
        self.fleet
            .expect(&self.http, who, method, path, body, status)
            .await
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
    // Being added to the project tells Eve (`invited`), once.
    let eves = w.inbox_of(&eve, 1).await;
    assert_eq!(kinds(&eves), ["invited"]);
    assert_eq!(eves[0]["title"], "You were added to Web (WEB)");
    assert_eq!(eves[0]["project_id"], project);
    assert!(eves[0]["task"].is_null());
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
    assert_eq!(
        kinds(&w.inbox(&eve).await),
        ["invited"],
        "a removed member is told nothing more"
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
    assert_eq!(w.inbox(&eve).await.len(), 1);
    assert_eq!(w.inbox(&carol).await.len(), 2);
}

#[tokio::test]
async fn the_inbox_counts_reads_snoozes_and_archives() {
    let Acme {
        w,
        owner,
        bob,
        bob_id,
        project,
        ..
    } = acme(Fleet::start().await, "OPS").await;
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
    assert_eq!(shown["kinds"].as_array().unwrap().len(), 6, "the six kinds");
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

/// A fresh address, so that what the shared test SMTP server holds for it is this test's.
fn address(name: &str) -> String {
    format!("{}@acme.test", common::testkit::unique(name))
}

/// The URL in a mail's `List-Unsubscribe: <…>`.
fn unsubscribe_url(mail: &Mail) -> String {
    let header = mail.header("List-Unsubscribe").expect("List-Unsubscribe");
    header
        .trim()
        .strip_prefix('<')
        .and_then(|h| h.strip_suffix('>'))
        .unwrap_or_else(|| panic!("List-Unsubscribe is one <URL>: {header}"))
        .to_owned()
}

/// Acme with its owner, one member (Bob) and a project keyed `key`; both addresses are
/// new, so the mail the test SMTP server holds for them is this test's.
struct Acme {
    w: World,
    owner: Session,
    bob: Session,
    bob_email: String,
    bob_id: String,
    project: String,
}

async fn acme(fleet: Fleet, key: &str) -> Acme {
    let http = fleet.client(&["acme", "globex"]);
    let owner_email = address("olive");
    fleet.signup(&http, "acme", &owner_email).await;
    let owner = fleet.login(&http, "acme", &owner_email).await;
    let bob_email = address("bob");
    let bob = fleet.join(&http, &owner, &bob_email, "member").await;
    let w = World { fleet, http };
    let bob_id = w.me(&bob).await;
    let project = id(&w
        .expect(
            &owner,
            Method::POST,
            "/api/v1/projects",
            Some(json!({"key": key, "name": key})),
            201,
        )
        .await);
    Acme {
        w,
        owner,
        bob,
        bob_email,
        bob_id,
        project,
    }
}

async fn email_choice(w: &World, who: &Session, kind: &str) -> String {
    let prefs = w
        .expect(
            who,
            Method::GET,
            "/api/v1/notifications/preferences",
            None,
            200,
        )
        .await;
    prefs["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == kind)
        .expect("every kind has a choice")["email"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_instant_mail_carries_one_click_unsubscribe_that_acts_only_on_post() {
    let Acme {
        w,
        owner,
        bob,
        bob_email,
        bob_id,
        project,
    } = acme(Fleet::start().await, "WEB").await;
    let tasks = format!("/api/v1/projects/{project}/tasks");
    w.expect(
        &owner,
        Method::POST,
        &tasks,
        Some(json!({"title": "Ship it", "assignee_id": bob_id})),
        201,
    )
    .await;
    let mails = wait_for_mails(&bob_email, 1, Duration::from_secs(30)).await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let mail = &mails[0];
    assert_eq!(mail.subject, "WEB-1 was assigned to you");
    assert!(mail.text.contains("WEB-1 · Ship it"), "{}", mail.text);
    assert!(mail.html.contains("Ship it"));
    assert_eq!(
        mail.header("List-Unsubscribe-Post"),
        Some("List-Unsubscribe=One-Click")
    );
    let url = unsubscribe_url(mail);
    assert!(
        url.starts_with(&format!(
            "http://localhost:{}/api/v1/notifications/unsubscribe?token=",
            w.fleet.port
        )),
        "{url}"
    );

    // Opening the link shows a page with a button; it changes nothing.
    let page = w.http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains(r#"method="post""#));
    assert_eq!(email_choice(&w, &bob, "task_assigned").await, "instant");

    // Another organisation's host, or a changed token, is no link.
    let token = url.split_once("token=").unwrap().1;
    let elsewhere = w.fleet.url(
        "globex.localhost",
        &format!("/api/v1/notifications/unsubscribe?token={token}"),
    );
    w.fleet.signup(&w.http, "globex", &address("hank")).await;
    let refused = w.http.post(&elsewhere).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    let forged = format!("{}x", &url);
    assert_eq!(w.http.post(&forged).send().await.unwrap().status(), 400);
    assert_eq!(email_choice(&w, &bob, "task_assigned").await, "instant");

    // One click (RFC 8058): that kind's email is off; the inbox and other kinds stay.
    let one_click = || {
        w.http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
    };
    assert_eq!(one_click().await.unwrap().status(), 200);
    assert_eq!(one_click().await.unwrap().status(), 200, "twice is fine");
    let prefs = w
        .expect(
            &bob,
            Method::GET,
            "/api/v1/notifications/preferences",
            None,
            200,
        )
        .await;
    let assigned = &prefs["kinds"][0];
    assert_eq!(
        assigned,
        &json!({"kind": "task_assigned", "in_app": true, "email": "off"})
    );
    assert_eq!(email_choice(&w, &bob, "mentioned").await, "instant");

    // The next assignment reaches the inbox and no mailbox.
    w.expect(
        &owner,
        Method::POST,
        &tasks,
        Some(json!({"title": "Ship more", "assignee_id": bob_id})),
        201,
    )
    .await;
    w.inbox_of(&bob, 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(mails_to(&bob_email).len(), 1);
}

#[tokio::test]
async fn a_digest_combines_the_notices_of_its_window_into_one_mail() {
    let fleet = Fleet::start_configured(&[], &[("DIGEST_INTERVAL_SECS", "10")]).await;
    let Acme {
        w,
        owner,
        bob,
        bob_email,
        bob_id,
        project,
    } = acme(fleet, "WEB").await;
    let task = id(&w
        .expect(
            &owner,
            Method::POST,
            &format!("/api/v1/projects/{project}/tasks"),
            Some(json!({"title": "Ship it", "assignee_id": bob_id})),
            201,
        )
        .await);
    // Ten comments Bob follows as the assignee: `comment_added` goes in a digest.
    for n in 1..=10 {
        w.expect(
            &owner,
            Method::POST,
            &format!("/api/v1/tasks/{task}/comments"),
            Some(json!({"body": format!("Note {n}")})),
            201,
        )
        .await;
    }
    w.inbox_of(&bob, 11).await;
    let mails = wait_for_mails(&bob_email, 2, Duration::from_secs(45)).await;
    assert_eq!(mails.len(), 2, "the assignment at once, then one digest");
    let digest = mails
        .iter()
        .find(|m| m.subject != "WEB-1 was assigned to you")
        .expect("the digest");
    assert_eq!(digest.subject, "10 updates in Nexus");
    for n in 1..=10 {
        assert!(
            digest.text.contains(&format!("Note {n}\n")),
            "{}",
            digest.text
        );
    }
    assert_eq!(digest.text.matches("New comment on WEB-1").count(), 10);
    assert!(digest.header("List-Unsubscribe").is_some());
    assert_eq!(
        digest.header("List-Unsubscribe-Post"),
        Some("List-Unsubscribe=One-Click")
    );

    // The digest's link turns off the digest's kinds only.
    let resp = w.http.post(unsubscribe_url(digest)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(email_choice(&w, &bob, "comment_added").await, "off");
    assert_eq!(email_choice(&w, &bob, "task_assigned").await, "instant");
}

#[tokio::test]
async fn a_mail_that_keeps_failing_is_given_up_on_and_recorded_without_holding_the_inbox() {
    // Nothing listens on port 1: every try fails.
    let fleet = Fleet::start_configured(
        &[],
        &[
            ("SMTP_URL", "smtp://127.0.0.1:1"),
            ("MAIL_MAX_ATTEMPTS", "3"),
            ("MAIL_RETRY_BASE_MS", "100"),
        ],
    )
    .await;
    let Acme {
        w,
        owner,
        bob,
        bob_id,
        project,
        ..
    } = acme(fleet, "WEB").await;
    w.expect(
        &owner,
        Method::POST,
        &format!("/api/v1/projects/{project}/tasks"),
        Some(json!({"title": "Ship it", "assignee_id": bob_id})),
        201,
    )
    .await;
    let told = w.inbox_of(&bob, 1).await;
    let notification: uuid::Uuid = id(&told[0]).parse().unwrap();
    let metrics = w.fleet.notifications.url("/metrics");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
        if counter_total(&text, "notification_emails_total", &[("outcome", "failed")]) >= 1 {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "never given up on");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        counter_total(
            &text,
            "notification_emails_total",
            &[("outcome", "retried")]
        ),
        2,
        "tried three times"
    );
    assert_eq!(
        counter_total(&text, "notification_emails_total", &[("outcome", "sent")]),
        0
    );
    // Kept in the tenant's database, with why.
    let mut db =
        <sqlx::PgConnection as sqlx::Connection>::connect(&w.fleet.tenant_database_url("acme"))
            .await
            .expect("acme's database");
    let delivery = notification_service::db::mails::of_notification(
        &mut db,
        bob_id.parse().unwrap(),
        notification,
    )
    .await
    .unwrap()
    .expect("the mail's row");
    assert!(!delivery.digest);
    assert_eq!(delivery.attempts, 3);
    assert!(delivery.failed_at.is_some() && delivery.sent_at.is_none());
    let error = delivery.last_error;
    assert!(error.unwrap_or_default().starts_with("SMTP:"));
}

#[tokio::test]
async fn a_member_removed_from_the_organisation_is_told_nothing_more() {
    let Acme {
        w,
        owner,
        bob,
        bob_id,
        project,
        ..
    } = acme(Fleet::start().await, "OPS").await;
    let carol = w
        .fleet
        .join(&w.http, &owner, &address("carol"), "member")
        .await;
    let task = id(&w
        .expect(
            &owner,
            Method::POST,
            &format!("/api/v1/projects/{project}/tasks"),
            Some(json!({"title": "Rotate keys", "assignee_id": bob_id})),
            201,
        )
        .await);
    w.inbox_of(&bob, 1).await;
    w.expect(
        &carol,
        Method::PUT,
        &format!("/api/v1/notifications/subscriptions/tasks/{task}"),
        None,
        204,
    )
    .await;
    w.expect(
        &owner,
        Method::DELETE,
        &format!("/api/v1/users/{bob_id}"),
        None,
        204,
    )
    .await;
    w.expect(
        &owner,
        Method::POST,
        &format!("/api/v1/tasks/{task}/comments"),
        Some(json!({"body": "Still on it?"})),
        201,
    )
    .await;
    // Carol, a watcher, is told: the comment's event has been handled for everyone.
    assert_eq!(kinds(&w.inbox_of(&carol, 1).await), ["comment_added"]);
    let mut db =
        <sqlx::PgConnection as sqlx::Connection>::connect(&w.fleet.tenant_database_url("acme"))
            .await
            .expect("acme's database");
    let filter = notification_service::db::notifications::Filter {
        unread_only: false,
        kind: None,
        archived: false,
        before: None,
        limit: 100,
    };
    let bobs =
        notification_service::db::notifications::list(&mut db, bob_id.parse().unwrap(), &filter)
            .await
            .unwrap();
    let kinds_of_bob: Vec<&str> = bobs.iter().map(|n| n.kind.as_str()).collect();
    assert_eq!(
        kinds_of_bob,
        ["task_assigned"],
        "nothing after the removal, though still the task's assignee"
    );
}
