//! Every error class: one line on stderr naming the cause, its documented exit code, no panic,
//! no hang (each run is bounded by the harness limit).

use crate::harness::{self, assert_one_line_error, closed_port, run, servers};

#[tokio::test]
async fn usage_errors_exit_2_with_suggestions() {
    let table: &[(&[&str], &str)] = &[
        (
            &["tcp-lisen:127.0.0.1:0", "ws://127.0.0.1:1/"],
            "did you mean 'tcp-listen:'?",
        ),
        (
            &["unix-lsten:/tmp/x", "ws://127.0.0.1:1/"],
            "did you mean 'unix-listen:'?",
        ),
        (&["ws://"], "bad URL"),
        (
            &["http://127.0.0.1:1/x"],
            "did you mean 'ws://127.0.0.1:1/x'?",
        ),
        (&["127.0.0.1:8080"], "did you mean 'tcp:127.0.0.1:8080'"),
        (
            &["ws://127.0.0.1:1/", "tcp-l:127.0.0.1:0"],
            "a listener must be the first address",
        ),
        (
            &["-H", "@/nonexistent/headers", "ws://127.0.0.1:1/"],
            "cannot read header file",
        ),
        (
            &["-H", "no colon here", "ws://127.0.0.1:1/"],
            "expected 'Name: value'",
        ),
    ];
    for (args, needle) in table {
        let f = run(args, b"").await;
        assert_eq!(f.code, Some(2), "{args:?}: {}", f.stderr);
        assert_one_line_error(&f, needle);
    }
}

#[tokio::test]
async fn bad_flag_is_a_usage_error() {
    let f = run(&["--no-such-flag", "ws://127.0.0.1:1/"], b"").await;
    assert_eq!(f.code, Some(2));
    assert!(f.stderr.contains("--no-such-flag"), "{}", f.stderr);
    let f = run(&["-t", "-b", "ws://127.0.0.1:1/"], b"").await;
    assert_eq!(f.code, Some(2));
    assert!(f.stderr.contains("cannot be used with"), "{}", f.stderr);
}

#[tokio::test]
async fn dns_failure_exits_3() {
    // `.invalid` never resolves (RFC 2606).
    let f = run(&["ws://no-such-host.invalid/"], b"").await;
    assert_eq!(f.code, Some(3), "{}", f.stderr);
    assert_one_line_error(&f, "ws://no-such-host.invalid/: cannot resolve host");
}

#[tokio::test]
async fn connection_refused_exits_4() {
    let port = closed_port();
    let f = run(&[&format!("ws://127.0.0.1:{port}/")], b"").await;
    assert_eq!(f.code, Some(4), "{}", f.stderr);
    assert_one_line_error(&f, "connection failed: Connection refused");
    let f = run(&["-", &format!("tcp:127.0.0.1:{port}")], b"").await;
    assert_eq!(f.code, Some(4), "{}", f.stderr);
    let f = run(&["-", "unix:/nonexistent/wsbridge.sock"], b"").await;
    assert_eq!(f.code, Some(4), "{}", f.stderr);
    assert_one_line_error(&f, "unix:/nonexistent/wsbridge.sock: connection failed");
}

