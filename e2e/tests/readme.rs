//! The README's walkthrough, run as written against the fleet, so the README cannot
//! drift from the code.
//!
//! Every ```` ```sh ```` block under "## Walkthrough" runs, in order, in one bash with
//! `set -euo pipefail` (```` ```console ```` blocks are shown, not run). The gateway's
//! and tenant-resolver's documented ports are swapped for the test fleet's. Each `curl`
//! reports its status; a command followed by a comment line starting with a status
//! (`# 201 …`, `# HTTP/1.1 302 Found`) must answer exactly that, every other one a 2xx or
//! 3xx. Values are captured with `jq -e`, which fails on a missing field.

use std::process::Command;

use e2e::{Fleet, INTERNAL_TOKEN};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Status(u16),
    Success,
}

/// The walkthrough's runnable script and the status each `curl` in it must answer.
fn walkthrough(readme: &str) -> (String, Vec<Expect>) {
    let section = readme
        .split("\n## Walkthrough")
        .nth(1)
        .expect("README has a Walkthrough section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut script = String::new();
    let mut expects = Vec::new();
    let mut in_block = false;
    let mut lines: Vec<&str> = Vec::new();
    for line in section.lines() {
        if !in_block && line.trim() == "```sh" {
            in_block = true;
            lines.clear();
        } else if in_block && line.trim() == "```" {
            in_block = false;
            script.push_str(&lines.join("\n"));
            script.push('\n');
            expects.extend(expectations(&lines));
        } else if in_block {
            lines.push(line);
        }
    }
    (script, expects)
}

/// One expectation per `curl` of a block, in the order they run.
fn expectations(lines: &[&str]) -> Vec<Expect> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let mut command = String::from(lines[i]);
        while command.trim_end().ends_with('\\') && i + 1 < lines.len() {
            i += 1;
            command.push(' ');
            command.push_str(lines[i]);
        }
        let code = command.split('#').next().unwrap_or_default();
        let curls = code
            .split(|c: char| c.is_whitespace() || c == '(' || c == '|' || c == ';')
            .filter(|word| *word == "curl")
            .count();
        let status = lines
            .get(i + 1)
            .and_then(|next| next.trim().strip_prefix('#'))
            .map(|comment| comment.trim().trim_start_matches("HTTP/1.1").trim())
            .and_then(|comment| {
                comment
                    .get(..3)
                    .filter(|_| comment.len() == 3 || comment.as_bytes()[3] == b' ')
            })
            .and_then(|digits| digits.parse::<u16>().ok());
        for n in 0..curls {
            found.push(match status {
                Some(code) if n + 1 == curls => Expect::Status(code),
                _ => Expect::Success,
            });
        }
        i += 1;
    }
    found
}

#[test]
fn statuses_are_read_from_the_comment_after_a_command() {
    let block = [
        "curl -s localhost:8080/a \\",
        "  -d '{}'",
        "# 201 {\"id\":…}",
        "X=$(curl -s b | jq -er .x)",
        "curl -si c   # any host",
        "# HTTP/1.1 302 Found",
        "curl -s d",
        "# {\"no\":\"status\"}",
    ];
    assert_eq!(
        expectations(&block),
        vec![
            Expect::Status(201),
            Expect::Success,
            Expect::Status(302),
            Expect::Success
        ]
    );
}

#[tokio::test]
async fn the_readme_walkthrough_runs_against_the_fleet() {
    let readme = include_str!("../../README.md");
    let (script, expects) = walkthrough(readme);
    assert!(
        expects.len() >= 20,
        "the walkthrough has its commands: {}",
        expects.len()
    );
    let fleet = Fleet::start().await;
    let script = script
        .replace("localhost:8080", &format!("localhost:{}", fleet.port))
        .replace("localhost:8081", &fleet.tenant_resolver.addr.to_string())
        .replace("nexus-dev-internal-token", INTERNAL_TOKEN);
    let preamble = "set -euo pipefail\n\
        curl() { command curl --write-out '%{stderr}NEXUS_STATUS %{http_code}\\n' \"$@\"; }\n";
    let dir = std::env::temp_dir().join(common::testkit::unique("nexus-readme"));
    std::fs::create_dir_all(&dir).unwrap();
    let run = tokio::task::spawn_blocking(move || {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("{preamble}{script}"))
            .current_dir(&dir)
            .output()
            .expect("bash runs (and jq is installed)");
        std::fs::remove_dir_all(&dir).ok();
        out
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let statuses: Vec<u16> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("NEXUS_STATUS "))
        .map(|s| s.trim().parse().unwrap_or(0))
        .collect();
    let report = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(run.status.success(), "the walkthrough failed: {report}");
    assert_eq!(
        statuses.len(),
        expects.len(),
        "one status per curl: {report}"
    );
    for (n, (status, expect)) in statuses.iter().zip(&expects).enumerate() {
        let ok = match expect {
            Expect::Status(code) => status == code,
            Expect::Success => (200..400).contains(status),
        };
        assert!(
            ok,
            "curl #{} answered {status}, expected {expect:?}: {report}",
            n + 1
        );
    }
}
