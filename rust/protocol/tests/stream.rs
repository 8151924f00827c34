//! Property-style tests of the state stream: random evolving worlds, a moving viewer, acks
//! delayed and lost, messages dropped before delivery; the decoded state must match the world
//! within the documented quantisation error.

mod common;

use std::collections::VecDeque;

use common::{MergingClient, RandomWorld, Rng, assert_close, distance};
use nexus_protocol::quant::{
    POSITION_MAX_ERROR, ROTATION_MAX_ANGLE_ERROR, VELOCITY_MAX_ERROR, rotation_angle_between,
};
use nexus_protocol::{
    AckOutcome, Encoding, JsonStateMessage, LodBand, Snapshot, StateDecoder, StateEncoder,
    StatePayload, StreamSettings, names,
};
use nexus_sim::state::{ObjectId, ObjectState};

/// How the simulated connection behaves.
#[derive(Clone, Copy)]
struct Link {
    /// Messages between sending a state and its ack reaching the encoder.
    ack_delay: usize,
    /// Probability that the client sends no ack for a message.
    ack_loss: f32,
    /// Probability that the gateway drops an encoded message before it is sent.
    drop: f32,
}

const STEADY: Link = Link {
    ack_delay: 6,
    ack_loss: 0.0,
    drop: 0.0,
};
const LOSSY: Link = Link {
    ack_delay: 4,
    ack_loss: 0.3,
    drop: 0.2,
};

fn viewer_at(step: usize) -> [f32; 3] {
    // A viewer circling through the world, so objects keep entering and leaving interest.
    let angle = step as f32 * 0.05;
    [60.0 * angle.cos(), 5.0, 60.0 * angle.sin()]
}

fn settings_without_lod(radius: f32) -> StreamSettings {
    StreamSettings {
        interest_radius: radius,
        interest_hysteresis: 8.0,
        lod: Vec::new(),
        far_interval: 1,
        max_objects_per_message: usize::MAX,
        max_history: 64,
    }
}

/// Objects the client must hold (within the radius) and may hold (within radius + hysteresis).
fn check_interest<'a>(
    held: impl Iterator<Item = ObjectId>,
    snapshot: &'a Snapshot,
    viewer: [f32; 3],
    settings: &StreamSettings,
) -> Vec<&'a ObjectState> {
    let held: Vec<ObjectId> = held.collect();
    for object in snapshot.objects() {
        let d = distance(object.position, viewer);
        let is_held = held.binary_search(&object.id).is_ok();
        if d <= settings.interest_radius {
            assert!(
                is_held,
                "object {} at {d} m is within interest but not held",
                object.id
            );
        }
        if d > settings.interest_radius + settings.interest_hysteresis {
            assert!(
                !is_held,
                "object {} at {d} m is outside interest but held",
                object.id
            );
        }
    }
    held.iter()
        .map(|id| {
            snapshot
                .object(*id)
                .unwrap_or_else(|| panic!("held object {id} is not in the world"))
        })
        .collect()
}

/// Runs the binary stream and checks every delivered message; returns (messages, deltas).
fn run_binary(seed: u64, steps: usize, settings: StreamSettings, link: Link) -> (usize, usize) {
    let mut world = RandomWorld::new(seed, 300, 100.0);
    let mut rng = Rng::new(seed ^ 0xabcdef);
    let mut encoder = StateEncoder::new("c1", Encoding::Binary, settings.clone());
    let mut decoder = StateDecoder::default();
    let mut acks: VecDeque<(usize, u64)> = VecDeque::new();
    let (mut delivered, mut deltas) = (0, 0);
    for step in 0..steps {
        world.step();
        while acks.front().is_some_and(|(due, _)| *due <= step) {
            let (_, tick) = acks.pop_front().unwrap();
            let outcome = encoder.acknowledge(tick);
            assert_ne!(outcome, AckOutcome::Unknown, "ack of a sent tick {tick}");
        }
        let snapshot = Snapshot::new(world.state());
        let viewer = viewer_at(step);
        let seq = step as u32 * 3;
        let encoded = encoder
            .encode(&snapshot, Some(viewer), Some(seq))
            .expect("a newer tick");
        assert_eq!(encoded.tick, snapshot.tick());
        if rng.chance(link.drop) {
            continue;
        }
        let StatePayload::Binary(bytes) = encoded.payload else {
            panic!("binary stream produced text");
        };
        let decoded = decoder.decode(&bytes).expect("decodable");
        delivered += 1;
        deltas += usize::from(decoded.baseline.is_some());
        assert_eq!(decoded.tick, snapshot.tick());
        assert_eq!(decoded.baseline, encoded.baseline);
        assert_eq!(decoded.last_input_seq, Some(seq));
        assert_eq!(decoded.objects.len(), encoded.in_view);
        assert_eq!(decoded.updated.len(), encoded.listed);
        let truths = check_interest(
            decoded.objects.iter().map(|o| o.id),
            &snapshot,
            viewer,
            &settings,
        );
        let near = settings
            .lod
            .first()
            .map_or(f32::INFINITY, |band| band.max_distance);
        for (object, truth) in decoded.objects.iter().zip(truths) {
            if settings.lod.is_empty() || distance(truth.position, viewer) <= near {
                assert_close(object, truth, &format!("step {step}"));
            }
        }
        for id in &decoded.updated {
            let object = decoded
                .objects
                .iter()
                .find(|o| o.id == *id)
                .expect("updated is held");
            assert_close(
                object,
                snapshot.object(*id).expect("in world"),
                "listed object",
            );
        }
        if !rng.chance(link.ack_loss) {
            acks.push_back((step + link.ack_delay, decoded.tick));
        }
    }
    (delivered, deltas)
}

