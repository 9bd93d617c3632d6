//! `Cli` → `Config`: the only place where clap's types become domain types. Validates the pairing
//! of the two addresses and every option, reads `-H @FILE`, and marks secret headers.

use std::path::PathBuf;
use std::time::Duration;

use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

use crate::addr::Address;
use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::relay::framing::{Framing, FramingOptions, NewlinePolicy};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

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
    pub server: ServerOptions,
    pub uptime: UptimeOptions,
    /// argv of the program for exec: / sh-c: (empty otherwise).
    pub exec: Vec<String>,
    pub log: LogLevel,
    /// `--max-buffered`: the process-wide budget for incoming message bytes (see `budget`).
    pub max_buffered: usize,
}

/// Options of the WebSocket server (`ws-listen:` / `wss-listen:`).
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub protocols: Vec<String>,
    pub origin_allow: Vec<String>,
    pub require_headers: Vec<Header>,
    /// The bearer token clients must present (read from --auth-token-file).
    pub auth_token: Option<String>,
    pub handshake_timeout: Duration,
    pub console: bool,
    pub static_dir: Option<PathBuf>,
    /// Request headers passed on to exec: children and ws upstreams.
    pub pass_headers: Vec<HeaderName>,
    pub broadcast_queue: usize,
    /// Per-member byte limit of a broadcast room's queue.
    pub broadcast_queue_bytes: usize,
    /// Largest message a client may send (default 1 MiB).
    pub max_message_size: usize,
    pub max_frame_size: usize,
    /// `--message-timeout` (None: 0, never).
    pub message_timeout: Option<Duration>,
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
    /// How byte streams are cut into messages and back.
    pub framing: FramingOptions,
    pub exit_on_eof: bool,
    /// Do not send Close on local EOF.
    pub no_close: bool,
    /// Copy ADDR1 → ADDR2.
    pub forward: bool,
    /// Copy ADDR2 → ADDR1.
    pub reverse: bool,
    pub close_timeout: Duration,
    /// How long the Close is held after local EOF (see `relay::Linger`).
    pub linger: crate::relay::Linger,
    /// At most this many messages ADDR1 → ADDR2 (`--max-messages`).
    pub max_forward: Option<u64>,
    /// At most this many messages ADDR2 → ADDR1 (`--max-messages-rev`).
    pub max_reverse: Option<u64>,
    /// The Close sent when the local side ends.
    pub close_code: u16,
    pub close_reason: String,
    /// Outgoing messages larger than this are sent in fragments.
    pub max_frame_size: usize,
    /// Ping the WebSocket this often; the peer is dead when nothing arrives within
    /// `ping_timeout` of a ping.
    pub ping_interval: Option<Duration>,
    pub ping_timeout: Duration,
    /// Cancelled when the process is asked to stop: sessions send Close 1001 and drain.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// How long sessions may drain after `shutdown`.
    pub shutdown_timeout: Duration,
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
    pub max_frame_size: usize,
    /// `--message-timeout` (None: 0, never).
    pub message_timeout: Option<Duration>,
    /// `-L`: follow handshake redirects.
    pub follow_redirects: bool,
    /// `--proxy` as given (None: use the environment; `none`: no proxy).
    pub proxy: Option<String>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub tls_roots: crate::cli::TlsRoots,
}

/// Reconnect and readiness (keepalive and shutdown live in `RelayOptions`).
#[derive(Debug, Clone, Default)]
pub struct UptimeOptions {
    pub reconnect: bool,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub reconnect_buffer: usize,
    pub ready_after_connect: bool,
}

/// Options for listeners.
#[derive(Debug, Clone, Default)]
pub struct ListenOptions {
    pub oneshot: bool,
    pub max_conns: Option<usize>,
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
        let (left, right, oneshot) = addresses(&cli)?;
        let usage = |m: String| Err(Error::Usage(m));

        // Pairing.
        if right.is_listener() {
            let hint = if left.is_listener() {
                "only one address can listen".to_string()
            } else {
                format!("a listener must be the first address: try 'wsbridge {right} {left}'")
            };
            return usage(format!("'{right}': {hint}"));
        }
        if left.uses_stdio() && right.uses_stdio() {
            return usage(if left == Address::Stdio && right == Address::Stdio {
                "both addresses are stdio: nothing to bridge".into()
            } else {
                format!("'{left}' and '{right}' are both standard input/output: nothing to bridge")
            });
        }
        if left.is_listener() && right.uses_stdio() && !oneshot {
            return usage(format!(
                "'{left} {right}': standard input/output can serve only one client: add --oneshot"
            ));
        }
        if right == Address::Broadcast && !left.is_listener() {
            return usage("broadcast: needs a listener as ADDR1 (its clients are the room)".into());
        }
        if left == Address::Mirror && right == Address::Mirror {
            return usage("mirror: facing mirror: has nothing to echo".into());
        }
        if matches!(left, Address::Broadcast) {
            return usage("broadcast: must be ADDR2, behind a listener".into());
        }

