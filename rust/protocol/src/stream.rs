//! The per-client state stream encoder.
//!
//! # How it works
//! For each snapshot the encoder decides, per object, what this client's next message says:
//! 1. **Interest**: objects within `interest_radius` of the viewer (from the snapshot's spatial
//!    grid); objects already in the client's view stay until `interest_radius + hysteresis`.
//! 2. **Baseline**: the newest message the client acknowledged (its *view*: the quantised state of
//!    every object it holds). Without one the message is *full*.
//! 3. **Listing**: an object is listed when it is new to the baseline, re-entered interest since
//!    the previous message, or — if *due* under its level of detail — changed since the baseline or
//!    since the value last listed. Far objects are due only every n-th message.
//! 4. **Removals**: objects the client may hold that are no longer in its view are listed as
//!    `removed` (gone from the world) or `left` (out of interest), until a baseline without them is
//!    acknowledged.
//! 5. **Serialisation**: JSON (absolute values rounded to mm / 1e-4) or binary (quantised, deltas
//!    against the baseline, smallest-three rotations, bit-packed).
//!
//! Every message's resulting view is kept (up to `max_history`) so that an ack can make it the
//! baseline. A decoder rebuilds exactly that view from the baseline view and the message.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write;

use nexus_sim::state::{BodyKind, ObjectId, Tick};

use crate::bits::zigzag;
use crate::bits::{BitWriter, put_varint};
use crate::client_binary::BINARY_VERSION;
use crate::codec::{
    GROUP_ANGULAR, GROUP_POSITION, GROUP_ROTATION, GROUP_VELOCITY, GROUPS, ORDER_BITS,
    POSITION_PREDICTORS, Prediction, VELOCITY_PREDICTORS, axis_orders, best_order, delta_code,
    rotation_parts, write_egk,
};
use crate::names;
use crate::quant::{QuantizedState, ROTATION_BITS, ZERO_STATE, kind_code, quantize_gravity};
use crate::snapshot::{Snapshot, meta_key};

/// WebSocket subprotocol of the all-JSON encoding.
pub const SUBPROTOCOL_JSON: &str = "nexus.json.v1";
/// WebSocket subprotocol of the binary state stream (other events stay JSON text frames).
pub const SUBPROTOCOL_BINARY: &str = "nexus.binary.v1";

/// Binary server frame kind: a state message.
pub(crate) const KIND_STATE: u8 = 0x01;
pub(crate) const FLAG_FULL: u8 = 1;
pub(crate) const FLAG_INPUT_ACK: u8 = 2;

/// Encoding of the state stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// JSON text frames.
    Json,
    /// Binary frames for state messages, JSON text frames for everything else.
    Binary,
}

impl Encoding {
    /// The encoding a subprotocol name selects.
    pub fn from_subprotocol(name: &str) -> Option<Encoding> {
        match name.trim() {
            SUBPROTOCOL_JSON => Some(Encoding::Json),
            SUBPROTOCOL_BINARY => Some(Encoding::Binary),
            _ => None,
        }
    }

    /// Picks from the subprotocols a client offered (in its order of preference): the first one
    /// known wins. `None` when it offered none we know: use [`Encoding::Json`] and answer without a
    /// subprotocol.
    pub fn negotiate<'a>(
        offered: impl IntoIterator<Item = &'a str>,
    ) -> Option<(Encoding, &'static str)> {
        offered
            .into_iter()
            .find_map(Encoding::from_subprotocol)
            .map(|e| (e, e.subprotocol()))
    }

    /// The subprotocol name of this encoding.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Encoding::Json => SUBPROTOCOL_JSON,
            Encoding::Binary => SUBPROTOCOL_BINARY,
        }
    }

    /// `json` or `binary` (as in the welcome).
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::Binary => "binary",
        }
    }
}

/// A level-of-detail band: objects at most `max_distance` metres away are due every `interval`-th
/// message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LodBand {
    /// Upper distance bound of the band, metres.
    pub max_distance: f32,
    /// Due every `interval`-th message (1 = every message).
    pub interval: u32,
}

