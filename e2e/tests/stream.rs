//! The live stream end to end (`GET /api/v1/stream` through the gateway): a write shows
//! on the streams of those who may read it within a second, and on nobody else's; a
//! client that comes back with `Last-Event-ID` gets exactly what it missed, in order,
//! from another instance; an id past the window gets `reset`; tickets open one stream
//! and lapse; a token in the URL is refused; removing a member ends their stream; the
//! gateway's per-user limit refuses one stream too many.

use std::time::{Duration, Instant};

use e2e::sse::{EventStream, Frame, Next};
use e2e::{Fleet, Session};
use reqwest::{Client, Method};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

/// `who`'s stream through the gateway, with their bearer token.
async fn stream(fleet: &Fleet, http: &Client, who: &Session, last: Option<i64>) -> EventStream {
    let mut request = http
        .get(fleet.url(&who.host, "/api/v1/stream"))
        .bearer_auth(&who.token);
    if let Some(last) = last {
        request = request.header("last-event-id", last.to_string());
    }
    EventStream::new(request.send().await.expect("opening a stream"))
}

async fn project(fleet: &Fleet, http: &Client, who: &Session, body: Value) -> String {
    fleet.create(http, who, "/api/v1/projects", body).await
}

async fn task(fleet: &Fleet, http: &Client, who: &Session, project: &str, title: &str) -> String {
    let path = format!("/api/v1/projects/{project}/tasks");
    fleet
        .create(http, who, &path, json!({"title": title}))
        .await
}