        // Options that only make sense with some address kinds.
        let has_ws = matches!(right, Address::Ws(_)) || matches!(left, Address::Ws(_));
        let ws_listen = match &left {
            Address::WsListen(w) => Some(w),
            _ => None,
        };
        let needs = [
            (
                has_ws,
                !cli.headers.is_empty(),
                "-H/--header",
                "a ws:// or wss:// address",
            ),
            (
                has_ws,
                cli.protocol.is_some(),
                "--protocol",
                "a ws:// or wss:// address",
            ),
            (
                has_ws,
                cli.origin.is_some(),
                "--origin",
                "a ws:// or wss:// address",
            ),
            (
                has_ws,
                cli.insecure,
                "-k/--insecure",
                "a ws:// or wss:// address",
            ),
            (
                has_ws,
                !cli.ca_file.is_empty(),
                "--ca-file",
                "a ws:// or wss:// address",
            ),
            (
                has_ws,
                cli.basic_auth_file.is_some(),
                "--basic-auth-file",
                "a ws:// or wss:// address",
            ),
            (
                has_ws,
                !cli.header_credential.is_empty(),
                "--header-credential",
                "a ws:// or wss:// address",
            ),
            (
                has_ws,
                cli.client_cert.is_some(),
                "--client-cert",
                "a ws:// or wss:// address",
            ),
            (
                has_ws,
                cli.tls_roots != crate::cli::TlsRoots::Webpki,
                "--tls-roots",
                "a ws:// or wss:// address",
            ),
            (
                has_ws,
                cli.proxy.is_some(),
                "--proxy",
                "a ws:// or wss:// address",
            ),
            (
                has_ws,
                cli.follow_redirects,
                "-L/--follow-redirects",
                "a ws:// or wss:// address",
            ),
            (
                ws_listen.is_some_and(|w| w.tls),
                cli.tls_cert.is_some(),
                "--tls-cert",
                "wss-listen:",
            ),
            (
                ws_listen.is_some_and(|w| w.tls),
                cli.tls_key.is_some(),
                "--tls-key",
                "wss-listen:",
            ),
            (
                ws_listen.is_some_and(|w| w.tls),
                cli.tls_client_ca.is_some(),
                "--tls-client-ca",
                "wss-listen:",
            ),
            (
                ws_listen.is_some(),
                !cli.server_protocol.is_empty(),
                "--server-protocol",
                "ws-listen:",
            ),
            (
                ws_listen.is_some(),
                !cli.origin_allow.is_empty(),
                "--origin-allow",
                "ws-listen:",
            ),
            (
                ws_listen.is_some(),
                !cli.require_header.is_empty(),
                "--require-header",
                "ws-listen:",
            ),
            (
                ws_listen.is_some(),
                cli.auth_token_file.is_some(),
                "--auth-token-file",
                "ws-listen:",
            ),
            (ws_listen.is_some(), cli.console, "--console", "ws-listen:"),
            (
                ws_listen.is_some(),
                cli.no_console,
                "--no-console",
                "ws-listen:",
            ),
            (
                ws_listen.is_some(),
                cli.static_dir.is_some(),
                "--static",
                "ws-listen:",
            ),
            (
                ws_listen.is_some(),
                !cli.pass_header.is_empty(),
                "--pass-header",
                "ws-listen:",
            ),
            (
                right == Address::Broadcast,
                cli.broadcast_queue.is_some(),
                "--broadcast-queue",
                "broadcast:",
            ),
            (
                matches!(right, Address::Exec(_)) || matches!(left, Address::Exec(_)),
                !cli.exec_args.is_empty(),
                "--exec-args",
                "exec:",
            ),
            (
                matches!(left, Address::UnixListen(_)),
                cli.unix_mode.is_some(),
                "--unix-mode",
                "unix-listen:",
            ),
            (
                left.is_listener(),
                cli.max_conns.is_some(),
                "--max-conns",
                "a listener",
            ),
        ];
        if let Some((_, _, flag, what)) = needs.iter().find(|(ok, set, _, _)| *set && !*ok) {
            return usage(format!("{flag} needs {what}"));
        }
        if ws_listen.is_some_and(|w| w.tls) && (cli.tls_cert.is_none() || cli.tls_key.is_none()) {
            return usage("wss-listen: needs --tls-cert PEM and --tls-key PEM".into());
        }
        if cli.reconnect
            && !(matches!(right, Address::Ws(_))
                && !left.is_message_endpoint()
                && left != Address::Mirror)
        {
            return usage("--reconnect needs a ws:// or wss:// ADDR2 and a byte stream (stdio, tcp, unix, exec) as ADDR1".into());
        }
        if !cli.reconnect
            && (cli.reconnect_min != Duration::from_millis(500)
                || cli.reconnect_max != Duration::from_secs(30)
                || cli.reconnect_buffer != 1 << 20)
        {
            return usage(
                "--reconnect-min/--reconnect-max/--reconnect-buffer need --reconnect".into(),
            );
        }
        if cli.announce_stdout && (right.uses_stdio() || !left.is_listener()) {
            return usage(
                "--announce-stdout needs a listener as ADDR1 and ADDR2 other than stdio".into(),
            );
        }
        if cli.no_close && cli.unidirectional_reverse {
            return usage("--no-close has no effect with -U (local input is not read)".into());
        }
        if cli.max_conns == Some(0) || cli.broadcast_queue == Some(0) {
            return usage("--max-conns and --broadcast-queue must be at least 1".into());
        }
        if let Some(auth) = &cli.basic_auth
            && !auth.contains(':')
        {
            return usage("--basic-auth expects USER:PASS".into());
        }
        let basic_auth = match &cli.basic_auth_file {
            None => cli.basic_auth.clone(),
            Some(_) if cli.basic_auth.is_some() => {
                return usage(
                    "--basic-auth-file and --basic-auth (or WSBRIDGE_BASIC_AUTH) both given: use one"
                        .into(),
                );
            }
            Some(path) => Some(read_basic_auth_file(path)?),
        };
        if let Some(proxy) = &cli.proxy {
            crate::endpoint::proxy::choose(Some(proxy), &|_| None, false, "")
                .map_err(|e| Error::Usage(format!("--proxy: {e}")))?;
        }
        for (flag, v) in [("--origin", &cli.origin), ("--protocol", &cli.protocol)] {
            if let Some(v) = v {
                HeaderValue::from_str(v).map_err(|_| {
                    Error::Usage(format!("{flag} '{v}' is not a valid header value"))
                })?;
            }
        }

