//! The fast lane holds to hyper: generated raw requests (`common::testkit::wire`: methods,
//! target forms, versions, duplicated, folded, badly spaced or badly encoded fields,
//! Content-Length and Transfer-Encoding combinations, Host variants, bodies) go to one
//! gateway with its lane and one with `FAST_LANE=false` (hyper and the router only), and
//! each must get the same framing decision from both: the same status (or the same
//! silence), and a connection that is still usable (it answers a following request) on
//! both or on neither.
//!
//! `PROPTEST_CASES` sets the number of requests (3,000 by default, also in CI).

use std::time::Duration;

use common::auth::Role;
use common::testkit::{TestServer, parse_config, wire};
use proptest::prelude::*;

use crate::helpers::{ACME, Fleet, test_args};

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        20 => Just("/api/v1/projects"),
        8 => Just("/api/v1/projects/7?q=a%20b&x=1"),
        4 => Just("/healthz"),
        3 => Just("/s/abcdefgh"),
        2 => Just("/nope"),
        2 => Just("/api/v1/tasks/9/attachments"),
        1 => Just("/"),
        1 => Just("//api/v1/projects"),
        1 => Just("/api/v1/projects/%zz"),
        1 => Just("/api/v1/projects#frag"),
        1 => Just("/api/v1/proj\u{e9}cts"),
        1 => Just("/api/v1/projects/{x}"),
        1 => Just("/a\"b"),
        3 => Just("http://acme.localhost/api/v1/projects"),
        1 => Just("http://ACME.localhost:8080/api/v1/projects?x"),
        1 => Just("http://globex.localhost/api/v1/projects"),
        1 => Just("http://localhost/healthz"),
        1 => Just("https://acme.localhost/api/v1/projects"),
        1 => Just("http://u@acme.localhost/api/v1/projects"),
        1 => Just("ftp://acme.localhost/x"),
        1 => Just("http://acme.localhost"),
        1 => Just("*"),
        1 => Just("acme.localhost:80"),
        1 => Just("api/v1/projects"),
    ]
    .prop_map(str::to_owned)
}

fn host() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        30 => Just("acme.localhost"),
        4 => Just("acme.localhost:8080"),
        2 => Just("ACME.LOCALHOST"),
        2 => Just("globex.localhost"),
        4 => Just("localhost"),
        1 => Just("frozen.localhost"),
        1 => Just("nobody.localhost"),
        1 => Just("evil.example"),
        1 => Just("[::1]:8080"),
        1 => Just(""),
        1 => Just("acme.localhost/x"),
        1 => Just("a b"),
        1 => Just("acme.localhost:80:80"),
        1 => Just(" acme.localhost "),
    ]
}

/// A gateway in front of `fleet`, with its lane on or off, and limits no test reaches.
async fn gateway(fleet: &Fleet, lane: &str) -> TestServer {
    let overrides = [
        ("FAST_LANE", lane),
        ("RATE_LIMIT_USER_PER_MIN", "100000000"),
        ("RATE_LIMIT_IP_PER_MIN", "100000000"),
        ("BREAKER_FAILURES", "100000000"),
    ];
    let mut args = test_args(fleet);
    for (name, value) in overrides {
        args.push((name, value.to_owned()));
    }
    let config: gateway::Config = parse_config(gateway::NAME, &args, &[]);
    TestServer::start(|listener, shutdown| gateway::run_until(config, listener, shutdown)).await
}

/// How many requests the gateway's lane proxied itself (its `/metrics`).
async fn served_by_lane(gateway: &TestServer) -> u64 {
    let metrics = gateway
        .client
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .filter(|l| l.starts_with("gateway_requests_total{") && l.contains("lane=\"fast\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn the_lane_and_hyper_make_the_same_framing_decision_on_generated_requests() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (fleet, lane, hyper) = runtime.block_on(async {
        let fleet = Fleet::start().await;
        let lane = gateway(&fleet, "true").await;
        let hyper = gateway(&fleet, "false").await;
        (fleet, lane, hyper)
    });
    let token = fleet.token(ACME, Role::Owner);
    let cases = wire::cases(3000);
    let started = std::time::Instant::now();
    let statuses = wire::assert_same_decisions(
        lane.addr,
        hyper.addr,
        wire::requests(target().boxed(), host().boxed(), token),
        cases,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    let by_lane = runtime.block_on(served_by_lane(&lane));
    println!(
        "{cases} generated requests in {:.1} s; the lane proxied {by_lane} itself; answers: {:?}",
        started.elapsed().as_secs_f64(),
        statuses
    );
    // Without this the comparison could pass by handing everything to hyper.
    assert!(
        by_lane * 6 >= u64::from(cases),
        "the lane proxied only {by_lane} of {cases} requests itself"
    );
    drop((lane, hyper, fleet));
    runtime.shutdown_timeout(Duration::from_secs(1));
}
