//! The saver thread: periodic incremental saves, coalescing, final flush, failures.

mod common;

use std::time::Duration;

use common::{ScratchDir, assert_same, campaign, object};
use nexus_store::{
    CampaignChange, CampaignStore, Saver, SaverConfig, SaverEvent, SqliteStore, Submitted,
};

const WAIT: Duration = Duration::from_secs(20);

fn start(
    dir: &ScratchDir,
    id: &str,
    config: SaverConfig,
) -> (Saver, Option<nexus_store::CampaignRecord>) {
    let store = SqliteStore::open(dir.path()).unwrap();
    Saver::start(Box::new(store), id, config).unwrap()
}

fn load(dir: &ScratchDir, id: &str) -> Option<nexus_store::CampaignRecord> {
    SqliteStore::open(dir.path())
        .unwrap()
        .load_campaign(id)
        .unwrap()
}

#[test]
fn snapshots_are_saved_incrementally_and_reloaded_on_start() {
    let dir = ScratchDir::new("saver-basic");
    let (mut saver, loaded) = start(&dir, "arena", SaverConfig::default());
    assert!(loaded.is_none());
    assert!(saver.is_due(), "nothing submitted yet");

    let mut record = campaign("arena", 200);
    saver.submit_snapshot(record.clone()).unwrap();
    assert!(!saver.is_due(), "just submitted, interval is 1 s");
    let status = saver.flush(WAIT).unwrap();
    assert_eq!(status.saves, 1);
    assert_eq!(status.last_save.as_ref().unwrap().objects_written, 201);
    assert_same(load(&dir, "arena").as_ref(), &record);

    // Only the three changed objects and the removed one are written next time.
    record.tick += 60;
    for id in [5, 6, 7] {
        record.objects.insert(id, object(id, 3));
    }
    record.objects.remove(&8);
    saver.submit_snapshot(record.clone()).unwrap();
    let status = saver.flush(WAIT).unwrap();
    let last = status.last_save.unwrap();
    assert_eq!((last.objects_written, last.objects_removed), (3, 1));
    assert_eq!(
        last.rows_changed, 5,
        "3 objects + 1 removal + the campaign row"
    );
    assert_eq!(status.last_saved_tick, Some(record.tick));

    let events = saver.poll_events();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, SaverEvent::Saved(_)))
            .count(),
        2
    );
    saver.shutdown().unwrap();

    let (saver, loaded) = start(&dir, "arena", SaverConfig::default());
    assert_same(loaded.as_ref(), &record);
    assert_eq!(saver.status().last_saved_tick, Some(660));
}

#[test]
fn shutdown_makes_a_final_save() {
    let dir = ScratchDir::new("saver-final");
    let config = SaverConfig {
        interval: Duration::from_secs(3600),
        ..SaverConfig::default()
    };
    let (mut saver, _) = start(&dir, "final", config);
    let mut record = campaign("final", 10);
    saver.submit_snapshot(record.clone()).unwrap(); // written at once: first write
    saver.flush(WAIT).unwrap();
    record.tick = 9999;
    record.objects.insert(3, object(3, 9));
    saver.submit_snapshot(record.clone()).unwrap(); // waits for the hour-long interval...
    let status = saver.shutdown().unwrap(); // ...but shutdown saves it
    assert_eq!(status.last_saved_tick, Some(9999));
    assert_same(load(&dir, "final").as_ref(), &record);
}

#[test]
fn dropping_the_saver_also_saves() {
    let dir = ScratchDir::new("saver-drop");
    let record = campaign("dropped", 5);
    {
        let config = SaverConfig {
            interval: Duration::from_secs(3600),
            ..SaverConfig::default()
        };
        let (mut saver, _) = start(&dir, "dropped", config);
        saver.submit_snapshot(campaign("dropped", 2)).unwrap();
        saver.submit_snapshot(record.clone()).unwrap();
    }
    assert_same(load(&dir, "dropped").as_ref(), &record);
}

#[test]
fn a_saver_that_falls_behind_coalesces_without_losing_changes() {
    let dir = ScratchDir::new("saver-coalesce");
    let config = SaverConfig {
        interval: Duration::from_secs(3600),
        queue_capacity: 1,
        ..SaverConfig::default()
    };
    let (mut saver, _) = start(&dir, "busy", config);
    let mut record = campaign("busy", 50);
    saver.submit_snapshot(record.clone()).unwrap();
    saver.flush(WAIT).unwrap();

    // Many per-tick changes while the saver waits for its (hour-long) interval: the queue
    // (capacity 1) fills, later changes are folded on the caller's side, never blocking.
    let mut outcomes = Vec::new();
    for step in 1..=40u32 {
        let mut change = CampaignChange::new(record.tick + u64::from(step), record.next_object_id);
        let id = 2 + step % 10;
        let updated = object(id, step);
        change.upserted_objects.insert(id, updated.clone());
        record.objects.insert(id, updated);
        if step == 20 {
            change.removed_objects.insert(40);
            record.objects.remove(&40);
        }
        if step == 30 {
            change.removed_players.insert("bob".to_string());
            record.players.remove("bob");
        }
        outcomes.push(saver.submit_change(change).unwrap());
    }
    record.tick += 40;
    assert!(outcomes.contains(&Submitted::Coalesced));
    let status = saver.flush(WAIT).unwrap();
    assert!(status.coalesced > 0);
    assert_eq!(status.submissions, 41);
    assert_eq!(status.saves, 2, "all forty changes went into one write");
    let last = status.last_save.unwrap();
    assert_eq!(
        (
            last.objects_written,
            last.objects_removed,
            last.players_removed
        ),
        (10, 1, 1)
    );
    saver.shutdown().unwrap();
    assert_same(load(&dir, "busy").as_ref(), &record);
}

