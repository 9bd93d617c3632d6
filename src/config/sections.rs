//! One constructor per section of the configuration: the relay, the WebSocket client, the
//! server, staying up, `exec:` and logging. Each reads only the flags of its section.

use std::path::PathBuf;
use std::time::Duration;

use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::headers::{
    header_credentials, parse_header_arg, pass_headers, read_auth_token, read_basic_auth_file,
    read_secret_file, require_headers,
};
use super::{
    DEFAULT_MAX_MESSAGE, DEFAULT_SERVER_MAX_MESSAGE, ExecOptions, LogLevel, RelayOptions,
    ServerOptions, UptimeOptions, WsClientOptions,
};
use crate::addr::Address;
use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::relay::framing::FramingOptions;

fn message_timeout(cli: &Cli) -> Option<Duration> {
    Some(cli.message_timeout).filter(|d| !d.is_zero())
}

/// `--ping-interval` when not given, for a WebSocket server's clients (as Python `websockets`
/// servers do): a client that froze or stopped reading is found within a minute. Clients of
/// other listeners and single sessions are not pinged unless asked.
pub(crate) const SERVER_PING: Duration = Duration::from_secs(30);

/// `serving`: ADDR1 is a WebSocket server (`ws-listen:`, `wss-listen:`).
pub(super) fn relay_options(cli: &Cli, framing: FramingOptions, serving: bool) -> RelayOptions {
    let one = |n: Option<u64>| if cli.one_message { Some(1) } else { n };
    RelayOptions {
        framing,
        exit_on_eof: cli.exit_on_eof,
        no_close: cli.no_close,
        forward: !cli.unidirectional_reverse,
        reverse: !cli.unidirectional,
        close_timeout: cli.close_timeout,
        linger: cli.linger,
        max_forward: one(cli.max_messages),
        max_reverse: one(cli.max_messages_rev),
        close_code: cli.close_code,
        close_reason: cli.close_reason.clone(),
        max_frame_size: cli.max_frame_size,
        ping_interval: match cli.ping_interval {
            None if serving => Some(SERVER_PING),
            given => given.filter(|d| !d.is_zero()),
        },
        ping_timeout: cli
            .ping_timeout
            .or(cli.ping_interval)
            .unwrap_or(Duration::from_secs(30)),
        // Replaced by `app::run` with the run's own handle.
        shutdown: crate::shutdown::Shutdown::default(),
        shutdown_timeout: cli.shutdown_timeout,
        backend_timeout: Some(cli.backend_timeout).filter(|d| !d.is_zero()),
    }
}

/// `--basic-auth USER:PASS` or `--basic-auth-file` (one of them).
fn basic_auth(cli: &Cli) -> Result<Option<String>> {
    match &cli.basic_auth_file {
        None => Ok(cli.basic_auth.clone()),
        Some(_) if cli.basic_auth.is_some() => Err(Error::Usage(
            "--basic-auth-file and --basic-auth (or WSBRIDGE_BASIC_AUTH) both given: use one"
                .into(),
        )),
        Some(path) => Ok(Some(read_basic_auth_file(path)?)),
    }
}

/// The request headers: `-H` (and `-H @FILE`), then `--header-credential`.
fn request_headers(cli: &Cli) -> Result<Vec<super::Header>> {
    let mut headers = Vec::new();
    for h in &cli.headers {
        headers.extend(parse_header_arg(h)?);
    }
    headers.extend(header_credentials(
        &cli.header_credential,
        std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
    )?);
    Ok(headers)
}

