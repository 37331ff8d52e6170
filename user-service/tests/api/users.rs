//! The users API: your own account, members, roles.

use common::events::keys;
use common::testkit::{EventTap, expect_problem};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Tenant, spawn_app};

#[tokio::test]
async fn you_can_rename_yourself_but_not_change_your_role_or_email() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    app.owner(&acme, "olive@acme.test").await;
    let token = app.access(&acme, "olive@acme.test").await;
    let tap = EventTap::new(&app.exchange, "user.*").await;

    let renamed = app
        .on(&acme, Method::PATCH, "/api/v1/users/me")
        .bearer_auth(&token)
        .json(&json!({"name": "Olive O."}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    let body: Value = renamed.json().await.unwrap();
    assert_eq!(
        (body["name"].as_str(), body["role"].as_str()),
        (Some("Olive O."), Some("owner"))
    );

    let sneaky = app
        .on(&acme, Method::PATCH, "/api/v1/users/me")
        .bearer_auth(&token)
        .json(&json!({"name": "Eve", "email": "eve@evil.test"}))
        .send()
        .await
        .unwrap();
    expect_problem(sneaky, 400).await;
    let me: Value = app
        .on(&acme, Method::GET, "/api/v1/users/me")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["name"].as_str(), me["email"].as_str()),
        (Some("Olive O."), Some("olive@acme.test"))
    );

    // The owner's user.created may still be on its way; skip to the update.
    let event = loop {
        let event = tap.next_event().await;
        if event.kind == keys::USER_UPDATED {
            break event;
        }
    };
    assert_eq!(event.data["changed"], json!(["name"]));
    tap.delete_exchange().await;
}

#[tokio::test]
async fn roles_change_only_downward_from_your_own_and_the_last_owner_stays() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    let owner_id = app.owner(&acme, "olive@acme.test").await;
    let owner = app.access(&acme, "olive@acme.test").await;
    let admin = app.member(&acme, &owner, "adam@acme.test", "admin").await;
    let member = app.member(&acme, &owner, "mia@acme.test", "member").await;
    let members: Value = app
        .on(&acme, Method::GET, "/api/v1/users")
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_of = |email: &str| {
        members["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["email"] == email)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (admin_id, member_id) = (id_of("adam@acme.test"), id_of("mia@acme.test"));
    let set_role = |token: String, id: String, role: &'static str| {
        app.on(&acme, Method::PATCH, &format!("/api/v1/users/{id}/role"))
            .bearer_auth(token)
            .json(&json!({"role": role}))
            .send()
    };

    expect_problem(
        set_role(member.clone(), admin_id.clone(), "viewer")
            .await
            .unwrap(),
        403,
    )
    .await;
    expect_problem(
        set_role(admin.clone(), member_id.clone(), "owner")
            .await
            .unwrap(),
        403,
    )
    .await;
    expect_problem(
        set_role(admin.clone(), owner_id.to_string(), "member")
            .await
            .unwrap(),
        403,
    )
    .await;
    let promoted = set_role(admin.clone(), member_id.clone(), "manager")
        .await
        .unwrap();
    assert_eq!(promoted.status(), 200);
    let body = expect_problem(
        set_role(owner.clone(), owner_id.to_string(), "admin")
            .await
            .unwrap(),
        409,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("last owner"));
    let removal = app
        .on(&acme, Method::DELETE, &format!("/api/v1/users/{owner_id}"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    expect_problem(removal, 409).await;

    assert_eq!(
        set_role(owner.clone(), admin_id.clone(), "owner")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        set_role(owner.clone(), owner_id.to_string(), "admin")
            .await
            .unwrap()
            .status(),
        200,
        "another owner exists now"
    );
}

#[tokio::test]
async fn members_are_listed_in_pages() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    app.owner(&acme, "olive@acme.test").await;
    let owner = app.access(&acme, "olive@acme.test").await;
    for i in 0..3 {
        app.member(&acme, &owner, &format!("m{i}@acme.test"), "viewer")
            .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?limit=2&cursor={c}"),
            None => "/api/v1/users?limit=2".to_owned(),
        };
        let page: Value = app
            .on(&acme, Method::GET, &path)
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["email"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4);
    let bad = app
        .on(&acme, Method::GET, "/api/v1/users?cursor=%%%")
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    expect_problem(bad, 400).await;
}

#[tokio::test]
async fn a_removed_member_can_no_longer_log_in() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    app.owner(&acme, "olive@acme.test").await;
    let owner = app.access(&acme, "olive@acme.test").await;
    app.member(&acme, &owner, "mia@acme.test", "member").await;
    let members: Value = app
        .on(&acme, Method::GET, "/api/v1/users")
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mia = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "mia@acme.test")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let removed = app
        .on(&acme, Method::DELETE, &format!("/api/v1/users/{mia}"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();

    assert_eq!(removed.status(), 204);
    expect_problem(
        app.login_from(
            &acme,
            "mia@acme.test",
            crate::helpers::PASSWORD,
            "198.51.100.7",
        )
        .await,
        401,
    )
    .await;
}

#[tokio::test]
async fn another_tenants_members_and_invites_are_invisible_and_untouchable() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    let globex = Tenant::new("globex");
    let olive = app.owner(&acme, "olive@acme.test").await;
    app.owner(&globex, "gil@globex.test").await;
    let acme_owner = app.access(&acme, "olive@acme.test").await;
    let gil = app.access(&globex, "gil@globex.test").await;
    let invite: Value = app
        .on(&acme, Method::POST, "/api/v1/invites")
        .bearer_auth(&acme_owner)
        .json(&json!({"email": "new@acme.test", "role": "viewer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let invite_id = invite["id"].as_str().unwrap();

    // Globex's owner, on globex's own host, aiming at acme's ids.
    let read = app
        .on(&globex, Method::GET, &format!("/api/v1/users/{olive}"))
        .bearer_auth(&gil)
        .send()
        .await
        .unwrap();
    expect_problem(read, 404).await;
    let demote = app
        .on(
            &globex,
            Method::PATCH,
            &format!("/api/v1/users/{olive}/role"),
        )
        .bearer_auth(&gil)
        .json(&json!({"role": "viewer"}))
        .send()
        .await
        .unwrap();
    expect_problem(demote, 404).await;
    let remove = app
        .on(&globex, Method::DELETE, &format!("/api/v1/users/{olive}"))
        .bearer_auth(&gil)
        .send()
        .await
        .unwrap();
    expect_problem(remove, 404).await;
    let revoke = app
        .on(
            &globex,
            Method::DELETE,
            &format!("/api/v1/invites/{invite_id}"),
        )
        .bearer_auth(&gil)
        .send()
        .await
        .unwrap();
    expect_problem(revoke, 404).await;
    let listed: Value = app
        .on(&globex, Method::GET, "/api/v1/invites")
        .bearer_auth(&gil)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 0);

    let still: Value = app
        .on(&acme, Method::GET, "/api/v1/users/me")
        .bearer_auth(&acme_owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(still["role"], "owner");
    let pending: Value = app
        .on(&acme, Method::GET, "/api/v1/invites")
        .bearer_auth(&acme_owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending.as_array().unwrap().len(), 1);
}
