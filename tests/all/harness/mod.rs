//! The test harness, shared by every module of the test binary:
//! - here: [`Bridge`] spawns the real `wsbridge` binary, waits for its announced readiness and
//!   collects its output; [`run`] runs it to completion; every wait is bounded by [`LIMIT`];
//! - [`servers`]: in-process WebSocket servers (tokio-tungstenite) and plain TCP stand-ins;
//! - [`raw`]: a raw-frame RFC 6455 peer, for what a library would never send;
//! - [`peers`]: the third-party peers (Python `websockets` and `pproxy`, Node `ws`, websocat,
//!   Chromium): where they are found, and starting them;
//! - [`chromium`]: headless Chromium, run to dump a page or driven over the DevTools protocol;
//! - [`pki`]: test certificates (an rcgen CA with server and client leaves, and the
//!   `openssl req -x509` self-signed recipe).

pub mod chromium;
pub mod peers;
pub mod pki;
pub mod raw;
pub mod servers;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;

/// Upper bound for anything a test waits for; a hang fails the test instead of blocking CI.
pub const LIMIT: Duration = Duration::from_secs(20);

/// File descriptors process `pid` has open now.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count()
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wsbridge"))
}

/// A running wsbridge with its stderr collected line by line in the background.
pub struct Bridge {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    stderr_rx: mpsc::UnboundedReceiver<String>,
    pub stderr_lines: Vec<String>,
}

/// Output of a finished run.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Finished {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A wsbridge command with piped stdio, killed on drop, and none of the caller's log, TLS,
/// credential or proxy settings (tests choose their own).
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    prepare(cmd)
}

/// [`command`] run by `sh -c 'SETUP && exec wsbridge ARGS'`: for shell set-up such as
/// `ulimit -n 64`.
pub fn command_after(setup: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{setup} && exec \"$0\" \"$@\""))
        .arg(bin())
        .args(args);
    prepare(cmd)
}

fn prepare(mut cmd: Command) -> Command {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .env_remove("SSL_CERT_FILE")
        .env_remove("WSBRIDGE_BASIC_AUTH")
        // The client honours proxy variables; loopback test traffic must not go through one.
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        // Tests that read systemd credentials set their own directory.
        .env_remove("CREDENTIALS_DIRECTORY")
        // Under journald (a CI runner run by systemd), lines would start with `<N>`; the tests
        // that want that set it themselves.
        .env_remove("JOURNAL_STREAM")
        .kill_on_drop(true);
    cmd
}

/// wsbridge must never panic, not even in a task that the process survives.
fn assert_no_panic(lines: &[String]) {
    if let Some(l) = lines.iter().find(|l| l.contains("panicked at")) {
        panic!("wsbridge panicked: {l}\nstderr: {lines:#?}");
    }
}

impl Drop for Bridge {
    /// Checks whatever stderr arrived so far (for bridges a test simply drops).
    fn drop(&mut self) {
        while let Ok(line) = self.stderr_rx.try_recv() {
            self.stderr_lines.push(line);
        }
        if !std::thread::panicking() {
            assert_no_panic(&self.stderr_lines);
        }
    }
}

impl Bridge {
    pub fn spawn(args: &[&str]) -> Bridge {
        Bridge::spawn_cmd(command(args))
    }

    pub fn spawn_cmd(mut cmd: Command) -> Bridge {
        let mut child = cmd.spawn().expect("spawn wsbridge");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, stderr_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Bridge {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            child,
            stderr_rx,
            stderr_lines: Vec::new(),
        }
    }

    /// Wait for `wsbridge: listening on KIND ADDR` and return ADDR.
    pub async fn listening(&mut self) -> String {
        let line = self.stderr_contains("wsbridge: listening on ").await;
        let rest = line
            .strip_prefix("wsbridge: listening on ")
            .expect("announce line");
        let (_, addr) = rest.split_once(' ').expect("KIND ADDR");
        addr.to_string()
    }