#[tokio::test]
async fn handshake_refused_exits_6_with_status() {
    let port = servers::http_responder("HTTP/1.1 401 Unauthorized\r\nContent-Length: 14\r\nConnection: close\r\n\r\ntoken expired\n").await;
    let f = run(&[&format!("ws://127.0.0.1:{port}/api")], b"").await;
    assert_eq!(f.code, Some(6), "{}", f.stderr);
    assert_one_line_error(
        &f,
        &format!(
            "ws://127.0.0.1:{port}/api: handshake refused: HTTP 401 Unauthorized: token expired"
        ),
    );

    let port = servers::http_responder(
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    let f = run(&[&format!("ws://127.0.0.1:{port}/")], b"").await;
    assert_eq!(f.code, Some(6), "{}", f.stderr);
    assert_one_line_error(&f, "handshake refused: HTTP 200 OK");

    let port = servers::http_responder(
        "HTTP/1.1 302 Found\r\nLocation: ws://elsewhere.test/\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let f = run(&[&format!("ws://127.0.0.1:{port}/")], b"").await;
    assert_eq!(f.code, Some(6), "{}", f.stderr);
    assert_one_line_error(&f, "(redirect to ws://elsewhere.test/)");
}

#[tokio::test]
async fn silent_server_times_out_with_exit_7() {
    let port = servers::silent().await;
    let f = run(
        &[
            "--connect-timeout",
            "500ms",
            &format!("ws://127.0.0.1:{port}/"),
        ],
        b"",
    )
    .await;
    assert_eq!(f.code, Some(7), "{}", f.stderr);
    assert_one_line_error(&f, "WebSocket handshake timed out after 500ms");
    // TLS handshake against a server that never speaks TLS.
    let f = run(
        &[
            "--connect-timeout",
            "500ms",
            &format!("wss://127.0.0.1:{port}/"),
        ],
        b"",
    )
    .await;
    assert_eq!(f.code, Some(7), "{}", f.stderr);
    assert_one_line_error(&f, "TLS handshake timed out after 500ms");
}

#[tokio::test]
async fn tls_to_a_plain_server_is_a_tls_error() {
    // A plain-HTTP server that answers right away, before any request arrives.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut tcp, _)) = listener.accept().await {
            let _ = tcp
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let f = run(&[&format!("wss://127.0.0.1:{port}/")], b"").await;
    assert_eq!(f.code, Some(5), "{}", f.stderr);
    assert_one_line_error(&f, "TLS failed");
}

#[tokio::test]
async fn listen_failure_exits_10() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let f = run(&[&format!("tcp-listen:127.0.0.1:{port}"), "mirror:"], b"").await;
    assert_eq!(f.code, Some(10), "{}", f.stderr);
    assert_one_line_error(&f, "cannot listen");
}

#[tokio::test]
async fn oversize_local_line_exits_11() {
    let server = servers::echo().await;
    let f = run(
        &["--max-message-size", "16", &server.url()],
        b"short\nthis line is much longer than sixteen bytes\n",
    )
    .await;
    assert_eq!(f.code, Some(11), "{}", f.stderr);
    assert_eq!(f.stdout_str(), "short\n");
    assert_one_line_error(&f, "longer than --max-message-size (16 bytes)");
}

#[tokio::test]
async fn terminal_escapes_from_a_server_are_shown_escaped() {
    // A refusal whose body would set the window title, ring the bell and clear the screen.
    let port = servers::http_responder(
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 28\r\nConnection: close\r\n\r\n\x1b]0;pwned\x07\x1b[2Jgo away\u{9b}31m\r\n",
    )
    .await;
    let f = run(&[&format!("ws://127.0.0.1:{port}/")], b"").await;
    assert_eq!(f.code, Some(6), "{}", f.stderr);
    assert_no_terminal_controls(&f.stderr);
    assert_one_line_error(
        &f,
        "handshake refused: HTTP 403 Forbidden: \\x1b]0;pwned\\x07\\x1b[2Jgo away\\u{9b}31m",
    );
    // The same in the reason phrase, as a listener logs it for its client.
    let port = servers::http_responder(
        "HTTP/1.1 401 \x1b]0;pwned\x07\x1b[2J\r\nContent-Length: 9\r\nConnection: close\r\n\r\n\x1b[5mhi\x07\r\n",
    )
    .await;
    let f = run(&[&format!("ws://127.0.0.1:{port}/")], b"").await;
    assert_eq!(f.code, Some(6), "{}", f.stderr);
    assert_no_terminal_controls(&f.stderr);
    assert_one_line_error(&f, "handshake refused");
    let port = servers::http_responder(
        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 11\r\nConnection: close\r\n\r\n\x1b[5mhi\x07\x1b[0m",
    )
    .await;
    let mut b = harness::Bridge::spawn(&[
        "-E",
        "tcp-listen:127.0.0.1:0",
        &format!("ws://127.0.0.1:{port}/"),
    ]);
    let addr = b.listening().await;
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    harness::read_all(&mut tcp).await;
    let line = b.stderr_contains("handshake refused").await;
    assert!(
        line.contains("HTTP 401 Unauthorized: \\x1b[5mhi\\x07\\x1b[0m"),
        "{line}"
    );
    assert_no_terminal_controls(&line);
}

/// No ESC, BEL, CSI (C1) or other control character but the line breaks.
fn assert_no_terminal_controls(s: &str) {
    assert!(
        !s.chars().any(|c| c.is_control() && c != '\n'),
        "control characters reached stderr: {s:?}"
    );
}
