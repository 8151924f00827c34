//! Prediction and reconciliation over an emulated bad network (100–200 ms round trip, 20 ms
//! jitter, 5 % loss of state messages), on a simulated clock: deterministic, no sleeping.

mod common;

use common::{SimNet, SimServer, flat_world, flat_world_with, link};
use nexus_client::{Controls, Encoding, SessionConfig};
use nexus_sim::WorldConfig;
use nexus_sim::movement::MovementSettings;
use nexus_sim::state::{BodyKind, ObjectDesc, Shape};

const JITTER: f64 = 0.02;
const STATE_LOSS: f64 = 0.05;

fn config(encoding: Encoding, token: &str) -> SessionConfig {
    let mut config = SessionConfig::new("test", token);
    config.encoding = encoding;
    config
}

fn length(v: [f32; 3]) -> f32 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

fn distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    length([a[0] - b[0], a[1] - b[1], a[2] - b[2]])
}

/// A walk that exercises every input: forward, strafe, turning, running, jumping, standing.
fn script(t: f64) -> Controls {
    let phase = (t / 1.5) as u32 % 6;
    let yaw = (t * 0.7) as f32;
    Controls {
        movement: match phase {
            0 => [0.0, 1.0],
            1 => [1.0, 0.5],
            2 => [-0.7, -0.7],
            3 => [0.0, 1.0],
            4 => [0.0, 0.0],
            _ => [0.3, 1.0],
        },
        look: [yaw.sin(), 0.0, -yaw.cos()],
        jump: (t % 2.0) < 0.05,
        run: phase == 3,
    }
}

/// Runs the walk script for 12 s; returns the client's stats, the largest displayed movement in
/// one frame, the largest correction offset shown, and the frame's movement bound.
fn walk(
    encoding: Encoding,
    rtt: f64,
    seed: u64,
    world: nexus_sim::World,
) -> (nexus_client::SessionStats, f32, f32, f32) {
    let settings = MovementSettings::default();
    let top_speed = (settings.run_speed.powi(2) + settings.jump_speed.powi(2)).sqrt();
    {
        let mut net = SimNet::new(SimServer::new(world, 20), 120.0);
        let index = net.add_client(
            config(encoding, "walker"),
            link(rtt, JITTER, 0.0),
            link(rtt, JITTER, STATE_LOSS),
            seed,
        );
        // Displayed movement per frame: at most the top speed over one frame, with the input
        // clock's 5 % drift allowance. A snap would exceed it (or show in the counters below).
        let frame_bound = top_speed * net.frame_dt as f32 * 1.05 + 1e-4;
        let mut previous: Option<[f32; 3]> = None;
        let mut largest_step = 0.0f32;
        let mut largest_offset = 0.0f32;
        net.run_until(12.0, |net, i| {
            let t = net.now;
            let client = &mut net.clients[i];
            client.controls = script(t);
            if let Some(view) = client.session.avatar() {
                if let Some(p) = previous {
                    largest_step = largest_step.max(distance(p, view.position));
                }
                previous = Some(view.position);
                largest_offset = largest_offset.max(length(view.correction_offset));
            }
        });
        let avatar = net.clients[index].session.avatar().unwrap();
        // The scenario is not a standstill.
        assert!(length([avatar.position[0] - 3.0, 0.0, avatar.position[2]]) > 3.0);
        let stats = net.clients[index].session.stats().clone();
        assert!(
            stats.frames_lost > 0,
            "{encoding:?}: the link lost no state"
        );
        (stats, largest_step, largest_offset, frame_bound)
    }
}

