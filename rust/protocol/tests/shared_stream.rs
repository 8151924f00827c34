//! The shared state stream: many clients of random evolving worlds, moving viewers, acks delayed
//! and lost, messages dropped; every client's decoded state must match the world (binary
//! decoders and JSON clients that merge) — exactly without level of detail; with it, the nearest
//! objects exactly and the others as they were at one of the last publications — and clients in
//! the same situation must share encodings.

mod common;

use std::collections::VecDeque;

use std::sync::Arc;

use common::{MergingClient, RandomWorld, Rng, assert_close, distance, is_close};
use nexus_protocol::quant::{POSITION_MAX_ERROR, rotation_angle_between};
use nexus_protocol::{
    DetailTier, Encoding, JsonStateMessage, RADIUS_STEP, SharedEncoded, SharedSnapshot,
    SharedStateEncoder, SharedStreamSettings, SharedTimeline, StateDecoder, StatePayload,
};
use nexus_sim::state::ObjectId;

const RADIUS: f32 = 50.0;

/// How far beyond the radius a client may still hold objects: its view is taken around the
/// centre of its cell (up to a diagonal away), at the radius rounded up to a step.
fn slack(settings: &SharedStreamSettings) -> f32 {
    settings.cell_size(RADIUS + RADIUS_STEP) * 3f32.sqrt() + RADIUS_STEP
}

struct Client {
    encoder: SharedStateEncoder,
    decoder: StateDecoder,
    /// Decodes the same messages with `decode_changes`.
    changes: StateDecoder,
    merging: MergingClient,
    rng: Rng,
    acks: VecDeque<(usize, u64)>,
    ack_delay: usize,
    ack_loss: f32,
    drop: f32,
    /// Circle the viewer follows: radius, angular speed, phase.
    path: (f32, f32, f32),
}

impl Client {
    fn new(encoding: Encoding, seed: u64, lossy: bool, path: (f32, f32, f32)) -> Client {
        Client {
            encoder: SharedStateEncoder::new(encoding, RADIUS),
            decoder: StateDecoder::default(),
            changes: StateDecoder::default(),
            merging: MergingClient::default(),
            rng: Rng::new(seed),
            acks: VecDeque::new(),
            ack_delay: if lossy { 4 } else { 2 },
            ack_loss: if lossy { 0.3 } else { 0.0 },
            drop: if lossy { 0.2 } else { 0.0 },
            path,
        }
    }

    fn viewer(&self, step: usize) -> [f32; 3] {
        let (r, speed, phase) = self.path;
        let a = phase + step as f32 * speed;
        [r * a.cos(), 3.0, r * a.sin()]
    }

    fn take_due_acks(&mut self, step: usize) {
        while self.acks.front().is_some_and(|(due, _)| *due <= step) {
            let (_, tick) = self.acks.pop_front().expect("checked");
            self.encoder.acknowledge(tick);
        }
    }

    fn encode(
        &mut self,
        timeline: &SharedTimeline,
        current: &SharedSnapshot,
        step: usize,
        seq: u32,
    ) -> Option<SharedEncoded> {
        self.take_due_acks(step);
        let encoded = self
            .encoder
            .encode(timeline, current, Some(self.viewer(step)), Some(seq))
            .expect("a newer tick");
        (!self.rng.chance(self.drop)).then_some(encoded)
    }

    fn ack(&mut self, step: usize, tick: u64) {
        if !self.rng.chance(self.ack_loss) {
            self.acks.push_back((step + self.ack_delay, tick));
        }
    }
}

/// Every object within the radius is held, none beyond the radius plus the slack.
fn check_view(held: &[ObjectId], current: &SharedSnapshot, viewer: [f32; 3], slack: f32) {
    for object in current.snapshot().objects() {
        let d = distance(object.position, viewer);
        let is_held = held.binary_search(&object.id).is_ok();
        assert!(
            d > RADIUS || is_held,
            "object {} at {d} m is within interest but not held",
            object.id
        );
        assert!(
            d <= RADIUS + slack || !is_held,
            "object {} at {d} m is held though far outside interest",
            object.id
        );
    }
}

