//! systemd integration without libsystemd: the `sd_notify` protocol (readiness, stopping, status,
//! watchdog) over the Unix datagram socket named by `NOTIFY_SOCKET`, and the socket-activation
//! environment (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`) read by `sd-listen:`.
//!
//! The environment is read once, on first use, and never modified (changing the environment of a
//! running multi-threaded process is unsound). Instead `exec:` children get these variables
//! removed ([`CHILD_ENV_REMOVE`]), and every passed socket is made close-on-exec as soon as the
//! variables are read, so nothing meant for wsbridge leaks into the programs it starts.
//!
//! Everything here is a no-op outside systemd: without `NOTIFY_SOCKET` nothing is sent. Sending
//! never blocks and never fails loudly: a lost notification is logged at debug level only.

use std::ffi::OsStr;
use std::future::Future;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Variables set by systemd for wsbridge only; `exec:` children must not see them (they get a
/// clean environment, and `--pass-env` does not pass these).
pub const CHILD_ENV_REMOVE: &[&str] = &[
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

/// The first descriptor passed by socket activation (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// Where notifications go: the value of `NOTIFY_SOCKET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifySocket {
    /// A socket file (`/run/systemd/notify`).
    Path(PathBuf),
    /// A Linux abstract-namespace socket (`@name`, the name without the `@`).
    Abstract(Vec<u8>),
}

impl NotifySocket {
    /// `/path` or `@abstract`; anything else (empty, relative, `vsock:`…) is not supported.
    pub fn parse(value: &OsStr) -> Option<NotifySocket> {
        let bytes = value.as_bytes();
        match bytes.first() {
            Some(b'/') => Some(NotifySocket::Path(PathBuf::from(value))),
            Some(b'@') if bytes.len() > 1 => Some(NotifySocket::Abstract(bytes[1..].to_vec())),
            _ => None,
        }
    }

    /// Send one datagram. Non-blocking: a full queue loses the message rather than stalling
    /// the event loop.
    pub fn send(&self, message: &[u8]) -> std::io::Result<()> {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        match self {
            NotifySocket::Path(path) => socket.send_to(message, path)?,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            NotifySocket::Abstract(name) => {
                #[cfg(target_os = "android")]
                use std::os::android::net::SocketAddrExt;
                #[cfg(target_os = "linux")]
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(message, &addr)?
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            NotifySocket::Abstract(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "abstract socket addresses need Linux",
                ));
            }
        };
        Ok(())
    }
}

static NOTIFY: OnceLock<Option<NotifySocket>> = OnceLock::new();
static WATCHDOG: OnceLock<Option<Duration>> = OnceLock::new();
static READY_SENT: AtomicBool = AtomicBool::new(false);
static STOPPING_SENT: AtomicBool = AtomicBool::new(false);

/// `NOTIFY_SOCKET`, read once.
fn notify_socket() -> Option<&'static NotifySocket> {
    NOTIFY
        .get_or_init(|| {
            let value = std::env::var_os("NOTIFY_SOCKET")?;
            let parsed = NotifySocket::parse(&value);
            if parsed.is_none() {
                tracing::debug!("NOTIFY_SOCKET={value:?} is not supported; not notifying");
            }
            parsed
        })
        .as_ref()
}

/// Send `state` (e.g. `READY=1`, several assignments separated by newlines) to systemd.
/// Without `NOTIFY_SOCKET` this does nothing; failures are logged at debug level only.
pub fn notify(state: &str) {
    let Some(target) = notify_socket() else {
        return;
    };
    match target.send(state.as_bytes()) {
        Ok(()) => tracing::trace!("sd_notify: {}", state.replace('\n', " ")),
        Err(e) => tracing::debug!("sd_notify {}: {e}", state.replace('\n', " ")),
    }
}

/// `READY=1`: startup is complete. Sent at most once per process.
pub fn ready() {
    if !READY_SENT.swap(true, Ordering::AcqRel) {
        notify("READY=1");
    }
}

