//! A server bridge under resource pressure and broken peers (issue 17): running out of file
//! descriptors, the descriptor limit raised at startup and given back to children, and peers
//! that stop in the middle of something. Each test runs the real binary over loopback.

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Bridge, LIMIT, command_after, peers, servers};

type Client = WebSocketStream<TcpStream>;

/// How one of many clients fared against a server out of descriptors.
enum Fate {
    /// Handshake done and its message echoed: the session is held.
    Held(Box<Client>),
    /// Refused: HTTP 503 (no session slot), or closed after the handshake.
    Refused,
    /// Still waiting in the listen backlog when the test stopped waiting.
    Waiting,
}

/// Connect, upgrade and have `text` echoed, each step within `wait`.
async fn try_client(url: &str, text: &str, wait: Duration) -> Fate {
    let host = url.trim_start_matches("ws://").trim_end_matches('/');
    let Ok(Ok(tcp)) = tokio::time::timeout(wait, TcpStream::connect(host)).await else {
        return Fate::Waiting;
    };
    let handshake = tokio_tungstenite::client_async(url, tcp);
    let mut ws = match tokio::time::timeout(wait, handshake).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(_)) => return Fate::Refused,
        Err(_) => return Fate::Waiting,
    };
    if ws.send(Message::text(text)).await.is_err() {
        return Fate::Refused;
    }
    match tokio::time::timeout(wait, ws.next()).await {
        Ok(Some(Ok(Message::Binary(b)))) if b == text.as_bytes() => Fate::Held(Box::new(ws)),
        Ok(_) => Fate::Refused,
        Err(_) => Fate::Waiting,
    }
}

/// CPU time (user + system) the process has used so far, in clock ticks (1/100 s here).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the command name (which is in parentheses): utime is 14th, stime 15th.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The Python `websockets` client (tests/peers/ws_client.py) sends one text message and must
/// get it back, then closes.
async fn python_echo(url: &str, text: &str) {
    let script = format!(r#"[["text","{text}"],["recv",1],["close",1000,""]]"#);
    let out = Command::new(peers::python())
        .arg(peers::script("ws_client.py"))
        .args([url, "--script", &script])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(LIMIT, out)
        .await
        .expect("client in time")
        .expect("run client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let want = format!("binary {}", hex(text.as_bytes()));
    assert!(stdout.contains(&want), "{stdout}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `ulimit -n 64` and 100 clients through `ws-listen:` → `tcp:` (two descriptors per session):
/// the sessions that fit under the limit are served (16: (64 − 32 reserved) / 2), later clients
/// get HTTP 503; 60 connections that never say anything use up the rest, so `accept` fails with
/// EMFILE: the server warns once, does not spin, keeps serving the sessions it holds, and serves
/// new clients again once descriptors are free.
#[tokio::test]
async fn out_of_descriptors_the_server_waits_warns_once_and_recovers() {
    let echo = servers::tcp_echo().await;
    let args = ["-v", "-b", "ws-listen:127.0.0.1:0", &echo];
    let mut b = Bridge::spawn_cmd(command_after("ulimit -n 64", &args));
    let url = b.listening().await;
    b.stderr_contains("serving at most 16 sessions at once")
        .await;
    let host = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_string();
    let pid = b.child.id().expect("running");

    // 40 clients one after the other, each staying: 16 sessions, then 503s.
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..40 {
        match try_client(&url, &format!("c{i}"), LIMIT).await {
            Fate::Held(ws) => held.push(ws),
            Fate::Refused => refused += 1,
            Fate::Waiting => panic!("client {i} waited with descriptors to spare"),
        }
    }
    assert_eq!((held.len(), refused), (16, 24));

    // 60 silent connections: accepted until the descriptors run out.
    let cpu_before = cpu_ticks(pid);
    let mut silent = Vec::new();
    for _ in 0..60 {
        silent.push(TcpStream::connect(&host).await.expect("connect"));
    }
    b.stderr_contains("accept failed: out of file descriptors (limit 64)")
        .await;
    // The sessions it holds are still served while a new client waits.
    for (i, ws) in held.iter_mut().enumerate() {
        let text = format!("again {i}");
        ws.send(Message::text(text.clone())).await.unwrap();
        let echoed = tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("echo in time");
        assert_eq!(echoed.unwrap().unwrap(), Message::binary(text.into_bytes()));
    }
    let waited = try_client(&url, "late", Duration::from_secs(1)).await;
    assert!(
        matches!(waited, Fate::Waiting),
        "served with no descriptor left?"
    );
    // No busy loop while out of descriptors: a spinning accept would use the whole second.
    let used = cpu_ticks(pid) - cpu_before;
    assert!(used < 50, "{used} ticks of CPU while out of descriptors");

    // Everyone leaves; new clients are served again, a third-party one among them.
    drop(silent);
    for mut ws in held {
        let _ = ws.close().await;
        let _ = tokio::time::timeout(LIMIT, async { while ws.next().await.is_some() {} }).await;
    }
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        if let Fate::Held(mut ws) = try_client(&url, "back", Duration::from_secs(2)).await {
            let _ = ws.close().await;
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not serving again");
    }
    python_echo(&url, "python after the episode").await;
    b.stderr_contains("accepting again, after").await;
    assert_eq!(
        b.stderr_count("out of file descriptors"),
        1,
        "{:?}",
        b.stderr_lines
    );
}

/// At startup the soft descriptor limit is raised to the hard limit (logged at -v), and a child
/// started by `exec:` gets the original soft limit back (programs using select() expect it).
#[tokio::test]
async fn the_soft_descriptor_limit_is_raised_and_children_get_the_original() {
    let cmd = command_after(
        "ulimit -Sn 256",
        &["-v", "ws-listen:127.0.0.1:0", "sh-c:ulimit -Sn; cat"],
    );
    let mut b = Bridge::spawn_cmd(cmd);
    let url = b.listening().await;
    let hard = b
        .stderr_contains("descriptor limit: raised from 256 to ")
        .await;
    assert!(hard.contains("(the hard limit)"), "{hard}");
    let script = r#"[["recv",1],["close",1000,""]]"#;
    let out = Command::new(peers::python())
        .arg(peers::script("ws_client.py"))
        .args([url.as_str(), "--script", script])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(LIMIT, out).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("text \"256\""), "{stdout}");
}