/// Settings without level of detail (`lod` false), or with small tiers that views of these
/// worlds (a hundred or two objects) exceed: 16 nearest every message, the next 32 every 4th,
/// the rest every 16th.
fn settings(lod: bool) -> SharedStreamSettings {
    SharedStreamSettings {
        detail: if lod {
            vec![
                DetailTier {
                    nearest: 16,
                    every: 1,
                },
                DetailTier {
                    nearest: 48,
                    every: 4,
                },
                DetailTier {
                    nearest: usize::MAX,
                    every: 16,
                },
            ]
        } else {
            Vec::new()
        },
        ..SharedStreamSettings::default()
    }
}

/// The published states a far object may be shown at: the last 16, newest last.
struct Recent(VecDeque<Arc<SharedSnapshot>>);

impl Recent {
    fn push(&mut self, state: Arc<SharedSnapshot>) {
        self.0.push_back(state);
        while self.0.len() > 16 {
            self.0.pop_front();
        }
    }

    fn current(&self) -> &SharedSnapshot {
        self.0.back().expect("published")
    }

    /// The ids of the objects a viewer must see at full detail (the test tiers give 16): the 8
    /// nearest to the centre of its view cell whatever the ties, and every object within the
    /// full-detail distance of the viewer.
    fn full_detail(&self, viewer: [f32; 3], settings: &SharedStreamSettings) -> Vec<ObjectId> {
        let size = settings.cell_size((RADIUS / RADIUS_STEP).ceil() * RADIUS_STEP);
        let centre = viewer.map(|c| ((c / size).floor() + 0.5) * size);
        let objects = self.current().snapshot().objects();
        let mut by_distance: Vec<(f32, ObjectId)> = objects
            .iter()
            .map(|o| (distance(o.position, centre), o.id))
            .collect();
        by_distance.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut ids: Vec<ObjectId> = by_distance.into_iter().take(8).map(|(_, id)| id).collect();
        ids.extend(
            objects
                .iter()
                .filter(|o| distance(o.position, viewer) <= settings.full_detail_distance)
                .map(|o| o.id),
        );
        ids
    }
}

fn paths() -> Vec<(f32, f32, f32)> {
    vec![
        (60.0, 0.05, 0.0),
        (60.0, 0.05, 0.0), // the same as the first: shares its messages
        (30.0, -0.08, 1.0),
        (80.0, 0.02, 2.5),
    ]
}

#[test]
fn binary_clients_hold_their_view_exactly() {
    for (seed, lod) in [
        (1u64, false),
        (2, false),
        (3, false),
        (4, true),
        (5, true),
        (6, true),
    ] {
        let mut world = RandomWorld::new(seed, 300, 100.0);
        let settings = settings(lod);
        let timeline = SharedTimeline::new("c1", settings.clone());
        let mut recent = Recent(VecDeque::new());
        let mut clients: Vec<Client> = paths()
            .into_iter()
            .enumerate()
            .map(|(i, path)| Client::new(Encoding::Binary, seed * 10 + i as u64, i % 2 == 1, path))
            .collect();
        let mut deltas = 0;
        for step in 0..300 {
            world.step();
            let current = timeline.publish(world.state());
            recent.push(current.clone());
            for (i, client) in clients.iter_mut().enumerate() {
                let seq = (step * 7 + i) as u32;
                let Some(encoded) = client.encode(&timeline, &current, step, seq) else {
                    continue;
                };
                let StatePayload::Binary(bytes) = encoded.payload else {
                    panic!("binary stream produced text");
                };
                let decoded = client.decoder.decode(&bytes).expect("decodable");
                // The changes-only decoding lists exactly the updated objects of the whole view.
                let changes = client.changes.decode_changes(&bytes).expect("decodable");
                let updated: Vec<_> = decoded
                    .objects
                    .iter()
                    .filter(|o| decoded.updated.binary_search(&o.id).is_ok())
                    .cloned()
                    .collect();
                assert_eq!(changes.objects, updated);
                assert_eq!(
                    (
                        changes.updated.clone(),
                        changes.removed.clone(),
                        changes.left.clone()
                    ),
                    (
                        decoded.updated.clone(),
                        decoded.removed.clone(),
                        decoded.left.clone()
                    )
                );
                assert_eq!(decoded.tick, current.tick());
                assert_eq!(decoded.baseline, encoded.baseline);
                assert_eq!(
                    decoded.last_input_seq,
                    Some(seq),
                    "the client's own input ack"
                );
                deltas += usize::from(decoded.baseline.is_some());
                let held: Vec<ObjectId> = decoded.objects.iter().map(|o| o.id).collect();
                check_view(&held, &current, client.viewer(step), slack(&settings));
                let what = format!("seed {seed} step {step} client {i}");
                let nearest = recent.full_detail(client.viewer(step), &settings);
                for object in &decoded.objects {
                    let truth = current.snapshot().object(object.id).expect("in the world");
                    if !lod || nearest.contains(&object.id) {
                        assert_close(object, truth, &what);
                    } else {
                        // Exactly as it was at one of the last publications.
                        assert!(
                            recent.0.iter().any(|state| state
                                .snapshot()
                                .object(object.id)
                                .is_some_and(|then| is_close(object, then))),
                            "{what}: object {} matches none of the last 16 states",
                            object.id
                        );
                    }
                }
                client.ack(step, decoded.tick);
            }
        }
        assert!(
            deltas > 900,
            "acks must turn the stream into deltas ({deltas})"
        );
    }
}

