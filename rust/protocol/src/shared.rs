//! The state stream encoded once per group of clients instead of once per client.
//!
//! # Why
//! A per-client encoder ([`crate::StateEncoder`]) costs about a microsecond per object per client
//! per message: 100 clients watching 1,000 moving objects at 20 states per second is two seconds of
//! CPU per second. Here every message is a function of a few shared facts only, so clients that
//! share them share the encoding:
//! - the snapshot's tick `T` and the client's baseline tick `B` (its newest acknowledged state);
//! - its *view cell*: interest is taken around the centre of the grid cell the viewer is in (a
//!   superset of the sphere around the viewer itself), not around the viewer;
//! - the cells it was in for the messages since `B` (for what it may still hold);
//! - its interest radius.
//!
//! The client's own input ack (`last_input_seq`) is spliced into the shared bytes per client.
//!
//! # What a message says (the same wire format and rules as the per-client encoder)
//! The view after each message is exactly `interest(T, cell_T)`: the objects within the radius of
//! the cell's centre, the nearest `max_objects` of them. Against baseline `B`:
//! - an object of the view is listed when it was not in *every* view since `B` (it is new to the
//!   client or may have left and come back), or when its quantised state or kind/properties
//!   changed in `(B, T]` (tracked per object as the tick of its newest change, so a client that
//!   merges every message it got — JSON without per-tick bookkeeping — never keeps a stale value);
//! - `removed`/`left` name every object of any view since `B` that is not in this one;
//! - binary deltas are taken against the object's value in `B`'s view, as decoders keep it.
//!
//! Level of detail ([`DetailTier`]) is a function of the published states alone (an object's
//! rank in the view and its id decide at which publications it is shown), never of a client's
//! history, so it does not split groups.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use nexus_sim::state::{BodyKind, ObjectId, Tick, WorldState};

use crate::bits::put_varint;
use crate::snapshot::{Snapshot, SnapshotConfig, meta_key};
use crate::stream::{
    Encoding, FLAG_INPUT_ACK, Listing, MessagePlan, StatePayload, write_binary, write_json,
};

/// Views are taken at radii rounded up to a multiple of this, metres.
pub const RADIUS_STEP: f32 = 8.0;

/// Settings of a shared stream.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedStreamSettings {
    /// Smallest side of a view cell, metres (default 16): clients in the same cell share
    /// messages. Cells are at least a quarter of the view's radius wide ([`Self::cell_size`]).
    pub view_cell_size: f32,
    /// Most objects in a view, the nearest to the cell's centre (default 2,048).
    pub max_objects: usize,
    /// Published states kept as possible baselines (default 64).
    pub history: usize,
    /// Baselines move to every n-th published state only (default 4), the newest of those a
    /// client acknowledged: clients whose acks differ a little then share a baseline, and so
    /// their messages. 1 makes every acknowledged state the baseline.
    pub baseline_interval: u64,
    /// Level of detail, nearest tiers first (default: the 64 nearest objects of a view in every
    /// message, the next 192 every 4th publication, the rest every 16th). Empty: every object
    /// in every message.
    pub detail: Vec<DetailTier>,
    /// Objects within this distance of the view cell (so of any viewer in it) are shown in every
    /// message whatever their rank, metres (default 8).
    pub full_detail_distance: f32,
    /// Snapshot preparation (spatial grid).
    pub snapshot: SnapshotConfig,
}

/// One level of detail: the objects of a view ranked (by distance from the centre of the detail
/// cell around the view cell) below `nearest` and not in an earlier tier are shown as they were at every `every`-th
/// publication only; in the publications between, such an object keeps the value of its last
/// due one (objects are spread over the publications by id). Objects beyond the last tier
/// follow the last tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetailTier {
    /// Rank limit (exclusive) of the tier.
    pub nearest: usize,
    /// Publications per update (1: every message).
    pub every: u32,
}

impl SharedStreamSettings {
    /// Side of the view cells of views of `radius`: at least a quarter of the radius, so that a
    /// crowd spread over an area the size of a view shares tens of views rather than hundreds,
    /// while a view reaches at most about half a radius beyond the viewer's own.
    pub fn cell_size(&self, radius: f32) -> f32 {
        self.view_cell_size.max(radius * 0.25)
    }

