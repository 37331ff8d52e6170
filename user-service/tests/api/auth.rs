//! Login: argon2id hashes, no user enumeration, throttling without lockout, tokens the
//! JWKS verifies, and no crossing between tenants.

use std::time::Duration;

use common::auth::{AuthError, JwtVerifier, Role, SigningKey};
use common::testkit::expect_problem;
use jsonwebtoken::jwk::JwkSet;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Tenant, TestApp, spawn_app, spawn_app_with};

fn without_request_id(mut body: Value) -> Value {
    body.as_object_mut().unwrap().remove("request_id");
    body
}

async fn jwks(app: &TestApp) -> JwkSet {
    app.server
        .client
        .get(app.server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The service's own private key, read from its key folder (as only a test can).
fn service_key(app: &TestApp) -> SigningKey {
    let entry = std::fs::read_dir(&app.keys_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let kid = entry.file_stem().unwrap().to_str().unwrap().to_owned();
    SigningKey::from_pem(kid, &std::fs::read_to_string(entry).unwrap()).unwrap()
}

#[tokio::test]
async fn stored_hashes_are_argon2id_with_owasp_parameters() {
    let app = spawn_app().await;
    app.owner(&Tenant::new("acme"), "olive@acme.test").await;
    let hash = sqlx::query_scalar!("select password_hash from users")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
}

#[tokio::test]
async fn unknown_users_wrong_passwords_and_strangers_get_the_same_answer() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    let globex = Tenant::new("globex");
    app.owner(&acme, "olive@acme.test").await;
    app.owner(&globex, "gil@globex.test").await;

    let unknown = app
        .login_from(&acme, "nobody@acme.test", PASSWORD, "198.51.100.1")
        .await;
    let wrong = app
        .login_from(&acme, "olive@acme.test", "not the password", "198.51.100.2")
        .await;
    let stranger = app
        .login_from(&acme, "gil@globex.test", PASSWORD, "198.51.100.3")
        .await;

    let unknown = without_request_id(expect_problem(unknown, 401).await);
    assert_eq!(
        unknown,
        without_request_id(expect_problem(wrong, 401).await)
    );
    assert_eq!(
        unknown,
        without_request_id(expect_problem(stranger, 401).await),
        "no tenant-membership oracle"
    );
}

#[tokio::test]
async fn twenty_failures_throttle_an_address_but_never_lock_the_owner_out() {
    // Long enough that twenty argon2 checks fit in one window on a loaded machine.
    let app = spawn_app_with(&[("LOGIN_THROTTLE_WINDOW_SECS", "8")]).await;
    let acme = Tenant::new("acme");
    app.owner(&acme, "olive@acme.test").await;

    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(
            app.login_from(&acme, "olive@acme.test", "guess", "192.0.2.66")
                .await
                .status()
                .as_u16(),
        );
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let throttled = app
        .login_from(&acme, "olive@acme.test", PASSWORD, "192.0.2.66")
        .await;
    let retry_after: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=8).contains(&retry_after), "{retry_after}");
    expect_problem(throttled, 429).await;

    let elsewhere = app
        .login_from(&acme, "olive@acme.test", PASSWORD, "192.0.2.10")
        .await;
    assert_eq!(
        elsewhere.status(),
        200,
        "the owner on another address is not locked out"
    );

    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(500)).await;
    let after_window = app
        .login_from(&acme, "olive@acme.test", PASSWORD, "192.0.2.66")
        .await;
    assert_eq!(after_window.status(), 200, "the window passes");
}

#[tokio::test]
async fn the_jwks_verifies_the_tokens_the_service_issues() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    let owner = app.owner(&acme, "olive@acme.test").await;
    let pair = app.tokens(&acme, "olive@acme.test", PASSWORD).await;
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 900);

    let verifier = JwtVerifier::from_jwks(&jwks(&app).await).unwrap();
    let claims = verifier
        .verify(pair["access_token"].as_str().unwrap())
        .await
        .unwrap();

    assert_eq!(
        (claims.sub, claims.tid, claims.tslug.as_str(), claims.role),
        (owner, acme.id, "acme", Role::Owner)
    );
    assert_eq!(
        (claims.iss.as_str(), claims.aud.as_str()),
        ("nexus", "nexus-api")
    );
    assert!(claims.perms.iter().any(|p| p == "tenant.manage"));
    assert_eq!(claims.exp - claims.iat, 900);
}

#[tokio::test]
async fn forged_tokens_are_refused_by_the_shared_verifier() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    let owner = app.owner(&acme, "olive@acme.test").await;
    let verifier = JwtVerifier::from_jwks(&jwks(&app).await).unwrap();
    let real = service_key(&app);
    let now = chrono::Utc::now().timestamp();
    let claims = |extra: Value| {
        let mut c = json!({"sub": owner, "tid": acme.id, "tslug": "acme", "role": "owner", "perms": [],
            "iss": "nexus", "aud": "nexus-api", "iat": now, "exp": now + 600, "jti": "x"});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    let sign = |key: &SigningKey, body: &Value| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(key.kid().to_owned());
        jsonwebtoken::encode(
            &header,
            body,
            &jsonwebtoken::EncodingKey::from_ed_pem(key.pem().as_bytes()).unwrap(),
        )
        .unwrap()
    };
    assert!(
        verifier
            .verify(&sign(&real, &claims(json!({}))))
            .await
            .is_ok(),
        "the control token verifies"
    );

    let stranger =
        SigningKey::from_pem(real.kid(), SigningKey::generate("x").unwrap().pem()).unwrap();
    let forged = [
        ("a key not in the JWKS", sign(&stranger, &claims(json!({})))),
        ("expired", sign(&real, &claims(json!({"exp": now - 3600})))),
        (
            "wrong audience",
            sign(&real, &claims(json!({"aud": "somebody-else"}))),
        ),
        (
            "exp as a string",
            sign(&real, &claims(json!({"exp": (now + 600).to_string()}))),
        ),
    ];
    for (case, token) in forged {
        assert!(verifier.verify(&token).await.is_err(), "{case}");
    }
    let payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        claims(json!({})).to_string(),
    );
    let none = format!("eyJhbGciOiJub25lIn0.{payload}.");
    assert!(verifier.verify(&none).await.is_err(), "alg none");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(real.kid().to_owned());
    let public = serde_json::to_vec(&real.public_jwk().unwrap()).unwrap();
    let hs = jsonwebtoken::encode(
        &header,
        &claims(json!({})),
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert_eq!(verifier.verify(&hs).await, Err(AuthError::Algorithm));
}

#[tokio::test]
async fn a_member_of_one_tenant_cannot_log_in_to_or_read_another() {
    let app = spawn_app().await;
    let acme = Tenant::new("acme");
    let globex = Tenant::new("globex");
    app.owner(&acme, "olive@acme.test").await;
    app.owner(&globex, "gil@globex.test").await;
    let pair = app.tokens(&acme, "olive@acme.test", PASSWORD).await;

    expect_problem(
        app.login_from(&globex, "olive@acme.test", PASSWORD, "198.51.100.9")
            .await,
        401,
    )
    .await;
    let read = app
        .on(&globex, reqwest::Method::GET, "/api/v1/users/me")
        .bearer_auth(pair["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    expect_problem(read, 403).await;
    let members = app
        .on(&globex, reqwest::Method::GET, "/api/v1/users")
        .bearer_auth(pair["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    expect_problem(members, 403).await;
    expect_problem(
        app.refresh(&globex, pair["refresh_token"].as_str().unwrap())
            .await,
        403,
    )
    .await;
}