#[test]
fn merging_json_clients_track_the_world() {
    for (seed, lod) in [
        (11u64, false),
        (12, false),
        (13, false),
        (14, true),
        (15, true),
    ] {
        let mut world = RandomWorld::new(seed, 200, 100.0);
        let settings = settings(lod);
        let timeline = SharedTimeline::new("camp", settings.clone());
        let mut recent = Recent(VecDeque::new());
        let mut clients: Vec<Client> = paths()
            .into_iter()
            .enumerate()
            .map(|(i, path)| Client::new(Encoding::Json, seed * 10 + i as u64, i % 2 == 1, path))
            .collect();
        for step in 0..300 {
            world.step();
            let current = timeline.publish(world.state());
            recent.push(current.clone());
            for (i, client) in clients.iter_mut().enumerate() {
                let Some(encoded) = client.encode(&timeline, &current, step, i as u32) else {
                    continue;
                };
                let StatePayload::Text(text) = encoded.payload else {
                    panic!("JSON stream produced binary");
                };
                let envelope: serde_json::Value = serde_json::from_str(&text).expect("JSON");
                assert_eq!(envelope["metadata"]["campaign_id"], "camp");
                let message: JsonStateMessage =
                    serde_json::from_value(envelope["payload"].clone()).expect("state payload");
                assert_eq!(message.last_input_seq, Some(i as u32));
                assert_eq!(message.full, message.baseline.is_none());
                if message.full {
                    assert!(message.physics.is_some() && message.environment.is_some());
                }
                client.merging.apply(&message);
                let held: Vec<ObjectId> = client.merging.objects.keys().copied().collect();
                check_view(&held, &current, client.viewer(step), slack(&settings));
                let nearest = recent.full_detail(client.viewer(step), &settings);
                for held in client.merging.objects.values() {
                    let matches = |truth: &nexus_sim::state::ObjectState| {
                        (0..3).all(|axis| {
                            (held.position[axis] - truth.position[axis]).abs()
                                <= 2.0 * POSITION_MAX_ERROR + 0.0005
                        }) && rotation_angle_between(held.rotation, truth.rotation) < 0.01
                            && held.sleeping == truth.sleeping
                            && held.kind == Some(truth.kind)
                            && held.properties.as_ref() == Some(&truth.properties)
                    };
                    let truth = current.snapshot().object(held.id).expect("in the world");
                    let ok = if !lod || nearest.contains(&held.id) {
                        matches(truth)
                    } else {
                        recent
                            .0
                            .iter()
                            .any(|state| state.snapshot().object(held.id).is_some_and(matches))
                    };
                    assert!(
                        ok,
                        "seed {seed} step {step} client {i} (lod {lod}): {held:?} vs {truth:?}"
                    );
                }
                client.ack(step, message.tick);
            }
        }
    }
}

