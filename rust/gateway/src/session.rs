//! One WebSocket connection: a reader (this task) and a writer (its own task).
//!
//! How it works:
//! - The reader decodes client frames, enforces the per-client limits (frame size, message and
//!   input rates, join and idle timeouts), authenticates the join and forwards what the client asks
//!   to the campaign's host. Every refusal is an error event; the connection goes on unless the
//!   client must go (bad token, flooding, silence, a frame too large to skip).
//! - The writer owns the socket's sending half and the client's state encoder. It drains the
//!   [`Outbox`]: reliable events first, then the newest state, encoded for this client (delta,
//!   interest, level of detail), plus WebSocket pings. A send stuck on a slow socket is abandoned
//!   when the client is declared too slow.
//! - Every close goes through the outbox: the writer sends the close frame (after what must precede
//!   it), the reader then drains the socket until the client answers or the grace period ends, so
//!   the client reads the reason instead of a reset.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseCode, CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use nexus_sim::state::{ClientId, ObjectId};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Role, unix_now};
use crate::campaign::{Campaign, HostSendError};
use crate::link::HostEvent;
use crate::metrics::{CampaignMetrics, Metrics};
use crate::outbox::{CloseRequest, JoinPhase, Outbox, Reliable, ReliablePush};
use crate::ratelimit::TokenBucket;
use crate::shared::{ConnectionSlot, Shared, supervised};
use crate::webrtc::SessionRtc;
use crate::wire::{
    self, ClientFrame, ClientMessage, ClientStateEncoder, Encoding, MemberInfo, codes,
};

type Socket = WebSocket;

/// Serves one upgraded connection until it closes.
pub(crate) async fn run(
    ws: Socket,
    encoding: Encoding,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    slot: ConnectionSlot,
    reached: Option<std::net::IpAddr>,
) {
    let (sink, stream) = ws.split();
    let outbox = Arc::new(Outbox::new(shared.config.session.reliable_queue_capacity));
    let (rtc, rtc_inputs) = match &shared.webrtc {
        Some(server) => {
            let (rtc, inputs) = server.session(outbox.clone());
            (Some(rtc), Some(inputs))
        }
        None => (None, None),
    };
    let writer = Writer {
        rtc: rtc.as_ref().map(|rtc| WriterRtc {
            session: rtc.clone(),
            acked_any: false,
            highest_ack: None,
            unacknowledged_since: None,
        }),
        sink,
        outbox: outbox.clone(),
        shared: shared.clone(),
        encoding,
        encoder: None,
        avatar: None,
        campaign_metrics: None,
        unflushed: false,
    };
    let writer = tracker.spawn(supervised(shared.clone(), writer.run(shutdown)));
    let now = Instant::now();
    let limits = &shared.config.limits;
    let mut session = Session {
        messages: TokenBucket::new(
            f64::from(limits.max_messages_per_second),
            f64::from(limits.max_messages_per_second),
            now.into_std(),
        ),
        inputs: TokenBucket::new(
            f64::from(limits.max_inputs_per_second),
            f64::from(limits.max_inputs_per_second),
            now.into_std(),
        ),
        strikes: TokenBucket::new(
            f64::from(limits.max_messages_per_second) / 2.0,
            f64::from(shared.config.session.flood_tolerance),
            now.into_std(),
        ),
        last_rate_error: None,
        shared: shared.clone(),
        outbox: outbox.clone(),
        encoding,
        joined: None,
        closed_by_client: false,
        rtc,
        reached,
        inputs_seen: SeqWindow::default(),
    };
    session.read(stream, rtc_inputs).await;
    if let Some(rtc) = &session.rtc {
        rtc.close();
    }
    session.leave("disconnected");
    // Make sure the writer stops even if nobody asked for a close (the client vanished).
    outbox.request_close(CloseRequest {
        code: close_code::NORMAL,
        reason_code: "closed".into(),
        message: "connection closed".into(),
        discard_pending: true,
    });
    let _ = writer.await;
    drop(slot);
}

struct Joined {
    campaign: Arc<Campaign>,
    client_id: ClientId,
    role: Role,
}

struct Session {
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    encoding: Encoding,
    joined: Option<Joined>,
    messages: TokenBucket,
    inputs: TokenBucket,
    /// Refused messages tolerated before the client is closed for flooding.
    strikes: TokenBucket,
    last_rate_error: Option<Instant>,
    /// The client sent a close frame: it left on purpose, so its session is not kept to resume.
    closed_by_client: bool,
    /// The session's WebRTC side, when the gateway has WebRTC.
    rtc: Option<Arc<SessionRtc>>,
    /// The server address the client's socket reached: its WebRTC candidate.
    reached: Option<std::net::IpAddr>,
    /// Input sequence numbers already forwarded: inputs sent again (redundancy on the unreliable
    /// channel, or on both transports) are skipped before they count against the rate limit.
    inputs_seen: SeqWindow,
}

