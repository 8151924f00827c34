//! The WebSocket of a `NexusClient`, off the main thread.
//!
//! How it works: [`Link::open`] checks the URL, then starts one thread running a single-threaded
//! tokio runtime that owns the socket (tokio-tungstenite, as `nexus_client::transport` does). The
//! node and the thread talk through two queues:
//! - frames to send and the close request go down a tokio channel (its sender never blocks and the
//!   socket task can `await` it next to the socket);
//! - what happened (open with the negotiated encoding, each received frame, the close) comes up a
//!   crossbeam channel that the node drains without blocking in `_process`.
//!
//! The thread ends on its own when the connection closes; [`Link::close`] asks it to close
//! politely, [`Link::abandon`] drops the socket without a close handshake (as a lost network
//! would: the server keeps the session for a resume) and lets the thread end by itself, and
//! dropping the link closes and joins it, so a freed node leaves no thread behind.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use futures_util::{SinkExt, StreamExt};
use nexus_client::{ClientError, Encoding, Frame};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

/// Longest wait for the server's answer to our close frame before the socket is dropped; it bounds
/// how long freeing a node can block the main thread.
const CLOSE_GRACE: Duration = Duration::from_millis(500);
/// Longest wait, when the thread ends, for runtime work that cannot be cancelled (a host-name
/// lookup in progress): the thread must not outlive its node for long.
const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(100);

/// What the node asks of the socket thread.
enum Command {
    Send(Frame),
    Close,
    /// Drop the socket without a close frame.
    Abort,
}

/// The close frame the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerClose {
    /// The close code (1005 when the frame had none).
    pub code: u16,
    /// The reason text: `"<code>: <message>"` by the protocol, possibly empty.
    pub reason: String,
}

/// What the socket thread reports to the node, in order.
#[derive(Debug)]
pub enum LinkEvent {
    /// The WebSocket is open; the server accepted this state-stream encoding.
    Open(Encoding),
    /// A data frame from the server.
    Frame(Frame),
    /// The connection is over (the last event). `error` is set when it never opened or broke.
    Closed {
        /// For people: the server's close reason, or what failed.
        reason: String,
        /// Why it failed, when it did.
        error: Option<ClientError>,
        /// Set when the server closed the connection with a close frame.
        server_close: Option<ServerClose>,
    },
}

/// One connection's thread and queues.
pub struct Link {
    commands: UnboundedSender<Command>,
    events: Receiver<LinkEvent>,
    thread: Option<JoinHandle<()>>,
}

