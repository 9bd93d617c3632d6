//! systemd integration, tested without systemd: a Unix datagram socket stands in for systemd's
//! notification socket (NOTIFY_SOCKET), and sockets are passed to the real binary as fds 3 and 4
//! with LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES, exactly as systemd passes them. Covered: READY=1
//! once listening (or, with --ready-after-connect, once the upstream WebSocket is up), STOPPING=1
//! on SIGTERM, WATCHDOG=1 at half of WATCHDOG_USEC, path and abstract notification sockets,
//! sd-listen: for TCP and Unix sockets by name, inetd: on a connected socket, and exec: children
//! not inheriting any of it.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::Stdio;

use crate::harness::servers;
use crate::harness::{self, Bridge, LIMIT, read_all};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixDatagram, UnixStream};
use tokio::process::Command;

/// Send `lines`, half-close, and return everything read back.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, lines: &str) -> String {
    s.write_all(lines.as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
    String::from_utf8(read_all(s).await).unwrap()
}

/// A stand-in for systemd's notification socket.
struct Systemd {
    socket: UnixDatagram,
    /// The NOTIFY_SOCKET value.
    addr: String,
    _dir: Option<tempfile::TempDir>,
}

impl Systemd {
    /// A socket file in a temporary directory.
    fn path() -> Systemd {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        Systemd {
            socket: UnixDatagram::bind(&path).unwrap(),
            addr: path.display().to_string(),
            _dir: Some(dir),
        }
    }

    /// A Linux abstract-namespace socket (`@name`).
    fn abstract_name() -> Systemd {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "wsbridge-test-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        );
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let std = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
        std.set_nonblocking(true).unwrap();
        Systemd {
            socket: UnixDatagram::from_std(std).unwrap(),
            addr: format!("@{name}"),
            _dir: None,
        }
    }

    /// The next notification, bounded.
    async fn next(&self) -> String {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(LIMIT, self.socket.recv(&mut buf))
            .await
            .expect("no notification in time")
            .unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    /// A notification already queued, if any.
    fn pending(&self) -> Option<String> {
        let mut buf = vec![0u8; 4096];
        match self.socket.try_recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) => panic!("{e}"),
        }
    }

    /// wsbridge with NOTIFY_SOCKET pointing here (and no other systemd variables).
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = harness::command(args);
        clear_systemd_env(&mut cmd);
        cmd.env("NOTIFY_SOCKET", &self.addr);
        cmd
    }
}

fn clear_systemd_env(cmd: &mut Command) {
    for var in [
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
    ] {
        cmd.env_remove(var);
    }
}

/// wsbridge started the way systemd starts an activated service: `fds` placed at 3, 4, …,
/// LISTEN_FDS and LISTEN_FDNAMES set, and LISTEN_PID set to the pid of wsbridge itself (through
/// `sh -c 'LISTEN_PID=$$ exec …'`: the shell's pid is the one wsbridge keeps).
fn activated(args: &[&str], fds: &[RawFd], names: Option<&str>) -> Command {
    assert!(fds.len() <= 4);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$ exec "$0" "$@""#)
        .arg(harness::bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    clear_systemd_env(&mut cmd);
    cmd.env("LISTEN_FDS", fds.len().to_string());
    if let Some(names) = names {
        cmd.env("LISTEN_FDNAMES", names);
    }
    let mut from = [-1 as RawFd; 4];
    from[..fds.len()].copy_from_slice(fds);
    let n = fds.len();
    // SAFETY: only async-signal-safe calls (fcntl, dup2, close) on a fixed-size array; no
    // allocation between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // First out of the way (above 100), then into place: a source may sit at a target.
            let mut high = [-1 as RawFd; 4];
            for (h, &fd) in high.iter_mut().zip(&from[..n]) {
                *h = libc::fcntl(fd, libc::F_DUPFD, 100);
                if *h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (target, &h) in (3 as RawFd..).zip(&high[..n]) {
                // dup2 clears close-on-exec on the new descriptor.
                if libc::dup2(h, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(h);
            }
            Ok(())
        });
    }
    cmd
}

#[tokio::test]
async fn ready_once_the_listener_is_bound() {
    let sd = Systemd::path();
    let mut b = Bridge::spawn_cmd(sd.command(&["tcp-listen:127.0.0.1:0", "mirror:"]));
    assert_eq!(sd.next().await, "READY=1");
    // READY=1 means: clients can connect now.
    let addr = b.listening().await;
    assert_eq!(
        exchange(TcpStream::connect(&addr).await.unwrap(), "a\nb\n").await,
        "a\nb\n"
    );
    // READY=1 is sent once, not per client.
    assert_eq!(sd.pending(), None);
}

