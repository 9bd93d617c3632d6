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

use crate::harness::{Bridge, LIMIT, command_after, open_fds, peers, servers};

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
/// the sessions that fit under the limit are served (16: (64 − 26 − 3 × 2 threads reserved) / 2;
/// `--threads 2` makes it the same on any machine), later clients
/// get HTTP 503; 60 connections that never say anything use up the rest, so `accept` fails with
/// EMFILE: the server warns once, does not spin, keeps serving the sessions it holds, and serves
/// new clients again once descriptors are free.
#[tokio::test]
async fn out_of_descriptors_the_server_waits_warns_once_and_recovers() {
    let echo = servers::tcp_echo().await;
    let args = ["-v", "-b", "--threads", "2", "ws-listen:127.0.0.1:0", &echo];
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

// ---------------------------------------------------------------------------------------------
// Broken peers: each costs no more than its own session, and is bounded.

/// Wait (bounded) until the process holds `n` descriptors again: what a session held is
/// released once its end was logged.
async fn fds_back_to(pid: u32, n: usize) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while open_fds(pid) != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} descriptors open, {n} before the session",
            open_fds(pid)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP backend that reports on `ended` when each connection it accepted ends (EOF or error
/// while reading); with `flood`, it writes to each connection as fast as it takes data.
async fn watched_backend(flood: bool) -> (String, tokio::sync::mpsc::UnboundedReceiver<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.into_split();
                let writer = tokio::spawn(async move {
                    let chunk = vec![b'x'; 64 * 1024];
                    while flood && w.write_all(&chunk).await.is_ok() {}
                    w
                });
                let mut buf = vec![0u8; 64 * 1024];
                while matches!(r.read(&mut buf).await, Ok(n) if n > 0) {}
                writer.abort();
                let _ = tx.send(());
            });
        }
    });
    (format!("tcp:{addr}"), rx)
}

async fn ended(rx: &mut tokio::sync::mpsc::UnboundedReceiver<()>) {
    tokio::time::timeout(LIMIT, rx.recv())
        .await
        .expect("the backend connection was closed in time");
}

/// Every accepted connection, and every backend connection, has TCP keepalive on (the kernel's
/// keepalive timer runs: `tr` 2 in /proc/net/tcp), so a client or backend that vanished without
/// FIN or RST is found even when the session is idle.
#[tokio::test]
async fn accepted_and_backend_sockets_have_tcp_keepalive() {
    let (backend, _ended) = watched_backend(false).await;
    let backend_port = backend.rsplit(':').next().unwrap().to_string();
    let mut b = Bridge::spawn(&["-v", "-b", "ws-listen:127.0.0.1:0", &backend]);
    let url = b.listening().await;
    let listen_port = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let _client = crate::harness::raw::upgrade(&url).await;
    b.stderr_contains("session started").await;
    let hex_port = |p: &str| format!("{:04X}", p.parse::<u16>().unwrap());
    let (listen, upstream) = (hex_port(&listen_port), hex_port(&backend_port));
    // Lines: sl local rem st tx:rx tr:when …; `st` 01 is ESTABLISHED. The session opens its
    // backend just after it starts: look until both sockets are there (bounded).
    let timer = |tcp: &str, port: &str, remote: bool| {
        tcp.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| {
                let port_of = |a: &str| a.rsplit(':').next().unwrap_or("").to_string();
                let (l, r) = (port_of(f[1]), port_of(f[2]));
                f.len() > 5 && f[3] == "01" && if remote { r == port } else { l == port }
            })
            .map(|f| f[5].split(':').next().unwrap().to_string())
    };
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let found = (timer(&tcp, &listen, false), timer(&tcp, &upstream, true));
        // The options are set just after connect returns: look again until they are.
        if found.0.as_deref() == Some("02") && found.1.as_deref() == Some("02") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "client and backend keepalive timers {found:?}: {tcp}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client that never reads while its backend floods it: wsbridge's writes to it stop, the
/// keepalive finds it silent (here 1 s + 1 s), the session ends, the backend connection is
/// closed, and every descriptor is released.
#[tokio::test]
async fn a_client_that_never_reads_is_ended_by_the_keepalive() {
    let (backend, mut backend_ended) = watched_backend(true).await;
    let args = [
        "-b",
        "--ping-interval",
        "1",
        "--ping-timeout",
        "1",
        "ws-listen:127.0.0.1:0",
        &backend,
    ];
    let mut b = Bridge::spawn(&args);
    let url = b.listening().await;
    let pid = b.child.id().unwrap();
    let before = open_fds(pid);
    let client = crate::harness::raw::upgrade(&url).await;
    b.stderr_contains("peer not responding").await;
    ended(&mut backend_ended).await;
    fds_back_to(pid, before).await;
    drop(client);
}