impl Link {
    /// Starts connecting to `url`, offering `encoding`'s subprotocol; the connection attempt
    /// (including the TCP and WebSocket handshakes) gives up after `connect_timeout`. Fails at
    /// once, without a thread, on a malformed URL.
    pub fn open(
        url: &str,
        encoding: Encoding,
        connect_timeout: Duration,
    ) -> Result<Link, ClientError> {
        let mut request = url
            .into_client_request()
            .map_err(|e| ClientError::new("invalid_url", format!("{url:?}: {e}")))?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(encoding.subprotocol()),
        );
        let (command_tx, command_rx) = unbounded_channel();
        let (event_tx, event_rx) = crossbeam_channel::unbounded();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::new("internal_error", format!("no tokio runtime: {e}")))?;
        let thread = std::thread::Builder::new()
            .name("nexus-client".into())
            .spawn(move || {
                runtime.block_on(run(request, connect_timeout, command_rx, event_tx));
                runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
            })
            .map_err(|e| ClientError::new("internal_error", format!("no network thread: {e}")))?;
        Ok(Link {
            commands: command_tx,
            events: event_rx,
            thread: Some(thread),
        })
    }

    /// Queues a frame for sending (dropped silently once the connection is closed: the node hears
    /// about the close through [`LinkEvent::Closed`]).
    pub fn send(&self, frame: Frame) {
        let _ = self.commands.send(Command::Send(frame));
    }

    /// Asks the thread to send the queued frames, then close the WebSocket politely.
    pub fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }

    /// Drops the socket without a close handshake and lets the thread end by itself, without
    /// waiting for it (nothing of it is needed any more).
    pub fn abandon(mut self) {
        let _ = self.commands.send(Command::Abort);
        // Dropping the handle detaches the thread; `Drop` has nothing left to join.
        self.thread.take();
    }

    /// The next event, if one is waiting.
    pub fn try_event(&self) -> Option<LinkEvent> {
        self.events.try_recv().ok()
    }

    /// Closes (if still open) and waits for the thread to end: at most about [`CLOSE_GRACE`]
    /// plus [`RUNTIME_SHUTDOWN`] when the server does not answer.
    pub fn shut_down(&mut self) {
        self.close();
        if let Some(thread) = self.thread.take() {
            // The thread catches nothing that could panic; a panic is already reported by Rust.
            let _ = thread.join();
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The socket thread's whole life: connect, relay, close. Reports exactly one `Closed`.
async fn run(
    request: Request,
    connect_timeout: Duration,
    mut commands: UnboundedReceiver<Command>,
    events: Sender<LinkEvent>,
) {
    let closed = |reason: String, error: Option<ClientError>| LinkEvent::Closed {
        reason,
        error,
        server_close: None,
    };
    let url = request.uri().to_string();
    let connecting = tokio::time::timeout(
        connect_timeout,
        tokio_tungstenite::connect_async_with_config(
            request,
            Some(nexus_client::transport::websocket_config()),
            true,
        ),
    );
    let outcome = tokio::select! {
        outcome = connecting => outcome,
        () = until_close_requested(&mut commands) => {
            let _ = events.send(closed("connection attempt cancelled".into(), None));
            return;
        }
    };
    let (mut socket, response) = match outcome {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            let error = ClientError::new("connect_failed", format!("{url}: {e}"));
            let _ = events.send(closed(error.to_string(), Some(error)));
            return;
        }
        Err(_) => {
            let error = ClientError::new(
                "timeout",
                format!("connecting to {url} took longer than {connect_timeout:?}"),
            );
            let _ = events.send(closed(error.to_string(), Some(error)));
            return;
        }
    };
    // The server answers with the subprotocol it accepted; without one the stream is JSON.
    let encoding = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .and_then(Encoding::from_subprotocol)
        .unwrap_or(Encoding::Json);
    if events.send(LinkEvent::Open(encoding)).is_err() {
        return; // the node is gone
    }
    let end = loop {
        tokio::select! {
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let _ = events.send(LinkEvent::Frame(Frame::Text(text.as_str().to_owned())));
                }
                Some(Ok(Message::Binary(bytes))) => {
                    let _ = events.send(LinkEvent::Frame(Frame::Binary(bytes.to_vec())));
                }
                Some(Ok(Message::Close(frame))) => {
                    // tungstenite answers the close itself; drain until the socket ends.
                    let _ = tokio::time::timeout(CLOSE_GRACE, drain(&mut socket)).await;
                    break LinkEvent::Closed {
                        reason: close_reason(frame.as_ref()),
                        error: None,
                        server_close: Some(ServerClose {
                            code: frame.as_ref().map_or(1005, |f| u16::from(f.code)),
                            reason: frame.map(|f| f.reason.as_str().to_owned()).unwrap_or_default(),
                        }),
                    };
                }
                Some(Ok(_)) => {} // pings are answered by tungstenite
                Some(Err(e)) => {
                    let error = ClientError::new("connection_lost", format!("connection failed: {e}"));
                    break closed(error.to_string(), Some(error));
                }
                None => {
                    let error = ClientError::new("connection_lost", "the connection ended without a close frame");
                    break closed(error.to_string(), Some(error));
                }
            },
            command = commands.recv() => {
                // Everything the node queued since goes out in one flush. `None` from `recv()`
                // means the node dropped its sender: close as well.
                let mut close = command.is_none();
                let mut pending = command;
                let mut sent = Ok(());
                let mut aborted = false;
                while let Some(command) = pending.take() {
                    match command {
                        Command::Abort => {
                            // Dropping the socket (when the loop ends) closes the TCP connection.
                            aborted = true;
                        }
                        Command::Send(frame) => {
                            sent = socket.feed(to_message(frame)).await;
                            if sent.is_err() {
                                break;
                            }
                            pending = match commands.try_recv() {
                                Ok(next) => Some(next),
                                Err(TryRecvError::Disconnected) => {
                                    close = true;
                                    None
                                }
                                Err(TryRecvError::Empty) => None,
                            };
                        }
                        Command::Close => close = true,
                    }
                }
                if aborted {
                    break closed("connection dropped by the client".into(), None);
                }
                if sent.is_ok() {
                    sent = socket.flush().await;
                }
                if let Err(e) = sent {
                    let error = ClientError::new("connection_lost", format!("send failed: {e}"));
                    break closed(error.to_string(), Some(error));
                }
                if close {
                    let farewell = CloseFrame {
                        code: CloseCode::Normal,
                        reason: Utf8Bytes::from_static("client disconnected"),
                    };
                    let _ = tokio::time::timeout(CLOSE_GRACE, async {
                        let _ = socket.close(Some(farewell)).await;
                        drain(&mut socket).await;
                    })
                    .await;
                    break closed("disconnected by the client".into(), None);
                }
            }
        }
    };
    let _ = events.send(end);
}