#[test]
fn binary_stream_matches_the_world_with_steady_acks() {
    for seed in 1..=4 {
        let (delivered, deltas) = run_binary(seed, 400, settings_without_lod(70.0), STEADY);
        assert_eq!(delivered, 400);
        assert!(
            deltas > 380,
            "acks must turn the stream into deltas ({deltas})"
        );
    }
}

#[test]
fn binary_stream_survives_lost_acks_and_dropped_messages() {
    for seed in 10..=13 {
        let (delivered, deltas) = run_binary(seed, 400, settings_without_lod(70.0), LOSSY);
        assert!(delivered > 250 && deltas > 200, "{delivered} {deltas}");
    }
}

#[test]
fn binary_stream_without_interest_limit_holds_everything() {
    run_binary(21, 200, StreamSettings::everything(), LOSSY);
}

#[test]
fn binary_stream_with_lod_keeps_near_objects_exact() {
    let settings = StreamSettings {
        interest_radius: 90.0,
        interest_hysteresis: 5.0,
        lod: vec![
            LodBand {
                max_distance: 30.0,
                interval: 1,
            },
            LodBand {
                max_distance: 60.0,
                interval: 3,
            },
        ],
        far_interval: 5,
        max_objects_per_message: usize::MAX,
        max_history: 64,
    };
    run_binary(31, 400, settings.clone(), STEADY);
    run_binary(32, 400, settings, LOSSY);
}

#[test]
fn far_objects_are_listed_less_often() {
    let mut world = RandomWorld::new(41, 300, 100.0);
    for o in &mut world.objects {
        o.sleeping = false;
    }
    let lod = StreamSettings {
        interest_radius: 200.0,
        lod: vec![LodBand {
            max_distance: 20.0,
            interval: 1,
        }],
        far_interval: 4,
        ..StreamSettings::default()
    };
    let mut with_lod = StateEncoder::new("c", Encoding::Binary, lod);
    let mut without = StateEncoder::new("c", Encoding::Binary, settings_without_lod(200.0));
    let (mut listed_lod, mut listed_all) = (0, 0);
    for _ in 0..120 {
        world.step();
        for o in &mut world.objects {
            o.sleeping = false;
            o.position[1] += 0.1; // everything moves every tick
        }
        let snapshot = Snapshot::new(world.state());
        for (encoder, listed) in [
            (&mut with_lod, &mut listed_lod),
            (&mut without, &mut listed_all),
        ] {
            let e = encoder.encode(&snapshot, Some([0.0; 3]), None).unwrap();
            *listed += e.listed;
            encoder.acknowledge(e.tick);
        }
    }
    assert!(
        (listed_lod as f64) < listed_all as f64 * 0.5,
        "LOD must list far objects less often: {listed_lod} vs {listed_all}"
    );
}

