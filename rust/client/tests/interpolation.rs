//! Remote objects over an emulated bad network (100–200 ms round trip, 20 ms jitter, 5 % loss of
//! state messages), on a simulated clock: playback must have no gaps (no freeze, no jump).

mod common;

use std::collections::BTreeMap;

use common::{SimNet, SimServer, flat_world, link};
use nexus_client::{Controls, Encoding, SampleMode, SessionConfig};
use nexus_protocol::quant::POSITION_MAX_ERROR;
use nexus_sim::movement::MovementSettings;

fn distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    let d = [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
    (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
}

#[derive(Debug, Default)]
struct Playback {
    frames: usize,
    max_step: f32,
    max_off_path: f32,
    extrapolated: usize,
    limited: usize,
    held: usize,
}

/// The walker's true (server) position at a fractional tick, from its per-tick positions.
fn true_position(path: &BTreeMap<u64, [f32; 3]>, tick: f64) -> Option<[f32; 3]> {
    let below = *path.range(..=tick.floor() as u64).next_back()?.1;
    let above = *path.range(tick.ceil() as u64..).next()?.1;
    let t = (tick - tick.floor()) as f32;
    Some([0, 1, 2].map(|i| below[i] + (above[i] - below[i]) * t))
}

#[test]
fn remote_objects_move_without_interpolation_gaps() {
    for (encoding, rtt, seed) in [(Encoding::Binary, 0.1, 41), (Encoding::Json, 0.2, 42)] {
        let mut net = SimNet::new(SimServer::new(flat_world(), 20), 120.0);
        let mut observer_config = SessionConfig::new("test", "observer");
        observer_config.encoding = encoding;
        let mut walker_config = SessionConfig::new("test", "walker");
        walker_config.encoding = encoding;
        let observer = net.add_client(
            observer_config,
            link(rtt, 0.02, 0.0),
            link(rtt, 0.02, 0.05),
            seed,
        );
        let walker = net.add_client(
            walker_config,
            link(rtt, 0.02, 0.0),
            link(rtt, 0.02, 0.05),
            seed + 100,
        );
        // Let both join and synchronise, standing.
        net.run_until(2.0, |_, _| {});
        let walker_id = net.clients[walker].id;
        let walker_avatar = net.clients[walker].session.avatar_id().unwrap();
        net.clients[walker].controls = Controls {
            movement: [0.0, 1.0],
            look: [0.0, 0.0, -1.0],
            ..Controls::default()
        };
        // The walker's true path, tick by tick, straight from the server's world.
        let mut path: BTreeMap<u64, [f32; 3]> = BTreeMap::new();
        let measure_from = 3.5;
        let mut previous: Option<[f32; 3]> = None;
        let mut playback = Playback::default();
        net.run_until(10.0, |net, i| {
            let world = &net.server.world;
            path.insert(
                world.tick(),
                world.character_of(walker_id).unwrap().position,
            );
            if i != observer || net.now < measure_from {
                return;
            }
            let session = &net.clients[i].session;
            let (Some(pose), Some(tick)) =
                (session.remote_object(walker_avatar), session.render_tick())
            else {
                return;
            };
            match pose.mode {
                SampleMode::Extrapolated => playback.extrapolated += 1,
                SampleMode::ExtrapolationLimit => playback.limited += 1,
                SampleMode::Held => playback.held += 1,
                SampleMode::Interpolated => {}
            }
            if let Some(truth) = true_position(&path, tick) {
                playback.max_off_path = playback.max_off_path.max(distance(truth, pose.position));
            }
            if let Some(p) = previous {
                playback.max_step = playback.max_step.max(distance(p, pose.position));
                playback.frames += 1;
            }
            previous = Some(pose.position);
        });
        // Bounds from the scenario. Snapshots come every 3 ticks; between two of them the shown
        // position runs straight while the server's avatar may lose a step to its controller or
        // catch up one late input: the shown position stays within one step of the true path at
        // the same tick, plus the stream's quantisation (per axis, both ends). A gap (a frozen
        // object, or one jumping ahead after lost states) is several steps off the path.
        let walk = MovementSettings::default().walk_speed;
        let step = walk / 60.0;
        let quantisation = 2.0 * POSITION_MAX_ERROR * 3f32.sqrt();
        assert!(playback.frames > 700, "{encoding:?}: {playback:?}");
        assert!(
            playback.max_off_path <= step + quantisation,
            "{encoding:?}: {} m off the true path (bound {}): {playback:?}",
            playback.max_off_path,
            step + quantisation
        );
        // Per frame: the playback clock runs within ±10 % of real time, and one snapshot interval
        // holds at most four steps (a late input caught up): no frame shows more than that.
        let frame_bound = 1.1 * (4.0 / 3.0) * walk * net.frame_dt as f32 + quantisation;
        assert!(
            playback.max_step <= frame_bound,
            "{encoding:?}: a frame moved {} m (bound {frame_bound}): {playback:?}",
            playback.max_step
        );
        assert_eq!(
            playback.limited, 0,
            "{encoding:?}: ran out of states: {playback:?}"
        );
        assert_eq!(playback.held, 0, "{encoding:?}: froze: {playback:?}");
        let observer_stats = net.clients[observer].session.stats();
        assert!(
            observer_stats.frames_lost > 0,
            "{encoding:?}: no state was lost"
        );
        let delay = net.clients[observer]
            .session
            .timing(net.now)
            .interpolation_delay;
        assert!(
            (0.14..0.3).contains(&delay),
            "{encoding:?}: delay {delay} s is not about three 50 ms intervals plus jitter"
        );
    }
}