/// Resolves when the node asks to close (or drops its sender); frames queued before the socket is
/// open are dropped (the node sends nothing before it hears `Open`).
async fn until_close_requested(commands: &mut UnboundedReceiver<Command>) {
    loop {
        match commands.recv().await {
            Some(Command::Send(_)) => {}
            Some(Command::Close | Command::Abort) | None => return,
        }
    }
}

/// Reads until the socket ends (completes the close handshake).
async fn drain<S>(socket: &mut S)
where
    S: StreamExt + Unpin,
{
    while socket.next().await.is_some() {}
}

fn to_message(frame: Frame) -> Message {
    match frame {
        Frame::Text(text) => Message::Text(Utf8Bytes::from(text)),
        Frame::Binary(bytes) => Message::Binary(Bytes::from(bytes)),
    }
}

/// The server's close reason (`"<code>: <message>"` by the protocol), or the close code.
fn close_reason(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(frame) if !frame.reason.is_empty() => frame.reason.as_str().to_owned(),
        Some(frame) => format!("closed by the server (code {})", u16::from(frame.code)),
        None => "closed by the server".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::handshake::server::{
        ErrorResponse, Request as ServerRequest, Response as ServerResponse,
    };

    use super::*;

    /// Waits (bounded) for the next event of a link.
    fn next_event(link: &Link) -> LinkEvent {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(event) = link.try_event() {
                return event;
            }
            assert!(Instant::now() < deadline, "no link event within 10 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_malformed_url_fails_at_once() {
        let error = Link::open("not a url", Encoding::Binary, Duration::from_secs(1))
            .err()
            .expect("refused");
        assert_eq!(error.code, "invalid_url");
    }

    #[test]
    fn a_refused_connection_reports_connect_failed() {
        // Bind then drop a listener: its port is (almost certainly) closed now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let link = Link::open(
            &format!("ws://127.0.0.1:{port}/ws"),
            Encoding::Json,
            Duration::from_secs(5),
        )
        .unwrap();
        match next_event(&link) {
            LinkEvent::Closed { error: Some(e), .. } => assert_eq!(e.code, "connect_failed"),
            other => panic!("expected a failed close, got {other:?}"),
        }
    }

    /// Answers a WebSocket handshake with the binary subprotocol.
    #[allow(clippy::result_large_err)] // the signature tungstenite's callback requires
    fn accept_binary(
        _: &ServerRequest,
        mut response: ServerResponse,
    ) -> Result<ServerResponse, ErrorResponse> {
        response.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(nexus_protocol::SUBPROTOCOL_BINARY),
        );
        Ok(response)
    }

    /// A WebSocket server that accepts the binary subprotocol and echoes text frames.
    fn echo_server() -> (u16, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                let (stream, _) = listener.accept().await.unwrap();
                let mut socket = tokio_tungstenite::accept_hdr_async(stream, accept_binary)
                    .await
                    .unwrap();
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() && socket.send(message).await.is_err() {
                        break;
                    }
                }
            });
        });
        (port, thread)
    }

    #[test]
    fn frames_go_both_ways_and_closing_joins_the_thread() {
        let (port, server) = echo_server();
        let mut link = Link::open(
            &format!("ws://127.0.0.1:{port}/ws"),
            Encoding::Binary,
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(matches!(
            next_event(&link),
            LinkEvent::Open(Encoding::Binary)
        ));
        link.send(Frame::Text("one".into()));
        link.send(Frame::Text("two".into()));
        for expected in ["one", "two"] {
            match next_event(&link) {
                LinkEvent::Frame(Frame::Text(text)) => assert_eq!(text, expected),
                other => panic!("expected the echo of {expected}, got {other:?}"),
            }
        }
        link.close();
        match next_event(&link) {
            LinkEvent::Closed {
                error: None,
                reason,
                server_close: None,
            } => {
                assert_eq!(reason, "disconnected by the client")
            }
            other => panic!("expected a clean close, got {other:?}"),
        }
        link.shut_down();
        assert!(link.thread.is_none());
        server.join().unwrap();
    }
}
