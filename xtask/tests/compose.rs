//! No Docker engine runs on the development machines, so `docker-compose.yml` is checked
//! against the code instead: every service, port, variable and dependency it names must
//! be what the services really read and need.

use std::collections::BTreeSet;

use serde_norway::Value;
use xtask::deps::host_port;
use xtask::services::SERVICES;
use xtask::workspace_root;

const INFRA: [(&str, u16); 4] = [
    ("postgres", 5432),
    ("rabbitmq", 5672),
    ("mongodb", 27017),
    ("mailpit", 1025),
];

fn compose() -> Value {
    let text = std::fs::read_to_string(workspace_root().join("docker-compose.yml"))
        .expect("docker-compose.yml at the root");
    serde_norway::from_str(&text).expect("docker-compose.yml is YAML")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let service = &compose["services"][name];
    assert!(
        service.is_mapping(),
        "docker-compose.yml lacks the service {name}"
    );
    service
}

fn environment(service: &Value) -> Vec<(String, String)> {
    service["environment"]
        .as_mapping()
        .map(|env| {
            env.iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        other => panic!("unexpected value {other:?} for {k:?}"),
                    };
                    (k.as_str().expect("variable name").to_owned(), value)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn depends_on(service: &Value) -> BTreeSet<String> {
    service["depends_on"]
        .as_mapping()
        .map(|deps| {
            deps.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The port a compose service listens on inside the network.
fn port_of(name: &str) -> Option<u16> {
    INFRA
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
        .or_else(|| SERVICES.iter().find(|s| s.name == name).map(|s| s.port))
}

#[test]
fn every_service_and_dependency_is_in_the_compose_file_and_nothing_else() {
    let compose = compose();
    let declared: BTreeSet<&str> = compose["services"]
        .as_mapping()
        .expect("services")
        .keys()
        .filter_map(Value::as_str)
        .collect();
    let expected: BTreeSet<&str> = SERVICES
        .iter()
        .map(|s| s.name)
        .chain(INFRA.iter().map(|(n, _)| *n))
        .collect();
    assert_eq!(declared, expected);
}

#[test]
fn services_are_built_from_the_dockerfile_with_their_own_binary() {
    let compose = compose();
    let dockerfile =
        std::fs::read_to_string(workspace_root().join("Dockerfile")).expect("Dockerfile");
    for def in &SERVICES {
        let build = &service(&compose, def.name)["build"];
        assert_eq!(build["context"].as_str(), Some("."), "{}", def.name);
        assert_eq!(
            build["args"]["SERVICE"].as_str(),
            Some(def.name),
            "{}",
            def.name
        );
        assert!(
            dockerfile.contains(&format!("-p {}", def.name)),
            "the Dockerfile does not build {}",
            def.name
        );
    }
    assert!(
        dockerfile.contains("USER nexus"),
        "the runtime image runs as a non-root user"
    );
}

#[test]
fn the_image_builds_its_queries_from_the_committed_sqlx_folder() {
    let dockerfile =
        std::fs::read_to_string(workspace_root().join("Dockerfile")).expect("Dockerfile");
    let offline = dockerfile.find("ENV SQLX_OFFLINE=true");
    let build = dockerfile.find("RUN cargo build --release");
    assert!(
        matches!((offline, build), (Some(o), Some(b)) if o < b),
        "the release build must run with SQLX_OFFLINE=true (no database at build time)"
    );
    let ignored =
        std::fs::read_to_string(workspace_root().join(".dockerignore")).expect(".dockerignore");
    assert!(
        !ignored
            .lines()
            .any(|l| l.trim().trim_matches('/') == ".sqlx"),
        ".sqlx/ must reach the build context"
    );
    assert!(
        workspace_root().join(".sqlx").is_dir(),
        "the query descriptions (.sqlx/) are committed"
    );
}

#[test]
fn every_variable_set_for_a_service_is_one_it_reads() {
    let compose = compose();
    for def in &SERVICES {
        let known: BTreeSet<String> = def.settings().into_iter().map(|s| s.env).collect();
        for (var, _) in environment(service(&compose, def.name)) {
            assert!(
                known.contains(&var),
                "{} does not read {var} (it reads {known:?})",
                def.name
            );
        }
    }
}

#[test]
fn each_service_listens_on_its_contract_port() {
    let compose = compose();
    for def in &SERVICES {
        let bind = environment(service(&compose, def.name))
            .into_iter()
            .find(|(k, _)| k == "BIND_ADDR")
            .map(|(_, v)| v);
        let default = def
            .settings()
            .into_iter()
            .find(|s| s.env == "BIND_ADDR")
            .and_then(|s| s.default)
            .expect("BIND_ADDR has a default");
        let bind = bind.unwrap_or(default);
        assert!(
            bind.ends_with(&format!(":{}", def.port)),
            "{} binds {bind}, not port {}",
            def.name,
            def.port
        );
        assert!(
            bind.starts_with("0.0.0.0:"),
            "{} must listen on all interfaces in a container",
            def.name
        );
    }
    let ports: Vec<&str> = service(&compose, "gateway")["ports"]
        .as_sequence()
        .expect("the gateway publishes a port")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(ports, ["8080:8080"]);
    for def in SERVICES.iter().filter(|s| s.name != "gateway") {
        assert!(
            service(&compose, def.name)["ports"].is_null(),
            "only the gateway is published; {} is not",
            def.name
        );
    }
}

/// The URLs a service connects to: `*_URL` variables and the `name=url,…` list of
/// `TENANT_CLUSTERS` (not the public URLs users are sent to: `PUBLIC_URL`,
/// `TENANT_URL_TEMPLATE`).
fn connection_urls<'a>(var: &str, value: &'a str) -> Vec<&'a str> {
    if var.ends_with("_URL") && var != "PUBLIC_URL" {
        vec![value]
    } else if var == "TENANT_CLUSTERS" {
        value
            .split(',')
            .filter_map(|entry| entry.split_once('=').map(|(_, url)| url))
            .collect()
    } else {
        vec![]
    }
}

#[test]
fn urls_point_at_compose_services_on_their_ports() {
    let compose = compose();
    for def in &SERVICES {
        for (var, value) in environment(service(&compose, def.name)) {
            for url in connection_urls(&var, &value) {
                let (host, port) = host_port(url, 0).unwrap_or_else(|| panic!("{var}={value}"));
                assert_eq!(
                    port_of(&host),
                    Some(port),
                    "{}: {var}={value} names no compose service on that port",
                    def.name
                );
            }
        }
    }
}

/// Whether `to` can be reached from `from` along `depends_on`.
fn reaches(compose: &Value, from: &str, to: &str) -> bool {
    let mut stack = vec![from.to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(name) = stack.pop() {
        if name == to {
            return true;
        }
        if seen.insert(name.clone()) {
            stack.extend(depends_on(&compose["services"][name.as_str()]));
        }
    }
    false
}

#[test]
fn services_wait_for_healthy_dependencies_they_are_configured_with() {
    let compose = compose();
    for def in &SERVICES {
        let svc = service(&compose, def.name);
        let deps = depends_on(svc);
        for dep in &deps {
            assert_eq!(
                svc["depends_on"][dep.as_str()]["condition"].as_str(),
                Some("service_healthy"),
                "{} → {dep}",
                def.name
            );
            assert!(
                !reaches(&compose, dep, def.name),
                "depends_on has a cycle through {} and {dep}",
                def.name
            );
        }
        for (var, value) in environment(svc) {
            for (host, _) in connection_urls(&var, &value)
                .into_iter()
                .filter_map(|url| host_port(url, 0))
            {
                // Two services that call each other at request time cannot both wait for
                // the other; the one the other waits for starts first.
                let waits_for_us = reaches(&compose, &host, def.name);
                assert!(
                    deps.contains(&host) || waits_for_us,
                    "{} uses {host} ({var}) but does not depend on it",
                    def.name
                );
            }
        }
    }
    let gateway = depends_on(service(&compose, "gateway"));
    for def in SERVICES.iter().filter(|s| s.name != "gateway") {
        assert!(
            gateway.contains(def.name),
            "the gateway routes to {}; it should wait for it",
            def.name
        );
    }
}

#[test]
fn every_container_has_a_healthcheck_and_services_probe_readyz() {
    let compose = compose();
    for (name, _) in INFRA {
        assert!(
            service(&compose, name)["healthcheck"]["test"].is_sequence(),
            "{name}"
        );
    }
    for def in &SERVICES {
        let test: Vec<&str> = service(&compose, def.name)["healthcheck"]["test"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{} has no healthcheck", def.name))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let url = format!("http://127.0.0.1:{}/readyz", def.port);
        assert!(
            test.contains(&url.as_str()),
            "{} healthcheck {test:?} does not probe {url}",
            def.name
        );
    }
}

#[test]
fn stateless_services_can_be_scaled_and_state_lives_in_named_volumes() {
    let compose = compose();
    for def in &SERVICES {
        let service = service(&compose, def.name);
        assert!(
            service["container_name"].is_null(),
            "{} has a container_name, so `docker compose up --scale` cannot run two",
            def.name
        );
        if def.name != "gateway" {
            assert!(
                service["ports"].is_null(),
                "{} publishes a host port: only the gateway faces the outside, and a fixed \
                 host port would stop `--scale {}=2`",
                def.name,
                def.name
            );
        }
    }
    let named: BTreeSet<String> = compose["volumes"]
        .as_mapping()
        .expect("named volumes")
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    for (name, path) in [
        ("postgres", "/var/lib/postgresql/data"),
        ("rabbitmq", "/var/lib/rabbitmq"),
        ("mongodb", "/data/db"),
        ("user-service", "/var/lib/nexus/keys"),
        ("project-service", "/var/lib/nexus/attachments"),
    ] {
        let mounts: Vec<&str> = service(&compose, name)["volumes"]
            .as_sequence()
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(
            mounts.iter().any(|m| m
                .split_once(':')
                .is_some_and(|(volume, at)| named.contains(volume) && at.starts_with(path))),
            "{name} keeps {path} in a named volume: {mounts:?}"
        );
    }
}

#[test]
fn secrets_come_from_the_environment_or_a_dot_env_file() {
    let compose = compose();
    assert_eq!(
        environment(service(&compose, "postgres")),
        vec![(
            "POSTGRES_PASSWORD".to_owned(),
            "${POSTGRES_PASSWORD:-nexus}".to_owned()
        )]
    );
    for def in &SERVICES {
        for (var, value) in environment(service(&compose, def.name)) {
            let secret = def.settings().iter().any(|s| s.env == var && s.secret);
            if value.contains("postgres://") {
                assert!(
                    value.contains("${POSTGRES_PASSWORD:-"),
                    "{}'s {var} must take the database password from POSTGRES_PASSWORD",
                    def.name
                );
            } else if secret && !var.ends_with("_URL") {
                assert!(
                    value.starts_with(&format!("${{{var}:-")),
                    "{}'s {var} must be `${{{var}:-…}}` so `.env` or the shell can set it",
                    def.name
                );
            }
        }
    }
}
