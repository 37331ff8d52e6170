//! No runtime SQL: every query of the workspace is a `sqlx::query!`-family macro, checked
//! at compile time against its crate's schema (`cargo sql`; README, "Choices"). This
//! scans every Rust file for the functions that take SQL as a run-time string and fails
//! naming each file and line, but for the documented exceptions in [`ALLOWED`]; and it
//! keeps the DDL on computed names (`common::db::ddl`) to its one place per crate,
//! [`DDL_PLACES`].

use std::fs;
use std::path::{Path, PathBuf};

/// Calls that run SQL given as a run-time string (the macros end in `!` and do not
/// match), and `QueryBuilder`, which builds one.
const RUNTIME_CALLS: &[&str] = &[
    "sqlx::query(",
    "sqlx::query_as(",
    "sqlx::query_scalar(",
    "sqlx::query::<",
    "query_as::<",
    "query_scalar::<",
    "sqlx::query_with(",
    "query_as_with(",
    "query_scalar_with(",
    "sqlx::raw_sql(",
    "QueryBuilder",
];

/// The files that may make such calls, each with the reason no macro can do its work.
/// A truly dynamic list query gets one `sqlx::QueryBuilder` function, listed here.
const ALLOWED: &[(&str, &str)] = &[
    (
        "common/src/db/ddl.rs",
        "the one DDL helper: statements on identifiers computed at run time (a tenant's or \
         a test's database and role), which PostgreSQL cannot bind; fixed templates filled \
         with checked, quoted identifiers",
    ),
    (
        "project-service/src/db/tasks.rs",
        "`db::tasks::list`, the task list's optional filters (column, assignee, label, \
         priority, parent, due dates, text, cursor) as clauses of one `QueryBuilder`, \
         every value bound",
    ),
    (
        "common/tests/api/db.rs",
        "tests the constraint mapping on a table the test creates itself, which no \
         compile-time schema has",
    ),
    (
        "xtask/tests/sql.rs",
        "this scanner: the patterns it looks for",
    ),
];

/// Calls that run a DDL template on computed identifiers.
const DDL_CALLS: &[&str] = &["ddl::execute("];

/// The files that write such templates, one place per crate, and what for.
const DDL_PLACES: &[(&str, &str)] = &[
    ("common/src/db/ddl.rs", "the helper itself"),
    (
        "common/src/testkit/db.rs",
        "test and benchmark databases of computed names: create, cut off, drop",
    ),
    (
        "tenant-resolver/src/db/catalog.rs",
        "a tenant's database and role, and the template's",
    ),
    (
        "tenant-resolver/tests/api/migrate.rs",
        "takes a tenant role's login away, to play a tenant whose migration fails",
    ),
    (
        "xtask/tests/sql.rs",
        "this scanner: the pattern it looks for",
    ),
];

/// Folders not scanned: build output, tool state, and the schema checker itself (it
/// creates and drops its throw-away databases).
const SKIPPED: &[&str] = &["target", "xtask/sql"];

/// Each `(line, call)` of `source` that makes one of `calls`.
fn find(source: &str, calls: &'static [&'static str]) -> Vec<(usize, &'static str)> {
    source
        .lines()
        .enumerate()
        .flat_map(|(index, line)| {
            calls
                .iter()
                .filter(move |call| line.contains(*call))
                .map(move |call| (index + 1, *call))
        })
        .collect()
}

/// Each `(line, call)` of `source` that runs SQL from a run-time string.
fn runtime_queries(source: &str) -> Vec<(usize, &'static str)> {
    find(source, RUNTIME_CALLS)
}

/// Every call of `calls` in the workspace outside the `allowed` files, as `file:line: call`.
fn calls_outside(calls: &'static [&'static str], allowed: &[(&str, &str)]) -> Vec<String> {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root, &root, &mut files);
    assert!(
        files.iter().any(|f| f == "common/src/events/outbox.rs"),
        "the scan found the workspace's sources"
    );
    let mut found = Vec::new();
    for file in files
        .iter()
        .filter(|f| !allowed.iter().any(|(allowed, _)| allowed == f))
    {
        let source = fs::read_to_string(root.join(file)).expect("reading a source file");
        for (line, call) in find(&source, calls) {
            found.push(format!("{file}:{line}: {call}"));
        }
    }
    found
}

/// Fails naming each of `allowed` that no longer makes any of `calls`.
fn assert_still_needed(calls: &'static [&'static str], allowed: &[(&str, &str)]) {
    let root = workspace_root();
    for (file, reason) in allowed {
        let source = fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("{file} is allowed ({reason}) but cannot be read: {e}"));
        assert!(
            !find(&source, calls).is_empty(),
            "{file} is allowed ({reason}) but makes none of {calls:?}: drop it from the list"
        );
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, as paths relative to `root` with `/` separators.
fn rust_files(root: &Path, dir: &Path, files: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        let relative = path
            .strip_prefix(root)
            .expect("under the root")
            .to_string_lossy()
            .replace('\\', "/");
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() {
            // Hidden folders are tool state (.git, .nexus), not the workspace's source.
            if !name.starts_with('.') && !SKIPPED.contains(&relative.as_str()) {
                rust_files(root, &path, files);
            }
        } else if name.ends_with(".rs") {
            files.push(relative);
        }
    }
}

#[test]
fn no_query_is_a_runtime_string_outside_the_documented_exceptions() {
    let found = calls_outside(RUNTIME_CALLS, ALLOWED);
    assert!(
        found.is_empty(),
        "SQL as a run-time string; use sqlx::query!/query_as!/query_scalar! in the crate's \
         db module (or, for DDL on computed names, common::db::ddl):\n{}",
        found.join("\n")
    );
}

#[test]
fn ddl_on_computed_names_is_written_only_in_its_places() {
    let found = calls_outside(DDL_CALLS, DDL_PLACES);
    assert!(
        found.is_empty(),
        "DDL on computed names outside its one place per crate; add a function there:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_exception_is_still_needed() {
    assert_still_needed(RUNTIME_CALLS, ALLOWED);
    assert_still_needed(DDL_CALLS, DDL_PLACES);
}

#[test]
fn the_scanner_finds_each_runtime_call_and_no_macro() {
    let source = r#"
        let a = sqlx::query("delete from t").execute(db);
        let b = sqlx::query!("delete from t").execute(db);
        let c = sqlx::query_as::<_, Row>("select 1");
        let d = sqlx::query_scalar("select 1");
        let e = sqlx::query_scalar!("select 1");
        let f = sqlx::query_as!(Row, "select 1");
        let g = sqlx::raw_sql(&sql);
        let h = sqlx::query_as_with(sql, args);
        let i = sqlx::QueryBuilder::new("select");
    "#;

    let found: Vec<usize> = runtime_queries(source)
        .into_iter()
        .map(|(line, _)| line)
        .collect();

    assert_eq!(found, [2, 4, 5, 8, 9, 10]);
}
