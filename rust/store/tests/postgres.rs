//! The PostgreSQL store against a real server (`scripts/postgres`): the same data as SQLite,
//! leases that exclude other servers, fencing of a stale owner by the database, migrations,
//! clear errors, the saver, and moving campaigns with `nexus-campaign`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::pg::{Proxy, database, raw, via};
use common::{ScratchDir, assert_same, campaign, object};
use nexus_store::postgres::POSTGRES_SCHEMA_VERSION;
use nexus_store::{
    CampaignChange, CampaignStore, LeaseStatus, PostgresOptions, PostgresStore, Saver, SaverConfig,
    SqliteStore, StoreError,
};

fn store(url: &str, owner: &str) -> PostgresStore {
    PostgresStore::connect(
        url,
        PostgresOptions {
            owner: owner.to_string(),
            ..PostgresOptions::default()
        },
    )
    .expect("connect the store")
}

#[test]
fn campaigns_round_trip_exactly_as_in_sqlite() {
    let url = database("roundtrip");
    let dir = ScratchDir::new("pg-roundtrip");
    let mut postgres = store(&url, "a");
    let mut sqlite = SqliteStore::open(dir.path()).unwrap();
    let record = campaign("alpha", 40);
    let mut next = record.clone();
    next.tick += 60;
    next.objects.remove(&5);
    next.objects.insert(3, object(3, 7));
    next.objects.insert(90, object(90, 1));
    next.next_object_id = 91;
    next.players.remove("bob");
    next.players.get_mut("ann").unwrap().last_seen_tick = 650;
    let first = CampaignChange::between(None, &record);
    let second = CampaignChange::between(Some(&record), &next);

    let _lock = postgres.lock_campaign("alpha").unwrap();
    assert_eq!(postgres.load_campaign("alpha").unwrap(), None);
    let stats = postgres.save_change("alpha", &first).unwrap();
    assert_eq!(
        (stats.revision, stats.objects_written, stats.players_written),
        (1, 41, 2)
    );
    assert!(stats.environment_written && stats.bytes_written > 0);
    assert_same(postgres.load_campaign("alpha").unwrap().as_ref(), &record);
    let stats = postgres.save_change("alpha", &second).unwrap();
    assert_eq!(
        (
            stats.revision,
            stats.objects_written,
            stats.objects_removed,
            stats.players_removed
        ),
        (2, 2, 1, 1)
    );
    sqlite.save_change("alpha", &first).unwrap();
    sqlite.save_change("alpha", &second).unwrap();
    let from_postgres = postgres.load_campaign("alpha").unwrap();
    assert_same(from_postgres.as_ref(), &next);
    assert_eq!(from_postgres, sqlite.load_campaign("alpha").unwrap());

    let summary = postgres.campaign_summary("alpha").unwrap().unwrap();
    assert_eq!(
        (
            summary.tick,
            summary.revision,
            summary.object_count,
            summary.player_count
        ),
        (660, 2, 41, 1)
    );
    assert_eq!(postgres.campaign_summary("beta").unwrap(), None);
    assert_eq!(
        postgres.list_campaigns().unwrap(),
        vec!["alpha".to_string()]
    );

    // A change without a base, and invalid ids, are refused before anything is written.
    let _other = postgres.lock_campaign("beta").unwrap();
    let error = postgres
        .save_change("beta", &CampaignChange::new(1, 1))
        .unwrap_err();
    assert!(matches!(error, StoreError::NoBase { .. }), "{error}");
    let error = postgres.lock_campaign("../etc").unwrap_err();
    assert!(
        matches!(error, StoreError::InvalidCampaignId { .. }),
        "{error}"
    );
    assert_eq!(
        postgres.list_campaigns().unwrap(),
        vec!["alpha".to_string()]
    );
}

