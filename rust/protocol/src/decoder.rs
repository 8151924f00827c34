//! The client side of the state stream: the binary decoder and the JSON message types.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use nexus_sim::state::{BodyKind, EnvironmentState, ObjectId, PhysicsInfo, Properties, Tick};
use serde::{Deserialize, Serialize};

use crate::bits::{BitReader, ByteReader, ReadError, unzigzag};
use crate::client_binary::BINARY_VERSION;
use crate::codec::{
    GROUP_ANGULAR, GROUP_POSITION, GROUP_ROTATION, GROUP_VELOCITY, GROUPS, MAX_ORDER, ORDER_BITS,
    Prediction, VELOCITY_PREDICTORS, axis_orders, read_egk, rotation_pack, rotation_parts,
};
use crate::quant::{
    QuantizedState, ROTATION_BITS, ZERO_STATE, dequantize_angular, dequantize_position,
    dequantize_rotation, dequantize_velocity, kind_of_code,
};
use crate::stream::{FLAG_FULL, FLAG_INPUT_ACK, KIND_STATE};

/// Why a binary state message could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes do not follow the format (the text says where).
    Malformed(String),
    /// The message is a delta against a tick this decoder does not hold (send a resync).
    MissingBaseline(Tick),
    /// The message's tick is not newer than the last decoded one.
    OutOfOrder {
        /// Tick of the message.
        tick: Tick,
        /// Newest tick decoded before.
        last: Tick,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Malformed(what) => write!(f, "malformed state message: {what}"),
            DecodeError::MissingBaseline(tick) => write!(f, "baseline tick {tick} is not held"),
            DecodeError::OutOfOrder { tick, last } => {
                write!(f, "tick {tick} is not newer than {last}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

impl From<ReadError> for DecodeError {
    fn from(e: ReadError) -> Self {
        DecodeError::Malformed(e.0.to_owned())
    }
}

/// One object as the decoder holds it (dequantised).
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedObject {
    /// Object id.
    pub id: ObjectId,
    /// Body kind.
    pub kind: BodyKind,
    /// Position, metres.
    pub position: [f32; 3],
    /// Unit quaternion `[x, y, z, w]`.
    pub rotation: [f32; 4],
    /// Linear velocity, m/s.
    pub velocity: [f32; 3],
    /// Angular velocity, rad/s.
    pub angular_velocity: [f32; 3],
    /// Whether the body sleeps.
    pub sleeping: bool,
    /// Properties (shared between views).
    pub properties: Arc<Properties>,
}

/// The result of decoding one state message.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedState {
    /// Tick of the state.
    pub tick: Tick,
    /// Baseline it was decoded against (`None`: a full state).
    pub baseline: Option<Tick>,
    /// Server clock, Unix seconds.
    pub timestamp: f64,
    /// The newest input of this client the server processed (for reconciliation).
    pub last_input_seq: Option<u32>,
    /// The client's whole view at `tick`, sorted by id.
    pub objects: Vec<DecodedObject>,
    /// Ids listed in the message (fresh values), ascending.
    pub updated: Vec<ObjectId>,
    /// Of those, the ids whose record carried kind and properties (new to the client, or
    /// changed), ascending: the others keep the ones the client has.
    pub meta_updated: Vec<ObjectId>,
    /// Ids gone from the world, ascending.
    pub removed: Vec<ObjectId>,
    /// Ids that left the interest area, ascending.
    pub left: Vec<ObjectId>,
}

#[derive(Clone, Debug)]
struct HeldObject {
    id: ObjectId,
    state: QuantizedState,
    kind: BodyKind,
    properties: Arc<Properties>,
}

impl HeldObject {
    fn decoded(&self) -> DecodedObject {
        DecodedObject {
            id: self.id,
            kind: self.kind,
            position: dequantize_position(self.state.position),
            rotation: dequantize_rotation(self.state.rotation),
            velocity: dequantize_velocity(self.state.velocity),
            angular_velocity: dequantize_angular(self.state.angular_velocity),
            sleeping: self.state.sleeping,
            properties: Arc::clone(&self.properties),
        }
    }
}

/// The head of a binary state message: what a client that does not decode the objects still
/// needs (to measure the state's age and acknowledge it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StateHeader {
    /// Tick of the state.
    pub tick: Tick,
    /// Baseline tick (`None`: a full state).
    pub baseline: Option<Tick>,
    /// Server clock, Unix seconds.
    pub timestamp: f64,
    /// The newest input of this client the server processed.
    pub last_input_seq: Option<u32>,
}

/// Reads the head of a binary state message without decoding its objects (no decoder state
/// involved). Errors for anything that is not a well-formed state message head.
pub fn peek_state_header(bytes: &[u8]) -> Result<StateHeader, DecodeError> {
    read_header(&mut ByteReader::new(bytes))
}

fn read_header(r: &mut ByteReader<'_>) -> Result<StateHeader, DecodeError> {
    let version = r.u8()?;
    if version != BINARY_VERSION {
        return Err(DecodeError::Malformed(format!("format version {version}")));
    }
    let kind = r.u8()?;
    if kind != KIND_STATE {
        return Err(DecodeError::Malformed(format!("message kind 0x{kind:02x}")));
    }
    let flags = r.u8()?;
    if flags & !(FLAG_FULL | FLAG_INPUT_ACK) != 0 {
        return Err(DecodeError::Malformed(format!(
            "unknown flags 0x{flags:02x}"
        )));
    }
    let tick = r.varint()?;
    let baseline = if flags & FLAG_FULL == 0 {
        let distance = r.varint()?;
        if distance == 0 || distance > tick {
            return Err(DecodeError::Malformed(format!(
                "baseline distance {distance} at tick {tick}"
            )));
        }
        Some(tick - distance)
    } else {
        None
    };
    let last_input_seq = if flags & FLAG_INPUT_ACK != 0 {
        Some(
            u32::try_from(r.varint()?)
                .map_err(|_| DecodeError::Malformed("last_input_seq exceeds 32 bits".to_owned()))?,
        )
    } else {
        None
    };
    let timestamp = r.f64_le()?;
    Ok(StateHeader {
        tick,
        baseline,
        timestamp,
        last_input_seq,
    })
}

/// Decodes the binary state stream. Keeps the views a future message may use as its baseline:
/// every view from the newest baseline the server named onwards, at most `max_views`.
pub struct StateDecoder {
    views: BTreeMap<Tick, Arc<Vec<HeldObject>>>,
    max_views: usize,
    empty_properties: Arc<Properties>,
}

impl Default for StateDecoder {
    fn default() -> Self {
        StateDecoder::new(128)
    }
}

impl StateDecoder {
    /// A decoder keeping at most `max_views` views (128 = 2 s at 60 messages per second).
    pub fn new(max_views: usize) -> StateDecoder {
        StateDecoder {
            views: BTreeMap::new(),
            max_views: max_views.max(1),
            empty_properties: Arc::new(Properties::new()),
        }
    }

    /// Tick of the newest decoded message: the tick to acknowledge.
    pub fn latest_tick(&self) -> Option<Tick> {
        self.views.keys().next_back().copied()
    }

    /// Forgets every view (after asking the server to resync).
    pub fn clear(&mut self) {
        self.views.clear();
    }

    /// Decodes one binary state message.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<DecodedState, DecodeError> {
        self.decode_into(bytes, true)
    }

    /// [`StateDecoder::decode`] for clients that keep their own copy of the world: `objects`
    /// holds only the objects the message listed (those in `updated`), not the whole view, which
    /// saves converting every object of a large view on every message. The decoder's own views
    /// are kept as with `decode`.
    pub fn decode_changes(&mut self, bytes: &[u8]) -> Result<DecodedState, DecodeError> {
        self.decode_into(bytes, false)
    }

    fn decode_into(&mut self, bytes: &[u8], whole_view: bool) -> Result<DecodedState, DecodeError> {
        let mut r = ByteReader::new(bytes);
        let StateHeader {
            tick,
            baseline,
            timestamp,
            last_input_seq,
        } = read_header(&mut r)?;
        if let Some(last) = self.latest_tick()
            && tick <= last
        {
            return Err(DecodeError::OutOfOrder { tick, last });
        }
        let tick_rate = u32::try_from(r.varint()?)
            .map_err(|_| DecodeError::Malformed("tick rate exceeds 32 bits".to_owned()))?;
        let mut gravity = [0i32; 3];
        for g in &mut gravity {
            *g = i32::try_from(unzigzag(r.varint()?))
                .map_err(|_| DecodeError::Malformed("gravity exceeds 32 bits".to_owned()))?;
        }
        let removed_count = r.varint()?;
        let left_count = r.varint()?;
        let listed_count = r.varint()?;
        let base_view: Arc<Vec<HeldObject>> = match baseline {
            Some(b) => Arc::clone(self.views.get(&b).ok_or(DecodeError::MissingBaseline(b))?),
            None => Arc::new(Vec::new()),
        };
        // Every entry takes at least one bit: larger counts cannot be honest.
        let body = r.rest();
        let max_entries = body.len() as u64 * 8;
        if removed_count + left_count + listed_count > max_entries {
            return Err(DecodeError::Malformed(
                "counts exceed the message size".to_owned(),
            ));
        }
        let mut bits = BitReader::new(body);
        let mut orders = [0u32; GROUPS];
        for order in &mut orders {
            *order = bits.bits(ORDER_BITS)?;
            if *order > MAX_ORDER {
                return Err(DecodeError::Malformed(format!("exp-Golomb order {order}")));
            }
        }
        let common_flags = [bits.bits(6)?, bits.bits(6)?, bits.bits(6)?];
        let prediction = Prediction::new(baseline.map_or(0, |b| tick - b), tick_rate, gravity);
        let removed = read_id_list(&mut bits, removed_count)?;
        let left = read_id_list(&mut bits, left_count)?;

        let mut listed: Vec<HeldObject> = Vec::with_capacity(listed_count as usize);
        let mut meta_updated: Vec<ObjectId> = Vec::new();
        let mut previous_id: i64 = -1;
        for _ in 0..listed_count {
            let id = next_id(&mut bits, &mut previous_id)?;
            let base = base_view
                .binary_search_by_key(&id, |o| o.id)
                .ok()
                .map(|i| base_view[i].clone());
            let (mut state, mut kind, mut properties) = match base {
                Some(held) => (held.state, held.kind, held.properties),
                None => (
                    ZERO_STATE,
                    BodyKind::Dynamic,
                    Arc::clone(&self.empty_properties),
                ),
            };
            let flags = if bits.bit()? {
                common_flags[0]
            } else if bits.bit()? {
                common_flags[1]
            } else if bits.bit()? {
                common_flags[2]
            } else {
                bits.bits(6)?
            };
            let meta_present = flags & 1 != 0;
            state.sleeping = flags & 2 != 0;
            let position_present = flags & 4 != 0;
            let rotation_present = flags & 8 != 0;
            let velocity_present = flags & 16 != 0;
            let angular_present = flags & 32 != 0;
            if meta_present {
                kind = kind_of_code(bits.bits(2)?);
                let len = bits.gamma()?;
                if len > body.len() as u64 {
                    return Err(DecodeError::Malformed(format!(
                        "object {id}: properties length {len}"
                    )));
                }
                let mut text = Vec::with_capacity(len as usize);
                for _ in 0..len {
                    text.push(bits.bits(8)? as u8);
                }
                properties = if text.is_empty() {
                    Arc::clone(&self.empty_properties)
                } else {
                    Arc::new(serde_json::from_slice(&text).map_err(|e| {
                        DecodeError::Malformed(format!("object {id}: properties: {e}"))
                    })?)
                };
            }
            let (base_position, base_velocity) = (state.position, state.velocity);
            if position_present {
                let predictor = bits.bits(1)?;
                let predicted = prediction.position(predictor, state.position, state.velocity);
                state.position =
                    read_deltas(&mut bits, predicted, axis_orders(&orders, GROUP_POSITION))?;
            }
            if rotation_present {
                state.rotation = if bits.bit()? {
                    bits.bits(ROTATION_BITS)?
                } else {
                    let (index, steps) = rotation_parts(state.rotation);
                    let steps = read_deltas(&mut bits, steps, [orders[GROUP_ROTATION]; 3])?;
                    rotation_pack(index, steps).ok_or_else(|| {
                        DecodeError::Malformed(format!(
                            "object {id}: rotation component out of range"
                        ))
                    })?
                };
            }
            if velocity_present {
                let predictor = bits.bits(2)?;
                if predictor >= VELOCITY_PREDICTORS {
                    return Err(DecodeError::Malformed(format!(
                        "object {id}: velocity predictor {predictor}"
                    )));
                }
                let predicted =
                    prediction.velocity(predictor, base_position, state.position, base_velocity);
                state.velocity =
                    read_deltas(&mut bits, predicted, axis_orders(&orders, GROUP_VELOCITY))?;
            }
            if angular_present {
                state.angular_velocity = read_deltas(
                    &mut bits,
                    state.angular_velocity,
                    axis_orders(&orders, GROUP_ANGULAR),
                )?;
            }
            if meta_present {
                meta_updated.push(id);
            }
            listed.push(HeldObject {
                id,
                state,
                kind,
                properties,
            });
        }
        bits.finish()?;

        // view = (baseline view − removed − left) ⊕ listed; all lists are sorted by id.
        let mut view: Vec<HeldObject> = Vec::with_capacity(base_view.len() + listed.len());
        let mut listed_iter = listed.iter().peekable();
        for held in base_view.iter() {
            while let Some(next) = listed_iter.next_if(|l| l.id < held.id) {
                view.push(next.clone());
            }
            if let Some(next) = listed_iter.next_if(|l| l.id == held.id) {
                view.push(next.clone());
                continue;
            }
            let gone =
                removed.binary_search(&held.id).is_ok() || left.binary_search(&held.id).is_ok();
            if !gone {
                view.push(held.clone());
            }
        }
        view.extend(listed_iter.cloned());

        let decoded = DecodedState {
            tick,
            baseline,
            timestamp,
            last_input_seq,
            objects: if whole_view {
                view.iter().map(HeldObject::decoded).collect()
            } else {
                listed.iter().map(HeldObject::decoded).collect()
            },
            updated: listed.iter().map(|l| l.id).collect(),
            meta_updated,
            removed,
            left,
        };
        // The server's baselines never move backwards: views older than this one are useless.
        if let Some(b) = baseline {
            self.views = self.views.split_off(&b);
        }
        self.views.insert(tick, Arc::new(view));
        while self.views.len() > self.max_views {
            self.views.pop_first();
        }
        Ok(decoded)
    }
}