    /// The level of detail of the object ranked `rank` in its view.
    fn every_at_rank(&self, rank: usize) -> u32 {
        self.detail
            .iter()
            .find(|tier| rank < tier.nearest)
            .or(self.detail.last())
            .map_or(1, |tier| tier.every.max(1))
    }

    /// The longest level-of-detail period.
    fn longest_every(&self) -> u64 {
        self.detail
            .iter()
            .map(|tier| u64::from(tier.every.max(1)))
            .max()
            .unwrap_or(1)
    }
}

impl Default for SharedStreamSettings {
    fn default() -> Self {
        SharedStreamSettings {
            view_cell_size: 16.0,
            max_objects: 2048,
            history: 64,
            baseline_interval: 4,
            detail: vec![
                DetailTier {
                    nearest: 64,
                    every: 1,
                },
                DetailTier {
                    nearest: 256,
                    every: 4,
                },
                DetailTier {
                    nearest: usize::MAX,
                    every: 16,
                },
            ],
            full_detail_distance: 8.0,
            snapshot: SnapshotConfig::default(),
        }
    }
}

/// Where a client looks from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViewCell {
    /// No viewer (a spectator): every object.
    Everything,
    /// A grid cell (x, y, z).
    Cell([i32; 3]),
}

impl ViewCell {
    fn of(viewer: Option<[f32; 3]>, size: f32) -> ViewCell {
        match viewer {
            Some(p) if p.iter().all(|c| c.is_finite()) => {
                // `as` saturates: far-away positions land in edge cells.
                ViewCell::Cell(p.map(|c| (c / size).floor() as i32))
            }
            _ => ViewCell::Everything,
        }
    }

    fn centre(self, size: f32) -> Option<[f32; 3]> {
        match self {
            ViewCell::Everything => None,
            ViewCell::Cell(c) => Some(c.map(|i| (i as f32 + 0.5) * size)),
        }
    }
}

/// What makes two clients' messages for one snapshot identical: the encoding, the baseline and
/// the object sets of the views involved (by fingerprint). Clients in different cells whose
/// views hold the same objects — the usual case when the interest radius spans the busy part of
/// the world — share messages too.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GroupKey {
    encoding: Encoding,
    /// Fingerprint of the view at this state.
    view: u64,
    /// The baseline tick and the fingerprint of the client's view there.
    baseline: Option<(Tick, u64)>,
    /// Fingerprints of the views the client may have been given since the baseline, sorted,
    /// without duplicates.
    since: Vec<u64>,
}

/// Where one client looks from, now and since its baseline: how to compute its group's message.
struct GroupCells {
    radius: f32,
    cell: ViewCell,
    baseline_cell: ViewCell,
    cells_since: Vec<ViewCell>,
}

/// A view: sorted object indices into its snapshot, their level-of-detail periods, and a
/// fingerprint of both.
#[derive(Debug)]
struct View {
    indices: Vec<u32>,
    /// The ids of `indices` (ascending, as the snapshot's objects are).
    ids: Vec<ObjectId>,
    /// Per index: publications per update (empty: 1 for all).
    every: Vec<u32>,
    fingerprint: u64,
}

impl View {
    fn every(&self, position: usize) -> u32 {
        self.every.get(position).copied().unwrap_or(1)
    }

    /// Where `id` is in the view.
    fn position_of(&self, id: ObjectId) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }
}

/// A shared message, without any client's input ack.
#[derive(Debug)]
struct SharedPayload {
    payload: StatePayload,
    /// Where the input ack goes (see [`write_json`] / [`write_binary`]).
    seq_at: usize,
}

impl SharedPayload {
    /// The message for one client: its own `last_input_seq` spliced in.
    fn for_client(&self, last_input_seq: Option<u32>) -> StatePayload {
        let Some(seq) = last_input_seq else {
            return self.payload.clone();
        };
        match &self.payload {
            StatePayload::Text(text) => {
                // The shared text says `null` at `seq_at`.
                let mut out = String::with_capacity(text.len() + 8);
                out.push_str(&text[..self.seq_at]);
                out.push_str(&seq.to_string());
                out.push_str(&text[self.seq_at + "null".len()..]);
                StatePayload::Text(out)
            }
            StatePayload::Binary(bytes) => {
                let mut out = Vec::with_capacity(bytes.len() + 5);
                out.extend_from_slice(&bytes[..self.seq_at]);
                put_varint(&mut out, u64::from(seq));
                out.extend_from_slice(&bytes[self.seq_at..]);
                out[2] |= FLAG_INPUT_ACK;
                StatePayload::Binary(out)
            }
        }
    }
}

