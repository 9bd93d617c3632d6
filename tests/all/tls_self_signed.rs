//! The usual self-signed certificate (issue #11): made with the recipe everyone copies,
//! `openssl req -x509 -newkey rsa:2048 -nodes ... -addext subjectAltName=...`, which marks it
//! CA:TRUE. Trusted by exact match when configured (`--ca-file`, `SSL_CERT_FILE`, the system
//! store, `--tls-client-ca`); refused with a one-line reason otherwise (not trusted, wrong host
//! name, expired). Peers: Python websockets (tests/peers/tls_echo_server.py, ws_client.py) and
//! wsbridge itself. Needs the `openssl` command and the test Python (`scripts/test`).

use crate::{common, support};

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{Bridge, Finished, LIMIT, assert_one_line_error};
use support::{Peer, python};
use tempfile::TempDir;

/// Python websockets answers our Close at once and drops echoes it has not sent yet: wait for
/// quiet before closing (see tests/tls_python.rs).
const LINGER: &str = "300ms";

/// Certificates in a temporary directory: `NAME.pem` and `NAME.key`.
struct Certs(TempDir);

impl Certs {
    fn new() -> Certs {
        Certs(tempfile::tempdir().expect("tempdir"))
    }

    /// The recipe: `openssl req -x509 -newkey rsa:2048 -nodes -keyout NAME.key -out NAME.pem
    /// -subj /CN=CN [-addext subjectAltName=SAN]`.
    fn openssl(&self, name: &str, cn: &str, san: Option<&str>) -> &Certs {
        let (pem, key) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        );
        let mut cmd = std::process::Command::new("openssl");
        cmd.args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&pem)
            .args(["-subj", &format!("/CN={cn}")]);
        if let Some(san) = san {
            cmd.args(["-addext", &format!("subjectAltName={san}")]);
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
            panic!("cannot run `openssl` ({e}): these tests need the openssl command (apt-get install openssl)")
        });
        assert!(out.status.success(), "openssl req failed: {out:?}");
        self
    }

    /// What the recipe makes, but valid only during 2020: rcgen, as openssl 3.0 cannot back-date.
    fn expired(&self, name: &str) -> &Certs {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        p.distinguished_name.push(DnType::CommonName, "localhost");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let cert = p.self_signed(&key).expect("cert");
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).expect("write");
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).expect("write");
        self
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.path().join(file)
    }

    fn arg(&self, file: &str) -> String {
        self.path(file).to_str().expect("utf8 path").to_string()
    }
}

/// tests/peers/tls_echo_server.py with `NAME.pem` / `NAME.key`.
async fn echo_server(certs: &Certs, name: &str) -> Peer {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/tls_echo_server.py");
    let args: Vec<OsString> = vec![
        script.into(),
        "--cert".into(),
        certs.path(&format!("{name}.pem")).into(),
        "--key".into(),
        certs.path(&format!("{name}.key")).into(),
    ];
    Peer::start(&python(), &args, |l| {
        l.strip_prefix("PORT ").and_then(|p| p.trim().parse().ok())
    })
    .await
}

async fn run(cmd: tokio::process::Command, input: &[u8]) -> Finished {
    common::run_cmd(cmd, input).await
}

/// A refusal: exit 5 (TLS), nothing relayed, one line with `needle`, no Rust debug text.
#[track_caller]
fn assert_tls_refusal(f: &Finished, needle: &str) {
    assert_eq!(f.code, Some(5), "stderr: {}", f.stderr);
    assert_eq!(f.stdout, b"");
    assert_one_line_error(f, needle);
    for debug in ["Other(", "OtherError", "CaUsedAsEndEntity", "Context {"] {
        assert!(!f.stderr.contains(debug), "debug text in {:?}", f.stderr);
    }
}

#[tokio::test]
async fn the_openssl_certificate_is_trusted_with_ca_file_by_name_and_by_ip() {
    let certs = Certs::new();
    certs.openssl("cert", "localhost", Some("DNS:localhost,IP:127.0.0.1"));
    let server = echo_server(&certs, "cert").await;
    let ca = certs.arg("cert.pem");
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("wss://{host}:{}/", server.port);
        let args = ["--ca-file", &ca, "--linger", LINGER, &url];
        let f = run(support::command(&args), b"hello\n").await;
        assert_eq!(f.code, Some(0), "{host}: {}", f.stderr);
        assert_eq!(f.stdout_str(), "hello\n");
    }
}

#[tokio::test]
async fn the_openssl_certificate_is_trusted_from_ssl_cert_file_and_the_system_store() {
    let certs = Certs::new();
    certs.openssl("cert", "localhost", Some("DNS:localhost,IP:127.0.0.1"));
    let server = echo_server(&certs, "cert").await;
    let url = format!("wss://localhost:{}/", server.port);
    // With --tls-roots system, SSL_CERT_FILE is what rustls-native-certs reads as the store.
    for roots in ["webpki", "system"] {
        let mut cmd = support::command(&["--tls-roots", roots, "--linger", LINGER, &url]);
        cmd.env("SSL_CERT_FILE", certs.path("cert.pem"));
        cmd.env_remove("SSL_CERT_DIR");
        let f = run(cmd, b"from the environment\n").await;
        assert_eq!(f.code, Some(0), "--tls-roots {roots}: {}", f.stderr);
        assert_eq!(f.stdout_str(), "from the environment\n");
    }
}