        let framing = framing_options(&cli)?;
        let code = CloseCode::from(cli.close_code);
        if !code.is_allowed() || matches!(cli.close_code, 1005 | 1006 | 1015) {
            return usage(format!(
                "--close-code {}: not a code that may be sent (use 1000-1003, 1007-1014 or 3000-4999)",
                cli.close_code
            ));
        }
        if cli.close_reason.len() > 123 {
            return usage("--close-reason: at most 123 bytes (it must fit a control frame)".into());
        }
        if cli.one_message && (cli.max_messages.is_some() || cli.max_messages_rev.is_some()) {
            return usage(
                "-1 means --max-messages 1 --max-messages-rev 1: give one or the others".into(),
            );
        }
        if cli.reconnect && cli.reconnect_min.is_zero() {
            return usage("--reconnect-min must be more than 0 (the backoff doubles it)".into());
        }
        if cli.ping_timeout.is_some_and(|t| t.is_zero()) {
            return usage("--ping-timeout must be more than 0".into());
        }
        if framing.framing == Framing::LengthPrefixed && framing.max_message_size > 0x7FFF_FFFF {
            return usage(
                "--max-message-size: length-prefixed headers hold at most 2 GiB - 1".into(),
            );
        }
        if cli.max_messages == Some(0) || cli.max_messages_rev == Some(0) {
            return usage("--max-messages and --max-messages-rev must be at least 1".into());
        }