fn run_json(seed: u64, steps: usize, settings: StreamSettings, link: Link) {
    // With level of detail, only objects in the first band are updated every message.
    let exact_within = settings
        .lod
        .first()
        .map_or(f32::INFINITY, |band| band.max_distance);
    let mut world = RandomWorld::new(seed, 200, 100.0);
    let mut rng = Rng::new(seed ^ 0x5555);
    let mut encoder = StateEncoder::new("camp", Encoding::Json, settings.clone());
    let mut client = MergingClient::default();
    let mut acks: VecDeque<(usize, u64)> = VecDeque::new();
    for step in 0..steps {
        world.step();
        while acks.front().is_some_and(|(due, _)| *due <= step) {
            let (_, tick) = acks.pop_front().unwrap();
            encoder.acknowledge(tick);
        }
        let snapshot = Snapshot::new(world.state());
        let viewer = viewer_at(step);
        let encoded = encoder.encode(&snapshot, Some(viewer), None).unwrap();
        if rng.chance(link.drop) {
            continue;
        }
        let StatePayload::Text(text) = encoded.payload else {
            panic!("JSON stream produced binary");
        };
        let envelope: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(envelope["type"], names::WORLD_STATE);
        assert_eq!(envelope["metadata"]["campaign_id"], "camp");
        let message: JsonStateMessage =
            serde_json::from_value(envelope["payload"].clone()).expect("state payload");
        assert_eq!(message.tick, snapshot.tick());
        assert_eq!(message.full, message.baseline.is_none());
        if message.full {
            assert!(message.physics.is_some() && message.environment.is_some());
        }
        client.apply(&message);
        let truths = check_interest(client.objects.keys().copied(), &snapshot, viewer, &settings);
        for (held, truth) in client.objects.values().zip(truths) {
            if distance(truth.position, viewer) > exact_within {
                continue;
            }
            // JSON carries mm / 1e-4 rounded values; unchanged-within-a-quantum objects are not
            // resent, so the tolerance is one quantum plus the rounding.
            for axis in 0..3 {
                let e = (held.position[axis] - truth.position[axis]).abs();
                assert!(
                    e <= 2.0 * POSITION_MAX_ERROR + 0.0005,
                    "step {step}: position error {e}"
                );
                let e = (held.velocity[axis] - truth.velocity[axis]).abs();
                assert!(e <= 2.0 * VELOCITY_MAX_ERROR + 0.0005, "velocity error {e}");
            }
            let angle = rotation_angle_between(held.rotation, truth.rotation);
            assert!(
                angle < 2.0 * ROTATION_MAX_ANGLE_ERROR,
                "rotation error {angle}"
            );
            assert_eq!(held.sleeping, truth.sleeping);
            assert_eq!(held.kind, Some(truth.kind), "kind of {}", truth.id);
            assert_eq!(
                held.properties.as_ref(),
                Some(&truth.properties),
                "properties of {}",
                truth.id
            );
        }
        if !rng.chance(link.ack_loss) {
            acks.push_back((step + link.ack_delay, message.tick));
        }
    }
}

#[test]
fn json_stream_lets_a_merging_client_track_the_world() {
    run_json(51, 400, settings_without_lod(70.0), STEADY);
    run_json(52, 400, settings_without_lod(70.0), LOSSY);
}

#[test]
fn json_stream_with_lod_keeps_the_set_exact_and_near_objects_fresh() {
    let settings = StreamSettings {
        interest_radius: 80.0,
        interest_hysteresis: 6.0,
        lod: vec![
            LodBand {
                max_distance: 25.0,
                interval: 1,
            },
            LodBand {
                max_distance: 50.0,
                interval: 2,
            },
        ],
        far_interval: 4,
        max_objects_per_message: usize::MAX,
        max_history: 64,
    };
    run_json(53, 400, settings.clone(), STEADY);
    run_json(54, 400, settings, LOSSY);
}

#[test]
fn json_full_state_without_acks_lists_everything_in_interest() {
    let world = RandomWorld::new(61, 100, 50.0);
    let snapshot = Snapshot::new(world.state());
    let mut encoder = StateEncoder::new("c", Encoding::Json, StreamSettings::everything());
    let e = encoder.encode(&snapshot, None, Some(7)).unwrap();
    assert_eq!(e.baseline, None);
    assert_eq!(e.listed, 100);
    let StatePayload::Text(text) = e.payload else {
        panic!()
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["payload"]["last_input_seq"], 7);
    assert_eq!(v["payload"]["full"], true);
    assert_eq!(v["payload"]["objects"].as_array().unwrap().len(), 100);
}

