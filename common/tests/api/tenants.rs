//! Tenant connections under a cap per cluster (`common::db::tenants`), against the real
//! PostgreSQL: what the manager counts and what the server sees (`pg_stat_activity` by
//! each test's own `application_name`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::ApiError;
use common::db::tenants::{Limits, Location, TenantConnection, TenantConnections};
use common::testkit::{TcpRelay, TestDb, unique};
use sqlx::postgres::PgConnectOptions;
use uuid::Uuid;

/// Where `db` is, as tenant-resolver would say.
fn location_of(db: &TestDb) -> Location {
    let options: PgConnectOptions = db.url.parse().expect("a PostgreSQL URL");
    Location {
        host: options.get_host().to_owned(),
        port: options.get_port(),
        database: db.name.clone(),
        username: options.get_username().to_owned(),
        password: String::new(),
    }
}

fn limits(per_cluster: u32) -> Limits {
    Limits {
        per_cluster,
        idle: Duration::from_secs(60),
        acquire_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
    }
}

/// Backends the server has for `application` right now.
async fn backends(db: &TestDb, application: &str) -> i64 {
    sqlx::query_scalar!(
        r#"select count(*) as "count!" from pg_stat_activity where application_name = $1"#,
        application
    )
    .fetch_one(&db.pool)
    .await
    .expect("reading pg_stat_activity")
}

/// `database` at a cluster that accepts connections and never answers, and how many
/// connections it has accepted.
async fn hung_cluster(database: &Location) -> (Location, Arc<AtomicU32>) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let accepted = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            kept.push(socket);
        }
    });
    let hung = Location {
        host: addr.ip().to_string(),
        port: addr.port(),
        ..database.clone()
    };
    (hung, accepted)
}

