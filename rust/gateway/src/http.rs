//! The HTTP side of the port: reading a request head before deciding between a WebSocket upgrade
//! and a plain answer (`/metrics`, `/health`, errors).
//!
//! How it works: [`read_head`] reads from the socket until the blank line ending the head (bounded
//! in size; the caller bounds it in time) and parses the few things routing needs. The bytes read
//! are kept, and [`PrefixedStream`] replays them before the socket's, so the WebSocket handshake
//! then reads the request as if nobody had touched it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Longest request head accepted.
pub(crate) const MAX_HEAD_BYTES: usize = 8 * 1024;

/// What routing needs from a request head.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RequestHead {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// `Upgrade: websocket` was present.
    pub websocket: bool,
    /// Subprotocols offered in `Sec-WebSocket-Protocol`, in the client's order of preference.
    pub subprotocols: Vec<String>,
}

/// Why a head could not be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// The socket failed.
    Io,
    /// The peer closed before finishing the head.
    Eof,
    TooLarge,
    Malformed(&'static str),
}

/// Reads and parses a request head; returns it with every byte read so far.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(RequestHead, Vec<u8>), HeadError> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Eof);
        }
        // Only the new bytes (plus 3 of overlap) can complete the terminator.
        let search_from = buffer.len().saturating_sub(3);
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&buffer[search_from..], b"\r\n\r\n") {
            let head_end = search_from + end;
            let head = parse_head(&buffer[..head_end])?;
            return Ok((head, buffer));
        }
        if buffer.len() > MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(bytes: &[u8]) -> Result<RequestHead, HeadError> {
    let text = std::str::from_utf8(bytes).map_err(|_| HeadError::Malformed("not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().ok_or(HeadError::Malformed("empty"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed("bad request line"));
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Err(HeadError::Malformed("bad request line"));
    }
    let path = target.split(['?', '#']).next().unwrap_or("/").to_string();
    let mut head = RequestHead {
        method: method.to_string(),
        path,
        ..RequestHead::default()
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(HeadError::Malformed("bad header line"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("upgrade") {
            head.websocket |= value
                .split(',')
                .any(|v| v.trim().eq_ignore_ascii_case("websocket"));
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            head.subprotocols.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
            );
        }
    }
    Ok(head)
}

/// Writes a complete `Connection: close` HTTP/1.1 response and shuts the write side.
pub(crate) async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    content_type: &str,
    body: &str,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
        body.len()
    );
    if status == 426 {
        response.push_str("Upgrade: websocket\r\n");
    }
    response.push_str("\r\n");
    response.push_str(body);
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// A stream that first yields bytes already read from the socket, then the socket's.
pub(crate) struct PrefixedStream<S> {
    prefix: Vec<u8>,
    position: usize,
    inner: S,
}

impl<S> PrefixedStream<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        PrefixedStream {
            prefix,
            position: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for PrefixedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.position < this.prefix.len() {
            let rest = &this.prefix[this.position..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.position += n;
            if this.position == this.prefix.len() {
                // Free the head once replayed; the connection may live for hours.
                this.prefix = Vec::new();
                this.position = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PrefixedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parses_an_upgrade_request_and_keeps_every_byte() {
        let request = b"GET /ws?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: nexus.binary.v1, nexus.json.v1\r\n\r\nEXTRA";
        let mut reader = &request[..];
        let (head, bytes) = read_head(&mut reader).await.unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.path, "/ws");
        assert!(head.websocket);
        assert_eq!(head.subprotocols, ["nexus.binary.v1", "nexus.json.v1"]);
        assert_eq!(bytes, request);

        let mut replay = PrefixedStream::new(bytes, &b"MORE"[..]);
        let mut all = Vec::new();
        replay.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, [&request[..], b"MORE"].concat());
    }

    #[tokio::test]
    async fn refuses_garbage_and_oversized_heads() {
        for garbage in [
            &b"\x00\x01\x02\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET / HTTP/1.1\r\nno-colon\r\n\r\n",
            b"GET relative HTTP/1.1\r\n\r\n",
        ] {
            let mut reader = garbage;
            assert!(
                matches!(read_head(&mut reader).await, Err(HeadError::Malformed(_))),
                "{garbage:?}"
            );
        }
        let mut eof = &b"GET / HTTP/1.1\r\n"[..];
        assert!(matches!(read_head(&mut eof).await, Err(HeadError::Eof)));
        let huge = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 10_000]].concat();
        let mut reader = &huge[..];
        assert!(matches!(
            read_head(&mut reader).await,
            Err(HeadError::TooLarge)
        ));
    }
}