/// One published state of a shared stream.
pub struct SharedSnapshot {
    snapshot: Snapshot,
    /// Publication number on its timeline (0, 1, 2, ...).
    sequence: u64,
    /// Per object (snapshot order): the newest tick at which its quantised state or kind and
    /// properties changed, or at which it appeared.
    changed_at: Vec<Tick>,
    /// The same for kind and properties alone.
    meta_changed_at: Vec<Tick>,
    environment_changed_at: Tick,
    physics_changed_at: Tick,
    /// Views by (cell, radius bits).
    views: Mutex<HashMap<(ViewCell, u32), Arc<View>>>,
    /// Messages by group; the `OnceLock` lets the first client of a group encode while the others
    /// wait for it instead of encoding again.
    messages: Mutex<HashMap<GroupKey, Arc<OnceLock<SharedPayload>>>>,
}

impl std::fmt::Debug for SharedSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSnapshot")
            .field("tick", &self.snapshot.tick())
            .field("objects", &self.snapshot.objects().len())
            .finish()
    }
}

impl SharedSnapshot {
    /// The prepared state.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The tick of the state.
    pub fn tick(&self) -> Tick {
        self.snapshot.tick()
    }

    /// Publication number on its timeline (0, 1, 2, ...).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Distinct messages encoded for this state so far (one per group of clients).
    pub fn encodings(&self) -> usize {
        self.messages.lock().map_or(0, |m| m.len())
    }

    /// The view of `cell` at `radius`: the nearest `max_objects` objects within `radius` (plus
    /// the cell's half diagonal) of the cell's centre.
    fn view(&self, cell: ViewCell, radius: f32, settings: &SharedStreamSettings) -> Arc<View> {
        let key = (cell, radius.to_bits());
        if let Some(view) = self.views.lock().ok().and_then(|v| v.get(&key).cloned()) {
            return view;
        }
        let mut found: Vec<(u32, f32)> = Vec::new();
        let cell_size = settings.cell_size(radius);
        match cell.centre(cell_size) {
            None => found.extend((0..self.snapshot.objects().len() as u32).map(|i| (i, 0.0))),
            Some(centre) => {
                let reach = radius + cell_size * 0.5 * 3f32.sqrt();
                self.snapshot
                    .for_each_within(centre, reach, |index, distance| {
                        found.push((index as u32, distance));
                    });
            }
        }
        // Views no larger than the first tier (when that one is at full detail) need no ranking.
        let full_detail = settings.detail.first().map_or(usize::MAX, |tier| {
            if tier.every <= 1 { tier.nearest } else { 0 }
        });
        // A spectator (no cell) sees everything at full detail.
        let detailed = cell != ViewCell::Everything && found.len() > full_detail;
        if found.len() > settings.max_objects {
            // Nearest first; ties by index so that the choice never depends on the visit order.
            found.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            found.truncate(settings.max_objects);
        }
        let mut entries: Vec<(u32, u32)> = match cell.centre(cell_size) {
            Some(centre) if detailed => {
                // Ranked by distance from the cell's centre (the same for every viewer in the
                // cell); whatever is close to the cell, and so to any viewer in it, stays at
                // full detail whatever its rank.
                let half = cell_size * 0.5;
                let near = settings.full_detail_distance.max(0.0);
                let close_to_cell = |index: u32| {
                    let p = self.snapshot.objects()[index as usize].position;
                    let outside: f32 = (0..3)
                        .map(|axis| ((p[axis] - centre[axis]).abs() - half).max(0.0).powi(2))
                        .sum();
                    outside <= near * near
                };
                found.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                found
                    .into_iter()
                    .enumerate()
                    .map(|(rank, (index, _))| {
                        let every = settings.every_at_rank(rank);
                        (
                            index,
                            if every > 1 && close_to_cell(index) {
                                1
                            } else {
                                every
                            },
                        )
                    })
                    .collect()
            }
            _ => found.into_iter().map(|(index, _)| (index, 1)).collect(),
        };
        entries.sort_unstable();
        // FNV-1a over the ids and periods: equal views, equal fingerprints; 64 bits make a
        // collision between two different views of one campaign practically impossible.
        let mut fingerprint: u64 = 0xcbf2_9ce4_8422_2325;
        let mut hash = |value: u32| {
            for byte in value.to_le_bytes() {
                fingerprint = (fingerprint ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        };
        for &(index, every) in &entries {
            hash(self.snapshot.objects()[index as usize].id);
            if every != 1 {
                hash(every | 0x8000_0000);
            }
        }
        fingerprint ^= entries.len() as u64;
        let every = if entries.iter().all(|&(_, every)| every == 1) {
            Vec::new()
        } else {
            entries.iter().map(|&(_, every)| every).collect()
        };
        let indices: Vec<u32> = entries.into_iter().map(|(index, _)| index).collect();
        let ids = indices
            .iter()
            .map(|&index| self.snapshot.objects()[index as usize].id)
            .collect();
        let view = Arc::new(View {
            indices,
            ids,
            every,
            fingerprint,
        });
        if let Ok(mut views) = self.views.lock() {
            views.insert(key, view.clone());
        }
        view
    }
}

/// The published states of one campaign, newest last: what every client's shared encoder reads.
/// One producer ([`SharedTimeline::publish`]), any number of readers.
pub struct SharedTimeline {
    settings: SharedStreamSettings,
    metadata_json: String,
    zero_meta: u64,
    states: RwLock<VecDeque<Arc<SharedSnapshot>>>,
}

impl std::fmt::Debug for SharedTimeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTimeline")
            .field("settings", &self.settings)
            .finish()
    }
}

