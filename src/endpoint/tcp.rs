//! `tcp:` (connect) and `tcp-listen:` (bind): plain TCP byte streams, with TCP_NODELAY.

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::ByteConn;
use crate::addr::HostPort;
use crate::error::{Error, Result};

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
    let _ = stream.set_nodelay(true);
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