fn next_id(bits: &mut BitReader<'_>, previous: &mut i64) -> Result<ObjectId, DecodeError> {
    let gap = bits.gamma()?;
    let id = (*previous + 1)
        .checked_add(i64::try_from(gap).map_err(|_| DecodeError::Malformed("id gap".into()))?)
        .filter(|id| *id <= i64::from(ObjectId::MAX))
        .ok_or_else(|| DecodeError::Malformed("object id exceeds 32 bits".to_owned()))?;
    *previous = id;
    Ok(id as ObjectId)
}

fn read_id_list(bits: &mut BitReader<'_>, count: u64) -> Result<Vec<ObjectId>, DecodeError> {
    let mut ids = Vec::with_capacity(count.min(1 << 16) as usize);
    let mut previous = -1;
    for _ in 0..count {
        ids.push(next_id(bits, &mut previous)?);
    }
    Ok(ids)
}

fn read_deltas(
    bits: &mut BitReader<'_>,
    base: [i32; 3],
    orders: [u32; 3],
) -> Result<[i32; 3], DecodeError> {
    let mut out = base;
    for (value, order) in out.iter_mut().zip(orders) {
        let delta = unzigzag(read_egk(bits, order)?);
        *value = i32::try_from(i64::from(*value) + delta)
            .map_err(|_| DecodeError::Malformed("quantised value exceeds 32 bits".to_owned()))?;
    }
    Ok(out)
}

