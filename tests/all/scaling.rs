//! Scaling out (docs/scaling.md): a real nginx load balancer in front of two wsbridge instances
//! that share their `broadcast:` rooms through a real redis-server, everything on loopback.
//! WebSocket clients connect through nginx only; the test checks that nginx spread them over
//! both instances and that every message reaches every other client of the room exactly once,
//! in the order its sender sent it.
//!
//! The nginx configuration is the one docs/scaling.md shows ([`nginx_conf`]); nginx runs from a
//! temporary directory (`-p DIR -c DIR/nginx.conf -e DIR/error.log -g 'daemon off;'`), as the
//! test's user, or as `nobody` when the tests run as root.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{self, LIMIT};

/// The room the clients join (`broadcast:` rooms are request paths).
const ROOM: &str = "/room";
/// The Redis channel of [`ROOM`] with the default `--broadcast-prefix`.
const CHANNEL: &str = "wsbridge:room:/room";
/// Polling interval of the bounded readiness loops (Redis PING, nginx accepting, subscribers).
const POLL: Duration = Duration::from_millis(20);

/// `name` on `$PATH` or in the sbin directories (nginx lives in /usr/sbin, which a non-root
/// user's `$PATH` often lacks).
fn program(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found: the scaling test runs a real {name}. Install the Debian \
                 package {package} (`apt-get install {package}`; scripts/test and .ci/run \
                 install it when missing)"
            )
        })
}

/// Bounded wait for `cond` (checked every [`POLL`]); panics with `what` after [`LIMIT`].
async fn wait_for<F: Future<Output = bool>>(what: &str, mut cond: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {LIMIT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------------------------
// redis-server

struct Redis {
    port: u16,
    _child: Child,
}

impl Redis {
    /// A redis-server on a free loopback port, without persistence; returns once it answers
    /// PING.
    async fn start() -> Redis {
        let bin = program("redis-server", "redis-server");
        let port = harness::closed_port();
        let mut child = Command::new(bin)
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server");
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("redis-server on port {port} exited before answering PING ({status})");
            }
            if redis_command(port, "PING").await.as_deref() == Some("+PONG") {
                return Redis {
                    port,
                    _child: child,
                };
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server on port {port} did not answer PING within {LIMIT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// How many subscribers `channel` has (`PUBSUB NUMSUB`).
    async fn subscribers(&self, channel: &str) -> Option<u64> {
        let reply = redis_command(self.port, &format!("PUBSUB NUMSUB {channel}")).await?;
        // *2 / $len / channel / :count
        reply.lines().last()?.strip_prefix(':')?.parse().ok()
    }
}

/// One inline command over a fresh connection; the whole reply (`None`: no connection or no
/// complete reply within a second). Replies here are small and arrive in one piece.
async fn redis_command(port: u16, command: &str) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(1), async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(format!("{command}\r\n").as_bytes())
            .await
            .ok()?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 512];
        // PING: one line. PUBSUB NUMSUB: an array of 2 whose last element is ":N\r\n".
        loop {
            let n = s.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            let done = if text.starts_with('*') {
                text.lines().count() >= 4 && text.ends_with("\r\n")
            } else {
                text.ends_with("\r\n")
            };
            if done {
                return Some(text.trim_end().to_string());
            }
        }
    })
    .await
    .ok()
    .flatten()
}

// ---------------------------------------------------------------------------------------------
// wsbridge instances

/// A wsbridge whose stderr lines are all kept (watchable), so the test can wait for a count of
/// log lines spread over several instances.
struct Instance {
    child: Child,
    addr: String,
    lines: watch::Receiver<Vec<String>>,
}

