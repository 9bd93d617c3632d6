//! Proxies for the WebSocket client: HTTP CONNECT and SOCKS5 (RFC 1928, with RFC 1929
//! user/password authentication), chosen by `--proxy` or by the usual environment variables
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, also in lower case).
//!
//! The proxy resolves the target's host name (SOCKS5 is always used the `socks5h` way), so a
//! host that only the proxy can resolve works. The proxy password is never printed: errors and
//! logs show the proxy as `scheme://user:***@host:port`.
//!
//! Here: the proxy URL ([`Proxy`]), the choice of a proxy ([`choose`], [`bypass`] for
//! `NO_PROXY`) and the TCP connection to it; each protocol spoken over that connection has its
//! own module (`http_connect`, `socks5`).

mod http_connect;
mod socks5;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// The protocol spoken to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `http://`: an HTTP/1.1 `CONNECT` tunnel.
    Http,
    /// `socks5://` or `socks5h://`: SOCKS version 5, host names resolved by the proxy.
    Socks5,
}

/// A parsed proxy URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Proxy {
    pub(crate) kind: Kind,
    /// Host name or IP address (IPv6 without brackets).
    pub(crate) host: String,
    pub(crate) port: u16,
    /// User and password, percent-decoded.
    pub(crate) auth: Option<(String, String)>,
}

/// `Debug` must not show the password either (it can end up in logs through `{:?}`).
impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proxy({self})")
    }
}

/// `http://user:***@host:port`: the password is always replaced by `***`.
impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            Kind::Http => "http",
            Kind::Socks5 => "socks5",
        };
        write!(f, "{scheme}://")?;
        if let Some((user, _)) = &self.auth {
            write!(f, "{}:***@", url_escape(user))?;
        }
        write!(f, "{}:{}", bracket(&self.host), self.port)
    }
}

impl Proxy {
    /// Parse `http://[USER:PASS@]HOST[:PORT]`, `socks5://…` or `socks5h://…`. A URL without a
    /// scheme is taken as `http://`, as curl does. Errors never contain the password.
    pub(crate) fn parse(spec: &str) -> std::result::Result<Proxy, String> {
        let spec = spec.trim();
        let with_scheme = if spec.contains("://") {
            spec.to_string()
        } else {
            format!("http://{spec}")
        };
        let shown = crate::secret::redact_proxy_userinfo(&with_scheme);
        let url = url::Url::parse(&with_scheme)
            .map_err(|e| format!("proxy '{shown}' is not a valid URL: {e}"))?;
        let kind = match url.scheme() {
            "http" => Kind::Http,
            "socks5" | "socks5h" => Kind::Socks5,
            "https" => {
                return Err(format!(
                    "proxy '{shown}': https:// proxies (TLS to the proxy) are not supported; use http:// or socks5://"
                ));
            }
            other => {
                return Err(format!(
                    "proxy '{shown}': unsupported scheme '{other}' (use http:// or socks5://)"
                ));
            }
        };
        let host = match url.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => return Err(format!("proxy '{shown}': missing host")),
        };
        if host.is_empty() {
            return Err(format!("proxy '{shown}': missing host"));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "proxy '{shown}': a proxy URL is only scheme://[USER:PASS@]HOST:PORT"
            ));
        }
        let port = url.port().unwrap_or(match kind {
            Kind::Http => 80,
            Kind::Socks5 => 1080,
        });
        let auth = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            Some((
                percent_decode(url.username()),
                percent_decode(url.password().unwrap_or("")),
            ))
        };
        if kind == Kind::Socks5
            && let Some((u, p)) = &auth
            && (u.len() > 255 || p.len() > 255)
        {
            return Err(format!(
                "proxy '{shown}': SOCKS5 user names and passwords are at most 255 bytes"
            ));
        }
        Ok(Proxy {
            kind,
            host,
            port,
            auth,
        })
    }

    /// Open a TCP connection to `host:port` through this proxy. `target` names the WebSocket URL
    /// in errors; `limit` bounds each step (DNS, connect, proxy negotiation).
    pub(crate) async fn connect(
        &self,
        host: &str,
        port: u16,
        target: &str,
        limit: Duration,
    ) -> Result<TcpStream> {
        let mut tcp = self.connect_to_proxy(target, limit).await?;
        let negotiate = async {
            match self.kind {
                Kind::Http => self.http_connect(&mut tcp, host, port, target).await,
                Kind::Socks5 => self.socks5_connect(&mut tcp, host, port, target).await,
            }
        };
        tokio::time::timeout(limit, negotiate)
            .await
            .map_err(|_| Error::Timeout {
                target: target.to_string(),
                what: "proxy negotiation",
                after: limit,
            })??;
        tracing::debug!("{target}: proxy {self} opened a tunnel to {host}:{port}");
        Ok(tcp)
    }

    async fn connect_to_proxy(&self, target: &str, limit: Duration) -> Result<TcpStream> {
        let timeout = |what| Error::Timeout {
            target: target.to_string(),
            what,
            after: limit,
        };
        let addrs: Vec<_> = tokio::time::timeout(
            limit,
            tokio::net::lookup_host((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| timeout("DNS lookup of the proxy"))?
        .map_err(|e| Error::Dns {
            target: target.to_string(),
            detail: format!("proxy {self}: '{}': {}", self.host, lookup_detail(&e)),
        })?
        .collect();
        let mut last_err = None;
        for addr in &addrs {
            match tokio::time::timeout(limit, TcpStream::connect(addr))
                .await
                .map_err(|_| timeout("TCP connect to the proxy"))?
            {
                Ok(s) => {
                    crate::endpoint::tcp::tune(&s);
                    tracing::debug!("{target}: TCP connected to proxy {self} ({addr})");
                    return Ok(s);
                }
                Err(e) => {
                    tracing::debug!("{target}: connect to proxy {self} at {addr} failed: {e}");
                    last_err = Some(e);
                }
            }
        }
        let e = last_err.unwrap_or_else(|| std::io::Error::other("no address to connect to"));
        Err(Error::Connect {
            target: target.to_string(),
            source: std::io::Error::new(e.kind(), format!("proxy {self}: {e}")),
        })
    }

    /// The proxy said no for a reason that retrying will not fix (exit code 6).
    fn refused(&self, target: &str, detail: String) -> Error {
        Error::Handshake {
            target: target.to_string(),
            detail: format!("proxy {self} refused: {detail}"),
            by: crate::error::Refused::Proxy,
        }
    }

    /// The tunnel could not be opened; may be transient (exit code 4).
    fn refused_connect(&self, target: &str, detail: String) -> Error {
        Error::Connect {
            target: target.to_string(),
            source: std::io::Error::other(format!("proxy {self}: {detail}")),
        }
    }

    fn lost(&self, target: &str, step: &str, e: std::io::Error) -> Error {
        Error::Connect {
            target: target.to_string(),
            source: std::io::Error::new(e.kind(), format!("proxy {self}: {step}: {e}")),
        }
    }
}

/// Where a proxy setting came from, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Flag,
    Env(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("--proxy"),
            Source::Env(name) => f.write_str(name),
        }
    }
}

