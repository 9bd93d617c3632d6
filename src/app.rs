//! Running a validated Config: connect both sides once, or bind a listener and run one session
//! per accepted client (the other side opened afresh for each), until a shutdown signal.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;

use tokio::task::JoinSet;
use tracing::Instrument;

use crate::config::{Config, LogLevel};
use crate::endpoint::unix::SocketFile;
use crate::endpoint::{Conn, Incoming, Listener, Opener, SessionInfo, Slot, Slots};
use crate::error::Result;
use crate::fdlimit::AcceptErrors;
use crate::metrics::M;
use crate::relay;
use crate::shutdown::Shutdown;
use crate::workers::Workers;

/// Run until done, or until the first SIGTERM/SIGINT: this creates the run's [`Shutdown`]
/// handle, which listeners and every session watch (Close 1001, bounded drain). A second
/// signal exits at once (130).
pub async fn run(mut config: Config) -> Result<()> {
    crate::budget::GLOBAL.set_limit(config.max_buffered);
    let handle = Shutdown::new();
    config.relay.shutdown = handle.clone();
    watch_signals(handle.clone());
    let config = Arc::new(config);
    let opener = Arc::new(Opener::new(
        config.ws.clone(),
        config.exec.clone(),
        &config.server,
    ));
    if let Some(addr) = config.metrics {
        crate::metrics::serve(addr, handle.clone()).await?;
    }
    opener.start(&config.server).await?;
    crate::systemd::spawn_watchdog(); // systemd
    let shutdown = crate::systemd::on_shutdown(async move { handle.cancelled().await }); // systemd
    // A listener's session threads: started before the listener is announced (whoever counts
    // our descriptors then sees them), and kept until the exec: children's reapers, which run
    // on them, are done (below).
    let workers = match config.left.is_listener() {
        true => Some(
            crate::workers::Workers::start(config.listen.threads)
                .map_err(|e| crate::error::Error::io("starting the session threads", e))?,
        ),
        false => None,
    };
    let result = if let Some(workers) = &workers {
        serve(config, opener.clone(), workers, shutdown).await
    } else {
        // The session itself sees the shutdown token (Close 1001, bounded drain); keep
        // watching for the signal while it runs.
        let span = crate::logging::session_span(None);
        let session = M.session(single(&config, &opener)).instrument(span);
        tokio::pin!(session, shutdown);
        tokio::select! {
            r = &mut session => r,
            () = &mut shutdown => drain_after_signal(session, &config).await,
        }
    };
    opener.report();
    // Every exec: child is ended and reaped before we exit (bounded by the kill grace).
    opener.tasks.close();
    let limit = crate::endpoint::exec::KILL_GRACE + std::time::Duration::from_secs(1);
    if tokio::time::timeout(limit, opener.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some child processes did not end in time");
    }
    drop(workers);
    result
}

/// No listener: one session between the two addresses.
async fn single(config: &Config, opener: &Opener) -> Result<()> {
    let none = SessionInfo::default();
    if config.uptime.reconnect {
        let local = opener.open(&config.left, &none).await?;
        return reconnecting(local, &none, opener, config).await;
    }
    // Open the far side first: when it fails, the local side (e.g. stdin) is left untouched.
    let right = opener.open(&config.right, &none).await?;
    crate::systemd::ready(); // systemd
    let left = opener.open(&config.left, &none).await?;
    tracing::Span::current().record("label", left.label());
    relay::bridge(left, right, &config.relay).await
}

async fn serve(
    config: Arc<Config>,
    opener: Arc<Opener>,
    workers: &Workers,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    tracing::debug!("sessions run on {} threads", workers.len());
    let listener = Arc::new(Listener::bind(&config.left, &config.listen, &config.server).await?);
    let socket_file = listener.socket_file();
    announce(&config, &listener.describe());
    crate::systemd::ready_if(!config.uptime.ready_after_connect); // systemd
    tokio::pin!(shutdown);
    if config.listen.oneshot {
        return oneshot(listener, socket_file, &opener, &config, shutdown).await;
    }
    let slots = Slots::new(session_cap(&config));
    let mut sessions = JoinSet::new();
    let mut accept_errors = AcceptErrors::default();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => {
                tracing::info!("shutting down: no longer accepting");
                break;
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
        };
        match accepted {
            Ok(incoming) => {
                accept_errors.succeeded();
                let shared = (config.clone(), opener.clone(), listener.clone());
                let span = crate::logging::session_span(incoming.peer());
                let session = moved_session(incoming, shared, slots.clone());
                workers.spawn(&mut sessions, session.instrument(span));
            }
            Err(e) => accept_errors.failed(e).await,
        }
    }
    // Stop accepting, then let the running sessions finish: each has seen the shutdown token,
    // sent Close 1001 and is draining. After --shutdown-timeout the rest are cut off (their
    // exec: children are then ended by their guards).
    drop(listener);
    drop(socket_file);
    let limit = config.relay.shutdown_timeout + std::time::Duration::from_millis(500);
    let drained = tokio::time::timeout(limit, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{} sessions still running after --shutdown-timeout; cutting them off",
            sessions.len()
        );
    }
    sessions.shutdown().await;
    Ok(())
}

