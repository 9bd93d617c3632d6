//! stdio ↔ ws:// end to end: nothing lost at EOF, line mode, binary mode, close codes, ping,
//! directions. The binary is spawned; the peer is an in-process tokio-tungstenite server.

use std::time::Duration;

use crate::harness::servers::{self, Ws};
use crate::harness::{self, Bridge, run};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn seq(n: usize) -> String {
    (1..=n).map(|i| format!("{i}\n")).collect()
}

#[tokio::test]
async fn nothing_lost_at_eof_every_run() {
    let server = servers::echo().await;
    let input = seq(1000);
    for round in 0..20 {
        let f = run(&[&server.url()], input.as_bytes()).await;
        assert_eq!(f.code, Some(0), "round {round}: {}", f.stderr);
        assert_eq!(f.stdout_str(), input, "round {round}");
        // Quiet by default: a successful run prints nothing on stderr.
        assert_eq!(f.stderr, "", "round {round}");
    }
}

#[tokio::test]
async fn lines_become_text_messages_and_back() {
    // The server records what arrives, then sends its own messages and closes normally.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = servers::serve(move |mut ws: Ws| {
        let tx = tx.clone();
        async move {
            let mut got = Vec::new();
            while let Some(Ok(m)) = ws.next().await {
                match m {
                    Message::Close(_) => break,
                    m => got.push(m),
                }
            }
            tx.send(got).unwrap();
        }
    })
    .await;
    let f = run(
        &[&server.url()],
        b"one\ntwo\r\n\n\xff\xferaw\nlast without newline",
    )
    .await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    let got = rx.recv().await.unwrap();
    assert_eq!(
        got,
        vec![
            Message::Text("one".into()),
            Message::Text("two".into()),
            Message::Text("".into()),
            Message::Binary(b"\xff\xferaw".to_vec().into()),
            Message::Text("last without newline".into()),
        ]
    );
    assert!(
        f.stderr
            .contains("not valid UTF-8; sent as a binary message"),
        "{}",
        f.stderr
    );
}

#[tokio::test]
async fn incoming_messages_become_lines() {
    let server = servers::serve(|mut ws: Ws| async move {
        for m in [
            Message::Text("plain".into()),
            Message::Text("".into()),
            Message::Text("multi\nline".into()),
            Message::Binary(b"bin".to_vec().into()),
            Message::Text("after".into()),
        ] {
            ws.send(m).await.unwrap();
        }
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
    })
    .await;
    let mut b = Bridge::spawn(&[&server.url()]);
    // stdin stays open: the server's Close alone ends the session.
    let stdin = b.stdin.take();
    let f = b.finish().await;
    drop(stdin);
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    // A zero-length message is a message (an empty line), not EOF.
    assert_eq!(f.stdout_str(), "plain\n\nmulti line\nbin\nafter\n");
}

#[tokio::test]
async fn binary_mode_carries_megabytes_both_ways() {
    let server = servers::echo().await;
    let data = harness::random_bytes(4 << 20, 7);
    let f = run(&["-b", &server.url()], &data).await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert_eq!(f.stdout.len(), data.len());
    assert!(f.stdout == data, "binary data corrupted");
}

#[tokio::test]
async fn binary_messages_are_never_split_or_merged() {
    // Three messages of different sizes, one bigger than 64 KiB (websocat splits there).
    let sizes = [1usize, 100_000, 0, 70_000];
    let server = servers::serve(move |mut ws: Ws| async move {
        for (i, n) in sizes.iter().enumerate() {
            ws.send(Message::Binary(vec![b'a' + i as u8; *n].into()))
                .await
                .unwrap();
        }
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
    })
    .await;
    let f = run(&["-U", "-b", &server.url()], b"").await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    let mut want = Vec::new();
    for (i, n) in sizes.iter().enumerate() {
        want.extend(std::iter::repeat_n(b'a' + i as u8, *n));
    }
    assert!(f.stdout == want);
    // Text mode: a 100 000-byte text message is one line.
    let server = servers::serve(|mut ws: Ws| async move {
        ws.send(Message::Text("x".repeat(100_000).into()))
            .await
            .unwrap();
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
    })
    .await;
    let f = run(&["-U", &server.url()], b"").await;
    assert_eq!(f.stdout_str(), format!("{}\n", "x".repeat(100_000)));
}

