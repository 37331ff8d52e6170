//! Connections to tenant databases, under a cap per PostgreSQL cluster.
//!
//! Database per tenant puts many databases on each cluster, and a cluster serves only so
//! many connections. A pool per tenant reserves its maximum whether the tenant is busy
//! or not (a cap of 64 with 4 per tenant serves 16 tenants, then closes a pool for
//! nearly every request). Here a connection counts against its cluster's cap when it is
//! opened, not ahead of time:
//!
//! - a tenant holds the connections its requests in flight use, plus the idle ones it
//!   used last; an idle connection is closed after [`Limits::idle`], so an idle tenant
//!   holds none;
//! - when its cluster is at the cap, a request for a tenant with no idle connection
//!   closes an idle connection of another tenant and opens its own: the least recently
//!   used of those tenants holding several idle (a burst's spares), and only when none
//!   does, the least recently used of all, so a tenant keeps its last warm connection
//!   as long as any spare is left;
//! - when every connection of the cluster is in use, the request waits for the first
//!   one any tenant gives back, up to [`Limits::acquire_timeout`], then gets 503;
//! - each cluster (a `host:port`) has its own cap and its own waiters;
//! - a tenant opens one connection at a time, and after a failed open no new one is
//!   tried for [`DOWN_FOR`]: its requests wait that out and try again, or get 503 when
//!   their acquire timeout comes first. So a tenant whose database is down holds at most
//!   one slot of its cluster (for at most [`Limits::connect_timeout`]) and never holds
//!   up the others, and one whose server restarts is served again once it is back.
//!
//! A [`TenantConnection`] goes back to its tenant's idle list when dropped, at once when
//! it is clean and was known good within [`RECHECK_AFTER`]; otherwise (a
//! [`TenantTransaction`] dropped unfinished has queued its `ROLLBACK`, or it has not been
//! checked for a while) a task flushes and pings it first, and closes it if the ping
//! fails, so a rolled-back transaction never holds its locks while idle and a connection
//! a server restart broke is not handed out again. Prepared statements are cached per
//! connection, so a busy tenant reuses them.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::postgres::PgTransactionManager;
use sqlx::{Connection, PgConnection, TransactionManager};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::ApiError;

/// How long a tenant whose database could not be opened is refused without a new try.
pub const DOWN_FOR: Duration = Duration::from_secs(2);

/// SQLSTATE `too_many_connections`: here, the tenant role's `CONNECTION LIMIT` reached.
const TOO_MANY_CONNECTIONS: &str = "53300";

/// How long a request whose tenant role is full waits before it tries to open again
/// (sooner when one of this service's connections is given back).
const ROLE_FULL_RETRY: Duration = Duration::from_millis(50);

/// Why an open gave no connection.
enum Refused {
    /// The tenant's role holds as many connections as PostgreSQL allows it.
    RoleFull,
    /// The database did not answer or refused for another reason.
    Unreachable,
}

/// 503: no connection came free within the request's wait.
fn busy() -> ApiError {
    ApiError::Unavailable {
        retry_after: 1,
        detail: "Every database connection is busy; try again shortly.".into(),
    }
}

/// An idle connection is pinged before reuse when it has been idle this long (a server
/// restart or an idle timeout may have closed it meanwhile).
const CHECK_AFTER: Duration = Duration::from_secs(5);

/// A connection given back is pinged first when its last check (open or ping) is older
/// than this: a connection broken under a request (a server restart) is found within a
/// second, while a busy one pays for a ping once a second, not once a request.
const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// Where a tenant's database is (tenant-resolver's `GET /internal/tenants/{id}/database`).
#[derive(Clone, Debug, Deserialize)]
pub struct Location {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub username: String,
    pub password: String,
}

