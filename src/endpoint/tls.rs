//! TLS for the WebSocket client: rustls with Mozilla's roots (webpki-roots), the operating
//! system's store (`--tls-roots system`, via rustls-native-certs) or both, plus `--ca-file` /
//! `SSL_CERT_FILE`; `-k` to skip verification; client certificates (`--client-cert`,
//! `--client-key`). Roots and keys are loaded only when a `wss://` connection is made, once per
//! process. Also the server configuration for `wss-listen:`. The children: [`verify`] (webpki
//! plus the exact-match rule for configured certificates), [`explain`] (failures in plain words)
//! and [`x509`] (the few certificate fields those two read).

mod explain;
mod verify;
mod x509;

pub(crate) use explain::{client_cert_hint, explain_client, explain_server};
pub(crate) use verify::handshake;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::WsClientOptions;
use verify::Configured;

/// Trust roots for the WebSocket client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TlsRoots {
    /// Mozilla's roots, built in (webpki-roots).
    #[default]
    Webpki,
    /// The operating system's certificate store.
    System,
    /// Both.
    Both,
}

/// Build the client configuration. Errors are one line, naming the file at fault.
pub(crate) fn client_config(opts: &WsClientOptions) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let (roots, configured) = roots(opts.tls_roots, &opts.ca_files)?;
        let verifier = verify::ServerVerifier::new(roots, configured, provider.clone())?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    };
    let mut config = match (&opts.client_cert, &opts.client_key) {
        (Some(cert), Some(key)) => {
            let (chain, key) = client_identity(cert, key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("--client-cert/--client-key: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("--client-cert and --client-key must be given together".into()),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The trust roots: the chosen built-in or system set, then every `--ca-file` / `SSL_CERT_FILE`.
/// Also the certificates the user configured (all but the built-in ones), for the exact-match
/// rule.
fn roots(which: TlsRoots, ca_files: &[PathBuf]) -> Result<(RootCertStore, Configured), String> {
    let mut roots = RootCertStore::empty();
    let mut configured = Vec::new();
    if matches!(which, TlsRoots::Webpki | TlsRoots::Both) {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if matches!(which, TlsRoots::System | TlsRoots::Both) {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!("system trust store: {e}");
        }
        configured.extend(found.certs.iter().cloned());
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(
            "system trust store: {added} certificates loaded, {ignored} unusable ones skipped"
        );
        if added == 0 && ca_files.is_empty() && which == TlsRoots::System {
            let why = found
                .errors
                .first()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            return Err(format!(
                "--tls-roots system: no usable certificates in the operating system's store{why}"
            ));
        }
    }
    for path in ca_files {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("CA file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "CA file {}: no PEM certificates in it",
                path.display()
            ));
        }
        for cert in certs {
            roots
                .add(cert.clone())
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            configured.push(cert);
        }
    }
    Ok((roots, Configured::new(configured)))
}

/// `--client-cert` (a PEM chain, leaf first) and `--client-key` (PKCS#8, RSA or EC PEM).
fn client_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--client-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--client-cert {}: no PEM certificates in it",
            cert.display()
        ));
    }
    // The key's bytes never appear in messages: rustls-pki-types' errors name only the problem.
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "--client-key {}: no private key in it (PEM: PKCS#8, RSA or EC)",
            key.display()
        ),
        e => format!("--client-key {}: {e}", key.display()),
    })?;
    Ok((chain, key))
}

/// A per-connection copy of `base` that notes in the returned flag whether the server asked for
/// a client certificate. A server that requires one and gets none may simply hang up (Python's
/// `ssl` does, with TLS 1.3, after our side of the handshake is done); the flag lets the client
/// say why instead of reporting a lost connection.
pub(crate) fn with_request_probe(base: &Arc<ClientConfig>) -> (Arc<ClientConfig>, Arc<AtomicBool>) {
    let asked = Arc::new(AtomicBool::new(false));
    let mut config = (**base).clone();
    config.client_auth_cert_resolver = Arc::new(CertRequestProbe {
        inner: base.client_auth_cert_resolver.clone(),
        asked: asked.clone(),
    });
    (Arc::new(config), asked)
}

#[derive(Debug)]
struct CertRequestProbe {
    inner: Arc<dyn ResolvesClientCert>,
    asked: Arc<AtomicBool>,
}

impl ResolvesClientCert for CertRequestProbe {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.inner.resolve(root_hint_subjects, sigschemes)
    }

    fn only_raw_public_keys(&self) -> bool {
        self.inner.only_raw_public_keys()
    }

    fn has_certs(&self) -> bool {
        self.inner.has_certs()
    }
}

/// `-k`: accept any certificate, but still check that the handshake is signed by its key.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Server configuration for `wss-listen:` from ordinary PEM files: a certificate chain, a key
/// (PKCS#8, RSA or EC), and optionally CAs whose client certificates are required (mTLS).
pub(crate) fn server_config(
    cert: &std::path::Path,
    key: &std::path::Path,
    client_ca: Option<&std::path::Path>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no PEM certificates in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("--tls-client-ca {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "--tls-client-ca {}: no PEM certificates in it",
                    path.display()
                ));
            }
            let verifier = verify::ClientVerifier::new(certs, provider)
                .map_err(|e| format!("--tls-client-ca {}: {e}", path.display()))?;
            builder.with_client_cert_verifier(Arc::new(verifier))
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
