//! Listeners: tcp-listen and unix-listen in front of a WebSocket (the seed command lines),
//! one upstream connection per client, --oneshot, announce lines, Unix socket file hygiene,
//! a failing upstream not taking the listener down, and byte-to-byte half-close.

use std::os::unix::fs::PermissionsExt;

use crate::harness::servers::{self, Ws};
use crate::harness::{self, Bridge, LIMIT, read_all};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

/// Send `lines`, half-close, and return everything read back.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, lines: &str) -> String {
    s.write_all(lines.as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
    String::from_utf8(read_all(s).await).unwrap()
}

#[tokio::test]
async fn seed_tcp_listen_to_ws_with_bearer_header() {
    let mut server = servers::echo().await;
    let url = format!("ws://127.0.0.1:{}/api/v4/websocket", server.port);
    let mut b = Bridge::spawn(&[
        "--text",
        "--exit-on-eof",
        "tcp-listen:127.0.0.1:0",
        &url,
        "-H",
        "Authorization: Bearer TOKEN",
    ]);
    let addr = b.listening().await;

    // Two clients at once: each gets its own WebSocket connection.
    let c1 = TcpStream::connect(&addr).await.unwrap();
    let c2 = TcpStream::connect(&addr).await.unwrap();
    let (r1, r2) = tokio::join!(exchange(c1, "a1\na2\n"), exchange(c2, "b1\n"));
    assert_eq!(r1, "a1\na2\n");
    assert_eq!(r2, "b1\n");
    assert_eq!(server.connections(), 2);
    for _ in 0..2 {
        let (uri, h) = server.requests.recv().await.unwrap();
        assert_eq!(uri, "/api/v4/websocket");
        assert_eq!(h["authorization"], "Bearer TOKEN");
    }
    // The listener is still serving.
    let r3 = exchange(TcpStream::connect(&addr).await.unwrap(), "again\n").await;
    assert_eq!(r3, "again\n");
}

#[tokio::test]
async fn scheme_style_client_reads_replies_line_by_line() {
    // A client like a Scheme program: writes a request line, reads the reply line, repeats.
    let server = servers::echo().await;
    let mut b = Bridge::spawn(&["-t", "-E", "tcp-l:127.0.0.1:0", &server.url()]);
    let addr = b.listening().await;
    let s = TcpStream::connect(&addr).await.unwrap();
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r).lines();
    for i in 0..50 {
        let req = format!("{{\"seq\":{i},\"action\":\"ping\"}}");
        w.write_all(format!("{req}\n").as_bytes()).await.unwrap();
        let line = tokio::time::timeout(LIMIT, r.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(line, req);
    }
}

#[tokio::test]
async fn oneshot_serves_one_client_and_exits_with_its_status() {
    let server = servers::echo().await;
    let mut b = Bridge::spawn(&[
        "--oneshot",
        "--announce-stdout",
        "tcp-listen:127.0.0.1:0",
        &server.url(),
    ]);
    let addr = b.listening().await;
    assert_eq!(
        b.read_line().await,
        format!("wsbridge: listening on tcp {addr}")
    );
    assert_eq!(
        exchange(TcpStream::connect(&addr).await.unwrap(), "x\n").await,
        "x\n"
    );
    let f = b.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

#[tokio::test]
async fn unix_listen_seed_mode_stale_file_and_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.sock");
    // A stale socket file left by a dead process.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());

    let server = servers::echo().await;
    let spec = format!("unix-listen:{}", path.display());
    let mut b = Bridge::spawn(&[
        "--text",
        "--exit-on-eof",
        "--unix-mode",
        "0600",
        &spec,
        &server.url(),
    ]);
    assert_eq!(b.listening().await, path.display().to_string());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        exchange(UnixStream::connect(&path).await.unwrap(), "hello\nworld\n").await,
        "hello\nworld\n"
    );

    // A second instance must not steal a live socket, and the first keeps serving.
    let f = harness::run(&[&spec, &server.url()], b"").await;
    assert_eq!(f.code, Some(10), "{}", f.stderr);
    harness::assert_one_line_error(&f, "another process is listening");
    assert_eq!(
        exchange(UnixStream::connect(&path).await.unwrap(), "still\n").await,
        "still\n"
    );

    // SIGTERM: stop, remove our socket file, exit 0.
    b.signal("TERM");
    let f = b.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert!(!path.exists(), "socket file left behind");
}

