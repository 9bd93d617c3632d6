//! `sd-listen:NAME` / `sd-listen:`: a listening socket passed by systemd socket activation
//! (`LISTEN_FDS`, see [`crate::systemd`]), a TCP or a Unix stream socket. It then behaves like
//! `tcp-listen:` / `unix-listen:`, except that the socket belongs to systemd: wsbridge never binds
//! it and never removes its socket file.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use tokio::net::{TcpListener, UnixListener, UnixStream};

use crate::error::{Error, Result};
use crate::systemd;

/// A passed socket, ready to accept on.
pub(crate) enum Passed {
    Tcp(TcpListener),
    Unix(PassedUnix),
}

/// A passed Unix stream listener.
pub(crate) struct PassedUnix {
    listener: UnixListener,
    /// Its path (or `@abstract` name), for logs.
    shown: String,
}

impl PassedUnix {
    /// The socket's path, `@name` for an abstract socket.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    pub(crate) async fn accept(&self) -> io::Result<UnixStream> {
        self.listener.accept().await.map(|(s, _)| s)
    }
}

/// What kind of socket a descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Inet,
    Unix,
}

/// Descriptors already turned into listeners (each may be owned once).
static CLAIMED: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

/// Take the passed socket named `name` (the first one for `None`) as a listener.
pub(crate) fn take(name: Option<&str>) -> Result<Passed> {
    let target = format!("sd-listen:{}", name.unwrap_or(""));
    let fail = |source: io::Error| Error::Listen {
        target: target.clone(),
        source,
    };
    let passed = systemd::listen_fds()
        .as_ref()
        .map_err(|e| fail(io::Error::new(io::ErrorKind::NotFound, e.clone())))?;
    let chosen = systemd::select(passed, name)
        .map_err(|e| fail(io::Error::new(io::ErrorKind::NotFound, e)))?;
    let fd = chosen.fd;
    let family = inspect(fd).map_err(|e| {
        fail(io::Error::new(
            e.kind(),
            format!("fd {fd} ('{}'): {e}", chosen.name),
        ))
    })?;
    {
        let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
        if claimed.contains(&fd) {
            return Err(fail(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("fd {fd} ('{}') is already in use", chosen.name),
            )));
        }
        claimed.push(fd);
    }
    // SAFETY: `fd` was passed to this process (LISTEN_PID is ours), is open and a listening
    // stream socket (inspected above), and is claimed exactly once (CLAIMED): nothing else in
    // the process owns or closes it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let passed = match family {
        Family::Inet => {
            let std = std::net::TcpListener::from(owned);
            std.set_nonblocking(true).map_err(fail)?;
            Passed::Tcp(TcpListener::from_std(std).map_err(fail)?)
        }
        Family::Unix => {
            let std = std::os::unix::net::UnixListener::from(owned);
            std.set_nonblocking(true).map_err(fail)?;
            let shown = std
                .local_addr()
                .map(|a| show_unix_addr(&a))
                .unwrap_or_else(|_| "(unnamed)".into());
            Passed::Unix(PassedUnix {
                listener: UnixListener::from_std(std).map_err(fail)?,
                shown,
            })
        }
    };
    tracing::info!(
        "{target}: using the socket passed by systemd as fd {fd} ('{}')",
        chosen.name
    );
    Ok(passed)
}

fn show_unix_addr(addr: &std::os::unix::net::SocketAddr) -> String {
    if let Some(path) = addr.as_pathname() {
        return path.display().to_string();
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        if let Some(name) = addr.as_abstract_name() {
            return format!("@{}", String::from_utf8_lossy(name));
        }
    }
    "(unnamed)".into()
}

fn sockopt(fd: RawFd, option: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`; a bad fd is an error return.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Check that `fd` is an open, listening stream socket, and say whether it is TCP or Unix.
fn inspect(fd: RawFd) -> io::Result<Family> {
    let invalid = |m: &str| io::Error::new(io::ErrorKind::InvalidInput, m.to_string());
    let ty = sockopt(fd, libc::SO_TYPE).map_err(|e| match e.raw_os_error() {
        Some(libc::EBADF) => invalid("not an open descriptor"),
        Some(libc::ENOTSOCK) => invalid("not a socket"),
        _ => e,
    })?;
    if ty != libc::SOCK_STREAM {
        return Err(invalid(
            "not a stream socket (only ListenStream= sockets are supported)",
        ));
    }
    if sockopt(fd, libc::SO_ACCEPTCONN)? == 0 {
        return Err(invalid(
            "a connected socket, not a listening one (with Accept=yes, each connection is \
             standard input/output: use inetd:)",
        ));
    }
    // SAFETY: an all-zero sockaddr_storage is valid; getsockname writes at most `len` bytes.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let r = unsafe {
        libc::getsockname(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    match libc::c_int::from(addr.ss_family) {
        libc::AF_INET | libc::AF_INET6 => Ok(Family::Inet),
        libc::AF_UNIX => Ok(Family::Unix),
        other => Err(invalid(&format!(
            "a socket of address family {other}, not TCP or Unix"
        ))),
    }
}