/// The input sequence numbers forwarded lately: the newest and a bitmap of the 64 before it.
#[derive(Default)]
struct SeqWindow {
    newest: Option<u32>,
    /// Bit i: `newest - 1 - i` was seen.
    before: u64,
}

impl SeqWindow {
    /// Records `seq`; false if it was seen already (or is too old to tell, which the simulation
    /// would skip as stale anyway).
    fn insert(&mut self, seq: u32) -> bool {
        let Some(newest) = self.newest else {
            self.newest = Some(seq);
            return true;
        };
        if seq > newest {
            let shift = seq - newest;
            self.before = if shift >= 64 {
                0
            } else {
                (self.before << shift) | (1 << (shift - 1))
            };
            self.newest = Some(seq);
            return true;
        }
        if seq == newest {
            return false;
        }
        let back = newest - seq - 1;
        if back >= 64 {
            return false;
        }
        let bit = 1u64 << back;
        let fresh = self.before & bit == 0;
        self.before |= bit;
        fresh
    }
}

impl Session {
    async fn read(
        &mut self,
        mut stream: SplitStream<Socket>,
        mut rtc_inputs: Option<tokio::sync::mpsc::Receiver<Bytes>>,
    ) {
        let shared = self.shared.clone();
        let config = &shared.config;
        let idle_timeout = config.idle_timeout();
        let started = Instant::now();
        let join_deadline = started + config.session.join_timeout;
        let mut last_activity = started;
        let mut drain_until: Option<Instant> = None;
        loop {
            if drain_until.is_none() && self.outbox.closing().is_cancelled() {
                // The writer sends the close frame, maybe after queued events; allow for both.
                drain_until = Some(Instant::now() + config.session.close_grace * 2);
            }
            let deadline = match drain_until {
                Some(until) => until,
                None if self.outbox.phase() == JoinPhase::Welcomed => last_activity + idle_timeout,
                None => (last_activity + idle_timeout).min(join_deadline),
            };
            tokio::select! {
                message = stream.next() => {
                    let now = Instant::now();
                    match message {
                        None => break,
                        Some(Ok(message)) => {
                            last_activity = now;
                            if drain_until.is_some() {
                                continue; // closing: only waiting for the client's close
                            }
                            if let Message::Close(_) = message {
                                // A client that says goodbye meant to go: nothing to resume.
                                self.closed_by_client = true;
                                // tungstenite queued the answer; keep polling to flush it.
                                drain_until = Some(now + config.session.close_grace);
                                continue;
                            }
                            self.on_message(message, now);
                        }
                        Some(Err(err)) => {
                            if drain_until.is_some() {
                                break;
                            }
                            match violation(&err, config.session.hard_max_frame_bytes) {
                                Some((code, reason_code, message)) => {
                                    if reason_code == codes::FRAME_TOO_LARGE {
                                        Metrics::inc(&self.shared.metrics.disconnect_oversized);
                                    }
                                    // The stream cannot be parsed any further: say why, then
                                    // wait (briefly) for the client to take the close frame.
                                    self.close(code, reason_code, message, true);
                                }
                                None => break, // the peer is gone
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let now = Instant::now();
                    if drain_until.is_some() {
                        break;
                    }
                    if self.outbox.phase() != JoinPhase::Welcomed && now >= join_deadline {
                        Metrics::inc(&self.shared.metrics.disconnect_join_timeout);
                        self.close(
                            close_code::POLICY,
                            codes::JOIN_TIMEOUT,
                            format!("not joined within {:?} of connecting", config.session.join_timeout),
                            false,
                        );
                    } else if now >= last_activity + idle_timeout {
                        Metrics::inc(&self.shared.metrics.disconnect_idle);
                        self.close(
                            close_code::POLICY,
                            codes::IDLE_TIMEOUT,
                            format!("nothing received for {idle_timeout:?} (answer pings)"),
                            true,
                        );
                    }
                }
                frame = async { rtc_inputs.as_mut()?.recv().await }, if rtc_inputs.is_some() && drain_until.is_none() => {
                    match frame {
                        Some(frame) => {
                            let now = Instant::now();
                            last_activity = now;
                            self.on_channel_frame(&frame, now);
                        }
                        None => rtc_inputs = None,
                    }
                }
                // Wakes the loop up when the router closes us; the check above does the rest.
                _ = self.outbox.closing().cancelled(), if drain_until.is_none() => {}
            }
        }
    }

    fn close(&self, code: CloseCode, reason_code: &str, message: String, discard: bool) {
        tracing::debug!(
            campaign = self.campaign_id(),
            client = self.joined.as_ref().map(|j| j.client_id),
            code,
            reason = reason_code,
            %message,
            "closing the connection"
        );
        if !discard {
            self.send_error(reason_code, &message);
        }
        self.outbox.request_close(CloseRequest {
            code,
            reason_code: reason_code.to_string(),
            message,
            discard_pending: discard,
        });
    }

    fn campaign_id(&self) -> &str {
        self.joined.as_ref().map_or("", |j| &j.campaign.id)
    }

    fn send_error(&self, code: &str, message: &str) {
        Metrics::inc(&self.shared.metrics.errors_sent);
        let text = wire::error_text(self.campaign_id(), code, message);
        self.push(Reliable::Text(Utf8Bytes::from(text)));
    }

    fn push(&self, message: Reliable) {
        if self.outbox.push_reliable(message) == ReliablePush::Overflow {
            Metrics::inc(&self.shared.metrics.disconnect_slow);
        }
    }

    fn count_rejected(&self, n: usize) {
        let n = n as u64;
        Metrics::add(&self.shared.metrics.inputs_rejected, n);
        if let Some(joined) = &self.joined {
            Metrics::add(&joined.campaign.metrics.inputs_rejected, n);
        }
    }

    fn on_message(&mut self, message: Message, now: Instant) {
        let limits = &self.shared.config.limits;
        let size = match &message {
            Message::Text(text) => text.len(),
            Message::Binary(bytes) => bytes.len(),
            // Pings are answered by tungstenite; pongs and pings only prove liveness.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => return,
        };
        Metrics::inc(&self.shared.metrics.messages_in);
        Metrics::add(&self.shared.metrics.bytes_in, size as u64);
        if size > limits.max_frame_bytes {
            self.count_rejected(1);
            self.send_error(
                codes::FRAME_TOO_LARGE,
                &format!(
                    "a frame of {size} bytes; at most {} are accepted (it was skipped)",
                    limits.max_frame_bytes
                ),
            );
            return;
        }
        if !self.messages.try_take(1.0, now.into_std()) {
            self.rate_limited(now, 1, "messages");
            return;
        }
        let frame = match &message {
            Message::Text(text) => wire::decode_text(text, limits),
            Message::Binary(bytes) => wire::decode_binary(bytes, limits),
            _ => return,
        };
        match frame {
            Ok(frame) => self.dispatch(frame, now),
            Err(err) => {
                self.count_rejected(1);
                self.send_error(err.code, &err.message);
            }
        }
    }

    /// A binary client frame from the WebRTC `input` channel: like a binary WebSocket frame,
    /// except that what the channel may not carry is dropped and counted, never answered.
    fn on_channel_frame(&mut self, frame: &[u8], now: Instant) {
        let limits = &self.shared.config.limits;
        let webrtc = &self.shared.metrics.webrtc;
        if frame.len() > limits.max_frame_bytes {
            Metrics::inc(&webrtc.dropped_oversized);
            return;
        }
        if self.outbox.phase() != JoinPhase::Welcomed {
            Metrics::inc(&webrtc.dropped_channel_message);
            return;
        }
        match wire::decode_binary(frame, limits) {
            Ok(frame) => {
                if !self.messages.try_take(1.0, now.into_std()) {
                    return self.rate_limited(now, 1, "messages");
                }
                self.dispatch(frame, now);
            }
            Err(_) => Metrics::inc(&webrtc.dropped_malformed),
        }
    }

    fn rate_limited(&mut self, now: Instant, refused: usize, what: &str) {
        self.count_rejected(refused);
        if !self.strikes.try_take(1.0, now.into_std()) {
            Metrics::inc(&self.shared.metrics.disconnect_flood);
            self.close(
                close_code::POLICY,
                codes::RATE_LIMITED,
                "flooding: far above the message and input rate limits".into(),
                false,
            );
            return;
        }
        // One error per second is enough to tell; more would only add to the flood.
        if self
            .last_rate_error
            .is_none_or(|last| now.duration_since(last) >= Duration::from_secs(1))
        {
            self.last_rate_error = Some(now);
            let limits = &self.shared.config.limits;
            self.send_error(
                codes::RATE_LIMITED,
                &format!(
                    "too many {what}: at most {} messages and {} inputs per second; the excess is dropped",
                    limits.max_messages_per_second, limits.max_inputs_per_second
                ),
            );
        }
    }

    /// Picks up a join the host refused meanwhile: the client is free to join again.
    fn refresh_join(&mut self) {
        if self.outbox.phase() == JoinPhase::Refused {
            self.joined = None;
            self.outbox.set_phase(JoinPhase::None);
        }
    }

    fn dispatch(&mut self, frame: ClientFrame, now: Instant) {
        self.refresh_join();
        let request_type = frame.r#type;
        let message = match frame.message {
            ClientMessage::Join(request) => return self.join(request, &frame.metadata),
            ClientMessage::Ping { nonce, client_time } => {
                let tick = self.joined.as_ref().map_or(0, |j| j.campaign.latest_tick());
                let text = wire::pong_text(self.campaign_id(), nonce, client_time, tick);
                return self.push(Reliable::Text(Utf8Bytes::from(text)));
            }
            ClientMessage::WebRtcOffer { sdp } => return self.webrtc_offer(&sdp),
            ClientMessage::WebRtcCandidate { candidate } => {
                return self.webrtc_candidate(&candidate);
            }
            message => message,
        };
        let Some(joined) = &self.joined else {
            self.count_rejected(1);
            return self.send_error(
                codes::NOT_JOINED,
                &format!("{request_type} before session:join:v1:requested"),
            );
        };
        let campaign_id = &frame.metadata.campaign_id;
        if !campaign_id.is_empty() && **campaign_id != *joined.campaign.id {
            self.count_rejected(1);
            let message = format!(
                "metadata.campaign_id {:?} is not the joined campaign {:?}",
                wire::truncate(campaign_id, 64),
                &*joined.campaign.id
            );
            return self.send_error(codes::CAMPAIGN_MISMATCH, &message);
        }
        let client_id = joined.client_id;
        let role = joined.role;
        let event = match message {
            ClientMessage::Leave { .. } => {
                self.leave("left");
                self.outbox.request_close(CloseRequest {
                    code: close_code::NORMAL,
                    reason_code: "left".into(),
                    message: "you left the campaign".into(),
                    discard_pending: false,
                });
                return;
            }
            ClientMessage::Ack { tick, resync } => {
                if let Some(tick) = tick {
                    self.outbox.acknowledge_tick(tick);
                }
                if resync {
                    self.outbox.request_resync();
                }
                return;
            }
            ClientMessage::Inputs { mut inputs, ack } => {
                if let Some(tick) = ack {
                    self.outbox.acknowledge_tick(tick);
                }
                inputs.retain(|input| self.inputs_seen.insert(input.seq));
                if inputs.is_empty() {
                    return;
                }
                if !self.inputs.try_take(inputs.len() as f64, now.into_std()) {
                    return self.rate_limited(now, inputs.len(), "inputs");
                }
                HostEvent::Inputs { client_id, inputs }
            }
            ClientMessage::EnvironmentEdit(command) => {
                if role != Role::Admin {
                    self.count_rejected(1);
                    return self.send_error(
                        codes::FORBIDDEN,
                        &format!("{request_type} needs the admin role; you are {role}"),
                    );
                }
                HostEvent::EnvironmentEdit {
                    client_id,
                    role,
                    command,
                }
            }
            ClientMessage::Interaction(request) => HostEvent::Interaction { client_id, request },
            ClientMessage::EnvironmentStateRequest => {
                HostEvent::EnvironmentStateRequest { client_id }
            }
            ClientMessage::ObjectUpdate(request) => HostEvent::ObjectUpdate {
                client_id,
                role,
                request,
            },
            ClientMessage::Action(request) => HostEvent::Action { client_id, request },
            // Handled above; listed so a new message kind is a compile error here, not a silence.
            ClientMessage::Join(_)
            | ClientMessage::Ping { .. }
            | ClientMessage::WebRtcOffer { .. }
            | ClientMessage::WebRtcCandidate { .. } => return,
        };
        self.forward(event);
    }

    /// The WebRTC session for a signalling request, or why there is none (an error sent).
    fn webrtc_session(&self, what: &str) -> Option<(Arc<SessionRtc>, Arc<str>)> {
        let Some(rtc) = self.rtc.clone() else {
            self.send_error(
                codes::WEBRTC_UNAVAILABLE,
                "this server has no WebRTC: state and inputs stay on the WebSocket",
            );
            return None;
        };
        match &self.joined {
            Some(joined) if self.outbox.phase() == JoinPhase::Welcomed => {
                Some((rtc, joined.campaign.id.clone()))
            }
            _ => {
                self.send_error(
                    codes::NOT_JOINED,
                    &format!("{what} before the welcome (offer once joined)"),
                );
                None
            }
        }
    }

    fn webrtc_offer(&mut self, sdp: &str) {
        let Some((rtc, campaign_id)) = self.webrtc_session("a WebRTC offer") else {
            return;
        };
        let reached = self
            .reached
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        match rtc.offer(&campaign_id, sdp, reached) {
            Ok(answer) => {
                let text = wire::webrtc_answer_text(&campaign_id, &answer);
                self.push(Reliable::Text(Utf8Bytes::from(text)));
            }
            Err((code, message)) => self.send_error(code, &message),
        }
    }

    fn webrtc_candidate(&mut self, candidate: &str) {
        let Some((rtc, _)) = self.webrtc_session("a WebRTC candidate") else {
            return;
        };
        if let Err(why) = rtc.candidate(candidate) {
            self.send_error(codes::INVALID_PAYLOAD, &format!("payload.candidate: {why}"));
        }
    }

    fn forward(&mut self, event: HostEvent) {
        let Some(joined) = &self.joined else { return };
        match joined.campaign.send_to_host(event, false) {
            Ok(()) => {}
            Err(HostSendError::Busy) => {
                self.count_rejected(1);
                self.send_error(
                    codes::SERVER_BUSY,
                    "the campaign's simulation is not keeping up; the request was dropped",
                );
            }
            // The campaign is closing; its router is sending everyone away.
            Err(HostSendError::Closed) => {}
        }
    }

    fn join(&mut self, request: wire::JoinRequest, metadata: &wire::Metadata) {
        if self.joined.is_some() {
            return self.send_error(
                codes::ALREADY_JOINED,
                &format!(
                    "this connection already joined campaign {:?}; open another connection",
                    self.campaign_id()
                ),
            );
        }
        let auth = &self.shared.config.auth;
        let claims = match auth.authenticate(&request.token, &metadata.campaign_id, unix_now()) {
            Ok(joined) => {
                if joined.with_previous_secret {
                    Metrics::inc(&self.shared.metrics.auth_previous_secret);
                }
                joined.claims
            }
            Err(err) => {
                Metrics::inc(&self.shared.metrics.auth_failures);
                tracing::debug!(campaign = wire::truncate(&metadata.campaign_id, 64), %err, "join refused: bad token");
                return self.close(
                    close_code::POLICY,
                    codes::INVALID_TOKEN,
                    err.to_string(),
                    false,
                );
            }
        };
        let Some(campaign) = self.shared.campaign(&metadata.campaign_id) else {
            return self.send_error(
                codes::UNKNOWN_CAMPAIGN,
                &format!(
                    "no campaign {:?} is open on this server",
                    wire::truncate(&metadata.campaign_id, 64)
                ),
            );
        };
        // In development mode the client may pick a display name besides its token.
        let name = match (&request.name, auth.is_development()) {
            (Some(name), true) if crate::auth::is_acceptable_name(name) => name.clone(),
            _ => claims.name.clone(),
        };
        let interest_radius = self
            .shared
            .config
            .interest
            .clamp_radius(request.interest_radius);
        let resume_grace = self.shared.config.session.resume_grace;
        let info = MemberInfo {
            name: name.clone(),
            role: claims.role,
            interest_radius,
            encoding: self.encoding,
            user_id: claims.user_id.clone(),
            resume_token: (!resume_grace.is_zero()).then(new_resume_token),
            webrtc: self.rtc.is_some(),
        };
        if let Some(token) = &request.resume_token
            && !resume_grace.is_zero()
        {
            match campaign.resume_member(token, &claims.user_id, self.outbox.clone(), info.clone())
            {
                Some(resumed) => {
                    return self.resume(campaign, resumed, claims.role, interest_radius);
                }
                // Unknown, expired or another account's: an ordinary join, `resumed: false`.
                None => Metrics::inc(&self.shared.metrics.resumes_refused),
            }
        }
        let client_id = self.shared.next_client_id();
        if !campaign.add_member(client_id, self.outbox.clone(), info) {
            return self.send_error(
                codes::UNKNOWN_CAMPAIGN,
                &format!("campaign {:?} is closing", &*campaign.id),
            );
        }
        self.outbox.set_interest_radius(interest_radius);
        self.outbox.set_phase(JoinPhase::Pending);
        let event = HostEvent::ClientJoined {
            client_id,
            user_id: claims.user_id,
            name,
            role: claims.role,
            interest_radius: Some(interest_radius),
            client_type: metadata.client_type.clone(),
        };
        match campaign.send_to_host(event, true) {
            Ok(()) => {
                tracing::debug!(campaign = %campaign.id, client_id, %claims.name, role = %claims.role, "client joining");
                self.joined = Some(Joined {
                    campaign,
                    client_id,
                    role: claims.role,
                });
            }
            Err(_) => {
                campaign.remove_member(client_id);
                self.outbox.set_phase(JoinPhase::None);
                self.send_error(
                    codes::UNKNOWN_CAMPAIGN,
                    &format!("campaign {:?} is closing", &*campaign.id),
                );
            }
        }
    }

    /// Takes a session back on this connection (see [`Campaign::resume_member`]).
    fn resume(
        &mut self,
        campaign: Arc<Campaign>,
        resumed: crate::campaign::Resumed,
        role: Role,
        interest_radius: f32,
    ) {
        let client_id = resumed.client_id;
        if let Some(replaced) = resumed.replaced {
            replaced.request_close(CloseRequest {
                code: close_code::NORMAL,
                reason_code: codes::SESSION_RESUMED.into(),
                message: "the session was resumed on another connection".into(),
                discard_pending: true,
            });
        }
        self.outbox.set_interest_radius(interest_radius);
        self.outbox.set_phase(JoinPhase::Pending);
        match campaign.send_to_host(HostEvent::ClientResumed { client_id }, true) {
            Ok(()) => {
                Metrics::inc(&self.shared.metrics.resumes);
                tracing::debug!(campaign = %campaign.id, client_id, "session resumed");
                self.joined = Some(Joined {
                    campaign,
                    client_id,
                    role,
                });
            }
            Err(_) => {
                campaign.remove_member_of(client_id, &self.outbox);
                self.outbox.set_phase(JoinPhase::None);
                self.send_error(
                    codes::UNKNOWN_CAMPAIGN,
                    &format!("campaign {:?} is closing", &*campaign.id),
                );
            }
        }
    }

    /// Leaves the joined campaign, telling the host (reliably: its avatar must go). A lost
    /// connection parks the session instead, for the client to resume within the grace period.
    fn leave(&mut self, reason: &str) {
        let Some(joined) = self.joined.take() else {
            return;
        };
        let grace = self.shared.config.session.resume_grace;
        // Only a connection lost on the client's side (or found dead by the server) may come back;
        // one the server closed on purpose (flooding, kicked, shutting down) may not.
        let lost = reason == "disconnected"
            && !self.closed_by_client
            && matches!(
                self.outbox.close_reason_code().as_deref(),
                None | Some(codes::IDLE_TIMEOUT | codes::SLOW_CONSUMER)
            );
        let (campaign, client_id) = (joined.campaign, joined.client_id);
        if lost && !grace.is_zero() && campaign.park_member(client_id, &self.outbox) {
            tracing::debug!(campaign = %campaign.id, client_id, "connection lost: the session waits {grace:?} to be resumed");
            let outbox = self.outbox.clone();
            let gateway_metrics = self.shared.metrics.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                if campaign.expire_parked(client_id, &outbox) {
                    Metrics::inc(&gateway_metrics.resumes_expired);
                    tracing::debug!(campaign = %campaign.id, client_id, "not resumed in time: client left");
                    let _ = campaign.send_to_host(
                        HostEvent::ClientLeft {
                            client_id,
                            reason: "disconnected".into(),
                        },
                        true,
                    );
                }
            });
        } else if campaign.remove_member_of(client_id, &self.outbox) {
            tracing::debug!(campaign = %campaign.id, client_id, reason, "client left");
            let _ = campaign.send_to_host(
                HostEvent::ClientLeft {
                    client_id,
                    reason: reason.to_string(),
                },
                true,
            );
        }
        self.outbox.set_phase(JoinPhase::None);
    }
}

/// The close to answer a WebSocket-level violation with, or `None` when the peer simply went away.
pub(crate) fn violation(
    err: &axum::Error,
    hard_max_frame_bytes: usize,
) -> Option<(CloseCode, &'static str, String)> {
    use std::error::Error as _;
    use tungstenite::Error;
    use tungstenite::error::ProtocolError as WsProtocolError;
    // axum wraps tungstenite's error; what it was decides the close code.
    let err = err.source()?.downcast_ref::<Error>()?;
    match err {
        Error::Capacity(_) => Some((
            close_code::SIZE,
            codes::FRAME_TOO_LARGE,
            format!("a frame above the hard cap of {hard_max_frame_bytes} bytes"),
        )),
        Error::Utf8(_) => Some((
            close_code::INVALID,
            codes::PROTOCOL_VIOLATION,
            "a text frame that is not valid UTF-8".into(),
        )),
        Error::Protocol(WsProtocolError::ResetWithoutClosingHandshake) => None,
        Error::Protocol(violation) => Some((
            close_code::PROTOCOL,
            codes::PROTOCOL_VIOLATION,
            format!("WebSocket protocol violation: {violation}"),
        )),
        _ => None,
    }
}

/// The sending half of a connection and everything needed to encode for it.
struct Writer {
    sink: SplitSink<Socket, Message>,
    outbox: Arc<Outbox>,
    shared: Arc<Shared>,
    encoding: Encoding,
    /// Created at the welcome, when the client's baseline starts.
    encoder: Option<ClientStateEncoder>,
    avatar: Option<ObjectId>,
    campaign_metrics: Option<Arc<CampaignMetrics>>,
    /// Messages handed to the socket's buffer but not yet written out: the writer writes
    /// everything ready at once (one system call, and one read for the client, for the events
    /// and the state of one tick), and flushes before it waits.
    unflushed: bool,
    /// The WebRTC data channel states may go on, when the gateway has WebRTC.
    rtc: Option<WriterRtc>,
}

/// What the writer tracks to tell a dead data channel from a quiet client.
struct WriterRtc {
    session: Arc<SessionRtc>,
    /// The client has acknowledged some state: from then on, silence means a lost channel.
    acked_any: bool,
    highest_ack: Option<nexus_sim::state::Tick>,
    /// When the first state sent on the channel since the last new ack went out.
    unacknowledged_since: Option<Instant>,
}

impl WriterRtc {
    fn on_acks(&mut self, acks: &[nexus_sim::state::Tick]) {
        if let Some(&newest) = acks.iter().max()
            && self.highest_ack.is_none_or(|h| newest > h)
        {
            self.highest_ack = Some(newest);
            self.acked_any = true;
            self.unacknowledged_since = None;
        }
    }