/// The payload of a JSON `physics:world_state:v1:stream` message (for clients written in Rust and
/// for tests).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonStateMessage {
    /// Tick of the state.
    pub tick: Tick,
    /// Server clock, Unix seconds.
    pub timestamp: f64,
    /// Whether this is a full state (replace everything) rather than a delta.
    pub full: bool,
    /// Baseline tick of a delta (`null` when full).
    pub baseline: Option<Tick>,
    /// Newest input of this client the server processed.
    #[serde(default)]
    pub last_input_seq: Option<u32>,
    /// Listed objects.
    pub objects: Vec<JsonObject>,
    /// Ids gone from the world.
    #[serde(default)]
    pub removed: Vec<ObjectId>,
    /// Ids that left the interest area.
    #[serde(default)]
    pub left: Vec<ObjectId>,
    /// Present when full or changed.
    #[serde(default)]
    pub physics: Option<PhysicsInfo>,
    /// Present when full or changed.
    #[serde(default)]
    pub environment: Option<EnvironmentState>,
}

/// One listed object of a JSON state message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonObject {
    /// Object id.
    pub id: ObjectId,
    /// Position, metres.
    pub position: [f32; 3],
    /// Unit quaternion `[x, y, z, w]`.
    pub rotation: [f32; 4],
    /// m/s.
    pub velocity: [f32; 3],
    /// rad/s.
    pub angular_velocity: [f32; 3],
    /// Whether the body sleeps.
    pub sleeping: bool,
    /// Present when new to the client or changed.
    #[serde(default)]
    pub kind: Option<BodyKind>,
    /// Present when new to the client or changed.
    #[serde(default)]
    pub properties: Option<Properties>,
}
