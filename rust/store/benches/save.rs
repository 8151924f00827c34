//! Save cost: an incremental save of 100 changed objects out of 10,000 against a full save of
//! all 10,000, measured in the same process on the same store (SQLite, WAL, synchronous=FULL,
//! so every save includes its fsync). Also the saver thread's diff and the tick thread's cost
//! of a submission.
//!
//! `cargo bench -p nexus-store --bench save`; `NEXUS_BENCH_OBJECTS` and `NEXUS_BENCH_CHANGED`
//! change the sizes, `NEXUS_BENCH_ROUNDS` the repetitions.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{ScratchDir, campaign, object};
use nexus_store::{CampaignChange, CampaignStore, Saver, SaverConfig, SqliteStore};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Median and minimum, in milliseconds.
fn summary(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(samples[samples.len() / 2]), ms(samples[0]))
}

fn main() {
    let objects = env_or("NEXUS_BENCH_OBJECTS", 10_000) as u32;
    let changed = env_or("NEXUS_BENCH_CHANGED", 100) as u32;
    let rounds = env_or("NEXUS_BENCH_ROUNDS", 7).max(1);
    let dir = ScratchDir::new("bench-save");
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let mut record = campaign("bench", objects);
    let first = store
        .save_change("bench", &CampaignChange::between(None, &record))
        .unwrap();

    // Full saves: every object changed, every row rewritten.
    let mut full = Vec::new();
    let mut full_bytes = 0;
    for round in 1..=rounds as u32 {
        let previous = record.clone();
        record.tick += 60;
        for id in 2..objects + 2 {
            record.objects.insert(id, object(id, round));
        }
        let change = CampaignChange::between(Some(&previous), &record);
        assert_eq!(change.upserted_objects.len() as u32, objects);
        let stats = store.save_change("bench", &change).unwrap();
        full_bytes = stats.bytes_written;
        full.push(stats.duration);
    }

    // Incremental saves: `changed` objects differ since the last save.
    let mut incremental = Vec::new();
    let mut diffs = Vec::new();
    let mut incremental_bytes = 0;
    let mut rows = 0;
    for round in 0..rounds as u32 * 3 {
        let previous = record.clone();
        record.tick += 60;
        for i in 0..changed {
            let id = 2 + (round * changed + i) % objects;
            record.objects.insert(id, object(id, 1000 + round));
        }
        let started = Instant::now();
        let change = CampaignChange::between(Some(&previous), &record);
        diffs.push(started.elapsed());
        assert_eq!(change.upserted_objects.len() as u32, changed);
        let stats = store.save_change("bench", &change).unwrap();
        incremental_bytes = stats.bytes_written;
        rows = stats.rows_changed;
        incremental.push(stats.duration);
    }

    // The tick thread's side: building the snapshot (a clone here) and submitting it.
    let (mut saver, _) = {
        drop(store);
        let store = SqliteStore::open(dir.path()).unwrap();
        Saver::start(Box::new(store), "bench", SaverConfig::default()).unwrap()
    };
    let mut clones = Vec::new();
    let mut submits = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let snapshot = record.clone();
        clones.push(started.elapsed());
        let started = Instant::now();
        saver.submit_snapshot(snapshot).unwrap();
        submits.push(started.elapsed());
    }
    saver.shutdown().unwrap();

    let (full_median, full_min) = summary(&mut full);
    let (inc_median, inc_min) = summary(&mut incremental);
    let (diff_median, diff_min) = summary(&mut diffs);
    let (clone_median, clone_min) = summary(&mut clones);
    let (submit_median, submit_min) = summary(&mut submits);
    println!(
        "nexus-store save benchmark: {objects} objects, {changed} changed, SQLite WAL + synchronous=FULL"
    );
    println!(
        "first save (creates {} rows): {:.2} ms",
        first.objects_written,
        first.duration.as_secs_f64() * 1e3
    );
    println!();
    println!(
        "{:<44} {:>10} {:>10} {:>12}",
        "operation", "median ms", "min ms", "bytes"
    );
    println!(
        "{:<44} {:>10.3} {:>10.3} {:>12}",
        format!("full save ({objects} rows)"),
        full_median,
        full_min,
        full_bytes
    );
    println!(
        "{:<44} {:>10.3} {:>10.3} {:>12}",
        format!("incremental save ({changed} rows, {rows} changed)"),
        inc_median,
        inc_min,
        incremental_bytes
    );
    println!(
        "{:<44} {:>10.3} {:>10.3} {:>12}",
        format!("diff of {objects} objects (saver thread)"),
        diff_median,
        diff_min,
        "-"
    );
    println!(
        "{:<44} {:>10.3} {:>10.3} {:>12}",
        "snapshot clone (tick thread, if cloned)", clone_median, clone_min, "-"
    );
    println!(
        "{:<44} {:>10.4} {:>10.4} {:>12}",
        "submit_snapshot (tick thread)", submit_median, submit_min, "-"
    );
    println!();
    println!(
        "ratio full / incremental (median): {:.1}x  (incremental + diff: {:.1}x)",
        full_median / inc_median,
        full_median / (inc_median + diff_median)
    );
}
