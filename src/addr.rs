//! Address specifiers: parsing the strings users type (`tcp-l:127.0.0.1:0`, `wss://host/x`, `-`)
//! into inert typed values, and printing them back in canonical, secret-free form. No I/O here.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use url::Url;

use crate::secret::redact_userinfo;

/// One side of a bridge, as typed by the user. Parsing never touches the network or the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `-` or `stdio:`: standard input and output.
    Stdio,
    /// `tcp:HOST:PORT`: connect to a TCP server.
    Tcp(HostPort),
    /// `tcp-listen:HOST:PORT`: accept TCP clients (port 0 picks a free port).
    TcpListen(HostPort),
    /// `unix:PATH`: connect to a Unix stream socket.
    Unix(PathBuf),
    /// `unix-listen:PATH`: accept clients on a Unix stream socket.
    UnixListen(PathBuf),
    /// `ws://…` or `wss://…`: WebSocket client.
    Ws(WsUrl),
    /// `mirror:`: in-process endpoint that sends every message back unchanged.
    Mirror,
    /// `ws-listen:HOST:PORT[/PATH]` or `wss-listen:…`: WebSocket server.
    WsListen(WsListen),
    /// `exec:PROGRAM` (or `exec:'PROGRAM ARGS…'`): a child process per connection.
    Exec(String),
    /// `sh-c:COMMAND`: `/bin/sh -c COMMAND` per connection.
    ShC(String),
    /// `exec-dir:DIR` (or `--exec-dir DIR`): the program `DIR/<request path>` per connection.
    ExecDir(PathBuf),
    /// `broadcast:`: a room; every message goes to every other member.
    Broadcast,
    /// `sd-listen:NAME` or `sd-listen:` (the first): accept clients on a listening socket passed
    /// by systemd socket activation (`LISTEN_FDS`), TCP or Unix.
    SdListen(Option<String>),
    /// `inetd:`: standard input/output, being one client's connection (inetd, or a systemd
    /// socket with `Accept=yes`).
    Inetd,
}

/// A WebSocket server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsListen {
    pub hp: HostPort,
    /// Only upgrades to this path are accepted (with `/`), when given.
    pub path: Option<String>,
    pub tls: bool,
}

/// One row per address kind: everything about the kind that is not its value. Parsing, the
/// predicates below, the "known:" list in errors and the ADDRESSES section of `--help` all come
/// from this table; the compiler checks the rest (`Address::kind`, `Display`, the endpoints).
pub struct KindInfo {
    kind: Kind,
    /// Every spelling of `KIND:` (canonical first); none for `-` and the `ws://` schemes.
    names: &'static [&'static str],
    /// Turns what follows `KIND:` into the address; the canonical name is for messages.
    parse: fn(&str, &'static str) -> Result<Address, AddrError>,
    /// The form shown in `--help`, and what it does.
    synopsis: &'static str,
    help: &'static str,
    /// Accepts many connections.
    listener: bool,
    /// Is this process's standard input/output.
    stdio: bool,
    /// Its connections carry messages, not bytes.
    messages: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stdio,
    Ws,
    Tcp,
    TcpListen,
    Unix,
    UnixListen,
    Mirror,
    WsListen,
    WssListen,
    Exec,
    ShC,
    ExecDir,
    Broadcast,
    SdListen,
    Inetd,
}

const fn row(kind: Kind, names: &'static [&'static str], synopsis: &'static str) -> KindInfo {
    KindInfo {
        kind,
        names,
        parse: |_, c| Err(AddrError(format!("'{c}:' cannot be written this way"))),
        synopsis,
        help: "",
        listener: false,
        stdio: false,
        messages: false,
    }
}

