//! `exec:` / `sh-c:`: one child process per connection. Its stdin/stdout are the byte side; it
//! gets the request as CGI-style environment variables (like websocketd). When its stdout ends,
//! the Close sent is 1000 if it exited 0, 1011 otherwise (at once once it has exited; while it
//! runs, the Close waits for replies as `--linger` says). When the session ends, a child still
//! running gets SIGTERM, then SIGKILL after a grace period — the child and everything it started
//! (it runs in its own process group); it is always reaped (no zombies).
//! Every descriptor wsbridge opens is close-on-exec, so children inherit only stdio.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::task::TaskTracker;

use super::{ByteConn, EofNote, SessionInfo};
use crate::error::{Error, Result};

/// Time between SIGTERM and SIGKILL for a child whose connection has ended.
pub(crate) const KILL_GRACE: Duration = Duration::from_secs(2);
/// After the child closes its stdout, how long to wait for its exit status.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// Start the child for one connection. Its reaper runs on `tasks`, so the caller can wait for
/// every child to be ended and reaped before the process exits.
pub(crate) fn spawn(argv: &[String], info: &SessionInfo, tasks: &TaskTracker) -> Result<ByteConn> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Error::Internal("exec: empty command".into()))?;
    let mut cmd = Command::new(program);
    // Its own process group, so that ending the connection ends everything the child started
    // (a `sh -c` pipeline, background jobs), not just the child.
    cmd.process_group(0);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    set_env(&mut cmd, info);
    if let Some(soft) = crate::fdlimit::original_soft() {
        // SAFETY: the hook runs in the forked child before exec and only makes two system
        // calls (getrlimit, setrlimit), which are async-signal-safe; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || crate::fdlimit::restore_in_child(soft));
        }
    }
    let label = format!("exec:{program}");
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        target: label.clone(),
        source,
    })?;
    let pid = child.id();
    let stdin = child.stdin.take().expect("stdin piped");
    let stdout = child.stdout.take().expect("stdout piped");
    let (status_tx, status_rx) = watch::channel::<Option<ExitStatus>>(None);
    let (kill_tx, kill_rx) = oneshot::channel::<()>();
    let task_label = label.clone();
    // The child's task belongs to the session that started it (its lines carry the session).
    tasks.spawn(tracing::Instrument::in_current_span(async move {
        let mut kill_rx = kill_rx;
        tokio::select! {
            status = child.wait() => {
                if let Ok(s) = status {
                    tracing::debug!("{task_label} (pid {pid:?}) exited: {s}");
                    let _ = status_tx.send(Some(s));
                }
                // Whatever it started in its process group goes when the connection does.
                let _ = kill_rx.await;
            }
            _ = &mut kill_rx => {}
        }
        if let Some(pid) = pid {
            end_group(pid as libc::pid_t, &mut child, &task_label).await;
        }
    }));
    let close = Box::pin(async move {
        let mut rx = status_rx;
        let status = tokio::time::timeout(EXIT_WAIT, rx.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|s| *s));
        let close = match status {
            Some(s) if !s.success() => CloseFrame {
                code: CloseCode::Error,
                reason: format!("program {s}").into(),
            },
            _ => CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            },
        };
        // A program that has exited reads no replies: the Close need not wait for them.
        EofNote {
            close,
            still_reading: status.is_none(),
        }
    });
    Ok(ByteConn {
        reader: Box::new(stdout),
        writer: Box::new(stdin),
        label,
        on_eof: Some(close),
        guard: Some(Box::new(kill_tx)),
    })
}

/// Proxy variables: a child keeps them unless they carry a user name or password.
const PROXY_ENV: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The child's environment: wsbridge's, without what is meant for wsbridge alone, plus the
/// CGI-style variables of the request.
fn set_env(cmd: &mut Command, info: &SessionInfo) {
    cmd.env(
        "SERVER_SOFTWARE",
        concat!("wsbridge/", env!("CARGO_PKG_VERSION")),
    );
    // systemd's variables are for wsbridge, not its children (their sockets are close-on-exec);
    // so are wsbridge's secrets.
    let secrets = secret_env(|name| std::env::var_os(name));
    for var in crate::systemd::CHILD_ENV_REMOVE.iter().chain(&secrets) {
        cmd.env_remove(var);
    }
    if let Some(peer) = info.peer {
        cmd.env("REMOTE_ADDR", peer.ip().to_string())
            .env("REMOTE_PORT", peer.port().to_string());
    }
    if let Some(uri) = &info.request_uri {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        cmd.env("REQUEST_URI", uri)
            .env("PATH_INFO", path)
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

/// Variables of wsbridge's environment (read through `get`) that hold its secrets: the
/// `--basic-auth` password, and proxy URLs with a user name or password (an `@`).
fn secret_env(get: impl Fn(&str) -> Option<std::ffi::OsString>) -> Vec<&'static str> {
    let with_userinfo =
        |name: &&str| get(name).is_some_and(|v| v.as_encoded_bytes().contains(&b'@'));
    std::iter::once("WSBRIDGE_BASIC_AUTH")
        .chain(PROXY_ENV.iter().copied().filter(with_userinfo))
        .collect()
}

/// SIGTERM the child's process group, reap the child, give the group `KILL_GRACE` to go, then
/// SIGKILL whatever is left.
async fn end_group(pgid: libc::pid_t, child: &mut tokio::process::Child, label: &str) {
    // SAFETY: kill(2) on the process group we created for the child. Its id stays ours while
    // any member is alive; once the group is empty, kill(-pgid, 0) fails and nothing is sent.
    let signal = |sig| unsafe { libc::kill(-pgid, sig) == 0 };
    let group_alive = || signal(0);
    if !group_alive() {
        let _ = child.wait().await;
        return;
    }
    signal(libc::SIGTERM);
    let deadline = tokio::time::Instant::now() + KILL_GRACE;
    let _ = tokio::time::timeout_at(deadline, child.wait()).await;
    while group_alive() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    if group_alive() {
        tracing::info!("{label} (process group {pgid}) ignored SIGTERM; sending SIGKILL");
        signal(libc::SIGKILL);
    }
    let _ = child.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_proxy_credentials_are_kept_from_children() {
        let env = [
            ("WSBRIDGE_BASIC_AUTH", "alice:pw"),
            ("HTTP_PROXY", "http://u:pw@proxy:3128"),
            ("http_proxy", "http://proxy:3128"),
            ("HTTPS_PROXY", "u:pw@proxy:3128"),
            ("https_proxy", ""),
            ("ALL_PROXY", "socks5://bob@proxy:1080"),
        ];
        let get = |n: &str| {
            env.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| std::ffi::OsString::from(v))
        };
        assert_eq!(
            secret_env(get),
            [
                "WSBRIDGE_BASIC_AUTH",
                "HTTP_PROXY",
                "HTTPS_PROXY",
                "ALL_PROXY"
            ]
        );
        assert_eq!(secret_env(|_| None), ["WSBRIDGE_BASIC_AUTH"]);
    }
}