#[test]
fn a_snapshot_after_changes_supersedes_them() {
    let dir = ScratchDir::new("saver-mixed");
    let config = SaverConfig {
        interval: Duration::from_secs(3600),
        queue_capacity: 1,
        ..SaverConfig::default()
    };
    let (mut saver, _) = start(&dir, "mixed", config);
    let base = campaign("mixed", 20);
    saver.submit_snapshot(base.clone()).unwrap();
    saver.flush(WAIT).unwrap();
    let mut change = CampaignChange::new(base.tick + 1, base.next_object_id);
    change.removed_objects.insert(5);
    saver.submit_change(change).unwrap();
    let mut later = base.clone();
    later.tick += 2;
    later.objects.insert(6, object(6, 4));
    saver.submit_snapshot(later.clone()).unwrap();
    let mut after = CampaignChange::new(later.tick + 1, later.next_object_id);
    after.upserted_objects.insert(7, object(7, 5));
    saver.submit_change(after).unwrap();
    later.tick += 1;
    later.objects.insert(7, object(7, 5));
    saver.shutdown().unwrap();
    // Object 5 is back: the snapshot said it exists.
    assert_same(load(&dir, "mixed").as_ref(), &later);
}

#[test]
fn invalid_objects_are_left_out_and_reported_while_the_rest_is_saved() {
    let dir = ScratchDir::new("saver-rejected");
    let (mut saver, _) = start(&dir, "rej", SaverConfig::default());
    let mut record = campaign("rej", 10);
    let good = record.clone();
    saver.submit_snapshot(good.clone()).unwrap();
    saver.flush(WAIT).unwrap();
    record.tick += 1;
    record.objects.get_mut(&3).unwrap().state.velocity[0] = f32::INFINITY;
    record.objects.insert(4, object(4, 8));
    saver.submit_snapshot(record.clone()).unwrap();
    let status = saver.flush(WAIT).unwrap();
    assert_eq!(status.last_save.unwrap().objects_written, 1);
    let events = saver.poll_events();
    let rejected: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            SaverEvent::Rejected { problems } => Some(problems.join("; ")),
            _ => None,
        })
        .collect();
    assert_eq!(rejected.len(), 1, "{events:?}");
    assert!(rejected[0].contains("object 3"), "{}", rejected[0]);
    saver.shutdown().unwrap();
    let loaded = load(&dir, "rej").unwrap();
    assert_eq!(
        loaded.objects[&3], good.objects[&3],
        "the last valid version stays"
    );
    assert_eq!(loaded.objects[&4], object(4, 8));
}

#[test]
fn a_second_saver_for_the_same_campaign_is_refused() {
    let dir = ScratchDir::new("saver-locked");
    let (saver, _) = start(&dir, "solo", SaverConfig::default());
    let store = SqliteStore::open(dir.path()).unwrap();
    let error = Saver::start(Box::new(store), "solo", SaverConfig::default())
        .err()
        .unwrap();
    assert_eq!(error.code(), "locked", "{error}");
    // Another campaign is unaffected.
    let (other, _) = start(&dir, "other", SaverConfig::default());
    drop(other);
    drop(saver);
    let (_again, _) = start(&dir, "solo", SaverConfig::default());
}

#[test]
fn a_failing_save_keeps_its_data_and_reports() {
    let dir = ScratchDir::new("saver-failing");
    let (mut saver, _) = start(&dir, "nobase", SaverConfig::default());
    // A change with no environment cannot create a campaign: the save fails, data is kept.
    let mut change = CampaignChange::new(1, 10);
    change.upserted_objects.insert(3, object(3, 1));
    saver.submit_change(change).unwrap();
    let error = saver.flush(WAIT).unwrap_err();
    assert_eq!(error.code(), "save_failed", "{error}");
    assert!(error.to_string().contains("no saved state yet"), "{error}");
    let status = saver.status();
    assert!(status.failures >= 1 && status.saves == 0);
    assert!(saver.poll_events().iter().any(|e| matches!(
        e,
        SaverEvent::Failed {
            code: "no_base",
            ..
        }
    )));

    // A snapshot then supplies the base; the earlier change was folded under it.
    let record = campaign("nobase", 5);
    saver.submit_snapshot(record.clone()).unwrap();
    saver.flush(WAIT).unwrap();
    saver.shutdown().unwrap();
    assert_same(load(&dir, "nobase").as_ref(), &record);
}

#[test]
fn a_snapshot_of_another_campaign_is_refused() {
    let dir = ScratchDir::new("saver-wrong");
    let (mut saver, _) = start(&dir, "mine", SaverConfig::default());
    let error = saver.submit_snapshot(campaign("theirs", 1)).unwrap_err();
    assert_eq!(error.code(), "invalid_record");
}

#[test]
fn request_save_writes_without_waiting_for_the_interval() {
    let dir = ScratchDir::new("saver-request");
    let config = SaverConfig {
        interval: Duration::from_secs(3600),
        ..SaverConfig::default()
    };
    let (mut saver, _) = start(&dir, "asap", config);
    let mut record = campaign("asap", 4);
    saver.submit_snapshot(record.clone()).unwrap();
    saver.flush(WAIT).unwrap();
    record.tick += 1;
    record.objects.insert(2, object(2, 5));
    saver.submit_snapshot(record.clone()).unwrap();
    assert!(saver.request_save().unwrap());
    // Bounded wait for the saver thread (not a timing assertion).
    let deadline = std::time::Instant::now() + WAIT;
    while saver.status().saves < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the requested save never happened"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_same(load(&dir, "asap").as_ref(), &record);
    saver.set_interval(Duration::from_millis(10));
    assert_eq!(saver.interval(), Duration::from_millis(10));
}