#[test]
fn the_avatar_does_not_snap_when_the_server_agrees() {
    // The server agrees with the inputs when it applies exactly them: it must not move the fresh
    // avatar with idle steps before the first input arrives, so it waits a second for it (by
    // default it waits ten ticks, less than a 200 ms round trip; see the next test).
    for (encoding, rtt, seed) in [
        (Encoding::Json, 0.1, 11),
        (Encoding::Binary, 0.1, 15),
        (Encoding::Binary, 0.15, 12),
        (Encoding::Json, 0.2, 16),
        (Encoding::Binary, 0.2, 17),
    ] {
        let mut config = WorldConfig::default();
        config.input.idle_after_ticks = 60;
        let world = flat_world_with(config);
        let (stats, largest_step, largest_offset, frame_bound) = walk(encoding, rtt, seed, world);
        assert!(
            stats.reconciliations > 150,
            "{encoding:?}: only {} acknowledged states compared",
            stats.reconciliations
        );
        assert_eq!(stats.corrections, 0, "{encoding:?}: {stats:?}");
        assert_eq!(stats.rebases, 0, "{encoding:?}: {stats:?}");
        assert_eq!(largest_offset, 0.0, "{encoding:?}: a correction was shown");
        // Exact prediction: the server's avatar differs only by the stream's quantisation.
        assert!(
            stats.prediction_error_max < 0.002,
            "{encoding:?}: prediction error {} m",
            stats.prediction_error_max
        );
        assert!(
            largest_step <= frame_bound,
            "{encoding:?}: the avatar moved {largest_step} m in one frame (bound {frame_bound})"
        );
    }
}

#[test]
fn the_servers_idle_steps_before_the_first_input_cause_no_correction() {
    // With the default ten-tick wait the server moves a fresh avatar with idle steps before the
    // first input of a 150–200 ms client arrives: the server applies more than the client's
    // inputs. The client recovers how many from the first acknowledged states (bootstrap) and
    // moves its prediction by that much (a rebase, smoothed like a correction) instead of
    // correcting: from then on the prediction is exact again.
    for (encoding, rtt, seed) in [
        (Encoding::Binary, 0.2, 13),
        (Encoding::Json, 0.15, 14),
        (Encoding::Binary, 0.15, 12),
    ] {
        let (stats, largest_step, _, motion_bound) = walk(encoding, rtt, seed, flat_world());
        assert_eq!(stats.corrections, 0, "{encoding:?} {rtt}: {stats:?}");
        assert!(stats.rebases <= 5, "{encoding:?} {rtt}: {stats:?}");
        // Candidate starts differ by millimetres, or by one step the controller lost on one of
        // them: a rebase is at most about one running step.
        let step = MovementSettings::default().run_speed / 60.0;
        assert!(
            stats.rebase_max <= f64::from(step) * 1.1,
            "{encoding:?} {rtt}: {stats:?}"
        );
        assert!(
            stats.prediction_error_max < 0.002,
            "{encoding:?} {rtt}: prediction error {} m",
            stats.prediction_error_max
        );
        // A frame shows the avatar's motion plus the decay of the rebase offset: at most the
        // largest rebase times 1 - e^(-frame / time constant).
        let decay = 1.0 - (-(1.0f64 / 120.0) / 0.1).exp();
        let frame_bound = motion_bound + (stats.rebase_max * decay) as f32;
        assert!(
            largest_step <= frame_bound,
            "{encoding:?}: the avatar moved {largest_step} m in one frame (bound {frame_bound})"
        );
    }
}

