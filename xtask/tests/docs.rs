//! The README's config table and `.env.example` are generated from the services'
//! configs; this fails when someone changes a setting without regenerating them.

use xtask::docs::{env_example, readme_with_table};
use xtask::workspace_root;

#[test]
fn the_readme_config_table_matches_the_code() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    assert!(
        readme == readme_with_table(&readme).expect("README has the table markers"),
        "README.md's config table is out of date: run `cargo xtask docs`"
    );
}

#[test]
fn env_example_matches_the_code() {
    let file =
        std::fs::read_to_string(workspace_root().join(".env.example")).expect(".env.example");
    assert!(
        file == env_example(),
        ".env.example is out of date: run `cargo xtask docs`"
    );
}

#[test]
fn every_setting_is_documented_with_a_flag_and_help() {
    for service in &xtask::services::SERVICES {
        for setting in service.settings() {
            assert!(
                !setting.help.is_empty(),
                "{} {} has no doc comment",
                service.name,
                setting.env
            );
            assert!(
                setting.flag.starts_with("--"),
                "{} {} has no flag",
                service.name,
                setting.env
            );
        }
    }
}
