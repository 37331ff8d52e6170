//! `cargo xtask fuzz`: runs the libFuzzer targets of `fuzz/` (outside the workspace) for
//! a while, installing cargo-fuzz from crates.io first if it is missing. Not part of CI:
//! a finding is a file under `fuzz/artifacts/` to turn into a unit test.

use std::path::Path;

use anyhow::Context;

use crate::{cargo, deps, workspace_root};

/// The targets, each with the function it drives.
pub const TARGETS: [(&str, &str); 1] = [("lane_head", "the gateway lane's request-head reader")];

/// Fuzzes `target` (all of them when `None`) for `minutes` each.
pub fn run(target: Option<&str>, minutes: u64) -> anyhow::Result<()> {
    ensure_cargo_fuzz()?;
    let root = workspace_root();
    let fuzz = root.join("fuzz");
    // The same dependency versions as the services (cargo adds libFuzzer's own).
    let lock = fuzz.join("Cargo.lock");
    if !lock.exists() {
        std::fs::copy(root.join("Cargo.lock"), &lock).context("copying Cargo.lock to fuzz/")?;
    }
    for (name, what) in TARGETS {
        if target.is_some_and(|t| t != name) {
            continue;
        }
        println!("• fuzzing {what} ({name}) for {minutes} min");
        let corpus = fuzz.join("corpus").join(name);
        std::fs::create_dir_all(&corpus)?;
        let mut command = cargo();
        command
            .current_dir(&root)
            .args(["fuzz", "run", name])
            .arg(&corpus)
            .arg(fuzz.join("seeds"))
            .arg("--")
            .arg(format!("-max_total_time={}", minutes.max(1) * 60));
        if !nightly(&root) {
            // cargo-fuzz passes nightly-only flags (`-Zsanitizer=address`); a stable
            // toolchain takes them when told it is building itself.
            command.env("RUSTC_BOOTSTRAP", "1");
        }
        deps::run(&mut command, &format!("fuzzing {name}"))?;
    }
    if let Some(target) = target
        && !TARGETS.iter().any(|(name, _)| *name == target)
    {
        anyhow::bail!("no fuzz target {target:?}");
    }
    Ok(())
}

fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let installed = cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        println!("• cargo-fuzz not found; installing it from crates.io");
        deps::run(
            cargo().args(["install", "cargo-fuzz", "--locked"]),
            "installing cargo-fuzz",
        )?;
    }
    Ok(())
}

fn nightly(root: &Path) -> bool {
    std::process::Command::new("rustc")
        .arg("--version")
        .current_dir(root)
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("nightly"))
}