/// The WebSocket client's options. `ssl_cert_file`: `SSL_CERT_FILE`, an extra trust root.
pub(super) fn client_options(cli: &Cli, ssl_cert_file: Option<PathBuf>) -> Result<WsClientOptions> {
    if let Some(proxy) = &cli.proxy {
        crate::endpoint::proxy::choose(Some(proxy), &|_| None, false, "")
            .map_err(|e| Error::Usage(format!("--proxy: {e}")))?;
    }
    for (flag, v) in [("--origin", &cli.origin), ("--protocol", &cli.protocol)] {
        if let Some(v) = v {
            HeaderValue::from_str(v)
                .map_err(|_| Error::Usage(format!("{flag} '{v}' is not a valid header value")))?;
        }
    }
    let basic_auth = basic_auth(cli)?;
    let mut ca_files = cli.ca_file.clone();
    ca_files.extend(ssl_cert_file.filter(|p| !p.as_os_str().is_empty()));
    Ok(WsClientOptions {
        headers: request_headers(cli)?,
        protocol: cli.protocol.clone(),
        origin: cli.origin.clone(),
        basic_auth,
        insecure: cli.insecure,
        ca_files,
        connect_timeout: cli.connect_timeout,
        max_message_size: cli.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE),
        max_frame_size: cli.max_frame_size,
        message_timeout: message_timeout(cli),
        follow_redirects: cli.follow_redirects,
        proxy: cli.proxy.clone(),
        client_cert: cli.client_cert.clone(),
        client_key: cli.client_key.clone(),
        tls_roots: cli.tls_roots,
        deflate: deflate_options(cli),
        on_connect: on_connect_messages(&cli.on_connect)?,
    })
}

/// `--on-connect TEXT|@FILE`: the messages, read now (a file that cannot be read is a usage
/// error at startup, not a failure at every connect).
fn on_connect_messages(given: &[String]) -> Result<Vec<tokio_tungstenite::tungstenite::Message>> {
    use tokio_tungstenite::tungstenite::Message;
    given
        .iter()
        .map(|g| {
            let Some(path) = g.strip_prefix('@') else {
                return Ok(Message::text(g.clone()));
            };
            let mut data = std::fs::read(path)
                .map_err(|e| Error::Usage(format!("--on-connect @{path}: {e}")))?;
            if data.ends_with(b"\n") {
                data.pop();
                if data.ends_with(b"\r") {
                    data.pop();
                }
            }
            Ok(match String::from_utf8(data) {
                Ok(text) => Message::text(text),
                Err(e) => Message::binary(e.into_bytes()),
            })
        })
        .collect()
}

/// `--no-compress` and the `--deflate-*` flags, for both roles.
fn deflate_options(cli: &Cli) -> crate::ws::DeflateOptions {
    crate::ws::DeflateOptions {
        enabled: !cli.no_compress,
        window_bits: cli.deflate_window_bits,
        no_context_takeover: cli.deflate_no_context_takeover,
        level: cli.deflate_level,
    }
}

pub(super) fn uptime_options(cli: &Cli) -> UptimeOptions {
    UptimeOptions {
        reconnect: cli.reconnect,
        reconnect_min: cli.reconnect_min,
        reconnect_max: cli.reconnect_max,
        reconnect_buffer: cli.reconnect_buffer,
        ready_after_connect: cli.ready_after_connect,
    }
}

pub(super) fn server_options(cli: &Cli) -> Result<ServerOptions> {
    let server_max = cli.max_message_size.unwrap_or(DEFAULT_SERVER_MAX_MESSAGE);
    Ok(ServerOptions {
        tls_cert: cli.tls_cert.clone(),
        tls_key: cli.tls_key.clone(),
        tls_client_ca: cli.tls_client_ca.clone(),
        protocols: cli
            .server_protocol
            .iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        origin_allow: cli.origin_allow.clone(),
        require_headers: require_headers(&cli.require_header)?,
        auth_token: read_auth_token(cli.auth_token_file.as_deref())?,
        handshake_timeout: cli.handshake_timeout,
        console: cli.console,
        static_dir: cli.static_dir.clone(),
        exec_dir: None,
        pass_headers: pass_headers(&cli.pass_header)?,
        broadcast_queue: cli.broadcast_queue.unwrap_or(256),
        broadcast_queue_bytes: cli.broadcast_queue_bytes,
        max_message_size: server_max,
        max_frame_size: cli.max_frame_size.min(server_max),
        message_timeout: message_timeout(cli),
        deflate: deflate_options(cli),
        broadcast_via: broadcast_via(cli)?,
    })
}