impl SharedTimeline {
    /// An empty timeline for `campaign_id`.
    pub fn new(campaign_id: &str, mut settings: SharedStreamSettings) -> SharedTimeline {
        if !(settings.view_cell_size.is_finite() && settings.view_cell_size >= 0.5) {
            settings.view_cell_size = SharedStreamSettings::default().view_cell_size;
        }
        let metadata = crate::Metadata::server(campaign_id);
        SharedTimeline {
            settings,
            metadata_json: serde_json::to_string(&metadata).unwrap_or_else(|_| "{}".into()),
            zero_meta: meta_key(BodyKind::Dynamic, "{}"),
            states: RwLock::new(VecDeque::new()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &SharedStreamSettings {
        &self.settings
    }

    /// Prepares and keeps `state`. States must come in increasing tick order; an older or equal
    /// tick starts the timeline afresh (every client's next message is then full).
    pub fn publish(&self, state: WorldState) -> Arc<SharedSnapshot> {
        let snapshot = Snapshot::with_config(state, &self.settings.snapshot);
        let tick = snapshot.tick();
        let previous = self.newest().filter(|p| p.tick() < tick);
        let count = snapshot.objects().len();
        let mut changed_at = Vec::with_capacity(count);
        let mut meta_changed_at = Vec::with_capacity(count);
        for (index, object) in snapshot.objects().iter().enumerate() {
            let before = previous.as_ref().and_then(|p| {
                p.snapshot
                    .index_of_near(object.id, index)
                    .map(|i| (p.as_ref(), i, p.snapshot.quantized(i)))
            });
            let (changed, meta_changed) = match before {
                Some((p, i, state)) => {
                    let meta_same = p.snapshot.meta_key_of(i) == snapshot.meta_key_of(index);
                    let same = meta_same && state == snapshot.quantized(index);
                    (
                        if same { p.changed_at[i] } else { tick },
                        if meta_same {
                            p.meta_changed_at[i]
                        } else {
                            tick
                        },
                    )
                }
                None => (tick, tick),
            };
            changed_at.push(changed);
            meta_changed_at.push(meta_changed);
        }
        let (environment_changed_at, physics_changed_at) = match &previous {
            Some(p) => (
                if p.snapshot.environment_key() == snapshot.environment_key() {
                    p.environment_changed_at
                } else {
                    tick
                },
                if p.snapshot.physics_key() == snapshot.physics_key() {
                    p.physics_changed_at
                } else {
                    tick
                },
            ),
            None => (tick, tick),
        };
        let entry = Arc::new(SharedSnapshot {
            snapshot,
            sequence: previous.as_ref().map_or(0, |p| p.sequence + 1),
            changed_at,
            meta_changed_at,
            environment_changed_at,
            physics_changed_at,
            views: Mutex::new(HashMap::new()),
            messages: Mutex::new(HashMap::new()),
        });
        if let Ok(mut states) = self.states.write() {
            if previous.is_none() {
                states.clear();
            }
            // Messages of older states are no longer wanted (each client gets the newest); a
            // client that still asks for one encodes it again.
            if states.len() >= 2 {
                let old = &states[states.len() - 2];
                if let Ok(mut messages) = old.messages.lock() {
                    messages.clear();
                }
            }
            states.push_back(entry.clone());
            while states.len() > self.settings.history.max(1) {
                states.pop_front();
            }
        }
        entry
    }

    /// The newest published state.
    pub fn newest(&self) -> Option<Arc<SharedSnapshot>> {
        self.states.read().ok().and_then(|s| s.back().cloned())
    }

    /// The kept state of `tick`.
    fn get(&self, tick: Tick) -> Option<Arc<SharedSnapshot>> {
        let states = self.states.read().ok()?;
        let index = states.binary_search_by_key(&tick, |s| s.tick()).ok()?;
        Some(states[index].clone())
    }

    /// Kept states strictly between `after` and `before`.
    fn between(&self, after: Tick, before: Tick) -> Vec<Arc<SharedSnapshot>> {
        self.states.read().map_or_else(
            |_| Vec::new(),
            |states| {
                states
                    .iter()
                    .filter(|s| s.tick() > after && s.tick() < before)
                    .cloned()
                    .collect()
            },
        )
    }

    /// The kept states, oldest first (consecutive publication numbers).
    fn kept(&self) -> Vec<Arc<SharedSnapshot>> {
        self.states
            .read()
            .map_or_else(|_| Vec::new(), |states| states.iter().cloned().collect())
    }

    /// Whether the state of `tick` can be a baseline: kept, and so is every earlier state its
    /// far objects may have been shown at (level of detail).
    fn keeps_baseline(&self, tick: Tick) -> bool {
        let Ok(states) = self.states.read() else {
            return false;
        };
        let Ok(index) = states.binary_search_by_key(&tick, |s| s.tick()) else {
            return false;
        };
        let lag = self.settings.longest_every() - 1;
        index as u64 >= lag.min(states[index].sequence)
    }

    /// Encodes the message of `key` for `current` (the baseline and the states between must be
    /// kept; the caller checked the baseline).
    fn encode_group(
        &self,
        current: &SharedSnapshot,
        encoding: Encoding,
        baseline: Option<&SharedSnapshot>,
        cells: &GroupCells,
    ) -> SharedPayload {
        let radius = cells.radius;
        let settings = &self.settings;
        let snapshot = &current.snapshot;
        // The states far objects may be shown at (level of detail).
        let kept = self.kept();
        let view = current.view(cells.cell, radius, settings);
        let id_of = |index: u32| snapshot.objects()[index as usize].id;
        let baseline = baseline.map(|state| (state, cells.baseline_cell));
        let plan = match &baseline {
            None => MessagePlan {
                snapshot,
                baseline: None,
                listed: view
                    .indices
                    .iter()
                    .enumerate()
                    .map(|(position, &index)| {
                        let (source, index) = shown(
                            &kept,
                            current,
                            index as usize,
                            id_of(index),
                            view.every(position),
                        );
                        Listing {
                            index,
                            source: Some(&source.snapshot),
                            base: None,
                            meta: true,
                        }
                    })
                    .collect(),
                removed: Vec::new(),
                left: Vec::new(),
                environment: true,
                physics: true,
            },
            Some((base_state, base_cell)) => {
                let b = base_state.tick();
                let base_view = base_state.view(*base_cell, radius, settings);
                // Every view the client may have been given since the baseline, with the
                // states they were taken in.
                let mut since: Vec<(Arc<SharedSnapshot>, Arc<View>)> = Vec::new();
                // From the states already read for level of detail: no second pass over the
                // timeline.
                for state in kept
                    .iter()
                    .filter(|s| s.tick() > b && s.tick() < snapshot.tick())
                {
                    for &cell in &cells.cells_since {
                        let view = state.view(cell, radius, settings);
                        since.push((state.clone(), view));
                    }
                }
                // For membership, distinct views only: a client that stays put gets the same view
                // over and over, and a lagging baseline makes `since` long.
                let mut distinct: Vec<&Arc<View>> = since.iter().map(|(_, v)| v).collect();
                distinct.sort_unstable_by_key(|v| v.fingerprint);
                distinct.dedup_by_key(|v| v.fingerprint);
                // Views are sorted by id: one walk per view instead of a search per object.
                let in_base = positions_in(&view.ids, &base_view.ids);
                let mut held_throughout: Vec<bool> = in_base.iter().map(Option::is_some).collect();
                for since_view in &distinct {
                    let mut held = held_throughout.iter_mut();
                    walk_sorted(&view.ids, &since_view.ids, |_, found| {
                        if let Some(held) = held.next() {
                            *held &= found.is_some();
                        }
                    });
                }
                // Under level of detail a message since the baseline may have shown an older or
                // newer value of a far object than both the baseline and this message: a client
                // that merges messages (JSON) may hold that one, so it is listed again. A binary
                // decoder rebuilds each view from its baseline and needs no such repeat.
                let merging = encoding == Encoding::Json && settings.longest_every() > 1;
                let mut listed = Vec::new();
                for (position, &index) in view.indices.iter().enumerate() {
                    let id = view.ids[position];
                    let shown_now = shown(&kept, current, index as usize, id, view.every(position));
                    // The value the client holds from the baseline view.
                    let held = in_base[position].map(|k| {
                        let base_index = base_view.indices[k] as usize;
                        shown(&kept, base_state, base_index, id, base_view.every(k))
                    });
                    let base = held.map(|(state, i)| {
                        (*state.snapshot.quantized(i), state.snapshot.meta_key_of(i))
                    });
                    let listing = |meta| Listing {
                        index: shown_now.1,
                        source: Some(&shown_now.0.snapshot),
                        base,
                        meta,
                    };
                    if !held_throughout[position] {
                        listed.push(listing(true));
                    } else if let Some(held) = held {
                        let (mut changed, mut meta_changed) = changed_between(shown_now, held);
                        if merging {
                            for (state, view) in &since {
                                if let Some(k) = view.position_of(id) {
                                    let then = shown(
                                        &kept,
                                        state,
                                        view.indices[k] as usize,
                                        id,
                                        view.every(k),
                                    );
                                    let (c, m) = changed_between(shown_now, then);
                                    changed |= c;
                                    meta_changed |= m;
                                }
                            }
                        }
                        if changed {
                            listed.push(listing(meta_changed));
                        }
                    }
                }
                // What the client may hold that is no longer in its view.
                let mut gone: Vec<ObjectId> = Vec::new();
                for ids in std::iter::once(&base_view.ids).chain(distinct.iter().map(|v| &v.ids)) {
                    walk_sorted(ids, &view.ids, |id, found| {
                        if found.is_none() {
                            gone.push(id);
                        }
                    });
                }
                gone.sort_unstable();
                gone.dedup();
                let (left, removed): (Vec<ObjectId>, Vec<ObjectId>) = gone
                    .into_iter()
                    .partition(|&id| snapshot.index_of(id).is_some());
                MessagePlan {
                    snapshot,
                    baseline: Some(b),
                    listed,
                    removed,
                    left,
                    environment: current.environment_changed_at > b,
                    physics: current.physics_changed_at > b,
                }
            }
        };
        let (payload, seq_at) = match encoding {
            Encoding::Json => {
                let (text, at) = write_json(&plan, &self.metadata_json, None);
                (StatePayload::Text(text), at)
            }
            Encoding::Binary => {
                let (bytes, at) = write_binary(&plan, self.zero_meta, None);
                (StatePayload::Binary(bytes), at)
            }
        };
        SharedPayload { payload, seq_at }
    }
}

/// Where the value of object `id` (at `index` in `state`) shown at level of detail `every` comes
/// from: the state of its last due publication (publication number plus id a multiple of
/// `every`) when kept and holding the object, else `state` itself. Deterministic for a state as
/// long as the states it may reach back to are kept ([`SharedTimeline::keeps_baseline`]), so a
/// baseline's values are the ones its message showed.
fn shown<'s>(
    kept: &'s [Arc<SharedSnapshot>],
    state: &'s SharedSnapshot,
    index: usize,
    id: ObjectId,
    every: u32,
) -> (&'s SharedSnapshot, usize) {
    let lag = (state.sequence + u64::from(id)) % u64::from(every.max(1));
    if lag == 0 {
        return (state, index);
    }
    state
        .sequence
        .checked_sub(lag)
        .and_then(|due| {
            let first = kept.first()?.sequence;
            kept.get(usize::try_from(due.checked_sub(first)?).ok()?)
        })
        .and_then(|due| {
            due.snapshot
                .index_of_near(id, index)
                .map(|i| (due.as_ref(), i))
        })
        .unwrap_or((state, index))
}

/// Whether an object's shown values in two states differ: (state or kind and properties, kind
/// and properties alone).
fn changed_between(a: (&SharedSnapshot, usize), b: (&SharedSnapshot, usize)) -> (bool, bool) {
    let ((older, _), (newer, newer_index)) = if a.0.tick() <= b.0.tick() {
        (a, b)
    } else {
        (b, a)
    };
    (
        newer.changed_at[newer_index] > older.tick(),
        newer.meta_changed_at[newer_index] > older.tick(),
    )
}

/// Walks `ids` (ascending) alongside `other` (ascending), calling `visit` with each id of `ids`
/// and its position in `other`, if there.
fn walk_sorted(
    ids: &[ObjectId],
    other: &[ObjectId],
    mut visit: impl FnMut(ObjectId, Option<usize>),
) {
    let mut k = 0;
    for &id in ids {
        while k < other.len() && other[k] < id {
            k += 1;
        }
        visit(id, (k < other.len() && other[k] == id).then_some(k));
    }
}

/// The position in `other` of each id of `ids` (both ascending).
fn positions_in(ids: &[ObjectId], other: &[ObjectId]) -> Vec<Option<usize>> {
    let mut positions = Vec::with_capacity(ids.len());
    walk_sorted(ids, other, |_, found| positions.push(found));
    positions
}

/// One client's position in a shared stream: its baseline and the messages it got since.
#[derive(Clone, Debug)]
pub struct SharedStateEncoder {
    encoding: Encoding,
    radius: f32,
    /// The baseline message: tick and view cell.
    baseline: Option<(Tick, ViewCell)>,
    /// Messages sent after the baseline, oldest first.
    sent: VecDeque<Sent>,
    baseline_interval: u64,
    last_tick: Option<Tick>,
}

/// A message sent after the baseline.
#[derive(Clone, Copy, Debug)]
struct Sent {
    tick: Tick,
    cell: ViewCell,
    /// Publication number of its state.
    sequence: u64,
    /// The client acknowledged it (so it holds its view).
    acked: bool,
}

/// One encoded message of a shared stream.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedEncoded {
    /// The frame to send.
    pub payload: StatePayload,
    /// The baseline it is a delta against (`None`: full).
    pub baseline: Option<Tick>,
    /// Whether this client had to encode it (the first of its group); otherwise it was shared.
    pub encoded_here: bool,
}

impl SharedStateEncoder {
    /// A client's stream with `encoding`, seeing objects within `radius` metres. Views are taken
    /// at the radius rounded up to a multiple of [`RADIUS_STEP`] (still a superset of what the
    /// client asked for), so that clients asking for nearby radii share their messages too.
    pub fn new(encoding: Encoding, radius: f32) -> SharedStateEncoder {
        let radius = if radius.is_nan() {
            0.0
        } else {
            radius.max(0.0)
        };
        SharedStateEncoder {
            encoding,
            radius: (radius / RADIUS_STEP).ceil() * RADIUS_STEP,
            baseline: None,
            sent: VecDeque::new(),
            baseline_interval: SharedStreamSettings::default().baseline_interval,
            last_tick: None,
        }
    }

