//! Tenant isolation and token attacks, at the gateway, over every route of the merged
//! OpenAPI document: new routes are covered the day they appear (and a route with a
//! path parameter this file does not know fails the test until it is taught).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::auth::{Perm, Role};
use e2e::{Fleet, INTERNAL_TOKEN, Session};
use gateway::routes::{AuthMode, find};
use reqwest::{Client, Method};
use serde_json::{Value, json};

/// What acme's rows say, so no answer to anyone else may contain it.
const MARKER: &str = "ACME-SECRET";
const ROLES: [&str; 5] = ["owner", "admin", "manager", "member", "viewer"];

struct World {
    fleet: Fleet,
    http: Client,
    acme: Session,
    /// One session of each role in acme, owner first.
    acme_roles: Vec<(&'static str, Session)>,
    /// One session of each role in globex, owner first.
    globex: Vec<(&'static str, Session)>,
    /// Acme's ids by path parameter (`{id}` is decided by the path).
    ids: BTreeMap<&'static str, String>,
}

async fn send(
    w: &World,
    who: &Session,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, String) {
    let upload = method == Method::POST && path.ends_with("/attachments");
    let mut request = w
        .http
        .request(method, w.fleet.url(&who.host, path))
        .bearer_auth(&who.token);
    if upload {
        let (content_type, form) = e2e::file_form("x.txt", b"x");
        request = request.header("content-type", content_type).body(form);
    } else if let Some(body) = body {
        request = request.json(body);
    }
    let resp = request.send().await.expect("request through the gateway");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

async fn created(w: &World, path: &str, body: Value) -> Value {
    let (status, text) = send(w, &w.acme, Method::POST, path, Some(&body)).await;
    assert!(
        status == 201 || status == 200,
        "POST {path}: {status} {text}"
    );
    serde_json::from_str(&text).unwrap()
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

async fn world(gateway_overrides: &[(&str, &str)]) -> World {
    let fleet = Fleet::start_with(gateway_overrides).await;
    let http = fleet.client(&["acme", "globex"]);
    fleet.signup(&http, "acme", "olive@acme.test").await;
    fleet.signup(&http, "globex", "hank@globex.test").await;
    let acme = fleet.login(&http, "acme", "olive@acme.test").await;
    let mut globex = vec![(
        "owner",
        fleet.login(&http, "globex", "hank@globex.test").await,
    )];
    for role in &ROLES[1..] {
        let session = fleet
            .join(&http, &globex[0].1, &format!("{role}@globex.test"), role)
            .await;
        globex.push((role, session));
    }
    let mut acme_roles = vec![("owner", acme.clone())];
    for role in &ROLES[1..] {
        let session = fleet
            .join(&http, &acme, &format!("{role}@acme.test"), role)
            .await;
        acme_roles.push((role, session));
    }
    let member = acme_roles[3].1.clone();
    let mut w = World {
        fleet,
        http,
        acme,
        acme_roles,
        globex,
        ids: BTreeMap::new(),
    };
    let (_, me) = send(&w, &member, Method::GET, "/api/v1/users/me", None).await;
    let member_id = id(&serde_json::from_str(&me).unwrap());
    let project = created(
        &w,
        "/api/v1/projects",
        json!({"key": "SEC", "name": MARKER}),
    )
    .await;
    let pid = id(&project);
    let column = created(
        &w,
        &format!("/api/v1/projects/{pid}/columns"),
        json!({"name": MARKER}),
    )
    .await;
    let task = created(
        &w,
        &format!("/api/v1/projects/{pid}/tasks"),
        json!({"title": MARKER, "description": MARKER}),
    )
    .await;
    let tid = id(&task);
    let comment = created(
        &w,
        &format!("/api/v1/tasks/{tid}/comments"),
        json!({"body": MARKER}),
    )
    .await;
    let worklog = created(
        &w,
        &format!("/api/v1/tasks/{tid}/worklogs"),
        json!({"minutes": 5, "note": MARKER}),
    )
    .await;
    let (content_type, form) = e2e::file_form(&format!("{MARKER}.txt"), MARKER.as_bytes());
    let upload = w
        .http
        .post(w.fleet.url(
            "acme.localhost",
            &format!("/api/v1/tasks/{tid}/attachments"),
        ))
        .bearer_auth(&w.acme.token)
        .header("content-type", content_type)
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 201);
    let attachment: Value = upload.json().await.unwrap();
    let link = created(
        &w,
        "/api/v1/links",
        json!({"target": {"type": "task", "id": tid}, "ttl": 3600}),
    )
    .await;
    // A notification of acme's member: a task assigned to them at creation.
    created(
        &w,
        &format!("/api/v1/projects/{pid}/tasks"),
        json!({"title": MARKER, "assignee_id": member_id}),
    )
    .await;
    let notification = {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (_, text) = send(&w, &member, Method::GET, "/api/v1/notifications", None).await;
            let page: Value = serde_json::from_str(&text).unwrap();
            if let Some(first) = page["items"].get(0) {
                break id(first);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the member's notification did not arrive: {text}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    let invite = created(
        &w,
        "/api/v1/invites",
        json!({"email": "pending@acme.test", "role": "viewer"}),
    )
    .await;
    // A webhook of acme's (to the gateway's health route: loopback is allowed in the
    // fleet) and one delivery of it.
    let webhook = created(
        &w,
        "/api/v1/webhooks",
        json!({"url": w.fleet.url("localhost", "/healthz"), "events": ["task.*"],
               "description": MARKER}),
    )
    .await;
    let (_, queued) = send(
        &w,
        &w.acme,
        Method::POST,
        &format!("/api/v1/webhooks/{}/test", id(&webhook)),
        None,
    )
    .await;
    let delivery: Value = serde_json::from_str(&queued).unwrap();
    w.ids = BTreeMap::from([
        ("project", pid),
        ("task", tid.clone()),
        ("column_id", id(&column)),
        ("comment_id", id(&comment)),
        ("log_id", id(&worklog)),
        ("attachment_id", id(&attachment)),
        ("code", link["code"].as_str().unwrap().to_owned()),
        ("invite", id(&invite)),
        ("user_id", member_id),
        ("notification", notification),
        ("task_id", tid),
        ("webhook", id(&webhook)),
        (
            "delivery_id",
            delivery["delivery_id"].as_str().unwrap().to_owned(),
        ),
    ]);
    w
}

/// `template` with acme's ids in place of its parameters.
fn fill(w: &World, template: &str) -> String {
    let mut out = String::new();
    for segment in template.split('/').skip(1) {
        out.push('/');
        let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            out.push_str(segment);
            continue;
        };
        let key = match (name, template) {
            ("id", t) if t.starts_with("/api/v1/projects/") => "project",
            ("id", t) if t.starts_with("/api/v1/tasks/") => "task",
            ("id", t) if t.starts_with("/api/v1/invites/") => "invite",
            ("id", t) if t.starts_with("/api/v1/users/") => "user_id",
            ("id", t) if t.starts_with("/api/v1/notifications/") => "notification",
            ("id", t) if t.starts_with("/api/v1/webhooks/") => "webhook",
            (other, _) => other,
        };
        let value = w.ids.get(key).unwrap_or_else(|| {
            panic!("teach e2e/tests/isolation.rs the parameter {{{name}}} of {template}")
        });
        out.push_str(value);
    }
    out
}

/// A well-formed body for each operation that takes one, aimed at acme's things.
fn body(w: &World, method: &Method, template: &str) -> Option<Value> {
    let ids = &w.ids;
    let body = match (method.as_str(), template) {
        ("GET" | "DELETE", _) => return None,
        ("POST", "/api/v1/projects") => json!({"key": "GLX", "name": "globex's"}),
        ("POST", "/api/v1/links") => {
            json!({"target": {"type": "task", "id": ids["task"]}, "ttl": 60})
        }
        ("POST", "/api/v1/invites") => json!({"email": "someone@globex.test", "role": "viewer"}),
        ("POST", "/api/v1/webhooks") => {
            json!({"url": w.fleet.url("localhost", "/healthz"), "events": ["*"]})
        }
        ("POST", t) if t.ends_with("/recover") => json!({"since": "2000-01-01T00:00:00Z"}),
        ("PATCH", t) if t.starts_with("/api/v1/webhooks/") => json!({"description": "x"}),
        ("POST", t) if t.ends_with("/tasks") => json!({"title": "x", "parent_id": ids["task"]}),
        ("POST", t) if t.ends_with("/columns") => json!({"name": "x"}),
        ("POST", t) if t.ends_with("/comments") => json!({"body": "x"}),
        ("POST", t) if t.ends_with("/worklogs") => json!({"minutes": 1}),
        ("POST", t) if t.ends_with("/move") => {
            json!({"column_id": ids["column_id"], "position": 0})
        }
        ("PATCH", t) if t.contains("/comments/") => json!({"body": "x"}),
        ("PATCH", "/api/v1/users/me") => json!({"name": "x"}),
        ("PATCH", t) if t.ends_with("/role") || t.contains("/members/") => {
            json!({"role": "viewer"})
        }
        ("PUT", t) if t.contains("/members/") => json!({"role": "viewer"}),
        ("PUT", "/api/v1/users/me/password") => {
            json!({"current_password": "wrong wrong", "new_password": "another long one"})
        }
        ("PATCH", t) if t.starts_with("/api/v1/links/") => json!({"max_visits": 1}),
        ("PATCH", t) if t.starts_with("/api/v1/tasks/") => json!({"title": "x"}),
        ("PATCH", _) => json!({"name": "x"}),
        ("POST", t) if t.ends_with("/snooze") => {
            json!({"until": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339()})
        }
        _ => json!({}),
    };
    Some(body)
}

/// Every JWT operation of the merged document: (method, path template).
async fn jwt_operations(w: &World) -> Vec<(Method, String)> {
    let spec: Value = w
        .http
        .get(w.fleet.url("localhost", "/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        if find(path).is_none_or(|route| route.auth != AuthMode::Jwt) {
            continue;
        }
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                ops.push((method.to_uppercase().parse().unwrap(), path.clone()));
            }
        }
    }
    assert!(
        ops.len() >= 40,
        "the merged document lists the API: {}",
        ops.len()
    );
    ops
}

fn mentions_acme(w: &World, text: &str) -> bool {
    text.contains(MARKER)
        || w.ids
            .iter()
            .filter(|(key, _)| **key != "code")
            .any(|(_, id)| text.contains(id.as_str()))
}

#[tokio::test]
async fn no_role_of_another_tenant_reaches_acme_on_any_route_of_the_spec() {
    let w = world(&[]).await;
    let ops = jwt_operations(&w).await;
    let mut checked = 0;
    for (role, globex) in &w.globex {
        for (method, template) in &ops {
            let path = fill(&w, template);
            let body = body(&w, method, template);
            let (status, text) =
                send(&w, &globex.on("acme"), method.clone(), &path, body.as_ref()).await;
            assert_eq!(
                status, 403,
                "globex {role} on acme's host: {method} {path}: {text}"
            );
            let (status, text) = send(&w, globex, method.clone(), &path, body.as_ref()).await;
            assert!(
                !(200..300).contains(&status) || !mentions_acme(&w, &text),
                "globex {role} read acme's data: {method} {path}: {status} {text}"
            );
            if template == "/api/v1/links" && method == Method::POST {
                assert!(
                    !(200..300).contains(&status),
                    "a link to acme's task was made by globex {role}: {text}"
                );
            }
            checked += 1;
        }
    }
    println!(
        "cross-tenant: {} operations × {} roles = {checked} pairs",
        ops.len(),
        w.globex.len()
    );

    // Acme's things are all still there, unchanged.
    let ids = &w.ids;
    for (path, marker_field) in [
        (format!("/api/v1/projects/{}", ids["project"]), "name"),
        (format!("/api/v1/tasks/{}", ids["task"]), "title"),
    ] {
        let (status, text) = send(&w, &w.acme, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}");
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value[marker_field], MARKER, "{path}");
        assert_eq!(value["version"], 1, "{path} was never changed");
    }
    for (path, count) in [
        (format!("/api/v1/tasks/{}/comments", ids["task"]), 1),
        (format!("/api/v1/tasks/{}/worklogs", ids["task"]), 1),
        (format!("/api/v1/tasks/{}/attachments", ids["task"]), 1),
    ] {
        let (_, text) = send(&w, &w.acme, Method::GET, &path, None).await;
        let list: Value = serde_json::from_str(&text).unwrap();
        let items = list.get("items").unwrap_or(&list);
        assert_eq!(
            items.as_array().map(Vec::len),
            Some(count),
            "{path}: {text}"
        );
    }
    let (status, text) = send(
        &w,
        &w.acme,
        Method::GET,
        &format!("/api/v1/links/{}", ids["code"]),
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains("\"disabled\":true"), "{text}");
}

