//! Helpers for the WebSocket-client tests (proxies, redirects, client TLS, secrets): a throwaway
//! PKI made with rcgen, third-party peers started from the test virtualenv (Python websockets,
//! the `pproxy` proxy), and a command builder that keeps the caller's proxy settings out.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::common::{self, LIMIT};

/// Proxy variables a developer's or CI machine may have set; tests choose their own.
pub const PROXY_VARS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// `common::command` without any proxy or credentials settings inherited from the caller.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = common::command(args);
    for v in PROXY_VARS {
        cmd.env_remove(v);
    }
    cmd.env_remove("CREDENTIALS_DIRECTORY");
    cmd
}

/// The Python of the test virtualenv (websockets, pproxy); see scripts/test.
pub fn python() -> OsString {
    std::env::var_os("WSBRIDGE_TEST_PYTHON").unwrap_or_else(|| {
        panic!(
            "WSBRIDGE_TEST_PYTHON is not set: run the tests with `scripts/test`, which creates \
             .venv with the pinned Python peers (tests/peers/requirements.txt) and points this \
             variable at it"
        )
    })
}

/// A throwaway PKI in a temporary directory:
/// - `ca.pem`: the test CA;
/// - `server.pem` / `server.key`: a leaf for `localhost`, signed by the CA;
/// - `client.pem` / `client.key`: a client certificate (CN `wsbridge-client`), signed by the CA;
/// - `stranger.pem` / `stranger.key`: a client certificate from another, unknown CA.
pub struct Pki {
    pub dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca_pem, ca) = make_ca("wsbridge test CA");
        let write = |name: &str, data: String| {
            std::fs::write(dir.path().join(name), data).expect("write PEM");
        };
        write("ca.pem", ca_pem);
        let (cert, key) = leaf(&ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
        write("server.pem", cert);
        write("server.key", key);
        let (cert, key) = leaf(&ca, "wsbridge-client", ExtendedKeyUsagePurpose::ClientAuth);
        write("client.pem", cert);
        write("client.key", key);
        let (_, other) = make_ca("some other CA");
        let (cert, key) = leaf(&other, "stranger", ExtendedKeyUsagePurpose::ClientAuth);
        write("stranger.pem", cert);
        write("stranger.key", key);
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The path as a `&str`-friendly String, for argument lists.
    pub fn arg(&self, name: &str) -> String {
        self.path(name).to_str().expect("utf8 path").to_string()
    }

    /// A rustls server configuration with the `localhost` leaf, for in-test TLS servers.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_file_iter(self.path("server.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(self.path("server.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}

fn make_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).expect("CA cert");
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(ca: &Issuer<'static, KeyPair>, cn: &str, eku: ExtendedKeyUsagePurpose) -> (String, String) {
    let key = KeyPair::generate().expect("leaf key");
    let mut params = CertificateParams::new(vec![cn.to_string()]).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![eku];
    let cert = params.signed_by(&key, ca).expect("leaf cert");
    (cert.pem(), key.serialize_pem())
}

/// A third-party peer process; killed when dropped. Its stdout lines (after the readiness line)
/// arrive on `lines`.
pub struct Peer {
    pub port: u16,
    pub lines: mpsc::UnboundedReceiver<String>,
    _child: Child,
}

impl Peer {
    /// Start `program args…` and wait (bounded) for a stdout line from which `ready` extracts the
    /// port.
    pub async fn start(
        program: &OsString,
        args: &[OsString],
        ready: impl Fn(&str) -> Option<u16>,
    ) -> Peer {
        let mut child = Command::new(program)
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program:?} {args:?}: {e}"));
        let mut out = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
        let port = tokio::time::timeout(LIMIT, async {
            while let Some(line) = out.next_line().await.expect("read peer stdout") {
                if let Some(port) = ready(&line) {
                    return port;
                }
            }
            panic!("{program:?} {args:?} exited before it was ready");
        })
        .await
        .unwrap_or_else(|_| panic!("{program:?} {args:?} was not ready in time"));
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Peer {
            port,
            lines,
            _child: child,
        }
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
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/tls_echo_server.py");
    let mut args: Vec<OsString> = vec![
        script.into(),
        "--cert".into(),
        pki.path("server.pem").into(),
        "--key".into(),
        pki.path("server.key").into(),
    ];
    if mtls {
        args.push("--client-ca".into());
        args.push(pki.path("ca.pem").into());
    }
    Peer::start(&python(), &args, |l| {
        l.strip_prefix("PORT ").and_then(|p| p.trim().parse().ok())
    })
    .await
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
    let args: Vec<OsString> = ["-m", "pproxy", "-l", &listen, "-v", "--auth", "0"]
        .iter()
        .map(OsString::from)
        .collect();
    Peer::start(&python(), &args, |l| {
        // "Serving on ipv? 127.0.0.1:41885 by socks5 "
        let rest = l.strip_prefix("Serving on ")?;
        let addr = rest
            .split_whitespace()
            .find(|w| w.starts_with("127.0.0.1:"))?;
        addr.rsplit(':').next()?.parse().ok()
    })
    .await
}