/// [`ready`] when `condition` holds (a one-line hook for the callers that decide by an option).
pub fn ready_if(condition: bool) {
    if condition {
        ready();
    }
}

/// `STOPPING=1`: shutdown has begun. Sent at most once per process.
pub fn stopping() {
    if !STOPPING_SENT.swap(true, Ordering::AcqRel) {
        notify("STOPPING=1");
    }
}

/// Wrap a shutdown future so that `STOPPING=1` is sent as soon as it resolves.
pub async fn on_shutdown<F: Future<Output = ()>>(shutdown: F) {
    shutdown.await;
    stopping();
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when that is set and meant for
/// `our_pid` (`WATCHDOG_PID` unset or equal to it).
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, our_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(our_pid)
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

fn watchdog_every() -> Option<Duration> {
    *WATCHDOG.get_or_init(|| {
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id())
    })
}

/// With `NOTIFY_SOCKET` and `WATCHDOG_USEC` set (for this process): a task that sends
/// `WATCHDOG=1` every `WATCHDOG_USEC / 2` for as long as the event loop runs it. A stalled
/// runtime stops the keep-alives, and systemd then restarts the service. Spawn it on the runtime.
pub fn watchdog() -> Option<impl Future<Output = ()> + Send + 'static> {
    notify_socket()?;
    let every = watchdog_every()?;
    tracing::debug!(
        "systemd watchdog: WATCHDOG=1 every {}",
        crate::error::fmt_duration(every)
    );
    Some(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            notify("WATCHDOG=1");
        }
    })
}

/// Spawn [`watchdog`] on the current runtime, when systemd asked for one.
pub fn spawn_watchdog() {
    if let Some(task) = watchdog() {
        tokio::spawn(task);
    }
}

/// One socket passed by socket activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassedFd {
    pub fd: RawFd,
    /// Its `FileDescriptorName=` (`unknown` when `LISTEN_FDNAMES` is not set).
    pub name: String,
}

/// The sockets passed to `our_pid`, from the values of `LISTEN_PID`, `LISTEN_FDS` and
/// `LISTEN_FDNAMES`. The error says what is missing or wrong.
pub fn parse_listen_env(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    our_pid: u32,
) -> Result<Vec<PassedFd>, String> {
    let Some(fds) = fds else {
        return Err(
            "no sockets were passed (LISTEN_FDS is not set): start wsbridge from a \
                    .socket unit, or with systemd-socket-activate"
                .into(),
        );
    };
    let Some(pid) = pid else {
        return Err("LISTEN_FDS is set but LISTEN_PID is not".into());
    };
    match pid.trim().parse::<u32>() {
        Ok(p) if p == our_pid => {}
        Ok(p) => {
            return Err(format!(
                "the passed sockets are for process {p} (LISTEN_PID), not this one ({our_pid})"
            ));
        }
        Err(_) => return Err(format!("LISTEN_PID={pid:?} is not a process id")),
    }
    let n: usize = fds
        .trim()
        .parse()
        .ok()
        .filter(|&n| n <= 65_536)
        .ok_or_else(|| format!("LISTEN_FDS={fds:?} is not a number of sockets"))?;
    if n == 0 {
        return Err("LISTEN_FDS=0: no sockets were passed".into());
    }
    let names: Vec<String> = match names {
        Some(names) => {
            let list: Vec<String> = names.split(':').map(str::to_string).collect();
            if list.len() != n {
                return Err(format!(
                    "LISTEN_FDNAMES has {} names for {n} sockets (LISTEN_FDS)",
                    list.len()
                ));
            }
            list
        }
        None => vec!["unknown".to_string(); n],
    };
    Ok(names
        .into_iter()
        .enumerate()
        .map(|(i, name)| PassedFd {
            fd: LISTEN_FDS_START + i as RawFd,
            name,
        })
        .collect())
}

static LISTEN: OnceLock<Result<Vec<PassedFd>, String>> = OnceLock::new();