async fn select_one(conn: &mut TenantConnection) {
    let conn: &mut sqlx::PgConnection = conn;
    let one = sqlx::query_scalar!(r#"select 1 as "one!""#)
        .fetch_one(conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_tenants_are_served_under_a_cap_of_32_connections() {
    // Six databases stand for the 300 tenants' (the manager keys connections by tenant).
    let mut dbs = Vec::new();
    for _ in 0..6 {
        dbs.push(TestDb::create().await);
    }
    let locations: Vec<Location> = dbs.iter().map(location_of).collect();
    let cluster = locations[0].cluster();
    let application = unique("tenants");
    // 900 requests at once, nearly each needing a backend of its own started: generous
    // for a busy CI machine, and still a bound every request must meet.
    let manager = TenantConnections::new(
        &application,
        Limits {
            acquire_timeout: Duration::from_secs(20),
            ..limits(32)
        },
    );
    let tenants: Vec<Uuid> = (0..300).map(|_| Uuid::now_v7()).collect();

    let peak_seen = Arc::new(AtomicU32::new(0));
    let done = tokio_util::sync::CancellationToken::new();
    let watcher = {
        let (manager, peak, done, cluster) = (
            Arc::clone(&manager),
            Arc::clone(&peak_seen),
            done.clone(),
            cluster.clone(),
        );
        tokio::spawn(async move {
            while !done.is_cancelled() {
                peak.fetch_max(manager.open_on(&cluster), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let server_peak = {
        let (db, application, done) = (TestDb::create().await, application.clone(), done.clone());
        tokio::spawn(async move {
            let mut peak = 0;
            while !done.is_cancelled() {
                peak = peak.max(backends(&db, &application).await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };

    let started = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..3 {
        for (i, tenant) in tenants.iter().enumerate() {
            let (manager, tenant) = (Arc::clone(&manager), *tenant);
            let location = locations[i % locations.len()].clone();
            requests.spawn(async move {
                let asked = Instant::now();
                let mut conn = manager.acquire(tenant, &location).await?;
                let waited = asked.elapsed();
                select_one(&mut conn).await;
                Ok::<Duration, ApiError>(waited)
            });
        }
    }
    let mut longest = Duration::ZERO;
    let mut failures = Vec::new();
    while let Some(joined) = requests.join_next().await {
        match joined.expect("a request task") {
            Ok(waited) => longest = longest.max(waited),
            Err(err) => failures.push(err.to_string()),
        }
    }
    done.cancel();
    watcher.await.unwrap();
    let server_peak = server_peak.await.unwrap();

    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        longest < manager.limits().acquire_timeout,
        "a request waited {longest:?}"
    );
    let peak = peak_seen.load(Ordering::Relaxed);
    assert!(peak <= 32, "the manager held {peak} connections");
    assert!(
        peak >= 8,
        "only {peak} connections were ever open: the load did not run in parallel"
    );
    assert!(server_peak <= 32, "the server saw {server_peak} backends");
    println!(
        "900 requests of 300 tenants in {:?}; longest wait {longest:?}; peak {peak} open, {server_peak} seen by the server",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_idle_tenant_holds_no_connection_after_the_idle_time() {
    let db = TestDb::create().await;
    let application = unique("tenants");
    let manager = TenantConnections::new(
        &application,
        Limits {
            idle: Duration::from_secs(1),
            ..limits(8)
        },
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let reaper = tokio::spawn(Arc::clone(&manager).run_reaper(shutdown.clone()));
    let (tenant, location) = (Uuid::now_v7(), location_of(&db));

    let (mut a, mut b) = (
        manager.acquire(tenant, &location).await.unwrap(),
        manager.acquire(tenant, &location).await.unwrap(),
    );
    select_one(&mut a).await;
    select_one(&mut b).await;
    drop((a, b));
    assert_eq!(manager.idle_of(tenant), 2, "given back, kept for reuse");
    assert_eq!(backends(&db, &application).await, 2);
    // Reused, not reopened, while it is busy.
    let mut again = manager.acquire(tenant, &location).await.unwrap();
    select_one(&mut again).await;
    drop(again);
    assert_eq!(manager.open_on(&location.cluster()), 2);

    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(manager.idle_of(tenant), 0);
    assert_eq!(manager.open_on(&location.cluster()), 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while backends(&db, &application).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the server still has the idle tenant's backends"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    reaper.await.unwrap();
}

#[tokio::test]
async fn two_clusters_each_hold_their_own_cap() {
    let db = TestDb::create().await;
    let first = location_of(&db);
    // A second address for the server: another cluster as far as the manager knows.
    let relay = TcpRelay::to(format!("{}:{}", first.host, first.port).parse().unwrap()).await;
    let second = Location {
        host: relay.addr.ip().to_string(),
        port: relay.addr.port(),
        ..first.clone()
    };
    assert_ne!(first.cluster(), second.cluster());
    let manager = TenantConnections::new(
        &unique("tenants"),
        Limits {
            acquire_timeout: Duration::from_millis(500),
            ..limits(3)
        },
    );
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(manager.acquire(Uuid::now_v7(), &first).await.unwrap());
    }
    let late = Uuid::now_v7();
    let refused = manager.acquire(late, &first).await;
    assert!(
        matches!(refused, Err(ApiError::Unavailable { .. })),
        "a fourth connection on a full cluster waits, then 503"
    );
    for _ in 0..3 {
        let mut conn = manager.acquire(Uuid::now_v7(), &second).await.unwrap();
        select_one(&mut conn).await;
        held.push(conn);
    }
    assert_eq!(manager.open_on(&first.cluster()), 3);
    assert_eq!(manager.open_on(&second.cluster()), 3);

    // The first connection any tenant frees serves the waiting one.
    let waiting = {
        let manager = Arc::clone(&manager);
        let first = first.clone();
        tokio::spawn(async move { manager.acquire(late, &first).await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(held.remove(0));
    waiting.await.unwrap().expect("served by the freed slot");
    assert_eq!(manager.open_on(&first.cluster()), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_whose_database_is_down_does_not_hold_up_the_others() {
    let db = TestDb::create().await;
    let healthy = location_of(&db);
    // One tenant's cluster accepts connections and never answers; another tenant's
    // database is gone from the healthy cluster.
    let (hung, accepted) = hung_cluster(&healthy).await;
    let gone = Location {
        database: unique("no_such_database"),
        ..healthy.clone()
    };
    let manager = TenantConnections::new(
        &unique("tenants"),
        Limits {
            connect_timeout: Duration::from_secs(2),
            // Shorter than the open's timeout and the down window together: its
            // requests give up before a second open would start.
            acquire_timeout: Duration::from_secs(3),
            ..limits(4)
        },
    );
    let (hung_tenant, gone_tenant) = (Uuid::now_v7(), Uuid::now_v7());
    let others: Vec<Uuid> = (0..8).map(|_| Uuid::now_v7()).collect();

    let mut down = tokio::task::JoinSet::new();
    for _ in 0..20 {
        for (tenant, location) in [(hung_tenant, hung.clone()), (gone_tenant, gone.clone())] {
            let manager = Arc::clone(&manager);
            down.spawn(async move { manager.acquire(tenant, &location).await.map(|_| ()) });
        }
    }
    let started = Instant::now();
    let mut served = tokio::task::JoinSet::new();
    for _ in 0..5 {
        for tenant in &others {
            let (manager, tenant, location) = (Arc::clone(&manager), *tenant, healthy.clone());
            served.spawn(async move {
                let mut conn = manager.acquire(tenant, &location).await?;
                select_one(&mut conn).await;
                Ok::<_, ApiError>(())
            });
        }
    }
    while let Some(result) = served.join_next().await {
        result.unwrap().expect("a healthy tenant is served");
    }
    let healthy_took = started.elapsed();
    while let Some(result) = down.join_next().await {
        assert!(
            matches!(result.unwrap(), Err(ApiError::Unavailable { .. })),
            "a down tenant's request is 503"
        );
    }
    // Waiting on the hung tenant's open would take its connect timeout (2 s).
    assert!(
        healthy_took < Duration::from_secs(2),
        "the healthy tenants took {healthy_took:?}, as if waiting on the down ones"
    );
    assert_eq!(
        accepted.load(Ordering::Relaxed),
        1,
        "one open at a time for a tenant, then no other while it is down"
    );
    assert!(manager.open_on(&healthy.cluster()) <= 4);
}

#[tokio::test]
async fn a_request_dropped_while_its_connection_opens_gives_the_slot_back() {
    let db = TestDb::create().await;
    let (hung, accepted) = hung_cluster(&location_of(&db)).await;
    let manager = TenantConnections::new(&unique("tenants"), limits(1));
    let tenant = Uuid::now_v7();
    for attempt in 1..=2 {
        // The client goes away while the connection is still opening.
        let gave_up =
            tokio::time::timeout(Duration::from_millis(300), manager.acquire(tenant, &hung)).await;
        assert!(gave_up.is_err());
        assert_eq!(
            manager.open_on(&hung.cluster()),
            0,
            "the slot is free again"
        );
        // The tenant is not left opening: each request tries for itself.
        let deadline = Instant::now() + Duration::from_secs(3);
        while accepted.load(Ordering::Relaxed) < attempt {
            assert!(
                Instant::now() < deadline,
                "attempt {attempt} never connected"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Whether a session other than the manager's can take advisory lock `key` now.
async fn lock_is_free(db: &TestDb, key: i64) -> bool {
    let mut other = db.pool.acquire().await.unwrap();
    let taken = sqlx::query_scalar!(r#"select pg_try_advisory_lock($1) as "taken!""#, key)
        .fetch_one(&mut *other)
        .await
        .unwrap();
    if taken {
        sqlx::query_scalar!(r#"select pg_advisory_unlock($1) as "released!""#, key)
            .fetch_one(&mut *other)
            .await
            .unwrap();
    }
    taken
}

/// A transaction of `tenant`'s that holds advisory lock `key`.
async fn locked_transaction(
    manager: &TenantConnections,
    tenant: Uuid,
    location: &Location,
    key: i64,
) -> common::db::tenants::TenantTransaction {
    let mut tx = manager
        .acquire(tenant, location)
        .await
        .unwrap()
        .begin()
        .await
        .unwrap();
    let conn: &mut sqlx::PgConnection = &mut tx;
    sqlx::query_scalar!(r#"select pg_advisory_xact_lock($1)::text as "held!""#, key)
        .fetch_one(conn)
        .await
        .unwrap();
    tx
}

#[tokio::test]
async fn a_transaction_dropped_unfinished_rolls_back_before_its_connection_idles() {
    let db = TestDb::create().await;
    let application = unique("tenants");
    let manager = TenantConnections::new(&application, limits(4));
    let (tenant, location) = (Uuid::now_v7(), location_of(&db));
    let key = i64::from(rand::random::<u32>());

    // Committed: the transaction's lock goes with the commit.
    let tx = locked_transaction(&manager, tenant, &location, key).await;
    assert!(
        !lock_is_free(&db, key).await,
        "the transaction holds the lock"
    );
    tx.commit().await.unwrap();
    assert!(lock_is_free(&db, key).await, "committed, the lock is gone");
    assert_eq!(manager.idle_of(tenant), 1, "the connection went back");

    // Dropped unfinished (a handler's early return): rolled back promptly, with no new
    // statement on the connection, and the connection is kept for reuse.
    let tx = locked_transaction(&manager, tenant, &location, key).await;
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !lock_is_free(&db, key).await {
        assert!(
            Instant::now() < deadline,
            "a dropped transaction still holds its lock while its connection idles"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while manager.idle_of(tenant) == 0 {
        assert!(
            Instant::now() < deadline,
            "the rolled-back connection never went back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        manager.open_on(&location.cluster()),
        1,
        "reused, not reopened"
    );
    assert_eq!(backends(&db, &application).await, 1);
    let mut again = manager.acquire(tenant, &location).await.unwrap();
    select_one(&mut again).await;
}

#[tokio::test]
async fn a_connection_the_server_closed_is_found_and_replaced_within_seconds() {
    let db = TestDb::create().await;
    let application = unique("tenants");
    let manager = TenantConnections::new(&application, limits(4));
    let (tenant, location) = (Uuid::now_v7(), location_of(&db));
    let mut conn = manager.acquire(tenant, &location).await.unwrap();
    select_one(&mut conn).await;
    drop(conn);
    // What a server restart does to every connection: the backend goes away.
    let terminated = sqlx::query_scalar!(
        r#"select count(*) filter (where pg_terminate_backend(pid)) as "count!"
           from pg_stat_activity where application_name = $1"#,
        application
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(terminated, 1);
    let since = Instant::now();
    let mut failures = 0;
    loop {
        let mut conn = manager.acquire(tenant, &location).await.unwrap();
        let answered = {
            let conn: &mut sqlx::PgConnection = &mut conn;
            sqlx::query_scalar!(r#"select 1 as "one!""#)
                .fetch_one(conn)
                .await
                .is_ok()
        };
        drop(conn);
        if answered {
            break;
        }
        failures += 1;
        assert!(
            since.elapsed() < Duration::from_secs(3),
            "the broken connection is still handed out {:?} later ({failures} failures)",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(failures >= 1, "the first use found the connection broken");
    assert_eq!(
        manager.open_on(&location.cluster()),
        1,
        "the broken one was closed"
    );
    assert_eq!(backends(&db, &application).await, 1);
}

#[tokio::test]
async fn at_the_cap_a_bursts_spare_connection_goes_before_another_tenants_last() {
    let db = TestDb::create().await;
    let application = unique("tenants");
    let manager = TenantConnections::new(&application, limits(3));
    let location = location_of(&db);
    let (quiet, bursty, newcomer) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    // The quiet tenant's one connection is the least recently used of all…
    let mut conn = manager.acquire(quiet, &location).await.unwrap();
    select_one(&mut conn).await;
    drop(conn);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // …and a burst left the bursty tenant two.
    let (mut a, mut b) = (
        manager.acquire(bursty, &location).await.unwrap(),
        manager.acquire(bursty, &location).await.unwrap(),
    );
    select_one(&mut a).await;
    select_one(&mut b).await;
    drop((a, b));
    assert_eq!(manager.open_on(&location.cluster()), 3, "at the cap");

    let mut conn = manager.acquire(newcomer, &location).await.unwrap();
    select_one(&mut conn).await;
    assert_eq!(
        manager.idle_of(quiet),
        1,
        "the quiet tenant keeps its last connection"
    );
    assert_eq!(
        manager.idle_of(bursty),
        1,
        "one of the burst's spares was closed"
    );
    assert_eq!(manager.open_on(&location.cluster()), 3);
    drop(conn);

    // With no spares left, the least recently used connection of all goes.
    let other = Uuid::now_v7();
    let mut conn = manager.acquire(other, &location).await.unwrap();
    select_one(&mut conn).await;
    assert_eq!(
        manager.idle_of(quiet),
        0,
        "now the least recently used goes"
    );
    assert_eq!(manager.idle_of(bursty), 1);
    assert_eq!(manager.idle_of(newcomer), 1);
}

/// A burst on one tenant beyond its role's `CONNECTION LIMIT` waits for a connection
/// to be given back: no 503, and the tenant is not counted as down.
#[tokio::test]
async fn a_tenant_whose_role_is_full_waits_for_a_connection_rather_than_failing() {
    let db = TestDb::create().await;
    let role = db
        .login_role("full_role", "role-full-test", 2)
        .await
        .expect("a role limited to 2 connections");
    let location = Location {
        username: role.clone(),
        password: "role-full-test".to_owned(),
        ..location_of(&db)
    };
    let manager = TenantConnections::new(&unique("tenants"), limits(10));
    let tenant = Uuid::now_v7();
    let first = manager.acquire(tenant, &location).await.expect("first");
    let mut second = manager.acquire(tenant, &location).await.expect("second");
    select_one(&mut second).await;
    let waiting = {
        let (manager, location) = (Arc::clone(&manager), location.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let mut conn = manager.acquire(tenant, &location).await?;
            select_one(&mut conn).await;
            Ok::<_, ApiError>(started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "the third waits while the role is full"
    );
    drop(first);
    let waited = waiting
        .await
        .unwrap()
        .expect("served once a connection is given back");
    assert!(waited >= Duration::from_millis(450), "{waited:?}");
    drop(second);
    drop(manager);
    tokio::time::sleep(Duration::from_millis(100)).await;
    db.drop_role(&role).await.ok();
}