#[test]
fn clients_in_the_same_place_share_one_encoding() {
    let mut world = RandomWorld::new(5, 400, 60.0);
    let timeline = SharedTimeline::new("c", SharedStreamSettings::default());
    let mut encoders: Vec<SharedStateEncoder> = (0..50)
        .map(|_| SharedStateEncoder::new(Encoding::Binary, RADIUS))
        .collect();
    let mut decoders: Vec<StateDecoder> = (0..50).map(|_| StateDecoder::default()).collect();
    let viewer = Some([5.0, 2.0, 5.0]);
    for step in 0..40u32 {
        world.step();
        let current = timeline.publish(world.state());
        let mut encoded_here = 0;
        let mut bodies = std::collections::HashSet::new();
        for (n, (encoder, decoder)) in encoders.iter_mut().zip(&mut decoders).enumerate() {
            let seq = step * 100 + n as u32;
            let encoded = encoder
                .encode(&timeline, &current, viewer, Some(seq))
                .expect("newer");
            encoded_here += usize::from(encoded.encoded_here);
            let StatePayload::Binary(bytes) = encoded.payload else {
                panic!("binary");
            };
            let decoded = decoder.decode(&bytes).expect("decodable");
            assert_eq!(decoded.last_input_seq, Some(seq));
            // Everything but the input ack is the same for all of them.
            let mut without_seq = decoded.clone();
            without_seq.last_input_seq = None;
            bodies.insert(format!("{without_seq:?}"));
            encoder.acknowledge(decoded.tick);
        }
        assert_eq!(
            encoded_here, 1,
            "step {step}: one encoding for fifty clients"
        );
        assert_eq!(current.encodings(), 1);
        assert_eq!(bodies.len(), 1, "the same message apart from the input ack");
    }
}

#[test]
fn clients_asking_for_nearby_radii_share_messages() {
    let mut world = RandomWorld::new(21, 200, 80.0);
    let timeline = SharedTimeline::new("c", SharedStreamSettings::default());
    let mut encoders = [
        SharedStateEncoder::new(Encoding::Binary, 50.0),
        SharedStateEncoder::new(Encoding::Binary, 53.5),
        SharedStateEncoder::new(Encoding::Binary, 70.0),
    ];
    let viewer = Some([3.0, 1.0, 3.0]);
    for _ in 0..5 {
        world.step();
        let current = timeline.publish(world.state());
        for encoder in &mut encoders {
            encoder
                .encode(&timeline, &current, viewer, None)
                .expect("newer");
            encoder.acknowledge(current.tick());
        }
        assert_eq!(
            current.encodings(),
            2,
            "50 m and 53.5 m share; 70 m does not"
        );
    }
}

#[test]
fn clients_without_acks_get_full_messages_and_forgotten_baselines_restart() {
    let mut world = RandomWorld::new(9, 100, 50.0);
    let settings = SharedStreamSettings {
        history: 8,
        ..SharedStreamSettings::default()
    };
    let timeline = SharedTimeline::new("c", settings);
    let mut silent = SharedStateEncoder::new(Encoding::Json, RADIUS);
    let mut acked_once = SharedStateEncoder::new(Encoding::Binary, RADIUS);
    let mut first_tick = 0;
    for step in 0..20 {
        world.step();
        let current = timeline.publish(world.state());
        let full = silent
            .encode(&timeline, &current, None, None)
            .expect("newer");
        assert_eq!(full.baseline, None, "no ack, no baseline");
        let encoded = acked_once
            .encode(&timeline, &current, None, None)
            .expect("newer");
        if step == 0 {
            first_tick = current.tick();
            acked_once.acknowledge(first_tick);
        } else if step < 8 {
            assert_eq!(encoded.baseline, Some(first_tick), "step {step}");
        } else {
            // Eight states later the baseline is forgotten: full again, until the next ack.
            assert_eq!(encoded.baseline, None, "step {step}");
        }
        // The same state twice gives no second message.
        assert!(silent.encode(&timeline, &current, None, None).is_none());
    }
}

