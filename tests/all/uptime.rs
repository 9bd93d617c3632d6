//! Staying up: graceful shutdown on SIGTERM/SIGINT (Close 1001, bounded drain, exit 0), a second
//! signal exiting at once, and dead-peer detection with --ping-interval/--ping-timeout against a
//! frozen (SIGSTOPped) third-party server.

use crate::harness::peers::{self, Peer};
use crate::harness::raw::{self, CLOSE, PING, PONG};
use crate::harness::{self, Bridge, LIMIT};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn sigterm_closes_a_single_session_with_1001_and_exits_0() {
    let (port, mut conns) = raw::listen().await;
    let mut b = Bridge::spawn(&[&format!("ws://127.0.0.1:{port}/")]);
    let mut peer = tokio::time::timeout(LIMIT, conns.recv())
        .await
        .unwrap()
        .unwrap();
    b.write_stdin(b"before\n").await;
    assert_eq!(peer.read().await.unwrap().payload, b"before");
    b.signal("TERM");
    let close = peer.read_until_close().await.unwrap();
    assert_eq!(close.close_code(), Some(1001));
    assert_eq!(&close.payload[2..], b"shutting down");
    // Messages still in flight are delivered before the session ends.
    peer.send(true, raw::TEXT, b"last reply").await;
    peer.send_close(1001, "").await;
    drop(peer);
    let stdin = b.stdin.take();
    let f = b.finish().await;
    drop(stdin);
    assert_eq!(f.stdout_str(), "last reply\n");
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

#[tokio::test]
async fn sigint_drains_listener_sessions_then_exits_0() {
    let (port, mut conns) = raw::listen().await;
    let mut b = Bridge::spawn(&["tcp-listen:127.0.0.1:0", &format!("ws://127.0.0.1:{port}/")]);
    let addr = b.listening().await;
    let mut client = TcpStream::connect(&addr).await.unwrap();
    client.write_all(b"hi\n").await.unwrap();
    let mut peer = tokio::time::timeout(LIMIT, conns.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(peer.read().await.unwrap().payload, b"hi");
    b.signal("INT");
    let close = peer.read_until_close().await.unwrap();
    assert_eq!(close.close_code(), Some(1001));
    peer.send_close(1001, "").await;
    drop(peer);
    // The TCP client sees EOF: its session ended cleanly.
    assert_eq!(harness::read_all(&mut client).await, b"");
    let f = b.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

#[tokio::test]
async fn second_signal_exits_at_once() {
    // A peer that never answers our Close; the drain would last 60 s.
    let (port, mut conns) = raw::listen().await;
    let mut b = Bridge::spawn(&[
        "--shutdown-timeout",
        "60",
        &format!("ws://127.0.0.1:{port}/"),
    ]);
    let mut peer = tokio::time::timeout(LIMIT, conns.recv())
        .await
        .unwrap()
        .unwrap();
    b.signal("TERM");
    assert_eq!(peer.read_until_close().await.unwrap().opcode, CLOSE);
    b.signal("TERM");
    let stdin = b.stdin.take();
    let f = b.finish().await;
    drop(stdin);
    assert_eq!(f.code, Some(130), "{}", f.stderr);
    assert!(f.stderr.contains("second signal"), "{}", f.stderr);
}

#[tokio::test]
async fn pings_keep_an_idle_connection_checked() {
    let (port, mut conns) = raw::listen().await;
    let mut b = Bridge::spawn(&[
        "--ping-interval",
        "200ms",
        &format!("ws://127.0.0.1:{port}/"),
    ]);
    let mut peer = tokio::time::timeout(LIMIT, conns.recv())
        .await
        .unwrap()
        .unwrap();
    // Answer three pings: the session stays up.
    for _ in 0..3 {
        let f = peer.read().await.unwrap();
        assert_eq!(f.opcode, PING);
        peer.send(true, PONG, &f.payload).await;
    }
    b.close_stdin();
    assert_eq!(
        peer.read_until_close().await.unwrap().close_code(),
        Some(1000)
    );
    peer.send_close(1000, "").await;
    drop(peer);
    let f = b.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

/// The Python websockets server from tests/peers, as a separate process we can freeze.
async fn python_server() -> (tokio::process::Child, u16) {
    let mut cmd = peers::python_peer("ws_server.py");
    cmd.args(["--token", "t"]);
    let Peer { child, port, .. } = Peer::start(cmd, peers::port_line).await;
    (child, port)
}

#[tokio::test]
async fn frozen_server_is_detected_as_a_dead_peer() {
    let (mut server, port) = python_server().await;
    let url = format!("ws://127.0.0.1:{port}/");
    let mut b = Bridge::spawn(&[
        "-H",
        "Authorization: Bearer t",
        "--ping-interval",
        "300ms",
        "--ping-timeout",
        "300ms",
        &url,
    ]);
    b.write_stdin(b"alive?\n").await;
    assert_eq!(b.read_line().await, "alive?");
    let pid = server.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stdin = b.stdin.take();
    let f = b.finish().await;
    drop(stdin);
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    let _ = server.kill().await;
    assert_eq!(f.code, Some(12), "{}", f.stderr);
    harness::assert_one_line_error(
        &f,
        "peer not responding: nothing received within 300ms of a ping",
    );
}

#[tokio::test]
async fn no_close_keeps_pinging_after_local_eof() {
    // `echo subscribe | wsbridge -n --ping-interval …`: after stdin ends the feed stays checked
    // and a live (answering) peer is never declared dead.
    let (port, mut conns) = raw::listen().await;
    let mut b = Bridge::spawn(&[
        "-n",
        "--ping-interval",
        "150ms",
        "--ping-timeout",
        "150ms",
        &format!("ws://127.0.0.1:{port}/"),
    ]);
    let mut peer = tokio::time::timeout(LIMIT, conns.recv())
        .await
        .unwrap()
        .unwrap();
    b.write_stdin(b"subscribe\n").await;
    b.close_stdin();
    assert_eq!(peer.read().await.unwrap().payload, b"subscribe");
    for _ in 0..4 {
        let f = peer.read().await.unwrap();
        assert_eq!(f.opcode, PING, "no Close after EOF with -n, only pings");
        peer.send(true, PONG, &f.payload).await;
    }
    peer.send(true, raw::TEXT, b"feed item").await;
    peer.send_close(1000, "").await;
    drop(peer);
    let f = b.finish().await;
    assert_eq!(f.stdout_str(), "feed item\n");
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

#[tokio::test]
async fn sigterm_ends_a_byte_to_byte_session() {
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = backend.local_addr().unwrap().port();
    let held = tokio::spawn(async move { backend.accept().await.map(|(s, _)| s) });
    let b = Bridge::spawn(&["-", &format!("tcp:127.0.0.1:{port}")]);
    let _conn = held.await.unwrap().unwrap();
    b.signal("TERM");
    let mut b = b;
    let stdin = b.stdin.take();
    let f = b.finish().await;
    drop(stdin);
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}
