//! TLS failures in plain words, for the `wss://` client and for `wss-listen:`.

/// The server asked for a client certificate and then the connection failed without a clearer
/// reason: say what to do.
pub fn client_cert_hint(have_cert: bool) -> String {
    if have_cert {
        "the server asked for a client certificate and closed the connection: it did not accept ours".into()
    } else {
        "the server requires a client certificate and closed the connection (--client-cert PEM --client-key PEM)".into()
    }
}

/// [`explain`] for the WebSocket client: an alert about our (missing or untrusted) client
/// certificate gets a hint. With TLS 1.3 such an alert arrives after our side of the handshake
/// is done, so it can surface while the HTTP upgrade is being read.
pub fn explain_client(err: &std::io::Error, host: &str, have_cert: bool) -> String {
    use rustls::AlertDescription as A;
    let alert = match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(a)) => *a,
        _ => return explain(err, host),
    };
    match alert {
        A::CertificateRequired | A::HandshakeFailure if !have_cert => format!(
            "server sent TLS alert {alert:?}: it requires a client certificate \
             (--client-cert PEM --client-key PEM)"
        ),
        A::CertificateRequired
        | A::BadCertificate
        | A::UnknownCA
        | A::CertificateUnknown
        | A::AccessDenied
            if have_cert =>
        {
            format!("server sent TLS alert {alert:?}: it did not accept our client certificate")
        }
        _ => explain(err, host),
    }
}

/// Turn a TLS I/O error into words a user can act on.
pub fn explain(err: &std::io::Error, host: &str) -> String {
    use rustls::{CertificateError, Error as E};
    let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<E>()) else {
        return err.to_string();
    };
    match tls {
        E::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "certificate not trusted (unknown issuer); add its CA with --ca-file PEM, or use -k to skip verification".into()
        }
        E::InvalidCertificate(CertificateError::NotValidForName)
        | E::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            format!("certificate is not valid for host '{host}' (use -k to skip verification)")
        }
        E::InvalidCertificate(CertificateError::Expired)
        | E::InvalidCertificate(CertificateError::ExpiredContext { .. }) => "certificate has expired".into(),
        E::InvalidCertificate(CertificateError::NotValidYet)
        | E::InvalidCertificate(CertificateError::NotValidYetContext { .. }) => "certificate is not valid yet".into(),
        E::InvalidCertificate(other) => format!("invalid certificate: {other:?}"),
        E::AlertReceived(alert) => format!("server sent TLS alert {alert:?}"),
        other => other.to_string(),
    }
}
