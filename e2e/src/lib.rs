//! The whole fleet in one process: all seven services on ports of their own, against the
//! real PostgreSQL, RabbitMQ and MongoDB server, each run with fresh databases, a unique
//! exchange and queue, and a unique tenant-database prefix, so runs never meet.
//!
//! Tests talk to the gateway only, with tenant subdomains as a browser would:
//! [`Fleet::client`] resolves `<slug>.localhost` to the gateway, so redirects to a
//! tenant's host (share links) are followed like anywhere else.

use std::net::SocketAddr;
use std::path::PathBuf;

use common::testkit::{
    TestDb, TestServer, amqp_url, drop_databases_and_roles, mongodb_url, parse_config,
    postgres_url, smtp_url, unique,
};
use tokio::net::TcpListener;

pub mod sse;

pub const INTERNAL_TOKEN: &str = "e2e-internal-token";
pub const SHARE_GRANT_SECRET: &str = "e2e-share-grant-secret";

/// The seven services, each a [`TestServer`] (stopped when the fleet is dropped).
pub struct Fleet {
    pub gateway: TestServer,
    pub tenant_resolver: TestServer,
    pub user_service: TestServer,
    pub project_service: TestServer,
    pub url_shortener: TestServer,
    pub analytics: TestServer,
    pub notifications: TestServer,
    /// The gateway's port: `http://<slug>.localhost:<port>` is a tenant's URL.
    pub port: u16,
    pub exchange: String,
    pub mongo_database: String,
    resolver_config: tenant_resolver::Config,
    notifications_config: notification_service::Config,
    tenant_prefix: String,
    keys_dir: PathBuf,
    attachments_dir: PathBuf,
    _dbs: Vec<TestDb>,
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding port 0")
}

fn base(listener: &TcpListener) -> String {
    format!("http://{}", listener.local_addr().expect("local address"))
}

fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(prefix));
    std::fs::create_dir_all(&dir).expect("creating a temporary directory");
    dir
}

impl Fleet {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts the fleet with some of the gateway's settings changed
    /// (`("TENANT_CACHE_TTL_SECS", "1")`).
    pub async fn start_with(gateway_overrides: &[(&str, &str)]) -> Self {
        Self::start_configured(gateway_overrides, &[]).await
    }

    /// Starts the fleet with some of the gateway's and notification-service's settings
    /// changed.
    pub async fn start_configured(
        gateway_overrides: &[(&str, &str)],
        notification_overrides: &[(&str, &str)],
    ) -> Self {
        let (registry_db, users_db, shortener_db) =
            tokio::join!(TestDb::create(), TestDb::create(), TestDb::create());
        let listeners = [
            listener().await,
            listener().await,
            listener().await,
            listener().await,
            listener().await,
            listener().await,
            listener().await,
        ];
        let [
            resolver_url,
            users_url,
            projects_url,
            shortener_url,
            analytics_url,
            notifications_url,
            gateway_url,
        ] = listeners.each_ref().map(base);
        let [
            resolver_l,
            users_l,
            projects_l,
            shortener_l,
            analytics_l,
            notifications_l,
            gateway_l,
        ] = listeners;
        let port = gateway_l.local_addr().expect("gateway address").port();
        let exchange = unique("e2e.events");
        let tenant_prefix = format!("{}_", unique("e").replace('_', ""));
        let mongo_database = unique("e2e_analytics");
        let keys_dir = temp_dir("nexus-e2e-keys");
        let attachments_dir = temp_dir("nexus-e2e-attachments");
        let jwks = format!("{users_url}/.well-known/jwks.json");
        let tenant_url = format!("http://{{slug}}.localhost:{port}");
        let internal = ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned());
        let shared = |extra: Vec<(&'static str, String)>| {
            let mut args = vec![
                ("AMQP_URL", amqp_url()),
                ("EVENTS_EXCHANGE", exchange.clone()),
            ];
            args.extend(extra);
            args
        };