#[test]
fn a_lease_keeps_other_servers_out_and_a_release_hands_over_at_once() {
    let url = database("leases");
    let mut first = store(&url, "server-a");
    let mut second = store(&url, "server-b");
    let lock = first.lock_campaign("arena").unwrap();
    let epoch = lock.lease().unwrap().epoch();
    first
        .save_change(
            "arena",
            &CampaignChange::between(None, &campaign("arena", 3)),
        )
        .unwrap();
    match second.lock_campaign("arena") {
        Err(StoreError::LeaseHeld {
            owner,
            expires_in_ms,
            ..
        }) => {
            assert_eq!(owner, "server-a");
            assert!(expires_in_ms <= 3_000, "{expires_in_ms}");
        }
        other => panic!("the second server took a held campaign: {other:?}"),
    }
    // Without a lease a store writes nothing.
    let error = second
        .save_change("arena", &CampaignChange::new(700, 5))
        .unwrap_err();
    assert!(matches!(error, StoreError::NotLeased { .. }), "{error}");

    // Renewals keep it held well past its time to live.
    std::thread::sleep(Duration::from_millis(3_500));
    assert!(matches!(
        lock.lease().unwrap().status(),
        LeaseStatus::Held { .. }
    ));
    assert!(lock.lease().unwrap().counts().renewals >= 3);
    assert!(second.lock_campaign("arena").is_err());

    drop(lock);
    let taken = second
        .lock_campaign("arena")
        .expect("a released lease is free at once");
    assert!(taken.lease().unwrap().epoch() > epoch);
    // The old owner's writes are refused now.
    let error = first
        .save_change("arena", &CampaignChange::new(800, 5))
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::NotLeased { .. } | StoreError::Fenced { .. }
        ),
        "{error}"
    );
    assert_eq!(
        second.campaign_summary("arena").unwrap().unwrap().revision,
        1
    );
}

