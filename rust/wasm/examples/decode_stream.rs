//! Replays a recorded server stream into the native client session and prints how fast it
//! decodes, as JSON: the native side of `scripts/web-bench`, which replays the same recording
//! into the WebAssembly build in Node and in Chromium the same way.
//!
//! `cargo run --release -p nexus-wasm --example decode_stream -- RECORDING [SECONDS]`
//!
//! A recording is a sequence of frames, each `[u8 kind: 0 text, 1 binary][f64 LE receive time,
//! s][u32 LE length][bytes]`. A pass feeds a fresh session everything before the first binary
//! frame (the welcome) untimed, then times the rest — the state stream with the events, pongs
//! and acks between its states — as the SDK handles each message: receive it, take the events,
//! take what the session wants to send. Passes repeat for SECONDS (default 2); the median counts.

use std::process::ExitCode;
use std::time::Instant;

use nexus_client::{ClientSession, Frame, SessionConfig};

struct Recorded {
    now: f64,
    frame: Frame,
}

fn parse(bytes: &[u8]) -> Result<Vec<Recorded>, String> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 13 {
            return Err(format!(
                "truncated frame header after {} frames",
                frames.len()
            ));
        }
        let kind = rest[0];
        let now = f64::from_le_bytes(rest[1..9].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(rest[9..13].try_into().expect("4 bytes")) as usize;
        let body = rest
            .get(13..13 + len)
            .ok_or_else(|| format!("frame {} claims {len} bytes past the end", frames.len()))?;
        let frame = match kind {
            0 => Frame::Text(
                String::from_utf8(body.to_vec())
                    .map_err(|_| format!("text frame {} is not UTF-8", frames.len()))?,
            ),
            1 => Frame::Binary(body.to_vec()),
            other => return Err(format!("frame {} has unknown kind {other}", frames.len())),
        };
        frames.push(Recorded { now, frame });
        rest = &rest[13 + len..];
    }
    Ok(frames)
}

struct Pass {
    seconds: f64,
    errors: u64,
    objects: usize,
}

fn replay(frames: &[Recorded], first_state: usize) -> Pass {
    let mut session = ClientSession::new(SessionConfig::new("0", "decode-bench"));
    session.start(frames.first().map_or(0.0, |f| f.now));
    let mut errors = 0;
    for recorded in &frames[..first_state] {
        errors += u64::from(session.receive(recorded.now, &recorded.frame).is_err());
        session.poll_events();
        session.drain_outgoing();
    }
    let started = Instant::now();
    for recorded in &frames[first_state..] {
        errors += u64::from(session.receive(recorded.now, &recorded.frame).is_err());
        std::hint::black_box(session.poll_events());
        std::hint::black_box(session.drain_outgoing());
    }
    Pass {
        seconds: started.elapsed().as_secs_f64(),
        errors,
        objects: session.objects().len(),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: decode_stream RECORDING [SECONDS]");
        return ExitCode::from(2);
    };
    let budget = match args.get(1).map(|text| text.parse::<f64>()) {
        None => 2.0,
        Some(Ok(seconds)) if seconds.is_finite() && seconds > 0.0 => seconds,
        Some(_) => {
            eprintln!("decode_stream: SECONDS must be a positive number");
            return ExitCode::from(2);
        }
    };
    let frames = match std::fs::read(path)
        .map_err(|error| format!("cannot read {path}: {error}"))
        .and_then(|bytes| parse(&bytes))
    {
        Ok(frames) => frames,
        Err(error) => {
            eprintln!("decode_stream: {error}");
            return ExitCode::FAILURE;
        }
    };
    let Some(first_state) = frames
        .iter()
        .position(|f| matches!(f.frame, Frame::Binary(_)))
    else {
        eprintln!("decode_stream: {path} holds no binary state frame");
        return ExitCode::FAILURE;
    };
    let timed = &frames[first_state..];
    let states = timed
        .iter()
        .filter(|f| matches!(f.frame, Frame::Binary(_)))
        .count();
    let bytes: usize = timed
        .iter()
        .map(|f| match &f.frame {
            Frame::Binary(b) => b.len(),
            Frame::Text(t) => t.len(),
        })
        .sum();

    let mut passes = Vec::new();
    let started = Instant::now();
    while passes.len() < 3 || started.elapsed().as_secs_f64() < budget {
        passes.push(replay(&frames, first_state));
    }
    let errors = passes.iter().map(|p| p.errors).max().unwrap_or(0);
    let objects = passes.last().map_or(0, |p| p.objects);
    let mut seconds: Vec<f64> = passes.iter().map(|p| p.seconds).collect();
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2].max(1e-9);
    println!(
        "{}",
        serde_json::json!({
            "passes": passes.len(),
            "states": states,
            "bytes": bytes,
            "objects": objects,
            "errors": errors,
            "seconds_per_pass": median,
            "states_per_second": states as f64 / median,
            "mib_per_second": bytes as f64 / median / (1024.0 * 1024.0),
        })
    );
    if errors > 0 {
        eprintln!("decode_stream: {errors} frames of the recording failed to decode");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
