//! Certificate verification for both TLS roles: rustls's webpki verifiers plus the exact-match
//! rule. A peer certificate that is, byte for byte, one of the certificates the user configured
//! as trusted (`--ca-file`, `SSL_CERT_FILE`, the system store with `--tls-roots system|both`; on
//! a server, `--tls-client-ca`) is accepted even when it is marked as a CA, which webpki refuses
//! as `CaUsedAsEndEntity` (the usual `openssl req -x509` certificate is marked CA:TRUE). Its
//! validity dates and extended key usage are still checked here, a server's host name with
//! webpki, and the handshake signature with the peer's key as always. Mozilla's built-in roots
//! never take part. Also: [`handshake`] carries out the certificate a verifier refused, so the
//! failure can be described.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, RootCertStore,
    SignatureScheme,
};

use super::x509;

/// Certificates the user configured as trusted: a peer presenting one of them exactly is trusted.
#[derive(Debug, Default)]
pub(crate) struct Configured(Vec<CertificateDer<'static>>);

impl Configured {
    pub(crate) fn new(certs: Vec<CertificateDer<'static>>) -> Configured {
        Configured(certs)
    }

    fn contains(&self, cert: &CertificateDer<'_>) -> bool {
        self.0.iter().any(|c| c.as_ref() == cert.as_ref())
    }
}

/// Checks a `wss://` server's certificate: webpki against `roots`, then the exact-match rule.
#[derive(Debug)]
pub(crate) struct ServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    configured: Configured,
}

impl ServerVerifier {
    pub(crate) fn new(
        roots: RootCertStore,
        configured: Configured,
        provider: Arc<CryptoProvider>,
    ) -> Result<ServerVerifier, String> {
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("TLS setup: {e}"))?;
        Ok(ServerVerifier { inner, configured })
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let verdict = match verdict {
            Err(Error::InvalidCertificate(e))
                if ca_used_as_end_entity(&e) && self.configured.contains(end_entity) =>
            {
                exact_match(end_entity, now, x509::SERVER_AUTH)
                    .and_then(|()| {
                        let cert = ParsedCertificate::try_from(end_entity)?;
                        rustls::client::verify_server_name(&cert, server_name)
                    })
                    .map(|()| ServerCertVerified::assertion())
            }
            other => other,
        };
        note_if_refused(end_entity, verdict)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Checks a client's certificate for `wss-listen:` with `--tls-client-ca`: webpki against those
/// CAs, then the exact-match rule.
#[derive(Debug)]
pub(crate) struct ClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    configured: Configured,
}

