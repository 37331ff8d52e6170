//! API fuzzing: schemathesis (from PyPI; `cargo xtask test` installs it into
//! `.nexus/venv`) generates requests for every operation of the gateway's merged OpenAPI
//! document and sends them through the gateway with a real owner's token. No answer may
//! be a 5xx, and every documented answer must match its schema.

use std::path::PathBuf;
use std::process::Command;

use e2e::Fleet;
use serde_json::Value;

fn schemathesis() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.nexus/venv/bin/schemathesis");
    assert!(
        path.exists(),
        "{} is missing: `cargo xtask test` installs schemathesis from PyPI into .nexus/venv",
        path.display()
    );
    path
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let bin = schemathesis();
    let fleet = Fleet::start_with(&[
        ("RATE_LIMIT_USER_PER_MIN", "1000000"),
        ("RATE_LIMIT_IP_PER_MIN", "1000000"),
    ])
    .await;
    let http = fleet.client(&["acme"]);
    fleet.signup(&http, "acme", "olive@acme.test").await;
    let owner = fleet.login(&http, "acme", "olive@acme.test").await;
    let spec: Value = http
        .get(fleet.url("localhost", "/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(common::testkit::unique("nexus-fuzz"));
    std::fs::create_dir_all(&dir).unwrap();
    let spec_path = dir.join("openapi.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let report = dir.join("report.json");
    let port = fleet.port;
    let token = owner.token.clone();
    let run_dir = dir.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .arg("run")
            .arg(&spec_path)
            .args(["--url", &format!("http://127.0.0.1:{port}")])
            .args(["-H", &format!("Host: acme.localhost:{port}")])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["--checks", "not_a_server_error,response_schema_conformance"])
            .args(["--max-examples", "60", "--workers", "2", "--seed", "7"])
            .args(["--phases", "examples,fuzzing"])
            // Event streams answer for as long as they are held open: no request-and-answer
            // to fuzz (e2e/tests/stream.rs covers them).
            .args([
                "--exclude-path-regex",
                "^/(healthz|readyz|metrics|docs|api/v1/stream$|api/v1/stream/shared)",
            ])
            .arg("--report-json-path")
            .arg(&report)
            .args(["--report", "json"])
            .current_dir(&run_dir)
            .env("NO_COLOR", "1")
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
}
