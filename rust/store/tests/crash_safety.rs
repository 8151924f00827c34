//! Crash safety, for real: a child process saves a changing campaign in a loop through a
//! `Saver` and is killed with SIGKILL at a random moment; then the store must open cleanly,
//! pass `PRAGMA integrity_check`, hold exactly one of the states that were submitted (no torn
//! save), and that state must not be older than the last save the child reported complete.
//! The next round's child resumes from what it loads, so recovery is exercised too.
//!
//! This target has no test harness: the same binary is the parent (default) and the child
//! (environment variable `NEXUS_STORE_CRASH_CHILD` = data directory). Rounds: 20, or
//! `NEXUS_CRASH_ROUNDS`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{ScratchDir, assert_same, environment, object, terrain};
use nexus_sim::state::Tick;
use nexus_store::{
    CampaignRecord, CampaignStore, PlayerRecord, Saver, SaverConfig, SaverEvent, SqliteStore,
};

const CHILD_ENV: &str = "NEXUS_STORE_CRASH_CHILD";
const CAMPAIGN: &str = "crash";
const OBJECTS: u32 = 2000;

/// The campaign's state at tick `k`: a pure function, so any loaded state can be checked
/// against what was submitted for its tick. Every tick changes ~40 objects, removes one residue
/// class of ids (mod 97) and brings the previous one back, moves a player, and every 100 ticks
/// edits the terrain.
fn world_at(k: Tick) -> CampaignRecord {
    let mut record = CampaignRecord::new(CAMPAIGN, environment());
    record.tick = k;
    record.environment.time_of_day = (k % 2400) as f32 / 100.0;
    record.objects.insert(1, terrain((k / 100) as u32));
    for id in 2..OBJECTS + 2 {
        if u64::from(id) % 97 == k % 97 {
            continue;
        }
        // The last tick <= k at which this object changed (every 50 ticks, phase = id).
        let phase = u64::from(id) % 50;
        let touched = if k >= phase { k - (k - phase) % 50 } else { 0 };
        record.objects.insert(id, object(id, touched as u32));
    }
    record.next_object_id = OBJECTS + 2;
    let mut player = PlayerRecord::at([k as f32, 0.0, 1.0]);
    player.last_seen_tick = k;
    record.players.insert("runner".into(), player);
    record
        .world
        .insert("generation".into(), serde_json::json!(k / 250));
    record
}

fn child(data_dir: &str) {
    let store = SqliteStore::open(data_dir).expect("open the store");
    let config = SaverConfig {
        interval: Duration::from_millis(5),
        ..SaverConfig::default()
    };
    let (mut saver, loaded) = Saver::start(Box::new(store), CAMPAIGN, config).expect("start");
    let mut k = loaded.map_or(1, |record| record.tick + 1);
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {k}").unwrap();
    out.flush().unwrap();
    loop {
        saver.submit_snapshot(world_at(k)).expect("submit");
        for event in saver.poll_events() {
            match event {
                SaverEvent::Saved(stats) => writeln!(out, "saved {}", stats.tick).unwrap(),
                other => writeln!(out, "event {other:?}").unwrap(),
            }
            out.flush().unwrap();
        }
        k += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Small deterministic generator for the kill delays (no dependency needed).
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

struct Round {
    delay_ms: u64,
    start_tick: Tick,
    acked: Option<Tick>,
    saves_seen: usize,
    stored: Tick,
}

fn run_round(dir: &ScratchDir, delay_ms: u64) -> Round {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let ready = lines.recv_timeout(Duration::from_secs(60));
    let start_tick = match ready.as_deref().map(|l| l.strip_prefix("ready ")) {
        Ok(Some(tick)) => tick.parse().unwrap(),
        _ => {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "the child did not start ({ready:?}); stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    };
    std::thread::sleep(Duration::from_millis(delay_ms));
    child.kill().expect("SIGKILL the child");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");
    reader.join().unwrap();

    let mut acked = None;
    let mut saves_seen = 0;
    for line in lines.try_iter() {
        if let Some(tick) = line.strip_prefix("saved ") {
            acked = Some(tick.parse::<Tick>().unwrap());
            saves_seen += 1;
        } else {
            panic!("the child reported: {line}");
        }
    }

    // The store opens cleanly and is intact.
    let path = SqliteStore::open(dir.path())
        .unwrap()
        .campaign_path(CAMPAIGN);
    let connection = rusqlite::Connection::open(&path).unwrap();
    let integrity: String = connection
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    drop(connection);
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let stored = match store.load_campaign(CAMPAIGN).unwrap() {
        Some(record) => {
            // Exactly a submitted state: no half-written save.
            assert_same(Some(&record), &world_at(record.tick));
            record.tick
        }
        None => {
            assert!(acked.is_none(), "a save was reported but nothing is stored");
            0
        }
    };
    if let Some(acked) = acked {
        assert!(
            stored >= acked,
            "stored tick {stored} is older than the acknowledged save {acked}"
        );
    }
    Round {
        delay_ms,
        start_tick,
        acked,
        saves_seen,
        stored,
    }
}

fn main() {
    if let Ok(data_dir) = std::env::var(CHILD_ENV) {
        child(&data_dir);
        return;
    }
    let rounds: usize = std::env::var("NEXUS_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut random = XorShift(seed);
    let dir = ScratchDir::new("crash");
    let started = Instant::now();
    println!("crash_safety: {rounds} rounds, kill-delay seed {seed}");
    println!("round  delay ms  resumed at  last acked  stored  saves seen");
    let mut previous_stored = 0;
    for round in 0..rounds {
        let delay_ms = 30 + random.below(400);
        let result = run_round(&dir, delay_ms);
        assert!(
            result.stored >= previous_stored,
            "the stored state went back from {previous_stored} to {}",
            result.stored
        );
        assert!(
            result.start_tick == previous_stored + 1,
            "the child resumed at {} instead of after the stored tick {previous_stored}",
            result.start_tick
        );
        previous_stored = result.stored;
        println!(
            "{round:>5}  {:>8}  {:>10}  {:>10}  {:>6}  {:>10}",
            result.delay_ms,
            result.start_tick,
            result.acked.map_or("-".to_string(), |t| t.to_string()),
            result.stored,
            result.saves_seen
        );
    }
    assert!(previous_stored > 0, "no save completed in any round");
    println!(
        "crash_safety: {rounds} kills survived in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}
