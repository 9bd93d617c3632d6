//! A child's environment: not wsbridge's (which holds secrets and systemd's variables), but the
//! CGI-style variables of the request (as websocketd sets them), `PATH`, `HOME`, `LANG`, `LC_*`,
//! `TZ`, `TERM=dumb` on a pty, and what `--pass-env` names or sets.

use std::ffi::OsString;

use tokio::process::Command;

use super::super::{ExecOptions, SessionInfo};

/// Taken from wsbridge's environment when set there.
const KEPT: &[&str] = &["PATH", "HOME", "LANG", "TZ"];
/// `PATH` when wsbridge has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Proxy variables: passed on by `--pass-env` unless they carry a user name or password.
const PROXY_ENV: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Replace `cmd`'s environment with the child's.
pub(super) fn set(cmd: &mut Command, opts: &ExecOptions, info: &SessionInfo) {
    cmd.env_clear();
    let own = |name: &str| std::env::var_os(name);
    for name in KEPT {
        if let Some(v) = own(name) {
            cmd.env(name, v);
        }
    }
    if own("PATH").is_none() {
        cmd.env("PATH", DEFAULT_PATH);
    }
    for (name, v) in std::env::vars_os() {
        if name.as_encoded_bytes().starts_with(b"LC_") {
            cmd.env(name, v);
        }
    }
    if opts.pty.is_some() {
        cmd.env("TERM", "dumb");
    }
    for (name, value) in passed(&opts.pass_env, own) {
        cmd.env(name, value);
    }
    cgi(cmd, info);
}

/// What `--pass-env` gives the child: NAME=VALUE as set, NAME from wsbridge's environment —
/// except wsbridge's secrets (the `--basic-auth` password, proxy URLs with credentials).
fn passed(
    pass: &[(String, Option<String>)],
    own: impl Fn(&str) -> Option<OsString>,
) -> Vec<(String, OsString)> {
    pass.iter()
        .filter_map(|(name, value)| match value {
            Some(v) => Some((name.clone(), OsString::from(v))),
            None if is_secret(name, &own) => {
                tracing::warn!("--pass-env {name}: holds a secret of wsbridge's; not passed");
                None
            }
            // systemd's variables are for wsbridge (their sockets are close-on-exec).
            None if crate::systemd::CHILD_ENV_REMOVE.contains(&name.as_str()) => None,
            None => own(name).map(|v| (name.clone(), v)),
        })
        .collect()
}

fn is_secret(name: &str, own: impl Fn(&str) -> Option<OsString>) -> bool {
    name == "WSBRIDGE_BASIC_AUTH"
        || (PROXY_ENV.contains(&name)
            && own(name).is_some_and(|v| v.as_encoded_bytes().contains(&b'@')))
}

/// The request as CGI variables.
fn cgi(cmd: &mut Command, info: &SessionInfo) {
    cmd.env(
        "SERVER_SOFTWARE",
        concat!("wsbridge/", env!("CARGO_PKG_VERSION")),
    )
    .env("GATEWAY_INTERFACE", "CGI/1.1");
    if let Some(peer) = info.peer {
        cmd.env("REMOTE_ADDR", peer.ip().to_string())
            .env("REMOTE_PORT", peer.port().to_string());
    }
    if let Some(uri) = &info.request_uri {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let (script, path_info) = match &info.script {
            Some(s) => (s.script_name.as_str(), s.path_info.as_str()),
            None => ("", path),
        };
        cmd.env("REQUEST_METHOD", "GET")
            .env("SERVER_PROTOCOL", "HTTP/1.1")
            .env("REQUEST_URI", uri)
            .env("SCRIPT_NAME", script)
            .env("PATH_INFO", path_info)
            .env("QUERY_STRING", query);
    }
    for (name, value) in &info.headers {
        let var = format!(
            "HTTP_{}",
            name.as_str().to_ascii_uppercase().replace('-', "_")
        );
        cmd.env(var, String::from_utf8_lossy(value.as_bytes()).as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_env_sets_copies_and_keeps_secrets_back() {
        let env = [
            ("WSBRIDGE_BASIC_AUTH", "alice:pw"),
            ("HTTP_PROXY", "http://u:pw@proxy:3128"),
            ("http_proxy", "http://proxy:3128"),
            ("EDITOR", "vi"),
            ("NOTIFY_SOCKET", "/run/systemd/notify"),
        ];
        let own = |n: &str| {
            env.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| OsString::from(v))
        };
        let pass = |names: &[(&str, Option<&str>)]| {
            let p: Vec<_> = names
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(String::from)))
                .collect();
            passed(&p, own)
        };
        let got = pass(&[
            ("WSBRIDGE_BASIC_AUTH", None),
            ("HTTP_PROXY", None),
            ("http_proxy", None),
            ("EDITOR", None),
            ("NOTIFY_SOCKET", None),
            ("MISSING", None),
            ("TERM", Some("xterm")),
        ]);
        let names: Vec<_> = got
            .iter()
            .map(|(n, v)| format!("{n}={}", v.display()))
            .collect();
        assert_eq!(
            names,
            ["http_proxy=http://proxy:3128", "EDITOR=vi", "TERM=xterm"]
        );
    }
}