/// The proxy to use for a connection to `host` (`tls`: a `wss://` URL), or None for a direct
/// connection. `flag` is `--proxy` as given (`none` disables proxies); without it the
/// environment is consulted through `env` (a lookup function, for tests).
pub(crate) fn choose(
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    tls: bool,
    host: &str,
) -> std::result::Result<Option<(Proxy, Source)>, String> {
    if let Some(flag) = flag {
        if flag.trim().eq_ignore_ascii_case("none") || flag.trim().is_empty() {
            return Ok(None);
        }
        return Proxy::parse(flag).map(|p| Some((p, Source::Flag)));
    }
    let get = |names: [&'static str; 2]| {
        names
            .into_iter()
            .find_map(|n| env(n).filter(|v| !v.trim().is_empty()).map(|v| (n, v)))
    };
    let scheme_var = if tls {
        ["https_proxy", "HTTPS_PROXY"]
    } else {
        ["http_proxy", "HTTP_PROXY"]
    };
    let Some((name, value)) = get(scheme_var).or_else(|| get(["all_proxy", "ALL_PROXY"])) else {
        return Ok(None);
    };
    if let Some((_, no_proxy)) = get(["no_proxy", "NO_PROXY"])
        && bypass(&no_proxy, host)
    {
        tracing::debug!("{host}: not using the proxy from {name}: NO_PROXY matches");
        return Ok(None);
    }
    if value.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    Proxy::parse(&value)
        .map(|p| Some((p, Source::Env(name))))
        .map_err(|e| format!("{name}: {e}"))
}

/// Does `NO_PROXY` (a comma- or space-separated list) exempt `host`? Entries: `*` (everything),
/// a domain (matches itself and its subdomains; a leading `.` or `*.` is ignored), an exact IP
/// address, or an IP network in CIDR form (`10.0.0.0/8`). A `:PORT` after an entry is ignored.
pub(crate) fn bypass(no_proxy: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let host_ip = host.parse::<IpAddr>().ok();
    no_proxy
        .split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = entry.to_ascii_lowercase();
            if let Some((net, bits)) = entry.split_once('/') {
                return match (host_ip, net.parse::<IpAddr>(), bits.parse::<u8>()) {
                    (Some(ip), Ok(net), Ok(bits)) => in_network(ip, net, bits),
                    _ => false,
                };
            }
            let entry = strip_port(&entry);
            if let Ok(ip) = entry.parse::<IpAddr>() {
                return host_ip == Some(ip);
            }
            let domain = entry
                .trim_start_matches("*.")
                .trim_start_matches('.')
                .trim_end_matches('.');
            !domain.is_empty()
                && (host == domain
                    || (host.ends_with(domain) && host[..host.len() - domain.len()].ends_with('.')))
        })
}