    /// Moves baselines to every `interval`-th published state only (see
    /// [`SharedStreamSettings::baseline_interval`]; the encoder of a gateway takes its
    /// timeline's).
    pub fn set_baseline_interval(&mut self, interval: u64) {
        self.baseline_interval = interval.max(1);
    }

    /// The encoding.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The current baseline tick.
    pub fn baseline_tick(&self) -> Option<Tick> {
        self.baseline.map(|(tick, _)| tick)
    }

    /// The client applied the message of `tick`. The baseline becomes the newest acknowledged
    /// message on the baseline grid (every `baseline_interval`-th published state), so that
    /// clients whose acks differ a little share baselines; or the newest acknowledged message
    /// when there is no baseline yet, or when no grid message was acknowledged for two intervals
    /// (drops can skip them). Feed every ack, in order. Unknown or stale acks are ignored.
    pub fn acknowledge(&mut self, tick: Tick) -> crate::AckOutcome {
        if self.baseline.is_some_and(|(b, _)| tick <= b) {
            return crate::AckOutcome::Stale;
        }
        let Some(acked) = self.sent.iter().position(|s| s.tick == tick) else {
            return crate::AckOutcome::Unknown;
        };
        self.sent[acked].acked = true;
        let interval = self.baseline_interval.max(1);
        let on_grid = (0..=acked)
            .rev()
            .find(|&i| self.sent[i].acked && self.sent[i].sequence.is_multiple_of(interval));
        let chosen = match on_grid {
            Some(i) if self.baseline.is_some() => i,
            _ if self.baseline.is_none() || acked as u64 >= 2 * interval => acked,
            _ => return crate::AckOutcome::Accepted,
        };
        self.sent.drain(..chosen);
        self.baseline = self.sent.pop_front().map(|s| (s.tick, s.cell));
        crate::AckOutcome::Accepted
    }

