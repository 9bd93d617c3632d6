//! Endpoints: each address kind opens (or accepts) connections of one of two shapes, byte streams
//! or message streams. The relay only ever sees these two shapes.

pub mod mirror;
pub mod stdio;
pub mod tcp;
pub mod tls;
pub mod unix;
pub mod ws_client;

use std::pin::Pin;

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::addr::Address;
use crate::config::{ListenOptions, WsClientOptions};
use crate::error::{Error, Result};

pub type BoxReader = Box<dyn AsyncRead + Send + Unpin>;
pub type BoxWriter = Box<dyn AsyncWrite + Send + Unpin>;
pub type MsgStream = Pin<Box<dyn Stream<Item = std::result::Result<Message, WsError>> + Send>>;
pub type MsgSink = Pin<Box<dyn Sink<Message, Error = WsError> + Send>>;

/// A byte-stream connection (TCP, Unix socket, stdio), split into its two halves.
pub struct ByteConn {
    pub reader: BoxReader,
    pub writer: BoxWriter,
    /// Who is on the other end, for logs.
    pub label: String,
}

/// A message connection (a WebSocket, `mirror:`), split into its two halves.
pub struct MsgConn {
    pub stream: MsgStream,
    pub sink: MsgSink,
    pub label: String,
}

/// What an endpoint yields.
pub enum Conn {
    Bytes(ByteConn),
    Messages(MsgConn),
}

impl Conn {
    pub fn label(&self) -> &str {
        match self {
            Conn::Bytes(b) => &b.label,
            Conn::Messages(m) => &m.label,
        }
    }
}

/// Opens connecting endpoints; shared by every session of a listener.
pub struct Opener {
    ws: ws_client::WsConnector,
    connect_timeout: std::time::Duration,
}

impl Opener {
    pub fn new(ws: WsClientOptions) -> Self {
        let connect_timeout = ws.connect_timeout;
        Opener {
            ws: ws_client::WsConnector::new(ws),
            connect_timeout,
        }
    }

    /// Open one connection to `addr` (which must not be a listener).
    pub async fn open(&self, addr: &Address) -> Result<Conn> {
        match addr {
            Address::Stdio => Ok(Conn::Bytes(stdio::open())),
            Address::Tcp(hp) => tcp::connect(hp, self.connect_timeout)
                .await
                .map(Conn::Bytes),
            Address::Unix(path) => unix::connect(path, self.connect_timeout)
                .await
                .map(Conn::Bytes),
            Address::Ws(url) => self.ws.connect(url).await.map(Conn::Messages),
            Address::Mirror => Ok(Conn::Messages(mirror::open())),
            Address::TcpListen(_) | Address::UnixListen(_) => Err(Error::Internal(format!(
                "{addr}: a listener cannot be opened as a client"
            ))),
        }
    }
}

/// A bound listener, yielding byte-stream connections.
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(unix::BoundUnixListener),
}

impl Listener {
    pub async fn bind(addr: &Address, opts: &ListenOptions) -> Result<Listener> {
        match addr {
            Address::TcpListen(hp) => tcp::bind(hp).await.map(Listener::Tcp),
            Address::UnixListen(path) => unix::bind(path, opts.unix_mode).await.map(Listener::Unix),
            other => Err(Error::Internal(format!("{other}: not a listener"))),
        }
    }

    /// `tcp 127.0.0.1:4000` or `unix /run/x.sock`: the actual bound address.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp {a}"),
                Err(_) => "tcp ?".into(),
            },
            Listener::Unix(u) => format!("unix {}", u.path().display()),
        }
    }

    pub async fn accept(&self) -> std::io::Result<ByteConn> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                let (r, w) = s.into_split();
                Ok(ByteConn {
                    reader: Box::new(r),
                    writer: Box::new(w),
                    label: format!("tcp client {peer}"),
                })
            }
            Listener::Unix(u) => u.accept().await,
        }
    }
}
