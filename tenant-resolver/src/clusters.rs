//! The PostgreSQL clusters tenant databases live on. Each has a small admin pool (so
//! provisioning cannot open a connection per request) and a template database kept at
//! the latest tenant migration, which new tenant databases are copied from.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::{OnceCell, RwLock};

/// Admin connections per cluster: provisioning is serialised well below the server's cap.
const ADMIN_POOL_SIZE: u32 = 4;

pub struct Cluster {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Admin connection to the cluster's `postgres` database.
    pub admin: PgPool,
    options: PgConnectOptions,
    /// Signups copy the template under a read lock; migrating it takes the write lock
    /// (PostgreSQL cannot copy a database that has a connection open).
    pub template_lock: RwLock<()>,
    template_version: AtomicI64,
    /// Whether the admin role is a superuser (asked once).
    pub superuser: OnceCell<bool>,
}

impl Cluster {
    /// Admin connection options for one of the cluster's databases.
    pub fn admin_options(&self, database: &str) -> PgConnectOptions {
        self.options.clone().database(database)
    }

    /// Connection options for a tenant's own role.
    pub fn tenant_options(&self, database: &str, role: &str, password: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .database(database)
            .username(role)
            .password(password)
    }

    pub fn template_version(&self) -> i64 {
        self.template_version.load(Ordering::Relaxed)
    }

    pub fn set_template_version(&self, version: i64) {
        self.template_version.store(version, Ordering::Relaxed);
    }
}

pub struct Clusters {
    by_name: BTreeMap<String, Arc<Cluster>>,
}

impl Clusters {
    /// Parses `name=url,name=url` and opens a lazy admin pool per cluster.
    pub fn from_spec(spec: &secrecy::SecretString) -> anyhow::Result<Self> {
        let mut by_name = BTreeMap::new();
        for entry in spec
            .expose_secret()
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (name, url) = entry
                .split_once('=')
                .context("TENANT_CLUSTERS entries are `name=postgres://…`")?;
            if name.is_empty()
                || name.len() > 32
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                bail!("cluster name {name:?} must be 1 to 32 of a-z, 0-9 and '-'");
            }
            let options: PgConnectOptions = url
                .parse()
                .with_context(|| format!("cluster {name}: invalid PostgreSQL URL"))?;
            let options = options.database("postgres");
            let admin = PgPoolOptions::new()
                .max_connections(ADMIN_POOL_SIZE)
                .acquire_timeout(Duration::from_secs(10))
                .connect_lazy_with(options.clone());
            let cluster = Cluster {
                name: name.to_owned(),
                host: options.get_host().to_owned(),
                port: options.get_port(),
                admin,
                options,
                template_lock: RwLock::new(()),
                template_version: AtomicI64::new(0),
                superuser: OnceCell::new(),
            };
            if by_name.insert(name.to_owned(), Arc::new(cluster)).is_some() {
                bail!("cluster {name} is configured twice");
            }
        }
        if by_name.is_empty() {
            bail!("TENANT_CLUSTERS names no cluster");
        }
        Ok(Self { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Cluster>> {
        self.by_name.values()
    }

    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }

    /// Records the configured clusters in the registry (tenants reference them).
    pub async fn register(&self, registry: &PgPool) -> anyhow::Result<()> {
        for cluster in self.iter() {
            crate::db::clusters::upsert(registry, &cluster.name, &cluster.host, cluster.port)
                .await
                .context("registering clusters")?;
        }
        Ok(())
    }
}
