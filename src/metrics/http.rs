//! The `--metrics HOST:PORT` listener: `GET /metrics` (Prometheus text format) and
//! `GET /healthz`, one small HTTP/1.1 answer per connection, nothing else. Requests are
//! bounded (8 KiB of head, 5 s) so the listener cannot be held by a slow client.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::error::{Error, Result};
use crate::shutdown::Shutdown;

const HEAD_MAX: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Bind `addr`, announce it on stderr (`wsbridge: metrics on http://…/metrics`), and answer
/// until `shutdown`.
pub(crate) async fn serve(addr: SocketAddr, shutdown: Shutdown) -> Result<()> {
    let listener = TcpListener::bind(addr).await.map_err(|e| Error::Listen {
        target: format!("--metrics {addr}"),
        source: e,
    })?;
    let bound = listener.local_addr().unwrap_or(addr);
    crate::logging::line(
        tracing::Level::INFO,
        &format!("wsbridge: metrics on http://{bound}/metrics"),
    );
    super::M.enable();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                a = listener.accept() => match a {
                    Ok((s, _)) => {
                        tokio::spawn(answer(s));
                    }
                    Err(e) => {
                        tracing::warn!("--metrics: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                () = shutdown.cancelled() => return,
            }
        }
    });
    Ok(())
}

/// Read one request head and answer it; the connection is closed after the answer.
async fn answer(mut s: TcpStream) {
    let Ok(Some(path)) = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut s)).await else {
        return;
    };
    let (status, kind, body) = match path.as_str() {
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            super::M.render(),
        ),
        "/healthz" => ("200 OK", "text/plain; charset=utf-8", "ok\n".to_string()),
        "" => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        ),
        _ => (
            "404 Not Found",
            "text/plain",
            "/metrics or /healthz\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(body.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// The path of a GET (query removed), `Some("")` for another method, `None` for garbage.
async fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() + n > HEAD_MAX {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = buf.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    if method != "GET" {
        return Some(String::new());
    }
    Some(target.split('?').next().unwrap_or("").to_string())
}
