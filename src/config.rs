//! `Cli` → `Config`: the only place where clap's types become domain types. Validates the pairing
//! of the two addresses and every option, reads `-H @FILE`, and marks secret headers.

use std::path::PathBuf;
use std::time::Duration;

use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

use crate::addr::Address;
use crate::cli::Cli;
use crate::error::{Error, Result};

/// A validated run: two addresses and the options each layer needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// ADDR1: a listener or a connecting endpoint.
    pub left: Address,
    /// ADDR2: always a connecting endpoint (opened afresh for each accepted client).
    pub right: Address,
    pub relay: RelayOptions,
    pub ws: WsClientOptions,
    pub listen: ListenOptions,
    pub log: LogLevel,
}

/// How byte streams map to messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Lines ↔ text messages.
    Text,
    /// Byte chunks ↔ binary messages.
    Binary,
}

/// Options of the pump between two connections.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    pub mode: Mode,
    pub exit_on_eof: bool,
    /// Do not send Close on local EOF.
    pub no_close: bool,
    /// Copy ADDR1 → ADDR2.
    pub forward: bool,
    /// Copy ADDR2 → ADDR1.
    pub reverse: bool,
    pub close_timeout: Duration,
    /// Quiet time to wait for after local EOF before sending Close.
    pub linger: Duration,
    pub max_message_size: usize,
}

/// One extra request header. `secret` values are never logged.
#[derive(Debug, Clone)]
pub struct Header {
    pub name: HeaderName,
    pub value: HeaderValue,
}

/// Options for connecting WebSocket clients.
#[derive(Debug, Clone, Default)]
pub struct WsClientOptions {
    pub headers: Vec<Header>,
    pub protocol: Option<String>,
    pub origin: Option<String>,
    /// `user:pass` for HTTP basic authentication.
    pub basic_auth: Option<String>,
    pub insecure: bool,
    /// Extra trust roots: `--ca-file` and `SSL_CERT_FILE`.
    pub ca_files: Vec<PathBuf>,
    pub connect_timeout: Duration,
    pub max_message_size: usize,
}

/// Options for listeners.
#[derive(Debug, Clone, Default)]
pub struct ListenOptions {
    pub oneshot: bool,
    pub unix_mode: Option<u32>,
    pub announce_stdout: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Quiet,
    Normal,
    Verbose(u8),
}

/// Header names whose values are secrets: never printed, marked sensitive for HTTP/2-style tools.
pub fn is_secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    ) || [
        "token",
        "secret",
        "key",
        "auth",
        "session",
        "password",
        "cookie",
        "signature",
    ]
    .iter()
    .any(|w| n.contains(w))
        && !n.starts_with("sec-websocket")
}

