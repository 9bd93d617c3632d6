//! `exec:` / `sh-c:` / `exec-dir:`: one child process per connection. Its stdin/stdout (pipes,
//! or a pty with `--pty`) are the byte side; its stderr goes where `--exec-stderr` says; it gets
//! a clean environment with the request as CGI-style variables (like websocketd). When its stdout ends,
//! the Close sent is 1000 if it exited 0, 1011 otherwise (at once once it has exited; while it
//! runs, the Close waits for replies as `--linger` says). When the session ends, a child still
//! running gets SIGTERM, then SIGKILL after a grace period — the child and everything it started
//! (it runs in its own process group); it is always reaped (no zombies).
//! Every descriptor wsbridge opens is close-on-exec, so children inherit only stdio.

mod dir;
mod env;
mod pty;
mod stderr;

pub(crate) use dir::resolve;

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::task::TaskTracker;

use super::{BoxReader, BoxWriter, ByteConn, EofNote, ExecOptions, ExecStderr, SessionInfo};
use crate::error::{Error, Result};

/// Time between SIGTERM and SIGKILL for a child whose connection has ended.
pub(crate) const KILL_GRACE: Duration = Duration::from_secs(2);
/// After the child closes its stdout, how long to wait for its exit status.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// Start the child for one connection. Its reaper runs on `tasks`, so the caller can wait for
/// every child to be ended and reaped before the process exits.
pub(crate) fn spawn(
    opts: &ExecOptions,
    info: &SessionInfo,
    tasks: &TaskTracker,
) -> Result<ByteConn> {
    let (program, args): (&std::ffi::OsStr, &[String]) = match (&opts.dir, &info.script) {
        (Some(_), Some(s)) => (s.program.as_os_str(), &[]),
        (Some(_), None) => return Err(Error::Internal("exec-dir: no program chosen".into())),
        (None, _) => match opts.argv.split_first() {
            Some((p, args)) => (p.as_ref(), args),
            None => return Err(Error::Internal("exec: empty command".into())),
        },
    };
    let label = format!("exec:{}", program.to_string_lossy());
    let spawn_error = |source| Error::Spawn {
        target: label.clone(),
        source,
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    env::set(&mut cmd, opts, info);
    let pty = stdio(&mut cmd, opts).map_err(spawn_error)?;
    if let Some(soft) = crate::fdlimit::original_soft() {
        // SAFETY: the hook runs in the forked child before exec and only makes two system
        // calls (getrlimit, setrlimit), which are async-signal-safe; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || crate::fdlimit::restore_in_child(soft));
        }
    }
    let mut child = cmd.spawn().map_err(spawn_error)?;
    // Our copies of the pty's slave end go with `cmd`: the child's exit is then seen as EOF.
    drop(cmd);
    let (reader, writer) = pty.unwrap_or_else(|| {
        let out: BoxReader = Box::new(child.stdout.take().expect("stdout piped"));
        let input: BoxWriter = Box::new(child.stdin.take().expect("stdin piped"));
        (out, input)
    });
    let side = child_stderr(&mut child, opts, &label, tasks);
    let (status_tx, status_rx) = watch::channel::<Option<ExitStatus>>(None);
    let (kill_tx, kill_rx) = oneshot::channel::<()>();
    // The child's task belongs to the session that started it (its lines carry the session).
    let reaper = reap(child, status_tx, kill_rx, label.clone());
    tasks.spawn(tracing::Instrument::in_current_span(reaper));
    let close = Box::pin(eof_note(status_rx));
    Ok(ByteConn {
        reader,
        writer,
        label,
        on_eof: Some(close),
        guard: Some(Box::new(kill_tx)),
        side,
    })
}

/// Wait for the child (its status goes to `status_tx`), then, once the connection is over
/// (`kill_rx`), end what is left of its process group.
async fn reap(
    mut child: Child,
    status_tx: watch::Sender<Option<ExitStatus>>,
    mut kill_rx: oneshot::Receiver<()>,
    label: String,
) {
    let pid = child.id();
    tokio::select! {
        status = child.wait() => {
            if let Ok(s) = status {
                tracing::debug!("{label} (pid {pid:?}) exited: {s}");
                let _ = status_tx.send(Some(s));
            }
            // Whatever it started in its process group goes when the connection does.
            let _ = kill_rx.await;
        }
        _ = &mut kill_rx => {}
    }
    if let Some(pid) = pid {
        end_group(pid as libc::pid_t, &mut child, &label).await;
    }
}

/// When the child's output has ended: the Close its exit status calls for (waiting up to
/// `EXIT_WAIT` for it).
async fn eof_note(mut status_rx: watch::Receiver<Option<ExitStatus>>) -> EofNote {
    let status = tokio::time::timeout(EXIT_WAIT, status_rx.wait_for(Option::is_some))
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
}

/// The child's stdin and stdout: pipes, or the slave of a new pty (whose master's halves are
/// returned, ready before the child runs); its stderr as `--exec-stderr` says. A child on a pty
/// leads a session of its own with the pty as its controlling terminal; otherwise it gets a
/// process group of its own. Either way ending the connection ends everything it started (a
/// `sh -c` pipeline, background jobs).
fn stdio(cmd: &mut Command, opts: &ExecOptions) -> std::io::Result<Option<(BoxReader, BoxWriter)>> {
    cmd.stderr(match opts.stderr {
        ExecStderr::Inherit => Stdio::inherit(),
        ExecStderr::Log | ExecStderr::Client => Stdio::piped(),
    });
    let Some(size) = opts.pty else {
        cmd.process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        return Ok(None);
    };
    let (reader, writer, slave) = pty::Pty::open(size, opts.pty_lines)?.split()?;
    cmd.stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave));
    // SAFETY: runs in the forked child before exec; setsid(2) and ioctl(2) are
    // async-signal-safe, and rustix makes them without allocating.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(std::os::fd::BorrowedFd::borrow_raw(0))?;
            Ok(())
        });
    }
    Ok(Some((Box::new(reader), Box::new(writer))))
}

/// Start passing the child's stderr on (log or client); the client's messages when it goes there.
fn child_stderr(
    child: &mut Child,
    opts: &ExecOptions,
    label: &str,
    tasks: &TaskTracker,
) -> Option<tokio::sync::mpsc::Receiver<tokio_tungstenite::tungstenite::Message>> {
    let err = child.stderr.take()?;
    match opts.stderr {
        ExecStderr::Log => {
            stderr::log(err, label.to_string(), tasks);
            None
        }
        ExecStderr::Client => Some(stderr::to_client(err, opts.stderr_prefix.clone(), tasks)),
        ExecStderr::Inherit => None,
    }
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
