//! Running a validated Config: connect both sides once, or bind a listener and run one session
//! per accepted client (the other side opened afresh for each), until a shutdown signal.

use std::future::Future;
use std::io::Write;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::config::{Config, LogLevel};
use crate::endpoint::{Conn, Listener, Opener};
use crate::error::{Error, Result};
use crate::relay;

/// Run until done. `shutdown` resolves when the process is asked to stop (SIGINT/SIGTERM).
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let config = Arc::new(config);
    let opener = Arc::new(Opener::new(config.ws.clone()));
    if config.left.is_listener() {
        return serve(config, opener, shutdown).await;
    }
    // Open the far side first: when it fails, the local side (e.g. stdin) is left untouched.
    let right = opener.open(&config.right).await?;
    let left = opener.open(&config.left).await?;
    relay::bridge(left, right, &config.relay).await
}

async fn serve(
    config: Arc<Config>,
    opener: Arc<Opener>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let listener = Listener::bind(&config.left, &config.listen).await?;
    announce(&config, &listener.describe());
    tokio::pin!(shutdown);
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
        let local = match accepted {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: keep serving, but do not spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        tracing::info!("{}: accepted", local.label);
        let (config2, opener2) = (config.clone(), opener.clone());
        let session = async move {
            let label = local.label.clone();
            let result = session(Conn::Bytes(local), &opener2, &config2).await;
            if let Err(e) = &result {
                tracing::warn!("{label}: {e}");
            }
            result
        };
        if config.listen.oneshot {
            drop(listener);
            return session.await;
        }
        sessions.spawn(session);
    }
    Ok(())
}

/// One accepted client: open the far side for it, then pump until the session ends.
async fn session(local: Conn, opener: &Opener, config: &Config) -> Result<()> {
    let remote = opener.open(&config.right).await?;
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

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Internal errors that should never happen become typed errors rather than panics.
pub fn internal(msg: impl Into<String>) -> Error {
    Error::Internal(msg.into())
}
