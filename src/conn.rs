//! The two connection shapes every endpoint yields and the relay consumes: byte streams
//! ([`ByteConn`]) and message streams ([`MsgConn`]), with what is known about an accepted
//! client ([`SessionInfo`]). No I/O here: only the types both sides agree on.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

pub type BoxReader = Box<dyn AsyncRead + Send + Unpin>;
pub type BoxWriter = Box<dyn AsyncWrite + Send + Unpin>;
pub type MsgStream = Pin<Box<dyn Stream<Item = std::result::Result<Message, WsError>> + Send>>;
pub type MsgSink = Pin<Box<dyn Sink<Message, Error = WsError> + Send>>;

/// A byte-stream connection (TCP, Unix socket, stdio, a child's pipes), in two halves.
pub struct ByteConn {
    pub reader: BoxReader,
    pub writer: BoxWriter,
    /// Who is on the other end, for logs.
    pub label: String,
    /// What to say when the reader ends (default: Close 1000, and replies are still read); a
    /// child's exit status decides it.
    pub on_eof: Option<Pin<Box<dyn Future<Output = EofNote> + Send>>>,
    /// Kept alive as long as the connection (e.g. terminates a child process when dropped).
    pub guard: Option<Box<dyn std::any::Any + Send>>,
    /// Messages to send besides what `reader` yields (a child's stderr lines under
    /// `--exec-stderr client`); the input ends when both have ended.
    pub side: Option<tokio::sync::mpsc::Receiver<Message>>,
}

/// What a byte stream says when its input ends.
pub struct EofNote {
    /// The Close to send.
    pub close: CloseFrame,
    /// Whether replies can still be delivered (false: a program that has exited).
    pub still_reading: bool,
}

impl ByteConn {
    pub fn new(reader: BoxReader, writer: BoxWriter, label: String) -> ByteConn {
        ByteConn {
            reader,
            writer,
            label,
            on_eof: None,
            guard: None,
            side: None,
        }
    }
}

/// A message connection (a WebSocket, a broadcast room), in two halves.
pub struct MsgConn {
    pub stream: MsgStream,
    pub sink: MsgSink,
    pub label: String,
    /// A real WebSocket (pings are passed between two of them), not an in-process endpoint.
    pub websocket: bool,
    /// The handshake's round trip, where it was measured (client connections): `--linger auto`
    /// scales its quiet times by it.
    pub rtt: Option<std::time::Duration>,
    /// A peer's Close is not answered by the connection itself until the relay sends the answer
    /// (a `Message::Close`) or reads the stream again: meanwhile data may still be sent (server
    /// role, so a backend can finish before the client's Close is answered).
    pub holds_close: bool,
}

/// What an endpoint yields.
pub enum Conn {
    Bytes(ByteConn),
    Messages(MsgConn),
    /// `mirror:`: the relay answers the other side with what it sends, in order. Done in the
    /// relay rather than as a channel so that each echo is written before the next message is
    /// read: a peer's Close is then read only after every earlier message was echoed (tungstenite
    /// answers a Close at once and refuses to send data after it).
    Mirror,
}

impl Conn {
    pub fn label(&self) -> &str {
        match self {
            Conn::Bytes(b) => &b.label,
            Conn::Messages(m) => &m.label,
            Conn::Mirror => "mirror:",
        }
    }
}

/// What is known about an accepted client, for the far side opened for it.
#[derive(Debug, Clone, Default)]
pub struct SessionInfo {
    pub peer: Option<SocketAddr>,
    /// Request URI (path and query) of a WebSocket client.
    pub request_uri: Option<String>,
    /// The client's request headers named by `--pass-header`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// With `exec-dir:`, the program the request path names.
    pub script: Option<Script>,
}

/// A program under `exec-dir:`, and how the request path splits around it (as CGI does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub program: std::path::PathBuf,
    /// The URL path of the program (`/a/b`).
    pub script_name: String,
    /// What follows it (`/c`, or empty).
    pub path_info: String,
}

impl SessionInfo {
    /// The broadcast room: the request path (all TCP/Unix/stdio clients share the room "/").
    pub fn room(&self) -> &str {
        self.request_uri
            .as_deref()
            .and_then(|u| u.split('?').next())
            .filter(|p| !p.is_empty())
            .unwrap_or("/")
    }
}
