//! Secrets (Authorization, Cookie, basic-auth, URL passwords, token query values) never appear in
//! any output, at any verbosity, on success or on failure.

use crate::harness::{self, Bridge, closed_port, servers};

const SECRETS: [&str; 6] = [
    "SECRET1bearer",
    "SECRET2cookie",
    "SECRET3basic",
    "SECRET4urlpass",
    "SECRET5query",
    "SECRET6envauth",
];

fn check(what: &str, f: &harness::Finished) {
    let all = format!("{}\n{}", f.stderr, f.stdout_str());
    for s in SECRETS {
        assert!(!all.contains(s), "{what}: {s} leaked:\n{all}");
    }
    // base64 of the basic-auth pair must not leak either.
    assert!(
        !all.contains("U0VDUkVU"),
        "{what}: base64 credentials leaked:\n{all}"
    );
}

async fn run_with(url: &str, verbosity: &[&str], rust_log: Option<&str>) -> harness::Finished {
    let mut args: Vec<&str> = verbosity.to_vec();
    args.extend([
        "-H",
        "Authorization: Bearer SECRET1bearer",
        "-H",
        "Cookie: sid=SECRET2cookie",
        "--basic-auth",
        "u:SECRET3basic",
        url,
    ]);
    let mut cmd = harness::command(&args);
    if let Some(l) = rust_log {
        cmd.env("RUST_LOG", l);
    }
    harness::run_cmd(cmd, b"hello\n").await
}

#[tokio::test]
async fn no_secret_in_any_output_at_any_verbosity() {
    let server = servers::echo().await;
    let refusing =
        servers::http_responder("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n").await;
    let refused = closed_port();
    let urls = [
        format!(
            "ws://user:SECRET4urlpass@127.0.0.1:{}/x?access_token=SECRET5query&room=1",
            server.port
        ),
        format!("ws://user:SECRET4urlpass@127.0.0.1:{refusing}/x?access_token=SECRET5query"),
        format!("ws://user:SECRET4urlpass@127.0.0.1:{refused}/x?access_token=SECRET5query"),
    ];
    for url in &urls {
        for (v, log) in [
            (&[][..], None),
            (&["-v"][..], None),
            (&["-vv"][..], None),
            (&["-vvv"][..], None),
            (&[][..], Some("trace")),
        ] {
            let f = run_with(url, v, log).await;
            check(&format!("{v:?} RUST_LOG={log:?}"), &f);
        }
    }
    // Successful run really did send (and the echo came back): the check above saw real output.
    let f = run_with(&urls[0], &["-vvv"], None).await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert_eq!(f.stdout_str(), "hello\n");
    assert!(f.stderr.contains("access_token=***"), "{}", f.stderr);
}

#[tokio::test]
async fn basic_auth_from_environment_is_not_in_argv_or_logs() {
    let server = servers::echo().await;
    let mut cmd = harness::command(&["-vvv", &server.url()]);
    cmd.env("WSBRIDGE_BASIC_AUTH", "u:SECRET6envauth");
    let f = Bridge::spawn_cmd(cmd).finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    check("env basic auth", &f);
    // --help shows the variable name but never its value.
    let mut cmd = harness::command(&["--help"]);
    cmd.env("WSBRIDGE_BASIC_AUTH", "u:SECRET6envauth");
    let f = Bridge::spawn_cmd(cmd).finish().await;
    assert!(f.stdout_str().contains("WSBRIDGE_BASIC_AUTH"));
    check("--help", &f);
}

#[tokio::test]
async fn no_log_filter_can_reach_the_raw_handshake() {
    // tungstenite traces the raw upgrade request (headers, URL) under its own targets; a
    // filter naming one of them, more specific than any cap on `tungstenite`, must not print it.
    let server = servers::echo().await;
    let url = format!(
        "ws://127.0.0.1:{}/x?access_token=SECRET5query&room=1",
        server.port
    );
    let filters: [(&[&str], Option<&str>); 9] = [
        (&[], Some("tungstenite::handshake=trace")),
        (&[], Some("tungstenite::handshake::client=trace")),
        (&[], Some("tokio_tungstenite=trace")),
        (&[], Some("tungstenite=trace")),
        (&[], Some("trace")),
        (
            &[],
            Some("warn,tungstenite::handshake::client=trace,tungstenite=debug"),
        ),
        (&["-vvv"], Some("tungstenite::handshake::client=trace")),
        (&["-vvv"], None),
        (
            &["-q"],
            Some("tungstenite::handshake::machine=trace,tungstenite::handshake::client=trace"),
        ),
    ];
    for (v, log) in filters {
        let f = run_with(&url, v, log).await;
        assert_eq!(f.code, Some(0), "{v:?} RUST_LOG={log:?}: {}", f.stderr);
        assert_eq!(f.stdout_str(), "hello\n");
        check(&format!("{v:?} RUST_LOG={log:?}"), &f);
        assert!(!f.stderr.contains("SECRET"), "{v:?} {log:?}:\n{}", f.stderr);
    }
    // The filter is not simply switched off: wsbridge's own events still come through, and so do
    // tungstenite's below trace.
    let f = run_with(&url, &[], Some("trace")).await;
    assert!(f.stderr.contains("access_token=***"), "{}", f.stderr);
}