/// `--max-conns`, or else as many sessions as the descriptor limit allows (logged at `-v`):
/// past it clients are refused (HTTP 503) instead of accepted and left without a backend.
fn session_cap(config: &Config) -> Option<usize> {
    if config.listen.max_conns.is_some() {
        return config.listen.max_conns;
    }
    let per = config.right.fds_per_connection();
    let cap = crate::fdlimit::session_cap(per, config.listen.threads)?;
    tracing::info!(
        "serving at most {cap} sessions at once (the descriptor limit; --max-conns sets another)"
    );
    Some(cap)
}

/// [`accepted_session`] on another runtime than the one that accepted the client: its socket
/// is moved over first (src/workers.rs).
fn moved_session(
    incoming: Incoming,
    shared: (Arc<Config>, Arc<Opener>, Arc<Listener>),
    slots: Slots,
) -> impl Future<Output = ()> + Send + 'static {
    let detached = incoming.detach();
    async move {
        match detached.and_then(|d| d.attach()) {
            Ok(incoming) => accepted_session(incoming, shared, slots).await,
            Err(e) => tracing::warn!("could not hand the client to a session thread: {e}"),
        }
    }
}

/// One client of a listener, in its own task (and its own session span, which gets the label
/// here): the handshake, then the session; its failure is logged, and the listener goes on.
async fn accepted_session(
    incoming: Incoming,
    (config, opener, listener): (Arc<Config>, Arc<Opener>, Arc<Listener>),
    slots: Slots,
) {
    // Handshakes (TLS, HTTP) are boxed: their large futures are freed once done, so an idle
    // session's task holds only the relay's state (docs/performance.md: idle RSS).
    let established = Box::pin(listener.establish(incoming, &slots)).await;
    let Some((local, info, _slot)) = established else {
        return;
    };
    let _running = Running::start();
    let label = local.label().to_string();
    tracing::Span::current().record("label", label.as_str());
    tracing::info!("{label}: session started");
    if let Err(e) = M.session(session(local, info, &opener, &config)).await {
        let e = e.to_string();
        if e.starts_with(&label) {
            tracing::warn!("{e}");
        } else {
            tracing::warn!("{label}: {e}");
        }
    }
}

/// Sessions of the listener now running. When the last one ends, the memory the busy time
/// left in the allocator's free lists is given back to the system (`malloc_trim`): after the
/// soak, 17.6 MiB instead of 47 (docs/reliability.md). It takes a few milliseconds, at a moment
/// when nothing else is running.
static RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct Running;

impl Running {
    fn start() -> Running {
        RUNNING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if RUNNING.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            give_back_memory();
        }
    }
}

/// Return free heap pages to the system (glibc; elsewhere nothing to do).
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `--oneshot`: serve the first client that is established, then stop listening; its session's
/// error is the run's error (main prints it once).
async fn oneshot(
    listener: Arc<Listener>,
    socket_file: Option<SocketFile>,
    opener: &Opener,
    config: &Config,
    mut shutdown: Pin<&mut impl Future<Output = ()>>,
) -> Result<()> {
    let Some(((local, info, _slot), span)) = first_client(&listener, shutdown.as_mut()).await
    else {
        return Ok(());
    };
    drop(listener);
    drop(socket_file);
    span.record("label", local.label());
    // On a signal the session sees the shutdown token and closes gracefully; keep waiting for it.
    let one = M
        .session(session(local, info, opener, config))
        .instrument(span);
    tokio::pin!(one);
    tokio::select! {
        r = &mut one => r,
        () = shutdown => drain_after_signal(one, config).await,
    }
}

/// `--oneshot`: the first client whose handshake completes, or None on shutdown. Handshakes run
/// concurrently, each under its own `--handshake-timeout`, so clients that connect and say
/// nothing cannot hold up a real one. A page request or a refused client does not use up the
/// one session. Once one is established, the other handshakes are dropped (their connections
/// closed); one that completes at the very same moment is refused with 503, as the session
/// holds the only slot. Each handshake runs in a session span of its own; the winner's goes on
/// with its session.
async fn first_client(
    listener: &Arc<Listener>,
    mut shutdown: Pin<&mut impl Future<Output = ()>>,
) -> Option<((Conn, SessionInfo, Slot), tracing::Span)> {
    let slots = Slots::new(Some(1));
    let mut handshakes = JoinSet::new();
    let mut accept_errors = AcceptErrors::default();
    let first = loop {
        tokio::select! {
            a = listener.accept() => match a {
                Ok(incoming) => {
                    accept_errors.succeeded();
                    let (listener, slots) = (listener.clone(), slots.clone());
                    let span = crate::logging::session_span(incoming.peer());
                    let handshake = async move { listener.establish(incoming, &slots).await };
                    handshakes.spawn(async move {
                        (handshake.instrument(span.clone()).await, span)
                    });
                }
                Err(e) => accept_errors.failed(e).await,
            },
            Some(done) = handshakes.join_next(), if !handshakes.is_empty() => {
                if let Ok((Some(established), span)) = done {
                    break Some((established, span));
                }
            }
            () = shutdown.as_mut() => {
                tracing::info!("shutting down: no longer accepting");
                break None;
            }
        }
    };
    handshakes.shutdown().await;
    first
}