        let mut headers = Vec::new();
        for h in &cli.headers {
            headers.extend(parse_header_arg(h)?);
        }
        headers.extend(header_credentials(
            &cli.header_credential,
            std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
        )?);
        let require_headers = require_headers(&cli.require_header)?;
        let auth_token = read_auth_token(cli.auth_token_file.as_deref())?;
        let pass_headers = pass_headers(&cli.pass_header)?;
        let exec = match (&left, &right) {
            (Address::Exec(cmd), _) | (_, Address::Exec(cmd)) => {
                let mut argv =
                    split_command(cmd).map_err(|e| Error::Usage(format!("exec:{cmd}: {e}")))?;
                argv.extend(cli.exec_args.iter().cloned());
                argv
            }
            (Address::ShC(cmd), _) | (_, Address::ShC(cmd)) => {
                vec!["/bin/sh".into(), "-c".into(), cmd.clone()]
            }
            _ => Vec::new(),
        };
        let mut ca_files = cli.ca_file.clone();
        ca_files.extend(ssl_cert_file.filter(|p| !p.as_os_str().is_empty()));
        let message_timeout = Some(cli.message_timeout).filter(|d| !d.is_zero());
        let server_max = cli.max_message_size.unwrap_or(DEFAULT_SERVER_MAX_MESSAGE);

        Ok(Config {
            relay: RelayOptions {
                framing,
                exit_on_eof: cli.exit_on_eof,
                no_close: cli.no_close,
                forward: !cli.unidirectional_reverse,
                reverse: !cli.unidirectional,
                close_timeout: cli.close_timeout,
                linger: cli.linger,
                max_forward: if cli.one_message {
                    Some(1)
                } else {
                    cli.max_messages
                },
                max_reverse: if cli.one_message {
                    Some(1)
                } else {
                    cli.max_messages_rev
                },
                close_code: cli.close_code,
                close_reason: cli.close_reason.clone(),
                max_frame_size: cli.max_frame_size,
                ping_interval: cli.ping_interval.filter(|d| !d.is_zero()),
                ping_timeout: cli
                    .ping_timeout
                    .or(cli.ping_interval)
                    .unwrap_or(Duration::from_secs(30)),
                shutdown: tokio_util::sync::CancellationToken::new(),
                shutdown_timeout: cli.shutdown_timeout,
            },
            ws: WsClientOptions {
                headers,
                protocol: cli.protocol,
                origin: cli.origin,
                basic_auth,
                insecure: cli.insecure,
                ca_files,
                connect_timeout: cli.connect_timeout,
                max_message_size: cli.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE),
                max_frame_size: cli.max_frame_size,
                message_timeout,
                follow_redirects: cli.follow_redirects,
                proxy: cli.proxy.clone(),
                client_cert: cli.client_cert.clone(),
                client_key: cli.client_key.clone(),
                tls_roots: cli.tls_roots,
            },
            uptime: UptimeOptions {
                reconnect: cli.reconnect,
                reconnect_min: cli.reconnect_min,
                reconnect_max: cli.reconnect_max,
                reconnect_buffer: cli.reconnect_buffer,
                ready_after_connect: cli.ready_after_connect,
            },
            listen: ListenOptions {
                oneshot,
                max_conns: cli.max_conns,
                unix_mode: cli.unix_mode,
                announce_stdout: cli.announce_stdout,
            },
            server: ServerOptions {
                tls_cert: cli.tls_cert,
                tls_key: cli.tls_key,
                tls_client_ca: cli.tls_client_ca,
                protocols: cli
                    .server_protocol
                    .iter()
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect(),
                origin_allow: cli.origin_allow,
                require_headers,
                auth_token,
                handshake_timeout: cli.handshake_timeout,
                console: cli.console,
                static_dir: cli.static_dir,
                pass_headers,
                broadcast_queue: cli.broadcast_queue.unwrap_or(256),
                broadcast_queue_bytes: cli.broadcast_queue_bytes,
                max_message_size: server_max,
                max_frame_size: cli.max_frame_size.min(server_max),
                message_timeout,
            },
            exec,
            log: if cli.quiet {
                LogLevel::Quiet
            } else if cli.verbose > 0 {
                LogLevel::Verbose(cli.verbose)
            } else {
                LogLevel::Normal
            },
            max_buffered: cli.max_buffered,
            left,
            right,
        })
    }
}

/// `--max-message-size` when not given: for what wsbridge reads as a client, and what it sends.
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;
/// `--max-message-size` when not given, for what clients of `ws-listen:` send: one client on
/// the open internet holds at most about this much of a message in memory.
pub const DEFAULT_SERVER_MAX_MESSAGE: usize = 1 << 20;

/// `--require-header 'Name: value'`: the value must not be empty (an unset variable in
/// `"X-Api-Key: $KEY"` would otherwise make an empty header pass).
fn require_headers(args: &[String]) -> Result<Vec<Header>> {
    args.iter()
        .map(|arg| {
            let h =
                parse_header(arg).map_err(|e| Error::Usage(format!("--require-header: {e}")))?;
            if h.value.is_empty() {
                let name = arg.split_once(':').map_or(arg.as_str(), |(n, _)| n.trim());
                return Err(Error::Usage(format!(
                    "--require-header {name}: the value is empty (an unset variable?)"
                )));
            }
            Ok(h)
        })
        .collect()
}