impl Config {
    /// Validate what the user typed. `ssl_cert_file` is the `SSL_CERT_FILE` environment value.
    pub fn from_cli(cli: Cli, ssl_cert_file: Option<PathBuf>) -> Result<Config> {
        let parse = |s: &str| {
            s.parse::<Address>()
                .map_err(|e| Error::Usage(e.to_string()))
        };
        let first = parse(
            cli.addr1
                .as_deref()
                .ok_or_else(|| Error::Usage("no address given".into()))?,
        )?;
        let (left, right) = match cli.addr2.as_deref() {
            None => match first {
                Address::Ws(_) => (Address::Stdio, first),
                other => {
                    return Err(Error::Usage(format!(
                        "one address given ('{other}'): a single address must be a ws:// or wss:// URL (the other side is then stdio); otherwise give two addresses"
                    )));
                }
            },
            Some(second) => (first, parse(second)?),
        };
        if right.is_listener() {
            let hint = if left.is_listener() {
                "only one address can listen".to_string()
            } else {
                format!("a listener must be the first address: try 'wsbridge {right} {left}'")
            };
            return Err(Error::Usage(format!("'{right}': {hint}")));
        }
        if left == Address::Stdio && right == Address::Stdio {
            return Err(Error::Usage(
                "both addresses are stdio: nothing to bridge".into(),
            ));
        }
        let has_ws = matches!(right, Address::Ws(_)) || matches!(left, Address::Ws(_));
        let ws_flags = [
            (!cli.headers.is_empty(), "-H/--header"),
            (cli.protocol.is_some(), "--protocol"),
            (cli.origin.is_some(), "--origin"),
            (cli.insecure, "-k/--insecure"),
            (!cli.ca_file.is_empty(), "--ca-file"),
        ];
        if !has_ws && let Some((_, flag)) = ws_flags.iter().find(|(set, _)| *set) {
            return Err(Error::Usage(format!(
                "{flag} has no effect: no ws:// or wss:// address given"
            )));
        }
        if left.is_listener() && right == Address::Stdio && !cli.oneshot {
            return Err(Error::Usage(format!(
                "'{left} -': standard input/output can serve only one client: add --oneshot"
            )));
        }
        if cli.unix_mode.is_some() && !matches!(left, Address::UnixListen(_)) {
            return Err(Error::Usage(
                "--unix-mode needs a unix-listen: address".into(),
            ));
        }
        if cli.announce_stdout && (right == Address::Stdio || !left.is_listener()) {
            return Err(Error::Usage(
                "--announce-stdout needs a listener as ADDR1 and ADDR2 other than stdio".into(),
            ));
        }
        if cli.no_close && cli.unidirectional_reverse {
            return Err(Error::Usage(
                "--no-close has no effect with -U (local input is not read)".into(),
            ));
        }

        let mut headers = Vec::new();
        for h in &cli.headers {
            headers.extend(parse_header_arg(h)?);
        }
        if let Some(auth) = &cli.basic_auth
            && !auth.contains(':')
        {
            return Err(Error::Usage("--basic-auth expects USER:PASS".into()));
        }
        if let Some(origin) = &cli.origin {
            HeaderValue::from_str(origin).map_err(|_| {
                Error::Usage(format!("--origin '{origin}' is not a valid header value"))
            })?;
        }
        if let Some(p) = &cli.protocol {
            HeaderValue::from_str(p).map_err(|_| {
                Error::Usage(format!("--protocol '{p}' is not a valid header value"))
            })?;
        }
        let mut ca_files = cli.ca_file.clone();
        ca_files.extend(ssl_cert_file.filter(|p| !p.as_os_str().is_empty()));

        Ok(Config {
            relay: RelayOptions {
                mode: if cli.binary { Mode::Binary } else { Mode::Text },
                exit_on_eof: cli.exit_on_eof,
                no_close: cli.no_close,
                forward: !cli.unidirectional_reverse,
                reverse: !cli.unidirectional,
                close_timeout: cli.close_timeout,
                linger: cli.linger,
                max_message_size: cli.max_message_size,
            },
            ws: WsClientOptions {
                headers,
                protocol: cli.protocol,
                origin: cli.origin,
                basic_auth: cli.basic_auth,
                insecure: cli.insecure,
                ca_files,
                connect_timeout: cli.connect_timeout,
                max_message_size: cli.max_message_size,
            },
            listen: ListenOptions {
                oneshot: cli.oneshot,
                unix_mode: cli.unix_mode,
                announce_stdout: cli.announce_stdout,
            },
            log: if cli.quiet {
                LogLevel::Quiet
            } else if cli.verbose > 0 {
                LogLevel::Verbose(cli.verbose)
            } else {
                LogLevel::Normal
            },
            left,
            right,
        })
    }
}

/// `-H 'Name: value'` or `-H @FILE` (one header per line; blank lines and `#` comments skipped).
fn parse_header_arg(arg: &str) -> Result<Vec<Header>> {
    if let Some(path) = arg.strip_prefix('@') {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("-H @{path}: cannot read header file: {e}")))?;
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            out.push(
                parse_header(line)
                    .map_err(|e| Error::Usage(format!("-H @{path}, line {}: {e}", i + 1)))?,
            );
        }
        Ok(out)
    } else {
        Ok(vec![
            parse_header(arg).map_err(|e| Error::Usage(format!("-H: {e}")))?,
        ])
    }
}