/// Interest and level-of-detail settings of one client's stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamSettings {
    /// Objects within this distance of the viewer are streamed, metres. Default 120.
    pub interest_radius: f32,
    /// Objects already streamed stay until `interest_radius + interest_hysteresis`. Default 10.
    pub interest_hysteresis: f32,
    /// Bands by increasing distance. Default: ≤ 40 m every message, ≤ 80 m every 2nd.
    pub lod: Vec<LodBand>,
    /// Interval beyond the last band. Default 4.
    pub far_interval: u32,
    /// Most objects listed in one message (nearest first); the rest follow. Default 1,024.
    pub max_objects_per_message: usize,
    /// Unacknowledged messages remembered as possible baselines. Default 64.
    pub max_history: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            interest_radius: 120.0,
            interest_hysteresis: 10.0,
            lod: vec![
                LodBand {
                    max_distance: 40.0,
                    interval: 1,
                },
                LodBand {
                    max_distance: 80.0,
                    interval: 2,
                },
            ],
            far_interval: 4,
            max_objects_per_message: 1024,
            max_history: 64,
        }
    }
}

impl StreamSettings {
    /// Every object, every message: no interest limit, no LOD (Fiedler's setting).
    pub fn everything() -> StreamSettings {
        StreamSettings {
            interest_radius: f32::INFINITY,
            interest_hysteresis: 0.0,
            lod: Vec::new(),
            far_interval: 1,
            max_objects_per_message: usize::MAX,
            ..StreamSettings::default()
        }
    }

    fn interval_at(&self, distance: f32) -> u64 {
        let interval = self
            .lod
            .iter()
            .find(|band| distance <= band.max_distance)
            .map_or(self.far_interval, |band| band.interval);
        u64::from(interval.max(1))
    }
}

/// What an ack did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// The acked message is now the baseline.
    Accepted,
    /// Not newer than the current baseline: ignored.
    Stale,
    /// No such message in the history (never sent, or forgotten): ignored.
    Unknown,
}

/// One encoded state message.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedState {
    /// Tick of the snapshot.
    pub tick: Tick,
    /// The baseline the message is a delta against (`None`: full).
    pub baseline: Option<Tick>,
    /// Objects listed in the message.
    pub listed: usize,
    /// Objects in the client's view after the message.
    pub in_view: usize,
    /// The frame to send.
    pub payload: StatePayload,
}

/// A frame of the state stream.
#[derive(Clone, Debug, PartialEq)]
pub enum StatePayload {
    /// Send as a WebSocket text frame (a JSON envelope).
    Text(String),
    /// Send as a WebSocket binary frame.
    Binary(Vec<u8>),
}

impl StatePayload {
    /// Size on the wire (payload bytes, without WebSocket framing).
    pub fn len(&self) -> usize {
        match self {
            StatePayload::Text(text) => text.len(),
            StatePayload::Binary(bytes) => bytes.len(),
        }
    }

    /// Whether the payload is empty (never, for encoder output).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ViewEntry {
    id: ObjectId,
    state: QuantizedState,
    meta: u64,
}

/// What the client holds after a message.
#[derive(Clone, Debug)]
struct View {
    tick: Tick,
    /// Sorted by id.
    entries: Vec<ViewEntry>,
    environment_key: u64,
    physics_key: u64,
}