impl Location {
    /// The cluster the database lives on.
    pub fn cluster(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn options(&self, application: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .database(&self.database)
            .username(&self.username)
            .password(&self.password)
            .application_name(application)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most connections open to one cluster, across all its tenants.
    pub per_cluster: u32,
    /// An idle connection is closed after this long (`TENANT_IDLE_SECS`).
    pub idle: Duration,
    /// Longest a request waits for a connection before 503.
    pub acquire_timeout: Duration,
    /// Longest a connection takes to open before the tenant counts as down.
    pub connect_timeout: Duration,
}

/// The tenant databases' connections of one service.
pub struct TenantConnections {
    limits: Limits,
    application: String,
    clusters: Mutex<HashMap<String, Arc<Cluster>>>,
}

struct Cluster {
    name: String,
    cap: u32,
    state: Mutex<State>,
    /// Woken when a connection is given back or closed.
    freed: Arc<Notify>,
    /// `tenant_connections_open` and `…_idle` of this cluster (handles made once, not
    /// looked up by label on every give-back).
    open_gauge: metrics::Gauge,
    idle_gauge: metrics::Gauge,
}

#[derive(Default)]
struct State {
    /// Connections open or being opened.
    open: u32,
    idle: HashMap<Uuid, Vec<Idle>>,
    /// Connections in `idle`, all tenants together.
    idle_total: usize,
    /// Tenants with an open in flight.
    opening: HashMap<Uuid, ()>,
    /// Tenants whose last open failed, until when they are refused.
    down: HashMap<Uuid, Instant>,
}

struct Idle {
    conn: PgConnection,
    since: Instant,
    /// When the connection was last known good (opened or pinged).
    checked: Instant,
}

/// What a request found when it asked its cluster for a connection.
enum Step {
    Reuse(Idle),
    Open {
        evicted: Option<PgConnection>,
    },
    /// The tenant's last open failed; refused until then.
    Down(Instant),
    Wait,
}

impl TenantConnections {
    /// A manager whose connections name `application` (PostgreSQL's `application_name`).
    pub fn new(application: &str, limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits: Limits {
                per_cluster: limits.per_cluster.max(1),
                ..limits
            },
            application: application.to_owned(),
            clusters: Mutex::new(HashMap::new()),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A connection to `tenant`'s database at `location`: an idle one of the tenant's, or
    /// a new one when its cluster has room (or an idle one of another tenant to close).
    pub async fn acquire(
        &self,
        tenant: Uuid,
        location: &Location,
    ) -> Result<TenantConnection, ApiError> {
        let cluster = self.cluster(location);
        let deadline = Instant::now() + self.limits.acquire_timeout;
        loop {
            // Owned, so the future stays Send whatever the caller's lifetimes.
            let freed = Arc::clone(&cluster.freed).notified_owned();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let step = cluster.step(tenant);
            match step {
                Step::Reuse(idle) => {
                    // Wrapped first: a request dropped during the ping gives it back.
                    let mut conn = TenantConnection::new(
                        idle.conn,
                        tenant,
                        Arc::clone(&cluster),
                        idle.checked,
                    );
                    if idle.since.elapsed() >= CHECK_AFTER {
                        if conn.ping().await.is_err() {
                            conn.discard().await;
                            continue;
                        }
                        conn.checked = Instant::now();
                    }
                    return Ok(conn);
                }
                Step::Open { evicted } => {
                    // Armed before any await: a request dropped while its connection
                    // opens frees the slot and the tenant's open.
                    let opening = Opening {
                        cluster: Arc::clone(&cluster),
                        tenant,
                        armed: true,
                    };
                    if let Some(conn) = evicted {
                        // Closed before the new one opens: the cluster never sees more
                        // than the cap.
                        metrics::counter!("tenant_connection_evictions_total").increment(1);
                        let _ = conn.close().await;
                    }
                    match self.open(location, opening).await {
                        Err(Refused::RoleFull) => {
                            // The tenant's role holds all the connections PostgreSQL lets it
                            // have (with other services' too): wait for one to be given
                            // back, as for a full cluster, rather than fail the request.
                            metrics::counter!("tenant_connection_role_full_total").increment(1);
                            let left = deadline.saturating_duration_since(Instant::now());
                            if left.is_zero() {
                                return Err(busy());
                            }
                            // A fresh wait: the failed open's own give-back has fired.
                            let given_back = cluster.freed.notified();
                            let _ =
                                tokio::time::timeout(left.min(ROLE_FULL_RETRY), given_back).await;
                        }
                        Err(Refused::Unreachable) => return Err(unreachable_database()),
                        Ok(conn) => return Ok(conn),
                    }
                }
                Step::Down(until) => {
                    // A restart takes the database away for a moment: the request waits
                    // out the window (one open for the tenant, then another try), unless
                    // its own deadline comes first.
                    if until >= deadline {
                        return Err(unreachable_database());
                    }
                    tokio::time::sleep_until(until.into()).await;
                }
                Step::Wait => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if tokio::time::timeout(left, freed).await.is_err() {
                        metrics::counter!("tenant_connection_waits_timed_out_total").increment(1);
                        return Err(busy());
                    }
                }
            }
        }
    }

    async fn open(
        &self,
        location: &Location,
        mut opening: Opening,
    ) -> Result<TenantConnection, Refused> {
        let options = location.options(&self.application);
        let opened = tokio::time::timeout(
            self.limits.connect_timeout,
            PgConnection::connect_with(&options),
        )
        .await;
        opening.armed = false;
        let (tenant, cluster) = (opening.tenant, Arc::clone(&opening.cluster));
        match opened {
            Ok(Ok(conn)) => {
                cluster.opened(tenant, None);
                metrics::counter!("tenant_connections_opened_total").increment(1);
                Ok(TenantConnection::new(conn, tenant, cluster, Instant::now()))
            }
            Ok(Err(sqlx::Error::Database(err)))
                if err.code().as_deref() == Some(TOO_MANY_CONNECTIONS) =>
            {
                // Not the database's fault: the tenant is busy, not down.
                cluster.opened(tenant, None);
                cluster.closed_many(1);
                Err(Refused::RoleFull)
            }
            failed => {
                let err = match failed {
                    Ok(Err(err)) => err.to_string(),
                    _ => "timed out".to_owned(),
                };
                tracing::warn!(%tenant, cluster = %cluster.name, %err, "tenant database unreachable");
                cluster.opened(tenant, Some(Instant::now() + DOWN_FOR));
                cluster.closed_many(1);
                Err(Refused::Unreachable)
            }
        }
    }

    fn cluster(&self, location: &Location) -> Arc<Cluster> {
        let name = location.cluster();
        let mut clusters = self.clusters.lock().expect("clusters lock");
        Arc::clone(clusters.entry(name.clone()).or_insert_with(|| {
            let labels = [("cluster", name.clone())];
            Arc::new(Cluster {
                open_gauge: metrics::gauge!("tenant_connections_open", &labels),
                idle_gauge: metrics::gauge!("tenant_connections_idle", &labels),
                name,
                cap: self.limits.per_cluster,
                state: Mutex::new(State::default()),
                freed: Arc::new(Notify::new()),
            })
        }))
    }

    /// Connections open (in use or idle) to `cluster` (`host:port`).
    pub fn open_on(&self, cluster: &str) -> u32 {
        let clusters = self.clusters.lock().expect("clusters lock");
        clusters
            .get(cluster)
            .map_or(0, |c| c.state.lock().expect("cluster lock").open)
    }

    /// Idle connections `tenant` holds.
    pub fn idle_of(&self, tenant: Uuid) -> usize {
        let clusters: Vec<Arc<Cluster>> = self.all_clusters();
        clusters
            .iter()
            .map(|c| {
                c.state
                    .lock()
                    .expect("cluster lock")
                    .idle
                    .get(&tenant)
                    .map_or(0, Vec::len)
            })
            .sum()
    }

    fn all_clusters(&self) -> Vec<Arc<Cluster>> {
        self.clusters
            .lock()
            .expect("clusters lock")
            .values()
            .cloned()
            .collect()
    }

    /// Closes the connections idle for [`Limits::idle`] or longer.
    pub async fn close_idle(&self) {
        for cluster in self.all_clusters() {
            let stale = cluster.take_idle(|idle| idle.since.elapsed() >= self.limits.idle);
            cluster.close_all(stale).await;
        }
    }

    /// Closes idle connections every quarter of [`Limits::idle`] until `shutdown`. The
    /// rest are the service's to [`close`](Self::close) once its last request has given
    /// its connection back.
    pub async fn run_reaper(self: Arc<Self>, shutdown: CancellationToken) {
        let every = (self.limits.idle / 4).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => self.close_idle().await,
            }
        }
    }

