//! The session's side of WebRTC data channels, without sockets: inputs routed to datagrams
//! (binary frames with redundancy and the ack), back to the stream, and states arriving out of
//! order skipped. Driven against the in-process server on a simulated clock.

mod common;

use common::{SimServer, flat_world};
use nexus_client::transport::is_input_frame;
use nexus_client::{ClientSession, Controls, Encoding, Frame, SessionConfig};
use nexus_protocol::{ClientMessage, decode_client_binary};
use nexus_sim::PlayerInput;

const DT: f64 = 1.0 / 60.0;
const WALK: Controls = Controls {
    movement: [0.0, 1.0],
    look: [0.0, 0.0, -1.0],
    jump: false,
    run: false,
};

/// A session joined to a fresh server with no network in between; `now` is the clock.
struct Direct {
    server: SimServer,
    session: ClientSession,
    now: f64,
    /// Every state frame the server sent, in order.
    states: Vec<Frame>,
}

impl Direct {
    fn new(encoding: Encoding) -> Direct {
        let mut server = SimServer::new(flat_world(), 20);
        server.connect(1, encoding);
        let mut config = SessionConfig::new("test", "dana");
        config.encoding = encoding;
        config.binary_client_frames = true;
        let mut direct = Direct {
            server,
            session: ClientSession::new(config),
            now: 0.0,
            states: Vec::new(),
        };
        direct.session.start(0.0);
        direct.exchange(false);
        assert!(direct.session.client_id().is_some(), "welcomed");
        direct
    }

    /// Delivers the session's frames (and datagrams, unless `hold_datagrams`) to the server and
    /// its answers back. Returns the stream frames and the datagrams sent.
    fn exchange(&mut self, hold_datagrams: bool) -> (Vec<Frame>, Vec<Vec<u8>>) {
        let frames = self.session.drain_outgoing();
        let datagrams = if hold_datagrams {
            Vec::new()
        } else {
            self.session.drain_datagrams()
        };
        let mut replies = Vec::new();
        for frame in frames
            .iter()
            .cloned()
            .chain(datagrams.iter().cloned().map(Frame::Binary))
        {
            replies.extend(self.server.handle(self.now, 1, &frame));
        }
        for (_, reply) in replies {
            self.session.receive(self.now, &reply).unwrap();
        }
        (frames, datagrams)
    }

    /// One tick: the session updates, the server steps, states are delivered (unless held).
    fn tick(&mut self, controls: &Controls, deliver_states: bool) -> (Vec<Frame>, Vec<Vec<u8>>) {
        self.now += DT;
        self.session.update(self.now, controls);
        let sent = self.exchange(false);
        for (_, frame) in self.server.tick(self.now) {
            if nexus_client::transport::is_state_frame(&frame) {
                self.states.push(frame.clone());
                if !deliver_states {
                    continue;
                }
            }
            self.session.receive(self.now, &frame).unwrap();
        }
        sent
    }
}

fn inputs_of(bytes: &[u8]) -> (Vec<PlayerInput>, Option<u64>) {
    match decode_client_binary(bytes)
        .expect("a valid binary frame")
        .message
    {
        ClientMessage::Inputs { inputs, ack } => (inputs, ack),
        other => panic!("not an input batch: {other:?}"),
    }
}

#[test]
fn datagram_inputs_carry_the_last_unacknowledged_inputs_and_the_ack() {
    for encoding in [Encoding::Json, Encoding::Binary] {
        let mut direct = Direct::new(encoding);
        for _ in 0..30 {
            direct.tick(&Controls::default(), true);
        }
        direct.session.set_datagram_inputs(true);
        let mut batches = Vec::new();
        for _ in 0..120 {
            let (frames, datagrams) = direct.tick(&WALK, true);
            assert!(
                !frames.iter().any(is_input_frame),
                "{encoding:?}: no input on the stream while datagrams are on"
            );
            batches.extend(datagrams);
        }
        assert!(batches.len() >= 100, "{encoding:?}: one datagram per tick");
        let mut newest = 0;
        for bytes in &batches {
            if bytes[1] != 0x81 {
                continue; // an ack alone
            }
            let (inputs, ack) = inputs_of(bytes);
            assert!(
                (1..=8).contains(&inputs.len()),
                "{encoding:?}: {}",
                inputs.len()
            );
            assert!(
                ack.is_some(),
                "{encoding:?}: every datagram carries the ack"
            );
            let seqs: Vec<u32> = inputs.iter().map(|i| i.seq).collect();
            assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
            assert!(*seqs.last().unwrap() > newest, "the newest input is in it");
            newest = *seqs.last().unwrap();
        }
        // With the server a tick behind, the redundancy fills all 8 places.
        let full = batches
            .iter()
            .filter(|b| b[1] == 0x81 && inputs_of(b).0.len() == 8)
            .count();
        assert!(full > batches.len() / 2, "{encoding:?}: {full}");
        let acked = direct.session.predictor().unwrap().confirmed_seq().unwrap();
        assert!(acked + 8 >= newest, "{encoding:?}: the server applied them");
        assert_eq!(direct.session.stats().corrections, 0, "{encoding:?}");

        // Back on the stream: the first batch repeats the unacknowledged inputs once.
        direct.session.set_datagram_inputs(false);
        let mut stream_batches = Vec::new();
        for _ in 0..10 {
            let (frames, datagrams) = direct.tick(&WALK, false);
            assert!(datagrams.is_empty());
            stream_batches.extend(frames.into_iter().filter(is_input_frame));
        }
        let sizes: Vec<usize> = stream_batches
            .iter()
            .map(|f| match f {
                Frame::Binary(bytes) => inputs_of(bytes).0.len(),
                Frame::Text(text) => panic!("binary client frames were asked for: {text}"),
            })
            .collect();
        assert!(sizes[0] > 1, "{encoding:?}: repeated once: {sizes:?}");
        assert!(
            sizes[1..].iter().all(|&n| n == 1),
            "{encoding:?}: {sizes:?}"
        );
    }
}

#[test]
fn states_older_than_the_newest_applied_are_skipped_not_errors() {
    for encoding in [Encoding::Binary, Encoding::Json] {
        let mut direct = Direct::new(encoding);
        // Hold back a few states (as a slow transport would), deliver the newest first.
        for _ in 0..30 {
            direct.tick(&Controls::default(), true);
        }
        let held_from = direct.states.len();
        for _ in 0..12 {
            direct.tick(&Controls::default(), false);
        }
        let held: Vec<Frame> = direct.states[held_from..].to_vec();
        assert!(held.len() >= 3, "{}", held.len());
        let before = direct.session.stats().clone();
        let newest = held.last().unwrap().clone();
        direct.session.receive(direct.now, &newest).unwrap();
        for late in &held[..held.len() - 1] {
            direct.session.receive(direct.now, late).unwrap();
        }
        let stats = direct.session.stats();
        assert_eq!(
            stats.states_applied,
            before.states_applied + 1,
            "{encoding:?}"
        );
        assert_eq!(
            stats.states_stale,
            before.states_stale + held.len() as u64 - 1,
            "{encoding:?}"
        );
        assert_eq!(
            stats.malformed_frames, 0,
            "{encoding:?}: late is not malformed"
        );
        // The stream goes on from the newest (its deltas are against acknowledged states).
        for _ in 0..30 {
            direct.tick(&WALK, true);
        }
        let stats = direct.session.stats();
        assert!(
            stats.states_applied > before.states_applied + 5,
            "{encoding:?}"
        );
        assert_eq!(stats.malformed_frames, 0, "{encoding:?}");
    }
}