impl ClientVerifier {
    /// Errors name no file: the caller adds it.
    pub(crate) fn new(
        certs: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<ClientVerifier, String> {
        let mut roots = RootCertStore::empty();
        for c in &certs {
            roots.add(c.clone()).map_err(|e| e.to_string())?;
        }
        let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(ClientVerifier {
            inner,
            configured: Configured::new(certs),
        })
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verdict = match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Err(Error::InvalidCertificate(e))
                if ca_used_as_end_entity(&e) && self.configured.contains(end_entity) =>
            {
                exact_match(end_entity, now, x509::CLIENT_AUTH)
                    .map(|()| ClientCertVerified::assertion())
            }
            other => other,
        };
        note_if_refused(end_entity, verdict)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// webpki's refusal of a certificate marked as a CA in the end-entity position (rustls passes
/// it on inside `Other`).
pub(crate) fn ca_used_as_end_entity(e: &CertificateError) -> bool {
    match e {
        CertificateError::Other(other) => matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

/// The checks the exact-match rule keeps: the validity dates at `now`, and the extended key
/// usage, which (when present) must include `purpose`. Errors are the ones webpki would give.
fn exact_match(cert: &CertificateDer<'_>, now: UnixTime, purpose: &[u8]) -> Result<(), Error> {
    let info = x509::parse(cert).ok_or(CertificateError::BadEncoding)?;
    let at = |secs: i64| UnixTime::since_unix_epoch(Duration::from_secs(secs.max(0) as u64));
    let time = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if time < info.not_before {
        let not_before = at(info.not_before);
        return Err(CertificateError::NotValidYetContext {
            time: now,
            not_before,
        }
        .into());
    }
    if time > info.not_after {
        let not_after = at(info.not_after);
        return Err(CertificateError::ExpiredContext {
            time: now,
            not_after,
        }
        .into());
    }
    if let Some(eku) = &info.eku
        && !eku.iter().any(|p| p == purpose)
    {
        return Err(CertificateError::InvalidPurpose.into());
    }
    tracing::debug!(
        "accepted the peer's certificate ({}) by exact match with a configured trusted certificate",
        info.subject
    );
    Ok(())
}

tokio::task_local! {
    /// While [`handshake`] runs: where a verifier leaves the certificate it refused.
    static REFUSED: Arc<OnceLock<CertificateDer<'static>>>;
}

/// A TLS handshake that failed, and the peer's certificate if our verifier refused it.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: std::io::Error,
    pub(crate) cert: Option<CertificateDer<'static>>,
}

/// Run a TLS handshake (tokio-rustls `connect` or `accept`). The verifiers run inside this
/// future's polls, so a task-local slot carries out the certificate they refused, for the
/// message, without a configuration per connection.
pub(crate) async fn handshake<T>(
    fut: impl Future<Output = std::io::Result<T>>,
) -> Result<T, Failure> {
    let slot = Arc::new(OnceLock::new());
    REFUSED
        .scope(slot.clone(), fut)
        .await
        .map_err(|error| Failure {
            error,
            cert: slot.get().cloned(),
        })
}

fn note_if_refused<T>(cert: &CertificateDer<'_>, verdict: Result<T, Error>) -> Result<T, Error> {
    if verdict.is_err() {
        let _ = REFUSED.try_with(|slot| slot.set(cert.clone().into_owned()));
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};

    /// 2025-01-01 00:00:00 UTC.
    const JAN_2025: u64 = 1_735_689_600;

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    /// Like `openssl req -x509 … -addext subjectAltName=DNS:localhost`: self-signed and marked
    /// CA:TRUE, valid 2020 to `until`.
    fn ca_marked(until: i32, eku: Option<ExtendedKeyUsagePurpose>) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".into()]).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(until, 1, 1);
        p.extended_key_usages = eku.into_iter().collect();
        p.self_signed(&key).unwrap().der().clone()
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// Roots: an unrelated CA plus `trusted`; configured: `trusted`.
    fn server_verifier(trusted: &[CertificateDer<'static>]) -> ServerVerifier {
        let mut roots = RootCertStore::empty();
        roots.add(ca_marked(2040, None)).unwrap();
        for c in trusted {
            roots.add(c.clone()).unwrap();
        }
        ServerVerifier::new(roots, Configured::new(trusted.to_vec()), provider()).unwrap()
    }

    fn check(
        v: &ServerVerifier,
        cert: &CertificateDer<'_>,
        host: &str,
        now: u64,
    ) -> Result<(), Error> {
        let name = ServerName::try_from(host.to_string()).unwrap();
        v.verify_server_cert(cert, &[], &name, &[], at(now))
            .map(|_| ())
    }

    fn ca_refusal(e: Error) -> bool {
        matches!(&e, Error::InvalidCertificate(c) if ca_used_as_end_entity(c))
    }

    #[test]
    fn a_configured_ca_marked_certificate_is_accepted_for_its_names_only() {
        let cert = ca_marked(2040, None);
        let v = server_verifier(std::slice::from_ref(&cert));
        assert_eq!(check(&v, &cert, "localhost", JAN_2025), Ok(()));
        let Err(Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })) =
            check(&v, &cert, "other.example", JAN_2025)
        else {
            panic!("wrong name accepted or refused for another reason");
        };
    }

    #[test]
    fn an_unconfigured_ca_marked_certificate_is_refused() {
        let v = server_verifier(&[]);
        let e = check(&v, &ca_marked(2040, None), "localhost", JAN_2025).unwrap_err();
        assert!(ca_refusal(e));
        // The same names and key are not enough: only the very same bytes (ECDSA signatures
        // differ each time).
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let configured = params.self_signed(&key).unwrap().der().clone();
        let presented = params.self_signed(&key).unwrap().der().clone();
        assert_ne!(configured, presented);
        let v = server_verifier(&[configured]);
        assert!(ca_refusal(
            check(&v, &presented, "localhost", JAN_2025).unwrap_err()
        ));
    }

    #[test]
    fn dates_and_purpose_still_count() {
        let cert = ca_marked(2021, None);
        let v = server_verifier(std::slice::from_ref(&cert));
        let Err(Error::InvalidCertificate(CertificateError::ExpiredContext { .. })) =
            check(&v, &cert, "localhost", JAN_2025)
        else {
            panic!("expired certificate not refused as expired");
        };
        // The rule's own checks (webpki checks dates before the CA flag, so call them directly).
        let before_2020 = at(1_500_000_000);
        let Err(Error::InvalidCertificate(CertificateError::NotValidYetContext { .. })) =
            exact_match(&cert, before_2020, x509::SERVER_AUTH)
        else {
            panic!("not yet valid certificate accepted");
        };
        let Err(Error::InvalidCertificate(CertificateError::ExpiredContext { .. })) =
            exact_match(&cert, at(JAN_2025), x509::SERVER_AUTH)
        else {
            panic!("expired certificate accepted");
        };
        let client_only = ca_marked(2040, Some(ExtendedKeyUsagePurpose::ClientAuth));
        assert_eq!(
            exact_match(&client_only, at(JAN_2025), x509::SERVER_AUTH),
            Err(CertificateError::InvalidPurpose.into())
        );
        assert_eq!(
            exact_match(&client_only, at(JAN_2025), x509::CLIENT_AUTH),
            Ok(())
        );
    }

    #[test]
    fn client_certificates_follow_the_same_rule() {
        let cert = ca_marked(2040, None);
        let v = ClientVerifier::new(vec![cert.clone()], provider()).unwrap();
        assert!(v.verify_client_cert(&cert, &[], at(JAN_2025)).is_ok());
        let stranger = ca_marked(2040, None);
        let e = v
            .verify_client_cert(&stranger, &[], at(JAN_2025))
            .unwrap_err();
        assert!(ca_refusal(e));
    }

    #[tokio::test]
    async fn handshake_carries_out_the_refused_certificate() {
        let cert = ca_marked(2040, None);
        let v = server_verifier(&[]);
        let f = handshake(async {
            check(&v, &cert, "localhost", JAN_2025).map_err(std::io::Error::other)
        })
        .await
        .unwrap_err();
        assert_eq!(f.cert.as_ref(), Some(&cert));
        // Accepted certificates are not kept.
        let v = server_verifier(std::slice::from_ref(&cert));
        let ok = handshake(async {
            check(&v, &cert, "localhost", JAN_2025).map_err(std::io::Error::other)
        });
        assert!(ok.await.is_ok());
    }
}