#[tokio::test]
async fn unix_listen_never_removes_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("precious.txt");
    std::fs::write(&path, "data").unwrap();
    let f = harness::run(&[&format!("unix-l:{}", path.display()), "mirror:"], b"").await;
    assert_eq!(f.code, Some(10), "{}", f.stderr);
    harness::assert_one_line_error(&f, "not a socket");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
}

/// Device and inode of what `path` names.
fn file_id(path: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.dev(), m.ino())
}

#[tokio::test]
async fn unix_listen_refuses_a_live_socket_whose_backlog_is_full() {
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.sock");
    // A live server that is not accepting: backlog 0 and one connection already waiting, so a
    // further connect fails with EAGAIN rather than ECONNREFUSED.
    let busy = std::os::unix::net::UnixListener::bind(&path).unwrap();
    // SAFETY: listen(2) on a socket we own; a second listen only changes the backlog.
    assert_eq!(unsafe { libc::listen(busy.as_raw_fd(), 0) }, 0);
    let _waiting = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let probe = UnixStream::connect(&path).await.map(drop).unwrap_err();
    assert_eq!(probe.raw_os_error(), Some(libc::EAGAIN), "{probe}");
    let before = file_id(&path);

    let f = harness::run(
        &[&format!("unix-listen:{}", path.display()), "mirror:"],
        b"",
    )
    .await;
    assert_eq!(f.code, Some(10), "{}", f.stderr);
    harness::assert_one_line_error(&f, "backlog is full");
    // Its socket file is untouched, and it can still take its clients.
    assert_eq!(file_id(&path), before);
    busy.set_nonblocking(true).unwrap();
    assert!(busy.accept().is_ok(), "the waiting client was lost");
    drop(std::os::unix::net::UnixStream::connect(&path).unwrap());
}

#[tokio::test]
async fn stopping_an_instance_leaves_a_socket_bound_later_at_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.sock");
    let spec = format!("unix-listen:{}", path.display());
    let mut a = Bridge::spawn(&[&spec, "mirror:"]);
    a.listening().await;
    // The path is taken over: A's file is removed and B binds a new socket there.
    std::fs::remove_file(&path).unwrap();
    let mut b = Bridge::spawn(&[&spec, "mirror:"]);
    b.listening().await;
    let bs = file_id(&path);
    a.signal("TERM");
    let f = a.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert_eq!(file_id(&path), bs, "B's socket file was removed by A");
    assert_eq!(
        exchange(UnixStream::connect(&path).await.unwrap(), "b\n").await,
        "b\n"
    );
    // B, stopped, removes its own socket file.
    b.signal("TERM");
    assert_eq!(b.finish().await.code, Some(0));
    assert!(!path.exists(), "B left its socket file behind");
}

#[tokio::test]
async fn stopping_an_instance_never_removes_a_file_put_at_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.sock");
    let mut a = Bridge::spawn(&[&format!("unix-listen:{}", path.display()), "mirror:"]);
    a.listening().await;
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "precious").unwrap();
    a.signal("TERM");
    let f = a.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[tokio::test]
async fn failing_upstream_closes_that_client_not_the_listener() {
    // The upstream refuses its first handshake with 503 and accepts later ones.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((tcp, _)) = listener.accept().await {
            n += 1;
            let refuse = n == 1;
            tokio::spawn(async move {
                let cb = move |_: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                    if refuse {
                        let mut e = ErrorResponse::new(Some("maintenance".into()));
                        *e.status_mut() =
                            tokio_tungstenite::tungstenite::http::StatusCode::SERVICE_UNAVAILABLE;
                        Err(e)
                    } else {
                        Ok(resp)
                    }
                };
                if let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, cb).await {
                    while let Some(Ok(m)) = ws.next().await {
                        if m.is_text() {
                            ws.send(m).await.unwrap();
                        }
                    }
                }
            });
        }
    });
    let mut b = Bridge::spawn(&["tcp-listen:127.0.0.1:0", &format!("ws://127.0.0.1:{port}/")]);
    let addr = b.listening().await;
    // First client: upstream refuses; the client is closed and the reason is logged.
    let first = exchange(TcpStream::connect(&addr).await.unwrap(), "lost\n").await;
    assert_eq!(first, "");
    let line = b.stderr_contains("handshake refused").await;
    assert!(
        line.contains("HTTP 503") && line.contains("tcp client 127.0.0.1:"),
        "{line}"
    );
    // Second client works: the listener is still there.
    assert_eq!(
        exchange(TcpStream::connect(&addr).await.unwrap(), "ok\n").await,
        "ok\n"
    );
}