    /// The client lost its state: the next message is full.
    pub fn resync(&mut self) {
        self.baseline = None;
        self.sent.clear();
    }

    /// This client's message for `current` (published on `timeline`), seen from `viewer`, with
    /// its `last_input_seq`. `None` when `current` is not newer than the previous message.
    pub fn encode(
        &mut self,
        timeline: &SharedTimeline,
        current: &SharedSnapshot,
        viewer: Option<[f32; 3]>,
        last_input_seq: Option<u32>,
    ) -> Option<SharedEncoded> {
        let tick = current.tick();
        if self.last_tick.is_some_and(|last| tick <= last) {
            return None;
        }
        let settings = timeline.settings();
        // A baseline the timeline forgot, or too many unacknowledged messages: start afresh.
        if self.sent.len() >= settings.history.max(1)
            || self
                .baseline
                .is_some_and(|(b, _)| b >= tick || !timeline.keeps_baseline(b))
        {
            self.resync();
        }
        // Kept while this message is encoded (the timeline may drop it meanwhile).
        let base_state = match self.baseline {
            Some((b, _)) => {
                let state = timeline.get(b);
                if state.is_none() {
                    self.resync();
                }
                state
            }
            None => None,
        };
        let cell = ViewCell::of(viewer, settings.cell_size(self.radius));
        let mut cells_since: Vec<ViewCell> = self.sent.iter().map(|s| s.cell).collect();
        cells_since.sort_unstable();
        cells_since.dedup();
        let cells = GroupCells {
            radius: self.radius,
            cell,
            baseline_cell: self.baseline.map_or(cell, |(_, c)| c),
            cells_since,
        };
        let key = match self.baseline.zip(base_state.as_ref()) {
            None => GroupKey {
                encoding: self.encoding,
                view: current.view(cell, self.radius, settings).fingerprint,
                baseline: None,
                since: Vec::new(),
            },
            Some(((b, base_cell), base_state)) => {
                let mut since: Vec<u64> = Vec::new();
                for state in timeline.between(b, tick) {
                    for &c in &cells.cells_since {
                        since.push(state.view(c, self.radius, settings).fingerprint);
                    }
                }
                since.sort_unstable();
                since.dedup();
                GroupKey {
                    encoding: self.encoding,
                    view: current.view(cell, self.radius, settings).fingerprint,
                    baseline: Some((
                        b,
                        base_state
                            .view(base_cell, self.radius, settings)
                            .fingerprint,
                    )),
                    since,
                }
            }
        };
        let slot = {
            let mut messages = current.messages.lock().ok()?;
            messages.entry(key).or_default().clone()
        };
        let mut encoded_here = false;
        let shared = slot.get_or_init(|| {
            encoded_here = true;
            timeline.encode_group(current, self.encoding, base_state.as_deref(), &cells)
        });
        let payload = shared.for_client(last_input_seq);

        self.sent.push_back(Sent {
            tick,
            cell,
            sequence: current.sequence,
            acked: false,
        });
        self.last_tick = Some(tick);
        Some(SharedEncoded {
            payload,
            baseline: self.baseline_tick(),
            encoded_here,
        })
    }
}