#[test]
fn prediction_error_converges_to_zero_after_reconciliation() {
    for (encoding, rtt, seed) in [(Encoding::Binary, 0.1, 21), (Encoding::Json, 0.2, 22)] {
        let mut net = SimNet::new(SimServer::new(flat_world(), 20), 120.0);
        let index = net.add_client(
            config(encoding, "runner"),
            link(rtt, JITTER, 0.0),
            link(rtt, JITTER, STATE_LOSS),
            seed,
        );
        let forward = Controls {
            movement: [0.0, 1.0],
            look: [0.0, 0.0, -1.0],
            ..Controls::default()
        };
        net.clients[index].controls = forward;
        net.run_until(3.0, |_, _| {});

        // A wall appears right in front of the server's avatar: the client learns of it only
        // after the one-way delay, when its prediction (ahead by its input lead) is already past
        // it. The server blocks the avatar; the client must come back to it.
        let client_id = net.clients[index].id;
        let server_position = net.server.world.character_of(client_id).unwrap().position;
        net.server
            .world
            .add_object(ObjectDesc {
                kind: BodyKind::Static,
                shape: Shape::Box {
                    half_extents: [6.0, 2.0, 0.25],
                },
                position: [server_position[0], 2.0, server_position[2] - 1.0],
                rotation: [0.0, 0.0, 0.0, 1.0],
                mass: None,
                friction: 0.5,
                restitution: 0.0,
                properties: Default::default(),
            })
            .unwrap();

        let wall_time = net.now;
        let mut history: Vec<(f64, u64, f64)> = Vec::new();
        net.run_until(wall_time + 4.0, |net, i| {
            let t = net.now;
            // Push against the wall for a second, then stand.
            if t > wall_time + 1.0 {
                net.clients[i].controls.movement = [0.0, 0.0];
            }
            let stats = net.clients[i].session.stats();
            history.push((t, stats.corrections, stats.prediction_error_last));
        });
        let session = &net.clients[index].session;
        let stats = session.stats();
        assert!(
            stats.corrections >= 1,
            "{encoding:?}: the wall caused no correction"
        );
        assert!(stats.correction_max > 0.1, "{encoding:?}: {stats:?}");
        // Converged: no correction in the last two seconds, and the latest comparisons agree.
        let settled = wall_time + 2.0;
        let corrections_at_settle = history
            .iter()
            .find(|(t, _, _)| *t >= settled)
            .map(|(_, c, _)| *c)
            .unwrap();
        assert_eq!(
            stats.corrections, corrections_at_settle,
            "{encoding:?}: still correcting two seconds after the wall"
        );
        // Within the agreement tolerance: after a correction the prediction stands on the
        // server's quantised position, so it is exact only to a few millimetres.
        for (t, _, error) in history.iter().filter(|(t, _, _)| *t >= settled) {
            assert!(*error < 0.005, "{encoding:?}: error {error} at {t}");
        }
        // The shown correction has decayed, and the prediction sits where the server has the
        // avatar (pressed against the wall: more inputs do not move it).
        let view = session.avatar().unwrap();
        assert_eq!(view.correction_offset, [0.0; 3]);
        let server = net.server.world.character_of(client_id).unwrap().position;
        assert!(
            distance(view.predicted, server) < 0.005,
            "{encoding:?}: predicted {:?}, server {server:?}",
            view.predicted
        );
        assert!(
            server[2] > server_position[2] - 0.5,
            "the wall stopped the avatar"
        );
    }
}

#[test]
fn redundant_inputs_hide_lost_input_messages() {
    let rtt = 0.1;
    let mut corrections = Vec::new();
    for redundancy in [0usize, 4] {
        let mut net = SimNet::new(SimServer::new(flat_world(), 20), 120.0);
        let mut session = config(Encoding::Binary, "lossy");
        session.redundant_inputs = redundancy;
        let index = net.add_client(
            session,
            link(rtt, JITTER, 0.1),
            link(rtt, JITTER, STATE_LOSS),
            31,
        );
        net.run_until(8.0, |net, i| {
            let t = net.now;
            net.clients[i].controls = script(t);
            // Once playing (a lost join-time input would delay the first one past the server's
            // idle wait, a different matter), one input message in ten is lost on the way up.
            net.clients[i].lose_inputs = t > 1.0;
        });
        corrections.push(net.clients[index].session.stats().corrections);
    }
    // Without redundancy a lost batch is a gap in the server's inputs: the prediction diverges
    // and is corrected. Each input repeated in the next four batches survives a lost message
    // (the input lead grows by one batch to leave time for the repeat).
    assert!(corrections[0] >= 20, "{corrections:?}");
    assert_eq!(corrections[1], 0, "{corrections:?}");
}