    /// Closes every idle connection now (shutdown).
    pub async fn close(&self) {
        for cluster in self.all_clusters() {
            let all = cluster.take_idle(|_| true);
            cluster.close_all(all).await;
        }
    }
}

impl Cluster {
    /// Decides what a request for `tenant` does next, reserving a slot when it opens.
    fn step(&self, tenant: Uuid) -> Step {
        let mut state = self.state.lock().expect("cluster lock");
        if let Some(idle) = state.idle.get_mut(&tenant).and_then(Vec::pop) {
            state.idle_total -= 1;
            if state.idle.get(&tenant).is_some_and(Vec::is_empty) {
                state.idle.remove(&tenant);
            }
            return Step::Reuse(idle);
        }
        if let Some(until) = state.down.get(&tenant).copied() {
            if Instant::now() < until {
                return Step::Down(until);
            }
            state.down.remove(&tenant);
        }
        if state.opening.contains_key(&tenant) {
            return Step::Wait;
        }
        let evicted = if state.open < self.cap {
            state.open += 1;
            None
        } else {
            match oldest_idle(&state.idle) {
                Some(owner) => {
                    state.idle_total -= 1;
                    Some(take_oldest(&mut state.idle, owner))
                }
                None => return Step::Wait,
            }
        };
        state.opening.insert(tenant, ());
        self.record(&state);
        Step::Open { evicted }
    }