/// `--auth-token-file FILE`: its content without surrounding whitespace; never empty.
fn read_auth_token(path: Option<&std::path::Path>) -> Result<Option<String>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("--auth-token-file {}: {e}", path.display())))?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(Error::Usage(format!(
            "--auth-token-file {}: the file is empty",
            path.display()
        )));
    }
    Ok(Some(token))
}

/// `--pass-header NAME`: not a header of the handshake itself, and not `Proxy`, which children
/// would get as `HTTP_PROXY`, the variable that sets their proxy (httpoxy).
fn pass_headers(names: &[String]) -> Result<Vec<HeaderName>> {
    const HANDSHAKE: &[&str] = &[
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-accept",
        "content-length",
        "transfer-encoding",
    ];
    let usage = |m: String| Err(Error::Usage(format!("--pass-header {m}")));
    let mut out = Vec::new();
    for name in names {
        let lower = name.trim().to_ascii_lowercase();
        if HANDSHAKE.contains(&lower.as_str()) {
            return usage(format!("{name}: handshake headers cannot be passed on"));
        }
        if lower == "proxy" {
            return usage(format!(
                "{name}: children would get the client's value as HTTP_PROXY, their proxy setting (httpoxy)"
            ));
        }
        match HeaderName::from_bytes(lower.as_bytes()) {
            Ok(h) => out.push(h),
            Err(_) => {
                return Err(Error::Usage(format!(
                    "--pass-header: '{name}' is not a valid header name"
                )));
            }
        }
    }
    Ok(out)
}

/// The framing options, checked for flags that do not apply to the chosen framing.
fn framing_options(cli: &Cli) -> Result<FramingOptions> {
    let mode = if cli.binary { Mode::Binary } else { Mode::Text };
    let framing = match (cli.framing, cli.null_terminated) {
        (Some(f), _) => f,
        (None, true) => Framing::Nul,
        (None, false) if cli.binary => Framing::Raw,
        (None, false) => Framing::Lines,
    };
    let delimited = matches!(framing, Framing::Lines | Framing::Nul);
    let needs = [
        (
            delimited,
            cli.newline_policy != NewlinePolicy::Space,
            "--newline-policy",
            "lines or nul framing",
        ),
        (
            delimited,
            cli.text_prefix.is_some(),
            "--text-prefix",
            "lines or nul framing",
        ),
        (
            delimited,
            cli.binary_prefix.is_some(),
            "--binary-prefix",
            "lines or nul framing",
        ),
        (delimited, cli.base64, "--base64", "lines or nul framing"),
        (
            delimited,
            cli.split_long,
            "--split-long",
            "lines or nul framing",
        ),
        (
            framing == Framing::Lines,
            cli.jsonrpc,
            "--jsonrpc",
            "lines framing",
        ),
        (
            framing == Framing::Jsonl,
            cli.jsonl_events,
            "--jsonl-events",
            "jsonl framing",
        ),
    ];
    if let Some((_, _, flag, what)) = needs.iter().find(|(ok, set, _, _)| *set && !*ok) {
        return Err(Error::Usage(format!(
            "{flag} needs {what} (framing is {})",
            framing_name(framing)
        )));
    }
    if cli.split_long && (cli.base64 || cli.jsonrpc) {
        return Err(Error::Usage(
            "--split-long cannot cut base64 or JSON-RPC lines; drop one of them".into(),
        ));
    }
    if let (Some(t), Some(b)) = (&cli.text_prefix, &cli.binary_prefix)
        && (t.starts_with(b.as_str()) || b.starts_with(t.as_str()))
    {
        return Err(Error::Usage(
            "--text-prefix and --binary-prefix must differ, and neither may start with the other"
                .into(),
        ));
    }
    if [&cli.text_prefix, &cli.binary_prefix]
        .iter()
        .any(|p| p.as_deref() == Some(""))
    {
        return Err(Error::Usage(
            "--text-prefix/--binary-prefix must not be empty".into(),
        ));
    }
    Ok(FramingOptions {
        framing,
        mode,
        max_message_size: cli.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE),
        newline_policy: cli.newline_policy,
        text_prefix: cli.text_prefix.clone(),
        binary_prefix: cli.binary_prefix.clone(),
        base64: cli.base64,
        split_long: cli.split_long,
        jsonl_events: cli.jsonl_events,
        jsonrpc: cli.jsonrpc,
        ready_line: cli.ready_line,
    })
}

