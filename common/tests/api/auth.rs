//! Token verification refuses everything RFC 8725 warns about, and finds rotated keys.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::ApiError;
use common::auth::{AuthError, AuthUser, Claims, JwtVerifier, Perm, Role, SigningKey};
use common::testkit::{TestServer, expect_problem};
use jsonwebtoken::jwk::JwkSet;
use tokio::sync::RwLock;
use uuid::Uuid;

/// A stand-in for user-service's JWKS endpoint whose key set the test can rotate.
struct FakeJwks {
    server: TestServer,
    keys: Arc<RwLock<JwkSet>>,
    fetches: Arc<AtomicUsize>,
}

impl FakeJwks {
    async fn serving(key: &SigningKey) -> Self {
        let keys = Arc::new(RwLock::new(SigningKey::jwks([key]).unwrap()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (k, f) = (Arc::clone(&keys), Arc::clone(&fetches));
        let router = Router::new().route(
            "/.well-known/jwks.json",
            get(move || {
                let (k, f) = (Arc::clone(&k), Arc::clone(&f));
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    axum::Json(k.read().await.clone())
                }
            }),
        );
        Self {
            server: TestServer::router(router).await,
            keys,
            fetches,
        }
    }

    fn verifier(&self) -> JwtVerifier {
        JwtVerifier::remote(
            reqwest::Client::new(),
            self.server.url("/.well-known/jwks.json"),
        )
    }
}

fn claims() -> Claims {
    Claims::new(Uuid::now_v7(), Uuid::now_v7(), "acme", Role::Member)
}

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

#[tokio::test]
async fn a_token_signed_by_a_published_key_verifies() {
    let key = SigningKey::generate("k1").unwrap();
    let jwks = FakeJwks::serving(&key).await;
    let claims = claims();
    let verified = jwks
        .verifier()
        .verify(&key.sign(&claims).unwrap())
        .await
        .unwrap();
    assert_eq!(verified, claims);
}

#[tokio::test]
async fn expired_wrong_audience_wrong_issuer_and_future_tokens_are_refused() {
    let key = SigningKey::generate("k1").unwrap();
    let jwks = FakeJwks::serving(&key).await;
    let verifier = jwks.verifier();
    let now = chrono::Utc::now().timestamp();
    type Tweak = Box<dyn Fn(&mut Claims)>;
    let cases: [(&str, Tweak, AuthError); 4] = [
        (
            "expired",
            Box::new(move |c| c.exp = now - 120),
            AuthError::Expired,
        ),
        (
            "audience",
            Box::new(|c| c.aud = "other-api".into()),
            AuthError::Invalid,
        ),
        (
            "issuer",
            Box::new(|c| c.iss = "evil".into()),
            AuthError::Invalid,
        ),
        (
            "not yet valid",
            Box::new(move |c| c.nbf = Some(now + 600)),
            AuthError::Invalid,
        ),
    ];
    for (case, tweak, expected) in cases {
        let mut c = claims();
        tweak(&mut c);
        let result = verifier.verify(&key.sign(&c).unwrap()).await;
        assert_eq!(result, Err(expected), "{case}");
    }
}

#[tokio::test]
async fn alg_none_and_hs256_with_the_public_key_are_refused() {
    let key = SigningKey::generate("k1").unwrap();
    let jwks = FakeJwks::serving(&key).await;
    let verifier = jwks.verifier();
    let payload = b64(&serde_json::to_value(claims()).unwrap());

    let none = format!(
        "{}.{payload}.",
        b64(&serde_json::json!({"alg": "none", "kid": "k1"}))
    );
    assert!(verifier.verify(&none).await.is_err());

    let public = key.public_jwk().unwrap();
    let public_bytes = serde_json::to_vec(&public).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k1".into());
    let hs = jsonwebtoken::encode(
        &header,
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(&public_bytes),
    )
    .unwrap();
    assert_eq!(verifier.verify(&hs).await, Err(AuthError::Algorithm));
}

#[tokio::test]
async fn a_tampered_payload_is_refused() {
    let key = SigningKey::generate("k1").unwrap();
    let jwks = FakeJwks::serving(&key).await;
    let token = key.sign(&claims()).unwrap();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut forged = claims();
    forged.role = Role::Owner;
    parts[1] = b64(&serde_json::to_value(forged).unwrap());
    assert_eq!(
        jwks.verifier().verify(&parts.join(".")).await,
        Err(AuthError::Invalid)
    );
}

#[tokio::test]
async fn a_rotated_key_is_found_by_one_refetch() {
    let old = SigningKey::generate("old").unwrap();
    let jwks = FakeJwks::serving(&old).await;
    let verifier = jwks.verifier();
    verifier
        .verify(&old.sign(&claims()).unwrap())
        .await
        .unwrap();
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);

