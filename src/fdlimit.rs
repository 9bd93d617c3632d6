//! File descriptors: the soft `RLIMIT_NOFILE` raised to the hard limit at startup (as nginx and
//! Go do), the original soft limit given back to `exec:` children, and what a listener does when
//! `accept` runs out of descriptors (EMFILE/ENFILE): pause, warn once per episode, resume.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The soft limit wsbridge started with (`u64::MAX`: not changed, nothing to give back).
static ORIGINAL_SOFT: AtomicU64 = AtomicU64::new(u64::MAX);

/// The current (soft, hard) `RLIMIT_NOFILE`.
pub(crate) fn current() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which lives for the call.
    let r = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (r == 0).then_some((lim.rlim_cur, lim.rlim_max))
}

fn set_soft(soft: u64, hard: u64) -> std::io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Raise the soft limit to the hard one (or to the kernel's `nr_open` when the hard limit is
/// unlimited), and log the figure at `-v`. A failure is logged and ignored: the old limit stays.
pub(crate) fn raise() {
    let Some((soft, hard)) = current() else {
        return;
    };
    let target = if hard == libc::RLIM_INFINITY {
        nr_open().unwrap_or(soft).max(soft)
    } else {
        hard
    };
    if target <= soft {
        tracing::info!("descriptor limit: {soft} (already the hard limit)");
        return;
    }
    match set_soft(target, hard) {
        Ok(()) => {
            ORIGINAL_SOFT.store(soft, Relaxed);
            tracing::info!("descriptor limit: raised from {soft} to {target} (the hard limit)");
        }
        Err(e) => tracing::info!("descriptor limit: {soft}; raising it to {target} failed: {e}"),
    }
}

fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// For a child about to be started: the soft limit wsbridge started with, so programs that use
/// `select()` (limited to descriptors below 1024) see what they would have seen without us.
/// `None`: nothing to give back.
pub(crate) fn original_soft() -> Option<u64> {
    let soft = ORIGINAL_SOFT.load(Relaxed);
    (soft != u64::MAX).then_some(soft)
}

/// In a forked child before exec: put the soft limit back to `soft` (async-signal-safe:
/// getrlimit and setrlimit are system calls).
pub(crate) fn restore_in_child(soft: u64) -> std::io::Result<()> {
    let (_, hard) = current().ok_or_else(std::io::Error::last_os_error)?;
    set_soft(soft, hard)
}

/// Descriptors kept for everything that is not a session: the main runtime, listeners,
/// metrics, Redis, certificate and credential files read later, DNS; and per session thread
/// (its runtime's epoll and wake-up descriptors).
const RESERVE: u64 = 26;
const PER_THREAD: u64 = 3;

/// Sessions that fit under the soft limit when each holds its client's descriptor and
/// `per_session` more, with `threads` session threads; `None` when the limit is too high to
/// matter.
pub(crate) fn session_cap(per_session: usize, threads: usize) -> Option<usize> {
    let (soft, _) = current()?;
    if soft == libc::RLIM_INFINITY {
        return None;
    }
    let reserve = RESERVE + PER_THREAD * threads as u64;
    let cap = soft.saturating_sub(reserve) / (1 + per_session as u64);
    usize::try_from(cap.max(1)).ok()
}

/// Whether `e` (or what caused it) is EMFILE or ENFILE: out of descriptors, for now.
pub(crate) fn is_exhausted(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(io.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// How long a listener waits after an accept failed before trying again.
const PAUSE: Duration = Duration::from_millis(100);

/// Failures less than this apart belong to one episode.
const EPISODE_GAP: Duration = Duration::from_secs(10);

/// A listener's accept failures: one warning when an episode of failures begins, one info line
/// when accepting first works again, and a pause after each failure so the loop never spins.
/// Failures less than [`EPISODE_GAP`] apart are one episode (descriptors freed by one session
/// are soon taken again: that is no news).
#[derive(Default)]
pub(crate) struct AcceptErrors {
    episode: Option<Episode>,
}

struct Episode {
    since: Instant,
    failures: u64,
    last: Instant,
    /// "accepting again" was logged.
    recovered: bool,
}

impl AcceptErrors {
    /// An accept failed: count it, warn if it starts an episode, then pause.
    pub(crate) async fn failed(&mut self, e: std::io::Error) {
        crate::metrics::M.accept_failed();
        let now = Instant::now();
        match &mut self.episode {
            Some(ep) if now.duration_since(ep.last) < EPISODE_GAP => {
                ep.failures += 1;
                ep.last = now;
            }
            _ => {
                tracing::warn!("{}", describe(&e));
                self.episode = Some(Episode {
                    since: now,
                    failures: 1,
                    last: now,
                    recovered: false,
                });
            }
        }
        tokio::time::sleep(PAUSE).await;
    }

    /// An accept worked: say so once per episode.
    pub(crate) fn succeeded(&mut self) {
        if let Some(ep) = &mut self.episode
            && !ep.recovered
        {
            ep.recovered = true;
            let after = crate::error::fmt_duration(ep.since.elapsed());
            let n = ep.failures;
            tracing::info!("accepting again, after {n} failed accepts over {after}");
        }
    }
}

/// The warning for the first failed accept of an episode.
fn describe(e: &std::io::Error) -> String {
    let pause = crate::error::fmt_duration(PAUSE);
    match e.raw_os_error() {
        Some(libc::EMFILE) => {
            let limit = current().map_or(String::new(), |(soft, _)| format!(" (limit {soft})"));
            format!(
                "accept failed: out of file descriptors{limit}: {e}; new clients wait until \
                 sessions end (retrying every {pause})"
            )
        }
        Some(libc::ENFILE) => format!(
            "accept failed: the system is out of file descriptors: {e}; new clients wait \
             (retrying every {pause})"
        ),
        _ => format!("accept failed: {e} (retrying every {pause})"),
    }
}