/// One accepted client: open the far side for it, then pump until the session ends. When the far
/// side cannot be opened, a WebSocket client is told so with Close 1011 (not a dropped socket).
async fn session(local: Conn, info: SessionInfo, opener: &Opener, config: &Config) -> Result<()> {
    if config.uptime.reconnect {
        return Box::pin(reconnecting(local, &info, opener, config)).await;
    }
    let remote = match Box::pin(open_far_side(opener, config, &info)).await {
        Ok(r) => r,
        Err(e) => {
            if let Conn::Messages(m) = local {
                relay::refuse(m, "upstream unavailable", config.relay.close_timeout).await;
            }
            return Err(e);
        }
    };
    crate::systemd::ready_if(config.uptime.ready_after_connect); // systemd
    relay::bridge(local, remote, &config.relay).await
}

/// After a signal: the session has seen the shutdown token and is closing; give it
/// `--shutdown-timeout` (and a little), then stop waiting — that is still a clean exit.
async fn drain_after_signal(
    session: impl Future<Output = Result<()>>,
    config: &Config,
) -> Result<()> {
    let limit = config.relay.shutdown_timeout + std::time::Duration::from_millis(500);
    match tokio::time::timeout(limit, session).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!("session still running after --shutdown-timeout; stopping it");
            Ok(())
        }
    }
}

/// `--reconnect`: the local byte stream stays, the WebSocket (ADDR2) is reopened when it drops.
async fn reconnecting(
    local: Conn,
    info: &SessionInfo,
    opener: &Opener,
    config: &Config,
) -> Result<()> {
    let Conn::Bytes(local) = local else {
        return Err(crate::error::Error::Internal(
            "--reconnect needs a byte-stream ADDR1".into(),
        ));
    };
    let connect = || async {
        match opener.open(&config.right, info).await? {
            Conn::Messages(m) => Ok(m),
            _ => Err(crate::error::Error::Internal(
                "--reconnect needs a ws:// or wss:// ADDR2".into(),
            )),
        }
    };
    relay::bridge_reconnecting(local, true, connect, &config.relay, &config.uptime).await
}

/// `wsbridge: listening on tcp 127.0.0.1:PORT` on stderr (and stdout with --announce-stdout).
fn announce(config: &Config, what: &str) {
    let line = format!("wsbridge: listening on {what}");
    if config.log != LogLevel::Quiet {
        crate::logging::line(tracing::Level::INFO, &line);
    }
    if config.listen.announce_stdout {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// SIGTERM and SIGINT, installed once (before anything is bound, so no early signal is lost).
/// The first SIGTERM or SIGINT triggers `shutdown`; a second one exits at once. Handlers are
/// installed before anything is bound or announced.
fn watch_signals(shutdown: Shutdown) {
    let Some(mut signals) = Signals::install() else {
        return;
    };
    tokio::spawn(async move {
        signals.recv().await;
        tracing::info!("signal received: shutting down (a second signal exits at once)");
        shutdown.cancel();
        signals.recv().await;
        crate::logging::line(
            tracing::Level::WARN,
            "wsbridge: second signal: exiting at once",
        );
        std::process::exit(130);
    });
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Must run inside the runtime. `None` if the handlers cannot be installed.
    fn install() -> Option<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Some(Signals {
            term: signal(SignalKind::terminate()).ok()?,
            int: signal(SignalKind::interrupt()).ok()?,
        })
    }

    /// The next SIGTERM or SIGINT.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Open the far side for an accepted client. Out of descriptors (EMFILE/ENFILE), which sessions
/// ending will soon cure, it tries again for up to [`FD_WAIT`] before giving up.
async fn open_far_side(opener: &Opener, config: &Config, info: &SessionInfo) -> Result<Conn> {
    let deadline = tokio::time::Instant::now() + FD_WAIT;
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        match opener.open(&config.right, info).await {
            Err(e)
                if crate::fdlimit::is_exhausted(&e) && tokio::time::Instant::now() < deadline =>
            {
                tracing::debug!("{e}; trying again in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            r => return r,
        }
    }
}

/// How long opening a backend waits for descriptors to be freed.
const FD_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