#[test]
fn acks_move_the_baseline_forward_only() {
    let mut world = RandomWorld::new(71, 50, 50.0);
    let mut encoder = StateEncoder::new("c", Encoding::Binary, StreamSettings::everything());
    let mut ticks = Vec::new();
    for _ in 0..5 {
        world.step();
        ticks.push(
            encoder
                .encode(&Snapshot::new(world.state()), None, None)
                .unwrap()
                .tick,
        );
    }
    assert_eq!(encoder.acknowledge(ticks[2]), AckOutcome::Accepted);
    assert_eq!(encoder.baseline_tick(), Some(ticks[2]));
    assert_eq!(encoder.acknowledge(ticks[1]), AckOutcome::Stale);
    assert_eq!(encoder.acknowledge(ticks[2]), AckOutcome::Stale);
    assert_eq!(encoder.acknowledge(ticks[4] + 100), AckOutcome::Unknown);
    assert_eq!(encoder.acknowledge(ticks[4]), AckOutcome::Accepted);
    // The same snapshot again (or an older one) produces nothing.
    assert!(
        encoder
            .encode(&Snapshot::new(world.state()), None, None)
            .is_none()
    );
    encoder.resync();
    assert_eq!(encoder.baseline_tick(), None);
    world.step();
    let e = encoder
        .encode(&Snapshot::new(world.state()), None, None)
        .unwrap();
    assert_eq!(e.baseline, None, "after a resync the next message is full");
}

#[test]
fn sleeping_world_deltas_are_tiny() {
    let mut world = RandomWorld::new(81, 500, 100.0);
    for o in &mut world.objects {
        o.sleeping = true;
        o.velocity = [0.0; 3];
        o.angular_velocity = [0.0; 3];
    }
    let mut encoder = StateEncoder::new("c", Encoding::Binary, StreamSettings::everything());
    let mut decoder = StateDecoder::default();
    let mut sizes = Vec::new();
    for tick in 1..=5u64 {
        let mut state = world.state();
        state.tick = tick;
        let e = encoder.encode(&Snapshot::new(state), None, None).unwrap();
        let StatePayload::Binary(bytes) = &e.payload else {
            panic!()
        };
        let decoded = decoder.decode(bytes).unwrap();
        assert_eq!(decoded.objects.len(), 500);
        sizes.push(bytes.len());
        encoder.acknowledge(tick);
    }
    assert!(sizes[0] > 5000, "the first message is full: {}", sizes[0]);
    assert!(
        sizes[4] < 32,
        "nothing changed, so a delta is a header: {}",
        sizes[4]
    );
}

#[test]
fn the_per_message_cap_defers_far_objects_but_keeps_the_view_consistent() {
    let mut world = RandomWorld::new(91, 300, 60.0);
    let settings = StreamSettings {
        max_objects_per_message: 40,
        ..settings_without_lod(1000.0)
    };
    let mut encoder = StateEncoder::new("c", Encoding::Binary, settings);
    let mut decoder = StateDecoder::default();
    let mut held = 0;
    for _ in 0..60 {
        world.step();
        let snapshot = Snapshot::new(world.state());
        let e = encoder.encode(&snapshot, Some([0.0; 3]), None).unwrap();
        assert!(e.listed <= 40, "cap exceeded: {}", e.listed);
        let StatePayload::Binary(bytes) = &e.payload else {
            panic!()
        };
        let decoded = decoder.decode(bytes).unwrap();
        assert_eq!(decoded.objects.len(), e.in_view);
        for object in &decoded.objects {
            assert!(
                snapshot.object(object.id).is_some(),
                "held object {} was removed",
                object.id
            );
        }
        held = decoded.objects.len();
        encoder.acknowledge(e.tick);
    }
    assert!(
        held > 250,
        "deferred objects arrive in later messages: {held}"
    );
}

