//! A disk that fails under a running saver: ext4 turns read-only (as it does after an I/O
//! error), is unmounted, repaired and mounted again, and the saver carries on by itself with
//! nothing lost, never writing anywhere else in the meantime.

mod common;

use std::time::Duration;

use common::{LoopDisk, assert_same, campaign, object};
use nexus_store::{CampaignStore, Saver, SaverConfig, SqliteStore, StoreError};

const WAIT: Duration = Duration::from_secs(20);
const ID: &str = "disk";

#[test]
fn a_disk_that_turns_read_only_then_is_repaired_loses_nothing() {
    let disk = match LoopDisk::mount("failing-disk", 32) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("SKIPPED: this test mounts an ext4 image, which needs root: {why}");
            return;
        }
    };
    let store = SqliteStore::open(&disk.path).unwrap();
    let config = SaverConfig {
        interval: Duration::from_millis(50),
        ..SaverConfig::default()
    };
    let (mut saver, _) = Saver::start(Box::new(store), ID, config).unwrap();
    let mut record = campaign(ID, 300);
    saver.submit_snapshot(record.clone()).unwrap();
    saver.flush(WAIT).expect("the first save works");

    // The disk fails: writes through the open database fail, the data stays pending.
    disk.abort();
    record.tick += 60;
    record.objects.insert(7, object(7, 5));
    record.objects.remove(&9);
    saver.submit_snapshot(record.clone()).unwrap();
    let error = saver
        .flush(WAIT)
        .expect_err("a save to a failed disk fails");
    let status = saver.status();
    let message = status.last_error.clone().unwrap_or_default();
    assert!(
        message.contains("Read-only file system"),
        "the error says the disk is read-only: {message} ({error})"
    );
    assert!(status.failures >= 1);

    // The broken filesystem is taken away: the saver must not start a new, empty campaign in
    // the bare mount point.
    disk.unmount();
    record.tick += 60;
    record.objects.insert(11, object(11, 6));
    saver.submit_snapshot(record.clone()).unwrap();
    saver
        .flush(WAIT)
        .expect_err("no save while the disk is away");
    let message = saver.status().last_error.unwrap_or_default();
    assert!(
        message.contains("gone from the data directory"),
        "the error says the campaign's file is missing: {message}"
    );
    let stray: Vec<_> = std::fs::read_dir(&disk.path).unwrap().collect();
    assert!(
        stray.is_empty(),
        "nothing was written to the bare mount point: {stray:?}"
    );

    // Repaired and mounted again: the next save reopens the file and writes everything pending.
    disk.repair_and_mount();
    let status = saver
        .flush(WAIT)
        .expect("saving resumes on the repaired disk");
    assert!(status.last_error.is_none());
    // The saver holds the campaign again: another saver is refused.
    let mut other = SqliteStore::open(&disk.path).unwrap();
    assert!(matches!(
        other.lock_campaign(ID),
        Err(StoreError::Locked { .. })
    ));
    saver.shutdown().unwrap();
    let loaded = SqliteStore::open(&disk.path)
        .unwrap()
        .load_campaign(ID)
        .unwrap();
    assert_same(loaded.as_ref(), &record);
}