/// `--broadcast-via URL` (redis:// or rediss://), its password file and channel prefix.
fn broadcast_via(cli: &Cli) -> Result<Option<crate::endpoint::BroadcastVia>> {
    let Some(url) = &cli.broadcast_via else {
        return Ok(None);
    };
    let shown = crate::secret::redact_userinfo(url);
    let usage = |m: String| Err(Error::Usage(format!("--broadcast-via {shown}: {m}")));
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some() => {}
        Ok(u) if !matches!(u.scheme(), "redis" | "rediss") => {
            return usage(format!("'{}:' is not redis: or rediss:", u.scheme()));
        }
        Ok(_) => return usage("no host".into()),
        Err(e) => return usage(format!("not a URL ({e})")),
    }
    let password = match &cli.broadcast_via_password_file {
        None => None,
        Some(path) => Some(read_secret_file(path, "--broadcast-via-password-file")?),
    };
    Ok(Some(crate::endpoint::BroadcastVia {
        url: url.clone(),
        shown,
        password,
        ca_file: cli.broadcast_via_ca_file.clone(),
        prefix: cli.broadcast_prefix.clone(),
    }))
}

/// How children of `exec:`, `sh-c:` and `exec-dir:` run (the program is empty without one).
pub(super) fn exec_options(cli: &Cli, left: &Address, right: &Address) -> Result<ExecOptions> {
    let pass_env = cli
        .pass_env
        .iter()
        .map(|v| pass_env(v))
        .collect::<Result<Vec<_>>>()?;
    let dir = match (left, right) {
        (_, Address::ExecDir(d)) => Some(d.clone()),
        _ => None,
    };
    Ok(ExecOptions {
        argv: exec_argv(cli, left, right)?,
        dir,
        pty: cli.pty.then_some(cli.pty_size),
        // Set from the framing (Config::from_cli).
        pty_lines: false,
        stderr: cli.exec_stderr,
        stderr_prefix: cli.stderr_prefix.clone(),
        pass_env,
    })
}

/// `--pass-env NAME` or `NAME=VALUE`.
fn pass_env(v: &str) -> Result<(String, Option<String>)> {
    let (name, value) = match v.split_once('=') {
        Some((n, val)) => (n, Some(val.to_string())),
        None => (v, None),
    };
    let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(Error::Usage(format!(
            "--pass-env {v}: expected NAME or NAME=VALUE (a variable name: letters, digits, _)"
        )));
    }
    Ok((name.to_string(), value))
}

/// The program of `exec:` / `sh-c:` and its arguments (empty without one).
fn exec_argv(cli: &Cli, left: &Address, right: &Address) -> Result<Vec<String>> {
    Ok(match (left, right) {
        (Address::Exec(cmd), _) | (_, Address::Exec(cmd)) => {
            let mut argv = super::addresses::split_command(cmd)
                .map_err(|e| Error::Usage(format!("exec:{cmd}: {e}")))?;
            argv.extend(cli.exec_args.iter().cloned());
            argv
        }
        (Address::ShC(cmd), _) | (_, Address::ShC(cmd)) => {
            vec!["/bin/sh".into(), "-c".into(), cmd.clone()]
        }
        _ => Vec::new(),
    })
}

pub(super) fn log_level(cli: &Cli) -> LogLevel {
    if cli.quiet {
        LogLevel::Quiet
    } else if cli.verbose > 0 {
        LogLevel::Verbose(cli.verbose)
    } else {
        LogLevel::Normal
    }
}

/// `--metrics HOST:PORT`: an IP address and port (a name would make what is exposed depend on
/// DNS); loopback unless `--metrics-public`.
pub(super) fn metrics_addr(cli: &Cli) -> Result<Option<std::net::SocketAddr>> {
    let Some(given) = &cli.metrics else {
        return Ok(None);
    };
    let usage = |m: &str| Err(Error::Usage(format!("--metrics {given}: {m}")));
    let addr: std::net::SocketAddr = match given.parse() {
        Ok(a) => a,
        Err(_) => return usage("expected IP:PORT, e.g. 127.0.0.1:9100 or [::1]:9100"),
    };
    if !addr.ip().is_loopback() && !cli.metrics_public {
        return usage("not a loopback address; add --metrics-public to expose the metrics there");
    }
    Ok(Some(addr))
}