/// Signs `claims` (any JSON) with `key` and a header naming `kid`.
fn sign(key: &common::auth::SigningKey, kid: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_ed_pem(key.pem().as_bytes()).unwrap(),
    )
    .unwrap()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

#[tokio::test]
async fn forged_expired_and_misdirected_tokens_are_refused_on_every_route() {
    let w = world(&[("TENANT_CACHE_TTL_SECS", "1")]).await;
    let ops: Vec<(Method, String)> = jwt_operations(&w)
        .await
        .into_iter()
        .filter(|(method, _)| *method == Method::GET)
        .collect();
    let real = w.fleet.signing_key();
    let parts: Vec<&str> = w.acme.token.split('.').collect();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let now = chrono_now();
    let with = |changes: Value| {
        let mut c = claims.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let attacker = common::auth::SigningKey::generate("attacker").unwrap();
    let jwks: Value = w
        .http
        .get(w.fleet.url("localhost", "/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let public_x = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    let hs256 = |secret: &[u8]| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(real.kid().to_owned());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let mut tampered_claims = claims.clone();
    tampered_claims["role"] = json!("owner");
    tampered_claims["perms"] = json!(["tenant.manage"]);
    let attacks: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "kid": real.kid()})),
                parts[1]
            ),
        ),
        ("HS256 keyed with the public key", hs256(&public_x)),
        (
            "HS256 keyed with the JWKS",
            hs256(jwks.to_string().as_bytes()),
        ),
        ("unknown kid", sign(&attacker, "attacker", &claims)),
        (
            "kid with a path",
            sign(&real, &format!("../{}", real.kid()), &claims),
        ),
        (
            "kid with quotes",
            sign(&real, &format!("{}\"'", real.kid()), &claims),
        ),
        (
            "the real kid, another key",
            sign(&attacker, real.kid(), &claims),
        ),
        (
            "no exp",
            sign(&real, real.kid(), &with(json!({"exp": null}))),
        ),
        (
            "exp as a string",
            sign(
                &real,
                real.kid(),
                &with(json!({"exp": (now + 600).to_string()})),
            ),
        ),
        (
            "nbf in the future",
            sign(&real, real.kid(), &with(json!({"nbf": now + 600}))),
        ),
        (
            "wrong aud",
            sign(&real, real.kid(), &with(json!({"aud": "someone-else"}))),
        ),
        (
            "wrong iss",
            sign(&real, real.kid(), &with(json!({"iss": "evil"}))),
        ),
        (
            "expired beyond leeway",
            sign(
                &real,
                real.kid(),
                &with(json!({"exp": now - 120, "iat": now - 1000})),
            ),
        ),
        (
            "tampered payload",
            format!("{}.{}.{}", parts[0], b64(&tampered_claims), parts[2]),
        ),
        ("garbage", "not.a.token".to_owned()),
    ];
    let mut tried = 0;
    for (name, token) in &attacks {
        let forged = Session {
            host: "acme.localhost".into(),
            token: token.clone(),
        };
        for (method, template) in &ops {
            let path = fill(&w, template);
            let (status, text) = send(&w, &forged, method.clone(), &path, None).await;
            assert_eq!(status, 401, "{name}: GET {path}: {text}");
            tried += 1;
        }
    }
    // A well-signed token of another tenant: 403 on acme's host.
    let other_tenant = sign(
        &real,
        real.kid(),
        &with(json!({"tid": uuid::Uuid::now_v7()})),
    );
    for (method, template) in &ops {
        let path = fill(&w, template);
        let forged = Session {
            host: "acme.localhost".into(),
            token: other_tenant.clone(),
        };
        let (status, _) = send(&w, &forged, method.clone(), &path, None).await;
        assert_eq!(status, 403, "another tenant's token: {path}");
    }
    println!(
        "token attacks: {} kinds × {} routes = {tried} requests",
        attacks.len(),
        ops.len()
    );

    // A suspended organisation's tokens stop working (within the gateway's tenant TTL).
    let resolver = reqwest::Client::new();
    let tenant: Value = resolver
        .get(
            w.fleet
                .tenant_resolver
                .url("/internal/tenants/by-slug/acme"),
        )
        .bearer_auth(INTERNAL_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let suspended = resolver
        .post(w.fleet.tenant_resolver.url(&format!(
            "/internal/tenants/{}/suspend",
            tenant["id"].as_str().unwrap()
        )))
        .bearer_auth(INTERNAL_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(suspended.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (method, template) in &ops {
        let path = fill(&w, template);
        let (status, text) = send(&w, &w.acme, method.clone(), &path, None).await;
        assert_eq!(status, 423, "a suspended tenant's token: {path}: {text}");
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// Polls `path` with `who`'s token until it answers `status` (bounded).
async fn until_status(w: &World, who: &Session, path: &str, status: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (got, text) = send(w, who, Method::GET, path, None).await;
        if got == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} still answers {got}, not {status}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_removed_members_token_and_a_demoted_ones_old_token_stop_working_everywhere() {
    let w = world(&[("REVOCATION_POLL_MS", "100")]).await;
    let ops: Vec<String> = jwt_operations(&w)
        .await
        .into_iter()
        .filter(|(method, _)| *method == Method::GET)
        .map(|(_, template)| fill(&w, &template))
        .collect();
    let leaver = w
        .fleet
        .join(&w.http, &w.acme, "leaver@acme.test", "manager")
        .await;
    let demoted = w
        .fleet
        .join(&w.http, &w.acme, "demoted@acme.test", "manager")
        .await;
    let projects = "/api/v1/projects";
    for who in [&leaver, &demoted] {
        assert_eq!(send(&w, who, Method::GET, projects, None).await.0, 200);
    }
    let id_of = |session: &Session| {
        let payload = session.token.split('.').nth(1).unwrap().to_owned();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["sub"].as_str().unwrap().to_owned()
    };

    let (status, text) = send(
        &w,
        &w.acme,
        Method::DELETE,
        &format!("/api/v1/users/{}", id_of(&leaver)),
        None,
    )
    .await;
    assert_eq!(status, 204, "{text}");
    let (status, text) = send(
        &w,
        &w.acme,
        Method::PATCH,
        &format!("/api/v1/users/{}/role", id_of(&demoted)),
        Some(&json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(status, 200, "{text}");

    until_status(&w, &leaver, projects, 401).await;
    until_status(&w, &demoted, projects, 401).await;
    for path in &ops {
        for (who, name) in [(&leaver, "removed"), (&demoted, "demoted")] {
            let (status, text) = send(&w, who, Method::GET, path, None).await;
            assert_eq!(status, 401, "the {name} member's old token: {path}: {text}");
        }
    }
    // The demoted member signs in again and holds a viewer's rights; the owner is untouched.
    let viewer = w.fleet.login(&w.http, "acme", "demoted@acme.test").await;
    assert_eq!(send(&w, &viewer, Method::GET, projects, None).await.0, 200);
    let (status, _) = send(
        &w,
        &viewer,
        Method::POST,
        projects,
        Some(&json!({"key": "VW", "name": "v"})),
    )
    .await;
    assert_eq!(status, 403, "a viewer creates no project");
    assert_eq!(send(&w, &w.acme, Method::GET, projects, None).await.0, 200);
}

/// The permission each JWT operation asks for (`None`: any member), as the handlers
/// check it. Every operation of the spec must be here: a new route fails the test until
/// its permission is written down.
fn permission(method: &Method, template: &str) -> Option<Option<Perm>> {
    use Perm::*;
    let p = match (method.as_str(), template) {
        ("GET", "/api/v1/tenant") => TenantRead,
        ("GET" | "PATCH", "/api/v1/users/me") | ("PUT", "/api/v1/users/me/password") => {
            return Some(None);
        }
        ("GET", "/api/v1/users" | "/api/v1/users/{id}") => UsersRead,
        ("DELETE", "/api/v1/users/{id}") | ("PATCH", "/api/v1/users/{id}/role") => UsersManage,
        (_, "/api/v1/invites" | "/api/v1/invites/{id}") => UsersInvite,
        ("POST", "/api/v1/projects") => ProjectsCreate,
        (
            "GET",
            "/api/v1/projects"
            | "/api/v1/projects/{id}"
            | "/api/v1/projects/{id}/members"
            | "/api/v1/projects/{id}/activity"
            | "/api/v1/projects/{id}/time"
            | "/api/v1/projects/{id}/worklogs.csv",
        ) => ProjectsRead,
        ("PATCH" | "DELETE", "/api/v1/projects/{id}") => ProjectsManage,
        (_, t)
            if t.starts_with("/api/v1/projects/{id}/columns")
                || t.starts_with("/api/v1/projects/{id}/members/") =>
        {
            ProjectsManage
        }
        ("GET", "/api/v1/projects/{id}/board" | "/api/v1/projects/{id}/tasks") => TasksRead,
        ("POST", "/api/v1/projects/{id}/tasks") => TasksWrite,
        ("DELETE", "/api/v1/tasks/{id}") => TasksManage,
        ("GET", t) if t.starts_with("/api/v1/tasks/") => TasksRead,
        (_, t) if t.contains("/comments") => CommentsWrite,
        (_, t) if t.contains("/worklogs") || t.contains("/timer/") => TimeWrite,
        (_, t) if t.starts_with("/api/v1/tasks/") => TasksWrite,
        (_, t) if t.starts_with("/api/v1/links") => LinksCreate,
        ("GET", t) if t.starts_with("/api/v1/analytics/") => AnalyticsRead,
        (_, t) if t.starts_with("/api/v1/notifications/subscriptions/") => TasksRead,
        // The stream itself is no request-and-answer (e2e/tests/stream.rs checks it).
        ("POST", "/api/v1/stream/tickets") => TasksRead,
        (_, t) if t.starts_with("/api/v1/webhooks") => WebhooksManage,
        (_, t) if t.starts_with("/api/v1/notifications") => return Some(None),
        _ => return None,
    };
    Some(Some(p))
}

#[tokio::test]
async fn every_route_allows_exactly_the_roles_whose_permissions_it_asks_for() {
    let mut w = world(&[]).await;
    let ops = jwt_operations(&w).await;
    let roles: Vec<(Role, Session)> = w
        .acme_roles
        .iter()
        .map(|(name, session)| (name.parse::<Role>().unwrap(), session.clone()))
        .collect();
    let mut unknown = Vec::new();
    let mut checked = 0;
    // Refusals first, with acme's real ids: a refused call changes nothing.
    for (method, template) in &ops {
        let Some(perm) = permission(method, template) else {
            unknown.push(format!("{method} {template}"));
            continue;
        };
        let Some(perm) = perm else { continue };
        for (role, session) in &roles {
            if role.permissions().contains(&perm) {
                continue;
            }
            let path = fill(&w, template);
            let (status, text) = send(
                &w,
                session,
                method.clone(),
                &path,
                body(&w, method, template).as_ref(),
            )
            .await;
            assert_eq!(
                status, 403,
                "{role:?} lacks {perm:?}: {method} {path}: {text}"
            );
            checked += 1;
        }
    }
    assert!(
        unknown.is_empty(),
        "teach permission() these operations: {unknown:#?}"
    );
    // Then the allowed roles, on ids that do not exist, so nothing is destroyed: any
    // answer but 401/403 shows the permission let them through.
    w.ids = w
        .ids
        .keys()
        .map(|k| (*k, uuid::Uuid::now_v7().to_string()))
        .collect();
    w.ids.insert("code", "Zz9Zz9Zz".to_owned());
    let nowhere = &w;
    for (method, template) in &ops {
        let perm = permission(method, template).flatten();
        for (role, session) in &roles {
            if perm.is_some_and(|p| !role.permissions().contains(&p)) {
                continue;
            }
            let path = fill(nowhere, template);
            if template == "/api/v1/users/me/password" {
                continue; // answers 401 for a wrong current password, by design
            }
            let (status, text) = send(
                nowhere,
                session,
                method.clone(),
                &path,
                body(nowhere, method, template).as_ref(),
            )
            .await;
            assert!(
                status != 401 && status != 403,
                "{role:?} holds {perm:?} but was refused: {method} {path}: {status} {text}"
            );
            checked += 1;
        }
    }
    println!(
        "role matrix: {} operations × {} roles, {checked} checks",
        ops.len(),
        roles.len()
    );
}
