//! `--pty`: a pseudo-terminal for a child's stdin and stdout, so that runtimes which buffer a
//! pipe (C stdio, Python) write each line at once. The terminal is raw (bytes pass unchanged:
//! no echo, no `\n` → `\r\n`, no signal characters). Input ends the way a terminal allows: the
//! line discipline is switched to canonical mode and the EOF character written, so the child's
//! next read returns 0 (a pty has no half-close, and closing the master would lose the output
//! still to come). The master is non-blocking, shared by the reading and the writing half.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::{self, LocalModes, OptionalActions, SpecialCodeIndex, Winsize};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The EOF character written when input ends (^D, what `stty` shows as `eof`).
const EOF_CHAR: u8 = 0x04;

/// A pseudo-terminal: the master (ours, async) and the slave (the child's, until spawned).
pub(super) struct Pty {
    pub(super) master: OwnedFd,
    pub(super) slave: OwnedFd,
}

impl Pty {
    /// Open a raw pseudo-terminal of `cols` × `rows`.
    pub(super) fn open((cols, rows): (u16, u16)) -> io::Result<Pty> {
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = rustix::pty::openpt(flags)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let flags = OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC;
        let slave = rustix::fs::open(name.as_c_str(), flags, Mode::empty())?;
        let mut t = termios::tcgetattr(&slave)?;
        t.make_raw();
        termios::tcsetattr(&slave, OptionalActions::Now, &t)?;
        let size = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        termios::tcsetwinsize(&master, size)?;
        rustix::io::ioctl_fionbio(&master, true)?;
        Ok(Pty { master, slave })
    }
}

/// The master side, as the connection's two halves.
pub(super) fn halves(master: OwnedFd) -> io::Result<(PtyReader, PtyWriter)> {
    // SAFETY: `master` is an open descriptor owned by the AsyncFd for its whole life.
    let fd = unsafe { AsyncFd::register(master) }.map_err(|e| e.into_parts().1)?;
    let fd = Arc::new(fd);
    Ok((PtyReader(fd.clone()), PtyWriter { fd, ended: false }))
}

pub(super) struct PtyReader(Arc<AsyncFd<OwnedFd>>);
pub(super) struct PtyWriter {
    fd: Arc<AsyncFd<OwnedFd>>,
    ended: bool,
}

impl AsyncRead for PtyReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let read = guard.try_io(|fd| {
                let dst = buf.initialize_unfilled();
                rustix::io::read(fd.get_ref(), dst).map_err(io::Error::from)
            });
            match read {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Every holder of the slave has closed it: the child's output has ended.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            let written =
                guard.try_io(|fd| rustix::io::write(fd.get_ref(), data).map_err(io::Error::from));
            match written {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// End of input: canonical mode, then the EOF character (the child reads 0).
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.ended {
            return Poll::Ready(Ok(()));
        }
        if let Err(e) = canonical(self.fd.get_ref()) {
            // The child has gone (or changed the terminal away): nothing to tell it.
            tracing::debug!("pty: end of input not signalled: {e}");
            self.ended = true;
            return Poll::Ready(Ok(()));
        }
        match ready!(self.as_mut().poll_write(cx, &[EOF_CHAR])) {
            Ok(_) | Err(_) => {
                self.ended = true;
                Poll::Ready(Ok(()))
            }
        }
    }
}

/// Canonical input with nothing special but EOF (no erase, kill, signals or flow control), so
/// what was written before still arrives as it was.
fn canonical(fd: impl AsFd) -> io::Result<()> {
    let mut t = termios::tcgetattr(&fd)?;
    t.local_modes |= LocalModes::ICANON;
    t.local_modes -= LocalModes::ECHO | LocalModes::ISIG | LocalModes::IEXTEN;
    for i in [
        SpecialCodeIndex::VERASE,
        SpecialCodeIndex::VKILL,
        SpecialCodeIndex::VEOL,
        SpecialCodeIndex::VEOL2,
    ] {
        t.special_codes[i] = 0;
    }
    t.special_codes[SpecialCodeIndex::VEOF] = EOF_CHAR;
    termios::tcsetattr(&fd, OptionalActions::Now, &t)?;
    Ok(())
}