fn framing_name(f: Framing) -> String {
    use clap::ValueEnum;
    f.to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

/// The two addresses (ADDR1, ADDR2) and whether to serve one client only.
fn addresses(cli: &Cli) -> Result<(Address, Address, bool)> {
    let parse = |s: &str| {
        s.parse::<Address>()
            .map_err(|e| Error::Usage(e.to_string()))
    };
    if let Some(server) = &cli.server {
        // -s [HOST:]PORT [ADDR]: ws-listen there; ADDR (default stdio, one client) behind it.
        if cli.addr2.is_some() {
            return Err(Error::Usage(
                "-s takes at most one address (what to serve)".into(),
            ));
        }
        let hp = if server.contains(':') {
            server.clone()
        } else {
            format!("127.0.0.1:{server}")
        };
        let left = parse(&format!("ws-listen:{hp}"))?;
        let right = cli
            .addr1
            .as_deref()
            .map(parse)
            .transpose()?
            .unwrap_or(Address::Stdio);
        let oneshot = cli.oneshot || right.uses_stdio();
        return Ok((left, right, oneshot));
    }
    let first = parse(
        cli.addr1
            .as_deref()
            .ok_or_else(|| Error::Usage("no address given".into()))?,
    )?;
    match cli.addr2.as_deref() {
        Some(second) => Ok((first, parse(second)?, cli.oneshot)),
        None => match first {
            Address::Ws(_) => Ok((Address::Stdio, first, cli.oneshot)),
            other => Err(Error::Usage(format!(
                "one address given ('{other}'): a single address must be a ws:// or wss:// URL (the other side is then stdio); otherwise give two addresses"
            ))),
        },
    }
}

/// Split `prog 'arg one' "arg two"` into words: whitespace separates, single and double quotes
/// group, backslash escapes the next character outside single quotes. No expansions.
pub fn split_command(s: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unbalanced single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => cur.push(chars.next().ok_or("unbalanced double quote")?),
                        Some(c) => cur.push(c),
                        None => return Err("unbalanced double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.push(chars.next().ok_or("trailing backslash")?);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    if words.is_empty() {
        return Err("empty command".into());
    }
    Ok(words)
}

/// `-H 'Name: value'` or `-H @FILE` (one header per line; blank lines and `#` comments skipped).
fn parse_header_arg(arg: &str) -> Result<Vec<Header>> {
    if let Some(path) = arg.strip_prefix('@') {
        parse_header_file(std::path::Path::new(path), &format!("-H @{path}"))
    } else {
        Ok(vec![
            parse_header(arg).map_err(|e| Error::Usage(format!("-H: {e}")))?,
        ])
    }
}

/// Header lines from a file (`-H @FILE`, `--header-credential`); `what` names the source in
/// errors. Errors name the line, never its value.
fn parse_header_file(path: &std::path::Path, what: &str) -> Result<Vec<Header>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("{what}: cannot read header file: {e}")))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        out.push(
            parse_header(line).map_err(|e| Error::Usage(format!("{what}, line {}: {e}", i + 1)))?,
        );
    }
    Ok(out)
}

/// `--header-credential NAME…`: header lines from `$CREDENTIALS_DIRECTORY/NAME` (systemd's
/// `LoadCredential=`), read like `-H @FILE`. `dir` is the value of CREDENTIALS_DIRECTORY.
fn header_credentials(names: &[String], dir: Option<PathBuf>) -> Result<Vec<Header>> {
    let mut out = Vec::new();
    for name in names {
        let what = format!("--header-credential {name}");
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::Usage(format!(
                "{what}: a credential name is a file name, without '/'"
            )));
        }
        let Some(dir) = dir.as_ref().filter(|d| !d.as_os_str().is_empty()) else {
            return Err(Error::Usage(format!(
                "{what}: CREDENTIALS_DIRECTORY is not set (systemd sets it for a unit with \
                 LoadCredential={name}:FILE; outside systemd use -H @FILE)"
            )));
        };
        out.extend(parse_header_file(&dir.join(name), &what)?);
    }
    Ok(out)
}