    /// Sends `message` on the data channel if it is open and alive; gives it back otherwise.
    fn try_send(&mut self, message: Message) -> Option<Message> {
        let Some(peer) = self.session.open_peer() else {
            self.unacknowledged_since = None;
            return Some(message);
        };
        let now = Instant::now();
        if self.acked_any
            && self.unacknowledged_since.is_some_and(|since| {
                now.duration_since(since) > crate::webrtc::UNACKNOWLEDGED_LIMIT
            })
        {
            self.unacknowledged_since = None;
            self.session.abandon(peer, "unresponsive");
            return Some(message);
        }
        let (binary, data) = match &message {
            Message::Binary(bytes) => (true, bytes.clone()),
            Message::Text(text) => (false, Bytes::copy_from_slice(text.as_bytes())),
            _ => return Some(message),
        };
        if !self.session.send_state(peer, binary, data) {
            return Some(message);
        }
        self.unacknowledged_since.get_or_insert(now);
        None
    }
}

/// A send did not happen: the socket failed, or the client was declared too slow meanwhile.
struct SendFailed;

impl Writer {
    async fn run(mut self, shutdown: CancellationToken) {
        let config = &self.shared.config;
        // Several pings per idle period, so one late pong does not cost the connection.
        let ping_every = config
            .session
            .ping_interval
            .min(config.idle_timeout() / 3)
            .max(Duration::from_millis(10));
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Some(close) = self.outbox.due_close() {
                self.send_close(close).await;
                return;
            }
            if let Some(message) = self.outbox.pop_reliable() {
                let message = self.prepare_reliable(message);
                self.send_counted(message, false).await;
                continue;
            }
            let item = self
                .outbox
                .take_state()
                .or_else(|| self.outbox.take_held_back(std::time::Instant::now()));
            if let Some(item) = item {
                if let Some(message) = self.encode_state(&item) {
                    let message = match &mut self.rtc {
                        Some(rtc) => rtc.try_send(message),
                        None => Some(message),
                    };
                    if let Some(message) = message {
                        self.send_counted(message, true).await;
                    }
                }
                continue;
            }
            if self.unflushed {
                self.unflushed = false;
                if self.flush().await.is_err() {
                    self.connection_lost();
                }
                continue; // more may have arrived meanwhile
            }
            let held_back = self.outbox.held_back_due();
            tokio::select! {
                _ = self.outbox.wait() => {}
                _ = tokio::time::sleep_until(
                        held_back.map_or_else(Instant::now, Instant::from_std)
                    ), if held_back.is_some() => {}
                _ = ping.tick() => {
                    if self.send(Message::Ping(Bytes::new())).await.is_err() {
                        self.connection_lost();
                    }
                }
                _ = shutdown.cancelled() => {
                    self.outbox.request_close(CloseRequest {
                        code: close_code::AWAY,
                        reason_code: codes::SHUTTING_DOWN.into(),
                        message: "the server is shutting down".into(),
                        discard_pending: true,
                    });
                }
            }
        }
    }

