//! Save cost: an incremental save of 100 changed objects out of 10,000 against a full save of
//! all 10,000, measured in the same process on the same store (SQLite, WAL, synchronous=FULL,
//! so every save includes its fsync). Also the saver thread's diff and the tick thread's cost
//! of a submission. The same saves then go to PostgreSQL (a local server from
//! `scripts/postgres`), printed as a ratio against SQLite.
//!
//! `cargo bench -p nexus-store --bench save`; `NEXUS_BENCH_OBJECTS` and `NEXUS_BENCH_CHANGED`
//! change the sizes, `NEXUS_BENCH_ROUNDS` the repetitions.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{ScratchDir, campaign, object};
use nexus_store::{
    CampaignChange, CampaignStore, PostgresOptions, PostgresStore, Saver, SaverConfig, SqliteStore,
};

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

/// What one store did with the same sequence of saves.
struct Measured {
    first: Duration,
    first_rows: usize,
    full: Vec<Duration>,
    full_bytes: u64,
    incremental: Vec<Duration>,
    incremental_bytes: u64,
    rows: u64,
    diffs: Vec<Duration>,
}

/// The first save, `rounds` full saves and `3 * rounds` incremental ones, in one store.
fn measure(
    store: &mut dyn CampaignStore,
    objects: u32,
    changed: u32,
    rounds: u32,
) -> (Measured, nexus_store::CampaignRecord) {
    let _lock = store.lock_campaign("bench").unwrap();
    let mut record = campaign("bench", objects);
    let first = store
        .save_change("bench", &CampaignChange::between(None, &record))
        .unwrap();
    let mut measured = Measured {
        first: first.duration,
        first_rows: first.objects_written,
        full: Vec::new(),
        full_bytes: 0,
        incremental: Vec::new(),
        incremental_bytes: 0,
        rows: 0,
        diffs: Vec::new(),
    };
    // Full saves: every object changed, every row rewritten.
    for round in 1..=rounds {
        let previous = record.clone();
        record.tick += 60;
        for id in 2..objects + 2 {
            record.objects.insert(id, object(id, round));
        }
        let change = CampaignChange::between(Some(&previous), &record);
        assert_eq!(change.upserted_objects.len() as u32, objects);
        let stats = store.save_change("bench", &change).unwrap();
        measured.full_bytes = stats.bytes_written;
        measured.full.push(stats.duration);
    }
    // Incremental saves: `changed` objects differ since the last save.
    for round in 0..rounds * 3 {
        let previous = record.clone();
        record.tick += 60;
        for i in 0..changed {
            let id = 2 + (round * changed + i) % objects;
            record.objects.insert(id, object(id, 1000 + round));
        }
        let started = Instant::now();
        let change = CampaignChange::between(Some(&previous), &record);
        measured.diffs.push(started.elapsed());
        assert_eq!(change.upserted_objects.len() as u32, changed);
        let stats = store.save_change("bench", &change).unwrap();
        measured.incremental_bytes = stats.bytes_written;
        measured.rows = stats.rows_changed;
        measured.incremental.push(stats.duration);
    }
    (measured, record)
}

fn main() {
    let objects = env_or("NEXUS_BENCH_OBJECTS", 10_000) as u32;
    let changed = env_or("NEXUS_BENCH_CHANGED", 100) as u32;
    let rounds = env_or("NEXUS_BENCH_ROUNDS", 7).max(1) as u32;
    let dir = ScratchDir::new("bench-save");
    let mut sqlite = SqliteStore::open(dir.path()).unwrap();
    let (mut measured, record) = measure(&mut sqlite, objects, changed, rounds);
    // The same saves in PostgreSQL (a local server, scripts/postgres; fsync on, synchronous
    // commit), over TCP on 127.0.0.1, under a lease like a cluster's server.
    let mut postgres = PostgresStore::connect(
        &common::pg::database("bench_save"),
        PostgresOptions::default(),
    )
    .unwrap();
    let (mut on_postgres, _) = measure(&mut postgres, objects, changed, rounds);
    drop(postgres);
    let store = sqlite;

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

    let (full_median, full_min) = summary(&mut measured.full);
    let (inc_median, inc_min) = summary(&mut measured.incremental);
    let (diff_median, diff_min) = summary(&mut measured.diffs);
    let (clone_median, clone_min) = summary(&mut clones);
    let (submit_median, submit_min) = summary(&mut submits);
    let (pg_full_median, pg_full_min) = summary(&mut on_postgres.full);
    let (pg_inc_median, pg_inc_min) = summary(&mut on_postgres.incremental);
    let (full_bytes, incremental_bytes, rows) = (
        measured.full_bytes,
        measured.incremental_bytes,
        measured.rows,
    );
    println!(
        "nexus-store save benchmark: {objects} objects, {changed} changed, SQLite WAL + synchronous=FULL"
    );
    println!(
        "first save (creates {} rows): {:.2} ms (PostgreSQL: {:.2} ms)",
        measured.first_rows,
        measured.first.as_secs_f64() * 1e3,
        on_postgres.first.as_secs_f64() * 1e3
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
    println!(
        "{:<44} {:>10.3} {:>10.3} {:>12}",
        format!("PostgreSQL full save ({objects} rows)"),
        pg_full_median,
        pg_full_min,
        on_postgres.full_bytes
    );
    println!(
        "{:<44} {:>10.3} {:>10.3} {:>12}",
        format!("PostgreSQL incremental save ({changed} rows)"),
        pg_inc_median,
        pg_inc_min,
        on_postgres.incremental_bytes
    );
    println!();
    println!(
        "ratio full / incremental (median): {:.1}x  (incremental + diff: {:.1}x)",
        full_median / inc_median,
        full_median / (inc_median + diff_median)
    );
    println!(
        "ratio PostgreSQL / SQLite (median): full {:.2}x, incremental {:.2}x",
        pg_full_median / full_median,
        pg_inc_median / inc_median
    );
}