/// `--basic-auth-file FILE`: one line `USER:PASS`; a trailing newline is not part of it. Errors
/// never show the file's content.
fn read_basic_auth_file(path: &std::path::Path) -> Result<String> {
    let what = format!("--basic-auth-file {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| Error::Usage(format!("{what}: {e}")))?;
    let pair = text.trim_end_matches(['\n', '\r']);
    if pair.contains(['\n', '\r']) {
        return Err(Error::Usage(format!(
            "{what}: expected one line USER:PASS, found several lines"
        )));
    }
    if !pair.contains(':') {
        return Err(Error::Usage(format!("{what}: expected USER:PASS")));
    }
    Ok(pair.to_string())
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
        assert_eq!(c.relay.framing.mode, Mode::Text);
        assert_eq!(c.relay.framing.framing, Framing::Lines);
        assert_eq!(
            config(&["-b", "ws://h/"]).unwrap().relay.framing.framing,
            Framing::Raw
        );
        assert_eq!(
            config(&["-0", "ws://h/"]).unwrap().relay.framing.framing,
            Framing::Nul
        );
        let c = config(&["-1", "ws://h/"]).unwrap();
        assert_eq!(
            (c.relay.max_forward, c.relay.max_reverse),
            (Some(1), Some(1))
        );
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
            (
                &["inetd:", "-"],
                "both standard input/output: nothing to bridge",
            ),
            (
                &["sd-listen:web", "inetd:"],
                "'sd-listen:web inetd:': standard input/output can serve only one client",
            ),
            (
                &["inetd:", "sd-listen:"],
                "a listener must be the first address: try 'wsbridge sd-listen: inetd:'",
            ),
            (
                &["--unix-mode", "0600", "sd-listen:", "ws://h/"],
                "--unix-mode needs unix-listen:",
            ),
            (
                &["--announce-stdout", "--oneshot", "sd-listen:", "inetd:"],
                "--announce-stdout needs",
            ),
            (
                &["-H", "A: b", "-", "tcp:h:1"],
                "-H/--header needs a ws:// or wss:// address",
            ),
            (
                &["--unix-mode", "0600", "tcp-l:127.0.0.1:0", "ws://h/"],
                "--unix-mode needs unix-listen:",
            ),
            (
                &["--tls-cert", "c.pem", "ws-l:127.0.0.1:0", "mirror:"],
                "--tls-cert needs wss-listen:",
            ),
            (
                &["wss-l:127.0.0.1:0", "mirror:"],
                "needs --tls-cert PEM and --tls-key PEM",
            ),
            (
                &["--origin-allow", "http://x", "tcp-l:127.0.0.1:0", "mirror:"],
                "--origin-allow needs ws-listen:",
            ),
            (
                &["--max-conns", "3", "-", "ws://h/"],
                "--max-conns needs a listener",
            ),
            (&["mirror:", "broadcast:"], "broadcast: needs a listener"),
            (
                &["ws-l:127.0.0.1:0", "exec:'unbalanced"],
                "unbalanced single quote",
            ),
            (
                &["tcp-l:127.0.0.1:0", "-"],
                "can serve only one client: add --oneshot",
            ),
            (
                &["--framing", "webfs", "--base64", "ws://h/"],
                "--base64 needs lines or nul framing (framing is webfs)",
            ),
            (
                &["-b", "--text-prefix", "t", "ws://h/"],
                "--text-prefix needs lines or nul framing (framing is raw)",
            ),
            (
                &["--jsonl-events", "ws://h/"],
                "--jsonl-events needs jsonl framing",
            ),
            (
                &["--framing", "nul", "--jsonrpc", "ws://h/"],
                "--jsonrpc needs lines framing",
            ),
            (
                &["--close-code", "1005", "ws://h/"],
                "not a code that may be sent",
            ),
            (
                &["--close-code", "999", "ws://h/"],
                "not a code that may be sent",
            ),
            (
                &["-1", "--max-messages", "2", "ws://h/"],
                "give one or the others",
            ),
            (
                &["--text-prefix", "x", "--binary-prefix", "x", "ws://h/"],
                "must differ",
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
    fn server_header_foot_guns_are_usage_errors() {
        let base = ["ws-l:127.0.0.1:0", "exec:cat"];
        for (flags, want) in [
            (
                ["--pass-header", "Proxy"],
                "as HTTP_PROXY, their proxy setting (httpoxy)",
            ),
            (["--pass-header", " PROXY"], "as HTTP_PROXY"),
            (
                ["--pass-header", "Host"],
                "handshake headers cannot be passed on",
            ),
            (
                ["--require-header", "X-Api-Key: "],
                "--require-header X-Api-Key: the value is empty",
            ),
            (["--require-header", "X-Api-Key:\t"], "the value is empty"),
        ] {
            let args: Vec<&str> = base.iter().chain(&flags).copied().collect();
            let err = config(&args).expect_err(&format!("{flags:?}")).to_string();
            assert!(err.contains(want), "{flags:?}: {err}");
        }
        let c = config(&[
            "ws-l:127.0.0.1:0",
            "exec:cat",
            "--pass-header",
            "X-Proxy",
            "--require-header",
            "X-Api-Key: k",
        ])
        .unwrap();
        assert_eq!(c.server.pass_headers, ["x-proxy"]);
        assert_eq!(c.server.require_headers[0].value, "k");
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
    fn secrets_from_files_and_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("basic");
        std::fs::write(&f, "alice:pa:ss\n").unwrap();
        let path = f.to_str().unwrap();
        let c = config(&["--basic-auth-file", path, "ws://h/"]).unwrap();
        assert_eq!(c.ws.basic_auth.as_deref(), Some("alice:pa:ss"));
        let err = config(&["--basic-auth-file", path, "--basic-auth", "a:b", "ws://h/"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("both given"), "{err}");
        for (content, want) in [
            ("nocolon-SECRETX\n", "expected USER:PASS"),
            ("a:SECRETX\nb:c\n", "several lines"),
        ] {
            std::fs::write(&f, content).unwrap();
            let err = config(&["--basic-auth-file", path, "ws://h/"])
                .unwrap_err()
                .to_string();
            assert!(err.contains(want) && !err.contains("SECRETX"), "{err}");
        }
        let err = config(&["--basic-auth-file", path, "-", "tcp:h:1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--basic-auth-file needs a ws://"), "{err}");

        std::fs::write(dir.path().join("auth"), "Authorization: Bearer xyz\n").unwrap();
        let names = vec!["auth".to_string()];
        let h = header_credentials(&names, Some(dir.path().to_path_buf())).unwrap();
        assert_eq!(h.len(), 1);
        assert!(h[0].value.is_sensitive());
        let err = header_credentials(&names, None).unwrap_err().to_string();
        assert!(err.contains("CREDENTIALS_DIRECTORY is not set"), "{err}");
        let err = header_credentials(&["missing".into()], Some(dir.path().to_path_buf()))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--header-credential missing: cannot read"),
            "{err}"
        );
        let err = header_credentials(&["../x".into()], Some(dir.path().to_path_buf()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("without '/'"), "{err}");
    }

    #[test]
    fn client_options_need_a_websocket_and_a_valid_proxy() {
        for (args, want) in [
            (
                &["--proxy", "http://p:1", "-", "tcp:h:1"][..],
                "--proxy needs",
            ),
            (&["-L", "-", "tcp:h:1"][..], "-L/--follow-redirects needs"),
            (
                &["--tls-roots", "system", "-", "tcp:h:1"][..],
                "--tls-roots needs",
            ),
            (
                &["--proxy", "ftp://u:pw7@p:1", "ws://h/"][..],
                "--proxy: proxy",
            ),
        ] {
            let err = config(args).expect_err(&format!("{args:?}")).to_string();
            assert!(err.contains(want), "{args:?}: {err}");
            assert!(!err.contains("pw7"), "{err}");
        }
        let c = config(&["--proxy", "none", "-L", "ws://h/"]).unwrap();
        assert_eq!(c.ws.proxy.as_deref(), Some("none"));
        assert!(c.ws.follow_redirects);
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
    fn server_shorthand_and_exec() {
        let c = config(&["-s", "8080"]).unwrap();
        assert_eq!(c.left.to_string(), "ws-listen:127.0.0.1:8080");
        assert_eq!(c.right, Address::Stdio);
        assert!(c.listen.oneshot);
        let c = config(&["-s", "0.0.0.0:9", "mirror:"]).unwrap();
        assert_eq!(c.left.to_string(), "ws-listen:0.0.0.0:9");
        assert!(!c.listen.oneshot);
        let c = config(&[
            "ws-l:127.0.0.1:0",
            "exec:'my prog' \"a b\" c\\ d",
            "--exec-args",
            "-x",
            "--y",
        ])
        .unwrap();
        assert_eq!(c.exec, ["my prog", "a b", "c d", "-x", "--y"]);
        let c = config(&["ws-l:127.0.0.1:0", "sh-c:echo $X | wc"]).unwrap();
        assert_eq!(c.exec, ["/bin/sh", "-c", "echo $X | wc"]);
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
