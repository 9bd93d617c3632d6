//! TLS failures in plain words: one sentence each, saying what is wrong (the issuer, the names a
//! certificate covers, the expiry date) and what to do about it, for the `wss://` client and for
//! `wss-listen:`. No Rust debug text: rustls's enum names are turned into lower-case words.

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::{AlertDescription, CertificateError, Error as TlsError};

use super::verify::ca_used_as_end_entity;
use super::x509::{self, CertInfo};

/// Whose certificate was checked: a server's (we are the `wss://` client, connecting to `host`)
/// or a client's (we are `wss-listen:` with `--tls-client-ca`).
#[derive(Clone, Copy)]
enum Peer<'a> {
    Server { host: &'a str },
    Client,
}

impl Peer<'_> {
    fn name(self) -> &'static str {
        match self {
            Peer::Server { .. } => "server",
            Peer::Client => "client",
        }
    }

    /// "certificate" or "client certificate": whose certificate a sentence is about.
    fn cert(self) -> &'static str {
        match self {
            Peer::Server { .. } => "certificate",
            Peer::Client => "client certificate",
        }
    }

    /// What a peer that does not speak TLS at all is probably doing.
    fn not_tls_hint(self) -> &'static str {
        match self {
            Peer::Server { .. } => "is it a plain (unencrypted) port?",
            Peer::Client => "is it using ws:// or http:// instead of wss:// or https://?",
        }
    }

    /// The way out that does not involve fixing the certificate.
    fn skip(self) -> &'static str {
        match self {
            Peer::Server { .. } => " (or use -k to skip verification)",
            Peer::Client => "",
        }
    }
}

/// The server asked for a client certificate and then the connection failed without a clearer
/// reason: say what to do.
pub(crate) fn client_cert_hint(have_cert: bool) -> String {
    if have_cert {
        "the server asked for a client certificate and closed the connection: it did not accept ours".into()
    } else {
        "the server requires a client certificate and closed the connection (--client-cert PEM --client-key PEM)".into()
    }
}

/// A failed TLS handshake (or a TLS alert during the upgrade) of the WebSocket client with
/// `host`. `cert` is the server's certificate when our verifier refused it. An alert about our
/// (missing or untrusted) client certificate gets a hint: with TLS 1.3 such an alert arrives
/// after our side of the handshake is done, so it can surface while the upgrade is being read.
pub(crate) fn explain_client(
    err: &std::io::Error,
    cert: Option<&CertificateDer<'_>>,
    host: &str,
    have_cert: bool,
) -> String {
    use AlertDescription as A;
    let peer = Peer::Server { host };
    let alert = match tls_error(err) {
        Some(TlsError::AlertReceived(a)) => *a,
        _ => return explain(err, cert, peer),
    };
    let said = sent_alert(peer, alert);
    match alert {
        A::CertificateRequired | A::HandshakeFailure if !have_cert => {
            format!("{said}: it requires a client certificate (--client-cert PEM --client-key PEM)")
        }
        A::CertificateRequired
        | A::BadCertificate
        | A::UnknownCA
        | A::CertificateUnknown
        | A::AccessDenied
            if have_cert =>
        {
            format!("{said}: it did not accept our client certificate")
        }
        _ => explain(err, cert, peer),
    }
}

/// A failed TLS handshake of `wss-listen:` with a client; `cert` is the client's certificate
/// when our `--tls-client-ca` verifier refused it.
pub(crate) fn explain_server(err: &std::io::Error, cert: Option<&CertificateDer<'_>>) -> String {
    use AlertDescription as A;
    match tls_error(err) {
        Some(TlsError::AlertReceived(
            a @ (A::UnknownCA | A::BadCertificate | A::CertificateUnknown),
        )) => format!(
            "{}: it does not trust our certificate (--tls-cert)",
            sent_alert(Peer::Client, *a)
        ),
        _ => explain(err, cert, Peer::Client),
    }
}

/// `client sent TLS alert 'unknown CA'`: an alert we received names the peer as its sender (an
/// alert we send ends our handshake with the error that made us send it, described instead).
fn sent_alert(peer: Peer<'_>, alert: AlertDescription) -> String {
    format!(
        "{} sent TLS alert '{}'",
        peer.name(),
        words(&format!("{alert:?}"))
    )
}

fn tls_error(err: &std::io::Error) -> Option<&TlsError> {
    err.get_ref().and_then(|e| e.downcast_ref::<TlsError>())
}

