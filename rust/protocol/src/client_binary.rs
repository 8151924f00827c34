//! Compact binary client frames: input batches and state acks, the two messages a client sends
//! at the tick rate. Everything else is JSON. Layout (see PROTOCOL.md, "Binary client frames"):
//!
//! ```text
//! u8 version = 1, u8 kind
//! kind 0x81 inputs: varint ack+1 (0 = none), varint count, count × input
//!   input: varint seq, u8 flags (bit0 jump, bit1 run, bit2 tick, bit3 look),
//!          [varint tick], i8 move_x, i8 move_z (÷127), [3 × i16 LE look (÷32767)]
//! kind 0x82 ack: varint tick
//! ```

use nexus_sim::command::PlayerInput;
use nexus_sim::state::Tick;

use crate::bits::{ByteReader, ReadError, put_varint};
use crate::client::{ClientFrame, ClientMessage};
use crate::envelope::Metadata;
use crate::error::{ProtocolError, codes};
use crate::limits::Limits;
use crate::names;

/// Format version of binary frames (both directions).
pub const BINARY_VERSION: u8 = 1;
/// Binary client frame kind: an input batch with an optional ack.
pub const KIND_INPUTS: u8 = 0x81;
/// Binary client frame kind: a state ack.
pub const KIND_ACK: u8 = 0x82;

const FLAG_JUMP: u8 = 1;
const FLAG_RUN: u8 = 2;
const FLAG_TICK: u8 = 4;
const FLAG_LOOK: u8 = 8;

/// Decodes a binary client frame with the default [`Limits`].
pub fn decode_client_binary(bytes: &[u8]) -> Result<ClientFrame, ProtocolError> {
    decode_client_binary_with(bytes, &Limits::default())
}

/// Decodes a binary client frame (input batch or ack).
pub fn decode_client_binary_with(
    bytes: &[u8],
    limits: &Limits,
) -> Result<ClientFrame, ProtocolError> {
    let malformed = |e: ReadError| ProtocolError::new(codes::MALFORMED_BINARY, e.0);
    let mut r = ByteReader::new(bytes);
    let version = r.u8().map_err(malformed)?;
    if version != BINARY_VERSION {
        return Err(ProtocolError::new(
            codes::MALFORMED_BINARY,
            format!("format version {version}, expected {BINARY_VERSION}"),
        ));
    }
    let kind = r.u8().map_err(malformed)?;
    let (r#type, message) = match kind {
        KIND_INPUTS => {
            let ack_plus_one = r.varint().map_err(malformed)?;
            let count = r.varint().map_err(malformed)?;
            if count > limits.max_inputs_per_message as u64 {
                return Err(ProtocolError::new(
                    codes::LIMIT_EXCEEDED,
                    format!(
                        "{count} inputs, at most {} per message",
                        limits.max_inputs_per_message
                    ),
                ));
            }
            let mut inputs = Vec::with_capacity(count as usize);
            for i in 0..count {
                inputs.push(read_input(&mut r).map_err(|e| {
                    ProtocolError::new(codes::MALFORMED_BINARY, format!("input {i}: {}", e.0))
                })?);
            }
            let ack = ack_plus_one.checked_sub(1);
            (names::CLIENT_INPUT, ClientMessage::Inputs { inputs, ack })
        }
        KIND_ACK => {
            let tick = r.varint().map_err(malformed)?;
            (
                names::SESSION_ACK_REQUEST,
                ClientMessage::Ack {
                    tick: Some(tick),
                    resync: false,
                },
            )
        }
        other => {
            return Err(ProtocolError::new(
                codes::UNKNOWN_TYPE,
                format!("unknown binary frame kind 0x{other:02x}"),
            ));
        }
    };
    if !r.rest().is_empty() {
        return Err(ProtocolError::new(
            codes::MALFORMED_BINARY,
            format!("{} trailing bytes", r.rest().len()),
        ));
    }
    Ok(ClientFrame {
        r#type,
        metadata: Metadata::default(),
        message,
    })
}

fn read_input(r: &mut ByteReader<'_>) -> Result<PlayerInput, ReadError> {
    let seq = u32::try_from(r.varint()?).map_err(|_| ReadError("seq exceeds 32 bits"))?;
    let flags = r.u8()?;
    if flags & !(FLAG_JUMP | FLAG_RUN | FLAG_TICK | FLAG_LOOK) != 0 {
        return Err(ReadError("unknown input flag bits"));
    }
    let tick = if flags & FLAG_TICK != 0 {
        Some(r.varint()?)
    } else {
        None
    };
    let axis = |byte: u8| -> Result<f32, ReadError> {
        match byte as i8 {
            i8::MIN => Err(ReadError("movement byte -128 is not allowed (use -127)")),
            v => Ok(f32::from(v) / 127.0),
        }
    };
    let movement = [axis(r.u8()?)?, axis(r.u8()?)?];
    let look = if flags & FLAG_LOOK != 0 {
        let mut look = [0.0f32; 3];
        for c in &mut look {
            *c = f32::from(r.i16_le()?.max(-i16::MAX)) / f32::from(i16::MAX);
        }
        look
    } else {
        [0.0; 3]
    };
    Ok(PlayerInput {
        seq,
        tick,
        movement,
        look,
        jump: flags & FLAG_JUMP != 0,
        run: flags & FLAG_RUN != 0,
    })
}

/// Encodes an input batch (with an optional state ack) as a binary client frame. Movement is
/// clamped to -1..=1 and quantised to 1/127; a non-zero look direction is normalised and quantised
/// to 1/32767 per component.
pub fn encode_client_inputs(inputs: &[PlayerInput], ack: Option<Tick>) -> Vec<u8> {
    let mut out = vec![BINARY_VERSION, KIND_INPUTS];
    put_varint(&mut out, ack.map_or(0, |t| t.saturating_add(1)));
    put_varint(&mut out, inputs.len() as u64);
    for input in inputs {
        put_varint(&mut out, u64::from(input.seq));
        let length = input.look.iter().map(|c| c * c).sum::<f32>().sqrt();
        let has_look = length.is_finite() && length > 1e-6;
        let mut flags = 0u8;
        if input.jump {
            flags |= FLAG_JUMP;
        }
        if input.run {
            flags |= FLAG_RUN;
        }
        if input.tick.is_some() {
            flags |= FLAG_TICK;
        }
        if has_look {
            flags |= FLAG_LOOK;
        }
        out.push(flags);
        if let Some(tick) = input.tick {
            put_varint(&mut out, tick);
        }
        for m in input.movement {
            // `as` saturates and maps NaN to 0, so no input can panic here.
            out.push(((m.clamp(-1.0, 1.0) * 127.0).round() as i8) as u8);
        }
        if has_look {
            for c in input.look {
                let q = ((c / length) * f32::from(i16::MAX)).round() as i16;
                out.extend_from_slice(&q.to_le_bytes());
            }
        }
    }
    out
}

/// Encodes a state ack as a binary client frame.
pub fn encode_client_ack(tick: Tick) -> Vec<u8> {
    let mut out = vec![BINARY_VERSION, KIND_ACK];
    put_varint(&mut out, tick);
    out
}
