//! The SQLite store: round trips, incremental writes, independence, schema checks, locking.

mod common;

use common::{ScratchDir, assert_same, campaign, object};
use nexus_store::{CampaignChange, CampaignStore, SCHEMA_VERSION, SqliteStore, StoreError};
use rusqlite::Connection;

fn raw(store: &SqliteStore, id: &str) -> Connection {
    Connection::open(store.campaign_path(id)).expect("open the campaign file directly")
}

fn count(connection: &Connection, sql: &str) -> i64 {
    connection.query_row(sql, [], |row| row.get(0)).unwrap()
}

#[test]
fn a_saved_campaign_loads_back_identical() {
    let dir = ScratchDir::new("roundtrip");
    let record = campaign("alpha", 50);
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.load_campaign("alpha").unwrap(), None);
        let stats = store
            .save_change("alpha", &CampaignChange::between(None, &record))
            .unwrap();
        assert_eq!(stats.objects_written, 51);
        assert_eq!(stats.players_written, 2);
        assert!(stats.environment_written);
        assert_eq!(stats.revision, 1);
    }
    // A fresh store (as after a restart) reads the same bits back.
    let mut store = SqliteStore::open(dir.path()).unwrap();
    assert_same(store.load_campaign("alpha").unwrap().as_ref(), &record);
    let summary = store.campaign_summary("alpha").unwrap().unwrap();
    assert_eq!(
        (summary.tick, summary.object_count, summary.player_count),
        (600, 51, 2)
    );
    assert_eq!(store.list_campaigns().unwrap(), vec!["alpha".to_string()]);

    let connection = raw(&store, "alpha");
    let journal: String = connection
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, i64::from(SCHEMA_VERSION));
}

#[test]
fn an_incremental_save_writes_only_the_changed_rows() {
    let dir = ScratchDir::new("incremental");
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let mut record = campaign("beta", 1000);
    store
        .save_change("beta", &CampaignChange::between(None, &record))
        .unwrap();
    let before = record.clone();

    record.tick = 660;
    for id in [10, 20, 30, 40, 50, 60, 70, 80, 90, 100] {
        record.objects.insert(id, object(id, 1));
    }
    record.players.get_mut("bob").unwrap().position = [0.0, 0.0, 1.0];
    let change = CampaignChange::between(Some(&before), &record);
    assert_eq!(change.upserted_objects.len(), 10);
    assert_eq!(change.upserted_players.len(), 1);
    assert!(change.environment.is_none() && change.world.is_none());

    let stats = store.save_change("beta", &change).unwrap();
    assert_eq!(stats.objects_written, 10);
    assert_eq!(stats.players_written, 1);
    assert!(!stats.environment_written);
    // SQLite's own count: 10 objects + 1 player + the campaign row, nothing else touched.
    assert_eq!(stats.rows_changed, 12);

    let connection = raw(&store, "beta");
    let rewritten = count(
        &connection,
        "SELECT count(*) FROM objects WHERE saved_revision = 2",
    );
    let untouched = count(
        &connection,
        "SELECT count(*) FROM objects WHERE saved_revision = 1",
    );
    assert_eq!((rewritten, untouched), (10, 991));
    assert_same(store.load_campaign("beta").unwrap().as_ref(), &record);
}

#[test]
fn removals_are_persisted() {
    let dir = ScratchDir::new("removal");
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let mut record = campaign("gamma", 20);
    store
        .save_change("gamma", &CampaignChange::between(None, &record))
        .unwrap();
    let before = record.clone();
    record.objects.remove(&5);
    record.objects.remove(&6);
    record.players.remove("bob");
    record.tick += 1;
    let change = CampaignChange::between(Some(&before), &record);
    let stats = store.save_change("gamma", &change).unwrap();
    assert_eq!((stats.objects_removed, stats.players_removed), (2, 1));
    assert_eq!(stats.objects_written, 0);

    let mut reopened = SqliteStore::open(dir.path()).unwrap();
    let loaded = reopened.load_campaign("gamma").unwrap().unwrap();
    assert!(!loaded.objects.contains_key(&5) && !loaded.objects.contains_key(&6));
    assert!(!loaded.players.contains_key("bob"));
    assert_same(Some(&loaded), &record);
}