/// A backend that accepts and never reads, while the client keeps sending: after
/// `--backend-timeout` the client gets Close 1011 "backend not reading" (it is not taken for a
/// dead peer, though wsbridge stopped reading it: here with pings every second), and the log
/// names the backend.
#[tokio::test]
async fn a_backend_that_never_reads_ends_the_session_with_1011() {
    let port = servers::silent().await;
    let backend = format!("tcp:127.0.0.1:{port}");
    let args = [
        "-b",
        "--backend-timeout",
        "3",
        "--ping-interval",
        "1",
        "--ping-timeout",
        "1",
        "ws-listen:127.0.0.1:0",
        &backend,
    ];
    let mut b = Bridge::spawn(&args);
    let url = b.listening().await;
    let host = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_string();
    let tcp = TcpStream::connect(host).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(url.as_str(), tcp)
        .await
        .unwrap();
    let (mut tx, mut rx) = ws.split();
    let sender = tokio::spawn(async move {
        let chunk = bytes::Bytes::from(vec![7u8; 64 * 1024]);
        while tx.send(Message::Binary(chunk.clone())).await.is_ok() {}
    });
    let close = tokio::time::timeout(LIMIT, async {
        while let Some(Ok(m)) = rx.next().await {
            if let Message::Close(f) = m {
                return f;
            }
        }
        None
    })
    .await
    .expect("Close in time")
    .expect("a Close frame");
    sender.abort();
    assert_eq!(
        (u16::from(close.code), close.reason.as_str()),
        (1011, "backend not reading")
    );
    let line = b
        .stderr_contains(&format!("backend {backend}: writing"))
        .await;
    assert!(line.contains("timed out after 3s"), "{line}");
    assert_eq!(
        b.stderr_count("peer not responding"),
        0,
        "{:?}",
        b.stderr_lines
    );
}

/// A client that sends half a frame and resets its connection: the session ends at once and
/// its backend connection is closed, descriptors released; other sessions are not touched.
#[tokio::test]
async fn a_client_reset_mid_message_releases_its_session() {
    use tokio::io::AsyncWriteExt;
    let (backend, mut backend_ended) = watched_backend(false).await;
    let mut b = Bridge::spawn(&["-v", "-b", "ws-listen:127.0.0.1:0", &backend]);
    let url = b.listening().await;
    let pid = b.child.id().unwrap();
    let before = open_fds(pid);
    let mut client = crate::harness::raw::upgrade(&url).await;
    b.stderr_contains("session started").await;
    // A binary frame announcing 1000 bytes, 10 of them sent, then an RST.
    let frame = crate::harness::raw::frame_bytes(0x82, &[1u8; 1000], Some([1, 2, 3, 4]));
    client.write_all(&frame[..18]).await.unwrap();
    client.set_zero_linger().unwrap();
    drop(client);
    ended(&mut backend_ended).await;
    b.stderr_contains("session ended").await;
    fds_back_to(pid, before).await;
}

/// A client that sends to an echo backend and never reads: the echo backend stops taking data
/// only because the client does not take its replies, so the client is the one ended (as a
/// dead peer), not the backend blamed, even with a backend timeout shorter than the keepalive.
#[tokio::test]
async fn an_echo_backend_waiting_for_a_non_reading_client_is_not_blamed() {
    use tokio::io::AsyncWriteExt;
    let echo = servers::tcp_echo().await;
    let args = [
        "-v",
        "-b",
        "--backend-timeout",
        "1",
        "--ping-interval",
        "1",
        "--ping-timeout",
        "1",
        "ws-listen:127.0.0.1:0",
        &echo,
    ];
    let mut b = Bridge::spawn(&args);
    let url = b.listening().await;
    let mut client = crate::harness::raw::upgrade(&url).await;
    let frame = crate::harness::raw::frame_bytes(0x82, &[5u8; 60_000], Some([1, 2, 3, 4]));
    let writer = tokio::spawn(async move { while client.write_all(&frame).await.is_ok() {} });
    b.stderr_contains("peer not responding").await;
    writer.abort();
    assert_eq!(
        b.stderr_count("backend not reading"),
        0,
        "{:?}",
        b.stderr_lines
    );
    assert_eq!(b.stderr_count("took no data"), 0, "{:?}", b.stderr_lines);
}