impl View {
    fn find(&self, id: ObjectId) -> Option<&ViewEntry> {
        self.entries
            .binary_search_by_key(&id, |e| e.id)
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// Hasher for object-id keys: one multiplication instead of SipHash (ids come from the world, not
/// from clients, so hash flooding is not a concern), and these maps are touched for every object
/// of every message.
#[derive(Clone, Copy, Default)]
struct IdHash;

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, value: u32) {
        self.0 = (u64::from(value) ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// What the encoder remembers about an object the client may hold.
#[derive(Clone, Copy, Debug)]
struct Tracked {
    /// Newest message whose view held the object.
    last_in_view: Tick,
    /// First message of the object's current uninterrupted presence in the views.
    entered: Tick,
    /// The value last listed, and in which message.
    last_listed: Option<(QuantizedState, u64, Tick)>,
    /// The newest message that listed a value other than `last_listed`'s.
    previous_value_listed: Option<Tick>,
    /// The newest message that listed kind + properties other than `last_listed`'s.
    previous_meta_listed: Option<Tick>,
}

impl Tracked {
    /// Whether a client that may have missed any message after `baseline` could hold a value
    /// other than `current` from a listing (a merging client keeps the newest listing it got).
    fn may_hold_other_than(&self, current: (QuantizedState, u64), baseline: Tick) -> bool {
        let last_differs = self
            .last_listed
            .is_some_and(|(state, meta, _)| (state, meta) != current);
        last_differs || self.previous_value_listed.is_some_and(|t| t > baseline)
    }

    /// The same question for kind + properties alone (JSON resends them only when needed).
    fn may_hold_other_meta(&self, current: u64, baseline: Tick) -> bool {
        let last_differs = self.last_listed.is_none_or(|(_, meta, _)| meta != current);
        last_differs || self.previous_meta_listed.is_some_and(|t| t > baseline)
    }
}

enum Decision {
    List {
        index: usize,
        distance: f32,
        forced: bool,
    },
    Keep(ViewEntry),
    /// Deferred by the per-message cap and not held: not in this view.
    Exclude,
}

/// The state stream of one client. Create one per connection; feed it every snapshot the client
/// should get (in tick order) and every ack the client sends.
pub struct StateEncoder {
    encoding: Encoding,
    settings: StreamSettings,
    metadata_json: String,
    baseline: Option<View>,
    /// Views of sent messages newer than the baseline, oldest first.
    history: VecDeque<View>,
    tracked: HashMap<ObjectId, Tracked, IdHash>,
    /// Consecutive messages in which the per-message cap deferred an object.
    deferred: HashMap<ObjectId, u32, IdHash>,
    last_environment_key: Option<u64>,
    last_physics_key: Option<u64>,
    messages: u64,
    zero_meta: u64,
}

impl StateEncoder {
    /// A stream for a client of `campaign_id`.
    pub fn new(campaign_id: &str, encoding: Encoding, settings: StreamSettings) -> StateEncoder {
        let metadata = crate::Metadata::server(campaign_id);
        StateEncoder {
            encoding,
            settings,
            metadata_json: serde_json::to_string(&metadata).unwrap_or_else(|_| "{}".into()),
            baseline: None,
            history: VecDeque::new(),
            tracked: HashMap::default(),
            deferred: HashMap::default(),
            last_environment_key: None,
            last_physics_key: None,
            messages: 0,
            zero_meta: meta_key(BodyKind::Dynamic, "{}"),
        }
    }

    /// The encoding of this stream.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The interest and LOD settings.
    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    /// Changes the interest and LOD settings (takes effect with the next message).
    pub fn set_settings(&mut self, settings: StreamSettings) {
        self.settings = settings;
    }

    /// Tick of the current baseline (the newest acknowledged message), if any.
    pub fn baseline_tick(&self) -> Option<Tick> {
        self.baseline.as_ref().map(|b| b.tick)
    }

    /// Tick of the newest message encoded, if any.
    pub fn last_tick(&self) -> Option<Tick> {
        self.history
            .back()
            .or(self.baseline.as_ref())
            .map(|v| v.tick)
    }

    /// The client applied the state message of `tick`: use it as the baseline from now on.
    pub fn acknowledge(&mut self, tick: Tick) -> AckOutcome {
        if self.baseline.as_ref().is_some_and(|b| tick <= b.tick) {
            return AckOutcome::Stale;
        }
        let Some(position) = self.history.iter().position(|v| v.tick == tick) else {
            return AckOutcome::Unknown;
        };
        // Baselines only move forward, so older views can never be used again.
        self.history.drain(..position);
        self.baseline = self.history.pop_front();
        self.prune_tracked();
        AckOutcome::Accepted
    }

    /// The client lost its baselines: forget them; the next message is full.
    pub fn resync(&mut self) {
        self.baseline = None;
        self.history.clear();
        self.last_environment_key = None;
        self.last_physics_key = None;
    }

    /// Forgets tracking entries no future baseline can need.
    fn prune_tracked(&mut self) {
        let oldest = self
            .baseline
            .as_ref()
            .or(self.history.front())
            .map(|v| v.tick);
        if let Some(oldest) = oldest {
            self.tracked.retain(|_, t| t.last_in_view >= oldest);
        }
    }

    /// Encodes this client's message for `snapshot`. `viewer` is the interest centre (usually the
    /// avatar's position; `None` streams everything regardless of distance); `last_input_seq` is
    /// the newest input of this client the simulation processed. Returns `None` when `snapshot`
    /// is not newer than the previous message.
    pub fn encode(
        &mut self,
        snapshot: &Snapshot,
        viewer: Option<[f32; 3]>,
        last_input_seq: Option<u32>,
    ) -> Option<EncodedState> {
        let tick = snapshot.tick();
        if self.last_tick().is_some_and(|last| tick <= last) {
            return None;
        }
        let previous_tick = self.last_tick();
        let tracked_map = &self.tracked;
        let in_previous = |id: ObjectId| {
            previous_tick.is_some_and(|p| tracked_map.get(&id).is_some_and(|t| t.last_in_view == p))
        };

        // 1. Interest.
        let mut interest: Vec<(usize, f32)> = Vec::new();
        match viewer {
            None => interest.extend((0..snapshot.objects().len()).map(|i| (i, 0.0))),
            Some(center) => {
                let radius = self.settings.interest_radius;
                let outer = radius + self.settings.interest_hysteresis.max(0.0);
                snapshot.for_each_within(center, outer, |index, distance| {
                    if distance <= radius || in_previous(snapshot.objects()[index].id) {
                        interest.push((index, distance));
                    }
                });
                interest.sort_unstable_by_key(|(index, _)| *index);
            }
        }

        // 2–3. Listing decisions. Interest and baseline are both sorted by id: walk them together.
        let baseline = self.baseline.as_ref();
        let baseline_entries = baseline.map_or(&[][..], |b| &b.entries[..]);
        let mut cursor = 0usize;
        let mut decisions = Vec::with_capacity(interest.len());
        let mut listed_count = 0usize;
        for (index, distance) in interest {
            let id = snapshot.objects()[index].id;
            let state = *snapshot.quantized(index);
            let meta = snapshot.meta_key_of(index);
            while cursor < baseline_entries.len() && baseline_entries[cursor].id < id {
                cursor += 1;
            }
            let base = baseline_entries.get(cursor).filter(|e| e.id == id);
            let tracked = self.tracked.get(&id);
            // Listed in full unless held without interruption since the baseline: a client that
            // missed the message where it (re-)entered must still get it.
            let forced = match (base, tracked) {
                (Some(_), Some(t)) => {
                    !in_previous(id) || baseline.is_some_and(|b| t.entered > b.tick)
                }
                _ => true,
            };
            let decision = match base {
                Some(base) if !forced => {
                    let changed = base.state != state || base.meta != meta;
                    let stale = tracked.is_some_and(|t| {
                        t.may_hold_other_than((state, meta), baseline.map_or(0, |b| b.tick))
                    });
                    let interval = self.settings.interval_at(distance);
                    let due = (self.messages + u64::from(id)).is_multiple_of(interval);
                    if (changed || stale) && due {
                        Decision::List {
                            index,
                            distance,
                            forced: false,
                        }
                    } else {
                        Decision::Keep(*base)
                    }
                }
                _ => Decision::List {
                    index,
                    distance,
                    forced: true,
                },
            };
            if matches!(decision, Decision::List { .. }) {
                listed_count += 1;
            }
            decisions.push(decision);
        }
        let deferred = if listed_count > self.settings.max_objects_per_message {
            self.apply_cap(&mut decisions, snapshot, in_previous)
        } else {
            Vec::new()
        };

        // The view after this message, and what gets listed.
        let mut entries = Vec::with_capacity(decisions.len());
        let mut listed: Vec<(usize, bool)> = Vec::new();
        for decision in &decisions {
            match *decision {
                Decision::Exclude => {}
                Decision::Keep(entry) => entries.push(entry),
                Decision::List { index, forced, .. } => {
                    entries.push(ViewEntry {
                        id: snapshot.objects()[index].id,
                        state: *snapshot.quantized(index),
                        meta: snapshot.meta_key_of(index),
                    });
                    listed.push((index, forced));
                }
            }
        }
        let view = View {
            tick,
            entries,
            environment_key: snapshot.environment_key(),
            physics_key: snapshot.physics_key(),
        };

        // Presence bookkeeping (before the removals, which read it).
        for entry in &view.entries {
            let t = self.tracked.entry(entry.id).or_insert(Tracked {
                last_in_view: tick,
                entered: tick,
                last_listed: None,
                previous_value_listed: None,
                previous_meta_listed: None,
            });
            if previous_tick != Some(t.last_in_view) {
                t.entered = tick;
            }
            t.last_in_view = tick;
        }

        // 4. Removals: anything the client may hold that the new view lacks.
        let mut removed = Vec::new();
        let mut left = Vec::new();
        if let Some(baseline) = baseline {
            for (&id, tracked) in &self.tracked {
                if tracked.last_in_view >= baseline.tick && tracked.last_in_view != tick {
                    if snapshot.index_of(id).is_some() {
                        left.push(id);
                    } else {
                        removed.push(id);
                    }
                }
            }
            removed.sort_unstable();
            left.sort_unstable();
        }

        // 5. Serialisation.
        let baseline_view = self.baseline.as_ref();
        let baseline_tick = baseline_view.map_or(0, |b| b.tick);
        let plan = MessagePlan {
            snapshot,
            baseline: baseline_view.map(|b| b.tick),
            listed: listed
                .iter()
                .map(|&(index, forced)| {
                    let id = snapshot.objects()[index].id;
                    let meta = snapshot.meta_key_of(index);
                    let base = baseline_view
                        .and_then(|b| b.find(id))
                        .map(|e| (e.state, e.meta));
                    let meta_changed = forced
                        || base.is_none_or(|(_, m)| m != meta)
                        || self
                            .tracked
                            .get(&id)
                            .is_none_or(|t| t.may_hold_other_meta(meta, baseline_tick));
                    Listing {
                        index,
                        source: None,
                        base,
                        meta: meta_changed,
                    }
                })
                .collect(),
            removed,
            left,
            // Sent when full, when changed since the baseline (repeated until acked), or when
            // changed since the previous message (a change back to the baseline's value).
            environment: baseline_view
                .is_none_or(|b| b.environment_key != snapshot.environment_key())
                || self.last_environment_key != Some(snapshot.environment_key()),
            physics: baseline_view.is_none_or(|b| b.physics_key != snapshot.physics_key())
                || self.last_physics_key != Some(snapshot.physics_key()),
        };
        let payload = match self.encoding {
            Encoding::Json => {
                StatePayload::Text(write_json(&plan, &self.metadata_json, last_input_seq).0)
            }
            Encoding::Binary => {
                StatePayload::Binary(write_binary(&plan, self.zero_meta, last_input_seq).0)
            }
        };

        // Listing bookkeeping for the next messages.
        for &(index, _) in &listed {
            if let Some(t) = self.tracked.get_mut(&snapshot.objects()[index].id) {
                let value = (*snapshot.quantized(index), snapshot.meta_key_of(index));
                if let Some((state, meta, listed_at)) = t.last_listed {
                    if (state, meta) != value {
                        t.previous_value_listed = Some(listed_at);
                    }
                    if meta != value.1 {
                        t.previous_meta_listed = Some(listed_at);
                    }
                }
                t.last_listed = Some((value.0, value.1, tick));
            }
        }
        // Objects deferred again wait longer; listed or out-of-interest ones start afresh.
        let waited = std::mem::take(&mut self.deferred);
        self.deferred.extend(
            deferred
                .iter()
                .map(|id| (*id, waited.get(id).map_or(1, |n| n.saturating_add(1)))),
        );
        self.last_environment_key = Some(snapshot.environment_key());
        self.last_physics_key = Some(snapshot.physics_key());
        let encoded = EncodedState {
            tick,
            baseline: self.baseline_tick(),
            listed: listed.len(),
            in_view: view.entries.len(),
            payload,
        };
        self.history.push_back(view);
        let mut evicted = false;
        while self.history.len() > self.settings.max_history.max(1) {
            self.history.pop_front();
            evicted = true;
        }
        if evicted {
            self.prune_tracked();
        }
        self.messages += 1;
        Some(encoded)
    }

    /// Keeps `max_objects_per_message` listings — those deferred longest first, then the
    /// nearest — and returns the ids of the deferred rest (they wait for a later message).
    fn apply_cap(
        &self,
        decisions: &mut [Decision],
        snapshot: &Snapshot,
        in_previous: impl Fn(ObjectId) -> bool,
    ) -> Vec<ObjectId> {
        let mut listed: Vec<(u32, f32, usize)> = decisions
            .iter()
            .enumerate()
            .filter_map(|(slot, d)| match d {
                Decision::List {
                    index, distance, ..
                } => {
                    let id = snapshot.objects()[*index].id;
                    let waited = self.deferred.get(&id).copied().unwrap_or(0);
                    Some((waited, *distance, slot))
                }
                _ => None,
            })
            .collect();
        listed.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.total_cmp(&b.1)));
        let baseline = self.baseline.as_ref();
        let mut deferred = Vec::new();
        for &(_, _, slot) in &listed[self.settings.max_objects_per_message..] {
            let Decision::List { index, forced, .. } = decisions[slot] else {
                continue;
            };
            let id = snapshot.objects()[index].id;
            deferred.push(id);
            decisions[slot] = match baseline.and_then(|b| b.find(id)) {
                // Held since the baseline: keep that value for now.
                Some(base) if !forced && in_previous(id) => Decision::Keep(*base),
                // Otherwise it is not in this view at all (and listed as `left` if held).
                _ => Decision::Exclude,
            };
        }
        deferred
    }
}

/// One object listed in a message.
pub(crate) struct Listing<'a> {
    /// Index into the objects of `source`, or of the plan's snapshot when `None`.
    pub index: usize,
    /// Where the listed value comes from when not the message's own snapshot: the earlier
    /// state a far object is shown at under level of detail.
    pub source: Option<&'a Snapshot>,
    /// The object's value in the baseline view (state, meta key), or `None` when the baseline
    /// view lacks it: binary deltas are taken against it.
    pub base: Option<(QuantizedState, u64)>,
    /// JSON: carry `kind` and `properties`.
    pub meta: bool,
}

