//! In-process WebSocket servers (tokio-tungstenite) on 127.0.0.1, port 0, for driving the binary.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderMap;

pub type Ws = WebSocketStream<TcpStream>;

pub struct Server {
    pub port: u16,
    /// Connections accepted so far (TCP level).
    pub conns: Arc<AtomicUsize>,
    /// Request headers of each upgrade, in order.
    pub requests: mpsc::UnboundedReceiver<(String, HeaderMap)>,
}

impl Server {
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
}

/// Serve WebSocket connections, running `handler` for each.
pub async fn serve<F, Fut>(handler: F) -> Server
where
    F: Fn(Ws) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let conns = Arc::new(AtomicUsize::new(0));
    let (tx, requests) = mpsc::unbounded_channel();
    let handler = Arc::new(handler);
    let c = conns.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let cb = |req: &Request, mut resp: Response| {
                    let _ = tx.send((req.uri().to_string(), req.headers().clone()));
                    // Accept the first subprotocol offered, as a typical server does.
                    if let Some(p) = req
                        .headers()
                        .get("sec-websocket-protocol")
                        .and_then(|v| v.to_str().ok())
                    {
                        let first = p.split(',').next().unwrap_or("").trim().to_string();
                        resp.headers_mut()
                            .insert("sec-websocket-protocol", first.parse().unwrap());
                    }
                    Ok(resp)
                };
                if let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, cb).await {
                    handler(ws).await;
                }
            });
        }
    });
    Server {
        port,
        conns,
        requests,
    }
}

/// Echo every data message in order (the reply to a Close is tungstenite's, after all echoes).
pub async fn echo() -> Server {
    serve(|mut ws: Ws| async move {
        while let Some(Ok(m)) = ws.next().await {
            if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                break;
            }
        }
    })
    .await
}

/// Accepts TCP and answers every request with a fixed raw HTTP response, then closes.
pub async fn http_responder(response: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tcp.write_all(response.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    port
}

/// A TCP service that echoes until EOF, then closes (like `socat … EXEC:cat`): its address as
/// a wsbridge backend, `tcp:127.0.0.1:PORT`.
pub async fn tcp_echo() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    format!("tcp:{addr}")
}

/// Accepts TCP connections and never says anything (holds them open).
pub async fn silent() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    port
}