    let new = SigningKey::generate("new").unwrap();
    *jwks.keys.write().await = SigningKey::jwks([&old, &new]).unwrap();
    verifier
        .verify(&new.sign(&claims()).unwrap())
        .await
        .unwrap();
    verifier
        .verify(&old.sign(&claims()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        jwks.fetches.load(Ordering::SeqCst),
        2,
        "one refetch, then cached"
    );
}

#[tokio::test]
async fn a_verified_token_is_remembered_until_it_expires_or_its_key_goes() {
    let key = SigningKey::generate("k1").unwrap();
    let verifier = JwtVerifier::from_jwks(&SigningKey::jwks([&key]).unwrap()).unwrap();
    let token = key.sign(&claims()).unwrap();
    let first = verifier.verify(&token).await.unwrap();
    assert_eq!(verifier.remembered(), 1);
    assert_eq!(verifier.verify(&token).await.unwrap().jti, first.jti);
    assert_eq!(
        verifier.remembered(),
        1,
        "the second answer came from memory"
    );

    // Refused tokens are not remembered.
    let mut tampered: Vec<&str> = token.split('.').collect();
    let other = key.sign(&claims()).unwrap();
    tampered[2] = other.split('.').nth(2).unwrap();
    assert!(verifier.verify(&tampered.join(".")).await.is_err());
    assert_eq!(verifier.remembered(), 1);

    // A key taken out of the set stops vouching for its tokens at once.
    let next = SigningKey::generate("k2").unwrap();
    verifier.set_keys(&SigningKey::jwks([&next]).unwrap()).await;
    assert_eq!(verifier.remembered(), 0);
    assert_eq!(verifier.verify(&token).await, Err(AuthError::UnknownKey));

    // Remembered only until `exp`.
    let mut short = claims();
    short.exp = short.iat + 2;
    verifier.verify(&next.sign(&short).unwrap()).await.unwrap();
    assert_eq!(verifier.remembered(), 1);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(verifier.remembered(), 0);
}

#[tokio::test]
async fn unknown_kids_cannot_make_the_verifier_hammer_the_jwks() {
    let key = SigningKey::generate("k1").unwrap();
    let jwks = FakeJwks::serving(&key).await;
    let verifier = jwks.verifier();
    for i in 0..5 {
        let stranger = SigningKey::generate(format!("stranger{i}")).unwrap();
        let result = verifier.verify(&stranger.sign(&claims()).unwrap()).await;
        assert_eq!(result, Err(AuthError::UnknownKey));
    }
    assert_eq!(
        jwks.fetches.load(Ordering::SeqCst),
        2,
        "the first load and one forced refetch; the rest are rate-limited"
    );
}

#[tokio::test]
async fn kids_with_paths_or_quotes_are_refused_unseen() {
    let key = SigningKey::generate("k1").unwrap();
    let jwks = FakeJwks::serving(&key).await;
    let verifier = jwks.verifier();
    for kid in ["../../etc/passwd", "k1\" or \"1\"=\"1"] {
        let bad = SigningKey::from_pem(kid, key.pem()).unwrap();
        assert_eq!(
            verifier.verify(&bad.sign(&claims()).unwrap()).await,
            Err(AuthError::UnknownKey),
            "{kid}"
        );
    }
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 0);
}

#[derive(Clone)]
struct AppState {
    verifier: Arc<JwtVerifier>,
}

impl FromRef<AppState> for Arc<JwtVerifier> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.verifier)
    }
}

async fn manage(user: AuthUser) -> Result<String, ApiError> {
    user.require(Perm::ProjectsManage)?;
    Ok(user.tenant_slug)
}

async fn read(State(_): State<AppState>, user: AuthUser) -> Result<String, ApiError> {
    user.require(Perm::TasksRead)?;
    Ok(user.user_id.to_string())
}

async fn protected_app(key: &SigningKey) -> TestServer {
    let verifier = JwtVerifier::from_jwks(&SigningKey::jwks([key]).unwrap()).unwrap();
    let state = AppState {
        verifier: Arc::new(verifier),
    };
    let router = Router::new()
        .route("/read", get(read))
        .route("/manage", get(manage))
        .with_state(state);
    let service = common::server::Service {
        name: "auth-test",
        readiness: common::readiness::Readiness::new(),
        openapi: Default::default(),
    };
    TestServer::router(common::server::app(
        service,
        router,
        &crate::helpers::server_args(),
    ))
    .await
}

#[tokio::test]
async fn the_extractor_wants_a_bearer_token() {
    let key = SigningKey::generate("k1").unwrap();
    let app = protected_app(&key).await;
    let resp = app.client.get(app.url("/read")).send().await.unwrap();
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    expect_problem(resp, 401).await;
}

#[tokio::test]
async fn permissions_come_from_the_token() {
    let key = SigningKey::generate("k1").unwrap();
    let app = protected_app(&key).await;
    let member = claims();
    let token = key.sign(&member).unwrap();
    let resp = app
        .client
        .get(app.url("/read"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), member.sub.to_string());

    let resp = app
        .client
        .get(app.url("/manage"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body = expect_problem(resp, 403).await;
    assert!(
        body["detail"].as_str().unwrap().contains("projects.manage"),
        "{body}"
    );
}

#[tokio::test]
async fn a_token_of_another_tenant_than_the_host_is_forbidden() {
    let key = SigningKey::generate("k1").unwrap();
    let app = protected_app(&key).await;
    let token = key.sign(&claims()).unwrap();
    let resp = app
        .client
        .get(app.url("/read"))
        .bearer_auth(&token)
        .header("x-tenant-id", Uuid::now_v7().to_string())
        .send()
        .await
        .unwrap();
    expect_problem(resp, 403).await;
}