/// Any TLS I/O error, in words.
fn explain(err: &std::io::Error, cert: Option<&CertificateDer<'_>>, peer: Peer<'_>) -> String {
    let Some(tls) = tls_error(err) else {
        return err.to_string();
    };
    let info = cert.and_then(|c| x509::parse(c));
    let info = info.as_ref();
    let who = peer.name();
    match tls {
        TlsError::InvalidCertificate(e) => certificate(e, info, peer),
        TlsError::AlertReceived(a) => sent_alert(peer, *a),
        TlsError::NoCertificatesPresented => match peer {
            Peer::Client => "the client sent no certificate; --tls-client-ca requires one".into(),
            Peer::Server { .. } => "the server sent no certificate".into(),
        },
        TlsError::PeerIncompatible(why) => format!(
            "the {who} and wsbridge have no TLS version or algorithm in common ({})",
            words(&format!("{why:?}"))
        ),
        TlsError::PeerMisbehaved(why) => {
            format!(
                "the {who} broke the TLS protocol ({})",
                words(&format!("{why:?}"))
            )
        }
        TlsError::InvalidMessage(why) => format!(
            "the {who} sent something that is not TLS ({}); {}",
            words(&format!("{why:?}")),
            peer.not_tls_hint()
        ),
        TlsError::InappropriateMessage { .. } | TlsError::InappropriateHandshakeMessage { .. } => {
            format!("the {who} sent an unexpected TLS message")
        }
        TlsError::General(why) => why.clone(),
        other => other.to_string(),
    }
}

/// Why a certificate was refused, and what to do.
fn certificate(e: &CertificateError, info: Option<&CertInfo>, peer: Peer<'_>) -> String {
    use CertificateError as C;
    let (cert, skip) = (peer.cert(), peer.skip());
    match e {
        C::UnknownIssuer => untrusted(info, peer),
        _ if ca_used_as_end_entity(e) => ca_as_end_entity(info, peer),
        C::NotValidForName | C::NotValidForNameContext { .. } => wrong_name(info, peer),
        C::ExpiredContext { not_after, .. } => {
            format!(
                "{cert} expired on {}; it must be renewed{skip}",
                date(*not_after)
            )
        }
        C::Expired => format!("{cert} has expired; it must be renewed{skip}"),
        C::NotValidYetContext { not_before, .. } => format!(
            "{cert} is not valid until {}; check the clocks{skip}",
            date(*not_before)
        ),
        C::NotValidYet => format!("{cert} is not valid yet; check the clocks{skip}"),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => format!(
            "{cert} is not meant for a TLS {}: its extended key usage does not allow it{skip}",
            peer.name()
        ),
        C::BadSignature => format!("{cert} has a bad signature: its issuer did not sign it{skip}"),
        C::BadEncoding => format!("{cert} is malformed (not valid DER){skip}"),
        C::UnhandledCriticalExtension => {
            format!("{cert} has a critical extension wsbridge does not know{skip}")
        }
        C::Revoked => format!("{cert} has been revoked{skip}"),
        C::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(w) => format!(
                "{cert} could not be verified ({}){skip}",
                words(&format!("{w:?}"))
            ),
            None => format!("{cert} could not be verified ({}){skip}", other.0),
        },
        other => format!(
            "{cert} could not be verified ({}){skip}",
            words(&format!("{other:?}"))
        ),
    }
}

/// Signed by nobody we trust (webpki's UnknownIssuer): name the issuer.
fn untrusted(info: Option<&CertInfo>, peer: Peer<'_>) -> String {
    let Some(info) = info else {
        return match peer {
            Peer::Server { .. } => "certificate not trusted (unknown issuer); add its CA with --ca-file PEM, or use -k to skip verification".into(),
            Peer::Client => "client certificate not trusted: no --tls-client-ca certificate issued it".into(),
        };
    };
    let (cert, subject, issuer) = (peer.cert(), quoted(&info.subject), quoted(&info.issuer));
    match (peer, info.self_issued) {
        (Peer::Server { .. }, true) => format!(
            "certificate not trusted: it is self-signed ({subject}) and not one you trust; to trust \
             exactly this certificate, pass it with --ca-file PEM (or use -k to skip verification)"
        ),
        (Peer::Server { .. }, false) => format!(
            "certificate not trusted: it was issued by {issuer}, which is not a CA you trust; add \
             that CA with --ca-file PEM (or use -k to skip verification)"
        ),
        (Peer::Client, true) => format!(
            "{cert} not trusted: it is self-signed ({subject}) and not in --tls-client-ca; add it \
             there to trust exactly this certificate"
        ),
        (Peer::Client, false) => format!(
            "{cert} not trusted: it was issued by {issuer}, which is not in --tls-client-ca; add \
             that CA there"
        ),
    }
}

