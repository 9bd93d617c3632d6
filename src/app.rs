//! Running a validated Config: connect both sides once, or bind a listener and run one session
//! per accepted client (the other side opened afresh for each), until a shutdown signal.

use std::future::Future;
use std::io::Write;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::config::{Config, LogLevel};
use crate::endpoint::{Conn, Listener, Opener, SessionInfo, Slots};
use crate::error::Result;
use crate::relay;

/// Run until done. `shutdown` resolves when the process is asked to stop (SIGINT/SIGTERM);
/// listeners stop on it. A single session keeps the default signal behaviour for now.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let config = Arc::new(config);
    let opener = Arc::new(Opener::new(&config));
    let result = if config.left.is_listener() {
        serve(config, opener.clone(), shutdown).await
    } else {
        drop(shutdown);
        single(&config, &opener).await
    };
    // Every exec: child is ended and reaped before we exit (bounded by the kill grace).
    opener.tasks.close();
    let limit = crate::endpoint::exec::KILL_GRACE + std::time::Duration::from_secs(1);
    if tokio::time::timeout(limit, opener.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some child processes did not end in time");
    }
    result
}

/// No listener: one session between the two addresses.
async fn single(config: &Config, opener: &Opener) -> Result<()> {
    // Open the far side first: when it fails, the local side (e.g. stdin) is left untouched.
    let none = SessionInfo::default();
    let right = opener.open(&config.right, &none).await?;
    let left = opener.open(&config.left, &none).await?;
    relay::bridge(left, right, &config.relay).await
}

async fn serve(
    config: Arc<Config>,
    opener: Arc<Opener>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let listener = Arc::new(Listener::bind(&config).await?);
    let socket_file = listener.socket_file();
    announce(&config, &listener.describe());
    tokio::pin!(shutdown);
    let slots = Slots::new(config.listen.max_conns);
    let mut sessions = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => {
                tracing::info!("shutting down: no longer accepting");
                break;
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
        };
        let incoming = match accepted {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: keep serving, but do not spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if config.listen.oneshot {
            // Handshake inline: a page request or a refused client does not use up the one session.
            let Some((local, info, _slot)) = listener.establish(incoming, &slots).await else {
                continue;
            };
            drop(listener);
            drop(socket_file);
            // The one session's error is the run's error: main prints it once.
            return tokio::select! {
                r = session(local, info, &opener, &config) => r,
                () = &mut shutdown => Ok(()),
            };
        }
        let (config2, opener2, listener2, slots2) = (
            config.clone(),
            opener.clone(),
            listener.clone(),
            slots.clone(),
        );
        sessions.spawn(async move {
            let Some((local, info, _slot)) = listener2.establish(incoming, &slots2).await else {
                return;
            };
            let label = local.label().to_string();
            tracing::info!("{label}: session started");
            if let Err(e) = session(local, info, &opener2, &config2).await {
                let e = e.to_string();
                if e.starts_with(&label) {
                    tracing::warn!("{e}");
                } else {
                    tracing::warn!("{label}: {e}");
                }
            }
        });
    }
    // Stop the sessions still running (their exec: children are then ended by their guards).
    // (A graceful Close 1001 and a drain for each is planned; for now they are cut off.)
    drop(listener);
    drop(socket_file);
    sessions.shutdown().await;
    Ok(())
}

/// One accepted client: open the far side for it, then pump until the session ends. When the far
/// side cannot be opened, a WebSocket client is told so with Close 1011 (not a dropped socket).
async fn session(local: Conn, info: SessionInfo, opener: &Opener, config: &Config) -> Result<()> {
    let remote = match opener.open(&config.right, &info).await {
        Ok(r) => r,
        Err(e) => {
            if let Conn::Messages(m) = local {
                relay::refuse(m, "upstream unavailable", config.relay.close_timeout).await;
            }
            return Err(e);
        }
    };
    relay::bridge(local, remote, &config.relay).await
}

/// `wsbridge: listening on tcp 127.0.0.1:PORT` on stderr (and stdout with --announce-stdout).
fn announce(config: &Config, what: &str) {
    let line = format!("wsbridge: listening on {what}");
    if config.log != LogLevel::Quiet {
        eprintln!("{line}");
    }
    if config.listen.announce_stdout {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// A future that resolves on SIGINT or SIGTERM. The handlers are installed by this call (it
/// must run inside the runtime), so a signal that arrives before the future is polled counts.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
