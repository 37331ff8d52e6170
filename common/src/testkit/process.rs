//! A service as a process of its own, and its configuration as the command line sees it.

use std::time::Duration;

/// Starts the service binary at `bin` with `env` and `BIND_ADDR=127.0.0.1:0`, waits for
/// it to listen, sends SIGTERM and asserts it drains and exits with status 0.
pub fn assert_stops_cleanly_on_sigterm(bin: &str, env: &[(&str, String)]) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut child = Command::new(bin)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|err| panic!("starting {bin}: {err}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(_) => panic!("{bin} never logged {needle:?}"),
            }
        }
    };
    wait_for("\"listening\"");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(killed.success());
    wait_for("\"stopped\"");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for child") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{bin} did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{bin} exited with {status}");
}

/// Parses a service `Config` from settings given by their environment names
/// (`("AMQP_URL", …)`), with `overrides` replacing or adding some, bound to 127.0.0.1:0.
/// Going through clap keeps every other setting at its documented default.
pub fn parse_config<C: clap::Parser>(
    bin: &str,
    settings: &[(&str, String)],
    overrides: &[(&str, &str)],
) -> C {
    let mut argv = vec![bin.to_owned(), "--bind-addr=127.0.0.1:0".to_owned()];
    for (env, value) in settings {
        let value = overrides
            .iter()
            .find(|(k, _)| k == env)
            .map_or(value.as_str(), |(_, v)| *v);
        argv.push(format!(
            "--{}={value}",
            env.to_ascii_lowercase().replace('_', "-")
        ));
    }
    for (env, value) in overrides {
        if !settings.iter().any(|(k, _)| k == env) {
            argv.push(format!(
                "--{}={value}",
                env.to_ascii_lowercase().replace('_', "-")
            ));
        }
    }
    C::try_parse_from(argv).expect("test configuration parses")
}
