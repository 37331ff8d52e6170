//! The redirect lane holds to hyper: generated raw requests (`common::testkit::wire`),
//! most of them opens of real links in every shape a client can send, go to one
//! url-shortener with its lane and to a twin on the same database with
//! `REDIRECT_LANE=false` (hyper and the router only), and each must get the same framing
//! decision from both: the same status (or the same silence), and a connection that is
//! still usable afterwards on both or on neither.
//!
//! `PROPTEST_CASES` sets the number of requests (2,000 by default, also in CI).

use std::time::Duration;

use common::auth::Role;
use common::testkit::wire;
use proptest::prelude::*;
use serde_json::json;

use crate::helpers::spawn_app;
use crate::redirect::responses_counted;

/// Targets around a cached open link `open` and a password-protected one `protected`.
fn target(open: &str, protected: &str) -> BoxedStrategy<String> {
    let at = |path: String| Just(path);
    prop_oneof![
        30 => at(format!("/s/{open}")),
        4 => at(format!("/s/{open}?utm_source=x")),
        2 => at(format!("/s/{open}/")),
        1 => at(format!("/S/{open}")),
        1 => at(format!("/s/{open}%41")),
        1 => at(format!("/s//{open}")),
        1 => at(format!("/s/{open}#frag")),
        4 => at(format!("/s/{protected}")),
        3 => at("/s/nosuchcode".to_owned()),
        1 => at("/s/".to_owned()),
        2 => at("/healthz".to_owned()),
        2 => at("/api/v1/links".to_owned()),
        2 => at(format!("http://localhost/s/{open}")),
        1 => at(format!("http://other.example/s/{open}")),
        1 => at("*".to_owned()),
    ]
    .boxed()
}

fn host() -> BoxedStrategy<&'static str> {
    prop_oneof![
        30 => Just("localhost"),
        3 => Just("localhost:8085"),
        2 => Just("acme.localhost"),
        1 => Just("other.example"),
        1 => Just("[::1]"),
        1 => Just(""),
        1 => Just("a b"),
        1 => Just(" localhost "),
    ]
    .boxed()
}

#[test]
fn the_lane_and_hyper_make_the_same_framing_decision_on_generated_opens() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Password attempts are throttled per address and link; the generated forms would
    // reach the limits on one twin first.
    let unlimited = [
        ("PASSWORD_ATTEMPTS_PER_ADDRESS", "1000000000"),
        ("PASSWORD_ATTEMPTS_PER_LINK", "1000000000"),
    ];
    let (app, hyper, open, protected, token) = runtime.block_on(async {
        let app = crate::helpers::spawn_app_with(&unlimited).await;
        let mut off = unlimited.to_vec();
        off.push(("REDIRECT_LANE", "false"));
        let hyper = app.twin(&off).await;
        let user = app.tenant(Role::Member);
        let open = app.link(&user, json!({})).await["code"]
            .as_str()
            .unwrap()
            .to_owned();
        let protected = app.link(&user, json!({"password": "correct horse"})).await["code"]
            .as_str()
            .unwrap()
            .to_owned();
        // One open through each router caches the link in both.
        assert_eq!(app.open(&open, "10.9.0.1").await.status(), 302);
        let via_hyper = app
            .client
            .get(hyper.url(&format!("/s/{open}")))
            .send()
            .await
            .unwrap();
        assert_eq!(via_hyper.status(), 302);
        (app, hyper, open, protected, user.token)
    });
    let before = runtime.block_on(responses_counted(&app, "302", Some("fast")));
    let cases = wire::cases(2000);
    let started = std::time::Instant::now();
    let answers = wire::assert_same_decisions(
        app.server.addr,
        hyper.addr,
        wire::requests(target(&open, &protected), host(), token),
        cases,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    let by_lane = runtime.block_on(responses_counted(&app, "302", Some("fast"))) - before;
    println!(
        "{cases} generated requests in {:.1} s; the lane answered {by_lane} itself; answers: {answers:?}",
        started.elapsed().as_secs_f64(),
    );
    // Without this the comparison could pass by handing everything to hyper. About one
    // generated request in fourteen is a plain cached open (a bodiless HTTP/1.1 GET of
    // the open link with one good Host), which is all the lane answers itself.
    assert!(
        by_lane * 20 >= u64::from(cases),
        "the lane answered only {by_lane} of {cases} requests itself"
    );
    drop((hyper, app));
    runtime.shutdown_timeout(Duration::from_secs(1));
}

#[tokio::test]
async fn a_twin_without_the_lane_answers_every_open_through_the_router() {
    // The comparison above means something only if the twin's lane is really off.
    let app = spawn_app().await;
    let twin = app.twin(&[("REDIRECT_LANE", "false")]).await;
    let user = app.tenant(Role::Member);
    let code = app.link(&user, json!({})).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..3 {
        let resp = app
            .client
            .get(twin.url(&format!("/s/{code}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
    }
    let metrics = twin.metrics().await;
    let count = |lane: &str| {
        common::testkit::counter_total(
            &metrics,
            "redirect_responses_total",
            &[("status", "302"), ("lane", lane)],
        )
    };
    assert_eq!(count("fast"), 0, "{metrics}");
    assert_eq!(count("router"), 3, "{metrics}");
}