#[tokio::test]
async fn without_it_the_error_names_the_certificate_and_the_fix() {
    let certs = Certs::new();
    certs.openssl("cert", "localhost", Some("DNS:localhost,IP:127.0.0.1"));
    certs.openssl("other", "localhost", Some("DNS:localhost,IP:127.0.0.1"));
    let server = echo_server(&certs, "cert").await;
    let url = format!("wss://localhost:{}/", server.port);

    let f = run(support::command(&[&url]), b"x\n").await;
    assert_tls_refusal(&f, &format!("{url}: TLS failed: certificate not trusted: "));
    assert_one_line_error(&f, "a CA certificate ('CN=localhost', self-signed)");
    assert_one_line_error(&f, "pass it with --ca-file PEM");

    // Another certificate with the same names is not the one the server has.
    let f = run(
        support::command(&["--ca-file", &certs.arg("other.pem"), &url]),
        b"x\n",
    )
    .await;
    assert_tls_refusal(&f, "certificate not trusted: ");
    assert_one_line_error(&f, "--ca-file");
}

#[tokio::test]
async fn a_host_name_the_certificate_does_not_cover_is_refused() {
    let certs = Certs::new();
    certs.openssl("elsewhere", "other.example", Some("DNS:other.example"));
    let server = echo_server(&certs, "elsewhere").await;
    let ca = certs.arg("elsewhere.pem");
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("wss://{host}:{}/", server.port);
        let f = run(support::command(&["--ca-file", &ca, &url]), b"x\n").await;
        assert_tls_refusal(
            &f,
            &format!("certificate is not valid for host '{host}': it covers only other.example"),
        );
    }
}

#[tokio::test]
async fn an_expired_certificate_is_refused_with_its_date() {
    let certs = Certs::new();
    certs.expired("old");
    let server = echo_server(&certs, "old").await;
    let url = format!("wss://localhost:{}/", server.port);
    let f = run(
        support::command(&["--ca-file", &certs.arg("old.pem"), &url]),
        b"x\n",
    )
    .await;
    assert_tls_refusal(&f, "certificate expired on 2021-01-01 00:00:00 UTC");
}

#[tokio::test]
async fn wss_listen_accepts_an_openssl_client_certificate_given_as_tls_client_ca() {
    let certs = Certs::new();
    certs
        .openssl("server", "localhost", Some("DNS:localhost,IP:127.0.0.1"))
        .openssl("client", "wsbridge-client", None)
        .openssl("stranger", "stranger", None);
    let (cert, key) = (certs.arg("server.pem"), certs.arg("server.key"));
    let client_ca = certs.arg("client.pem");
    let mut b = Bridge::spawn(&[
        "-v",
        "wss-listen:127.0.0.1:0",
        "mirror:",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-client-ca",
        &client_ca,
    ]);
    let url = b.listening().await;

    // wsbridge as the client, trusting the server's openssl certificate the same way.
    let client = |name: &str| {
        let (c, k) = (
            certs.arg(&format!("{name}.pem")),
            certs.arg(&format!("{name}.key")),
        );
        let args = [
            "--ca-file",
            &cert,
            "--client-cert",
            &c,
            "--client-key",
            &k,
            &url,
        ];
        support::command(&args)
    };
    let f = run(client("client"), b"mutual\n").await;
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert_eq!(f.stdout_str(), "mutual\n");

    // A third-party client (Python's ssl) with the same files.
    let lines = python_client(&certs, &url).await;
    assert_eq!(lines, ["open null", "text \"py\"", "closed 1000 \"\""]);

    // A certificate that is not in --tls-client-ca is refused, and the server says why.
    let f = run(client("stranger"), b"x\n").await;
    assert_tls_refusal(&f, "did not accept our client certificate");
    let line = b.stderr_contains("TLS handshake failed").await;
    assert!(
        line.contains("client certificate not trusted: the client presented a CA certificate ('CN=stranger', self-signed)")
            && line.contains("--tls-client-ca"),
        "{line}"
    );
}

/// tests/peers/ws_client.py with `client.pem`, trusting `server.pem`: one message and back.
async fn python_client(certs: &Certs, url: &str) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/ws_client.py");
    let out = tokio::process::Command::new(python())
        .arg(script)
        .arg(url)
        .arg("--cafile")
        .arg(certs.path("server.pem"))
        .arg("--certfile")
        .arg(certs.path("client.pem"))
        .arg("--keyfile")
        .arg(certs.path("client.key"))
        .args([
            "--script",
            r#"[["text", "py"], ["recv", 1], ["close", 1000, ""]]"#,
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(LIMIT, out)
        .await
        .expect("ws_client.py did not finish in time")
        .expect("run ws_client.py");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}
