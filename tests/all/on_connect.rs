//! `--on-connect TEXT|@FILE`: the messages a client sends first on every connection, against a
//! Python `websockets` server that logs what each connection receives: in order and before any
//! input, text and binary from files, again after a `--reconnect`, and never in the log.

use serde_json::Value;

use crate::harness::peers::Peer;
use crate::harness::{self, Bridge, peers};

async fn server(args: &[&str]) -> Peer {
    let mut cmd = peers::python_peer("on_connect_server.py");
    cmd.args(args);
    Peer::start(cmd, peers::port_line).await
}

/// The next message the server logged: (connection, type, data).
async fn next(p: &mut Peer) -> (u64, String, String) {
    let line = p.line_with("\"conn\"").await;
    let v: Value = serde_json::from_str(&line).expect("a JSON line");
    (
        v["conn"].as_u64().unwrap(),
        v["type"].as_str().unwrap().to_string(),
        v["data"].as_str().unwrap().to_string(),
    )
}

fn text(conn: u64, s: &str) -> (u64, String, String) {
    (conn, "text".into(), s.into())
}

#[tokio::test]
async fn the_messages_come_first_in_order_then_the_input() {
    let mut srv = server(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("subscribe.json");
    std::fs::write(&json, "{\"op\":\"subscribe\",\"channel\":\"trades\"}\n").unwrap();
    let bin = dir.path().join("hello.bin");
    std::fs::write(&bin, [0xffu8, 0x00, 0x01]).unwrap();
    let url = format!("ws://127.0.0.1:{}/", srv.port);
    let (j, b) = (
        format!("@{}", json.display()),
        format!("@{}", bin.display()),
    );
    let args = [
        "-v",
        "--on-connect",
        "login secret-token",
        "--on-connect",
        &j,
        "--on-connect",
        &b,
        "-",
        &url,
    ];
    let f = harness::run(&args, b"first input line\n").await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert_eq!(next(&mut srv).await, text(1, "login secret-token"));
    assert_eq!(
        next(&mut srv).await,
        text(1, "{\"op\":\"subscribe\",\"channel\":\"trades\"}")
    );
    assert_eq!(next(&mut srv).await, (1, "binary".into(), "ff0001".into()));
    assert_eq!(next(&mut srv).await, text(1, "first input line"));
    assert!(
        f.stderr.contains("sent the 3 --on-connect message(s)"),
        "{}",
        f.stderr
    );
    assert!(!f.stderr.contains("secret-token"), "{}", f.stderr);
}

/// The next message the server logged, or wsbridge's log in the failure.
async fn expect(srv: &mut Peer, b: &mut Option<Bridge>, want: (u64, String, String)) {
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), next(srv)).await;
    match got {
        Ok(got) => assert_eq!(got, want),
        Err(_) => {
            let mut b = b.take().unwrap();
            b.close_stdin();
            let f = b.finish().await;
            panic!(
                "{want:?} did not reach the server; wsbridge said:\n{}",
                f.stderr
            );
        }
    }
}

#[tokio::test]
async fn the_messages_are_sent_again_after_a_reconnect() {
    // The server drops the first connection after the hello and one line of input.
    let mut srv = server(&["--drop-after", "2"]).await;
    let url = format!("ws://127.0.0.1:{}/", srv.port);
    let args = [
        "-v",
        "--reconnect",
        "--reconnect-min",
        "0.05",
        "--on-connect",
        "hello",
        "-",
        &url,
    ];
    let mut b = Some(Bridge::spawn(&args));
    b.as_mut().unwrap().write_stdin(b"one\n").await;
    expect(&mut srv, &mut b, text(1, "hello")).await;
    expect(&mut srv, &mut b, text(1, "one")).await;
    // Reconnected: the hello comes first again, then what is typed next. (Input typed while
    // the first connection is being closed would be sent into it and lost: wait for the drop.)
    b.as_mut().unwrap().stderr_contains("reconnecting in").await;
    b.as_mut().unwrap().write_stdin(b"two\n").await;
    expect(&mut srv, &mut b, text(2, "hello")).await;
    expect(&mut srv, &mut b, text(2, "two")).await;
    let mut b = b.unwrap();
    b.close_stdin();
    let f = b.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

#[tokio::test]
async fn an_unreadable_file_or_a_listener_pair_is_a_usage_error() {
    let f = harness::run(
        &[
            "--on-connect",
            "@/nonexistent/hello",
            "-",
            "ws://127.0.0.1:9/",
        ],
        b"",
    )
    .await;
    assert_eq!(f.code, Some(2), "{}", f.stderr);
    harness::assert_one_line_error(&f, "--on-connect @/nonexistent/hello");
    let f = harness::run(
        &[
            "--on-connect",
            "hi",
            "tcp-listen:127.0.0.1:0",
            "tcp:127.0.0.1:9",
        ],
        b"",
    )
    .await;
    assert_eq!(f.code, Some(2), "{}", f.stderr);
    harness::assert_one_line_error(&f, "--on-connect needs a ws:// or wss:// address");
}
