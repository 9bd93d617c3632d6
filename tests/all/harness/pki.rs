//! Test certificates, written to a temporary directory that goes away with the value:
//! - [`Pki`]: a throwaway CA made with rcgen, a server leaf and a client leaf signed by it, and
//!   a client leaf from another, unknown CA;
//! - [`SelfSigned`]: the self-signed certificate users make with the `openssl req -x509` recipe
//!   (it is CA:TRUE), and an expired one of the same shape.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

/// A throwaway PKI in a temporary directory:
/// - `ca.pem`: the test CA (`CN=wsbridge test CA`);
/// - `server.pem` / `server.key`: a server leaf signed by the CA, for `localhost` only (or the
///   names given to [`Pki::for_hosts`]);
/// - `client.pem` / `client.key`: a client certificate (CN `wsbridge-client`), signed by the CA;
/// - `stranger.pem` / `stranger.key`: a client certificate from another, unknown CA.
pub struct Pki {
    pub dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        Pki::for_hosts(&["localhost"])
    }

    /// The PKI with a server leaf for `hosts` (names or IP addresses; the first is its CN).
    pub fn for_hosts(hosts: &[&str]) -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca_pem, ca) = make_ca("wsbridge test CA");
        let write = |name: &str, data: String| {
            std::fs::write(dir.path().join(name), data).expect("write PEM");
        };
        write("ca.pem", ca_pem);
        let (cert, key) = leaf(&ca, hosts, ExtendedKeyUsagePurpose::ServerAuth);
        write("server.pem", cert);
        write("server.key", key);
        let (cert, key) = leaf(
            &ca,
            &["wsbridge-client"],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        write("client.pem", cert);
        write("client.key", key);
        let (_, other) = make_ca("some other CA");
        let (cert, key) = leaf(&other, &["stranger"], ExtendedKeyUsagePurpose::ClientAuth);
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

    /// A rustls server configuration with the server leaf, for in-test TLS servers.
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

/// A self-signed CA: its PEM and an issuer for leaves.
fn make_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).expect("CA cert");
    (cert.pem(), Issuer::new(params, key))
}

/// A leaf signed by `ca` for `names` (the first is also its CN): certificate PEM and key PEM.
fn leaf(
    ca: &Issuer<'static, KeyPair>,
    names: &[&str],
    eku: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().expect("leaf key");
    let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![eku];
    let cert = params.signed_by(&key, ca).expect("leaf cert");
    (cert.pem(), key.serialize_pem())
}

/// Self-signed certificates in a temporary directory: `NAME.pem` and `NAME.key`.
pub struct SelfSigned(TempDir);

impl SelfSigned {
    pub fn new() -> SelfSigned {
        SelfSigned(tempfile::tempdir().expect("tempdir"))
    }

    /// The recipe: `openssl req -x509 -newkey rsa:2048 -nodes -keyout NAME.key -out NAME.pem
    /// -subj /CN=CN [-addext subjectAltName=SAN]`.
    pub fn openssl(&self, name: &str, cn: &str, san: Option<&str>) -> &SelfSigned {
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
    pub fn expired(&self, name: &str) -> &SelfSigned {
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

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.path().join(file)
    }

    pub fn arg(&self, file: &str) -> String {
        self.path(file).to_str().expect("utf8 path").to_string()
    }
}