const KINDS: &[KindInfo] = &[
    KindInfo {
        stdio: true,
        parse: |r, c| no_arg(r, c, Address::Stdio),
        help: "standard input/output (also: stdio:)",
        ..row(Kind::Stdio, &["stdio"], "-")
    },
    KindInfo {
        messages: true,
        help: "WebSocket client; wss:// over TLS (Mozilla roots + --ca-file)",
        ..row(Kind::Ws, &[], "ws[s]://HOST[:PORT]/PATH")
    },
    KindInfo {
        parse: |r, c| HostPort::parse(r, c).map(Address::Tcp),
        help: "connect to a TCP server (also: tcp-connect:)",
        ..row(
            Kind::Tcp,
            &["tcp", "tcp-connect", "connect-tcp", "tcp-c", "c-tcp"],
            "tcp:HOST:PORT",
        )
    },
    KindInfo {
        listener: true,
        parse: |r, c| HostPort::parse(r, c).map(Address::TcpListen),
        help: "accept TCP clients; port 0 picks a free port (also: tcp-l:, l-tcp:)",
        ..row(
            Kind::TcpListen,
            &["tcp-listen", "listen-tcp", "tcp-l", "l-tcp"],
            "tcp-listen:HOST:PORT",
        )
    },
    KindInfo {
        parse: |r, c| unix_path(r, c).map(Address::Unix),
        help: "connect to a Unix socket (also: unix-connect:)",
        ..row(
            Kind::Unix,
            &["unix", "unix-connect", "connect-unix", "unix-c", "c-unix"],
            "unix:PATH",
        )
    },
    KindInfo {
        listener: true,
        parse: |r, c| unix_path(r, c).map(Address::UnixListen),
        help: "accept clients on a Unix socket (also: unix-l:, l-unix:)",
        ..row(
            Kind::UnixListen,
            &["unix-listen", "listen-unix", "unix-l", "l-unix"],
            "unix-listen:PATH",
        )
    },
    KindInfo {
        messages: true,
        parse: |r, c| no_arg(r, c, Address::Mirror),
        help: "send every message back unchanged (an echo endpoint)",
        ..row(Kind::Mirror, &["mirror"], "mirror:")
    },
    KindInfo {
        listener: true,
        messages: true,
        parse: |r, c| ws_listen(r, c, false),
        help: "WebSocket server (also: ws-l:); plain GET: /healthz, --static, --console",
        ..row(
            Kind::WsListen,
            &["ws-listen", "listen-ws", "ws-l", "l-ws"],
            "ws-listen:HOST:PORT[/PATH]",
        )
    },
    KindInfo {
        listener: true,
        messages: true,
        parse: |r, c| ws_listen(r, c, true),
        help: "the same over TLS (--tls-cert, --tls-key)",
        ..row(
            Kind::WssListen,
            &["wss-listen", "listen-wss", "wss-l", "l-wss"],
            "wss-listen:HOST:PORT[/PATH]",
        )
    },
    KindInfo {
        parse: |r, c| command(r, c).map(Address::Exec),
        help: "a program per connection, stdin/stdout (--exec-args A B …)",
        ..row(Kind::Exec, &["exec"], "exec:PROGRAM")
    },
    KindInfo {
        parse: |r, c| command(r, c).map(Address::ShC),
        help: "/bin/sh -c COMMAND per connection (also: cmd:)",
        ..row(Kind::ShC, &["sh-c", "cmd"], "sh-c:COMMAND")
    },
    KindInfo {
        parse: |r, c| command(r, c).map(|d| Address::ExecDir(PathBuf::from(d))),
        help: "after ws-listen:, run DIR/<request path> per client (also: --exec-dir)",
        ..row(Kind::ExecDir, &["exec-dir"], "exec-dir:DIR")
    },
    KindInfo {
        messages: true,
        parse: |r, c| no_arg(r, c, Address::Broadcast),
        help: "a room: each message goes to every other client (room = URL path)",
        ..row(Kind::Broadcast, &["broadcast"], "broadcast:")
    },
    KindInfo {
        listener: true,
        parse: sd_listen,
        help: "accept clients on a socket passed by systemd (NAME: FileDescriptorName=)",
        ..row(
            Kind::SdListen,
            &["sd-listen", "listen-sd", "sd-l", "l-sd", "systemd-listen"],
            "sd-listen:[NAME]",
        )
    },
    KindInfo {
        stdio: true,
        parse: |r, c| no_arg(r, c, Address::Inetd),
        help: "stdin/stdout is one client's connection (inetd, systemd Accept=yes)",
        ..row(Kind::Inetd, &["inetd"], "inetd:")
    },
];