/// A CA certificate in the leaf's place, and not one of the configured trusted certificates
/// (those are accepted by exact match).
fn ca_as_end_entity(info: Option<&CertInfo>, peer: Peer<'_>) -> String {
    let what = match info {
        Some(i) if i.self_issued => {
            format!("a CA certificate ({}, self-signed)", quoted(&i.subject))
        }
        Some(i) => format!(
            "a CA certificate ({}, issued by {})",
            quoted(&i.subject),
            quoted(&i.issuer)
        ),
        None => "a CA certificate".into(),
    };
    let who = peer.name();
    match peer {
        Peer::Server { .. } => format!(
            "certificate not trusted: the server presented {what} as its own, and it is not one \
             you trust; to trust exactly this certificate, pass it with --ca-file PEM (or use -k \
             to skip verification)"
        ),
        Peer::Client => format!(
            "client certificate not trusted: the {who} presented {what} as its own, and it is not \
             in --tls-client-ca; add it there to trust exactly this certificate"
        ),
    }
}

/// The host name is not among the certificate's subjectAltNames: say which names it has.
fn wrong_name(info: Option<&CertInfo>, peer: Peer<'_>) -> String {
    let host = match peer {
        Peer::Server { host } => host,
        Peer::Client => return "client certificate is not valid for its name".into(),
    };
    let names: Vec<String> = info
        .map(|i| {
            let ips = i.ip_addrs.iter().map(|ip| ip.to_string());
            i.dns_names.iter().cloned().chain(ips).collect()
        })
        .unwrap_or_default();
    match (info, names.is_empty()) {
        (None, _) => {
            format!("certificate is not valid for host '{host}' (use -k to skip verification)")
        }
        (Some(_), true) => format!(
            "certificate is not valid for host '{host}': it names no host (no DNS or IP \
             subjectAltName); the server needs one for '{host}' (or use -k to skip verification)"
        ),
        (Some(_), false) => format!(
            "certificate is not valid for host '{host}': it covers only {}; connect with {} (or \
             use -k to skip verification)",
            names.join(", "),
            if names.len() == 1 {
                "that name"
            } else {
                "one of those names"
            }
        ),
    }
}

fn quoted(name: &str) -> String {
    if name.is_empty() {
        "an unnamed certificate".into()
    } else {
        format!("'{name}'")
    }
}

fn date(t: UnixTime) -> String {
    x509::format_utc(i64::try_from(t.as_secs()).unwrap_or(i64::MAX))
}

/// `UnknownCA` → `unknown CA`, `NoCipherSuitesInCommon(…)` → `no cipher suites in common`: the
/// leading identifier of an enum's debug text, as words (acronyms kept).
fn words(debug: &str) -> String {
    let ident: Vec<char> = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let mut spaced = String::new();
    for (i, &c) in ident.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| ident[j]);
        let next_lower = ident.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
        let boundary = c.is_ascii_uppercase()
            && prev.is_some_and(|p| {
                p.is_ascii_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_ascii_uppercase() && next_lower)
            });
        if boundary {
            spaced.push(' ');
        }
        spaced.push(c);
    }
    let acronym = |w: &str| w.len() > 1 && w.chars().all(|c| c.is_ascii_uppercase());
    spaced
        .split(' ')
        .map(|w| {
            if acronym(w) {
                w.to_string()
            } else {
                w.to_ascii_lowercase()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(e: TlsError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn each_role_names_the_other_side() {
        let alert = io(TlsError::AlertReceived(AlertDescription::HandshakeFailure));
        assert_eq!(
            explain_server(&alert, None),
            "client sent TLS alert 'handshake failure'"
        );
        assert_eq!(
            explain_client(&alert, None, "h", true),
            "server sent TLS alert 'handshake failure'"
        );
        let unknown = io(TlsError::AlertReceived(AlertDescription::UnknownCA));
        assert!(explain_server(&unknown, None).starts_with("client sent TLS alert 'unknown CA'"));
        let plain = io(TlsError::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        let server_side = explain_server(&plain, None);
        assert!(server_side.starts_with("the client sent something that is not TLS"));
        assert!(server_side.contains("instead of wss://"), "{server_side}");
        assert!(!server_side.contains("port"), "{server_side}");
        let client_side = explain_client(&plain, None, "h", false);
        assert!(client_side.starts_with("the server sent something that is not TLS"));
        assert!(
            client_side.contains("plain (unencrypted) port"),
            "{client_side}"
        );
    }

    #[test]
    fn enum_names_become_words() {
        assert_eq!(words("UnknownCA"), "unknown CA");
        assert_eq!(words("HandshakeFailure"), "handshake failure");
        assert_eq!(
            words("NoCipherSuitesInCommon"),
            "no cipher suites in common"
        );
        assert_eq!(words("TLSVersionTooOld"), "TLS version too old");
        assert_eq!(words("TrailingData(\"ClientHello\")"), "trailing data");
        assert_eq!(words("Unknown(0x99)"), "unknown");
    }
}