async fn close_with(code: CloseCode) -> harness::Finished {
    let server = servers::serve(move |mut ws: Ws| async move {
        ws.send(Message::Text("bye".into())).await.unwrap();
        ws.close(Some(CloseFrame {
            code,
            reason: "test reason".into(),
        }))
        .await
        .unwrap();
        while ws.next().await.is_some() {}
    })
    .await;
    let mut b = Bridge::spawn(&[&server.url()]);
    let stdin = b.stdin.take();
    let f = b.finish().await;
    drop(stdin);
    f
}

#[tokio::test]
async fn peer_close_codes_map_to_exit_codes() {
    for (code, exit) in [
        (CloseCode::Normal, 0),
        (CloseCode::Away, 0),
        (CloseCode::Error, 8),
        (CloseCode::Policy, 8),
        (CloseCode::from(4001), 8),
    ] {
        let f = close_with(code).await;
        assert_eq!(f.stdout_str(), "bye\n", "{code:?}");
        assert_eq!(f.code, Some(exit), "{code:?}: {}", f.stderr);
        if exit != 0 {
            harness::assert_one_line_error(
                &f,
                &format!("peer closed abnormally: close code {}", u16::from(code)),
            );
            assert!(f.stderr.contains("test reason"), "{}", f.stderr);
        }
    }
}

#[tokio::test]
async fn dropped_connection_without_close_is_abnormal() {
    let server = servers::serve(|mut ws: Ws| async move {
        ws.send(Message::Text("partial".into())).await.unwrap();
        // Drop the TCP connection without a Close frame.
        drop(ws);
    })
    .await;
    let mut b = Bridge::spawn(&[&server.url()]);
    let stdin = b.stdin.take();
    let f = b.finish().await;
    drop(stdin);
    assert_eq!(f.stdout_str(), "partial\n");
    assert_eq!(f.code, Some(8), "{}", f.stderr);
    harness::assert_one_line_error(&f, "without a Close frame");
}

#[tokio::test]
async fn server_ping_is_answered_with_same_payload() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = servers::serve(move |mut ws: Ws| {
        let tx = tx.clone();
        async move {
            ws.send(Message::Ping(b"are you there".to_vec().into()))
                .await
                .unwrap();
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Pong(p) = m {
                    tx.send(p.to_vec()).unwrap();
                    break;
                }
            }
            ws.close(None).await.unwrap();
            while ws.next().await.is_some() {}
        }
    })
    .await;
    let mut b = Bridge::spawn(&[&server.url()]);
    let stdin = b.stdin.take();
    let pong = tokio::time::timeout(harness::LIMIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pong, b"are you there");
    let f = b.finish().await;
    drop(stdin);
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

#[tokio::test]
async fn close_timeout_when_peer_never_answers_close() {
    // A server that ignores our Close and keeps the connection open.
    let server = servers::serve(|ws: Ws| async move {
        let (_tx, mut rx) = ws.split();
        // Keep reading (so TCP stays healthy) but never reply: the raw split stream does not
        // auto-flush a Close reply because we never write.
        tokio::time::sleep(Duration::from_secs(30)).await;
        let _ = rx.next().await;
    })
    .await;
    let f = run(&["--close-timeout", "300ms", &server.url()], b"hello\n").await;
    assert_eq!(f.code, Some(7), "{}", f.stderr);
    harness::assert_one_line_error(
        &f,
        "closing handshake (no Close from the peer) timed out after 300ms",
    );
}

#[tokio::test]
async fn unidirectional_flags() {
    // -u: local → ws only; incoming messages are discarded.
    let server = servers::echo().await;
    let f = run(&["-u", &server.url()], b"a\nb\n").await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert_eq!(f.stdout_str(), "");

    // -U: ws → local only; local input is never read or sent.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = servers::serve(move |mut ws: Ws| {
        let tx = tx.clone();
        async move {
            ws.send(Message::Text("from server".into())).await.unwrap();
            // Whatever the client sends within a moment would arrive before this ping's pong.
            ws.send(Message::Ping(b"sync".to_vec().into()))
                .await
                .unwrap();
            let mut got = Vec::new();
            while let Some(Ok(m)) = ws.next().await {
                match m {
                    Message::Pong(_) => break,
                    other => got.push(other),
                }
            }
            tx.send(got).unwrap();
            ws.close(None).await.unwrap();
            while ws.next().await.is_some() {}
        }
    })
    .await;
    let mut b = Bridge::spawn(&["-U", &server.url()]);
    b.write_stdin(b"should not be sent\n").await;
    let got = rx.recv().await.unwrap();
    assert!(got.is_empty(), "{got:?}");
    let f = b.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert_eq!(f.stdout_str(), "from server\n");
}