/// The ADDRESSES section of `--help`, from the table.
pub fn help_text() -> String {
    KINDS
        .iter()
        .map(|k| {
            if k.synopsis.len() > 23 {
                format!("  {}\n  {:<23} {}\n", k.synopsis, "", k.help)
            } else {
                format!("  {:<23} {}\n", k.synopsis, k.help)
            }
        })
        .collect()
}

fn info(kind: Kind) -> &'static KindInfo {
    KINDS
        .iter()
        .find(|k| k.kind == kind)
        .expect("every kind has a row (checked by a test)")
}

fn no_arg(rest: &str, canonical: &str, addr: Address) -> Result<Address, AddrError> {
    if rest.is_empty() {
        Ok(addr)
    } else {
        Err(AddrError(format!(
            "'{canonical}:' takes no argument, got '{rest}'"
        )))
    }
}

fn ws_listen(rest: &str, canonical: &str, tls: bool) -> Result<Address, AddrError> {
    let (hp, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_string())),
        None => (rest, None),
    };
    let hp = HostPort::parse(hp, canonical)?;
    Ok(Address::WsListen(WsListen { hp, path, tls }))
}

fn command(rest: &str, canonical: &str) -> Result<String, AddrError> {
    if rest.trim().is_empty() {
        return Err(AddrError(format!(
            "'{canonical}:' needs a command, e.g. '{canonical}:cat'"
        )));
    }
    Ok(rest.to_string())
}

fn sd_listen(rest: &str, canonical: &str) -> Result<Address, AddrError> {
    if rest.is_empty() {
        return Ok(Address::SdListen(None));
    }
    if rest.len() > 255 || rest.contains(':') || rest.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(AddrError(format!(
            "'{canonical}:{rest}': a socket name (FileDescriptorName=) is at most 255 printable ASCII characters, without ':' or spaces"
        )));
    }
    Ok(Address::SdListen(Some(rest.to_string())))
}

/// Why an address did not parse. The message is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AddrError(pub String);

impl Address {
    fn kind(&self) -> Kind {
        match self {
            Address::Stdio => Kind::Stdio,
            Address::Tcp(_) => Kind::Tcp,
            Address::TcpListen(_) => Kind::TcpListen,
            Address::Unix(_) => Kind::Unix,
            Address::UnixListen(_) => Kind::UnixListen,
            Address::Ws(_) => Kind::Ws,
            Address::Mirror => Kind::Mirror,
            Address::WsListen(w) if w.tls => Kind::WssListen,
            Address::WsListen(_) => Kind::WsListen,
            Address::Exec(_) => Kind::Exec,
            Address::ShC(_) => Kind::ShC,
            Address::ExecDir(_) => Kind::ExecDir,
            Address::Broadcast => Kind::Broadcast,
            Address::SdListen(_) => Kind::SdListen,
            Address::Inetd => Kind::Inetd,
        }
    }

    /// True for the kinds that accept many connections.
    pub fn is_listener(&self) -> bool {
        info(self.kind()).listener
    }

    /// File descriptors one connection to this address holds (an `exec:` child: its stdin,
    /// its stdout, its stderr and the handle to wait for it), for the session cap
    /// (src/fdlimit.rs).
    pub fn fds_per_connection(&self) -> usize {
        match self {
            Address::Exec(_) | Address::ShC(_) | Address::ExecDir(_) => 4,
            Address::Tcp(_) | Address::Unix(_) | Address::Ws(_) => 1,
            _ => 0,
        }
    }

    /// True for the kinds that are this process's standard input/output (`-`, `inetd:`).
    pub fn uses_stdio(&self) -> bool {
        info(self.kind()).stdio
    }

