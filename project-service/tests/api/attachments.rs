//! Attachments: stored by content hash whatever their name, downloaded as files,
//! size- and plan-capped, and removed with their last reference.

use std::path::{Path, PathBuf};

use common::auth::Role;
use common::testkit::{EventTap, expect_problem};
use reqwest::Method;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{Tenant, TestApp, spawn_app, spawn_app_with};

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn stored(app: &TestApp, tenant: uuid::Uuid, sha: &str) -> PathBuf {
    app.attachments_dir
        .join(tenant.to_string())
        .join(&sha[..2])
        .join(sha)
}

#[tokio::test]
async fn an_attachment_named_like_a_path_is_stored_by_hash_and_downloaded_as_a_file() {
    let app = spawn_app().await;
    let tap = EventTap::new(&app.exchange, "task.attachment_added").await;
    let acme = app.tenant().await;
    let web = app.project(&acme, "WEB").await;
    let task = app.task(&acme, &web, "t").await;
    let content = b"<html><script>alert(1)</script>root:x:0:0</html>";
    let sha = format!("{:x}", Sha256::digest(content));

    let resp = app
        .upload(&acme, id(&task), "../../etc/passwd", "text/html", content)
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let attachment: Value = resp.json().await.unwrap();
    assert_eq!(
        attachment["file_name"], "../../etc/passwd",
        "kept as metadata"
    );
    assert_eq!(attachment["sha256"], sha.as_str());
    assert_eq!(attachment["size_bytes"], content.len());

    let files = files_under(&app.attachments_dir);
    assert_eq!(
        files,
        vec![stored(&app, acme.id, &sha)],
        "one file, named by its hash"
    );
    assert_eq!(std::fs::read(&files[0]).unwrap(), content);
    let outside = app.attachments_dir.parent().unwrap().join("etc/passwd");
    assert!(!outside.exists(), "nothing written beside the directory");

    let download = app
        .send(
            &acme,
            Method::GET,
            &format!(
                "/api/v1/tasks/{}/attachments/{}",
                id(&task),
                id(&attachment)
            ),
            None,
        )
        .await;
    assert_eq!(download.status(), 200);
    let header = |name: &str| {
        download
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(
        header("content-disposition"),
        "attachment; filename=\"passwd\"; filename*=UTF-8''passwd"
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(
        header("content-type"),
        "application/octet-stream",
        "HTML is never served as HTML"
    );
    assert!(header("content-security-policy").contains("sandbox"));
    assert_eq!(download.bytes().await.unwrap().as_ref(), content);

    let listed: Value = app
        .send(
            &acme,
            Method::GET,
            &format!("/api/v1/tasks/{}/attachments", id(&task)),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let event = tap.next_event().await;
    assert_eq!(event.data["attachment_id"], attachment["id"]);
}

#[tokio::test]
async fn uploads_past_the_size_cap_or_the_plan_storage_are_refused_and_leave_nothing() {
    let app = spawn_app_with(&[("ATTACHMENT_MAX_BYTES", "1000")]).await;
    app.resolver.limit_storage(Some(1500));
    let acme = app.tenant().await;
    let web = app.project(&acme, "WEB").await;
    let task = app.task(&acme, &web, "t").await;

    let big = app
        .upload(
            &acme,
            id(&task),
            "big.bin",
            "application/octet-stream",
            &[7; 1001],
        )
        .await;
    let problem = expect_problem(big, 413).await;
    assert!(problem["detail"].as_str().unwrap().contains("1000"));

    let first = app
        .upload(
            &acme,
            id(&task),
            "a.bin",
            "application/octet-stream",
            &[1; 800],
        )
        .await;
    assert_eq!(first.status(), 201);
    let same_again = app
        .upload(
            &acme,
            id(&task),
            "a-copy.bin",
            "application/octet-stream",
            &[1; 800],
        )
        .await;
    assert_eq!(same_again.status(), 201, "identical content is stored once");
    let over_plan = app
        .upload(
            &acme,
            id(&task),
            "b.bin",
            "application/octet-stream",
            &[2; 800],
        )
        .await;
    let problem = expect_problem(over_plan, 409).await;
    assert!(problem["type"].as_str().unwrap().ends_with("plan-limit"));

    let rows: i64 = sqlx::query_scalar!(r#"select count(*) as "count!" from attachments"#)
        .fetch_one(&acme.db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 2);
    assert_eq!(
        files_under(&app.attachments_dir).len(),
        1,
        "the refused uploads left no file, temporary or not"
    );

    let no_file_part = app
        .call(
            &acme,
            Method::POST,
            &format!("/api/v1/tasks/{}/attachments", id(&task)),
        )
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nhi\r\n--x--\r\n")
        .send()
        .await
        .unwrap();
    expect_problem(no_file_part, 400).await;
}

#[tokio::test]
async fn a_file_goes_with_its_last_attachment_and_only_its_uploader_or_a_manager_deletes() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let member = app.member_of(&acme, Role::Member);
    let web = app.project(&acme, "WEB").await;
    let (a, b) = (
        app.task(&acme, &web, "a").await,
        app.task(&acme, &web, "b").await,
    );
    let content = b"shared bytes";
    let sha = format!("{:x}", Sha256::digest(content));
    let on_a: Value = app
        .upload(&acme, id(&a), "x.txt", "text/plain", content)
        .await
        .json()
        .await
        .unwrap();
    let on_b: Value = app
        .upload(&acme, id(&b), "y.txt", "text/plain", content)
        .await
        .json()
        .await
        .unwrap();
    let path = |task: &Value, attachment: &Value| {
        format!("/api/v1/tasks/{}/attachments/{}", id(task), id(attachment))
    };

    let by_member = app
        .send(&member, Method::DELETE, &path(&a, &on_a), None)
        .await;
    expect_problem(by_member, 403).await;
    let removed = app
        .send(&acme, Method::DELETE, &path(&a, &on_a), None)
        .await;
    assert_eq!(removed.status(), 204);
    assert!(stored(&app, acme.id, &sha).exists(), "task b still has it");
    let gone = app.send(&acme, Method::GET, &path(&a, &on_a), None).await;
    expect_problem(gone, 404).await;

    let task_removed = app
        .send(
            &acme,
            Method::DELETE,
            &format!("/api/v1/tasks/{}", id(&b)),
            None,
        )
        .await;
    assert_eq!(task_removed.status(), 204);
    assert!(
        !stored(&app, acme.id, &sha).exists(),
        "the file went with its last attachment"
    );
    let _ = on_b;
}

#[tokio::test]
async fn another_tenants_token_reaches_no_attachment() {
    let app = spawn_app().await;
    let acme = app.tenant().await;
    let globex = app.tenant().await;
    let web = app.project(&acme, "WEB").await;
    let task = app.task(&acme, &web, "t").await;
    let attachment: Value = app
        .upload(&acme, id(&task), "secret.txt", "text/plain", b"acme only")
        .await
        .json()
        .await
        .unwrap();
    let one = format!(
        "/api/v1/tasks/{}/attachments/{}",
        id(&task),
        id(&attachment)
    );
    let all = format!("/api/v1/tasks/{}/attachments", id(&task));

    for (method, path) in [
        (Method::GET, &all),
        (Method::GET, &one),
        (Method::DELETE, &one),
    ] {
        let resp = app.send(&globex, method.clone(), path, None).await;
        expect_problem(resp, 404).await;
    }
    let upload = app
        .upload(&globex, id(&task), "x.txt", "text/plain", b"intruder")
        .await;
    expect_problem(upload, 404).await;
    // Globex's token on Acme's host (the gateway's X-Tenant-Id): refused outright.
    let impostor = Tenant {
        id: acme.id,
        db: std::sync::Arc::clone(&acme.db),
        token: globex.token.clone(),
    };
    let cross = app.send(&impostor, Method::GET, &one, None).await;
    expect_problem(cross, 403).await;

    let rows: i64 = sqlx::query_scalar!(r#"select count(*) as "count!" from attachments"#)
        .fetch_one(&acme.db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1, "acme's attachment untouched");
    let download = app.send(&acme, Method::GET, &one, None).await;
    assert_eq!(download.bytes().await.unwrap().as_ref(), b"acme only");
}