#[tokio::test]
async fn no_close_keeps_reading_after_eof() {
    // The server answers only after our input has ended, then closes by itself.
    let server = servers::serve(|mut ws: Ws| async move {
        let first = ws.next().await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        ws.send(Message::Text(
            format!("late reply to {}", first.to_text().unwrap()).into(),
        ))
        .await
        .unwrap();
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
    })
    .await;
    let f = run(&["-n", &server.url()], b"subscribe\n").await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert_eq!(f.stdout_str(), "late reply to subscribe\n");
}

#[tokio::test]
async fn stdout_closed_early_is_a_quiet_exit() {
    let server = servers::serve(|mut ws: Ws| async move {
        for i in 0..100_000 {
            if ws
                .send(Message::Text(format!("line {i}").into()))
                .await
                .is_err()
            {
                return;
            }
        }
    })
    .await;
    let mut b = Bridge::spawn(&[&server.url()]);
    let first = b.read_line().await;
    assert_eq!(first, "line 0");
    b.stdout.take(); // like `| head -1`
    let stdin = b.stdin.take();
    let f = b.finish().await;
    drop(stdin);
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert!(f.stderr.trim().is_empty(), "{}", f.stderr);
}

#[tokio::test]
async fn request_carries_headers_origin_protocol_and_basic_auth() {
    let mut server =
        servers::serve(|mut ws: Ws| async move { while ws.next().await.is_some() {} }).await;
    let url = format!("ws://127.0.0.1:{}/path?x=1", server.port);
    let f = run(
        &[
            "-H",
            "X-Room: 7",
            "-H",
            "Authorization: Bearer tok",
            "--origin",
            "http://example.test",
            "--basic-auth",
            "ignored:because-H-wins",
            &url,
        ],
        b"",
    )
    .await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    let (uri, h) = server.requests.recv().await.unwrap();
    assert_eq!(uri, "/path?x=1");
    assert_eq!(h["x-room"], "7");
    assert_eq!(h["authorization"], "Bearer tok");
    assert_eq!(h["origin"], "http://example.test");

    let mut cmd = harness::command(&[&format!("ws://bob:pw@127.0.0.1:{}/", server.port)]);
    cmd.env("WSBRIDGE_BASIC_AUTH", "alice:s3cret");
    let f = Bridge::spawn_cmd(cmd).finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    let (_, h) = server.requests.recv().await.unwrap();
    // --basic-auth (here from the environment) wins over URL credentials.
    assert_eq!(h["authorization"], "Basic YWxpY2U6czNjcmV0");

    let f = run(&[&format!("ws://bob:pw@127.0.0.1:{}/", server.port)], b"").await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    let (_, h) = server.requests.recv().await.unwrap();
    assert_eq!(h["authorization"], "Basic Ym9iOnB3");
}

#[tokio::test]
async fn subprotocol_is_requested_and_checked() {
    let mut server = servers::echo().await;
    let f = run(&["--protocol", "chat.v2, chat.v1", &server.url()], b"hi\n").await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert_eq!(f.stdout_str(), "hi\n");
    let (_, h) = server.requests.recv().await.unwrap();
    assert_eq!(h["sec-websocket-protocol"], "chat.v2, chat.v1");

    // A server that ignores the requested subprotocol: the handshake is refused, clearly.
    let (port, _conns) = harness::raw::listen().await;
    let f = run(
        &["--protocol", "chat.v2", &format!("ws://127.0.0.1:{port}/")],
        b"",
    )
    .await;
    assert_eq!(f.code, Some(6), "{}", f.stderr);
    harness::assert_one_line_error(
        &f,
        "handshake refused: subprotocol not agreed: Server sent no subprotocol",
    );
}