    /// How many stderr lines that arrived so far contain `needle` (no waiting).
    pub fn stderr_count(&mut self, needle: &str) -> usize {
        while let Ok(line) = self.stderr_rx.try_recv() {
            self.stderr_lines.push(line);
        }
        self.stderr_lines
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Wait until a stderr line contains `needle`.
    pub async fn stderr_contains(&mut self, needle: &str) -> String {
        if let Some(l) = self.stderr_lines.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let line = tokio::time::timeout_at(deadline, self.stderr_rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no stderr line with {needle:?}; got {:?}",
                        self.stderr_lines
                    )
                })
                .unwrap_or_else(|| {
                    panic!(
                        "stderr ended without {needle:?}; got {:?}",
                        self.stderr_lines
                    )
                });
            self.stderr_lines.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    pub async fn write_stdin(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(data).await.expect("write stdin");
        stdin.flush().await.expect("flush stdin");
    }

    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Read one line from stdout (without the newline), bounded.
    pub async fn read_line(&mut self) -> String {
        let out = self.stdout.as_mut().expect("stdout");
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        tokio::time::timeout(LIMIT, async {
            loop {
                let n = out.read(&mut byte).await.expect("read stdout");
                assert!(
                    n == 1,
                    "stdout ended; line so far {:?}",
                    String::from_utf8_lossy(&line)
                );
                if byte[0] == b'\n' {
                    break;
                }
                line.push(byte[0]);
            }
        })
        .await
        .expect("timed out reading a line");
        String::from_utf8(line).expect("utf8 line")
    }

    /// Close stdin, then wait (bounded) for exit and collect everything.
    pub async fn finish(mut self) -> Finished {
        self.close_stdin();
        let mut stdout = Vec::new();
        if let Some(mut out) = self.stdout.take() {
            tokio::time::timeout(LIMIT, out.read_to_end(&mut stdout))
                .await
                .expect("stdout did not end in time")
                .expect("read stdout");
        }
        let status = tokio::time::timeout(LIMIT, self.child.wait())
            .await
            .expect("wsbridge did not exit in time")
            .expect("wait");
        while let Ok(Some(line)) = tokio::time::timeout(LIMIT, self.stderr_rx.recv()).await {
            self.stderr_lines.push(line);
        }
        assert_no_panic(&self.stderr_lines);
        Finished {
            code: status.code(),
            stdout,
            stderr: self.stderr_lines.join("\n"),
        }
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("running").to_string();
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
    }
}

/// Run wsbridge with `stdin` as input to completion.
pub async fn run(args: &[&str], stdin: &[u8]) -> Finished {
    run_cmd(command(args), stdin).await
}

/// Run a prepared wsbridge command with `stdin` as input to completion. Input the process does
/// not read (it may exit first) is not an error.
pub async fn run_cmd(cmd: Command, stdin: &[u8]) -> Finished {
    let mut b = Bridge::spawn_cmd(cmd);
    let mut input = b.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    // Feed stdin concurrently so a large input cannot deadlock against a full stdout pipe.
    let writer = tokio::spawn(async move {
        let _ = input.write_all(&data).await;
        drop(input);
    });
    let f = b.finish().await;
    let _ = writer.await;
    f
}

/// Read everything from a reader, bounded.
pub async fn read_all(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut v = Vec::new();
    tokio::time::timeout(LIMIT, r.read_to_end(&mut v))
        .await
        .expect("read in time")
        .expect("read");
    v
}

/// Assert the error output is exactly one line, starting with `wsbridge: ` and containing `needle`.
pub fn assert_one_line_error(f: &Finished, needle: &str) {
    let lines: Vec<&str> = f.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got {lines:?}");
    assert!(lines[0].starts_with("wsbridge: "), "{lines:?}");
    assert!(
        lines[0].contains(needle),
        "{:?} should contain {needle:?}",
        lines[0]
    );
    assert!(!lines[0].contains("panicked"), "{lines:?}");
}

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `ws://127.0.0.1:PORT/` (as announced) → `127.0.0.1:PORT`.
pub fn host_port(announced: &str) -> String {
    announced
        .strip_prefix("ws://")
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("unexpected announce address {announced:?}"))
        .to_string()
}

/// A TCP port that was free a moment ago and has nothing listening now.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