#[test]
fn a_server_cut_off_from_the_database_stops_in_time_and_its_late_save_is_refused() {
    let url = database("fencing");
    let proxy = Proxy::start(&url);
    let ttl = Duration::from_millis(800);
    let options = |owner: &str| PostgresOptions {
        owner: owner.to_string(),
        lease_ttl: ttl,
    };
    let mut stale = PostgresStore::connect(&via(&url, proxy.address), options("stale")).unwrap();
    let mut successor = PostgresStore::connect(&url, options("successor")).unwrap();
    let record = campaign("keep", 5);
    let lock = stale.lock_campaign("keep").unwrap();
    let lease = lock.lease().unwrap().clone();
    stale
        .save_change("keep", &CampaignChange::between(None, &record))
        .unwrap();

    proxy.cut();
    let cut_at = Instant::now();
    // The successor polls until the lease has expired; the stale owner must have stopped
    // simulating before that.
    let (taken, taken_at) = loop {
        match successor.lock_campaign("keep") {
            Ok(lock) => break (lock, Instant::now()),
            Err(StoreError::LeaseHeld { .. }) => {}
            Err(other) => panic!("{other}"),
        }
        assert!(
            cut_at.elapsed() < Duration::from_secs(10),
            "the lease never expired"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        !lease.may_simulate(),
        "the stale owner still simulates after losing its lease"
    );
    assert!(matches!(
        lease.status(),
        LeaseStatus::Expired { .. } | LeaseStatus::Lost { .. }
    ));
    let lag = taken_at - cut_at;
    assert!(lag >= ttl / 2, "taken over after {lag:?}");
    let mut newer = record.clone();
    newer.tick += 100;
    newer.objects.insert(50, object(50, 2));
    newer.next_object_id = 51;
    successor
        .save_change("keep", &CampaignChange::between(Some(&record), &newer))
        .unwrap();

    // The network comes back: the stale owner's next save is refused by the database.
    proxy.restore();
    let mut stale_world = record.clone();
    stale_world.tick += 500;
    stale_world.objects.clear();
    let error = loop {
        match stale.save_change(
            "keep",
            &CampaignChange::between(Some(&record), &stale_world),
        ) {
            Err(StoreError::Server { .. }) => {
                // The first attempt may still meet the connection the cut broke.
                stale.close_campaign("keep");
            }
            other => break other.unwrap_err(),
        }
    };
    assert!(matches!(error, StoreError::Fenced { .. }), "{error}");
    assert_eq!(error.code(), "fenced");
    assert!(matches!(lease.status(), LeaseStatus::Lost { .. }));
    assert_same(successor.load_campaign("keep").unwrap().as_ref(), &newer);
    drop(taken);
    drop(lock);
}

#[test]
fn an_expired_lease_nobody_took_is_renewed_when_the_database_answers_again() {
    let url = database("outage");
    let proxy = Proxy::start(&url);
    let ttl = Duration::from_millis(800);
    let mut store = PostgresStore::connect(
        &via(&url, proxy.address),
        PostgresOptions {
            owner: "patient".to_string(),
            lease_ttl: ttl,
        },
    )
    .unwrap();
    let record = campaign("outage", 4);
    let lock = store.lock_campaign("outage").unwrap();
    let lease = lock.lease().unwrap().clone();
    store
        .save_change("outage", &CampaignChange::between(None, &record))
        .unwrap();
    proxy.cut();
    let cut_at = Instant::now();
    while !matches!(lease.status(), LeaseStatus::Expired { .. }) {
        assert!(
            cut_at.elapsed() < Duration::from_secs(5),
            "{:?}",
            lease.status()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!lease.may_simulate());
    // Expired in the database too by now.
    std::thread::sleep(Duration::from_millis(100));
    proxy.restore();
    let mut later = record.clone();
    later.tick += 10;
    let change = CampaignChange::between(Some(&record), &later);
    let mut refusals = Vec::new();
    let saved = loop {
        match store.save_change("outage", &change) {
            Ok(stats) => break stats,
            Err(error) => {
                assert!(
                    matches!(
                        error,
                        StoreError::LeaseExpired { .. } | StoreError::Server { .. }
                    ),
                    "{error}"
                );
                refusals.push(error.code());
                store.close_campaign("outage");
                assert!(cut_at.elapsed() < Duration::from_secs(10), "{refusals:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert_eq!(saved.revision, 2);
    assert!(lease.may_simulate(), "{:?}", lease.status());
    assert!(lease.counts().failures >= 1);
    let epoch: i64 = raw(&url)
        .query_one(
            "SELECT epoch FROM nexus_leases WHERE campaign_id = 'outage'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(epoch as u64, lease.epoch(), "the same lease, renewed");
    drop(lock);
}

#[test]
fn the_fence_is_in_the_database_not_only_in_the_store() {
    let url = database("trigger");
    let mut store = store(&url, "owner");
    let lock = store.lock_campaign("fenced").unwrap();
    store
        .save_change(
            "fenced",
            &CampaignChange::between(None, &campaign("fenced", 2)),
        )
        .unwrap();
    let mut client = raw(&url);
    let error = client
        .execute(
            "UPDATE nexus_campaigns SET tick = 1, epoch = epoch - 1 WHERE campaign_id = 'fenced'",
            &[],
        )
        .unwrap_err();
    assert!(
        error
            .as_db_error()
            .unwrap()
            .message()
            .contains("stale write refused"),
        "{error:?}"
    );
    drop(lock);
    // Released: even the epoch it was written under no longer passes.
    let error = client
        .execute(
            "UPDATE nexus_campaigns SET tick = 1 WHERE campaign_id = 'fenced'",
            &[],
        )
        .unwrap_err();
    assert_eq!(error.code().unwrap().code(), "NX001");
}

#[test]
fn the_schema_is_versioned_and_a_newer_one_is_refused() {
    let url = database("schema");
    drop(store(&url, "a"));
    let mut client = raw(&url);
    let version: i32 = client
        .query_one("SELECT version FROM nexus_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(version as u32, POSTGRES_SCHEMA_VERSION);
    // Two servers starting at once migrate once.
    let other = database("schema_race");
    let racers: Vec<_> = (0..4)
        .map(|i| {
            let other = other.clone();
            std::thread::spawn(move || {
                PostgresStore::connect(
                    &other,
                    PostgresOptions {
                        owner: format!("r{i}"),
                        ..PostgresOptions::default()
                    },
                )
                .map(|_| ())
            })
        })
        .collect();
    for racer in racers {
        racer.join().unwrap().unwrap();
    }
    client
        .execute("UPDATE nexus_schema SET version = 99", &[])
        .unwrap();
    let error = PostgresStore::connect(&url, PostgresOptions::default()).unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::SchemaTooNew {
                found: 99,
                supported: POSTGRES_SCHEMA_VERSION,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn bad_database_urls_are_clear_errors() {
    let url = database("urls");
    let started = Instant::now();
    let error = PostgresStore::connect(
        "postgres://nexus@127.0.0.1:1/nexus",
        PostgresOptions::default(),
    )
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(6));
    let text = error.to_string();
    assert!(
        text.contains("127.0.0.1:1") && text.contains("cannot connect"),
        "{text}"
    );
    assert_eq!(error.code(), "database");

    let error = PostgresStore::connect(
        "postgres://nexus:secret@127.0.0.1:1/nexus",
        PostgresOptions::default(),
    )
    .unwrap_err();
    assert!(!error.to_string().contains("secret"), "{error}");

    let error = PostgresStore::connect(
        "postgres://nexus@127.0.0.1:notaport/x",
        PostgresOptions::default(),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("invalid database URL"),
        "{error}"
    );

    let missing = format!("{}_missing", url);
    let error = PostgresStore::connect(&missing, PostgresOptions::default()).unwrap_err();
    assert!(error.to_string().contains("does not exist"), "{error}");
}

#[test]
fn the_saver_saves_to_postgres_and_releases_the_lease_on_shutdown() {
    let url = database("saver");
    let (mut saver, loaded) = Saver::start(
        Box::new(store(&url, "host")),
        "live",
        SaverConfig {
            interval: Duration::from_millis(100),
            ..SaverConfig::default()
        },
    )
    .unwrap();
    assert_eq!(loaded, None);
    assert!(saver.lease().unwrap().may_simulate());
    let mut record = campaign("live", 10);
    saver.submit_snapshot(record.clone()).unwrap();
    saver.flush(Duration::from_secs(10)).unwrap();
    record.tick += 30;
    record.objects.insert(40, object(40, 3));
    record.next_object_id = 41;
    saver.submit_snapshot(record.clone()).unwrap();
    let status = saver.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(status.saves, 2);
    assert_eq!(status.last_save.unwrap().objects_written, 1);
    assert!(store(&url, "other").lock_campaign("live").is_err());
    saver.shutdown().unwrap();
    let mut next = store(&url, "next");
    let _lock = next
        .lock_campaign("live")
        .expect("free right after a clean shutdown");
    assert_same(next.load_campaign("live").unwrap().as_ref(), &record);
}

#[test]
fn nexus_campaign_moves_a_campaign_between_sqlite_and_postgres() {
    let url = database("cli");
    let dir = ScratchDir::new("pg-cli");
    let record = campaign("moved", 12);
    SqliteStore::open(dir.path())
        .unwrap()
        .replace_campaign(&record)
        .unwrap();
    let cli = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_nexus-campaign"))
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let backup = dir.path().join("moved.json");
    let data_dir = dir.path().to_str().unwrap();
    let (code, _, err) = cli(&[
        "export",
        "--data-dir",
        data_dir,
        "--campaign",
        "moved",
        "--out",
        backup.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = cli(&[
        "import",
        "--database",
        &url,
        "--file",
        backup.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("imported campaign moved"), "{out}");
    let (code, out, _) = cli(&["list", "--database", &url]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("moved\ttick 600\t13 objects\t2 players"),
        "{out}"
    );
    assert_same(
        store(&url, "check")
            .load_campaign("moved")
            .unwrap()
            .as_ref(),
        &record,
    );
    // Back out of PostgreSQL into another data directory.
    let again = dir.path().join("again.json");
    let (code, _, err) = cli(&[
        "export",
        "--database",
        &url,
        "--campaign",
        "moved",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = cli(&[
        "import",
        "--database",
        &url,
        "--file",
        again.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("already_exists"), "{err}");
    // Exactly one of the two locations.
    let (code, _, err) = cli(&["list", "--database", &url, "--data-dir", data_dir]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = cli(&["list", "--database", "postgres://nexus@127.0.0.1:1/x"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("cannot connect"), "{err}");
}
