//! A WebSocket transport (tokio-tungstenite) driving a [`ClientSession`], with optional network
//! emulation on send and receive.
//!
//! How it works: [`connect_with`] opens the socket (offering the encoding's subprotocol), sends
//! the join and runs until the welcome. [`Client::run_until`] then loops: frames due from the
//! receive delay line go into the session, the session updates at the frame rate, its frames go
//! through the send delay line to the socket; between those it waits on the socket, the next frame
//! time and the next due emulated delivery. With perfect links the delay lines pass everything
//! straight through.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nexus_protocol::{SUBPROTOCOL_BINARY, SUBPROTOCOL_JSON, names};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::error::ClientError;

/// The WebSocket settings of a client connection. The read buffer is 4 KiB instead of
/// tungstenite's 128 KiB: it zero-fills up to that much free space before every read, so with
/// the default a client receiving 20 small states a second spent most of its time clearing
/// memory (states and events are mostly under 4 KiB; larger messages take a few reads and still
/// arrive whole).
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024)
}
use crate::netem::{DelayLine, LinkConditions};
use crate::session::{ClientSession, Controls, Phase, SessionConfig, SessionEvent};
use crate::wire::{Encoding, Frame};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Second byte of a binary input frame (PROTOCOL.md, "Binary client frames").
const BINARY_KIND_INPUTS: u8 = 0x81;

/// How to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// The session (campaign, token, encoding, ...).
    pub session: SessionConfig,
    /// Time allowed to connect and be welcomed (default 10 s).
    pub join_timeout: Duration,
    /// Emulated conditions of frames sent (loss applies to input frames only).
    pub send_link: LinkConditions,
    /// Emulated conditions of frames received (loss applies to state messages only).
    pub receive_link: LinkConditions,
    /// Seed of the emulation's randomness.
    pub seed: u64,
    /// Session updates per second while running (default 60).
    pub frame_rate: f64,
    /// Acknowledge each received state at once rather than with the next update (default
    /// false). Bots running at a low frame rate use it to keep acks as prompt as a real client's.
    pub immediate_acks: bool,
    /// TLS settings for `wss://` URLs, e.g. from [`tls_trusting`]; `wss://` needs them.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// TLS settings trusting the PEM certificates in `pem_file` (e.g. a gateway's self-signed
