//! --reconnect: the server is killed mid-stream and restarted on the same port; the stream goes
//! on, local input written meanwhile is queued and delivered; a 401 stops the retrying.

use std::collections::BTreeSet;

use crate::harness::{self, Bridge, LIMIT, servers};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

/// An echo server on `port` that reports every text it receives; dropping it kills it (the
/// listener and every connection go away at once, without a Close).
struct Killable {
    _tasks: JoinSet<()>,
}

async fn echo_on(port: u16, seen: mpsc::UnboundedSender<String>) -> Killable {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let mut conns = JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            conns.spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if let Message::Text(t) = &m {
                        let _ = seen.send(t.to_string());
                        if ws.send(m).await.is_err() {
                            break;
                        }
                    }
                }
            });
        }
    });
    Killable { _tasks: tasks }
}

async fn wait_for(rx: &mut mpsc::UnboundedReceiver<String>, last: &str, got: &mut Vec<String>) {
    tokio::time::timeout(LIMIT, async {
        while let Some(s) = rx.recv().await {
            let done = s == last;
            got.push(s);
            if done {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{last} never arrived; got {got:?}"));
}

#[tokio::test]
async fn stream_continues_across_a_server_restart() {
    let port = harness::closed_port();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = echo_on(port, tx.clone()).await;
    let mut b = Bridge::spawn(&[
        "-v",
        "--reconnect",
        "--reconnect-min",
        "100ms",
        "--reconnect-max",
        "500ms",
        &format!("ws://127.0.0.1:{port}/"),
    ]);
    let mut first = Vec::new();
    let lines: String = (1..=50).map(|i| format!("{i}\n")).collect();
    b.write_stdin(lines.as_bytes()).await;
    wait_for(&mut rx, "50", &mut first).await;
    for i in 1..=50 {
        assert_eq!(b.read_line().await, i.to_string());
    }

    // Kill the server; write more while it is down.
    drop(server);
    b.stderr_contains("reconnecting in").await;
    let more: String = (51..=100).map(|i| format!("{i}\n")).collect();
    b.write_stdin(more.as_bytes()).await;

    // Restart it on the same port: the queued lines arrive, the echoes come back.
    let _server = echo_on(port, tx).await;
    let mut second = Vec::new();
    wait_for(&mut rx, "100", &mut second).await;
    for i in 51..=100 {
        assert_eq!(b.read_line().await, i.to_string());
    }
    let all: BTreeSet<u32> = first
        .iter()
        .chain(&second)
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(
        all,
        (1..=100).collect(),
        "first connection got {first:?}, second {second:?}"
    );
    assert_eq!(first.len() + second.len(), 100, "nothing delivered twice");

    b.close_stdin();
    let f = b.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

#[tokio::test]
async fn first_connection_is_retried_too() {
    let port = harness::closed_port();
    let mut b = Bridge::spawn(&[
        "--reconnect",
        "--reconnect-min",
        "50ms",
        &format!("ws://127.0.0.1:{port}/"),
    ]);
    b.stderr_contains("connection failed").await;
    b.write_stdin(b"queued before the server existed\n").await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _server = echo_on(port, tx).await;
    let mut got = Vec::new();
    wait_for(&mut rx, "queued before the server existed", &mut got).await;
    assert_eq!(b.read_line().await, "queued before the server existed");
}

#[tokio::test]
async fn unauthorized_stops_the_retrying() {
    let port =
        servers::http_responder("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n").await;
    let f = harness::run(&["--reconnect", &format!("ws://127.0.0.1:{port}/")], b"x\n").await;
    assert_eq!(f.code, Some(6), "{}", f.stderr);
    harness::assert_one_line_error(&f, "handshake refused: HTTP 401");
}