#[tokio::test]
async fn stopping_on_sigterm_then_exit_0() {
    let sd = Systemd::abstract_name();
    let mut b = Bridge::spawn_cmd(sd.command(&["tcp-listen:127.0.0.1:0", "mirror:"]));
    assert_eq!(sd.next().await, "READY=1");
    b.listening().await;
    b.signal("TERM");
    assert_eq!(sd.next().await, "STOPPING=1");
    let f = b.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

#[tokio::test]
async fn ready_after_connect_waits_for_the_upstream_handshake() {
    // An upstream that accepts TCP at once but completes the WebSocket handshake only when told.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted_tx, accepted_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = accepted_tx.send(());
        let _ = go_rx.await;
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        while let Some(Ok(m)) = ws.next().await {
            if m.is_text() && ws.send(m).await.is_err() {
                break;
            }
        }
    });

    let sd = Systemd::path();
    let url = format!("ws://127.0.0.1:{port}/");
    let mut b =
        Bridge::spawn_cmd(sd.command(&["--ready-after-connect", "tcp-listen:127.0.0.1:0", &url]));
    let addr = b.listening().await;
    let client = TcpStream::connect(&addr).await.unwrap();
    tokio::time::timeout(LIMIT, accepted_rx)
        .await
        .expect("upstream connection in time")
        .unwrap();
    // Listening, a client accepted, the upstream TCP connection made: still not ready (a READY=1
    // sent at bind time would have been queued before the announce line was even printed).
    assert_eq!(sd.pending(), None, "READY=1 before the upstream handshake");
    go_tx.send(()).unwrap();
    assert_eq!(sd.next().await, "READY=1");
    assert_eq!(exchange(client, "hi\n").await, "hi\n");
}