/// The worked example of PROTOCOL.md (section 6.5), byte for byte.
#[test]
fn golden_binary_message_matches_the_reference_document() {
    use nexus_sim::state::{BodyKind, ObjectState, WorldState};
    let object = |id, position: [f32; 3], velocity: [f32; 3]| ObjectState {
        id,
        kind: BodyKind::Dynamic,
        position,
        rotation: [0.0, 0.0, 0.0, 1.0],
        velocity,
        angular_velocity: [0.0; 3],
        sleeping: false,
        shape: None,
        properties: Default::default(),
    };
    let state = |tick, objects| WorldState {
        timestamp: 0.0,
        tick,
        objects,
        physics: common::physics(1),
        environment: common::environment(),
    };
    let mut encoder = StateEncoder::new("0", Encoding::Binary, StreamSettings::everything());
    let full = encoder
        .encode(
            &Snapshot::new(state(5, vec![object(1, [1.0, 2.0, 3.0], [0.0; 3])])),
            None,
            Some(7),
        )
        .unwrap();
    let StatePayload::Binary(full) = full.payload else {
        panic!()
    };
    assert_eq!(
        hex(&full),
        "010103050700000000000000003c00bd4e00000001ff01000001040a038001800900"
    );
    assert_eq!(encoder.acknowledge(5), AckOutcome::Accepted);
    // Six ticks later the object moved 0.1 m along x at 1 m/s.
    let delta = encoder
        .encode(
            &Snapshot::new(state(11, vec![object(1, [1.1, 2.0, 3.0], [1.0, 0.0, 0.0])])),
            None,
            None,
        )
        .unwrap();
    let StatePayload::Binary(delta) = delta.payload else {
        panic!()
    };
    assert_eq!(
        hex(&delta),
        "0101000b0600000000000000003c00bd4e00000001070000000504aa790f"
    );
    let mut decoder = StateDecoder::default();
    let first = decoder.decode(&full).unwrap();
    assert_eq!(first.objects[0].position, [1.0, 2.0, 3.0]);
    let second = decoder.decode(&delta).unwrap();
    assert_eq!(second.baseline, Some(5));
    assert!((second.objects[0].position[0] - 1.1).abs() <= POSITION_MAX_ERROR);
    assert_eq!(second.objects[0].velocity, [1.0, 0.0, 0.0]);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn corrupted_binary_messages_are_errors_not_panics() {
    let mut world = RandomWorld::new(101, 120, 40.0);
    let mut encoder = StateEncoder::new("c", Encoding::Binary, StreamSettings::everything());
    let mut messages = Vec::new();
    for _ in 0..6 {
        world.step();
        let e = encoder
            .encode(&Snapshot::new(world.state()), None, Some(1))
            .unwrap();
        let StatePayload::Binary(bytes) = e.payload else {
            panic!()
        };
        messages.push((e.tick, bytes));
        encoder.acknowledge(e.tick);
    }
    let mut rng = Rng::new(5);
    let mut errors = 0;
    for round in 0..3000 {
        // A decoder holding the baselines the later messages need.
        let mut decoder = StateDecoder::default();
        let (_, first) = &messages[0];
        decoder.decode(first).unwrap();
        let (_, target) = &messages[1 + round % (messages.len() - 1)];
        let mut bytes = target.clone();
        match rng.below(3) {
            0 => bytes.truncate(rng.below(bytes.len() as u64) as usize),
            1 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(bytes.len() as u64) as usize;
                    bytes[i] ^= 1 << rng.below(8);
                }
            }
            _ => bytes.extend((0..1 + rng.below(8)).map(|_| rng.next_u64() as u8)),
        }
        if decoder.decode(&bytes).is_err() {
            errors += 1;
        }
    }
    assert!(
        errors > 1500,
        "most corruptions are detected ({errors} of 3000)"
    );
}

#[test]
fn decoder_reports_missing_baselines_and_reordering() {
    let mut world = RandomWorld::new(111, 20, 40.0);
    let mut encoder = StateEncoder::new("c", Encoding::Binary, StreamSettings::everything());
    let mut messages = Vec::new();
    for _ in 0..3 {
        world.step();
        let e = encoder
            .encode(&Snapshot::new(world.state()), None, None)
            .unwrap();
        let StatePayload::Binary(bytes) = e.payload else {
            panic!()
        };
        messages.push(bytes);
        encoder.acknowledge(e.tick);
    }
    let mut fresh = StateDecoder::default();
    assert!(matches!(
        fresh.decode(&messages[2]),
        Err(nexus_protocol::DecodeError::MissingBaseline(_))
    ));
    let mut decoder = StateDecoder::default();
    decoder.decode(&messages[0]).unwrap();
    decoder.decode(&messages[1]).unwrap();
    assert!(matches!(
        decoder.decode(&messages[1]),
        Err(nexus_protocol::DecodeError::OutOfOrder { .. })
    ));
    decoder.decode(&messages[2]).unwrap();
    assert_eq!(decoder.latest_tick(), Some(world.tick));
}
