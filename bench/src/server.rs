//! The bench's own servers, in this process, on 127.0.0.1 port 0:
//!
//! - a WebSocket server (tokio-tungstenite) whose URL path picks the behaviour:
//!   - `/echo`: every text or binary message is sent back; replies to a burst are flushed once;
//!   - `/sink/N`: counts received payload bytes and reports the instant the N-th byte arrived;
//!   - `/source/N/SIZE`: sends N bytes as binary messages of SIZE bytes, then Close;
//! - a TCP sink that counts bytes and reports the instant the target number arrived;
//! - a TCP source that sends `Shared::tcp_source_bytes` bytes in 64 KiB writes to whoever
//!   connects, then closes;
//! - a TCP echo.
//!
//! Completion reports go through one channel (`Shared::done`); the bench runs one scenario at a
//! time, so there is never more than one transfer in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub struct Shared {
    /// WebSocket connections currently open (after the handshake).
    pub ws_active: AtomicUsize,
    /// Bytes `/source` handlers have handed to tungstenite so far (all connections).
    pub source_sent: AtomicU64,
    /// Target for the TCP sink; 0 means "do not report".
    pub tcp_target: AtomicU64,
    /// What the TCP source sends to each connection.
    pub tcp_source_bytes: AtomicU64,
    done_tx: mpsc::UnboundedSender<Instant>,
}

pub struct Servers {
    pub ws_port: u16,
    pub tcp_sink_port: u16,
    pub tcp_source_port: u16,
    /// A TCP echo (the fan-in scenario's backend).
    pub tcp_echo_port: u16,
    pub shared: Arc<Shared>,
    done_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Instant>>,
}

impl Servers {
    pub async fn start() -> std::io::Result<Servers> {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            ws_active: AtomicUsize::new(0),
            source_sent: AtomicU64::new(0),
            tcp_target: AtomicU64::new(0),
            tcp_source_bytes: AtomicU64::new(0),
            done_tx,
        });
        let ws = TcpListener::bind("127.0.0.1:0").await?;
        let tcp = TcpListener::bind("127.0.0.1:0").await?;
        let ws_port = ws.local_addr()?.port();
        let tcp_sink_port = tcp.local_addr()?.port();
        let src = TcpListener::bind("127.0.0.1:0").await?;
        let tcp_source_port = src.local_addr()?.port();
        let sh = shared.clone();
        accept_each(src, move |s| {
            let n = sh.tcp_source_bytes.load(Ordering::SeqCst);
            tokio::spawn(tcp_source(s, n));
        });
        let sh = shared.clone();
        accept_each(ws, move |s| {
            let _ = s.set_nodelay(true);
            tokio::spawn(ws_session(s, sh.clone()));
        });
        let sh = shared.clone();
        accept_each(tcp, move |s| {
            tokio::spawn(tcp_sink(s, sh.clone()));
        });
        let echo = TcpListener::bind("127.0.0.1:0").await?;
        let tcp_echo_port = echo.local_addr()?.port();
        accept_each(echo, |mut s| {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        });
        Ok(Servers {
            ws_port,
            tcp_sink_port,
            tcp_source_port,
            tcp_echo_port,
            shared,
            done_rx: tokio::sync::Mutex::new(done_rx),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{}", self.ws_port, path)
    }

    /// Forget completion reports left over from an earlier (failed) run.
    pub async fn clear_done(&self) {
        let mut rx = self.done_rx.lock().await;
        while rx.try_recv().is_ok() {}
    }

    /// The next completion report (sink reached its target).
    pub async fn wait_done(&self) -> Option<Instant> {
        self.done_rx.lock().await.recv().await
    }
}

/// Accept connections for ever, handing each to `on`.
fn accept_each(listener: TcpListener, on: impl Fn(TcpStream) + Send + 'static) {
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                // EMFILE and the like: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            on(s);
        }
    });
}

/// The server's tungstenite configuration: tungstenite's defaults (128 KiB read buffer), which
/// are right for a fast server; the pages of idle connections are never touched.
fn server_config() -> WebSocketConfig {
    WebSocketConfig::default().max_message_size(Some(256 << 20))
}

async fn ws_session(s: TcpStream, shared: Arc<Shared>) {
    let mut path = String::new();
    let cb = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        path = req.uri().path().to_string();
        Ok(resp)
    };
    let Ok(ws) =
        tokio_tungstenite::accept_hdr_async_with_config(s, cb, Some(server_config())).await
    else {
        return;
    };
    shared.ws_active.fetch_add(1, Ordering::SeqCst);
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["sink", n] => sink(ws, n.parse().unwrap_or(u64::MAX), &shared).await,
        ["source", n, size] => {
            source(
                ws,
                n.parse().unwrap_or(0),
                size.parse().unwrap_or(65536),
                &shared,
            )
            .await
        }
        _ => echo(ws).await,
    }
    shared.ws_active.fetch_sub(1, Ordering::SeqCst);
}

type Ws = WebSocketStream<TcpStream>;

/// Echo data messages. A burst of ready messages is fed without flushing and flushed once.
async fn echo(mut ws: Ws) {
    loop {
        let first = match ws.next().await {
            Some(Ok(m)) => m,
            _ => return,
        };
        if !echo_one(&mut ws, first).await {
            return;
        }
        loop {
            match ws.next().now_or_never() {
                None => break,
                Some(Some(Ok(m))) => {
                    if !echo_one(&mut ws, m).await {
                        return;
                    }
                }
                Some(_) => {
                    let _ = ws.flush().await;
                    return;
                }
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}

async fn echo_one(ws: &mut Ws, m: Message) -> bool {
    match m {
        // A Close is answered by tungstenite on the next read; pings likewise.
        Message::Text(_) | Message::Binary(_) => ws.feed(m).await.is_ok(),
        _ => true,
    }
}

async fn sink(mut ws: Ws, target: u64, shared: &Shared) {
    let mut got = 0u64;
    let mut reported = false;
    while let Some(Ok(m)) = ws.next().await {
        got += m.len() as u64;
        if !reported && got >= target && (m.is_binary() || m.is_text()) {
            reported = true;
            let _ = shared.done_tx.send(Instant::now());
        }
    }
}

async fn source(mut ws: Ws, total: u64, size: usize, shared: &Shared) {
    let payload = Bytes::from(vec![b'x'; size.max(1)]);
    let mut sent = 0u64;
    while sent < total {
        let k = (total - sent).min(payload.len() as u64) as usize;
        if ws.feed(Message::Binary(payload.slice(..k))).await.is_err() {
            return;
        }
        sent += k as u64;
        shared.source_sent.fetch_add(k as u64, Ordering::Relaxed);
    }
    if ws.flush().await.is_err() {
        return;
    }
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

async fn tcp_source(mut s: TcpStream, total: u64) {
    use tokio::io::AsyncWriteExt;
    let chunk = vec![0x5au8; 64 * 1024];
    let mut sent = 0u64;
    while sent < total {
        let k = (total - sent).min(chunk.len() as u64) as usize;
        if s.write_all(&chunk[..k]).await.is_err() {
            return;
        }
        sent += k as u64;
    }
    let _ = s.shutdown().await;
}

async fn tcp_sink(mut s: TcpStream, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    let mut reported = false;
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                got += n as u64;
                let target = shared.tcp_target.load(Ordering::SeqCst);
                if !reported && target > 0 && got >= target {
                    reported = true;
                    let _ = shared.done_tx.send(Instant::now());
                }
            }
        }
    }
}