#[tokio::test]
async fn tcp_listen_to_mirror_is_a_line_echo_server() {
    let mut b = Bridge::spawn(&["tcp-listen:127.0.0.1:0", "mirror:"]);
    let addr = b.listening().await;
    assert_eq!(
        exchange(TcpStream::connect(&addr).await.unwrap(), "1\n2\n\n3").await,
        "1\n2\n\n3\n"
    );
    let mut b = Bridge::spawn(&["-b", "tcp-listen:127.0.0.1:0", "mirror:"]);
    let addr = b.listening().await;
    let data = harness::random_bytes(1 << 20, 3);
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let (mut r, mut w) = s.split();
    let (_, got) = tokio::join!(
        async {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
        },
        read_all(&mut r)
    );
    assert!(got == data);
}

#[tokio::test]
async fn byte_to_byte_passes_half_close_through() {
    // Backend: reads to EOF, then answers with the byte count (needs half-close to work).
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bport = backend.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = backend.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let got = read_all(&mut r).await;
                w.write_all(format!("got {} bytes\n", got.len()).as_bytes())
                    .await
                    .unwrap();
            });
        }
    });
    let mut b = Bridge::spawn(&["tcp-listen:127.0.0.1:0", &format!("tcp:127.0.0.1:{bport}")]);
    let addr = b.listening().await;
    assert_eq!(
        exchange(TcpStream::connect(&addr).await.unwrap(), "12345").await,
        "got 5 bytes\n"
    );
}

#[tokio::test]
async fn a_tcp_clients_half_close_reaches_an_exec_child_on_a_pipe_or_a_pty() {
    // `sort` answers only at the end of its input.
    for pty in [false, true] {
        let mut args = vec!["tcp-listen:127.0.0.1:0", "exec:sort"];
        if pty {
            args.insert(0, "--pty");
        }
        let mut b = Bridge::spawn(&args);
        let addr = b.listening().await;
        let got = exchange(TcpStream::connect(&addr).await.unwrap(), "b\nc\na\n").await;
        assert_eq!(got, "a\nb\nc\n", "pty: {pty}");
    }
}

#[tokio::test]
async fn messages_to_mirror_keep_their_types() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = servers::serve(move |mut ws: Ws| {
        let tx = tx.clone();
        async move {
            let sent = vec![
                Message::Text("text".into()),
                Message::Binary(vec![0, 159, 146, 150].into()),
                Message::Text("".into()),
                Message::Binary(Vec::new().into()),
            ];
            for m in &sent {
                ws.send(m.clone()).await.unwrap();
            }
            let mut got = Vec::new();
            while got.len() < sent.len() {
                match ws.next().await {
                    Some(Ok(m)) if m.is_text() || m.is_binary() => got.push(m),
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
            tx.send((sent, got)).unwrap();
            ws.close(None).await.unwrap();
            while ws.next().await.is_some() {}
        }
    })
    .await;
    let f = harness::run(&[&server.url(), "mirror:"], b"").await;
    let (sent, got) = rx.recv().await.unwrap();
    assert_eq!(sent, got);
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

#[tokio::test]
async fn exit_on_eof_ends_byte_to_byte_session_at_first_eof() {
    // Backend that never closes and never answers: only -E lets the client see the end.
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bport = backend.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = backend.accept().await {
            held.push(s);
        }
    });
    let mut b = Bridge::spawn(&[
        "-E",
        "tcp-listen:127.0.0.1:0",
        &format!("tcp:127.0.0.1:{bport}"),
    ]);
    let addr = b.listening().await;
    assert_eq!(
        exchange(TcpStream::connect(&addr).await.unwrap(), "bye").await,
        ""
    );
}

