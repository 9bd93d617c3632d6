//! `--pty`: a pseudo-terminal for a child's stdin and stdout, so that runtimes which buffer a
//! pipe (C stdio, Python) write each line at once. Output is raw (no `\n` → `\r\n`), there is
//! no echo and no signal, erase or flow-control character. Input has two modes:
//! - **line mode**, for line framings (text, jsonl): the kernel's canonical input, so that the
//!   end of input can be told as a terminal does, with the EOF character (^D), which a child
//!   waiting in `read` sees (in raw mode it would take the ^D and keep waiting). ^D means EOF
//!   only once input has ended, so it may occur in data. A line holds at most `LINE_MAX` bytes:
//!   a longer one is an error, not cut short silently by the kernel;
//! - **raw**, for every other framing (`-b`): bytes pass unchanged. The end of input switches to
//!   line mode and writes ^D, which a child sees at its next `read`, not in one it is waiting in
//!   (docs/server.md).
//!
//! A pty has no half-close: closing the master would lose the output still to come. The master
//! is non-blocking, shared by the reading and the writing half.

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
/// The longest line the kernel's line mode holds (its buffer is 4 KiB, newline included).
const LINE_MAX: usize = 4095;

/// A pseudo-terminal: the master (ours, async) and the slave (the child's, until spawned).
pub(super) struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
    lines: bool,
}

impl Pty {
    /// Open a pseudo-terminal of `cols` × `rows`, its input in line mode or raw.
    pub(super) fn open((cols, rows): (u16, u16), lines: bool) -> io::Result<Pty> {
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = rustix::pty::openpt(flags)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let flags = OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC;
        let slave = rustix::fs::open(name.as_c_str(), flags, Mode::empty())?;
        let mut t = termios::tcgetattr(&slave)?;
        t.make_raw();
        if lines {
            line_mode(&mut t, false);
        }
        termios::tcsetattr(&slave, OptionalActions::Now, &t)?;
        let size = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        termios::tcsetwinsize(&master, size)?;
        rustix::io::ioctl_fionbio(&master, true)?;
        Ok(Pty {
            master,
            slave,
            lines,
        })
    }

    /// The master side, as the connection's two halves; the slave is returned for the child.
    pub(super) fn split(self) -> io::Result<(PtyReader, PtyWriter, OwnedFd)> {
        // SAFETY: `master` is an open descriptor owned by the AsyncFd for its whole life.
        let fd = unsafe { AsyncFd::register(self.master) }.map_err(|e| e.into_parts().1)?;
        let fd = Arc::new(fd);
        let writer = PtyWriter {
            fd: fd.clone(),
            lines: self.lines,
            line_len: 0,
            end: End::Writing,
        };
        Ok((PtyReader(fd), writer, self.slave))
    }
}

pub(super) struct PtyReader(Arc<AsyncFd<OwnedFd>>);

pub(super) struct PtyWriter {
    fd: Arc<AsyncFd<OwnedFd>>,
    /// Input is in line mode (else raw).
    lines: bool,
    /// Bytes written since the last newline (a line left open needs a second EOF character).
    line_len: usize,
    end: End,
}

/// Where the end of input has got to.
enum End {
    Writing,
    /// In line mode; these EOF characters are still to be written.
    Eof(&'static [u8]),
    Done,
}

impl AsyncRead for PtyReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            // SAFETY: read(2) only writes into the buffer; the bytes it reports are then
            // initialised, and only those are marked so.
            let read = guard.try_io(|fd| unsafe {
                let (init, _) = rustix::io::read(fd.get_ref(), buf.unfilled_mut())?;
                Ok(init.len())
            });
            match read {
                Ok(Ok(n)) => {
                    // SAFETY: `n` bytes were just written by read(2).
                    unsafe { buf.assume_init(n) };
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
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.lines && self.line_len + line_part(data) > LINE_MAX {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a line longer than {LINE_MAX} bytes cannot pass --pty in line mode (use -b)"
                ),
            )));
        }
        let n = ready!(write_master(&self.fd, cx, data))?;
        let written = &data[..n];
        self.line_len = match memchr::memrchr(b'\n', written) {
            Some(i) => n - i - 1,
            None => self.line_len + n,
        };
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// End of input: line mode (with ^D as its EOF character), then ^D (twice after an
    /// unfinished line, whose first one only ends that line): the child reads 0.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.end {
                End::Writing => {
                    this.end = match canonical(this.fd.get_ref()) {
                        Ok(()) if this.line_len == 0 => End::Eof(&[EOF_CHAR]),
                        Ok(()) => End::Eof(&[EOF_CHAR, EOF_CHAR]),
                        Err(e) => {
                            // The child has gone (or took the terminal over): nothing to tell.
                            tracing::debug!("pty: end of input not signalled: {e}");
                            End::Done
                        }
                    };
                }
                End::Eof(rest) => {
                    let rest: &'static [u8] = rest;
                    match ready!(write_master(&this.fd, cx, rest)) {
                        Ok(n) if n < rest.len() => this.end = End::Eof(&rest[n..]),
                        _ => this.end = End::Done,
                    }
                }
                End::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// One write to the master, when it can take it.
fn write_master(
    fd: &AsyncFd<OwnedFd>,
    cx: &mut Context<'_>,
    data: &[u8],
) -> Poll<io::Result<usize>> {
    loop {
        let mut guard = ready!(fd.poll_write_ready(cx))?;
        let written =
            guard.try_io(|fd| rustix::io::write(fd.get_ref(), data).map_err(io::Error::from));
        if let Ok(r) = written {
            return Poll::Ready(r);
        }
    }
}

/// What of `data` counts towards the line being written: up to its first newline.
fn line_part(data: &[u8]) -> usize {
    memchr::memchr(b'\n', data).unwrap_or(data.len())
}

/// Canonical input with nothing special but, when `eof`, the EOF character: no echo, erase,
/// kill, signals or flow control (raw otherwise).
fn line_mode(t: &mut termios::Termios, eof: bool) {
    t.local_modes |= LocalModes::ICANON;
    t.local_modes -= LocalModes::ECHO | LocalModes::ISIG | LocalModes::IEXTEN;
    for i in [
        SpecialCodeIndex::VERASE,
        SpecialCodeIndex::VKILL,
        SpecialCodeIndex::VEOL,
        SpecialCodeIndex::VEOL2,
        SpecialCodeIndex::VEOF,
    ] {
        t.special_codes[i] = 0;
    }
    if eof {
        t.special_codes[SpecialCodeIndex::VEOF] = EOF_CHAR;
    }
}

/// Line mode with ^D as the EOF character, for the end of input.
fn canonical(fd: impl AsFd) -> io::Result<()> {
    let mut t = termios::tcgetattr(&fd)?;
    line_mode(&mut t, true);
    termios::tcsetattr(&fd, OptionalActions::Now, &t)?;
    Ok(())
}
