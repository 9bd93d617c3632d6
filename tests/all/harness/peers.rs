//! The third-party peers, found in one place: the Python of the test virtualenv (`websockets`,
//! `pproxy`), Node with `ws` from tests/peers/node_modules, websocat 1.x and headless Chromium.
//! `scripts/test` sets up the first three; a missing peer fails the test with a message that
//! says how to get it. Also: starting a peer process and waiting for the port it announces,
//! and the peers started the same way by several test modules (`tls_echo_server.py`, `pproxy`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::LIMIT;
use super::pki::Pki;

/// `tests/peers/NAME`: the peer scripts (Python and Node).
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

/// The Python of the test virtualenv (websockets, pproxy): `$WSBRIDGE_TEST_PYTHON`.
pub fn python() -> OsString {
    std::env::var_os("WSBRIDGE_TEST_PYTHON").unwrap_or_else(|| {
        panic!(
            "WSBRIDGE_TEST_PYTHON is not set: run the tests with `scripts/test`, which creates \
             .venv with the pinned Python peers (tests/peers/requirements.txt) and points this \
             variable at it"
        )
    })
}

/// Node, with the `ws` package that `scripts/test` installs in tests/peers/node_modules.
pub fn node() -> PathBuf {
    let node = on_path("node").unwrap_or_else(|| {
        panic!(
            "node not found: the interop tests run Node's `ws` as a peer. Install Node.js and \
             npm (`apt-get install nodejs npm`; .ci/run installs them), then run `scripts/test`"
        )
    });
    assert!(
        script("node_modules/ws/package.json").is_file(),
        "Node's `ws` is not installed in tests/peers/node_modules: run the tests with \
         `scripts/test`, which runs `npm ci --prefix tests/peers` (tests/peers/package-lock.json)"
    );
    node
}

/// websocat 1.x: `$WSBRIDGE_TEST_WEBSOCAT`.
pub fn websocat() -> OsString {
    std::env::var_os("WSBRIDGE_TEST_WEBSOCAT").unwrap_or_else(|| {
        panic!(
            "WSBRIDGE_TEST_WEBSOCAT is not set: run the tests with `scripts/test`, which \
             installs websocat 1.x (`cargo install websocat --version '^1'`) and points this \
             variable at it"
        )
    })
}

/// Chromium, for the console-page tests (driven headless).
pub fn chromium() -> PathBuf {
    on_path("chromium")
        .or_else(|| Some(PathBuf::from("/usr/bin/chromium")).filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!(
                "chromium not found: this test drives the console page with headless Chromium. \
                 Install it with `apt-get install chromium` (.ci/run installs it)"
            )
        })
}

/// `name` in a directory of `$PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `python tests/peers/NAME`, unbuffered, with stdin and stderr closed, killed when dropped:
/// ready for [`Peer::start`] (add the script's arguments first).
pub fn python_peer(name: &str) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(script(name))
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// `node tests/peers/NAME`, like [`python_peer`].
pub fn node_peer(name: &str) -> Command {
    let mut cmd = Command::new(node());
    cmd.arg(script(name))
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// A client script that exists in both languages: `python tests/peers/PY` when `client` is
/// `"python"`, else `node tests/peers/JS`; stdin closed, killed when dropped, and stdout and
/// stderr left to the caller (as for [`Command::output`]).
pub fn python_or_node(client: &str, py: &str, js: &str) -> Command {
    let (program, name) = match client {
        "python" => (python(), py),
        _ => (node().into_os_string(), js),
    };
    let mut cmd = Command::new(program);
    cmd.arg(script(name))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// The readiness line of the scripts in tests/peers: `PORT n`.
pub fn port_line(line: &str) -> Option<u16> {
    line.strip_prefix("PORT ")?.trim().parse().ok()
}

/// A third-party peer process; killed when dropped. Its stdout lines (after the readiness line)
/// arrive on `lines`.
pub struct Peer {
    pub port: u16,
    pub lines: mpsc::UnboundedReceiver<String>,
    pub child: Child,
}

impl Peer {
    /// Start `cmd` and wait (bounded) for a stdout line from which `ready` extracts the port
    /// ([`port_line`] for the scripts in tests/peers).
    pub async fn start(mut cmd: Command, ready: impl Fn(&str) -> Option<u16>) -> Peer {
        let what = format!("{:?}", cmd.as_std());
        let mut child = cmd
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let mut out = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
        let port = tokio::time::timeout(LIMIT, async {
            while let Some(line) = out.next_line().await.expect("read peer stdout") {
                if let Some(port) = ready(&line) {
                    return port;
                }
            }
            panic!("{what} exited before it was ready");
        })
        .await
        .unwrap_or_else(|_| panic!("{what} was not ready in time"));
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Peer { port, lines, child }
    }

    /// Wait (bounded) for an output line containing `needle`; returns it.
    pub async fn line_with(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + LIMIT;
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if line.contains(needle) => return line,
                Ok(Some(line)) => seen.push(line),
                Ok(None) => panic!("peer output ended without {needle:?}; got {seen:?}"),
                Err(_) => panic!("no peer output line with {needle:?}; got {seen:?}"),
            }
        }
    }
}

/// `tests/peers/tls_echo_server.py` with the PKI's `localhost` leaf; with `mtls`, client
/// certificates from the test CA are required.
pub async fn tls_echo_server(pki: &Pki, mtls: bool) -> Peer {
    let mut cmd = python_peer("tls_echo_server.py");
    cmd.arg("--cert")
        .arg(pki.path("server.pem"))
        .arg("--key")
        .arg(pki.path("server.key"));
    if mtls {
        cmd.arg("--client-ca").arg(pki.path("ca.pem"));
    }
    Peer::start(cmd, port_line).await
}

/// The `pproxy` proxy (PyPI) listening on 127.0.0.1 with `scheme` (`http` or `socks5`) and,
/// when given, the one accepted `user:pass`. Started with `-v`, so each tunnel it opens is
/// printed (`http 127.0.0.1:PORT -> HOST:PORT`) and can be awaited with [`Peer::line_with`].
/// `--auth 0`: pproxy otherwise remembers an authenticated client address for 30 days and lets
/// later connections from it in without credentials.
pub async fn pproxy(scheme: &str, userpass: Option<&str>) -> Peer {
    let have = Command::new(python())
        .args(["-c", "import pproxy"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .expect("run the test Python");
    assert!(
        have.success(),
        "the test virtualenv has no `pproxy`: install tests/peers/requirements.txt into it \
         (.venv/bin/pip install -r tests/peers/requirements.txt)"
    );
    let listen = match userpass {
        Some(up) => format!("{scheme}://127.0.0.1:0#{up}"),
        None => format!("{scheme}://127.0.0.1:0"),
    };
    let mut cmd = Command::new(python());
    cmd.args(["-m", "pproxy", "-l", &listen, "-v", "--auth", "0"])
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    Peer::start(cmd, |l| {
        // "Serving on ipv? 127.0.0.1:41885 by socks5 "
        let rest = l.strip_prefix("Serving on ")?;
        let addr = rest
            .split_whitespace()
            .find(|w| w.starts_with("127.0.0.1:"))?;
        addr.rsplit(':').next()?.parse().ok()
    })
    .await
}