/// The sockets passed to this process, read from the environment once. On that first read each
/// of them is made close-on-exec (as `sd_listen_fds` does), so `exec:` children never inherit one.
pub fn listen_fds() -> &'static Result<Vec<PassedFd>, String> {
    LISTEN.get_or_init(|| {
        let var = |k| std::env::var(k).ok();
        let passed = parse_listen_env(
            var("LISTEN_PID").as_deref(),
            var("LISTEN_FDS").as_deref(),
            var("LISTEN_FDNAMES").as_deref(),
            std::process::id(),
        )?;
        for p in &passed {
            // SAFETY: fcntl on a descriptor number: at worst EBADF for one that is not open.
            unsafe {
                let flags = libc::fcntl(p.fd, libc::F_GETFD);
                if flags >= 0 {
                    libc::fcntl(p.fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
                }
            }
        }
        Ok(passed)
    })
}

/// Choose the passed socket named `name`, or the first one when `name` is `None`.
pub fn select<'a>(passed: &'a [PassedFd], name: Option<&str>) -> Result<&'a PassedFd, String> {
    match name {
        None => passed
            .first()
            .ok_or_else(|| "no sockets were passed".to_string()),
        Some(name) => passed.iter().find(|p| p.name == name).ok_or_else(|| {
            let names: Vec<&str> = passed.iter().map(|p| p.name.as_str()).collect();
            format!(
                "no socket named '{name}' was passed (LISTEN_FDNAMES: {})",
                names.join(", ")
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_socket_values() {
        assert_eq!(
            NotifySocket::parse(OsStr::new("/run/systemd/notify")),
            Some(NotifySocket::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            NotifySocket::parse(OsStr::new("@/org/x")),
            Some(NotifySocket::Abstract(b"/org/x".to_vec()))
        );
        for bad in ["", "@", "relative", "vsock:2:1234"] {
            assert_eq!(NotifySocket::parse(OsStr::new(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn watchdog_intervals() {
        let ms = Duration::from_millis;
        assert_eq!(watchdog_interval(Some("200000"), None, 7), Some(ms(100)));
        assert_eq!(
            watchdog_interval(Some("200000"), Some("7"), 7),
            Some(ms(100))
        );
        assert_eq!(watchdog_interval(Some("200000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("200000"), Some("x"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, Some("7"), 7), None);
        assert_eq!(watchdog_interval(Some("1"), None, 7), Some(ms(1)));
    }

    #[test]
    fn listen_env() {
        let fd = |fd, name: &str| PassedFd {
            fd,
            name: name.into(),
        };
        assert_eq!(
            parse_listen_env(Some("42"), Some("2"), Some("web:admin"), 42),
            Ok(vec![fd(3, "web"), fd(4, "admin")])
        );
        assert_eq!(
            parse_listen_env(Some("42"), Some("1"), None, 42),
            Ok(vec![fd(3, "unknown")])
        );
        let errors = [
            (None, None, None, "LISTEN_FDS is not set"),
            (None, Some("1"), None, "LISTEN_PID is not"),
            (Some("41"), Some("1"), None, "for process 41"),
            (Some("x"), Some("1"), None, "not a process id"),
            (Some("42"), Some("0"), None, "LISTEN_FDS=0"),
            (Some("42"), Some("-1"), None, "not a number of sockets"),
            (Some("42"), Some("2"), Some("web"), "1 names for 2 sockets"),
        ];
        for (pid, fds, names, want) in errors {
            let err = parse_listen_env(pid, fds, names, 42).unwrap_err();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }

    #[test]
    fn selecting_a_passed_socket() {
        let passed = parse_listen_env(Some("1"), Some("3"), Some("web:admin:web"), 1).unwrap();
        assert_eq!(select(&passed, None).unwrap().fd, 3);
        assert_eq!(select(&passed, Some("admin")).unwrap().fd, 4);
        assert_eq!(select(&passed, Some("web")).unwrap().fd, 3);
        let err = select(&passed, Some("nope")).unwrap_err();
        assert!(
            err.contains("'nope'") && err.contains("web, admin, web"),
            "{err}"
        );
    }
}