        let resolver_config: tenant_resolver::Config = parse_config(
            tenant_resolver::NAME,
            &shared(vec![
                ("DATABASE_URL", registry_db.url.clone()),
                ("TENANT_CLUSTERS", format!("main={}", postgres_url())),
                ("TENANT_DB_PREFIX", tenant_prefix.clone()),
                ("USER_SERVICE_URL", users_url.clone()),
                ("JWKS_URL", jwks.clone()),
                ("TENANT_URL_TEMPLATE", tenant_url.clone()),
                internal.clone(),
            ]),
            &[],
        );
        let users_config: user_service::Config = parse_config(
            user_service::NAME,
            &shared(vec![
                ("DATABASE_URL", users_db.url.clone()),
                ("SIGNING_KEYS_DIR", keys_dir.display().to_string()),
                ("TENANT_RESOLVER_URL", resolver_url.clone()),
                internal.clone(),
            ]),
            &[],
        );
        let projects_config: project_service::Config = parse_config(
            project_service::NAME,
            &shared(vec![
                ("TENANT_RESOLVER_URL", resolver_url.clone()),
                ("USER_SERVICE_URL", users_url.clone()),
                ("JWKS_URL", jwks.clone()),
                ("SHARE_GRANT_SECRET", SHARE_GRANT_SECRET.to_owned()),
                ("ATTACHMENTS_DIR", attachments_dir.display().to_string()),
                internal.clone(),
            ]),
            &[],
        );
        let shortener_config: url_shortener::Config = parse_config(
            url_shortener::NAME,
            &shared(vec![
                ("DATABASE_URL", shortener_db.url.clone()),
                ("PROJECT_SERVICE_URL", projects_url.clone()),
                ("JWKS_URL", jwks.clone()),
                ("SHARE_GRANT_SECRET", SHARE_GRANT_SECRET.to_owned()),
                ("TENANT_URL_TEMPLATE", tenant_url.clone()),
                ("SHORT_URL_BASE", format!("http://localhost:{port}")),
                ("VISIT_FLUSH_INTERVAL_MS", "50".to_owned()),
            ]),
            &[],
        );
        let analytics_config: analytics_service::Config = parse_config(
            analytics_service::NAME,
            &shared(vec![
                ("MONGODB_URL", mongodb_url()),
                ("MONGODB_DATABASE", mongo_database.clone()),
                ("ANALYTICS_QUEUE", format!("{exchange}.analytics")),
                (
                    "ANALYTICS_DEAD_LETTER_QUEUE",
                    format!("{exchange}.analytics.dead"),
                ),
                ("ANALYTICS_FLUSH_INTERVAL_MS", "50".to_owned()),
                ("JWKS_URL", jwks.clone()),
            ]),
            &[],
        );
        let notifications_config: notification_service::Config = parse_config(
            notification_service::NAME,
            &shared(vec![
                ("TENANT_RESOLVER_URL", resolver_url.clone()),
                ("NOTIFICATION_QUEUE", format!("{exchange}.notifications")),
                (
                    "NOTIFICATION_DEAD_LETTER_QUEUE",
                    format!("{exchange}.notifications.dead"),
                ),
                ("JWKS_URL", jwks.clone()),
                ("USER_SERVICE_URL", users_url.clone()),
                ("SMTP_URL", smtp_url()),
                ("PUBLIC_URL", format!("http://localhost:{port}")),
                ("MAIL_RETRY_BASE_MS", "200".to_owned()),
                ("SHARE_GRANT_SECRET", SHARE_GRANT_SECRET.to_owned()),
                // Webhook receivers in the tests listen on loopback, and retries come
                // at a thousandth of the real schedule (5 ms, 300 ms, 1.8 s, …).
                ("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8,::1".to_owned()),
                ("WEBHOOK_RETRY_SCALE", "0.001".to_owned()),
                internal.clone(),
            ]),
            notification_overrides,
        );
        let gateway_config: gateway::Config = parse_config(
            gateway::NAME,
            &[
                ("BASE_DOMAIN", "localhost".to_owned()),
                ("TENANT_RESOLVER_URL", resolver_url),
                ("USER_SERVICE_URL", users_url),
                ("PROJECT_SERVICE_URL", projects_url),
                ("URL_SHORTENER_URL", shortener_url),
                ("ANALYTICS_SERVICE_URL", analytics_url),
                ("NOTIFICATION_SERVICE_URL", notifications_url),
                ("JWKS_URL", jwks),
                internal.clone(),
            ],
            gateway_overrides,
        );