impl Instance {
    async fn start(redis: &Redis) -> Instance {
        let url = redis.url();
        let mut cmd = harness::command(&[
            "-v",
            "--broadcast-via",
            &url,
            "ws-listen:127.0.0.1:0",
            "broadcast:",
        ]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        let mut child = cmd.spawn().expect("spawn wsbridge");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, mut lines) = watch::channel(Vec::new());
        tokio::spawn(async move {
            let mut rd = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = rd.next_line().await {
                tx.send_modify(|v| v.push(line));
            }
        });
        let ready = tokio::time::timeout(
            LIMIT,
            lines.wait_for(|v| v.iter().any(|l| l.starts_with("wsbridge: listening on "))),
        )
        .await
        .map(|r| r.map(|v| v.clone()));
        let Ok(Ok(seen)) = ready else {
            panic!(
                "wsbridge did not announce its address: {:?}",
                lines.borrow()
            );
        };
        let announced = seen
            .iter()
            .find_map(|l| l.strip_prefix("wsbridge: listening on ws "))
            .expect("a ws listener")
            .to_string();
        Instance {
            child,
            addr: harness::host_port(&announced),
            lines,
        }
    }

    /// Stderr lines containing `needle`, so far.
    fn count(&self, needle: &str) -> usize {
        self.lines
            .borrow()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    fn stderr(&self) -> String {
        self.lines.borrow().join("\n")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if !std::thread::panicking() {
            let lines = self.lines.borrow();
            if let Some(l) = lines.iter().find(|l| l.contains("panicked at")) {
                panic!("wsbridge panicked: {l}\nstderr: {lines:#?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// nginx

/// The configuration of docs/scaling.md, with `listen` and the instances' addresses filled in.
/// Every path is relative to the prefix (`-p DIR`), so nginx needs no root and no system
/// directories.
fn nginx_conf(listen: &str, instances: &[&str]) -> String {
    let servers: String = instances
        .iter()
        .map(|a| format!("        server {a};\n"))
        .collect();
    format!(
        r#"# wsbridge behind nginx: WebSocket connections spread over the instances (round robin).
worker_processes auto;
pid nginx.pid;
error_log error.log notice;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;

    upstream wsbridge {{
        # Round robin (the default), its state shared by all worker processes.
        zone wsbridge 64k;
{servers}    }}

    server {{
        listen {listen};

        location / {{
            proxy_pass http://wsbridge;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
        }}
    }}
}}
"#
    )
}

/// The effective user id (from /proc; the tests have no libc binding).
fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    uid.split_whitespace().nth(1)?.parse().ok()
}

/// nobody/nogroup on Debian.
const NOBODY: u32 = 65534;

struct Nginx {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// nginx in front of `instances`, running from a temporary directory; returns once its
    /// port accepts connections.
    async fn start(instances: &[&str]) -> Nginx {
        let bin = program("nginx", "nginx");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = harness::closed_port();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, nginx_conf(&format!("127.0.0.1:{port}"), instances)).unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if euid() == Some(0) {
            // Not as root: as root, the master would keep root and only the workers drop to
            // `nobody`. The directory becomes nobody's so that nginx can write its pid and log.
            for entry in [dir.path().to_path_buf(), dir.path().join("tmp"), conf] {
                std::os::unix::fs::chown(&entry, Some(NOBODY), Some(NOBODY)).unwrap();
            }
            cmd.uid(NOBODY).gid(NOBODY);
        }
        let mut child = cmd.spawn().expect("start nginx");
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr).await;
                }
                panic!(
                    "nginx exited before accepting ({status}): {stderr}\nerror.log: {}",
                    read_log(dir.path())
                );
            }
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Nginx { port, child, dir };
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nginx did not accept on port {port} within {LIMIT:?}; error.log: {}",
                read_log(dir.path())
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("error.log")).unwrap_or_else(|e| format!("({e})"))
}