#[tokio::test]
async fn single_session_is_ready_once_the_far_side_is_open() {
    let mut server = servers::echo().await;
    let sd = Systemd::abstract_name();
    let mut b = Bridge::spawn_cmd(sd.command(&[&server.url()]));
    assert_eq!(sd.next().await, "READY=1");
    // The upgrade request was seen before READY=1 was sent.
    assert!(server.requests.try_recv().is_ok());
    b.write_stdin(b"ping\n").await;
    assert_eq!(b.read_line().await, "ping");
    let f = b.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

#[tokio::test]
async fn watchdog_keepalives_at_half_the_interval() {
    let sd = Systemd::path();
    let mut cmd = sd.command(&["tcp-listen:127.0.0.1:0", "mirror:"]);
    cmd.env("WATCHDOG_USEC", "200000");
    let mut b = Bridge::spawn_cmd(cmd);
    b.listening().await;
    let mut seen = Vec::new();
    let mut watchdogs = 0;
    while watchdogs < 4 {
        let m = sd.next().await;
        watchdogs += usize::from(m == "WATCHDOG=1");
        seen.push(m);
    }
    assert!(seen.contains(&"READY=1".to_string()), "{seen:?}");
    // A healthy bridge keeps serving meanwhile.
    let addr = b.listening().await;
    assert_eq!(
        exchange(TcpStream::connect(&addr).await.unwrap(), "x\n").await,
        "x\n"
    );
}

#[tokio::test]
async fn exec_children_do_not_inherit_systemd_variables() {
    let sd = Systemd::path();
    let mut cmd = sd.command(&[
        "tcp-listen:127.0.0.1:0",
        "sh-c:echo \"${NOTIFY_SOCKET-none} ${WATCHDOG_USEC-none} ${LISTEN_FDS-none} ${LISTEN_PID-none} ${LISTEN_FDNAMES-none}\"",
    ]);
    cmd.env("WATCHDOG_USEC", "60000000")
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDNAMES", "x");
    let mut b = Bridge::spawn_cmd(cmd);
    let addr = b.listening().await;
    assert_eq!(
        exchange(TcpStream::connect(&addr).await.unwrap(), "").await,
        "none none none none none\n"
    );
}

#[tokio::test]
async fn sd_listen_serves_passed_tcp_and_unix_sockets_by_name() {
    let server = servers::echo().await;
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_addr = tcp.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.sock");
    let unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let fds = [tcp.as_raw_fd(), unix.as_raw_fd()];
    let names = Some("web:admin");

    // fd 3, by name: TCP in front of a WebSocket.
    let mut web = Bridge::spawn_cmd(activated(&["sd-listen:web", &server.url()], &fds, names));
    assert_eq!(web.listening().await, tcp_addr);
    let r = tokio::join!(
        exchange(TcpStream::connect(&tcp_addr).await.unwrap(), "w1\nw2\n"),
        exchange(TcpStream::connect(&tcp_addr).await.unwrap(), "w3\n"),
    );
    assert_eq!(r, ("w1\nw2\n".to_string(), "w3\n".to_string()));

    // fd 4, by name: a Unix socket.
    let mut admin = Bridge::spawn_cmd(activated(&["sd-listen:admin", "mirror:"], &fds, names));
    assert_eq!(admin.listening().await, path.display().to_string());
    assert_eq!(
        exchange(UnixStream::connect(&path).await.unwrap(), "a\n").await,
        "a\n"
    );
    // Stopping does not remove the socket file: it is systemd's.
    admin.signal("TERM");
    let f = admin.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert!(path.exists(), "the passed socket's file was removed");

    // The passed socket outlives one instance (as under systemd): a restarted service serves
    // the connections that queued meanwhile. `sd-listen:` takes the first socket.
    web.signal("TERM");
    assert_eq!(web.finish().await.code, Some(0));
    let queued = TcpStream::connect(&tcp_addr).await.unwrap();
    let mut again = Bridge::spawn_cmd(activated(&["sd-listen:", "mirror:"], &fds, None));
    assert_eq!(again.listening().await, tcp_addr);
    assert_eq!(exchange(queued, "q\n").await, "q\n");
}

#[tokio::test]
async fn sd_listen_errors_name_the_problem() {
    // Nothing passed.
    let mut cmd = harness::command(&["sd-listen:web", "mirror:"]);
    clear_systemd_env(&mut cmd);
    let f = harness::run_cmd(cmd, b"").await;
    assert_eq!(f.code, Some(10), "{}", f.stderr);
    harness::assert_one_line_error(&f, "sd-listen:web: cannot listen: no sockets were passed");

    // Passed to another process.
    let mut cmd = harness::command(&["sd-listen:", "mirror:"]);
    clear_systemd_env(&mut cmd);
    cmd.env("LISTEN_FDS", "1").env("LISTEN_PID", "1");
    let f = harness::run_cmd(cmd, b"").await;
    assert_eq!(f.code, Some(10), "{}", f.stderr);
    harness::assert_one_line_error(&f, "are for process 1 (LISTEN_PID), not this one");

    // No socket by that name.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fds = [tcp.as_raw_fd()];
    let f = harness::run_cmd(
        activated(&["sd-listen:api", "mirror:"], &fds, Some("web")),
        b"",
    )
    .await;
    assert_eq!(f.code, Some(10), "{}", f.stderr);
    harness::assert_one_line_error(&f, "no socket named 'api' was passed (LISTEN_FDNAMES: web)");

    // A connection rather than a listening socket (what Accept=yes passes): use inetd:.
    let (conn, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let f = harness::run_cmd(
        activated(&["sd-listen:", "mirror:"], &[conn.as_raw_fd()], None),
        b"",
    )
    .await;
    assert_eq!(f.code, Some(10), "{}", f.stderr);
    harness::assert_one_line_error(&f, "not a listening one");
    harness::assert_one_line_error(&f, "use inetd:");
}

#[tokio::test]
async fn inetd_talks_to_its_connection_on_stdin_and_stdout() {
    let server = servers::echo().await;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let theirs_out = theirs.try_clone().unwrap();
    let mut cmd = harness::command(&["inetd:", &server.url()]);
    clear_systemd_env(&mut cmd);
    cmd.stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::from(OwnedFd::from(theirs_out)));
    // The command (and with it our copies of the child's ends) is dropped by spawn_cmd.
    let b = Bridge::spawn_cmd(cmd);
    ours.set_nonblocking(true).unwrap();
    let ours = UnixStream::from_std(ours).unwrap();
    assert_eq!(exchange(ours, "one\ntwo\n").await, "one\ntwo\n");
    let f = b.finish().await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

/// systemd's own `systemd-socket-activate` (it does not need systemd running), when installed:
/// `sd-listen:` with the socket it passes, and `inetd:` in its `--inetd --accept` mode.
#[tokio::test]
async fn with_systemd_socket_activate_when_installed() {
    let Some(tool) = [
        "/usr/bin/systemd-socket-activate",
        "/bin/systemd-socket-activate",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists()) else {
        eprintln!("skipped: systemd-socket-activate is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tool_cmd = |args: &[&str]| {
        let mut cmd = Command::new(tool);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG")
            .kill_on_drop(true);
        clear_systemd_env(&mut cmd);
        cmd
    };

    // Listening socket passed as fd 3 named "web"; the tool execs wsbridge on the first connection.
    let path = dir.path().join("web.sock");
    let spec = path.display().to_string();
    let bin = harness::bin().display().to_string();
    let mut b = Bridge::spawn_cmd(tool_cmd(&[
        "-l",
        &spec,
        "--fdname=web",
        &bin,
        "sd-listen:web",
        "mirror:",
    ]));
    b.stderr_contains("Listening on").await;
    let first = UnixStream::connect(&path).await.unwrap();
    assert_eq!(b.listening().await, spec);
    assert_eq!(exchange(first, "x\n").await, "x\n");
    assert_eq!(
        exchange(UnixStream::connect(&path).await.unwrap(), "y\n").await,
        "y\n"
    );

    // Accept=yes style: one wsbridge per connection, the connection as stdin/stdout.
    let path = dir.path().join("inetd.sock");
    let spec = path.display().to_string();
    let mut b = Bridge::spawn_cmd(tool_cmd(&[
        "-l", &spec, "--inetd", "-a", &bin, "inetd:", "mirror:",
    ]));
    b.stderr_contains("Listening on").await;
    for line in ["one\n", "two\n"] {
        assert_eq!(
            exchange(UnixStream::connect(&path).await.unwrap(), line).await,
            line
        );
    }
}