        // Each waits for its /healthz; they find each other when first called.
        let user_service =
            TestServer::start_on(users_l, |l, s| user_service::run_until(users_config, l, s)).await;
        let tenant_resolver = TestServer::start_on(resolver_l, |l, s| {
            tenant_resolver::run_until(resolver_config.clone(), l, s)
        })
        .await;
        let project_service = TestServer::start_on(projects_l, |l, s| {
            project_service::run_until(projects_config, l, s)
        })
        .await;
        let url_shortener = TestServer::start_on(shortener_l, |l, s| {
            url_shortener::run_until(shortener_config, l, s)
        })
        .await;
        let analytics = TestServer::start_on(analytics_l, |l, s| {
            analytics_service::run_until(analytics_config, l, s)
        })
        .await;
        let notifications = TestServer::start_on(notifications_l, |l, s| {
            notification_service::run_until(notifications_config.clone(), l, s)
        })
        .await;
        let gateway =
            TestServer::start_on(gateway_l, |l, s| gateway::run_until(gateway_config, l, s)).await;
        assert_eq!(gateway.base_url, gateway_url);
        let fleet = Self {
            gateway,
            tenant_resolver,
            user_service,
            project_service,
            url_shortener,
            analytics,
            notifications,
            port,
            exchange,
            mongo_database,
            resolver_config,
            notifications_config,
            tenant_prefix,
            keys_dir,
            attachments_dir,
            _dbs: vec![registry_db, users_db, shortener_db],
        };
        fleet.wait_until_ready().await;
        fleet
    }

    /// Waits (bounded) until every service's `/readyz` answers 200.
    pub async fn wait_until_ready(&self) {
        for server in [
            &self.tenant_resolver,
            &self.user_service,
            &self.project_service,
            &self.url_shortener,
            &self.analytics,
            &self.notifications,
            &self.gateway,
        ] {
            server
                .wait_until("/readyz", std::time::Duration::from_secs(30))
                .await;
        }
    }

    /// Stops tenant-resolver (draining, as on SIGTERM) and waits until its port refuses.
    pub async fn stop_tenant_resolver(&self) {
        self.tenant_resolver.stop();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while tokio::net::TcpStream::connect(self.tenant_resolver.addr)
            .await
            .is_ok()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "tenant-resolver did not stop"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Starts tenant-resolver again on its port, with its settings.
    pub async fn restart_tenant_resolver(&mut self) {
        let listener = TcpListener::bind(self.tenant_resolver.addr)
            .await
            .expect("tenant-resolver's port is free again");
        let config = self.resolver_config.clone();
        self.tenant_resolver =
            TestServer::start_on(listener, |l, s| tenant_resolver::run_until(config, l, s)).await;
    }

    /// Stops notification-service (draining, as on SIGTERM), waits until its port
    /// refuses, and starts it again on that port with its settings: a restart.
    pub async fn restart_notification_service(&mut self) {
        self.notifications.stop();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let listener = loop {
            if tokio::net::TcpStream::connect(self.notifications.addr)
                .await
                .is_err()
                && let Ok(listener) = TcpListener::bind(self.notifications.addr).await
            {
                break listener;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "notification-service did not stop"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        let config = self.notifications_config.clone();
        self.notifications = TestServer::start_on(listener, |l, s| {
            notification_service::run_until(config, l, s)
        })
        .await;
        self.notifications
            .wait_until("/readyz", std::time::Duration::from_secs(30))
            .await;
    }

    /// Another notification-service instance beside the fleet's, with the same settings
    /// (its own consumer on the shared queue, its own stream fanout queue), not behind the
    /// gateway: call it directly.
    pub async fn another_notification_service(&self) -> TestServer {
        let config = self.notifications_config.clone();
        let server = TestServer::start_on(listener().await, |l, s| {
            notification_service::run_until(config, l, s)
        })
        .await;
        let http = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !http
            .get(format!("{}/readyz", server.base_url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the second notification-service never became ready"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        server
    }

    /// The URL of organisation `slug`'s own database (for tests that check what is stored
    /// where no API shows it).
    pub fn tenant_database_url(&self, slug: &str) -> String {
        format!(
            "{}/{}{}",
            postgres_url().trim_end_matches('/'),
            self.tenant_prefix,
            slug.replace('-', "_")
        )
    }

    /// user-service's signing key, read from its key folder: lets tests sign tokens the
    /// fleet trusts, to show that each claim check holds on its own.
    pub fn signing_key(&self) -> common::auth::SigningKey {
        let pem = std::fs::read_dir(&self.keys_dir)
            .expect("the key folder")
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|path| path.extension().is_some_and(|e| e == "pem"))
            .expect("user-service wrote a key");
        let kid = pem.file_stem().unwrap().to_string_lossy().into_owned();
        common::auth::SigningKey::from_pem(kid, &std::fs::read_to_string(&pem).unwrap())
            .expect("an Ed25519 key")
    }

    /// A client that reaches the gateway for `localhost` and each `<slug>.localhost`,
    /// and follows no redirects (tests look at them).
    pub fn client(&self, slugs: &[&str]) -> reqwest::Client {
        let loopback = SocketAddr::from(([127, 0, 0, 1], self.port));
        slugs
            .iter()
            .fold(reqwest::Client::builder(), |builder, slug| {
                builder.resolve(&format!("{slug}.localhost"), loopback)
            })
            .resolve("localhost", loopback)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client")
    }

    /// `http://<host>:<gateway port><path>`; `host` is `localhost` or `<slug>.localhost`.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for server in [
            &self.gateway,
            &self.url_shortener,
            &self.analytics,
            &self.notifications,
            &self.project_service,
            &self.tenant_resolver,
            &self.user_service,
        ] {
            server.stop();
        }
        for dir in [&self.keys_dir, &self.attachments_dir] {
            std::fs::remove_dir_all(dir).ok();
        }
        drop_databases_and_roles(&self.tenant_prefix);
    }
}

/// A `multipart/form-data` body with one part `file` named `name`, as attachment uploads
/// take it: `(content type, body)`.
pub fn file_form(name: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "nexus-e2e-boundary-7MA4YWxk";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The password every test account has.
pub const PASSWORD: &str = "correct horse battery";

/// A signed-in person on a tenant's host.
#[derive(Debug, Clone)]
pub struct Session {
    pub host: String,
    pub token: String,
}

impl Session {
    /// The same token presented on another tenant's host.
    pub fn on(&self, slug: &str) -> Self {
        Self {
            host: format!("{slug}.localhost"),
            token: self.token.clone(),
        }
    }
}

impl Fleet {
    /// `who`'s request through the gateway, with `body` as JSON.
    pub async fn send(
        &self,
        http: &reqwest::Client,
        who: &Session,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut request = http
            .request(method, self.url(&who.host, path))
            .bearer_auth(&who.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request through the gateway")
    }

    /// [`Fleet::send`], expecting `status`: the JSON body (or `null`).
    pub async fn expect(
        &self,
        http: &reqwest::Client,
        who: &Session,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        status: u16,
    ) -> serde_json::Value {
        let resp = self.send(http, who, method.clone(), path, body).await;
        let got = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(got, status, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    /// `who` POSTs `body` to `path`, which must answer 201: the new thing's `id`.
    pub async fn create(
        &self,
        http: &reqwest::Client,
        who: &Session,
        path: &str,
        body: serde_json::Value,
    ) -> String {
        let made = self
            .expect(http, who, reqwest::Method::POST, path, Some(body), 201)
            .await;
        made["id"].as_str().expect("an id").to_owned()
    }

    /// Signs up organisation `slug` on the starter plan (room for a member of every role)
    /// with `email` as its owner (201 or the test fails).
    pub async fn signup(&self, http: &reqwest::Client, slug: &str, email: &str) {
        let resp = http
            .post(self.url("localhost", "/api/v1/tenants"))
            .json(
                &serde_json::json!({"slug": slug, "name": format!("{slug} Inc"), "plan": "starter",
                  "owner": {"email": email, "password": PASSWORD, "name": "Owner"}}),
            )
            .send()
            .await
            .expect("signup request");
        assert_eq!(
            resp.status(),
            201,
            "signup {slug}: {}",
            resp.text().await.unwrap_or_default()
        );
    }

    /// Logs `email` in on `slug`'s host.
    pub async fn login(&self, http: &reqwest::Client, slug: &str, email: &str) -> Session {
        let host = format!("{slug}.localhost");
        let resp = http
            .post(self.url(&host, "/api/v1/auth/login"))
            .json(&serde_json::json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .expect("login request");
        assert_eq!(
            resp.status(),
            200,
            "login {email}: {}",
            resp.text().await.unwrap_or_default()
        );
        let tokens: serde_json::Value = resp.json().await.expect("tokens");
        Session {
            host,
            token: tokens["access_token"]
                .as_str()
                .expect("an access token")
                .to_owned(),
        }
    }

    /// Invites `email` as `role` with `inviter`'s token; the invitee accepts and logs in.
    pub async fn join(
        &self,
        http: &reqwest::Client,
        inviter: &Session,
        email: &str,
        role: &str,
    ) -> Session {
        let invite: serde_json::Value = http
            .post(self.url(&inviter.host, "/api/v1/invites"))
            .bearer_auth(&inviter.token)
            .json(&serde_json::json!({"email": email, "role": role}))
            .send()
            .await
            .expect("invite request")
            .json()
            .await
            .expect("invite JSON");
        let accepted = http
            .post(self.url(&inviter.host, "/api/v1/auth/accept-invite"))
            .json(
                &serde_json::json!({"token": invite["token"], "name": email, "password": PASSWORD}),
            )
            .send()
            .await
            .expect("accept request");
        assert_eq!(
            accepted.status(),
            200,
            "{email} joins: {invite} {}",
            accepted.text().await.unwrap_or_default()
        );
        let slug = inviter.host.trim_end_matches(".localhost");
        self.login(http, slug, email).await
    }
}