/// certificate, or a private CA), and nothing else.
pub fn tls_trusting(pem_file: &Path) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let fail =
        |why: String| ClientError::new("invalid_tls", format!("{}: {why}", pem_file.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pem_file).map_err(|e| fail(e.to_string()))? {
        roots
            .add(cert.map_err(|e| fail(e.to_string()))?)
            .map_err(|e| fail(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(fail("no PEM certificate in it".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl ConnectOptions {
    /// Defaults for `session`: perfect links, 60 updates per second.
    pub fn new(session: SessionConfig) -> Self {
        ConnectOptions {
            session,
            join_timeout: Duration::from_secs(10),
            send_link: LinkConditions::PERFECT,
            receive_link: LinkConditions::PERFECT,
            seed: 1,
            frame_rate: 60.0,
            immediate_acks: false,
            tls: None,
        }
    }
}

/// A connected, welcomed client.
pub struct Client {
    socket: Socket,
    session: ClientSession,
    origin: Instant,
    send_line: DelayLine<Frame>,
    receive_line: DelayLine<Frame>,
    frame_interval: Duration,
    immediate_acks: bool,
    closed: bool,
}

/// Connects to `url`, joins `campaign` with `token` and waits for the welcome (default options).
pub async fn connect(
    url: &str,
    campaign: &str,
    token: &str,
    encoding: Encoding,
) -> Result<Client, ClientError> {
    let mut config = SessionConfig::new(campaign, token);
    config.encoding = encoding;
    connect_with(url, ConnectOptions::new(config)).await
}

/// Connects to `url` with `options` and waits for the welcome.
pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<Client, ClientError> {
    options
        .send_link
        .validate()
        .and(options.receive_link.validate())
        .map_err(|m| ClientError::new("invalid_config", m))?;
    if !(options.frame_rate.is_finite() && options.frame_rate >= 1.0) {
        return Err(ClientError::new(
            "invalid_config",
            format!("frame rate must be at least 1, got {}", options.frame_rate),
        ));
    }
    let mut request = url
        .into_client_request()
        .map_err(|e| ClientError::new("invalid_url", format!("{url}: {e}")))?;
    let subprotocol = match options.session.encoding {
        Encoding::Binary => SUBPROTOCOL_BINARY,
        Encoding::Json => SUBPROTOCOL_JSON,
    };
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(subprotocol),
    );
    let deadline = Instant::now() + options.join_timeout;
    let connector = match (request.uri().scheme_str(), &options.tls) {
        (Some("wss"), Some(tls)) => Some(Connector::Rustls(tls.clone())),
        (Some("wss"), None) => {
            return Err(ClientError::new(
                "invalid_config",
                format!("{url}: wss:// needs ConnectOptions::tls (the certificates to trust)"),
            ));
        }
        _ => None,
    };
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(websocket_config()),
        true,
        connector,
    );
    let (socket, response) = tokio::time::timeout_at(deadline, connecting)
        .await
        .map_err(|_| ClientError::new("timeout", format!("connecting to {url} timed out")))?
        .map_err(|e| ClientError::new("connect_failed", format!("{url}: {e}")))?;
    let mut session_config = options.session;
    // The server answers with the subprotocol it accepted; without one the stream is JSON.
    let accepted = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .and_then(Encoding::from_subprotocol);
    session_config.encoding = accepted.unwrap_or(Encoding::Json);
    tracing::debug!(url, encoding = session_config.encoding.name(), "connected");
    let mut client = Client {
        socket,
        session: ClientSession::new(session_config),
        origin: Instant::now(),
        send_line: DelayLine::new(options.send_link, options.seed),
        receive_line: DelayLine::new(options.receive_link, options.seed ^ 0x5EED),
        frame_interval: Duration::from_secs_f64(1.0 / options.frame_rate),
        immediate_acks: options.immediate_acks,
        closed: false,
    };
    let now = client.now();
    client.session.start(now);
    let still = Controls::default();
    loop {
        if client.session.phase() == Phase::Active {
            return Ok(client);
        }
        let refusal = client
            .session
            .poll_events()
            .into_iter()
            .find_map(|e| match e {
                SessionEvent::ServerError { code, message } => Some(format!("{code}: {message}")),
                SessionEvent::Closed { reason } => Some(reason),
                _ => None,
            });
        if let Some(reason) = refusal {
            tracing::debug!(url, "join refused: {reason}");
            return Err(ClientError::new("join_refused", reason));
        }
        if Instant::now() >= deadline {
            return Err(ClientError::new(
                "timeout",
                format!("no welcome from {url} within {:?}", options.join_timeout),
            ));
        }
        let step_until = (Instant::now() + client.frame_interval).min(deadline);
        client.run_until(step_until, |_, _| still).await?;
    }
}

impl Client {
    /// Seconds since the connection opened (the session's clock).
    pub fn now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }

    /// The session.
    pub fn session(&self) -> &ClientSession {
        &self.session
    }

    /// The session, to interact or leave.
    pub fn session_mut(&mut self) -> &mut ClientSession {
        &mut self.session
    }

    /// Whether the connection closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Runs for `duration` with fixed `controls`.
    pub async fn step(
        &mut self,
        controls: &Controls,
        duration: Duration,
    ) -> Result<(), ClientError> {
        let controls = *controls;
        self.run_until(Instant::now() + duration, move |_, _| controls)
            .await
    }

    /// Runs until `deadline`; `controls(session, now)` gives the controls of each update.
    /// Returns early (Ok) when the connection closes.
    pub async fn run_until(
        &mut self,
        deadline: Instant,
        mut controls: impl FnMut(&ClientSession, f64) -> Controls,
    ) -> Result<(), ClientError> {
        let mut next_frame = Instant::now();
        while !self.closed {
            let now = self.now();
            while let Some(frame) = self.receive_line.pop_due(now) {
                // Undecodable frames are counted by the session; the stream goes on.
                let _ = self.session.receive(now, &frame);
            }
            if self.immediate_acks {
                self.session.acknowledge_now();
            }
            if Instant::now() >= next_frame {
                let wanted = controls(&self.session, now);
                self.session.update(now, &wanted);
                next_frame += self.frame_interval;
                if next_frame < Instant::now() {
                    next_frame = Instant::now() + self.frame_interval;
                }
            }
            for frame in self.session.drain_outgoing() {
                let droppable = is_input_frame(&frame);
                self.send_line.push(now, frame, droppable);
            }
            // Everything due goes out in one write (an ack and an input batch together).
            let mut fed = false;
            while let Some(frame) = self.send_line.pop_due(self.now()) {
                self.feed_frame(frame).await?;
                fed = true;
            }
            if fed {
                self.flush().await?;
            }
            if Instant::now() >= deadline {
                return Ok(());
            }
            let mut wake = next_frame.min(deadline);
            for due in [self.receive_line.next_due(), self.send_line.next_due()]
                .into_iter()
                .flatten()
            {
                wake = wake.min(self.origin + Duration::from_secs_f64(due.max(0.0)));
            }
            tokio::select! {
                message = self.socket.next() => self.on_message(message),
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        Ok(())
    }

    fn on_message(
        &mut self,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) {
        let now = self.now();
        let frame = match message {
            Some(Ok(Message::Text(text))) => Frame::Text(text.as_str().to_owned()),
            Some(Ok(Message::Binary(bytes))) => Frame::Binary(bytes.to_vec()),
            Some(Ok(Message::Close(close))) => {
                let reason = close.map_or_else(
                    || "closed by the server".to_owned(),
                    |c| c.reason.as_str().to_owned(),
                );
                self.close_with(&reason);
                return;
            }
            Some(Ok(_)) => return, // pings are answered by tungstenite
            Some(Err(err)) => {
                self.close_with(&format!("connection failed: {err}"));
                return;
            }
            None => {
                self.close_with("connection closed");
                return;
            }
        };
        let droppable = is_state_frame(&frame);
        let len = frame.len();
        if !self.receive_line.push(now, frame, droppable) {
            self.session.note_lost_frame(len);
        }
    }

    fn close_with(&mut self, reason: &str) {
        tracing::debug!("connection closed: {reason}");
        self.closed = true;
        self.session.on_closed(reason);
    }

    /// Queues a frame on the socket; [`Self::flush`] writes it out.
    async fn feed_frame(&mut self, frame: Frame) -> Result<(), ClientError> {
        let message = match frame {
            Frame::Text(text) => Message::Text(Utf8Bytes::from(text)),
            Frame::Binary(bytes) => Message::Binary(Bytes::from(bytes)),
        };
        let fed = self.socket.feed(message).await;
        self.send_result(fed)
    }

    async fn flush(&mut self) -> Result<(), ClientError> {
        let flushed = self.socket.flush().await;
        self.send_result(flushed)
    }

    fn send_result(
        &mut self,
        result: Result<(), tokio_tungstenite::tungstenite::Error>,
    ) -> Result<(), ClientError> {
        result.map_err(|err| {
            self.close_with(&format!("send failed: {err}"));
            ClientError::new("closed", format!("send failed: {err}"))
        })
    }

    /// Leaves the campaign and closes the connection politely.
    pub async fn close(mut self) {
        self.session.leave();
        for frame in self.session.drain_outgoing() {
            if self.feed_frame(frame).await.is_err() {
                return;
            }
        }
        if self.flush().await.is_err() {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.socket.close(None)).await;
    }
}

/// Whether a received frame belongs to the (latest-wins, losable) state stream.
pub fn is_state_frame(frame: &Frame) -> bool {
    match frame {
        Frame::Binary(_) => true,
        // The type leads every envelope the server writes; a bounded look avoids scanning state.
        Frame::Text(text) => {
            let head = &text.as_bytes()[..text.len().min(64)];
            let needle = names::WORLD_STATE.as_bytes();
            head.windows(needle.len()).any(|w| w == needle)
        }
    }
}

/// Whether a sent frame carries inputs (the only frames send-loss emulation may drop).
pub fn is_input_frame(frame: &Frame) -> bool {
    match frame {
        Frame::Binary(bytes) => bytes.get(1) == Some(&BINARY_KIND_INPUTS),
        Frame::Text(text) => text.contains(names::CLIENT_INPUT),
    }
}