    /// True for the kinds whose connections carry messages (not byte streams).
    pub fn is_message_endpoint(&self) -> bool {
        info(self.kind()).messages
    }
}

impl FromStr for Address {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, AddrError> {
        if s == "-" {
            return Ok(Address::Stdio);
        }
        if s.is_empty() {
            return Err(AddrError("empty address".into()));
        }
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("ws://") || lower.starts_with("wss://") {
            return WsUrl::parse(s).map(Address::Ws);
        }
        for (http, ws) in [("http://", "ws://"), ("https://", "wss://")] {
            if lower.starts_with(http) {
                let shown = redact_userinfo(s);
                return Err(AddrError(format!(
                    "'{shown}' is not a WebSocket URL; did you mean '{ws}{}'?",
                    &shown[http.len()..]
                )));
            }
        }
        let Some((prefix, rest)) = s.split_once(':') else {
            return Err(unknown(s, None));
        };
        let kind = KINDS
            .iter()
            .find(|k| k.names.iter().any(|n| n.eq_ignore_ascii_case(prefix)));
        let Some(kind) = kind else {
            return Err(unknown(s, Some(prefix)));
        };
        (kind.parse)(rest, kind.names[0])
    }
}

fn unix_path(rest: &str, canonical: &str) -> Result<PathBuf, AddrError> {
    if rest.is_empty() {
        return Err(AddrError(format!(
            "'{canonical}:' needs a socket path, e.g. '{canonical}:/run/app.sock'"
        )));
    }
    Ok(PathBuf::from(rest))
}

/// The error for an address whose kind we do not know, with the closest spelling when one is close.
fn unknown(s: &str, prefix: Option<&str>) -> AddrError {
    let shown = redact_userinfo(s);
    let Some(prefix) = prefix else {
        return AddrError(format!(
            "unknown address '{shown}': expected '-', a ws:// or wss:// URL, or KIND:ARGS (see 'wsbridge --help')"
        ));
    };
    let candidates = KINDS
        .iter()
        .flat_map(|k| k.names.iter().copied())
        .chain(["ws", "wss"]);
    let best = candidates
        .map(|c| {
            (
                strsim::damerau_levenshtein(&prefix.to_ascii_lowercase(), c),
                c,
            )
        })
        .min();
    match best {
        Some((d, name)) if d <= 2 || (d <= 3 && prefix.len() >= 8) => {
            let suggestion = if name == "ws" || name == "wss" {
                format!("{name}://")
            } else {
                format!("{name}:")
            };
            AddrError(format!(
                "unknown address type '{prefix}:' in '{shown}'; did you mean '{suggestion}'?"
            ))
        }
        _ => {
            // `127.0.0.1:8080` or `localhost:8080`: a host and a port without a kind.
            if s.rsplit_once(':')
                .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                return AddrError(format!(
                    "address '{shown}' has no kind: did you mean 'tcp:{shown}' (connect), 'tcp-listen:{shown}' or 'ws://{shown}/'?"
                ));
            }
            let known: Vec<String> = KINDS
                .iter()
                .map(|k| match k.names.first() {
                    Some(name) => format!("{name}:"),
                    None if k.kind == Kind::Stdio => "-".into(),
                    None => "ws://, wss://".into(),
                })
                .collect();
            AddrError(format!(
                "unknown address type '{prefix}:' in '{shown}' (known: -, {})",
                known.join(", ")
            ))
        }
    }
}

