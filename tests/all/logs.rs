//! Logs (src/logging.rs): a session number on every line of a session, `--log-format json`, and
//! journald's `<N>` priorities. The real binary serves several concurrent tokio-tungstenite
//! clients in front of an echo upstream; what it writes on stderr is checked line by line.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::harness::{Bridge, Finished, LIMIT, closed_port, command, run, run_cmd, servers};

const CLIENTS: usize = 4;
const TOKEN: &str = "SECRETtoken4711";
const PASSWORD: &str = "PASSWORDxyz815";

/// The announce line in either format (`wsbridge: listening on KIND ADDR`, or JSON whose
/// message is `listening on KIND ADDR`, or either after `<N>`): ADDR.
async fn listening(b: &mut Bridge) -> String {
    let line = b.stderr_contains("listening on ").await;
    let text = match serde_json::from_str::<Value>(&line) {
        Ok(v) => v["message"].as_str().expect("message").to_string(),
        Err(_) => line.clone(),
    };
    let (_, rest) = text.split_once("listening on ").expect("announce");
    let (_, addr) = rest.split_once(' ').expect("KIND ADDR");
    addr.to_string()
}

/// Run `CLIENTS` WebSocket clients at once against `addr` (`127.0.0.1:PORT`), each on path
/// `/cI`, each sending one message and reading its echo, then closing. Returns each client's
/// local port, by index.
async fn clients(addr: &str) -> Vec<u16> {
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let addr = addr.to_string();
        tasks.push(tokio::spawn(async move {
            let tcp = TcpStream::connect(&addr).await.expect("connect");
            let port = tcp.local_addr().unwrap().port();
            let url = format!("ws://{addr}/c{i}");
            let (mut ws, _) = tokio_tungstenite::client_async(url, tcp)
                .await
                .expect("handshake");
            let text = format!("hello from client {i}");
            ws.send(Message::text(text.clone())).await.unwrap();
            loop {
                match ws.next().await.expect("echo").expect("read") {
                    Message::Text(t) => {
                        assert_eq!(t.as_str(), text);
                        break;
                    }
                    Message::Ping(_) | Message::Pong(_) => {}
                    m => panic!("unexpected {m:?}"),
                }
            }
            ws.close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await
            .unwrap();
            // Read to the end: the Close answer, then the connection's end.
            while let Some(Ok(_)) = ws.next().await {}
            port
        }));
    }
    let mut ports = Vec::new();
    for t in tasks {
        ports.push(
            tokio::time::timeout(LIMIT, t)
                .await
                .expect("client in time")
                .unwrap(),
        );
    }
    ports
}

/// Wait for each client's "session ended" line (one per client path), then stop the bridge
/// with SIGTERM and collect everything it wrote.
async fn end_sessions(mut b: Bridge) -> Finished {
    for i in 0..CLIENTS {
        let line = b.stderr_contains(&format!("/c{i} <-> ")).await;
        assert!(line.contains("session ended"), "{line}");
    }
    b.signal("TERM");
    let f = b.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    f
}

/// The number in `session=N: ` of a text line.
fn text_session(line: &str) -> Option<u64> {
    let rest = &line[line.find("session=")? + "session=".len()..];
    let (n, _) = rest.split_once(':')?;
    n.parse().ok()
}

#[tokio::test]
async fn every_line_of_a_session_carries_its_own_session_number() {
    let upstream = servers::echo().await;
    let mut b = Bridge::spawn(&["-vv", "ws-listen:127.0.0.1:0", &upstream.url()]);
    let addr = crate::harness::host_port(&listening(&mut b).await);
    let ports = clients(&addr).await;
    let f = end_sessions(b).await;
    let lines: Vec<&str> = f.stderr.lines().collect();

    // Each client's lines (they name its port) carry one number, a different one per client.
    let mut ids = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let peer = format!("127.0.0.1:{port}");
        let mine: Vec<&&str> = lines.iter().filter(|l| l.contains(&peer)).collect();
        assert!(mine.len() >= 3, "client {i}: {mine:#?}\n{}", f.stderr);
        let theirs: BTreeSet<Option<u64>> = mine.iter().map(|l| text_session(l)).collect();
        assert_eq!(theirs.len(), 1, "client {i}: {mine:#?}");
        let id = theirs.into_iter().next().unwrap();
        let id = id.unwrap_or_else(|| panic!("client {i} has no session: {mine:#?}"));
        assert!(
            mine.iter().any(|l| l.contains("session started"))
                && mine.iter().any(|l| l.contains("session ended")),
            "{mine:#?}"
        );
        assert!(ids.insert(id), "session {id} used twice:\n{}", f.stderr);
    }

    // The upstream side of each session (its own connection, not naming the client) is in
    // the session too: each session has its own upstream connection line.
    let up = format!("127.0.0.1:{}", upstream.port);
    let upstream_ids: Vec<Option<u64>> = lines
        .iter()
        .filter(|l| l.contains(&up) && l.contains("connected (HTTP 101"))
        .map(|l| text_session(l))
        .collect();
    assert_eq!(
        upstream_ids.iter().copied().collect::<BTreeSet<_>>(),
        ids.iter().map(|&i| Some(i)).collect::<BTreeSet<_>>(),
        "{}",
        f.stderr
    );
    assert_eq!(upstream_ids.len(), CLIENTS, "{}", f.stderr);

    // Lines outside any session are the run's own.
    for l in lines.iter().filter(|l| text_session(l).is_none()) {
        assert!(
            l.starts_with("wsbridge: listening on")
                || l.contains("descriptor limit: ")
                || l.contains("serving at most ")
                || l.contains("sessions run on ")
                || l.contains("signal received")
                || l.contains("no longer accepting"),
            "a line without a session: {l:?}\n{}",
            f.stderr
        );
    }
    // Text keeps its form: `LEVEL session=N: message`.
    let started = lines
        .iter()
        .find(|l| l.contains("session started"))
        .unwrap();
    assert!(started.starts_with(" INFO session="), "{started:?}");
}