#[test]
fn campaigns_are_independent() {
    let dir = ScratchDir::new("independent");
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let one = campaign("one", 10);
    let mut two = campaign("two", 30);
    two.tick = 5;
    store
        .save_change("one", &CampaignChange::between(None, &one))
        .unwrap();
    store
        .save_change("two", &CampaignChange::between(None, &two))
        .unwrap();

    // Changing and removing in "two" leaves "one" alone, and the reverse.
    let before = two.clone();
    two.objects.remove(&3);
    two.objects.insert(4, object(4, 7));
    store
        .save_change("two", &CampaignChange::between(Some(&before), &two))
        .unwrap();
    assert_same(store.load_campaign("one").unwrap().as_ref(), &one);
    assert_same(store.load_campaign("two").unwrap().as_ref(), &two);

    // A lock on one does not lock the other.
    let _lock_one = store.lock_campaign("one").unwrap();
    let _lock_two = store.lock_campaign("two").unwrap();

    // Damage to one campaign's file does not stop the other from loading.
    store.close();
    std::fs::write(store.campaign_path("one"), vec![0xAB; 16384]).unwrap();
    let mut fresh = SqliteStore::open(dir.path()).unwrap();
    assert!(fresh.load_campaign("one").is_err());
    assert_same(fresh.load_campaign("two").unwrap().as_ref(), &two);
    assert_eq!(
        fresh.list_campaigns().unwrap(),
        vec!["one".to_string(), "two".to_string()]
    );
}

#[test]
fn a_store_newer_than_the_server_is_refused_untouched() {
    let dir = ScratchDir::new("newer");
    let record = campaign("future", 3);
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        store
            .save_change("future", &CampaignChange::between(None, &record))
            .unwrap();
        let connection = raw(&store, "future");
        connection
            .pragma_update(None, "user_version", i64::from(SCHEMA_VERSION) + 1)
            .unwrap();
    }
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let error = store.load_campaign("future").unwrap_err();
    match &error {
        StoreError::SchemaTooNew {
            found, supported, ..
        } => {
            assert_eq!((*found, *supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("newer") && message.contains("upgrade the server"),
        "{message}"
    );
    // Writing is refused too, and the file keeps its version.
    let change = CampaignChange::between(None, &record);
    assert!(matches!(
        store.save_change("future", &change),
        Err(StoreError::SchemaTooNew { .. })
    ));
    let version: i64 = raw(&store, "future")
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, i64::from(SCHEMA_VERSION) + 1);
}

#[test]
fn foreign_files_are_recognised() {
    let dir = ScratchDir::new("foreign");
    let mut store = SqliteStore::open(dir.path()).unwrap();
    std::fs::write(store.campaign_path("junk"), vec![7u8; 8192]).unwrap();
    let error = store.load_campaign("junk").unwrap_err();
    assert_eq!(error.code(), "not_a_campaign_store", "{error}");

    let other = Connection::open(store.campaign_path("other")).unwrap();
    other
        .execute_batch("CREATE TABLE accounts (id INTEGER);")
        .unwrap();
    drop(other);
    let error = store.load_campaign("other").unwrap_err();
    assert_eq!(error.code(), "not_a_campaign_store", "{error}");
}

#[test]
fn invalid_data_is_refused_and_nothing_is_written() {
    let dir = ScratchDir::new("invalid");
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let record = campaign("delta", 5);
    store
        .save_change("delta", &CampaignChange::between(None, &record))
        .unwrap();

    let mut change = CampaignChange::new(700, record.next_object_id);
    let mut broken = object(3, 2);
    broken.state.position[1] = f32::NAN;
    change.upserted_objects.insert(3, broken);
    change.upserted_objects.insert(4, object(4, 2));
    let error = store.save_change("delta", &change).unwrap_err();
    assert_eq!(error.code(), "invalid_record");
    assert!(error.to_string().contains("object 3: position"), "{error}");
    assert_same(store.load_campaign("delta").unwrap().as_ref(), &record);

    // An incremental change for a campaign that was never saved has no base.
    let error = store
        .save_change("nobody", &CampaignChange::new(1, 1))
        .unwrap_err();
    assert_eq!(error.code(), "no_base", "{error}");

    for bad_id in ["", "../escape", "a b", "x".repeat(65).as_str()] {
        let error = store.load_campaign(bad_id).unwrap_err();
        assert_eq!(error.code(), "invalid_campaign_id", "{bad_id:?}: {error}");
    }
}

#[test]
fn reads_create_nothing() {
    let dir = ScratchDir::new("reads");
    let mut store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.load_campaign("ghost").unwrap(), None);
    assert_eq!(store.campaign_summary("ghost").unwrap(), None);
    assert!(!store.campaign_path("ghost").exists());
    assert!(store.list_campaigns().unwrap().is_empty());
    let missing = dir.path().join("missing");
    let error = SqliteStore::open_existing(&missing).err().unwrap();
    assert_eq!(error.code(), "io");
    assert!(!missing.exists());
}