/// A host (name, IPv4 or IPv6 without brackets) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    fn parse(s: &str, kind: &str) -> Result<Self, AddrError> {
        let example = || format!("'{kind}:127.0.0.1:8080' or '{kind}:[::1]:8080'");
        let (host, port) = if let Some(inner) = s.strip_prefix('[') {
            let (host, after) = inner.split_once(']').ok_or_else(|| {
                AddrError(format!("'{kind}:{s}': missing ']' after IPv6 address"))
            })?;
            let port = after.strip_prefix(':').ok_or_else(|| {
                AddrError(format!(
                    "'{kind}:{s}': expected HOST:PORT, e.g. {}",
                    example()
                ))
            })?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(AddrError(format!(
                    "'{kind}:{s}': '{host}' is not an IPv6 address"
                )));
            }
            (host, port)
        } else {
            let (host, port) = s.rsplit_once(':').ok_or_else(|| {
                AddrError(format!(
                    "'{kind}:{s}': expected HOST:PORT, e.g. {}",
                    example()
                ))
            })?;
            if host.contains(':') {
                return Err(AddrError(format!(
                    "'{kind}:{s}': put an IPv6 address in brackets, e.g. '{kind}:[::1]:8080'"
                )));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(AddrError(format!(
                "'{kind}:{s}': missing host, e.g. {}",
                example()
            )));
        }
        let port = port.parse::<u16>().map_err(|_| {
            AddrError(format!(
                "'{kind}:{s}': '{port}' is not a port number (0-65535)"
            ))
        })?;
        Ok(HostPort {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A `ws://` or `wss://` URL. `Display` hides the password and secret-looking query values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    url: Url,
}

impl WsUrl {
    pub fn parse(s: &str) -> Result<Self, AddrError> {
        let url = Url::parse(s)
            .map_err(|e| AddrError(format!("bad URL '{}': {e}", redact_userinfo(s))))?;
        let me = WsUrl { url };
        if me.url.host_str().is_none_or(str::is_empty) {
            return Err(AddrError(format!("bad URL '{me}': missing host")));
        }
        if me.url.fragment().is_some() {
            return Err(AddrError(format!(
                "bad URL '{me}': WebSocket URLs cannot have a #fragment"
            )));
        }
        Ok(me)
    }

    /// The full URL, secrets included: only for building the request, never for printing.
    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn is_tls(&self) -> bool {
        self.url.scheme() == "wss"
    }

    /// Host as used for DNS and TLS server name (IPv6 without brackets).
    pub fn host(&self) -> String {
        match self.url.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => String::new(),
        }
    }

    pub fn port(&self) -> u16 {
        self.url
            .port_or_known_default()
            .unwrap_or(if self.is_tls() { 443 } else { 80 })
    }

    /// `user` and `password` from the URL, percent-decoded, if a user is given.
    pub fn credentials(&self) -> Option<(String, String)> {
        if self.url.username().is_empty() && self.url.password().is_none() {
            return None;
        }
        // Percent-decoding only: in userinfo a '+' is a plus, not a space.
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        Some((
            dec(self.url.username()),
            self.url.password().map(dec).unwrap_or_default(),
        ))
    }

    /// The URL without user and password, for the request line and Host header.
    pub fn without_credentials(&self) -> Url {
        let mut u = self.url.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u
    }
}

impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut u = self.url.clone();
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        if u.query().is_some() {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let lk = k.to_ascii_lowercase();
                    let secret = crate::secret::is_secret_name(&lk);
                    (
                        k.into_owned(),
                        if secret {
                            "***".to_string()
                        } else {
                            v.into_owned()
                        },
                    )
                })
                .collect();
            if pairs.iter().any(|(_, v)| v == "***") {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
        }
        f.write_str(u.as_str())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Stdio => f.write_str("-"),
            Address::Tcp(hp) => write!(f, "tcp:{hp}"),
            Address::TcpListen(hp) => write!(f, "tcp-listen:{hp}"),
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::UnixListen(p) => write!(f, "unix-listen:{}", p.display()),
            Address::Ws(u) => write!(f, "{u}"),
            Address::Mirror => f.write_str("mirror:"),
            Address::WsListen(w) => {
                write!(
                    f,
                    "{}:{}",
                    if w.tls { "wss-listen" } else { "ws-listen" },
                    w.hp
                )?;
                f.write_str(w.path.as_deref().unwrap_or(""))
            }
            Address::Exec(c) => write!(f, "exec:{c}"),
            Address::ShC(c) => write!(f, "sh-c:{c}"),
            Address::ExecDir(d) => write!(f, "exec-dir:{}", d.display()),
            Address::Broadcast => f.write_str("broadcast:"),
            Address::SdListen(name) => write!(f, "sd-listen:{}", name.as_deref().unwrap_or("")),
            Address::Inetd => f.write_str("inetd:"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row_and_one_canonical_name() {
        let samples = [
            "-",
            "ws://h/",
            "tcp:h:1",
            "tcp-l:h:1",
            "unix:/s",
            "unix-l:/s",
            "mirror:",
            "ws-l:h:1",
            "wss-l:h:1",
            "exec:x",
            "sh-c:x",
            "exec-dir:/d",
            "broadcast:",
            "sd-listen:",
            "inetd:",
        ];
        let mut kinds: Vec<Kind> = samples
            .iter()
            .map(|s| s.parse::<Address>().unwrap().kind())
            .collect();
        kinds.dedup();
        assert_eq!(kinds.len(), KINDS.len(), "one sample per row");
        for (k, row) in kinds.iter().zip(KINDS) {
            assert_eq!(*k, row.kind);
            assert_eq!(KINDS.iter().filter(|r| r.kind == *k).count(), 1);
        }
        let names: Vec<&str> = KINDS.iter().flat_map(|k| k.names.iter().copied()).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "a spelling names two kinds");
        for line in help_text().lines() {
            assert!(line.len() <= 100, "{line}");
        }
    }

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_valid_addresses() {
        let table: &[(&str, Address, &str)] = &[
            ("-", Address::Stdio, "-"),
            ("stdio:", Address::Stdio, "-"),
            (
                "tcp:127.0.0.1:80",
                Address::Tcp(hp("127.0.0.1", 80)),
                "tcp:127.0.0.1:80",
            ),
            (
                "tcp-connect:localhost:9",
                Address::Tcp(hp("localhost", 9)),
                "tcp:localhost:9",
            ),
            (
                "tcp-listen:127.0.0.1:0",
                Address::TcpListen(hp("127.0.0.1", 0)),
                "tcp-listen:127.0.0.1:0",
            ),
            (
                "tcp-l:127.0.0.1:10001",
                Address::TcpListen(hp("127.0.0.1", 10001)),
                "tcp-listen:127.0.0.1:10001",
            ),
            (
                "l-tcp:[::1]:80",
                Address::TcpListen(hp("::1", 80)),
                "tcp-listen:[::1]:80",
            ),
            (
                "TCP-L:0.0.0.0:65535",
                Address::TcpListen(hp("0.0.0.0", 65535)),
                "tcp-listen:0.0.0.0:65535",
            ),
            (
                "unix:/run/x.sock",
                Address::Unix("/run/x.sock".into()),
                "unix:/run/x.sock",
            ),
            (
                "unix-connect:rel.sock",
                Address::Unix("rel.sock".into()),
                "unix:rel.sock",
            ),
            (
                "unix-listen:/tmp/a:b",
                Address::UnixListen("/tmp/a:b".into()),
                "unix-listen:/tmp/a:b",
            ),
            (
                "unix-l:/tmp/s",
                Address::UnixListen("/tmp/s".into()),
                "unix-listen:/tmp/s",
            ),
            (
                "l-unix:/tmp/s",
                Address::UnixListen("/tmp/s".into()),
                "unix-listen:/tmp/s",
            ),
            ("mirror:", Address::Mirror, "mirror:"),
            ("broadcast:", Address::Broadcast, "broadcast:"),
            ("exec:cat", Address::Exec("cat".into()), "exec:cat"),
            (
                "exec:'grep -v x'",
                Address::Exec("'grep -v x'".into()),
                "exec:'grep -v x'",
            ),
            (
                "sh-c:echo hi | tr a-z A-Z",
                Address::ShC("echo hi | tr a-z A-Z".into()),
                "sh-c:echo hi | tr a-z A-Z",
            ),
            ("cmd:date", Address::ShC("date".into()), "sh-c:date"),
            (
                "exec-dir:./bin",
                Address::ExecDir("./bin".into()),
                "exec-dir:./bin",
            ),
            (
                "ws-l:127.0.0.1:8080",
                Address::WsListen(WsListen {
                    hp: hp("127.0.0.1", 8080),
                    path: None,
                    tls: false,
                }),
                "ws-listen:127.0.0.1:8080",
            ),
            (
                "l-ws:[::1]:0/chat/room",
                Address::WsListen(WsListen {
                    hp: hp("::1", 0),
                    path: Some("/chat/room".into()),
                    tls: false,
                }),
                "ws-listen:[::1]:0/chat/room",
            ),
            (
                "wss-listen:0.0.0.0:443/",
                Address::WsListen(WsListen {
                    hp: hp("0.0.0.0", 443),
                    path: Some("/".into()),
                    tls: true,
                }),
                "wss-listen:0.0.0.0:443/",
            ),
            ("sd-listen:", Address::SdListen(None), "sd-listen:"),
            (
                "sd-listen:web",
                Address::SdListen(Some("web".into())),
                "sd-listen:web",
            ),
            (
                "SD-L:admin.sock",
                Address::SdListen(Some("admin.sock".into())),
                "sd-listen:admin.sock",
            ),
            (
                "listen-sd:wsbridge.socket",
                Address::SdListen(Some("wsbridge.socket".into())),
                "sd-listen:wsbridge.socket",
            ),
            ("l-sd:x", Address::SdListen(Some("x".into())), "sd-listen:x"),
            ("systemd-listen:", Address::SdListen(None), "sd-listen:"),
            ("inetd:", Address::Inetd, "inetd:"),
            ("INETD:", Address::Inetd, "inetd:"),
        ];
        for (input, want, display) in table {
            let got: Address = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(&got, want, "{input}");
            assert_eq!(got.to_string(), *display, "{input}");
            // Display is canonical and parses back to the same value.
            assert_eq!(display.parse::<Address>().unwrap(), got, "{display}");
        }
    }

    #[test]
    fn parses_ws_urls() {
        let table = [
            (
                "ws://127.0.0.1:8080/x",
                "ws://127.0.0.1:8080/x",
                false,
                "127.0.0.1",
                8080,
            ),
            (
                "wss://example.com/api/v4/websocket",
                "wss://example.com/api/v4/websocket",
                true,
                "example.com",
                443,
            ),
            ("ws://localhost", "ws://localhost/", false, "localhost", 80),
            ("WS://[::1]:9/p?q=1", "ws://[::1]:9/p?q=1", false, "::1", 9),
        ];
        for (input, display, tls, host, port) in table {
            let Address::Ws(u) = input.parse::<Address>().unwrap() else {
                panic!("{input}")
            };
            assert_eq!(u.to_string(), display);
            assert_eq!(u.is_tls(), tls);
            assert_eq!(u.host(), host);
            assert_eq!(u.port(), port);
            assert_eq!(display.parse::<Address>().unwrap(), Address::Ws(u));
        }
    }

    #[test]
    fn rejects_bad_addresses_with_helpful_messages() {
        let table: &[(&str, &str)] = &[
            ("", "empty address"),
            ("tcp-lisen:127.0.0.1:1", "did you mean 'tcp-listen:'?"),
            ("tcp-lisen:1:2", "did you mean 'tcp-listen:'?"),
            ("tpc:127.0.0.1:1", "did you mean 'tcp:'?"),
            ("unix-lsten:/x", "did you mean 'unix-listen:'?"),
            ("mirorr:", "did you mean 'mirror:'?"),
            ("wss:/host", "did you mean 'wss://'?"),
            ("banana:x", "unknown address type 'banana:'"),
            ("127.0.0.1:8080", "did you mean 'tcp:127.0.0.1:8080'"),
            ("localhost", "unknown address 'localhost'"),
            ("http://host/x", "did you mean 'ws://host/x'?"),
            (
                "https://u:secret@host/x",
                "did you mean 'wss://u:***@host/x'?",
            ),
            ("tcp:127.0.0.1", "expected HOST:PORT"),
            ("tcp::80", "missing host"),
            ("tcp:host:99999", "'99999' is not a port number"),
            ("tcp:host:http", "'http' is not a port number"),
            ("tcp-listen:::1:80", "put an IPv6 address in brackets"),
            ("tcp:[::1:80", "missing ']'"),
            ("tcp:[nothost]:80", "is not an IPv6 address"),
            ("unix:", "needs a socket path"),
            ("mirror:x", "takes no argument"),
            ("broadcast:x", "takes no argument"),
            ("exec:", "needs a command"),
            ("sh-c:  ", "needs a command"),
            ("ws-listen:8080", "expected HOST:PORT"),
            ("ws-lsten:127.0.0.1:1", "did you mean 'ws-listen:'?"),
            ("stdio:x", "takes no argument"),
            ("inetd:x", "'inetd:' takes no argument"),
            ("sd-listen:a:b", "without ':'"),
            ("sd-listen:a b", "FileDescriptorName="),
            ("sd-lsten:web", "did you mean 'sd-listen:'?"),
            ("intd:", "did you mean 'inetd:'?"),
            ("ws://", "bad URL"),
            ("ws://host:99999/", "bad URL"),
            ("ws://host/#frag", "#fragment"),
        ];
        for (input, want) in table {
            let err = input.parse::<Address>().expect_err(input).to_string();
            assert!(
                err.contains(want),
                "{input:?}: {err:?} should contain {want:?}"
            );
            assert!(!err.contains("secret"), "{input:?}: {err:?} leaks a secret");
        }
    }

    #[test]
    fn ws_url_display_redacts_secrets() {
        let Address::Ws(u) = "wss://bob:hunter2@h/x?access_token=abc&room=1&api_key=k"
            .parse()
            .unwrap()
        else {
            panic!()
        };
        let shown = u.to_string();
        assert_eq!(
            shown,
            "wss://bob:***@h/x?access_token=***&room=1&api_key=***"
        );
        assert_eq!(u.credentials(), Some(("bob".into(), "hunter2".into())));
        // Userinfo is percent-decoded only: '+' stays a plus.
        let Address::Ws(plus) = "ws://u%40x:a+b%2Fc@h/".parse().unwrap() else {
            panic!()
        };
        assert_eq!(plus.credentials(), Some(("u@x".into(), "a+b/c".into())));
        assert_eq!(
            u.without_credentials().as_str(),
            "wss://h/x?access_token=abc&room=1&api_key=k"
        );
    }

    #[test]
    fn classifies_kinds() {
        assert!(
            "tcp-l:127.0.0.1:0"
                .parse::<Address>()
                .unwrap()
                .is_listener()
        );
        assert!(!"tcp:127.0.0.1:1".parse::<Address>().unwrap().is_listener());
        assert!("mirror:".parse::<Address>().unwrap().is_message_endpoint());
        assert!("ws://h/".parse::<Address>().unwrap().is_message_endpoint());
        assert!(!"-".parse::<Address>().unwrap().is_message_endpoint());
        assert!("ws-l:127.0.0.1:0".parse::<Address>().unwrap().is_listener());
        assert!(
            "broadcast:"
                .parse::<Address>()
                .unwrap()
                .is_message_endpoint()
        );
        assert!(!"exec:cat".parse::<Address>().unwrap().is_message_endpoint());
        let sd = "sd-listen:web".parse::<Address>().unwrap();
        assert!(sd.is_listener() && !sd.is_message_endpoint() && !sd.uses_stdio());
        let inetd = "inetd:".parse::<Address>().unwrap();
        assert!(!inetd.is_listener() && !inetd.is_message_endpoint() && inetd.uses_stdio());
        assert!(Address::Stdio.uses_stdio());
    }
}
