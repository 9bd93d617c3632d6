//! Endpoints: each address kind opens (or accepts) connections of one of two shapes, byte streams
//! or message streams. The relay only ever sees these two shapes.

pub(crate) mod broadcast;
pub(crate) mod exec;
mod options;
pub(crate) mod proxy;
pub(crate) mod sd_listen;
pub(crate) mod stdio;
pub(crate) mod tcp;
pub(crate) mod tls;
pub(crate) mod unix;
pub(crate) mod ws_client;
// Public on purpose: the fuzz target `handshake` drives `ws_server::check_upgrade`.
pub mod ws_server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::addr::Address;
use crate::error::{Error, Result};

// The connection shapes live in `crate::conn`; named here too, where endpoints have always found
// them.
pub(crate) use crate::conn::*;
pub use options::{
    BroadcastVia, ExecOptions, ExecStderr, Header, ListenOptions, ServerOptions, WsClientOptions,
};

/// Opens connecting endpoints; shared by every session of a listener.
pub(crate) struct Opener {
    ws: ws_client::WsConnector,
    connect_timeout: std::time::Duration,
    exec: ExecOptions,
    hub: Arc<broadcast::Hub>,
    /// Background work that must finish before the process exits (ending exec children).
    pub(crate) tasks: tokio_util::task::TaskTracker,
}

impl Opener {
    /// `exec` says how `exec:`/`sh-c:`/`exec-dir:` children run; `server` sizes broadcast rooms.
    pub(crate) fn new(ws: WsClientOptions, exec: ExecOptions, server: &ServerOptions) -> Self {
        Opener {
            connect_timeout: ws.connect_timeout,
            ws: ws_client::WsConnector::new(ws),
            exec,
            hub: broadcast::Hub::new(server.broadcast_queue, server.broadcast_queue_bytes),
            tasks: tokio_util::task::TaskTracker::new(),
        }
    }

    /// What must be connected before the first session: the Redis behind shared rooms
    /// (`--broadcast-via`). An unreachable Redis is an error here, at startup.
    pub(crate) async fn start(&self, server: &ServerOptions) -> Result<()> {
        match &server.broadcast_via {
            Some(via) => self.hub.share(via).await,
            None => Ok(()),
        }
    }

    /// At the end of a run: counters worth a log line (shared rooms).
    pub(crate) fn report(&self) {
        self.hub.report();
    }

    /// Open one connection to `addr` (which must not be a listener) for the client `info`.
    pub(crate) async fn open(&self, addr: &Address, info: &SessionInfo) -> Result<Conn> {
        match addr {
            Address::Stdio => Ok(Conn::Bytes(stdio::open())),
            Address::Inetd => Ok(Conn::Bytes(stdio::inetd())),
            Address::Tcp(hp) => tcp::connect(hp, self.connect_timeout)
                .await
                .map(Conn::Bytes),
            Address::Unix(path) => unix::connect(path, self.connect_timeout)
                .await
                .map(Conn::Bytes),
            Address::Ws(url) => self
                .ws
                .connect(url, &info.headers)
                .await
                .map(Conn::Messages),
            Address::Mirror => Ok(Conn::Mirror),
            Address::Exec(_) | Address::ShC(_) | Address::ExecDir(_) => {
                exec::spawn(&self.exec, info, &self.tasks).map(Conn::Bytes)
            }
            Address::Broadcast => Ok(Conn::Messages(self.hub.join(info.room()))),
            Address::TcpListen(_)
            | Address::UnixListen(_)
            | Address::WsListen(_)
            | Address::SdListen(_) => Err(Error::Internal(format!(
                "{addr}: a listener cannot be opened as a client"
            ))),
        }
    }
}

/// Session slots for `--max-conns`, shared by a listener's sessions.
#[derive(Clone)]
pub(crate) struct Slots {
    active: Arc<AtomicUsize>,
    max: Option<usize>,
}