    /// An open for `tenant` finished; `down_until` when it failed.
    fn opened(&self, tenant: Uuid, down_until: Option<Instant>) {
        let mut state = self.state.lock().expect("cluster lock");
        state.opening.remove(&tenant);
        if let Some(until) = down_until {
            state.down.insert(tenant, until);
        }
        drop(state);
        self.freed.notify_waiters();
    }

    /// `conn` (known good at `checked`) is given back by `tenant`'s request.
    fn give_back(&self, tenant: Uuid, conn: PgConnection, checked: Instant) {
        let mut state = self.state.lock().expect("cluster lock");
        state.idle_total += 1;
        state.idle.entry(tenant).or_default().push(Idle {
            conn,
            since: Instant::now(),
            checked,
        });
        self.record(&state);
        drop(state);
        self.freed.notify_waiters();
    }

    fn closed_many(&self, n: usize) {
        let mut state = self.state.lock().expect("cluster lock");
        state.open = state
            .open
            .saturating_sub(u32::try_from(n).unwrap_or(u32::MAX));
        self.record(&state);
        drop(state);
        self.freed.notify_waiters();
    }

    /// Removes the idle connections `pick` chooses.
    fn take_idle(&self, pick: impl Fn(&Idle) -> bool) -> Vec<PgConnection> {
        let mut state = self.state.lock().expect("cluster lock");
        let mut taken = Vec::new();
        state.idle.retain(|_, list| {
            let (gone, kept): (Vec<Idle>, Vec<Idle>) = list.drain(..).partition(|i| pick(i));
            taken.extend(gone.into_iter().map(|i| i.conn));
            *list = kept;
            !list.is_empty()
        });
        state.idle_total -= taken.len();
        taken
    }

    /// Closes `conns`, then counts them closed (so the cluster never sees more than the
    /// cap while they close).
    async fn close_all(&self, conns: Vec<PgConnection>) {
        let n = conns.len();
        for conn in conns {
            let _ = conn.close().await;
        }
        if n > 0 {
            self.closed_many(n);
        }
    }

    fn record(&self, state: &State) {
        self.open_gauge.set(f64::from(state.open));
        self.idle_gauge.set(state.idle_total as f64);
    }
}

/// A slot reserved for `tenant`'s open; dropped while armed (the request went away before
/// the open finished), it gives the slot and the tenant's open back.
struct Opening {
    cluster: Arc<Cluster>,
    tenant: Uuid,
    armed: bool,
}

impl Drop for Opening {
    fn drop(&mut self) {
        if self.armed {
            self.cluster.opened(self.tenant, None);
            self.cluster.closed_many(1);
        }
    }
}