#[test]
fn a_campaign_is_locked_by_one_holder_at_a_time() {
    let dir = ScratchDir::new("lock");
    let mut first = SqliteStore::open(dir.path()).unwrap();
    let mut second = SqliteStore::open(dir.path()).unwrap();
    let lock = first.lock_campaign("shared").unwrap();
    assert_eq!(lock.campaign_id(), "shared");
    let error = second.lock_campaign("shared").unwrap_err();
    assert_eq!(error.code(), "locked", "{error}");
    drop(lock);
    second.lock_campaign("shared").unwrap();
}

#[test]
fn replace_campaign_deletes_rows_that_are_gone() {
    let dir = ScratchDir::new("replace");
    let mut store = SqliteStore::open(dir.path()).unwrap();
    store.replace_campaign(&campaign("eps", 40)).unwrap();
    let smaller = campaign("eps", 4);
    let stats = store.replace_campaign(&smaller).unwrap();
    assert_eq!(stats.revision, 2);
    assert_same(store.load_campaign("eps").unwrap().as_ref(), &smaller);
}

#[test]
fn a_copy_of_a_campaign_file_loads_from_memory_and_damaged_copies_are_errors() {
    let dir = ScratchDir::new("image");
    let record = campaign("gamma", 20);
    let mut store = SqliteStore::open(dir.path()).unwrap();
    store
        .save_change("gamma", &CampaignChange::between(None, &record))
        .unwrap();
    store.close(); // checkpoints the WAL into the file
    let bytes = std::fs::read(store.campaign_path("gamma")).unwrap();
    assert_same(
        nexus_store::load_campaign_image(&bytes, "gamma")
            .unwrap()
            .as_ref(),
        &record,
    );
    // The file on disk was only read.
    assert_eq!(std::fs::read(store.campaign_path("gamma")).unwrap(), bytes);
    // Another campaign's file, and an empty image.
    assert!(nexus_store::load_campaign_image(&bytes, "delta").is_err());
    assert_eq!(
        nexus_store::load_campaign_image(&[], "gamma").unwrap(),
        None
    );
    // Not a database; cut short; a page overwritten: errors that say so, never a panic.
    let garbage = nexus_store::load_campaign_image(b"definitely not sqlite", "gamma").unwrap_err();
    assert!(
        matches!(garbage, StoreError::NotACampaignStore { .. }),
        "{garbage}"
    );
    assert!(nexus_store::load_campaign_image(&bytes[..bytes.len() / 2], "gamma").is_err());
    let mut damaged = bytes.clone();
    let page = 4096;
    for b in &mut damaged[page..2 * page] {
        *b = 0x5a;
    }
    assert!(nexus_store::load_campaign_image(&damaged, "gamma").is_err());
}