/// One taken slot; released when dropped (at the end of its session).
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Slots {
    pub(crate) fn new(max: Option<usize>) -> Slots {
        Slots {
            active: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// Take a slot if fewer than `max` are taken (atomically: concurrent handshakes cannot
    /// both take the last one).
    pub(crate) fn try_take(&self) -> Option<Slot> {
        let max = self.max.unwrap_or(usize::MAX);
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.active.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A bound listener.
pub(crate) enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(unix::BoundUnixListener),
    Ws(Box<ws_server::WsServer>),
    /// A Unix listener passed by systemd (`sd-listen:`; a passed TCP one is `Tcp`). Its socket
    /// file is systemd's: never removed.
    SdUnix(sd_listen::PassedUnix),
}

/// A client accepted at the transport level, not yet handshaken.
pub(crate) enum Incoming {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream),
}

/// An accepted client on its way to the runtime that will run its session: its socket is
/// registered with no reactor (src/workers.rs).
pub(crate) enum Detached {
    Tcp(std::net::TcpStream, SocketAddr),
    Unix(std::os::unix::net::UnixStream),
}

impl Detached {
    /// Register the socket with the current runtime.
    pub(crate) fn attach(self) -> std::io::Result<Incoming> {
        Ok(match self {
            Detached::Tcp(s, peer) => Incoming::Tcp(tokio::net::TcpStream::from_std(s)?, peer),
            Detached::Unix(s) => Incoming::Unix(tokio::net::UnixStream::from_std(s)?),
        })
    }
}

impl Incoming {
    /// Take the socket off the current runtime (it stays non-blocking), to be attached on
    /// another.
    pub(crate) fn detach(self) -> std::io::Result<Detached> {
        Ok(match self {
            Incoming::Tcp(s, peer) => Detached::Tcp(s.into_std()?, peer),
            Incoming::Unix(s) => Detached::Unix(s.into_std()?),
        })
    }

    /// The client's address (TCP), for the session's logs.
    pub(crate) fn peer(&self) -> Option<SocketAddr> {
        match self {
            Incoming::Tcp(_, peer) => Some(*peer),
            Incoming::Unix(_) => None,
        }
    }
}

impl Listener {
    /// Bind the listening address `addr` (a listener kind).
    pub(crate) async fn bind(
        addr: &Address,
        listen: &ListenOptions,
        server: &ServerOptions,
    ) -> Result<Listener> {
        match addr {
            Address::TcpListen(hp) => tcp::bind(hp).await.map(Listener::Tcp),
            Address::UnixListen(path) => {
                unix::bind(path, listen.unix_mode).await.map(Listener::Unix)
            }
            Address::WsListen(w) => ws_server::WsServer::bind(w, server)
                .await
                .map(|s| Listener::Ws(Box::new(s))),
            Address::SdListen(name) => match sd_listen::take(name.as_deref())? {
                sd_listen::Passed::Tcp(l) => Ok(Listener::Tcp(l)),
                sd_listen::Passed::Unix(u) => Ok(Listener::SdUnix(u)),
            },
            other => Err(Error::Internal(format!("{other}: not a listener"))),
        }
    }

    /// For unix-listen: the guard that removes the socket file (drop it to remove the file).
    pub(crate) fn socket_file(&self) -> Option<unix::SocketFile> {
        match self {
            Listener::Unix(u) => Some(u.socket_file()),
            _ => None,
        }
    }

    /// `tcp 127.0.0.1:4000`, `unix /run/x.sock`, `ws ws://127.0.0.1:4000/`: what is bound.
    pub(crate) fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp {a}"),
                Err(_) => "tcp ?".into(),
            },
            Listener::Unix(u) => format!("unix {}", u.path().display()),
            Listener::Ws(w) => w.describe(),
            Listener::SdUnix(u) => format!("unix {}", u.shown()),
        }
    }

    pub(crate) async fn accept(&self) -> std::io::Result<Incoming> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                tcp::tune(&s);
                Ok(Incoming::Tcp(s, peer))
            }
            Listener::Unix(u) => u.accept().await.map(Incoming::Unix),
            Listener::SdUnix(u) => u.accept().await.map(Incoming::Unix),
            Listener::Ws(w) => w.accept().await.map(|(s, peer)| Incoming::Tcp(s, peer)),
        }
    }

    /// Turn an accepted client into a connection (for WebSocket: the handshake, or a plain HTTP
    /// answer). `None` when there is no session to run; the reason has been logged.
    pub(crate) async fn establish(
        &self,
        incoming: Incoming,
        slots: &Slots,
    ) -> Option<(Conn, SessionInfo, Slot)> {
        match (self, incoming) {
            (Listener::Ws(w), Incoming::Tcp(s, peer)) => w
                .establish(s, peer, slots)
                .await
                .map(|(m, info, slot)| (Conn::Messages(m), info, slot)),
            (_, incoming) => {
                let (conn, peer) = match incoming {
                    Incoming::Tcp(s, peer) => {
                        let (r, w) = s.into_split();
                        (
                            ByteConn::new(Box::new(r), Box::new(w), format!("tcp client {peer}")),
                            Some(peer),
                        )
                    }
                    Incoming::Unix(s) => {
                        let (r, w) = s.into_split();
                        let label = match self {
                            Listener::Unix(u) => format!("unix client on {}", u.path().display()),
                            Listener::SdUnix(u) => format!("unix client on {}", u.shown()),
                            _ => "unix client".into(),
                        };
                        (ByteConn::new(Box::new(r), Box::new(w), label), None)
                    }
                };
                let Some(slot) = slots.try_take() else {
                    tracing::warn!("{}: session limit reached; closed", conn.label);
                    return None;
                };
                Some((
                    Conn::Bytes(conn),
                    SessionInfo {
                        peer,
                        ..SessionInfo::default()
                    },
                    slot,
                ))
            }
        }
    }
}