    fn prepare_reliable(&mut self, message: Reliable) -> Message {
        match message {
            Reliable::Text(text) => Message::Text(text),
            Reliable::Welcome {
                avatar_id,
                campaign_id,
                text,
                metrics,
            } => {
                self.avatar = Some(avatar_id);
                self.campaign_metrics = Some(metrics);
                // A fresh stream: its first message is full (the welcome's state is not a
                // baseline the encoder could have kept).
                self.encoder = Some(ClientStateEncoder::new(
                    &campaign_id,
                    self.encoding,
                    &self.shared.config.interest,
                    self.outbox.interest_radius(),
                ));
                Message::Text(text)
            }
        }
    }

    fn encode_state(&mut self, item: &crate::outbox::StateItem) -> Option<Message> {
        let encoder = self.encoder.as_mut()?;
        if self.outbox.take_resync() {
            encoder.resync();
            // Acks of messages from before the resync no longer count.
            self.outbox.take_recent_acks();
        }
        let started = std::time::Instant::now();
        let acks = self.outbox.take_recent_acks();
        if let Some(rtc) = &mut self.rtc {
            rtc.on_acks(&acks);
        }
        let (message, encoded_here) =
            encoder.encode(&item.snapshot, &acks, self.avatar, item.input_ack)?;
        let metrics = &self.shared.metrics;
        Metrics::inc(&metrics.states_encoded);
        if encoded_here {
            // Time of the encodings themselves; shared ones cost the others a copy.
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            Metrics::add(&metrics.encode_nanos, nanos);
            metrics.encode_duration.record(nanos);
        }
        let age = item.snapshot.published.elapsed();
        metrics
            .state_age
            .record(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX));
        Some(message)
    }

    /// Queues `message` on the socket (written out by the next flush, or sooner when the
    /// buffer fills) and counts it.
    async fn send_counted(&mut self, message: Message, is_state: bool) {
        let size = message_len(&message) as u64;
        let queued = tokio::select! {
            biased;
            fed = self.sink.feed(message) => fed.map_err(|_| SendFailed),
            _ = self.outbox.abort().cancelled() => Err(SendFailed),
        };
        self.unflushed = true;
        match queued {
            Ok(()) => {
                let metrics = &self.shared.metrics;
                Metrics::inc(&metrics.messages_out);
                Metrics::add(&metrics.bytes_out, size);
                if is_state {
                    metrics.state_message_bytes.record(size);
                } else {
                    metrics.event_message_bytes.record(size);
                }
                if let Some(campaign) = &self.campaign_metrics {
                    Metrics::inc(&campaign.messages_out);
                    Metrics::add(&campaign.bytes_out, size);
                    if is_state {
                        Metrics::add(&campaign.state_bytes_out, size);
                    }
                }
            }
            Err(SendFailed) => {
                if !self.outbox.abort().is_cancelled() {
                    self.connection_lost();
                }
            }
        }
    }

    /// Sends one message, abandoning it if the client is declared too slow meanwhile (the bytes
    /// already handed to the socket stay consistent: tungstenite keeps whole frames buffered).
    async fn send(&mut self, message: Message) -> Result<(), SendFailed> {
        tokio::select! {
            biased;
            sent = self.sink.send(message) => sent.map_err(|_| SendFailed),
            _ = self.outbox.abort().cancelled() => Err(SendFailed),
        }
    }

    /// Writes out what [`Self::send_counted`] queued, abandoning it like [`Self::send`].
    async fn flush(&mut self) -> Result<(), SendFailed> {
        tokio::select! {
            biased;
            flushed = self.sink.flush() => flushed.map_err(|_| SendFailed),
            _ = self.outbox.abort().cancelled() => Err(SendFailed),
        }
    }

    fn connection_lost(&self) {
        self.outbox.request_close(CloseRequest {
            code: close_code::ERROR,
            reason_code: "connection_lost".into(),
            message: "the connection failed".into(),
            discard_pending: true,
        });
    }

    async fn send_close(&mut self, close: CloseRequest) {
        let frame = CloseFrame {
            code: close.code,
            reason: close.reason().into(),
        };
        let grace = self.shared.config.session.close_grace;
        let _ = tokio::time::timeout(grace, self.sink.send(Message::Close(Some(frame)))).await;
    }
}

/// Payload bytes of a message (what the byte counters count).
fn message_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
        Message::Close(frame) => frame.as_ref().map_or(0, |f| 2 + f.reason.len()),
    }
}

/// A fresh resume token: 128 random bits, base64url. Unguessable, and useless without a valid
/// token of the same account.
fn new_resume_token() -> Arc<str> {
    use base64::Engine as _;
    let mut bytes = [0u8; 16];
    // The OS's generator does not fail on the platforms we run on; were it to, the token would
    // still need the account's own token to be used.
    if getrandom::fill(&mut bytes).is_err() {
        tracing::warn!("no OS randomness for a resume token");
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(bytes)
        .into()
}