#[tokio::test]
async fn quiet_suppresses_the_announce_line_but_not_announce_stdout() {
    let mut b = Bridge::spawn(&[
        "-q",
        "--announce-stdout",
        "tcp-listen:127.0.0.1:0",
        "mirror:",
    ]);
    let line = b.read_line().await;
    assert!(
        line.starts_with("wsbridge: listening on tcp 127.0.0.1:"),
        "{line}"
    );
    b.signal("TERM");
    let f = b.finish().await;
    assert_eq!(f.code, Some(0));
    assert_eq!(f.stderr, "");
}

#[tokio::test]
async fn server_close_gives_the_tcp_client_eof() {
    // The client never closes its side: the WebSocket server's Close alone ends the session.
    let server = servers::serve(|mut ws: Ws| async move {
        let m = ws.next().await.unwrap().unwrap();
        ws.send(m).await.unwrap();
        ws.send(Message::Text("bye".into())).await.unwrap();
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
    })
    .await;
    let mut b = Bridge::spawn(&["tcp-listen:127.0.0.1:0", &server.url()]);
    let addr = b.listening().await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"hello\n").await.unwrap();
    let got = read_all(&mut s).await;
    assert_eq!(String::from_utf8(got).unwrap(), "hello\nbye\n");
}

#[tokio::test]
async fn ws_client_gets_1011_when_the_far_side_cannot_be_opened() {
    let port = harness::closed_port();
    let mut b = Bridge::spawn(&["ws-listen:127.0.0.1:0", &format!("tcp:127.0.0.1:{port}")]);
    let url = b.listening().await;
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_string();
    let tcp = TcpStream::connect(&addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), tcp)
        .await
        .unwrap();
    let msg = tokio::time::timeout(LIMIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Close(Some(frame)) = msg else {
        panic!("expected Close, got {msg:?}")
    };
    assert_eq!(u16::from(frame.code), 1011);
    assert_eq!(frame.reason.as_str(), "upstream unavailable");
    // Reading on sends our Close reply; the server then hangs up.
    assert!(
        tokio::time::timeout(LIMIT, ws.next())
            .await
            .unwrap()
            .is_none()
    );
    let line = b.stderr_contains("connection failed").await;
    assert!(line.contains(&format!("tcp:127.0.0.1:{port}")), "{line}");
}

#[tokio::test]
async fn server_shorthand_bridges_one_client_to_stdio() {
    // websocat's `-s PORT`: a WebSocket server on 127.0.0.1 whose one client talks to stdio.
    let mut b = Bridge::spawn(&["-s", "0"]);
    let url = b.listening().await;
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_string();
    let tcp = TcpStream::connect(&addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), tcp)
        .await
        .unwrap();
    ws.send(Message::Text("to stdout".into())).await.unwrap();
    assert_eq!(b.read_line().await, "to stdout");
    b.write_stdin(b"from stdin\n").await;
    let m = tokio::time::timeout(LIMIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m, Message::Text("from stdin".into()));
    ws.close(None).await.unwrap();
    let f = b.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

#[tokio::test]
async fn oneshot_is_not_held_up_by_silent_connections() {
    // Four clients connect and say nothing; with handshakes one after another, each would hold
    // the real client up for the whole --handshake-timeout.
    let mut b = Bridge::spawn(&[
        "--oneshot",
        "--handshake-timeout",
        "30s",
        "ws-listen:127.0.0.1:0",
        "mirror:",
    ]);
    let url = b.listening().await;
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_string();
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(&addr).await.unwrap());
    }
    let served = async {
        let tcp = TcpStream::connect(&addr).await.unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), tcp)
            .await
            .unwrap();
        ws.send(Message::Text("prompt".into())).await.unwrap();
        let echo = ws.next().await.unwrap().unwrap();
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
        echo
    };
    // Well within one handshake timeout (30 s).
    let echo = tokio::time::timeout(std::time::Duration::from_secs(5), served)
        .await
        .expect("the real client was held up by the silent connections");
    assert_eq!(echo, Message::Text("prompt".into()));
    // The silent connections were dropped once the session was established.
    for mut s in silent {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(LIMIT, tokio::io::AsyncReadExt::read(&mut s, &mut buf))
            .await
            .expect("a silent connection was kept open");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    }
    let f = b.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}