/// Frames until the `task.created` of `task`; those before it must be none of `unwanted`.
async fn created(events: &mut EventStream, task: &str) -> Vec<Frame> {
    let deadline = Instant::now() + WAIT;
    let mut frames = Vec::new();
    loop {
        let frame = events
            .next(deadline.saturating_duration_since(Instant::now()))
            .await;
        let done = frame.event == "task.created" && frame.json()["task_id"] == task;
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

#[tokio::test]
async fn members_see_live_what_they_may_read_resume_anywhere_and_are_cut_off_when_removed() {
    let fleet = Fleet::start_configured(&[("STREAMS_PER_USER", "3")], &[]).await;
    let http = fleet.client(&["acme", "globex"]);
    fleet.signup(&http, "acme", "olive@acme.test").await;
    fleet.signup(&http, "globex", "gina@globex.test").await;
    let owner = fleet.login(&http, "acme", "olive@acme.test").await;
    let gina = fleet.login(&http, "globex", "gina@globex.test").await;
    let bob = fleet.join(&http, &owner, "bob@acme.test", "member").await;
    let bob_id = id(&fleet
        .expect(&http, &bob, Method::GET, "/api/v1/users/me", None, 200)
        .await);
    let open = project(&fleet, &http, &owner, json!({"key": "WEB", "name": "Web"})).await;
    let closed = project(
        &fleet,
        &http,
        &owner,
        json!({"key": "SEC", "name": "Secret", "visibility": "members"}),
    )
    .await;
    let globex_project = project(
        &fleet,
        &http,
        &gina,
        json!({"key": "GLX", "name": "Globex"}),
    )
    .await;

    // Another tenant's token opens no stream on acme's host.
    let foreign = http
        .get(fleet.url(&owner.host, "/api/v1/stream"))
        .bearer_auth(&gina.token)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403, "globex's token on acme's host");
    let mut owners = stream(&fleet, &http, &owner, None).await;
    let mut bobs = stream(&fleet, &http, &bob, None).await;
    let mut ginas = stream(&fleet, &http, &gina, None).await;

    // A write reaches the owner's stream within a second of being made.
    let started = Instant::now();
    let first = task(&fleet, &http, &owner, &open, "First").await;
    let frames = created(&mut owners, &first).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "the event took {took:?}");
    assert!(owners.retry_seen, "a stream says `retry:` once, first");
    let frame = frames.last().unwrap();
    assert_eq!(frame.json()["project_id"], open.as_str());
    assert!(frame.seq() > 0);

    // Bob (a member, not in the closed project) gets the open project's events and none
    // of the closed one's; another tenant gets none of them.
    let secret = task(&fleet, &http, &owner, &closed, "Secret").await;
    let second = task(&fleet, &http, &owner, &open, "Second").await;
    let globex_task = task(&fleet, &http, &gina, &globex_project, "Theirs").await;
    let seen = created(&mut bobs, &first).await;
    let seen: Vec<Frame> = seen
        .into_iter()
        .chain(created(&mut bobs, &second).await)
        .collect();
    for frame in &seen {
        assert_ne!(frame.json()["project_id"], closed.as_str(), "{frame:?}");
        assert_ne!(frame.json()["task_id"], secret.as_str(), "{frame:?}");
    }
    let owner_frames = created(&mut owners, &second).await;
    assert!(
        owner_frames
            .iter()
            .any(|f| f.event == "task.created" && f.json()["task_id"] == secret.as_str()),
        "the owner reads the closed project: {owner_frames:#?}"
    );
    let theirs = created(&mut ginas, &globex_task).await;
    assert!(
        theirs
            .iter()
            .all(|f| f.json()["task_id"] == globex_task.as_str()),
        "globex sees only its own: {theirs:#?}"
    );

    // Bob is assigned the second task: his stream says so, and tells him of his new
    // notification (the owner's stream gets no notification of Bob's).
    fleet
        .expect(
            &http,
            &owner,
            Method::PATCH,
            &format!("/api/v1/tasks/{second}"),
            Some(json!({"assignee_id": bob_id})),
            200,
        )
        .await;
    let frames = bobs.until("task.updated", WAIT).await;
    let kinds: Vec<&str> = frames.iter().map(|f| f.event.as_str()).collect();
    assert_eq!(
        kinds,
        ["task.assigned", "notification.created", "task.updated"],
        "each event is followed by the notifications it gave"
    );
    let notice = frames[1].json();
    assert_eq!(notice["kind"], "task_assigned");
    assert_eq!(notice["task"]["id"], second.as_str());
    let last_seen = frames.last().unwrap().seq();
    drop(bobs);

    // While Bob is away: the task moves, a comment is added, and one more task in the
    // closed project. He comes back to another instance with Last-Event-ID and gets what
    // he missed and may read, exactly, in order.
    let board = fleet
        .expect(
            &http,
            &owner,
            Method::GET,
            &format!("/api/v1/projects/{open}/board"),
            None,
            200,
        )
        .await;
    let done_column = board["columns"][2]["id"].as_str().unwrap().to_owned();
    fleet
        .expect(
            &http,
            &owner,
            Method::POST,
            &format!("/api/v1/tasks/{second}/move"),
            Some(json!({"column_id": done_column, "position": 0})),
            200,
        )
        .await;
    task(&fleet, &http, &owner, &closed, "Secret two").await;
    fleet
        .expect(
            &http,
            &owner,
            Method::POST,
            &format!("/api/v1/tasks/{second}/comments"),
            Some(json!({"body": "done!"})),
            201,
        )
        .await;
    let marker = task(&fleet, &http, &owner, &open, "Marker").await;
    created(&mut owners, &marker).await;
    let other = fleet.another_notification_service().await;
    let resumed = http
        .get(format!("{}/api/v1/stream", other.base_url))
        .bearer_auth(&bob.token)
        .header("last-event-id", last_seen.to_string())
        .send()
        .await
        .expect("resuming on another instance");
    let mut resumed = EventStream::new(resumed);
    let missed = created(&mut resumed, &marker).await;
    let got: Vec<(&str, Value)> = missed
        .iter()
        .filter(|f| f.event != "notification.created")
        .map(|f| (f.event.as_str(), f.json()["task_id"].clone()))
        .collect();
    let second_v = Value::from(second.as_str());
    assert_eq!(
        got,
        [
            ("task.status_changed", second_v.clone()),
            ("task.moved", second_v.clone()),
            ("task.comment_added", second_v),
            ("task.created", Value::from(marker.as_str())),
        ],
        "{missed:#?}"
    );
    // And his two notifications of it (the move, the comment on his task).
    let notices: Vec<String> = missed
        .iter()
        .filter(|f| f.event == "notification.created")
        .map(|f| f.json()["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        notices,
        ["task_status_changed", "comment_added"],
        "{missed:#?}"
    );
    let seqs: Vec<i64> = missed.iter().map(Frame::seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    assert!(seqs[0] > last_seen);
    drop(resumed);

    // An id the window never held (or no longer holds) gets `reset`.
    let mut lost = stream(&fleet, &http, &bob, Some(last_seen + 1_000_000)).await;
    assert_eq!(lost.next(WAIT).await.event, "reset");
    drop(lost);

    // Tickets: single use, refused when lapsed; a token in the URL never opens a stream.
    let ticket = || async {
        fleet
            .expect(
                &http,
                &bob,
                Method::POST,
                "/api/v1/stream/tickets",
                None,
                201,
            )
            .await
    };
    let issued = ticket().await;
    assert_eq!(issued["expires_in"], 60);
    let by_ticket = |ticket: String| {
        http.get(fleet.url(&bob.host, &format!("/api/v1/stream?ticket={ticket}")))
            .send()
    };
    let t = issued["ticket"].as_str().unwrap().to_owned();
    let mut once = EventStream::new(by_ticket(t.clone()).await.unwrap());
    let again = by_ticket(t).await.unwrap();
    assert_eq!(again.status(), 401, "a ticket opens one stream");
    assert_eq!(again.headers()["content-type"], "application/problem+json");
    let on_globex = ticket().await["ticket"].as_str().unwrap().to_owned();
    let foreign = http
        .get(fleet.url(&gina.host, &format!("/api/v1/stream?ticket={on_globex}")))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 401, "a ticket is bound to its tenant");
    for query in [
        format!("ticket={}", bob.token),
        format!("access_token={}", bob.token),
    ] {
        let refused = http
            .get(fleet.url(&bob.host, &format!("/api/v1/stream?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "{query}");
        let problem: Value = refused.json().await.unwrap();
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("never accepted in the URL"),
            "{problem}"
        );
    }

    // The gateway holds Bob to three open streams (the ticket's is one).
    let mut second_stream = stream(&fleet, &http, &bob, None).await;
    let third_stream = stream(&fleet, &http, &bob, None).await;
    let fourth = http
        .get(fleet.url(&bob.host, "/api/v1/stream"))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(fourth.status(), 429, "one stream too many");
    drop(third_stream);
    // Once one ends, another may open (the gateway sees its end when it is dropped).
    let deadline = Instant::now() + WAIT;
    let mut third_stream = loop {
        let again = http
            .get(fleet.url(&bob.host, "/api/v1/stream"))
            .bearer_auth(&bob.token)
            .send()
            .await
            .unwrap();
        if again.status() == 200 {
            break EventStream::new(again);
        }
        assert!(
            Instant::now() < deadline,
            "a closed stream's place is freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Removing Bob from the tenant ends every stream of his within the revocation poll.
    fleet
        .expect(
            &http,
            &owner,
            Method::DELETE,
            &format!("/api/v1/users/{bob_id}"),
            None,
            204,
        )
        .await;
    let removed = Instant::now();
    for events in [&mut once, &mut second_stream, &mut third_stream] {
        loop {
            match events.next_within(WAIT).await {
                Next::Frame(_) => continue,
                Next::Ended => break,
                Next::Quiet => panic!("a removed member's stream stays open"),
            }
        }
    }
    let took = removed.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "removed member's streams ended after {took:?}"
    );
}

#[tokio::test]
async fn an_id_older_than_the_window_gets_reset_and_a_lapsed_ticket_opens_nothing() {
    let fleet = Fleet::start_configured(
        &[],
        &[
            ("STREAM_RETENTION_SECS", "1"),
            ("STREAM_TICKET_TTL_SECS", "1"),
        ],
    )
    .await;
    let http = fleet.client(&["acme"]);
    fleet.signup(&http, "acme", "olive@acme.test").await;
    let owner = fleet.login(&http, "acme", "olive@acme.test").await;
    let project = project(&fleet, &http, &owner, json!({"key": "WEB", "name": "Web"})).await;
    let mut events = stream(&fleet, &http, &owner, None).await;
    let first = task(&fleet, &http, &owner, &project, "First").await;
    let seen = created(&mut events, &first).await.last().unwrap().seq();

    // Past the window (a second, here), writes prune what is older; the old id is gone.
    let deadline = Instant::now() + WAIT;
    loop {
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let marker = task(&fleet, &http, &owner, &project, "Marker").await;
        created(&mut events, &marker).await;
        let mut late = stream(&fleet, &http, &owner, Some(seen)).await;
        let frame = late.next(WAIT).await;
        if frame.event == "reset" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "an id past the window still resumes: {frame:?}"
        );
    }

    // A ticket lapses after its time (one second here, sixty by default).
    let issued = fleet
        .expect(
            &http,
            &owner,
            Method::POST,
            "/api/v1/stream/tickets",
            None,
            201,
        )
        .await;
    assert_eq!(issued["expires_in"], 1);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let lapsed = http
        .get(fleet.url(
            &owner.host,
            &format!(
                "/api/v1/stream?ticket={}",
                issued["ticket"].as_str().unwrap()
            ),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(lapsed.status(), 401, "a lapsed ticket");
}