impl Drop for Nginx {
    /// A fast shutdown (SIGTERM to the master, which stops its workers) rather than SIGKILL,
    /// which would leave the workers running; SIGKILL only if it is not gone in time.
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.start_kill();
            eprintln!(
                "nginx did not stop on SIGTERM; error.log: {}",
                read_log(self.dir.path())
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the test

type Ws = WebSocketStream<TcpStream>;

async fn connect(port: u16, path: &str) -> Ws {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to nginx");
    let url = format!("ws://127.0.0.1:{port}{path}");
    let (ws, resp) = tokio::time::timeout(LIMIT, tokio_tungstenite::client_async(url, tcp))
        .await
        .expect("handshake through nginx in time")
        .expect("handshake through nginx");
    assert_eq!(resp.status(), 101);
    ws
}

/// Read text messages until `done` says so, bounded; returns them in order.
async fn read_until(
    ws: &mut Ws,
    who: usize,
    mut done: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !done(&got) {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => got.push(t.to_string()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => panic!("client {who}: unexpected {other:?}; got so far {got:?}"),
            Err(_) => panic!("client {who}: timed out; got so far {got:?}"),
        }
    }
    got
}

/// Two wsbridge instances share a room through Redis, behind nginx (round robin). Six clients
/// connect through nginx; each sends three messages, then (once every client has every other
/// client's messages) one end marker. Every client gets each other client's messages exactly
/// once and in order, never its own. The end markers travel after every first-round message
/// on every path (the hub here, Redis in publish order), so a duplicate delivered late would
/// arrive before the last marker and be seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_spreads_clients_over_two_instances_sharing_a_room_through_redis() {
    const CLIENTS: usize = 6;
    const EACH: usize = 3;
    let redis = Redis::start().await;
    let a = Instance::start(&redis).await;
    let b = Instance::start(&redis).await;
    let nginx = Nginx::start(&[&a.addr, &b.addr]).await;

    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(connect(nginx.port, ROOM).await);
    }
    // Every client is a member (each instance logs its joins), and both instances are
    // subscribed to the room's channel: only then does a message reach the whole room.
    let joined = " joined (";
    wait_for(
        "every client joined the room on one of the instances",
        || {
            let n = a.count(joined) + b.count(joined);
            async move { n >= CLIENTS }
        },
    )
    .await;
    wait_for(
        "both instances subscribed to the room's channel",
        || async { redis.subscribers(CHANNEL).await == Some(2) },
    )
    .await;
    let (on_a, on_b) = (a.count("/room: accepted"), b.count("/room: accepted"));
    assert_eq!(
        on_a + on_b,
        CLIENTS,
        "every client went through nginx to one instance\nA: {}\nB: {}",
        a.stderr(),
        b.stderr()
    );
    assert!(
        on_a > 0 && on_b > 0,
        "nginx sent all clients to one instance ({on_a} on A, {on_b} on B)"
    );

    // Round 1: every client sends EACH messages, all at once.
    for (i, ws) in clients.iter_mut().enumerate() {
        for k in 0..EACH {
            ws.send(Message::text(format!("c{i} m{k}"))).await.unwrap();
        }
    }
    let expected = (CLIENTS - 1) * EACH;
    let mut received: Vec<Vec<String>> = Vec::new();
    for (i, ws) in clients.iter_mut().enumerate() {
        received.push(read_until(ws, i, |got| got.len() >= expected).await);
    }
    // Round 2: an end marker from everyone, after every first-round message was delivered.
    for (i, ws) in clients.iter_mut().enumerate() {
        ws.send(Message::text(format!("c{i} end"))).await.unwrap();
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        let ends = read_until(ws, i, |got| {
            got.iter().filter(|m| m.ends_with(" end")).count() >= CLIENTS - 1
        })
        .await;
        received[i].extend(ends);
    }

    for (i, got) in received.iter().enumerate() {
        let mut by_sender: HashMap<usize, Vec<String>> = HashMap::new();
        for m in got {
            let (from, what) = m.split_once(' ').expect("cN …");
            let from: usize = from[1..].parse().expect("sender number");
            by_sender.entry(from).or_default().push(what.to_string());
        }
        assert!(
            !by_sender.contains_key(&i),
            "client {i} got its own messages back: {got:?}"
        );
        for j in (0..CLIENTS).filter(|&j| j != i) {
            let want: Vec<String> = (0..EACH)
                .map(|k| format!("m{k}"))
                .chain(["end".to_string()])
                .collect();
            assert_eq!(
                by_sender.get(&j),
                Some(&want),
                "client {i} from client {j}: every message exactly once, in order; all: {got:?}"
            );
        }
    }
    // Clients on each instance got the other instance's messages: through Redis.
    drop(clients);
    drop(nginx);
}