/// `Name: value` → Header. Error messages show the name only, never the value.
fn parse_header(s: &str) -> std::result::Result<Header, String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| "expected 'Name: value'".to_string())?;
    let name = name.trim();
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("'{name}' is not a valid header name"))?;
    let mut value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("the value of header '{name}' contains invalid characters"))?;
    if is_secret_header(name.as_str()) {
        value.set_sensitive(true);
    }
    Ok(Header { name, value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(args: &[&str]) -> Result<Config> {
        let mut argv = vec!["wsbridge"];
        argv.extend_from_slice(args);
        Config::from_cli(Cli::try_parse_from(argv).expect("clap"), None)
    }

    #[test]
    fn single_url_means_stdio() {
        let c = config(&["ws://h/"]).unwrap();
        assert_eq!(c.left, Address::Stdio);
        assert!(matches!(c.right, Address::Ws(_)));
        assert_eq!(c.relay.mode, Mode::Text);
    }

    #[test]
    fn pairing_errors() {
        let table: &[(&[&str], &str)] = &[
            (
                &["tcp:h:1"],
                "a single address must be a ws:// or wss:// URL",
            ),
            (
                &["ws://h/", "tcp-l:127.0.0.1:0"],
                "a listener must be the first address: try 'wsbridge tcp-listen:127.0.0.1:0 ws://h/'",
            ),
            (
                &["tcp-l:127.0.0.1:0", "unix-l:/x"],
                "only one address can listen",
            ),
            (&["-", "stdio:"], "nothing to bridge"),
            (&["-H", "A: b", "-", "tcp:h:1"], "-H/--header has no effect"),
            (
                &["--unix-mode", "0600", "tcp-l:127.0.0.1:0", "ws://h/"],
                "--unix-mode needs",
            ),
            (&["-H", "bad header", "ws://h/"], "expected 'Name: value'"),
            (&["-H", "Bad Name: x", "ws://h/"], "not a valid header name"),
            (
                &["-H", "@/nonexistent/file", "ws://h/"],
                "cannot read header file",
            ),
            (&["--basic-auth", "nopass", "ws://h/"], "USER:PASS"),
            (
                &["--announce-stdout", "-", "ws://h/"],
                "--announce-stdout needs",
            ),
        ];
        for (args, want) in table {
            let err = config(args).expect_err(&format!("{args:?}")).to_string();
            assert!(err.contains(want), "{args:?}: {err}");
        }
    }

    #[test]
    fn header_values_are_never_in_errors() {
        let err = config(&["-H", "Authorization: Bearer sekrit\u{7f}", "ws://h/"])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("sekrit"), "{err}");
    }

    #[test]
    fn headers_from_file_and_secret_marking() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("h");
        std::fs::write(&f, "# comment\nAuthorization: Bearer abc\r\n\nX-Room: 7\n").unwrap();
        let arg = format!("@{}", f.display());
        let c = config(&["-H", &arg, "-H", "Cookie: a=b", "ws://h/"]).unwrap();
        let names: Vec<_> =
            c.ws.headers
                .iter()
                .map(|h| (h.name.as_str(), h.value.is_sensitive()))
                .collect();
        assert_eq!(
            names,
            [("authorization", true), ("x-room", false), ("cookie", true)]
        );
        assert_eq!(c.ws.headers[0].value, "Bearer abc");
    }

    #[test]
    fn directions_and_env_ca() {
        let c = Config::from_cli(
            Cli::try_parse_from(["wsbridge", "-u", "ws://h/"]).unwrap(),
            Some("/ca.pem".into()),
        )
        .unwrap();
        assert!(c.relay.forward && !c.relay.reverse);
        assert_eq!(c.ws.ca_files, [PathBuf::from("/ca.pem")]);
        let c = config(&["-U", "ws://h/"]).unwrap();
        assert!(!c.relay.forward && c.relay.reverse);
    }

    #[test]
    fn secret_header_names() {
        for n in [
            "Authorization",
            "Cookie",
            "X-Api-Key",
            "X-Auth-Token",
            "Proxy-Authorization",
        ] {
            assert!(is_secret_header(n), "{n}");
        }
        for n in [
            "X-Room",
            "Origin",
            "Sec-WebSocket-Protocol",
            "Sec-WebSocket-Key",
        ] {
            assert!(!is_secret_header(n), "{n}");
        }
    }
}
