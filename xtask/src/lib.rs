//! The developer tasks behind `cargo xtask`, as a library so its tests can check the
//! repository's docs and compose file against the services' real configuration.

pub mod bench;
pub mod bench_analytics;
pub mod bench_footprint;
pub mod bench_gateway;
pub mod bench_notifications;
pub mod bench_projects;
pub mod bench_redirect;
pub mod bench_soak;
pub mod bench_soak_load;
pub mod bench_soak_rss;
pub mod bench_stream;
pub mod bench_summary;
pub mod bench_webhooks;
pub mod deps;
pub mod docs;
pub mod fleet;
pub mod fuzz;
pub mod services;

use std::path::PathBuf;

/// The workspace root (the folder holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one folder below the root")
        .to_path_buf()
}

/// Where `cargo xtask` keeps run-time state: pid files, logs, the MongoDB stand-in's venv.
pub fn state_dir() -> PathBuf {
    workspace_root().join(".nexus")
}

/// A `cargo` command free of the variables `cargo run` set for xtask itself: some build
/// scripts (ring's) track `CARGO_MANIFEST_DIR`, so inheriting it would rebuild them on
/// every switch between `cargo xtask …` and plain `cargo …`.
pub fn cargo() -> std::process::Command {
    let mut cmd =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
        ) || name.starts_with("CARGO_PKG_")
        {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(workspace_root());
    cmd
}