/// Parse every line as a JSON object with a level, target and message.
fn json_lines(stderr: &str) -> Vec<serde_json::Map<String, Value>> {
    stderr
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n{stderr}"));
            let o = v
                .as_object()
                .unwrap_or_else(|| panic!("not an object: {l}"));
            let level = o["level"].as_str().expect("level");
            assert!(
                ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level),
                "{l}"
            );
            assert!(o["target"].is_string(), "{l}");
            assert!(o["message"].is_string(), "{l}");
            o.clone()
        })
        .collect()
}

fn assert_no_secrets(stderr: &str) {
    for secret in [TOKEN, PASSWORD] {
        assert!(
            !stderr.contains(secret),
            "{secret} appears in the logs:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn json_lines_carry_the_session_fields_and_no_secrets() {
    let upstream = servers::echo().await;
    let url = format!("ws://user:{PASSWORD}@127.0.0.1:{}/up", upstream.port);
    let auth = format!("Authorization: Bearer {TOKEN}");
    let mut b = Bridge::spawn(&[
        "--log-format",
        "json",
        "-vvv",
        "ws-listen:127.0.0.1:0",
        &url,
        "-H",
        &auth,
    ]);
    let addr = crate::harness::host_port(&listening(&mut b).await);
    let ports = clients(&addr).await;
    let f = end_sessions(b).await;
    assert_no_secrets(&f.stderr);
    let lines = json_lines(&f.stderr);

    // Lines by session number; each session is one client's (peer and label agree).
    let mut by_session: BTreeMap<u64, Vec<&serde_json::Map<String, Value>>> = BTreeMap::new();
    for o in &lines {
        if let Some(id) = o.get("session") {
            by_session
                .entry(id.as_u64().expect("a number"))
                .or_default()
                .push(o);
        }
    }
    assert_eq!(by_session.len(), CLIENTS, "{}", f.stderr);
    let mut seen = BTreeSet::new();
    for (id, os) in &by_session {
        let peer = os[0]["peer"].as_str().expect("peer").to_string();
        let port: u16 = peer.strip_prefix("127.0.0.1:").unwrap().parse().unwrap();
        let i = ports
            .iter()
            .position(|&p| p == port)
            .expect("a client's port");
        assert!(seen.insert(i), "two sessions for client {i}");
        for o in os {
            assert_eq!(
                o["peer"].as_str(),
                Some(peer.as_str()),
                "session {id}: {o:?}"
            );
        }
        let started = os
            .iter()
            .find(|o| o["message"].as_str().unwrap().ends_with("session started"))
            .expect("started");
        let label = started["label"].as_str().expect("label");
        assert!(label.contains(&format!("/c{i}")), "{label}");
        // The end line: counts, close code, duration.
        let end = os
            .iter()
            .find(|o| o["message"].as_str().unwrap().contains("session ended"))
            .unwrap_or_else(|| panic!("session {id} has no end line: {os:#?}"));
        assert_eq!(end["level"], "INFO");
        assert_eq!(end["label"].as_str(), Some(label));
        assert_eq!(end["forward_messages"], 1, "{end:?}");
        assert_eq!(end["reverse_messages"], 1, "{end:?}");
        let text = format!("hello from client {i}");
        assert_eq!(end["forward_bytes"], text.len(), "{end:?}");
        assert_eq!(end["close_code"], 1000, "{end:?}");
        assert!(end["duration_ms"].is_u64(), "{end:?}");
    }
    // Lines outside a session: the run's own.
    for o in lines.iter().filter(|o| !o.contains_key("session")) {
        let m = o["message"].as_str().unwrap();
        assert!(
            m.starts_with("listening on")
                || m.starts_with("descriptor limit: ")
                || m.starts_with("serving at most ")
                || m.starts_with("sessions run on ")
                || m.contains("signal received")
                || m.contains("no longer accepting"),
            "a line without a session: {o:?}"
        );
    }
}

#[tokio::test]
async fn a_json_client_run_logs_no_secrets_and_its_end_line() {
    let upstream = servers::echo().await;
    let url = format!("ws://user:{PASSWORD}@127.0.0.1:{}/", upstream.port);
    let auth = format!("Authorization: Bearer {TOKEN}");
    let f = run(
        &["--log-format", "json", "-vvv", &url, "-H", &auth],
        b"one line\n",
    )
    .await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert_eq!(f.stdout_str(), "one line\n");
    assert_no_secrets(&f.stderr);
    let lines = json_lines(&f.stderr);
    assert!(
        lines
            .iter()
            .any(|o| o["level"] == "TRACE" || o["level"] == "DEBUG")
    );
    let end = lines
        .iter()
        .find(|o| o["message"].as_str().unwrap().contains("session ended"))
        .expect("end line");
    assert!(end["session"].is_u64(), "{end:?}");
    assert_eq!(end["sent_messages"], 1, "{end:?}");
    assert_eq!(end["sent_bytes"], 8, "{end:?}");
    assert_eq!(end["received_messages"], 1, "{end:?}");
    assert_eq!(end["close_code"], 1000, "{end:?}");
    assert!(end["duration_ms"].is_u64(), "{end:?}");
    // The one-line error is a JSON object too.
    let port = closed_port().to_string();
    let f = run(
        &["--log-format", "json", &format!("ws://127.0.0.1:{port}/")],
        b"",
    )
    .await;
    assert_eq!(f.code, Some(4), "{}", f.stderr);
    let lines = json_lines(&f.stderr);
    assert_eq!(lines.len(), 1, "{}", f.stderr);
    assert_eq!(lines[0]["level"], "ERROR");
    assert!(
        lines[0]["message"]
            .as_str()
            .unwrap()
            .contains("connection failed"),
        "{}",
        f.stderr
    );
}

/// A WebSocket client of `ws://ADDR/PATH`.
async fn connect(addr: &str, path: &str) -> servers::Ws {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}{path}"), tcp)
        .await
        .expect("handshake");
    ws
}

/// `<N>` at the start of a line: N.
fn priority(line: &str) -> Option<u8> {
    let rest = line.strip_prefix('<')?;
    let (n, _) = rest.split_once('>')?;
    n.parse().ok()
}

#[tokio::test]
async fn under_journald_lines_start_with_their_priority() {
    let upstream = servers::echo().await;
    let mut cmd = command(&["-vv", "ws-listen:127.0.0.1:0", &upstream.url()]);
    cmd.env("JOURNAL_STREAM", "1:2");
    let mut b = Bridge::spawn_cmd(cmd);
    let announce = b.stderr_contains("listening on").await;
    assert!(
        announce.starts_with("<6>wsbridge: listening on "),
        "{announce}"
    );
    let addr = crate::harness::host_port(&listening(&mut b).await);
    let mut ws = connect(&addr, "/j").await;
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("hi"),
        "echo"
    );
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    b.stderr_contains("/j <-> ws://").await;
    b.signal("TERM");
    let f = b.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    for l in f.stderr.lines() {
        let n = priority(l).unwrap_or_else(|| panic!("no <N>: {l:?}\n{}", f.stderr));
        assert!([3, 4, 6, 7].contains(&n), "{l}");
        // The level is the priority now, not a word.
        for word in ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"] {
            assert!(!l[3..].starts_with(word), "{l}");
            assert!(!l[3..].starts_with(&format!(" {word}")), "{l}");
        }
    }
    let find = |needle: &str| {
        f.stderr
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?}:\n{}", f.stderr))
    };
    assert!(find("/j: session started").starts_with("<6>session="));
    assert!(find("TCP connected to").starts_with("<7>session="));

    // A warning: the backend cannot be reached, the listener logs why (<4>).
    let mut cmd = command(&[
        "ws-listen:127.0.0.1:0",
        &format!("tcp:127.0.0.1:{}", closed_port()),
    ]);
    cmd.env("JOURNAL_STREAM", "1:2");
    let mut b = Bridge::spawn_cmd(cmd);
    let addr = crate::harness::host_port(&listening(&mut b).await);
    let mut ws = connect(&addr, "/w").await;
    while let Some(Ok(_)) = ws.next().await {}
    let warn = b.stderr_contains("/w: ").await;
    assert!(warn.starts_with("<4>session="), "{warn}");
    b.signal("TERM");
    b.finish().await;

    // The final error line.
    let mut cmd = command(&[&format!("ws://127.0.0.1:{}/", closed_port())]);
    cmd.env("JOURNAL_STREAM", "1:2");
    let f = run_cmd(cmd, b"").await;
    assert_eq!(f.code, Some(4), "{}", f.stderr);
    let last = f.stderr.lines().last().expect("an error line");
    assert!(last.starts_with("<3>wsbridge: "), "{}", f.stderr);
    assert!(last.contains("connection failed"), "{last}");
}