/// What one state message says, before serialisation.
pub(crate) struct MessagePlan<'a> {
    pub snapshot: &'a Snapshot,
    /// The baseline tick (`None`: a full message).
    pub baseline: Option<Tick>,
    /// Ascending id.
    pub listed: Vec<Listing<'a>>,
    /// Ascending.
    pub removed: Vec<ObjectId>,
    /// Ascending.
    pub left: Vec<ObjectId>,
    /// JSON: carry the environment / physics objects.
    pub environment: bool,
    pub physics: bool,
}

/// The JSON text of `plan`, and the byte offset where the value of `last_input_seq` starts (so a
/// message shared by several clients can be given each one's own).
pub(crate) fn write_json(
    plan: &MessagePlan,
    metadata_json: &str,
    last_input_seq: Option<u32>,
) -> (String, usize) {
    let snapshot = plan.snapshot;
    let parts = snapshot.json_parts();
    let full = plan.baseline.is_none();
    let mut out = String::with_capacity(128 + plan.listed.len() * 180);
    let _ = write!(
        out,
        "{{\"type\":\"{}\",\"payload\":{{\"tick\":{},\"timestamp\":{},\"full\":{full},\"baseline\":",
        names::WORLD_STATE,
        snapshot.tick(),
        json_f64(snapshot.timestamp()),
    );
    match plan.baseline {
        Some(b) => {
            let _ = write!(out, "{b}");
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"last_input_seq\":");
    let seq_at = out.len();
    match last_input_seq {
        Some(seq) => {
            let _ = write!(out, "{seq}");
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"objects\":[");
    for (n, listing) in plan.listed.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let parts = listing.source.map_or(parts, Snapshot::json_parts);
        out.push_str(&parts.kinematics[listing.index]);
        if listing.meta {
            out.push_str(&parts.meta[listing.index]);
        }
        out.push('}');
    }
    out.push_str("],\"removed\":");
    write_ids(&mut out, &plan.removed);
    out.push_str(",\"left\":");
    write_ids(&mut out, &plan.left);
    if plan.environment {
        let _ = write!(out, ",\"environment\":{}", parts.environment);
    }
    if plan.physics {
        let _ = write!(out, ",\"physics\":{}", parts.physics);
    }
    let _ = write!(out, "}},\"metadata\":{metadata_json}}}");
    (out, seq_at)
}

/// The binary frame of `plan`, and the byte offset where the input-ack varint goes (present when
/// `last_input_seq` is): a message shared by several clients gets each one's own there.
pub(crate) fn write_binary(
    plan: &MessagePlan,
    zero_meta: u64,
    last_input_seq: Option<u32>,
) -> (Vec<u8>, usize) {
    let snapshot = plan.snapshot;
    let distance = plan.baseline.map_or(0, |b| snapshot.tick() - b);
    let tick_rate = snapshot.physics().tick_rate;
    let gravity = quantize_gravity(snapshot.physics().gravity);
    let prediction = Prediction::new(distance, tick_rate, gravity);

    // Pass 1: what each record says, and the values of each field group (to pick the
    // exp-Golomb orders that code this message best).
    let mut records = Vec::with_capacity(plan.listed.len());
    let mut groups: [Vec<u64>; GROUPS] = Default::default();
    let mut flag_counts = [0u32; 64];
    for listing in &plan.listed {
        let index = listing.index;
        let source = listing.source.unwrap_or(snapshot);
        let state = *source.quantized(index);
        let meta = source.meta_key_of(index);
        let (base, base_meta) = listing.base.unwrap_or((ZERO_STATE, zero_meta));
        let record = Record {
            index,
            source,
            state,
            meta: meta != base_meta,
            position: (state.position != base.position).then(|| {
                best_predictor(POSITION_PREDICTORS, state.position, |predictor| {
                    prediction.position(predictor, base.position, base.velocity)
                })
            }),
            rotation: (state.rotation != base.rotation).then(|| {
                let (index, steps) = rotation_parts(state.rotation);
                let (base_index, base_steps) = rotation_parts(base.rotation);
                if index == base_index {
                    RotationCode::Delta(std::array::from_fn(|j| {
                        delta_code(steps[j], base_steps[j])
                    }))
                } else {
                    RotationCode::Absolute(state.rotation)
                }
            }),
            velocity: (state.velocity != base.velocity).then(|| {
                best_predictor(VELOCITY_PREDICTORS, state.velocity, |predictor| {
                    prediction.velocity(predictor, base.position, state.position, base.velocity)
                })
            }),
            angular: (state.angular_velocity != base.angular_velocity).then(|| {
                std::array::from_fn(|axis| {
                    delta_code(state.angular_velocity[axis], base.angular_velocity[axis])
                })
            }),
        };
        let mut collect = |first: usize, values: [u64; 3]| {
            for (axis, value) in values.into_iter().enumerate() {
                groups[first + axis].push(value);
            }
        };
        if let Some((_, values)) = record.position {
            collect(GROUP_POSITION, values);
        }
        if let Some((_, values)) = record.velocity {
            collect(GROUP_VELOCITY, values);
        }
        if let Some(values) = record.angular {
            collect(GROUP_ANGULAR, values);
        }
        if let Some(RotationCode::Delta(values)) = record.rotation {
            groups[GROUP_ROTATION].extend(values);
        }
        flag_counts[record.flags() as usize] += 1;
        records.push(record);
    }
    let orders: [u32; GROUPS] = std::array::from_fn(|g| best_order(&groups[g]));
    // The three most frequent flag combinations cost 1, 2 and 3 bits per record.
    let mut by_count: Vec<u32> = (0..64).collect();
    by_count.sort_by_key(|&f| std::cmp::Reverse(flag_counts[f as usize]));
    let common_flags = [by_count[0], by_count[1], by_count[2]];

    // Pass 2: the bytes.
    let mut flags = 0u8;
    if plan.baseline.is_none() {
        flags |= FLAG_FULL;
    }
    if last_input_seq.is_some() {
        flags |= FLAG_INPUT_ACK;
    }
    let mut head = Vec::with_capacity(40 + plan.listed.len() * 12);
    head.extend_from_slice(&[BINARY_VERSION, KIND_STATE, flags]);
    put_varint(&mut head, snapshot.tick());
    if plan.baseline.is_some() {
        put_varint(&mut head, distance);
    }
    let seq_at = head.len();
    if let Some(seq) = last_input_seq {
        put_varint(&mut head, u64::from(seq));
    }
    head.extend_from_slice(&snapshot.timestamp().to_le_bytes());
    put_varint(&mut head, u64::from(tick_rate));
    for g in gravity {
        put_varint(&mut head, zigzag(i64::from(g)));
    }
    put_varint(&mut head, plan.removed.len() as u64);
    put_varint(&mut head, plan.left.len() as u64);
    put_varint(&mut head, plan.listed.len() as u64);
    let mut w = BitWriter::after(head);
    for order in orders {
        w.bits(order, ORDER_BITS);
    }
    for flags in common_flags {
        w.bits(flags, 6);
    }
    write_id_list(&mut w, &plan.removed);
    write_id_list(&mut w, &plan.left);
    let mut previous_id: i64 = -1;
    for record in &records {
        let object = &record.source.objects()[record.index];
        w.gamma((i64::from(object.id) - previous_id - 1) as u64);
        previous_id = i64::from(object.id);
        let record_flags = record.flags();
        match common_flags.iter().position(|&f| f == record_flags) {
            // Unary: `1`, `01`, `001`; `000` then the six bits.
            Some(rank) => w.bits(1 << rank, rank as u32 + 1),
            None => {
                w.bits(0, 3);
                w.bits(record_flags, 6);
            }
        }
        if record.meta {
            w.bits(kind_code(object.kind), 2);
            let properties = record.source.properties_json(record.index).as_bytes();
            // An empty object is sent as length 0, the most common case.
            let properties: &[u8] = if properties == b"{}" { &[] } else { properties };
            w.gamma(properties.len() as u64);
            for &byte in properties {
                w.bits(u32::from(byte), 8);
            }
        }
        if let Some((predictor, values)) = record.position {
            w.bits(predictor, 1);
            write_triple(&mut w, values, axis_orders(&orders, GROUP_POSITION));
        }
        match record.rotation {
            None => {}
            Some(RotationCode::Delta(values)) => {
                w.bit(false);
                write_triple(&mut w, values, [orders[GROUP_ROTATION]; 3]);
            }
            Some(RotationCode::Absolute(packed)) => {
                w.bit(true);
                w.bits(packed, ROTATION_BITS);
            }
        }
        if let Some((predictor, values)) = record.velocity {
            w.bits(predictor, 2);
            write_triple(&mut w, values, axis_orders(&orders, GROUP_VELOCITY));
        }
        if let Some(values) = record.angular {
            write_triple(&mut w, values, axis_orders(&orders, GROUP_ANGULAR));
        }
    }
    (w.finish(), seq_at)
}

fn write_triple(w: &mut BitWriter, values: [u64; 3], orders: [u32; 3]) {
    for (value, order) in values.into_iter().zip(orders) {
        write_egk(w, value, order);
    }
}

/// The predictor (of `count`) whose prediction is closest to `actual`, with its zigzagged
/// residuals. The sum of residuals is a good proxy for the fewest bits.
fn best_predictor(
    count: u32,
    actual: [i32; 3],
    predict: impl Fn(u32) -> [i32; 3],
) -> (u32, [u64; 3]) {
    (0..count)
        .map(|predictor| {
            let predicted = predict(predictor);
            let codes: [u64; 3] =
                std::array::from_fn(|axis| delta_code(actual[axis], predicted[axis]));
            (predictor, codes)
        })
        .min_by_key(|(_, codes)| codes.iter().sum::<u64>())
        .unwrap_or((0, [0; 3]))
}

/// A rotation in a record: deltas of the three components (same dropped component as the
/// baseline) or the absolute 32-bit value.
#[derive(Clone, Copy)]
enum RotationCode {
    /// Zigzagged differences of the three steps.
    Delta([u64; 3]),
    Absolute(u32),
}

/// One listed object of a binary message, before writing.
struct Record<'a> {
    index: usize,
    /// The snapshot `index` points into.
    source: &'a Snapshot,
    state: QuantizedState,
    meta: bool,
    /// The chosen predictor and the zigzagged residuals against it.
    position: Option<(u32, [u64; 3])>,
    rotation: Option<RotationCode>,
    /// The chosen predictor and the zigzagged residuals against it.
    velocity: Option<(u32, [u64; 3])>,
    /// Zigzagged deltas against the baseline.
    angular: Option<[u64; 3]>,
}

impl Record<'_> {
    /// The six record flags, bit 0 first: meta, sleeping, position, rotation, velocity, angular.
    fn flags(&self) -> u32 {
        u32::from(self.meta)
            | u32::from(self.state.sleeping) << 1
            | u32::from(self.position.is_some()) << 2
            | u32::from(self.rotation.is_some()) << 3
            | u32::from(self.velocity.is_some()) << 4
            | u32::from(self.angular.is_some()) << 5
    }
}

fn write_id_list(w: &mut BitWriter, ids: &[ObjectId]) {
    let mut previous: i64 = -1;
    for &id in ids {
        w.gamma((i64::from(id) - previous - 1) as u64);
        previous = i64::from(id);
    }
}

fn write_ids(out: &mut String, ids: &[ObjectId]) {
    out.push('[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{id}");
    }
    out.push(']');
}

fn json_f64(value: f64) -> String {
    if value.is_finite() {
        // `{}` prints the shortest representation that round-trips.
        format!("{value}")
    } else {
        "0".to_owned()
    }
}