/// `host:port` → `host`, `[::1]:port` → `::1`; a bare IPv6 address stays as it is.
fn strip_port(entry: &str) -> &str {
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => entry,
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn lookup_detail(e: &std::io::Error) -> String {
    let msg = e.to_string();
    msg.strip_prefix("failed to lookup address information: ")
        .unwrap_or(&msg)
        .to_string()
}

/// `%41` → `A`; anything else (including `+`, and a `%` that starts no escape) as it is.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Percent-encode the characters that would make a user name ambiguous in a URL.
fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            ':' | '@' | '/' | '%' | '?' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            c if c.is_control() => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn parse_and_redact() {
        let p = Proxy::parse("http://alice:s%3Acr%40t@127.0.0.1:3128").unwrap();
        assert_eq!(p.kind, Kind::Http);
        assert_eq!((p.host.as_str(), p.port), ("127.0.0.1", 3128));
        assert_eq!(p.auth, Some(("alice".into(), "s:cr@t".into())));
        assert_eq!(p.to_string(), "http://alice:***@127.0.0.1:3128");
        assert!(!format!("{p:?}").contains("cr"));

        let p = Proxy::parse("socks5h://[::1]").unwrap();
        assert_eq!(
            (p.kind, p.host.as_str(), p.port),
            (Kind::Socks5, "::1", 1080)
        );
        assert_eq!(p.to_string(), "socks5://[::1]:1080");
        let p = Proxy::parse("proxy.example:8080").unwrap();
        assert_eq!((p.kind, p.port), (Kind::Http, 8080));
        assert_eq!(Proxy::parse("http://p").unwrap().port, 80);

        for (bad, want) in [
            ("https://u:pw1@p:1", "not supported"),
            ("ftp://p:1", "unsupported scheme"),
            ("http://u:pw1@p:1/path", "only scheme://"),
            ("http://u:pw1@:99999", "not a valid URL"),
        ] {
            let e = Proxy::parse(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
            assert!(!e.contains("pw1"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_password_with_an_unescaped_slash_is_hidden_too() {
        let e = Proxy::parse("http://u:pa/ss@h:1").unwrap_err();
        assert!(e.contains("u:***@h:1"), "{e}");
        assert!(!e.contains("pa/ss"), "{e}");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c%"), "a b+c%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn choose_from_flag_and_environment() {
        let none = env(&[]);
        assert_eq!(choose(None, &none, true, "h").unwrap(), None);
        let (p, s) = choose(Some("socks5://p:1"), &none, true, "h")
            .unwrap()
            .unwrap();
        assert_eq!((p.kind, s), (Kind::Socks5, Source::Flag));

        let e = env(&[
            ("HTTPS_PROXY", "http://secure:1"),
            ("HTTP_PROXY", "http://plain:2"),
            ("ALL_PROXY", "socks5://all:3"),
            ("NO_PROXY", "internal.example, 10.0.0.0/8"),
        ]);
        let host = |tls, h| choose(None, &e, tls, h).unwrap().map(|(p, _)| p.host);
        assert_eq!(host(true, "a.example").as_deref(), Some("secure"));
        assert_eq!(host(false, "a.example").as_deref(), Some("plain"));
        assert_eq!(host(true, "x.internal.example"), None);
        assert_eq!(host(true, "10.1.2.3"), None);
        // --proxy ignores NO_PROXY; --proxy none ignores everything.
        assert!(
            choose(Some("http://p:1"), &e, true, "x.internal.example")
                .unwrap()
                .is_some()
        );
        assert_eq!(choose(Some("none"), &e, true, "a.example").unwrap(), None);

        // Lower case wins; ALL_PROXY is the fallback.
        let e = env(&[
            ("https_proxy", "http://lower:1"),
            ("HTTPS_PROXY", "http://upper:1"),
            ("all_proxy", "socks5://all:3"),
            ("no_proxy", "*"),
        ]);
        assert_eq!(choose(None, &e, true, "h").unwrap(), None);
        let e = env(&[
            ("https_proxy", "http://lower:1"),
            ("ALL_PROXY", "socks5://all:3"),
        ]);
        let pick = |tls| choose(None, &e, tls, "h").unwrap().unwrap();
        assert_eq!(pick(true).0.host, "lower");
        assert_eq!(pick(false).0.host, "all");
        assert_eq!(pick(false).1, Source::Env("ALL_PROXY"));

        let e = env(&[("HTTP_PROXY", "gopher://u:pw9@x:1")]);
        let err = choose(None, &e, false, "h").unwrap_err();
        assert!(err.starts_with("HTTP_PROXY: "), "{err}");
        assert!(!err.contains("pw9"), "{err}");
    }

    #[test]
    fn no_proxy_matching() {
        let list = "localhost, .corp.example,*.svc, 192.168.1.7, ::1, 10.0.0.0/8, db:5432";
        for h in [
            "localhost",
            "corp.example",
            "a.corp.example",
            "x.svc",
            "192.168.1.7",
            "::1",
            "[::1]",
            "10.20.30.40",
            "db",
            "LOCALHOST",
        ] {
            assert!(bypass(list, h), "{h}");
        }
        for h in [
            "notlocalhost",
            "xcorp.example",
            "192.168.1.8",
            "11.0.0.1",
            "example.com",
            "::2",
        ] {
            assert!(!bypass(list, h), "{h}");
        }
        assert!(bypass("*", "anything"));
        assert!(!bypass("", "anything"));
    }
}
