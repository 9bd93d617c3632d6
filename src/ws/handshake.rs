//! The client role's opening handshake: tungstenite sends the request and checks the answer,
//! over a transport wrapped so that it never reads past the end of the server's `101`; the
//! connection then becomes ours ([`split`]) with whatever the server sent after it. Building the
//! request (URL, headers, credentials) and explaining a refusal are the endpoint's business.
//! The permessage-deflate offer is added here and the server's answer checked.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::deflate::{DeflateOptions, Negotiated};
use super::{Limits, Role, split};
use crate::conn::{MsgSink, MsgStream};

/// Why a client handshake failed.
#[derive(Debug)]
pub(crate) enum ClientFailure {
    /// tungstenite's error (an HTTP answer other than 101 is `WsError::Http`, with its body).
    Ws(WsError),
    /// The server's `Sec-WebSocket-Extensions` answer is one the offer does not allow.
    Extension(String),
}

/// A finished client handshake: the two halves, the server's answer, and permessage-deflate if
/// it was agreed on.
pub(crate) type Connected = (MsgStream, MsgSink, Response, Option<Negotiated>);

/// Run the handshake for `request` over `stream` (connected, TLS done), offering
/// permessage-deflate as `deflate` says unless the request already names extensions (`-H`).
pub(crate) async fn client<S>(
    stream: S,
    mut request: Request,
    limits: Limits,
    deflate: &DeflateOptions,
) -> Result<Connected, ClientFailure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let name = http::header::SEC_WEBSOCKET_EXTENSIONS;
    let offered = deflate.enabled && !request.headers().contains_key(&name);
    if offered {
        let offer = http::HeaderValue::from_str(&deflate.offer()).expect("the offer is ASCII");
        request.headers_mut().insert(&name, offer);
    }
    let (ws, response) = tokio_tungstenite::client_async_with_config(
        request,
        HeadLimited::new(stream),
        Some(config(&limits)),
    )
    .await
    .map_err(ClientFailure::Ws)?;
    let answer: Vec<&str> = response
        .headers()
        .get_all(&name)
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{fffd}"))
        .collect();
    let negotiated = match (offered, answer.is_empty()) {
        (_, true) => None,
        (true, false) => deflate
            .accept_answer(&answer)
            .map_err(ClientFailure::Extension)?,
        // Extensions named with -H are the user's business; wsbridge reads frames as they come.
        (false, false) => None,
    };
    // From here on the connection is ours, with what tungstenite left unread.
    let (stream, leftover) = ws.into_inner().into_parts();
    let (stream, sink) = split(stream, leftover, Role::Client, limits, negotiated.as_ref());
    Ok((stream, sink, response, negotiated))
}

/// tungstenite's configuration for the handshake (it reads only the answer's head).
fn config(limits: &Limits) -> WebSocketConfig {
    let max = limits.max_message;
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(32 * 1024)
        .max_write_buffer_size(max.saturating_mul(2).max(1 << 20))
        .max_message_size(Some(max))
        .max_frame_size(Some(limits.max_frame))
}

/// Wraps the transport during tungstenite's client handshake so that it never reads past the
/// end of a `101` response: whatever the server sent after it (its first frames) stays here for
/// [`split`]. Any other response passes through untouched (its body goes into the error).
struct HeadLimited<S> {
    inner: S,
    buf: Vec<u8>,
    start: usize,
    /// `Some(end)`: deliver up to `end`, the end of a 101 head; `None` with `passthrough`: all.
    end: Option<usize>,
    passthrough: bool,
}

impl<S> HeadLimited<S> {
    fn new(inner: S) -> Self {
        HeadLimited {
            inner,
            buf: Vec::new(),
            start: 0,
            end: None,
            passthrough: false,
        }
    }

    /// After the handshake: the transport and the bytes read past the response head.
    fn into_parts(mut self) -> (S, Vec<u8>) {
        let rest = self.buf.split_off(self.start.min(self.buf.len()));
        (self.inner, rest)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadLimited<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            let limit = match (this.end, this.passthrough) {
                (Some(end), _) => end,
                (None, true) => this.buf.len(),
                (None, false) => {
                    // Still collecting the head.
                    if let Some(i) = memchr::memmem::find(&this.buf, b"\r\n\r\n") {
                        if this.buf.get(9..12) == Some(b"101") {
                            this.end = Some(i + 4);
                        } else {
                            this.passthrough = true;
                        }
                        continue;
                    }
                    if (this.buf.len() >= 12 && &this.buf[9..12] != b"101")
                        || this.buf.len() > 64 * 1024
                    {
                        this.passthrough = true;
                        continue;
                    }
                    let mut tmp = [0u8; 2048];
                    let mut rb = ReadBuf::new(&mut tmp);
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
                    if rb.filled().is_empty() {
                        this.passthrough = true;
                    }
                    this.buf.extend_from_slice(rb.filled());
                    continue;
                }
            };
            if this.start < limit {
                let n = out.remaining().min(limit - this.start);
                out.put_slice(&this.buf[this.start..this.start + n]);
                this.start += n;
                return Poll::Ready(Ok(()));
            }
            if this.end.is_some() {
                // The head was delivered; tungstenite reads no further (EOF if it tried).
                return Poll::Ready(Ok(()));
            }
            return Pin::new(&mut this.inner).poll_read(cx, out);
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadLimited<S> {
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
}