#[test]
fn clients_spread_over_cells_with_uneven_acks_share_a_few_encodings() {
    // A small world inside everyone's radius: every cell's view holds the same objects.
    let mut world = RandomWorld::new(7, 300, 30.0);
    // Level of detail tiers depend on the cell: without them, views of the same objects match.
    let timeline = SharedTimeline::new("c", settings(false));
    let count = 40;
    let mut encoders: Vec<SharedStateEncoder> = (0..count)
        .map(|_| SharedStateEncoder::new(Encoding::Binary, 500.0))
        .collect();
    let mut decoders: Vec<StateDecoder> = (0..count).map(|_| StateDecoder::default()).collect();
    let mut pending: Vec<VecDeque<u64>> = vec![VecDeque::new(); count];
    let mut groups_after_warmup = Vec::new();
    for step in 0..120usize {
        world.step();
        let current = timeline.publish(world.state());
        for n in 0..count {
            // Acks arrive one to three messages late, depending on the client.
            while pending[n].len() > 1 + n % 3 {
                let tick = pending[n].pop_front().expect("non-empty");
                encoders[n].acknowledge(tick);
            }
            let viewer = [
                (n % 4) as f32 * 20.0 - 30.0,
                1.0,
                (n / 10) as f32 * 17.0 - 30.0,
            ];
            let encoded = encoders[n]
                .encode(&timeline, &current, Some(viewer), Some(n as u32))
                .expect("newer");
            let StatePayload::Binary(bytes) = encoded.payload else {
                panic!("binary");
            };
            let decoded = decoders[n].decode(&bytes).expect("decodable");
            assert_eq!(decoded.objects.len(), current.snapshot().objects().len());
            for object in &decoded.objects {
                let truth = current.snapshot().object(object.id).expect("in the world");
                assert_close(object, truth, &format!("step {step} client {n}"));
            }
            pending[n].push_back(decoded.tick);
        }
        if step >= 20 {
            groups_after_warmup.push(current.encodings());
        }
    }
    let mean = groups_after_warmup.iter().sum::<usize>() as f64 / groups_after_warmup.len() as f64;
    let most = groups_after_warmup.iter().max().copied().unwrap_or(0);
    assert!(
        most <= 3 && mean <= 2.5,
        "40 clients in 16 cells with acks 1-3 messages late: {mean:.2} encodings per state (most {most})"
    );
}

#[test]
fn level_of_detail_lists_far_objects_less_often() {
    // Bytes of one client's stream through a busy world, with and without level of detail.
    let bytes = |lod: bool| {
        let mut world = RandomWorld::new(21, 400, 60.0);
        // The whole world is within a few metres of this radius's 100 m view cell: rank alone
        // decides the detail here.
        let settings = SharedStreamSettings {
            full_detail_distance: 0.0,
            ..settings(lod)
        };
        let timeline = SharedTimeline::new("c", settings);
        let mut encoder = SharedStateEncoder::new(Encoding::Binary, 200.0);
        let mut decoder = StateDecoder::default();
        let mut total = 0usize;
        for _ in 0..200 {
            world.step();
            let current = timeline.publish(world.state());
            let encoded = encoder
                .encode(&timeline, &current, Some([0.0, 1.0, 0.0]), None)
                .expect("newer");
            let StatePayload::Binary(bytes) = encoded.payload else {
                panic!("binary");
            };
            let decoded = decoder.decode(&bytes).expect("decodable");
            // Every object of the world stays in view (and decodable) either way.
            assert_eq!(decoded.objects.len(), current.snapshot().objects().len());
            total += bytes.len();
            encoder.acknowledge(decoded.tick);
        }
        total
    };
    let (full, detailed) = (bytes(false), bytes(true));
    // 16 of ~400 objects every message, 32 every 4th, the rest every 16th; but a change is
    // repeated until the baseline (every 4th publication, once acked) passes it, so a far
    // object is listed for a few messages after each of its updates: about half the bytes here.
    assert!(
        (detailed as f64) < 0.6 * full as f64,
        "level of detail: {detailed} bytes vs {full} without"
    );
}
