//! `tcp:` (connect) and `tcp-listen:` (bind): plain TCP byte streams; and the socket options
//! every TCP connection wsbridge makes or accepts gets ([`tune`]: TCP_NODELAY, keepalive).

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::ByteConn;
use crate::addr::HostPort;
use crate::error::{Error, Result};

/// TCP keepalive: a peer that vanished without FIN or RST (a host gone, a NAT mapping dropped)
/// is found after this much silence, then [`KEEPALIVE_PROBES`] probes this far apart.
pub(crate) const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 6;

/// Options for every TCP connection, made or accepted: TCP_NODELAY (messages go out at once),
/// and keepalive, so that a half-open connection ends within about two minutes
/// (docs/reliability.md) whatever the session does.
pub(crate) fn tune(s: &TcpStream) {
    let _ = s.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    let _ = socket2::SockRef::from(s).set_tcp_keepalive(&keepalive);
}

pub(crate) async fn connect(hp: &HostPort, limit: Duration) -> Result<ByteConn> {
    let target = format!("tcp:{hp}");
    let attempt = async {
        let addrs: Vec<_> = tokio::net::lookup_host((hp.host.as_str(), hp.port))
            .await
            .map_err(|e| Error::Dns {
                target: target.clone(),
                detail: format!("'{}': {e}", hp.host),
            })?
            .collect();
        let mut last = None;
        for a in addrs {
            match TcpStream::connect(a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(Error::Connect {
            target: target.clone(),
            source: last.unwrap_or_else(|| std::io::Error::other("host has no addresses")),
        })
    };
    let stream = tokio::time::timeout(limit, attempt)
        .await
        .map_err(|_| Error::Timeout {
            target: target.clone(),
            what: "TCP connect",
            after: limit,
        })??;
    tune(&stream);
    let (r, w) = stream.into_split();
    Ok(ByteConn::new(Box::new(r), Box::new(w), target))
}

pub(crate) async fn bind(hp: &HostPort) -> Result<TcpListener> {
    TcpListener::bind((hp.host.as_str(), hp.port))
        .await
        .map_err(|source| Error::Listen {
            target: format!("tcp-listen:{hp}"),
            source,
        })
}