/// The tenant to take an idle connection from: of the tenants holding more than one, the
/// one whose oldest is the least recently used (a burst's spare connections go first);
/// only when every tenant holds one at most, the least recently used of all (a tenant
/// loses its last warm connection only then).
fn oldest_idle(idle: &HashMap<Uuid, Vec<Idle>>) -> Option<Uuid> {
    let oldest = |spare_only: bool| {
        idle.iter()
            .filter(|(_, list)| !spare_only || list.len() > 1)
            .filter_map(|(tenant, list)| list.first().map(|i| (*tenant, i.since)))
            .min_by_key(|(_, since)| *since)
            .map(|(tenant, _)| tenant)
    };
    oldest(true).or_else(|| oldest(false))
}

/// Removes `owner`'s oldest idle connection (the first: lists grow at the end).
fn take_oldest(idle: &mut HashMap<Uuid, Vec<Idle>>, owner: Uuid) -> PgConnection {
    let list = idle.get_mut(&owner).expect("owner has idle connections");
    let conn = list.remove(0).conn;
    if list.is_empty() {
        idle.remove(&owner);
    }
    conn
}

fn unreachable_database() -> ApiError {
    ApiError::Unavailable {
        retry_after: 2,
        detail: "The organisation's database cannot be reached right now.".into(),
    }
}

/// A connection to one tenant's database; given back to the tenant's idle list when
/// dropped.
pub struct TenantConnection {
    conn: Option<PgConnection>,
    tenant: Uuid,
    cluster: Arc<Cluster>,
    /// When the connection was last known good (opened or pinged).
    checked: Instant,
}

impl TenantConnection {
    fn new(conn: PgConnection, tenant: Uuid, cluster: Arc<Cluster>, checked: Instant) -> Self {
        Self {
            conn: Some(conn),
            tenant,
            cluster,
            checked,
        }
    }

    pub fn tenant(&self) -> Uuid {
        self.tenant
    }

    /// Begins a transaction on this connection. A `BEGIN` that fails has found the
    /// connection broken (a server restart): it is closed, not given back, so the
    /// tenant's next request opens a new one instead of failing on it again.
    pub async fn begin(mut self) -> sqlx::Result<TenantTransaction> {
        if let Err(err) = PgTransactionManager::begin(&mut self, None).await {
            metrics::counter!("tenant_connections_broken_total").increment(1);
            self.discard().await;
            return Err(err);
        }
        Ok(TenantTransaction {
            conn: self,
            open: true,
        })
    }

    /// Closes the connection instead of giving it back (after an error that may have
    /// left it unusable).
    pub async fn discard(mut self) {
        if let Some(conn) = self.conn.take() {
            self.cluster.close_all(vec![conn]).await;
        }
    }
}

impl Deref for TenantConnection {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("a connection until dropped")
    }
}

impl DerefMut for TenantConnection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a connection until dropped")
    }
}

impl Drop for TenantConnection {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let (tenant, cluster) = (self.tenant, Arc::clone(&self.cluster));
        if !conn.should_flush() && self.checked.elapsed() < RECHECK_AFTER {
            cluster.give_back(tenant, conn, self.checked);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime left to flush it on (shutdown): the socket just closes.
            drop(conn);
            cluster.closed_many(1);
            return;
        };
        runtime.spawn(async move {
            if conn.ping().await.is_ok() {
                cluster.give_back(tenant, conn, Instant::now());
            } else {
                metrics::counter!("tenant_connections_broken_total").increment(1);
                drop(conn);
                cluster.closed_many(1);
            }
        });
    }
}

/// A transaction on a [`TenantConnection`]. Derefs to the connection. Dropped without
/// [`commit`](Self::commit), it rolls back: the `ROLLBACK` is queued, and sent before the
/// connection goes back to the tenant's idle list.
pub struct TenantTransaction {
    conn: TenantConnection,
    open: bool,
}

impl TenantTransaction {
    pub async fn commit(mut self) -> sqlx::Result<()> {
        PgTransactionManager::commit(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }

    pub fn tenant(&self) -> Uuid {
        self.conn.tenant
    }
}

impl Deref for TenantTransaction {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for TenantTransaction {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

impl Drop for TenantTransaction {
    fn drop(&mut self) {
        if self.open {
            PgTransactionManager::start_rollback(&mut self.conn);
        }
    }
}
