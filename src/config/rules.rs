//! The rules a command line must follow beyond what clap checks: how the two addresses pair,
//! which options need which address kind, and value checks. Pure: no I/O, errors are usage
//! errors that say what to do instead.

use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::addr::Address;
use crate::cli::{Cli, ExecStderr};
use crate::error::{Error, Result};
use crate::relay::framing::{Framing, FramingOptions};

fn usage<T>(m: String) -> Result<T> {
    Err(Error::Usage(m))
}

/// How ADDR1 and ADDR2 may pair.
pub(super) fn pairing(left: &Address, right: &Address, oneshot: bool) -> Result<()> {
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
        return usage(if *left == Address::Stdio && *right == Address::Stdio {
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
    if *right == Address::Broadcast && !left.is_listener() {
        return usage("broadcast: needs a listener as ADDR1 (its clients are the room)".into());
    }
    if *left == Address::Mirror && *right == Address::Mirror {
        return usage("mirror: facing mirror: has nothing to echo".into());
    }
    if matches!(left, Address::Broadcast) {
        return usage("broadcast: must be ADDR2, behind a listener".into());
    }

    Ok(())
}

/// Options that only make sense with some address kinds: (the kind is there, what it is).
type Needs = (bool, &'static str);

/// Options that only make sense with some address kinds.
pub(super) fn needs(cli: &Cli, left: &Address, right: &Address) -> Result<()> {
    let ws_listen = match left {
        Address::WsListen(w) => Some(w),
        _ => None,
    };
    let ws: Needs = (
        matches!(right, Address::Ws(_)) || matches!(left, Address::Ws(_)),
        "a ws:// or wss:// address",
    );
    let wss: Needs = (ws_listen.is_some_and(|w| w.tls), "wss-listen:");
    let server: Needs = (ws_listen.is_some(), "ws-listen:");
    let room: Needs = (*right == Address::Broadcast, "broadcast:");
    let exec = matches!(right, Address::Exec(_)) || matches!(left, Address::Exec(_));
    let rediss = cli
        .broadcast_via
        .as_deref()
        .is_some_and(|u| u.to_ascii_lowercase().starts_with("rediss:"));
    let rows: [(Needs, bool, &str); 31] = [
        (ws, !cli.headers.is_empty(), "-H/--header"),
        (ws, cli.protocol.is_some(), "--protocol"),
        (ws, cli.origin.is_some(), "--origin"),
        (ws, cli.insecure, "-k/--insecure"),
        (ws, !cli.ca_file.is_empty(), "--ca-file"),
        (ws, cli.basic_auth_file.is_some(), "--basic-auth-file"),
        (ws, !cli.header_credential.is_empty(), "--header-credential"),
        (ws, cli.client_cert.is_some(), "--client-cert"),
        (
            ws,
            cli.tls_roots != crate::cli::TlsRoots::Webpki,
            "--tls-roots",
        ),
        (ws, cli.proxy.is_some(), "--proxy"),
        (ws, cli.follow_redirects, "-L/--follow-redirects"),
        (ws, !cli.on_connect.is_empty(), "--on-connect"),
        (wss, cli.tls_cert.is_some(), "--tls-cert"),
        (wss, cli.tls_key.is_some(), "--tls-key"),
        (wss, cli.tls_client_ca.is_some(), "--tls-client-ca"),
        (server, !cli.server_protocol.is_empty(), "--server-protocol"),
        (server, !cli.origin_allow.is_empty(), "--origin-allow"),
        (server, !cli.require_header.is_empty(), "--require-header"),
        (server, cli.auth_token_file.is_some(), "--auth-token-file"),
        (server, cli.console, "--console"),
        (server, cli.no_console, "--no-console"),
        (server, cli.static_dir.is_some(), "--static"),
        (server, !cli.pass_header.is_empty(), "--pass-header"),
        (room, cli.broadcast_queue.is_some(), "--broadcast-queue"),
        (room, cli.broadcast_via.is_some(), "--broadcast-via"),
        (
            (cli.broadcast_via.is_some(), "--broadcast-via"),
            cli.broadcast_via_password_file.is_some(),
            "--broadcast-via-password-file",
        ),
        (
            (rediss, "a rediss:// --broadcast-via"),
            cli.broadcast_via_ca_file.is_some(),
            "--broadcast-via-ca-file",
        ),
        ((exec, "exec:"), !cli.exec_args.is_empty(), "--exec-args"),
        (
            (matches!(left, Address::UnixListen(_)), "unix-listen:"),
            cli.unix_mode.is_some(),
            "--unix-mode",
        ),
        (
            (left.is_listener(), "a listener"),
            cli.max_conns.is_some(),
            "--max-conns",
        ),
        (
            (left.is_listener(), "a listener"),
            cli.threads.is_some(),
            "--threads",
        ),
    ];
    match rows.iter().find(|((ok, _), set, _)| *set && !*ok) {
        Some(((_, what), _, flag)) => usage(format!("{flag} needs {what}")),
        None => Ok(()),
    }
}

/// Combinations and values the options themselves must satisfy.
pub(super) fn options(cli: &Cli, left: &Address, right: &Address) -> Result<()> {
    let ws_listen = match left {
        Address::WsListen(w) => Some(w),
        _ => None,
    };
    if ws_listen.is_some_and(|w| w.tls) && (cli.tls_cert.is_none() || cli.tls_key.is_none()) {
        return usage("wss-listen: needs --tls-cert PEM and --tls-key PEM".into());
    }
    if cli.reconnect
        && !(matches!(right, Address::Ws(_))
            && !left.is_message_endpoint()
            && *left != Address::Mirror)
    {
        return usage("--reconnect needs a ws:// or wss:// ADDR2 and a byte stream (stdio, tcp, unix, exec) as ADDR1".into());
    }
    if !cli.reconnect
        && (cli.reconnect_min != Duration::from_millis(500)
            || cli.reconnect_max != Duration::from_secs(30)
            || cli.reconnect_buffer != 1 << 20)
    {
        return usage("--reconnect-min/--reconnect-max/--reconnect-buffer need --reconnect".into());
    }
    if cli.announce_stdout && (right.uses_stdio() || !left.is_listener()) {
        return usage(
            "--announce-stdout needs a listener as ADDR1 and ADDR2 other than stdio".into(),
        );
    }
    if cli.no_close && cli.unidirectional_reverse {
        return usage("--no-close has no effect with -U (local input is not read)".into());
    }
    if cli.max_conns == Some(0) || cli.broadcast_queue == Some(0) || cli.threads == Some(0) {
        return usage("--max-conns, --threads and --broadcast-queue must be at least 1".into());
    }
    if let Some(auth) = &cli.basic_auth
        && !auth.contains(':')
    {
        return usage("--basic-auth expects USER:PASS".into());
    }
    Ok(())
}

/// The options of children (`exec:`, `sh-c:`, `exec-dir:`) need one, and `exec-dir:` needs the
/// whole request path of a WebSocket server.
pub(super) fn exec(cli: &Cli, left: &Address, right: &Address) -> Result<()> {
    let is_exec =
        |a: &Address| matches!(a, Address::Exec(_) | Address::ShC(_) | Address::ExecDir(_));
    let flags = [
        (cli.pty, "--pty"),
        (cli.pty_size != (80, 24), "--pty-size"),
        (cli.exec_stderr != ExecStderr::Log, "--exec-stderr"),
        (cli.stderr_prefix != "stderr: ", "--stderr-prefix"),
        (!cli.pass_env.is_empty(), "--pass-env"),
    ];
    if let Some((_, flag)) = flags.iter().find(|(set, _)| *set)
        && !is_exec(left)
        && !is_exec(right)
    {
        return usage(format!("{flag} needs exec:, sh-c: or exec-dir:"));
    }
    if cli.pty_size != (80, 24) && !cli.pty {
        return usage("--pty-size needs --pty".into());
    }
    let websocket = |a: &Address| matches!(a, Address::Ws(_) | Address::WsListen(_));
    if cli.exec_stderr == ExecStderr::Client && !websocket(left) && !websocket(right) {
        return usage(
            "--exec-stderr client needs a WebSocket on the other side (ws-listen:, ws://)".into(),
        );
    }
    if cli.stderr_prefix != "stderr: " && cli.exec_stderr != ExecStderr::Client {
        return usage("--stderr-prefix needs --exec-stderr client".into());
    }
    match (left, right) {
        (Address::ExecDir(_), _) => usage("exec-dir: must be ADDR2, behind ws-listen:".into()),
        (Address::WsListen(w), Address::ExecDir(_)) if w.path.is_some() => usage(format!(
            "exec-dir: maps the whole request path to a program: drop '{}' from ws-listen:",
            w.path.as_deref().unwrap_or_default()
        )),
        (Address::WsListen(_), Address::ExecDir(_)) => Ok(()),
        (_, Address::ExecDir(_)) => usage(
            "exec-dir: (--exec-dir) needs ws-listen: or wss-listen: as ADDR1 (the request path picks the program)".into(),
        ),
        _ => Ok(()),
    }
}

/// Checks that need the framing options.
pub(super) fn limits(cli: &Cli, framing: &FramingOptions) -> Result<()> {
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
        return usage("--max-message-size: length-prefixed headers hold at most 2 GiB - 1".into());
    }
    if cli.max_messages == Some(0) || cli.max_messages_rev == Some(0) {
        return usage("--max-messages and --max-messages-rev must be at least 1".into());
    }

    Ok(())
}
